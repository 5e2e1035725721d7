//! The pool's use of its accounts, through HTTP against the mock upstream: failures that never
//! cost the client (a bad hint, the upstream refusing a request, a refused token while the
//! OAuth endpoint is down), conversation affinity, quota-aware selection and the usage probe.

use std::time::{Duration, Instant};

use gpt2api::actors::account_pool::AccountView;
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

/// The pool's live view of an account once `done` holds for it; panics after five seconds.
async fn wait_for_view(
    app: &TestApp,
    id: i32,
    what: &str,
    done: impl Fn(&AccountView) -> bool,
) -> AccountView {
    for _ in 0..250 {
        let snapshot = app.state.pool.snapshot().await.unwrap();
        if let Some(view) = snapshot.accounts.into_iter().find(|v| v.account_id == id) {
            if done(&view) {
                return view;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("account {id}: {what} never happened");
}

/// Asserts that no account was touched: all available, no failure counted or stored.
async fn assert_untouched(app: &TestApp, ids: &[i32]) {
    let views = app.state.pool.snapshot().await.unwrap();
    for id in ids {
        let view = views.accounts.iter().find(|v| v.account_id == *id).unwrap();
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
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::RoundRobin;
    })
    .await;
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
    // Every account still serves (three new conversations, placed round robin).
    for i in 0..3 {
        let res = chat(&app, &key, &ask(&format!("hi {i}"), false)).await;
        assert_eq!(res.status(), 200);
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
    wait_for_view(&app, first.id, "the refresh ends", |v| {
        v.available && !v.refreshing
    })
    .await;
    let stored = account_row(&app, first.id).await;
    assert_eq!(
        Some(stored.refresh_token),
        mock.current_refresh_token("acct-b1")
    );
    // (A new conversation: the first one is pinned to acct-b2 now.)
    let res = chat(&app, &key, &ask("another", false)).await;
    let body: Value = res.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("acct-b1"));
    assert_eq!(mock.refresh_calls("acct-b1"), 1);
}

/// The account named in the mock's answer (`Hello from <account>! ...`).
fn served_by(text: &str) -> String {
    text.split("Hello from ")
        .nth(1)
        .and_then(|rest| rest.split('!').next())
        .unwrap_or_else(|| panic!("no account in {text:?}"))
        .to_owned()
}

/// How a test conversation names itself.
#[derive(Clone, Debug)]
enum Hint {
    /// The body's `prompt_cache_key`.
    PromptCacheKey(&'static str),
    /// A session header.
    Header(&'static str, &'static str),
    /// Nothing: the client resends the history.
    None,
}

/// A multi-turn conversation that resends its history, over either endpoint.
struct Conversation {
    responses: bool,
    hint: Hint,
    history: Vec<Value>,
}

impl Conversation {
    fn new(responses: bool, hint: Hint, system: &str) -> Self {
        let history = if responses {
            vec![json!({"type": "message", "role": "developer",
                "content": [{"type": "input_text", "text": system}]})]
        } else {
            vec![json!({"role": "system", "content": system})]
        };
        Self {
            responses,
            hint,
            history,
        }
    }

    /// Sends the next user message; answers the account that served it.
    async fn turn(&mut self, app: &TestApp, key: &str, text: &str) -> String {
        let user = if self.responses {
            json!({"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}]})
        } else {
            json!({"role": "user", "content": text})
        };
        self.history.push(user);
        let (path, mut body) = if self.responses {
            (
                "/v1/responses",
                json!({"model": "gpt-5", "input": self.history, "store": false}),
            )
        } else {
            (
                "/v1/chat/completions",
                json!({"model": "gpt-5", "messages": self.history}),
            )
        };
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        match &self.hint {
            Hint::PromptCacheKey(pck) => body["prompt_cache_key"] = json!(pck),
            Hint::Header(name, value) => headers.push((name, value.as_bytes())),
            Hint::None => {}
        }
        let res = post_v1(app, path, key, &headers, &body).await;
        assert_eq!(res.status(), 200, "{path} {:?}", self.hint);
        let answer: Value = res.json().await.unwrap();
        let content = if self.responses {
            answer["output"][0]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        } else {
            answer["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        self.history.push(if self.responses {
            json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": content}]})
        } else {
            json!({"role": "assistant", "content": content})
        });
        served_by(&content)
    }
}

/// An app with `n` mock accounts (`<prefix>-1`...) and a key, round robin.
async fn app_with_accounts(mock: &MockUpstream, prefix: &str, n: usize) -> (TestApp, String) {
    let app = spawn_with_mock(mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::RoundRobin;
    })
    .await;
    for i in 1..=n {
        add_account(&app, &mock.create_account(&format!("{prefix}-{i}"))).await;
    }
    let (_, key) = create_key(&app, "client", |_| {}).await;
    (app, key)
}

#[actix_web::test]
async fn a_conversation_stays_on_its_account_with_every_kind_of_hint_and_with_none() {
    let mock = MockUpstream::start();
    let (app, key) = app_with_accounts(&mock, "acct-st", 4).await;
    let hints = [
        Hint::PromptCacheKey("conv-pck"),
        Hint::Header("session_id", "sess-underscore"),
        Hint::Header("session-id", "sess-dash"),
        Hint::Header("conversation_id", "conv-header"),
        Hint::Header("thread-id", "thread-1"),
        Hint::None,
    ];
    let mut noise = 0;
    for responses in [false, true] {
        for hint in &hints {
            let system = format!("system of {hint:?} {responses}");
            let mut conversation = Conversation::new(responses, hint.clone(), &system);
            let mut accounts = Vec::new();
            let mut keys = Vec::new();
            for turn in 0..5 {
                accounts.push(conversation.turn(&app, &key, &format!("turn {turn}")).await);
                // What went upstream: a stable prompt_cache_key and session header.
                let sent = mock.last_request().unwrap();
                let pck = sent.body["prompt_cache_key"].as_str().unwrap().to_owned();
                let session = sent.header("session_id").unwrap().to_owned();
                assert_eq!(sent.header("session-id"), Some(session.as_str()));
                match hint {
                    Hint::PromptCacheKey(k) => assert_eq!(pck, *k),
                    Hint::Header(_, v) => assert_eq!((pck.as_str(), session.as_str()), (*v, *v)),
                    Hint::None => {
                        assert!(pck.starts_with("gpt2api-"), "{pck}");
                        assert_eq!(session, pck);
                    }
                }
                keys.push((pck, session));
                // Another, new conversation moves the round-robin cursor in between.
                noise += 1;
                let res = chat(&app, &key, &ask(&format!("noise {noise}"), false)).await;
                assert_eq!(res.status(), 200);
            }
            assert!(
                accounts.iter().all(|a| *a == accounts[0]),
                "{hint:?} (responses: {responses}): {accounts:?}"
            );
            assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        }
    }
    // The new conversations spread over every account.
    for i in 1..=4 {
        assert!(mock.request_count(&format!("acct-st-{i}")) >= 10);
    }
    // Counted in /metrics. A hint names the same conversation on both endpoints: the five
    // hinted conversations of the Responses round went back to where their Chat twins were.
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"gpt2api_affinity_lookups_total{result="hit"} 53"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gpt2api_affinity_lookups_total{result="new"} 67"#),
        "{text}"
    );
    assert!(text.contains("gpt2api_affinity_pins 67"), "{text}");
}

#[actix_web::test]
async fn a_pinned_conversation_moves_when_its_account_cannot_serve_and_stays_moved() {
    let mock = MockUpstream::start();
    let (app, key) = app_with_accounts(&mock, "acct-mv", 2).await;
    let mut conversation = Conversation::new(false, Hint::None, "moving");
    let first = conversation.turn(&app, &key, "one").await;
    assert_eq!(conversation.turn(&app, &key, "two").await, first);
    mock.set_behaviour(
        &first,
        Behaviour::UsageLimit {
            resets_in_seconds: 1,
        },
    );
    let started = Instant::now();
    let moved = conversation.turn(&app, &key, "three").await;
    assert_ne!(moved, first, "re-pinned");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a pin never makes it wait"
    );
    mock.set_behaviour(&first, Behaviour::Ok);
    // The first account is back after its reset, and the conversation stays where it moved.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for turn in 0..4 {
        assert_eq!(
            conversation
                .turn(&app, &key, &format!("later {turn}"))
                .await,
            moved
        );
    }
    let fresh = chat(&app, &key, &ask("a new one", false)).await;
    let body: Value = fresh.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(served_by(content), first, "the first account serves again");
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"gpt2api_affinity_lookups_total{result="moved"} 1"#),
        "{text}"
    );
}

