//! Stable codes for the reasons the console shows: why a request failed (a log row's error) and
//! why an account is out of rotation or failed last. The stored English text stays the fallback;
//! the console translates the code with its parameters.
//!
//! The texts are the gateway's own (see `dispatch`, the account pool and the refresh scheduler),
//! so they are read back into codes here rather than stored twice: rows written before the codes
//! existed get them too.

use serde_json::{json, Map, Value};

/// A reason as the console translates it: a stable `code` and its `params`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// Stable, snake_case.
    pub code: &'static str,
    /// The values the translated text needs (a status, a time).
    pub params: Map<String, Value>,
}

impl Reason {
    fn new(code: &'static str) -> Self {
        Self {
            code,
            params: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.params.insert(key.to_owned(), value);
        self
    }
}

/// The error codes of the gateway's answers that a log row's error may start with.
const ANSWER_CODES: [&str; 14] = [
    "invalid_request",
    "payload_too_large",
    "permission_denied",
    "model_not_allowed",
    "model_not_found",
    "rate_limit_exceeded",
    "insufficient_quota",
    "usage_limit_reached",
    "all_accounts_cooling",
    "no_available_account",
    "upstream_error",
    "server_overloaded",
    "service_unavailable",
    "internal_error",
];

/// The first number in `text`.
fn number(text: &str) -> Option<u64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The reason of a stored error text (a log row's `error_message` or an account's
/// `last_error`).
pub fn explain(message: &str) -> Reason {
    let answer = message
        .split_once(": ")
        .and_then(|(code, rest)| Some((*ANSWER_CODES.iter().find(|c| **c == code)?, rest)));
    let (answer, text) = match answer {
        Some((code, rest)) => (Some(code), rest),
        None => (None, message),
    };
    let lower = text.to_ascii_lowercase();
    if lower.contains("on two accounts in a row") {
        let reason = Reason::new("repeated_server_error");
        let status = text.rfind("server error (").map(|at| &text[at..]);
        return match status.and_then(number) {
            Some(status) => reason.with("status", json!(status)),
            None => reason,
        };
    }
    if let Some(rest) = lower.strip_prefix("upstream answered ") {
        if let Some(status) = number(rest) {
            return Reason::new("upstream_status").with("status", json!(status));
        }
    }
    if lower.starts_with("usage limit reached") || lower.contains("usage limit was reached") {
        let reason = Reason::new("usage_limit");
        return match text.split_once("resets at ") {
            Some((_, at)) => reason.with("resets_at", json!(at.trim())),
            None => reason,
        };
    }
    if lower.starts_with("upstream failed") {
        return Reason::new("upstream_failed");
    }
    if lower.starts_with("upstream stream ended before any output") {
        return Reason::new("stream_cut");
    }
    if lower.contains("refused the account's token even after a refresh") {
        return Reason::new("token_rejected");
    }
    if lower.contains("refused the account's token") {
        return Reason::new("token_refreshing");
    }
    if lower.starts_with("refresh failed") || lower.contains("refresh token") {
        return Reason::new("refresh_failed");
    }
    if lower == "client disconnected" {
        return Reason::new("client_disconnected");
    }
    if lower.contains("the upstream refused the account") {
        return Reason::new("account_refused");
    }
    match answer {
        Some(code) => Reason::new(code),
        None => Reason::new("other"),
    }
}

/// Why an account does not serve now, from its console state and its cooldown's cause;
/// `None` when it serves.
pub fn account_state(
    state: crate::service::accounts::AccountState,
    cooldown: Option<crate::actors::account_pool::Cooldown>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<Reason> {
    use crate::actors::account_pool::Cooldown;
    use crate::service::accounts::AccountState as S;
    let reason = match state {
        S::Active | S::Expiring => return None,
        S::Disabled => Reason::new("disabled"),
        S::NeedsRelogin => Reason::new("needs_relogin"),
        S::Expired => Reason::new("expired"),
        S::RefreshFailed => Reason::new("refresh_failed"),
        S::CoolingDown => Reason::new(match cooldown {
            Some(Cooldown::UsageLimit) => "cooling_usage_limit",
            Some(Cooldown::Transient) => "cooling_transient",
            Some(Cooldown::Forbidden) => "cooling_forbidden",
            Some(Cooldown::Refresh) => "cooling_refresh",
            Some(Cooldown::Breaker) => "cooling_breaker",
            None => "cooling",
        }),
    };
    Some(match until {
        Some(until) if state == S::CoolingDown => reason.with("until", json!(until)),
        _ => reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::account_pool::Cooldown;
    use crate::service::accounts::AccountState;

    /// A stored text, its code and one parameter it must carry.
    type Row = (&'static str, &'static str, Option<(&'static str, Value)>);

    #[test]
    fn the_gateways_texts_have_stable_codes() {
        let rows: [Row; 13] = [
            ("upstream_error: upstream answered 502", "upstream_status", Some(("status", json!(502)))),
            ("upstream answered 403: forbidden", "upstream_status", Some(("status", json!(403)))),
            (
                "upstream_error: upstream failed: code 42; the request failed with a server error (500) on two accounts in a row and is not retried",
                "repeated_server_error",
                Some(("status", json!(500))),
            ),
            (
                "usage limit reached; resets at 2026-12-02T20:00:00+00:00",
                "usage_limit",
                Some(("resets_at", json!("2026-12-02T20:00:00+00:00"))),
            ),
            ("rate_limit_exceeded: the account's usage limit was reached", "usage_limit", None),
            ("upstream failed: server_error", "upstream_failed", None),
            ("upstream stream ended before any output", "stream_cut", None),
            ("upstream_error: the upstream refused the account's token even after a refresh", "token_rejected", None),
            ("refresh failed: invalid_grant", "refresh_failed", None),
            ("client disconnected", "client_disconnected", None),
            ("no_available_account: no upstream account is available", "no_available_account", None),
            ("server_overloaded: the upstream is overloaded; try again shortly", "server_overloaded", None),
            ("error sending request for url (http://127.0.0.1:1/)", "other", None),
        ];
        for (text, code, param) in rows {
            let reason = explain(text);
            assert_eq!(reason.code, code, "{text}");
            match param {
                Some((key, value)) => assert_eq!(reason.params.get(key), Some(&value), "{text}"),
                None => assert!(reason.params.is_empty(), "{text}"),
            }
        }
    }

    #[test]
    fn an_account_out_of_rotation_says_why() {
        assert_eq!(account_state(AccountState::Active, None, None), None);
        let until = chrono::Utc::now();
        let cooling = account_state(
            AccountState::CoolingDown,
            Some(Cooldown::UsageLimit),
            Some(until),
        )
        .unwrap();
        assert_eq!(cooling.code, "cooling_usage_limit");
        assert_eq!(cooling.params.get("until"), Some(&json!(until)));
        assert_eq!(
            account_state(AccountState::NeedsRelogin, None, None).map(|r| r.code),
            Some("needs_relogin")
        );
        assert_eq!(
            account_state(AccountState::Disabled, None, Some(until)).map(|r| r.params.len()),
            Some(0)
        );
    }
}
