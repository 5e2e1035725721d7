//! Statistics and the request log: [`StatsService`] counts from the log rows and their hourly
//! rollups (kept in the same transaction), never estimates, and pages through the log.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, Func, LikeExpr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Select,
};

use super::accounts::StateCounts;
use super::{fetch_page, Page, PageRequest};
use crate::db::{account, api_key, api_log, usage_hourly};
use crate::error::AppResult;
use crate::request_log::Attempt;
use crate::settings::SettingsStore;
use crate::state::AppState;

/// Sums of requests, errors and tokens.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Requests.
    pub requests: i64,
    /// Requests answered with a status of 400 or more.
    pub errors: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Of those, input tokens the upstream's prompt cache held.
    pub cached_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
}

impl Totals {
    fn add(&mut self, row: &usage_hourly::Model) {
        self.requests += row.requests;
        self.errors += row.errors;
        self.input_tokens += row.input_tokens;
        self.cached_tokens += row.cached_tokens;
        self.output_tokens += row.output_tokens;
    }

    /// The share of input tokens the prompt cache held, when there was input.
    pub fn cached_share(&self) -> Option<f64> {
        (self.input_tokens > 0).then(|| self.cached_tokens as f64 / self.input_tokens as f64)
    }
}

/// The same sums as SQL answers them (`NULL` over no rows).
#[derive(FromQueryResult, Default)]
struct Sums {
    requests: Option<i64>,
    errors: Option<i64>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

impl From<Sums> for Totals {
    fn from(s: Sums) -> Self {
        Self {
            requests: s.requests.unwrap_or(0),
            errors: s.errors.unwrap_or(0),
            input_tokens: s.input_tokens.unwrap_or(0),
            cached_tokens: 0,
            output_tokens: s.output_tokens.unwrap_or(0),
        }
    }
}

/// The dashboard's figures.
#[derive(Debug, Clone)]
pub struct Overview {
    /// API keys that are not deleted.
    pub keys_total: u64,
    /// Of those, the enabled ones.
    pub keys_active: u64,
    /// Accounts that are not deleted.
    pub accounts_total: u64,
    /// Those accounts by state.
    pub accounts: StateCounts,
    /// Over the last 24 hours, from the log rows.
    pub last_24h: Totals,
    /// Since the start, from the rollups.
    pub all_time: Totals,
    /// Seconds since this instance started.
    pub uptime_seconds: u64,
}

/// The span of the usage charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
pub enum UsageRange {
    /// 24 hourly buckets.
    #[strum(serialize = "24h")]
    Day,
    /// 7 daily buckets.
    #[strum(serialize = "7d")]
    Week,
    /// 30 daily buckets.
    #[strum(serialize = "30d")]
    Month,
}

impl UsageRange {
    /// The contract's name: `24h`, `7d` or `30d`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The bucket's length in seconds, and how many buckets the range has.
    fn buckets(self) -> (i64, i64) {
        match self {
            Self::Day => (3600, 24),
            Self::Week => (86_400, 7),
            Self::Month => (86_400, 30),
        }
    }

    /// The bucket's name: `hour` or `day`.
    pub fn bucket_name(self) -> &'static str {
        match self {
            Self::Day => "hour",
            Self::Week | Self::Month => "day",
        }
    }
}

/// The usage of one API key over a range.
#[derive(Debug, Clone)]
pub struct KeyUsage {
    /// The key's id.
    pub api_key_id: i32,
    /// Its name, if the key still exists.
    pub name: Option<String>,
    /// Its sums.
    pub totals: Totals,
}

/// The usage of one account over a range.
#[derive(Debug, Clone)]
pub struct AccountUsage {
    /// The account's id.
    pub account_id: i32,
    /// Its e-mail (else its name), if known.
    pub email: Option<String>,
    /// Its sums.
    pub totals: Totals,
}

/// The usage charts of a range, each list busiest first.
#[derive(Debug, Clone)]
pub struct Usage {
    /// Every bucket of the range, oldest first, with its start.
    pub series: Vec<(DateTime<Utc>, Totals)>,
    /// By model.
    pub by_model: Vec<(String, Totals)>,
    /// By API key.
    pub by_key: Vec<KeyUsage>,
    /// By account.
    pub by_account: Vec<AccountUsage>,
}

