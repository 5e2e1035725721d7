//! Change fan-out between instances on one PostgreSQL database.
//!
//! After an admin change is written, the instance that made it publishes a small typed notice
//! on one `LISTEN/NOTIFY` channel; every other instance's listener applies it to its actors
//! (key cache invalidation, pool upsert/remove, settings reload), typically within
//! milliseconds. A listener that loses its connection reconnects and resynchronises in full
//! (every cached key forgotten, accounts and settings re-read), since notices sent meanwhile
//! are lost. On SQLite (one instance by nature) nothing is published and no listener runs.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement};
use serde::{Deserialize, Serialize};

use crate::actors::account_pool::AccountPoolHandle;
use crate::actors::key_cache::KeyCacheHandle;
use crate::db::account;
use crate::settings::SettingsStore;

/// The one channel every instance listens on.
pub const CHANNEL: &str = "gpt2api_changes";
/// The `application_name` of the listener's connection (visible in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "gpt2api-listener";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    KeyChanged {
        id: i32,
    },
    KeyDeleted {
        id: i32,
    },
    AccountChanged {
        id: i32,
    },
    AccountDeleted {
        id: i32,
    },
    /// Many accounts at once (an import): the pool re-reads them all.
    AccountsChanged,
    SettingsChanged,
}

/// The payload on the channel: the change and the instance that made it.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    origin: uuid::Uuid,
    change: Change,
}

/// The listener's state, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// SQLite: no listener.
    Disabled,
    Connecting,
    Listening,
}

impl ListenerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Connecting => "connecting",
            Self::Listening => "listening",
        }
    }
}

#[derive(Default)]
struct Status {
    state: AtomicU8,
    received: AtomicU64,
    applied: AtomicU64,
    resyncs: AtomicU64,
}

/// Publishes this instance's changes and reports the listener's state and counts.
#[derive(Clone)]
pub struct Changes {
    db: DatabaseConnection,
    origin: uuid::Uuid,
    enabled: bool,
    status: Arc<Status>,
}

impl Changes {
    /// Publishes on PostgreSQL only.
    pub fn new(db: DatabaseConnection) -> Self {
        let enabled = db.get_database_backend() == DbBackend::Postgres;
        let status = Status::default();
        status.state.store(
            if enabled {
                ListenerState::Connecting as u8
            } else {
                ListenerState::Disabled as u8
            },
            Ordering::Relaxed,
        );
        Self {
            db,
            origin: uuid::Uuid::new_v4(),
            enabled,
            status: Arc::new(status),
        }
    }

    /// Tells the other instances of a change already written. A failure is logged only: the
    /// change is stored, and the others catch up by their periodic revalidation.
    pub async fn publish(&self, change: Change) {
        if !self.enabled {
            return;
        }
        let Ok(payload) = serde_json::to_string(&Notice {
            origin: self.origin,
            change,
        }) else {
            return;
        };
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload.into()],
        );
        if let Err(e) = self.db.execute(statement).await {
            tracing::warn!(error = %e, ?change, "cannot publish a change to the other instances");
        }
    }

    pub fn state(&self) -> ListenerState {
        match self.status.state.load(Ordering::Relaxed) {
            x if x == ListenerState::Listening as u8 => ListenerState::Listening,
            x if x == ListenerState::Connecting as u8 => ListenerState::Connecting,
            _ => ListenerState::Disabled,
        }
    }

    fn set_state(&self, state: ListenerState) {
        self.status.state.store(state as u8, Ordering::Relaxed);
    }

    /// Notices received from other instances.
    pub fn received(&self) -> u64 {
        self.status.received.load(Ordering::Relaxed)
    }

    /// Notices applied to this instance's actors.
    pub fn applied(&self) -> u64 {
        self.status.applied.load(Ordering::Relaxed)
    }

    /// Full resynchronisations done (one per connection of the listener).
    pub fn resyncs(&self) -> u64 {
        self.status.resyncs.load(Ordering::Relaxed)
    }
}

/// What the listener applies changes to.
pub struct Targets {
    pub db: DatabaseConnection,
    pub keys: KeyCacheHandle,
    pub pool: AccountPoolHandle,
    pub settings: SettingsStore,
}

