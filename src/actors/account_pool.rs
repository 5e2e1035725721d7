//! The account pool: owns the in-memory state of every Codex account (enabled, health, expiry,
//! cooling-until, requests in flight, consecutive failures, last rate-limit snapshot) and picks
//! an account for each request by the configured strategy.
//!
//! Messages: [`Checkout`] (pick an account, answered with a [`Lease`]), [`Report`] (the outcome
//! of a request: the pool cools the account down or takes it out), [`Upsert`] / [`UpsertMany`] /
//! [`Remove`] / [`Reload`] (keep in step with the database), [`TokenRefreshed`] /
//! [`MarkNeedsRelogin`] (from the refresh scheduler), [`ApplySettings`], and [`Snapshot`] (for
//! the console). Health changes are written to the database from spawned futures, so the actor
//! never waits on it. Every message that carries rows merges a fresh row with the live state in
//! one place, `AccountPool::put_row`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::Serialize;

use super::ActorError;
use crate::codex::wire::RateLimits;
use crate::db::account::{self, AccountStatus};
use crate::settings::{RuntimeSettings, Strategy};

/// An account checked out for one request. Dropping it frees the account's slot, so a
/// cancelled or disconnected request can never leak capacity.
#[derive(Debug)]
pub struct Lease {
    pub account_id: i32,
    pub chatgpt_account_id: String,
    pub access_token: Arc<str>,
    pub proxy_url: Option<String>,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why no account could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every usable account is cooling down; the nearest one is back after this many seconds.
    #[error("every account is cooling down")]
    AllCooling { retry_after: u64 },
    /// No account is usable at all (none imported, all disabled, expired or dead).
    #[error("no account is available")]
    NoAccount,
    /// The pool did not answer.
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// What became of a request on an account.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The upstream answered; the snapshot of its rate-limit headers, if any.
    Success(Option<RateLimits>),
    /// The plan's usage limit: cool down until it resets.
    UsageLimit {
        until: DateTime<Utc>,
        message: String,
    },
    /// 5xx, 408, 429 without usage limit, overload, network: short, growing cooldown.
    Transient(String),
    /// 402/403: long cooldown.
    Forbidden(String),
    /// Still 401 after a refresh: the account is taken out until it signs in again.
    Unauthorized(String),
}

/// Picks an account, skipping `exclude` (accounts already tried for this request), and taking
/// `prefer` when it can serve (the account whose prompt cache holds the conversation).
#[derive(Message)]
#[rtype(result = "Result<Lease, PoolError>")]
pub struct Checkout {
    pub exclude: Vec<i32>,
    pub prefer: Option<i32>,
}

/// Reports the outcome of a request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report {
    pub account_id: i32,
    pub outcome: Outcome,
}

/// Adds or replaces an account from its database row.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Upsert(pub account::Model);

/// Adds or replaces many accounts at once (an import), in one message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpsertMany(pub Vec<account::Model>);

/// Takes an account out of the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove(pub i32);

/// Reloads every account from the database (start-up, and to pick up other instances' changes).
#[derive(Message)]
#[rtype(result = "Result<usize, sea_orm::DbErr>")]
pub struct Reload;

/// A refresh stored new credentials.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TokenRefreshed {
    pub account_id: i32,
    pub access_token: Arc<str>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A permanent refresh failure: the account is out until it signs in again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkNeedsRelogin {
    pub account_id: i32,
    pub reason: String,
}

/// New runtime settings.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplySettings(pub RuntimeSettings);

/// The live state of every account, for the console.
#[derive(Message)]
#[rtype(result = "Vec<AccountView>")]
pub struct Snapshot;

/// The live state of one account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub account_id: i32,
    pub available: bool,
    pub in_flight: usize,
    pub served: u64,
    pub consecutive_failures: u32,
    pub cooldown_until: Option<DateTime<Utc>>,
    pub rate_limits: Option<RateLimits>,
}

struct Account {
    id: i32,
    chatgpt_account_id: String,
    access_token: Arc<str>,
    proxy_url: Option<String>,
    enabled: bool,
    status: AccountStatus,
    expires_at: Option<DateTime<Utc>>,
    cooldown_until: Option<DateTime<Utc>>,
    consecutive_failures: u32,
    served: u64,
    in_flight: Arc<AtomicUsize>,
    rate_limits: Option<RateLimits>,
}

