//! The `/__mock/*` endpoints, through which the standalone process is configured and inspected,
//! and the JSON forms of the behaviours they take.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::{Behaviour, Economy, MockAccount, MockState, RefreshBehaviour};

/// The control routes, below the server root.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/__mock/accounts", web::get().to(list_accounts))
        .route("/__mock/accounts", web::post().to(add_accounts))
        .route("/__mock/behaviour", web::post().to(set_behaviours))
        .route("/__mock/stats", web::get().to(stats))
        .route("/__mock/requests/last", web::get().to(last_request))
        .route("/__mock/requests", web::get().to(recent_requests))
        .route("/__mock/reset", web::post().to(reset));
}

async fn list_accounts(state: web::Data<MockState>) -> HttpResponse {
    let accounts: Vec<Value> = state
        .accounts()
        .iter()
        .map(MockAccount::to_cliproxy_json)
        .collect();
    HttpResponse::Ok().json(accounts)
}

/// `{"count": N, "prefix": "acct"}` creates N accounts; anything else is read as credential
/// file content to register. Answers the accounts as CLIProxyAPI credential objects.
async fn add_accounts(body: web::Json<Value>, state: web::Data<MockState>) -> HttpResponse {
    let body = body.into_inner();
    let ids = if let Some(count) = body.get("count").and_then(Value::as_u64) {
        let prefix = body
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or("mock-account");
        let start = state.accounts().len() + 1;
        (start..start + count as usize)
            .map(|i| state.create_account(&format!("{prefix}-{i:03}")).account_id)
            .collect()
    } else {
        match state.add_accounts_from_value(&body) {
            Ok(ids) => ids,
            Err(e) => return HttpResponse::BadRequest().json(json!({"error": e})),
        }
    };
    let accounts: Vec<Value> = ids
        .iter()
        .filter_map(|id| state.account(id))
        .map(|a| a.to_cliproxy_json())
        .collect();
    HttpResponse::Ok().json(accounts)
}

/// `{"account_id", "behaviour", "times", "refresh", "refresh_times", "refresh_delay_ms",
/// "supported_models", "fast", "oauth_down", "economy", "usage", "reset_usage"}`, each optional
/// but `account_id` when a behaviour, a usage or a reset is given. `economy` is `null` (off) or
/// `{"primary_budget", "primary_window_seconds", "secondary_budget",
/// "secondary_window_seconds", "cached_cost"}` (each optional); `usage` is
/// `{"primary": percent, "secondary": percent}`.
async fn set_behaviours(body: web::Json<Value>, state: web::Data<MockState>) -> HttpResponse {
    match apply_control(&state, &body) {
        Ok(()) => HttpResponse::Ok().json(json!({"ok": true})),
        Err(e) => HttpResponse::BadRequest().json(json!({"error": e})),
    }
}

fn apply_control(state: &MockState, body: &Value) -> Result<(), String> {
    let account = body.get("account_id").and_then(Value::as_str);
    let times = |key: &str| body.get(key).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(b) = body.get("behaviour") {
        let behaviour = Behaviour::from_json(b)?;
        let id = account.ok_or("account_id is required with behaviour")?;
        match times("times") {
            Some(n) => state.queue_behaviour(id, behaviour, n),
            None => state.set_behaviour(id, behaviour),
        }
    }
    if let Some(b) = body.get("refresh") {
        let behaviour = RefreshBehaviour::from_json(b)?;
        let id = account.ok_or("account_id is required with refresh")?;
        match times("refresh_times") {
            Some(n) => state.queue_refresh_behaviour(id, behaviour, n),
            None => state.set_refresh_behaviour(id, behaviour),
        }
    }
    if let Some(ms) = body.get("refresh_delay_ms").and_then(Value::as_u64) {
        state.set_refresh_delay(Duration::from_millis(ms));
    }
    if let Some(models) = body.get("supported_models") {
        let list = models.as_array().map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
        state.set_supported_models(list);
    }
    if let Some(fast) = body.get("fast").and_then(Value::as_bool) {
        state.set_fast(fast);
    }
    if let Some(down) = body.get("oauth_down").and_then(Value::as_bool) {
        state.set_oauth_down(down);
    }
    if let Some(economy) = body.get("economy") {
        state.set_economy(economy_from_json(economy)?);
    }
    if let Some(usage) = body.get("usage") {
        let id = account.ok_or("account_id is required with usage")?;
        let percent = |key: &str| usage.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        state.set_usage(id, percent("primary"), percent("secondary"));
    }
    if body.get("reset_usage").and_then(Value::as_bool) == Some(true) {
        state.reset_usage(account.ok_or("account_id is required with reset_usage")?);
    }
    Ok(())
}

