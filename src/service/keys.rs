//! API keys: the typed [`KeyChanges`] a create or update may make, and [`KeyService`], which
//! owns their queries and tells the key cache about every change, so that a disabled or deleted
//! key fails its very next request.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Deserializer};

use super::{fetch_page, find_live, invalid, is_active, read, set_if, Page, PageRequest};
use crate::actors::key_cache::{admitted, hash_key, KeyCacheHandle};
use crate::changes::Change;
use crate::db::{api_key, api_log};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// What a create or `PATCH /admin/api-keys/{id}` sets. An absent field stays as it is; `null`
/// means "no limit" (or "every model", or "never expires"). Each field is validated as it is
/// read, and a wrong one is named in the error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChanges {
    /// The display name: non-empty after trimming, at most 100 characters.
    #[serde(default, deserialize_with = "name")]
    pub name: Option<String>,
    /// Whether the key may be used.
    #[serde(default, deserialize_with = "is_active")]
    pub is_active: Option<bool>,
    /// Requests per minute.
    #[serde(default, deserialize_with = "rpm_limit")]
    pub rpm_limit: Option<Option<i32>>,
    /// Requests per day.
    #[serde(default, deserialize_with = "daily_request_limit")]
    pub daily_request_limit: Option<Option<i64>>,
    /// Input plus output tokens over the key's life.
    #[serde(default, deserialize_with = "total_token_limit")]
    pub total_token_limit: Option<Option<i64>>,
    /// When the key stops working.
    #[serde(default, deserialize_with = "expires_at")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// The models the key may use; `null` or an empty list allows every model.
    #[serde(default, deserialize_with = "allowed_models")]
    pub allowed_models: Option<Option<Vec<String>>>,
}

/// Reads a name: trimmed, non-empty, at most 100 characters.
fn name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    const WHY: &str = "must be a non-empty string of at most 100 characters";
    let name: String = read(d, "name", WHY)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("name", WHY));
    }
    Ok(Some(name.to_string()))
}

/// Reads a limit: a positive whole number, or `null` for none.
fn limit<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Option<i64>, D::Error> {
    const WHY: &str = "must be a positive whole number or null";
    match read(d, field, WHY)? {
        Some(n) if n <= 0 => Err(invalid(field, WHY)),
        limit => Ok(limit),
    }
}

/// Reads `rpm_limit`, which must also fit the column (32 bits).
fn rpm_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
    limit(d, "rpm_limit")?
        .map(i32::try_from)
        .transpose()
        .map(Some)
        .map_err(|_| invalid("rpm_limit", "is too large"))
}

/// Reads `daily_request_limit`.
fn daily_request_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    limit(d, "daily_request_limit").map(Some)
}

/// Reads `total_token_limit`.
fn total_token_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    limit(d, "total_token_limit").map(Some)
}

/// Reads `expires_at`: an RFC 3339 time, or `null` for never.
fn expires_at<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<DateTime<Utc>>>, D::Error> {
    const WHY: &str = "must be an RFC 3339 time or null";
    let Some(text) = read::<_, Option<String>>(d, "expires_at", WHY)? else {
        return Ok(Some(None));
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|at| Some(Some(at.with_timezone(&Utc))))
        .map_err(|_| invalid("expires_at", WHY))
}

/// Reads `allowed_models`: trimmed names; `null` or `[]` allows every model.
fn allowed_models<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Vec<String>>>, D::Error> {
    let field = "allowed_models";
    let Some(models) =
        read::<_, Option<Vec<String>>>(d, field, "must be a list of model names or null")?
    else {
        return Ok(Some(None));
    };
    let models: Vec<String> = models.iter().map(|m| m.trim().to_string()).collect();
    if models.iter().any(String::is_empty) {
        return Err(invalid(field, "must be a list of model names"));
    }
    Ok(Some((!models.is_empty()).then_some(models)))
}

/// A key just created, with its value: the only time the value is known.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The stored row (no value, only its hash and masked form).
    pub row: api_key::Model,
    /// The full key, `sk-` and 32 characters.
    pub secret: String,
}

/// What a key has sent recently, as its limits count it: requests admitted since the start of
/// the UTC day and in the last 60 seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentRequests {
    /// Since 00:00 UTC today (what `daily_request_limit` counts).
    pub today: i64,
    /// In the last 60 seconds (what `rpm_limit` counts).
    pub last_minute: i64,
}

