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

/// Mounts the `/v1` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
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
