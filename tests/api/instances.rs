//! Several instances on one PostgreSQL database: changes made on one are seen by the others
//! within a second (LISTEN/NOTIFY), a reconnecting listener resynchronises in full, and a
//! cached key is read again once older than its bounded age. The PostgreSQL tests are skipped
//! (with a message) when `TEST_DATABASE_URL` is not set.

use std::time::{Duration, Instant};

use mock_upstream::MockUpstream;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use serde_json::{json, Value};

use crate::helpers::pool::{add_account, ask, chat, create_key, spawn_with_mock};
use crate::helpers::TestApp;

fn on_postgres(test: &str) -> bool {
    let set = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty());
    if !set {
        eprintln!("{test}: skipped, it needs PostgreSQL (TEST_DATABASE_URL)");
    }
    set
}

/// Waits until `check` holds, for at most `limit`; whether it did.
async fn within<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn listening(app: &TestApp) -> bool {
    let res = reqwest::get(app.url("/readyz")).await.unwrap();
    let body: Value = res.json().await.unwrap();
    body["listener"] == "listening"
}

async fn second_of(first: &TestApp) -> TestApp {
    let second =
        crate::helpers::start(first.config.clone(), first.dir.clone(), first.database()).await;
    for app in [first, &second] {
        assert!(
            within(Duration::from_secs(10), || listening(app)).await,
            "the change listener listens"
        );
    }
    second
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: &Value) -> u16 {
    let token = app.admin_token().await;
    reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Both instances learn of the key and account (cached), so that only a notice can change
/// what they do.
async fn pair(mock: &MockUpstream) -> (TestApp, TestApp, i32, String) {
    // Accounts are never re-read by the timer during a test: only notices move them.
    let first = spawn_with_mock(mock, |c| c.pool.reload_interval_seconds = 3600).await;
    let second = second_of(&first).await;
    let account = mock.create_account("acct-a");
    let row = add_account(&first, &account).await;
    second.state.pool.upsert(row).await.unwrap();
    let (id, key) = create_key(&first, "client", |_| {}).await;
    for app in [&first, &second] {
        assert_eq!(chat(app, &key, &ask("hi", false)).await.status(), 200);
    }
    (first, second, id, key)
}

#[actix_web::test]
async fn a_key_disabled_on_one_instance_is_refused_on_the_other_within_a_second() {
    if !on_postgres("a_key_disabled_on_one_instance") {
        return;
    }
    let mock = MockUpstream::start();
    let (first, second, id, key) = pair(&mock).await;
    let status = send(
        &first,
        reqwest::Method::PATCH,
        &format!("/admin/api-keys/{id}"),
        &json!({"is_active": false}),
    )
    .await;
    assert_eq!(status, 200);
    let refused = within(Duration::from_secs(1), || async {
        chat(&second, &key, &ask("hi", false)).await.status() == 401
    })
    .await;
    assert!(refused, "refused on the other instance within a second");
    let metrics = reqwest::get(second.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gpt2api_change_notifications{result=\"applied\"} 1"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn a_key_deleted_on_one_instance_is_refused_on_the_other() {
    if !on_postgres("a_key_deleted_on_one_instance") {
        return;
    }
    let mock = MockUpstream::start();
    let (first, second, id, key) = pair(&mock).await;
    let status = send(
        &second,
        reqwest::Method::DELETE,
        &format!("/admin/api-keys/{id}"),
        &json!({}),
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");
    let refused = within(Duration::from_secs(1), || async {
        chat(&first, &key, &ask("hi", false)).await.status() == 401
    })
    .await;
    assert!(refused, "refused on the other instance within a second");
}

#[actix_web::test]
async fn an_account_disabled_on_one_instance_leaves_the_others_rotation_within_a_second() {
    if !on_postgres("an_account_disabled_on_one_instance") {
        return;
    }
    let mock = MockUpstream::start();
    let (first, second, _, _) = pair(&mock).await;
    let id = second.state.pool.snapshot().await.unwrap()[0].account_id;
    let status = send(
        &first,
        reqwest::Method::PATCH,
        &format!("/admin/tokens/{id}"),
        &json!({"is_active": false}),
    )
    .await;
    assert_eq!(status, 200);
    let gone = within(Duration::from_secs(1), || async {
        let accounts = second.state.pool.snapshot().await.unwrap();
        !accounts.iter().any(|a| a.account_id == id && a.available)
    })
    .await;
    assert!(gone, "out of the other instance's rotation within a second");
}

#[actix_web::test]
async fn settings_changed_on_one_instance_apply_on_the_other() {
    if !on_postgres("settings_changed_on_one_instance") {
        return;
    }
    let mock = MockUpstream::start();
    let (first, second, _, _) = pair(&mock).await;
    let status = send(
        &first,
        reqwest::Method::PATCH,
        "/admin/settings",
        &json!({"max_retries": 7}),
    )
    .await;
    assert_eq!(status, 200);
    let seen = within(Duration::from_secs(1), || async {
        second.state.settings.get().max_retries == 7
    })
    .await;
    assert!(seen, "the other instance has the new settings");
}

#[actix_web::test]
async fn a_listener_that_reconnects_resynchronises_in_full() {
    if !on_postgres("a_listener_that_reconnects") {
        return;
    }
    let mock = MockUpstream::start();
    let (first, second, id, key) = pair(&mock).await;
    // A change no notice announces (as if sent while the listener was away).
    let row = gpt2api::db::api_key::Entity::find_by_id(id)
        .one(&first.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut off: gpt2api::db::api_key::ActiveModel = row.into();
    off.is_active = Set(false);
    off.update(&first.state.db).await.unwrap();
    assert_eq!(
        chat(&second, &key, &ask("hi", false)).await.status(),
        200,
        "still cached: nothing announced the change"
    );
    let resyncs = second.state.changes.resyncs();
    first
        .state
        .db
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{}' AND datname = current_database()",
            gpt2api::changes::LISTENER_APPLICATION_NAME
        ))
        .await
        .unwrap();
    assert!(
        within(Duration::from_secs(10), || async {
            second.state.changes.resyncs() > resyncs && listening(&second).await
        })
        .await,
        "the listener reconnected"
    );
    assert_eq!(chat(&second, &key, &ask("hi", false)).await.status(), 401);
}

#[actix_web::test]
async fn a_cached_key_is_read_again_after_its_bounded_age() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| c.server.key_cache_max_age_seconds = 1).await;
    add_account(&app, &mock.create_account("acct-a")).await;
    let (id, key) = create_key(&app, "client", |_| {}).await;
    assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    let row = gpt2api::db::api_key::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut off: gpt2api::db::api_key::ActiveModel = row.into();
    off.is_active = Set(false);
    off.update(&app.state.db).await.unwrap();
    let refused = within(Duration::from_secs(10), || async {
        chat(&app, &key, &ask("hi", false)).await.status() == 401
    })
    .await;
    assert!(refused, "the stale entry was read again");
    let res = reqwest::get(app.url("/readyz")).await.unwrap();
    let body: Value = res.json().await.unwrap();
    let expected = if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        "listening"
    } else {
        "disabled"
    };
    assert_eq!(body["listener"], expected);
}
