//! `GET /v1/models` and `GET /v1/models/{id}`: the models a key may use, from the upstream's
//! catalog (see [`crate::catalog`]) and the configured `codex.models`.
//!
//! Two shapes: OpenAI's `{"object":"list","data":[...]}` (the catalog's visible models, then
//! the configured ones it does not list, and with `codex.list_effort_aliases` their
//! `<model>-<effort>` aliases), and, when the request carries `client_version` as the Codex CLI
//! does (or at `/v1/codex/models`, for the CLI's `model_catalog_url`), the Codex catalog
//! `{"models":[ModelInfo...]}` with an `ETag` (also sent as `x-models-etag`); a request whose
//! `If-None-Match` names the current one answers 304.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ApiKeyAuth;
use crate::catalog::Served;
use crate::codex::translate::split_model_effort;
use crate::error::{AppError, ErrorCode, OpenAiError};
use crate::state::AppState;

/// A fixed creation time: the list carries none upstream.
const CREATED: i64 = 1_735_689_600;

/// The header with which the Codex CLI learns that the catalog changed.
pub const MODELS_ETAG_HEADER: &str = "x-models-etag";

/// Effort aliases listed with `codex.list_effort_aliases`, when the catalog names none.
const ALIAS_EFFORTS: [&str; 4] = ["low", "medium", "high", "xhigh"];

/// The query of `GET /v1/models`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Sent by the Codex CLI: asks for the Codex catalog shape.
    client_version: Option<String>,
}

/// Lists the models this key may use, in the shape the client asked for.
pub async fn list(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let served = served_for(&state, &key);
    if query.client_version.is_some() {
        return codex_shape(&request, &served);
    }
    HttpResponse::Ok().json(json!({"object": "list", "data": openai_list(&state, &served)}))
}

/// The Codex catalog, whatever the query: the path for the CLI's `model_catalog_url`.
pub async fn codex_catalog(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    request: HttpRequest,
) -> HttpResponse {
    codex_shape(&request, &served_for(&state, &key))
}

/// The catalog to serve to this key: the models it may use.
fn served_for(state: &AppState, key: &ApiKeyAuth) -> Served {
    let mut served = state.catalog.served(&state.config.codex.models);
    served.models.retain(|m| {
        m.get("slug")
            .and_then(Value::as_str)
            .is_some_and(|slug| key.check_model(slug).is_ok())
    });
    served
}

/// `{"models": [...]}` with its `ETag`, or 304 when the client has it already.
fn codex_shape(request: &HttpRequest, served: &Served) -> HttpResponse {
    let etag = served.etag();
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.insert_header((header::ETAG, value.clone()));
        response.insert_header((MODELS_ETAG_HEADER, value));
    }
    response.insert_header((header::CACHE_CONTROL, "no-cache"));
    if unchanged {
        return response.finish();
    }
    response.json(json!({"models": served.models}))
}

/// OpenAI's model objects: the catalog's visible models, the configured ones it does not
/// list, and the effort aliases when configured.
fn openai_list(state: &AppState, served: &Served) -> Vec<Value> {
    let mut ids: Vec<String> = served
        .visible_slugs()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for configured in &state.config.codex.models {
        if !ids.contains(configured) {
            ids.push(configured.clone());
        }
    }
    if state.config.codex.list_effort_aliases {
        let bases = ids.clone();
        for base in bases {
            for effort in efforts_of(served, &base) {
                ids.push(format!("{base}-{effort}"));
            }
        }
    }
    ids.into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "openai"}))
        .collect()
}

/// The efforts a model supports: its catalog entry's, else the usual ones.
fn efforts_of(served: &Served, slug: &str) -> Vec<String> {
    let levels = served
        .models
        .iter()
        .find(|m| m.get("slug").and_then(Value::as_str) == Some(slug))
        .and_then(|m| m.get("supported_reasoning_levels"))
        .and_then(Value::as_array)
        .map(|levels| {
            levels
                .iter()
                .filter_map(|l| l.get("effort").and_then(Value::as_str))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|levels| !levels.is_empty());
    levels.unwrap_or_else(|| ALIAS_EFFORTS.map(str::to_owned).to_vec())
}

/// The model object of a served id: a catalog or configured model, or one with an effort
/// suffix.
pub async fn retrieve(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, OpenAiError> {
    let id = id.into_inner();
    let (base, _) = split_model_effort(&id);
    let catalog = state.catalog.served(&state.config.codex.models);
    let served = state
        .config
        .codex
        .models
        .iter()
        .map(String::as_str)
        .chain(catalog.visible_slugs())
        .any(|m| m == base || m == id);
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
