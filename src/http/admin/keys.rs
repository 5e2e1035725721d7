//! `/admin/api-keys`: create (the full key is shown once), list, update, delete. Every change
//! reaches the key cache at once, so a disabled or deleted key fails its very next request. The
//! body of a create or update is a typed [`KeyChanges`].

use actix_web::{web, HttpResponse};
use chrono::Utc;
use rand::distributions::{Alphanumeric, DistString};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{page_of, payload, Paging};
use crate::actors::key_cache::hash_key;
use crate::db::api_key;
use crate::error::{AppError, AppResult};
use crate::http::auth::AdminSession;
use crate::service::keys::KeyChanges;
use crate::state::AppState;

/// Mounts the key routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api-keys", web::get().to(list))
        .route("/api-keys", web::post().to(create))
        .route("/api-keys/{id}", web::patch().to(update))
        .route("/api-keys/{id}", web::delete().to(delete));
}

/// The API shape of a key (never its value or hash).
pub fn to_json(key: &api_key::Model) -> Value {
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
    })
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    q: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    _admin: AdminSession,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let mut select = api_key::Entity::find().filter(api_key::Column::DeletedAt.is_null());
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        select = select.filter(api_key::Column::Name.contains(q));
    }
    let (page, size) = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let paginator = select
        .order_by_desc(api_key::Column::Id)
        .paginate(&state.db, size);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(page - 1).await?;
    Ok(HttpResponse::Ok().json(page_of(
        rows.iter().map(to_json).collect(),
        total,
        page,
        size,
    )))
}

/// Sets the fields that `changes` carries.
fn apply(model: &mut api_key::ActiveModel, changes: KeyChanges) -> AppResult<()> {
    if let Some(v) = changes.name {
        model.name = Set(v);
    }
    if let Some(v) = changes.is_active {
        model.is_active = Set(v);
    }
    if let Some(v) = changes.rpm_limit {
        model.rpm_limit = Set(v);
    }
    if let Some(v) = changes.daily_request_limit {
        model.daily_request_limit = Set(v);
    }
    if let Some(v) = changes.total_token_limit {
        model.total_token_limit = Set(v);
    }
    if let Some(v) = changes.expires_at {
        model.expires_at = Set(v);
    }
    if let Some(models) = changes.allowed_models {
        // Stored as a JSON list of names.
        let text = models
            .map(|m| serde_json::to_string(&m))
            .transpose()
            .map_err(AppError::internal)?;
        model.allowed_models = Set(text);
    }
    Ok(())
}

/// A new key: `sk-` and 32 characters of `[A-Za-z0-9]` from the operating system's generator.
fn generate_key() -> String {
    format!(
        "sk-{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
    )
}

fn mask(key: &str) -> String {
    format!("{}...{}", &key[..7], &key[key.len() - 4..])
}

async fn create(
    state: web::Data<AppState>,
    admin: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let changes: KeyChanges = payload(body)?;
    if changes.name.is_none() {
        return Err(AppError::invalid_request("`name` is required"));
    }
    let secret = generate_key();
    let now = Utc::now();
    let mut model = api_key::ActiveModel {
        key_hash: Set(hash_key(&secret)),
        masked_key: Set(mask(&secret)),
        is_active: Set(true),
        tokens_used: Set(0),
        usage_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    apply(&mut model, changes)?;
    let row = model.insert(&state.db).await?;
    state.keys.invalidate(row.id).await?;
    tracing::info!(admin = %admin.0.user.username, key_id = row.id, name = %row.name, "API key created");
    let mut out = to_json(&row);
    out["key"] = Value::from(secret);
    Ok(HttpResponse::Created().json(out))
}

async fn find(state: &AppState, id: i32) -> AppResult<api_key::Model> {
    api_key::Entity::find_by_id(id)
        .filter(api_key::Column::DeletedAt.is_null())
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no API key with id {id}")))
}

async fn update(
    state: web::Data<AppState>,
    _admin: AdminSession,
    path: web::Path<i32>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let changes: KeyChanges = payload(body)?;
    let row = find(&state, *path).await?;
    let mut model: api_key::ActiveModel = row.into();
    apply(&mut model, changes)?;
    model.updated_at = Set(Utc::now());
    let row = model.update(&state.db).await?;
    state.keys.invalidate(row.id).await?;
    Ok(HttpResponse::Ok().json(to_json(&row)))
}

async fn delete(
    state: web::Data<AppState>,
    admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let row = find(&state, *path).await?;
    let id = row.id;
    let mut model: api_key::ActiveModel = row.into();
    // Kept (soft-deleted) so that its past log rows still name it.
    model.deleted_at = Set(Some(Utc::now()));
    model.is_active = Set(false);
    model.update(&state.db).await?;
    state.keys.invalidate(id).await?;
    tracing::info!(admin = %admin.0.user.username, key_id = id, "API key deleted");
    Ok(HttpResponse::NoContent().finish())
}
