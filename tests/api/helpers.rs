//! `spawn_app()` and typed helpers shared by the tests.

use actix_web::dev::ServerHandle;
use gpt2api::config::Config;
use gpt2api::startup::Application;
use gpt2api::state::AppState;
use secrecy::SecretString;
use serde_json::{json, Value};

/// The admin every test app starts with.
pub const ADMIN: &str = "admin";
/// Its password (satisfies the rules).
pub const ADMIN_PASSWORD: &str = "Initial-Passw0rd";

/// A running gateway and what a test needs to drive it.
pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub first_admin_password: Option<String>,
    pub config: Config,
    handle: ServerHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
    pub dir: std::sync::Arc<tempfile::TempDir>,
    db: std::sync::Arc<TestDatabase>,
}

/// A database of its own for one test: a SQLite file, or a fresh PostgreSQL database that is
/// dropped when the test ends.
pub struct TestDatabase {
    pub url: Option<String>,
    admin_url: Option<String>,
    name: String,
}

impl TestDatabase {
    /// A new, empty database for this test.
    pub async fn create(dir: &tempfile::TempDir) -> TestDatabase {
        let name = format!("gpt2api_test_{}", uuid::Uuid::new_v4().simple());
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            None => TestDatabase {
                url: Some(format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("gpt2api.db").display()
                )),
                admin_url: None,
                name,
            },
            Some(admin_url) => {
                use sea_orm::ConnectionTrait;
                let admin = sea_orm::Database::connect(&admin_url)
                    .await
                    .expect("TEST_DATABASE_URL must be reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                TestDatabase {
                    url: Some(url.to_string()),
                    admin_url: Some(admin_url),
                    name,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a plain thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for cleanup");
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// The configuration of a test app: loopback, port 0, its own data directory and database.
pub fn test_config(dir: &tempfile::TempDir, db: &TestDatabase) -> Config {
    let mut config = Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.workers = 2;
    config.server.data_dir = dir.path().join("data");
    config.database.url = db.url.clone().map(SecretString::from);
    config.database.path = dir.path().join("gpt2api.db");
    config.database.max_connections = 5;
    config.auth.admin_username = ADMIN.into();
    config.auth.admin_password = Some(SecretString::from(ADMIN_PASSWORD));
    config
}

/// Starts an app with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app after `adjust` changed its configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = TestDatabase::create(&dir).await;
    let mut config = test_config(&dir, &db);
    adjust(&mut config);
    start(config, std::sync::Arc::new(dir), std::sync::Arc::new(db)).await
}

/// Starts an app on an existing directory and database (a restart).
pub async fn start(
    config: Config,
    dir: std::sync::Arc<tempfile::TempDir>,
    db: std::sync::Arc<TestDatabase>,
) -> TestApp {
    let app = Application::build(config.clone())
        .await
        .expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let handle = app.handle();
    let first_admin_password = app.first_admin_password().map(str::to_string);
    let running = actix_web::rt::spawn(app.run_until_stopped(false));
    TestApp {
        address,
        state,
        first_admin_password,
        config,
        handle,
        running,
        dir,
        db,
    }
}

impl TestApp {
    /// Stops the server gracefully and returns what a restart needs.
    pub async fn stop(
        self,
    ) -> (
        Config,
        std::sync::Arc<tempfile::TempDir>,
        std::sync::Arc<TestDatabase>,
    ) {
        self.handle.stop(true).await;
        // Shutdown drains the log writer after the server stops.
        let _ = self.running.await;
        (self.config, self.dir, self.db)
    }

    /// The database, shared with another instance started on it.
    pub fn database(&self) -> std::sync::Arc<TestDatabase> {
        self.db.clone()
    }

    /// A URL on this app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `POST /admin/login` with a forwarded client address.
    pub async fn login_from(&self, username: &str, password: &str, ip: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/admin/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// `POST /admin/login`.
    pub async fn login_raw(&self, username: &str, password: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/admin/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// Signs in as the test admin and returns the session token.
    pub async fn admin_token(&self) -> String {
        let res = self.login_raw(ADMIN, ADMIN_PASSWORD).await;
        assert_eq!(res.status(), 200, "admin sign-in");
        let body: Value = res.json().await.expect("login JSON");
        body["token"].as_str().expect("token").to_string()
    }

    /// A GET with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET request")
    }

    /// A POST with a bearer token and a JSON body.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST request")
    }
}

/// Reads an admin error body and returns its code, checking the shape on the way.
pub async fn admin_error_code(res: reqwest::Response) -> String {
    let body: Value = res.json().await.expect("error body is JSON");
    let code = body["error"]["code"].as_str().expect("error.code");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message present: {body}"
    );
    code.to_string()
}

/// Accounts and keys created directly in the database, for the proxy tests.
pub mod pool {
    use super::TestApp;
    use chrono::Utc;
    use gpt2api::db::{account, api_key};
    use mock_upstream::{MockAccount, MockUpstream};
    use sea_orm::{ActiveModelTrait, EntityTrait, Set};
    use serde_json::Value;

