//! The conversation a request belongs to, from the hints clients send: the body's
//! `prompt_cache_key` (both `/v1/chat/completions` and `/v1/responses`) and the Codex CLI's
//! session headers. Client-supplied values are checked before anything else happens with the
//! request (visible ASCII, at most [`MAX_HINT_LEN`] characters): a value that could not be sent
//! as a header upstream answers 400 and never reaches an account.

use actix_web::http::header::HeaderMap;

use crate::error::AppError;

/// The longest hint accepted, in characters.
pub const MAX_HINT_LEN: usize = 256;

/// The session headers that name a conversation, strongest first (CODEX.md §7; the underscore
/// forms are what older clients and other gateways send).
pub const SESSION_HEADERS: [&str; 4] = ["session_id", "session-id", "conversation_id", "thread-id"];

/// The backend's sticky token for one turn: passed through as is.
pub const TURN_STATE_HEADER: &str = "x-codex-turn-state";

/// The hints a client sent, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// The body's `prompt_cache_key`.
    pub prompt_cache_key: Option<String>,
    /// The first session header present (see [`SESSION_HEADERS`]).
    pub session: Option<String>,
    /// `x-codex-turn-state`.
    pub turn_state: Option<String>,
}

impl Hints {
    /// Reads and checks the hints of a request's headers, before its body is read.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, AppError> {
        Self::read(headers, None)
    }

    /// Adds the body's `prompt_cache_key`, checked.
    pub fn with_prompt_cache_key(mut self, key: Option<&str>) -> Result<Self, AppError> {
        if let Some(key) = key {
            self.prompt_cache_key =
                checked(key.as_bytes(), "prompt_cache_key", "`prompt_cache_key`")?;
        }
        Ok(self)
    }

    /// Reads and checks the hints of a request: its headers and its body's `prompt_cache_key`.
    /// Empty values count as absent.
    pub fn read(headers: &HeaderMap, prompt_cache_key: Option<&str>) -> Result<Self, AppError> {
        let header = |name: &'static str| -> Result<Option<String>, AppError> {
            match headers.get(name) {
                None => Ok(None),
                Some(value) => checked(value.as_bytes(), name, &format!("the {name} header")),
            }
        };
        let mut session = None;
        for name in SESSION_HEADERS {
            let value = header(name)?;
            session = session.or(value);
        }
        let turn_state = header(TURN_STATE_HEADER)?;
        let prompt_cache_key = match prompt_cache_key {
            None => None,
            Some(key) => checked(key.as_bytes(), "prompt_cache_key", "`prompt_cache_key`")?,
        };
        Ok(Self {
            prompt_cache_key,
            session,
            turn_state,
        })
    }

    /// The session header to send upstream: the client's, else its `prompt_cache_key`.
    pub fn upstream_session(&self) -> Option<&str> {
        self.session.as_deref().or(self.prompt_cache_key.as_deref())
    }
}

/// A hint's value when it is 1 to [`MAX_HINT_LEN`] visible ASCII characters; `None` when empty;
/// 400 naming `param` otherwise. The value is never echoed back.
fn checked(value: &[u8], param: &str, what: &str) -> Result<Option<String>, AppError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_HINT_LEN || !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(AppError::invalid_request(format!(
            "{what} must be at most {MAX_HINT_LEN} visible ASCII characters (no spaces or control characters)"
        ))
        .with_param(param));
    }
    // Only visible ASCII is left, which is UTF-8.
    Ok(Some(String::from_utf8_lossy(value).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hints_are_read_strongest_first() {
        let h = Hints::read(
            &headers(&[("thread-id", b"t-1"), ("session-id", b"s-1")]),
            Some("pck-1"),
        )
        .unwrap();
        assert_eq!(h.prompt_cache_key.as_deref(), Some("pck-1"));
        assert_eq!(h.session.as_deref(), Some("s-1"));
        assert_eq!(h.upstream_session(), Some("s-1"));
        let h = Hints::read(&headers(&[("conversation_id", b"c")]), None).unwrap();
        assert_eq!(h.session.as_deref(), Some("c"));
        let h = Hints::read(&HeaderMap::new(), Some("k")).unwrap();
        assert_eq!(h.upstream_session(), Some("k"));
        let h = Hints::read(&headers(&[("session_id", b"")]), Some("")).unwrap();
        assert_eq!(h, Hints::default(), "empty values are absent");
    }

    #[test]
    fn bad_values_are_refused_and_named() {
        let long = "a".repeat(MAX_HINT_LEN + 1);
        for key in [
            "a\u{1}b",
            "tab\there",
            "two words",
            "caf\u{e9}",
            long.as_str(),
        ] {
            let e = Hints::read(&HeaderMap::new(), Some(key)).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::InvalidRequest, "{key:?}");
            assert!(e.message().contains("prompt_cache_key"), "{}", e.message());
            assert!(!e.message().contains(key));
        }
        assert!(Hints::read(&HeaderMap::new(), Some(&"a".repeat(MAX_HINT_LEN))).is_ok());
        for name in ["session_id", "thread-id", "x-codex-turn-state"] {
            let e = Hints::read(&headers(&[(name, b"caf\xc3\xa9")]), None).unwrap_err();
            assert!(e.message().contains(name), "{}", e.message());
        }
    }
}
