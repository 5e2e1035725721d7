//! Dispatching a request upstream: pick an account, send, react to the answer as CODEX.md §5
//! says (refresh once on 401, cool down on limits and failures, retry on another account), and
//! hand back an event source once the first content is on its way, because retries are only
//! possible before the first byte reaches the client.

use std::collections::VecDeque;
use std::pin::Pin;

use actix_web::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use crate::actors::account_pool::{Lease, Outcome};
use crate::codex::sse::{SseDecoder, SseFrame};
use crate::codex::wire::RateLimits;
use crate::codex::wire::{StreamEvent, StreamOutcome, UpstreamError};
use crate::error::{AppError, ErrorCode};
use crate::request_log::RequestLog;
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
                break Some(Err(crate::codex::wire::StreamError::Disconnected));
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
            log.finish(e.status().as_u16(), Some(e.log_line()));
            Err(e)
        }
    }
}

/// Ends the log row of an answer that failed after dispatch and returns the client's 502.
pub fn failed_after_dispatch(log: RequestLog, error: &impl std::fmt::Display) -> AppError {
    let message = error.to_string();
    log.finish(502, Some(message.clone()));
    AppError::new(ErrorCode::UpstreamError, message)
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
                Some(last) if last.status() != StatusCode::TOO_MANY_REQUESTS => return Err(last),
                _ => return Err(e.into()),
            },
        };
        log.record.account_id = Some(lease.account_id);
        tried.push(lease.account_id);
        match attempt(state, lease, body.clone(), session_id).await {
            Ok(dispatched) => return Ok(dispatched),
            Err(Failure::Client(e)) => return Err(e),
            Err(Failure::Retry(e)) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        AppError::new(
            ErrorCode::NoAvailableAccount,
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
                &lease.chatgpt_account_id,
                lease.proxy_url.as_deref(),
                session_id,
                body.clone(),
            )
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                report(state, lease.account_id, Outcome::Transient(e.0.clone())).await;
                return Err(Failure::Retry(AppError::upstream(&e.0)));
            }
        };
        let status = response.status().as_u16();
        let rate_limits = RateLimits::from_headers(response.headers());
        if status == 200 {
            let mut events = EventSource::new(Box::pin(response.bytes_stream()));
            return match events.peek_until_output().await {
                None | Some(Ok(_)) => {
                    report(
                        state,
                        lease.account_id,
                        Outcome::Success(rate_limits.clone()),
                    )
                    .await;
                    Ok(Dispatched {
                        lease,
                        events,
                        rate_limits,
                    })
                }
                Some(Err(crate::codex::wire::StreamError::Disconnected)) => {
                    let message = "upstream stream ended before any output".to_string();
                    report(state, lease.account_id, Outcome::Transient(message.clone())).await;
                    Err(Failure::Retry(AppError::upstream(&message)))
                }
                Some(Err(crate::codex::wire::StreamError::Upstream(e))) => {
                    Err(classify_failed_stream(state, lease.account_id, &e).await)
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
                match state.refresher.refresh(lease.account_id, Some(stale)).await {
                    Ok(Ok(new)) => {
                        lease.access_token = new.access_token;
                        continue;
                    }
                    Ok(Err(failure)) => {
                        return Err(Failure::Retry(AppError::upstream(&failure.message)));
                    }
                    Err(e) => return Err(Failure::Retry(e.into())),
                }
            }
            401 => {
                let message =
                    "the upstream refused the account's token even after a refresh".to_string();
                report(
                    state,
                    lease.account_id,
                    Outcome::Unauthorized(message.clone()),
                )
                .await;
                return Err(Failure::Retry(AppError::upstream(&message)));
            }
            429 if error.is_usage_limit() => {
                let until = resets_at(&error);
                report(
                    state,
                    lease.account_id,
                    Outcome::UsageLimit {
                        until,
                        message: format!("usage limit reached; resets at {}", until.to_rfc3339()),
                    },
                )
                .await;
                let retry_after = (until - Utc::now()).num_seconds().max(1) as u64;
                return Err(Failure::Retry(
                    AppError::new(
                        ErrorCode::RateLimitExceeded,
                        "the account's usage limit was reached",
                    )
                    .with_retry_after(retry_after),
                ));
            }
            402 | 403 => {
                let message = format!("upstream answered {status}: {}", error.message);
                report(state, lease.account_id, Outcome::Forbidden(message)).await;
                return Err(Failure::Retry(AppError::upstream(
                    "the upstream refused the account",
                )));
            }
            400 | 404 | 413 | 422 => {
                // The client's request is at fault; the upstream's explanation is passed on.
                let mut e = if status == 404 {
                    AppError::new(ErrorCode::ModelNotFound, error.message.clone())
                } else {
                    AppError::invalid_request(error.message.clone()).with_status(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    )
                };
                if let Some(param) = error.param.clone() {
                    e = e.with_param(param);
                }
                return Err(Failure::Client(e));
            }
            _ => {
                let message = format!("upstream answered {status}: {}", error.message);
                report(state, lease.account_id, Outcome::Transient(message)).await;
                return Err(Failure::Retry(AppError::upstream(&format!(
                    "upstream answered {status}"
                ))));
            }
        }
    }
}

/// A `response.failed` before any output: retry when it is the account's trouble.
async fn classify_failed_stream(state: &AppState, account_id: i32, e: &UpstreamError) -> Failure {
    if e.is_usage_limit() {
        let until = resets_at(e);
        report(
            state,
            account_id,
            Outcome::UsageLimit {
                until,
                message: "usage limit reached".into(),
            },
        )
        .await;
        return Failure::Retry(AppError::new(
            ErrorCode::RateLimitExceeded,
            "the account's usage limit was reached",
        ));
    }
    if e.is_transient() {
        report(
            state,
            account_id,
            Outcome::Transient(format!("upstream failed: {}", e.message)),
        )
        .await;
        return Failure::Retry(AppError::upstream(&format!(
            "upstream failed: {}",
            e.code.as_deref().unwrap_or("error")
        )));
    }
    Failure::Client(AppError::new(ErrorCode::InvalidRequest, e.message.clone()))
}

/// Tells the pool how an attempt went, and counts it.
async fn report(state: &AppState, account_id: i32, outcome: Outcome) {
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
        Outcome::Success(limits) => state.pool.succeeded(account_id, limits),
        failure => state.pool.report(account_id, failure).await,
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
