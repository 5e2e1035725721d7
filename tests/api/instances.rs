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
    let id = second.state.pool.snapshot().await.unwrap().accounts[0].account_id;
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
        !accounts
            .accounts
            .iter()
            .any(|a| a.account_id == id && a.available)
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

/// Three instances on one database, each knowing the mock's account.
async fn three(mock: &MockUpstream, adjust: impl Fn(&mut gpt2api::config::Config)) -> Vec<TestApp> {
    let first = spawn_with_mock(mock, |c| {
        c.pool.reload_interval_seconds = 3600;
        adjust(c);
    })
    .await;
    let row = add_account(&first, &mock.create_account("acct-a")).await;
    let mut apps = vec![];
    for _ in 0..2 {
        let app =
            crate::helpers::start(first.config.clone(), first.dir.clone(), first.database()).await;
        app.state.pool.upsert(row.clone()).await.unwrap();
        apps.push(app);
    }
    apps.insert(0, first);
    apps
}

/// 60 concurrent requests spread over the instances; how many went through.
async fn burst(apps: &[TestApp], key: &str) -> usize {
    let requests = (0..60).map(|i| {
        let app = &apps[i % apps.len()];
        let key = key.to_string();
        async move { chat(app, &key, &ask("hi", false)).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    statuses.iter().filter(|s| **s == 200).count()
}

/// A burst may straddle a minute boundary: the sliding window then lets through at most one
/// more (README, PostgreSQL).
fn within_tolerance(admitted: usize) -> bool {
    (10..=11).contains(&admitted)
}

#[actix_web::test]
async fn a_limit_of_10_per_minute_across_3_instances_lets_10_of_60_through() {
    if !on_postgres("a_limit_of_10_per_minute_across_3_instances") {
        return;
    }
    let mock = MockUpstream::start();
    let apps = three(&mock, |_| {}).await;
    assert_eq!(apps[0].state.keys.counters(), "postgres");
    let (_, key) = create_key(&apps[0], "limited", |k| k.rpm_limit = Set(Some(10))).await;
    let admitted = burst(&apps, &key).await;
    assert!(within_tolerance(admitted), "{admitted} of 60 admitted");
    assert_eq!(mock.total_requests(), admitted);

    // The daily limit is shared the same way.
    let (_, daily) = create_key(&apps[0], "daily", |k| {
        k.daily_request_limit = Set(Some(4));
    })
    .await;
    let mut admitted = 0;
    for i in 0..9 {
        if chat(&apps[i % 3], &daily, &ask("hi", false)).await.status() == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4);
}

/// Whether a Redis server answers on this machine; CI must have one.
async fn redis_answers(test: &str) -> bool {
    let up = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .is_ok();
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI runs a Redis server on 127.0.0.1:6379"
        );
        eprintln!("{test}: skipped, no Redis server answers on 127.0.0.1:6379");
    }
    up
}

#[actix_web::test]
async fn with_redis_a_limit_of_10_per_minute_across_3_instances_lets_10_of_60_through() {
    if !redis_answers("with_redis_a_limit_of_10_per_minute").await {
        return;
    }
    let mock = MockUpstream::start();
    let prefix = format!("gpt2api-test-{}", uuid::Uuid::new_v4().simple());
    let apps = three(&mock, |c| {
        c.limits.redis_url = Some("redis://127.0.0.1:6379".to_string().into());
        c.limits.redis_prefix = prefix.clone();
    })
    .await;
    assert_eq!(apps[0].state.keys.counters(), "redis");
    let (_, key) = create_key(&apps[0], "limited", |k| k.rpm_limit = Set(Some(10))).await;
    let admitted = burst(&apps, &key).await;
    assert!(within_tolerance(admitted), "{admitted} of 60 admitted");
    assert_eq!(mock.total_requests(), admitted);
}

async fn refused_with_503(app: &TestApp, key: &str) {
    let res = chat(app, key, &ask("hi", false)).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit counters"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_counter_that_cannot_be_read_refuses_the_request_with_503() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &mock.create_account("acct-a")).await;
    let (_, key) = create_key(&app, "limited", |k| {
        k.rpm_limit = Set(Some(100));
        k.daily_request_limit = Set(Some(100));
    })
    .await;
    let (_, free) = create_key(&app, "free", |_| {}).await;
    // The counters' storage breaks: the shared table on PostgreSQL; on SQLite the usage log
    // the daily count starts from.
    let broken = if app.state.keys.counters() == "postgres" {
        "DROP TABLE key_counters"
    } else {
        "ALTER TABLE api_logs RENAME TO api_logs_gone"
    };
    app.state.db.execute_unprepared(broken).await.unwrap();
    refused_with_503(&app, &key).await;
    assert_eq!(mock.total_requests(), 0);
    // A key without limits needs no counter.
    assert_eq!(chat(&app, &free, &ask("hi", false)).await.status(), 200);

    // A Redis that does not answer refuses too.
    let dead = spawn_with_mock(&mock, |c| {
        c.limits.redis_url = Some("redis://127.0.0.1:1".to_string().into());
    })
    .await;
    add_account(&dead, &mock.create_account("acct-b")).await;
    let (_, key) = create_key(&dead, "limited", |k| k.rpm_limit = Set(Some(10))).await;
    refused_with_503(&dead, &key).await;
}

#[actix_web::test]
async fn a_cached_key_is_read_from_the_shared_map_without_asking_the_key_cache() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &mock.create_account("acct-a")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    for _ in 0..5 {
        assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    }
    assert_eq!(app.state.keys.lookups(), (4, 1), "one miss, then hits");
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gpt2api_key_cache_lookups{result=\"hit\"} 4"),
        "{metrics}"
    );
    let age: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gpt2api_key_cache_oldest_entry_age_seconds "))
        .expect("the oldest key's age")
        .parse()
        .unwrap();
    assert!(age > 0.0 && age < 60.0, "{age}");
}
