//! `GET /v1/responses` with `Upgrade: websocket`: the Responses API over a WebSocket, the
//! transport the Codex CLI prefers (CODEX.md §7). Each client message is one
//! `response.create`; each server message is one event, the JSON of an SSE `data:` line of the
//! HTTP answer, and a turn ends with `response.completed` (or an `error` frame). The connection
//! stays open across turns.
//!
//! Every turn runs as an HTTP request does: the key is checked again (a key disabled since the
//! handshake is refused), its limits admit the turn, the turn is dispatched with failover before
//! the first output, and it writes one usage-log row (transport `websocket`). Upstream it is an
//! ordinary HTTP request: the backend stores nothing, so the connection keeps the full input and
//! the output of its last turn and rebuilds the full input of an incremental turn (one that
//! names that response in `previous_response_id`). A `previous_response_id` that is not the
//! connection's last response is looked up in the response store (responses kept over HTTP or
//! sent with `store: true`); otherwise the turn answers `previous_response_not_found`, on which
//! the CLI reconnects and resends the full input. A prewarm (`generate: false`) is answered here,
//! without an account, and its id can be continued.
//!
//! Memory is bounded per connection: a message is at most `websocket.max_frame_bytes`, the
//! remembered turn at most `websocket.max_state_bytes`, and one turn runs at a time.

use std::rc::Rc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::extract::{authenticate, presented_key, ApiKeyAuth, RequestId};
use super::responses::Responses;
use super::serve::{estimate_tokens, observe, Client, Endpoint, Relay};
use super::stored::store_error;
use crate::actors::usage_log::Transport;
use crate::codex::websocket::{
    disconnected_event, error_event, items_bytes, join, metadata_event, parse_client_frame,
    prewarm_events, rate_limits_event, ClientFrame, Create, LastTurn, OutputItems, Turns,
};
use crate::codex::wire::{StreamError, StreamEvent};
use crate::conversation::{Hints, SESSION_HEADERS, TURN_STATE_HEADER};
use crate::dispatch::{dispatch_logged, Dispatched, UpstreamRequest};
use crate::error::{AppError, ErrorCode, OpenAiError};
use crate::request_log::RequestLog;
use crate::state::AppState;

/// The route the usage log names for a turn.
const PATH: &str = "/v1/responses";

/// Upgrades `GET /v1/responses` to the Responses WebSocket. The key is checked first (401 as on
/// every `/v1` route); a plain GET, or any GET while `websocket.enabled` is off, answers 426,
/// which sends the Codex CLI to HTTP at once.
pub async fn upgrade(
    state: web::Data<AppState>,
    _key: ApiKeyAuth,
    request_id: RequestId,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, OpenAiError> {
    if !wants_websocket(&req) {
        return Ok(upgrade_required(
            "GET /v1/responses is the Responses API over WebSocket: connect with \
             Upgrade: websocket, or send the request with POST /v1/responses",
        ));
    }
    let config = state.config.websocket.clone();
    if !config.enabled {
        return Ok(upgrade_required(
            "WebSockets are turned off on this gateway: use POST /v1/responses",
        ));
    }
    // The session headers name the conversation of every turn; checked once, now.
    let headers = session_headers(req.headers());
    Hints::from_headers(&headers)?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        OpenAiError(AppError::invalid_request(format!(
            "not a valid WebSocket upgrade: {e}"
        )))
    })?;
    let stream = stream
        .max_frame_size(config.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(config.max_frame_bytes);
    let shared = Rc::new(Shared {
        state,
        presented: presented_key(&req),
        headers,
        request_id: request_id.0,
    });
    actix_web::rt::spawn(run(shared, session, stream));
    Ok(response)
}

/// Whether the request asks for a WebSocket.
fn wants_websocket(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("websocket"))
}

/// 426 in OpenAI's error shape, naming the protocol to upgrade to.
fn upgrade_required(message: &str) -> HttpResponse {
    let mut response =
        OpenAiError(AppError::new(ErrorCode::UpgradeRequired, message)).error_response();
    response.headers_mut().insert(
        actix_web::http::header::UPGRADE,
        HeaderValue::from_static("websocket"),
    );
    response
}

