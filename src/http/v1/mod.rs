//! `/v1/*`: the OpenAI-compatible API. Errors here take OpenAI's shape so that SDKs raise the
//! right exception. Handlers take typed inputs from [`extract`]: the key, the JSON body and the
//! request id.

pub mod chat;
pub mod extract;
pub mod models;
pub mod responses;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::json;

use crate::codex::translate::TranslateError;
use crate::error::{AppError, ErrorCode, OpenAiError};

/// Mounts the `/v1` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/models", web::get().to(models::list))
            .route("/chat/completions", web::post().to(chat::completions))
            .route("/responses", web::post().to(responses::create))
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

/// An error event in a stream that OpenAI SDKs raise as an API error.
pub fn error_frame(message: &str, code: &str) -> Bytes {
    let body = json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": code}});
    Bytes::from(format!("data: {body}\n\n"))
}

/// A `text/event-stream` answer that proxies in front of the gateway must not buffer.
pub fn event_stream<S>(stream: S) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}
