//! The responses endpoint: the checks the backend makes, the account's `Behaviour`, and the
//! answer stream with its rate-limit headers.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Value};

use crate::scenario::Scenario;
use crate::sse::{fast_events, Sse, Step};
use crate::state::{Inner, MockState, RecordedRequest};
use crate::validate::{model_supported, validate};
use crate::{openai_error, status_code};

/// What the responses endpoint does for one account.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Answer normally (the scenario comes from the message markers).
    #[default]
    Ok,
    /// 429 `usage_limit_reached` with `resets_at` / `resets_in_seconds`.
    UsageLimit {
        /// Seconds until the limit resets.
        resets_in_seconds: u64,
    },
    /// 429 `rate_limit_exceeded` (a short-term limit, not the plan's usage limit).
    RateLimited,
    /// This HTTP status with an `{"error": ...}` body.
    ServerError(u16),
    /// 401: set persistently, it refuses every access token issued before the next refresh;
    /// queued, it refuses one request whatever the token.
    Unauthorized,
    /// 403 `account_deactivated`.
    Forbidden,
    /// 402 `deactivated_workspace`.
    PaymentRequired,
    /// A 200 stream that fails with `response.failed` carrying this code before any content.
    StreamFailed(String),
}

/// Values of the `x-codex-primary-*` / `x-codex-secondary-*` headers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RateLimits {
    /// Percentage of the 5-hour window used.
    pub primary_used_percent: f64,
    /// Length of the primary window (300 = 5 h).
    pub primary_window_minutes: u64,
    /// Seconds until the primary window resets.
    pub primary_reset_after_seconds: u64,
    /// Percentage of the weekly window used.
    pub secondary_used_percent: f64,
    /// Length of the secondary window (10080 = a week).
    pub secondary_window_minutes: u64,
    /// Seconds until the secondary window resets.
    pub secondary_reset_after_seconds: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            primary_used_percent: 25.0,
            primary_window_minutes: 300,
            primary_reset_after_seconds: 3600,
            secondary_used_percent: 40.0,
            secondary_window_minutes: 10080,
            secondary_reset_after_seconds: 86400,
        }
    }
}

/// What the responses endpoint decided, computed under the lock and acted on after it.
enum Outcome {
    Error {
        status: u16,
        body: Value,
        limits: Option<RateLimits>,
    },
    Stream {
        events: Vec<Step>,
        account_id: String,
        limits: RateLimits,
    },
}

/// `POST /backend-api/codex/responses`.
pub(crate) async fn responses(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_ascii_lowercase(), value)
        })
        .collect();
    let account_id = headers
        .get("chatgpt-account-id")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    // The backend's sticky token for a turn: echoed, or a new one for a turn's first request.
    let turn_state = headers
        .get("x-codex-turn-state")
        .cloned()
        .unwrap_or_else(|| format!("ts-{}", uuid::Uuid::new_v4().simple()));

    let model = parsed
        .as_ref()
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let models_etag;
    let outcome = {
        let mut inner = state.lock();
        let plan = account_id
            .as_deref()
            .map(|id| inner.account(id).plan_type.clone())
            .unwrap_or_default();
        models_etag = crate::catalog::etag(
            &inner
                .catalog
                .clone()
                .unwrap_or_else(|| crate::catalog::default_catalog(&plan)),
        );
        let outcome = decide(
            &mut inner,
            account_id.as_deref(),
            bearer.as_deref(),
            &parsed,
        );
        inner.total_requests += 1;
        if let Some(id) = &account_id {
            inner.account(id).requests += 1;
        }
        if !inner.fast {
            inner.push_request(RecordedRequest {
                headers,
                body: parsed.unwrap_or(Value::Null),
            });
        }
        if matches!(outcome, Outcome::Stream { .. }) {
            inner.open_streams += 1;
        }
        outcome
    };

    match outcome {
        Outcome::Error {
            status,
            body,
            limits,
        } => {
            let mut resp = HttpResponse::build(status_code(status));
            if let Some(limits) = limits {
                for (name, value) in rate_limit_headers(&limits) {
                    resp.insert_header((name, value));
                }
            }
            resp.json(body)
        }
        Outcome::Stream {
            events,
            account_id,
            limits,
        } => {
            let guard = StreamGuard {
                state: state.into_inner(),
                account_id,
                finished: false,
            };
            let mut resp = HttpResponse::Ok();
            resp.content_type("text/event-stream; charset=utf-8")
                .insert_header(("cache-control", "no-cache"))
                .insert_header(("x-codex-turn-state", turn_state))
                .insert_header(("x-request-id", uuid::Uuid::new_v4().to_string()))
                .insert_header(("openai-model", model))
                .insert_header(("x-reasoning-included", "true"))
                .insert_header(("x-models-etag", models_etag));
            for (name, value) in rate_limit_headers(&limits) {
                resp.insert_header((name, value));
            }
            resp.streaming(sse_stream(events, guard))
        }
    }
}

