//! The key cache: API key hash -> key record, filled from the database on demand and
//! invalidated at once when a key changes or is deleted.
//!
//! The records live in a concurrent map (`DashMap`) that the handlers read directly: a request
//! whose key is cached costs no actor round trip. The actor is the map's only writer (loads on
//! a miss, invalidations).
//!
//! It also enforces the keys' limits, because a single actor sees every request in order:
//! [`Admit`] reserves a request against the per-minute and per-day limits and checks the token
//! budget before the request is dispatched, so concurrent requests cannot overshoot a request
//! limit; [`Settle`] adds the tokens a request used once they are known. The counters live in
//! this process (several instances each enforce the limits on their own traffic).
//!
//! Messages: [`Lookup`] (answered from memory, or after one database read on a miss or when
//! the entry is older than its bounded age), [`Invalidate`] (by key id, after any admin change
//! here or on another instance), [`InvalidateAll`] (a resynchronisation), [`Admit`],
//! [`Settle`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, NaiveDate, Utc};
use dashmap::DashMap;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use sha2::{Digest, Sha256};

use super::ActorError;
use crate::db::{api_key, api_log};

/// What the proxy needs to know about a key.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: i32,
    pub name: String,
    pub is_active: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub rpm_limit: Option<i32>,
    pub daily_request_limit: Option<i64>,
    pub total_token_limit: Option<i64>,
    pub tokens_used: i64,
    pub allowed_models: Option<Vec<String>>,
}

impl KeyRecord {
    /// The record of a stored key.
    pub fn from_row(row: &api_key::Model) -> Self {
        Self {
            id: row.id,
            name: row.name.clone(),
            is_active: row.is_active && row.deleted_at.is_none(),
            expires_at: row.expires_at,
            rpm_limit: row.rpm_limit,
            daily_request_limit: row.daily_request_limit,
            total_token_limit: row.total_token_limit,
            tokens_used: row.tokens_used,
            allowed_models: row
                .allowed_models
                .as_deref()
                .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
                .filter(|models| !models.is_empty()),
        }
    }
}

/// The SHA-256 of a key, hex-encoded: what the database stores and the cache is keyed by.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Finds a key by its hash; `None` when there is no such key (deleted keys included).
#[derive(Message)]
#[rtype(result = "Result<Option<Arc<KeyRecord>>, sea_orm::DbErr>")]
pub struct Lookup(pub String);

/// Forgets a key so that its next use reads the database.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Invalidate {
    pub key_id: i32,
}

/// Forgets every key (after the change listener reconnected: notices may have been missed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InvalidateAll;

enum Entry {
    /// A key and when it was read: read again once older than the cache's bounded age.
    Found(Arc<KeyRecord>, Instant),
    /// A hash with no key, remembered briefly so that a client retrying a bad key does not
    /// cost a database read each time.
    Missing(std::time::Instant),
}

/// How long an unknown hash is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Most entries kept; beyond it the cache starts over (keys are few, attackers' guesses many).
const MAX_ENTRIES: usize = 100_000;

