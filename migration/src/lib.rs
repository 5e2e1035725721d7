//! Database migrations of gpt2api, in order. Each has a working `down`.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_admin_tables;
mod m20261126_000002_create_api_keys;
mod m20261126_000003_create_tokens;
mod m20261126_000004_create_api_logs;
mod m20261126_000005_create_settings;
mod m20261126_000006_create_usage_hourly;
mod m20261202_000007_create_responses;
mod m20261202_000008_create_key_counters;
mod m20261203_000010_add_api_log_transport;
mod m20261203_000020_logs_trail_and_usage_history;
mod m20261203_000040_admin_roles_totp_audit;
mod m20261203_000050_create_webhooks;

/// The ordered list of migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_admin_tables::Migration),
            Box::new(m20261126_000002_create_api_keys::Migration),
            Box::new(m20261126_000003_create_tokens::Migration),
            Box::new(m20261126_000004_create_api_logs::Migration),
            Box::new(m20261126_000005_create_settings::Migration),
            Box::new(m20261126_000006_create_usage_hourly::Migration),
            Box::new(m20261202_000007_create_responses::Migration),
            Box::new(m20261202_000008_create_key_counters::Migration),
            Box::new(m20261203_000010_add_api_log_transport::Migration),
            Box::new(m20261203_000020_logs_trail_and_usage_history::Migration),
            Box::new(m20261203_000040_admin_roles_totp_audit::Migration),
            Box::new(m20261203_000050_create_webhooks::Migration),
        ]
    }
}