/// Counts a stream as open while it lives; its `Drop` tells a finished stream from one the
/// client abandoned (actix drops the body when the connection goes away).
struct StreamGuard {
    state: Arc<MockState>,
    account_id: String,
    finished: bool,
}

impl StreamGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut inner = self.state.lock();
        inner.open_streams = inner.open_streams.saturating_sub(1);
        if self.finished {
            inner.finished_streams += 1;
        } else {
            inner.dropped_streams += 1;
            inner.account(&self.account_id).dropped_streams += 1;
        }
    }
}

fn sse_stream(
    events: Vec<Step>,
    guard: StreamGuard,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    stream::unfold(
        (events.into_iter(), guard),
        |(mut events, mut guard)| async move {
            if let Some(step) = events.next() {
                if !step.delay.is_zero() {
                    actix_web::rt::time::sleep(step.delay).await;
                }
                Some((Ok(step.bytes), (events, guard)))
            } else {
                guard.finish();
                None
            }
        },
    )
}

fn decide(
    inner: &mut Inner,
    account_id: Option<&str>,
    bearer: Option<&str>,
    body: &Option<Value>,
) -> Outcome {
    let Some(bearer) = bearer else {
        return error(401, json!({"detail": "Unauthorized"}));
    };
    let Some(account_id) = account_id else {
        return error(400, json!({"detail": "Missing chatgpt-account-id header"}));
    };
    let fast = inner.fast;
    let economy = inner.economy.clone();
    let now = std::time::Instant::now();
    let acc = inner.account(account_id);
    let standing = acc.standing(economy.as_ref(), now);
    let limits = standing.limits.clone();

    // Accounts registered with tokens check them; others (created by a behaviour setting or a
    // bare request) accept any bearer so quick tests need no setup.
    let seq = acc.access_tokens.get(bearer).copied();
    if !acc.access_tokens.is_empty() && seq.is_none() {
        return error(
            401,
            openai_error(
                "Your authentication token has been invalidated. Please try signing in again.",
                "invalid_request_error",
                None,
                Some("token_invalidated"),
            ),
        );
    }
    if acc.behaviour == Behaviour::Unauthorized && seq.unwrap_or(0) <= acc.unauthorized_up_to {
        return unauthorized();
    }

    if fast {
        return Outcome::Stream {
            events: fast_events(),
            account_id: account_id.to_owned(),
            limits,
        };
    }

    let Some(body) = body else {
        return error(400, json!({"detail": "Request body is not valid JSON"}));
    };
    if let Err((status, body)) = validate(body) {
        return error(status, body);
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let scenario = Scenario::from_request(body);
    if scenario.unsupported_model || !model_supported(model, &inner.supported_models) {
        return error(
            400,
            json!({"detail": format!(
                "The '{model}' model is not supported when using Codex with a ChatGPT account."
            )}),
        );
    }

    let acc = inner.account(account_id);
    let (behaviour, queued) = match acc.queue.pop_front() {
        Some(one_shot) => (one_shot, true),
        None => (acc.behaviour.clone(), false),
    };
    let plan = acc.plan_type.clone();
    let limits = acc.standing(economy.as_ref(), now).limits;
    match behaviour {
        Behaviour::Ok => {}
        // A lasting `Unauthorized` whose token passed the check above belongs to a refresh
        // that happened after it was set.
        Behaviour::Unauthorized if !queued => {}
        Behaviour::Unauthorized => return unauthorized(),
        Behaviour::UsageLimit { resets_in_seconds } => {
            return usage_limit(&plan, resets_in_seconds, limits);
        }
        Behaviour::RateLimited => {
            return Outcome::Error {
                status: 429,
                body: openai_error(
                    "Rate limit reached. Please try again later.",
                    "rate_limit_exceeded",
                    None,
                    Some("rate_limit_exceeded"),
                ),
                limits: Some(limits),
            }
        }
        Behaviour::ServerError(status) => {
            return error(
                status,
                openai_error(
                    "An error occurred while processing your request.",
                    "server_error",
                    None,
                    Some("server_error"),
                ),
            )
        }
        Behaviour::Forbidden => {
            return error(
                403,
                openai_error(
                    "Your OpenAI account has been deactivated.",
                    "invalid_request_error",
                    None,
                    Some("account_deactivated"),
                ),
            )
        }
        Behaviour::PaymentRequired => {
            return error(402, json!({"detail": {"code": "deactivated_workspace"}}))
        }
        Behaviour::StreamFailed(code) => {
            let mut sse = Sse::new(model, body, 0);
            sse.started();
            sse.failed(&code);
            return Outcome::Stream {
                events: sse.steps,
                account_id: account_id.to_owned(),
                limits,
            };
        }
    }

    // The economy: a spent account refuses; otherwise the answer spends its budgets, and its
    // headers say how much is used after it.
    let (tokens, limits) = match &economy {
        None => (None, limits),
        Some(economy) => {
            if let Some(resets_in_seconds) = standing.spent_until {
                acc.usage_limit_refusals += 1;
                let others = inner.least_used_elsewhere(account_id, economy, now);
                inner.refusal_headroom.push(others);
                return usage_limit(&plan, resets_in_seconds, limits);
            }
            let tokens = economy.serve(&mut acc.ledger, body, crate::USAGE_OUTPUT_TOKENS);
            (Some(tokens), economy.standing(&mut acc.ledger, now).limits)
        }
    };
    Outcome::Stream {
        events: scenario.events(account_id, model, body, tokens),
        account_id: account_id.to_owned(),
        limits,
    }
}

/// 429 `usage_limit_reached`, as the backend answers it, with headers saying the window is
/// used up.
fn usage_limit(plan: &str, resets_in_seconds: u64, limits: RateLimits) -> Outcome {
    let resets_at = chrono::Utc::now().timestamp() + resets_in_seconds as i64;
    let exhausted = RateLimits {
        primary_used_percent: limits.primary_used_percent.max(100.0),
        primary_reset_after_seconds: resets_in_seconds,
        ..limits
    };
    Outcome::Error {
        status: 429,
        body: json!({"error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": plan,
            "resets_at": resets_at,
            "resets_in_seconds": resets_in_seconds,
        }}),
        limits: Some(exhausted),
    }
}

fn error(status: u16, body: Value) -> Outcome {
    Outcome::Error {
        status,
        body,
        limits: None,
    }
}

fn unauthorized() -> Outcome {
    error(
        401,
        openai_error(
            "Provided authentication token is expired. Please try signing in again.",
            "invalid_request_error",
            None,
            Some("token_expired"),
        ),
    )
}

/// The `x-codex-{primary,secondary}-*` headers, in the order the backend sends them.
fn rate_limit_headers(l: &RateLimits) -> Vec<(String, String)> {
    let windows = [
        (
            "primary",
            l.primary_used_percent,
            l.primary_window_minutes,
            l.primary_reset_after_seconds,
        ),
        (
            "secondary",
            l.secondary_used_percent,
            l.secondary_window_minutes,
            l.secondary_reset_after_seconds,
        ),
    ];
    windows
        .into_iter()
        .flat_map(|(window, used, minutes, reset)| {
            [
                (format!("x-codex-{window}-used-percent"), used.to_string()),
                (
                    format!("x-codex-{window}-window-minutes"),
                    minutes.to_string(),
                ),
                (
                    format!("x-codex-{window}-reset-after-seconds"),
                    reset.to_string(),
                ),
            ]
        })
        .collect()
}
