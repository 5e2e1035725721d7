//! Codex accounts ("tokens" in the HTTP contract): the console's derived [`AccountState`], and
//! [`AccountService`], which owns their queries and keeps the account pool in step with every
//! change (import, update, delete) and asks the refresh scheduler for manual refreshes.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Deserializer, Serialize};

use super::{fetch_page, find_live, invalid, is_active, read, set_if, Page, PageRequest};
use crate::actors::account_pool::{AccountPoolHandle, AccountView};
use crate::actors::refresher::RefresherHandle;
use crate::changes::Change;
use crate::codex::wire::RateLimits;
use std::ops::ControlFlow;

use crate::codex::credentials::{read_credentials_file, AccountCredentials};
use crate::db::account::{self, AccountStatus};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::settings::SettingsStore;
use crate::state::AppState;

/// The console's status of an account, derived from its stored health, its expiry, its
/// cooldown and the clock. Declared in the order the console lists them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::EnumIter,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AccountState {
    /// Serving, and not expiring soon.
    Active,
    /// Serving, but the access token expires within the refresh lead.
    Expiring,
    /// The access token has expired.
    Expired,
    /// Taken out of rotation until its cooldown ends.
    CoolingDown,
    /// The last refresh failed for a transient reason.
    RefreshFailed,
    /// The refresh token is dead: the account must sign in again.
    NeedsRelogin,
    /// Switched off by an admin.
    Disabled,
}

impl AccountState {
    /// The state of `row` at `now`, with tokens expiring within `lead_seconds` as `Expiring`.
    pub fn of(row: &account::Model, lead_seconds: u64, now: DateTime<Utc>) -> Self {
        if !row.is_active {
            Self::Disabled
        } else if row.status == AccountStatus::NeedsRelogin {
            Self::NeedsRelogin
        } else if row.expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else if row.status == AccountStatus::RefreshFailed {
            Self::RefreshFailed
        } else if row.cooldown_until.is_some_and(|until| until > now) {
            Self::CoolingDown
        } else if row
            .expires_at
            .is_some_and(|at| at <= now + chrono::Duration::seconds(lead_seconds as i64))
        {
            Self::Expiring
        } else {
            Self::Active
        }
    }

    /// The contract's name (`cooling_down`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the account still serves requests (an expiring one does until it expires).
    pub fn is_serving(self) -> bool {
        matches!(self, Self::Active | Self::Expiring)
    }
}

/// How many accounts are in each [`AccountState`].
#[derive(Debug, Clone, Default)]
pub struct StateCounts(HashMap<AccountState, u64>);

impl StateCounts {
    /// Counts the states of `rows` at `now`.
    pub fn of(rows: &[account::Model], lead_seconds: u64, now: DateTime<Utc>) -> Self {
        let mut counts = HashMap::new();
        for row in rows {
            *counts
                .entry(AccountState::of(row, lead_seconds, now))
                .or_default() += 1;
        }
        Self(counts)
    }

    /// The number of accounts in `state`.
    pub fn get(&self, state: AccountState) -> u64 {
        self.0.get(&state).copied().unwrap_or(0)
    }

    /// The number of accounts that still serve requests (see [`AccountState::is_serving`]).
    pub fn serving(&self) -> u64 {
        self.0
            .iter()
            .filter(|(state, _)| state.is_serving())
            .map(|(_, n)| n)
            .sum()
    }
}

/// An account row with the state it was in when it was read.
#[derive(Debug, Clone)]
pub struct AccountEntry {
    /// The stored row (it holds the secrets: render it with care).
    pub row: account::Model,
    /// The derived console state.
    pub state: AccountState,
}

impl AccountEntry {
    /// Pairs a row with its state at `now`.
    pub fn new(row: account::Model, lead_seconds: u64, now: DateTime<Utc>) -> Self {
        Self {
            state: AccountState::of(&row, lead_seconds, now),
            row,
        }
    }
}

/// What the account list shows.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// Only accounts in this state.
    pub state: Option<AccountState>,
    /// A part of the e-mail, name or ChatGPT account id.
    pub search: Option<String>,
    /// Only accounts with either usage window at or above this percent.
    pub near_limit: Option<f64>,
    /// The order of the list (else by id).
    pub sort: Option<(AccountSort, SortOrder)>,
}

