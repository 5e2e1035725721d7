//! The recent requests of API keys (`requests_today`, `requests_last_minute`), the same on
//! every instance of one database, and the console's test call (`POST /admin/playground`) and
//! model list (`GET /admin/models`).

use chrono::{Duration, Utc};
use mock_upstream::MockUpstream;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{json, Value};

use crate::helpers::pool::{add_account, ask, chat, create_key, log_rows, spawn_with_mock};
use crate::helpers::{admin_error_code, TestApp};

/// The key `id` as `GET /admin/api-keys` lists it.
async fn listed(app: &TestApp, token: &str, id: i32) -> Value {
    let page: Value = app
        .get("/admin/api-keys?page_size=200", token)
        .await
        .json()
        .await
        .unwrap();
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("key {id} listed: {page}"))
}

fn counters(key: &Value) -> (i64, i64) {
    (
        key["requests_today"].as_i64().unwrap(),
        key["requests_last_minute"].as_i64().unwrap(),
    )
}

/// A usage-log row of `key_id` served by `account_id` at `at`.
async fn logged_at(app: &TestApp, key_id: i32, account_id: i32, at: chrono::DateTime<Utc>) {
    gpt2api::db::api_log::ActiveModel {
        created_at: Set(at),
        api_key_id: Set(Some(key_id)),
        account_id: Set(Some(account_id)),
        model: Set("gpt-5".into()),
        endpoint: Set("/v1/chat/completions".into()),
        stream: Set(false),
        status_code: Set(200),
        input_tokens: Set(1),
        output_tokens: Set(1),
        cached_tokens: Set(0),
        reasoning_tokens: Set(0),
        latency_ms: Set(5),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
}

#[actix_web::test]
async fn key_counters_follow_requests_on_every_instance_and_restart_each_day() {
    let mock = MockUpstream::start();
    let first = spawn_with_mock(&mock, |_| {}).await;
    let second =
        crate::helpers::start(first.config.clone(), first.dir.clone(), first.database()).await;
    let account = add_account(&first, &mock.create_account("acct-a")).await;
    second.state.pool.upsert(account.clone()).await.unwrap();
    let (limited, limited_key) = create_key(&first, "limited", |k| {
        k.rpm_limit = Set(Some(100));
        k.daily_request_limit = Set(Some(1000));
    })
    .await;
    let (open, open_key) = create_key(&first, "open", |_| {}).await;
    let (tight, tight_key) = create_key(&first, "tight", |k| {
        k.daily_request_limit = Set(Some(1));
    })
    .await;
    let token = first.admin_token().await;

    assert_eq!(counters(&listed(&first, &token, limited).await), (0, 0));
    for app in [&first, &second, &first] {
        assert_eq!(
            chat(app, &limited_key, &ask("hi", false)).await.status(),
            200
        );
    }
    assert_eq!(
        chat(&second, &open_key, &ask("hi", false)).await.status(),
        200
    );
    // The second request of a key allowed one a day is refused: it is not counted.
    assert_eq!(
        chat(&first, &tight_key, &ask("hi", false)).await.status(),
        200
    );
    assert_eq!(
        chat(&first, &tight_key, &ask("hi", false)).await.status(),
        429
    );
    // A request the upstream refuses went through the limits: it counts.
    assert_eq!(
        chat(
            &first,
            &open_key,
            &ask("please fail [mock:unsupported_model]", false)
        )
        .await
        .status(),
        400
    );
    log_rows(&first).await;
    log_rows(&second).await;

    let second_token = second.admin_token().await;
    for (app, token) in [(&first, &token), (&second, &second_token)] {
        assert_eq!(counters(&listed(app, token, limited).await), (3, 3));
        assert_eq!(counters(&listed(app, token, open).await), (2, 2));
        assert_eq!(
            counters(&listed(app, token, tight).await),
            (1, 1),
            "a refused request is not counted"
        );
    }

    // Yesterday's requests do not count today; one of 90 seconds ago counts today only (if
    // today had begun then).
    let now = Utc::now();
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    logged_at(&first, limited, account.id, midnight - Duration::seconds(1)).await;
    let earlier = now - Duration::seconds(90);
    logged_at(&first, limited, account.id, earlier).await;
    let today = 3 + i64::from(earlier >= midnight);
    // Just after midnight, yesterday's last second is still within the last minute.
    let minute = 3 + i64::from(midnight - Duration::seconds(1) > now - Duration::seconds(60));
    assert_eq!(
        counters(&listed(&first, &token, limited).await),
        (today, minute)
    );

    // A single read and a change answer with the same figures.
    let one: Value = first
        .get(&format!("/admin/api-keys/{limited}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(counters(&one), (today, minute));
    assert_eq!(one["name"], "limited");
    let patched: Value = reqwest::Client::new()
        .patch(first.url(&format!("/admin/api-keys/{limited}")))
        .bearer_auth(&token)
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters(&patched), (today, minute));
    let missing = first.get("/admin/api-keys/999999", &token).await;
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn the_test_call_runs_one_request_of_the_key_through_the_pool() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let (key, _) = create_key(&app, "console", |_| {}).await;
    let token = app.admin_token().await;
    let call = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move { app.post("/admin/playground", &token, &body).await }
    };
    let body = json!({"api_key_id": key, "model": "gpt-5", "prompt": "ping from the console"});

    // Signed in only.
    let anonymous = reqwest::Client::new()
        .post(app.url("/admin/playground"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // An empty pool says so, and nothing is logged.
    let empty = call(body.clone()).await;
    assert_eq!(empty.status(), 409);
    let error: Value = empty.json().await.unwrap();
    assert_eq!(error["error"]["code"], "no_accounts");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("import or sign in"));
    assert!(log_rows(&app).await.is_empty());

    // Bad bodies name what is wrong.
    for (bad, what) in [
        (
            json!({"api_key_id": key, "model": "gpt-5", "prompt": "  "}),
            "prompt",
        ),
        (
            json!({"api_key_id": key, "model": "gpt-5", "prompt": "x".repeat(4001)}),
            "prompt",
        ),
        (
            json!({"api_key_id": key, "model": "", "prompt": "hi"}),
            "model",
        ),
        (json!({"model": "gpt-5", "prompt": "hi"}), "api_key_id"),
    ] {
        let res = call(bad).await;
        assert_eq!(res.status(), 400, "{what}");
        let error: Value = res.json().await.unwrap();
        assert!(
            error["error"]["message"].as_str().unwrap().contains(what),
            "{error}"
        );
    }
    let unknown = call(json!({"api_key_id": 999_999, "model": "gpt-5", "prompt": "hi"})).await;
    assert_eq!(unknown.status(), 404);

    // With an account: the answer, logged as the key's request from the console.
    add_account(&app, &mock.create_account("acct-a")).await;
    let res = call(body.clone()).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        answer["answer"],
        "Hello from acct-a! You said: ping from the console"
    );
    assert_eq!(answer["api_key_id"], key);
    assert_eq!(answer["model"], "gpt-5");
    assert!(answer["usage"]["total_tokens"].as_i64().unwrap() > 0);
    let rows = log_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].api_key_id, Some(key));
    assert_eq!(rows[0].endpoint, "/admin/playground");
    assert_eq!(rows[0].status_code, 200);
    assert_eq!(counters(&listed(&app, &token, key).await), (1, 1));

    // The key's own rules apply: a model it may not use is refused (and logged), a disabled
    // key is refused.
    let (narrow, _) = create_key(&app, "codex only", |k| {
        k.allowed_models = Set(Some(r#"["gpt-5-codex"]"#.into()));
    })
    .await;
    let res = call(json!({"api_key_id": narrow, "model": "gpt-5", "prompt": "hi"})).await;
    assert_eq!(res.status(), 403);
    assert_eq!(admin_error_code(res).await, "model_not_allowed");
    let rows = log_rows(&app).await;
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r.api_key_id == Some(narrow) && r.status_code == 403));
    let row = gpt2api::db::api_key::Entity::find_by_id(key)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut row: gpt2api::db::api_key::ActiveModel = row.into();
    row.is_active = Set(false);
    row.update(&app.state.db).await.unwrap();
    let res = call(body).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("disabled"));
}

#[actix_web::test]
async fn the_served_models_are_listed_for_the_console() {
    let app = crate::helpers::spawn_app().await;
    let anonymous = reqwest::get(app.url("/admin/models")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let token = app.admin_token().await;
    let models: Value = app.get("/admin/models", &token).await.json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    let configured: Vec<&str> = app.config.codex.models.iter().map(String::as_str).collect();
    assert!(!ids.is_empty());
    assert_eq!(ids, configured);
}
