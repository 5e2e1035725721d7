//! One proxied request: who asked, which account answered, what it cost and how long it took.

use sea_orm::entity::prelude::*;

/// A row of `api_logs`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_logs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub created_at: DateTimeUtc,
    pub api_key_id: Option<i32>,
    /// The account that served (or last failed) the request; `account_id` in the contract.
    #[sea_orm(column_name = "token_id")]
    pub account_id: Option<i32>,
    pub model: String,
    pub endpoint: String,
    pub stream: bool,
    pub status_code: i32,
    pub error_message: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub request_id: Option<String>,
    /// `http` or `websocket` (see `Transport`).
    pub transport: String,
    /// The upstream attempts of the request, in order: a JSON array (see
    /// [`crate::request_log::Attempt`]).
    pub attempts: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
