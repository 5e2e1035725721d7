//! The usage-log writer: one row per proxied request, written in batches.
//!
//! Records arrive with `try_send` on a bounded mailbox (a full mailbox drops the record and
//! counts it, so a slow database never blocks a proxied request). Rows are flushed at
//! `batch_size` rows or every `flush_interval`, with one multi-row insert; per-key and
//! per-account counters (`usage_count`, `last_used_at`, tokens, rate-limit snapshot) are
//! updated in the same transaction, once per key and account of the batch. [`Flush`] answers
//! once everything received before it is durable: tests wait on it, and shutdown drains with it.
//!
//! One batch is written at a time, beside the mailbox: records keep arriving while a write is in
//! flight. A failed write puts its rows back in front of the buffer and is retried with
//! back-off (200 ms doubling to 30 s) for as long as the buffer holds them; only when more than
//! the mailbox capacity is buffered are the oldest rows given up, and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::IdenStatic;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait};

use crate::codex::wire::RateLimits;
use crate::db::{account, api_key, api_log, usage_hourly};

/// What one proxied request cost and how it went.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct UsageRecord {
    pub created_at: DateTime<Utc>,
    pub api_key_id: Option<i32>,
    pub account_id: Option<i32>,
    pub model: String,
    pub endpoint: &'static str,
    pub stream: bool,
    pub status_code: u16,
    pub error_message: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub request_id: Option<String>,
    pub rate_limits: Option<RateLimits>,
    /// The upstream attempts, in order (at most [`crate::request_log::MAX_ATTEMPTS`]).
    pub attempts: Vec<crate::request_log::Attempt>,
    /// How the request reached the gateway.
    pub transport: Transport,
}

/// How a proxied request reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// One HTTP request.
    #[default]
    Http,
    /// One turn of a Responses WebSocket connection.
    Websocket,
}

impl Transport {
    /// The name the usage log keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Websocket => "websocket",
        }
    }
}

/// Writes everything buffered; answers when it is durable.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Flush;

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// Counters shared with the handle.
#[derive(Debug, Default)]
pub struct UsageStats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    /// Failed batch writes, each retried.
    pub retried: AtomicU64,
}

/// The first wait after a failed write; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Someone waiting for a [`Flush`].
type FlushWaiter = tokio::sync::oneshot::Sender<Result<usize, String>>;

/// The usage-log writer actor.
pub struct UsageLogWriter {
    db: DatabaseConnection,
    buffer: std::collections::VecDeque<UsageRecord>,
    batch_size: usize,
    interval: Duration,
    capacity: usize,
    stats: Arc<UsageStats>,
    /// A batch is being written.
    writing: bool,
    /// The wait before the next attempt after failures (`None` when the last write worked).
    backoff: Option<Duration>,
    /// When the next attempt may run, after a failure.
    retry_at: Option<tokio::time::Instant>,
    /// [`Flush`] callers, answered once the buffer is written.
    waiters: Vec<FlushWaiter>,
}

impl UsageLogWriter {
    /// A writer flushing at `batch_size` rows or every `interval`, with a mailbox of `capacity`.
    pub fn new(
        db: DatabaseConnection,
        batch_size: usize,
        interval: Duration,
        capacity: usize,
    ) -> Self {
        Self {
            db,
            buffer: std::collections::VecDeque::with_capacity(batch_size),
            batch_size: batch_size.max(1),
            interval,
            capacity: capacity.max(1),
            stats: Arc::new(UsageStats::default()),
            writing: false,
            backoff: None,
            retry_at: None,
            waiters: Vec::new(),
        }
    }

