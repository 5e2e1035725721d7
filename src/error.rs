//! One error type for the HTTP surface, rendered in two shapes.
//!
//! Every error the gateway answers carries an [`ErrorCode`]: the stable snake_case name a client
//! matches on, the HTTP status and the OpenAI `type`, all declared once in [`ErrorCode::spec`].
//! `/admin/*` answers `{"error":{"code","message"}}`; `/v1/*` answers OpenAI's
//! `{"error":{"message","type","param","code"}}` so that OpenAI SDKs raise the right exception.
//! The shape is chosen by wrapping: handlers under `/v1` return [`OpenAiError`].
//!
//! The actors and services report domain errors (`PoolError`, `LimitError`, `ActorError`,
//! `SettingsError`, ...); the `From` impls at the end of this module are the one place where
//! they become statuses. Internal causes are logged once, server-side; a client never sees them.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::actors::account_pool::PoolError;
use crate::actors::key_cache::LimitError;
use crate::actors::ActorError;
use crate::settings::SettingsError;

/// Every error code the gateway answers with. Each exists exactly once; the HTTP contract
/// (`API.md`) lists the ones clients rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum ErrorCode {
    // The request itself.
    /// A malformed or invalid request.
    InvalidRequest,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is not JSON where JSON is expected.
    UnsupportedMediaType,
    /// No such resource or route.
    NotFound,
    /// An import holds more accounts than one upload may.
    TooManyAccounts,
    /// A runtime setting with a wrong value.
    InvalidSetting,
    /// A plain request where only a WebSocket upgrade is served (or WebSockets are off).
    UpgradeRequired,

    // Admin sign-in.
    /// No admin session, or an invalid one.
    Unauthorized,
    /// Wrong username or password.
    InvalidCredentials,
    /// Too many failed sign-in attempts.
    TooManyAttempts,
    /// A new password that breaks the rules.
    WeakPassword,
    /// The first sign-in must change the generated password first.
    PasswordChangeRequired,
    /// A cookie-authenticated unsafe request from another origin.
    CrossSiteRequest,
    /// The admin's role may not do this.
    Forbidden,
    /// A disabled admin tried to sign in.
    AdminDisabled,
    /// The change would leave no enabled owner.
    LastOwner,
    /// Another admin has this username.
    UsernameTaken,
    /// A wrong or already used second-factor code.
    InvalidTotpCode,
    /// The sign-in challenge is unknown, expired or used.
    InvalidChallenge,
    /// TOTP is already enabled.
    TotpAlreadyEnabled,
    /// TOTP is not enabled (or not set up).
    TotpNotEnabled,

    // Account sign-in flows.
    /// Too many sign-in flows at once.
    TooManyFlows,
    /// The pasted URL's `state` is not the flow's.
    OauthStateMismatch,
    /// The upstream refused the sign-in.
    OauthDenied,
    /// Exchanging the code for tokens failed.
    OauthExchangeFailed,
    /// The flow expired.
    OauthFlowExpired,

    // API keys and their limits.
    /// A missing, unknown, disabled or expired `sk-` key.
    InvalidApiKey,
    /// The key may not do this.
    PermissionDenied,
    /// The key may not use this model.
    ModelNotAllowed,
    /// The model is not served.
    ModelNotFound,
    /// `previous_response_id` names no stored response of this key.
    PreviousResponseNotFound,
    /// Too many requests for now (the key's rpm, or an account's limit upstream).
    RateLimitExceeded,
    /// The key's daily requests or token budget are used up.
    InsufficientQuota,

    // The pool and the upstream.
    /// Every account's usage limit is spent (the upstream's own shape).
    UsageLimitReached,
    /// Every usable account is cooling down.
    AllAccountsCooling,
    /// No account can serve at all.
    NoAvailableAccount,
    /// The pool has no accounts at all (a console action that needs one).
    NoAccounts,
    /// The upstream failed.
    UpstreamError,
    /// The upstream is overloaded.
    ServerOverloaded,
    /// Refreshing an account's tokens failed.
    RefreshFailed,

    // The gateway itself.
    /// An actor is not answering (full mailbox, stopped, too slow).
    ServiceUnavailable,
    /// A failure whose cause is only in the server log.
    InternalError,
}

/// What an [`ErrorCode`] stands for on the wire.
struct CodeSpec {
    status: StatusCode,
    openai_type: &'static str,
    name: &'static str,
}

const fn spec(status: StatusCode, openai_type: &'static str, name: &'static str) -> CodeSpec {
    CodeSpec {
        status,
        openai_type,
        name,
    }
}

