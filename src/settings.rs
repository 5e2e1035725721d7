//! Runtime settings: the values that are safe to change while the gateway runs.
//!
//! Start-up values come from the configuration; values saved from the console are kept in the
//! `settings` table and win over the configuration on the next start.

use chrono::Utc;
use sea_orm::{
    sea_query::OnConflict, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Config;
pub use crate::config::Strategy;
use crate::db::setting;

/// Why a settings change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A key that is unknown or whose value is wrong; nothing changed.
    #[error("`{key}` {why}")]
    Invalid { key: String, why: String },
    /// Storing the settings failed; nothing changed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// The live settings, as `GET /admin/settings` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSettings {
    pub strategy: Strategy,
    pub max_retries: u32,
    pub refresh_lead_seconds: u64,
    pub log_retention_days: u32,
    pub transient_cooldown_seconds: u64,
    pub forbidden_cooldown_seconds: u64,
    /// How long a request whose account's token was refused waits for the refresh, when no
    /// other account can serve it (0: never waits).
    pub refresh_wait_seconds: u64,
    /// Transient failures of one account within `breaker_window_seconds` that open its
    /// circuit breaker.
    pub breaker_failures: u32,
    /// The window over which the breaker counts failures.
    pub breaker_window_seconds: u64,
    /// How long an open breaker keeps its account out before one trial request.
    pub breaker_open_seconds: u64,
    /// How long a conversation's pin to its account lasts unused.
    pub affinity_ttl_seconds: u64,
    /// An account with either usage window at or above this percent is skipped until the
    /// window resets.
    pub quota_ceiling_percent: f64,
    /// How often an idle account's usage windows are probed (0: never).
    pub usage_probe_interval_seconds: u64,
}

