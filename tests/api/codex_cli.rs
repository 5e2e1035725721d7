//! The Codex CLI as a client: its headers both ways, turn-state affinity, the model catalog in
//! both shapes, every input item type it sends, and remote compaction through the gateway.

use std::time::Duration;

use mock_upstream::{model_info, MockUpstream};
use serde_json::{json, Value};

use crate::helpers::pool::{add_account, create_key, spawn_with_mock, sse_data};
use crate::helpers::TestApp;

/// The headers the Codex CLI sends on `POST /responses` (CODEX.md §7), with sample values.
const CLI_HEADERS: [(&str, &str); 10] = [
    ("session-id", "019a-thread"),
    ("thread-id", "019a-thread"),
    ("x-client-request-id", "019a-thread"),
    ("x-codex-window-id", "019a-thread:0"),
    (
        "x-codex-turn-metadata",
        r#"{"turn_id":"t-1","cwd":"/home/me/my project"}"#,
    ),
    ("x-codex-beta-features", "unified_exec,apply_patch_freeform"),
    ("x-codex-turn-state", "ts-client-echo"),
    ("x-openai-internal-codex-responses-lite", "true"),
    ("x-openai-subagent", "review"),
    ("x-codex-parent-thread-id", "019a-parent"),
];

/// `POST /v1/responses` with a key and extra headers.
async fn responses(
    app: &TestApp,
    key: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url("/v1/responses"))
        .bearer_auth(key)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("responses request")
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// A streamed Responses body as the CLI sends it.
fn cli_body(input: &[Value]) -> Value {
    json!({
        "model": "gpt-5.5", "instructions": "You are Codex.", "input": input,
        "tools": [], "tool_choice": "auto", "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"}, "store": false, "stream": true,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "019a-thread",
        "text": {"verbosity": "low"},
        "client_metadata": {"x-codex-window-id": "019a-thread:0"}
    })
}

#[actix_web::test]
async fn the_clis_headers_reach_the_upstream_and_its_answer_headers_come_back() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-h");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "cli", |_| {}).await;

    let res = responses(&app, &key, &CLI_HEADERS, &cli_body(&[user("hi")])).await;
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");

    let sent = mock.last_request().unwrap();
    for (name, value) in CLI_HEADERS {
        assert_eq!(sent.header(name), Some(value), "{name} upstream");
    }
    // Older clients' name of the session header goes along too.
    assert_eq!(sent.header("session_id"), Some("019a-thread"));

    let back = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(back("x-codex-turn-state"), Some("ts-client-echo"));
    assert_eq!(back("openai-model"), Some("gpt-5.5"));
    assert_eq!(back("x-reasoning-included"), Some("true"));
    assert!(back("x-models-etag").is_some_and(|e| e.starts_with('"')));
    assert_eq!(back("x-codex-primary-used-percent"), Some("25"));
    assert_eq!(back("x-codex-secondary-window-minutes"), Some("10080"));
    // The gateway's own request id stays; the upstream's comes under another name.
    let upstream_id = back("x-upstream-request-id").expect("upstream request id");
    let own_id = back("x-request-id").expect("gateway request id");
    assert_ne!(upstream_id, own_id);
}

