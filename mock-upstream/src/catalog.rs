//! The model catalog, `GET /backend-api/codex/models?client_version=X` (CODEX.md §7): the
//! `ModelInfo` objects of the account's plan, with an `ETag` (`If-None-Match` with it answers
//! 304). Tests can replace the list (`set_catalog`) or make the endpoint fail
//! (`set_catalog_status`); `catalog_requests` counts the calls.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::MockState;

/// A `ModelInfo` as the backend describes a model.
pub fn model_info(slug: &str, visibility: &str, priority: i64) -> Value {
    json!({
        "slug": slug,
        "display_name": slug,
        "description": format!("{slug} from the mock catalog"),
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": [
            {"effort": "low", "description": "Fast"},
            {"effort": "medium", "description": "Balanced"},
            {"effort": "high", "description": "Deep"}
        ],
        "shell_type": "shell_command",
        "visibility": visibility,
        "supported_in_api": true,
        "priority": priority,
        "upgrade": null,
        "base_instructions": "You are a mock model.",
        "supports_reasoning_summaries": true,
        "support_verbosity": true,
        "default_verbosity": "low",
        "apply_patch_tool_type": "freeform",
        "truncation_policy": {"mode": "tokens", "limit": 10_000},
        "supports_parallel_tool_calls": true,
        "context_window": 272_000,
        "experimental_supported_tools": [],
        "input_modalities": ["text", "image"]
    })
}

/// The default catalog of a plan: two listed models, a hidden one, and one more for `pro`.
pub(crate) fn default_catalog(plan: &str) -> Vec<Value> {
    let mut models = vec![
        model_info("gpt-5.5", "list", 1),
        model_info("gpt-5.4-mini", "list", 2),
        model_info("codex-auto-review", "hide", 90),
    ];
    if plan == "pro" {
        models.push(model_info("gpt-5.5-pro", "list", 3));
    }
    models
}

/// `GET /backend-api/codex/models`.
pub(crate) async fn models(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let has_version = url::form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(k, v)| k == "client_version" && !v.is_empty());
    let bearer = header("authorization").is_some_and(|v| v.starts_with("Bearer "));
    let account = header("chatgpt-account-id");
    let (status, models) = {
        let mut inner = state.lock();
        inner.catalog_requests += 1;
        let plan = account
            .as_deref()
            .map(|id| inner.account(id).plan_type.clone())
            .unwrap_or_default();
        let models = inner
            .catalog
            .clone()
            .unwrap_or_else(|| default_catalog(&plan));
        (inner.catalog_status, models)
    };
    if !bearer {
        return HttpResponse::Unauthorized().json(json!({"detail": "Unauthorized"}));
    }
    if account.is_none() {
        return HttpResponse::BadRequest()
            .json(json!({"detail": "Missing chatgpt-account-id header"}));
    }
    if !has_version {
        return HttpResponse::BadRequest().json(json!({"detail": "client_version is required"}));
    }
    if let Some(status) = status {
        return HttpResponse::build(crate::status_code(status))
            .json(json!({"detail": "The catalog is unavailable"}));
    }
    let etag = etag(&models);
    let body = json!({ "models": models });
    if header("if-none-match").as_deref() == Some(etag.as_str()) {
        return HttpResponse::NotModified()
            .insert_header(("etag", etag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header(("etag", etag.clone()))
        .insert_header(("x-models-etag", etag))
        .json(body)
}

/// The catalog's `ETag` (quoted), also sent as `x-models-etag` on answers.
pub(crate) fn etag(models: &[Value]) -> String {
    let digest = Sha256::digest(Value::Array(models.to_vec()).to_string().as_bytes());
    let hex = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &digest[..9],
    );
    format!("\"{hex}\"")
}
