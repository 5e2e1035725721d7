//! `/admin/tokens`: Codex accounts over [`AccountService`]. Import (multipart files or JSON),
//! list with status, enable/disable/rename, delete, manual refresh, export. This module reads
//! the requests (the multipart upload included) and renders the account's JSON shape: secrets
//! never leave except in the admin-only export.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use chrono::{Duration, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use strum::IntoEnumIterator;

use super::{page_of, payload, search_term, Paging};
use crate::actors::account_pool::{AccountView, BreakerState};
use crate::audit::AuditDetail;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::auth::AdminSession;
use crate::service::accounts::{
    effective_limits, AccountChanges, AccountEntry, AccountFilter, AccountSort, AccountState,
    BulkAction, SortOrder, Upload, MAX_BULK_IDS,
};
use crate::service::{AccountService, StatsService};
use crate::state::AppState;

/// Mounts the account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::get().to(list))
        .route("/tokens/import", web::post().to(import))
        .route("/tokens/export", web::get().to(export))
        .route("/tokens/bulk", web::post().to(bulk))
        .route("/tokens/{id}/detail", web::get().to(detail))
        .route("/tokens/{id}", web::patch().to(update))
        .route("/tokens/{id}", web::delete().to(delete))
        .route("/tokens/{id}/refresh", web::post().to(refresh));
}

