//! Statistics and logs equal what was sent; filters and paging; retention.

use chrono::Utc;
use mock_upstream::{Behaviour, MockUpstream, USAGE_INPUT_TOKENS, USAGE_OUTPUT_TOKENS};
use sea_orm::{EntityTrait, PaginatorTrait, Set};
use serde_json::Value;

use crate::helpers::pool::{add_account, ask, chat, create_key, log_rows, spawn_with_mock};

#[actix_web::test]
async fn stats_and_logs_count_exactly_what_was_sent() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| c.pool.max_retries = 0).await;
    let good = add_account(&app, &mock.create_account("acct-ok")).await;
    let (key_a, secret_a) = create_key(&app, "alpha", |_| {}).await;
    let (key_b, secret_b) = create_key(&app, "beta", |_| {}).await;
    for _ in 0..3 {
        assert_eq!(chat(&app, &secret_a, &ask("hi", false)).await.status(), 200);
    }
    let mut other = ask("hi", true);
    other["model"] = "gpt-5.5".into();
    for _ in 0..2 {
        chat(&app, &secret_b, &other).await.text().await.unwrap();
    }
    mock.queue_behaviour("acct-ok", Behaviour::ServerError(500), 1);
    assert_eq!(chat(&app, &secret_b, &ask("hi", false)).await.status(), 502);
    assert_eq!(log_rows(&app).await.len(), 6);

    let admin = app.admin_token().await;
    let o: Value = app
        .get("/admin/stats/overview", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(o["requests"]["total"], 6);
    assert_eq!(o["requests"]["last_24h"], 6);
    assert_eq!(o["requests"]["errors_24h"], 1);
    assert_eq!(o["usage"]["input_tokens_24h"], 5 * USAGE_INPUT_TOKENS);
    assert_eq!(o["usage"]["output_tokens_24h"], 5 * USAGE_OUTPUT_TOKENS);
    assert_eq!(o["api_keys"]["total"], 2);
    assert_eq!(o["tokens"]["total"], 1);
    assert_eq!(
        o["tokens"]["cooling_down"], 1,
        "the 500 cooled the account down"
    );
    assert_eq!(o["version"], gpt2api::VERSION);

    for range in ["24h", "7d", "30d"] {
        let u: Value = app
            .get(&format!("/admin/stats/usage?range={range}"), &admin)
            .await
            .json()
            .await
            .unwrap();
        let series = u["series"].as_array().unwrap_or_else(|| panic!("{u}"));
        assert_eq!(
            series.len(),
            if range == "24h" {
                24
            } else if range == "7d" {
                7
            } else {
                30
            }
        );
        let requests: i64 = series.iter().map(|p| p["requests"].as_i64().unwrap()).sum();
        let errors: i64 = series.iter().map(|p| p["errors"].as_i64().unwrap()).sum();
        assert_eq!((requests, errors), (6, 1), "{range}");
        assert_eq!(u["bucket"], if range == "24h" { "hour" } else { "day" });
        let model = |m: &str| {
            u["by_model"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["model"] == m)
                .cloned()
                .unwrap()
        };
        assert_eq!(model("gpt-5")["requests"], 4);
        assert_eq!(model("gpt-5.5")["requests"], 2);
        let key = |id: i32| {
            u["by_api_key"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["api_key_id"] == id)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            (key(key_a)["requests"].as_i64(), key(key_a)["name"].as_str()),
            (Some(3), Some("alpha"))
        );
        assert_eq!(key(key_b)["requests"], 3);
        assert_eq!(u["by_token"][0]["token_id"], good.id);
        assert_eq!(u["by_token"][0]["email"], "acct-ok@example.com");
    }
    assert_eq!(
        app.get("/admin/stats/usage?range=1y", &admin)
            .await
            .status(),
        400
    );

    let page: Value = app
        .get("/admin/logs?page_size=4", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 6);
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    assert!(
        data[0]["id"].as_i64() > data[1]["id"].as_i64(),
        "newest first"
    );
    assert_eq!(data[0]["status_code"], 502);
    assert!(data[0]["error_message"]
        .as_str()
        .unwrap()
        .contains("upstream"));
    assert_eq!(data[0]["api_key_name"], "beta");
    assert_eq!(data[0]["token_email"], "acct-ok@example.com");
    let second: Value = app
        .get("/admin/logs?page=2&page_size=4", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"].as_array().unwrap().len(), 2);

    let count = |query: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let v: Value = app
                .get(&format!("/admin/logs?{query}"), &admin)
                .await
                .json()
                .await
                .unwrap();
            v["total"].as_i64().unwrap()
        }
    };
    assert_eq!(count("status=error").await, 1);
    assert_eq!(count("status=success").await, 5);
    assert_eq!(count("model=gpt-5.5").await, 2);
    let by_key: Value = app
        .get(&format!("/admin/logs?api_key_id={key_a}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_key["total"], 3);
    let by_token: Value = app
        .get(&format!("/admin/logs?token_id={}", good.id), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_token["total"], 6);
    let future = (Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let since: Value = app
        .get(&format!("/admin/logs?since={future}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(since["total"], 0);
    let until: Value = app
        .get(&format!("/admin/logs?until={future}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(until["total"], 6);
    assert_eq!(
        app.get("/admin/logs?page_size=500", &admin).await.status(),
        400
    );
    assert_eq!(
        app.get("/admin/logs?status=maybe", &admin).await.status(),
        400
    );
}

#[actix_web::test]
async fn retention_deletes_old_rows_in_batches_and_keeps_recent_ones() {
    let app = crate::helpers::spawn_app().await;
    let now = Utc::now();
    for age_days in [40i64, 35, 31, 2, 0] {
        let row = gpt2api::db::api_log::ActiveModel {
            created_at: Set(now - chrono::Duration::days(age_days)),
            model: Set("gpt-5".into()),
            endpoint: Set("/v1/chat/completions".into()),
            stream: Set(false),
            status_code: Set(200),
            ..Default::default()
        };
        gpt2api::db::api_log::Entity::insert(row)
            .exec(&app.state.db)
            .await
            .unwrap();
    }
    let deleted = gpt2api::retention::purge_logs(&app.state.db, 30, 2)
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    let left = gpt2api::db::api_log::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(left, 2);
}
