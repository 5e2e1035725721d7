//! Dispatching a request upstream: pick an account, send, react to the answer as CODEX.md §5
//! says, and hand back an event source once the first content is on its way, because retries
//! are only possible before the first byte reaches the client.
//!
//! [`classify`](mod@classify) decides what a failed answer means for the account and for the client's
//! request; this module carries the verdict out: it reports to the pool (without waiting), moves
//! on from a 401 while the token refreshes in the background, and retries on another account
//! or returns the client's error. [`events`] reads the
//! upstream's frames and looks ahead to the first output.

pub mod classify;
pub mod events;

pub use events::Parsed;

use std::sync::Arc;

use actix_web::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use self::classify::{after, classify, classify_stream, is_server_error, resets_at, Verdict};
use self::events::EventSource;
use crate::actors::account_pool::{Checkout, Lease, Outcome, PoolError};
use crate::affinity::Lookup;
use crate::codex::client::{ConversationHeaders, SendError};
use crate::codex::wire::{RateLimits, StreamError, UpstreamError};
use crate::conversation::Conversation;
use crate::error::{AppError, ErrorCode};
use crate::request_log::{Attempt, RequestLog};
use crate::state::AppState;

/// A dispatched request: the account serving it and its events.
pub struct Dispatched {
    /// The account, held until the answer is complete.
    pub lease: Lease,
    /// The upstream's frames, starting with those read before the first output.
    pub events: EventSource,
    /// The rate-limit headers of the answer.
    pub rate_limits: Option<RateLimits>,
    /// The answer's `x-codex-turn-state`, for the client to echo within the turn.
    pub turn_state: Option<String>,
    /// The answer's headers passed back to the client ([`passed_back`]).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Response headers passed back to the client as the upstream sent them: the turn state, the
/// catalog's and the model's names, and every `x-codex-*` header (rate limits, credits, limit
/// names, promotions). The upstream's `x-request-id` comes back as `x-upstream-request-id`:
/// `x-request-id` stays the gateway's own, the id its usage log knows the request by.
pub const PASSED_BACK: [&str; 4] = [
    "x-models-etag",
    "openai-model",
    "x-reasoning-included",
    "x-codex-turn-state",
];

/// The name under which the upstream's `x-request-id` reaches the client.
pub const UPSTREAM_REQUEST_ID: &str = "x-upstream-request-id";

/// The headers of an upstream answer to pass back to the client, renamed where they must be.
pub fn passed_back(headers: &reqwest::header::HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str();
            let out = if name == "x-request-id" {
                UPSTREAM_REQUEST_ID
            } else if PASSED_BACK.contains(&name) || name.starts_with("x-codex-") {
                name
            } else {
                return None;
            };
            Some((out.to_owned(), value.as_bytes().to_vec()))
        })
        .collect()
}

/// [`dispatch`] that also ends the request's log row when no account could answer, and sets
/// the rate-limit snapshot on it when one did.
pub async fn dispatch_logged(
    state: &AppState,
    request: UpstreamRequest<'_>,
    mut log: RequestLog,
) -> Result<(Dispatched, RequestLog), AppError> {
    match dispatch(state, request, &mut log).await {
        Ok(dispatched) => {
            log.record.rate_limits.clone_from(&dispatched.rate_limits);
            Ok((dispatched, log))
        }
        Err(e) => {
            log.finish(e.status().as_u16(), Some(e.log_line()));
            Err(e)
        }
    }
}

/// What goes upstream for one client request.
#[derive(Debug, Clone)]
pub struct UpstreamRequest<'a> {
    /// The Codex request body.
    pub body: Bytes,
    /// The conversation: its pin in the pool and its headers upstream.
    pub conversation: Option<&'a Conversation>,
    /// The account to use first when it can serve (it served the stored previous response).
    pub prefer: Option<i32>,
}

