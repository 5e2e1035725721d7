//! Client API keys: only a hash and a masked form are stored, with their limits and counters.

use sea_orm_migration::{
    prelude::*,
    schema::{
        big_integer, big_integer_null, boolean, integer_null, pk_auto, string, string_uniq,
        text_null, timestamp_with_time_zone, timestamp_with_time_zone_null,
    },
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(pk_auto(ApiKeys::Id))
                    .col(string(ApiKeys::Name))
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(string(ApiKeys::MaskedKey))
                    .col(boolean(ApiKeys::IsActive).default(true))
                    .col(integer_null(ApiKeys::RpmLimit))
                    .col(big_integer_null(ApiKeys::DailyRequestLimit))
                    .col(big_integer_null(ApiKeys::TotalTokenLimit))
                    .col(big_integer(ApiKeys::TokensUsed).default(0))
                    .col(big_integer(ApiKeys::UsageCount).default(0))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                    .col(text_null(ApiKeys::AllowedModels))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone(ApiKeys::UpdatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_name")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::Name)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    KeyHash,
    MaskedKey,
    IsActive,
    RpmLimit,
    DailyRequestLimit,
    TotalTokenLimit,
    TokensUsed,
    UsageCount,
    LastUsedAt,
    ExpiresAt,
    AllowedModels,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}
