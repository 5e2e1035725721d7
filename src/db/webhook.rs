//! A webhook: where events are sent, which ones, and the secret that signs them (encrypted).

use sea_orm::entity::prelude::*;

/// A row of `webhooks`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// The signing secret, encrypted with the gateway's key.
    #[sea_orm(column_type = "Text")]
    pub secret: String,
    pub is_enabled: bool,
    /// JSON array of event names.
    #[sea_orm(column_type = "Text")]
    pub events: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
