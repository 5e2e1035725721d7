//! The key cache: API key hash -> key record, filled from the database on demand and
//! invalidated at once when a key changes or is deleted.
//!
//! Messages: [`Lookup`] (answered from memory, or after one database read on a miss),
//! [`Invalidate`] (by key id, after any admin change).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::db::api_key;
use crate::error::AppError;

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
    fn from_row(row: &api_key::Model) -> Self {
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
#[rtype(result = "Result<Option<Arc<KeyRecord>>, String>")]
pub struct Lookup(pub String);

/// Forgets a key so that its next use reads the database.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Invalidate {
    pub key_id: i32,
}

enum Entry {
    Found(Arc<KeyRecord>),
    /// A hash with no key, remembered briefly so that a client retrying a bad key does not
    /// cost a database read each time.
    Missing(std::time::Instant),
}

/// How long an unknown hash is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Most entries kept; beyond it the cache starts over (keys are few, attackers' guesses many).
const MAX_ENTRIES: usize = 100_000;

/// The key cache actor.
pub struct KeyCache {
    db: DatabaseConnection,
    entries: HashMap<String, Entry>,
    /// Key id -> hash, for invalidation by id.
    hashes: HashMap<i32, String>,
}

impl KeyCache {
    /// An empty cache reading from `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            entries: HashMap::new(),
            hashes: HashMap::new(),
        }
    }
}

impl Actor for KeyCache {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<Lookup> for KeyCache {
    type Result = ResponseActFuture<Self, Result<Option<Arc<KeyRecord>>, String>>;

    fn handle(&mut self, msg: Lookup, _: &mut Self::Context) -> Self::Result {
        match self.entries.get(&msg.0) {
            Some(Entry::Found(record)) => {
                let record = record.clone();
                return Box::pin(fut::ready(Ok(Some(record))));
            }
            Some(Entry::Missing(at)) if at.elapsed() < NEGATIVE_TTL => {
                return Box::pin(fut::ready(Ok(None)));
            }
            _ => {}
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
                let row = row.map_err(|e| e.to_string())?;
                if act.entries.len() >= MAX_ENTRIES {
                    act.entries.clear();
                    act.hashes.clear();
                }
                Ok(match row {
                    Some(row) => {
                        let record = Arc::new(KeyRecord::from_row(&row));
                        act.hashes.insert(record.id, hash.clone());
                        act.entries.insert(hash, Entry::Found(record.clone()));
                        Some(record)
                    }
                    None => {
                        act.entries
                            .insert(hash, Entry::Missing(std::time::Instant::now()));
                        None
                    }
                })
            }),
        )
    }
}

impl Handler<Invalidate> for KeyCache {
    type Result = ();

    fn handle(&mut self, msg: Invalidate, _: &mut Self::Context) {
        if let Some(hash) = self.hashes.remove(&msg.key_id) {
            self.entries.remove(&hash);
        }
        // A key created with a hash that was just guessed must not stay "missing".
        self.entries.retain(|_, e| matches!(e, Entry::Found(_)));
    }
}

/// The handlers' way to the key cache.
#[derive(Clone)]
pub struct KeyCacheHandle {
    addr: Addr<KeyCache>,
    timeout: Duration,
}

impl KeyCacheHandle {
    /// Wraps the address of a started cache.
    pub fn new(addr: Addr<KeyCache>, timeout: Duration) -> Self {
        Self { addr, timeout }
    }

    /// The record of a presented key, if it exists.
    pub async fn lookup(&self, key: &str) -> Result<Option<Arc<KeyRecord>>, AppError> {
        super::ask(&self.addr, Lookup(hash_key(key)), self.timeout, "key cache")
            .await?
            .map_err(AppError::internal)
    }

    /// Forgets a key after it changed.
    pub async fn invalidate(&self, key_id: i32) -> Result<(), AppError> {
        super::ask(&self.addr, Invalidate { key_id }, self.timeout, "key cache").await
    }

    /// Whether the actor is running.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
