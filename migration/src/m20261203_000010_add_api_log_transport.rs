//! How each proxied request reached the gateway: `http` (one request) or `websocket` (one turn
//! of a Responses WebSocket connection). Rows written before this column read as `http`.

use sea_orm_migration::{prelude::*, schema::string_len};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiLogs::Table)
                    .add_column(string_len(ApiLogs::Transport, 16).default("http"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiLogs::Table)
                    .drop_column(ApiLogs::Transport)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ApiLogs {
    Table,
    Transport,
}
