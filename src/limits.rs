//! Key limits shared by every instance: requests per minute and per day counted where all
//! instances see them, so that N instances allow a key its limit, not N times it.
//!
//! - **PostgreSQL** (the default there): one row per key, window kind and window start in
//!   `key_counters`, checked and incremented by one atomic upsert per limit.
//! - **Redis** (when `limits.redis_url` is set): the same counters as Redis keys, checked and
//!   incremented by one Lua script per limit.
//! - **SQLite** without Redis: one instance by nature; the key cache counts in memory.
//!
//! The per-minute limit is a sliding window approximated from two fixed windows: the current
//! minute's count plus the previous minute's, weighted by the share of it still inside the last
//! 60 seconds. A burst that straddles a minute boundary may get at most
//! `rpm_limit × (seconds of the burst after the boundary) / 60` extra requests, rounded up (one
//! for a burst of a second or two); otherwise exactly the limit goes through. The daily limit
//! counts per UTC day, seeded from the usage log the first time a day's counter is created.
//! The token budget is checked against the stored `tokens_used` (which every instance adds to
//! as its usage log is written), so the budget overshoots at most by the requests in flight and
//! the usage not yet written (`log.flush_interval_ms`). A counter that cannot be read refuses
//! the request (503): limits fail closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::actors::key_cache::{admitted_on, KeyRecord, LimitError};

/// Where the shared counters live.
enum Store {
    Postgres,
    Redis {
        connection: redis::aio::ConnectionManager,
        prefix: String,
    },
}

/// The shared counters, or none (the key cache counts in memory).
#[derive(Clone, Default)]
pub struct Counters {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    store: Store,
    db: DatabaseConnection,
    /// Key id -> the UTC day whose counter this instance has seeded (and whose old rows it
    /// cleared).
    seeded: Mutex<HashMap<i32, NaiveDate>>,
}

const MINUTE: i64 = 60;
const DAY: i64 = 86_400;

/// The atomic check-and-increment of one PostgreSQL counter: incremented, and its new value
/// returned, only when the current count plus the weighted previous window stays under the
/// limit; no row returned means refused.
const PG_ADMIT: &str = "WITH prev AS (
    SELECT COALESCE((SELECT count FROM key_counters
        WHERE key_id = $1 AND kind = $2 AND window_start = $4), 0) AS c
)
INSERT INTO key_counters (key_id, kind, window_start, count)
SELECT $1, $2, $3, 1 FROM prev WHERE prev.c * $5 < $6
ON CONFLICT (key_id, kind, window_start)
DO UPDATE SET count = key_counters.count + 1
WHERE key_counters.count + (SELECT c FROM prev) * $5 < $6
RETURNING count";

/// The same in Redis: KEYS = current, previous window; ARGV = limit, weight, expiry seconds.
const REDIS_ADMIT: &str = r"
local limit = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur + prev * weight >= limit then return -1 end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return n
";

/// One window of one key.
struct Window {
    kind: &'static str,
    start: i64,
    length: i64,
    /// The share of the previous window still counted.
    weight: f64,
    limit: i64,
}

impl Counters {
    /// Shared counters in Redis when `redis_url` is set, else in PostgreSQL on PostgreSQL;
    /// none on SQLite. Redis is connected lazily (a Redis that does not answer refuses the
    /// requests of limited keys, it does not stop start-up).
    pub fn new(
        db: &DatabaseConnection,
        redis_url: Option<&str>,
        redis_prefix: &str,
    ) -> Result<Self, redis::RedisError> {
        let store = match redis_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => {
                let client = redis::Client::open(url)?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(1);
                let connection =
                    redis::aio::ConnectionManager::new_lazy_with_config(client, config)?;
                Store::Redis {
                    connection,
                    prefix: redis_prefix.to_string(),
                }
            }
            None if db.get_database_backend() == DbBackend::Postgres => Store::Postgres,
            None => return Ok(Self::default()),
        };
        Ok(Self {
            inner: Some(Arc::new(Inner {
                store,
                db: db.clone(),
                seeded: Mutex::new(HashMap::new()),
            })),
        })
    }

    /// Whether the counters are shared (else the key cache counts in memory).
    pub fn is_shared(&self) -> bool {
        self.inner.is_some()
    }

    /// Which store holds the counters: `postgres`, `redis` or `memory`.
    pub fn kind(&self) -> &'static str {
        match self.inner.as_deref().map(|i| &i.store) {
            Some(Store::Postgres) => "postgres",
            Some(Store::Redis { .. }) => "redis",
            None => "memory",
        }
    }

    /// Counts one request of `key` against its shared limits, or says which one refuses it.
    pub async fn admit(&self, key: &KeyRecord) -> Result<(), LimitError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if key.rpm_limit.is_none()
            && key.daily_request_limit.is_none()
            && key.total_token_limit.is_none()
        {
            return Ok(());
        }
        inner.admit(key).await.map_err(|e| {
            tracing::error!(key_id = key.id, error = %e, "cannot read a key's limit counters; request refused");
            LimitError::Unavailable
        })?
    }
}

