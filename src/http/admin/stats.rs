//! `/admin/stats/*` and `/admin/logs` over [`StatsService`]: this module parses the ranges and
//! filters and renders the figures, which are counted from the log rows and their rollups.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page_of, search_term, Paging};
use crate::error::{AppError, AppResult};
use crate::http::auth::AdminSession;
use crate::service::accounts::AccountState;
use crate::service::stats::{LogEntry, LogFilter, Totals, UsageRange, MAX_SEARCH_CHARS};
use crate::service::StatsService;

/// Mounts the statistics and log routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats/overview", web::get().to(overview))
        .route("/stats/usage", web::get().to(usage))
        .route("/logs", web::get().to(logs))
        .route("/logs/export", web::get().to(export_logs));
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
    request_id: Option<String>,
    q: Option<String>,
}

/// The longest request id looked up.
const MAX_REQUEST_ID_CHARS: usize = 200;

/// Reads the log's filters.
fn log_filter(query: &LogQuery) -> AppResult<LogFilter> {
    let outcome = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| AppError::invalid_request("`status` must be success or error"))?,
        ),
    };
    let search = search_term(query.q.as_deref());
    if search
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
    {
        return Err(AppError::invalid_request(format!(
            "`q` must be at most {MAX_SEARCH_CHARS} characters"
        ))
        .with_param("q"));
    }
    let request_id = search_term(query.request_id.as_deref());
    if request_id
        .as_ref()
        .is_some_and(|id| id.chars().count() > MAX_REQUEST_ID_CHARS)
    {
        return Err(AppError::invalid_request(format!(
            "`request_id` must be at most {MAX_REQUEST_ID_CHARS} characters"
        ))
        .with_param("request_id"));
    }
    Ok(LogFilter {
        outcome,
        api_key_id: query.api_key_id,
        account_id: query.account_id,
        model: query.model.clone().filter(|m| !m.is_empty()),
        since: query.since,
        until: query.until,
        request_id,
        search,
    })
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
    let filter = log_filter(&query)?;
    let page = stats.logs(&filter, at).await?;
    Ok(HttpResponse::Ok().json(page_of(&page, at, log_json)))
}

/// The columns of the CSV export.
const CSV_HEADER: [&str; 20] = [
    "id",
    "created_at",
    "request_id",
    "api_key_id",
    "api_key_name",
    "token_id",
    "token_email",
    "model",
    "endpoint",
    "stream",
    "status_code",
    "error_code",
    "error_message",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "latency_ms",
    "ttft_ms",
    "attempts",
];

/// A text cell that a spreadsheet cannot take for a formula: one starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading apostrophe.
pub fn safe_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// One row of the CSV export.
fn csv_record(entry: &LogEntry) -> Vec<String> {
    let r = &entry.row;
    let text = |v: Option<&str>| v.map(safe_cell).unwrap_or_default();
    let number = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let attempts: Vec<String> = entry
        .attempts
        .iter()
        .map(|(a, _)| format!("{}:{}", a.token_id, a.status))
        .collect();
    vec![
        r.id.to_string(),
        r.created_at.to_rfc3339(),
        text(r.request_id.as_deref()),
        number(r.api_key_id.map(i64::from)),
        text(entry.api_key_name.as_deref()),
        number(r.account_id.map(i64::from)),
        text(entry.account_email.as_deref()),
        safe_cell(&r.model),
        safe_cell(&r.endpoint),
        r.stream.to_string(),
        r.status_code.to_string(),
        r.error_message
            .as_deref()
            .map(|m| crate::reasons::explain(m).code.to_owned())
            .unwrap_or_default(),
        text(r.error_message.as_deref()),
        r.input_tokens.to_string(),
        r.output_tokens.to_string(),
        r.cached_tokens.to_string(),
        r.reasoning_tokens.to_string(),
        r.latency_ms.to_string(),
        number(r.ttft_ms),
        attempts.join(" "),
    ]
}

/// Writes CSV records into bytes.
fn csv_bytes<I, R>(records: I) -> AppResult<bytes::Bytes>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut writer = csv::Writer::from_writer(Vec::new());
    for record in records {
        writer
            .write_record(record)
            .map_err(|e| AppError::internal(format_args!("csv: {e}")))?;
    }
    writer
        .into_inner()
        .map(bytes::Bytes::from)
        .map_err(|e| AppError::internal(format_args!("csv: {e}")))
}

/// `GET /admin/logs/export`: the rows the log's filters select, newest first, as CSV,
/// streamed a database page at a time.
async fn export_logs(
    stats: StatsService,
    _admin: AdminSession,
    query: web::Query<LogQuery>,
) -> AppResult<HttpResponse> {
    let filter = log_filter(&query)?;
    // The first page is read before answering, so that a database failure is a clean error.
    let first = stats.log_batch(&filter, None).await?;
    let head = csv_bytes(std::iter::once(CSV_HEADER))?;
    let body = async_stream::stream! {
        yield Ok::<_, AppError>(head);
        let mut batch = first;
        while let Some(last) = batch.last().map(|e| e.row.id) {
            match csv_bytes(batch.iter().map(csv_record)) {
                Ok(bytes) => yield Ok(bytes),
                Err(e) => { yield Err(e); break; }
            }
            batch = match stats.log_batch(&filter, Some(last)).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "log export cut short");
                    yield Err(e);
                    break;
                }
            };
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            "attachment; filename=\"gpt2api-logs.csv\"",
        ))
        .insert_header(("cache-control", "no-store"))
        .streaming(body))
}

/// The API shape of a log row.
pub fn log_json(entry: &LogEntry) -> Value {
    let r = &entry.row;
    let reason = r.error_message.as_deref().map(crate::reasons::explain);
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
        "error_code": reason.as_ref().map(|r| r.code),
        "error_params": reason.map(|r| r.params),
        "attempts": entry.attempts.iter().map(|(a, email)| json!({
            "token_id": a.token_id,
            "token_email": email,
            "status": a.status,
            "error": a.error,
            "latency_ms": a.latency_ms,
        })).collect::<Vec<_>>(),
    })
}
