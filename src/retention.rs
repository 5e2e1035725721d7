//! Retention: usage-log rows older than `log_retention_days` are deleted by a background job in
//! small batches (short statements, so the log writer is never held up for long), together with
//! old rollups, expired stored responses, expired admin sessions, old failed sign-ins and
//! audit-log rows older than `retention.audit_retention_days`.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::auth::AuthService;
use crate::db::{api_log, usage_hourly};
use crate::response_store::ResponseStore;
use crate::settings::SettingsStore;

/// Deletes log rows older than `days`, `batch` rows per statement; returns how many went.
pub async fn purge_logs(db: &DatabaseConnection, days: u32, batch: u64) -> Result<u64, DbErr> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let mut deleted = 0;
    loop {
        let ids = Query::select()
            .column(api_log::Column::Id)
            .from(api_log::Entity)
            .and_where(api_log::Column::CreatedAt.lt(cutoff))
            .limit(batch.max(1))
            .to_owned();
        let result = api_log::Entity::delete_many()
            .filter(api_log::Column::Id.in_subquery(ids))
            .exec(db)
            .await?;
        deleted += result.rows_affected;
        if result.rows_affected < batch.max(1) {
            break;
        }
        // Let the log writer in between batches.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Rollups are small; they are kept at least as long as the longest statistics range.
    let keep_days = i64::from(days).max(31);
    let bucket_cutoff = (Utc::now() - chrono::Duration::days(keep_days)).timestamp();
    usage_hourly::Entity::delete_many()
        .filter(usage_hourly::Column::Bucket.lt(bucket_cutoff))
        .exec(db)
        .await?;
    Ok(deleted)
}

/// Runs the retention job every `interval` until the process ends.
pub fn spawn(
    db: DatabaseConnection,
    settings: SettingsStore,
    auth: AuthService,
    responses: ResponseStore,
    interval: Duration,
    batch: u64,
    audit_days: u32,
) {
    actix_web::rt::spawn(async move {
        // The first run comes one interval after start-up, not during it.
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            ticker.tick().await;
            let days = settings.get().log_retention_days;
            match purge_logs(&db, days, batch).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, days, "deleted old usage-log rows"),
                Err(e) => tracing::error!(error = %e, "retention job failed"),
            }
            match responses.purge_expired(batch).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "deleted expired stored responses"),
                Err(e) => tracing::error!(error = %e, "cannot delete expired stored responses"),
            }
            let audit_days = audit_days.max(1);
            match crate::audit::purge(&db, audit_days, batch).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, days = audit_days, "deleted old audit-log rows"),
                Err(e) => tracing::error!(error = %e, "cannot delete old audit-log rows"),
            }
            if let Err(e) = auth.purge_expired().await {
                tracing::error!(error = %e, "cannot purge expired sessions");
            }
        }
    });
}
