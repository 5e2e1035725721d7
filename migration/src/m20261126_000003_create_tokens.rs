//! Codex accounts ("tokens"): credentials, health, counters and the refresh lease that keeps one
//! refresh per account in flight across every instance sharing the database.

use sea_orm_migration::{
    prelude::*,
    schema::{
        big_integer, boolean, pk_auto, string, string_null, string_uniq, text, text_null,
        timestamp_with_time_zone, timestamp_with_time_zone_null,
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
                    .table(Tokens::Table)
                    .col(pk_auto(Tokens::Id))
                    .col(string_null(Tokens::Name))
                    .col(string_null(Tokens::Email))
                    .col(string_uniq(Tokens::AccountId))
                    .col(string_null(Tokens::PlanType))
                    .col(text(Tokens::AccessToken))
                    .col(text(Tokens::RefreshToken))
                    .col(text_null(Tokens::IdToken))
                    .col(timestamp_with_time_zone_null(Tokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Tokens::LastRefreshAt))
                    .col(boolean(Tokens::IsActive).default(true))
                    .col(string(Tokens::Status).default("active"))
                    .col(text_null(Tokens::LastError))
                    .col(timestamp_with_time_zone_null(Tokens::LastErrorAt))
                    .col(big_integer(Tokens::ErrorCount).default(0))
                    .col(big_integer(Tokens::UsageCount).default(0))
                    .col(big_integer(Tokens::InputTokens).default(0))
                    .col(big_integer(Tokens::OutputTokens).default(0))
                    .col(timestamp_with_time_zone_null(Tokens::LastUsedAt))
                    .col(timestamp_with_time_zone_null(Tokens::CooldownUntil))
                    .col(text_null(Tokens::RateLimits))
                    .col(string_null(Tokens::ProxyUrl))
                    .col(string_null(Tokens::RefreshLockOwner))
                    .col(timestamp_with_time_zone_null(Tokens::RefreshLockUntil))
                    .col(timestamp_with_time_zone(Tokens::CreatedAt))
                    .col(timestamp_with_time_zone(Tokens::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Tokens::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tokens_email")
                    .table(Tokens::Table)
                    .col(Tokens::Email)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tokens::Table).to_owned())
            .await
    }
}

// Column names mirror the entity (`input_tokens` on `tokens`), so the suffix is intended.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    Name,
    Email,
    AccountId,
    PlanType,
    AccessToken,
    RefreshToken,
    IdToken,
    ExpiresAt,
    LastRefreshAt,
    IsActive,
    Status,
    LastError,
    LastErrorAt,
    ErrorCount,
    UsageCount,
    InputTokens,
    OutputTokens,
    LastUsedAt,
    CooldownUntil,
    RateLimits,
    ProxyUrl,
    RefreshLockOwner,
    RefreshLockUntil,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}
