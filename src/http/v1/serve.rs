//! The one handler of every proxying `/v1` endpoint. [`serve`] takes the client's JSON body,
//! lets the [`Endpoint`] parse and translate it, checks the model against the key, admits the
//! request against the key's limits, starts its usage-log row, dispatches it upstream, and
//! then either builds one JSON answer from the whole upstream stream (the endpoint's
//! [`Aggregate`]) or relays the stream as server-sent events (its [`Relay`]). Usage, the time
//! to first token and the end of the answer are read here, from the upstream's events, for
//! every endpoint alike.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::extract::{ApiKeyAuth, OpenAiJson, RequestId};
use crate::actors::key_cache::KeyRecord;
use crate::codex::sse::SseFrame;
use crate::codex::wire::{StreamError, StreamEvent, StreamOutcome};
use crate::conversation::{Conversation, Hints, Opening};
use crate::dispatch::{dispatch_logged, Dispatched, Parsed, UpstreamRequest};
use crate::error::{AppError, ErrorCode, OpenAiError};
use crate::request_log::RequestLog;
use crate::state::AppState;

/// A proxying endpoint: its route, how it reads a request and how it answers.
// Used only by actix handlers, which run on one worker thread: the futures need not be Send.
#[allow(async_fn_in_trait)]
pub trait Endpoint: Sized {
    /// The route, as the usage log records it.
    const PATH: &'static str;
    /// Builds the answer of a client that did not ask to stream.
    type Aggregate: Aggregate;
    /// Relays the events to a client that asked to stream.
    type Relay: Relay + 'static;

    /// Parses and translates the client's body: the endpoint for this request and what goes
    /// upstream. `client` is the request's key and the gateway's state, for endpoints that
    /// build on what the key stored before.
    async fn translate(client: &Client<'_>, body: Value) -> Result<(Self, Upstream), OpenAiError>;

    /// A fresh aggregator for the answer served by `account_id`.
    fn aggregate(self, account_id: i32) -> Self::Aggregate;

    /// A fresh relay for the answer served by `account_id`.
    fn relay(self, account_id: i32) -> Self::Relay;
}

/// Who is asking: the key, the conversation hints of the request's headers (checked), and the
/// gateway's state.
pub struct Client<'a> {
    /// The gateway's state.
    pub state: &'a AppState,
    /// The request's key.
    pub key: &'a KeyRecord,
    /// The hints of the request's headers; the endpoint adds its body's `prompt_cache_key`.
    pub hints: &'a Hints,
}

impl Client<'_> {
    /// The request's conversation, from the hints and the body's `prompt_cache_key` (checked
    /// here), asking `opening` for the conversation's opening only when no hint names it.
    pub fn conversation(
        &self,
        prompt_cache_key: Option<&str>,
        model: &str,
        opening: impl FnOnce(&mut Opening),
    ) -> Result<Conversation, OpenAiError> {
        let hints = self.hints.clone().with_prompt_cache_key(prompt_cache_key)?;
        Ok(Conversation::resolve(&hints, self.key.id, model, opening))
    }
}

/// Builds one JSON answer from the upstream's frames.
// Used only by actix handlers, which run on one worker thread: the futures need not be Send.
#[allow(async_fn_in_trait)]
pub trait Aggregate {
    /// The answer the client gets.
    type Answer: Serialize;

    /// Takes one frame into account, with its event when it parses as one.
    fn on_frame(&mut self, frame: &SseFrame, event: Option<&StreamEvent>);

    /// The answer, or why the upstream gave none.
    async fn finish(self) -> Result<Self::Answer, StreamError>;
}

/// Turns the upstream's frames into the client's event stream.
// Used only by actix handlers, which run on one worker thread: the futures need not be Send.
#[allow(async_fn_in_trait)]
pub trait Relay {
    /// What to send for one frame (often nothing), given its event when it parses as one.
    fn on_frame(&mut self, frame: &SseFrame, event: Option<&StreamEvent>) -> Relayed;

    /// Called once the upstream's terminal event is read, before its frames go to the client:
    /// the place to keep what the answer produced. Nothing by default.
    async fn completed(&mut self, outcome: &StreamOutcome) {
        let _ = outcome;
    }

    /// The frame that ends the client's stream after this outcome, if any.
    fn closing_frame(&self, outcome: &StreamOutcome) -> Option<Bytes>;
}

/// What a [`Relay`] sends for one upstream frame.
#[derive(Debug, Default)]
pub struct Relayed {
    /// The frames, encoded for the wire.
    pub frames: Vec<Bytes>,
    /// Whether they carry model output (the first such frame is the time to first token).
    pub output: bool,
}

/// A client's request, translated for the upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The model the usage log records.
    pub model: String,
    /// Whether the client asked for an event stream.
    pub stream: bool,
    /// The conversation: its pin in the pool and its headers upstream (the body already
    /// carries its `prompt_cache_key`).
    pub conversation: Conversation,
    /// The body sent upstream.
    pub body: Bytes,
    /// The account to try first (the one that served the conversation before).
    pub prefer: Option<i32>,
}

impl Upstream {
    /// A request whose upstream body is `body` as JSON.
    pub fn new(
        model: String,
        stream: bool,
        conversation: Conversation,
        body: &impl Serialize,
    ) -> Result<Self, OpenAiError> {
        let body = Bytes::from(serde_json::to_vec(body).map_err(AppError::internal)?);
        Ok(Self {
            model,
            stream,
            conversation,
            body,
            prefer: None,
        })
    }
}

