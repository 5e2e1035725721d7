//! An hourly rollup of the usage log for one key, account and model (0 = none).

use sea_orm::entity::prelude::*;

/// A row of `usage_hourly`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_hourly")]
pub struct Model {
    /// Start of the hour, unix seconds.
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub api_key_id: i32,
    /// The account (0 = none); `account_id` in the contract.
    #[sea_orm(primary_key, auto_increment = false, column_name = "token_id")]
    pub account_id: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub model: String,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