impl Account {
    fn from_row(row: &account::Model) -> Self {
        Self {
            id: row.id,
            chatgpt_account_id: row.chatgpt_account_id.clone(),
            access_token: Arc::from(row.access_token.as_str()),
            proxy_url: row.proxy_url.clone(),
            enabled: row.is_active && row.deleted_at.is_none(),
            status: row.status,
            expires_at: row.expires_at,
            cooldown_until: row.cooldown_until,
            consecutive_failures: 0,
            served: row.usage_count.max(0) as u64,
            in_flight: Arc::new(AtomicUsize::new(0)),
            rate_limits: row
                .rate_limits
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
        }
    }

    /// Carries the live state of the account this one replaces: requests in flight still hold
    /// the old counter, and the pool's counters are newer than the row's. The rate limits are
    /// the fresher of the two: the row's if it has any, else the live ones.
    fn keep_live(&mut self, old: Account) {
        self.in_flight = old.in_flight;
        self.served = self.served.max(old.served);
        self.consecutive_failures = old.consecutive_failures;
        if self.rate_limits.is_none() {
            self.rate_limits = old.rate_limits;
        }
    }

    /// Usable apart from cooling: enabled, signed in, not expired.
    fn usable(&self, now: DateTime<Utc>) -> bool {
        self.enabled
            && self.status != AccountStatus::NeedsRelogin
            && self.expires_at.is_none_or(|at| at > now)
    }

    fn cooling(&self, now: DateTime<Utc>) -> bool {
        self.cooldown_until.is_some_and(|until| until > now)
    }
}

/// The account pool actor.
pub struct AccountPool {
    db: DatabaseConnection,
    reload_every: Duration,
    accounts: BTreeMap<i32, Account>,
    settings: RuntimeSettings,
    /// The id handed out last by round-robin.
    cursor: Option<i32>,
    /// Opens the tokens of the rows it reads (rows in clear pass as they are).
    cipher: Option<Arc<crate::crypto::Cipher>>,
}

impl AccountPool {
    /// A pool with no accounts yet; send [`Reload`] to fill it.
    pub fn new(db: DatabaseConnection, settings: RuntimeSettings, reload_every: Duration) -> Self {
        Self {
            db,
            reload_every,
            accounts: BTreeMap::new(),
            settings,
            cursor: None,
            cipher: None,
        }
    }

    /// Opens sealed tokens with `cipher`.
    #[must_use]
    pub fn with_cipher(mut self, cipher: Arc<crate::crypto::Cipher>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Puts a fresh database row in the pool, merged with the live state of the account it
    /// replaces; a deleted row leaves the pool.
    fn put_row(&mut self, row: &account::Model) {
        let old = self.accounts.remove(&row.id);
        if row.deleted_at.is_some() {
            return;
        }
        let opened;
        let row = match &self.cipher {
            Some(cipher) => match crate::secrets::open_account(cipher, row.clone()) {
                Ok(open) => {
                    opened = open;
                    &opened
                }
                Err(e) => {
                    tracing::error!(account_id = row.id, error = %e, "cannot decrypt the account's tokens; it stays out of the pool");
                    return;
                }
            },
            None => row,
        };
        let mut fresh = Account::from_row(row);
        if let Some(old) = old {
            fresh.keep_live(old);
        }
        self.accounts.insert(row.id, fresh);
    }

    fn pick(&mut self, exclude: &[i32], prefer: Option<i32>) -> Result<Lease, PoolError> {
        let now = Utc::now();
        let excluded: HashSet<i32> = exclude.iter().copied().collect();
        let mut nearest_reset: Option<DateTime<Utc>> = None;
        let mut candidates: Vec<&Account> = Vec::new();
        for account in self.accounts.values() {
            if !account.usable(now) {
                continue;
            }
            // Accounts already tried for this request still count for the nearest reset: they
            // may have just started cooling.
            if account.cooling(now) {
                nearest_reset = match (nearest_reset, account.cooldown_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                continue;
            }
            if excluded.contains(&account.id) {
                continue;
            }
            candidates.push(account);
        }
        let preferred = prefer.and_then(|id| candidates.iter().copied().find(|a| a.id == id));
        let chosen = preferred.or_else(|| match self.settings.strategy {
            Strategy::FillFirst => candidates.first().copied(),
            Strategy::LeastUsed => candidates
                .iter()
                .copied()
                .min_by_key(|a| (a.in_flight.load(Ordering::Acquire), a.served)),
            Strategy::RoundRobin => {
                let after = self.cursor;
                candidates
                    .iter()
                    .copied()
                    .find(|a| after.is_none_or(|c| a.id > c))
                    .or_else(|| candidates.first().copied())
            }
        });
        let Some(chosen) = chosen else {
            return Err(match nearest_reset {
                Some(at) => PoolError::AllCooling {
                    retry_after: (at - now).num_seconds().max(1) as u64,
                },
                None => PoolError::NoAccount,
            });
        };
        chosen.in_flight.fetch_add(1, Ordering::AcqRel);
        let lease = Lease {
            account_id: chosen.id,
            chatgpt_account_id: chosen.chatgpt_account_id.clone(),
            access_token: chosen.access_token.clone(),
            proxy_url: chosen.proxy_url.clone(),
            in_flight: chosen.in_flight.clone(),
        };
        self.cursor = Some(chosen.id);
        Ok(lease)
    }

    /// Writes an account's health to the database. The actor goes on serving other messages
    /// meanwhile; only the reporter waits, so the change is stored before it is relied on.
    fn persist_health(&self, id: i32, message: Option<String>) -> ResponseActFuture<Self, ()> {
        let Some(account) = self.accounts.get(&id) else {
            return Box::pin(fut::ready(()));
        };
        let db = self.db.clone();
        let cooldown = account.cooldown_until;
        let status = account.status;
        let fut = async move {
            let mut update = account::Entity::update_many()
                .col_expr(account::Column::CooldownUntil, Expr::value(cooldown))
                .col_expr(account::Column::Status, Expr::value(status))
                .col_expr(account::Column::UpdatedAt, Expr::value(Utc::now()));
            if let Some(message) = message {
                update = update
                    .col_expr(account::Column::LastError, Expr::value(message))
                    .col_expr(account::Column::LastErrorAt, Expr::value(Utc::now()))
                    .col_expr(
                        account::Column::ErrorCount,
                        Expr::col(account::Column::ErrorCount).add(1),
                    );
            }
            if let Err(e) = update.filter(account::Column::Id.eq(id)).exec(&db).await {
                tracing::error!(account_id = id, error = %e, "cannot store account health");
            }
        };
        Box::pin(fut.into_actor(self))
    }
}

impl Actor for AccountPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // Other instances sharing the database change accounts too.
        ctx.run_interval(self.reload_every, |_, ctx| ctx.notify(Reload));
    }
}

