//! The Responses API over WebSocket (`GET /v1/responses` upgraded), driven by a real WebSocket
//! client: incremental turns rebuilt into full inputs upstream, prewarm, error frames,
//! failover, pings, idle close, key checks on every turn and the transport of the log rows.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::pool::{add_account, create_key, log_rows, spawn_with_mock};
use crate::helpers::TestApp;
use mock_upstream::{Behaviour, MockUpstream};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The upgrade request of the Codex CLI.
fn upgrade_request(
    app: &TestApp,
    key: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = app.url("/v1/responses").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    headers.insert(
        "openai-beta",
        "responses_websockets=2026-02-06".parse().unwrap(),
    );
    headers.insert("session-id", "thread-ws-1".parse().unwrap());
    request
}

async fn connect(app: &TestApp, key: &str) -> Ws {
    let (ws, response) = tokio_tungstenite::connect_async(upgrade_request(app, key))
        .await
        .expect("the upgrade succeeds");
    assert_eq!(response.status(), 101);
    ws
}

async fn send(ws: &mut Ws, frame: &Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next message that is not a ping or pong, within ten seconds.
async fn next_message(ws: &mut Ws) -> Option<Message> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within ten seconds");
        match message {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(message)) => return Some(message),
            Some(Err(_)) | None => return None,
        }
    }
}

async fn next_event(ws: &mut Ws) -> Value {
    match next_message(ws).await {
        Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("a text frame expected, got {other:?}"),
    }
}

/// Sends a `response.create` and reads the turn's events up to `response.completed` or an
/// `error` frame (included).
async fn turn(ws: &mut Ws, frame: Value) -> Vec<Value> {
    let mut frame = frame;
    frame["type"] = json!("response.create");
    send(ws, &frame).await;
    let mut events = Vec::new();
    loop {
        let event = next_event(ws).await;
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        events.push(event);
        if kind == "response.completed" || kind == "error" {
            return events;
        }
    }
}

fn last(events: &[Value]) -> &Value {
    events.last().unwrap()
}

fn completed_id(events: &[Value]) -> String {
    let end = last(events);
    assert_eq!(end["type"], "response.completed", "{events:?}");
    end["response"]["id"].as_str().unwrap().to_owned()
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

fn developer(text: &str) -> Value {
    json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]})
}

/// The `type` of each item of the input the upstream last received.
fn upstream_types(mock: &MockUpstream) -> Vec<String> {
    let body = mock.last_request().unwrap().body;
    assert!(body.get("previous_response_id").is_none(), "{body}");
    body["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let kind = item["type"].as_str().unwrap_or("message");
            match item["role"].as_str() {
                Some(role) => format!("{kind}:{role}"),
                None => kind.to_owned(),
            }
        })
        .collect()
}

async fn setup(
    adjust: impl FnOnce(&mut gpt2api::config::Config),
) -> (MockUpstream, TestApp, String) {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, adjust).await;
    add_account(&app, &mock.create_account("acct-ws")).await;
    let (_, key) = create_key(&app, "cli", |_| {}).await;
    (mock, app, key)
}

const TOOLS: &str = r#"[{"type": "function", "name": "shell", "description": "run",
    "parameters": {"type": "object", "properties": {}}}]"#;

