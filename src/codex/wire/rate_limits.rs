//! An account's usage windows: how much of each it has spent and when it resets, from the
//! `x-codex-*` rate-limit headers of its answers or from the usage endpoint (CODEX.md §9).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The last snapshot of an account's usage windows: the primary (5-hour) and the secondary
/// (weekly) one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimits {
    pub primary_used_percent: Option<f64>,
    pub primary_window_minutes: Option<i64>,
    pub primary_resets_at: Option<DateTime<Utc>>,
    pub secondary_used_percent: Option<f64>,
    pub secondary_window_minutes: Option<i64>,
    pub secondary_resets_at: Option<DateTime<Utc>>,
    /// When these were seen (an answer's headers or a probe of the usage endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
}

/// One usage window of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Percent used.
    pub used_percent: f64,
    /// Its length, when known.
    pub minutes: Option<i64>,
    /// When it resets, when known.
    pub resets_at: Option<DateTime<Utc>>,
}

/// What the usage endpoint says of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport {
    /// Its windows.
    pub limits: RateLimits,
    /// The usage limit is reached (`limit_reached`, or not `allowed`).
    pub limit_reached: bool,
}

impl RateLimits {
    /// Reads the snapshot from response headers; `None` when there are none.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = Utc::now();
        let resets = |prefix: &str| {
            get(&format!("x-codex-{prefix}-reset-at"))
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .or_else(|| {
                    get(&format!("x-codex-{prefix}-reset-after-seconds"))
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(|s| now + chrono::Duration::milliseconds((s * 1000.0) as i64))
                })
        };
        let limits = Self {
            primary_used_percent: get("x-codex-primary-used-percent").and_then(|v| v.parse().ok()),
            primary_window_minutes: get("x-codex-primary-window-minutes")
                .and_then(|v| v.parse().ok()),
            primary_resets_at: resets("primary"),
            secondary_used_percent: get("x-codex-secondary-used-percent")
                .and_then(|v| v.parse().ok()),
            secondary_window_minutes: get("x-codex-secondary-window-minutes")
                .and_then(|v| v.parse().ok()),
            secondary_resets_at: resets("secondary"),
            checked_at: None,
        };
        (limits != Self::default()).then_some(Self {
            checked_at: Some(now),
            ..limits
        })
    }

    /// Reads an answer of the usage endpoint (CODEX.md §9). Windows are told apart by their
    /// length (`limit_window_seconds`), not their slot: the shorter is the primary one; a
    /// lone window longer than a day is the secondary one. `reset_at` wins over
    /// `reset_after_seconds`.
    pub fn from_usage(body: &Value, now: DateTime<Utc>) -> Option<UsageReport> {
        let rate_limit = body.get("rate_limit")?;
        let window = |key: &str| -> Option<(i64, Window)> {
            let w = rate_limit.get(key).filter(|w| w.is_object())?;
            let seconds = w.get("limit_window_seconds").and_then(Value::as_i64);
            let resets_at = w
                .get("reset_at")
                .and_then(Value::as_i64)
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .or_else(|| {
                    w.get("reset_after_seconds")
                        .and_then(Value::as_f64)
                        .map(|s| now + chrono::Duration::milliseconds((s * 1000.0) as i64))
                });
            Some((
                seconds.unwrap_or(i64::MAX),
                Window {
                    used_percent: w.get("used_percent").and_then(Value::as_f64)?,
                    minutes: seconds.map(|s| s / 60),
                    resets_at,
                },
            ))
        };
        let mut windows: Vec<(i64, Window)> = ["primary_window", "secondary_window"]
            .iter()
            .filter_map(|key| window(key))
            .collect();
        windows.sort_by_key(|(seconds, _)| *seconds);
        let (primary, secondary) = match windows.as_slice() {
            [] => (None, None),
            [(seconds, only)] if *seconds > 86_400 => (None, Some(*only)),
            [(_, only)] => (Some(*only), None),
            [(_, short), (_, long), ..] => (Some(*short), Some(*long)),
        };
        let limit_reached = rate_limit
            .get("limit_reached")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || rate_limit.get("allowed").and_then(Value::as_bool) == Some(false);
        Some(UsageReport {
            limits: Self {
                primary_used_percent: primary.map(|w| w.used_percent),
                primary_window_minutes: primary.and_then(|w| w.minutes),
                primary_resets_at: primary.and_then(|w| w.resets_at),
                secondary_used_percent: secondary.map(|w| w.used_percent),
                secondary_window_minutes: secondary.and_then(|w| w.minutes),
                secondary_resets_at: secondary.and_then(|w| w.resets_at),
                checked_at: Some(now),
            },
            limit_reached,
        })
    }

    /// The windows with a used percent: the primary, then the secondary.
    pub fn windows(&self) -> impl Iterator<Item = Window> {
        [
            (
                self.primary_used_percent,
                self.primary_window_minutes,
                self.primary_resets_at,
                300,
            ),
            (
                self.secondary_used_percent,
                self.secondary_window_minutes,
                self.secondary_resets_at,
                10_080,
            ),
        ]
        .into_iter()
        .filter_map(|(used, minutes, resets_at, usual)| {
            Some(Window {
                used_percent: used?,
                minutes: minutes.or(Some(usual)),
                resets_at,
            })
        })
    }

    /// Whether `self` was seen after `other` (a snapshot without a time is the older).
    pub fn newer_than(&self, other: &Self) -> bool {
        self.checked_at > other.checked_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_usage_endpoint_tells_windows_by_length() {
        let now = Utc::now();
        let body = json!({"plan_type": "plus", "rate_limit": {"allowed": true, "limit_reached": false,
            "primary_window": {"used_percent": 12, "limit_window_seconds": 604_800, "reset_after_seconds": 400_000, "reset_at": 1_704_600_000},
            "secondary_window": {"used_percent": 42, "limit_window_seconds": 18_000, "reset_after_seconds": 3600}}});
        let report = RateLimits::from_usage(&body, now).unwrap();
        assert!(!report.limit_reached);
        let l = &report.limits;
        assert_eq!(l.primary_used_percent, Some(42.0));
        assert_eq!(l.primary_window_minutes, Some(300));
        assert_eq!(
            l.primary_resets_at,
            Some(now + chrono::Duration::seconds(3600))
        );
        assert_eq!(l.secondary_used_percent, Some(12.0));
        assert_eq!(
            l.secondary_resets_at,
            DateTime::from_timestamp(1_704_600_000, 0)
        );
        assert_eq!(l.checked_at, Some(now));

        let lone = json!({"rate_limit": {"allowed": false,
            "primary_window": {"used_percent": 100, "limit_window_seconds": 2_592_000, "reset_after_seconds": 60},
            "secondary_window": null}});
        let report = RateLimits::from_usage(&lone, now).unwrap();
        assert!(report.limit_reached);
        assert_eq!(report.limits.primary_used_percent, None);
        assert_eq!(report.limits.secondary_used_percent, Some(100.0));
        assert!(RateLimits::from_usage(&json!({"detail": "x"}), now).is_none());
    }

    #[test]
    fn headers_are_read_and_timed() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert!(RateLimits::from_headers(&headers).is_none());
        headers.insert("x-codex-primary-used-percent", "97".parse().unwrap());
        headers.insert("x-codex-primary-reset-after-seconds", "60".parse().unwrap());
        let limits = RateLimits::from_headers(&headers).unwrap();
        assert_eq!(limits.primary_used_percent, Some(97.0));
        assert!(limits.checked_at.is_some());
        let windows: Vec<Window> = limits.windows().collect();
        assert_eq!(windows.len(), 1);
        assert_eq!(
            windows[0].minutes,
            Some(300),
            "the usual length when not sent"
        );
    }
}