/// The map the handlers read directly on a hit; only the actor writes it.
struct Shared {
    entries: DashMap<String, Entry>,
    /// How long a found key is served from memory before it is read again.
    max_age: Duration,
    /// Lookups answered from the map, and those that asked the actor.
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Shared {
    fn new(max_age: Duration) -> Self {
        Self {
            entries: DashMap::new(),
            max_age,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The answer the map holds for `hash`, if it is fresh.
    fn cached(&self, hash: &str) -> Option<Option<Arc<KeyRecord>>> {
        match self.entries.get(hash).as_deref() {
            Some(Entry::Found(record, at)) if at.elapsed() < self.max_age => {
                Some(Some(record.clone()))
            }
            Some(Entry::Missing(at)) if at.elapsed() < NEGATIVE_TTL => Some(None),
            _ => None,
        }
    }
}

/// The key cache actor.
pub struct KeyCache {
    db: DatabaseConnection,
    shared: Arc<Shared>,
    /// Key id -> hash, for invalidation by id.
    hashes: HashMap<i32, String>,
    /// Key id -> what it has used, for the limits.
    usage: HashMap<i32, KeyUsage>,
}

/// What one key has used recently.
#[derive(Default)]
struct KeyUsage {
    /// Admission times within the last minute.
    minute: VecDeque<Instant>,
    /// Requests admitted on `day` (UTC), once loaded from the log.
    day: Option<(NaiveDate, i64)>,
    /// Tokens settled since the key record was (re)loaded.
    tokens_since_load: i64,
    /// Tokens reserved by the requests in flight (their estimates, until they settle).
    reserved: i64,
    /// Requests admitted and not yet settled.
    in_flight: usize,
}

/// Why a key may not send another request now.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// `rpm_limit` reached; retry after this many seconds.
    #[error("requests-per-minute limit reached")]
    PerMinute { retry_after: u64 },
    /// `daily_request_limit` reached until UTC midnight.
    #[error("daily request limit reached")]
    PerDay { retry_after: u64 },
    /// `total_token_limit` used up.
    #[error("token budget used up")]
    Tokens,
    /// What is left of `total_token_limit` is reserved by the key's requests in flight.
    #[error("token budget reserved by requests in flight")]
    TokensReserved,
    /// The key already has the most requests in flight that one key may have.
    #[error("too many concurrent requests")]
    Concurrency,
    /// The counters of the key's limits could not be read: the request is refused.
    #[error("the key's limit counters cannot be read")]
    Unavailable,
    /// The key cache did not answer.
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// Reserves one request for a key against its limits: a request slot, a place among its
/// concurrent requests, and an estimate of its tokens against the budget.
#[derive(Message)]
#[rtype(result = "Result<(), LimitError>")]
pub struct Admit {
    pub key: Arc<KeyRecord>,
    /// The tokens the request is expected to use.
    pub estimate: i64,
    /// Requests one key may have in flight (0 = any number).
    pub max_concurrent: usize,
    /// Whether this actor counts the per-minute and per-day limits (else shared counters do).
    pub local_counts: bool,
}

/// Adds the tokens a finished request used.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle {
    pub key_id: i32,
    pub tokens: i64,
    /// The estimate reserved at admission, released now (`None` for a request not admitted).
    pub reserved: Option<i64>,
}

impl KeyCache {
    fn admit_now(&mut self, msg: &Admit, today_count: Option<i64>) -> Result<(), LimitError> {
        let local = msg.local_counts;
        let key = &msg.key;
        let now = Instant::now();
        let usage = self.usage.entry(key.id).or_default();
        let today = Utc::now().date_naive();
        if let Some(loaded) = today_count {
            if usage.day.is_none_or(|(day, _)| day != today) {
                usage.day = Some((today, loaded));
            }
        }
        if let Some(limit) = key.total_token_limit {
            let used = key.tokens_used + usage.tokens_since_load;
            if used >= limit {
                return Err(LimitError::Tokens);
            }
            // With requests in flight, another goes only if its estimate fits beside theirs:
            // concurrent requests overshoot the budget by one request's worth at most.
            if usage.reserved > 0 && used + usage.reserved + msg.estimate.max(1) > limit {
                return Err(LimitError::TokensReserved);
            }
        }
        if msg.max_concurrent > 0 && usage.in_flight >= msg.max_concurrent {
            return Err(LimitError::Concurrency);
        }
        while usage
            .minute
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            usage.minute.pop_front();
        }
        if let Some(limit) = key.rpm_limit.filter(|_| local) {
            if usage.minute.len() >= limit.max(0) as usize {
                let oldest = usage.minute.front().copied().unwrap_or(now);
                let wait = MINUTE.saturating_sub(now.duration_since(oldest));
                return Err(LimitError::PerMinute {
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
        }
        if let Some(limit) = key.daily_request_limit.filter(|_| local) {
            let count = match usage.day {
                Some((day, count)) if day == today => count,
                _ => 0,
            };
            if count >= limit {
                let midnight = (today + chrono::Days::new(1))
                    .and_hms_opt(0, 0, 0)
                    .map_or_else(Utc::now, |t| t.and_utc());
                return Err(LimitError::PerDay {
                    retry_after: (midnight - Utc::now()).num_seconds().max(1) as u64,
                });
            }
            usage.day = Some((today, count + 1));
        }
        if local && key.rpm_limit.is_some() {
            usage.minute.push_back(now);
        }
        usage.in_flight += 1;
        usage.reserved += msg.estimate.max(1);
        Ok(())
    }
}

/// The requests of a key admitted on `day` (UTC), as the usage log holds them.
pub async fn admitted_on(
    db: &DatabaseConnection,
    key_id: i32,
    day: NaiveDate,
) -> Result<i64, sea_orm::DbErr> {
    let start = day
        .and_hms_opt(0, 0, 0)
        .map_or_else(Utc::now, |t| t.and_utc());
    let count = api_log::Entity::find()
        .filter(api_log::Column::ApiKeyId.eq(key_id))
        .filter(api_log::Column::CreatedAt.gte(start))
        .filter(admitted())
        .count(db)
        .await?;
    Ok(count as i64)
}

/// The usage-log rows of requests that were admitted: those the key's own limits refused
/// (no account, 401/403/429) do not count against the limits.
pub fn admitted() -> sea_orm::Condition {
    let refused = sea_orm::Condition::all()
        .add(api_log::Column::AccountId.is_null())
        .add(api_log::Column::StatusCode.is_in([401, 403, 429]));
    sea_orm::Condition::not(refused)
}

/// The window of `rpm_limit`.
const MINUTE: Duration = Duration::from_mins(1);

impl Handler<Admit> for KeyCache {
    type Result = ResponseActFuture<Self, Result<(), LimitError>>;

    fn handle(&mut self, msg: Admit, _: &mut Self::Context) -> Self::Result {
        let key = msg.key.clone();
        let today = Utc::now().date_naive();
        let needs_day = msg.local_counts
            && key.daily_request_limit.is_some()
            && self
                .usage
                .get(&key.id)
                .and_then(|u| u.day)
                .is_none_or(|(day, _)| day != today);
        if !needs_day {
            let result = self.admit_now(&msg, None);
            return Box::pin(fut::ready(result));
        }
        // First request of the day in this process: count what the log already holds.
        let db = self.db.clone();
        let key_id = key.id;
        Box::pin(
            async move { admitted_on(&db, key_id, today).await }
                .into_actor(self)
                .map(move |count, act, _| match count {
                    Ok(count) => act.admit_now(&msg, Some(count)),
                    // Limits fail closed: an unknown count refuses the request.
                    Err(e) => {
                        tracing::error!(key_id, error = %e, "cannot count a key's requests of the day; request refused");
                        Err(LimitError::Unavailable)
                    }
                }),
        )
    }
}

impl Handler<Settle> for KeyCache {
    type Result = ();

    fn handle(&mut self, msg: Settle, _: &mut Self::Context) {
        let usage = self.usage.entry(msg.key_id).or_default();
        usage.tokens_since_load += msg.tokens;
        if let Some(reserved) = msg.reserved {
            usage.reserved = (usage.reserved - reserved.max(1)).max(0);
            usage.in_flight = usage.in_flight.saturating_sub(1);
        }
    }
}

impl KeyCache {
    /// An empty cache reading from `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            shared: Arc::new(Shared::new(DEFAULT_MAX_AGE)),
            hashes: HashMap::new(),
            usage: HashMap::new(),
        }
    }

    /// Found keys are read again once older than `max_age` (the safety net behind
    /// invalidation).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        // Before start: the map is still empty and nobody else holds it.
        self.shared = Arc::new(Shared::new(max_age));
        self
    }
}

/// The bounded age of a found key unless configured.
const DEFAULT_MAX_AGE: Duration = Duration::from_mins(1);

impl Actor for KeyCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<Lookup> for KeyCache {
    type Result = ResponseActFuture<Self, Result<Option<Arc<KeyRecord>>, sea_orm::DbErr>>;

