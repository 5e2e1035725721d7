//! `GET /v1/models`: the configured model list.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::extract::ApiKeyAuth;
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