/// The economy's rules from JSON: `null` turns it off; missing fields keep their defaults.
fn economy_from_json(value: &Value) -> Result<Option<Economy>, String> {
    if value.is_null() {
        return Ok(None);
    }
    if !value.is_object() {
        return Err("economy must be null or an object".into());
    }
    let d = Economy::default();
    let number =
        |key: &str, default: f64| value.get(key).and_then(Value::as_f64).unwrap_or(default);
    let seconds = |key: &str, default: Duration| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .map_or(default, Duration::from_secs)
    };
    Ok(Some(Economy {
        primary_budget: number("primary_budget", d.primary_budget),
        primary_window: seconds("primary_window_seconds", d.primary_window),
        secondary_budget: number("secondary_budget", d.secondary_budget),
        secondary_window: seconds("secondary_window_seconds", d.secondary_window),
        cached_cost: number("cached_cost", d.cached_cost),
    }))
}

impl Behaviour {
    /// Reads `"ok"`, `"unauthorized"`, `"forbidden"`, `"payment_required"`, `"rate_limited"`, or
    /// `{"kind": "usage_limit", "resets_in_seconds": N}`, `{"kind": "server_error", "status": N}`,
    /// `{"kind": "stream_failed", "code": C}`.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        Ok(match kind(value, "behaviour")? {
            "ok" => Behaviour::Ok,
            "usage_limit" => Behaviour::UsageLimit {
                resets_in_seconds: number(value, "resets_in_seconds", 3600),
            },
            "rate_limited" => Behaviour::RateLimited,
            "server_error" => Behaviour::ServerError(number(value, "status", 500) as u16),
            "unauthorized" => Behaviour::Unauthorized,
            "forbidden" => Behaviour::Forbidden,
            "payment_required" => Behaviour::PaymentRequired,
            "stream_failed" => Behaviour::StreamFailed(
                value
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("server_is_overloaded")
                    .to_owned(),
            ),
            other => return Err(format!("unknown behaviour `{other}`")),
        })
    }
}

impl RefreshBehaviour {
    /// Reads `"ok"`, `"reused"`, `"expired"`, `"invalidated"`, `"invalid_grant"`, or
    /// `{"kind": "server_error", "status": N}`.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        Ok(match kind(value, "refresh")? {
            "ok" => RefreshBehaviour::Ok,
            "reused" => RefreshBehaviour::Reused,
            "expired" => RefreshBehaviour::Expired,
            "invalidated" => RefreshBehaviour::Invalidated,
            "invalid_grant" => RefreshBehaviour::InvalidGrant,
            "server_error" => RefreshBehaviour::ServerError(number(value, "status", 500) as u16),
            other => return Err(format!("unknown refresh behaviour `{other}`")),
        })
    }
}

/// The kind of a behaviour given as `"kind"` or `{"kind": "kind", ...}`; `what` names it in
/// the error.
fn kind<'a>(value: &'a Value, what: &str) -> Result<&'a str, String> {
    value
        .as_str()
        .or_else(|| value.get("kind").and_then(Value::as_str))
        .ok_or_else(|| format!("{what} must be a string or an object with `kind`"))
}

/// A behaviour's numeric parameter, `default` when it is absent.
fn number(value: &Value, key: &str, default: u64) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(default)
}

async fn stats(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats_json())
}

/// The last responses request received: `{"account_id", "headers", "body"}`, or 404.
async fn last_request(state: web::Data<MockState>) -> HttpResponse {
    match state.last_request() {
        Some(request) => HttpResponse::Ok().json(serde_json::json!({
            "account_id": request.header("chatgpt-account-id"),
            "headers": request.headers,
            "body": request.body,
        })),
        None => HttpResponse::NotFound().json(serde_json::json!({"detail": "no request yet"})),
    }
}

/// The last responses requests received (`?n=N`, default 50, at most 1000), oldest first, each
/// as `/__mock/requests/last` shows one.
async fn recent_requests(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    let n = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "n")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(50)
        .min(1000);
    let requests: Vec<Value> = state
        .recent_requests(n)
        .iter()
        .map(|request| {
            json!({
                "account_id": request.header("chatgpt-account-id"),
                "headers": request.headers,
                "body": request.body,
            })
        })
        .collect();
    HttpResponse::Ok().json(requests)
}

async fn reset(state: web::Data<MockState>) -> HttpResponse {
    state.reset_records();
    HttpResponse::Ok().json(json!({"ok": true}))
}

/// Any other path: recorded (a wrong URL shows up under `unmatched` in `/__mock/stats`), then 404.
pub(crate) async fn unmatched(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    let line = format!("{} {}", req.method(), req.path());
    state.lock().push_unmatched(line);
    HttpResponse::NotFound().json(json!({"detail": "Not Found"}))
}
