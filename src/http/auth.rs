//! Authentication extractors: a handler's signature says what it needs.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::auth::Session;
use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

/// The name of the admin session cookie.
pub const SESSION_COOKIE: &str = "gpt2api_session";

/// Paths an admin who must change the password may still use.
const ALLOWED_BEFORE_PASSWORD_CHANGE: &[&str] = &[
    "/admin/profile",
    "/admin/me",
    "/admin/change-password",
    "/admin/logout",
];

/// A signed-in admin, from `Authorization: Bearer <jwt>` or the session cookie.
#[derive(Debug, Clone)]
pub struct AdminSession(pub Session);

impl FromRequest for AdminSession {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token =
            bearer(req).or_else(|| req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()));
        let path = req.path().to_string();
        // The policy middleware already authenticated the request.
        let known = req.extensions().get::<Session>().cloned();
        Box::pin(async move {
            let session = if let Some(session) = known {
                session
            } else {
                let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
                let token = token.ok_or_else(|| AppError::unauthorized("sign in first"))?;
                state.auth.authenticate(&token).await?
            };
            if session.user.must_change_password
                && !ALLOWED_BEFORE_PASSWORD_CHANGE.contains(&path.as_str())
            {
                return Err(AppError::new(
                    ErrorCode::PasswordChangeRequired,
                    "change the initial password before using the console",
                ));
            }
            Ok(AdminSession(session))
        })
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}
