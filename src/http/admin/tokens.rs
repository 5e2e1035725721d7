//! `/admin/tokens`: Codex accounts over [`AccountService`]. Import (multipart files or JSON),
//! list with status, enable/disable/rename, delete, manual refresh, export. This module reads
//! the requests (the multipart upload included) and renders the account's JSON shape: secrets
//! never leave except in the admin-only export.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use chrono::Utc;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use strum::IntoEnumIterator;

use super::{page_of, payload, search_term, Paging};
use crate::actors::account_pool::{AccountView, BreakerState};
use crate::audit::AuditDetail;
use crate::codex::wire::RateLimits;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::auth::AdminSession;
use crate::service::accounts::{AccountChanges, AccountEntry, AccountFilter, AccountState, Upload};
use crate::service::AccountService;
use crate::state::AppState;

/// Mounts the account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::get().to(list))
        .route("/tokens/import", web::post().to(import))
        .route("/tokens/export", web::get().to(export))
        .route("/tokens/{id}", web::patch().to(update))
        .route("/tokens/{id}", web::delete().to(delete))
        .route("/tokens/{id}/refresh", web::post().to(refresh));
}

/// The API shape of an account: no access, refresh or id token. `live` is the pool's view of
/// it: its pinned conversations, breaker, and usage windows when fresher than the stored ones.
pub fn to_json(entry: &AccountEntry, live: Option<&AccountView>) -> Value {
    let row = &entry.row;
    let stored: Option<RateLimits> = row
        .rate_limits
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let rate_limits = match (stored, live.and_then(|l| l.rate_limits.clone())) {
        (Some(stored), Some(live)) if !live.newer_than(&stored) => Some(stored),
        (stored, live) => live.or(stored),
    };
    let usage_checked_at = rate_limits.as_ref().and_then(|l| l.checked_at);
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
        "cooldown_until": row.cooldown_until.filter(|u| *u > Utc::now()),
        "cooldown_reason": live.and_then(|l| l.cooldown_reason),
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
}

/// Reads the `status` filter; blank means none.
fn parse_state(status: Option<&str>) -> AppResult<Option<AccountState>> {
    let Some(status) = status.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    status.parse().map(Some).map_err(|_| {
        let names: Vec<&str> = AccountState::iter().map(AccountState::as_str).collect();
        AppError::invalid_request(format!("`status` must be one of {}", names.join(", ")))
    })
}

async fn list(
    accounts: AccountService,
    _admin: AdminSession,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let at = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let filter = AccountFilter {
        state: parse_state(query.status.as_deref())?,
        search: search_term(query.q.as_deref()),
    };
    let page = accounts.list(&filter, at).await?;
    let live = accounts.live().await;
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

async fn export(accounts: AccountService, admin: AdminSession) -> AppResult<HttpResponse> {
    let files: Vec<Value> = accounts
        .export()
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