/// Serves one request to endpoint `E`: the conversation hints checked, translation, model
/// check, admission, usage log, dispatch, then the endpoint's answer.
pub async fn serve<E: Endpoint>(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    request_id: RequestId,
    request: HttpRequest,
    body: OpenAiJson,
) -> Result<HttpResponse, OpenAiError> {
    // The key was checked by its extractor; the hints are checked before anything else: a
    // value that cannot go upstream answers 400 here, never touching an account.
    let hints = Hints::from_headers(request.headers())?;
    let client = Client {
        state: &state,
        key: &key.0,
        hints: &hints,
    };
    let (endpoint, upstream) = E::translate(&client, body.read().await?).await?;
    // A refusal by the key's own limits leaves a log row, so that the operator sees why.
    let refuse = |e: OpenAiError| {
        RequestLog::refused(
            &state,
            &key.0,
            &upstream.model,
            E::PATH,
            upstream.stream,
            request_id.0.clone(),
            &e.0,
        );
        e
    };
    key.check_model(&upstream.model).map_err(refuse)?;
    let estimate = estimate_tokens(&upstream.body);
    state
        .keys
        .admit(
            key.0.clone(),
            estimate,
            state.config.server.max_concurrent_requests_per_key,
        )
        .await
        .map_err(|e| refuse(e.into()))?;
    let log = RequestLog::start(
        &state,
        &key.0,
        &upstream.model,
        E::PATH,
        upstream.stream,
        request_id.0,
    )
    .admitted(estimate);
    let (mut dispatched, log) = dispatch_logged(
        &state,
        UpstreamRequest {
            body: upstream.body,
            conversation: Some(&upstream.conversation),
            prefer: upstream.prefer,
        },
        log,
    )
    .await?;
    let account_id = dispatched.lease.account_id;
    let passed = std::mem::take(&mut dispatched.headers);
    let mut response = if upstream.stream {
        relay(dispatched, log, endpoint.relay(account_id))
    } else {
        aggregate(dispatched, log, endpoint.aggregate(account_id)).await?
    };
    // The backend's sticky token for the turn goes back for the client to echo, with the
    // answer's other Codex headers (rate limits, model, catalog version).
    for (name, value) in passed {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

/// The tokens a request is expected to use, reserved against its key's budget while it runs:
/// its input (about four bytes a token) and an allowance for the answer.
pub fn estimate_tokens(body: &Bytes) -> i64 {
    const ANSWER_ALLOWANCE: i64 = 256;
    (body.len() / 4) as i64 + ANSWER_ALLOWANCE
}

/// The end of the answer an upstream event announces, if it does; its usage goes to the log.
pub(super) fn observe(event: Option<&StreamEvent>, log: &mut RequestLog) -> Option<StreamOutcome> {
    event.and_then(|event| {
        log.usage(event.usage());
        event.outcome()
    })
}

/// Reads the whole answer and sends it as one JSON body.
async fn aggregate<A: Aggregate>(
    dispatched: Dispatched,
    log: RequestLog,
    aggregator: A,
) -> Result<HttpResponse, OpenAiError> {
    let answer = collect(dispatched, log, aggregator).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Reads the whole answer into the aggregator's answer, and ends the request's log row.
pub async fn collect<A: Aggregate>(
    dispatched: Dispatched,
    mut log: RequestLog,
    mut aggregator: A,
) -> Result<A::Answer, AppError> {
    let Dispatched {
        lease, mut events, ..
    } = dispatched;
    while let Some(Parsed { frame, event }) = events.next_frame().await {
        let outcome = observe(event.as_ref(), &mut log);
        aggregator.on_frame(&frame, event.as_ref());
        if outcome.is_some() {
            break;
        }
    }
    drop(lease);
    match aggregator.finish().await {
        Ok(answer) => {
            log.finish(200, None);
            Ok(answer)
        }
        Err(e) => {
            let message = e.to_string();
            log.finish(502, Some(message.clone()));
            Err(AppError::new(ErrorCode::UpstreamError, message))
        }
    }
}

/// Relays the answer as a `text/event-stream` that proxies in front of the gateway must not
/// buffer.
fn relay<R: Relay + 'static>(
    dispatched: Dispatched,
    log: RequestLog,
    mut relay: R,
) -> HttpResponse {
    let Dispatched {
        lease, mut events, ..
    } = dispatched;
    let stream = async_stream::stream! {
        // Both guards live as long as the stream: a client that goes away drops them, which
        // frees the account and still writes the log row.
        let _lease = lease;
        let mut log = log;
        let mut outcome = None;
        while let Some(Parsed { frame, event }) = events.next_frame().await {
            let ended = observe(event.as_ref(), &mut log);
            let relayed = relay.on_frame(&frame, event.as_ref());
            if relayed.output {
                log.first_token();
            }
            if let Some(ended) = &ended {
                relay.completed(ended).await;
            }
            for bytes in relayed.frames {
                yield Ok::<Bytes, actix_web::Error>(bytes);
            }
            if ended.is_some() {
                outcome = ended;
                break;
            }
        }
        let outcome = outcome.unwrap_or(Err(StreamError::Disconnected));
        if let Some(frame) = relay.closing_frame(&outcome) {
            yield Ok(frame);
        }
        match outcome {
            Ok(_) => log.finish(200, None),
            Err(e) => log.finish(502, Some(e.to_string())),
        }
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}
