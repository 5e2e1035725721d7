//! `/v1/*`: the OpenAI-compatible API. Errors here take OpenAI's shape so that SDKs raise the
//! right exception.
//!
//! Handlers take typed inputs from [`extract`]: the key, the JSON body, the request id. The
//! proxying endpoints share one handler, [`serve::serve`], which runs what they have in common
//! (model check, admission, usage log, dispatch, aggregation or streaming); each of [`chat`]
//! and [`responses`] is a [`serve::Endpoint`] that parses and translates its body and builds
//! its answer. [`models`] lists the models a key may use; [`stored`] serves the stored responses;
//! [`websocket`] serves the Responses API over a WebSocket.

pub mod chat;
pub mod extract;
pub mod models;
pub mod responses;
pub mod serve;
pub mod stored;
pub mod websocket;

use actix_web::{web, HttpRequest, HttpResponse};

use self::serve::serve;
use crate::codex::translate::TranslateError;
use crate::error::{AppError, ErrorCode, OpenAiError};

/// The request headers a browser client may send besides the CORS-safelisted ones.
pub const CORS_ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "x-api-key",
    "session_id",
    "session-id",
    "thread-id",
    "conversation_id",
    "x-client-request-id",
    "openai-beta",
    "openai-organization",
    "openai-project",
    "originator",
    "version",
    "x-codex-turn-state",
    "x-codex-turn-metadata",
    "x-codex-beta-features",
    "x-codex-window-id",
    "x-codex-parent-thread-id",
    "x-codex-installation-id",
    "x-stainless-os",
    "x-stainless-lang",
    "x-stainless-package-version",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-arch",
    "x-stainless-retry-count",
    "x-stainless-timeout",
    "x-stainless-helper-method",
    "x-stainless-poll-helper",
];

/// The response headers a browser client may read.
pub const CORS_EXPOSED_HEADERS: &[&str] = &[
    "retry-after",
    "x-request-id",
    "x-codex-turn-state",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-codex-primary-used-percent",
    "x-codex-secondary-used-percent",
];

/// CORS for `/v1`: browser pages of `origins` (`*`: any) may call the API with a key. Keys are
/// bearer tokens, never cookies, so credentials are not allowed.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "DELETE", "OPTIONS"])
        .allowed_headers(CORS_ALLOWED_HEADERS.iter().copied())
        .expose_headers(CORS_EXPOSED_HEADERS.iter().copied())
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in origins {
            cors = cors.allowed_origin(origin.trim_end_matches('/'));
        }
    }
    cors
}

/// Mounts the `/v1` scope.
pub fn configure(cfg: &mut web::ServiceConfig, origins: &[String]) {
    cfg.service(
        web::scope("/v1")
            .wrap(actix_web::middleware::Condition::new(
                !origins.is_empty(),
                cors(origins),
            ))
            .route("/models", web::get().to(models::list))
            .route("/models/{id}", web::get().to(models::retrieve))
            .route("/codex/models", web::get().to(models::codex_catalog))
            .route("/chat/completions", web::post().to(serve::<chat::Chat>))
            .route("/responses", web::post().to(serve::<responses::Responses>))
            .route("/responses", web::get().to(websocket::upgrade))
            .route("/responses/{id}", web::get().to(stored::retrieve))
            .route("/responses/{id}", web::delete().to(stored::delete))
            .route(
                "/responses/{id}/input_items",
                web::get().to(stored::input_items),
            )
            .default_service(web::to(not_found)),
    );
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, OpenAiError> {
    Err(AppError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .into())
}

/// A request translation error as OpenAI's 400.
pub fn invalid_request(e: TranslateError) -> OpenAiError {
    let error = AppError::invalid_request(e.message);
    match e.param {
        Some(param) => error.with_param(param).into(),
        None => error.into(),
    }
}
