//! The OpenAI-compatible API against the mock Codex upstream: translation, streaming,
//! failover, refresh, usage logging.

use std::time::Duration;

use mock_upstream::{
    Behaviour, MockUpstream, RefreshBehaviour, USAGE_CACHED_TOKENS, USAGE_INPUT_TOKENS,
    USAGE_OUTPUT_TOKENS,
};
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::helpers::pool::{
    account_row, add_account, ask, chat, create_key, log_rows, spawn_with_mock, sse_data,
    wait_for_row,
};

#[actix_web::test]
async fn non_streaming_chat_is_translated_both_ways_and_logged() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-a");
    let app = spawn_with_mock(&mock, |_| {}).await;
    let row = add_account(&app, &account).await;
    let (key_id, key) = create_key(&app, "client", |_| {}).await;

    let res = chat(&app, &key, &ask("hello there", false)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-5");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("acct-a") && content.contains("hello there"),
        "{content}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], USAGE_INPUT_TOKENS);
    assert_eq!(body["usage"]["completion_tokens"], USAGE_OUTPUT_TOKENS);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        USAGE_CACHED_TOKENS
    );

    let sent = mock.last_request().unwrap();
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {}", account.access_token).as_str())
    );
    assert_eq!(sent.header("chatgpt-account-id"), Some("acct-a"));
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["store"], false);
    assert!(sent.body.get("temperature").is_none() && sent.body.get("max_tokens").is_none());
    assert_eq!(sent.body["input"][0]["role"], "developer");

    let rows = log_rows(&app).await;
    assert_eq!(rows.len(), 1);
    let log = &rows[0];
    assert_eq!(
        (log.api_key_id, log.account_id),
        (Some(key_id), Some(row.id))
    );
    assert_eq!((log.status_code, log.stream), (200, false));
    assert_eq!(log.input_tokens as u64, USAGE_INPUT_TOKENS);
    assert_eq!(log.output_tokens as u64, USAGE_OUTPUT_TOKENS);
    assert_eq!(log.endpoint, "/v1/chat/completions");
    let stored = account_row(&app, row.id).await;
    assert_eq!(stored.usage_count, 1);
}

#[actix_web::test]
async fn streaming_chat_sends_chunks_with_one_id_usage_and_done() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-s");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;

    let mut body = ask("stream please", true);
    body["stream_options"] = json!({"include_usage": true});
    let res = chat(&app, &key, &body).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() >= 3, "{text}");
    let id = chunks[0]["id"].clone();
    assert!(chunks
        .iter()
        .all(|c| c["id"] == id && c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(content.contains("stream please"), "{content}");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert_eq!(
        usage["usage"]["total_tokens"],
        USAGE_INPUT_TOKENS + USAGE_OUTPUT_TOKENS
    );

    let rows = log_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].stream && rows[0].ttft_ms.is_some());
}

#[actix_web::test]
async fn keys_are_checked_and_errors_take_openais_shape() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let (_, disabled) = create_key(&app, "off", |k| k.is_active = sea_orm::Set(false)).await;
    let (_, expired) = create_key(&app, "old", |k| {
        k.expires_at = sea_orm::Set(Some(chrono::Utc::now() - chrono::Duration::hours(1)));
    })
    .await;

    for presented in ["sk-unknown", disabled.as_str(), expired.as_str()] {
        let res = chat(&app, presented, &ask("hi", false)).await;
        assert_eq!(res.status(), 401, "{presented}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "authentication_error");
        assert!(body["error"].get("param").is_some());
    }
    let res = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let models: Value = res.json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["owned_by"], "openai");

    let bad = chat(&app, &key, &json!({"model": "gpt-5", "messages": []})).await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let bad = chat(&app, &key, &json!({"model": "gpt-5", "messages": "hi"})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        mock.total_requests(),
        0,
        "malformed requests never reach the upstream"
    );

    let none = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(none.status(), 503, "no account imported");
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_available_account");
}

