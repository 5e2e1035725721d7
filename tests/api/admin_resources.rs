//! Admin API: keys (shown once, limits, cache invalidation) and accounts (import, list,
//! update, delete, refresh, export).

use mock_upstream::MockUpstream;
use serde_json::{json, Value};

use crate::helpers::pool::{ask, chat, spawn_with_mock};
use crate::helpers::TestApp;

const FIXTURES: [&str; 6] = [
    "codex-alice@example.com-plus.json",
    "codex-3f9a12bc-bob@example.com-pro.json",
    "codex-cli-auth.json",
    "array-of-two.json",
    "broken-not-json.json",
    "missing-refresh-token.json",
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/auth/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn patch(app: &TestApp, token: &str, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .patch(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn import_files(app: &TestApp, token: &str, names: &[&str]) -> Value {
    let mut form = reqwest::multipart::Form::new();
    for name in names {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(fixture(name)).file_name(name.to_string()),
        );
    }
    let res = reqwest::Client::new()
        .post(app.url("/admin/tokens/import"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[actix_web::test]
async fn a_key_is_shown_once_and_works_until_disabled_or_deleted() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let account = mock.create_account("acct-k");
    crate::helpers::pool::add_account(&app, &account).await;
    let admin = app.admin_token().await;

    let res = app
        .post(
            "/admin/api-keys",
            &admin,
            &json!({"name": "my app", "rpm_limit": 60, "allowed_models": ["gpt-5"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-") && key.len() == 35);
    assert!(key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        created["masked_key"].as_str().unwrap(),
        format!("{}...{}", &key[..7], &key[31..])
    );
    assert_eq!(created["rpm_limit"], 60);
    assert_eq!(created["allowed_models"], json!(["gpt-5"]));

    let listed = app
        .get("/admin/api-keys?q=my", &admin)
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&key[3..]), "the key is never shown again");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["total"], 1);
    assert!(listed["data"][0].get("key").is_none());
    let none: Value = app
        .get("/admin/api-keys?q=zzz", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);

    assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    let mut other_model = ask("hi", false);
    other_model["model"] = json!("gpt-5.5");
    let res = chat(&app, &key, &other_model).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_allowed"
    );

    let id = created["id"].as_i64().unwrap();
    let res = patch(
        &app,
        &admin,
        &format!("/admin/api-keys/{id}"),
        &json!({"is_active": false}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        chat(&app, &key, &ask("hi", false)).await.status(),
        401,
        "disabled at once"
    );
    patch(
        &app,
        &admin,
        &format!("/admin/api-keys/{id}"),
        &json!({"is_active": true, "allowed_models": null}),
    )
    .await;
    assert_eq!(
        chat(&app, &key, &other_model).await.status(),
        200,
        "re-enabled, all models"
    );

    let bad = patch(
        &app,
        &admin,
        &format!("/admin/api-keys/{id}"),
        &json!({"rpm_limit": -3}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        delete(&app, &admin, &format!("/admin/api-keys/{id}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        chat(&app, &key, &ask("hi", false)).await.status(),
        401,
        "deleted at once"
    );
    assert_eq!(
        delete(&app, &admin, &format!("/admin/api-keys/{id}"))
            .await
            .status(),
        404
    );
    let bad = app
        .post("/admin/api-keys", &admin, &json!({"rpm_limit": 5}))
        .await;
    assert_eq!(bad.status(), 400, "a name is required");
}

#[actix_web::test]
async fn importing_the_fixture_files_gives_each_its_expected_result() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let result = import_files(&app, &admin, &FIXTURES).await;
    assert_eq!(result["imported"], 5, "{result}");
    assert_eq!(result["updated"], 0);
    let failed = result["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{result}");
    let reason = |source: &str| {
        failed
            .iter()
            .find(|f| f["source"] == source)
            .map(|f| f["reason"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(reason("broken-not-json.json").contains("not valid JSON"));
    assert!(reason("missing-refresh-token.json").contains("refresh_token"));

    let list: Value = app
        .get("/admin/tokens?page_size=50", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 5);
    let text = list.to_string();
    assert!(
        !text.contains("rt_fake") && !text.contains("eyJhbGci"),
        "no secret in the list"
    );
    let by_email = |email: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["email"] == email)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_email("alice@example.com")["plan_type"], "plus");
    assert_eq!(by_email("bob@example.com")["plan_type"], "pro");
    assert_eq!(by_email("carol@example.com")["plan_type"], "team");
    assert_eq!(by_email("dave@example.com")["status"], "active");
    assert_eq!(
        by_email("alice@example.com")["expired_at"],
        "2030-01-01T00:00:00Z"
    );

    let again = import_files(&app, &admin, &["codex-alice@example.com-plus.json"]).await;
    assert_eq!(
        (again["imported"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(1))
    );
    let list: Value = app.get("/admin/tokens", &admin).await.json().await.unwrap();
    assert_eq!(list["total"], 5, "re-import updates instead of duplicating");

    let page: Value = app
        .get("/admin/tokens?page=2&page_size=2", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        (page["page"].as_u64(), page["total"].as_u64()),
        (Some(2), Some(5))
    );
    let found: Value = app
        .get("/admin/tokens?q=carol", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1);
}

#[actix_web::test]
async fn json_import_export_round_trip_and_lifecycle() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let admin = app.admin_token().await;
    let a = mock.create_account("acct-life");
    let res = app
        .post(
            "/admin/tokens/import",
            &admin,
            &json!([a.to_cliproxy_json()]),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["imported"], 1, "{body}");
    let (_, key) = crate::helpers::pool::create_key(&app, "client", |_| {}).await;
    assert_eq!(
        chat(&app, &key, &ask("hi", false)).await.status(),
        200,
        "new accounts join at once"
    );

    let exported: Value = app
        .get("/admin/tokens/export", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(exported[0]["type"], "codex");
    assert_eq!(exported[0]["refresh_token"], a.refresh_token);
    let again = app
        .post("/admin/tokens/import", &admin, &exported)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        (again["imported"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(1))
    );

    let list: Value = app.get("/admin/tokens", &admin).await.json().await.unwrap();
    let id = list["data"][0]["id"].as_i64().unwrap();
    let res = patch(
        &app,
        &admin,
        &format!("/admin/tokens/{id}"),
        &json!({"name": "<img src=x onerror=alert(1)>", "is_active": false}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let row: Value = res.json().await.unwrap();
    assert_eq!(row["status"], "disabled");
    assert_eq!(
        chat(&app, &key, &ask("hi", false)).await.status(),
        503,
        "disabled leaves rotation"
    );
    patch(
        &app,
        &admin,
        &format!("/admin/tokens/{id}"),
        &json!({"is_active": true}),
    )
    .await;

    let res = reqwest::Client::new()
        .post(app.url(&format!("/admin/tokens/{id}/refresh")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(mock.refresh_calls("acct-life"), 1);
    let refreshed: Value = res.json().await.unwrap();
    assert!(refreshed["last_refresh_at"].is_string());

    assert_eq!(
        delete(&app, &admin, &format!("/admin/tokens/{id}"))
            .await
            .status(),
        204
    );
    let before = mock.total_requests();
    assert_eq!(
        chat(&app, &key, &ask("hi", false)).await.status(),
        503,
        "deleted leaves rotation"
    );
    assert_eq!(mock.total_requests(), before);
    let list: Value = app.get("/admin/tokens", &admin).await.json().await.unwrap();
    assert_eq!(list["total"], 0);
    let bad = app.get("/admin/tokens?status=bogus", &admin).await;
    assert_eq!(bad.status(), 400);
}

#[actix_web::test]
async fn fifty_concurrent_requests_against_ten_per_minute_let_exactly_ten_through() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    crate::helpers::pool::add_account(&app, &mock.create_account("acct-rpm")).await;
    let admin = app.admin_token().await;
    let created: Value = app
        .post(
            "/admin/api-keys",
            &admin,
            &json!({"name": "limited", "rpm_limit": 10}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let requests = (0..50).map(|_| {
        let (app, key) = (&app, key.clone());
        async move {
            let res = chat(app, &key, &ask("hi", false)).await;
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, retry, body["error"]["code"].clone())
        }
    });
    let results = futures_util::future::join_all(requests).await;
    assert_eq!(results.iter().filter(|r| r.0 == 200).count(), 10);
    let limited: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(limited.len(), 40);
    assert!(limited
        .iter()
        .all(|r| r.2 == "rate_limit_exceeded" && r.1.is_some()));
    assert_eq!(mock.total_requests(), 10);
}

#[actix_web::test]
async fn daily_and_token_limits_answer_insufficient_quota() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    crate::helpers::pool::add_account(&app, &mock.create_account("acct-quota")).await;
    let admin = app.admin_token().await;
    let daily: Value = app
        .post(
            "/admin/api-keys",
            &admin,
            &json!({"name": "daily", "daily_request_limit": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    let daily = daily["key"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(chat(&app, &daily, &ask("hi", false)).await.status(), 200);
    }
    let res = chat(&app, &daily, &ask("hi", false)).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert_eq!(body["error"]["type"], "insufficient_quota");

    // Each answer of the mock costs 20 tokens: a budget of 30 allows two requests.
    let budget: Value = app
        .post(
            "/admin/api-keys",
            &admin,
            &json!({"name": "budget", "total_token_limit": 30}),
        )
        .await
        .json()
        .await
        .unwrap();
    let budget = budget["key"].as_str().unwrap().to_string();
    assert_eq!(chat(&app, &budget, &ask("hi", false)).await.status(), 200);
    assert_eq!(chat(&app, &budget, &ask("hi", false)).await.status(), 200);
    let res = chat(&app, &budget, &ask("hi", false)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "insufficient_quota"
    );
}

#[actix_web::test]
async fn a_thousand_accounts_import_in_one_request() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let accounts: Vec<Value> = (0..1000)
        .map(|i| {
            json!({
                "type": "codex",
                "email": format!("user{i}@example.com"),
                "account_id": format!("bulk-{i:04}"),
                "access_token": format!("at-{i}"),
                "refresh_token": format!("rt-{i}"),
                "expired": "2030-01-01T00:00:00Z",
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let res = app
        .post("/admin/tokens/import", &admin, &Value::Array(accounts))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    eprintln!("imported 1000 accounts in {:?}", started.elapsed());
    assert_eq!(body["imported"], 1000, "{body}");
    let list: Value = app
        .get("/admin/tokens?page_size=1", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1000);
    assert_eq!(
        app.state.pool.snapshot().await.unwrap().accounts.len(),
        1000,
        "all joined the pool"
    );
}
