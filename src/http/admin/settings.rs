//! `GET/PATCH /admin/settings`: the runtime settings, applied live, and `GET /admin/system`.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use crate::error::AppResult;
use crate::http::auth::AdminSession;
use crate::state::AppState;

/// Mounts the settings and system routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(get_settings))
        .route("/settings", web::patch().to(patch_settings))
        .route("/system", web::get().to(system));
}

async fn get_settings(state: web::Data<AppState>, _admin: AdminSession) -> HttpResponse {
    HttpResponse::Ok().json(state.settings.get())
}

async fn patch_settings(
    state: web::Data<AppState>,
    admin: AdminSession,
    body: web::Json<Map<String, Value>>,
) -> AppResult<HttpResponse> {
    let before = serde_json::to_value(state.settings.get()).unwrap_or_default();
    let next = state.settings.update(&body).await?;
    let after = serde_json::to_value(&next).unwrap_or_default();
    let changes: Map<String, Value> = body
        .keys()
        .filter(|k| before.get(k.as_str()) != after.get(k.as_str()))
        .map(|k| {
            (
                k.clone(),
                json!({"from": before.get(k.as_str()), "to": after.get(k.as_str())}),
            )
        })
        .collect();
    state
        .changes
        .publish(crate::changes::Change::SettingsChanged)
        .await;
    tracing::info!(admin = %admin.0.user.username, keys = ?body.keys().collect::<Vec<_>>(), "runtime settings changed");
    let mut res = HttpResponse::Ok().json(next);
    res.extensions_mut()
        .insert(crate::audit::AuditDetail::summary(Value::Object(changes)));
    Ok(res)
}

async fn system(state: web::Data<AppState>, _admin: AdminSession) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": crate::VERSION,
        "database": state.config.database.kind(),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "upstream_base_url": state.config.codex.base_url,
    }))
}
