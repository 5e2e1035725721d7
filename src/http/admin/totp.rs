//! `/admin/totp/*`: the signed-in admin's own second factor.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::payload;
use crate::error::AppResult;
use crate::http::auth::AdminSession;
use crate::http::client_ip;
use crate::state::AppState;

/// Mounts the TOTP routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/totp/setup", web::post().to(setup))
        .route("/totp/enable", web::post().to(enable))
        .route("/totp/disable", web::post().to(disable));
}

async fn setup(state: web::Data<AppState>, session: AdminSession) -> AppResult<HttpResponse> {
    let setup = state.auth.totp_setup(&session.0, &state.cipher).await?;
    Ok(HttpResponse::Ok().json(json!({
        "secret": setup.secret,
        "otpauth_uri": setup.otpauth_uri,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnableBody {
    code: String,
}

async fn enable(
    state: web::Data<AppState>,
    session: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let body: EnableBody = payload(body)?;
    let codes = state
        .auth
        .totp_enable(&session.0, &state.cipher, &body.code)
        .await?;
    Ok(HttpResponse::Ok().json(json!({"enabled": true, "recovery_codes": codes})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    code: Option<String>,
    password: Option<String>,
}

async fn disable(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let body: DisableBody = payload(body)?;
    let ip = client_ip(&req, &state.config.server);
    state
        .auth
        .totp_disable(
            &session.0,
            &state.cipher,
            body.code.as_deref(),
            body.password.as_deref(),
            &ip,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
