//! Admin sign-in: login, logout, password change and profile.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::audit::AuditEntry;
use crate::auth::{LoginOutcome, LoginStep};
use crate::error::{AppError, AppResult};
use crate::http::auth::{AdminSession, SESSION_COOKIE};
use crate::http::client_ip;
use crate::state::AppState;

/// Mounts the session routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Sign-in bodies are tiny: a larger one is refused before it is read in full.
    cfg.service(
        web::resource("/login")
            .app_data(crate::http::admin_json_config(SIGN_IN_BODY_LIMIT))
            .route(web::post().to(login)),
    )
    .service(
        web::resource("/login/totp")
            .app_data(crate::http::admin_json_config(SIGN_IN_BODY_LIMIT))
            .route(web::post().to(login_totp)),
    )
    .route("/logout", web::post().to(logout))
    .service(
        web::resource("/change-password")
            .app_data(crate::http::admin_json_config(SIGN_IN_BODY_LIMIT))
            .route(web::post().to(change_password)),
    )
    .route("/profile", web::get().to(profile))
    .route("/me", web::get().to(profile));
}

/// The largest sign-in or password-change body (bytes).
const SIGN_IN_BODY_LIMIT: usize = 4096;

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> AppResult<HttpResponse> {
    let ip = client_ip(&req, &state.config.server);
    let username = body.username.trim();
    let step = state.auth.login(username, &body.password, &ip).await;
    match step {
        Err(error) => {
            audit_failure(&state, username, &ip, "login.failure", &error);
            Err(error)
        }
        Ok(LoginStep::TotpRequired {
            challenge,
            expires_at,
            user,
        }) => {
            state.audit.record(
                AuditEntry::new(user.username.clone(), "login.password_ok")
                    .by(user.id, &user.role)
                    .from_ip(ip)
                    .summary(json!({"second_factor": "required"})),
            );
            Ok(HttpResponse::Ok().json(json!({
                "totp_required": true,
                "challenge": challenge,
                "expires_at": expires_at,
            })))
        }
        Ok(LoginStep::Session(outcome)) => {
            state.audit.record(
                AuditEntry::new(outcome.user.username.clone(), "login.success")
                    .by(outcome.user.id, &outcome.user.role)
                    .from_ip(ip),
            );
            Ok(session_answer(&state, &outcome))
        }
    }
}

#[derive(Deserialize)]
struct LoginTotpBody {
    challenge: String,
    code: String,
}

async fn login_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginTotpBody>,
) -> AppResult<HttpResponse> {
    let ip = client_ip(&req, &state.config.server);
    match state
        .auth
        .login_totp(body.challenge.trim(), &body.code, &state.cipher, &ip)
        .await
    {
        Err(error) => {
            audit_failure(&state, "", &ip, "login.totp_failure", &error);
            Err(error)
        }
        Ok((outcome, user)) => {
            state.audit.record(
                AuditEntry::new(user.username.clone(), "login.success")
                    .by(user.id, &user.role)
                    .from_ip(ip)
                    .summary(json!({"second_factor": "totp"})),
            );
            Ok(session_answer(&state, &outcome))
        }
    }
}

/// A failed sign-in step in the audit log: the name tried (cut short) and the reason.
fn audit_failure(state: &AppState, username: &str, ip: &str, action: &str, error: &AppError) {
    let actor: String = username.chars().take(64).collect();
    state.audit.record(
        AuditEntry::new(actor, action)
            .from_ip(ip)
            .summary(json!({"reason": error.code().name()})),
    );
}

/// The session cookie and the sign-in answer.
fn session_answer(state: &AppState, outcome: &LoginOutcome) -> HttpResponse {
    let max_age = time::Duration::seconds(state.auth.session_ttl().num_seconds());
    let cookie = Cookie::build(SESSION_COOKIE, outcome.token.clone())
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.auth.cookie_secure())
        .max_age(max_age)
        .finish();
    HttpResponse::Ok().cookie(cookie).json(json!({
        "token": outcome.token,
        "expires_at": outcome.expires_at,
        "user": {
            "id": outcome.user.id,
            "username": outcome.user.username,
            "must_change_password": outcome.user.must_change_password,
            "role": outcome.user.role,
            "totp_enabled": outcome.user.totp_enabled,
        }
    }))
}

async fn logout(state: web::Data<AppState>, session: AdminSession) -> AppResult<HttpResponse> {
    state.auth.logout(&session.0).await?;
    let mut removal = Cookie::build(SESSION_COOKIE, "").path("/admin").finish();
    removal.make_removal();
    Ok(HttpResponse::NoContent().cookie(removal).finish())
}

#[derive(Deserialize)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: AdminSession,
    body: web::Json<ChangePasswordBody>,
) -> AppResult<HttpResponse> {
    let ip = client_ip(&req, &state.config.server);
    state
        .auth
        .change_password(&session.0, &body.current_password, &body.new_password, &ip)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn profile(session: AdminSession) -> HttpResponse {
    let user = &session.0.user;
    HttpResponse::Ok().json(json!({
        "id": user.id,
        "username": user.username,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "must_change_password": user.must_change_password,
        "role": user.role,
        "totp_enabled": user.totp_enabled,
    }))
}