impl Handler<Checkout> for AccountPool {
    type Result = Result<Lease, PoolError>;

    fn handle(&mut self, msg: Checkout, _: &mut Self::Context) -> Self::Result {
        self.pick(&msg.exclude, msg.prefer)
    }
}

impl Handler<Report> for AccountPool {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Report, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let transient_base = self.settings.transient_cooldown_seconds as i64;
        let forbidden = self.settings.forbidden_cooldown_seconds as i64;
        let Some(account) = self.accounts.get_mut(&msg.account_id) else {
            return Box::pin(fut::ready(()));
        };
        let message = match msg.outcome {
            Outcome::Success(limits) => {
                account.consecutive_failures = 0;
                account.served += 1;
                if limits.is_some() {
                    account.rate_limits = limits;
                }
                return Box::pin(fut::ready(()));
            }
            Outcome::UsageLimit { until, message } => {
                account.cooldown_until = Some(until.max(now + chrono::Duration::seconds(1)));
                message
            }
            Outcome::Transient(message) => {
                account.consecutive_failures += 1;
                let factor = 1i64 << account.consecutive_failures.saturating_sub(1).min(6);
                let seconds = (transient_base * factor).min(3600);
                account.cooldown_until = Some(now + chrono::Duration::seconds(seconds));
                message
            }
            Outcome::Forbidden(message) => {
                account.consecutive_failures += 1;
                account.cooldown_until = Some(now + chrono::Duration::seconds(forbidden));
                message
            }
            Outcome::Unauthorized(message) => {
                account.status = AccountStatus::NeedsRelogin;
                message
            }
        };
        tracing::warn!(account_id = msg.account_id, reason = %message, cooldown_until = ?account.cooldown_until, status = ?account.status, "account taken out of rotation for now");
        self.persist_health(msg.account_id, Some(message))
    }
}

impl Handler<Upsert> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: Upsert, _: &mut Self::Context) {
        self.put_row(&msg.0);
    }
}

impl Handler<UpsertMany> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: UpsertMany, _: &mut Self::Context) {
        for row in &msg.0 {
            self.put_row(row);
        }
    }
}

impl Handler<Remove> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: Remove, _: &mut Self::Context) {
        self.accounts.remove(&msg.0);
    }
}

impl Handler<Reload> for AccountPool {
    type Result = ResponseActFuture<Self, Result<usize, sea_orm::DbErr>>;

