//! The operator's tools over a pool: finding a request by its id or by text and reading its
//! upstream attempts, the stop after two server errors in a row, the CSV export of the log,
//! sorting and filtering accounts, bulk actions and the account's detail.

use mock_upstream::{Behaviour, MockUpstream};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{json, Value};

use crate::helpers::pool::{add_account, ask, chat, create_key, log_rows, spawn_with_mock};
use crate::helpers::{admin_error_code, TestApp};

/// `GET` an admin path as JSON, asserting 200.
async fn get_json(app: &TestApp, path: &str, admin: &str) -> Value {
    let res = app.get(path, admin).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// `GET` an admin path that must answer 400 naming `param`.
async fn refused(app: &TestApp, path: &str, admin: &str, param: &str) {
    let res = app.get(path, admin).await;
    assert_eq!(res.status(), 400, "{path}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{path}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("`{param}`")), "{path}: {body}");
}

#[actix_web::test]
async fn a_request_is_found_by_its_id_or_by_text_with_its_attempts() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
    })
    .await;
    let first = add_account(&app, &mock.create_account("acct-t1")).await;
    let second = add_account(&app, &mock.create_account("acct-t2")).await;
    let (key_id, key) = create_key(&app, "Searchable 100%", |_| {}).await;
    let (_, other) = create_key(&app, "quiet", |_| {}).await;
    assert_eq!(chat(&app, &other, &ask("hi", false)).await.status(), 200);

    mock.queue_behaviour("acct-t1", Behaviour::ServerError(500), 1);
    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200, "served by the second account");
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(log_rows(&app).await.len(), 2);

    let admin = app.admin_token().await;
    let found = get_json(
        &app,
        &format!("/admin/logs?request_id={request_id}"),
        &admin,
    )
    .await;
    assert_eq!(found["total"], 1, "{found}");
    let log = &found["data"][0];
    assert_eq!(log["request_id"], request_id.as_str());
    assert_eq!(log["token_id"], second.id);
    let attempts = log["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{log}");
    assert_eq!(attempts[0]["token_id"], first.id);
    assert_eq!(
        attempts[0]["token_email"],
        first.email.clone().unwrap().as_str()
    );
    assert_eq!(attempts[0]["status"], 500);
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("500"),
        "{log}"
    );
    assert!(attempts[0]["latency_ms"].is_u64());
    assert_eq!(attempts[1]["token_id"], second.id);
    assert_eq!(attempts[1]["status"], 200);
    assert!(attempts[1]["error"].is_null());

    // The other request has its own id and a single attempt.
    let none = get_json(&app, "/admin/logs?request_id=no-such-request", &admin).await;
    assert_eq!(none["total"], 0);
    let quiet = get_json(&app, "/admin/logs?q=QUIET", &admin).await;
    assert_eq!(quiet["total"], 1, "the key's name, in any case");
    assert_eq!(quiet["data"][0]["attempts"].as_array().unwrap().len(), 1);
    // `%` and `_` are taken literally: the name holds "100%", not "100x".
    let literal = get_json(&app, "/admin/logs?q=100%25", &admin).await;
    assert_eq!(literal["total"], 1);
    assert_eq!(literal["data"][0]["api_key_id"], key_id);
    let wildcard = get_json(&app, "/admin/logs?q=1_0", &admin).await;
    assert_eq!(wildcard["total"], 0, "`_` is no wildcard");
    let by_email = get_json(&app, "/admin/logs?q=ACCT-T2", &admin).await;
    assert_eq!(by_email["total"], 1, "the serving account's e-mail");
    assert_eq!(by_email["data"][0]["request_id"], request_id.as_str());
    let by_model = get_json(&app, "/admin/logs?q=GPT-5", &admin).await;
    assert_eq!(by_model["total"], 2);
    let by_key = get_json(&app, &format!("/admin/logs?api_key_id={key_id}"), &admin).await;
    assert_eq!(by_key["total"], 1);
    let by_account = get_json(&app, &format!("/admin/logs?token_id={}", first.id), &admin).await;
    assert_eq!(
        by_account["total"], 1,
        "the row names the account that served"
    );
    assert_ne!(by_account["data"][0]["request_id"], request_id.as_str());
    refused(
        &app,
        &format!("/admin/logs?q={}", "x".repeat(201)),
        &admin,
        "q",
    )
    .await;
}

