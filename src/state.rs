//! The state shared by every handler: configuration, database, services and actor handles.

use std::sync::Arc;
use std::time::Instant;

use sea_orm::DatabaseConnection;

use crate::actors::account_pool::AccountPoolHandle;
use crate::actors::key_cache::KeyCacheHandle;
use crate::actors::refresher::RefresherHandle;
use crate::actors::usage_log::UsageLogHandle;
use crate::auth::AuthService;
use crate::codex::client::CodexClient;
use crate::config::Config;
use crate::settings::SettingsStore;

/// Cloned into every worker; everything inside is cheap to clone or behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub auth: AuthService,
    pub settings: SettingsStore,
    pub pool: AccountPoolHandle,
    /// Probes idle accounts' usage windows.
    pub prober: crate::actors::usage_probe::UsageProberHandle,
    pub refresher: RefresherHandle,
    pub usage: UsageLogHandle,
    pub keys: KeyCacheHandle,
    /// Publishes changes to the other instances (PostgreSQL) and reports the listener.
    pub changes: crate::changes::Changes,
    pub upstream: CodexClient,
    /// The upstream's model catalog, refreshed in the background.
    pub catalog: crate::catalog::Catalog,
    /// Stored `/v1/responses` answers.
    pub responses: crate::response_store::ResponseStore,
    /// "Sign in with OpenAI" flows in progress.
    pub sign_in_flows: crate::sign_in_flows::SignInFlows,
    /// Seals and opens secrets at rest (account tokens, stored responses).
    pub cipher: Arc<crate::crypto::Cipher>,
    pub metrics: crate::metrics::Metrics,
    /// Records admin actions in the audit log.
    pub audit: crate::audit::AuditHandle,
    /// Hands events to the webhook notifier.
    pub webhooks: crate::actors::webhooks::WebhookHandle,
    pub started_at: Instant,
}
