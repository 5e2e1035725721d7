//! A Codex account (a "token" in the HTTP contract): credentials, health and counters.
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
    /// The ChatGPT account id (`chatgpt-account-id` upstream); `account_id` in files and JSON.
    #[sea_orm(unique, column_name = "account_id")]
    pub chatgpt_account_id: String,
    pub plan_type: Option<String>,
    pub access_token: String,
    pub refresh_token: String,
    pub id_token: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    pub last_refresh_at: Option<DateTimeUtc>,
    pub is_active: bool,
    /// Stored health; the console's status is derived from it and the live state.
    pub status: AccountStatus,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTimeUtc>,
    pub error_count: i64,
    pub usage_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub last_used_at: Option<DateTimeUtc>,
    /// When the account last answered a request (or a test) with content.
    pub last_success_at: Option<DateTimeUtc>,
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
            .field("chatgpt_account_id", &self.chatgpt_account_id)
            .field("status", &self.status)
            .field("is_active", &self.is_active)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The health an account's row keeps (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum AccountStatus {
    /// Usable as far as the stored state knows.
    #[sea_orm(string_value = "active")]
    Active,
    /// Refreshing failed for a transient reason; the current access token may still work.
    #[sea_orm(string_value = "refresh_failed")]
    RefreshFailed,
    /// The refresh token can never work again: the account needs a new sign-in.
    #[sea_orm(string_value = "needs_relogin")]
    NeedsRelogin,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