#[actix_web::test]
async fn a_request_failing_with_5xx_on_two_accounts_in_a_row_is_not_retried() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
        c.pool.max_retries = 3;
    })
    .await;
    let first = add_account(&app, &mock.create_account("acct-f1")).await;
    let second = add_account(&app, &mock.create_account("acct-f2")).await;
    let third = add_account(&app, &mock.create_account("acct-f3")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.queue_behaviour("acct-f1", Behaviour::ServerError(500), 1);
    mock.queue_behaviour("acct-f2", Behaviour::ServerError(502), 1);

    let res = chat(&app, &key, &ask("poison", false)).await;
    assert_eq!(res.status(), 502, "the upstream's own status");
    let body: Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("two accounts in a row"), "{body}");
    assert_eq!(mock.request_count("acct-f1"), 1);
    assert_eq!(mock.request_count("acct-f2"), 1);
    assert_eq!(mock.request_count("acct-f3"), 0, "not retried a third time");

    let rows = log_rows(&app).await;
    let trail: Vec<Value> = serde_json::from_str(rows[0].attempts.as_deref().unwrap()).unwrap();
    let statuses: Vec<(i64, i64)> = trail
        .iter()
        .map(|a| {
            (
                a["token_id"].as_i64().unwrap(),
                a["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [(i64::from(first.id), 500), (i64::from(second.id), 502)]
    );

    // The first account cools down as any 5xx does; the second is left alone.
    let admin = app.admin_token().await;
    let tokens = get_json(&app, "/admin/tokens", &admin).await;
    let status = |id: i32| {
        tokens["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(first.id), "cooling_down");
    assert_eq!(status(second.id), "active");
    assert_eq!(status(third.id), "active");
    let logs = get_json(&app, "/admin/logs?status=error", &admin).await;
    assert_eq!(logs["data"][0]["error_code"], "repeated_server_error");
    assert_eq!(logs["data"][0]["error_params"]["status"], 502);

    // A 5xx followed by a network failure or success is not the stop: the next request, with
    // the first account cooling, meets a 500 on the second and is served by the third.
    mock.queue_behaviour("acct-f2", Behaviour::ServerError(500), 1);
    let res = chat(&app, &key, &ask("fine", false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(mock.request_count("acct-f3"), 1);
}

#[actix_web::test]
async fn the_log_exports_as_csv_with_its_filters() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| c.log.batch_size = 1000).await;
    add_account(&app, &mock.create_account("acct-c1")).await;
    let (key_id, key) = create_key(&app, "=HYPERLINK(\"x\",1)", |_| {}).await;
    let (_, other) = create_key(&app, "other", |_| {}).await;
    // More rows than one database page of the export.
    let rows = 520usize;
    let now = chrono::Utc::now();
    let mut batch = Vec::new();
    for i in 0..rows {
        batch.push(gpt2api::db::api_log::ActiveModel {
            created_at: Set(now),
            api_key_id: Set(Some(key_id)),
            model: Set("gpt-5".into()),
            endpoint: Set("/v1/chat/completions".into()),
            stream: Set(false),
            status_code: Set(if i % 2 == 0 { 200 } else { 502 }),
            error_message: Set(
                (i % 2 == 1).then(|| "upstream_error: upstream answered 502, \"bad\"".to_owned())
            ),
            input_tokens: Set(1),
            output_tokens: Set(1),
            cached_tokens: Set(0),
            reasoning_tokens: Set(0),
            latency_ms: Set(5),
            request_id: Set(Some(format!("req-{i}"))),
            ..Default::default()
        });
    }
    for chunk in batch.chunks(200) {
        gpt2api::db::api_log::Entity::insert_many(chunk.to_vec())
            .exec(&app.state.db)
            .await
            .unwrap();
    }
    assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    assert_eq!(chat(&app, &other, &ask("hi", false)).await.status(), 200);
    log_rows(&app).await;

    let admin = app.admin_token().await;
    let res = app
        .get(
            &format!("/admin/logs/export?api_key_id={key_id}&status=error"),
            &admin,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "id");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        records.len(),
        rows / 2,
        "every error row of the key, over several pages"
    );
    let ids: Vec<i64> = records.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    let first = &records[0];
    assert_eq!(
        &first[column("api_key_name")],
        "'=HYPERLINK(\"x\",1)",
        "no formula"
    );
    assert_eq!(&first[column("status_code")], "502");
    assert_eq!(
        &first[column("error_message")],
        "upstream_error: upstream answered 502, \"bad\""
    );
    assert_eq!(&first[column("error_code")], "upstream_status");

    let all = app
        .get(&format!("/admin/logs/export?api_key_id={key_id}"), &admin)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv::Reader::from_reader(all.as_bytes()).records().count(),
        rows + 1
    );
    let res = app.get("/admin/logs/export?status=maybe", &admin).await;
    assert_eq!(res.status(), 400);
}

/// Stores usage windows on an account (row and pool).
async fn set_windows(app: &TestApp, id: i32, primary: Option<f64>, secondary: Option<f64>) {
    let row = gpt2api::db::account::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let limits = gpt2api::codex::wire::RateLimits {
        primary_used_percent: primary,
        secondary_used_percent: secondary,
        checked_at: Some(chrono::Utc::now()),
        ..Default::default()
    };
    let mut model: gpt2api::db::account::ActiveModel = row.into();
    model.rate_limits = Set(Some(serde_json::to_string(&limits).unwrap()));
    let row = model.update(&app.state.db).await.unwrap();
    app.state.pool.upsert(row).await.unwrap();
}

/// The ids of a list answer, in order.
fn ids(list: &Value) -> Vec<i64> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn accounts_sort_and_filter_by_their_usage_windows() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| {
        c.pool.usage_probe_interval_seconds = 0;
        c.pool.near_limit_percent = 75.0;
    })
    .await;
    let mut accounts = Vec::new();
    for (name, primary, secondary) in [
        ("acct-s1", Some(10.0), Some(90.0)),
        ("acct-s2", None, None),
        ("acct-s3", Some(80.0), Some(20.0)),
        ("acct-s4", Some(5.0), Some(60.0)),
    ] {
        let row = add_account(&app, &mock.create_account(name)).await;
        set_windows(&app, row.id, primary, secondary).await;
        accounts.push(i64::from(row.id));
    }
    let [a, b, c, d] = accounts[..] else {
        unreachable!()
    };
    let admin = app.admin_token().await;
    let weekly = get_json(
        &app,
        "/admin/tokens?sort=secondary_used_percent&order=desc",
        &admin,
    )
    .await;
    assert_eq!(ids(&weekly), [a, d, c, b], "unknown last");
    assert_eq!(weekly["total"], 4);
    let weekly_up = get_json(
        &app,
        "/admin/tokens?sort=secondary_used_percent&order=asc",
        &admin,
    )
    .await;
    assert_eq!(ids(&weekly_up), [c, d, a, b]);
    let paged = get_json(
        &app,
        "/admin/tokens?sort=primary_used_percent&order=desc&page=2&page_size=2",
        &admin,
    )
    .await;
    assert_eq!(ids(&paged), [d, b]);
    let near = get_json(&app, "/admin/tokens?status=near_limit", &admin).await;
    assert_eq!(ids(&near), [a, c], "either window at or above 75%");
    let near_sorted = get_json(
        &app,
        "/admin/tokens?status=near_limit&sort=primary_used_percent&order=desc",
        &admin,
    )
    .await;
    assert_eq!(ids(&near_sorted), [c, a]);
    let big = get_json(&app, "/admin/tokens?page_size=200", &admin).await;
    assert_eq!(big["page_size"], 200);
    refused(&app, "/admin/tokens?sort=email", &admin, "sort").await;
    refused(
        &app,
        "/admin/tokens?sort=usage_count&order=up",
        &admin,
        "order",
    )
    .await;
    refused(&app, "/admin/tokens?status=nearly", &admin, "status").await;
    assert_eq!(
        app.get("/admin/tokens?page_size=201", &admin)
            .await
            .status(),
        400
    );
}

