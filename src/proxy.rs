//! Dispatching a request upstream: pick an account, send, react to the answer as CODEX.md §5
//! says (refresh once on 401, cool down on limits and failures, retry on another account), and
//! hand back an event source once the first content is on its way, because retries are only
//! possible before the first byte reaches the client.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Instant;

use actix_web::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use crate::actors::key_cache::{KeyCacheHandle, KeyRecord};
use crate::actors::token_pool::{Lease, Outcome, RateLimits};
use crate::actors::usage_log::{UsageLogHandle, UsageRecord};
use crate::codex::sse::{SseDecoder, SseFrame};
use crate::codex::upstream::{StreamEvent, StreamOutcome, UpstreamError, Usage};
use crate::error::AppError;
use crate::state::AppState;

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Upstream events of one answer: the frames read while deciding whether to retry, then the
/// rest of the body as it arrives.
pub struct EventSource {
    pending: VecDeque<SseFrame>,
    decoder: SseDecoder,
    body: ByteStream,
    ended: bool,
}

impl EventSource {
    fn new(body: ByteStream) -> Self {
        Self {
            pending: VecDeque::new(),
            decoder: SseDecoder::new(),
            body,
            ended: false,
        }
    }

    /// The next frame; `None` when the upstream body ended (or broke off).
    pub async fn next_frame(&mut self) -> Option<SseFrame> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.pending.extend(self.decoder.feed(&bytes)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "upstream body broke off");
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
    }

    /// Reads frames into the buffer until one carries output or ends the answer. Returns the
    /// terminal outcome when the answer ended (or failed) before any output.
    async fn peek_until_output(&mut self) -> Option<StreamOutcome> {
        let mut seen = VecDeque::new();
        let result = loop {
            let Some(frame) = self.next_frame().await else {
                break Some(Err(crate::codex::upstream::StreamError::Disconnected));
            };
            let event = StreamEvent::parse(frame.event.as_deref(), &frame.data).ok();
            seen.push_back(frame);
            if let Some(event) = event {
                if let Some(outcome) = event.outcome() {
                    break Some(outcome);
                }
                if event.carries_output() {
                    break None;
                }
            }
        };
        // Put everything back in order ahead of what is still pending.
        seen.extend(self.pending.drain(..));
        self.pending = seen;
        result
    }
}

/// A dispatched request: the account serving it and its events.
pub struct Dispatched {
    pub lease: Lease,
    pub events: EventSource,
    pub rate_limits: Option<RateLimits>,
}

/// [`dispatch`] that also ends the request's log row when no account could answer, and sets
/// the rate-limit snapshot on it when one did.
pub async fn dispatch_logged(
    state: &AppState,
    body: Bytes,
    session_id: Option<&str>,
    mut log: RequestLog,
) -> Result<(Dispatched, RequestLog), AppError> {
    match dispatch(state, body, session_id, &mut log).await {
        Ok(dispatched) => {
            log.record.rate_limits = dispatched.rate_limits.clone();
            Ok((dispatched, log))
        }
        Err(e) => {
            log.finish(
                e.status.as_u16(),
                Some(format!("{}: {}", e.code, e.message)),
            );
            Err(e)
        }
    }
}

/// Ends the log row of an answer that failed after dispatch and returns the client's 502.
pub fn failed_after_dispatch(log: RequestLog, error: &impl std::fmt::Display) -> AppError {
    let message = error.to_string();
    log.finish(502, Some(message.clone()));
    AppError::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
}

/// Sends `body` to the upstream for the client's request, retrying on other accounts within
/// the configured budget. `log` learns which account served (or failed) the request.
pub async fn dispatch(
    state: &AppState,
    body: Bytes,
    session_id: Option<&str>,
    log: &mut RequestLog,
) -> Result<Dispatched, AppError> {
    let max_retries = state.settings.get().max_retries as usize;
    let mut tried: Vec<i32> = Vec::new();
    let mut last_error: Option<AppError> = None;
    let mut attempts = 0;
    while attempts <= max_retries {
        attempts += 1;
        let lease = match state.pool.checkout(tried.clone()).await {
            Ok(lease) => lease,
            // After failures, the upstream's own error says more than "nothing left", unless
            // every account is now waiting for a usage-limit reset.
            Err(e) => match last_error {
                Some(last) if last.status != StatusCode::TOO_MANY_REQUESTS => return Err(last),
                _ => return Err(e),
            },
        };
        log.record.token_id = Some(lease.token_id);
        tried.push(lease.token_id);
        match attempt(state, lease, body.clone(), session_id).await {
            Ok(dispatched) => return Ok(dispatched),
            Err(Failure::Client(e)) => return Err(e),
            Err(Failure::Retry(e)) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_available_account",
            "no upstream account is available",
        )
    }))
}