/// What the account list may be sorted by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::EnumIter, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum AccountSort {
    /// The 5-hour window's used percent.
    PrimaryUsedPercent,
    /// The weekly window's used percent.
    SecondaryUsedPercent,
    /// The soonest reset of either window.
    ResetsAt,
    /// When the access token expires.
    ExpiredAt,
    /// Failures recorded.
    ErrorCount,
    /// The last request served.
    LastUsedAt,
    /// Requests served.
    UsageCount,
}

/// Ascending or descending.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::EnumIter, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// The usage windows to show of an account: the stored ones, or the pool's when fresher.
pub fn effective_limits(row: &account::Model, live: Option<&AccountView>) -> Option<RateLimits> {
    let stored: Option<RateLimits> = row
        .rate_limits
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    match (stored, live.and_then(|l| l.rate_limits.clone())) {
        (Some(stored), Some(live)) if !live.newer_than(&stored) => Some(stored),
        (stored, live) => live.or(stored),
    }
}

/// Whether either usage window is at or above `percent`.
pub fn near_limit(limits: Option<&RateLimits>, percent: f64) -> bool {
    limits.is_some_and(|l| {
        [l.primary_used_percent, l.secondary_used_percent]
            .into_iter()
            .flatten()
            .any(|used| used >= percent)
    })
}

/// The value an account is sorted by (none sorts last, whatever the order).
fn sort_key(sort: AccountSort, row: &account::Model, limits: Option<&RateLimits>) -> Option<f64> {
    let time = |at: Option<DateTime<Utc>>| at.map(|at| at.timestamp_millis() as f64);
    match sort {
        AccountSort::PrimaryUsedPercent => limits.and_then(|l| l.primary_used_percent),
        AccountSort::SecondaryUsedPercent => limits.and_then(|l| l.secondary_used_percent),
        AccountSort::ResetsAt => time(limits.and_then(|l| {
            l.primary_resets_at
                .into_iter()
                .chain(l.secondary_resets_at)
                .min()
        })),
        AccountSort::ExpiredAt => time(row.expires_at),
        AccountSort::ErrorCount => Some(row.error_count as f64),
        AccountSort::LastUsedAt => time(row.last_used_at),
        AccountSort::UsageCount => Some(row.usage_count as f64),
    }
}

/// Sorts entries by `sort` in `order`, accounts without a value last, then by id.
pub fn sort_entries(
    entries: &mut [(AccountEntry, Option<RateLimits>)],
    sort: AccountSort,
    order: SortOrder,
) {
    entries.sort_by(|(a, la), (b, lb)| {
        let ka = sort_key(sort, &a.row, la.as_ref());
        let kb = sort_key(sort, &b.row, lb.as_ref());
        let by_value = match (ka, kb) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                if order == SortOrder::Desc {
                    o.reverse()
                } else {
                    o
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then(a.row.id.cmp(&b.row.id))
    });
}

/// What a bulk action does to each account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::EnumIter, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum BulkAction {
    Enable,
    Disable,
    Refresh,
    Probe,
    Delete,
}

/// Accounts one bulk action takes at most.
pub const MAX_BULK_IDS: usize = 200;
/// Refreshes or probes of one bulk action in flight at once.
pub const BULK_CONCURRENCY: usize = 4;

/// The outcome of a bulk action on one account.
#[derive(Debug, Clone)]
pub struct BulkResult {
    pub id: i32,
    /// The error, when the action failed on this account.
    pub error: Option<AppError>,
}

/// The changes `PATCH /admin/tokens/{id}` may make; an absent field stays as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountChanges {
    /// The display name; `null` or blank clears it.
    #[serde(default, deserialize_with = "account_name")]
    pub name: Option<Option<String>>,
    /// Whether the account is in rotation.
    #[serde(default, deserialize_with = "is_active")]
    pub is_active: Option<bool>,
}

/// Reads a display name: at most 200 characters, trimmed, blank meaning none.
fn account_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    const WHY: &str = "must be a string of at most 200 characters or null";
    match read::<_, Option<String>>(d, "name", WHY)? {
        None => Ok(Some(None)),
        Some(name) if name.chars().count() <= 200 => {
            let name = name.trim();
            Ok(Some((!name.is_empty()).then(|| name.to_string())))
        }
        Some(_) => Err(invalid("name", WHY)),
    }
}

