//! Hourly rollups of the usage log (per key, account and model), kept by the log writer in the
//! same transaction as the rows, so that statistics over 30 days stay fast on a long history.

use sea_orm_migration::{
    prelude::*,
    schema::{big_integer, integer, string},
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UsageHourly::Table)
                    .col(big_integer(UsageHourly::Bucket))
                    .col(integer(UsageHourly::ApiKeyId))
                    .col(integer(UsageHourly::TokenId))
                    .col(string(UsageHourly::Model))
                    .col(big_integer(UsageHourly::Requests).default(0))
                    .col(big_integer(UsageHourly::Errors).default(0))
                    .col(big_integer(UsageHourly::InputTokens).default(0))
                    .col(big_integer(UsageHourly::OutputTokens).default(0))
                    .col(big_integer(UsageHourly::CachedTokens).default(0))
                    .col(big_integer(UsageHourly::ReasoningTokens).default(0))
                    .primary_key(
                        Index::create()
                            .col(UsageHourly::Bucket)
                            .col(UsageHourly::ApiKeyId)
                            .col(UsageHourly::TokenId)
                            .col(UsageHourly::Model),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageHourly::Table).to_owned())
            .await
    }
}

// Column names mirror the entity, so the suffix is intended.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum UsageHourly {
    Table,
    Bucket,
    ApiKeyId,
    TokenId,
    Model,
    Requests,
    Errors,
    InputTokens,
    OutputTokens,
    CachedTokens,
    ReasoningTokens,
}