#[actix_web::test]
async fn new_conversations_spread_over_the_accounts() {
    let mock = MockUpstream::start();
    let (app, key) = app_with_accounts(&mock, "acct-sp", 4).await;
    let mut conversations: Vec<Conversation> = (0..8)
        .map(|i| Conversation::new(i % 2 == 0, Hint::None, &format!("spread {i}")))
        .collect();
    let mut placed = std::collections::HashMap::<String, usize>::new();
    for turn in 0..3 {
        for conversation in &mut conversations {
            let account = conversation.turn(&app, &key, &format!("turn {turn}")).await;
            if turn == 0 {
                *placed.entry(account).or_default() += 1;
            }
        }
    }
    assert_eq!(placed.len(), 4, "{placed:?}");
    assert!(placed.values().all(|n| *n == 2), "{placed:?}");
}

#[actix_web::test]
async fn two_api_keys_with_the_same_conversation_never_share_a_pin() {
    let mock = MockUpstream::start();
    let (app, first_key) = app_with_accounts(&mock, "acct-tn", 2).await;
    let (_, second_key) = create_key(&app, "other tenant", |_| {}).await;
    for hint in [Hint::PromptCacheKey("same-conversation"), Hint::None] {
        let mut mine = Conversation::new(false, hint.clone(), "identical");
        let mut theirs = Conversation::new(false, hint.clone(), "identical");
        // Round robin places the second tenant's first turn on the other account: had it
        // followed the first tenant's pin, both would share one.
        let a = mine.turn(&app, &first_key, "hello").await;
        let b = theirs.turn(&app, &second_key, "hello").await;
        assert_ne!(a, b, "{hint:?}");
        for turn in 0..3 {
            let text = format!("turn {turn}");
            assert_eq!(mine.turn(&app, &first_key, &text).await, a, "{hint:?}");
            assert_eq!(theirs.turn(&app, &second_key, &text).await, b, "{hint:?}");
        }
    }
}