/// One uploaded credential file (or JSON body): where it came from and its bytes.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file name, or a description such as "request body".
    pub source: String,
    /// The file's content.
    pub bytes: Bytes,
}

/// An entry of an import that was not stored, and why.
#[derive(Debug, Clone)]
pub struct ImportFailure {
    /// The file (and array position) of the entry.
    pub source: String,
    /// Why it was rejected; never holds a token.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    /// Accounts that were new (or had been deleted).
    pub imported: u64,
    /// Accounts that were already stored and got the new credentials.
    pub updated: u64,
    /// Entries that could not be read: the first [`MAX_LISTED_FAILURES`].
    pub failed: Vec<ImportFailure>,
    /// How many entries could not be read in all.
    pub failed_count: u64,
}

/// Failures listed in an import's answer at most (the rest are only counted).
pub const MAX_LISTED_FAILURES: usize = 100;

/// Queries and changes Codex accounts, keeping the account pool in step.
#[derive(Clone)]
pub struct AccountService {
    db: DatabaseConnection,
    pool: AccountPoolHandle,
    refresher: RefresherHandle,
    settings: SettingsStore,
    cipher: std::sync::Arc<crate::crypto::Cipher>,
    changes: crate::changes::Changes,
    upstream: crate::codex::client::CodexClient,
}

