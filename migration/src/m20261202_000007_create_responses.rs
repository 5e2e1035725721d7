//! Stored responses of `/v1/responses`, so that `previous_response_id`, `item_reference` items
//! and `GET /v1/responses/{id}` work over a backend that stores nothing. Content columns hold
//! encrypted text. `response_items` indexes every input and output item by its id (no content:
//! the item is read from its response), so a reference is found without scanning.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer, integer_null, string, text, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Responses::Table)
                    .col(string(Responses::Id).primary_key())
                    .col(integer(Responses::ApiKeyId))
                    .col(integer_null(Responses::AccountId))
                    .col(string(Responses::Model))
                    .col(text(Responses::Input))
                    .col(text(Responses::Response))
                    .col(timestamp_with_time_zone(Responses::CreatedAt))
                    .col(timestamp_with_time_zone(Responses::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_responses_key_created")
                    .table(Responses::Table)
                    .col(Responses::ApiKeyId)
                    .col(Responses::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_responses_expires")
                    .table(Responses::Table)
                    .col(Responses::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ResponseItems::Table)
                    .col(string(ResponseItems::ResponseId))
                    .col(integer(ResponseItems::Position))
                    .col(integer(ResponseItems::ApiKeyId))
                    .col(string(ResponseItems::ItemId))
                    .primary_key(
                        Index::create()
                            .col(ResponseItems::ResponseId)
                            .col(ResponseItems::Position),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ResponseItems::Table, ResponseItems::ResponseId)
                            .to(Responses::Table, Responses::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_response_items_key_item")
                    .table(ResponseItems::Table)
                    .col(ResponseItems::ApiKeyId)
                    .col(ResponseItems::ItemId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ResponseItems::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Responses::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Responses {
    Table,
    Id,
    ApiKeyId,
    AccountId,
    Model,
    Input,
    Response,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ResponseItems {
    Table,
    ResponseId,
    Position,
    ApiKeyId,
    ItemId,
}