/// Which log rows the log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum LogOutcome {
    /// Status below 400.
    Success,
    /// Status 400 or more.
    Error,
}

/// The filters of the request log; each is optional.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Successes or errors only.
    pub outcome: Option<LogOutcome>,
    /// Only this API key's requests.
    pub api_key_id: Option<i32>,
    /// Only this account's requests.
    pub account_id: Option<i32>,
    /// Only this model.
    pub model: Option<String>,
    /// From this time on.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only the request with this id (the `x-request-id` its client received).
    pub request_id: Option<String>,
    /// A part of the error message, the model, the key's name or the account's e-mail (any
    /// case; at most [`MAX_SEARCH_CHARS`]).
    pub search: Option<String>,
}

/// The longest search term of the log.
pub const MAX_SEARCH_CHARS: usize = 200;

/// Rows the CSV export reads from the database at a time.
const EXPORT_PAGE: u64 = 500;

/// `term` as a `LIKE` pattern that matches it anywhere, its `%`, `_` and `\` taken literally
/// (with `ESCAPE '\'`), lower-cased for a comparison in any case.
pub fn like_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `LOWER(column) LIKE pattern ESCAPE '\'` on any engine.
fn lower_like(column: impl sea_orm::sea_query::IntoColumnRef, pattern: &str) -> SimpleExpr {
    Expr::expr(Func::lower(Expr::col(column))).like(LikeExpr::new(pattern).escape('\\'))
}

/// A log row with the names of its key and account.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// The stored row.
    pub row: api_log::Model,
    /// The API key's name, if it had one that still exists.
    pub api_key_name: Option<String>,
    /// The account's e-mail (else name), if known.
    pub account_email: Option<String>,
    /// The upstream attempts, in order, with each account's e-mail (else name).
    pub attempts: Vec<(Attempt, Option<String>)>,
}