const INVALID: &str = "invalid_request_error";
const AUTH: &str = "authentication_error";
const PERMISSION: &str = "permission_error";
const RATE_LIMIT: &str = "rate_limit_error";
const API: &str = "api_error";

impl ErrorCode {
    fn spec(self) -> CodeSpec {
        use ErrorCode as C;
        use StatusCode as S;
        match self {
            C::InvalidRequest => spec(S::BAD_REQUEST, INVALID, "invalid_request"),
            C::PayloadTooLarge => spec(S::PAYLOAD_TOO_LARGE, INVALID, "payload_too_large"),
            C::UnsupportedMediaType => {
                spec(S::UNSUPPORTED_MEDIA_TYPE, INVALID, "unsupported_media_type")
            }
            C::NotFound => spec(S::NOT_FOUND, INVALID, "not_found"),
            C::TooManyAccounts => spec(S::PAYLOAD_TOO_LARGE, INVALID, "too_many_accounts"),
            C::InvalidSetting => spec(S::BAD_REQUEST, INVALID, "invalid_setting"),
            C::UpgradeRequired => spec(S::UPGRADE_REQUIRED, INVALID, "upgrade_required"),
            C::Unauthorized => spec(S::UNAUTHORIZED, AUTH, "unauthorized"),
            C::InvalidCredentials => spec(S::UNAUTHORIZED, AUTH, "invalid_credentials"),
            C::TooManyAttempts => spec(S::TOO_MANY_REQUESTS, RATE_LIMIT, "too_many_attempts"),
            C::WeakPassword => spec(S::BAD_REQUEST, INVALID, "weak_password"),
            C::PasswordChangeRequired => spec(S::FORBIDDEN, PERMISSION, "password_change_required"),
            C::CrossSiteRequest => spec(S::FORBIDDEN, PERMISSION, "cross_site_request"),
            C::Forbidden => spec(S::FORBIDDEN, PERMISSION, "forbidden"),
            C::AdminDisabled => spec(S::FORBIDDEN, PERMISSION, "admin_disabled"),
            C::LastOwner => spec(S::CONFLICT, INVALID, "last_owner"),
            C::UsernameTaken => spec(S::CONFLICT, INVALID, "username_taken"),
            C::InvalidTotpCode => spec(S::UNAUTHORIZED, AUTH, "invalid_totp_code"),
            C::InvalidChallenge => spec(S::UNAUTHORIZED, AUTH, "invalid_challenge"),
            C::TotpAlreadyEnabled => spec(S::CONFLICT, INVALID, "totp_already_enabled"),
            C::TotpNotEnabled => spec(S::CONFLICT, INVALID, "totp_not_enabled"),
            C::TooManyFlows => spec(S::TOO_MANY_REQUESTS, RATE_LIMIT, "too_many_flows"),
            C::OauthStateMismatch => spec(S::BAD_REQUEST, INVALID, "oauth_state_mismatch"),
            C::OauthDenied => spec(S::BAD_REQUEST, INVALID, "oauth_denied"),
            C::OauthExchangeFailed => spec(S::BAD_REQUEST, INVALID, "oauth_exchange_failed"),
            C::OauthFlowExpired => spec(S::GONE, INVALID, "oauth_flow_expired"),
            C::InvalidApiKey => spec(S::UNAUTHORIZED, AUTH, "invalid_api_key"),
            C::PermissionDenied => spec(S::FORBIDDEN, PERMISSION, "permission_denied"),
            C::ModelNotAllowed => spec(S::FORBIDDEN, PERMISSION, "model_not_allowed"),
            C::ModelNotFound => spec(S::NOT_FOUND, INVALID, "model_not_found"),
            C::PreviousResponseNotFound => {
                spec(S::BAD_REQUEST, INVALID, "previous_response_not_found")
            }
            C::RateLimitExceeded => spec(S::TOO_MANY_REQUESTS, RATE_LIMIT, "rate_limit_exceeded"),
            C::InsufficientQuota => spec(
                S::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "insufficient_quota",
            ),
            C::UsageLimitReached => spec(
                S::TOO_MANY_REQUESTS,
                "usage_limit_reached",
                "usage_limit_reached",
            ),
            C::AllAccountsCooling => spec(S::TOO_MANY_REQUESTS, RATE_LIMIT, "all_accounts_cooling"),
            C::NoAvailableAccount => spec(S::SERVICE_UNAVAILABLE, API, "no_available_account"),
            C::NoAccounts => spec(S::CONFLICT, INVALID, "no_accounts"),
            C::UpstreamError => spec(S::BAD_GATEWAY, API, "upstream_error"),
            C::ServerOverloaded => spec(S::SERVICE_UNAVAILABLE, API, "server_overloaded"),
            C::RefreshFailed => spec(S::BAD_GATEWAY, API, "refresh_failed"),
            C::ServiceUnavailable => spec(S::SERVICE_UNAVAILABLE, API, "service_unavailable"),
            C::InternalError => spec(S::INTERNAL_SERVER_ERROR, "server_error", "internal_error"),
        }
    }

