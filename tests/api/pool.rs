//! The pool's use of its accounts, through HTTP against the mock upstream: failures that never
//! cost the client (a bad hint, the upstream refusing a request, a refused token while the
//! OAuth endpoint is down), conversation affinity, quota-aware selection and the usage probe.

use std::time::{Duration, Instant};

use mock_upstream::{Behaviour, MockUpstream};
use serde_json::{json, Value};

use crate::helpers::pool::{
    account_row, add_account, ask, chat, create_key, spawn_with_mock, wait_for_row,
};
use crate::helpers::TestApp;

/// `POST` to a `/v1` path with a key, extra headers and a JSON body.
async fn post_v1(
    app: &TestApp,
    path: &str,
    key: &str,
    headers: &[(&str, &[u8])],
    body: &Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(key)
        .json(body);
    for (name, value) in headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    request.send().await.unwrap()
}

/// A request of a table of cases: path, extra headers, body, and what it names.
type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, Value, &'a str);

/// A one-message Responses body.
fn responses_body(text: &str) -> Value {
    json!({"model": "gpt-5", "input": text, "instructions": "be brief"})
}

/// Asserts that no account was touched: all available, no failure counted or stored.
async fn assert_untouched(app: &TestApp, ids: &[i32]) {
    let views = app.state.pool.snapshot().await.unwrap();
    for id in ids {
        let view = views.iter().find(|v| v.account_id == *id).unwrap();
        assert!(view.available, "account {id} still available: {view:?}");
        assert_eq!(view.consecutive_failures, 0, "account {id}: {view:?}");
        let row = account_row(app, *id).await;
        assert_eq!(row.error_count, 0, "account {id}: no failure stored");
        assert!(row.cooldown_until.is_none(), "account {id}: not cooling");
        assert!(
            row.last_error.is_none(),
            "account {id}: {:?}",
            row.last_error
        );
    }
}

#[actix_web::test]
async fn a_malformed_hint_answers_400_and_never_touches_an_account() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let mut ids = Vec::new();
    for name in ["acct-h1", "acct-h2", "acct-h3"] {
        ids.push(add_account(&app, &mock.create_account(name)).await.id);
    }
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let long = "k".repeat(257);

    let mut chat_body = ask("hi", false);
    chat_body["prompt_cache_key"] = json!("conv\u{1}42");
    let mut responses_bad = responses_body("hi");
    responses_bad["prompt_cache_key"] = json!("conv\n42");
    let cases: Vec<Case> = vec![
        (
            "/v1/chat/completions",
            vec![],
            chat_body,
            "prompt_cache_key",
        ),
        ("/v1/responses", vec![], responses_bad, "prompt_cache_key"),
        (
            "/v1/chat/completions",
            vec![("session_id", "caf\u{e9}".as_bytes())],
            ask("hi", false),
            "session_id",
        ),
        (
            "/v1/responses",
            vec![("session-id", long.as_bytes())],
            responses_body("hi"),
            "session-id",
        ),
        (
            "/v1/responses",
            vec![("x-codex-turn-state", b"two words")],
            responses_body("hi"),
            "x-codex-turn-state",
        ),
        (
            "/v1/responses",
            vec![],
            json!({"model": "gpt-5", "input": "hi", "prompt_cache_key": 42}),
            "prompt_cache_key",
        ),
    ];
    for (path, headers, body, param) in &cases {
        // Several times over: a request that cooled an account would show on the next ones.
        for _ in 0..3 {
            let res = post_v1(&app, path, &key, headers, body).await;
            assert_eq!(res.status(), 400, "{path} {param}");
            let error: Value = res.json().await.unwrap();
            assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
            assert_eq!(error["error"]["param"], *param, "{error}");
        }
    }
    assert_eq!(mock.total_requests(), 0, "nothing reached the upstream");
    assert_untouched(&app, &ids).await;
    // Every account still serves.
    for _ in 0..3 {
        assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    }
    for name in ["acct-h1", "acct-h2", "acct-h3"] {
        assert_eq!(mock.request_count(name), 1, "{name}");
    }
}