/// The API shape of an account: no access, refresh or id token. `live` is the pool's view of
/// it: its pinned conversations, breaker, and usage windows when fresher than the stored ones.
pub fn to_json(entry: &AccountEntry, live: Option<&AccountView>) -> Value {
    let row = &entry.row;
    let rate_limits = effective_limits(row, live);
    let usage_checked_at = rate_limits.as_ref().and_then(|l| l.checked_at);
    let cooldown_until = row.cooldown_until.filter(|u| *u > Utc::now());
    let cooldown_reason = live.and_then(|l| l.cooldown_reason);
    let reason = crate::reasons::account_state(entry.state, cooldown_reason, cooldown_until);
    let last_error = row.last_error.as_deref().map(crate::reasons::explain);
    // A failure followed by a success is history: the console shows it muted.
    let last_error_past = match (row.last_error_at, row.last_success_at) {
        (Some(error), Some(success)) => error < success,
        _ => false,
    };
    json!({
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "account_id": row.chatgpt_account_id,
        "plan_type": row.plan_type,
        "is_active": row.is_active,
        "status": entry.state,
        "expired_at": row.expires_at,
        "last_refresh_at": row.last_refresh_at,
        "last_used_at": row.last_used_at,
        "usage_count": row.usage_count,
        "error_count": row.error_count,
        "last_error": row.last_error,
        "last_error_at": row.last_error_at,
        "last_error_code": last_error.as_ref().map(|r| r.code),
        "last_error_params": last_error.map(|r| r.params),
        "last_error_past": last_error_past,
        "last_success_at": row.last_success_at,
        "reason": reason.map(|r| json!({"code": r.code, "params": r.params})),
        "cooldown_until": cooldown_until,
        "cooldown_reason": cooldown_reason,
        "rate_limits": rate_limits,
        "proxy": row.proxy_url.as_deref().and_then(crate::codex::credentials::masked_proxy_url),
        "usage_checked_at": usage_checked_at,
        "pinned_conversations": live.map_or(0, |l| l.pinned_conversations),
        "breaker": live.map_or(BreakerState::Closed, |l| l.breaker),
        "created_at": row.created_at,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    status: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

/// The `status` value that selects accounts near their usage limits.
const NEAR_LIMIT: &str = "near_limit";

/// Reads the `status` filter; blank means none (`near_limit`, not a state, is read apart).
fn parse_state(status: Option<&str>) -> AppResult<Option<AccountState>> {
    let Some(status) = status.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    status.parse().map(Some).map_err(|_| {
        let mut names: Vec<&str> = AccountState::iter().map(AccountState::as_str).collect();
        names.push(NEAR_LIMIT);
        AppError::invalid_request(format!("`status` must be one of {}", names.join(", ")))
            .with_param("status")
    })
}

/// Reads `sort` and `order` (default `asc`); blank means none; an unknown value is 400
/// naming the parameter.
fn parse_sort(
    sort: Option<&str>,
    order: Option<&str>,
) -> AppResult<Option<(AccountSort, SortOrder)>> {
    let order = match order.filter(|o| !o.is_empty()) {
        None => SortOrder::Asc,
        Some(o) => o.parse().map_err(|_| {
            AppError::invalid_request("`order` must be asc or desc").with_param("order")
        })?,
    };
    let Some(sort) = sort.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let sort = sort.parse().map_err(|_| {
        let names: Vec<&str> = AccountSort::iter().map(<&str>::from).collect();
        AppError::invalid_request(format!("`sort` must be one of {}", names.join(", ")))
            .with_param("sort")
    })?;
    Ok(Some((sort, order)))
}

async fn list(
    state: web::Data<AppState>,
    accounts: AccountService,
    _admin: AdminSession,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let at = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let near = query.status.as_deref() == Some(NEAR_LIMIT);
    let filter = AccountFilter {
        state: if near {
            None
        } else {
            parse_state(query.status.as_deref())?
        },
        search: search_term(query.q.as_deref()),
        near_limit: near.then_some(state.config.pool.near_limit_percent),
        sort: parse_sort(query.sort.as_deref(), query.order.as_deref())?,
    };
    let live = accounts.live().await;
    let page = accounts.list(&filter, at, &live).await?;
    let render = |entry: &AccountEntry| to_json(entry, live.get(&entry.row.id));
    Ok(HttpResponse::Ok().json(page_of(&page, at, render)))
}

async fn update(
    accounts: AccountService,
    _admin: AdminSession,
    path: web::Path<i32>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let summary = Value::Object(body.0.clone());
    let changes: AccountChanges = payload(body)?;
    let entry = accounts.update(*path, changes).await?;
    let live = accounts.live().await;
    let mut res = HttpResponse::Ok().json(to_json(&entry, live.get(&entry.row.id)));
    res.extensions_mut().insert(AuditDetail::summary(summary));
    Ok(res)
}

async fn delete(
    accounts: AccountService,
    admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let id = *path;
    accounts.delete(id).await?;
    tracing::info!(admin = %admin.0.user.username, account_id = id, "account deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn refresh(
    accounts: AccountService,
    _admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let entry = accounts.refresh(*path).await?;
    let live = accounts.live().await;
    Ok(HttpResponse::Ok().json(to_json(&entry, live.get(&entry.row.id))))
}

#[derive(Deserialize)]
struct ExportQuery {
    /// Comma-separated account ids; none means every account.
    ids: Option<String>,
}

/// Reads a comma-separated list of ids: at most [`MAX_BULK_IDS`], each a positive integer.
fn parse_ids(text: &str) -> AppResult<Vec<i32>> {
    let bad = || {
        AppError::invalid_request(format!(
            "`ids` must be a comma-separated list of at most {MAX_BULK_IDS} account ids"
        ))
        .with_param("ids")
    };
    let ids: Vec<i32> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i32>().ok().filter(|id| *id > 0).ok_or_else(bad))
        .collect::<AppResult<_>>()?;
    if ids.is_empty() || ids.len() > MAX_BULK_IDS {
        return Err(bad());
    }
    Ok(ids)
}

async fn export(
    accounts: AccountService,
    admin: AdminSession,
    query: web::Query<ExportQuery>,
) -> AppResult<HttpResponse> {
    let ids = query.ids.as_deref().map(parse_ids).transpose()?;
    let files: Vec<Value> = accounts
        .export(ids.as_deref())
        .await?
        .iter()
        .map(crate::codex::credentials::AccountCredentials::to_cliproxy_json)
        .collect();
    tracing::info!(admin = %admin.0.user.username, accounts = files.len(), "accounts exported");
    let count = files.len();
    Ok(HttpResponse::Ok()
        .insert_header((
            "content-disposition",
            "attachment; filename=\"gpt2api-accounts.json\"",
        ))
        .insert_header(("cache-control", "no-store"))
        .json(files)
        .tap_audit(json!({"accounts": count})))
}

/// Reads a bulk action's body: `{"ids": [...], "action": ...}`.
fn bulk_payload(body: &Map<String, Value>) -> AppResult<(Vec<i32>, BulkAction)> {
    let bad_ids = || {
        AppError::invalid_request(format!(
            "`ids` must be an array of 1 to {MAX_BULK_IDS} account ids"
        ))
        .with_param("ids")
    };
    if let Some(key) = body.keys().find(|k| *k != "ids" && *k != "action") {
        return Err(
            AppError::invalid_request(format!("unknown field `{key}`")).with_param(key.clone())
        );
    }
    let ids = body
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(bad_ids)?;
    let mut parsed = Vec::with_capacity(ids.len());
    for id in ids {
        let id = id
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(bad_ids)?;
        if !parsed.contains(&id) {
            parsed.push(id);
        }
    }
    if parsed.is_empty() || ids.len() > MAX_BULK_IDS {
        return Err(bad_ids());
    }
    let action = body
        .get("action")
        .cloned()
        .and_then(|a| serde_json::from_value::<BulkAction>(a).ok())
        .ok_or_else(|| {
            let names: Vec<&str> = BulkAction::iter().map(<&str>::from).collect();
            AppError::invalid_request(format!("`action` must be one of {}", names.join(", ")))
                .with_param("action")
        })?;
    Ok((parsed, action))
}

/// `POST /admin/tokens/bulk`: one action on many accounts; each answers for itself.
async fn bulk(
    accounts: AccountService,
    admin: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let (ids, action) = bulk_payload(&body)?;
    let results = accounts.bulk(&ids, action).await;
    let done = results.iter().filter(|r| r.error.is_none()).count();
    tracing::info!(admin = %admin.0.user.username, action = <&str>::from(action), accounts = ids.len(), done, "bulk action on accounts");
    let results: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "ok": r.error.is_none(),
                "error": r.error.as_ref().map(|e| json!({
                    "code": e.code().to_string(),
                    "message": e.message(),
                })),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

/// Log rows the account's detail shows.
const DETAIL_LOGS: u64 = 20;

/// `GET /admin/tokens/{id}/detail`: what the account's drawer shows: the account, its requests,
/// errors and tokens over 24 hours and 7 days, the history of its usage windows and its last
/// log rows.
async fn detail(
    app: web::Data<AppState>,
    accounts: AccountService,
    stats: StatsService,
    _admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let entry = accounts.get(*path).await?;
    let id = entry.row.id;
    let live = accounts.live().await;
    let now = Utc::now();
    let day = stats.account_totals(id, now - Duration::hours(24)).await?;
    let week = stats.account_totals(id, now - Duration::days(7)).await?;
    let history = crate::usage_history::read(&app.db, id).await?;
    let logs = stats.account_logs(id, DETAIL_LOGS).await?;
    let totals = |t: &crate::service::stats::Totals| {
        json!({
            "requests": t.requests,
            "errors": t.errors,
            "input_tokens": t.input_tokens,
            "cached_tokens": t.cached_tokens,
            "output_tokens": t.output_tokens,
        })
    };
    Ok(HttpResponse::Ok().json(json!({
        "token": to_json(&entry, live.get(&id)),
        "stats": {"24h": totals(&day), "7d": totals(&week)},
        "usage_history": history.iter().map(|s| json!({
            "ts": s.created_at,
            "primary_used_percent": s.primary_used_percent,
            "secondary_used_percent": s.secondary_used_percent,
        })).collect::<Vec<_>>(),
        "logs": logs.iter().map(super::stats::log_json).collect::<Vec<_>>(),
    })))
}

async fn import(
    state: web::Data<AppState>,
    accounts: AccountService,
    admin: AdminSession,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    let limit = state.config.server.import_limit_bytes;
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let uploads = if content_type.starts_with("multipart/form-data") {
        read_multipart(Multipart::new(req.headers(), payload), limit).await?
    } else if content_type.starts_with("application/json") {
        vec![Upload {
            source: "request body".into(),
            bytes: crate::http::read_limited(payload, limit).await?,
        }]
    } else {
        return Err(AppError::new(
            ErrorCode::UnsupportedMediaType,
            "send multipart/form-data with parts named `file`, or application/json",
        ));
    };
    if uploads.is_empty() {
        return Err(AppError::invalid_request(
            "no file was uploaded (parts must be named `file`)",
        ));
    }
    let summary = accounts
        .import(uploads, state.config.server.import_max_accounts)
        .await?;
    let failed: Vec<Value> = summary
        .failed
        .iter()
        .map(|f| json!({"source": f.source, "reason": f.reason}))
        .collect();
    tracing::info!(admin = %admin.0.user.username, imported = summary.imported, updated = summary.updated, failed = summary.failed_count, "accounts imported");
    let mut res = HttpResponse::Ok().json(json!({
        "imported": summary.imported,
        "updated": summary.updated,
        "failed": failed,
        "failed_count": summary.failed_count,
    }));
    res.extensions_mut().insert(AuditDetail::summary(json!({
        "imported": summary.imported,
        "updated": summary.updated,
        "failed_count": summary.failed_count,
    })));
    Ok(res)
}

async fn read_multipart(mut form: Multipart, limit: usize) -> AppResult<Vec<Upload>> {
    let mut uploads = Vec::new();
    let mut total = 0usize;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| {
            AppError::new(
                ErrorCode::InvalidRequest,
                format!("malformed multipart body: {e}"),
            )
        })?;
        let disposition = field.content_disposition().cloned();
        let name = disposition
            .as_ref()
            .and_then(|d| d.get_name())
            .unwrap_or("")
            .to_string();
        let source = disposition
            .as_ref()
            .and_then(|d| d.get_filename())
            .map_or_else(|| format!("upload {}", uploads.len() + 1), str::to_string);
        let mut bytes = BytesMut::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| {
                AppError::new(
                    ErrorCode::InvalidRequest,
                    format!("malformed multipart body: {e}"),
                )
            })?;
            total += chunk.len();
            if total > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if name == "file" || name == "files" || name == "file[]" {
            uploads.push(Upload {
                source,
                bytes: bytes.freeze(),
            });
        }
    }
    Ok(uploads)
}

/// Adds an audit summary to a response.
trait TapAudit {
    fn tap_audit(self, summary: Value) -> Self;
}

impl TapAudit for HttpResponse {
    fn tap_audit(mut self, summary: Value) -> Self {
        self.extensions_mut().insert(AuditDetail::summary(summary));
        self
    }
}

fn too_large() -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        "the upload is larger than server.import_limit_bytes",
    )
}