#[actix_web::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-body");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    // A bad key with a malformed body: the key decides, the body is never looked at.
    for path in ["/v1/chat/completions", "/v1/responses"] {
        let res = reqwest::Client::new()
            .post(app.url(path))
            .bearer_auth("sk-unknown")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
    // `curl -d` sends form-urlencoded; a JSON body is still taken, as before.
    let res = reqwest::Client::new()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(ask("hi", false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn usage_limit_fails_over_and_the_cooling_account_is_skipped() {
    let mock = MockUpstream::start();
    let a = mock.create_account("acct-1");
    let b = mock.create_account("acct-2");
    let app = spawn_with_mock(&mock, |_| {}).await;
    let row_a = add_account(&app, &a).await;
    add_account(&app, &b).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour(
        "acct-1",
        Behaviour::UsageLimit {
            resets_in_seconds: 600,
        },
    );

    for _ in 0..3 {
        let res = chat(&app, &key, &ask("hi", false)).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert!(body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("acct-2"));
    }
    assert_eq!(
        mock.request_count("acct-1"),
        1,
        "the cooling account is skipped after its 429"
    );
    // The pool writes health changes in the background: wait for it.
    let stored = wait_for_row(&app, row_a.id, "cooldown stored", |r| {
        r.cooldown_until.is_some()
    })
    .await;
    let until = stored.cooldown_until.expect("cooldown stored");
    assert!(until > chrono::Utc::now() + chrono::Duration::seconds(500));

    mock.set_behaviour(
        "acct-2",
        Behaviour::UsageLimit {
            resets_in_seconds: 120,
        },
    );
    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 429, "every account's usage limit is spent");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (100..=120).contains(&retry),
        "Retry-After is the nearest reset: {retry}"
    );
    // The upstream's own shape, so the Codex CLI and SDKs see a usage limit.
    let body: Value = res.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["type"], "usage_limit_reached");
    assert_eq!(error["code"], "usage_limit_reached");
    assert!(error["param"].is_null() && error["message"].is_string());
    let resets_in = error["resets_in_seconds"].as_i64().unwrap();
    assert!((100..=120).contains(&resets_in), "{resets_in}");
    let resets_at = error["resets_at"].as_i64().unwrap();
    let expected = chrono::Utc::now().timestamp() + resets_in;
    assert!(
        (resets_at - expected).abs() <= 2,
        "{resets_at} vs {expected}"
    );
}

#[actix_web::test]
async fn server_errors_and_overload_retry_on_another_account() {
    let mock = MockUpstream::start();
    let a = mock.create_account("acct-x");
    let b = mock.create_account("acct-y");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &a).await;
    add_account(&app, &b).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour("acct-x", Behaviour::ServerError(503));
    mock.set_behaviour(
        "acct-y",
        Behaviour::StreamFailed("server_is_overloaded".into()),
    );
    // An overload is the backend's condition: 503 with a short Retry-After, nothing cooled.
    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 503, "both failed before content");
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_overloaded");

    mock.set_behaviour("acct-y", Behaviour::Ok);
    let c = mock.create_account("acct-z");
    add_account(&app, &c).await;
    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200, "a recovered account answers");
    // A plain server error still cools its account: the next requests avoid acct-x.
    mock.set_behaviour("acct-x", Behaviour::ServerError(500));
    let before = mock.request_count("acct-x");
    for _ in 0..4 {
        let res = chat(&app, &key, &ask("hi", false)).await;
        assert_eq!(res.status(), 200);
    }
    assert!(
        mock.request_count("acct-x") - before <= 1,
        "the failing account cools down after one 500"
    );
}

#[actix_web::test]
async fn client_errors_go_back_untouched_without_retry() {
    let mock = MockUpstream::start();
    let a = mock.create_account("acct-c");
    let b = mock.create_account("acct-d");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &a).await;
    add_account(&app, &b).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let res = chat(&app, &key, &ask("[mock:unsupported_model]", false)).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not supported"));
    assert_eq!(
        mock.total_requests(),
        1,
        "no retry for the client's own error"
    );
    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200, "the account was left in rotation");
}

#[actix_web::test]
async fn unauthorized_refreshes_once_and_stores_the_rotated_token() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-r");
    let app = spawn_with_mock(&mock, |_| {}).await;
    let row = add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour("acct-r", Behaviour::Unauthorized);

    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(mock.refresh_calls("acct-r"), 1);
    let stored = account_row(&app, row.id).await;
    let current = mock.account("acct-r").unwrap();
    assert_eq!(
        stored.refresh_token, current.refresh_token,
        "the rotated refresh token is stored"
    );
    assert_eq!(stored.access_token, current.access_token);
    assert_ne!(stored.refresh_token, account.refresh_token);
    assert!(stored.refresh_lock_owner.is_none(), "the lease is released");
}

