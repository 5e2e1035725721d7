//! `/admin/stats/*` and `/admin/logs` over [`StatsService`]: this module parses the ranges and
//! filters and renders the figures, which are counted from the log rows and their rollups.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page_of, Paging};
use crate::error::{AppError, AppResult};
use crate::http::auth::AdminSession;
use crate::service::accounts::AccountState;
use crate::service::stats::{LogEntry, LogFilter, Totals, UsageRange};
use crate::service::StatsService;

/// Mounts the statistics and log routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats/overview", web::get().to(overview))
        .route("/stats/usage", web::get().to(usage))
        .route("/logs", web::get().to(logs));
}

async fn overview(stats: StatsService, _admin: AdminSession) -> AppResult<HttpResponse> {
    let o = stats.overview().await?;
    let count = |state| o.accounts.get(state);
    Ok(HttpResponse::Ok().json(json!({
        "api_keys": {"total": o.keys_total, "active": o.keys_active},
        "tokens": {
            "total": o.accounts_total,
            "active": o.accounts.serving(),
            "expiring": count(AccountState::Expiring),
            "cooling_down": count(AccountState::CoolingDown),
            "expired": count(AccountState::Expired),
            "refresh_failed": count(AccountState::RefreshFailed),
            "needs_relogin": count(AccountState::NeedsRelogin),
            "disabled": count(AccountState::Disabled),
        },
        "requests": {
            "total": o.all_time.requests,
            "last_24h": o.last_24h.requests,
            "errors_24h": o.last_24h.errors,
        },
        "usage": {
            "input_tokens_24h": o.last_24h.input_tokens,
            "output_tokens_24h": o.last_24h.output_tokens,
        },
        "uptime_seconds": o.uptime_seconds,
        "version": crate::VERSION,
    })))
}

#[derive(Deserialize)]
struct UsageQuery {
    range: Option<String>,
}

async fn usage(
    stats: StatsService,
    _admin: AdminSession,
    query: web::Query<UsageQuery>,
) -> AppResult<HttpResponse> {
    let range: UsageRange = query
        .range
        .as_deref()
        .unwrap_or("24h")
        .parse()
        .map_err(|_| AppError::invalid_request("`range` must be 24h, 7d or 30d"))?;
    let usage = stats.usage(range).await?;
    let sums = |ts: &DateTime<Utc>, t: &Totals| {
        json!({
            "ts": ts,
            "requests": t.requests,
            "errors": t.errors,
            "input_tokens": t.input_tokens,
            "cached_tokens": t.cached_tokens,
            "cached_share": t.cached_share(),
            "output_tokens": t.output_tokens,
        })
    };
    let mut total = Totals::default();
    for (_, t) in &usage.series {
        total.input_tokens += t.input_tokens;
        total.cached_tokens += t.cached_tokens;
    }
    let (hits, moved, new) = stats.affinity();
    let pinned = hits + moved;
    Ok(HttpResponse::Ok().json(json!({
        "range": range.as_str(),
        "bucket": range.bucket_name(),
        "series": usage.series.iter().map(|(ts, t)| sums(ts, t)).collect::<Vec<_>>(),
        "by_model": usage.by_model.iter().map(|(model, t)| json!({
            "model": model,
            "requests": t.requests,
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
        })).collect::<Vec<_>>(),
        "by_api_key": usage.by_key.iter().map(|k| json!({
            "api_key_id": k.api_key_id,
            "name": k.name,
            "requests": k.totals.requests,
        })).collect::<Vec<_>>(),
        "by_token": usage.by_account.iter().map(|a| json!({
            "token_id": a.account_id,
            "email": a.email,
            "requests": a.totals.requests,
            "errors": a.totals.errors,
            "input_tokens": a.totals.input_tokens,
            "cached_tokens": a.totals.cached_tokens,
            "cached_share": a.totals.cached_share(),
        })).collect::<Vec<_>>(),
        "cached_share": total.cached_share(),
        // Since this instance started: served requests of conversations that went back to
        // their pinned account, over those that had a pin.
        "affinity": {
            "hits": hits,
            "moved": moved,
            "new": new,
            "hit_rate": (pinned > 0).then(|| hits as f64 / pinned as f64),
        },
    })))
}

#[derive(Deserialize)]
struct LogQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    status: Option<String>,
    api_key_id: Option<i32>,
    #[serde(rename = "token_id")]
    account_id: Option<i32>,
    model: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

async fn logs(
    stats: StatsService,
    _admin: AdminSession,
    query: web::Query<LogQuery>,
) -> AppResult<HttpResponse> {
    let at = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let outcome = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| AppError::invalid_request("`status` must be success or error"))?,
        ),
    };
    let filter = LogFilter {
        outcome,
        api_key_id: query.api_key_id,
        account_id: query.account_id,
        model: query.model.clone().filter(|m| !m.is_empty()),
        since: query.since,
        until: query.until,
    };
    let page = stats.logs(&filter, at).await?;
    Ok(HttpResponse::Ok().json(page_of(&page, at, log_json)))
}

/// The API shape of a log row.
fn log_json(entry: &LogEntry) -> Value {
    let r = &entry.row;
    json!({
        "id": r.id,
        "created_at": r.created_at,
        "api_key_id": r.api_key_id,
        "api_key_name": entry.api_key_name,
        "token_id": r.account_id,
        "token_email": entry.account_email,
        "model": r.model,
        "endpoint": r.endpoint,
        "stream": r.stream,
        "status_code": r.status_code,
        "error_message": r.error_message,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cached_tokens": r.cached_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
        "request_id": r.request_id,
        "transport": r.transport,
    })
}
