//! Several admins with roles, their optional second factor (TOTP with recovery codes and
//! short-lived sign-in challenges), and the audit log of admin actions.
//!
//! The admins that exist before this migration become owners.

use sea_orm_migration::{
    prelude::*,
    schema::{
        big_integer_null, boolean, integer, integer_null, pk_auto, string, string_len, string_null,
        text, timestamp_with_time_zone, timestamp_with_time_zone_null,
    },
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        let columns = [
            string_len(Users::Role, 16).default("owner").to_owned(),
            boolean(Users::Disabled).default(false).to_owned(),
            string_null(Users::TotpSecret),
            boolean(Users::TotpEnabled).default(false).to_owned(),
            big_integer_null(Users::TotpLastStep),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AdminRecoveryCodes::Table)
                    .col(pk_auto(AdminRecoveryCodes::Id))
                    .col(integer(AdminRecoveryCodes::UserId))
                    .col(string(AdminRecoveryCodes::CodeHash))
                    .col(timestamp_with_time_zone(AdminRecoveryCodes::CreatedAt))
                    .col(timestamp_with_time_zone_null(AdminRecoveryCodes::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AdminRecoveryCodes::Table, AdminRecoveryCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_admin_recovery_codes_user")
                    .table(AdminRecoveryCodes::Table)
                    .col(AdminRecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TotpChallenges::Table)
                    .col(string(TotpChallenges::Id).primary_key())
                    .col(integer(TotpChallenges::UserId))
                    .col(string(TotpChallenges::ClientIp))
                    .col(timestamp_with_time_zone(TotpChallenges::ExpiresAt))
                    .col(timestamp_with_time_zone_null(TotpChallenges::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TotpChallenges::Table, TotpChallenges::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                    .col(integer_null(AuditLog::ActorId))
                    .col(string(AuditLog::Actor))
                    .col(string_null(AuditLog::Role))
                    .col(string(AuditLog::Action))
                    .col(string_null(AuditLog::Target))
                    .col(text(AuditLog::Summary))
                    .col(string_null(AuditLog::ClientIp))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_audit_log_created", AuditLog::CreatedAt),
            ("idx_audit_log_actor", AuditLog::Actor),
            ("idx_audit_log_action", AuditLog::Action),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditLog::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            TotpChallenges::Table.into_iden(),
            AdminRecoveryCodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            Users::TotpLastStep,
            Users::TotpEnabled,
            Users::TotpSecret,
            Users::Disabled,
            Users::Role,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Role,
    Disabled,
    TotpSecret,
    TotpEnabled,
    TotpLastStep,
}

#[derive(DeriveIden)]
enum AdminRecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum TotpChallenges {
    Table,
    Id,
    UserId,
    ClientIp,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    CreatedAt,
    ActorId,
    Actor,
    Role,
    Action,
    Target,
    Summary,
    ClientIp,
}