#[actix_web::test]
async fn twenty_concurrent_401s_cause_exactly_one_refresh() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-c20");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_refresh_delay(Duration::from_millis(300));
    mock.set_behaviour("acct-c20", Behaviour::Unauthorized);

    let requests = (0..20).map(|i| {
        let key = key.clone();
        let app = &app;
        async move {
            chat(app, &key, &ask(&format!("n{i}"), false))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(mock.refresh_calls("acct-c20"), 1);
    assert_eq!(mock.total_reuse_errors(), 0);
}

#[actix_web::test]
async fn a_permanent_refresh_failure_takes_the_account_out() {
    let mock = MockUpstream::start();
    let a = mock.create_account("acct-dead");
    let b = mock.create_account("acct-live");
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
    })
    .await;
    let dead = add_account(&app, &a).await;
    add_account(&app, &b).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour("acct-dead", Behaviour::Unauthorized);
    mock.set_refresh_behaviour("acct-dead", RefreshBehaviour::Reused);

    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200, "served by the other account");
    // The refresh runs in the background: the request did not wait for it.
    let stored = wait_for_row(&app, dead.id, "needs_relogin stored", |r| {
        r.status == gpt2api::db::account::AccountStatus::NeedsRelogin
    })
    .await;
    assert!(stored.last_error.unwrap().contains("refresh_token_reused"));
    let before = mock.request_count("acct-dead");
    for _ in 0..3 {
        assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    }
    assert_eq!(mock.request_count("acct-dead"), before, "out of rotation");
}

#[actix_web::test]
async fn a_stream_cut_after_content_ends_with_an_error_event() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-cut");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let text = chat(&app, &key, &ask("[mock:cut]", true))
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert_ne!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disconnected"),
        "{last}"
    );
    let rows = log_rows(&app).await;
    assert_eq!(rows[0].status_code, 502);
}

#[actix_web::test]
async fn a_client_that_goes_away_cancels_the_upstream_and_is_still_logged() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-gone");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let mut res = chat(&app, &key, &ask("[mock:slow]", true)).await;
    assert_eq!(res.status(), 200);
    let first = res.chunk().await.unwrap();
    assert!(first.is_some());
    drop(res);
    assert!(
        mock.wait_until(Duration::from_secs(10), |m| m.dropped_streams() == 1)
            .await,
        "the upstream stream was cancelled"
    );
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = log_rows(&app).await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status_code, 499);
    let snapshot = app.state.pool.snapshot().await.unwrap();
    assert_eq!(
        snapshot.accounts[0].in_flight, 0,
        "the account was released"
    );
}

#[actix_web::test]
async fn a_burst_leaves_exactly_that_many_rows_and_counters() {
    let mock = MockUpstream::start();
    let a = mock.create_account("acct-b1");
    let b = mock.create_account("acct-b2");
    let app = spawn_with_mock(&mock, |c| {
        c.log.batch_size = 7;
        c.pool.strategy = gpt2api::config::Strategy::RoundRobin;
    })
    .await;
    let ra = add_account(&app, &a).await;
    let rb = add_account(&app, &b).await;
    let (key_id, key) = create_key(&app, "client", |_| {}).await;
    let requests = (0..40).map(|i| {
        let key = key.clone();
        let app = &app;
        async move {
            chat(app, &key, &ask(&format!("m{i}"), i % 2 == 0))
                .await
                .text()
                .await
                .unwrap()
        }
    });
    futures_util::future::join_all(requests).await;
    let rows = log_rows(&app).await;
    assert_eq!(rows.len(), 40);
    let stored_key = gpt2api::db::api_key::Entity::find_by_id(key_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_key.usage_count, 40);
    assert_eq!(
        stored_key.tokens_used as u64,
        40 * (USAGE_INPUT_TOKENS + USAGE_OUTPUT_TOKENS)
    );
    let served =
        account_row(&app, ra.id).await.usage_count + account_row(&app, rb.id).await.usage_count;
    assert_eq!(served, 40);
    assert_eq!(
        account_row(&app, ra.id).await.usage_count,
        20,
        "round robin alternates"
    );
    let (_, dropped, failed) = app.state.usage.counts();
    assert_eq!((dropped, failed), (0, 0));
}

