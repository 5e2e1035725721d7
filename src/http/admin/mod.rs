//! `/admin/*`: the admin API (one module per resource) and the console's embedded assets.

pub mod console;
pub mod session;
pub mod settings;

use actix_web::web;

/// Mounts the admin routes inside the `/admin` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(session::configure)
        .configure(settings::configure)
        .configure(console::configure);
}