    /// The HTTP status this code answers with.
    pub fn status(self) -> StatusCode {
        self.spec().status
    }

    /// The stable snake_case name clients match on.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// OpenAI's `type`, chosen so that SDKs raise the right exception class.
    pub fn openai_type(self) -> &'static str {
        self.spec().openai_type
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure with a stable code and a message that is safe to show to the client.
#[derive(Debug, Clone)]
pub struct AppError {
    code: ErrorCode,
    /// The code's status, unless the upstream's own status is passed on (see [`Self::with_status`]).
    status: StatusCode,
    message: String,
    param: Option<String>,
    retry_after: Option<u64>,
    /// When a usage limit resets (unix seconds): rendered as `resets_at` and
    /// `resets_in_seconds`, the upstream's own usage-limit fields.
    resets_at: Option<i64>,
}

/// The result type of handlers and services.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// An error with the given code and client-facing message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status: code.status(),
            message: message.into(),
            param: None,
            retry_after: None,
            resets_at: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 401 for a missing or invalid admin session.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 404 for a missing resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 502 for an upstream failure.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UpstreamError, message)
    }

    /// 503 when an actor's mailbox is full or it did not answer in time.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, message)
    }

    /// 500 for a failure whose cause is only logged; the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalError,
            "internal error; see the server log",
        )
    }

    /// Adds a `Retry-After` header (seconds).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Says when a usage limit resets: `resets_at` and `resets_in_seconds` in the body (as the
    /// upstream's usage-limit error has them) and `Retry-After`.
    #[must_use]
    pub fn with_reset(mut self, resets_at: chrono::DateTime<chrono::Utc>) -> Self {
        let seconds = (resets_at - chrono::Utc::now()).num_seconds().max(1) as u64;
        self.resets_at = Some(resets_at.timestamp());
        self.with_retry_after(seconds)
    }

    /// Names the request parameter at fault (OpenAI's `param`).
    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Answers with another status than the code's own: only for passing on the upstream's
    /// verdict on a client's request (a 413 or 422 the backend gave).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Retry-After` seconds, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The `error` object of OpenAI's shape: `message`, `type`, `param`, `code`, and for a
    /// usage limit `resets_at` and `resets_in_seconds`.
    pub fn openai_error(&self) -> serde_json::Value {
        let mut error = json!({
            "message": self.message,
            "type": self.code.openai_type(),
            "param": self.param,
            "code": self.code.name(),
        });
        if let (Some(at), Some(fields)) = (self.resets_at, error.as_object_mut()) {
            let left = (at - chrono::Utc::now().timestamp()).max(1);
            fields.insert("resets_at".into(), at.into());
            fields.insert("resets_in_seconds".into(), left.into());
        }
        error
    }

    /// The status and `code: message` line a usage-log row keeps for this error.
    pub fn log_line(&self) -> String {
        format!("{}: {}", self.code, self.message)
    }

    fn base_response(&self) -> actix_web::HttpResponseBuilder {
        let mut builder = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        builder
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
            .json(json!({"error": {"code": self.code.name(), "message": self.message}}))
    }
}

/// An [`AppError`] rendered in OpenAI's error shape, for `/v1/*`.
#[derive(Debug, Clone)]
pub struct OpenAiError(pub AppError);

impl<E: Into<AppError>> From<E> for OpenAiError {
    fn from(e: E) -> Self {
        OpenAiError(e.into())
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
        e.base_response().json(json!({ "error": e.openai_error() }))
    }
}

