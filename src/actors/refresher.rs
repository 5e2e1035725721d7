//! The refresh scheduler: refreshes access tokens ahead of expiry and on demand after a 401.
//!
//! Exactly one refresh per account is in flight: concurrent askers wait for and share its
//! result, and across instances a lease column in the database (`refresh_lock_*`) does the same.
//! The rotated refresh token is committed to the database before the new access token is handed
//! to anyone. Permanent failures mark the account `needs_relogin`; transient ones retry with
//! back-off, then again at a later tick, and the pool hears of them (an account whose token was
//! refused then cools down).
//!
//! Messages: [`RefreshNow`] (answered when the refresh is done), [`RefreshInBackground`] (a
//! refresh nobody waits for: after a 401 the request moves on to another account),
//! [`ApplySettings`], and a timer tick the actor sends itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::oneshot;

use super::account_pool::AccountPoolHandle;
use super::webhooks::{EventKind, Subject, WebhookHandle};
use super::ActorError;
use crate::codex::client::{CodexClient, RefreshError};
use crate::codex::credentials::{access_token_expiry, id_token_info};
use crate::db::account;
use crate::db::account::AccountStatus;
use crate::settings::RuntimeSettings;

/// How long one instance may hold an account's refresh lease: longer than three tries of 30 s
/// each with their back-off.
const LEASE: Duration = Duration::from_secs(150);
/// Back-off between transient failures within one refresh.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
/// After a transient failure, the scheduler leaves the account alone this long.
const RETRY_LATER: chrono::Duration = chrono::Duration::minutes(5);
/// The Codex CLI refreshes tokens whose last refresh is older than this.
const MAX_REFRESH_AGE: chrono::Duration = chrono::Duration::days(8);

/// New credentials of an account.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub access_token: Arc<str>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A failed refresh.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RefreshFailure {
    /// The account must sign in again.
    pub permanent: bool,
    /// Safe to show to the admin (never contains a token).
    pub message: String,
}

impl RefreshFailure {
    fn transient(message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            message: message.into(),
        }
    }
}

/// Refreshes an account now, or joins the refresh already in flight. `stale_access_token`, when
/// given, is the token that the upstream just refused: if the stored one already differs, it is
/// returned without refreshing again.
#[derive(Message)]
#[rtype(result = "Result<Refreshed, RefreshFailure>")]
pub struct RefreshNow {
    pub account_id: i32,
    pub stale_access_token: Option<Arc<str>>,
}

/// Starts a refresh of an account (or leaves the one in flight alone) without waiting for it;
/// [`RefreshNow`] joins it later when someone must wait after all.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RefreshInBackground {
    pub account_id: i32,
    pub stale_access_token: Option<Arc<str>>,
}

/// New runtime settings (the refresh lead time).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplySettings(pub RuntimeSettings);

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

type Waiters = Vec<oneshot::Sender<Result<Refreshed, RefreshFailure>>>;

/// The refresh scheduler actor.
pub struct Refresher {
    db: DatabaseConnection,
    client: CodexClient,
    pool: AccountPoolHandle,
    settings: RuntimeSettings,
    interval: Duration,
    instance: Arc<str>,
    in_flight: HashMap<i32, Waiters>,
    /// Seals the tokens it stores and opens those it reads.
    cipher: Option<Arc<crate::crypto::Cipher>>,
    /// Tells the webhooks of accounts that need a new sign-in or keep failing to refresh.
    notifier: WebhookHandle,
    /// Account id -> refreshes failed in a row (transiently); at most one entry per account.
    failures: HashMap<i32, u32>,
}

impl Refresher {
    /// A scheduler that looks for tokens to refresh every `interval`.
    pub fn new(
        db: DatabaseConnection,
        client: CodexClient,
        pool: AccountPoolHandle,
        settings: RuntimeSettings,
        interval: Duration,
    ) -> Self {
        Self {
            db,
            client,
            pool,
            settings,
            interval,
            instance: Arc::from(uuid::Uuid::new_v4().to_string()),
            in_flight: HashMap::new(),
            cipher: None,
            notifier: WebhookHandle::default(),
            failures: HashMap::new(),
        }
    }

