//! Protections around every request: the body read deadline, the per-address connection cap,
//! and, under `/admin`, the cross-site check for cookie-authenticated changes and the browser
//! security headers.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use bytes::Bytes;
use futures_util::Stream;

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;

/// The console's and admin API's content security policy.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// A request body that fails once its deadline has passed, however slowly it trickles.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not received in time",
            )))));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Gives every request body `server.body_read_timeout_seconds` to arrive; a slower one fails
/// to read (the handler answers an error and the connection is closed with the unread rest).
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let seconds = req
        .app_data::<web::Data<AppState>>()
        .map_or(60, |s| s.config.server.body_read_timeout_seconds);
    if seconds > 0 && has_body(&req) {
        let inner = req.take_payload();
        let sleep = Box::pin(tokio::time::sleep(Duration::from_secs(seconds)));
        req.set_payload(Payload::from(
            Box::pin(Deadline { inner, sleep }) as Pin<Box<dyn Stream<Item = _>>>
        ));
    }
    next.call(req).await
}

fn has_body(req: &ServiceRequest) -> bool {
    req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Refuses cookie-authenticated unsafe requests that a browser marks as coming from another
/// site, and adds the browser security headers to every `/admin` answer.
pub async fn admin_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<actix_web::body::EitherBody<impl MessageBody>>, actix_web::Error> {
    let hsts = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.auth.cookie_secure);
    if cross_site(&req) {
        let error = AppError::new(
            ErrorCode::CrossSiteRequest,
            "a signed-in change must come from the console's own origin",
        );
        let mut res = req
            .into_response(error.error_response())
            .map_into_right_body();
        secure_headers(res.headers_mut(), hsts);
        return Ok(res);
    }
    let mut res = next.call(req).await?.map_into_left_body();
    secure_headers(res.headers_mut(), hsts);
    Ok(res)
}

fn secure_headers(headers: &mut actix_web::http::header::HeaderMap, hsts: bool) {
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "same-origin");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if hsts {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// An unsafe method authenticated by the session cookie alone (no `Authorization` header), whose
/// `Sec-Fetch-Site` is not same-origin, or, without that header, whose `Origin` is missing or
/// another origin.
fn cross_site(req: &ServiceRequest) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if req.headers().contains_key(header::AUTHORIZATION)
        || req.cookie(super::auth::SESSION_COOKIE).is_none()
    {
        return false;
    }
    let text = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text("origin") else {
        return true;
    };
    let authority = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = text("host").unwrap_or_default();
    authority.is_empty() || !authority.eq_ignore_ascii_case(host)
}

/// Open connections per client address, shared by the workers.
#[derive(Clone, Default)]
pub struct ConnectionCounter {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Held in a connection's extensions while it is open; the count falls when it is dropped.
pub struct ConnectionSlot {
    counter: ConnectionCounter,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counter.open.lock() {
            if let Some(n) = open.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

impl ConnectionCounter {
    /// Counts a new connection from `ip`: a slot, or none when `ip` already has `cap` open.
    pub fn admit(&self, ip: IpAddr, cap: usize) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(ip).or_default();
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counter: self.clone(),
            ip,
        })
    }
}