/// The handshake's session headers (nothing else of it is kept).
fn session_headers(all: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in SESSION_HEADERS {
        if let Some(value) = all.get(name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    headers
}

/// What every turn of a connection shares.
struct Shared {
    state: web::Data<AppState>,
    /// The key the handshake presented, checked again on every turn.
    presented: Option<String>,
    /// The handshake's session headers.
    headers: HeaderMap,
    /// The handshake's request id; each turn's log row adds its number.
    request_id: Option<String>,
}

/// How a turn leaves the connection's memory.
enum TurnEnd {
    /// It completed: the next turn may continue it.
    Keep(LastTurn),
    /// It completed but is too large to keep: forget the last turn.
    Forget,
    /// It failed: the last completed turn stays the one to continue.
    Unchanged,
}

/// A turn ready to run: the client's frame with its full input rebuilt.
struct Prepared {
    body: Map<String, Value>,
    generate: bool,
    /// The full input (the connection's last turn in front when continued).
    input: Vec<Value>,
    /// About its size.
    bytes: usize,
    /// A `previous_response_id` that is not the connection's last response: looked up in the
    /// response store.
    lookup: Option<String>,
    /// The account to try first: the one that served the connection's last turn.
    prefer: Option<i32>,
}

/// Reads messages until the client leaves, an idle timeout, or a broken frame.
async fn run(shared: Rc<Shared>, mut session: Session, mut stream: AggregatedMessageStream) {
    let config = shared.state.config.websocket.clone();
    let idle = Duration::from_secs(config.idle_timeout_seconds);
    let mut turns = Turns::new(config.max_state_bytes);
    let mut running: Option<LocalBoxFuture<'static, TurnEnd>> = None;
    let mut served: u64 = 0;
    let mut deadline = tokio::time::Instant::now() + idle;
    let close = loop {
        tokio::select! {
            ended = async {
                match running.as_mut() {
                    Some(turn) => turn.await,
                    None => std::future::pending().await,
                }
            }, if running.is_some() => {
                running = None;
                match ended {
                    TurnEnd::Keep(turn) => turns.remember(turn),
                    TurnEnd::Forget => turns = Turns::new(config.max_state_bytes),
                    TurnEnd::Unchanged => {}
                }
                deadline = tokio::time::Instant::now() + idle;
            }
            () = tokio::time::sleep_until(deadline), if running.is_none() => {
                break Some(CloseReason {
                    code: CloseCode::Normal,
                    description: Some("idle timeout".into()),
                });
            }
            message = stream.next() => {
                let message = match message {
                    None => break None,
                    Some(Ok(message)) => message,
                    Some(Err(e)) => {
                        let (error, code) = match e {
                            actix_ws::ProtocolError::Overflow => (
                                AppError::new(
                                    ErrorCode::PayloadTooLarge,
                                    format!(
                                        "a message may be at most {} bytes",
                                        config.max_frame_bytes
                                    ),
                                ),
                                CloseCode::Size,
                            ),
                            other => (
                                AppError::invalid_request(format!("broken WebSocket frame: {other}")),
                                CloseCode::Protocol,
                            ),
                        };
                        let _ = send(&mut session, &error_event(&error)).await;
                        break Some(CloseReason { code, description: None });
                    }
                };
                match message {
                    AggregatedMessage::Text(text) => {
                        deadline = tokio::time::Instant::now() + idle;
                        if running.is_some() {
                            let busy = AppError::invalid_request(
                                "a response is already running on this connection: wait for its \
                                 response.completed",
                            );
                            if send(&mut session, &error_event(&busy)).await.is_err() {
                                break None;
                            }
                            continue;
                        }
                        let create = match parse_client_frame(&text) {
                            Ok(ClientFrame::Create(create)) => create,
                            Ok(ClientFrame::Processed) => continue,
                            Err(e) => {
                                if send(&mut session, &error_event(&e)).await.is_err() {
                                    break None;
                                }
                                continue;
                            }
                        };
                        served += 1;
                        let prepared = prepare(&turns, create, text.len());
                        running = Some(Box::pin(turn(
                            shared.clone(),
                            session.clone(),
                            prepared,
                            served,
                        )));
                    }
                    AggregatedMessage::Binary(_) => {
                        deadline = tokio::time::Instant::now() + idle;
                        let e = AppError::invalid_request(
                            "binary messages are not supported: send response.create as text",
                        );
                        if send(&mut session, &error_event(&e)).await.is_err() {
                            break None;
                        }
                    }
                    AggregatedMessage::Ping(bytes) => {
                        deadline = tokio::time::Instant::now() + idle;
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    AggregatedMessage::Pong(_) => {}
                    AggregatedMessage::Close(_) => break None,
                }
            }
        }
    };
    // A turn still running is dropped: its account is freed and its log row says 499.
    drop(running);
    let _ = session.close(close).await;
}

/// Rebuilds an incremental turn from the connection's last turn, when it names it.
fn prepare(turns: &Turns, create: Create, frame_bytes: usize) -> Prepared {
    let Create {
        body,
        previous_response_id,
        generate,
        input,
    } = create;
    let prefer = turns.last().and_then(|last| last.account_id);
    let Some(previous) = previous_response_id else {
        return Prepared {
            body,
            generate,
            input,
            bytes: frame_bytes,
            lookup: None,
            prefer,
        };
    };
    match turns.rebuild(&previous, input) {
        Ok((input, bytes)) => Prepared {
            body,
            generate,
            input,
            bytes,
            lookup: None,
            prefer,
        },
        Err(input) => Prepared {
            body,
            generate,
            input,
            bytes: frame_bytes,
            lookup: Some(previous),
            prefer,
        },
    }
}

/// Runs one turn; its failure is an `error` frame.
async fn turn(
    shared: Rc<Shared>,
    mut session: Session,
    prepared: Prepared,
    number: u64,
) -> TurnEnd {
    let request_id = shared
        .request_id
        .as_ref()
        .map(|id| format!("{id}.{number}"));
    match serve_turn(&shared, &mut session, prepared, request_id).await {
        Ok(end) => end,
        Err(e) => {
            let _ = send(&mut session, &error_event(&e.0)).await;
            TurnEnd::Unchanged
        }
    }
}

/// A frame could not be sent: the client is gone.
struct Gone;

async fn send(session: &mut Session, event: &Value) -> Result<(), Gone> {
    session.text(event.to_string()).await.map_err(|_| Gone)
}

/// The turn as an HTTP request would run: key, limits, dispatch, relay.
async fn serve_turn(
    shared: &Shared,
    session: &mut Session,
    prepared: Prepared,
    request_id: Option<String>,
) -> Result<TurnEnd, OpenAiError> {
    let state: &AppState = &shared.state;
    let key = authenticate(
        state,
        shared.presented.as_deref(),
        PATH,
        request_id.clone(),
        Transport::Websocket,
    )
    .await?;
    let Prepared {
        mut body,
        generate,
        mut input,
        mut bytes,
        lookup,
        mut prefer,
    } = prepared;
    if let Some(id) = lookup {
        let missing = || {
            OpenAiError(
                AppError::new(
                    ErrorCode::PreviousResponseNotFound,
                    format!(
                        "Response with id '{}' not found on this connection.",
                        id.chars().take(64).collect::<String>()
                    ),
                )
                .with_param("previous_response_id"),
            )
        };
        if !state.responses.enabled() {
            return Err(missing());
        }
        let stored = state.responses.get(key.id, &id).await.map_err(|e| {
            store_error(
                e,
                ErrorCode::PreviousResponseNotFound,
                Some("previous_response_id"),
            )
        })?;
        input = join(&stored.input, stored.output(), input);
        bytes = items_bytes(&input);
        prefer = stored.account_id.or(prefer);
    }
    let model = match body.get("model") {
        Some(Value::String(model)) => model.clone(),
        _ => {
            return Err(
                AppError::invalid_request("you must provide a model parameter")
                    .with_param("model")
                    .into(),
            )
        }
    };
    if !generate {
        ApiKeyAuth(key.clone()).check_model(&model)?;
        let id = format!("resp_{}", uuid::Uuid::new_v4().simple());
        for event in prewarm_events(&id, &model, chrono::Utc::now().timestamp()) {
            if send(session, &event).await.is_err() {
                return Ok(TurnEnd::Unchanged);
            }
        }
        return Ok(TurnEnd::Keep(LastTurn {
            id,
            input,
            output: Vec::new(),
            account_id: prefer,
            bytes,
        }));
    }

    body.insert("input".into(), Value::Array(input.clone()));
    body.insert("stream".into(), Value::Bool(true));
    let hints = turn_hints(&shared.headers, &body)?;
    let client = Client {
        state,
        key: &key,
        hints: &hints,
    };
    let (endpoint, mut upstream) = Responses::translate(&client, Value::Object(body)).await?;
    upstream.prefer = upstream.prefer.or(prefer);
    let refuse = |e: OpenAiError| {
        RequestLog::start(state, &key, &upstream.model, PATH, true, request_id.clone())
            .over(Transport::Websocket)
            .finish(e.0.status().as_u16(), Some(e.0.message().to_string()));
        e
    };
    ApiKeyAuth(key.clone())
        .check_model(&upstream.model)
        .map_err(refuse)?;
    let estimate = estimate_tokens(&upstream.body);
    state
        .keys
        .admit(
            key.clone(),
            estimate,
            state.config.server.max_concurrent_requests_per_key,
        )
        .await
        .map_err(|e| refuse(e.into()))?;
    let log = RequestLog::start(state, &key, &upstream.model, PATH, true, request_id.clone())
        .over(Transport::Websocket)
        .admitted(estimate);
    let (dispatched, mut log) = dispatch_logged(
        state,
        UpstreamRequest {
            body: upstream.body,
            conversation: Some(&upstream.conversation),
            prefer: upstream.prefer,
        },
        log,
    )
    .await?;
    let Dispatched {
        lease,
        mut events,
        rate_limits,
        turn_state,
        headers: _,
    } = dispatched;
    let account_id = lease.account_id;
    let mut relay = endpoint.relay(account_id);
    // The backend's sticky token and the account's usage windows come first, as the backend's
    // own WebSocket sends them.
    let mut preamble = Vec::new();
    if let Some(turn_state) = turn_state {
        preamble.push(metadata_event(&turn_state));
    }
    if let Some(limits) = &rate_limits {
        preamble.push(rate_limits_event(limits));
    }
    for event in &preamble {
        if send(session, event).await.is_err() {
            return Ok(TurnEnd::Unchanged);
        }
    }
    let mut output = OutputItems::new(state.config.websocket.max_state_bytes);
    let mut response_id = None;
    let mut outcome = None;
    while let Some(crate::dispatch::Parsed { frame, event }) = events.next_frame().await {
        let ended = observe(event.as_ref(), &mut log);
        let relayed = relay.on_frame(&frame, event.as_ref());
        if relayed.output {
            log.first_token();
        }
        let Ok(value) = serde_json::from_str::<Value>(&frame.data) else {
            continue;
        };
        output.on_event(&value, frame.data.len());
        if let Some(StreamEvent::Completed { .. } | StreamEvent::Incomplete { .. }) = &event {
            response_id = value
                .pointer("/response/id")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if let Some(ended) = &ended {
            relay.completed(ended).await;
        }
        if session.text(frame.data).await.is_err() {
            // The client left: the dropped log row says 499.
            return Ok(TurnEnd::Unchanged);
        }
        if ended.is_some() {
            outcome = ended;
            break;
        }
    }
    drop(lease);
    match outcome.unwrap_or(Err(StreamError::Disconnected)) {
        Ok(_) => {
            log.finish(200, None);
            Ok(match (response_id, output.finish()) {
                (Some(id), Some((items, output_bytes))) => TurnEnd::Keep(LastTurn {
                    id,
                    input,
                    output: items,
                    account_id: Some(account_id),
                    bytes: bytes.saturating_add(output_bytes),
                }),
                _ => TurnEnd::Forget,
            })
        }
        Err(StreamError::Disconnected) => {
            log.finish(502, Some(StreamError::Disconnected.to_string()));
            let _ = send(session, &disconnected_event()).await;
            Ok(TurnEnd::Unchanged)
        }
        // The upstream's own `response.failed` or `error` event went to the client.
        Err(e) => {
            log.finish(502, Some(e.to_string()));
            Ok(TurnEnd::Unchanged)
        }
    }
}

/// The turn's conversation hints: the handshake's session headers, and the turn-state token
/// the client echoes in `client_metadata` (CODEX.md §7).
fn turn_hints(headers: &HeaderMap, body: &Map<String, Value>) -> Result<Hints, OpenAiError> {
    let echoed = body
        .get("client_metadata")
        .and_then(|m| m.get(TURN_STATE_HEADER))
        .and_then(Value::as_str);
    let Some(echoed) = echoed else {
        return Ok(Hints::from_headers(headers)?);
    };
    let mut headers = headers.clone();
    let value = HeaderValue::from_str(echoed).map_err(|_| {
        AppError::invalid_request(format!(
            "client_metadata[\"{TURN_STATE_HEADER}\"] is not a valid header value"
        ))
        .with_param("client_metadata")
    })?;
    headers.insert(HeaderName::from_static(TURN_STATE_HEADER), value);
    Ok(Hints::from_headers(&headers)?)
}