#[actix_web::test]
async fn the_upstreams_refusal_of_a_request_goes_back_and_leaves_the_account_alone() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
    })
    .await;
    let first = add_account(&app, &mock.create_account("acct-u1")).await;
    let second = add_account(&app, &mock.create_account("acct-u2")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    for (status, answered) in [(400, 400), (404, 404), (413, 413), (422, 422), (431, 400)] {
        mock.reset_records();
        mock.queue_behaviour("acct-u1", Behaviour::ServerError(status), 1);
        let res = chat(&app, &key, &ask("hi", false)).await;
        assert_eq!(res.status(), answered, "upstream {status}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_eq!(mock.total_requests(), 1, "upstream {status}: never retried");
        // The account is untouched: the next request goes to it again.
        let res = chat(&app, &key, &ask("hi", false)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(mock.request_count("acct-u1"), 2, "upstream {status}");
    }
    assert_eq!(mock.request_count("acct-u2"), 0);
    assert_untouched(&app, &[first.id, second.id]).await;
}

#[actix_web::test]
async fn with_the_oauth_endpoint_down_a_refused_account_costs_no_wait_and_is_not_retried() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let dead = add_account(&app, &mock.create_account("acct-o1")).await;
    add_account(&app, &mock.create_account("acct-o2")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour("acct-o1", Behaviour::Unauthorized);
    mock.set_oauth_down(true);

    // Round robin starts with acct-o1: its token is refused, the refresh cannot succeed (three
    // tries over about three seconds), and the request is served by acct-o2 meanwhile.
    let started = Instant::now();
    let res = chat(&app, &key, &ask("hi", false)).await;
    let took = started.elapsed();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("acct-o2"), "{content}");
    assert!(
        took < Duration::from_millis(1500),
        "waited {took:?} for a refresh"
    );
    assert_eq!(mock.request_count("acct-o1"), 1);

    // While the refresh runs and once it has failed, the account is not tried again.
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
        assert!(started.elapsed() < Duration::from_millis(1500));
    }
    let stored = wait_for_row(&app, dead.id, "the failed refresh cools it", |r| {
        r.cooldown_until.is_some()
    })
    .await;
    assert_eq!(
        stored.status,
        gpt2api::db::account::AccountStatus::RefreshFailed
    );
    assert!(stored.cooldown_until.unwrap() > chrono::Utc::now() + chrono::Duration::seconds(30));
    assert!(mock.oauth_outage_calls() >= 1);
    for _ in 0..4 {
        assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
    }
    assert_eq!(
        mock.request_count("acct-o1"),
        1,
        "not retried on every request"
    );
    assert_eq!(mock.request_count("acct-o2"), 9);
}

#[actix_web::test]
async fn with_no_other_account_a_request_waits_for_the_refresh_but_only_so_long() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| c.pool.refresh_wait_seconds = 1).await;
    add_account(&app, &mock.create_account("acct-w")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour("acct-w", Behaviour::Unauthorized);

    // The OAuth endpoint answers, slowly: the only account's request waits for the refresh.
    mock.set_refresh_delay(Duration::from_millis(300));
    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200, "served after the refresh");
    assert_eq!(mock.refresh_successes("acct-w"), 1);

    // The OAuth endpoint is down: the wait ends after refresh_wait_seconds.
    mock.set_refresh_delay(Duration::ZERO);
    mock.set_behaviour("acct-w", Behaviour::Unauthorized);
    mock.set_oauth_down(true);
    let started = Instant::now();
    let res = chat(&app, &key, &ask("hi", false)).await;
    let took = started.elapsed();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_available_account");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "waited {took:?}"
    );
}

#[actix_web::test]
async fn a_refused_token_refreshes_in_the_background_while_another_account_serves() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
    })
    .await;
    let first = add_account(&app, &mock.create_account("acct-b1")).await;
    add_account(&app, &mock.create_account("acct-b2")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    mock.set_behaviour("acct-b1", Behaviour::Unauthorized);
    mock.set_refresh_delay(Duration::from_secs(2));

    let started = Instant::now();
    let res = chat(&app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let body: Value = res.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("acct-b2"));
    // Once refreshed, the first account serves again (fill_first prefers it).
    let current = mock.account("acct-b1").unwrap();
    wait_for_row(&app, first.id, "the refreshed token is stored", |r| {
        r.refresh_token != current.refresh_token
    })
    .await;
    let res = chat(&app, &key, &ask("hi", false)).await;
    let body: Value = res.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("acct-b1"));
    assert_eq!(mock.refresh_calls("acct-b1"), 1);
}