#[actix_web::test]
async fn tool_calls_round_trip() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-t");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body = json!({"model": "gpt-5", "tools": tools, "messages": [{"role": "user", "content": "[mock:tool_call] weather?"}]});
    let first: Value = chat(&app, &key, &body).await.json().await.unwrap();
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    let follow = json!({"model": "gpt-5", "tools": tools, "messages": [
        {"role": "user", "content": "[mock:tool_call] weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    ]});
    let res = chat(&app, &key, &follow).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert!(second["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("sunny"));
}

#[actix_web::test]
async fn responses_api_streams_and_aggregates() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-resp");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let client = reqwest::Client::new();
    let res = client
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-5-high", "input": "hello responses", "temperature": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "completed");
    assert!(body["output"].as_array().is_some_and(|o| !o.is_empty()));
    let sent = mock.last_request().unwrap();
    assert_eq!(sent.body["model"], "gpt-5");
    assert_eq!(sent.body["reasoning"]["effort"], "high");

    let text = client
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-5", "stream": true, "input": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: response.output_text.delta"), "{text}");
    assert!(text.contains("event: response.completed"), "{text}");
    let rows = log_rows(&app).await;
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r.endpoint == "/v1/responses" && r.status_code == 200));
}

#[actix_web::test]
async fn shutdown_writes_every_buffered_log_row() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-drain");
    let app = spawn_with_mock(&mock, |c| {
        c.log.flush_interval_ms = 600_000;
        c.log.batch_size = 10_000;
    })
    .await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    for _ in 0..5 {
        assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    }
    let db = app.state.db.clone();
    let buffered = gpt2api::db::api_log::Entity::find().all(&db).await.unwrap();
    assert!(buffered.is_empty(), "rows wait in the writer's buffer");
    let _database = app.stop().await;
    let rows = gpt2api::db::api_log::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 5, "shutdown drained the buffer");
}

#[actix_web::test]
async fn tokens_are_refreshed_ahead_of_expiry_without_any_request() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-soon");
    let app = spawn_with_mock(&mock, |c| c.pool.refresh_check_interval_seconds = 1).await;
    let row = add_account(&app, &account).await;
    let mut soon: gpt2api::db::account::ActiveModel = row.clone().into();
    soon.expires_at = sea_orm::Set(Some(chrono::Utc::now() + chrono::Duration::hours(1)));
    sea_orm::ActiveModelTrait::update(soon, &app.state.db)
        .await
        .unwrap();
    assert!(
        mock.wait_until(Duration::from_secs(10), |m| m
            .refresh_successes("acct-soon")
            == 1)
            .await
    );
    let mut stored = account_row(&app, row.id).await;
    for _ in 0..50 {
        if stored.refresh_token != account.refresh_token {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stored = account_row(&app, row.id).await;
    }
    assert_eq!(
        stored.refresh_token,
        mock.current_refresh_token("acct-soon").unwrap()
    );
    assert!(stored.expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::days(1));
}