    /// Starts writing the next batch unless one is in flight or a retry is not due yet
    /// (`now` forces an attempt, for [`Flush`]). Messages keep being handled meanwhile.
    fn flush(&mut self, ctx: &mut Context<Self>, now: bool) {
        if self.writing {
            return;
        }
        if self.buffer.is_empty() {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(Ok(0));
            }
            return;
        }
        if !now
            && self
                .retry_at
                .is_some_and(|at| at > tokio::time::Instant::now())
        {
            return;
        }
        let take = self.buffer.len().min(self.batch_size.max(500));
        let batch: Vec<UsageRecord> = self.buffer.drain(..take).collect();
        self.writing = true;
        let db = self.db.clone();
        ctx.spawn(
            async move {
                let result = write_batch(&db, &batch).await;
                (batch, result)
            }
            .into_actor(self)
            .map(|(batch, result), act, ctx| act.written(ctx, batch, result)),
        );
    }

    /// After a write: counts it, or puts its rows back for a retry with back-off; then goes on
    /// with what is buffered, and answers the [`Flush`] callers once all is written.
    fn written(
        &mut self,
        ctx: &mut Context<Self>,
        batch: Vec<UsageRecord>,
        result: Result<(), sea_orm::DbErr>,
    ) {
        self.writing = false;
        let count = batch.len();
        match result {
            Ok(()) => {
                self.stats
                    .written
                    .fetch_add(count as u64, Ordering::Relaxed);
                self.backoff = None;
                self.retry_at = None;
                if self.buffer.is_empty() {
                    for waiter in self.waiters.drain(..) {
                        let _ = waiter.send(Ok(count));
                    }
                    return;
                }
                self.flush(
                    ctx,
                    !self.waiters.is_empty() || self.buffer.len() >= self.batch_size,
                );
            }
            Err(e) => {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                let wait = self
                    .backoff
                    .map_or(FIRST_BACKOFF, |w| (w * 2).min(MAX_BACKOFF));
                self.backoff = Some(wait);
                self.retry_at = Some(tokio::time::Instant::now() + wait);
                tracing::warn!(error = %e, rows = count, retry_in_ms = wait.as_millis() as u64, "cannot write usage-log rows; will retry");
                for record in batch.into_iter().rev() {
                    self.buffer.push_front(record);
                }
                self.give_up_beyond_capacity();
                for waiter in self.waiters.drain(..) {
                    let _ = waiter.send(Err(e.to_string()));
                }
                ctx.run_later(wait, |act, ctx| act.flush(ctx, false));
            }
        }
    }

    /// Keeps at most `capacity` rows buffered: beyond it the oldest are given up and counted.
    fn give_up_beyond_capacity(&mut self) {
        let excess = self.buffer.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.buffer.drain(..excess);
            self.stats
                .failed
                .fetch_add(excess as u64, Ordering::Relaxed);
            tracing::error!(
                rows = excess,
                "usage-log rows given up: the database has refused writes for too long"
            );
        }
    }
}

/// What one batch adds to a key's or an account's counters.
#[derive(Default)]
struct Totals {
    requests: i64,
    tokens: i64,
    input: i64,
    output: i64,
    last_used: Option<DateTime<Utc>>,
    /// The last request answered below 400.
    last_success: Option<DateTime<Utc>>,
    rate_limits: Option<RateLimits>,
}

async fn write_batch(db: &DatabaseConnection, batch: &[UsageRecord]) -> Result<(), sea_orm::DbErr> {
    let rows = batch.iter().map(|r| api_log::ActiveModel {
        created_at: Set(r.created_at),
        api_key_id: Set(r.api_key_id),
        account_id: Set(r.account_id),
        model: Set(r.model.clone()),
        endpoint: Set(r.endpoint.to_string()),
        stream: Set(r.stream),
        status_code: Set(i32::from(r.status_code)),
        error_message: Set(r.error_message.clone()),
        input_tokens: Set(r.input_tokens as i64),
        output_tokens: Set(r.output_tokens as i64),
        cached_tokens: Set(r.cached_tokens as i64),
        reasoning_tokens: Set(r.reasoning_tokens as i64),
        latency_ms: Set(r.latency_ms as i64),
        ttft_ms: Set(r.ttft_ms.map(|v| v as i64)),
        request_id: Set(r.request_id.clone()),
        transport: Set(r.transport.as_str().to_owned()),
        attempts: Set((!r.attempts.is_empty())
            .then(|| serde_json::to_string(&r.attempts).ok())
            .flatten()),
        ..Default::default()
    });

    let mut keys: HashMap<i32, Totals> = HashMap::new();
    let mut accounts: HashMap<i32, Totals> = HashMap::new();
    for r in batch {
        let tokens = (r.input_tokens + r.output_tokens) as i64;
        for (map, id) in [(&mut keys, r.api_key_id), (&mut accounts, r.account_id)] {
            if let Some(id) = id {
                let t = map.entry(id).or_default();
                t.requests += 1;
                t.tokens += tokens;
                t.input += r.input_tokens as i64;
                t.output += r.output_tokens as i64;
                t.last_used = t.last_used.max(Some(r.created_at));
                if r.status_code < 400 {
                    t.last_success = t.last_success.max(Some(r.created_at));
                }
                if r.rate_limits.is_some() {
                    t.rate_limits.clone_from(&r.rate_limits);
                }
            }
        }
    }

    // Hourly rollups, merged within the batch first.
    let mut hours: HashMap<(i64, i32, i32, String), [i64; 6]> = HashMap::new();
    for r in batch {
        let bucket = r.created_at.timestamp().div_euclid(3600) * 3600;
        let key = (
            bucket,
            r.api_key_id.unwrap_or(0),
            r.account_id.unwrap_or(0),
            r.model.clone(),
        );
        let sums = hours.entry(key).or_default();
        sums[0] += 1;
        sums[1] += i64::from(r.status_code >= 400);
        sums[2] += r.input_tokens as i64;
        sums[3] += r.output_tokens as i64;
        sums[4] += r.cached_tokens as i64;
        sums[5] += r.reasoning_tokens as i64;
    }

    let txn = db.begin().await?;
    for ((bucket, key_id, account_id, model), sums) in hours {
        use usage_hourly::Column as C;
        let row = usage_hourly::ActiveModel {
            bucket: Set(bucket),
            api_key_id: Set(key_id),
            account_id: Set(account_id),
            model: Set(model),
            requests: Set(sums[0]),
            errors: Set(sums[1]),
            input_tokens: Set(sums[2]),
            output_tokens: Set(sums[3]),
            cached_tokens: Set(sums[4]),
            reasoning_tokens: Set(sums[5]),
        };
        let add = |c: C| {
            (
                c,
                Expr::col((usage_hourly::Entity, c))
                    .add(Expr::cust(format!("excluded.{}", c.as_str()))),
            )
        };
        usage_hourly::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([C::Bucket, C::ApiKeyId, C::AccountId, C::Model])
                    .values([
                        add(C::Requests),
                        add(C::Errors),
                        add(C::InputTokens),
                        add(C::OutputTokens),
                        add(C::CachedTokens),
                        add(C::ReasoningTokens),
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    crate::db::insert_chunked(&txn, rows.collect()).await?;
    for (id, t) in keys {
        api_key::Entity::update_many()
            .col_expr(
                api_key::Column::UsageCount,
                Expr::col(api_key::Column::UsageCount).add(t.requests),
            )
            .col_expr(
                api_key::Column::TokensUsed,
                Expr::col(api_key::Column::TokensUsed).add(t.tokens),
            )
            .col_expr(api_key::Column::LastUsedAt, Expr::value(t.last_used))
            .filter(api_key::Column::Id.eq(id))
            .exec(&txn)
            .await?;
    }
    for (id, t) in accounts {
        let mut update = account::Entity::update_many()
            .col_expr(
                account::Column::UsageCount,
                Expr::col(account::Column::UsageCount).add(t.requests),
            )
            .col_expr(
                account::Column::InputTokens,
                Expr::col(account::Column::InputTokens).add(t.input),
            )
            .col_expr(
                account::Column::OutputTokens,
                Expr::col(account::Column::OutputTokens).add(t.output),
            )
            .col_expr(account::Column::LastUsedAt, Expr::value(t.last_used));
        if let Some(at) = t.last_success {
            update = update.col_expr(account::Column::LastSuccessAt, Expr::value(at));
        }
        if let Some(limits) = &t.rate_limits {
            if let Ok(text) = serde_json::to_string(limits) {
                update = update.col_expr(account::Column::RateLimits, Expr::value(text));
            }
            crate::usage_history::record(&txn, id, limits, Utc::now()).await?;
        }
        update.filter(account::Column::Id.eq(id)).exec(&txn).await?;
    }
    txn.commit().await
}

impl Actor for UsageLogWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.capacity);
        ctx.run_interval(self.interval, |_, ctx| ctx.notify(Tick));
    }
}

