//! `/admin/stats/*` and `/admin/logs`: figures counted from the log rows (and their hourly
//! rollups, kept in the same transaction), never estimated.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page_of, Paging};
use crate::db::{account, api_key, api_log, usage_hourly};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::http::auth::AdminSession;
use crate::service::accounts::{AccountState, StateCounts};
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
    let accounts = account::Entity::find()
        .filter(account::Column::DeletedAt.is_null())
        .all(db)
        .await?;
    let states = StateCounts::of(&accounts, lead, Utc::now());
    let count = |state| states.get(state);

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
            "active": states.serving(),
            "expiring": count(AccountState::Expiring),
            "cooling_down": count(AccountState::CoolingDown),
            "expired": count(AccountState::Expired),
            "refresh_failed": count(AccountState::RefreshFailed),
            "needs_relogin": count(AccountState::NeedsRelogin),
            "disabled": count(AccountState::Disabled),
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

/// Sums of one group of rollup rows.
#[derive(Default, Clone, Copy)]
struct Totals {
    requests: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
}

impl Totals {
    fn add(&mut self, row: &usage_hourly::Model) {
        self.requests += row.requests;
        self.errors += row.errors;
        self.input_tokens += row.input_tokens;
        self.output_tokens += row.output_tokens;
    }
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
            return Err(AppError::new(
                ErrorCode::InvalidRequest,
                "`range` must be 24h, 7d or 30d",
            ))
        }
    };
    let now = Utc::now().timestamp();
    let last = now.div_euclid(bucket_seconds) * bucket_seconds;
    let first = last - (buckets - 1) * bucket_seconds;

    // One range scan of the rollups (at most hours x keys x accounts x models rows), summed
    // here in every grouping at once.
    let rows = usage_hourly::Entity::find()
        .filter(usage_hourly::Column::Bucket.gte(first))
        .all(&state.db)
        .await?;
    let mut series: HashMap<i64, Totals> = HashMap::new();
    let mut models: HashMap<String, Totals> = HashMap::new();
    let mut keys: HashMap<i32, Totals> = HashMap::new();
    let mut accounts: HashMap<i32, Totals> = HashMap::new();
    for row in &rows {
        series
            .entry(row.bucket.div_euclid(bucket_seconds) * bucket_seconds)
            .or_default()
            .add(row);
        models.entry(row.model.clone()).or_default().add(row);
        if row.api_key_id != 0 {
            keys.entry(row.api_key_id).or_default().add(row);
        }
        if row.account_id != 0 {
            accounts.entry(row.account_id).or_default().add(row);
        }
    }
    let key_names = key_names(&state, keys.keys().copied().collect()).await?;
    let token_emails = token_emails(&state, accounts.keys().copied().collect()).await?;

    let series: Vec<Value> = (0..buckets)
        .map(|i| {
            let ts = first + i * bucket_seconds;
            let t = series.get(&ts).copied().unwrap_or_default();
            json!({
                "ts": DateTime::from_timestamp(ts, 0),
                "requests": t.requests,
                "errors": t.errors,
                "input_tokens": t.input_tokens,
                "output_tokens": t.output_tokens,
            })
        })
        .collect();
    let mut by_model: Vec<(String, Totals)> = models.into_iter().collect();
    by_model.sort_by_key(|(name, t)| (std::cmp::Reverse(t.requests), name.clone()));
    let mut by_key: Vec<(i32, Totals)> = keys.into_iter().collect();
    by_key.sort_by_key(|(id, t)| (std::cmp::Reverse(t.requests), *id));
    let mut by_token: Vec<(i32, Totals)> = accounts.into_iter().collect();
    by_token.sort_by_key(|(id, t)| (std::cmp::Reverse(t.requests), *id));

    Ok(HttpResponse::Ok().json(json!({
        "range": range,
        "bucket": bucket_name,
        "series": series,
        "by_model": by_model.iter().map(|(model, t)| json!({
            "model": model,
            "requests": t.requests,
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
        })).collect::<Vec<_>>(),
        "by_api_key": by_key.iter().map(|(id, t)| json!({
            "api_key_id": id,
            "name": key_names.get(id),
            "requests": t.requests,
        })).collect::<Vec<_>>(),
        "by_token": by_token.iter().map(|(id, t)| json!({
            "token_id": id,
            "email": token_emails.get(id),
            "requests": t.requests,
            "errors": t.errors,
        })).collect::<Vec<_>>(),
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
    Ok(account::Entity::find()
        .filter(account::Column::Id.is_in(ids))
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
    #[serde(rename = "token_id")]
    account_id: Option<i32>,
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
            return Err(AppError::new(
                ErrorCode::InvalidRequest,
                "`status` must be success or error",
            ))
        }
    }
    if let Some(id) = query.api_key_id {
        select = select.filter(api_log::Column::ApiKeyId.eq(id));
    }
    if let Some(id) = query.account_id {
        select = select.filter(api_log::Column::AccountId.eq(id));
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
    let emails = token_emails(&state, rows.iter().filter_map(|r| r.account_id).collect()).await?;
    let data = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "created_at": r.created_at,
                "api_key_id": r.api_key_id,
                "api_key_name": r.api_key_id.and_then(|id| keys.get(&id)),
                "token_id": r.account_id,
                "token_email": r.account_id.and_then(|id| emails.get(&id).cloned().flatten()),
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
