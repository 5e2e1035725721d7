//! One change of an account's usage windows: the 5-hour (primary) and weekly (secondary) used
//! percent when they were seen to change. Kept for a bounded time (see [`crate::usage_history`]).

use sea_orm::entity::prelude::*;

/// A row of `usage_snapshots`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_snapshots")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The account; `token_id` in the contract.
    #[sea_orm(column_name = "token_id")]
    pub account_id: i32,
    pub created_at: DateTimeUtc,
    pub primary_used_percent: Option<f64>,
    pub secondary_used_percent: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
