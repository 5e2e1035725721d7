//! The usage-log writer: one row per proxied request, written in batches.
//!
//! Records arrive with `try_send` on a bounded mailbox (a full mailbox drops the record and
//! counts it, so a slow database never blocks a proxied request). Rows are flushed at
//! `batch_size` rows or every `flush_interval`, with one multi-row insert; per-key and
//! per-account counters (`usage_count`, `last_used_at`, tokens, rate-limit snapshot) are
//! updated in the same transaction, once per key and account of the batch. [`Flush`] answers
//! once everything received before it is durable: tests wait on it, and shutdown drains with it.

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
}

/// The usage-log writer actor.
pub struct UsageLogWriter {
    db: DatabaseConnection,
    buffer: Vec<UsageRecord>,
    batch_size: usize,
    interval: Duration,
    capacity: usize,
    stats: Arc<UsageStats>,
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
            buffer: Vec::with_capacity(batch_size),
            batch_size: batch_size.max(1),
            interval,
            capacity: capacity.max(1),
            stats: Arc::new(UsageStats::default()),
        }
    }

    /// Writes the buffer; the actor processes no other message until it is done, so flushes
    /// never overlap and a `Flush` that follows records sees them written.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.buffer.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.buffer);
        let db = self.db.clone();
        let stats = self.stats.clone();
        ctx.wait(
            async move {
                let count = batch.len();
                // A failed write is retried once; rows are only lost when both attempts fail.
                let mut result = write_batch(&db, &batch).await;
                if result.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    result = write_batch(&db, &batch).await;
                }
                match result {
                    Ok(()) => {
                        stats.written.fetch_add(count as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.failed.fetch_add(count as u64, Ordering::Relaxed);
                        tracing::error!(error = %e, rows = count, "cannot write usage-log rows");
                    }
                }
            }
            .into_actor(self),
        );
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
    // SQLite limits bound parameters per statement; 15 columns x 500 rows stays well inside.
    let rows: Vec<_> = rows.collect();
    for chunk in rows.chunks(500) {
        api_log::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
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
        if let Some(limits) = t.rate_limits.and_then(|l| serde_json::to_string(&l).ok()) {
            update = update.col_expr(account::Column::RateLimits, Expr::value(limits));
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
        self.buffer.push(record);
        if self.buffer.len() >= self.batch_size {
            self.flush(ctx);
        }
    }
}

impl Handler<Tick> for UsageLogWriter {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        self.flush(ctx);
    }
}

impl Handler<Flush> for UsageLogWriter {
    type Result = AtomicResponse<Self, Result<usize, String>>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        let batch = std::mem::take(&mut self.buffer);
        let db = self.db.clone();
        let stats = self.stats.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let count = batch.len();
                if count > 0 {
                    if let Err(e) = write_batch(&db, &batch).await {
                        stats.failed.fetch_add(count as u64, Ordering::Relaxed);
                        return Err(e.to_string());
                    }
                    stats.written.fetch_add(count as u64, Ordering::Relaxed);
                }
                Ok(count)
            }
            .into_actor(self),
        ))
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

    /// Rows written, dropped (mailbox full) and failed (database errors) so far.
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
