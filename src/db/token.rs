//! A Codex account ("token"): credentials, health and counters.
//!
//! `Debug` is written by hand so that the credentials never reach a log line.

use sea_orm::entity::prelude::*;

/// A row of `tokens`.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: Option<String>,
    pub email: Option<String>,
    #[sea_orm(unique)]
    pub account_id: String,
    pub plan_type: Option<String>,
    pub access_token: String,
    pub refresh_token: String,
    pub id_token: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    pub last_refresh_at: Option<DateTimeUtc>,
    pub is_active: bool,
    /// Stored health: `active`, `refresh_failed` or `needs_relogin`; the rest is derived.
    pub status: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTimeUtc>,
    pub error_count: i64,
    pub usage_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub last_used_at: Option<DateTimeUtc>,
    pub cooldown_until: Option<DateTimeUtc>,
    /// JSON snapshot of the last `x-codex-*` rate-limit headers.
    pub rate_limits: Option<String>,
    pub proxy_url: Option<String>,
    pub refresh_lock_owner: Option<String>,
    pub refresh_lock_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("account_id", &self.account_id)
            .field("status", &self.status)
            .field("is_active", &self.is_active)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
