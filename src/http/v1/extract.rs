//! The typed inputs of the `/v1` handlers: the client's key ([`ApiKeyAuth`]), its JSON body
//! ([`OpenAiJson`]) and the id the tracing middleware gave the request ([`RequestId`]). Each
//! failure answers in OpenAI's error shape.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{dev, web, FromRequest, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;

use crate::actors::key_cache::KeyRecord;
use crate::actors::usage_log::Transport;
use crate::codex::translate::split_model_effort;
use crate::error::{extractor_error, AppError, ErrorCode, ExtractorKind, OpenAiError};
use crate::state::AppState;

/// The boxed future of an extractor that waits for something.
type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, OpenAiError>>>>;

/// The application state, for extractors.
fn app_state(req: &HttpRequest) -> Option<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>().cloned()
}

/// A client authenticated by its `sk-` key (`Authorization: Bearer` or `x-api-key`).
#[derive(Debug, Clone)]
pub struct ApiKeyAuth(pub Arc<KeyRecord>);

impl FromRequest for ApiKeyAuth {
    type Error = OpenAiError;
    type Future = Extracting<Self>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let state = app_state(req);
        let endpoint = log_endpoint(req.path());
        let request_id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(std::string::ToString::to_string);
        let presented = presented_key(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal("application state missing"))?;
            let record = authenticate(
                &state,
                presented.as_deref(),
                endpoint,
                request_id,
                Transport::Http,
            )
            .await?;
            Ok(ApiKeyAuth(record))
        })
    }
}

/// The `sk-` key a request presents (`Authorization: Bearer` or `x-api-key`).
pub fn presented_key(req: &HttpRequest) -> Option<String> {
    crate::http::auth::bearer(req).or_else(|| {
        req.headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    })
}

/// Checks a presented key: 401 `invalid_api_key` when it is missing, unknown, disabled or
/// expired (an expired key's refusal leaves a usage-log row). A WebSocket connection calls it
/// again on every turn.
pub async fn authenticate(
    state: &AppState,
    presented: Option<&str>,
    endpoint: &'static str,
    request_id: Option<String>,
    transport: Transport,
) -> Result<Arc<KeyRecord>, OpenAiError> {
    let invalid =
        |message: &str| OpenAiError(AppError::new(ErrorCode::InvalidApiKey, message.to_string()));
    let key =
        presented.ok_or_else(|| invalid("missing API key: send Authorization: Bearer sk-..."))?;
    let record = state
        .keys
        .lookup(key)
        .await?
        .ok_or_else(|| invalid("invalid API key"))?;
    if !record.is_active {
        return Err(invalid("this API key is disabled"));
    }
    if record.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        let refusal = invalid("this API key has expired");
        crate::request_log::RequestLog::start(state, &record, "", endpoint, false, request_id)
            .over(transport)
            .finish(
                refusal.0.status().as_u16(),
                Some(refusal.0.message().to_string()),
            );
        return Err(refusal);
    }
    Ok(record)
}

/// The route a usage-log row names for a request path (the rows hold static names).
fn log_endpoint(path: &str) -> &'static str {
    const ROUTES: [&str; 4] = [
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/models",
        "/v1/completions",
    ];
    ROUTES
        .into_iter()
        .find(|route| path == *route || path.starts_with(&format!("{route}/")))
        .unwrap_or("/v1")
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

/// The client's JSON request body, read only when the handler asks for it ([`OpenAiJson::read`]),
/// so that nothing is read before the key is known to be good: at most
/// `server.body_limit_bytes` (413 beyond it), 400 when it does not parse. Any `Content-Type` is
/// taken, as OpenAI's API does with `curl -d`. The messages never quote the body.
pub struct OpenAiJson {
    payload: web::Payload,
    limit: usize,
}

impl FromRequest for OpenAiJson {
    type Error = OpenAiError;
    type Future = Ready<Result<Self, OpenAiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let limit = app_state(req).map(|state| state.config.server.body_limit_bytes);
        let payload = web::Payload::from_request(req, payload).into_inner();
        ready(match (payload, limit) {
            (Ok(payload), Some(limit)) => Ok(OpenAiJson { payload, limit }),
            (Err(e), _) => Err(AppError::internal(e).into()),
            (_, None) => Err(AppError::internal("application state missing").into()),
        })
    }
}

impl OpenAiJson {
    /// Reads and parses the body.
    pub async fn read<T: DeserializeOwned>(self) -> Result<T, OpenAiError> {
        let body = crate::http::read_limited(self.payload, self.limit).await?;
        serde_json::from_slice(&body).map_err(|e| extractor_error(&e, ExtractorKind::Json).into())
    }
}

/// The id the tracing middleware assigned to the request (`None` without the middleware).
#[derive(Debug, Clone, Default)]
pub struct RequestId(pub Option<String>);

impl FromRequest for RequestId {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(std::string::ToString::to_string);
        ready(Ok(RequestId(id)))
    }
}
