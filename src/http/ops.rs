//! Operations endpoints: liveness (`/healthz`), readiness (`/readyz`: the database answers and
//! the actors run) and Prometheus metrics (`/metrics`).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::changes::ListenerState;
use crate::metrics::PoolGauges;
use crate::state::AppState;

/// Mounts `/healthz`, `/readyz` and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Prometheus text format.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.snapshot().await.unwrap_or_default();
    let available = pool.accounts.iter().filter(|a| a.available).count() as i64;
    state.metrics.changes(
        state.changes.received(),
        state.changes.applied(),
        state.changes.resyncs(),
    );
    state
        .metrics
        .key_cache(state.keys.lookups(), state.keys.oldest_entry_age());
    let gauges = PoolGauges {
        available,
        unavailable: pool.accounts.len() as i64 - available,
        in_flight: pool.accounts.iter().map(|a| a.in_flight as i64).sum(),
        pins: pool.pins as i64,
    };
    let text = state.metrics.render(gauges, state.usage.counts());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

/// Ready when the database answers, the actors run and (on PostgreSQL) the change listener
/// listens; `listener` is `listening`, `connecting` (not ready: changes made by other
/// instances are not seen) or `disabled` (SQLite).
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let actors = state.pool.connected()
        && state.prober.connected()
        && state.refresher.connected()
        && state.usage.connected()
        && state.keys.connected();
    if !actors {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "actors": "stopped"}));
    }
    let listener = state.changes.state();
    if listener == ListenerState::Connecting {
        return HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "listener": listener.as_str()}));
    }
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": "ok",
            "actors": "ok",
            "listener": listener.as_str(),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database does not answer");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "not_ready", "database": "unavailable"}))
        }
    }
}