    /// Tells `notifier` of accounts that need a new sign-in or keep failing to refresh.
    #[must_use]
    pub fn with_notifier(mut self, notifier: WebhookHandle) -> Self {
        self.notifier = notifier;
        self
    }

    /// Counts a refresh's outcome; `refresh_failures` transient failures in a row fire
    /// `account.refresh_failed`.
    fn count_outcome(&mut self, account_id: i32, result: &Result<Refreshed, RefreshFailure>) {
        match result {
            Err(e) if !e.permanent => {
                let count = self.failures.entry(account_id).or_default();
                *count += 1;
                if *count >= self.notifier.refresh_failures {
                    self.notifier.emit(
                        EventKind::RefreshFailed,
                        Subject::Account(account_id),
                        serde_json::json!({
                            "account_id": account_id,
                            "consecutive_failures": *count,
                            "reason": e.message,
                        }),
                    );
                }
            }
            _ => {
                self.failures.remove(&account_id);
            }
        }
    }

    /// Seals stored tokens with `cipher` (and opens them with it).
    #[must_use]
    pub fn with_cipher(mut self, cipher: Arc<crate::crypto::Cipher>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Joins the refresh of `account_id` in flight, or starts one. Presence in `in_flight` means
    /// a refresh is running (a scheduled one may have no waiters).
    fn join_or_start(
        &mut self,
        ctx: &mut Context<Self>,
        account_id: i32,
        stale: Option<Arc<str>>,
        waiter: Option<oneshot::Sender<Result<Refreshed, RefreshFailure>>>,
    ) {
        if let Some(waiters) = self.in_flight.get_mut(&account_id) {
            waiters.extend(waiter);
            return;
        }
        self.in_flight
            .insert(account_id, waiter.into_iter().collect());
        let job = RefreshJob {
            db: self.db.clone(),
            client: self.client.clone(),
            pool: self.pool.clone(),
            instance: self.instance.clone(),
            account_id,
            stale,
            cipher: self.cipher.clone(),
            notifier: self.notifier.clone(),
        };
        ctx.spawn(job.run().into_actor(self).map(move |result, act, _| {
            act.count_outcome(account_id, &result);
            for tx in act.in_flight.remove(&account_id).unwrap_or_default() {
                let _ = tx.send(result.clone());
            }
        }));
    }
}

impl Actor for Refresher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.notify(Tick);
        ctx.run_interval(self.interval, |_, ctx| ctx.notify(Tick));
    }
}

impl Handler<RefreshNow> for Refresher {
    type Result = ResponseFuture<Result<Refreshed, RefreshFailure>>;

    fn handle(&mut self, msg: RefreshNow, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.join_or_start(ctx, msg.account_id, msg.stale_access_token, Some(tx));
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(RefreshFailure::transient("the refresh was cancelled")))
        })
    }
}

impl Handler<RefreshInBackground> for Refresher {
    type Result = ();

    fn handle(&mut self, msg: RefreshInBackground, ctx: &mut Self::Context) {
        self.join_or_start(ctx, msg.account_id, msg.stale_access_token, None);
    }
}

impl Handler<ApplySettings> for Refresher {
    type Result = ();

    fn handle(&mut self, msg: ApplySettings, _: &mut Self::Context) {
        self.settings = msg.0;
    }
}

