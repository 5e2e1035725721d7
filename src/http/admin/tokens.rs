//! `/admin/tokens`: Codex accounts. Import (multipart files or JSON), list with status (an
//! [`AccountState`]), enable/disable/rename, delete, manual refresh, export. Secrets never leave
//! except in the admin-only export.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use strum::IntoEnumIterator;

use super::{page_of, payload, Paging};
use crate::codex::credentials::{parse_credentials_file, AccountCredentials};
use crate::codex::wire::RateLimits;
use crate::db::account;
use crate::db::account::AccountStatus;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::auth::AdminSession;
use crate::service::accounts::{AccountChanges, AccountState};
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

/// The API shape of an account: no access, refresh or id token.
pub fn to_json(row: &account::Model, lead_seconds: u64) -> Value {
    let rate_limits: Option<RateLimits> = row
        .rate_limits
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    json!({
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "account_id": row.chatgpt_account_id,
        "plan_type": row.plan_type,
        "is_active": row.is_active,
        "status": AccountState::of(row, lead_seconds, Utc::now()),
        "expired_at": row.expires_at,
        "last_refresh_at": row.last_refresh_at,
        "last_used_at": row.last_used_at,
        "usage_count": row.usage_count,
        "error_count": row.error_count,
        "last_error": row.last_error,
        "cooldown_until": row.cooldown_until.filter(|u| *u > Utc::now()),
        "rate_limits": rate_limits,
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
    state: web::Data<AppState>,
    _admin: AdminSession,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let (page, size) = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let wanted_state = parse_state(query.status.as_deref())?;
    let mut select = account::Entity::find().filter(account::Column::DeletedAt.is_null());
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        select = select.filter(
            Condition::any()
                .add(account::Column::Email.contains(q))
                .add(account::Column::Name.contains(q))
                .add(account::Column::ChatgptAccountId.contains(q)),
        );
    }
    let lead = state.settings.get().refresh_lead_seconds;
    let select = select.order_by_asc(account::Column::Id);
    // The status is derived from several columns and the clock, so a status filter is applied
    // in memory; an account pool is at most thousands of rows.
    let (rows, total) = match wanted_state {
        None => {
            let paginator = select.paginate(&state.db, size);
            (
                paginator.fetch_page(page - 1).await?,
                paginator.num_items().await?,
            )
        }
        Some(wanted) => {
            let now = Utc::now();
            let all: Vec<account::Model> = select
                .all(&state.db)
                .await?
                .into_iter()
                .filter(|row| AccountState::of(row, lead, now) == wanted)
                .collect();
            let total = all.len() as u64;
            let start = ((page - 1) * size) as usize;
            (
                all.into_iter().skip(start).take(size as usize).collect(),
                total,
            )
        }
    };
    let data = rows.iter().map(|r| to_json(r, lead)).collect();
    Ok(HttpResponse::Ok().json(page_of(data, total, page, size)))
}

async fn find(state: &AppState, id: i32) -> AppResult<account::Model> {
    account::Entity::find_by_id(id)
        .filter(account::Column::DeletedAt.is_null())
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no account with id {id}")))
}

async fn update(
    state: web::Data<AppState>,
    _admin: AdminSession,
    path: web::Path<i32>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let changes: AccountChanges = payload(body)?;
    let row = find(&state, *path).await?;
    let mut model: account::ActiveModel = row.into();
    if let Some(name) = changes.name {
        model.name = Set(name);
    }
    if let Some(active) = changes.is_active {
        model.is_active = Set(active);
    }
    model.updated_at = Set(Utc::now());
    let row = model.update(&state.db).await?;
    state.pool.upsert(row.clone()).await?;
    Ok(HttpResponse::Ok().json(to_json(&row, state.settings.get().refresh_lead_seconds)))
}

async fn delete(
    state: web::Data<AppState>,
    admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let row = find(&state, *path).await?;
    let id = row.id;
    state.pool.remove(id).await?;
    let mut model: account::ActiveModel = row.into();
    // The row stays so that past log rows still name the account; its secrets do not.
    model.deleted_at = Set(Some(Utc::now()));
    model.access_token = Set(String::new());
    model.refresh_token = Set(String::new());
    model.id_token = Set(None);
    model.update(&state.db).await?;
    tracing::info!(admin = %admin.0.user.username, account_id = id, "account deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn refresh(
    state: web::Data<AppState>,
    _admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let row = find(&state, *path).await?;
    match state.refresher.refresh(row.id, None).await? {
        Ok(_) => {
            let row = find(&state, row.id).await?;
            Ok(HttpResponse::Ok().json(to_json(&row, state.settings.get().refresh_lead_seconds)))
        }
        Err(failure) => Err(AppError::new(ErrorCode::RefreshFailed, failure.message)),
    }
}

async fn export(state: web::Data<AppState>, admin: AdminSession) -> AppResult<HttpResponse> {
    let rows = account::Entity::find()
        .filter(account::Column::DeletedAt.is_null())
        .order_by_asc(account::Column::Id)
        .all(&state.db)
        .await?;
    let files: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            AccountCredentials {
                email: row.email,
                account_id: row.chatgpt_account_id,
                plan_type: row.plan_type,
                access_token: row.access_token,
                refresh_token: row.refresh_token,
                id_token: row.id_token,
                expires_at: row.expires_at,
                last_refresh: row.last_refresh_at,
                disabled: !row.is_active,
                label: row.name,
                proxy_url: row.proxy_url,
            }
            .to_cliproxy_json()
        })
        .collect();
    tracing::info!(admin = %admin.0.user.username, accounts = files.len(), "accounts exported");
    Ok(HttpResponse::Ok()
        .insert_header((
            "content-disposition",
            "attachment; filename=\"gpt2api-accounts.json\"",
        ))
        .insert_header(("cache-control", "no-store"))
        .json(files))
}