#[actix_web::test]
async fn bulk_actions_answer_for_each_account() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| c.pool.usage_probe_interval_seconds = 0).await;
    let a = add_account(&app, &mock.create_account("acct-b1")).await;
    let b = add_account(&app, &mock.create_account("acct-b2")).await;
    let c = add_account(&app, &mock.create_account("acct-b3")).await;
    let admin = app.admin_token().await;

    let res = app
        .post(
            "/admin/tokens/bulk",
            &admin,
            &json!({"ids": [a.id, 99_999, b.id], "action": "disable"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], json!({"id": a.id, "ok": true, "error": null}));
    assert_eq!(results[1]["id"], 99_999);
    assert_eq!(results[1]["ok"], false);
    assert_eq!(results[1]["error"]["code"], "not_found");
    assert_eq!(results[2]["ok"], true);
    let disabled = get_json(&app, "/admin/tokens?status=disabled", &admin).await;
    assert_eq!(ids(&disabled), [i64::from(a.id), i64::from(b.id)]);

    // A probe reads the usage endpoint; the account's success is stored. A disabled account is
    // probed all the same; a failing one says why.
    mock.set_behaviour("acct-b3", Behaviour::Unauthorized);
    let res = app
        .post(
            "/admin/tokens/bulk",
            &admin,
            &json!({"ids": [a.id, c.id], "action": "probe"}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["results"][0]["ok"], true, "{body}");
    assert_eq!(mock.usage_calls("acct-b1"), 1);
    let tokens = get_json(&app, "/admin/tokens", &admin).await;
    let token = |id: i32| {
        tokens["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert!(
        token(a.id)["last_success_at"].is_string(),
        "{}",
        token(a.id)
    );
    if body["results"][1]["ok"] == false {
        assert!(body["results"][1]["error"]["message"].is_string());
        assert!(token(c.id)["last_error"]
            .as_str()
            .unwrap()
            .starts_with("test failed"));
        assert_eq!(token(c.id)["last_error_past"], false);
    }

    let res = app
        .post(
            "/admin/tokens/bulk",
            &admin,
            &json!({"ids": [a.id, b.id], "action": "enable"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        get_json(&app, "/admin/tokens?status=disabled", &admin).await["total"],
        0
    );
    let res = app
        .post(
            "/admin/tokens/bulk",
            &admin,
            &json!({"ids": [b.id], "action": "delete"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(get_json(&app, "/admin/tokens", &admin).await["total"], 2);

    for (body, param) in [
        (json!({"ids": [a.id], "action": "explode"}), "action"),
        (json!({"ids": [], "action": "enable"}), "ids"),
        (json!({"ids": ["1"], "action": "enable"}), "ids"),
        (
            json!({"ids": (1..=201).collect::<Vec<i32>>(), "action": "enable"}),
            "ids",
        ),
        (
            json!({"ids": [a.id], "action": "enable", "force": true}),
            "force",
        ),
    ] {
        let res = app.post("/admin/tokens/bulk", &admin, &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let error: Value = res.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{param}`")), "{error}");
    }
    let still = get_json(&app, "/admin/tokens?status=disabled", &admin).await;
    assert_eq!(still["total"], 0, "a refused bulk action changed nothing");
}

#[actix_web::test]
async fn a_selection_of_accounts_exports_and_an_account_has_its_detail() {
    let mock = MockUpstream::start();
    mock.set_economy(Some(mock_upstream::Economy::default()));
    let app = spawn_with_mock(&mock, |c| {
        c.pool.usage_probe_interval_seconds = 0;
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
    })
    .await;
    let a = add_account(&app, &mock.create_account("acct-e1")).await;
    let b = add_account(&app, &mock.create_account("acct-e2")).await;
    add_account(&app, &mock.create_account("acct-e3")).await;
    let admin = app.admin_token().await;

    let res = app
        .get(
            &format!("/admin/tokens/export?ids={},{}", a.id, b.id),
            &admin,
        )
        .await;
    assert_eq!(res.status(), 200);
    let files: Vec<Value> = res.json().await.unwrap();
    let exported: Vec<&str> = files
        .iter()
        .map(|f| f["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(exported, ["acct-e1", "acct-e2"]);
    assert_eq!(
        app.get("/admin/tokens/export?ids=1,x", &admin)
            .await
            .status(),
        400
    );
    let res = app.get("/admin/tokens/export?ids=99999", &admin).await;
    assert_eq!(res.status(), 404);
    assert_eq!(admin_error_code(res).await, "not_found");

    let (_, key) = create_key(&app, "client", |_| {}).await;
    for i in 0..6 {
        let res = chat(
            &app,
            &key,
            &ask(&format!("question {i} {}", "long ".repeat(400)), false),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    let rows = log_rows(&app).await;
    let served = rows.iter().filter(|r| r.account_id == Some(a.id)).count();
    assert_eq!(served, 6, "the first account serves while it can");
    let detail = get_json(&app, &format!("/admin/tokens/{}/detail", a.id), &admin).await;
    assert_eq!(detail["token"]["id"], a.id);
    assert_eq!(detail["stats"]["24h"]["requests"], served as i64);
    assert_eq!(detail["stats"]["7d"]["requests"], served as i64);
    assert_eq!(detail["stats"]["24h"]["errors"], 0);
    assert!(detail["stats"]["24h"]["input_tokens"].as_i64().unwrap() > 0);
    assert_eq!(detail["logs"].as_array().unwrap().len(), served);
    let history = detail["usage_history"].as_array().unwrap();
    assert!(
        !history.is_empty(),
        "the windows the answers reported: {detail}"
    );
    assert!(history[0]["primary_used_percent"].is_number());
    assert!(detail["token"]["last_success_at"].is_string());
    assert_eq!(
        app.get("/admin/tokens/99999/detail", &admin).await.status(),
        404
    );
}
