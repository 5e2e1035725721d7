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
    pub dir: std::sync::Arc<tempfile::TempDir>,
    _db: std::sync::Arc<TestDatabase>,
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
    actix_web::rt::spawn(app.run_until_stopped(false));
    TestApp {
        address,
        state,
        first_admin_password,
        config,
        handle,
        dir,
        _db: db,
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
        (self.config, self.dir, self._db)
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
