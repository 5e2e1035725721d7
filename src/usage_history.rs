//! The history of each account's usage windows: a snapshot of the 5-hour (primary) and weekly
//! (secondary) used percent whenever one of them changes by a whole percent, kept for
//! [`RETENTION_DAYS`]. Written where the windows are stored (traffic and probes), read by the
//! account's detail view.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};

use crate::codex::wire::RateLimits;
use crate::db::usage_snapshot;

/// Days a snapshot is kept.
pub const RETENTION_DAYS: i64 = 7;

/// Snapshots the detail view reads at most (newest first, then shown oldest first).
pub const MAX_READ: u64 = 500;

/// A used percent at the resolution the history keeps: whole percents.
fn whole(percent: Option<f64>) -> Option<i64> {
    percent.map(|p| p.round() as i64)
}

/// Whether `limits` differ from the last snapshot enough to be kept.
pub fn changed(last: Option<&usage_snapshot::Model>, limits: &RateLimits) -> bool {
    let (primary, secondary) = (
        whole(limits.primary_used_percent),
        whole(limits.secondary_used_percent),
    );
    if primary.is_none() && secondary.is_none() {
        return false;
    }
    last.is_none_or(|last| {
        whole(last.primary_used_percent) != primary
            || whole(last.secondary_used_percent) != secondary
    })
}

/// Stores a snapshot of `limits` for the account when they changed since the last one, and
/// drops its snapshots older than [`RETENTION_DAYS`].
pub async fn record(
    db: &impl ConnectionTrait,
    account_id: i32,
    limits: &RateLimits,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let last = usage_snapshot::Entity::find()
        .filter(usage_snapshot::Column::AccountId.eq(account_id))
        .order_by_desc(usage_snapshot::Column::Id)
        .one(db)
        .await?;
    if !changed(last.as_ref(), limits) {
        return Ok(());
    }
    usage_snapshot::ActiveModel {
        account_id: Set(account_id),
        created_at: Set(now),
        primary_used_percent: Set(limits.primary_used_percent),
        secondary_used_percent: Set(limits.secondary_used_percent),
        ..Default::default()
    }
    .insert(db)
    .await?;
    usage_snapshot::Entity::delete_many()
        .filter(usage_snapshot::Column::AccountId.eq(account_id))
        .filter(usage_snapshot::Column::CreatedAt.lt(now - Duration::days(RETENTION_DAYS)))
        .exec(db)
        .await?;
    Ok(())
}

/// The account's snapshots of the last [`RETENTION_DAYS`], oldest first (at most [`MAX_READ`],
/// the newest).
pub async fn read(
    db: &impl ConnectionTrait,
    account_id: i32,
) -> Result<Vec<usage_snapshot::Model>, DbErr> {
    use sea_orm::QuerySelect;
    let mut rows = usage_snapshot::Entity::find()
        .filter(usage_snapshot::Column::AccountId.eq(account_id))
        .order_by_desc(usage_snapshot::Column::Id)
        .limit(MAX_READ)
        .all(db)
        .await?;
    rows.reverse();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(primary: Option<f64>, secondary: Option<f64>) -> usage_snapshot::Model {
        usage_snapshot::Model {
            id: 1,
            account_id: 1,
            created_at: Utc::now(),
            primary_used_percent: primary,
            secondary_used_percent: secondary,
        }
    }

    fn limits(primary: Option<f64>, secondary: Option<f64>) -> RateLimits {
        RateLimits {
            primary_used_percent: primary,
            secondary_used_percent: secondary,
            ..RateLimits::default()
        }
    }

    #[test]
    fn only_a_change_by_a_whole_percent_is_kept() {
        let last = snapshot(Some(10.0), Some(40.0));
        assert!(changed(None, &limits(Some(0.0), None)), "the first one");
        assert!(!changed(None, &limits(None, None)), "nothing to keep");
        assert!(!changed(Some(&last), &limits(Some(10.3), Some(40.2))));
        assert!(changed(Some(&last), &limits(Some(11.0), Some(40.0))));
        assert!(changed(Some(&last), &limits(Some(10.0), Some(41.0))));
        assert!(changed(Some(&last), &limits(Some(10.0), None)));
    }
}