/// Starts the listener on PostgreSQL (once, at start-up, connected before it returns);
/// does nothing on SQLite.
pub async fn start_listener(
    changes: Changes,
    url: String,
    targets: Targets,
) -> Result<(), sea_orm::sqlx::Error> {
    if !changes.enabled {
        return Ok(());
    }
    let mut first = Some(connect(&url).await?);
    resync(&targets).await;
    changes.status.resyncs.fetch_add(1, Ordering::Relaxed);
    changes.set_state(ListenerState::Listening);
    // On the runtime itself (not the local task set): dropped, when the process stops, where
    // the connection can still be closed properly.
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let reconnected = first.is_none();
            let connected = if let Some(listener) = first.take() {
                Ok(listener)
            } else {
                changes.set_state(ListenerState::Connecting);
                connect(&url).await
            };
            let mut listener = match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "change listener cannot connect; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            // Listening before resynchronising: nothing changed meanwhile is missed.
            if reconnected {
                resync(&targets).await;
                changes.status.resyncs.fetch_add(1, Ordering::Relaxed);
                changes.set_state(ListenerState::Listening);
            }
            while let Ok(Some(notification)) = listener.try_recv().await {
                let Ok(notice) = serde_json::from_str::<Notice>(notification.payload()) else {
                    tracing::warn!("change listener: unreadable notice ignored");
                    continue;
                };
                if notice.origin == changes.origin {
                    continue;
                }
                changes.status.received.fetch_add(1, Ordering::Relaxed);
                if apply(&targets, notice.change).await {
                    changes.status.applied.fetch_add(1, Ordering::Relaxed);
                }
            }
            tracing::warn!("change listener lost its connection; reconnecting");
        }
    });
    Ok(())
}

async fn connect(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.application_name(LISTENER_APPLICATION_NAME))
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Applies one change; whether it was applied in full.
async fn apply(targets: &Targets, change: Change) -> bool {
    let result = match change {
        Change::KeyChanged { id } | Change::KeyDeleted { id } => {
            targets.keys.invalidate(id).await.map_err(|e| e.to_string())
        }
        Change::AccountChanged { id } => {
            match account::Entity::find_by_id(id).one(&targets.db).await {
                Ok(Some(row)) => targets.pool.upsert(row).await.map_err(|e| e.to_string()),
                Ok(None) => targets.pool.remove(id).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Change::AccountDeleted { id } => targets.pool.remove(id).await.map_err(|e| e.to_string()),
        Change::AccountsChanged => targets
            .pool
            .reload()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Change::SettingsChanged => targets.settings.reload().await.map_err(|e| e.to_string()),
    };
    if let Err(error) = &result {
        tracing::warn!(%error, ?change, "cannot apply a change from another instance");
    }
    result.is_ok()
}

/// Forgets every cached key and re-reads accounts and settings.
async fn resync(targets: &Targets) {
    if let Err(e) = targets.keys.invalidate_all().await {
        tracing::warn!(error = %e, "resynchronisation: cannot clear the key cache");
    }
    if let Err(e) = targets.pool.reload().await {
        tracing::warn!(error = %e, "resynchronisation: cannot reload the accounts");
    }
    if let Err(e) = targets.settings.reload().await {
        tracing::warn!(error = %e, "resynchronisation: cannot reload the settings");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_small_typed_json() {
        let notice = Notice {
            origin: uuid::Uuid::nil(),
            change: Change::KeyDeleted { id: 7 },
        };
        let text = serde_json::to_string(&notice).unwrap();
        assert_eq!(
            text,
            r#"{"origin":"00000000-0000-0000-0000-000000000000","change":{"kind":"key_deleted","id":7}}"#
        );
        let back: Notice = serde_json::from_str(&text).unwrap();
        assert_eq!(back.change, Change::KeyDeleted { id: 7 });
        let settings: Change = serde_json::from_str(r#"{"kind":"settings_changed"}"#).unwrap();
        assert_eq!(settings, Change::SettingsChanged);
    }
}