/// One key's count of rows, as SQL answers it.
#[derive(FromQueryResult)]
struct KeyCount {
    api_key_id: i32,
    requests: i64,
}

/// Queries and changes API keys, keeping the key cache in step.
#[derive(Clone)]
pub struct KeyService {
    db: DatabaseConnection,
    keys: KeyCacheHandle,
    changes: crate::changes::Changes,
}

impl KeyService {
    /// The service over the shared state's database and key cache.
    pub fn new(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            keys: state.keys.clone(),
            changes: state.changes.clone(),
        }
    }

    /// A page of the keys that are not deleted, newest first, optionally only those whose name
    /// contains `search`.
    pub async fn list(
        &self,
        search: Option<&str>,
        at: PageRequest,
    ) -> AppResult<Page<api_key::Model>> {
        let mut select = api_key::Entity::find().filter(api_key::Column::DeletedAt.is_null());
        if let Some(q) = search {
            select = select.filter(api_key::Column::Name.contains(q));
        }
        fetch_page(select.order_by_desc(api_key::Column::Id), &self.db, at).await
    }

    /// The key with this id, unless it is deleted.
    pub async fn get(&self, id: i32) -> AppResult<api_key::Model> {
        self.find(id).await
    }

    /// The recent requests of these keys, counted from the usage log that every instance
    /// writes (so the figures are the same whichever instance answers; they lag by at most
    /// the log's flush interval). Refused requests are not counted, as the limits do not
    /// count them. Two indexed range scans (key, time) for a whole page of keys.
    pub async fn recent_requests(&self, ids: &[i32]) -> AppResult<HashMap<i32, RecentRequests>> {
        let mut out: HashMap<i32, RecentRequests> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let now = Utc::now();
        let midnight = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |t| t.and_utc());
        let minute_ago = now - chrono::Duration::seconds(60);
        for (since, minute) in [(midnight, false), (minute_ago, true)] {
            let counts = api_log::Entity::find()
                .select_only()
                .column(api_log::Column::ApiKeyId)
                .column_as(Expr::col(api_log::Column::Id).count(), "requests")
                .filter(api_log::Column::ApiKeyId.is_in(ids.iter().copied()))
                .filter(api_log::Column::CreatedAt.gte(since))
                .filter(admitted())
                .group_by(api_log::Column::ApiKeyId)
                .into_model::<KeyCount>()
                .all(&self.db)
                .await?;
            for c in counts {
                let entry = out.entry(c.api_key_id).or_default();
                if minute {
                    entry.last_minute = c.requests;
                } else {
                    entry.today = c.requests;
                }
            }
        }
        Ok(out)
    }

    /// Creates a key (a name is required) from the operating system's generator.
    pub async fn create(&self, changes: KeyChanges) -> AppResult<NewKey> {
        if changes.name.is_none() {
            return Err(AppError::invalid_request("`name` is required"));
        }
        let secret = generate_key();
        let now = Utc::now();
        let mut model = api_key::ActiveModel {
            key_hash: Set(hash_key(&secret)),
            masked_key: Set(mask(&secret)),
            is_active: Set(true),
            tokens_used: Set(0),
            usage_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        apply(&mut model, changes)?;
        let row = model.insert(&self.db).await?;
        self.keys.invalidate(row.id).await?;
        self.changes
            .publish(Change::KeyChanged { id: row.id })
            .await;
        Ok(NewKey { row, secret })
    }

    /// The key with this id, unless it is deleted.
    async fn find(&self, id: i32) -> AppResult<api_key::Model> {
        find_live::<api_key::Entity>(&self.db, id, api_key::Column::DeletedAt, "API key").await
    }

    /// Changes a key; the cache drops its copy at once.
    pub async fn update(&self, id: i32, changes: KeyChanges) -> AppResult<api_key::Model> {
        let row = self.find(id).await?;
        let mut model: api_key::ActiveModel = row.into();
        apply(&mut model, changes)?;
        model.updated_at = Set(Utc::now());
        let row = model.update(&self.db).await?;
        self.keys.invalidate(row.id).await?;
        self.changes
            .publish(Change::KeyChanged { id: row.id })
            .await;
        Ok(row)
    }

    /// Disables and deletes a key. The row is kept (soft-deleted) so that its past log rows
    /// still name it.
    pub async fn delete(&self, id: i32) -> AppResult<()> {
        let row = self.find(id).await?;
        let id = row.id;
        let mut model: api_key::ActiveModel = row.into();
        model.deleted_at = Set(Some(Utc::now()));
        model.is_active = Set(false);
        model.update(&self.db).await?;
        self.keys.invalidate(id).await?;
        self.changes.publish(Change::KeyDeleted { id }).await;
        Ok(())
    }
}

