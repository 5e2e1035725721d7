//! `GET /admin/audit`: the audit log, newest first, with filters and paging.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};

use super::Paging;
use crate::db::audit_log;
use crate::error::AppResult;
use crate::http::auth::AdminSession;
use crate::state::AppState;

/// Mounts the audit route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    /// The admin's username.
    actor: Option<String>,
    /// An action, or a family of actions with a trailing `*` (`api_key.*`).
    action: Option<String>,
    /// A target, or what starts with it when it ends with `*` (`admins/*`).
    target: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

fn render(row: &audit_log::Model) -> Value {
    json!({
        "id": row.id,
        "created_at": row.created_at,
        "actor_id": row.actor_id,
        "actor": row.actor,
        "role": row.role,
        "action": row.action,
        "target": row.target,
        "summary": serde_json::from_str::<Value>(&row.summary).unwrap_or(Value::Null),
        "client_ip": row.client_ip,
    })
}

/// A filter on `column`: exact, or a prefix when the value ends with `*`.
fn matching(column: audit_log::Column, value: &str) -> sea_orm::Condition {
    let condition = match value.strip_suffix('*') {
        Some(prefix) => column.starts_with(prefix),
        None => column.eq(value),
    };
    sea_orm::Condition::all().add(condition)
}

async fn list(
    state: web::Data<AppState>,
    _admin: AdminSession,
    query: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let at = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    // Rows written a moment ago (this request's own sign-in, say) are in the list.
    state.audit.flush().await;
    let mut select = audit_log::Entity::find();
    let text = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    if let Some(actor) = text(query.actor) {
        select = select.filter(audit_log::Column::Actor.eq(actor));
    }
    if let Some(action) = text(query.action) {
        select = select.filter(matching(audit_log::Column::Action, &action));
    }
    if let Some(target) = text(query.target) {
        select = select.filter(matching(audit_log::Column::Target, &target));
    }
    if let Some(since) = query.since {
        select = select.filter(audit_log::Column::CreatedAt.gte(since));
    }
    if let Some(until) = query.until {
        select = select.filter(audit_log::Column::CreatedAt.lt(until));
    }
    let paginator = select
        .order_by_desc(audit_log::Column::CreatedAt)
        .order_by_desc(audit_log::Column::Id)
        .paginate(&state.db, at.size);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(at.page - 1).await?;
    let data: Vec<Value> = rows.iter().map(render).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"data": data, "total": total, "page": at.page, "page_size": at.size})))
}
