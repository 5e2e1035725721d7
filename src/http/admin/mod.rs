//! `/admin/*`: the admin API (one module per resource) and the console's embedded assets.
//!
//! The resource handlers are the HTTP edge of the services in [`crate::service`]: they parse
//! the request (query, path, typed payload), call one service and render its answer in the
//! contract's JSON shape. This module holds what they share: paging, search terms, payload
//! reading and the services as extractors.

pub mod admins;
pub mod audit;
pub mod console;
pub mod keys;
pub mod playground;
pub mod session;
pub mod settings;
pub mod sign_in;
pub mod stats;
pub mod tokens;
pub mod totp;
pub mod webhooks;

use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{AppError, AppResult};
use crate::service::{AccountService, KeyService, Page, PageRequest, SignInService, StatsService};
use crate::state::AppState;

/// Mounts the admin routes inside the `/admin` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(session::configure)
        .configure(keys::configure)
        .configure(playground::configure)
        .configure(sign_in::configure)
        .configure(tokens::configure)
        .configure(stats::configure)
        .configure(settings::configure)
        .configure(admins::configure)
        .configure(totp::configure)
        .configure(audit::configure)
        .configure(webhooks::configure)
        .configure(console::configure);
}

/// `page` (from 1) and `page_size` (1 to 200, default 20) of a list.
#[derive(Debug, serde::Deserialize)]
pub struct Paging {
    pub page: Option<u64>,
    pub page_size: Option<u64>,
}

impl Paging {
    /// The page number and size, validated.
    pub fn resolve(&self) -> AppResult<PageRequest> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(20);
        if page == 0 {
            return Err(AppError::invalid_request("`page` starts at 1"));
        }
        if !(1..=200).contains(&size) {
            return Err(AppError::invalid_request(
                "`page_size` must be between 1 and 200",
            ));
        }
        Ok(PageRequest { page, size })
    }
}

/// The contract's list shape, each row rendered by `render`.
pub fn page_of<T>(page: &Page<T>, at: PageRequest, render: impl Fn(&T) -> Value) -> Value {
    let data: Vec<Value> = page.rows.iter().map(render).collect();
    serde_json::json!({"data": data, "total": page.total, "page": at.page, "page_size": at.size})
}

/// A search term: trimmed, and none when blank.
pub fn search_term(q: Option<&str>) -> Option<String> {
    q.map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_string)
}

/// Reads a JSON object body into a typed payload. A wrong field answers 400 `invalid_request`
/// with the payload's own message, which names the field (and carries no JSON position: the
/// body is well-formed, a field is wrong).
pub fn payload<T: DeserializeOwned>(body: web::Json<Map<String, Value>>) -> AppResult<T> {
    serde_json::from_value(Value::Object(body.into_inner()))
        .map_err(|e| AppError::invalid_request(e.to_string()))
}

/// Lets a handler name a service among its arguments; it is built from the shared state.
macro_rules! service_extractor {
    ($($service:ty),+) => {$(
        impl FromRequest for $service {
            type Error = AppError;
            type Future = std::future::Ready<AppResult<Self>>;

            fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
                std::future::ready(
                    req.app_data::<web::Data<AppState>>()
                        .map(|state| <$service>::new(state))
                        .ok_or_else(|| AppError::internal("application state missing")),
                )
            }
        }
    )+};
}

service_extractor!(
    AccountService,
    KeyService,
    SignInService,
    StatsService,
    crate::service::webhooks::WebhookService
);