/// Sets the fields that `changes` carries.
fn apply(model: &mut api_key::ActiveModel, changes: KeyChanges) -> AppResult<()> {
    // The models are stored as a JSON list of names.
    let allowed_models = changes
        .allowed_models
        .map(|models| models.map(|m| serde_json::to_string(&m)).transpose())
        .transpose()
        .map_err(AppError::internal)?;
    set_if(&mut model.name, changes.name);
    set_if(&mut model.is_active, changes.is_active);
    set_if(&mut model.rpm_limit, changes.rpm_limit);
    set_if(&mut model.daily_request_limit, changes.daily_request_limit);
    set_if(&mut model.total_token_limit, changes.total_token_limit);
    set_if(&mut model.expires_at, changes.expires_at);
    set_if(&mut model.allowed_models, allowed_models);
    Ok(())
}

/// A new key: `sk-` and 32 characters of `[A-Za-z0-9]` from the operating system's generator.
fn generate_key() -> String {
    format!(
        "sk-{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
    )
}

/// The shown form of a key: its first 7 and last 4 characters.
fn mask(key: &str) -> String {
    format!("{}...{}", &key[..7], &key[key.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: serde_json::Value) -> Result<KeyChanges, String> {
        serde_json::from_value(body).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_is_unchanged_and_null_is_unlimited() {
        let changes = read(json!({"rpm_limit": null, "daily_request_limit": 5})).unwrap();
        assert_eq!(changes.rpm_limit, Some(None));
        assert_eq!(changes.daily_request_limit, Some(Some(5)));
        assert_eq!(changes.total_token_limit, None);
        assert_eq!(changes.name, None);
    }

    #[test]
    fn a_wrong_field_is_named() {
        let cases = [
            (
                json!({"rpm_limit": -3}),
                "`rpm_limit` must be a positive whole number or null",
            ),
            (
                json!({"rpm_limit": "ten"}),
                "`rpm_limit` must be a positive whole number or null",
            ),
            (
                json!({"rpm_limit": 1.5}),
                "`rpm_limit` must be a positive whole number or null",
            ),
            (
                json!({"rpm_limit": 3_000_000_000i64}),
                "`rpm_limit` is too large",
            ),
            (
                json!({"is_active": "yes"}),
                "`is_active` must be true or false",
            ),
            (json!({"name": "  "}), "`name` must be a non-empty string"),
            (json!({"name": null}), "`name` must be a non-empty string"),
            (
                json!({"expires_at": "tomorrow"}),
                "`expires_at` must be an RFC 3339 time",
            ),
            (
                json!({"allowed_models": "gpt-5"}),
                "`allowed_models` must be a list",
            ),
            (
                json!({"allowed_models": [" "]}),
                "`allowed_models` must be a list",
            ),
            (json!({"colour": "red"}), "unknown field `colour`"),
        ];
        for (body, message) in cases {
            let error = read(body.clone()).unwrap_err();
            assert!(error.starts_with(message), "{body}: {error}");
        }
    }

    #[test]
    fn values_are_cleaned_as_they_are_read() {
        let changes = read(json!({
            "name": "  my app ",
            "expires_at": "2030-01-01T02:00:00+02:00",
            "allowed_models": [" gpt-5 "],
        }))
        .unwrap();
        assert_eq!(changes.name.as_deref(), Some("my app"));
        assert_eq!(
            changes.expires_at,
            Some(
                DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
                    .ok()
                    .map(|t| t.to_utc())
            )
        );
        assert_eq!(
            changes.allowed_models,
            Some(Some(vec!["gpt-5".to_string()]))
        );
        let cleared = read(json!({"allowed_models": []})).unwrap();
        assert_eq!(
            cleared.allowed_models,
            Some(None),
            "an empty list allows every model"
        );
    }
}