/// A counter store that did not answer.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl Inner {
    async fn admit(&self, key: &KeyRecord) -> Result<Result<(), LimitError>, StoreError> {
        let now = Utc::now();
        let seconds = now.timestamp_millis() as f64 / 1000.0;
        let today = now.date_naive();
        if let Some(limit) = key.total_token_limit {
            // What every instance has written of the key's usage.
            let row = self
                .db
                .query_one(Statement::from_sql_and_values(
                    self.db.get_database_backend(),
                    if self.db.get_database_backend() == DbBackend::Postgres {
                        "SELECT tokens_used FROM api_keys WHERE id = $1"
                    } else {
                        "SELECT tokens_used FROM api_keys WHERE id = ?"
                    },
                    [key.id.into()],
                ))
                .await?;
            let used: i64 = match row {
                Some(row) => row.try_get("", "tokens_used")?,
                None => 0,
            };
            if used >= limit {
                return Ok(Err(LimitError::Tokens));
            }
        }
        let minute = key.rpm_limit.map(|limit| {
            let start = (seconds as i64).div_euclid(MINUTE) * MINUTE;
            Window {
                kind: "minute",
                start,
                length: MINUTE,
                weight: 1.0 - (seconds - start as f64) / MINUTE as f64,
                limit: i64::from(limit.max(0)),
            }
        });
        let day = key.daily_request_limit.map(|limit| Window {
            kind: "day",
            start: (seconds as i64).div_euclid(DAY) * DAY,
            length: DAY,
            weight: 0.0,
            limit,
        });
        if minute.is_some() || day.is_some() {
            self.housekeeping(key.id, today, day.as_ref()).await?;
        }
        if let Some(minute) = &minute {
            if !self.increment(key.id, minute).await? {
                let next = minute.start + MINUTE;
                return Ok(Err(LimitError::PerMinute {
                    retry_after: ((next as f64 - seconds).ceil() as u64).max(1),
                }));
            }
        }
        if let Some(day) = &day {
            if !self.increment(key.id, day).await? {
                if let Some(minute) = &minute {
                    // The minute's slot goes back: the request is not sent.
                    self.decrement(key.id, minute).await?;
                }
                let next = day.start + DAY;
                return Ok(Err(LimitError::PerDay {
                    retry_after: ((next as f64 - seconds).ceil() as u64).max(1),
                }));
            }
        }
        Ok(Ok(()))
    }

    /// Whether the window had room (and now counts one more).
    async fn increment(&self, key_id: i32, window: &Window) -> Result<bool, StoreError> {
        match &self.store {
            Store::Postgres => {
                let row = self
                    .db
                    .query_one(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        PG_ADMIT,
                        [
                            key_id.into(),
                            window.kind.into(),
                            window.start.into(),
                            (window.start - window.length).into(),
                            window.weight.into(),
                            (window.limit as f64).into(),
                        ],
                    ))
                    .await?;
                Ok(row.is_some())
            }
            Store::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let result: i64 = redis::Script::new(REDIS_ADMIT)
                    .key(redis_key(prefix, key_id, window.kind, window.start))
                    .key(redis_key(
                        prefix,
                        key_id,
                        window.kind,
                        window.start - window.length,
                    ))
                    .arg(window.limit)
                    .arg(window.weight)
                    .arg(window.length * 2)
                    .invoke_async(&mut connection)
                    .await?;
                Ok(result >= 0)
            }
        }
    }

    async fn decrement(&self, key_id: i32, window: &Window) -> Result<(), StoreError> {
        match &self.store {
            Store::Postgres => {
                self.db
                    .execute(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "UPDATE key_counters SET count = count - 1 \
                         WHERE key_id = $1 AND kind = $2 AND window_start = $3 AND count > 0",
                        [key_id.into(), window.kind.into(), window.start.into()],
                    ))
                    .await?;
            }
            Store::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let _: i64 = redis::cmd("DECR")
                    .arg(redis_key(prefix, key_id, window.kind, window.start))
                    .query_async(&mut connection)
                    .await?;
            }
        }
        Ok(())
    }

    /// The first time this instance counts a key on a day: the day's counter starts from what
    /// the usage log holds (unless another instance created it), and old counters are removed.
    async fn housekeeping(
        &self,
        key_id: i32,
        today: NaiveDate,
        day: Option<&Window>,
    ) -> Result<(), StoreError> {
        let done = self
            .seeded
            .lock()
            .is_ok_and(|seeded| seeded.get(&key_id) == Some(&today));
        if done {
            return Ok(());
        }
        let logged = match day {
            Some(_) => admitted_on(&self.db, key_id, today).await?,
            None => 0,
        };
        let today_start = (Utc::now().timestamp()).div_euclid(DAY) * DAY;
        match (&self.store, day) {
            (Store::Postgres, _) => {
                if let Some(day) = day {
                    self.db
                        .execute(Statement::from_sql_and_values(
                            DbBackend::Postgres,
                            "INSERT INTO key_counters (key_id, kind, window_start, count) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                            [
                                key_id.into(),
                                day.kind.into(),
                                day.start.into(),
                                logged.into(),
                            ],
                        ))
                        .await?;
                }
                self.db
                    .execute(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "DELETE FROM key_counters WHERE key_id = $1 AND window_start < $2",
                        [key_id.into(), (today_start - DAY).into()],
                    ))
                    .await?;
            }
            (Store::Redis { .. }, None) => {}
            (Store::Redis { connection, prefix }, Some(day)) => {
                let mut connection = connection.clone();
                let _: Option<String> = redis::cmd("SET")
                    .arg(redis_key(prefix, key_id, day.kind, day.start))
                    .arg(logged)
                    .arg("NX")
                    .arg("EX")
                    .arg(DAY * 2)
                    .query_async(&mut connection)
                    .await?;
            }
        }
        if let Ok(mut seeded) = self.seeded.lock() {
            seeded.insert(key_id, today);
        }
        Ok(())
    }
}

fn redis_key(prefix: &str, key_id: i32, kind: &str, start: i64) -> String {
    format!("{prefix}:key:{key_id}:{kind}:{start}")
}