    fn handle(&mut self, msg: Lookup, _: &mut Self::Context) -> Self::Result {
        if let Some(answer) = self.shared.cached(&msg.0) {
            return Box::pin(fut::ready(Ok(answer)));
        }
        let db = self.db.clone();
        let hash = msg.0;
        Box::pin(
            {
                let hash = hash.clone();
                async move {
                    api_key::Entity::find()
                        .filter(api_key::Column::KeyHash.eq(hash))
                        .filter(api_key::Column::DeletedAt.is_null())
                        .one(&db)
                        .await
                }
            }
            .into_actor(self)
            .map(move |row, act, _| {
                let row = row?;
                // Lookups of one key that raced on a miss: the first to load wins, so that a
                // later one does not reset what was settled meanwhile.
                if let Some(Some(record)) = act.shared.cached(&hash) {
                    return Ok(Some(record));
                }
                let entries = &act.shared.entries;
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                    act.hashes.clear();
                }
                Ok(if let Some(row) = row {
                    let record = Arc::new(KeyRecord::from_row(&row));
                    // The stored total now includes what was settled (up to one flush).
                    if let Some(usage) = act.usage.get_mut(&record.id) {
                        usage.tokens_since_load = 0;
                    }
                    act.hashes.insert(record.id, hash.clone());
                    entries.insert(hash, Entry::Found(record.clone(), Instant::now()));
                    Some(record)
                } else {
                    entries.insert(hash, Entry::Missing(Instant::now()));
                    None
                })
            }),
        )
    }
}

