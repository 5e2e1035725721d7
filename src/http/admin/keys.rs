//! `/admin/api-keys`: create (the full key is shown once), list, read, update, delete, over
//! [`KeyService`]. This module parses the requests and renders the key's JSON shape, with the
//! key's recent requests (`requests_today`, `requests_last_minute`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{page_of, payload, search_term, Paging};
use crate::audit::AuditDetail;
use crate::db::api_key;
use crate::error::AppResult;
use crate::http::auth::AdminSession;
use crate::service::keys::{KeyChanges, RecentRequests};
use crate::service::KeyService;

/// Mounts the key routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api-keys", web::get().to(list))
        .route("/api-keys", web::post().to(create))
        .route("/api-keys/{id}", web::get().to(read))
        .route("/api-keys/{id}", web::patch().to(update))
        .route("/api-keys/{id}", web::delete().to(delete));
}

/// The API shape of a key (never its value or hash) with its recent requests.
pub fn to_json(key: &api_key::Model, recent: RecentRequests) -> Value {
    let allowed: Option<Vec<String>> = key
        .allowed_models
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    json!({
        "id": key.id,
        "name": key.name,
        "masked_key": key.masked_key,
        "is_active": key.is_active,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "usage_count": key.usage_count,
        "rpm_limit": key.rpm_limit,
        "daily_request_limit": key.daily_request_limit,
        "total_token_limit": key.total_token_limit,
        "tokens_used": key.tokens_used,
        "expires_at": key.expires_at,
        "allowed_models": allowed,
        "requests_today": recent.today,
        "requests_last_minute": recent.last_minute,
    })
}

/// The shape of one key, its recent requests read.
async fn with_recent(keys: &KeyService, row: &api_key::Model) -> AppResult<Value> {
    let recent = keys.recent_requests(&[row.id]).await?;
    Ok(to_json(
        row,
        recent.get(&row.id).copied().unwrap_or_default(),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    q: Option<String>,
}

async fn list(
    keys: KeyService,
    _admin: AdminSession,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let at = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let page = keys
        .list(search_term(query.q.as_deref()).as_deref(), at)
        .await?;
    let ids: Vec<i32> = page.rows.iter().map(|k| k.id).collect();
    let recent = keys.recent_requests(&ids).await?;
    Ok(HttpResponse::Ok().json(page_of(&page, at, |k| {
        to_json(k, recent.get(&k.id).copied().unwrap_or_default())
    })))
}

async fn read(
    keys: KeyService,
    _admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let row = keys.get(*path).await?;
    Ok(HttpResponse::Ok().json(with_recent(&keys, &row).await?))
}

async fn create(
    keys: KeyService,
    admin: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let summary = Value::Object(body.0.clone());
    let created = keys.create(payload::<KeyChanges>(body)?).await?;
    let row = &created.row;
    tracing::info!(admin = %admin.0.user.username, key_id = row.id, name = %row.name, "API key created");
    let mut out = to_json(row, RecentRequests::default());
    out["key"] = Value::from(created.secret);
    let mut res = HttpResponse::Created().json(out);
    res.extensions_mut()
        .insert(AuditDetail::summary(summary).with_target(format!("api-keys/{}", row.id)));
    Ok(res)
}

async fn update(
    keys: KeyService,
    _admin: AdminSession,
    path: web::Path<i32>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let summary = Value::Object(body.0.clone());
    let row = keys.update(*path, payload::<KeyChanges>(body)?).await?;
    let mut res = HttpResponse::Ok().json(with_recent(&keys, &row).await?);
    res.extensions_mut().insert(AuditDetail::summary(summary));
    Ok(res)
}

async fn delete(
    keys: KeyService,
    admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let id = *path;
    keys.delete(id).await?;
    tracing::info!(admin = %admin.0.user.username, key_id = id, "API key deleted");
    Ok(HttpResponse::NoContent().finish())
}
