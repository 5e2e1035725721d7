//! `/admin/admins`: the owners' management of admins.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{payload, Paging};
use crate::audit::AuditDetail;
use crate::auth::admins::AdminChange;
use crate::auth::roles::Role;
use crate::db::user;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Mounts the admins routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admins", web::get().to(list))
        .route("/admins", web::post().to(create))
        .route("/admins/{id}", web::patch().to(update))
        .route("/admins/{id}", web::delete().to(delete));
}

/// An admin as the API shows it (never a hash or secret).
fn render(row: &user::Model) -> Value {
    json!({
        "id": row.id,
        "username": row.username,
        "role": row.role,
        "disabled": row.disabled,
        "totp_enabled": row.totp_enabled,
        "must_change_password": row.must_change_password,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

fn parse_role(name: &str) -> AppResult<Role> {
    Role::parse(name).ok_or_else(|| {
        AppError::invalid_request("`role` must be owner, operator or viewer").with_param("role")
    })
}

async fn list(state: web::Data<AppState>, paging: web::Query<Paging>) -> AppResult<HttpResponse> {
    let at = paging.resolve()?;
    let (rows, total) = state.auth.list_admins(at.page, at.size).await?;
    let data: Vec<Value> = rows.iter().map(render).collect();
    Ok(HttpResponse::Ok()
        .json(json!({"data": data, "total": total, "page": at.page, "page_size": at.size})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    username: String,
    role: String,
}

async fn create(
    state: web::Data<AppState>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let body: CreateBody = payload(body)?;
    let role = parse_role(&body.role)?;
    let (row, password) = state.auth.create_admin(body.username.trim(), role).await?;
    let mut answer = render(&row);
    answer["password"] = Value::String(password);
    let mut res = HttpResponse::Created().json(answer);
    res.extensions_mut().insert(
        AuditDetail::summary(json!({"username": row.username, "role": row.role}))
            .with_target(format!("admins/{}", row.id)),
    );
    Ok(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    role: Option<String>,
    disabled: Option<bool>,
}

async fn update(
    state: web::Data<AppState>,
    id: web::Path<i32>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let body: UpdateBody = payload(body)?;
    let change = AdminChange {
        role: body.role.as_deref().map(parse_role).transpose()?,
        disabled: body.disabled,
    };
    if change.role.is_none() && change.disabled.is_none() {
        return Err(AppError::invalid_request("send `role` or `disabled`"));
    }
    let before = state.auth.list_admin(*id).await?;
    let row = state.auth.update_admin(*id, &change).await?;
    let mut summary = Map::new();
    summary.insert("username".into(), json!(row.username));
    if change.role.is_some() {
        summary.insert("role".into(), json!({"from": before.role, "to": row.role}));
    }
    if let Some(disabled) = change.disabled {
        summary.insert("disabled".into(), json!(disabled));
    }
    let mut res = HttpResponse::Ok().json(render(&row));
    res.extensions_mut()
        .insert(AuditDetail::summary(Value::Object(summary)));
    Ok(res)
}

async fn delete(state: web::Data<AppState>, id: web::Path<i32>) -> AppResult<HttpResponse> {
    let row = state.auth.delete_admin(*id).await?;
    let mut res = HttpResponse::NoContent().finish();
    res.extensions_mut().insert(AuditDetail::summary(
        json!({"username": row.username, "role": row.role}),
    ));
    Ok(res)
}