impl Handler<Invalidate> for KeyCache {
    type Result = ();

    fn handle(&mut self, msg: Invalidate, _: &mut Self::Context) {
        if let Some(hash) = self.hashes.remove(&msg.key_id) {
            self.shared.entries.remove(&hash);
        }
        // A key created with a hash that was just guessed must not stay "missing".
        self.shared
            .entries
            .retain(|_, e| matches!(e, Entry::Found(..)));
    }
}

impl Handler<InvalidateAll> for KeyCache {
    type Result = ();

    fn handle(&mut self, _: InvalidateAll, _: &mut Self::Context) {
        self.shared.entries.clear();
        self.hashes.clear();
    }
}

/// The handlers' way to the key cache.
#[derive(Clone)]
pub struct KeyCacheHandle {
    addr: Addr<KeyCache>,
    shared: Arc<Shared>,
    timeout: Duration,
    counters: crate::limits::Counters,
    /// Tells the webhooks of keys hitting a limit.
    notifier: super::webhooks::WebhookHandle,
}

impl KeyCacheHandle {
    /// Starts the cache.
    pub fn new(cache: KeyCache, timeout: Duration) -> Self {
        let shared = cache.shared.clone();
        Self {
            addr: cache.start(),
            shared,
            timeout,
            counters: crate::limits::Counters::default(),
            notifier: super::webhooks::WebhookHandle::default(),
        }
    }

    /// Tells `notifier` of keys hitting a limit.
    pub fn with_notifier(mut self, notifier: super::webhooks::WebhookHandle) -> Self {
        self.notifier = notifier;
        self
    }

    /// Fires `key.limit_reached` when `error` is one of the key's own limits.
    fn notify_limit(&self, key: &KeyRecord, error: &LimitError) {
        let limit = match error {
            LimitError::PerMinute { .. } => "rpm_limit",
            LimitError::PerDay { .. } => "daily_request_limit",
            LimitError::Tokens => "total_token_limit",
            _ => return,
        };
        self.notifier.emit(
            super::webhooks::EventKind::KeyLimitReached,
            super::webhooks::Subject::Key(key.id),
            serde_json::json!({"key_id": key.id, "name": key.name, "limit": limit}),
        );
    }

    /// Counts the per-minute and per-day limits in `counters` when they are shared.
    pub fn with_counters(mut self, counters: crate::limits::Counters) -> Self {
        self.counters = counters;
        self
    }

