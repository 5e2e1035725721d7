//! `/admin/*`: the admin API (one module per resource) and the console's embedded assets.

pub mod console;
pub mod keys;
pub mod session;
pub mod settings;
pub mod stats;
pub mod tokens;

use actix_web::web;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{AppError, ErrorCode};

/// Mounts the admin routes inside the `/admin` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(session::configure)
        .configure(keys::configure)
        .configure(tokens::configure)
        .configure(stats::configure)
        .configure(settings::configure)
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
    pub fn resolve(&self) -> crate::error::AppResult<(u64, u64)> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(20);
        if page == 0 {
            return Err(crate::error::AppError::new(
                ErrorCode::InvalidRequest,
                "`page` starts at 1",
            ));
        }
        if !(1..=200).contains(&size) {
            return Err(crate::error::AppError::new(
                ErrorCode::InvalidRequest,
                "`page_size` must be between 1 and 200",
            ));
        }
        Ok((page, size))
    }
}

/// The contract's list shape.
pub fn page_of(
    data: Vec<serde_json::Value>,
    total: u64,
    page: u64,
    page_size: u64,
) -> serde_json::Value {
    serde_json::json!({"data": data, "total": total, "page": page, "page_size": page_size})
}

/// Reads a JSON object body into a typed payload. A wrong field answers 400 `invalid_request`
/// with the payload's own message, which names the field (and carries no JSON position: the
/// body is well-formed, a field is wrong).
pub fn payload<T: DeserializeOwned>(
    body: web::Json<Map<String, Value>>,
) -> crate::error::AppResult<T> {
    serde_json::from_value(Value::Object(body.into_inner()))
        .map_err(|e| AppError::invalid_request(e.to_string()))
}