#[actix_web::test]
async fn a_prewarm_then_a_tool_call_round_trip_reach_the_upstream_as_full_inputs() {
    let (mock, app, key) = setup(|_| {}).await;
    let mut ws = connect(&app, &key).await;
    let tools: Value = serde_json::from_str(TOOLS).unwrap();

    // The prewarm is answered by the gateway itself.
    let warm = turn(
        &mut ws,
        json!({"model": "gpt-5", "generate": false, "input": [developer("base rules")],
               "tools": tools, "store": false, "stream": true}),
    )
    .await;
    assert_eq!(warm.len(), 2, "{warm:?}");
    assert_eq!(warm[0]["type"], "response.created");
    let warm_id = completed_id(&warm);
    assert_eq!(
        mock.total_requests(),
        0,
        "a prewarm never calls the upstream"
    );

    // The first turn continues the prewarm with only its new item; the model calls a tool.
    let first = turn(
        &mut ws,
        json!({"model": "gpt-5", "previous_response_id": warm_id, "tools": tools,
               "input": [user("list files [mock:tool_call]")], "store": false, "stream": true}),
    )
    .await;
    let first_id = completed_id(&first);
    assert_eq!(upstream_types(&mock), ["message:developer", "message:user"]);
    let metadata = first
        .iter()
        .find(|e| e["type"] == "response.metadata")
        .expect("the turn-state token is handed over");
    let turn_state = metadata["headers"]["x-codex-turn-state"]
        .as_str()
        .unwrap()
        .to_owned();
    let limits = first
        .iter()
        .find(|e| e["type"] == "codex.rate_limits")
        .expect("the account's usage windows are sent");
    assert!(limits["rate_limits"]["primary"]["used_percent"].is_number());
    let call = first
        .iter()
        .find(|e| e["type"] == "response.output_item.done" && e["item"]["type"] == "function_call")
        .expect("a function call")["item"]
        .clone();

    // The tool's result is the only new item; the upstream gets everything, with the call.
    let second = turn(
        &mut ws,
        json!({"model": "gpt-5", "previous_response_id": first_id, "tools": tools,
               "client_metadata": {"x-codex-turn-state": turn_state},
               "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "a.txt"}],
               "store": false, "stream": true}),
    )
    .await;
    completed_id(&second);
    let sent = mock.last_request().unwrap();
    assert_eq!(
        sent.header("x-codex-turn-state"),
        Some(turn_state.as_str()),
        "the echoed turn state goes upstream"
    );
    let types = upstream_types(&mock);
    let calls = types.iter().position(|t| t == "function_call").unwrap();
    assert_eq!(&types[..2], ["message:developer", "message:user"]);
    assert_eq!(types.last().unwrap(), "function_call_output");
    assert!(calls >= 2 && calls < types.len() - 1, "{types:?}");
    assert_eq!(sent.body["input"][calls]["call_id"], call["call_id"]);
    assert_eq!(mock.total_requests(), 2);
}

#[actix_web::test]
async fn an_unknown_previous_response_asks_for_the_full_input() {
    let (mock, app, key) = setup(|_| {}).await;
    let mut ws = connect(&app, &key).await;
    let refused = turn(
        &mut ws,
        json!({"model": "gpt-5", "previous_response_id": "resp_unknown", "input": [user("two")]}),
    )
    .await;
    let error = last(&refused);
    assert_eq!(error["type"], "error");
    assert_eq!(error["status"], 400);
    assert_eq!(error["error"]["code"], "previous_response_not_found");
    assert_eq!(mock.total_requests(), 0);
    // The client resends the full input on the same connection.
    let full = turn(
        &mut ws,
        json!({"model": "gpt-5", "input": [user("one"), user("two")]}),
    )
    .await;
    completed_id(&full);

    // A response kept over HTTP can be continued over the WebSocket too.
    let kept: Value = reqwest::Client::new()
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-5", "input": "from http"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let continued = turn(
        &mut ws,
        json!({"model": "gpt-5", "previous_response_id": kept["id"], "input": [user("over ws")]}),
    )
    .await;
    completed_id(&continued);
    assert_eq!(
        upstream_types(&mock),
        ["message:user", "message:assistant", "message:user"]
    );
}