enum Failure {
    /// The client's own fault: goes back as is, no retry.
    Client(AppError),
    /// The account's trouble: try another one.
    Retry(AppError),
}

/// One account: send, and on 401 refresh once and send once more.
async fn attempt(
    state: &AppState,
    mut lease: Lease,
    body: Bytes,
    session_id: Option<&str>,
) -> Result<Dispatched, Failure> {
    let mut refreshed = false;
    loop {
        let sent = state
            .upstream
            .responses(
                &lease.access_token,
                &lease.account_id,
                lease.proxy_url.as_deref(),
                session_id,
                body.clone(),
            )
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                report(state, lease.token_id, Outcome::Transient(e.0.clone())).await;
                return Err(Failure::Retry(upstream_error(
                    StatusCode::BAD_GATEWAY,
                    &e.0,
                )));
            }
        };
        let status = response.status().as_u16();
        let rate_limits = RateLimits::from_headers(response.headers());
        if status == 200 {
            let mut events = EventSource::new(Box::pin(response.bytes_stream()));
            return match events.peek_until_output().await {
                None | Some(Ok(_)) => {
                    report(state, lease.token_id, Outcome::Success(rate_limits.clone())).await;
                    Ok(Dispatched {
                        lease,
                        events,
                        rate_limits,
                    })
                }
                Some(Err(crate::codex::upstream::StreamError::Disconnected)) => {
                    let message = "upstream stream ended before any output".to_string();
                    report(state, lease.token_id, Outcome::Transient(message.clone())).await;
                    Err(Failure::Retry(upstream_error(
                        StatusCode::BAD_GATEWAY,
                        &message,
                    )))
                }
                Some(Err(crate::codex::upstream::StreamError::Upstream(e))) => {
                    Err(classify_failed_stream(state, lease.token_id, &e).await)
                }
            };
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let error = UpstreamError::from_body(&bytes).unwrap_or_else(|| {
            UpstreamError::message_only(&format!("upstream answered HTTP {status}"))
        });
        match status {
            401 if !refreshed => {
                refreshed = true;
                let stale = lease.access_token.clone();
                match state.refresher.refresh(lease.token_id, Some(stale)).await {
                    Ok(Ok(new)) => {
                        lease.access_token = new.access_token;
                        continue;
                    }
                    Ok(Err(failure)) => {
                        return Err(Failure::Retry(upstream_error(
                            StatusCode::BAD_GATEWAY,
                            &failure.message,
                        )));
                    }
                    Err(e) => return Err(Failure::Retry(e)),
                }
            }
            401 => {
                let message =
                    "the upstream refused the account's token even after a refresh".to_string();
                report(
                    state,
                    lease.token_id,
                    Outcome::Unauthorized(message.clone()),
                )
                .await;
                return Err(Failure::Retry(upstream_error(
                    StatusCode::BAD_GATEWAY,
                    &message,
                )));
            }
            429 if error.is_usage_limit() => {
                let until = resets_at(&error);
                report(
                    state,
                    lease.token_id,
                    Outcome::UsageLimit {
                        until,
                        message: format!("usage limit reached; resets at {}", until.to_rfc3339()),
                    },
                )
                .await;
                let retry_after = (until - Utc::now()).num_seconds().max(1) as u64;
                return Err(Failure::Retry(
                    AppError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_exceeded",
                        "the account's usage limit was reached",
                    )
                    .with_retry_after(retry_after),
                ));
            }
            402 | 403 => {
                let message = format!("upstream answered {status}: {}", error.message);
                report(state, lease.token_id, Outcome::Forbidden(message)).await;
                return Err(Failure::Retry(upstream_error(
                    StatusCode::BAD_GATEWAY,
                    "the upstream refused the account",
                )));
            }
            400 | 404 | 413 | 422 => {
                // The client's request is at fault; the upstream's explanation is passed on.
                let mut e = AppError::new(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    "invalid_request",
                    error.message.clone(),
                );
                if let Some(param) = error.param.clone() {
                    e = e.with_param(param);
                }
                if status == 404 {
                    e.code = "model_not_found";
                }
                return Err(Failure::Client(e));
            }
            _ => {
                let message = format!("upstream answered {status}: {}", error.message);
                report(state, lease.token_id, Outcome::Transient(message)).await;
                return Err(Failure::Retry(upstream_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("upstream answered {status}"),
                )));
            }
        }
    }
}