impl Handler<Tick> for Refresher {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        let db = self.db.clone();
        let now = Utc::now();
        let horizon = now + chrono::Duration::seconds(self.settings.refresh_lead_seconds as i64);
        let due = async move {
            account::Entity::find()
                .select_only()
                .column(account::Column::Id)
                .filter(account::Column::DeletedAt.is_null())
                .filter(account::Column::IsActive.eq(true))
                .filter(account::Column::Status.ne(AccountStatus::NeedsRelogin))
                .filter(
                    Condition::any()
                        .add(account::Column::ExpiresAt.lt(horizon))
                        .add(account::Column::LastRefreshAt.lt(now - MAX_REFRESH_AGE)),
                )
                .filter(
                    Condition::any()
                        .add(account::Column::Status.ne(AccountStatus::RefreshFailed))
                        .add(account::Column::LastErrorAt.is_null())
                        .add(account::Column::LastErrorAt.lt(now - RETRY_LATER)),
                )
                .into_tuple::<i32>()
                .all(&db)
                .await
        };
        ctx.spawn(due.into_actor(self).map(|due, act, ctx| match due {
            Ok(ids) => {
                for id in ids {
                    act.join_or_start(ctx, id, None, None);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot look for tokens to refresh"),
        }));
    }
}

/// One account's refresh, run outside the actor.
struct RefreshJob {
    db: DatabaseConnection,
    client: CodexClient,
    pool: AccountPoolHandle,
    instance: Arc<str>,
    account_id: i32,
    stale: Option<Arc<str>>,
    cipher: Option<Arc<crate::crypto::Cipher>>,
    notifier: WebhookHandle,
}

impl RefreshJob {
    async fn run(self) -> Result<Refreshed, RefreshFailure> {
        let id = self.account_id;
        if !self.acquire_lease().await? {
            return self.wait_for_other_instance().await;
        }
        let result = self.refresh_with_lease().await;
        if let Err(e) = self.release_lease().await {
            tracing::error!(account_id = id, error = %e, "cannot release the refresh lease");
        }
        match &result {
            Ok(_) => tracing::info!(account_id = id, "token refreshed"),
            Err(e) => {
                tracing::warn!(account_id = id, permanent = e.permanent, reason = %e.message, "token refresh failed");
                if !e.permanent {
                    self.pool.refresh_failed(id, e.message.clone());
                }
            }
        }
        result
    }

    async fn acquire_lease(&self) -> Result<bool, RefreshFailure> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let result = account::Entity::update_many()
            .col_expr(
                account::Column::RefreshLockOwner,
                Expr::value(self.instance.to_string()),
            )
            .col_expr(account::Column::RefreshLockUntil, Expr::value(until))
            .filter(account::Column::Id.eq(self.account_id))
            .filter(account::Column::DeletedAt.is_null())
            .filter(
                Condition::any()
                    .add(account::Column::RefreshLockUntil.is_null())
                    .add(account::Column::RefreshLockUntil.lt(now)),
            )
            .exec(&self.db)
            .await
            .map_err(|e| db_failure(&e))?;
        Ok(result.rows_affected == 1)
    }

