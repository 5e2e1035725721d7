//! `/admin/stats/*` and `/admin/logs`: figures counted from the log rows (and their hourly
//! rollups, kept in the same transaction), never estimated.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page_of, tokens::status_of, Paging};
use crate::db::{api_key, api_log, token, usage_hourly};
use crate::error::{AppError, AppResult};
use crate::http::auth::AdminSession;
use crate::state::AppState;

/// Mounts the statistics and log routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stats/overview", web::get().to(overview))
        .route("/stats/usage", web::get().to(usage))
        .route("/logs", web::get().to(logs));
}

#[derive(FromQueryResult, Default)]
struct Sums {
    requests: Option<i64>,
    errors: Option<i64>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

async fn overview(state: web::Data<AppState>, _admin: AdminSession) -> AppResult<HttpResponse> {
    let db = &state.db;
    let keys = api_key::Entity::find().filter(api_key::Column::DeletedAt.is_null());
    let keys_total = keys.clone().count(db).await?;
    let keys_active = keys
        .filter(api_key::Column::IsActive.eq(true))
        .count(db)
        .await?;

    let lead = state.settings.get().refresh_lead_seconds;
    let accounts = token::Entity::find()
        .filter(token::Column::DeletedAt.is_null())
        .all(db)
        .await?;
    let mut by_status: HashMap<&str, u64> = HashMap::new();
    for row in &accounts {
        *by_status.entry(status_of(row, lead)).or_default() += 1;
    }
    let count = |s: &str| by_status.get(s).copied().unwrap_or(0);

    let since = Utc::now() - Duration::hours(24);
    let day: Sums = api_log::Entity::find()
        .select_only()
        .column_as(Expr::col(api_log::Column::Id).count(), "requests")
        .column_as(
            Expr::cust("CAST(SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) AS BIGINT)"),
            "errors",
        )
        .column_as(total("input_tokens"), "input_tokens")
        .column_as(total("output_tokens"), "output_tokens")
        .filter(api_log::Column::CreatedAt.gte(since))
        .into_model::<Sums>()
        .one(db)
        .await?
        .unwrap_or_default();
    let all: Sums = usage_hourly::Entity::find()
        .select_only()
        .column_as(total("requests"), "requests")
        .column_as(total("errors"), "errors")
        .column_as(total("input_tokens"), "input_tokens")
        .column_as(total("output_tokens"), "output_tokens")
        .into_model::<Sums>()
        .one(db)
        .await?
        .unwrap_or_default();

    Ok(HttpResponse::Ok().json(json!({
        "api_keys": {"total": keys_total, "active": keys_active},
        "tokens": {
            "total": accounts.len(),
            "active": count("active") + count("expiring"),
            "expiring": count("expiring"),
            "cooling_down": count("cooling_down"),
            "expired": count("expired"),
            "refresh_failed": count("refresh_failed"),
            "needs_relogin": count("needs_relogin"),
            "disabled": count("disabled"),
        },
        "requests": {
            "total": all.requests.unwrap_or(0),
            "last_24h": day.requests.unwrap_or(0),
            "errors_24h": day.errors.unwrap_or(0),
        },
        "usage": {
            "input_tokens_24h": day.input_tokens.unwrap_or(0),
            "output_tokens_24h": day.output_tokens.unwrap_or(0),
        },
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "version": crate::VERSION,
    })))
}

#[derive(Deserialize)]
struct UsageQuery {
    range: Option<String>,
}

#[derive(FromQueryResult)]
struct Group {
    id: i64,
    model: Option<String>,
    requests: Option<i64>,
    errors: Option<i64>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

async fn usage(
    state: web::Data<AppState>,
    _admin: AdminSession,
    query: web::Query<UsageQuery>,
) -> AppResult<HttpResponse> {
    let range = query.range.as_deref().unwrap_or("24h");
    let (bucket_seconds, buckets, bucket_name) = match range {
        "24h" => (3600i64, 24i64, "hour"),
        "7d" => (86_400, 7, "day"),
        "30d" => (86_400, 30, "day"),
        _ => {
            return Err(AppError::bad_request(
                "invalid_request",
                "`range` must be 24h, 7d or 30d",
            ))
        }
    };
    let now = Utc::now().timestamp();
    let last = now.div_euclid(bucket_seconds) * bucket_seconds;
    let first = last - (buckets - 1) * bucket_seconds;
    let db = &state.db;
    let in_range = Condition::all().add(usage_hourly::Column::Bucket.gte(first));

    let sums = |group: sea_orm::sea_query::SimpleExpr| {
        usage_hourly::Entity::find()
            .select_only()
            .column_as(group, "id")
            .column_as(total("requests"), "requests")
            .column_as(total("errors"), "errors")
            .column_as(total("input_tokens"), "input_tokens")
            .column_as(total("output_tokens"), "output_tokens")
            .filter(in_range.clone())
    };
    let bucket_expr = Expr::cust(format!("(bucket / {bucket_seconds}) * {bucket_seconds}"));
    let series_rows = sums(bucket_expr.clone())
        .column_as(Expr::cust("NULL"), "model")
        .group_by(bucket_expr)
        .into_model::<Group>()
        .all(db)
        .await?;
    let by_bucket: HashMap<i64, &Group> = series_rows.iter().map(|g| (g.id, g)).collect();
    let series: Vec<Value> = (0..buckets)
        .map(|i| {
            let ts = first + i * bucket_seconds;
            let g = by_bucket.get(&ts);
            json!({
                "ts": DateTime::from_timestamp(ts, 0),
                "requests": g.and_then(|g| g.requests).unwrap_or(0),
                "errors": g.and_then(|g| g.errors).unwrap_or(0),
                "input_tokens": g.and_then(|g| g.input_tokens).unwrap_or(0),
                "output_tokens": g.and_then(|g| g.output_tokens).unwrap_or(0),
            })
        })
        .collect();

    let by_model = usage_hourly::Entity::find()
        .select_only()
        .column_as(Expr::val(0i64), "id")
        .column(usage_hourly::Column::Model)
        .column_as(total("requests"), "requests")
        .column_as(total("errors"), "errors")
        .column_as(total("input_tokens"), "input_tokens")
        .column_as(total("output_tokens"), "output_tokens")
        .filter(in_range.clone())
        .group_by(usage_hourly::Column::Model)
        .into_model::<Group>()
        .all(db)
        .await?;
    let by_key = sums(Expr::cust("CAST(api_key_id AS BIGINT)"))
        .column_as(Expr::cust("NULL"), "model")
        .group_by(usage_hourly::Column::ApiKeyId)
        .into_model::<Group>()
        .all(db)
        .await?;
    let by_token = sums(Expr::cust("CAST(token_id AS BIGINT)"))
        .column_as(Expr::cust("NULL"), "model")
        .group_by(usage_hourly::Column::TokenId)
        .into_model::<Group>()
        .all(db)
        .await?;
    let key_names = key_names(&state, by_key.iter().map(|g| g.id as i32).collect()).await?;
    let token_emails = token_emails(&state, by_token.iter().map(|g| g.id as i32).collect()).await?;

    let mut by_model: Vec<Value> = by_model
        .iter()
        .map(|g| json!({"model": g.model, "requests": g.requests.unwrap_or(0), "input_tokens": g.input_tokens.unwrap_or(0), "output_tokens": g.output_tokens.unwrap_or(0)}))
        .collect();
    by_model.sort_by_key(|v| std::cmp::Reverse(v["requests"].as_i64()));
    let mut by_api_key: Vec<Value> = by_key
        .iter()
        .filter(|g| g.id != 0)
        .map(|g| json!({"api_key_id": g.id, "name": key_names.get(&(g.id as i32)), "requests": g.requests.unwrap_or(0)}))
        .collect();
    by_api_key.sort_by_key(|v| std::cmp::Reverse(v["requests"].as_i64()));
    let mut by_token: Vec<Value> = by_token
        .iter()
        .filter(|g| g.id != 0)
        .map(|g| json!({"token_id": g.id, "email": token_emails.get(&(g.id as i32)), "requests": g.requests.unwrap_or(0), "errors": g.errors.unwrap_or(0)}))
        .collect();
    by_token.sort_by_key(|v| std::cmp::Reverse(v["requests"].as_i64()));

    Ok(HttpResponse::Ok().json(json!({
        "range": range,
        "bucket": bucket_name,
        "series": series,
        "by_model": by_model,
        "by_api_key": by_api_key,
        "by_token": by_token,
    })))
}

async fn key_names(state: &AppState, ids: Vec<i32>) -> AppResult<HashMap<i32, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(api_key::Entity::find()
        .filter(api_key::Column::Id.is_in(ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|k| (k.id, k.name))
        .collect())
}

async fn token_emails(state: &AppState, ids: Vec<i32>) -> AppResult<HashMap<i32, Option<String>>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(token::Entity::find()
        .filter(token::Column::Id.is_in(ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|t| (t.id, t.email.or(t.name)))
        .collect())
}

#[derive(Deserialize)]
struct LogQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    status: Option<String>,
    api_key_id: Option<i32>,
    token_id: Option<i32>,
    model: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

async fn logs(
    state: web::Data<AppState>,
    _admin: AdminSession,
    query: web::Query<LogQuery>,
) -> AppResult<HttpResponse> {
    let (page, size) = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let mut select = api_log::Entity::find();
    match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => {}
        Some("success") => select = select.filter(api_log::Column::StatusCode.lt(400)),
        Some("error") => select = select.filter(api_log::Column::StatusCode.gte(400)),
        Some(_) => {
            return Err(AppError::bad_request(
                "invalid_request",
                "`status` must be success or error",
            ))
        }
    }
    if let Some(id) = query.api_key_id {
        select = select.filter(api_log::Column::ApiKeyId.eq(id));
    }
    if let Some(id) = query.token_id {
        select = select.filter(api_log::Column::TokenId.eq(id));
    }
    if let Some(model) = query.model.as_deref().filter(|m| !m.is_empty()) {
        select = select.filter(api_log::Column::Model.eq(model));
    }
    if let Some(since) = query.since {
        select = select.filter(api_log::Column::CreatedAt.gte(since));
    }
    if let Some(until) = query.until {
        select = select.filter(api_log::Column::CreatedAt.lt(until));
    }
    let paginator = select
        .order_by_desc(api_log::Column::Id)
        .paginate(&state.db, size);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(page - 1).await?;
    let keys = key_names(&state, rows.iter().filter_map(|r| r.api_key_id).collect()).await?;
    let emails = token_emails(&state, rows.iter().filter_map(|r| r.token_id).collect()).await?;
    let data = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "created_at": r.created_at,
                "api_key_id": r.api_key_id,
                "api_key_name": r.api_key_id.and_then(|id| keys.get(&id)),
                "token_id": r.token_id,
                "token_email": r.token_id.and_then(|id| emails.get(&id).cloned().flatten()),
                "model": r.model,
                "endpoint": r.endpoint,
                "stream": r.stream,
                "status_code": r.status_code,
                "error_message": r.error_message,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cached_tokens": r.cached_tokens,
                "reasoning_tokens": r.reasoning_tokens,
                "latency_ms": r.latency_ms,
                "ttft_ms": r.ttft_ms,
                "request_id": r.request_id,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(page_of(data, total, page, size)))
}

/// `SUM(column)` as a 64-bit integer on every engine (PostgreSQL sums bigints as numeric).
fn total(column: &str) -> sea_orm::sea_query::SimpleExpr {
    Expr::cust(format!("CAST(SUM({column}) AS BIGINT)"))
}