impl AccountService {
    /// The pool's live view of every account, by id; empty when the pool does not answer
    /// (the stored state is shown then).
    pub async fn live(&self) -> HashMap<i32, AccountView> {
        match self.pool.snapshot().await {
            Ok(snapshot) => snapshot
                .accounts
                .into_iter()
                .map(|view| (view.account_id, view))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "no live account state for the console");
                HashMap::new()
            }
        }
    }

    /// The service over the shared state's database and actors.
    pub fn new(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            pool: state.pool.clone(),
            refresher: state.refresher.clone(),
            settings: state.settings.clone(),
            cipher: state.cipher.clone(),
            changes: state.changes.clone(),
            upstream: state.upstream.clone(),
        }
    }

    /// The current refresh lead: tokens expiring within it are `Expiring`.
    fn lead_seconds(&self) -> u64 {
        self.settings.get().refresh_lead_seconds
    }

    /// Pairs rows with their state now.
    fn entries(&self, rows: Vec<account::Model>) -> Vec<AccountEntry> {
        let (lead, now) = (self.lead_seconds(), Utc::now());
        rows.into_iter()
            .map(|row| AccountEntry::new(row, lead, now))
            .collect()
    }

    /// One row with its state now.
    fn entry(&self, row: account::Model) -> AccountEntry {
        AccountEntry::new(row, self.lead_seconds(), Utc::now())
    }

    /// A page of the accounts that are not deleted, in id order unless sorted; `live` is the
    /// pool's view, whose usage windows win when fresher (for sorting and `near_limit`).
    pub async fn list(
        &self,
        filter: &AccountFilter,
        at: PageRequest,
        live: &HashMap<i32, AccountView>,
    ) -> AppResult<Page<AccountEntry>> {
        let mut select = account::Entity::find().filter(account::Column::DeletedAt.is_null());
        if let Some(q) = filter.search.as_deref() {
            select = select.filter(
                Condition::any()
                    .add(account::Column::Email.contains(q))
                    .add(account::Column::Name.contains(q))
                    .add(account::Column::ChatgptAccountId.contains(q)),
            );
        }
        let select = select.order_by_asc(account::Column::Id);
        if filter.state.is_none() && filter.near_limit.is_none() && filter.sort.is_none() {
            let page = fetch_page(select, &self.db, at).await?;
            return Ok(Page {
                rows: self.entries(page.rows),
                total: page.total,
            });
        }
        // The state and the usage windows are derived from several columns, the pool's live
        // view and the clock, so they are filtered and sorted in memory; an account pool is at
        // most thousands of rows.
        let mut all: Vec<(AccountEntry, Option<RateLimits>)> = self
            .entries(select.all(&self.db).await?)
            .into_iter()
            .filter(|entry| filter.state.is_none_or(|wanted| entry.state == wanted))
            .map(|entry| {
                let limits = effective_limits(&entry.row, live.get(&entry.row.id));
                (entry, limits)
            })
            .filter(|(_, limits)| {
                filter
                    .near_limit
                    .is_none_or(|percent| near_limit(limits.as_ref(), percent))
            })
            .collect();
        if let Some((sort, order)) = filter.sort {
            sort_entries(&mut all, sort, order);
        }
        Ok(Page {
            total: all.len() as u64,
            rows: at.slice(all.into_iter().map(|(entry, _)| entry).collect()),
        })
    }

    /// The account with this id (not deleted), with its state now.
    pub async fn get(&self, id: i32) -> AppResult<AccountEntry> {
        Ok(self.entry(self.find(id).await?))
    }

    /// Carries out `action` on each account, at most [`BULK_CONCURRENCY`] at a time; answers
    /// each account's outcome in the order of `ids`. One account's failure does not stop the
    /// others.
    pub async fn bulk(&self, ids: &[i32], action: BulkAction) -> Vec<BulkResult> {
        use futures_util::StreamExt;
        futures_util::stream::iter(ids.iter().copied())
            .map(|id| async move {
                let result = match action {
                    BulkAction::Enable | BulkAction::Disable => self
                        .update(
                            id,
                            AccountChanges {
                                is_active: Some(action == BulkAction::Enable),
                                ..AccountChanges::default()
                            },
                        )
                        .await
                        .map(|_| ()),
                    BulkAction::Refresh => self.refresh(id).await.map(|_| ()),
                    BulkAction::Probe => self.probe(id).await.map(|_| ()),
                    BulkAction::Delete => self.delete(id).await,
                };
                BulkResult {
                    id,
                    error: result.err(),
                }
            })
            .buffered(BULK_CONCURRENCY)
            .collect()
            .await
    }

    /// Tests an account now by reading its usage windows from the usage endpoint (CODEX.md §9),
    /// which spends nothing: the pool learns the windows (a reset usage limit puts the account
    /// back, a reached one cools it), and the account's last success or last error is stored.
    pub async fn probe(&self, id: i32) -> AppResult<AccountEntry> {
        let row = self.find(id).await?;
        let row = crate::secrets::open_account(&self.cipher, row).map_err(|e| {
            AppError::internal(format_args!("account {id} cannot be decrypted: {e}"))
        })?;
        let report = self
            .upstream
            .usage(
                &row.access_token,
                &row.chatgpt_account_id,
                row.proxy_url.as_deref(),
            )
            .await;
        let now = Utc::now();
        let update = account::Entity::update_many().filter(account::Column::Id.eq(id));
        let failure = match &report {
            Ok(_) => {
                update
                    .col_expr(account::Column::LastSuccessAt, Expr::value(now))
                    .exec(&self.db)
                    .await?;
                None
            }
            Err(reason) => {
                let message = format!("test failed: {reason}");
                update
                    .col_expr(account::Column::LastError, Expr::value(message.clone()))
                    .col_expr(account::Column::LastErrorAt, Expr::value(now))
                    .exec(&self.db)
                    .await?;
                Some(message)
            }
        };
        self.pool.probed(id, report);
        if let Some(message) = failure {
            return Err(AppError::upstream(message));
        }
        Ok(self.entry(self.find(id).await?))
    }

    /// The account with this id, unless it is deleted.
    async fn find(&self, id: i32) -> AppResult<account::Model> {
        find_live::<account::Entity>(&self.db, id, account::Column::DeletedAt, "account").await
    }

    /// Renames, enables or disables an account; the pool sees the change at once.
    pub async fn update(&self, id: i32, changes: AccountChanges) -> AppResult<AccountEntry> {
        let row = self.find(id).await?;
        let mut model: account::ActiveModel = row.into();
        set_if(&mut model.name, changes.name);
        set_if(&mut model.is_active, changes.is_active);
        model.updated_at = Set(Utc::now());
        let row = model.update(&self.db).await?;
        self.pool.upsert(row.clone()).await?;
        self.changes
            .publish(Change::AccountChanged { id: row.id })
            .await;
        Ok(self.entry(row))
    }

    /// Takes an account out of the pool and deletes it. The row stays so that past log rows
    /// still name the account; its secrets do not.
    pub async fn delete(&self, id: i32) -> AppResult<()> {
        let row = self.find(id).await?;
        self.pool.remove(row.id).await?;
        let mut model: account::ActiveModel = row.into();
        model.deleted_at = Set(Some(Utc::now()));
        model.access_token = Set(String::new());
        model.refresh_token = Set(String::new());
        model.id_token = Set(None);
        let row = model.update(&self.db).await?;
        self.changes
            .publish(Change::AccountDeleted { id: row.id })
            .await;
        Ok(())
    }

    /// Refreshes an account's tokens now and answers the stored result.
    pub async fn refresh(&self, id: i32) -> AppResult<AccountEntry> {
        let row = self.find(id).await?;
        match self.refresher.refresh(row.id, None).await? {
            Ok(_) => Ok(self.entry(self.find(row.id).await?)),
            Err(failure) => Err(AppError::new(ErrorCode::RefreshFailed, failure.message)),
        }
    }

    /// Every account that is not deleted (or only those of `ids`: an unknown or deleted one
    /// answers 404), with its secrets, in id order.
    pub async fn export(&self, ids: Option<&[i32]>) -> AppResult<Vec<AccountCredentials>> {
        let mut select = account::Entity::find().filter(account::Column::DeletedAt.is_null());
        if let Some(ids) = ids {
            select = select.filter(account::Column::Id.is_in(ids.iter().copied()));
        }
        let rows = select
            .order_by_asc(account::Column::Id)
            .all(&self.db)
            .await?;
        if let Some(ids) = ids {
            if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|r| r.id == **id)) {
                return Err(AppError::not_found(format!("no account with id {missing}")));
            }
        }
        let rows = rows
            .into_iter()
            .map(|row| {
                let id = row.id;
                crate::secrets::open_account(&self.cipher, row).map_err(|e| {
                    AppError::internal(format_args!("account {id} cannot be decrypted: {e}"))
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|row| AccountCredentials {
                email: row.email,
                account_id: row.chatgpt_account_id,
                plan_type: row.plan_type,
                access_token: row.access_token,
                refresh_token: row.refresh_token,
                id_token: row.id_token,
                expires_at: row.expires_at,
                last_refresh: row.last_refresh_at,
                disabled: !row.is_active,
                label: row.name,
                proxy_url: row.proxy_url,
            })
            .collect())
    }

    /// Parses the uploads and stores every account they hold, in one transaction (fast for
    /// thousands of accounts, and a database failure leaves nothing half-imported); then tells
    /// the pool about all of them in one message. Bad entries are reported, not fatal.
    /// More than `max_accounts` entries in all refuse the whole import (413
    /// `too_many_accounts`), before anything is stored.
    pub async fn import(
        &self,
        uploads: Vec<Upload>,
        max_accounts: usize,
    ) -> AppResult<ImportSummary> {
        // Parsing thousands of files is CPU work: off the async workers. Entries are read one
        // at a time; only the accounts and the first failures are kept.
        let parsed = tokio::task::spawn_blocking(move || {
            let mut summary = ImportSummary::default();
            let mut accounts = Vec::new();
            let mut seen = 0usize;
            for upload in &uploads {
                read_credentials_file(&upload.source, &upload.bytes, &mut |entry| {
                    seen += 1;
                    if seen > max_accounts {
                        return ControlFlow::Break(());
                    }
                    match entry.result {
                        Ok(account) => accounts.push(account),
                        Err(reason) => {
                            summary.failed_count += 1;
                            if summary.failed.len() < MAX_LISTED_FAILURES {
                                summary.failed.push(ImportFailure {
                                    source: entry.source,
                                    reason: reason.to_string(),
                                });
                            }
                        }
                    }
                    ControlFlow::Continue(())
                });
                if seen > max_accounts {
                    return None;
                }
            }
            Some((summary, accounts))
        })
        .await
        .map_err(|e| AppError::internal(format_args!("blocking task: {e}")))?;
        let Some((mut summary, accounts)) = parsed else {
            return Err(AppError::new(
                ErrorCode::TooManyAccounts,
                format!(
                    "the upload holds more than {max_accounts} accounts \
                     (server.import_max_accounts); split it into smaller uploads"
                ),
            ));
        };

        let mut stored = Vec::new();
        let txn = crate::db::begin_write(&self.db).await?;
        for account in accounts {
            let (row, created) = store(&txn, &self.cipher, account).await?;
            if created {
                summary.imported += 1;
            } else {
                summary.updated += 1;
            }
            stored.push(row);
        }
        txn.commit().await?;
        self.pool.upsert_many(stored).await?;
        self.changes.publish(Change::AccountsChanged).await;
        Ok(summary)
    }
}

