//! `/admin/tokens/oauth/*`: adding an account by signing in with OpenAI, over
//! [`SignInService`]. Start a flow (PKCE or device code), complete a PKCE flow with the pasted
//! redirect URL, read a flow's status (the console polls it during a device flow), cancel one.
//! No verifier, state, device id or token is ever rendered.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::payload;
use super::tokens::to_json;
use crate::error::{AppError, AppResult};
use crate::http::auth::AdminSession;
use crate::service::sign_in::{StartRequest, Started};
use crate::service::SignInService;

/// Mounts the sign-in routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens/oauth/start", web::post().to(start))
        .route("/tokens/oauth/{flow_id}/callback", web::post().to(callback))
        .route("/tokens/oauth/{flow_id}", web::get().to(status))
        .route("/tokens/oauth/{flow_id}", web::delete().to(cancel));
}

/// Reads a flow id; anything else is an unknown flow.
fn flow_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::not_found("no such sign-in flow"))
}

async fn start(
    sign_in: SignInService,
    admin: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let request: StartRequest = payload(body)?;
    let method = request.method;
    let started = sign_in.start(request).await?;
    let answer = match started {
        Started::Pkce {
            id,
            authorize_url,
            expires_at,
        } => json!({
            "flow_id": id,
            "method": "pkce",
            "authorize_url": authorize_url,
            "expires_at": expires_at,
        }),
        Started::Device {
            id,
            verification_url,
            user_code,
            interval_seconds,
            expires_at,
        } => json!({
            "flow_id": id,
            "method": "device",
            "verification_url": verification_url,
            "user_code": user_code,
            "interval_seconds": interval_seconds,
            "expires_at": expires_at,
        }),
    };
    tracing::info!(admin = %admin.0.user.username, ?method, "account sign-in started");
    Ok(HttpResponse::Created().json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackRequest {
    redirect_url: String,
}

async fn callback(
    sign_in: SignInService,
    admin: AdminSession,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let id = flow_id(&path)?;
    let request: CallbackRequest = payload(body)?;
    let entry = sign_in.callback(id, &request.redirect_url).await?;
    tracing::info!(admin = %admin.0.user.username, account_id = entry.row.id, "account signed in");
    Ok(HttpResponse::Ok().json(to_json(&entry, None)))
}

async fn status(
    sign_in: SignInService,
    _admin: AdminSession,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let view = sign_in.status(flow_id(&path)?)?;
    let mut answer = json!({
        "flow_id": view.id,
        "method": view.method,
        "status": view.status,
    });
    if let Some(map) = answer.as_object_mut() {
        if let Some(entry) = &view.account {
            map.insert("token".into(), to_json(entry, None));
        }
        if let Some((code, message)) = &view.error {
            map.insert(
                "error".into(),
                json!({"code": code.name(), "message": message}),
            );
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(answer))
}

async fn cancel(
    sign_in: SignInService,
    admin: AdminSession,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    sign_in.cancel(flow_id(&path)?)?;
    tracing::info!(admin = %admin.0.user.username, "account sign-in cancelled");
    Ok(HttpResponse::NoContent().finish())
}
