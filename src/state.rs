//! The state shared by every handler: configuration, database, services and actor handles.

use std::sync::Arc;
use std::time::Instant;

use sea_orm::DatabaseConnection;

use crate::auth::AuthService;
use crate::config::Config;
use crate::settings::SettingsStore;

/// Cloned into every worker; everything inside is cheap to clone or behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub auth: AuthService,
    pub settings: SettingsStore,
    pub started_at: Instant,
}
