//! `POST /admin/playground`: one short chat completion through the pool, sent from the console
//! on behalf of one of the API keys (the first-run test call), and `GET /admin/models`: the
//! model ids the gateway serves, for the console's pickers.
//!
//! The test call is a request of that key like any other: its allowed models and limits
//! apply, it counts against them, and its usage-log row names the key, with the endpoint
//! `/admin/playground` so that the log tells it apart from the key's client traffic. The key's
//! value is never needed (the console only ever sees it once).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::actors::key_cache::KeyRecord;
use crate::conversation::Hints;
use crate::db::account;
use crate::dispatch::{dispatch_logged, UpstreamRequest};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::auth::AdminSession;
use crate::http::v1::chat::Chat;
use crate::http::v1::extract::ApiKeyAuth;
use crate::http::v1::serve::{collect, estimate_tokens, Client, Endpoint};
use crate::request_log::RequestLog;
use crate::service::KeyService;
use crate::state::AppState;

/// The endpoint the usage log records for a test call.
const PATH: &str = "/admin/playground";
/// The longest prompt a test call takes, in characters.
const MAX_PROMPT_CHARS: usize = 4000;

/// Mounts the playground and model routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/playground", web::post().to(playground))
        .route("/models", web::get().to(models));
}

/// The body of a test call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCall {
    /// The key the call is made for.
    api_key_id: i32,
    /// The model to ask.
    model: String,
    /// The user message.
    prompt: String,
}

impl TestCall {
    fn check(&self) -> AppResult<()> {
        let model = self.model.trim();
        if model.is_empty() || model.chars().count() > 100 {
            return Err(AppError::invalid_request(
                "`model` must be a non-empty string of at most 100 characters",
            )
            .with_param("model"));
        }
        let prompt = self.prompt.trim();
        if prompt.is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(AppError::invalid_request(format!(
                "`prompt` must be a non-empty string of at most {MAX_PROMPT_CHARS} characters"
            ))
            .with_param("prompt"));
        }
        Ok(())
    }
}

async fn playground(
    state: web::Data<AppState>,
    keys: KeyService,
    admin: AdminSession,
    body: web::Json<serde_json::Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let call: TestCall = super::payload(body)?;
    call.check()?;
    let row = keys.get(call.api_key_id).await?;
    let key = Arc::new(KeyRecord::from_row(&row));
    if !key.is_active {
        return Err(AppError::invalid_request(
            "this API key is disabled: enable it before a test call",
        ));
    }
    if key.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(AppError::invalid_request("this API key has expired"));
    }
    let accounts = account::Entity::find()
        .filter(account::Column::DeletedAt.is_null())
        .count(&state.db)
        .await?;
    if accounts == 0 {
        return Err(AppError::new(
            ErrorCode::NoAccounts,
            "the pool has no accounts: import or sign in an account first",
        ));
    }
    tracing::info!(admin = %admin.0.user.username, key_id = key.id, model = %call.model.trim(), "test call from the console");

    let hints = Hints::default();
    let client = Client {
        state: &state,
        key: &key,
        hints: &hints,
    };
    let chat = json!({
        "model": call.model.trim(),
        "stream": false,
        "messages": [{"role": "user", "content": call.prompt.trim()}],
    });
    let (endpoint, upstream) = Chat::translate(&client, chat).await.map_err(|e| e.0)?;
    // Refusals by the key's own limits leave a log row, as for a client's request.
    let refuse = |e: AppError| {
        RequestLog::refused(&state, &key, &upstream.model, PATH, false, None, &e);
        e
    };
    ApiKeyAuth(key.clone())
        .check_model(&upstream.model)
        .map_err(|e| refuse(e.0))?;
    let estimate = estimate_tokens(&upstream.body);
    state
        .keys
        .admit(
            key.clone(),
            estimate,
            state.config.server.max_concurrent_requests_per_key,
        )
        .await
        .map_err(|e| refuse(e.into()))?;
    let log =
        RequestLog::start(&state, &key, &upstream.model, PATH, false, None).admitted(estimate);
    let started = std::time::Instant::now();
    let (dispatched, log) = dispatch_logged(
        &state,
        UpstreamRequest {
            body: upstream.body,
            conversation: Some(&upstream.conversation),
            prefer: None,
        },
        log,
    )
    .await?;
    let account_id = dispatched.lease.account_id;
    let completion = collect(dispatched, log, endpoint.aggregate(account_id)).await?;
    let answer = completion
        .choices
        .first()
        .and_then(|c| c.message.content.clone())
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({
        "api_key_id": key.id,
        "model": completion.model,
        "answer": answer,
        "usage": completion.usage,
        "latency_ms": started.elapsed().as_millis() as u64,
    })))
}

/// The model ids `/v1/models` serves (before a key's own allowed list narrows them).
async fn models(state: web::Data<AppState>, _admin: AdminSession) -> HttpResponse {
    let data: Vec<Value> = state
        .config
        .codex
        .models
        .iter()
        .map(|id| json!({"id": id}))
        .collect();
    HttpResponse::Ok().json(json!({"data": data}))
}