/// Sends the request upstream, retrying on other accounts within the configured budget. `log`
/// learns which account served (or failed) the request.
///
/// A 401 moves the request to another account at once while the account's token refreshes in
/// the background; only when no other account can serve does the request wait for that
/// refresh, at most `refresh_wait_seconds`, and go back to the refreshed account.
pub async fn dispatch(
    state: &AppState,
    request: UpstreamRequest<'_>,
    log: &mut RequestLog,
) -> Result<Dispatched, AppError> {
    let UpstreamRequest {
        body,
        conversation,
        mut prefer,
    } = request;
    let pin = conversation.map(|c| c.pin);
    let headers = ConversationHeaders {
        session: conversation.map(|c| c.session.as_str()),
        turn_state: conversation.and_then(|c| c.turn_state.as_deref()),
        forward: conversation.map_or(&[], |c| c.forward.as_slice()),
    };
    let settings = state.settings.get();
    let max_retries = settings.max_retries as usize;
    // All the waiting for refreshes a request may do, however many accounts it waits for.
    let refresh_deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs(settings.refresh_wait_seconds);
    let mut tried: Vec<i32> = Vec::new();
    // Accounts whose token was refused during this request, with that token, oldest first.
    let mut refused: Vec<(i32, Arc<str>)> = Vec::new();
    // Accounts refreshed for this request: a second 401 takes them out.
    let mut refreshed: Vec<i32> = Vec::new();
    // The conversation's pin when the request came (counted when it is served).
    let mut pinned_to: Option<Option<i32>> = None;
    let mut last_error: Option<AppError> = None;
    let mut attempts = 0;
    let mut overloads = 0;
    // The previous attempt met a server error: a second one in a row ends the retries.
    let mut server_error = false;
    while attempts <= max_retries {
        let checkout = Checkout {
            exclude: tried.clone(),
            prefer: prefer.take(),
            pin,
            turn: conversation.and_then(|c| c.turn),
        };
        let lease = match state.pool.checkout(checkout).await {
            Ok(lease) => lease,
            Err(e) => {
                // An account that another request found refused is as good as one this
                // request found refused.
                if let PoolError::Refreshing { account_id, token } = &e {
                    if !refused.iter().any(|(id, _)| id == account_id) {
                        refused.push((*account_id, token.clone()));
                    }
                }
                // Nobody else can serve: wait (bounded) for a refused account's refresh.
                if !refused.is_empty() {
                    match wait_for_refresh(state, &mut refused, refresh_deadline).await {
                        Ok(account_id) => {
                            tried.retain(|id| *id != account_id);
                            refreshed.push(account_id);
                            prefer = Some(account_id);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                // After failures, the upstream's own error says more than "nothing left",
                // unless every account is now waiting for a usage-limit reset.
                return Err(match last_error {
                    Some(last) if last.status() != StatusCode::TOO_MANY_REQUESTS => last,
                    _ => e.into(),
                });
            }
        };
        log.record.account_id = Some(lease.account_id);
        if lease.pinned_to.is_some() {
            pinned_to = lease.pinned_to;
        }
        tried.push(lease.account_id);
        let again = refreshed.contains(&lease.account_id);
        let account_id = lease.account_id;
        let started = std::time::Instant::now();
        let mut seen = Seen::default();
        let result = attempt(
            state,
            lease,
            body.clone(),
            headers,
            again,
            server_error,
            &mut seen,
        )
        .await;
        log.attempt(Attempt::of(
            account_id,
            &result.as_ref().map(|_| ()).map_err(Failure::describe),
            seen.status,
            started.elapsed(),
        ));
        server_error = seen.server_error;
        match result {
            Ok(dispatched) => {
                if let Some(pinned) = pinned_to {
                    let lookup = Lookup::of(pinned, dispatched.lease.account_id);
                    state.metrics.affinity(lookup.label());
                }
                // The turn's next requests echo this state: they go to the same account.
                if let (Some(conversation), Some(turn_state)) =
                    (conversation, dispatched.turn_state.as_deref())
                {
                    if conversation.turn_state.as_deref() != Some(turn_state) {
                        state.pool.pin_turn(
                            conversation.turn_key(turn_state),
                            dispatched.lease.account_id,
                        );
                    }
                }
                return Ok(dispatched);
            }
            Err(Failure::Client(e)) => return Err(e),
            // Not counted against the retries: every account is refused at most once.
            Err(Failure::TokenRefused { account_id, token }) => {
                refused.push((account_id, token));
                last_error = Some(AppError::upstream(
                    "the upstream refused the account's token; it is being refreshed",
                ));
                continue;
            }
            Err(Failure::Retry(e)) => last_error = Some(e),
            Err(Failure::Overloaded(e)) => {
                state.metrics.upstream("overloaded");
                overloads += 1;
                if overloads > 1 {
                    return Err(e);
                }
                last_error = Some(e);
                tokio::time::sleep(overload_pause()).await;
            }
        }
        attempts += 1;
    }
    Err(last_error.unwrap_or_else(|| {
        AppError::new(
            ErrorCode::NoAvailableAccount,
            "no upstream account is available",
        )
    }))
}

/// Waits, until `deadline` at most, for the refresh of a refused account, oldest first; answers
/// the first account refreshed. A refresh that fails moves on to the next one.
async fn wait_for_refresh(
    state: &AppState,
    refused: &mut Vec<(i32, Arc<str>)>,
    deadline: tokio::time::Instant,
) -> Result<i32, AppError> {
    let mut failure = None;
    while !refused.is_empty() {
        let (account_id, token) = refused.remove(0);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match state
            .refresher
            .refresh_within(account_id, Some(token), left)
            .await
        {
            Some(Ok(Ok(_))) => return Ok(account_id),
            Some(Ok(Err(e))) => failure = Some(AppError::upstream(e.message)),
            Some(Err(e)) => failure = Some(e.into()),
            None => break,
        }
    }
    Err(failure.unwrap_or_else(|| {
        AppError::new(
            ErrorCode::NoAvailableAccount,
            "no upstream account is available: a refused token is still being refreshed",
        )
        .with_retry_after(5)
    }))
}

/// What an attempt saw of the upstream's answer, for the request's trail and the next attempt.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// The HTTP status of an answer other than 200.
    status: Option<u16>,
    /// The answer was a server error (see [`classify::is_server_error`]).
    server_error: bool,
}

/// How an attempt on one account failed.
#[derive(Debug)]
enum Failure {
    /// The client's own fault: goes back as is, no retry.
    Client(AppError),
    /// The account's trouble: try another one.
    Retry(AppError),
    /// The backend's overload: try once more on another account after a short pause.
    Overloaded(AppError),
    /// The account's token was refused and its refresh started: try another account.
    TokenRefused { account_id: i32, token: Arc<str> },
}

impl Failure {
    /// The status and message the request's trail keeps of this failure.
    fn describe(&self) -> (u16, String) {
        match self {
            Self::Client(e) | Self::Retry(e) | Self::Overloaded(e) => {
                (e.status().as_u16(), e.message().to_owned())
            }
            Self::TokenRefused { .. } => (
                401,
                "the upstream refused the account's token; it is being refreshed".to_owned(),
            ),
        }
    }
}

/// `Retry-After` of the answer when every attempt met an overload.
const OVERLOAD_RETRY_AFTER_SECS: u64 = 2;

/// A short, jittered pause before trying another account after an overload, so that retries
/// from many clients do not arrive together.
fn overload_pause() -> std::time::Duration {
    use rand::Rng;
    std::time::Duration::from_millis(rand::thread_rng().gen_range(50..=250))
}

/// One account: send once. A first 401 starts the token's refresh in the background and
/// hands the request back ([`Failure::TokenRefused`]); on an account already refreshed for
/// this request (`refreshed`), a 401 takes the account out.
async fn attempt(
    state: &AppState,
    lease: Lease,
    body: Bytes,
    headers: ConversationHeaders<'_>,
    refreshed: bool,
    after_server_error: bool,
    seen: &mut Seen,
) -> Result<Dispatched, Failure> {
    let sent = state
        .upstream
        .responses(
            &lease.access_token,
            &lease.chatgpt_account_id,
            lease.proxy_url.as_deref(),
            headers,
            body,
        )
        .await;
    let response = match sent {
        Ok(response) => response,
        // The client's value never left: nothing to say about the account.
        Err(SendError::InvalidHeader(name)) => {
            return Err(Failure::Client(AppError::invalid_request(format!(
                "the {name} value is not a valid header value"
            ))))
        }
        Err(SendError::Transport(e)) => {
            return Err(settle(state, &lease, Failed::Unreachable(&e.0), false))
        }
    };
    let status = response.status().as_u16();
    let rate_limits = RateLimits::from_headers(response.headers());
    let turn_state = response
        .headers()
        .get(crate::conversation::TURN_STATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let passed = passed_back(response.headers());
    if status == 200 {
        let mut events = EventSource::new(Box::pin(response.bytes_stream()));
        let outcome = events.peek_until_output().await;
        let failed = match &outcome {
            None | Some(Ok(_)) => {
                report(
                    state,
                    lease.account_id,
                    Outcome::Success(rate_limits.clone()),
                );
                return Ok(Dispatched {
                    lease,
                    events,
                    rate_limits,
                    turn_state,
                    headers: passed,
                });
            }
            Some(Err(StreamError::Disconnected)) => Failed::Cut,
            Some(Err(StreamError::Upstream(e))) => Failed::InStream(e),
        };
        seen.server_error = is_server_error(failed.status(), failed.verdict());
        return Err(settle(state, &lease, failed, after_server_error));
    }
    seen.status = Some(status);
    if let Some(limits) = rate_limits {
        // A refusal's headers say where the account's windows stand (a usage limit: spent).
        state
            .pool
            .report(lease.account_id, Outcome::Observed(limits));
    }
    let bytes = response.bytes().await.unwrap_or_default();
    let error = UpstreamError::from_body(&bytes).unwrap_or_else(|| {
        UpstreamError::message_only(&format!("upstream answered HTTP {status}"))
    });
    let failed = Failed::Status(status, &error);
    if failed.verdict() == Verdict::Refresh && !refreshed {
        let token = lease.access_token.clone();
        report(
            state,
            lease.account_id,
            Outcome::TokenRefused(token.clone()),
        );
        state
            .refresher
            .refresh_in_background(lease.account_id, Some(token.clone()));
        return Err(Failure::TokenRefused {
            account_id: lease.account_id,
            token,
        });
    }
    seen.server_error = is_server_error(failed.status(), failed.verdict());
    Err(settle(state, &lease, failed, after_server_error))
}

/// Carries out what a failed answer means: tells the pool, and returns the client's error.
/// `after_server_error`: the request's previous attempt met a server error.
fn settle(
    state: &AppState,
    lease: &Lease,
    failed: Failed<'_>,
    after_server_error: bool,
) -> Failure {
    let (outcome, failure) = consequences(failed, Utc::now(), after_server_error);
    if let Some(outcome) = outcome {
        report(state, lease.account_id, outcome);
    }
    failure
}

/// The account's trouble when its stream ended before any output.
const CUT: &str = "upstream stream ended before any output";

/// A failed upstream answer, as one attempt saw it.
#[derive(Debug, Clone, Copy)]
enum Failed<'a> {
    /// No HTTP answer at all: the transport error's message.
    Unreachable(&'a str),
    /// A 200 whose stream ended before any output.
    Cut,
    /// A status other than 200, with its parsed error body.
    Status(u16, &'a UpstreamError),
    /// A 200 whose stream failed (`response.failed`, `error`) before any output.
    InStream(&'a UpstreamError),
}

impl<'a> Failed<'a> {
    /// The verdict of CODEX.md §5 on this answer.
    fn verdict(self) -> Verdict {
        match self {
            Self::Unreachable(_) | Self::Cut => Verdict::Transient,
            Self::Status(status, error) => classify(status, error),
            Self::InStream(error) => classify_stream(error),
        }
    }

    /// The status of a server error: an HTTP status other than 200, or 500 for a stream that
    /// failed with `server_error` (the upstream's 5xx after its 200).
    fn status(self) -> Option<u16> {
        match self {
            Self::Status(status, _) => Some(status),
            Self::InStream(e) if e.is("server_error") => Some(500),
            Self::Unreachable(_) | Self::Cut | Self::InStream(_) => None,
        }
    }

    /// The upstream's error, when it gave one.
    fn error(self) -> Option<&'a UpstreamError> {
        match self {
            Self::Status(_, error) | Self::InStream(error) => Some(error),
            Self::Unreachable(_) | Self::Cut => None,
        }
    }

    /// What the client may be told about the account's failure.
    fn summary(self) -> String {
        match self {
            Self::Unreachable(message) => message.to_owned(),
            Self::Cut => CUT.to_owned(),
            Self::Status(status, _) => format!("upstream answered {status}"),
            Self::InStream(e) => {
                format!("upstream failed: {}", e.code.as_deref().unwrap_or("error"))
            }
        }
    }

    /// What the account's health keeps: the summary with the upstream's own words.
    fn detail(self) -> String {
        match self {
            Self::Status(status, e) => format!("upstream answered {status}: {}", e.message),
            Self::InStream(e) => format!("upstream failed: {}", e.message),
            Self::Unreachable(_) | Self::Cut => self.summary(),
        }
    }
}

/// What a failed answer means: the report for the pool, if any, and the client's error, to
/// retry with or to return. [`settle`] carries it out. `after_server_error`: the request's
/// previous attempt met a server error.
fn consequences(
    failed: Failed<'_>,
    now: DateTime<Utc>,
    after_server_error: bool,
) -> (Option<Outcome>, Failure) {
    match after(after_server_error, failed.status(), failed.verdict()) {
        Verdict::Refresh => {
            let message = "the upstream refused the account's token even after a refresh";
            (
                Some(Outcome::Unauthorized(message.to_owned())),
                Failure::Retry(AppError::upstream(message)),
            )
        }
        Verdict::UsageLimit => usage_limited(failed, now),
        Verdict::Forbidden => (
            Some(Outcome::Forbidden(failed.detail())),
            Failure::Retry(AppError::upstream("the upstream refused the account")),
        ),
        Verdict::Transient => (
            Some(Outcome::Transient(failed.detail())),
            Failure::Retry(AppError::upstream(failed.summary())),
        ),
        Verdict::Overloaded => (
            None,
            Failure::Overloaded(
                AppError::new(
                    ErrorCode::ServerOverloaded,
                    "the upstream is overloaded; try again shortly",
                )
                .with_retry_after(OVERLOAD_RETRY_AFTER_SECS),
            ),
        ),
        Verdict::Client => (None, Failure::Client(client_error(failed))),
        Verdict::RepeatedServerError => (None, Failure::Client(repeated_server_error(failed))),
    }
}

/// The upstream's server error, as the client gets it once the request met one on two
/// accounts in a row: the upstream's status and words.
fn repeated_server_error(failed: Failed<'_>) -> AppError {
    let status = failed.status().unwrap_or(502);
    let error = AppError::upstream(format!(
        "{}; the request failed with a server error ({status}) on two accounts in a row and is \
         not retried",
        failed.detail()
    ));
    match StatusCode::from_u16(status).ok() {
        Some(status) => error.with_status(status),
        None => error,
    }
}

/// The account cools down until its usage limit resets; an HTTP 429 also tells the client
/// when that is.
fn usage_limited(failed: Failed<'_>, now: DateTime<Utc>) -> (Option<Outcome>, Failure) {
    let until = resets_at(failed.error().unwrap_or(&UpstreamError::default()), now);
    let error = AppError::new(
        ErrorCode::RateLimitExceeded,
        "the account's usage limit was reached",
    );
    let (message, error) = match failed {
        Failed::Status(..) => (
            format!("usage limit reached; resets at {}", until.to_rfc3339()),
            error.with_retry_after((until - now).num_seconds().max(1) as u64),
        ),
        _ => ("usage limit reached".to_owned(), error),
    };
    (
        Some(Outcome::UsageLimit { until, message }),
        Failure::Retry(error),
    )
}

/// The client's request is at fault: the upstream's explanation goes back as is, with the
/// 413 or 422 and the parameter an HTTP answer gave.
fn client_error(failed: Failed<'_>) -> AppError {
    let (status, e) = match failed {
        Failed::Status(status, e) => (status, e),
        Failed::InStream(e) => return AppError::invalid_request(e.message.clone()),
        // Never the client's fault (see `Failed::verdict`); named for completeness.
        Failed::Unreachable(_) | Failed::Cut => return AppError::upstream(failed.summary()),
    };
    let message = e.message.clone();
    let error = match status {
        404 => AppError::new(ErrorCode::ModelNotFound, message),
        413 => AppError::invalid_request(message).with_status(StatusCode::PAYLOAD_TOO_LARGE),
        422 => AppError::invalid_request(message).with_status(StatusCode::UNPROCESSABLE_ENTITY),
        _ => AppError::invalid_request(message),
    };
    match &e.param {
        Some(param) => error.with_param(param.clone()),
        None => error,
    }
}

/// Tells the pool how an attempt went, without waiting, and counts it.
fn report(state: &AppState, account_id: i32, outcome: Outcome) {
    state.metrics.upstream(outcome.label());
    state.pool.report(account_id, outcome);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_codex_headers_of_an_answer_go_back_and_the_request_id_is_renamed() {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-codex-turn-state", "ts-1"),
            ("x-models-etag", "\"e1\""),
            ("openai-model", "gpt-5.5"),
            ("x-reasoning-included", "true"),
            ("x-codex-primary-used-percent", "25"),
            ("x-codex-credits-balance", "9.99"),
            ("x-request-id", "up-1"),
            ("set-cookie", "secret=1"),
            ("content-type", "text/event-stream"),
            ("openai-organization", "org"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut passed = passed_back(&headers);
        passed.sort();
        let names: Vec<&str> = passed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "openai-model",
                "x-codex-credits-balance",
                "x-codex-primary-used-percent",
                "x-codex-turn-state",
                "x-models-etag",
                "x-reasoning-included",
                "x-upstream-request-id",
            ]
        );
        assert!(passed.contains(&("x-upstream-request-id".into(), b"up-1".to_vec())));
    }

    use super::classify::tests::error;
    use super::*;

    /// The error a retried request ends with, with the account's outcome.
    fn retried(failed: Failed<'_>) -> (Outcome, AppError) {
        match consequences(failed, Utc::now(), false) {
            (Some(outcome), Failure::Retry(e)) => (outcome, e),
            other => panic!("a retry expected, got {other:?}"),
        }
    }

    /// The error a request gets back unretried; the account is left alone.
    fn returned(failed: Failed<'_>) -> AppError {
        match consequences(failed, Utc::now(), false) {
            (None, Failure::Client(e)) => e,
            other => panic!("the client's error expected, got {other:?}"),
        }
    }

    #[test]
    fn a_second_401_takes_the_account_out_and_retries() {
        let (outcome, e) = retried(Failed::Status(401, &error(None, None)));
        assert!(matches!(outcome, Outcome::Unauthorized(_)));
        assert_eq!(e.code(), ErrorCode::UpstreamError);
    }

    #[test]
    fn a_usage_limit_cools_down_until_the_reset_and_retries() {
        let limit = UpstreamError {
            resets_in_seconds: Some(600),
            ..error(None, Some("usage_limit_reached"))
        };
        let (outcome, e) = retried(Failed::Status(429, &limit));
        let Outcome::UsageLimit { until, message } = outcome else {
            panic!("usage limit expected")
        };
        assert!(until > Utc::now() + chrono::Duration::seconds(590));
        assert!(message.starts_with("usage limit reached; resets at "));
        assert_eq!(e.code(), ErrorCode::RateLimitExceeded);
        assert!(e.retry_after().is_some_and(|s| (590..=600).contains(&s)));

        let (outcome, e) = retried(Failed::InStream(&limit));
        assert!(matches!(outcome, Outcome::UsageLimit { .. }));
        assert_eq!(e.code(), ErrorCode::RateLimitExceeded);
    }

    #[test]
    fn transient_failures_cool_down_shortly_and_retry() {
        let plain = error(None, None);
        let rate = error(Some("rate_limit_exceeded"), None);
        for failed in [
            Failed::Status(429, &rate),
            Failed::Status(408, &plain),
            Failed::Status(500, &plain),
            Failed::Status(502, &plain),
            Failed::Unreachable("connection refused"),
            Failed::Cut,
            Failed::InStream(&rate),
        ] {
            let (outcome, e) = retried(failed);
            assert!(matches!(outcome, Outcome::Transient(_)), "{failed:?}");
            assert_eq!(e.code(), ErrorCode::UpstreamError, "{failed:?}");
        }
        let (Outcome::Transient(detail), e) = retried(Failed::Status(502, &plain)) else {
            panic!("transient expected")
        };
        assert_eq!(detail, "upstream answered 502: upstream says no");
        assert_eq!(e.message(), "upstream answered 502");
    }

    #[test]
    fn an_overload_leaves_the_account_alone_and_answers_503_at_last() {
        let plain = error(None, None);
        let overloaded = error(Some("server_is_overloaded"), None);
        let slow = error(Some("slow_down"), None);
        for failed in [
            Failed::Status(503, &plain),
            Failed::Status(503, &overloaded),
            Failed::Status(429, &slow),
            Failed::InStream(&overloaded),
            Failed::InStream(&slow),
        ] {
            let (outcome, failure) = consequences(failed, Utc::now(), false);
            assert!(outcome.is_none(), "{failed:?}: the account is not cooled");
            let Failure::Overloaded(e) = failure else {
                panic!("{failed:?}: an overload expected, got {failure:?}")
            };
            assert_eq!(e.code(), ErrorCode::ServerOverloaded);
            assert_eq!(e.status().as_u16(), 503);
            assert!(e.retry_after().is_some_and(|s| s <= 5));
        }
        assert!(overload_pause() <= std::time::Duration::from_millis(250));
    }

    #[test]
    fn a_server_error_after_a_server_error_cools_nothing_and_goes_back() {
        let plain = error(None, None);
        let (outcome, failure) = consequences(Failed::Status(500, &plain), Utc::now(), true);
        assert!(outcome.is_none(), "the second account is not cooled");
        let Failure::Client(e) = failure else {
            panic!("the upstream's error goes back, got {failure:?}")
        };
        assert_eq!(e.code(), ErrorCode::UpstreamError);
        assert_eq!(e.status().as_u16(), 500);
        assert!(
            e.message()
                .starts_with("upstream answered 500: upstream says no"),
            "{}",
            e.message()
        );
        // A stream that failed with `server_error` is a server error too.
        let in_stream = error(Some("server_error"), None);
        let (outcome, failure) = consequences(Failed::InStream(&in_stream), Utc::now(), true);
        assert!(outcome.is_none());
        let Failure::Client(e) = failure else {
            panic!("the upstream's error goes back, got {failure:?}")
        };
        assert_eq!(e.status().as_u16(), 500);
        // After a server error, an overload or a network error keeps its own rule.
        let (_, failure) = consequences(Failed::Status(503, &plain), Utc::now(), true);
        assert!(matches!(failure, Failure::Overloaded(_)), "{failure:?}");
        let (outcome, failure) = consequences(Failed::Unreachable("reset"), Utc::now(), true);
        assert!(matches!(outcome, Some(Outcome::Transient(_))));
        assert!(matches!(failure, Failure::Retry(_)), "{failure:?}");
    }

    #[test]
    fn refused_accounts_cool_down_for_long_and_retry() {
        for status in [402, 403] {
            let (outcome, e) = retried(Failed::Status(status, &error(None, None)));
            assert!(matches!(outcome, Outcome::Forbidden(_)), "{status}");
            assert_eq!(e.code(), ErrorCode::UpstreamError);
        }
    }

    #[test]
    fn the_clients_errors_go_back_as_is() {
        let bad = UpstreamError {
            param: Some("input".into()),
            ..error(None, Some("invalid_request_error"))
        };
        for (status, code, answered) in [
            (400, ErrorCode::InvalidRequest, 400),
            (404, ErrorCode::ModelNotFound, 404),
            (413, ErrorCode::InvalidRequest, 413),
            (422, ErrorCode::InvalidRequest, 422),
            (431, ErrorCode::InvalidRequest, 400),
        ] {
            let e = returned(Failed::Status(status, &bad));
            assert_eq!(e.code(), code, "{status}");
            assert_eq!(e.status().as_u16(), answered, "{status}");
            assert_eq!(e.message(), "upstream says no");
        }
        let e = returned(Failed::InStream(&error(Some("invalid_prompt"), None)));
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
    }
}
