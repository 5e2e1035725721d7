//! Where an item of a stored response sits, by its id, so that an `item_reference` is resolved
//! with one indexed lookup. The item itself is read from its response.

use sea_orm::entity::prelude::*;

/// A row of `response_items`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "response_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub response_id: String,
    /// Index into the response's input followed by its output.
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub api_key_id: i32,
    pub item_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