#[actix_web::test]
async fn a_forwarded_header_that_breaks_its_rule_is_refused_before_the_upstream() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-bad");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "cli", |_| {}).await;

    let long = "m".repeat(9000);
    for (name, value) in [
        ("x-codex-window-id", "two words"),
        ("x-client-request-id", "caf\u{e9}"),
        ("x-codex-turn-metadata", long.as_str()),
    ] {
        let mut request = reqwest::Client::new()
            .post(app.url("/v1/responses"))
            .bearer_auth(&key)
            .json(&cli_body(&[user("hi")]));
        request = request.header(
            name,
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), 400, "{name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["param"], name);
        assert!(!body.to_string().contains(value), "the value is not echoed");
    }
    // Metadata may hold spaces and non-ASCII (a workspace path): it goes through as sent.
    let path = "{\"cwd\":\"/home/j\u{f6}rg/my project\"}";
    let res = reqwest::Client::new()
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .header(
            "x-codex-turn-metadata",
            reqwest::header::HeaderValue::from_bytes(path.as_bytes()).unwrap(),
        )
        .json(&cli_body(&[user("hi")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        mock.total_requests(),
        1,
        "only the valid request went upstream"
    );
}

#[actix_web::test]
async fn requests_of_one_turn_stay_on_the_turns_account() {
    let mock = MockUpstream::start();
    let a = mock.create_account("acct-1");
    let b = mock.create_account("acct-2");
    let app = spawn_with_mock(&mock, |c| {
        c.pool.strategy = gpt2api::config::Strategy::RoundRobin;
    })
    .await;
    add_account(&app, &a).await;
    add_account(&app, &b).await;
    let (_, key) = create_key(&app, "cli", |_| {}).await;
    // Bodies without a session or cache key, each its own conversation: only the turn state
    // can tie them together.
    let body =
        |text: &str| json!({"model": "gpt-5.5", "input": text, "stream": false, "store": false});

    let first = responses(&app, &key, &[], &body("first")).await;
    assert_eq!(first.status(), 200);
    let turn = first.headers()["x-codex-turn-state"]
        .to_str()
        .unwrap()
        .to_owned();
    let home = mock
        .last_request()
        .unwrap()
        .header("chatgpt-account-id")
        .unwrap()
        .to_owned();

    // Without the turn state, round-robin moves on to the other account...
    let other = responses(&app, &key, &[], &body("elsewhere")).await;
    assert_eq!(other.status(), 200);
    let elsewhere = mock.last_request().unwrap();
    assert_ne!(elsewhere.header("chatgpt-account-id"), Some(home.as_str()));

    // ...but every request carrying the turn's state goes back to the turn's account.
    for text in ["tool output", "another output", "last output"] {
        let res = responses(&app, &key, &[("x-codex-turn-state", &turn)], &body(text)).await;
        assert_eq!(res.status(), 200);
        let sent = mock.last_request().unwrap();
        assert_eq!(
            sent.header("chatgpt-account-id"),
            Some(home.as_str()),
            "{text}"
        );
        assert_eq!(sent.header("x-codex-turn-state"), Some(turn.as_str()));
    }
}

/// `GET path` with a key and extra headers.
async fn get(app: &TestApp, key: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(app.url(path)).bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The Codex-shaped catalog once `done` holds for it; panics after ten seconds.
async fn catalog_when(app: &TestApp, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let res = get(app, key, "/v1/models?client_version=0.171.0", &[]).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        if done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the catalog never became what the test waits for");
}

fn slugs(catalog: &Value) -> Vec<String> {
    catalog["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["slug"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn the_upstream_catalog_is_served_in_both_shapes_with_its_etag() {
    let mock = MockUpstream::start();
    mock.set_catalog(Some(vec![
        model_info("gpt-6-codex", "list", 1),
        model_info("gpt-5.5", "list", 2),
        model_info("internal-review", "hide", 50),
    ]));
    let account = mock.create_account("acct-c");
    let app = spawn_with_mock(&mock, |c| {
        c.codex.catalog_refresh_seconds = 1;
        c.codex.models = vec!["gpt-5.5".into(), "my-extra".into()];
        c.codex.list_effort_aliases = true;
    })
    .await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "cli", |_| {}).await;

    let catalog = catalog_when(&app, &key, |c| c["models"][0]["slug"] == "gpt-6-codex").await;
    assert_eq!(
        slugs(&catalog),
        ["gpt-6-codex", "gpt-5.5", "internal-review"]
    );
    assert_eq!(catalog["models"][0], model_info("gpt-6-codex", "list", 1));
    assert!(mock.catalog_requests() >= 1);

    let res = get(&app, &key, "/v1/models?client_version=0.171.0", &[]).await;
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["x-models-etag"].to_str().unwrap(), etag);
    // The path for the CLI's model_catalog_url answers the same, and an unchanged catalog 304.
    let res = get(&app, &key, "/v1/codex/models?client_version=0.171.0", &[]).await;
    assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(res.json::<Value>().await.unwrap(), catalog);
    let res = get(&app, &key, "/v1/codex/models", &[("if-none-match", &etag)]).await;
    assert_eq!(res.status(), 304);

    // OpenAI's shape: visible catalog models, the configured extra, and effort aliases.
    let res = get(&app, &key, "/v1/models", &[]).await;
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(&ids[..3], ["gpt-6-codex", "gpt-5.5", "my-extra"]);
    assert!(ids.contains(&"gpt-6-codex-high") && ids.contains(&"my-extra-xhigh"));
    assert!(!ids.iter().any(|id| id.starts_with("internal-review")));
    assert_eq!(
        get(&app, &key, "/v1/models/gpt-6-codex-low", &[])
            .await
            .status(),
        200
    );

    // A key limited to some models sees only those, in both shapes.
    let (_, limited) = create_key(&app, "limited", |k| {
        k.allowed_models = sea_orm::Set(Some(json!(["gpt-5.5"]).to_string()));
    })
    .await;
    let res = get(&app, &limited, "/v1/models?client_version=0.171.0", &[]).await;
    let mine: Value = res.json().await.unwrap();
    assert_eq!(slugs(&mine), ["gpt-5.5"]);

    // A change upstream reaches the clients with a new ETag.
    mock.set_catalog(Some(vec![model_info("gpt-7", "list", 1)]));
    let changed = catalog_when(&app, &key, |c| c["models"][0]["slug"] == "gpt-7").await;
    assert_eq!(slugs(&changed), ["gpt-7"]);
    let res = get(
        &app,
        &key,
        "/v1/models?client_version=0.171.0",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
}

#[actix_web::test]
async fn the_configured_models_are_served_when_the_upstream_catalog_fails() {
    let mock = MockUpstream::start();
    mock.set_catalog_status(Some(503));
    let account = mock.create_account("acct-f");
    let app = spawn_with_mock(&mock, |c| {
        c.codex.catalog_refresh_seconds = 1;
        c.codex.models = vec!["gpt-5.5".into(), "gpt-5.4-mini".into()];
    })
    .await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "cli", |_| {}).await;
    assert!(
        mock.wait_until(Duration::from_secs(10), |m| m.catalog_requests() >= 1)
            .await,
        "the gateway tried the upstream catalog"
    );

    let catalog = catalog_when(&app, &key, |_| true).await;
    assert_eq!(slugs(&catalog), ["gpt-5.5", "gpt-5.4-mini"]);
    for model in catalog["models"].as_array().unwrap() {
        for field in [
            "display_name",
            "supported_reasoning_levels",
            "shell_type",
            "visibility",
            "supported_in_api",
            "priority",
            "base_instructions",
            "support_verbosity",
            "truncation_policy",
            "supports_parallel_tool_calls",
            "experimental_supported_tools",
        ] {
            assert!(model.get(field).is_some(), "{field} in {model}");
        }
    }
    let list: Value = get(&app, &key, "/v1/models", &[])
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-5.5", "gpt-5.4-mini"]);

    // Once the upstream answers again, its catalog replaces the configured one.
    mock.set_catalog_status(None);
    let catalog = catalog_when(&app, &key, |c| c["models"].as_array().unwrap().len() == 3).await;
    assert_eq!(
        slugs(&catalog),
        ["gpt-5.5", "gpt-5.4-mini", "codex-auto-review"]
    );
}

/// Every input item type the CLI sends, in an order the backend accepts.
fn every_item() -> Vec<Value> {
    vec![
        json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]}),
        user("start"),
        json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA+/=\\u00e9"}),
        json!({"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}),
        json!({"type": "function_call_output", "call_id": "c1", "output": "Cargo.toml"}),
        json!({"type": "custom_tool_call", "id": "ct_1", "call_id": "c2", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"}),
        json!({"type": "custom_tool_call_output", "call_id": "c2", "output": "ok"}),
        json!({"type": "local_shell_call", "id": "ls_1", "call_id": "c3", "status": "completed", "action": {"type": "exec", "command": ["ls"]}}),
        json!({"type": "tool_search_call", "call_id": "c4", "execution": "client", "arguments": {"query": "x"}}),
        json!({"type": "tool_search_output", "call_id": "c4", "execution": "client", "tools": []}),
        json!({"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}}),
        json!({"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "iVBOR="}),
        json!({"type": "additional_tools", "tools": [{"type": "namespace", "name": "mcp__x", "tools": []}]}),
        json!({"type": "agent_message", "author": "worker", "content": [{"type": "input_text", "text": "done"}]}),
        json!({"type": "context_compaction", "id": "cc_1", "encrypted_content": "Q0M="}),
        user("continue"),
    ]
}

#[actix_web::test]
async fn every_cli_item_and_field_reaches_the_upstream_and_compaction_round_trips() {
    let mock = MockUpstream::start();
    let account = mock.create_account("acct-x");
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &account).await;
    let (_, key) = create_key(&app, "cli", |_| {}).await;

    let mut body = cli_body(&every_item());
    body["tools"] = json!([
        {"type": "function", "name": "exec_command", "parameters": {"type": "object"}, "strict": false},
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
        {"type": "namespace", "name": "mcp__x", "tools": []},
        {"type": "tool_search", "execution": "client"},
        {"type": "web_search"},
        {"type": "image_generation"}
    ]);
    body["service_tier"] = json!("priority");
    body["reasoning"]["context"] = json!("all_turns");
    let res = responses(&app, &key, &CLI_HEADERS, &body).await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    let sent = mock.last_request().unwrap();
    assert_eq!(sent.body["input"], json!(every_item()));
    for field in [
        "tools",
        "client_metadata",
        "text",
        "service_tier",
        "include",
        "reasoning",
        "prompt_cache_key",
        "tool_choice",
    ] {
        assert_eq!(sent.body[field], body[field], "{field}");
    }

    // Remote compaction: the trigger last, answered with exactly one compaction item.
    let mut input = every_item();
    input.push(json!({"type": "compaction_trigger"}));
    let res = responses(&app, &key, &CLI_HEADERS, &cli_body(&input)).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let items: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect();
    assert_eq!(items.len(), 1, "{text}");
    let compaction = items[0].clone();
    assert_eq!(compaction["type"], "compaction");
    assert!(compaction["id"].as_str().unwrap().starts_with("cmp_"));
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    assert_eq!(mock.last_request().unwrap().body["input"], json!(input));

    // The next request starts from the compaction item, which reaches the upstream unchanged.
    let next = vec![compaction.clone(), user("after compaction")];
    let res = responses(&app, &key, &CLI_HEADERS, &cli_body(&next)).await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    let sent = mock.last_request().unwrap();
    assert_eq!(sent.body["input"], json!(next));
    assert_eq!(
        sent.body["input"][0]["encrypted_content"],
        compaction["encrypted_content"]
    );

    // As upstream, the trigger anywhere but last is the client's error, passed back as such.
    let misplaced = vec![json!({"type": "compaction_trigger"}), user("x")];
    let res = responses(&app, &key, &[], &cli_body(&misplaced)).await;
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert!(error.to_string().contains("compaction_trigger"), "{error}");
}
