//! The audit log: one row per admin action that changed something (sign-ins, keys, accounts,
//! imports, settings, admins, second factors...), with who did it, their role, what, on what,
//! a summary of the change (never a secret) and the client's address.
//!
//! Anyone records through an [`AuditHandle`]: `record` never waits. Entries go through a
//! bounded channel to one writer task that inserts them in batches; when the channel is full
//! the entry is dropped and counted (`dropped`, also in the log), never lost silently. A write
//! that fails is retried with back-off a few times, then counted as `failed`.
//!
//! Most entries are written by the `/admin` policy middleware for every successful change (see
//! [`crate::http::policy`]); a handler adds details by putting an [`AuditDetail`] in its
//! response's extensions. Sign-in steps, which have no session yet, record directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::NotSet, DatabaseConnection, DbErr, EntityTrait, Set, TransactionTrait};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::db::audit_log;

/// Field names whose values are never written to an audit row, whatever the caller passes.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "current_password",
    "new_password",
    "key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "secret",
    "code",
    "recovery_codes",
    "challenge",
    "redirect_url",
    "otpauth_uri",
    "proxy_url",
];

/// One action to record.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub created_at: DateTime<Utc>,
    pub actor_id: Option<i32>,
    pub actor: String,
    pub role: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// A JSON object; fields named like secrets are removed before it is stored.
    pub summary: Value,
    pub client_ip: Option<String>,
}

impl AuditEntry {
    /// An entry by `actor` (id and role when known) for `action`, now.
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            created_at: Utc::now(),
            actor_id: None,
            actor: actor.into(),
            role: None,
            action: action.into(),
            target: None,
            summary: Value::Object(serde_json::Map::new()),
            client_ip: None,
        }
    }

    /// The signed-in admin who acted.
    #[must_use]
    pub fn by(mut self, id: i32, role: &str) -> Self {
        self.actor_id = Some(id);
        self.role = Some(role.to_string());
        self
    }

    /// What was acted on.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The summary of the change.
    #[must_use]
    pub fn summary(mut self, summary: Value) -> Self {
        self.summary = summary;
        self
    }

    /// The client's address.
    #[must_use]
    pub fn from_ip(mut self, ip: impl Into<String>) -> Self {
        self.client_ip = Some(ip.into());
        self
    }
}

/// Details a handler adds to the row the policy middleware writes for its request: put it in
/// the response's extensions.
#[derive(Debug, Clone)]
pub struct AuditDetail {
    /// Overrides the action derived from the route, when set.
    pub action: Option<String>,
    /// Overrides the target derived from the path, when set.
    pub target: Option<String>,
    pub summary: Value,
}

impl AuditDetail {
    /// A summary for the row.
    pub fn summary(summary: Value) -> Self {
        Self {
            action: None,
            target: None,
            summary,
        }
    }

    /// The row's target.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
}

/// Removes the values of secret-named fields, at any depth.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) {
                    *field = Value::String("[redacted]".into());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

enum Message {
    Record(Box<AuditEntry>),
    Flush(oneshot::Sender<()>),
}

/// Counters of the writer.
#[derive(Debug, Default)]
pub struct AuditStats {
    pub written: AtomicU64,
    /// Entries refused because the channel was full.
    pub dropped: AtomicU64,
    /// Entries whose write failed after the retries.
    pub failed: AtomicU64,
}

/// Records audit entries; cheap to clone.
#[derive(Clone)]
pub struct AuditHandle {
    tx: mpsc::Sender<Message>,
    stats: Arc<AuditStats>,
}

/// Entries written per statement at most.
const BATCH: usize = 100;
/// Attempts of one batch before it is given up (and counted).
const ATTEMPTS: u32 = 5;

impl AuditHandle {
    /// Starts the writer with a channel of `capacity` entries.
    pub fn start(db: DatabaseConnection, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(AuditStats::default());
        // A task of the runtime (not of the current arbiter's local set), so that a write cut
        // short at shutdown is dropped where its database connection can go back to the pool.
        tokio::spawn(write_loop(db, rx, stats.clone()));
        Self { tx, stats }
    }

    /// Records an entry without waiting; a full channel drops it and counts the drop.
    pub fn record(&self, mut entry: AuditEntry) {
        redact(&mut entry.summary);
        if self.tx.try_send(Message::Record(Box::new(entry))).is_err() {
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped, "audit log channel full: an entry was dropped");
        }
    }

    /// Waits until every entry recorded before is written (or given up).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }
}

async fn write_loop(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<Message>,
    stats: Arc<AuditStats>,
) {
    let mut batch: Vec<AuditEntry> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        let mut waiters = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(entry) => batch.push(*entry),
                Message::Flush(done) => waiters.push(done),
            }
            if batch.len() >= BATCH {
                write(&db, &mut batch, &stats).await;
            }
            next = rx.try_recv().ok();
        }
        write(&db, &mut batch, &stats).await;
        for done in waiters {
            let _ = done.send(());
        }
    }
}

async fn write(db: &DatabaseConnection, batch: &mut Vec<AuditEntry>, stats: &AuditStats) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        match insert(db, batch).await {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                return;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "cannot write audit entries; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                let failed = stats
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed)
                    + batch.len() as u64;
                tracing::error!(error = %e, failed, "audit entries could not be written");
            }
        }
    }
    batch.clear();
}

async fn insert(db: &DatabaseConnection, batch: &[AuditEntry]) -> Result<(), DbErr> {
    let rows: Vec<_> = batch
        .iter()
        .map(|e| audit_log::ActiveModel {
            id: NotSet,
            created_at: Set(e.created_at),
            actor_id: Set(e.actor_id),
            actor: Set(e.actor.clone()),
            role: Set(e.role.clone()),
            action: Set(e.action.clone()),
            target: Set(e.target.clone()),
            summary: Set(e.summary.to_string()),
            client_ip: Set(e.client_ip.clone()),
        })
        .collect();
    let txn = db.begin().await?;
    crate::db::insert_chunked(&txn, rows).await?;
    txn.commit().await
}

/// Deletes audit rows older than `days`, `batch` rows per statement; returns how many went.
pub async fn purge(db: &DatabaseConnection, days: u32, batch: u64) -> Result<u64, DbErr> {
    use sea_orm::sea_query::Query;
    use sea_orm::{ColumnTrait, QueryFilter};
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let mut deleted = 0;
    loop {
        let ids = Query::select()
            .column(audit_log::Column::Id)
            .from(audit_log::Entity)
            .and_where(audit_log::Column::CreatedAt.lt(cutoff))
            .limit(batch.max(1))
            .to_owned();
        let result = audit_log::Entity::delete_many()
            .filter(audit_log::Column::Id.in_subquery(ids))
            .exec(db)
            .await?;
        deleted += result.rows_affected;
        if result.rows_affected < batch.max(1) {
            return Ok(deleted);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({
            "name": "ci", "password": "hunter2",
            "nested": [{"refresh_token": "rt", "email": "a@b"}]
        });
        redact(&mut v);
        assert_eq!(v["name"], "ci");
        assert_eq!(v["password"], "[redacted]");
        assert_eq!(v["nested"][0]["refresh_token"], "[redacted]");
        assert_eq!(v["nested"][0]["email"], "a@b");
    }
}