/// The attempts a row keeps (none for rows written before they were kept, or unreadable).
fn attempts_of(row: &api_log::Model) -> Vec<Attempt> {
    row.attempts
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// Counts requests, keys and accounts, and pages through the request log.
#[derive(Clone)]
pub struct StatsService {
    db: DatabaseConnection,
    settings: SettingsStore,
    metrics: crate::metrics::Metrics,
    started_at: Instant,
}

impl StatsService {
    /// The service over the shared state's database and settings.
    pub fn new(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            settings: state.settings.clone(),
            metrics: state.metrics.clone(),
            started_at: state.started_at,
        }
    }

    /// How served requests of conversations found their pins since this instance started:
    /// (went back to the pinned account, moved, had no pin).
    pub fn affinity(&self) -> (u64, u64, u64) {
        self.metrics.affinity_counts()
    }

    /// The dashboard's figures now.
    pub async fn overview(&self) -> AppResult<Overview> {
        let db = &self.db;
        let keys = api_key::Entity::find().filter(api_key::Column::DeletedAt.is_null());
        let keys_total = keys.clone().count(db).await?;
        let keys_active = keys
            .filter(api_key::Column::IsActive.eq(true))
            .count(db)
            .await?;

        let accounts = account::Entity::find()
            .filter(account::Column::DeletedAt.is_null())
            .all(db)
            .await?;
        let lead = self.settings.get().refresh_lead_seconds;

        let since = Utc::now() - Duration::hours(24);
        let last_24h: Sums = api_log::Entity::find()
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
        let all_time: Sums = usage_hourly::Entity::find()
            .select_only()
            .column_as(total("requests"), "requests")
            .column_as(total("errors"), "errors")
            .column_as(total("input_tokens"), "input_tokens")
            .column_as(total("output_tokens"), "output_tokens")
            .into_model::<Sums>()
            .one(db)
            .await?
            .unwrap_or_default();

        Ok(Overview {
            keys_total,
            keys_active,
            accounts_total: accounts.len() as u64,
            accounts: StateCounts::of(&accounts, lead, Utc::now()),
            last_24h: last_24h.into(),
            all_time: all_time.into(),
            uptime_seconds: self.started_at.elapsed().as_secs(),
        })
    }

    /// The usage charts of `range`, ending with the bucket that holds now.
    pub async fn usage(&self, range: UsageRange) -> AppResult<Usage> {
        let (bucket_seconds, buckets) = range.buckets();
        let now = Utc::now().timestamp();
        let last = now.div_euclid(bucket_seconds) * bucket_seconds;
        let first = last - (buckets - 1) * bucket_seconds;

        // One range scan of the rollups (at most hours x keys x accounts x models rows), summed
        // here in every grouping at once.
        let rows = usage_hourly::Entity::find()
            .filter(usage_hourly::Column::Bucket.gte(first))
            .all(&self.db)
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
        let mut key_names = self.key_names(keys.keys().copied().collect()).await?;
        let mut emails = self
            .account_emails(accounts.keys().copied().collect())
            .await?;

        let series = (0..buckets)
            .filter_map(|i| {
                let ts = first + i * bucket_seconds;
                let totals = series.get(&ts).copied().unwrap_or_default();
                DateTime::from_timestamp(ts, 0).map(|at| (at, totals))
            })
            .collect();
        let mut by_model: Vec<(String, Totals)> = models.into_iter().collect();
        by_model.sort_by_key(|(name, t)| (std::cmp::Reverse(t.requests), name.clone()));
        let mut by_key: Vec<KeyUsage> = keys
            .into_iter()
            .map(|(id, totals)| KeyUsage {
                api_key_id: id,
                name: key_names.remove(&id),
                totals,
            })
            .collect();
        by_key.sort_by_key(|k| (std::cmp::Reverse(k.totals.requests), k.api_key_id));
        let mut by_account: Vec<AccountUsage> = accounts
            .into_iter()
            .map(|(id, totals)| AccountUsage {
                account_id: id,
                email: emails.remove(&id).flatten(),
                totals,
            })
            .collect();
        by_account.sort_by_key(|a| (std::cmp::Reverse(a.totals.requests), a.account_id));
        Ok(Usage {
            series,
            by_model,
            by_key,
            by_account,
        })
    }

    /// The log rows `filter` selects, in no order.
    fn filtered(filter: &LogFilter) -> Select<api_log::Entity> {
        let mut select = api_log::Entity::find();
        match filter.outcome {
            None => {}
            Some(LogOutcome::Success) => {
                select = select.filter(api_log::Column::StatusCode.lt(400));
            }
            Some(LogOutcome::Error) => select = select.filter(api_log::Column::StatusCode.gte(400)),
        }
        if let Some(id) = filter.api_key_id {
            select = select.filter(api_log::Column::ApiKeyId.eq(id));
        }
        if let Some(id) = filter.account_id {
            select = select.filter(api_log::Column::AccountId.eq(id));
        }
        if let Some(model) = filter.model.as_deref() {
            select = select.filter(api_log::Column::Model.eq(model));
        }
        if let Some(since) = filter.since {
            select = select.filter(api_log::Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            select = select.filter(api_log::Column::CreatedAt.lt(until));
        }
        if let Some(id) = filter.request_id.as_deref() {
            select = select.filter(api_log::Column::RequestId.eq(id));
        }
        if let Some(term) = filter.search.as_deref() {
            let pattern = like_pattern(term);
            let keys = Query::select()
                .column(api_key::Column::Id)
                .from(api_key::Entity)
                .and_where(lower_like(
                    (api_key::Entity, api_key::Column::Name),
                    &pattern,
                ))
                .to_owned();
            let accounts = Query::select()
                .column(account::Column::Id)
                .from(account::Entity)
                .and_where(lower_like(
                    (account::Entity, account::Column::Email),
                    &pattern,
                ))
                .to_owned();
            select = select.filter(
                Condition::any()
                    .add(lower_like(
                        (api_log::Entity, api_log::Column::ErrorMessage),
                        &pattern,
                    ))
                    .add(lower_like(
                        (api_log::Entity, api_log::Column::Model),
                        &pattern,
                    ))
                    .add(api_log::Column::ApiKeyId.in_subquery(keys))
                    .add(api_log::Column::AccountId.in_subquery(accounts)),
            );
        }
        select
    }

    /// A page of the request log, newest first.
    pub async fn logs(&self, filter: &LogFilter, at: PageRequest) -> AppResult<Page<LogEntry>> {
        let select = Self::filtered(filter).order_by_desc(api_log::Column::Id);
        let page = fetch_page(select, &self.db, at).await?;
        let rows = self.entries(page.rows).await?;
        Ok(Page {
            rows,
            total: page.total,
        })
    }

    /// The rows `filter` selects, newest first, [`EXPORT_PAGE`] at a time: only one page is
    /// in memory, however many rows match. Each batch is read after `before` (the last id
    /// seen); an empty batch ends.
    pub async fn log_batch(
        &self,
        filter: &LogFilter,
        before: Option<i64>,
    ) -> AppResult<Vec<LogEntry>> {
        let mut select = Self::filtered(filter);
        if let Some(id) = before {
            select = select.filter(api_log::Column::Id.lt(id));
        }
        let rows = select
            .order_by_desc(api_log::Column::Id)
            .limit(EXPORT_PAGE)
            .all(&self.db)
            .await?;
        self.entries(rows).await
    }

    /// The account's last `limit` log rows, newest first.
    pub async fn account_logs(&self, account_id: i32, limit: u64) -> AppResult<Vec<LogEntry>> {
        let rows = api_log::Entity::find()
            .filter(api_log::Column::AccountId.eq(account_id))
            .order_by_desc(api_log::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        self.entries(rows).await
    }

    /// The account's sums since `since`, from the hourly rollups (whole hours).
    pub async fn account_totals(&self, account_id: i32, since: DateTime<Utc>) -> AppResult<Totals> {
        let bucket = since.timestamp().div_euclid(3600) * 3600;
        let rows = usage_hourly::Entity::find()
            .filter(usage_hourly::Column::AccountId.eq(account_id))
            .filter(usage_hourly::Column::Bucket.gte(bucket))
            .all(&self.db)
            .await?;
        let mut totals = Totals::default();
        for row in &rows {
            totals.add(row);
        }
        Ok(totals)
    }

    /// The rows with the names of their keys and the e-mails of their accounts (those of their
    /// attempts too).
    async fn entries(&self, rows: Vec<api_log::Model>) -> AppResult<Vec<LogEntry>> {
        let keys = self
            .key_names(rows.iter().filter_map(|r| r.api_key_id).collect())
            .await?;
        let mut ids: Vec<i32> = rows.iter().filter_map(|r| r.account_id).collect();
        let attempts: Vec<Vec<Attempt>> = rows.iter().map(attempts_of).collect();
        ids.extend(attempts.iter().flatten().map(|a| a.token_id));
        ids.sort_unstable();
        ids.dedup();
        let emails = self.account_emails(ids).await?;
        let email = |id: i32| emails.get(&id).cloned().flatten();
        Ok(rows
            .into_iter()
            .zip(attempts)
            .map(|(row, attempts)| LogEntry {
                api_key_name: row.api_key_id.and_then(|id| keys.get(&id).cloned()),
                account_email: row.account_id.and_then(email),
                attempts: attempts
                    .into_iter()
                    .map(|a| {
                        let e = email(a.token_id);
                        (a, e)
                    })
                    .collect(),
                row,
            })
            .collect())
    }

    /// The names of these API keys (deleted ones too).
    async fn key_names(&self, ids: Vec<i32>) -> AppResult<HashMap<i32, String>> {
        self.labels::<api_key::Entity, _>(ids, api_key::Column::Id, |k| (k.id, k.name))
            .await
    }

    /// The e-mail (else the name) of these accounts (deleted ones too).
    async fn account_emails(&self, ids: Vec<i32>) -> AppResult<HashMap<i32, Option<String>>> {
        self.labels::<account::Entity, _>(ids, account::Column::Id, |a| (a.id, a.email.or(a.name)))
            .await
    }

    /// A label of each row of `E` with one of these ids, by id.
    async fn labels<E, V>(
        &self,
        ids: Vec<i32>,
        id_column: E::Column,
        label: impl Fn(E::Model) -> (i32, V),
    ) -> AppResult<HashMap<i32, V>>
    where
        E: EntityTrait,
    {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(E::find()
            .filter(id_column.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(label)
            .collect())
    }
}

/// `SUM(column)` as a 64-bit integer on every engine (PostgreSQL sums bigints as numeric).
fn total(column: &str) -> SimpleExpr {
    Expr::cust(format!("CAST(SUM({column}) AS BIGINT)"))
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn a_search_term_is_taken_literally() {
        assert_eq!(like_pattern("Gpt-5"), "%gpt-5%");
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}