    fn handle(&mut self, _: Reload, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(
            async move {
                account::Entity::find()
                    .filter(account::Column::DeletedAt.is_null())
                    .all(&db)
                    .await
            }
            .into_actor(self)
            .map(|rows, act, _| {
                let rows = rows?;
                let ids: HashSet<i32> = rows.iter().map(|r| r.id).collect();
                act.accounts.retain(|id, _| ids.contains(id));
                let count = rows.len();
                for row in &rows {
                    act.put_row(row);
                }
                Ok(count)
            }),
        )
    }
}

impl Handler<TokenRefreshed> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: TokenRefreshed, _: &mut Self::Context) {
        if let Some(account) = self.accounts.get_mut(&msg.account_id) {
            account.access_token = msg.access_token;
            account.expires_at = msg.expires_at;
            account.status = AccountStatus::Active;
        }
    }
}

impl Handler<MarkNeedsRelogin> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: MarkNeedsRelogin, _: &mut Self::Context) {
        if let Some(account) = self.accounts.get_mut(&msg.account_id) {
            account.status = AccountStatus::NeedsRelogin;
            tracing::warn!(account_id = msg.account_id, reason = %msg.reason, "account needs a new sign-in");
        }
    }
}

impl Handler<ApplySettings> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: ApplySettings, _: &mut Self::Context) {
        self.settings = msg.0;
    }
}

impl Handler<Snapshot> for AccountPool {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        MessageResult(
            self.accounts
                .values()
                .map(|a| AccountView {
                    account_id: a.id,
                    available: a.usable(now) && !a.cooling(now),
                    in_flight: a.in_flight.load(Ordering::Acquire),
                    served: a.served,
                    consecutive_failures: a.consecutive_failures,
                    cooldown_until: a.cooldown_until.filter(|u| *u > now),
                    rate_limits: a.rate_limits.clone(),
                })
                .collect(),
        )
    }
}

/// The handlers' way to the account pool.
#[derive(Clone)]
pub struct AccountPoolHandle {
    addr: Addr<AccountPool>,
    timeout: Duration,
}

impl AccountPoolHandle {
    /// Wraps the address of a started pool.
    pub fn new(addr: Addr<AccountPool>, timeout: Duration) -> Self {
        Self { addr, timeout }
    }

    /// Checks out an account for a request.
    pub async fn checkout(
        &self,
        exclude: Vec<i32>,
        prefer: Option<i32>,
    ) -> Result<Lease, PoolError> {
        super::ask(
            &self.addr,
            Checkout { exclude, prefer },
            self.timeout,
            "account pool",
        )
        .await?
    }

    /// Reports how a request went on an account.
    pub async fn report(&self, account_id: i32, outcome: Outcome) {
        let _ = super::ask(
            &self.addr,
            Report {
                account_id,
                outcome,
            },
            self.timeout,
            "account pool",
        )
        .await;
    }

    /// Records a success without waiting: it only moves counters, so a full mailbox may drop it.
    pub fn succeeded(&self, account_id: i32, limits: Option<RateLimits>) {
        let report = Report {
            account_id,
            outcome: Outcome::Success(limits),
        };
        if self.addr.try_send(report).is_err() {
            tracing::debug!(
                account_id,
                "account pool mailbox full: success report dropped"
            );
        }
    }

    /// Adds or replaces an account.
    pub async fn upsert(&self, row: account::Model) -> Result<(), ActorError> {
        super::ask(&self.addr, Upsert(row), self.timeout, "account pool").await
    }

    /// Adds or replaces many accounts in one message (an import).
    pub async fn upsert_many(&self, rows: Vec<account::Model>) -> Result<(), ActorError> {
        super::ask(&self.addr, UpsertMany(rows), self.timeout, "account pool").await
    }

    /// Removes an account.
    pub async fn remove(&self, account_id: i32) -> Result<(), ActorError> {
        super::ask(&self.addr, Remove(account_id), self.timeout, "account pool").await
    }

    /// Reloads every account from the database.
    pub async fn reload(&self) -> Result<usize, ActorError> {
        Ok(super::ask(&self.addr, Reload, self.timeout * 5, "account pool").await??)
    }

    /// New credentials after a refresh.
    pub async fn refreshed(
        &self,
        account_id: i32,
        access_token: Arc<str>,
        expires_at: Option<DateTime<Utc>>,
    ) {
        let msg = TokenRefreshed {
            account_id,
            access_token,
            expires_at,
        };
        let _ = super::ask(&self.addr, msg, self.timeout, "account pool").await;
    }

