//! Errors reported by the backend, parsed leniently from any of the shapes it uses
//! (`{"detail": ...}`, `{"error": {...}}`, a `response.failed` event, an `error` event).

use serde_json::{Map, Value};

/// An error reported by the backend, from an HTTP error body or from inside the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    /// `code` (e.g. `server_is_overloaded`, `rate_limit_exceeded`).
    pub code: Option<String>,
    /// `type` (e.g. `usage_limit_reached`, `invalid_request_error`).
    pub kind: Option<String>,
    /// Human-readable message (upstream text: log it, do not show it to clients as is).
    pub message: String,
    /// Offending parameter, when the backend names one.
    pub param: Option<String>,
    /// Unix seconds when a usage limit resets.
    pub resets_at: Option<i64>,
    /// Seconds until a usage limit resets.
    pub resets_in_seconds: Option<i64>,
}

impl UpstreamError {
    /// Parses a non-200 response body; `None` when it is not JSON of a known shape.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        Self::from_value(&serde_json::from_slice(body).ok()?)
    }

    /// Parses `{"detail": ...}`, `{"error": {...}}`, `{"error": "..."}` or a bare error object.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Object(obj) => Self::from_map(obj),
            Value::String(s) => Some(Self::message_only(s)),
            _ => None,
        }
    }

    /// Like [`UpstreamError::from_value`] for an object's fields.
    pub fn from_map(obj: &Map<String, Value>) -> Option<Self> {
        for key in ["error", "detail"] {
            match obj.get(key) {
                Some(Value::Object(inner)) => return Self::from_fields(inner),
                Some(Value::String(s)) => return Some(Self::message_only(s)),
                // FastAPI validation errors are a list: keep them readable as JSON text.
                Some(list @ Value::Array(_)) => return Some(Self::message_only(&list.to_string())),
                _ => {}
            }
        }
        Self::from_fields(obj)
    }

    /// An error with only a message.
    pub fn message_only(message: &str) -> Self {
        Self {
            message: message.to_owned(),
            ..Self::default()
        }
    }

    /// Reads the flat fields; `None` when there is neither message, code nor type.
    fn from_fields(obj: &Map<String, Value>) -> Option<Self> {
        let text = |key: &str| match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let number = |key: &str| match obj.get(key) {
            Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let code = text("code");
        let kind = text("type");
        let message = text("message");
        if code.is_none() && kind.is_none() && message.is_none() {
            return None;
        }
        Some(Self {
            message: message
                .or_else(|| code.clone())
                .or_else(|| kind.clone())
                .unwrap_or_default(),
            code,
            kind,
            param: text("param"),
            resets_at: number("resets_at"),
            resets_in_seconds: number("resets_in_seconds"),
        })
    }

    /// Whether `code` or `type` equals `name`.
    pub fn is(&self, name: &str) -> bool {
        self.code.as_deref() == Some(name) || self.kind.as_deref() == Some(name)
    }

    /// The account hit its plan's usage limit and cools down until the reset.
    pub fn is_usage_limit(&self) -> bool {
        self.is("usage_limit_reached")
    }

    /// A transient condition worth retrying on another account after a short cooldown.
    /// The backend is overloaded: its condition, not the account's.
    pub fn is_overload(&self) -> bool {
        ["server_is_overloaded", "slow_down"]
            .iter()
            .any(|name| self.is(name))
    }

    /// A failure that may go away on its own (overload, short-term limits, server errors).
    pub fn is_transient(&self) -> bool {
        [
            "server_is_overloaded",
            "slow_down",
            "rate_limit_exceeded",
            "server_error",
        ]
        .iter()
        .any(|name| self.is(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_limit_body() {
        let body = br#"{"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
            "plan_type": "plus", "resets_at": 1776358224, "resets_in_seconds": 191966}}"#;
        let e = UpstreamError::from_body(body).expect("parses");
        assert!(e.is_usage_limit());
        assert!(!e.is_transient());
        assert_eq!(e.kind.as_deref(), Some("usage_limit_reached"));
        assert_eq!(e.resets_at, Some(1_776_358_224));
        assert_eq!(e.resets_in_seconds, Some(191_966));
        assert_eq!(e.to_string(), "The usage limit has been reached");
    }

    #[test]
    fn detail_and_other_bodies() {
        let e = UpstreamError::from_body(br#"{"detail": "Stream must be set to true"}"#)
            .expect("parses");
        assert_eq!(e.message, "Stream must be set to true");
        assert_eq!(e.code, None);
        let e = UpstreamError::from_body(
            br#"{"error": {"code": "rate_limit_exceeded", "message": "slow down", "resets_in_seconds": "30"}}"#,
        )
        .expect("parses");
        assert!(e.is_transient());
        assert_eq!(e.resets_in_seconds, Some(30));
        let e =
            UpstreamError::from_body(br#"{"detail": {"code": "token_expired"}}"#).expect("parses");
        assert_eq!(e.code.as_deref(), Some("token_expired"));
        assert_eq!(e.message, "token_expired");
        let e = UpstreamError::from_body(br#"{"detail": [{"loc": ["body"], "msg": "bad"}]}"#)
            .expect("parses");
        assert!(e.message.contains("bad"));
        assert_eq!(UpstreamError::from_body(b"<html>bad gateway</html>"), None);
        assert_eq!(UpstreamError::from_body(br#"{"ok": true}"#), None);
    }
}