#[actix_web::test]
async fn failover_before_output_and_an_error_frame_after_it() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    for name in ["acct-a", "acct-b"] {
        add_account(&app, &mock.create_account(name)).await;
    }
    let (_, key) = create_key(&app, "cli", |_| {}).await;
    let mut ws = connect(&app, &key).await;
    let first = completed_id(&turn(&mut ws, json!({"model": "gpt-5", "input": "one"})).await);
    let served = mock
        .last_request()
        .unwrap()
        .header("chatgpt-account-id")
        .unwrap()
        .to_owned();
    let other = if served == "acct-a" {
        "acct-b"
    } else {
        "acct-a"
    };
    let before = mock.request_count(&served);

    // The connection's account fails before any output: the turn moves to the other one.
    mock.set_behaviour(&served, Behaviour::ServerError(500));
    let second = turn(
        &mut ws,
        json!({"model": "gpt-5", "previous_response_id": first, "input": [user("two")]}),
    )
    .await;
    let second = completed_id(&second);
    assert_eq!(mock.request_count(&served), before + 1, "tried first");
    assert_eq!(
        mock.last_request().unwrap().header("chatgpt-account-id"),
        Some(other)
    );
    mock.set_behaviour(&served, Behaviour::Ok);

    // The stream breaks off after output has begun: an error frame ends the turn.
    let cut = turn(
        &mut ws,
        json!({"model": "gpt-5", "previous_response_id": second, "input": [user("three [mock:cut]")]}),
    )
    .await;
    assert!(cut
        .iter()
        .any(|e| e["type"] == "response.output_text.delta"));
    let error = last(&cut);
    assert_eq!(error["type"], "error", "{cut:?}");
    assert_eq!(error["status"], 502);
    assert_eq!(error["error"]["code"], "upstream_error");

    // The connection goes on, and the failed turn left the last completed one to continue.
    let next = turn(
        &mut ws,
        json!({"model": "gpt-5", "previous_response_id": second, "input": [user("four")]}),
    )
    .await;
    completed_id(&next);
    assert_eq!(upstream_types(&mock).len(), 5);

    let rows = log_rows(&app).await;
    let statuses: Vec<i32> = rows.iter().map(|r| r.status_code).collect();
    assert_eq!(statuses, [200, 200, 502, 200]);
}

