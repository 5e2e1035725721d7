//! `/admin/webhooks`: create (the secret is shown once), list, update, delete, send a test and
//! list deliveries, over [`WebhookService`]. This module parses the requests and renders the
//! JSON shapes; a webhook's secret never appears in them after its creation.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{page_of, payload, Paging};
use crate::db::{webhook, webhook_delivery};
use crate::error::AppResult;
use crate::http::auth::AdminSession;
use crate::service::webhooks::{events_of, masked_url, WebhookChanges, WebhookService};

/// Mounts the webhook routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks", web::get().to(list))
        .route("/webhooks", web::post().to(create))
        .route("/webhooks/{id}", web::patch().to(update))
        .route("/webhooks/{id}", web::delete().to(delete))
        .route("/webhooks/{id}/test", web::post().to(test))
        .route("/webhooks/{id}/deliveries", web::get().to(deliveries));
}

/// The API shape of a webhook (never its secret; credentials in its URL masked).
pub fn to_json(hook: &webhook::Model) -> Value {
    json!({
        "id": hook.id,
        "name": hook.name,
        "url": masked_url(&hook.url),
        "is_enabled": hook.is_enabled,
        "events": events_of(hook),
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
    })
}

/// The API shape of a delivery.
pub fn delivery_json(row: &webhook_delivery::Model) -> Value {
    let pending = row.status == crate::actors::webhooks::PENDING;
    json!({
        "id": row.id,
        "webhook_id": row.webhook_id,
        "event_id": row.event_id,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "next_attempt_at": pending.then_some(row.next_attempt_at),
        "delivered_at": row.delivered_at,
    })
}

async fn list(
    hooks: WebhookService,
    _admin: AdminSession,
    query: web::Query<Paging>,
) -> AppResult<HttpResponse> {
    let at = query.resolve()?;
    let page = hooks.list(at).await?;
    Ok(HttpResponse::Ok().json(page_of(&page, at, to_json)))
}

async fn create(
    hooks: WebhookService,
    admin: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let created = hooks.create(payload::<WebhookChanges>(body)?).await?;
    tracing::info!(admin = %admin.0.user.username, webhook_id = created.row.id, "webhook created");
    let mut out = to_json(&created.row);
    out["secret"] = Value::from(created.secret);
    Ok(HttpResponse::Created().json(out))
}

async fn update(
    hooks: WebhookService,
    admin: AdminSession,
    path: web::Path<i32>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let row = hooks
        .update(*path, payload::<WebhookChanges>(body)?)
        .await?;
    tracing::info!(admin = %admin.0.user.username, webhook_id = row.id, "webhook changed");
    Ok(HttpResponse::Ok().json(to_json(&row)))
}

async fn delete(
    hooks: WebhookService,
    admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let id = *path;
    hooks.delete(id).await?;
    tracing::info!(admin = %admin.0.user.username, webhook_id = id, "webhook deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn test(
    hooks: WebhookService,
    _admin: AdminSession,
    path: web::Path<i32>,
) -> AppResult<HttpResponse> {
    let row = hooks.test(*path).await?;
    Ok(HttpResponse::Accepted().json(delivery_json(&row)))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    status: Option<String>,
}

async fn deliveries(
    hooks: WebhookService,
    _admin: AdminSession,
    path: web::Path<i32>,
    query: web::Query<DeliveriesQuery>,
) -> AppResult<HttpResponse> {
    let at = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let status = query
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let page = hooks.deliveries(*path, status, at).await?;
    Ok(HttpResponse::Ok().json(page_of(&page, at, delivery_json)))
}
