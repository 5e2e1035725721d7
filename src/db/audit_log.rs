//! One admin action that changed something: who, with which role, what, on what, from where.

use sea_orm::entity::prelude::*;

/// A row of `audit_log`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub created_at: DateTimeUtc,
    /// The admin's id (none for a failed sign-in of an unknown name); kept after the admin is
    /// deleted.
    pub actor_id: Option<i32>,
    /// The admin's username (or the name a failed sign-in tried).
    pub actor: String,
    pub role: Option<String>,
    /// What was done, e.g. `api_key.create`.
    pub action: String,
    /// What it was done to, e.g. `api-keys/5`.
    pub target: Option<String>,
    /// A JSON object summarising the change; never a secret.
    #[sea_orm(column_type = "Text")]
    pub summary: String,
    pub client_ip: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