/// One uploaded file or JSON body: its name and bytes.
struct Upload {
    source: String,
    bytes: bytes::Bytes,
}

async fn import(
    state: web::Data<AppState>,
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
        return Err(AppError::new(
            ErrorCode::InvalidRequest,
            "no file was uploaded (parts must be named `file`)",
        ));
    }

    // Parsing thousands of files is CPU work: off the async workers.
    let entries = web::block(move || {
        uploads
            .iter()
            .flat_map(|u| parse_credentials_file(&u.source, &u.bytes))
            .collect::<Vec<_>>()
    })
    .await?;

    let mut imported = 0u64;
    let mut updated = 0u64;
    let mut failed = Vec::new();
    let mut stored = Vec::new();
    // One transaction for the whole upload: fast for thousands of accounts, and a database
    // failure leaves nothing half-imported.
    let txn = state.db.begin().await?;
    for entry in entries {
        let account = match entry.result {
            Ok(account) => account,
            Err(reason) => {
                failed.push(json!({"source": entry.source, "reason": reason.to_string()}));
                continue;
            }
        };
        let (row, created) = upsert(&txn, account).await?;
        if created {
            imported += 1;
        } else {
            updated += 1;
        }
        stored.push(row);
    }
    txn.commit().await?;
    state.pool.upsert_many(stored).await?;
    tracing::info!(admin = %admin.0.user.username, imported, updated, failed = failed.len(), "accounts imported");
    Ok(
        HttpResponse::Ok()
            .json(json!({"imported": imported, "updated": updated, "failed": failed})),
    )
}

/// Inserts the account, or refreshes the stored one with the same `account_id` (a deleted one
/// comes back).
async fn upsert(
    db: &impl ConnectionTrait,
    account: AccountCredentials,
) -> AppResult<(account::Model, bool)> {
    let now = Utc::now();
    let existing = account::Entity::find()
        .filter(account::Column::ChatgptAccountId.eq(account.account_id.as_str()))
        .one(db)
        .await?;
    let created = existing.is_none();
    let mut model = match existing {
        Some(row) => {
            let revived = row.deleted_at.is_some();
            let mut model: account::ActiveModel = row.into();
            if revived {
                model.deleted_at = Set(None);
                model.created_at = Set(now);
            }
            model
        }
        None => account::ActiveModel {
            chatgpt_account_id: Set(account.account_id.clone()),
            created_at: Set(now),
            error_count: Set(0),
            usage_count: Set(0),
            input_tokens: Set(0),
            output_tokens: Set(0),
            ..Default::default()
        },
    };
    model.email = Set(account.email);
    model.plan_type = Set(account.plan_type);
    model.access_token = Set(account.access_token);
    model.refresh_token = Set(account.refresh_token);
    model.id_token = Set(account.id_token);
    model.expires_at = Set(account.expires_at);
    model.last_refresh_at = Set(account.last_refresh);
    model.is_active = Set(!account.disabled);
    model.status = Set(AccountStatus::Active);
    model.last_error = Set(None);
    model.cooldown_until = Set(None);
    if account.label.is_some() {
        model.name = Set(account.label);
    }
    if account.proxy_url.is_some() {
        model.proxy_url = Set(account.proxy_url);
    }
    model.updated_at = Set(now);
    let row = if created {
        model.insert(db).await?
    } else {
        model.update(db).await?
    };
    Ok((row, created))
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
            .map(str::to_string)
            .unwrap_or_else(|| format!("upload {}", uploads.len() + 1));
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

fn too_large() -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        "the upload is larger than server.import_limit_bytes",
    )
}