impl RuntimeSettings {
    /// The start-up values from the configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            strategy: config.pool.strategy,
            max_retries: config.pool.max_retries,
            refresh_lead_seconds: config.pool.refresh_lead_seconds,
            log_retention_days: config.retention.log_retention_days,
            transient_cooldown_seconds: config.pool.transient_cooldown_seconds,
            forbidden_cooldown_seconds: config.pool.forbidden_cooldown_seconds,
            refresh_wait_seconds: config.pool.refresh_wait_seconds,
            breaker_failures: config.pool.breaker_failures,
            breaker_window_seconds: config.pool.breaker_window_seconds,
            breaker_open_seconds: config.pool.breaker_open_seconds,
            affinity_ttl_seconds: config.pool.affinity_ttl_seconds,
            quota_ceiling_percent: config.pool.quota_ceiling_percent,
            usage_probe_interval_seconds: config.pool.usage_probe_interval_seconds,
        }
    }

    /// The configuration's values overlaid with those saved in the database.
    pub async fn load(db: &DatabaseConnection, config: &Config) -> Result<Self, DbErr> {
        let mut current = serde_json::to_value(Self::from_config(config))
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        for row in setting::Entity::find().all(db).await? {
            if let (Some(map), Ok(value)) = (
                current.as_object_mut(),
                serde_json::from_str::<Value>(&row.value),
            ) {
                if map.contains_key(&row.key) {
                    map.insert(row.key, value);
                }
            }
        }
        match serde_json::from_value::<Self>(current) {
            Ok(settings) if settings.validate().is_ok() => Ok(settings),
            // A row that no longer validates (an older version's value) is ignored as a whole.
            _ => Ok(Self::from_config(config)),
        }
    }

    /// Applies a partial update: every key must be known and valid, or nothing changes.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Self, SettingsError> {
        let mut fields = self.to_map();
        for (key, value) in patch {
            if !fields.contains_key(key) {
                return Err(invalid(key, "is not a runtime setting"));
            }
            fields.insert(key.clone(), value.clone());
        }
        let next: Self = serde_json::from_value(Value::Object(fields)).map_err(|e| {
            let key = patch.keys().next().map_or("settings", String::as_str);
            let key = patch
                .keys()
                .find(|k| e.to_string().contains(k.as_str()))
                .map_or(key, String::as_str);
            invalid(
                key,
                &format!("has the wrong type ({})", first_clause(&e.to_string())),
            )
        })?;
        next.validate()?;
        Ok(next)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.max_retries > 10 {
            return Err(invalid("max_retries", "must be between 0 and 10"));
        }
        if !(60..=30 * 86_400).contains(&self.refresh_lead_seconds) {
            return Err(invalid(
                "refresh_lead_seconds",
                "must be between 60 and 2592000 (30 days)",
            ));
        }
        if !(1..=3650).contains(&self.log_retention_days) {
            return Err(invalid("log_retention_days", "must be between 1 and 3650"));
        }
        if !(1..=86_400).contains(&self.transient_cooldown_seconds) {
            return Err(invalid(
                "transient_cooldown_seconds",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=7 * 86_400).contains(&self.forbidden_cooldown_seconds) {
            return Err(invalid(
                "forbidden_cooldown_seconds",
                "must be between 1 and 604800",
            ));
        }
        if self.refresh_wait_seconds > 120 {
            return Err(invalid("refresh_wait_seconds", "must be between 0 and 120"));
        }
        if !(1..=1000).contains(&self.breaker_failures) {
            return Err(invalid("breaker_failures", "must be between 1 and 1000"));
        }
        if !(1..=86_400).contains(&self.breaker_window_seconds) {
            return Err(invalid(
                "breaker_window_seconds",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=86_400).contains(&self.breaker_open_seconds) {
            return Err(invalid(
                "breaker_open_seconds",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=7 * 86_400).contains(&self.affinity_ttl_seconds) {
            return Err(invalid(
                "affinity_ttl_seconds",
                "must be between 1 and 604800",
            ));
        }
        if !(1.0..=100.0).contains(&self.quota_ceiling_percent) {
            return Err(invalid(
                "quota_ceiling_percent",
                "must be between 1 and 100",
            ));
        }
        if self.usage_probe_interval_seconds > 86_400 {
            return Err(invalid(
                "usage_probe_interval_seconds",
                "must be between 0 (never) and 86400",
            ));
        }
        Ok(())
    }

    /// Every setting by its key, as the console shows them.
    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A struct of plain fields always serialises to an object.
            _ => Map::new(),
        }
    }

    /// Writes every setting to the database.
    pub async fn save(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let now = Utc::now();
        let rows: Vec<setting::ActiveModel> = self
            .to_map()
            .into_iter()
            .map(|(key, value)| setting::ActiveModel {
                key: Set(key),
                value: Set(value.to_string()),
                updated_at: Set(now),
            })
            .collect();
        setting::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(setting::Column::Key)
                    .update_columns([setting::Column::Value, setting::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec(db)
            .await?;
        Ok(())
    }
}

fn invalid(key: &str, why: &str) -> SettingsError {
    SettingsError::Invalid {
        key: key.to_owned(),
        why: why.to_owned(),
    }
}

fn first_clause(text: &str) -> &str {
    text.split(" at line").next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> RuntimeSettings {
        RuntimeSettings::from_config(&Config::default())
    }

    #[test]
    fn patch_applies_known_valid_keys() {
        let patch = json!({"strategy": "least_used", "max_retries": 2});
        let next = base().patched(patch.as_object().unwrap()).unwrap();
        assert_eq!(next.strategy, Strategy::LeastUsed);
        assert_eq!(next.max_retries, 2);
    }

    #[test]
    fn patch_rejects_unknown_bad_and_out_of_range() {
        for (patch, key) in [
            (json!({"nope": 1}), "nope"),
            (json!({"strategy": "random"}), "strategy"),
            (json!({"max_retries": 99}), "max_retries"),
            (json!({"log_retention_days": "ten"}), "log_retention_days"),
        ] {
            let err = base().patched(patch.as_object().unwrap()).unwrap_err();
            assert!(matches!(err, SettingsError::Invalid { .. }), "{err}");
            assert!(err.to_string().contains(key), "{err} should name {key}");
        }
    }
}

/// The current runtime settings, shared by the handlers; changes are saved first, then
/// published to every subscriber (the actors receive them as messages).
#[derive(Clone)]
pub struct SettingsStore {
    current: std::sync::Arc<tokio::sync::watch::Sender<RuntimeSettings>>,
    db: DatabaseConnection,
    /// Serialises updates so that two concurrent PATCHes cannot interleave load and save.
    update: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The start-up configuration, under the saved values on a reload.
    config: std::sync::Arc<Config>,
}

impl SettingsStore {
    /// Loads the settings (configuration overlaid with saved values).
    pub async fn load(db: DatabaseConnection, config: &Config) -> Result<Self, DbErr> {
        let settings = RuntimeSettings::load(&db, config).await?;
        Ok(Self {
            current: std::sync::Arc::new(tokio::sync::watch::channel(settings).0),
            db,
            update: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            config: std::sync::Arc::new(config.clone()),
        })
    }

    /// Re-reads the saved settings (another instance changed them) and publishes them when
    /// they differ.
    pub async fn reload(&self) -> Result<(), DbErr> {
        let _guard = self.update.lock().await;
        let next = RuntimeSettings::load(&self.db, &self.config).await?;
        self.current.send_if_modified(|current| {
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
        Ok(())
    }

    /// The settings in force.
    pub fn get(&self) -> RuntimeSettings {
        self.current.borrow().clone()
    }

    /// A receiver that sees every change, for the actors' forwarding tasks.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<RuntimeSettings> {
        self.current.subscribe()
    }

    /// Validates and applies a partial update; on any error nothing changes.
    pub async fn update(
        &self,
        patch: &Map<String, Value>,
    ) -> Result<RuntimeSettings, SettingsError> {
        let _guard = self.update.lock().await;
        let next = self.get().patched(patch)?;
        next.save(&self.db).await?;
        self.current.send_replace(next.clone());
        Ok(next)
    }
}
