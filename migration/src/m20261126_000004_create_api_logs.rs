//! One row per proxied request, indexed for time-range and per-key / per-account queries.

use sea_orm_migration::{
    prelude::*,
    schema::{
        big_integer, big_integer_null, boolean, integer, integer_null, string, string_null,
        text_null, timestamp_with_time_zone,
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
                    .table(ApiLogs::Table)
                    .col(big_integer(ApiLogs::Id).auto_increment().primary_key())
                    .col(timestamp_with_time_zone(ApiLogs::CreatedAt))
                    .col(integer_null(ApiLogs::ApiKeyId))
                    .col(integer_null(ApiLogs::TokenId))
                    .col(string(ApiLogs::Model))
                    .col(string(ApiLogs::Endpoint))
                    .col(boolean(ApiLogs::Stream))
                    .col(integer(ApiLogs::StatusCode))
                    .col(text_null(ApiLogs::ErrorMessage))
                    .col(big_integer(ApiLogs::InputTokens).default(0))
                    .col(big_integer(ApiLogs::OutputTokens).default(0))
                    .col(big_integer(ApiLogs::CachedTokens).default(0))
                    .col(big_integer(ApiLogs::ReasoningTokens).default(0))
                    .col(big_integer(ApiLogs::LatencyMs).default(0))
                    .col(big_integer_null(ApiLogs::TtftMs))
                    .col(string_null(ApiLogs::RequestId))
                    .to_owned(),
            )
            .await?;
        let indexes: [(&str, Vec<ApiLogs>); 4] = [
            ("idx_api_logs_created", vec![ApiLogs::CreatedAt]),
            (
                "idx_api_logs_key_created",
                vec![ApiLogs::ApiKeyId, ApiLogs::CreatedAt],
            ),
            (
                "idx_api_logs_token_created",
                vec![ApiLogs::TokenId, ApiLogs::CreatedAt],
            ),
            (
                "idx_api_logs_model_created",
                vec![ApiLogs::Model, ApiLogs::CreatedAt],
            ),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.name(name).table(ApiLogs::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.clone()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiLogs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ApiLogs {
    Table,
    Id,
    CreatedAt,
    ApiKeyId,
    TokenId,
    Model,
    Endpoint,
    Stream,
    StatusCode,
    ErrorMessage,
    InputTokens,
    OutputTokens,
    CachedTokens,
    ReasoningTokens,
    LatencyMs,
    TtftMs,
    RequestId,
}