#[actix_web::test]
async fn pings_binary_and_malformed_frames_then_the_idle_close() {
    let (_mock, app, key) = setup(|c| {
        c.websocket.idle_timeout_seconds = 1;
        c.websocket.max_frame_bytes = 4096;
    })
    .await;
    let mut ws = connect(&app, &key).await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"are you there".to_vec().into()));

    ws.send(Message::Binary(b"\x00\x01".to_vec().into()))
        .await
        .unwrap();
    let error = next_event(&mut ws).await;
    assert_eq!(error["status"], 400);
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("binary"));

    ws.send(Message::Text("{\"type\": \"response.create\", oops".into()))
        .await
        .unwrap();
    let error = next_event(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["status"], 400);
    assert_eq!(error["error"]["code"], "invalid_request");

    // `response.processed` needs no answer; the idle timeout then closes the connection.
    send(
        &mut ws,
        &json!({"type": "response.processed", "response_id": "resp_x"}),
    )
    .await;
    let started = std::time::Instant::now();
    match next_message(&mut ws).await {
        Some(Message::Close(frame)) => {
            let frame = frame.expect("a close reason");
            assert_eq!(u16::from(frame.code), 1000);
        }
        None => {}
        other => panic!("a close expected, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(800));

    // A message larger than the limit gets an error frame and closes the connection.
    let mut ws = connect(&app, &key).await;
    send(
        &mut ws,
        &json!({"type": "response.create", "model": "gpt-5", "input": "x".repeat(8192)}),
    )
    .await;
    let error = next_event(&mut ws).await;
    assert_eq!(error["status"], 413);
    assert_eq!(error["error"]["code"], "payload_too_large");
    match next_message(&mut ws).await {
        Some(Message::Close(frame)) => assert_eq!(u16::from(frame.unwrap().code), 1009),
        None => {}
        other => panic!("a close expected, got {other:?}"),
    }
}

#[actix_web::test]
async fn refusals_are_error_frames_with_the_http_codes() {
    let (mock, app, key) = setup(|_| {}).await;
    let mut ws = connect(&app, &key).await;
    mock.set_behaviour(
        "acct-ws",
        Behaviour::UsageLimit {
            resets_in_seconds: 120,
        },
    );
    let refused = turn(&mut ws, json!({"model": "gpt-5", "input": "hi"})).await;
    let error = last(&refused);
    assert_eq!(error["type"], "error");
    assert_eq!(error["status"], 429);
    assert_eq!(error["error"]["code"], "usage_limit_reached");
    assert_eq!(error["error"]["type"], "usage_limit_reached");
    let retry: u64 = error["headers"]["retry-after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((100..=120).contains(&retry), "{retry}");

    // The key's own per-minute limit applies to every turn.
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &mock.create_account("acct-ws")).await;
    let (_, key) = create_key(&app, "cli", |k| {
        k.rpm_limit = sea_orm::Set(Some(1));
    })
    .await;
    let mut ws = connect(&app, &key).await;
    completed_id(&turn(&mut ws, json!({"model": "gpt-5", "input": "one"})).await);
    let limited = turn(&mut ws, json!({"model": "gpt-5", "input": "two"})).await;
    assert_eq!(last(&limited)["status"], 429);
    assert_eq!(last(&limited)["error"]["code"], "rate_limit_exceeded");
    assert_eq!(mock.total_requests(), 1);
}

#[actix_web::test]
async fn a_key_disabled_mid_connection_is_refused_on_the_next_turn() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &mock.create_account("acct-ws")).await;
    let (key_id, key) = create_key(&app, "cli", |_| {}).await;
    let mut ws = connect(&app, &key).await;
    completed_id(&turn(&mut ws, json!({"model": "gpt-5", "input": "one"})).await);

    let admin = app.admin_token().await;
    let res = reqwest::Client::new()
        .patch(app.url(&format!("/admin/api-keys/{key_id}")))
        .bearer_auth(&admin)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let refused = turn(&mut ws, json!({"model": "gpt-5", "input": "two"})).await;
    let error = last(&refused);
    assert_eq!(error["status"], 401);
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(error["error"]["message"], "this API key is disabled");
    assert_eq!(mock.total_requests(), 1);
    // A new connection with that key is refused at the handshake, as HTTP is.
    let refused = tokio_tungstenite::connect_async(upgrade_request(&app, &key)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("a 401 expected, got {other:?}"),
    }
}

#[actix_web::test]
async fn log_rows_name_their_transport() {
    let (_mock, app, key) = setup(|_| {}).await;
    let res = reqwest::Client::new()
        .post(app.url("/v1/responses"))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-5", "input": "over http"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut ws = connect(&app, &key).await;
    let warm = turn(
        &mut ws,
        json!({"model": "gpt-5", "generate": false, "input": []}),
    )
    .await;
    completed_id(&warm);
    completed_id(&turn(&mut ws, json!({"model": "gpt-5", "input": "over ws"})).await);

    let rows = log_rows(&app).await;
    let transports: Vec<&str> = rows.iter().map(|r| r.transport.as_str()).collect();
    assert_eq!(transports, ["http", "websocket"], "a prewarm leaves no row");
    assert!(rows[1].stream && rows[1].input_tokens > 0);

    let admin = app.admin_token().await;
    let page: Value = app.get("/admin/logs", &admin).await.json().await.unwrap();
    let mut shown: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["transport"].as_str().unwrap())
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, ["http", "websocket"]);
}

#[actix_web::test]
async fn a_plain_get_or_websockets_off_answer_426() {
    let (_mock, app, key) = setup(|_| {}).await;
    let res = app.get("/v1/responses", &key).await;
    assert_eq!(res.status(), 426);
    assert_eq!(res.headers()["upgrade"], "websocket");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upgrade_required");
    let res = app.get("/v1/responses", "sk-wrong").await;
    assert_eq!(res.status(), 401, "the key is checked first");

    let (_mock, app, key) = setup(|c| c.websocket.enabled = false).await;
    match tokio_tungstenite::connect_async(upgrade_request(&app, &key)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 426);
        }
        other => panic!("a 426 expected, got {other:?}"),
    }
}
