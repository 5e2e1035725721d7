//! `/v1/*`: the OpenAI-compatible API. Errors here take OpenAI's shape so that SDKs raise the
//! right exception; authentication is the [`ApiKeyAuth`] extractor.

pub mod chat;
pub mod models;
pub mod responses;
pub mod stored;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::json;

use crate::actors::key_cache::KeyRecord;
use crate::codex::translate::{split_model_effort, TranslateError};
use crate::error::{AppError, ErrorCode, OpenAiError};
use crate::state::AppState;

/// Mounts the `/v1` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/models", web::get().to(models::list))
            .route("/models/{id}", web::get().to(models::retrieve))
            .route("/chat/completions", web::post().to(chat::completions))
            .route("/responses", web::post().to(responses::create))
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

/// A client authenticated by its `sk-` key (`Authorization: Bearer` or `x-api-key`).
#[derive(Debug, Clone)]
pub struct ApiKeyAuth(pub Arc<KeyRecord>);

impl FromRequest for ApiKeyAuth {
    type Error = OpenAiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let presented = crate::http::auth::bearer(req).or_else(|| {
            req.headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        });
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
            let invalid = |message: &str| {
                OpenAiError(AppError::new(ErrorCode::InvalidApiKey, message.to_string()))
            };
            let key = presented
                .ok_or_else(|| invalid("missing API key: send Authorization: Bearer sk-..."))?;
            let record = state
                .keys
                .lookup(&key)
                .await?
                .ok_or_else(|| invalid("invalid API key"))?;
            if !record.is_active {
                return Err(invalid("this API key is disabled"));
            }
            if record.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
                return Err(invalid("this API key has expired"));
            }
            Ok(ApiKeyAuth(record))
        })
    }
}

impl ApiKeyAuth {
    /// 403 when the key may not use this model (its base id, without an effort suffix).
    pub fn check_model(&self, model: &str) -> Result<(), OpenAiError> {
        let Some(allowed) = &self.0.allowed_models else {
            return Ok(());
        };
        let (base, _) = split_model_effort(model);
        if allowed.iter().any(|m| m == base || m == model) {
            return Ok(());
        }
        Err(AppError::new(
            ErrorCode::ModelNotAllowed,
            format!("this API key may not use the model {base}"),
        )
        .with_param("model")
        .into())
    }
}

/// A request translation error as OpenAI's 400.
pub fn invalid_request(e: TranslateError) -> OpenAiError {
    let error = AppError::invalid_request(e.message);
    match e.param {
        Some(param) => error.with_param(param).into(),
        None => error.into(),
    }
}

/// Reads the request body up to `limit` bytes, answering 413 in OpenAI's shape beyond it.
pub async fn read_body(payload: web::Payload, limit: usize) -> Result<Bytes, OpenAiError> {
    Ok(crate::http::read_limited(payload, limit).await?)
}

/// The request id assigned by the tracing middleware.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string())
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
