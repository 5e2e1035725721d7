//! One error type for the whole service, rendered in two shapes.
//!
//! `/admin/*` answers `{"error":{"code","message"}}`; `/v1/*` answers OpenAI's
//! `{"error":{"message","type","param","code"}}` so that OpenAI SDKs raise the right exception.
//! The shape is chosen by wrapping: handlers under `/v1` return [`OpenAiError`]. Internal causes
//! are logged once, server-side; a client never sees them.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// A failure with a stable code, a status and a message that is safe to show to the client.
#[derive(Debug, Clone)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<u64>,
}

/// The result type of handlers and services.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// An error with the given status, code and client-facing message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 for a missing or invalid admin session.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 for a missing resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 when an actor's mailbox is full or it did not answer in time.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
        )
    }

    /// 500 for a failure whose cause is only logged; the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; see the server log",
        )
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Names the request parameter at fault (OpenAI's `param`).
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    fn base_response(&self) -> actix_web::HttpResponseBuilder {
        let mut builder = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        builder
    }

    /// OpenAI's `type` for this error, chosen so SDKs map it to the right exception class.
    fn openai_type(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 404 | 413 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 if self.code == "insufficient_quota" => "insufficient_quota",
            429 => "rate_limit_error",
            500 => "server_error",
            _ => "api_error",
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for AppError {}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.base_response()
            .json(json!({"error": {"code": self.code, "message": self.message}}))
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::internal(format_args!("database: {e}"))
    }
}

impl From<sea_orm::TransactionError<sea_orm::DbErr>> for AppError {
    fn from(e: sea_orm::TransactionError<sea_orm::DbErr>) -> Self {
        AppError::internal(format_args!("database transaction: {e}"))
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AppError::internal(format_args!("blocking task: {e}"))
    }
}

/// An [`AppError`] rendered in OpenAI's error shape, for `/v1/*`.
#[derive(Debug, Clone)]
pub struct OpenAiError(pub AppError);

impl From<AppError> for OpenAiError {
    fn from(e: AppError) -> Self {
        OpenAiError(e)
    }
}

impl std::fmt::Display for OpenAiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for OpenAiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let e = &self.0;
        e.base_response().json(json!({"error": {
            "message": e.message,
            "type": e.openai_type(),
            "param": e.param,
            "code": e.code,
        }}))
    }
}

/// Maps a failed JSON body to 413 (too large), 415 (not JSON) or 400, with a message that never
/// echoes the request body back.
pub fn json_error(err: &actix_web::error::JsonPayloadError) -> AppError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        ),
        E::ContentType => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        other => extractor_error(other, ExtractorKind::Json),
    }
}

/// Maps a failed extractor (JSON body, query, path) to a 400 with a clear message that never
/// echoes the input back.
pub fn extractor_error(err: &dyn std::fmt::Display, kind: ExtractorKind) -> AppError {
    let what = match kind {
        ExtractorKind::Json => "malformed JSON body",
        ExtractorKind::Query => "invalid query parameters",
        ExtractorKind::Path => "invalid path parameter",
    };
    // serde's messages name fields and types; quoted input values are cut out.
    AppError::bad_request(
        "invalid_request",
        format!("{what}: {}", safe_detail(&err.to_string())),
    )
}

/// Which extractor failed.
#[derive(Debug, Clone, Copy)]
pub enum ExtractorKind {
    Json,
    Query,
    Path,
}

/// Keeps serde's structural explanation and drops anything quoted from the input.
fn safe_detail(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_quote = false;
    for ch in text.chars() {
        match ch {
            '"' => {
                in_quote = !in_quote;
                out.push_str(if in_quote { "\"…" } else { "\"" });
            }
            _ if in_quote => {}
            _ => out.push(ch),
        }
    }
    out.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_detail_drops_quoted_input() {
        let d = safe_detail("invalid type: string \"sk-secret\", expected u32 at line 1 column 9");
        assert!(!d.contains("sk-secret"));
        assert!(d.contains("expected u32"));
    }

    #[test]
    fn openai_types_follow_status() {
        let e = AppError::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", "x");
        assert_eq!(e.openai_type(), "insufficient_quota");
        let e = AppError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "x");
        assert_eq!(e.openai_type(), "authentication_error");
    }
}
