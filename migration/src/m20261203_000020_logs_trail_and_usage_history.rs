//! What the operator's console needs to find and explain requests and to watch accounts: the
//! upstream attempts of each request (`api_logs.attempts`, a JSON array) and an index on
//! `api_logs.request_id`; when each account last served (`tokens.last_success_at`); and the
//! history of each account's usage windows (`usage_snapshots`, one row per change).

use sea_orm_migration::{
    prelude::*,
    schema::{
        big_integer, double_null, integer, text_null, timestamp_with_time_zone,
        timestamp_with_time_zone_null,
    },
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiLogs::Table)
                    .add_column(text_null(ApiLogs::Attempts))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_logs_request_id")
                    .table(ApiLogs::Table)
                    .col(ApiLogs::RequestId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tokens::Table)
                    .add_column(timestamp_with_time_zone_null(Tokens::LastSuccessAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageSnapshots::Table)
                    .col(
                        big_integer(UsageSnapshots::Id)
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(integer(UsageSnapshots::TokenId))
                    .col(timestamp_with_time_zone(UsageSnapshots::CreatedAt))
                    .col(double_null(UsageSnapshots::PrimaryUsedPercent))
                    .col(double_null(UsageSnapshots::SecondaryUsedPercent))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_snapshots_token_created")
                    .table(UsageSnapshots::Table)
                    .col(UsageSnapshots::TokenId)
                    .col(UsageSnapshots::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageSnapshots::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tokens::Table)
                    .drop_column(Tokens::LastSuccessAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_api_logs_request_id")
                    .table(ApiLogs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiLogs::Table)
                    .drop_column(ApiLogs::Attempts)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ApiLogs {
    Table,
    Attempts,
    RequestId,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    LastSuccessAt,
}

#[derive(DeriveIden)]
enum UsageSnapshots {
    Table,
    Id,
    TokenId,
    CreatedAt,
    PrimaryUsedPercent,
    SecondaryUsedPercent,
}