#[actix_web::test]
async fn the_turn_state_passes_both_ways() {
    let mock = MockUpstream::start();
    let (app, key) = app_with_accounts(&mock, "acct-ts", 2).await;
    for (path, body) in [
        ("/v1/chat/completions", ask("turn", true)),
        ("/v1/responses", responses_body("turn")),
    ] {
        let res = post_v1(&app, path, &key, &[], &body).await;
        assert_eq!(res.status(), 200);
        let state = res.headers()["x-codex-turn-state"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(state.starts_with("ts-"), "{state}");
        let _ = res.bytes().await.unwrap();
        let res = post_v1(
            &app,
            path,
            &key,
            &[("x-codex-turn-state", state.as_bytes())],
            &body,
        )
        .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-codex-turn-state"], state.as_str());
        let sent = mock.last_request().unwrap();
        assert_eq!(sent.header("x-codex-turn-state"), Some(state.as_str()));
    }
}

/// The mock's economy with a small 5-hour budget: a turn spends about half a percent of it.
fn small_budget() -> mock_upstream::Economy {
    mock_upstream::Economy {
        primary_budget: 10_000.0,
        ..mock_upstream::Economy::default()
    }
}

#[actix_web::test]
async fn the_ceiling_is_respected_and_no_usage_limit_reaches_the_upstream() {
    let mock = MockUpstream::start();
    mock.set_economy(Some(small_budget()));
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
        c.pool.usage_probe_interval_seconds = 0;
    })
    .await;
    let first = add_account(&app, &mock.create_account("acct-c1")).await;
    add_account(&app, &mock.create_account("acct-c2")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;

    let mut conversation = Conversation::new(false, Hint::None, "near the ceiling");
    assert_eq!(conversation.turn(&app, &key, "start").await, "acct-c1");
    mock.set_usage("acct-c1", 96.0, 10.0);
    let mut served = Vec::new();
    for turn in 0..12 {
        served.push(conversation.turn(&app, &key, &format!("turn {turn}")).await);
    }
    // It stayed while there was headroom, then moved for good once the headers said 98%.
    let moved_at = served.iter().position(|a| a == "acct-c2").expect("moved");
    assert!(moved_at >= 1, "{served:?}");
    assert!(
        served[moved_at..].iter().all(|a| a == "acct-c2"),
        "{served:?}"
    );
    assert_eq!(
        mock.usage_limit_refusals(),
        0,
        "no usage limit reached the upstream"
    );
    let view = app
        .state
        .pool
        .snapshot()
        .await
        .unwrap()
        .accounts
        .into_iter()
        .find(|v| v.account_id == first.id)
        .unwrap();
    let used = view.rate_limits.unwrap().primary_used_percent.unwrap();
    assert!((98.0..100.0).contains(&used), "{used}");
    assert!(!view.available && view.over_ceiling_until.is_some());
    // New conversations skip it too, though fill_first would take it first.
    let res = chat(&app, &key, &ask("a new one", false)).await;
    let body: Value = res.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(served_by(content), "acct-c2");
}

