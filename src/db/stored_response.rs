//! A `/v1/responses` answer kept for `previous_response_id`, `item_reference` and
//! `GET /v1/responses/{id}`. `input` and `response` hold encrypted JSON.

use sea_orm::entity::prelude::*;

/// A row of `responses`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "responses")]
pub struct Model {
    /// The response id the client saw (`resp_...`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The API key that made it; only that key may read it.
    pub api_key_id: i32,
    /// The account that served it (its prompt cache holds the conversation).
    pub account_id: Option<i32>,
    pub model: String,
    /// Encrypted JSON array: the full input as sent upstream.
    #[sea_orm(column_type = "Text")]
    pub input: String,
    /// Encrypted JSON object: the response object as the client received it.
    #[sea_orm(column_type = "Text")]
    pub response: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
