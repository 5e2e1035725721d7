//! Request counters of API keys shared by every instance on one database: one row per key, kind
//! of window (`minute` or `day`) and window start (Unix seconds), incremented atomically.

use sea_orm_migration::{
    prelude::*,
    schema::{big_integer, integer, string_len},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KeyCounters::Table)
                    .col(integer(KeyCounters::KeyId))
                    .col(string_len(KeyCounters::Kind, 8))
                    .col(big_integer(KeyCounters::WindowStart))
                    .col(big_integer(KeyCounters::Count))
                    .primary_key(
                        Index::create()
                            .col(KeyCounters::KeyId)
                            .col(KeyCounters::Kind)
                            .col(KeyCounters::WindowStart),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(KeyCounters::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum KeyCounters {
    Table,
    KeyId,
    Kind,
    WindowStart,
    Count,
}