#[actix_web::test]
async fn the_probe_shows_a_new_accounts_limits_and_sees_an_early_reset() {
    let mock = MockUpstream::start();
    mock.set_economy(Some(small_budget()));
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
        c.pool.usage_probe_interval_seconds = 1;
    })
    .await;
    mock.create_account("acct-p1");
    mock.create_account("acct-p2");
    mock.set_usage("acct-p1", 42.0, 7.0);
    let first = add_account(&app, &mock.account("acct-p1").unwrap()).await;
    add_account(&app, &mock.account("acct-p2").unwrap()).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;

    // Before any request, the probe brings the windows in.
    let view = wait_for_view(&app, first.id, "the first probe", |v| {
        v.usage_checked_at.is_some()
    })
    .await;
    let limits = view.rate_limits.unwrap();
    assert_eq!(limits.primary_used_percent, Some(42.0));
    assert_eq!(limits.secondary_used_percent, Some(7.0));
    assert_eq!(limits.primary_window_minutes, Some(300));
    assert_eq!(
        mock.request_count("acct-p1"),
        0,
        "nothing was spent to learn it"
    );
    assert!(mock.usage_calls("acct-p1") >= 1);

    // Its limit is reached: the request moves on, the account cools until the reset (hours).
    mock.set_usage("acct-p1", 100.0, 7.0);
    let res = chat(&app, &key, &ask("spent", false)).await;
    let body: Value = res.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(served_by(content), "acct-p2");
    let cooling = wait_for_view(&app, first.id, "the usage-limit cooldown", |v| !v.available).await;
    assert!(cooling.cooldown_until.unwrap() > chrono::Utc::now() + chrono::Duration::hours(1));

    // The window resets early: the probe puts the account back at once.
    mock.reset_usage("acct-p1");
    wait_for_view(&app, first.id, "the early reset", |v| v.available).await;
    let res = chat(&app, &key, &ask("back again", false)).await;
    let body: Value = res.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(served_by(content), "acct-p1");
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"gpt2api_usage_probes_total{result="ok"}"#),
        "{metrics}"
    );
}