#[actix_web::test]
async fn a_strategy_change_applies_without_restart() {
    let mock = MockUpstream::start();
    let a = mock.create_account("acct-s1");
    let b = mock.create_account("acct-s2");
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::RoundRobin;
    })
    .await;
    add_account(&app, &a).await;
    add_account(&app, &b).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    // Distinct conversations: the strategy places each new one.
    for i in 0..4 {
        chat(&app, &key, &ask(&format!("hi {i}"), false)).await;
    }
    assert_eq!(
        (mock.request_count("acct-s1"), mock.request_count("acct-s2")),
        (2, 2),
        "round robin"
    );
    let admin = app.admin_token().await;
    let res = reqwest::Client::new()
        .patch(app.url("/admin/settings"))
        .bearer_auth(&admin)
        .json(&json!({"strategy": "fill_first"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The change reaches the pool as a message; wait until it shows.
    let mut served = (0, 0);
    for round in 0..50 {
        mock.reset_records();
        for i in 0..4 {
            chat(&app, &key, &ask(&format!("hi {round} {i}"), false)).await;
        }
        served = (mock.request_count("acct-s1"), mock.request_count("acct-s2"));
        if served == (4, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served, (4, 0), "fill_first uses the first account");
}

#[actix_web::test]
async fn metrics_count_requests_attempts_and_accounts() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-m");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    log_rows(&app).await;
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"gpt2api_proxy_requests_total{endpoint="/v1/chat/completions",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"gpt2api_upstream_attempts_total{outcome="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gpt2api_pool_accounts{state="available"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gpt2api_usage_log_rows{result="written"} 1"#),
        "{text}"
    );
}

#[actix_web::test]
async fn two_instances_on_one_database_share_accounts_and_refresh_once() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-shared");
    let first = spawn_with_mock(&mock, |c| c.pool.reload_interval_seconds = 1).await;
    let second =
        crate::helpers::start(first.config.clone(), first.dir.clone(), first.database()).await;
    let (_, key) = create_key(&first, "client", |_| {}).await;
    add_account(&first, &account).await;
    // The second instance learns of the account from the database.
    let mut status = 0;
    for _ in 0..100 {
        status = chat(&second, &key, &ask("hi", false))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);

    mock.set_refresh_delay(Duration::from_millis(300));
    mock.set_behaviour("acct-shared", Behaviour::Unauthorized);
    let requests = (0..10).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        let key = key.clone();
        async move { chat(app, &key, &ask("hi", false)).await.status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        mock.refresh_calls("acct-shared"),
        1,
        "one refresh across both instances"
    );
    assert_eq!(mock.total_reuse_errors(), 0);
}

#[actix_web::test]
async fn upstream_traffic_goes_through_the_account_or_global_proxy() {
    let mock = MockUpstream::start();
    let proxied = mock.create_account("acct-proxied");
    // The upstream's host does not resolve: only a request sent through a proxy (the mock,
    // which answers absolute-form requests) can reach it.
    let app = spawn_with_mock(&mock, |c| {
        c.codex.base_url = "http://codex-upstream.invalid/backend-api/codex".into();
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
        c.pool.max_retries = 0;
    })
    .await;
    let row = add_account(&app, &proxied).await;
    let mut with_proxy: gpt2api::db::account::ActiveModel = row.into();
    with_proxy.proxy_url = sea_orm::Set(Some(mock.root_url()));
    let row = sea_orm::ActiveModelTrait::update(with_proxy, &app.state.db)
        .await
        .unwrap();
    app.state.pool.upsert(row).await.unwrap();
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let res = chat(&app, &key, &ask("via proxy", false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(mock.request_count("acct-proxied"), 1);

    let global = spawn_with_mock(&mock, |c| {
        c.codex.base_url = "http://codex-upstream.invalid/backend-api/codex".into();
        c.codex.proxy_url = Some(mock.root_url().into());
    })
    .await;
    add_account(&global, &mock.create_account("acct-global")).await;
    let (_, key) = create_key(&global, "client", |_| {}).await;
    assert_eq!(
        chat(&global, &key, &ask("via global proxy", false))
            .await
            .status(),
        200
    );
    assert_eq!(mock.request_count("acct-global"), 1);
}

#[actix_web::test]
async fn reasoning_and_an_empty_completed_output_are_rebuilt() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-rebuild");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;

    let body: Value = chat(
        &app,
        &key,
        &ask("[mock:reasoning] [mock:empty_output] think", false),
    )
    .await
    .json()
    .await
    .unwrap();
    let message = &body["choices"][0]["message"];
    assert!(
        message["content"].as_str().unwrap().contains("think"),
        "{body}"
    );
    assert!(
        !message["reasoning_content"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{body}"
    );
    assert!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    let text = chat(&app, &key, &ask("[mock:reasoning] think", true))
        .await
        .text()
        .await
        .unwrap();
    let reasoning: String = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["reasoning_content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(!reasoning.is_empty(), "{text}");

    let res: Value = reqwest::Client::new()
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-5", "input": "[mock:empty_output] rebuild me"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        res["output"].as_array().is_some_and(|o| !o.is_empty()),
        "{res}"
    );
    assert!(res.to_string().contains("rebuild me"));
}