    async fn release_lease(&self) -> Result<(), sea_orm::DbErr> {
        account::Entity::update_many()
            .col_expr(
                account::Column::RefreshLockOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                account::Column::RefreshLockUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(account::Column::Id.eq(self.account_id))
            .filter(account::Column::RefreshLockOwner.eq(self.instance.to_string()))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Another instance holds the lease: wait for it to finish and use what it stored.
    async fn wait_for_other_instance(&self) -> Result<Refreshed, RefreshFailure> {
        let deadline = tokio::time::Instant::now() + LEASE;
        loop {
            let row = self.load().await?;
            let released = row
                .refresh_lock_until
                .is_none_or(|until| until < Utc::now());
            if released {
                if row.status == AccountStatus::NeedsRelogin {
                    return Err(RefreshFailure {
                        permanent: true,
                        message: row
                            .last_error
                            .unwrap_or_else(|| "the account must sign in again".into()),
                    });
                }
                return Ok(self.adopt_stored(&row).await);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(RefreshFailure::transient(
                    "another instance is still refreshing this account",
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn load(&self) -> Result<account::Model, RefreshFailure> {
        account::Entity::find_by_id(self.account_id)
            .one(&self.db)
            .await
            .map_err(|e| db_failure(&e))?
            .filter(|row| row.deleted_at.is_none())
            .ok_or_else(|| RefreshFailure {
                permanent: true,
                message: "the account was deleted".into(),
            })
            .and_then(|row| match &self.cipher {
                Some(cipher) => crate::secrets::open_account(cipher, row).map_err(|e| {
                    RefreshFailure::transient(format!("cannot decrypt the account's tokens: {e}"))
                }),
                None => Ok(row),
            })
    }

    /// A token as its column stores it.
    fn sealed(&self, token: &str) -> String {
        match &self.cipher {
            Some(cipher) => crate::secrets::seal(cipher, token),
            None => token.to_owned(),
        }
    }

    /// Uses the credentials already stored (refreshed by someone else) and tells the pool.
    async fn adopt_stored(&self, row: &account::Model) -> Refreshed {
        let refreshed = Refreshed {
            access_token: Arc::from(row.access_token.as_str()),
            expires_at: row.expires_at,
        };
        self.pool
            .refreshed(
                self.account_id,
                refreshed.access_token.clone(),
                refreshed.expires_at,
            )
            .await;
        refreshed
    }

    async fn refresh_with_lease(&self) -> Result<Refreshed, RefreshFailure> {
        let row = self.load().await?;
        if let Some(stale) = &self.stale {
            if row.access_token.as_str() != &**stale {
                // Someone refreshed since the caller's request left: use that token.
                return Ok(self.adopt_stored(&row).await);
            }
        }
        let mut attempt = 0;
        let tokens = loop {
            match self
                .client
                .refresh(&row.refresh_token, row.proxy_url.as_deref())
                .await
            {
                Ok(tokens) => break tokens,
                Err(RefreshError::Permanent(code)) => {
                    let message = format!(
                        "refresh token rejected ({code}); sign in again and re-import the account"
                    );
                    self.store_failure(AccountStatus::NeedsRelogin, &message)
                        .await;
                    self.pool
                        .needs_relogin(self.account_id, message.clone())
                        .await;
                    self.notifier.emit(
                        EventKind::NeedsRelogin,
                        Subject::Account(self.account_id),
                        serde_json::json!({
                            "account_id": self.account_id,
                            "email": row.email,
                            "reason": message,
                        }),
                    );
                    return Err(RefreshFailure {
                        permanent: true,
                        message,
                    });
                }
                Err(RefreshError::Transient(reason)) => {
                    if let Some(wait) = BACKOFF.get(attempt) {
                        attempt += 1;
                        tokio::time::sleep(*wait).await;
                        continue;
                    }
                    let message = format!("refresh failed: {reason}");
                    self.store_failure(AccountStatus::RefreshFailed, &message)
                        .await;
                    return Err(RefreshFailure::transient(message));
                }
            }
        };

        let now = Utc::now();
        let expires_at = tokens
            .expires_in
            .filter(|s| *s > 0)
            .map(|s| now + chrono::Duration::seconds(s))
            .or_else(|| access_token_expiry(&tokens.access_token));
        let info = tokens
            .id_token
            .as_deref()
            .map(id_token_info)
            .unwrap_or_default();
        let refresh_token = tokens
            .refresh_token
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| row.refresh_token.clone());
        let mut update = account::Entity::update_many()
            .col_expr(
                account::Column::AccessToken,
                Expr::value(self.sealed(&tokens.access_token)),
            )
            .col_expr(
                account::Column::RefreshToken,
                Expr::value(self.sealed(&refresh_token)),
            )
            .col_expr(account::Column::ExpiresAt, Expr::value(expires_at))
            .col_expr(account::Column::LastRefreshAt, Expr::value(now))
            .col_expr(account::Column::Status, Expr::value(AccountStatus::Active))
            .col_expr(account::Column::UpdatedAt, Expr::value(now));
        if let Some(id_token) = tokens.id_token.clone().filter(|t| !t.is_empty()) {
            update = update.col_expr(
                account::Column::IdToken,
                Expr::value(self.sealed(&id_token)),
            );
        }
        if let Some(email) = info.email {
            update = update.col_expr(account::Column::Email, Expr::value(email));
        }
        if let Some(plan) = info.plan_type {
            update = update.col_expr(account::Column::PlanType, Expr::value(plan));
        }
        let update = update.filter(account::Column::Id.eq(self.account_id));
        // The old refresh token is spent: the new one must be stored before anything else.
        let mut stored = update.clone().exec(&self.db).await;
        for wait in [100u64, 500, 2000] {
            if stored.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(wait)).await;
            stored = update.clone().exec(&self.db).await;
        }
        if let Err(e) = stored {
            tracing::error!(account_id = self.account_id, error = %e, "cannot store refreshed tokens; the account may need a new sign-in");
            return Err(db_failure(&e));
        }
        let access_token: Arc<str> = Arc::from(tokens.access_token.as_str());
        self.pool
            .refreshed(self.account_id, access_token.clone(), expires_at)
            .await;
        Ok(Refreshed {
            access_token,
            expires_at,
        })
    }

    async fn store_failure(&self, status: AccountStatus, message: &str) {
        let now = Utc::now();
        let result = account::Entity::update_many()
            .col_expr(account::Column::Status, Expr::value(status))
            .col_expr(account::Column::LastError, Expr::value(message))
            .col_expr(account::Column::LastErrorAt, Expr::value(now))
            .col_expr(
                account::Column::ErrorCount,
                Expr::col(account::Column::ErrorCount).add(1),
            )
            .col_expr(account::Column::UpdatedAt, Expr::value(now))
            .filter(account::Column::Id.eq(self.account_id))
            .exec(&self.db)
            .await;
        if let Err(e) = result {
            tracing::error!(account_id = self.account_id, error = %e, "cannot store the refresh failure");
        }
    }
}

fn db_failure(e: &sea_orm::DbErr) -> RefreshFailure {
    tracing::error!(error = %e, "database error during a refresh");
    RefreshFailure::transient("database error during the refresh")
}

/// The handlers' way to the refresh scheduler.
#[derive(Clone)]
pub struct RefresherHandle {
    addr: Addr<Refresher>,
}

/// How long a request may wait for the one refresh it needs (three tries with back-off).
const REFRESH_WAIT: Duration = Duration::from_secs(100);

impl RefresherHandle {
    /// Wraps the address of a started scheduler.
    pub fn new(addr: Addr<Refresher>) -> Self {
        Self { addr }
    }

    /// Refreshes an account (or joins the refresh in flight) and waits for the result.
    pub async fn refresh(
        &self,
        account_id: i32,
        stale_access_token: Option<Arc<str>>,
    ) -> Result<Result<Refreshed, RefreshFailure>, ActorError> {
        let msg = RefreshNow {
            account_id,
            stale_access_token,
        };
        super::ask(&self.addr, msg, REFRESH_WAIT, "refresh scheduler").await
    }

    /// Starts a refresh (or leaves the one in flight alone) without waiting for it. A full
    /// mailbox drops it: the next 401 asks again.
    pub fn refresh_in_background(&self, account_id: i32, stale_access_token: Option<Arc<str>>) {
        let msg = RefreshInBackground {
            account_id,
            stale_access_token,
        };
        if self.addr.try_send(msg).is_err() {
            tracing::warn!(
                account_id,
                "refresh scheduler mailbox full: refresh not started"
            );
        }
    }

    /// Waits at most `wait` for a refresh of the account (joining the one in flight, or
    /// starting one); `None` when it took longer (the refresh goes on).
    pub async fn refresh_within(
        &self,
        account_id: i32,
        stale_access_token: Option<Arc<str>>,
        wait: Duration,
    ) -> Option<Result<Result<Refreshed, RefreshFailure>, ActorError>> {
        tokio::time::timeout(wait, self.refresh(account_id, stale_access_token))
            .await
            .ok()
    }

    /// New runtime settings.
    pub async fn apply_settings(&self, settings: RuntimeSettings) {
        let _ = super::ask(
            &self.addr,
            ApplySettings(settings),
            Duration::from_secs(5),
            "refresh scheduler",
        )
        .await;
    }

    /// Whether the actor is running.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
