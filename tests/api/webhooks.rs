//! Webhook notifications: the admin endpoints and their validation, signed deliveries to a
//! receiver started by the test, retries with back-off, giving up, deduplication (also across
//! two instances on one database), event filtering, deliveries that survive a restart, and each
//! producer firing its event against the mock upstream.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use mock_upstream::MockUpstream;
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::pool::{add_account, ask, chat, create_key, spawn_with_mock};
use crate::helpers::{admin_error_code, TestApp};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    raw: String,
    body: Value,
    signature: String,
    timestamp: String,
    at: Instant,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// Statuses to answer, in order; 200 once empty.
    script: VecDeque<u16>,
}

/// A webhook receiver on a free local port.
#[derive(Clone, Default)]
struct Receiver {
    state: Arc<Mutex<ReceiverState>>,
    url: String,
}

async fn receive(req: HttpRequest, body: web::Bytes, rx: web::Data<Receiver>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let raw = String::from_utf8_lossy(&body).to_string();
    let mut state = rx.state.lock().unwrap();
    state.received.push(Received {
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
        signature: header("x-gpt2api-signature"),
        timestamp: header("x-gpt2api-timestamp"),
        at: Instant::now(),
    });
    let status = state.script.pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rx = Receiver {
            state: Arc::default(),
            url: format!("http://127.0.0.1:{port}/hook"),
        };
        rx.state.lock().unwrap().script = script.iter().copied().collect();
        let data = web::Data::new(rx.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        rx
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived (at most `limit`), and returns them all.
    async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < limit,
                "the receiver got {} of {n} deliveries: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The events of one name received so far.
    fn events(&self, name: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.body["event"] == name)
            .collect()
    }

    async fn wait_for_event(&self, name: &str, limit: Duration) -> Received {
        let start = Instant::now();
        loop {
            if let Some(r) = self.events(name).into_iter().next() {
                return r;
            }
            assert!(
                start.elapsed() < limit,
                "no {name} arrived; got {:?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Checks a delivery's signature header against `secret`, as the README tells receivers to.
fn verify(received: &Received, secret: &str) {
    let (t, v1) = received
        .signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature header shape: {:?}", received.signature));
    assert_eq!(
        t, received.timestamp,
        "the timestamp header is the signed one"
    );
    let at: i64 = t.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - at).abs() < 300, "fresh");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", received.raw).as_bytes());
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies with the webhook's secret");
}

/// Fast retries and polling for the tests.
fn quick(c: &mut gpt2api::config::Config) {
    c.webhooks.poll_interval_ms = 100;
    c.webhooks.retry_initial_seconds = 1;
    c.webhooks.timeout_seconds = 5;
}

async fn create_hook(app: &TestApp, token: &str, body: &Value) -> Value {
    let res = app.post("/admin/webhooks", token, body).await;
    assert_eq!(res.status(), 201, "webhook created");
    res.json().await.unwrap()
}

async fn deliveries(app: &TestApp, token: &str, id: &Value) -> Vec<Value> {
    let body: Value = app
        .get(&format!("/admin/webhooks/{id}/deliveries"), token)
        .await
        .json()
        .await
        .unwrap();
    body["data"].as_array().unwrap().clone()
}

async fn wait_for_delivery(
    app: &TestApp,
    token: &str,
    id: &Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        if let Some(d) = deliveries(app, token, id).await.into_iter().find(&done) {
            return d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "delivery never reached the state: {:?}",
            deliveries(app, token, id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .patch(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn webhooks_are_validated_and_their_secret_is_shown_once() {
    let app = crate::helpers::spawn_app().await;
    let token = app.admin_token().await;
    let good =
        json!({"name": "ops", "url": "https://example.com/hook", "events": ["pool.exhausted"]});
    let long = format!("https://example.com/{}", "a".repeat(2100));
    for (body, field) in [
        (
            json!({"url": "https://example.com/h", "events": ["pool.exhausted"]}),
            "name",
        ),
        (
            json!({"name": "x", "url": "ftp://example.com/h", "events": ["pool.exhausted"]}),
            "url",
        ),
        (
            json!({"name": "x", "url": "not a url", "events": ["pool.exhausted"]}),
            "url",
        ),
        (
            json!({"name": "x", "url": long, "events": ["pool.exhausted"]}),
            "url",
        ),
        (
            json!({"name": "x", "url": "https://example.com/h", "events": []}),
            "events",
        ),
        (
            json!({"name": "x", "url": "https://example.com/h", "events": ["pool.flooded"]}),
            "events",
        ),
        (
            json!({"name": "x", "url": "https://example.com/h", "events": ["pool.exhausted"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "x", "url": "https://example.com/h", "events": ["pool.exhausted"], "colour": "red"}),
            "colour",
        ),
    ] {
        let res = app.post("/admin/webhooks", &token, &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_request");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message} names {field}");
        assert!(
            !message.contains("ftp://") && !message.contains("aaaa"),
            "no value echoed: {message}"
        );
    }
    let list: Value = app
        .get("/admin/webhooks", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0, "nothing was created by bad input");

    // A generated secret, shown once.
    let created = create_hook(&app, &token, &good).await;
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 32,
        "{secret}"
    );
    assert_eq!(created["events"], json!(["pool.exhausted"]));
    assert_eq!(created["is_enabled"], true);
    // A given secret, and credentials in the URL, never shown again.
    let with_creds = create_hook(
        &app,
        &token,
        &json!({"name": "basic", "url": "https://user:hunter2pass@example.com/h", "events": ["key.limit_reached", "pool.exhausted", "key.limit_reached"], "secret": "my-own-secret-0123456789"}),
    )
    .await;
    assert_eq!(with_creds["secret"], "my-own-secret-0123456789");
    assert_eq!(
        with_creds["events"],
        json!(["pool.exhausted", "key.limit_reached"])
    );

    let raw = app
        .get("/admin/webhooks", &token)
        .await
        .text()
        .await
        .unwrap();
    assert!(!raw.contains(&secret), "the generated secret is not listed");
    assert!(
        !raw.contains("my-own-secret"),
        "the given secret is not listed"
    );
    assert!(
        !raw.contains("hunter2pass"),
        "URL credentials are masked: {raw}"
    );
    let list: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(list["total"], 2);
    assert!(list["data"][0].get("secret").is_none());
    assert_eq!(list["data"][1]["url"], "https://***@example.com/h");

    // Stored sealed, not in clear.
    let rows = gpt2api::db::webhook::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(rows
        .iter()
        .all(|r| !r.secret.contains("whsec_") && !r.secret.contains("my-own")));

    // Edit, disable, bad edits, unknown ids, delete.
    let id = &created["id"];
    let res = patch(
        &app,
        &format!("/admin/webhooks/{id}"),
        &token,
        &json!({"is_enabled": false, "name": "ops 2"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let edited: Value = res.json().await.unwrap();
    assert_eq!(edited["is_enabled"], false);
    assert_eq!(edited["name"], "ops 2");
    assert!(edited.get("secret").is_none());
    let res = patch(
        &app,
        &format!("/admin/webhooks/{id}"),
        &token,
        &json!({"url": "javascript:alert(1)"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = patch(&app, "/admin/webhooks/9999", &token, &json!({"name": "x"})).await;
    assert_eq!(admin_error_code(res).await, "not_found");
    let res = app
        .post("/admin/webhooks/9999/test", &token, &json!({}))
        .await;
    assert_eq!(res.status(), 404);
    let res = app.get("/admin/webhooks/9999/deliveries", &token).await;
    assert_eq!(res.status(), 404);
    let res = app
        .get(
            &format!("/admin/webhooks/{id}/deliveries?status=lost"),
            &token,
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = reqwest::Client::new()
        .delete(app.url(&format!("/admin/webhooks/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let list: Value = app
        .get("/admin/webhooks", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    // Admin only.
    let res = reqwest::get(app.url("/admin/webhooks")).await.unwrap();
    assert_eq!(res.status(), 401);
}

#[actix_web::test]
async fn the_test_button_sends_a_signed_event_and_lists_its_delivery() {
    let rx = Receiver::start(&[]);
    let app = crate::helpers::spawn_app_with(quick).await;
    let token = app.admin_token().await;
    let hook = create_hook(
        &app,
        &token,
        &json!({"name": "t", "url": rx.url, "events": ["pool.recovered"]}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap();
    let res = app
        .post(
            &format!("/admin/webhooks/{}/test", hook["id"]),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let queued: Value = res.json().await.unwrap();
    assert_eq!(queued["event"], "webhook.test");

    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    verify(&got[0], secret);
    let body = &got[0].body;
    assert_eq!(body["event"], "webhook.test");
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert!(chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).is_ok());
    assert_eq!(body["data"]["webhook_id"], hook["id"]);
    assert_eq!(body["id"], queued["event_id"]);

    let d = wait_for_delivery(&app, &token, &hook["id"], |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 200);
    assert!(d["delivered_at"].is_string());
    // A wrong secret does not verify.
    let wrong = std::panic::catch_unwind(|| verify(&got[0], "another-secret-0123456789"));
    assert!(wrong.is_err(), "a different secret must not verify");
}

#[actix_web::test]
async fn a_failed_delivery_is_retried_with_back_off_until_it_succeeds() {
    let rx = Receiver::start(&[500, 503]);
    let app = crate::helpers::spawn_app_with(quick).await;
    let token = app.admin_token().await;
    let hook = create_hook(
        &app,
        &token,
        &json!({"name": "r", "url": rx.url, "events": ["pool.recovered"]}),
    )
    .await;
    app.post(
        &format!("/admin/webhooks/{}/test", hook["id"]),
        &token,
        &json!({}),
    )
    .await;
    let got = rx.wait_for(3, Duration::from_secs(15)).await;
    // One second, then two: the back-off doubles.
    let first = got[1].at - got[0].at;
    let second = got[2].at - got[1].at;
    assert!(first >= Duration::from_millis(900), "{first:?}");
    assert!(second >= Duration::from_millis(1900), "{second:?}");
    assert!(
        got.iter().all(|r| r.body["id"] == got[0].body["id"]),
        "the same event each time"
    );
    let d = wait_for_delivery(&app, &token, &hook["id"], |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status_code"], 200);
    assert!(d["last_error"].is_null());
}

#[actix_web::test]
async fn a_delivery_is_given_up_after_the_bounded_time() {
    let rx = Receiver::start(&[500; 20]);
    let app = crate::helpers::spawn_app_with(|c| {
        quick(c);
        c.webhooks.retry_for_seconds = 2;
    })
    .await;
    let token = app.admin_token().await;
    let hook = create_hook(
        &app,
        &token,
        &json!({"name": "g", "url": rx.url, "events": ["pool.recovered"]}),
    )
    .await;
    app.post(
        &format!("/admin/webhooks/{}/test", hook["id"]),
        &token,
        &json!({}),
    )
    .await;
    let d = wait_for_delivery(&app, &token, &hook["id"], |d| d["status"] == "failed").await;
    // Sent at once and after a second; the next wait (two seconds) ends past the bound.
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["last_status_code"], 500);
    assert!(d["last_error"].as_str().unwrap().contains("500"));
    assert!(d["next_attempt_at"].is_null());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.received().len(), 2, "nothing after giving up");
}

#[actix_web::test]
async fn an_unreachable_receiver_is_reported_without_its_url() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = crate::helpers::spawn_app_with(|c| {
        quick(c);
        c.webhooks.retry_for_seconds = 1;
    })
    .await;
    let token = app.admin_token().await;
    let url = format!("http://user:s3cretpw@127.0.0.1:{port}/h");
    let hook = create_hook(
        &app,
        &token,
        &json!({"name": "u", "url": url, "events": ["pool.recovered"]}),
    )
    .await;
    app.post(
        &format!("/admin/webhooks/{}/test", hook["id"]),
        &token,
        &json!({}),
    )
    .await;
    let d = wait_for_delivery(&app, &token, &hook["id"], |d| d["status"] == "failed").await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.contains("connect"), "{error}");
    assert!(
        !error.contains("s3cretpw") && !error.contains("127.0.0.1"),
        "{error}"
    );
    assert!(d["last_status_code"].is_null());
}

#[actix_web::test]
async fn pending_deliveries_survive_a_restart() {
    let rx = Receiver::start(&[500]);
    let app = crate::helpers::spawn_app_with(|c| {
        quick(c);
        c.webhooks.retry_initial_seconds = 3;
    })
    .await;
    let token = app.admin_token().await;
    let hook = create_hook(
        &app,
        &token,
        &json!({"name": "p", "url": rx.url, "events": ["pool.recovered"]}),
    )
    .await;
    app.post(
        &format!("/admin/webhooks/{}/test", hook["id"]),
        &token,
        &json!({}),
    )
    .await;
    rx.wait_for(1, Duration::from_secs(10)).await;
    let (config, dir, db) = app.stop().await;
    let app = crate::helpers::start(config, dir, db).await;
    let got = rx.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[0].body["id"], got[1].body["id"]);
    let token = app.admin_token().await;
    let d = wait_for_delivery(&app, &token, &hook["id"], |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 2);
}

#[actix_web::test]
async fn an_event_is_sent_once_per_window_even_across_instances() {
    use gpt2api::actors::webhooks::{EventKind, Subject};
    let rx = Receiver::start(&[]);
    let app = crate::helpers::spawn_app_with(quick).await;
    let token = app.admin_token().await;
    create_hook(
        &app,
        &token,
        &json!({"name": "d", "url": rx.url, "events": ["pool.exhausted", "account.limit_near"]}),
    )
    .await;
    let second = crate::helpers::start(app.config.clone(), app.dir.clone(), app.database()).await;
    for instance in [&app, &second, &app] {
        instance.state.webhooks.emit(
            EventKind::PoolExhausted,
            Subject::Pool,
            json!({"accounts": 1}),
        );
    }
    // Another subject is another event.
    app.state.webhooks.emit(
        EventKind::LimitNear,
        Subject::Account(1),
        json!({"account_id": 1}),
    );
    second.state.webhooks.emit(
        EventKind::LimitNear,
        Subject::Account(2),
        json!({"account_id": 2}),
    );
    rx.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.events("pool.exhausted").len(), 1, "{:?}", rx.received());
    assert_eq!(rx.events("account.limit_near").len(), 2);
}

#[actix_web::test]
async fn a_key_reaching_its_limit_notifies_only_subscribed_webhooks() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, quick).await;
    let token = app.admin_token().await;
    let keys_rx = Receiver::start(&[]);
    let pool_rx = Receiver::start(&[]);
    let off_rx = Receiver::start(&[]);
    create_hook(
        &app,
        &token,
        &json!({"name": "keys", "url": keys_rx.url, "events": ["key.limit_reached"]}),
    )
    .await;
    create_hook(&app, &token, &json!({"name": "pool", "url": pool_rx.url, "events": ["pool.exhausted", "account.needs_relogin"]})).await;
    let off = create_hook(
        &app,
        &token,
        &json!({"name": "off", "url": off_rx.url, "events": ["key.limit_reached"]}),
    )
    .await;
    patch(
        &app,
        &format!("/admin/webhooks/{}", off["id"]),
        &token,
        &json!({"is_enabled": false}),
    )
    .await;

    mock.create_account("acct-k1");
    add_account(&app, &mock.account("acct-k1").unwrap()).await;
    let (key_id, key) = create_key(&app, "limited", |k| {
        k.rpm_limit = sea_orm::Set(Some(1));
    })
    .await;
    assert_eq!(chat(&app, &key, &ask("one", false)).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(chat(&app, &key, &ask("more", false)).await.status(), 429);
    }
    let got = keys_rx
        .wait_for_event("key.limit_reached", Duration::from_secs(10))
        .await;
    assert_eq!(got.body["data"]["key_id"], key_id);
    assert_eq!(got.body["data"]["limit"], "rpm_limit");
    assert_eq!(got.body["data"]["name"], "limited");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        keys_rx.received().len(),
        1,
        "three refusals, one event in the window"
    );
    assert!(
        pool_rx.received().is_empty(),
        "not subscribed to key events"
    );
    assert!(
        off_rx.received().is_empty(),
        "a disabled webhook gets nothing"
    );
}

#[actix_web::test]
async fn the_refresher_reports_accounts_that_need_a_new_sign_in_or_keep_failing() {
    use mock_upstream::RefreshBehaviour;
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| {
        quick(c);
        c.webhooks.refresh_failures = 2;
    })
    .await;
    let token = app.admin_token().await;
    let rx = Receiver::start(&[]);
    create_hook(&app, &token, &json!({"name": "acc", "url": rx.url, "events": ["account.needs_relogin", "account.refresh_failed"]})).await;
    mock.create_account("acct-dead");
    mock.create_account("acct-flaky");
    let dead = add_account(&app, &mock.account("acct-dead").unwrap()).await;
    let flaky = add_account(&app, &mock.account("acct-flaky").unwrap()).await;
    mock.set_refresh_behaviour("acct-dead", RefreshBehaviour::Reused);
    mock.set_refresh_behaviour("acct-flaky", RefreshBehaviour::ServerError(500));

    let refresh = |id: i32| {
        let url = app.url(&format!("/admin/tokens/{id}/refresh"));
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(refresh(dead.id).await, 502);
    let got = rx
        .wait_for_event("account.needs_relogin", Duration::from_secs(10))
        .await;
    assert_eq!(got.body["data"]["account_id"], dead.id);
    assert!(got.body["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("sign in again"));

    // One failed refresh is not yet worth telling; the second in a row is.
    assert_eq!(refresh(flaky.id).await, 502);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.events("account.refresh_failed").is_empty());
    assert_eq!(refresh(flaky.id).await, 502);
    let got = rx
        .wait_for_event("account.refresh_failed", Duration::from_secs(10))
        .await;
    assert_eq!(got.body["data"]["account_id"], flaky.id);
    assert_eq!(got.body["data"]["consecutive_failures"], 2);
}

#[actix_web::test]
async fn the_pool_reports_usage_near_the_limit_exhaustion_and_recovery() {
    let mock = MockUpstream::start();
    mock.set_economy(Some(mock_upstream::Economy {
        primary_budget: 10_000.0,
        ..mock_upstream::Economy::default()
    }));
    let app = spawn_with_mock(&mock, |c| {
        quick(c);
        c.pool.usage_probe_interval_seconds = 1;
        c.webhooks.limit_near_percent = 80.0;
        c.webhooks.dedup_window_seconds = 1;
    })
    .await;
    let token = app.admin_token().await;
    let rx = Receiver::start(&[]);
    create_hook(&app, &token, &json!({"name": "pool", "url": rx.url, "events": ["account.limit_near", "pool.exhausted", "pool.recovered"]})).await;
    mock.create_account("acct-u1");
    mock.set_usage("acct-u1", 85.0, 10.0);
    let account = add_account(&app, &mock.account("acct-u1").unwrap()).await;

    let near = rx
        .wait_for_event("account.limit_near", Duration::from_secs(10))
        .await;
    assert_eq!(near.body["data"]["account_id"], account.id);
    assert_eq!(near.body["data"]["window"], "primary");
    assert_eq!(near.body["data"]["used_percent"], 85.0);
    assert!(
        rx.events("pool.exhausted").is_empty(),
        "the account still serves"
    );

    mock.set_usage("acct-u1", 100.0, 10.0);
    let exhausted = rx
        .wait_for_event("pool.exhausted", Duration::from_secs(10))
        .await;
    assert_eq!(exhausted.body["data"]["accounts"], 1);
    assert!(rx.events("pool.recovered").is_empty());

    mock.reset_usage("acct-u1");
    rx.wait_for_event("pool.recovered", Duration::from_secs(10))
        .await;
    assert_eq!(rx.events("pool.exhausted").len(), 1);
}