#[actix_web::test]
async fn quota_aware_places_new_conversations_by_headroom() {
    let mock = MockUpstream::start();
    mock.set_economy(Some(small_budget()));
    let app = spawn_with_mock(&mock, |c| c.pool.usage_probe_interval_seconds = 1).await;
    assert_eq!(
        app.state.settings.get().strategy,
        gpt2api::settings::Strategy::QuotaAware,
        "the default"
    );
    let mut ids = Vec::new();
    for (name, used) in [("acct-q1", 70.0), ("acct-q2", 5.0), ("acct-q3", 60.0)] {
        mock.create_account(name);
        mock.set_usage(name, used, 10.0);
        ids.push(add_account(&app, &mock.account(name).unwrap()).await.id);
    }
    let (_, key) = create_key(&app, "client", |_| {}).await;
    for id in &ids {
        wait_for_view(&app, *id, "the first probe", |v| {
            v.usage_checked_at.is_some()
        })
        .await;
    }
    // In proportion to headroom: 95 : 30 : 40.
    let mut placed = std::collections::HashMap::<String, usize>::new();
    for i in 0..20 {
        let res = chat(&app, &key, &ask(&format!("conversation {i}"), false)).await;
        let body: Value = res.json().await.unwrap();
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        *placed.entry(served_by(content)).or_default() += 1;
    }
    let count = |name: &str| placed.get(name).copied().unwrap_or(0);
    assert!(count("acct-q2") >= 9, "{placed:?}");
    assert!(count("acct-q3") >= 2 && count("acct-q1") >= 2, "{placed:?}");
    assert!(
        count("acct-q2") > count("acct-q3") + count("acct-q1"),
        "{placed:?}"
    );
    // With equal headroom, new conversations spread over all of them.
    for name in ["acct-q1", "acct-q2", "acct-q3"] {
        mock.set_usage(name, 20.0, 10.0);
    }
    mock.reset_records();
    let started = Instant::now();
    loop {
        let views = app.state.pool.snapshot().await.unwrap().accounts;
        let all_low = views.iter().all(|v| {
            v.rate_limits
                .as_ref()
                .and_then(|l| l.primary_used_percent)
                .is_some_and(|p| p < 30.0)
        });
        if all_low {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "probes see 20%");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..30 {
        chat(&app, &key, &ask(&format!("spread {i}"), false)).await;
    }
    for name in ["acct-q1", "acct-q2", "acct-q3"] {
        let n = mock.request_count(name);
        assert!((3..=20).contains(&n), "{name}: {n}");
    }
}

#[actix_web::test]
async fn the_operator_sees_pins_breakers_windows_cached_share_and_affinity() {
    let mock = MockUpstream::start();
    mock.set_economy(Some(small_budget()));
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::FillFirst;
        c.pool.usage_probe_interval_seconds = 0;
        c.pool.breaker_failures = 1;
    })
    .await;
    let home = add_account(&app, &mock.create_account("acct-v1")).await;
    let broken = add_account(&app, &mock.create_account("acct-v2")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let admin = app.admin_token().await;

    let mut conversation = Conversation::new(true, Hint::None, "watched");
    for turn in 0..4 {
        assert_eq!(
            conversation.turn(&app, &key, &format!("turn {turn}")).await,
            "acct-v1"
        );
    }
    // Both accounts fail once (a 429, then a 500: not two server errors in a row, so both are
    // tried and cooled): with a threshold of one, their breakers open.
    mock.queue_behaviour("acct-v1", Behaviour::RateLimited, 1);
    mock.set_behaviour("acct-v2", Behaviour::ServerError(500));
    let res = chat(&app, &key, &ask("fails twice", false)).await;
    assert_eq!(res.status(), 502);

    let tokens: Value = app.get("/admin/tokens", &admin).await.json().await.unwrap();
    let by_id = |id: i32| {
        tokens["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    let first = by_id(home.id);
    assert_eq!(first["pinned_conversations"], 1, "{first}");
    assert_eq!(first["breaker"], "open", "one failure opens it: {first}");
    assert!(first["usage_checked_at"].is_string(), "{first}");
    assert!(
        first["rate_limits"]["primary_used_percent"].is_number(),
        "{first}"
    );
    let second = by_id(broken.id);
    assert_eq!(second["breaker"], "open", "{second}");
    assert_eq!(second["cooldown_reason"], "breaker", "{second}");
    assert_eq!(
        second["pinned_conversations"], 1,
        "the failed request's conversation"
    );

    crate::helpers::pool::log_rows(&app).await;
    let usage: Value = app
        .get("/admin/stats/usage?range=24h", &admin)
        .await
        .json()
        .await
        .unwrap();
    let share = usage["cached_share"].as_f64().unwrap();
    assert!(share > 0.3 && share < 1.0, "{usage}");
    let hour = usage["series"].as_array().unwrap().last().unwrap().clone();
    assert!(hour["cached_tokens"].as_i64().unwrap() > 0, "{hour}");
    assert!(hour["cached_share"].as_f64().unwrap() > 0.3, "{hour}");
    let per_account = usage["by_token"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == home.id)
        .unwrap()
        .clone();
    assert!(
        per_account["cached_share"].as_f64().unwrap() > 0.3,
        "{per_account}"
    );
    assert_eq!(usage["affinity"]["hits"], 3, "{usage}");
    assert_eq!(usage["affinity"]["moved"], 0, "{usage}");
    assert_eq!(usage["affinity"]["hit_rate"], 1.0, "{usage}");

    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"gpt2api_input_tokens_total{cache="cached"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gpt2api_input_tokens_total{cache="uncached"}"#),
        "{metrics}"
    );
}