/// Maps a failed JSON body to 413 (too large), 415 (not JSON) or 400, with a message that never
/// echoes the request body back.
pub fn json_error(err: &actix_web::error::JsonPayloadError) -> AppError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => {
            AppError::new(ErrorCode::PayloadTooLarge, "request body is too large")
        }
        E::ContentType => AppError::new(
            ErrorCode::UnsupportedMediaType,
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
    AppError::invalid_request(format!("{what}: {}", safe_detail(&err.to_string())))
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

// Domain errors -> HTTP. The only place where they meet a status.

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

impl From<ActorError> for AppError {
    fn from(e: ActorError) -> Self {
        match e {
            ActorError::Storage(e) => e.into(),
            other => AppError::unavailable(other.to_string()),
        }
    }
}

impl From<PoolError> for AppError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Exhausted { resets_at } => AppError::new(
                ErrorCode::UsageLimitReached,
                format!(
                    "The usage limit has been reached on every account; the nearest resets at {}",
                    resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )
            .with_reset(resets_at),
            PoolError::AllCooling { retry_after } => AppError::new(
                ErrorCode::AllAccountsCooling,
                format!("every account is cooling down; retry in {retry_after} seconds"),
            )
            .with_retry_after(retry_after),
            PoolError::Refreshing { .. } => AppError::new(
                ErrorCode::NoAvailableAccount,
                "no upstream account is available: a refused token is being refreshed",
            )
            .with_retry_after(5),
            PoolError::NoAccount => AppError::new(
                ErrorCode::NoAvailableAccount,
                "no upstream account is available",
            ),
            PoolError::Actor(e) => e.into(),
        }
    }
}

impl From<LimitError> for AppError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::PerMinute { retry_after } => AppError::new(
                ErrorCode::RateLimitExceeded,
                "this API key's requests-per-minute limit is reached",
            )
            .with_retry_after(retry_after),
            LimitError::PerDay { retry_after } => AppError::new(
                ErrorCode::InsufficientQuota,
                "this API key's daily request limit is reached",
            )
            .with_retry_after(retry_after),
            LimitError::Tokens => AppError::new(
                ErrorCode::InsufficientQuota,
                "this API key's token budget is used up",
            ),
            LimitError::TokensReserved => AppError::new(
                ErrorCode::RateLimitExceeded,
                "the rest of this API key's token budget is reserved by its requests in flight",
            )
            .with_retry_after(1),
            LimitError::Concurrency => AppError::new(
                ErrorCode::RateLimitExceeded,
                "this API key has too many requests in flight",
            )
            .with_retry_after(1),
            LimitError::Unavailable => AppError::new(
                ErrorCode::ServiceUnavailable,
                "this API key's limit counters cannot be read; try again shortly",
            )
            .with_retry_after(1),
            LimitError::Actor(e) => e.into(),
        }
    }
}

impl From<SettingsError> for AppError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Invalid { .. } => {
                AppError::new(ErrorCode::InvalidSetting, e.to_string())
            }
            SettingsError::Database(e) => e.into(),
        }
    }
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
    fn openai_types_follow_the_code() {
        assert_eq!(
            ErrorCode::InsufficientQuota.openai_type(),
            "insufficient_quota"
        );
        assert_eq!(
            ErrorCode::InvalidApiKey.openai_type(),
            "authentication_error"
        );
        assert_eq!(
            ErrorCode::InvalidRequest.openai_type(),
            "invalid_request_error"
        );
    }

    #[test]
    fn every_code_has_one_name() {
        use strum::IntoEnumIterator;
        let all: Vec<ErrorCode> = ErrorCode::iter().collect();
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), all.len(), "two codes share a name");
        for code in all {
            assert_eq!(code.to_string(), code.name());
            assert!(code
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn a_usage_limit_takes_the_upstreams_shape() {
        let at = chrono::Utc::now() + chrono::Duration::seconds(600);
        let e = OpenAiError(AppError::from(PoolError::Exhausted { resets_at: at }));
        let response = e.error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = response
            .headers()
            .get(header::RETRY_AFTER)
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((595..=600).contains(&retry), "{retry}");
        let body = actix_web::body::to_bytes(response.into_body());
        let body: serde_json::Value = serde_json::from_slice(
            &futures_util::FutureExt::now_or_never(body)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        let error = &body["error"];
        assert_eq!(error["type"], "usage_limit_reached");
        assert_eq!(error["code"], "usage_limit_reached");
        assert_eq!(error["resets_at"], at.timestamp());
        assert!(error["resets_in_seconds"]
            .as_i64()
            .is_some_and(|s| (595..=600).contains(&s)));
        assert!(error["param"].is_null() && error["message"].is_string());
    }

    #[test]
    fn passing_on_an_upstream_status_keeps_the_code() {
        let e = AppError::invalid_request("too big").with_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
    }
}
