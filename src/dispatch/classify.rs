//! The decision on an upstream answer that failed, as the table in CODEX.md §5 gives it: what
//! becomes of the account and whether the client's request is retried. Pure functions of the
//! answer; [`super`] applies the verdict (reports to the pool, refreshes, retries or returns).
//!
//! | upstream answer | account | the client's request |
//! | --- | --- | --- |
//! | 401 | refresh once, send again on it; a second 401 takes it out | retried |
//! | 429 `usage_limit_reached` | cooling down until the reset | retried on another account |
//! | 429 other, 408, 5xx, network error, overload before content | short cooldown | retried on another account |
//! | 402 / 403 | cooling down for long | retried on another account |
//! | 400 / 404 / 413 / 422 / 431 | unchanged | goes back as is, never retried |
//! | a 5xx right after a 5xx on another account | unchanged | goes back, no more retries |
//!
//! A request that meets a server error (other than an overload) on two accounts in a row is
//! most likely failing for its own content: it is not retried further and cools no more
//! accounts ([`after`]). Network errors and overloads keep their own rules.

use chrono::{DateTime, Duration, Utc};

use crate::codex::wire::UpstreamError;

/// What to do with the account and the client's request after a failed upstream answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 401: refresh the token once and send again on the same account; a second 401 takes
    /// the account out and the request goes to another one.
    Refresh,
    /// The plan's usage limit: the account cools down until the reset (see [`resets_at`]);
    /// the request goes to another account.
    UsageLimit,
    /// 402/403: the account cools down for long; the request goes to another account.
    Forbidden,
    /// Server errors, timeouts, other 429s, network trouble: a short cooldown; the request goes
    /// to another account.
    Transient,
    /// The backend is overloaded (503, `server_is_overloaded`, `slow_down`): its condition, not
    /// the account's. The account is not cooled; the request goes once more to another account
    /// after a short pause.
    Overloaded,
    /// The client's own request is at fault: the account is unchanged and the error goes back
    /// to the client as is, never retried.
    Client,
    /// A server error right after a server error on another account: the request, not the
    /// accounts, is the likely cause. The account is unchanged; the upstream's error goes back
    /// to the client and the request is not retried.
    RepeatedServerError,
}

/// Whether an answer with this status and verdict is a server error that counts towards the
/// two-in-a-row stop: a 5xx judged transient (an overload is not one).
pub fn is_server_error(status: Option<u16>, verdict: Verdict) -> bool {
    status.is_some_and(|s| s >= 500) && verdict == Verdict::Transient
}

/// The verdict on an answer given what the request's previous attempt met: a server error
/// after a server error becomes [`Verdict::RepeatedServerError`]; anything else is unchanged.
pub fn after(previous_server_error: bool, status: Option<u16>, verdict: Verdict) -> Verdict {
    if previous_server_error && is_server_error(status, verdict) {
        Verdict::RepeatedServerError
    } else {
        verdict
    }
}

/// The verdict on an HTTP answer other than 200, with its parsed error body.
pub fn classify(status: u16, error: &UpstreamError) -> Verdict {
    match status {
        401 => Verdict::Refresh,
        429 if error.is_usage_limit() => Verdict::UsageLimit,
        402 | 403 => Verdict::Forbidden,
        400 | 404 | 413 | 422 | 431 => Verdict::Client,
        503 => Verdict::Overloaded,
        _ if error.is_overload() => Verdict::Overloaded,
        _ => Verdict::Transient,
    }
}

/// The verdict on a 200 whose stream failed (`response.failed` or an `error` event) before
/// any output.
pub fn classify_stream(error: &UpstreamError) -> Verdict {
    if error.is_usage_limit() {
        Verdict::UsageLimit
    } else if error.is_overload() {
        Verdict::Overloaded
    } else if error.is_transient() {
        Verdict::Transient
    } else {
        Verdict::Client
    }
}

