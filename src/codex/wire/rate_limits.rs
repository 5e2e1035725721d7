//! The `x-codex-*` rate-limit headers: how much of each usage window an account has spent and
//! when the window resets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The last `x-codex-*` rate-limit headers seen for an account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimits {
    pub primary_used_percent: Option<f64>,
    pub primary_window_minutes: Option<i64>,
    pub primary_resets_at: Option<DateTime<Utc>>,
    pub secondary_used_percent: Option<f64>,
    pub secondary_window_minutes: Option<i64>,
    pub secondary_resets_at: Option<DateTime<Utc>>,
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
        };
        (limits != Self::default()).then_some(limits)
    }
}
