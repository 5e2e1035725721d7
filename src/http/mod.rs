//! The HTTP surface: one place mounts every scope, with its error shape and extractor limits.

pub mod admin;
pub mod auth;
pub mod guard;
pub mod ops;
pub mod policy;
pub mod v1;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::error::{extractor_error, json_error, AppError, ErrorCode, ExtractorKind};
use crate::state::AppState;

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig, state: &AppState) {
    let body_limit = state.config.server.body_limit_bytes;
    cfg.service(
        web::scope("/admin")
            .wrap(actix_web::middleware::from_fn(policy::admin_policy))
            .wrap(actix_web::middleware::from_fn(guard::admin_guard))
            .app_data(admin_json_config(body_limit))
            .app_data(admin_query_config())
            .app_data(admin_path_config())
            .configure(admin::configure)
            .default_service(web::to(admin_not_found)),
    )
    .configure(|cfg| v1::configure(cfg, &state.config.server.cors_allowed_origins))
    .configure(ops::configure)
    .route(
        "/",
        web::get().to(|| async {
            HttpResponse::Found()
                .insert_header(("location", "/admin/"))
                .finish()
        }),
    )
    .default_service(web::to(admin_not_found));
}

/// JSON bodies under `/admin`: size limit and errors in the admin shape.
pub fn admin_json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| json_error(&err).into())
}

fn admin_query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _req| extractor_error(&err, ExtractorKind::Query).into())
}

fn admin_path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| extractor_error(&err, ExtractorKind::Path).into())
}

async fn admin_not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Echoes the request id that the tracing middleware assigned, so a client can quote it.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(std::string::ToString::to_string);
    let mut res = next.call(req).await?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

/// The client's address for throttling: the peer, or, when the gateway sits behind
/// `trusted_proxies` reverse proxies (`server.trust_forwarded_for`), the rightmost address of
/// `X-Forwarded-For` that none of them added (the hops to its left are the client's to write).
pub fn client_ip(req: &HttpRequest, server: &crate::config::ServerConfig) -> String {
    let peer = req
        .peer_addr()
        .map_or_else(|| "unknown".into(), |a| a.ip().to_string());
    if !server.trust_forwarded_for {
        return peer;
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    // The peer is the nearest trusted proxy; each further one added the hop before it.
    let skip = server.trusted_proxies.max(1) - 1;
    forwarded
        .iter()
        .rev()
        .nth(skip)
        .or(forwarded.first())
        .map_or(peer, |hop| (*hop).to_string())
}

/// Reads a request body up to `limit` bytes; beyond it, 413 (in the caller's error shape).
pub async fn read_limited(
    mut payload: web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, AppError> {
    use futures_util::StreamExt;
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            AppError::new(
                ErrorCode::InvalidRequest,
                "the request body could not be read",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
