//! `GET /v1/models` (the configured model list) and `GET /v1/models/{id}` (one of them, effort
//! aliases such as `gpt-5-high` included).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::extract::ApiKeyAuth;
use crate::codex::translate::split_model_effort;
use crate::error::{AppError, ErrorCode, OpenAiError};
use crate::state::AppState;

/// A fixed creation time: the list is configuration, not upstream data.
const CREATED: i64 = 1_735_689_600;

/// Lists the models this key may use.
pub async fn list(state: web::Data<AppState>, key: ApiKeyAuth) -> HttpResponse {
    let data: Vec<_> = state
        .config
        .codex
        .models
        .iter()
        .filter(|m| key.check_model(m).is_ok())
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "openai"}))
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}

/// The model object of a served id: a configured model, or one with an effort suffix.
pub async fn retrieve(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, OpenAiError> {
    let id = id.into_inner();
    let (base, _) = split_model_effort(&id);
    let served = state
        .config
        .codex
        .models
        .iter()
        .any(|m| m == base || m == &id);
    if !served || key.check_model(&id).is_err() {
        return Err(AppError::new(
            ErrorCode::ModelNotFound,
            format!("The model '{}' does not exist", truncate(&id)),
        )
        .with_param("model")
        .into());
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": id, "object": "model", "created": CREATED, "owned_by": "openai"
    })))
}

/// A client-supplied name, shortened for an error message.
fn truncate(text: &str) -> String {
    text.chars().take(100).collect()
}