/// A `response.failed` before any output: retry when it is the account's trouble.
async fn classify_failed_stream(state: &AppState, token_id: i32, e: &UpstreamError) -> Failure {
    if e.is_usage_limit() {
        let until = resets_at(e);
        report(
            state,
            token_id,
            Outcome::UsageLimit {
                until,
                message: "usage limit reached".into(),
            },
        )
        .await;
        return Failure::Retry(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "the account's usage limit was reached",
        ));
    }
    if e.is_transient() {
        report(
            state,
            token_id,
            Outcome::Transient(format!("upstream failed: {}", e.message)),
        )
        .await;
        return Failure::Retry(upstream_error(
            StatusCode::BAD_GATEWAY,
            &format!("upstream failed: {}", e.code.as_deref().unwrap_or("error")),
        ));
    }
    Failure::Client(AppError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        e.message.clone(),
    ))
}

/// Tells the pool how an attempt went, and counts it.
async fn report(state: &AppState, token_id: i32, outcome: Outcome) {
    let label = match &outcome {
        Outcome::Success(_) => "success",
        Outcome::UsageLimit { .. } => "usage_limit",
        Outcome::Transient(_) => "transient",
        Outcome::Forbidden(_) => "forbidden",
        Outcome::Unauthorized(_) => "unauthorized",
    };
    state.metrics.upstream(label);
    match outcome {
        // Failures change health and are stored before the retry; successes only count.
        Outcome::Success(limits) => state.pool.succeeded(token_id, limits),
        failure => state.pool.report(token_id, failure).await,
    }
}

fn resets_at(e: &UpstreamError) -> DateTime<Utc> {
    e.resets_at
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .or_else(|| {
            e.resets_in_seconds
                .map(|s| Utc::now() + chrono::Duration::seconds(s))
        })
        .unwrap_or_else(|| Utc::now() + chrono::Duration::minutes(5))
}

fn upstream_error(status: StatusCode, message: &str) -> AppError {
    AppError::new(status, "upstream_error", message.to_string())
}

/// The usage-log row of one request, written when the request ends, however it ends: a
/// dropped guard (client gone) still writes its row, with the tokens seen so far.
pub struct RequestLog {
    pub record: UsageRecord,
    started: Instant,
    writer: UsageLogHandle,
    keys: KeyCacheHandle,
    metrics: crate::metrics::Metrics,
    done: bool,
}

impl RequestLog {
    /// Starts timing a request.
    pub fn start(
        state: &AppState,
        key: &KeyRecord,
        model: &str,
        endpoint: &'static str,
        stream: bool,
        request_id: Option<String>,
    ) -> Self {
        Self {
            record: UsageRecord {
                created_at: Utc::now(),
                api_key_id: Some(key.id),
                token_id: None,
                model: model.to_string(),
                endpoint,
                stream,
                status_code: 200,
                error_message: None,
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                reasoning_tokens: 0,
                latency_ms: 0,
                ttft_ms: None,
                request_id,
                rate_limits: None,
            },
            started: Instant::now(),
            writer: state.usage.clone(),
            keys: state.keys.clone(),
            metrics: state.metrics.clone(),
            done: false,
        }
    }

    /// Notes the first byte of content sent to the client.
    pub fn first_token(&mut self) {
        if self.record.ttft_ms.is_none() {
            self.record.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    /// Notes the usage reported so far.
    pub fn usage(&mut self, usage: Option<Usage>) {
        if let Some(u) = usage {
            self.record.input_tokens = u.input_tokens;
            self.record.output_tokens = u.output_tokens;
            self.record.cached_tokens = u.cached_tokens;
            self.record.reasoning_tokens = u.reasoning_tokens;
        }
    }

    /// Ends the request with a status and, for failures, a message.
    pub fn finish(mut self, status: u16, error: Option<String>) {
        self.record.status_code = status;
        self.record.error_message = error;
        self.write();
    }

    fn write(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.record.latency_ms = self.started.elapsed().as_millis() as u64;
        if let Some(key_id) = self.record.api_key_id {
            let tokens = self.record.input_tokens + self.record.output_tokens;
            self.keys.settle(key_id, tokens as i64);
        }
        self.metrics.request(
            self.record.endpoint,
            self.record.status_code,
            self.started.elapsed().as_secs_f64(),
        );
        self.writer.record(self.record.clone());
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.done {
            // 499: the client closed the connection before the answer was complete.
            self.record.status_code = 499;
            self.record
                .error_message
                .get_or_insert_with(|| "client disconnected".into());
            self.write();
        }
    }
}

/// Converts an error to the status and message a log row keeps.
pub fn log_error(e: &AppError) -> (u16, Option<String>) {
    (
        e.status.as_u16(),
        Some(format!("{}: {}", e.code, e.message)),
    )
}
