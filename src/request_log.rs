//! The usage-log row of one proxied request, as a guard: it is written when the request ends,
//! however it ends, and a dropped guard (the client went away) still writes its row.

use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::actors::key_cache::{KeyCacheHandle, KeyRecord};
use crate::actors::usage_log::{Transport, UsageLogHandle, UsageRecord};
use crate::codex::wire::Usage;
use crate::state::AppState;

/// Upstream attempts a row keeps at most (the retry budget is far smaller; a bound all the same).
pub const MAX_ATTEMPTS: usize = 16;
/// Characters of an attempt's error message kept at most.
const MAX_ATTEMPT_ERROR_CHARS: usize = 300;

/// One upstream attempt of a request: the account, what came of it and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The account tried; `token_id` in the contract.
    pub token_id: i32,
    /// The upstream's HTTP status when it answered other than 200, else 200 for a served
    /// attempt or the status the gateway gave the failure (502 for a network error).
    pub status: u16,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How long the attempt took, up to the first output or the failure.
    pub latency_ms: u64,
}

impl Attempt {
    /// The attempt on `token_id` that ended with `result` (a failure's status and message)
    /// after `took`; `upstream_status` is the upstream's own status when it answered other
    /// than 200.
    pub fn of(
        token_id: i32,
        result: &Result<(), (u16, String)>,
        upstream_status: Option<u16>,
        took: std::time::Duration,
    ) -> Self {
        let (status, error) = match result {
            Ok(()) => (200, None),
            Err((status, message)) => (
                upstream_status.unwrap_or(*status),
                Some(message.chars().take(MAX_ATTEMPT_ERROR_CHARS).collect()),
            ),
        };
        Self {
            token_id,
            status,
            error,
            latency_ms: took.as_millis() as u64,
        }
    }
}

/// The usage-log row of one request, written when the request ends, however it ends: a
/// dropped guard (client gone) still writes its row, with the tokens seen so far.
pub struct RequestLog {
    pub record: UsageRecord,
    started: Instant,
    writer: UsageLogHandle,
    keys: KeyCacheHandle,
    metrics: crate::metrics::Metrics,
    done: bool,
    /// The token estimate reserved at admission, released when the row is written.
    reserved: Option<i64>,
}

impl RequestLog {
    /// Starts timing a request.
    pub fn start(
        state: &AppState,
        key: &KeyRecord,
        model: &str,
        endpoint: &'static str,
        stream: bool,
        request_id: Option<String>,
    ) -> Self {
        Self {
            record: UsageRecord {
                created_at: Utc::now(),
                api_key_id: Some(key.id),
                account_id: None,
                model: model.to_string(),
                endpoint,
                stream,
                status_code: 200,
                error_message: None,
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                reasoning_tokens: 0,
                latency_ms: 0,
                ttft_ms: None,
                request_id,
                rate_limits: None,
                transport: Transport::Http,
                attempts: Vec::new(),
            },
            started: Instant::now(),
            writer: state.usage.clone(),
            keys: state.keys.clone(),
            metrics: state.metrics.clone(),
            done: false,
            reserved: None,
        }
    }

    /// Notes how the request reached the gateway (HTTP unless said otherwise).
    pub fn over(mut self, transport: Transport) -> Self {
        self.record.transport = transport;
        self
    }

    /// Notes that the request was admitted with `estimate` tokens reserved: writing the row
    /// settles the reservation with the real usage.
    pub fn admitted(mut self, estimate: i64) -> Self {
        self.reserved = Some(estimate);
        self
    }

    /// Writes the row of a request its key's own limits refused (no account served it).
    pub fn refused(
        state: &AppState,
        key: &KeyRecord,
        model: &str,
        endpoint: &'static str,
        stream: bool,
        request_id: Option<String>,
        error: &crate::error::AppError,
    ) {
        let log = Self::start(state, key, model, endpoint, stream, request_id);
        log.finish(error.status().as_u16(), Some(error.message().to_string()));
    }

    /// Notes an upstream attempt; beyond [`MAX_ATTEMPTS`] they are not kept.
    pub fn attempt(&mut self, attempt: Attempt) {
        if self.record.attempts.len() < MAX_ATTEMPTS {
            self.record.attempts.push(attempt);
        }
    }

    /// Notes the first byte of content sent to the client.
    pub fn first_token(&mut self) {
        if self.record.ttft_ms.is_none() {
            self.record.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        }
    }

    /// Notes the usage reported so far.
    pub fn usage(&mut self, usage: Option<Usage>) {
        if let Some(u) = usage {
            self.record.input_tokens = u.input_tokens;
            self.record.output_tokens = u.output_tokens;
            self.record.cached_tokens = u.cached_tokens;
            self.record.reasoning_tokens = u.reasoning_tokens;
        }
    }

    /// Ends the request with a status and, for failures, a message.
    pub fn finish(mut self, status: u16, error: Option<String>) {
        self.record.status_code = status;
        self.record.error_message = error;
        self.write();
    }

    fn write(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.record.latency_ms = self.started.elapsed().as_millis() as u64;
        if let Some(key_id) = self.record.api_key_id {
            let tokens = (self.record.input_tokens + self.record.output_tokens) as i64;
            match self.reserved.take() {
                Some(reserved) => self.keys.release(key_id, tokens, reserved),
                None => self.keys.settle(key_id, tokens),
            }
        }
        self.metrics
            .input_tokens(self.record.input_tokens, self.record.cached_tokens);
        self.metrics.request(
            self.record.endpoint,
            self.record.status_code,
            self.started.elapsed().as_secs_f64(),
        );
        self.writer.record(self.record.clone());
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.done {
            // 499: the client closed the connection before the answer was complete.
            self.record.status_code = 499;
            self.record
                .error_message
                .get_or_insert_with(|| "client disconnected".into());
            self.write();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_keeps_the_upstreams_status_and_a_bounded_message() {
        let took = std::time::Duration::from_millis(42);
        let served = Attempt::of(3, &Ok(()), None, took);
        assert_eq!(
            served,
            Attempt {
                token_id: 3,
                status: 200,
                error: None,
                latency_ms: 42
            }
        );
        let failed = Attempt::of(4, &Err((502, "x".repeat(1000))), Some(500), took);
        assert_eq!(failed.status, 500, "the upstream's own status");
        assert_eq!(failed.error.map(|e| e.len()), Some(MAX_ATTEMPT_ERROR_CHARS));
        let unreachable = Attempt::of(5, &Err((502, "refused".into())), None, took);
        assert_eq!(unreachable.status, 502);
        let json = serde_json::to_value(&unreachable).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"token_id": 5, "status": 502, "error": "refused", "latency_ms": 42})
        );
    }
}