    /// Starts an app whose upstream is `mock`.
    pub async fn spawn_with_mock(
        mock: &MockUpstream,
        adjust: impl FnOnce(&mut gpt2api::config::Config),
    ) -> TestApp {
        let base = mock.base_url();
        let oauth = mock.oauth_url();
        super::spawn_app_with(move |c| {
            c.codex.base_url = base;
            c.codex.oauth_token_url = oauth;
            c.log.flush_interval_ms = 50;
            adjust(c);
        })
        .await
    }

    /// Stores an account of the mock in the database and tells the pool.
    pub async fn add_account(app: &TestApp, account: &MockAccount) -> account::Model {
        let now = Utc::now();
        let row = account::ActiveModel {
            email: Set(account.email.clone()),
            chatgpt_account_id: Set(account.account_id.clone()),
            plan_type: Set(Some(account.plan_type.clone())),
            access_token: Set(account.access_token.clone()),
            refresh_token: Set(account.refresh_token.clone()),
            id_token: Set(Some(account.id_token.clone())),
            expires_at: Set(Some(now + chrono::Duration::days(10))),
            last_refresh_at: Set(Some(now)),
            is_active: Set(true),
            status: Set(gpt2api::db::account::AccountStatus::Active),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&app.state.db)
        .await
        .expect("insert account");
        app.state
            .pool
            .upsert(row.clone())
            .await
            .expect("pool upsert");
        row
    }

    /// Stores an API key and returns its secret value.
    pub async fn create_key(
        app: &TestApp,
        name: &str,
        adjust: impl FnOnce(&mut api_key::ActiveModel),
    ) -> (i32, String) {
        let secret = format!("sk-{}", uuid::Uuid::new_v4().simple());
        let now = Utc::now();
        let mut row = api_key::ActiveModel {
            name: Set(name.into()),
            key_hash: Set(gpt2api::actors::key_cache::hash_key(&secret)),
            masked_key: Set("sk-test...".into()),
            is_active: Set(true),
            tokens_used: Set(0),
            usage_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        adjust(&mut row);
        let row = row.insert(&app.state.db).await.expect("insert key");
        (row.id, secret)
    }

    /// The stored account row, its tokens decrypted.
    pub async fn account_row(app: &TestApp, id: i32) -> account::Model {
        let row = account::Entity::find_by_id(id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        gpt2api::secrets::open_account(&app.state.cipher, row).unwrap()
    }

    /// The stored account row once `done` holds for it (the pool and the refresh scheduler
    /// store health in the background); panics after five seconds.
    pub async fn wait_for_row(
        app: &TestApp,
        id: i32,
        what: &str,
        done: impl Fn(&account::Model) -> bool,
    ) -> account::Model {
        for _ in 0..250 {
            let row = account_row(app, id).await;
            if done(&row) {
                return row;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("account {id}: {what} never happened");
    }

    /// `POST /v1/chat/completions` with a key.
    pub async fn chat(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("chat request")
    }

    /// A one-message chat body.
    pub fn ask(text: &str, stream: bool) -> Value {
        serde_json::json!({
            "model": "gpt-5",
            "stream": stream,
            "temperature": 0.2,
            "max_tokens": 100,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": text}
            ]
        })
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(text: &str) -> Vec<String> {
        text.split("\n\n")
            .filter_map(|frame| {
                let data: Vec<&str> = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                (!data.is_empty()).then(|| data.join("\n"))
            })
            .collect()
    }

    /// All usage-log rows, after the writer flushed.
    pub async fn log_rows(app: &TestApp) -> Vec<gpt2api::db::api_log::Model> {
        app.state.usage.flush().await.expect("flush");
        gpt2api::db::api_log::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
    }
}