impl Handler<UsageRecord> for UsageLogWriter {
    type Result = ();

    fn handle(&mut self, record: UsageRecord, ctx: &mut Self::Context) {
        self.buffer.push_back(record);
        self.give_up_beyond_capacity();
        if self.buffer.len() >= self.batch_size {
            self.flush(ctx, false);
        }
    }
}

impl Handler<Tick> for UsageLogWriter {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        self.flush(ctx, false);
    }
}

impl Handler<Flush> for UsageLogWriter {
    type Result = ResponseFuture<Result<usize, String>>;

    /// Answers once everything buffered (and the write in flight) is written, or with the
    /// error of the next failed attempt (its rows stay buffered for the retries).
    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.push(tx);
        self.flush(ctx, true);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the usage-log writer stopped".into()))
        })
    }
}

/// The handlers' way to the usage-log writer.
#[derive(Clone)]
pub struct UsageLogHandle {
    addr: Addr<UsageLogWriter>,
    stats: Arc<UsageStats>,
}

impl UsageLogHandle {
    /// Starts the writer and returns its handle.
    pub fn start(writer: UsageLogWriter) -> Self {
        let stats = writer.stats.clone();
        let addr = writer.start();
        Self { addr, stats }
    }

    /// Queues a record; never waits. A full mailbox drops it and counts the drop.
    pub fn record(&self, record: UsageRecord) {
        if self.addr.try_send(record).is_err() {
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "usage-log mailbox full: records dropped");
            }
        }
    }

    /// Writes everything queued before this call; answers the number of rows of the last batch.
    pub async fn flush(&self) -> Result<usize, String> {
        match tokio::time::timeout(Duration::from_secs(30), self.addr.send(Flush)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the usage-log writer did not answer in time".into()),
        }
    }

    /// Failed batch writes so far (each was retried).
    pub fn retried(&self) -> u64 {
        self.stats.retried.load(Ordering::Relaxed)
    }

    /// Rows written, dropped (mailbox full) and failed (given up after refused writes) so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.stats.written.load(Ordering::Relaxed),
            self.stats.dropped.load(Ordering::Relaxed),
            self.stats.failed.load(Ordering::Relaxed),
        )
    }

    /// Whether the actor is running.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