    /// Where the limits are counted: `memory`, `postgres` or `redis`.
    pub fn counters(&self) -> &'static str {
        self.counters.kind()
    }

    /// The record of a presented key, if it exists: read from the map on a hit (no actor
    /// round trip), else from the actor (which reads the database).
    pub async fn lookup(&self, key: &str) -> Result<Option<Arc<KeyRecord>>, ActorError> {
        let hash = hash_key(key);
        if let Some(answer) = self.shared.cached(&hash) {
            self.shared.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(answer);
        }
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        Ok(super::ask(&self.addr, Lookup(hash), self.timeout, "key cache").await??)
    }

    /// Lookups answered from the map and lookups that asked the actor, since start.
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.shared.hits.load(Ordering::Relaxed),
            self.shared.misses.load(Ordering::Relaxed),
        )
    }

    /// The age of the oldest key held, in seconds (0 when none is).
    pub fn oldest_entry_age(&self) -> f64 {
        self.shared
            .entries
            .iter()
            .filter_map(|e| match e.value() {
                Entry::Found(_, at) => Some(at.elapsed().as_secs_f64()),
                Entry::Missing(_) => None,
            })
            .fold(0.0, f64::max)
    }

    /// Reserves a request against the key's limits (before dispatch), with `estimate` tokens
    /// held against its budget until it settles; at most `max_concurrent` in flight (0 = any).
    pub async fn admit(
        &self,
        key: Arc<KeyRecord>,
        estimate: i64,
        max_concurrent: usize,
    ) -> Result<(), LimitError> {
        let shared = self.counters.is_shared();
        let msg = Admit {
            key: key.clone(),
            estimate,
            max_concurrent,
            local_counts: !shared,
        };
        if let Err(e) = super::ask(&self.addr, msg, self.timeout, "key cache").await? {
            self.notify_limit(&key, &e);
            return Err(e);
        }
        if shared {
            if let Err(e) = self.counters.admit(&key).await {
                self.release(key.id, 0, estimate);
                self.notify_limit(&key, &e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Settles an admitted request: its tokens counted, its reservation and place released.
    /// Never waits, and is never dropped (a lost release would hold the place for good).
    pub fn release(&self, key_id: i32, tokens: i64, reserved: i64) {
        self.addr.do_send(Settle {
            key_id,
            tokens,
            reserved: Some(reserved),
        });
    }

    /// Adds the tokens a finished request used; never waits (a full mailbox drops it).
    pub fn settle(&self, key_id: i32, tokens: i64) {
        let msg = Settle {
            key_id,
            tokens,
            reserved: None,
        };
        if tokens > 0 && self.addr.try_send(msg).is_err() {
            tracing::warn!(
                key_id,
                tokens,
                "key cache mailbox full: token usage not settled"
            );
        }
    }

    /// Forgets a key after it changed.
    pub async fn invalidate(&self, key_id: i32) -> Result<(), ActorError> {
        super::ask(&self.addr, Invalidate { key_id }, self.timeout, "key cache").await
    }

    /// Forgets every key.
    pub async fn invalidate_all(&self) -> Result<(), ActorError> {
        super::ask(&self.addr, InvalidateAll, self.timeout, "key cache").await
    }

    /// Whether the actor is running.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(budget: Option<i64>) -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: 1,
            name: "k".into(),
            is_active: true,
            expires_at: None,
            rpm_limit: None,
            daily_request_limit: None,
            total_token_limit: budget,
            tokens_used: 0,
            allowed_models: None,
        })
    }

    fn handle() -> KeyCacheHandle {
        KeyCacheHandle::new(
            KeyCache::new(DatabaseConnection::default()),
            Duration::from_secs(5),
        )
    }

    #[actix_web::test]
    async fn a_key_has_at_most_its_concurrent_requests_in_flight() {
        let keys = handle();
        keys.admit(key(None), 10, 2).await.unwrap();
        keys.admit(key(None), 10, 2).await.unwrap();
        assert!(matches!(
            keys.admit(key(None), 10, 2).await,
            Err(LimitError::Concurrency)
        ));
        keys.release(1, 5, 10);
        keys.admit(key(None), 10, 2).await.unwrap();
        // No cap: any number.
        for _ in 0..10 {
            keys.admit(key(None), 10, 0).await.unwrap();
        }
    }

    #[actix_web::test]
    async fn in_flight_reservations_hold_the_budget_and_settle_with_real_usage() {
        let keys = handle();
        // Nothing in flight: a request goes even if its estimate exceeds what is left.
        keys.admit(key(Some(100)), 300, 0).await.unwrap();
        assert!(matches!(
            keys.admit(key(Some(100)), 300, 0).await,
            Err(LimitError::TokensReserved)
        ));
        // It used 40 of the 100; a request estimated at 50 fits beside nothing.
        keys.release(1, 40, 300);
        keys.admit(key(Some(100)), 50, 0).await.unwrap();
        assert!(
            matches!(
                keys.admit(key(Some(100)), 20, 0).await,
                Err(LimitError::TokensReserved)
            ),
            "40 used + 50 reserved + 20 > 100"
        );
        keys.admit(key(Some(100)), 10, 0).await.unwrap();
        keys.release(1, 60, 50);
        keys.release(1, 0, 10);
        assert!(matches!(
            keys.admit(key(Some(100)), 1, 0).await,
            Err(LimitError::Tokens)
        ));
    }
}