/// When a usage limit resets: `resets_at`, else `now` plus `resets_in_seconds`, else in five
/// minutes.
pub fn resets_at(error: &UpstreamError, now: DateTime<Utc>) -> DateTime<Utc> {
    error
        .resets_at
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .or_else(|| error.resets_in_seconds.map(|s| now + Duration::seconds(s)))
        .unwrap_or_else(|| now + Duration::minutes(5))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An upstream error with this `code` and `type`.
    pub(in crate::dispatch) fn error(code: Option<&str>, kind: Option<&str>) -> UpstreamError {
        UpstreamError {
            code: code.map(str::to_owned),
            kind: kind.map(str::to_owned),
            message: "upstream says no".into(),
            ..UpstreamError::default()
        }
    }

    #[test]
    fn every_row_of_the_table() {
        let plain = error(None, None);
        let usage_limit = error(None, Some("usage_limit_reached"));
        let usage_limit_code = error(Some("usage_limit_reached"), None);
        let rate_limit = error(Some("rate_limit_exceeded"), None);
        let overloaded = error(Some("server_is_overloaded"), None);
        let slow_down = error(Some("slow_down"), None);
        let rows = [
            // 401: refresh once, then take the account out.
            (401, &plain, Verdict::Refresh),
            (401, &usage_limit, Verdict::Refresh),
            // 429 usage_limit_reached: cool down until the reset.
            (429, &usage_limit, Verdict::UsageLimit),
            (429, &usage_limit_code, Verdict::UsageLimit),
            // Other 429s, 408, 5xx: a short cooldown.
            (429, &rate_limit, Verdict::Transient),
            (429, &plain, Verdict::Transient),
            (408, &plain, Verdict::Transient),
            (500, &plain, Verdict::Transient),
            (502, &plain, Verdict::Transient),
            // Overload: the backend's condition, not the account's.
            (503, &overloaded, Verdict::Overloaded),
            (503, &plain, Verdict::Overloaded),
            (500, &overloaded, Verdict::Overloaded),
            (429, &slow_down, Verdict::Overloaded),
            (504, &plain, Verdict::Transient),
            (520, &plain, Verdict::Transient),
            // 402/403: a long cooldown.
            (402, &plain, Verdict::Forbidden),
            (403, &plain, Verdict::Forbidden),
            // The client's fault, whatever the body says.
            (400, &plain, Verdict::Client),
            (400, &usage_limit, Verdict::Client),
            (404, &plain, Verdict::Client),
            (413, &plain, Verdict::Client),
            (422, &plain, Verdict::Client),
            (431, &plain, Verdict::Client),
        ];
        for (status, error, verdict) in rows {
            assert_eq!(classify(status, error), verdict, "{status} {error:?}");
        }
    }

    #[test]
    fn a_second_server_error_in_a_row_stops_the_retries() {
        let plain = error(None, None);
        let overloaded = error(Some("server_is_overloaded"), None);
        for status in [500, 502, 504, 520] {
            let verdict = classify(status, &plain);
            assert!(is_server_error(Some(status), verdict), "{status}");
            assert_eq!(after(false, Some(status), verdict), Verdict::Transient);
            assert_eq!(
                after(true, Some(status), verdict),
                Verdict::RepeatedServerError,
                "{status}"
            );
        }
        // Overloads, network errors, cut streams and other failures keep their own rules.
        for (status, error) in [
            (503, &plain),
            (500, &overloaded),
            (429, &plain),
            (408, &plain),
        ] {
            let verdict = classify(status, error);
            assert!(!is_server_error(Some(status), verdict), "{status}");
            assert_eq!(after(true, Some(status), verdict), verdict, "{status}");
        }
        assert!(!is_server_error(None, Verdict::Transient));
        assert_eq!(after(true, None, Verdict::Transient), Verdict::Transient);
        assert_eq!(after(true, Some(401), Verdict::Refresh), Verdict::Refresh);
    }

    #[test]
    fn failures_in_the_stream_before_output() {
        let rows = [
            (
                error(None, Some("usage_limit_reached")),
                Verdict::UsageLimit,
            ),
            (
                error(Some("server_is_overloaded"), None),
                Verdict::Overloaded,
            ),
            (error(Some("slow_down"), None), Verdict::Overloaded),
            (error(Some("rate_limit_exceeded"), None), Verdict::Transient),
            (error(Some("server_error"), None), Verdict::Transient),
            (
                error(Some("invalid_prompt"), Some("invalid_request_error")),
                Verdict::Client,
            ),
        ];
        for (error, verdict) in rows {
            assert_eq!(classify_stream(&error), verdict, "{error:?}");
        }
    }

    #[test]
    fn the_reset_comes_from_the_error() {
        let now = Utc::now();
        let limit = error(None, Some("usage_limit_reached"));
        let at = UpstreamError {
            resets_at: Some(1_776_358_224),
            resets_in_seconds: Some(60),
            ..limit.clone()
        };
        assert_eq!(resets_at(&at, now).timestamp(), 1_776_358_224);
        let after = UpstreamError {
            resets_in_seconds: Some(600),
            ..limit.clone()
        };
        assert_eq!(resets_at(&after, now), now + Duration::seconds(600));
        assert_eq!(resets_at(&limit, now), now + Duration::minutes(5));
    }
}
