//! The `/admin` access policy as a middleware: every request is decided by
//! [`crate::auth::roles::required`] before any handler runs (401 without a session, 403
//! `forbidden` for a role below the one needed), and every change that succeeds is written to
//! the audit log, with the details its handler added (see [`crate::audit::AuditDetail`]).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};

use crate::audit::{AuditDetail, AuditEntry};
use crate::auth::roles::{allows, required, Access, Role};
use crate::auth::Session;
use crate::error::{AppError, ErrorCode};
use crate::http::auth::{bearer, SESSION_COOKIE};
use crate::state::AppState;

/// The audit action of a route (method and pattern); a route not listed is recorded as
/// `METHOD pattern`.
const ACTIONS: &[(&str, &str, &str)] = &[
    ("POST", "/admin/logout", "logout"),
    ("POST", "/admin/change-password", "password.change"),
    ("POST", "/admin/api-keys", "api_key.create"),
    ("PATCH", "/admin/api-keys/{id}", "api_key.update"),
    ("DELETE", "/admin/api-keys/{id}", "api_key.delete"),
    ("POST", "/admin/tokens/import", "account.import"),
    ("GET", "/admin/tokens/export", "account.export"),
    ("PATCH", "/admin/tokens/{id}", "account.update"),
    ("DELETE", "/admin/tokens/{id}", "account.delete"),
    ("POST", "/admin/tokens/{id}/refresh", "account.refresh"),
    ("POST", "/admin/tokens/oauth/start", "sign_in_flow.start"),
    (
        "POST",
        "/admin/tokens/oauth/{flow_id}/callback",
        "sign_in_flow.complete",
    ),
    (
        "DELETE",
        "/admin/tokens/oauth/{flow_id}",
        "sign_in_flow.cancel",
    ),
    ("PATCH", "/admin/settings", "settings.update"),
    ("POST", "/admin/admins", "admin.create"),
    ("PATCH", "/admin/admins/{id}", "admin.update"),
    ("DELETE", "/admin/admins/{id}", "admin.delete"),
    ("POST", "/admin/totp/setup", "totp.setup"),
    ("POST", "/admin/totp/enable", "totp.enable"),
    ("POST", "/admin/totp/disable", "totp.disable"),
];

/// The audit action of a request, if it is one that is recorded: every change, and the reads
/// listed in [`ACTIONS`] (an export of secrets).
fn action_of(method: &Method, pattern: &str) -> Option<String> {
    let listed = ACTIONS
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == pattern)
        .map(|(_, _, action)| (*action).to_string());
    let change = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    listed.or_else(|| change.then(|| format!("{method} {pattern}")))
}

/// The session token of a request: `Authorization: Bearer`, else the session cookie.
fn token_of(req: &ServiceRequest) -> Option<String> {
    bearer(req.request()).or_else(|| req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()))
}

/// Decides every `/admin` request and audits the changes.
pub async fn admin_policy(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let access = required(req.method(), req.path());
    if access == Access::Public {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let error = AppError::internal("application state missing");
        return Ok(req
            .into_response(error.error_response())
            .map_into_right_body());
    };
    let session = match token_of(&req) {
        None => Err(AppError::unauthorized("sign in first")),
        Some(token) => state.auth.authenticate(&token).await,
    };
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            return Ok(req
                .into_response(error.error_response())
                .map_into_right_body());
        }
    };
    let role = Role::of_stored(&session.user.role);
    if !allows(role, access) {
        let error = AppError::new(
            ErrorCode::Forbidden,
            format!(
                "the {} role may not {} {}",
                role.as_str(),
                req.method(),
                req.path()
            ),
        );
        return Ok(req
            .into_response(error.error_response())
            .map_into_right_body());
    }
    req.extensions_mut().insert(session.clone());
    let ip = super::client_ip(req.request(), &state.config.server);
    let method = req.method().clone();
    let path = req.path().to_string();
    let res = next.call(req).await?;
    if res.status().is_success() || res.status().is_redirection() {
        let pattern = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| path.clone());
        if let Some(action) = action_of(&method, &pattern) {
            record(
                &state,
                &session,
                role,
                &ip,
                action,
                &path,
                res.response().extensions().get::<AuditDetail>(),
            );
        }
    }
    Ok(res.map_into_left_body())
}

fn record(
    state: &AppState,
    session: &Session,
    role: Role,
    ip: &str,
    action: String,
    path: &str,
    detail: Option<&AuditDetail>,
) {
    let mut entry = AuditEntry::new(session.user.username.clone(), action)
        .by(session.user.id, role.as_str())
        .from_ip(ip);
    let target = path.strip_prefix("/admin/").unwrap_or(path);
    entry.target = Some(target.to_string());
    if let Some(detail) = detail {
        if let Some(action) = &detail.action {
            entry.action.clone_from(action);
        }
        if let Some(target) = &detail.target {
            entry.target = Some(target.clone());
        }
        entry.summary = detail.summary.clone();
    }
    state.audit.record(entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_listed_reads_are_audited() {
        assert_eq!(
            action_of(&Method::PATCH, "/admin/api-keys/{id}").as_deref(),
            Some("api_key.update")
        );
        assert_eq!(
            action_of(&Method::POST, "/admin/webhooks").as_deref(),
            Some("POST /admin/webhooks")
        );
        assert_eq!(
            action_of(&Method::GET, "/admin/tokens/export").as_deref(),
            Some("account.export")
        );
        assert_eq!(action_of(&Method::GET, "/admin/tokens"), None);
    }
}