    /// The account must sign in again.
    pub async fn needs_relogin(&self, account_id: i32, reason: String) {
        let _ = super::ask(
            &self.addr,
            MarkNeedsRelogin { account_id, reason },
            self.timeout,
            "account pool",
        )
        .await;
    }

    /// New runtime settings.
    pub async fn apply_settings(&self, settings: RuntimeSettings) {
        let _ = super::ask(
            &self.addr,
            ApplySettings(settings),
            self.timeout,
            "account pool",
        )
        .await;
    }

    /// The live state of every account.
    pub async fn snapshot(&self) -> Result<Vec<AccountView>, ActorError> {
        super::ask(&self.addr, Snapshot, self.timeout, "account pool").await
    }

    /// Whether the actor is running.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn limits(percent: f64) -> RateLimits {
        RateLimits {
            primary_used_percent: Some(percent),
            ..Default::default()
        }
    }

    /// An active account row, id 7, without expiry.
    pub(crate) fn row(rate_limits: Option<RateLimits>) -> account::Model {
        let now = Utc::now();
        account::Model {
            id: 7,
            name: None,
            email: None,
            chatgpt_account_id: "acct-7".into(),
            plan_type: None,
            access_token: "at".into(),
            refresh_token: "rt".into(),
            id_token: None,
            expires_at: None,
            last_refresh_at: None,
            is_active: true,
            status: AccountStatus::Active,
            last_error: None,
            last_error_at: None,
            error_count: 0,
            usage_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            last_used_at: None,
            cooldown_until: None,
            rate_limits: rate_limits.map(|l| serde_json::to_string(&l).unwrap()),
            proxy_url: None,
            refresh_lock_owner: None,
            refresh_lock_until: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    fn pool() -> AccountPool {
        let settings = RuntimeSettings {
            strategy: Strategy::RoundRobin,
            max_retries: 1,
            refresh_lead_seconds: 0,
            log_retention_days: 1,
            transient_cooldown_seconds: 1,
            forbidden_cooldown_seconds: 1,
        };
        AccountPool::new(
            DatabaseConnection::default(),
            settings,
            Duration::from_mins(1),
        )
    }

    #[test]
    fn a_preferred_account_is_taken_when_it_can_serve() {
        let mut pool = pool();
        for id in [7, 8, 9] {
            let mut account = row(None);
            account.id = id;
            account.chatgpt_account_id = format!("acct-{id}");
            pool.put_row(&account);
        }
        assert_eq!(pool.pick(&[], Some(9)).unwrap().account_id, 9);
        assert_eq!(pool.pick(&[], Some(9)).unwrap().account_id, 9);
        // Not when it was already tried for this request, nor when it is unknown.
        assert_ne!(pool.pick(&[9], Some(9)).unwrap().account_id, 9);
        assert!(pool.pick(&[], Some(42)).is_ok());
        // Nor while it cools down.
        pool.accounts.get_mut(&9).unwrap().cooldown_until =
            Some(Utc::now() + chrono::Duration::minutes(5));
        assert_ne!(pool.pick(&[], Some(9)).unwrap().account_id, 9);
    }

    #[test]
    fn a_fresh_row_keeps_the_live_counters_and_the_fresher_rate_limits() {
        let mut pool = pool();
        pool.put_row(&row(None));
        let lease = pool.pick(&[], None).unwrap();
        {
            let live = pool.accounts.get_mut(&7).unwrap();
            live.served = 5;
            live.consecutive_failures = 2;
            live.rate_limits = Some(limits(40.0));
        }

        pool.put_row(&row(None));
        let merged = &pool.accounts[&7];
        assert_eq!(merged.in_flight.load(Ordering::Acquire), 1);
        assert_eq!((merged.served, merged.consecutive_failures), (5, 2));
        assert_eq!(
            merged.rate_limits,
            Some(limits(40.0)),
            "live ones without fresh"
        );

        pool.put_row(&row(Some(limits(75.0))));
        assert_eq!(
            pool.accounts[&7].rate_limits,
            Some(limits(75.0)),
            "the row's are fresher"
        );

        drop(lease);
        assert_eq!(pool.accounts[&7].in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_deleted_row_leaves_the_pool() {
        let mut pool = pool();
        pool.put_row(&row(None));
        let mut deleted = row(None);
        deleted.deleted_at = Some(Utc::now());
        pool.put_row(&deleted);
        assert!(pool.accounts.is_empty());
    }
}
