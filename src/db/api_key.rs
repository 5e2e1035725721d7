//! A client API key: only its SHA-256 hash and a masked form are stored.

use sea_orm::entity::prelude::*;

/// A row of `api_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    #[sea_orm(unique)]
    pub key_hash: String,
    pub masked_key: String,
    pub is_active: bool,
    pub rpm_limit: Option<i32>,
    pub daily_request_limit: Option<i64>,
    pub total_token_limit: Option<i64>,
    pub tokens_used: i64,
    pub usage_count: i64,
    pub last_used_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    /// JSON array of model ids; null or empty means every model.
    pub allowed_models: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
