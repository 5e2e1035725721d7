//! The response store: `/v1/responses` answers kept in the database (encrypted), so that
//! `previous_response_id`, `item_reference` items and `GET/DELETE /v1/responses/{id}` work over a
//! backend that stores nothing, and so that instances sharing a database share them.
//!
//! Every read is scoped to the API key that made the response: another key's id is as unknown as
//! one that never existed. Rows expire after `responses.retention_hours` (the retention job
//! deletes them) and each key keeps at most `responses.max_per_key` (the oldest go first).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::Value;

use crate::codex::expand::item_id;
use crate::config::ResponsesConfig;
use crate::crypto::{Cipher, CryptoError};
use crate::db::{response_item, stored_response};

/// Why a stored response could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `responses.store = false`: nothing is kept, so nothing can be continued or read.
    #[error("stored responses are turned off on this gateway")]
    Disabled,
    /// Unknown, expired, deleted, or made with another API key.
    #[error("response '{0}' not found")]
    NotFound(String),
    /// The row cannot be decrypted (a different encryption key) or parsed.
    #[error("stored response cannot be read: {0}")]
    Unreadable(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl From<CryptoError> for StoreError {
    fn from(e: CryptoError) -> Self {
        StoreError::Unreadable(e.to_string())
    }
}

/// A stored response, decrypted.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The response id.
    pub id: String,
    /// The account that served it.
    pub account_id: Option<i32>,
    /// The full input as sent upstream.
    pub input: Vec<Value>,
    /// The response object as the client received it.
    pub response: Value,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl StoredResponse {
    /// The output items of the response.
    pub fn output(&self) -> &[Value] {
        self.response
            .get("output")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// What to store after a response completed.
#[derive(Debug, Clone)]
pub struct NewResponse<'a> {
    pub api_key_id: i32,
    pub account_id: Option<i32>,
    pub model: &'a str,
    /// The full input as sent upstream.
    pub input: &'a [Value],
    /// The response object as the client received it (its `id` is the row's).
    pub response: &'a Value,
}

/// Reads and writes stored responses. Cheap to clone.
#[derive(Clone)]
pub struct ResponseStore {
    db: DatabaseConnection,
    cipher: Arc<Cipher>,
    config: ResponsesConfig,
}

impl ResponseStore {
    /// A store over `db`, sealing content with `cipher`.
    pub fn new(db: DatabaseConnection, cipher: Arc<Cipher>, config: ResponsesConfig) -> Self {
        Self { db, cipher, config }
    }

    /// Whether responses are stored at all.
    pub fn enabled(&self) -> bool {
        self.config.store
    }

    /// Keeps a completed response, then trims the key's oldest beyond the cap.
    pub async fn save(&self, new: NewResponse<'_>) -> Result<(), StoreError> {
        if !self.enabled() {
            return Err(StoreError::Disabled);
        }
        let Some(id) = new.response.get("id").and_then(Value::as_str) else {
            return Err(StoreError::Unreadable("the response has no id".into()));
        };
        let now = Utc::now();
        let expires_at = now + chrono::Duration::hours(self.config.retention_hours as i64);
        let input_json =
            serde_json::to_vec(new.input).map_err(|e| StoreError::Unreadable(e.to_string()))?;
        let response_json =
            serde_json::to_vec(new.response).map_err(|e| StoreError::Unreadable(e.to_string()))?;
        let output: &[Value] = new
            .response
            .get("output")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let items: Vec<response_item::ActiveModel> = new
            .input
            .iter()
            .chain(output)
            .enumerate()
            .map(|(position, item)| response_item::ActiveModel {
                response_id: Set(id.to_owned()),
                position: Set(position as i32),
                api_key_id: Set(new.api_key_id),
                item_id: Set(item_id(item, || generated_item_id(id, position))),
            })
            .collect();
        let row = stored_response::ActiveModel {
            id: Set(id.to_owned()),
            api_key_id: Set(new.api_key_id),
            account_id: Set(new.account_id),
            model: Set(new.model.to_owned()),
            input: Set(self.cipher.seal(&input_json)),
            response: Set(self.cipher.seal(&response_json)),
            created_at: Set(now),
            expires_at: Set(expires_at),
        };
        let txn = self.db.begin().await?;
        // The same id twice (a client replaying a stream) keeps the latest.
        response_item::Entity::delete_many()
            .filter(response_item::Column::ResponseId.eq(id))
            .exec(&txn)
            .await?;
        stored_response::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        stored_response::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
        crate::db::insert_chunked(&txn, items).await?;
        txn.commit().await?;
        self.trim(new.api_key_id).await?;
        Ok(())
    }

    /// The stored response `id` of this API key.
    pub async fn get(&self, api_key_id: i32, id: &str) -> Result<StoredResponse, StoreError> {
        if !self.enabled() {
            return Err(StoreError::Disabled);
        }
        let row = stored_response::Entity::find_by_id(id.to_owned())
            .filter(stored_response::Column::ApiKeyId.eq(api_key_id))
            .filter(stored_response::Column::ExpiresAt.gt(Utc::now()))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        self.open(row)
    }

    /// The input items of a stored response, each with the id it is listed and referenced by.
    pub async fn input_items(&self, api_key_id: i32, id: &str) -> Result<Vec<Value>, StoreError> {
        let stored = self.get(api_key_id, id).await?;
        let ids: HashMap<i32, String> = response_item::Entity::find()
            .filter(response_item::Column::ResponseId.eq(id))
            .filter(response_item::Column::Position.lt(stored.input.len() as i32))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.position, row.item_id))
            .collect();
        Ok(stored
            .input
            .into_iter()
            .enumerate()
            .map(|(position, mut item)| {
                if let (Some(obj), Some(item_id)) =
                    (item.as_object_mut(), ids.get(&(position as i32)))
                {
                    obj.entry("id")
                        .or_insert_with(|| Value::from(item_id.clone()));
                }
                item
            })
            .collect())
    }

    /// Deletes the stored response `id` of this API key.
    pub async fn delete(&self, api_key_id: i32, id: &str) -> Result<(), StoreError> {
        if !self.enabled() {
            return Err(StoreError::Disabled);
        }
        let txn = self.db.begin().await?;
        let deleted = stored_response::Entity::delete_many()
            .filter(stored_response::Column::Id.eq(id))
            .filter(stored_response::Column::ApiKeyId.eq(api_key_id))
            .filter(stored_response::Column::ExpiresAt.gt(Utc::now()))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        response_item::Entity::delete_many()
            .filter(response_item::Column::ResponseId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The stored items of this API key named by `ids` (input and output items alike); ids that
    /// name nothing are left out.
    pub async fn find_items(
        &self,
        api_key_id: i32,
        ids: &[String],
    ) -> Result<HashMap<String, Value>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        if !self.enabled() {
            return Err(StoreError::Disabled);
        }
        let mut found = HashMap::new();
        // Newest first, so an item resent in a later turn is taken from the latest response.
        let places = response_item::Entity::find()
            .filter(response_item::Column::ApiKeyId.eq(api_key_id))
            .filter(response_item::Column::ItemId.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await?;
        let mut by_response: HashMap<String, Vec<(i32, String)>> = HashMap::new();
        for place in places {
            by_response
                .entry(place.response_id)
                .or_default()
                .push((place.position, place.item_id));
        }
        let rows = stored_response::Entity::find()
            .filter(stored_response::Column::Id.is_in(by_response.keys().cloned()))
            .filter(stored_response::Column::ApiKeyId.eq(api_key_id))
            .filter(stored_response::Column::ExpiresAt.gt(Utc::now()))
            .order_by_desc(stored_response::Column::CreatedAt)
            .all(&self.db)
            .await?;
        for row in rows {
            let Some(wanted) = by_response.remove(&row.id) else {
                continue;
            };
            let stored = self.open(row)?;
            let all: Vec<&Value> = stored.input.iter().chain(stored.output()).collect();
            for (position, item_id) in wanted {
                if let Some(item) = all.get(position as usize) {
                    found.entry(item_id).or_insert_with(|| (*item).clone());
                }
            }
        }
        Ok(found)
    }

    /// Deletes expired responses, `batch` per statement; returns how many went.
    pub async fn purge_expired(&self, batch: u64) -> Result<u64, DbErr> {
        let mut deleted = 0;
        loop {
            let ids: Vec<String> = stored_response::Entity::find()
                .select_only()
                .column(stored_response::Column::Id)
                .filter(stored_response::Column::ExpiresAt.lte(Utc::now()))
                .limit(batch.max(1))
                .into_tuple()
                .all(&self.db)
                .await?;
            if ids.is_empty() {
                break;
            }
            deleted += self.delete_rows(&ids).await?;
            if (ids.len() as u64) < batch.max(1) {
                break;
            }
        }
        Ok(deleted)
    }

    /// Keeps the key's newest `max_per_key` responses.
    async fn trim(&self, api_key_id: i32) -> Result<(), DbErr> {
        let count = stored_response::Entity::find()
            .filter(stored_response::Column::ApiKeyId.eq(api_key_id))
            .count(&self.db)
            .await?;
        let Some(excess) = count
            .checked_sub(self.config.max_per_key)
            .filter(|n| *n > 0)
        else {
            return Ok(());
        };
        let ids: Vec<String> = stored_response::Entity::find()
            .select_only()
            .column(stored_response::Column::Id)
            .filter(stored_response::Column::ApiKeyId.eq(api_key_id))
            .order_by_asc(stored_response::Column::CreatedAt)
            .limit(excess)
            .into_tuple()
            .all(&self.db)
            .await?;
        self.delete_rows(&ids).await?;
        Ok(())
    }

    async fn delete_rows(&self, ids: &[String]) -> Result<u64, DbErr> {
        let txn = self.db.begin().await?;
        response_item::Entity::delete_many()
            .filter(response_item::Column::ResponseId.is_in(ids.iter().cloned()))
            .exec(&txn)
            .await?;
        let result = stored_response::Entity::delete_many()
            .filter(stored_response::Column::Id.is_in(ids.iter().cloned()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(result.rows_affected)
    }

    fn open(&self, row: stored_response::Model) -> Result<StoredResponse, StoreError> {
        let unreadable = |e: serde_json::Error| StoreError::Unreadable(e.to_string());
        let input: Vec<Value> =
            serde_json::from_slice(&self.cipher.open(&row.input)?).map_err(unreadable)?;
        let response: Value =
            serde_json::from_slice(&self.cipher.open(&row.response)?).map_err(unreadable)?;
        Ok(StoredResponse {
            id: row.id,
            account_id: row.account_id,
            input,
            response,
            created_at: row.created_at,
        })
    }
}

/// The id a stored input item without one is listed under: stable for its response and place.
fn generated_item_id(response_id: &str, position: usize) -> String {
    let suffix = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("msg_{suffix}_{position}")
}