impl AccountService {
    /// Stores an account that signed in from the console as an import stores it (found by its
    /// ChatGPT account id, created or updated); the pool has it at once. Answers the entry and
    /// whether it is new.
    pub async fn store_signed_in(
        &self,
        account: AccountCredentials,
    ) -> AppResult<(AccountEntry, bool)> {
        let txn = crate::db::begin_write(&self.db).await?;
        let (row, created) = store(&txn, &self.cipher, account).await?;
        txn.commit().await?;
        self.pool.upsert(row.clone()).await?;
        self.changes
            .publish(Change::AccountChanged { id: row.id })
            .await;
        Ok((self.entry(row), created))
    }
}

/// Inserts the account, or refreshes the stored one with the same `account_id` (a deleted one
/// comes back). Answers the row and whether it is new.
async fn store(
    db: &impl ConnectionTrait,
    cipher: &crate::crypto::Cipher,
    account: AccountCredentials,
) -> AppResult<(account::Model, bool)> {
    let now = Utc::now();
    let existing = account::Entity::find()
        .filter(account::Column::ChatgptAccountId.eq(account.account_id.as_str()))
        .one(db)
        .await?;
    let created = existing.is_none();
    let mut model = match existing {
        Some(row) => {
            let revived = row.deleted_at.is_some();
            let mut model: account::ActiveModel = row.into();
            if revived {
                model.deleted_at = Set(None);
                model.created_at = Set(now);
            }
            model
        }
        None => account::ActiveModel {
            chatgpt_account_id: Set(account.account_id.clone()),
            created_at: Set(now),
            error_count: Set(0),
            usage_count: Set(0),
            input_tokens: Set(0),
            output_tokens: Set(0),
            ..Default::default()
        },
    };
    model.email = Set(account.email);
    model.plan_type = Set(account.plan_type);
    model.access_token = Set(crate::secrets::seal(cipher, &account.access_token));
    model.refresh_token = Set(crate::secrets::seal(cipher, &account.refresh_token));
    model.id_token = Set(account
        .id_token
        .as_deref()
        .map(|t| crate::secrets::seal(cipher, t)));
    model.expires_at = Set(account.expires_at);
    model.last_refresh_at = Set(account.last_refresh);
    model.is_active = Set(!account.disabled);
    model.status = Set(AccountStatus::Active);
    model.last_error = Set(None);
    model.cooldown_until = Set(None);
    if account.label.is_some() {
        model.name = Set(account.label);
    }
    if account.proxy_url.is_some() {
        model.proxy_url = Set(account.proxy_url);
    }
    model.updated_at = Set(now);
    let row = if created {
        model.insert(db).await?
    } else {
        model.update(db).await?
    };
    Ok((row, created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn row() -> account::Model {
        let mut row = crate::actors::account_pool::tests::row(None);
        row.expires_at = Some(Utc::now() + Duration::days(10));
        row
    }

    #[test]
    fn the_state_is_derived_in_order_of_precedence() {
        let now = Utc::now();
        let lead = 3600;
        let state = |change: &dyn Fn(&mut account::Model)| {
            let mut row = row();
            change(&mut row);
            AccountState::of(&row, lead, now)
        };
        assert_eq!(state(&|_| {}), AccountState::Active);
        assert_eq!(
            state(&|r| r.expires_at = Some(now + Duration::minutes(30))),
            AccountState::Expiring
        );
        assert_eq!(
            state(&|r| r.cooldown_until = Some(now + Duration::minutes(1))),
            AccountState::CoolingDown
        );
        assert_eq!(
            state(&|r| {
                r.status = AccountStatus::RefreshFailed;
                r.cooldown_until = Some(now + Duration::minutes(1));
            }),
            AccountState::RefreshFailed
        );
        assert_eq!(
            state(&|r| {
                r.status = AccountStatus::RefreshFailed;
                r.expires_at = Some(now - Duration::minutes(1));
            }),
            AccountState::Expired
        );
        assert_eq!(
            state(&|r| {
                r.status = AccountStatus::NeedsRelogin;
                r.expires_at = Some(now - Duration::minutes(1));
            }),
            AccountState::NeedsRelogin
        );
        assert_eq!(
            state(&|r| {
                r.is_active = false;
                r.status = AccountStatus::NeedsRelogin;
            }),
            AccountState::Disabled
        );
    }

    #[test]
    fn states_have_the_contract_names() {
        use strum::IntoEnumIterator;
        let names: Vec<&str> = AccountState::iter().map(AccountState::as_str).collect();
        assert_eq!(
            names,
            [
                "active",
                "expiring",
                "expired",
                "cooling_down",
                "refresh_failed",
                "needs_relogin",
                "disabled"
            ]
        );
        for state in AccountState::iter() {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(state.as_str().parse::<AccountState>().ok(), Some(state));
        }
    }

    #[test]
    fn counts_add_expiring_accounts_to_the_serving_ones() {
        let now = Utc::now();
        let mut expiring = row();
        expiring.expires_at = Some(now + Duration::minutes(5));
        let mut disabled = row();
        disabled.is_active = false;
        let counts = StateCounts::of(&[row(), expiring, disabled], 3600, now);
        assert_eq!(counts.get(AccountState::Active), 1);
        assert_eq!(counts.get(AccountState::Expiring), 1);
        assert_eq!(counts.get(AccountState::Disabled), 1);
        assert_eq!(counts.get(AccountState::Expired), 0);
        assert_eq!(counts.serving(), 2);
    }

    #[test]
    fn accounts_sort_with_the_unknown_last_in_either_order() {
        let limits = |p: Option<f64>, s: Option<f64>| RateLimits {
            primary_used_percent: p,
            secondary_used_percent: s,
            ..RateLimits::default()
        };
        let entry = |id: i32, errors: i64| {
            let mut row = row();
            row.id = id;
            row.error_count = errors;
            AccountEntry::new(row, 3600, Utc::now())
        };
        let mut entries = vec![
            (entry(1, 5), Some(limits(Some(10.0), Some(90.0)))),
            (entry(2, 0), None),
            (entry(3, 5), Some(limits(Some(50.0), Some(20.0)))),
            (entry(4, 1), Some(limits(None, Some(55.0)))),
        ];
        let ids = |e: &[(AccountEntry, Option<RateLimits>)]| -> Vec<i32> {
            e.iter().map(|(a, _)| a.row.id).collect()
        };
        sort_entries(
            &mut entries,
            AccountSort::SecondaryUsedPercent,
            SortOrder::Desc,
        );
        assert_eq!(ids(&entries), [1, 4, 3, 2]);
        sort_entries(
            &mut entries,
            AccountSort::SecondaryUsedPercent,
            SortOrder::Asc,
        );
        assert_eq!(ids(&entries), [3, 4, 1, 2]);
        sort_entries(
            &mut entries,
            AccountSort::PrimaryUsedPercent,
            SortOrder::Desc,
        );
        assert_eq!(ids(&entries), [3, 1, 2, 4]);
        sort_entries(&mut entries, AccountSort::ErrorCount, SortOrder::Desc);
        assert_eq!(ids(&entries), [1, 3, 4, 2], "ties by id");
        assert!(near_limit(Some(&limits(Some(10.0), Some(80.0))), 80.0));
        assert!(!near_limit(Some(&limits(Some(79.9), None)), 80.0));
        assert!(!near_limit(None, 80.0));
    }

    #[test]
    fn an_account_name_may_be_cleared() {
        let read = |body| serde_json::from_value::<AccountChanges>(body).map_err(|e| e.to_string());
        let blank = read(serde_json::json!({"name": "  "})).unwrap();
        assert_eq!(blank.name, Some(None));
        let named = read(serde_json::json!({"name": " work ", "is_active": false})).unwrap();
        assert_eq!(named.name, Some(Some("work".to_string())));
        assert_eq!(named.is_active, Some(false));
        let long = read(serde_json::json!({"name": "x".repeat(201)})).unwrap_err();
        assert!(
            long.starts_with("`name` must be a string of at most 200"),
            "{long}"
        );
        let other = read(serde_json::json!({"email": "a@b"})).unwrap_err();
        assert!(other.contains("unknown field `email`"), "{other}");
    }
}
