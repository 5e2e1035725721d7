//! A fake Codex backend and OAuth token endpoint, for the tests, browser tests and the benchmark.
//!
//! The real backend cannot be reached from development machines, so everything the gateway does
//! upstream is tested against this mock. It is as strict as the real one on purpose (CODEX.md §3):
//! a gateway that forwards a body the backend would refuse gets the same 400 here. Refresh tokens
//! rotate and are single use, as upstream, so a gateway that refreshes twice concurrently is
//! caught. Counters and records let tests assert on what arrived.
//!
//! The answer is a realistic SSE stream whose text names the serving account
//! (`Hello from <account_id>! You said: <text>`) and whose shape comes from markers in the last
//! user message, which can be combined:
//! - `[mock:reasoning]` a reasoning summary before the answer;
//! - `[mock:tool_call]`, `[mock:tool_calls]` one or two function calls (named after the request's
//!   tools) instead of text; once the input ends with a tool result, the answer is text again;
//! - `[mock:failed_overloaded]`, `[mock:failed_rate_limit]`, `[mock:failed:CODE]` a 200 stream
//!   ending in `response.failed` before any content; `[mock:error_event]` an `error` event;
//! - `[mock:cut]` the stream stops halfway through the text, without a terminal event;
//! - `[mock:empty_output]` `response.completed` with `output: []`;
//! - `[mock:incomplete]`, `[mock:incomplete:REASON]` ends with `response.incomplete`;
//! - `[mock:slow]`, `[mock:slow:MS:N]` N deltas MS apart (default 200 x 50 ms, ~10 s);
//! - `[mock:stall]` nothing after `response.in_progress` for an hour (a silent stream: a client
//!   that goes away is only noticed when the mock stops, as nothing is written);
//! - `[mock:unsupported_model]` the backend's 400 for a model the plan does not have.
//!
//! Each account can also be told to fail (`Behaviour`: usage limit, 401 until refreshed, 5xx, ...)
//! lastingly or for its next N requests, and its refreshes likewise (`RefreshBehaviour`).
//!
//! It runs inside the test process (`MockUpstream::start()` from an actix System, port 0) or as a
//! standalone process through `examples/mock_upstream.rs`, which drives it over `/__mock/*`.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Map, Value};

/// Path of the responses endpoint below the server root.
pub const RESPONSES_PATH: &str = "/backend-api/codex/responses";
/// Path of the OAuth token endpoint below the server root.
pub const OAUTH_PATH: &str = "/oauth/token";

/// `input_tokens` reported by every completed answer.
pub const USAGE_INPUT_TOKENS: u64 = 12;
/// `input_tokens_details.cached_tokens` reported by every completed answer.
pub const USAGE_CACHED_TOKENS: u64 = 4;
/// `output_tokens` reported by every completed answer.
pub const USAGE_OUTPUT_TOKENS: u64 = 8;
/// `output_tokens_details.reasoning_tokens` reported when the answer reasons (else 0).
pub const USAGE_REASONING_TOKENS: u64 = 3;
/// The whole answer text in fast mode.
pub const FAST_ANSWER: &str = "ok";

/// The JWT claim namespace where OpenAI puts the ChatGPT account id and plan.
const AUTH_CLAIM: &str = "https://api.openai.com/auth";
/// The JWT claim namespace where OpenAI access tokens carry the e-mail.
const PROFILE_CLAIM: &str = "https://api.openai.com/profile";
/// Parameters the backend refuses with `Unsupported parameter: X` (CODEX.md §3).
const NEVER_FORWARD: [&str; 12] = [
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "user",
    "truncation",
    "previous_response_id",
    "stream_options",
];
/// Model-name suffixes that select an effort on the gateway and must never reach upstream.
const EFFORT_SUFFIXES: [&str; 6] = ["-low", "-medium", "-high", "-xhigh", "-minimal", "-none"];
/// Accepted `reasoning.effort` values.
const EFFORTS: [&str; 6] = ["none", "minimal", "low", "medium", "high", "xhigh"];
/// Request bodies carry images as data URIs, so allow far more than actix's 256 KiB default.
const MAX_BODY_BYTES: usize = 64 << 20;
/// Records kept for assertions; a long-running standalone mock must not grow without bound.
const MAX_RECORDS: usize = 10_000;
/// Default access-token lifetime, about what the real endpoint grants.
const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 10 * 24 * 3600;
/// Default spacing and count of deltas for `[mock:slow]`: about ten seconds of stream.
const SLOW_DELAY_MS: u64 = 50;
const SLOW_DELTAS: usize = 200;
/// How long `[mock:stall]` keeps a stream open without sending anything.
const STALL: Duration = Duration::from_secs(3600);
/// How much of the user's text the answer echoes.
const ECHO_LIMIT: usize = 200;

/// What the responses endpoint does for one account.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Behaviour {
    /// Answer normally (the scenario comes from the message markers).
    #[default]
    Ok,
    /// 429 `usage_limit_reached` with `resets_at` / `resets_in_seconds`.
    UsageLimit {
        /// Seconds until the limit resets.
        resets_in_seconds: u64,
    },
    /// 429 `rate_limit_exceeded` (a short-term limit, not the plan's usage limit).
    RateLimited,
    /// This HTTP status with an `{"error": ...}` body.
    ServerError(u16),
    /// 401: set persistently, it refuses every access token issued before the next refresh;
    /// queued, it refuses one request whatever the token.
    Unauthorized,
    /// 403 `account_deactivated`.
    Forbidden,
    /// 402 `deactivated_workspace`.
    PaymentRequired,
    /// A 200 stream that fails with `response.failed` carrying this code before any content.
    StreamFailed(String),
}

/// What the OAuth endpoint does for one account's refresh.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum RefreshBehaviour {
    /// Rotate the tokens (or answer `refresh_token_reused` for an old refresh token).
    #[default]
    Ok,
    /// 401 `refresh_token_reused` whatever the token.
    Reused,
    /// 401 `refresh_token_expired`.
    Expired,
    /// 401 `refresh_token_invalidated`.
    Invalidated,
    /// 400 `{"error": "invalid_grant"}` (the plain OAuth shape).
    InvalidGrant,
    /// This HTTP status (5xx: transient).
    ServerError(u16),
}

/// Values of the `x-codex-primary-*` / `x-codex-secondary-*` headers for one account.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimits {
    /// Percentage of the 5-hour window used.
    pub primary_used_percent: f64,
    /// Length of the primary window (300 = 5 h).
    pub primary_window_minutes: u64,
    /// Seconds until the primary window resets.
    pub primary_reset_after_seconds: u64,
    /// Percentage of the weekly window used.
    pub secondary_used_percent: f64,
    /// Length of the secondary window (10080 = a week).
    pub secondary_window_minutes: u64,
    /// Seconds until the secondary window resets.
    pub secondary_reset_after_seconds: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            primary_used_percent: 25.0,
            primary_window_minutes: 300,
            primary_reset_after_seconds: 3600,
            secondary_used_percent: 40.0,
            secondary_window_minutes: 10080,
            secondary_reset_after_seconds: 86400,
        }
    }
}

/// One request received by the responses endpoint.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The `Chatgpt-Account-Id` header.
    pub account_id: Option<String>,
    /// All headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// The parsed JSON body (`Null` if it was not JSON or in fast mode).
    pub body: Value,
    /// The status the mock answered.
    pub status: u16,
}

impl RecordedRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// One call of the OAuth token endpoint.
#[derive(Clone, Debug)]
pub struct RecordedRefresh {
    /// The account owning the refresh token, if the token was ever issued.
    pub account_id: Option<String>,
    /// The request's content type.
    pub content_type: String,
    /// The form or JSON parameters (`client_id`, `grant_type`, `refresh_token`, `scope`).
    pub params: HashMap<String, String>,
    /// The status the mock answered.
    pub status: u16,
    /// `ok`, or the error code answered.
    pub outcome: String,
}

/// An account's current credentials as the mock knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockAccount {
    /// ChatGPT account id.
    pub account_id: String,
    /// E-mail carried by the id_token.
    pub email: Option<String>,
    /// Plan carried by the id_token.
    pub plan_type: String,
    /// The newest access token.
    pub access_token: String,
    /// The refresh token that is valid now.
    pub refresh_token: String,
    /// The newest id_token.
    pub id_token: String,
}

impl MockAccount {
    /// The account as a CLIProxyAPI credential file, ready to import into the gateway.
    pub fn to_cliproxy_json(&self) -> Value {
        let mut obj = json!({
            "type": "codex",
            "account_id": self.account_id,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "id_token": self.id_token,
            "last_refresh": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let expiry = jwt_claims(&self.access_token)
            .and_then(|c| c.get("exp")?.as_i64())
            .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0));
        if let Some(map) = obj.as_object_mut() {
            if let Some(email) = &self.email {
                map.insert("email".into(), Value::from(email.as_str()));
            }
            if let Some(at) = expiry {
                let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                map.insert("expired".into(), Value::from(at));
            }
        }
        obj
    }
}

/// How to start the mock.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// actix worker threads.
    pub workers: usize,
    /// Minimal checks, no body records and a short fixed answer (for the benchmark).
    pub fast: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            port: 0,
            workers: 2,
            fast: false,
        }
    }
}

/// The running mock: URLs, stop, and (through `Deref`) the state to configure and inspect.
pub struct MockUpstream {
    addr: SocketAddr,
    handle: ServerHandle,
    state: Arc<MockState>,
}

impl MockUpstream {
    /// Starts the mock on 127.0.0.1, a free port; call it from inside an actix System.
    pub fn start() -> Self {
        // A test cannot go on without its upstream, and binding port 0 on loopback only fails
        // when the machine is out of sockets.
        Self::start_with(MockOptions::default()).expect("bind the mock upstream on 127.0.0.1:0")
    }

    /// Starts the mock with options; call it from inside an actix System.
    pub fn start_with(options: MockOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", options.port))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::new(options.fast));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .configure(routes)
        })
        .workers(options.workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        // Streaming is many small writes: without this, Nagle holds frames ~40 ms (CODEX.md §4).
        .tcp_nodelay(true)
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Self {
            addr,
            handle,
            state,
        })
    }

    /// The value for the gateway's `codex.base_url` (requests go to `{base_url}/responses`).
    pub fn base_url(&self) -> String {
        format!("http://{}/backend-api/codex", self.addr)
    }

    /// The OAuth token endpoint URL.
    pub fn oauth_url(&self) -> String {
        format!("http://{}{OAUTH_PATH}", self.addr)
    }

    /// The server root, e.g. for the `/__mock/*` control endpoints.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A shared handle on the state, for moving into spawned tasks.
    pub fn state(&self) -> Arc<MockState> {
        self.state.clone()
    }

    /// Stops the server, dropping open streams.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

impl Deref for MockUpstream {
    type Target = MockState;

    fn deref(&self) -> &MockState {
        &self.state
    }
}

/// Everything the mock knows and counts; configure and inspect it from the tests.
pub struct MockState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    fast: bool,
    accounts: HashMap<String, AccountState>,
    /// Every refresh token ever issued, to tell "reused" from "never existed".
    refresh_owner: HashMap<String, String>,
    token_seq: u64,
    refresh_delay: Duration,
    token_lifetime_secs: i64,
    expected_client_id: Option<String>,
    supported_models: Option<Vec<String>>,
    requests: VecDeque<RecordedRequest>,
    refreshes: VecDeque<RecordedRefresh>,
    unmatched: VecDeque<String>,
    total_requests: usize,
    open_streams: usize,
    dropped_streams: usize,
    finished_streams: usize,
}

#[derive(Default)]
struct AccountState {
    email: Option<String>,
    plan_type: String,
    /// Access tokens issued for this account, with their issue sequence number.
    access_tokens: HashMap<String, u64>,
    latest_access: String,
    id_token: String,
    refresh_token: Option<String>,
    behaviour: Behaviour,
    queue: VecDeque<Behaviour>,
    /// Tokens issued up to this sequence number are refused while `behaviour` is `Unauthorized`.
    unauthorized_up_to: u64,
    refresh_behaviour: RefreshBehaviour,
    refresh_queue: VecDeque<RefreshBehaviour>,
    rate_limits: RateLimits,
    requests: usize,
    refresh_calls: usize,
    refresh_successes: usize,
    reuse_errors: usize,
    dropped_streams: usize,
}

impl MockState {
    fn new(fast: bool) -> Self {
        Self {
            inner: Mutex::new(Inner {
                fast,
                token_lifetime_secs: DEFAULT_TOKEN_LIFETIME_SECS,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not turn every later assertion into a poison error.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an account whose tokens the test already has (e.g. from a fixture file).
    pub fn add_account(&self, account_id: &str, refresh_token: &str, access_token: &str) {
        let mut inner = self.lock();
        let claims = jwt_claims(access_token);
        let email = claims
            .as_ref()
            .and_then(|c| c.get(PROFILE_CLAIM)?.get("email")?.as_str())
            .map(str::to_owned);
        let plan = claims
            .as_ref()
            .and_then(|c| c.get(AUTH_CLAIM)?.get("chatgpt_plan_type")?.as_str())
            .unwrap_or("plus")
            .to_owned();
        inner.register(account_id, refresh_token, access_token, email, plan);
    }

    /// Registers every account of a credential file (CLIProxyAPI object/array or Codex CLI
    /// `auth.json`), taking e-mail and plan from the file and its id_token; returns their ids.
    pub fn add_accounts_from_file(&self, text: &str) -> Result<Vec<String>, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        self.add_accounts_from_value(&value)
    }

    /// As `add_accounts_from_file`, from parsed JSON.
    pub fn add_accounts_from_value(&self, value: &Value) -> Result<Vec<String>, String> {
        let items = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        let mut inner = self.lock();
        let mut ids = Vec::new();
        for item in &items {
            let tokens = item.get("tokens").filter(|t| t.is_object()).unwrap_or(item);
            let text = |v: &Value, key: &str| v.get(key)?.as_str().map(str::to_owned);
            let id_claims = text(tokens, "id_token").and_then(|t| jwt_claims(&t));
            let auth = id_claims.as_ref().and_then(|c| c.get(AUTH_CLAIM));
            let account_id = text(tokens, "account_id")
                .or_else(|| text(item, "account_id"))
                .or_else(|| auth.and_then(|a| text(a, "chatgpt_account_id")))
                .ok_or("an entry has no account_id")?;
            let access = text(tokens, "access_token").ok_or("an entry has no access_token")?;
            let refresh = text(tokens, "refresh_token").ok_or("an entry has no refresh_token")?;
            let email =
                text(item, "email").or_else(|| id_claims.as_ref().and_then(|c| text(c, "email")));
            let plan = auth
                .and_then(|a| text(a, "chatgpt_plan_type"))
                .unwrap_or_else(|| "plus".into());
            inner.register(&account_id, &refresh, &access, email, plan);
            ids.push(account_id);
        }
        Ok(ids)
    }

    /// Creates an account with fresh tokens (e-mail `<id>@example.com`, plan `plus`).
    pub fn create_account(&self, account_id: &str) -> MockAccount {
        let mut inner = self.lock();
        let email = Some(format!("{account_id}@example.com"));
        let (access, _) = inner.issue_access_token(account_id, &email, "plus");
        let refresh = new_refresh_token();
        inner.register(account_id, &refresh, &access, email, "plus".into())
    }

    /// Sets the e-mail and plan that new id_tokens carry for an account.
    pub fn set_profile(&self, account_id: &str, email: &str, plan_type: &str) {
        let mut inner = self.lock();
        let acc = inner.account(account_id);
        acc.email = Some(email.to_owned());
        acc.plan_type = plan_type.to_owned();
    }

    /// The account's current tokens, if it is known.
    pub fn account(&self, account_id: &str) -> Option<MockAccount> {
        self.lock().snapshot(account_id)
    }

    /// Every account with its current tokens, sorted by id.
    pub fn accounts(&self) -> Vec<MockAccount> {
        let inner = self.lock();
        let mut ids: Vec<_> = inner.accounts.keys().cloned().collect();
        ids.sort();
        ids.iter().filter_map(|id| inner.snapshot(id)).collect()
    }

    /// The refresh token that is valid now for an account.
    pub fn current_refresh_token(&self, account_id: &str) -> Option<String> {
        self.lock().accounts.get(account_id)?.refresh_token.clone()
    }

    /// Sets an account's lasting behaviour on the responses endpoint.
    pub fn set_behaviour(&self, account_id: &str, behaviour: Behaviour) {
        let mut inner = self.lock();
        let seq = inner.token_seq;
        let acc = inner.account(account_id);
        if behaviour == Behaviour::Unauthorized {
            acc.unauthorized_up_to = seq;
        }
        acc.behaviour = behaviour;
    }

    /// Makes the next `times` requests of an account behave so, before the lasting behaviour.
    pub fn queue_behaviour(&self, account_id: &str, behaviour: Behaviour, times: usize) {
        let mut inner = self.lock();
        let acc = inner.account(account_id);
        acc.queue.extend(std::iter::repeat_n(behaviour, times));
    }

    /// Sets an account's lasting behaviour on the OAuth endpoint.
    pub fn set_refresh_behaviour(&self, account_id: &str, behaviour: RefreshBehaviour) {
        self.lock().account(account_id).refresh_behaviour = behaviour;
    }

    /// Makes the next `times` refreshes of an account behave so.
    pub fn queue_refresh_behaviour(
        &self,
        account_id: &str,
        behaviour: RefreshBehaviour,
        times: usize,
    ) {
        let mut inner = self.lock();
        let acc = inner.account(account_id);
        acc.refresh_queue
            .extend(std::iter::repeat_n(behaviour, times));
    }

    /// Delays every OAuth answer (the token is consumed on arrival, answered after the delay).
    pub fn set_refresh_delay(&self, delay: Duration) {
        self.lock().refresh_delay = delay;
    }

    /// Sets `expires_in` (and the `exp` claim) of newly issued access tokens.
    pub fn set_token_lifetime(&self, seconds: i64) {
        self.lock().token_lifetime_secs = seconds;
    }

    /// Sets the rate-limit headers sent for an account.
    pub fn set_rate_limits(&self, account_id: &str, limits: RateLimits) {
        self.lock().account(account_id).rate_limits = limits;
    }

    /// Restricts the accepted models (`None`: any model without an effort suffix).
    pub fn set_supported_models(&self, models: Option<Vec<String>>) {
        self.lock().supported_models = models;
    }

    /// Requires this OAuth `client_id` (`None`: any non-empty one).
    pub fn set_expected_client_id(&self, client_id: Option<String>) {
        self.lock().expected_client_id = client_id;
    }

    /// Switches fast mode (benchmark) on or off.
    pub fn set_fast(&self, fast: bool) {
        self.lock().fast = fast;
    }

    /// Refresh calls whose token belonged to this account.
    pub fn refresh_calls(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.refresh_calls)
    }

    /// Successful refreshes of this account.
    pub fn refresh_successes(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.refresh_successes)
    }

    /// `refresh_token_reused` answers given for this account.
    pub fn reuse_errors(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.reuse_errors)
    }

    /// `refresh_token_reused` answers given for all accounts.
    pub fn total_reuse_errors(&self) -> usize {
        self.lock().accounts.values().map(|a| a.reuse_errors).sum()
    }

    /// Every OAuth call received (most recent last).
    pub fn refreshes(&self) -> Vec<RecordedRefresh> {
        self.lock().refreshes.iter().cloned().collect()
    }

    /// Every responses request received (most recent last; fast mode records none).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.iter().cloned().collect()
    }

    /// The responses requests that carried this account id.
    pub fn requests_for(&self, account_id: &str) -> Vec<RecordedRequest> {
        let inner = self.lock();
        inner
            .requests
            .iter()
            .filter(|r| r.account_id.as_deref() == Some(account_id))
            .cloned()
            .collect()
    }

    /// The most recent responses request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.lock().requests.back().cloned()
    }

    /// How many responses requests carried this account id (counted in fast mode too).
    pub fn request_count(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.requests)
    }

    /// How many responses requests arrived in all.
    pub fn total_requests(&self) -> usize {
        self.lock().total_requests
    }

    /// Requests to paths the mock does not serve (`METHOD path`): a wrong URL shows up here.
    pub fn unmatched_requests(&self) -> Vec<String> {
        self.lock().unmatched.iter().cloned().collect()
    }

    /// Answer streams being sent right now.
    pub fn open_streams(&self) -> usize {
        self.lock().open_streams
    }

    /// Answer streams dropped (client gone) before their last event.
    pub fn dropped_streams(&self) -> usize {
        self.lock().dropped_streams
    }

    /// Answer streams dropped before their last event, for one account.
    pub fn dropped_streams_for(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.dropped_streams)
    }

    /// Answer streams sent to the end.
    pub fn finished_streams(&self) -> usize {
        self.lock().finished_streams
    }

    /// Forgets records and counters (accounts, tokens and behaviours stay).
    pub fn reset_records(&self) {
        let mut inner = self.lock();
        inner.requests.clear();
        inner.refreshes.clear();
        inner.unmatched.clear();
        inner.total_requests = 0;
        inner.dropped_streams = 0;
        inner.finished_streams = 0;
        for acc in inner.accounts.values_mut() {
            acc.requests = 0;
            acc.refresh_calls = 0;
            acc.refresh_successes = 0;
            acc.reuse_errors = 0;
            acc.dropped_streams = 0;
        }
    }

    /// Polls `condition` every 5 ms until it holds or `timeout` passes; says whether it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&MockState) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Counters as JSON (served at `GET /__mock/stats`).
    pub fn stats_json(&self) -> Value {
        let inner = self.lock();
        let accounts: Map<String, Value> = inner
            .accounts
            .iter()
            .map(|(id, a)| {
                let stats = json!({
                    "requests": a.requests,
                    "refresh_calls": a.refresh_calls,
                    "refresh_successes": a.refresh_successes,
                    "reuse_errors": a.reuse_errors,
                    "dropped_streams": a.dropped_streams,
                });
                (id.clone(), stats)
            })
            .collect();
        json!({
            "requests": inner.total_requests,
            "open_streams": inner.open_streams,
            "dropped_streams": inner.dropped_streams,
            "finished_streams": inner.finished_streams,
            "unmatched": inner.unmatched.iter().collect::<Vec<_>>(),
            "accounts": accounts,
        })
    }

    fn with_account(&self, account_id: &str, f: impl Fn(&AccountState) -> usize) -> usize {
        self.lock().accounts.get(account_id).map(f).unwrap_or(0)
    }
}

impl Inner {
    fn account(&mut self, account_id: &str) -> &mut AccountState {
        self.accounts
            .entry(account_id.to_owned())
            .or_insert_with(|| AccountState {
                plan_type: "plus".into(),
                ..AccountState::default()
            })
    }

    fn register(
        &mut self,
        account_id: &str,
        refresh_token: &str,
        access_token: &str,
        email: Option<String>,
        plan: String,
    ) -> MockAccount {
        self.token_seq += 1;
        let seq = self.token_seq;
        let id_token = make_id_token(account_id, &email, &plan, self.token_lifetime_secs);
        self.refresh_owner
            .insert(refresh_token.to_owned(), account_id.to_owned());
        let acc = self.account(account_id);
        acc.email = email.clone();
        acc.plan_type = plan.clone();
        acc.access_tokens.insert(access_token.to_owned(), seq);
        acc.latest_access = access_token.to_owned();
        acc.id_token = id_token.clone();
        acc.refresh_token = Some(refresh_token.to_owned());
        MockAccount {
            account_id: account_id.to_owned(),
            email,
            plan_type: plan,
            access_token: access_token.to_owned(),
            refresh_token: refresh_token.to_owned(),
            id_token,
        }
    }

    fn issue_access_token(
        &mut self,
        account_id: &str,
        email: &Option<String>,
        plan: &str,
    ) -> (String, u64) {
        self.token_seq += 1;
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "exp": now + self.token_lifetime_secs,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            AUTH_CLAIM: {"chatgpt_account_id": account_id, "chatgpt_plan_type": plan},
        });
        if let (Some(email), Some(map)) = (email, claims.as_object_mut()) {
            map.insert(PROFILE_CLAIM.into(), json!({ "email": email }));
        }
        (fake_jwt(&claims), self.token_seq)
    }

    fn snapshot(&self, account_id: &str) -> Option<MockAccount> {
        let acc = self.accounts.get(account_id)?;
        Some(MockAccount {
            account_id: account_id.to_owned(),
            email: acc.email.clone(),
            plan_type: acc.plan_type.clone(),
            access_token: acc.latest_access.clone(),
            refresh_token: acc.refresh_token.clone()?,
            id_token: acc.id_token.clone(),
        })
    }

    fn push_request(&mut self, record: RecordedRequest) {
        if self.requests.len() >= MAX_RECORDS {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
    }

    fn push_refresh(&mut self, record: RecordedRefresh) {
        if self.refreshes.len() >= MAX_RECORDS {
            self.refreshes.pop_front();
        }
        self.refreshes.push_back(record);
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(RESPONSES_PATH, web::post().to(responses))
        .route(OAUTH_PATH, web::post().to(oauth_token))
        .route("/__mock/accounts", web::get().to(control_list_accounts))
        .route("/__mock/accounts", web::post().to(control_add_accounts))
        .route("/__mock/behaviour", web::post().to(control_behaviour))
        .route("/__mock/stats", web::get().to(control_stats))
        .route("/__mock/reset", web::post().to(control_reset))
        .default_service(web::to(unmatched));
}

// ---------------------------------------------------------------------------------------------
// The responses endpoint
// ---------------------------------------------------------------------------------------------

/// What the responses endpoint decided, computed under the lock and acted on after it.
enum Outcome {
    Error {
        status: u16,
        body: Value,
        limits: Option<RateLimits>,
    },
    Stream {
        events: Vec<Step>,
        account_id: String,
        limits: RateLimits,
    },
}

/// One SSE frame and how long to wait before sending it.
struct Step {
    delay: Duration,
    bytes: Bytes,
}

async fn responses(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_ascii_lowercase(), value)
        })
        .collect();
    let account_id = headers
        .get("chatgpt-account-id")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();

    let outcome = {
        let mut inner = state.lock();
        let outcome = decide(
            &mut inner,
            account_id.as_deref(),
            bearer.as_deref(),
            &parsed,
        );
        let status = match &outcome {
            Outcome::Error { status, .. } => *status,
            Outcome::Stream { .. } => 200,
        };
        inner.total_requests += 1;
        if let Some(id) = &account_id {
            inner.account(id).requests += 1;
        }
        if !inner.fast {
            inner.push_request(RecordedRequest {
                account_id: account_id.clone(),
                headers,
                body: parsed.unwrap_or(Value::Null),
                status,
            });
        }
        if matches!(outcome, Outcome::Stream { .. }) {
            inner.open_streams += 1;
        }
        outcome
    };

    match outcome {
        Outcome::Error {
            status,
            body,
            limits,
        } => {
            let mut resp = HttpResponse::build(status_code(status));
            if let Some(limits) = limits {
                for (name, value) in rate_limit_headers(&limits) {
                    resp.insert_header((name, value));
                }
            }
            resp.json(body)
        }
        Outcome::Stream {
            events,
            account_id,
            limits,
        } => {
            let guard = StreamGuard {
                state: state.into_inner(),
                account_id,
                finished: false,
            };
            let mut resp = HttpResponse::Ok();
            resp.content_type("text/event-stream; charset=utf-8")
                .insert_header(("cache-control", "no-cache"))
                .insert_header(("x-request-id", uuid::Uuid::new_v4().to_string()));
            for (name, value) in rate_limit_headers(&limits) {
                resp.insert_header((name, value));
            }
            resp.streaming(sse_stream(events, guard))
        }
    }
}

/// Counts a stream as open while it lives; its `Drop` tells a finished stream from one the
/// client abandoned (actix drops the body when the connection goes away).
struct StreamGuard {
    state: Arc<MockState>,
    account_id: String,
    finished: bool,
}

impl StreamGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut inner = self.state.lock();
        inner.open_streams = inner.open_streams.saturating_sub(1);
        if self.finished {
            inner.finished_streams += 1;
        } else {
            inner.dropped_streams += 1;
            inner.account(&self.account_id).dropped_streams += 1;
        }
    }
}

fn sse_stream(
    events: Vec<Step>,
    guard: StreamGuard,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    stream::unfold(
        (events.into_iter(), guard),
        |(mut events, mut guard)| async move {
            match events.next() {
                Some(step) => {
                    if !step.delay.is_zero() {
                        actix_web::rt::time::sleep(step.delay).await;
                    }
                    Some((Ok(step.bytes), (events, guard)))
                }
                None => {
                    guard.finish();
                    None
                }
            }
        },
    )
}

fn decide(
    inner: &mut Inner,
    account_id: Option<&str>,
    bearer: Option<&str>,
    body: &Option<Value>,
) -> Outcome {
    let Some(bearer) = bearer else {
        return error(401, json!({"detail": "Unauthorized"}));
    };
    let Some(account_id) = account_id else {
        return error(400, json!({"detail": "Missing chatgpt-account-id header"}));
    };
    let fast = inner.fast;
    let acc = inner.account(account_id);
    let limits = acc.rate_limits.clone();

    // Accounts registered with tokens check them; others (created by a behaviour setting or a
    // bare request) accept any bearer so quick tests need no setup.
    let seq = acc.access_tokens.get(bearer).copied();
    if !acc.access_tokens.is_empty() && seq.is_none() {
        return error(
            401,
            openai_error(
                "Your authentication token has been invalidated. Please try signing in again.",
                "invalid_request_error",
                None,
                Some("token_invalidated"),
            ),
        );
    }
    if acc.behaviour == Behaviour::Unauthorized && seq.unwrap_or(0) <= acc.unauthorized_up_to {
        return unauthorized();
    }

    if fast {
        return Outcome::Stream {
            events: fast_events(),
            account_id: account_id.to_owned(),
            limits,
        };
    }

    let Some(body) = body else {
        return error(400, json!({"detail": "Request body is not valid JSON"}));
    };
    if let Err((status, body)) = validate(body) {
        return error(status, body);
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let scenario = Scenario::from_request(body);
    if scenario.unsupported_model || !model_supported(model, &inner.supported_models) {
        return error(
            400,
            json!({"detail": format!(
                "The '{model}' model is not supported when using Codex with a ChatGPT account."
            )}),
        );
    }

    let acc = inner.account(account_id);
    let (behaviour, queued) = match acc.queue.pop_front() {
        Some(one_shot) => (one_shot, true),
        None => (acc.behaviour.clone(), false),
    };
    let plan = acc.plan_type.clone();
    match behaviour {
        Behaviour::Ok => {}
        // A lasting `Unauthorized` whose token passed the check above belongs to a refresh
        // that happened after it was set.
        Behaviour::Unauthorized if !queued => {}
        Behaviour::Unauthorized => return unauthorized(),
        Behaviour::UsageLimit { resets_in_seconds } => {
            let resets_at = chrono::Utc::now().timestamp() + resets_in_seconds as i64;
            let exhausted = RateLimits {
                primary_used_percent: 100.0,
                primary_reset_after_seconds: resets_in_seconds,
                ..limits
            };
            return Outcome::Error {
                status: 429,
                body: json!({"error": {
                    "type": "usage_limit_reached",
                    "message": "The usage limit has been reached",
                    "plan_type": plan,
                    "resets_at": resets_at,
                    "resets_in_seconds": resets_in_seconds,
                }}),
                limits: Some(exhausted),
            };
        }
        Behaviour::RateLimited => {
            return Outcome::Error {
                status: 429,
                body: openai_error(
                    "Rate limit reached. Please try again later.",
                    "rate_limit_exceeded",
                    None,
                    Some("rate_limit_exceeded"),
                ),
                limits: Some(limits),
            }
        }
        Behaviour::ServerError(status) => {
            return error(
                status,
                openai_error(
                    "An error occurred while processing your request.",
                    "server_error",
                    None,
                    Some("server_error"),
                ),
            )
        }
        Behaviour::Forbidden => {
            return error(
                403,
                openai_error(
                    "Your OpenAI account has been deactivated.",
                    "invalid_request_error",
                    None,
                    Some("account_deactivated"),
                ),
            )
        }
        Behaviour::PaymentRequired => {
            return error(402, json!({"detail": {"code": "deactivated_workspace"}}))
        }
        Behaviour::StreamFailed(code) => {
            let mut sse = Sse::new(model, body, 0);
            sse.started();
            sse.failed(&code);
            return Outcome::Stream {
                events: sse.steps,
                account_id: account_id.to_owned(),
                limits,
            };
        }
    }

    Outcome::Stream {
        events: scenario.events(account_id, model, body),
        account_id: account_id.to_owned(),
        limits,
    }
}

fn error(status: u16, body: Value) -> Outcome {
    Outcome::Error {
        status,
        body,
        limits: None,
    }
}

fn unauthorized() -> Outcome {
    error(
        401,
        openai_error(
            "Provided authentication token is expired. Please try signing in again.",
            "invalid_request_error",
            None,
            Some("token_expired"),
        ),
    )
}

fn openai_error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn rate_limit_headers(l: &RateLimits) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-codex-primary-used-percent",
            l.primary_used_percent.to_string(),
        ),
        (
            "x-codex-primary-window-minutes",
            l.primary_window_minutes.to_string(),
        ),
        (
            "x-codex-primary-reset-after-seconds",
            l.primary_reset_after_seconds.to_string(),
        ),
        (
            "x-codex-secondary-used-percent",
            l.secondary_used_percent.to_string(),
        ),
        (
            "x-codex-secondary-window-minutes",
            l.secondary_window_minutes.to_string(),
        ),
        (
            "x-codex-secondary-reset-after-seconds",
            l.secondary_reset_after_seconds.to_string(),
        ),
    ]
}

/// The backend's body rules (CODEX.md §3); `Err` carries the status and body it would answer.
fn validate(body: &Value) -> Result<(), (u16, Value)> {
    let detail = |msg: &str| (400, json!({ "detail": msg }));
    let invalid = |msg: String, param: &str, code: &str| {
        (
            400,
            openai_error(&msg, "invalid_request_error", Some(param), Some(code)),
        )
    };
    let Some(obj) = body.as_object() else {
        return Err(detail("Request body must be a JSON object"));
    };
    for key in NEVER_FORWARD {
        if obj.contains_key(key) {
            return Err(detail(&format!("Unsupported parameter: {key}")));
        }
    }
    if obj.get("stream") != Some(&Value::Bool(true)) {
        return Err(detail("Stream must be set to true"));
    }
    if obj.get("store") != Some(&Value::Bool(false)) {
        return Err(detail("Store must be set to false"));
    }
    if !obj.get("instructions").is_some_and(Value::is_string) {
        return Err(detail("Instructions are required"));
    }
    if obj
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(detail("Model is required"));
    }
    let Some(input) = obj.get("input").and_then(Value::as_array) else {
        return Err(detail("Input must be a list"));
    };
    validate_input(input).map_err(|(msg, param, code)| invalid(msg, &param, code))?;
    validate_tools(obj).map_err(|(msg, param, code)| invalid(msg, &param, code))?;
    Ok(())
}

type Invalid = (String, String, &'static str);

fn validate_input(input: &[Value]) -> Result<(), Invalid> {
    let mut open_calls: Vec<String> = Vec::new();
    let mut all_calls: Vec<String> = Vec::new();
    for (i, item) in input.iter().enumerate() {
        let at = format!("input[{i}]");
        let Some(item) = item.as_object() else {
            return Err((
                format!("Invalid type for '{at}': expected an object."),
                at,
                "invalid_type",
            ));
        };
        let kind = match item.get("type").and_then(Value::as_str) {
            Some(kind) => kind,
            None if item.contains_key("role") => "message",
            None => {
                return Err((
                    format!("Missing required parameter: '{at}.type'."),
                    format!("{at}.type"),
                    "missing_required_parameter",
                ))
            }
        };
        match kind {
            "message" => validate_message(item, &at)?,
            "function_call" => {
                for key in ["call_id", "name", "arguments"] {
                    if !item.get(key).is_some_and(Value::is_string) {
                        return Err((
                            format!("Invalid type for '{at}.{key}': expected a string."),
                            format!("{at}.{key}"),
                            "invalid_type",
                        ));
                    }
                }
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                open_calls.push(call_id.to_owned());
                all_calls.push(call_id.to_owned());
            }
            "function_call_output" => {
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                if !all_calls.iter().any(|c| c == call_id) {
                    return Err((
                        format!(
                            "No tool call found for function call output with call_id {call_id}."
                        ),
                        "input".into(),
                        "invalid_value",
                    ));
                }
                if !item
                    .get("output")
                    .is_some_and(|o| o.is_string() || o.is_array())
                {
                    return Err((
                        format!("Invalid type for '{at}.output': expected a string."),
                        format!("{at}.output"),
                        "invalid_type",
                    ));
                }
                open_calls.retain(|c| c != call_id);
            }
            _ => {}
        }
    }
    if let Some(call_id) = open_calls.first() {
        return Err((
            format!("No tool output found for function call {call_id}."),
            "input".into(),
            "invalid_value",
        ));
    }
    Ok(())
}

fn validate_message(item: &Map<String, Value>, at: &str) -> Result<(), Invalid> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or("");
    let allowed: &[&str] = match role {
        "assistant" => &["output_text", "refusal"],
        "user" | "system" | "developer" => &["input_text", "input_image", "input_file"],
        _ => {
            return Err((
                format!(
                    "Invalid value: '{role}'. Supported values are: 'assistant', 'system', \
                     'developer', and 'user'."
                ),
                format!("{at}.role"),
                "invalid_value",
            ))
        }
    };
    match item.get("content") {
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                if !allowed.contains(&kind) {
                    let supported: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
                    return Err((
                        format!(
                            "Invalid value: '{kind}'. Supported values are: {}.",
                            supported.join(", ")
                        ),
                        format!("{at}.content[{j}].type"),
                        "invalid_value",
                    ));
                }
            }
            Ok(())
        }
        _ => Err((
            format!("Missing required parameter: '{at}.content'."),
            format!("{at}.content"),
            "missing_required_parameter",
        )),
    }
}

fn validate_tools(obj: &Map<String, Value>) -> Result<(), Invalid> {
    let missing = |param: String| {
        (
            format!("Missing required parameter: '{param}'."),
            param,
            "missing_required_parameter",
        )
    };
    if let Some(tools) = obj.get("tools") {
        let Some(tools) = tools.as_array() else {
            return Err((
                "Invalid type for 'tools': expected an array.".into(),
                "tools".into(),
                "invalid_type",
            ));
        };
        for (i, tool) in tools.iter().enumerate() {
            if tool.get("type").and_then(Value::as_str) == Some("function")
                && !tool.get("name").is_some_and(Value::is_string)
            {
                return Err(missing(format!("tools[{i}].name")));
            }
        }
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if ["auto", "none", "required"].contains(&s.as_str()) => {}
        Some(Value::Object(choice)) => {
            if choice.get("type").and_then(Value::as_str) == Some("function")
                && !choice.get("name").is_some_and(Value::is_string)
            {
                return Err(missing("tool_choice.name".into()));
            }
        }
        Some(other) => {
            return Err((
                format!(
                    "Invalid value: {other}. Supported values are: 'none', 'auto', and 'required'."
                ),
                "tool_choice".into(),
                "invalid_value",
            ))
        }
    }
    if let Some(effort) = obj.get("reasoning").and_then(|r| r.get("effort")) {
        if !effort.as_str().is_some_and(|e| EFFORTS.contains(&e)) {
            return Err((
                format!(
                    "Invalid value: {effort}. Supported values are: {}.",
                    EFFORTS.map(|e| format!("'{e}'")).join(", ")
                ),
                "reasoning.effort".into(),
                "invalid_value",
            ));
        }
    }
    if let Some(format) = obj.get("text").and_then(|t| t.get("format")) {
        if format.get("type").and_then(Value::as_str) == Some("json_schema") {
            for key in ["name", "schema"] {
                if format.get(key).is_none() {
                    return Err(missing(format!("text.format.{key}")));
                }
            }
        }
    }
    Ok(())
}

fn model_supported(model: &str, supported: &Option<Vec<String>>) -> bool {
    if EFFORT_SUFFIXES.iter().any(|s| model.ends_with(s)) || model.contains('(') {
        return false;
    }
    supported
        .as_ref()
        .is_none_or(|list| list.iter().any(|m| m == model))
}

// ---------------------------------------------------------------------------------------------
// Scenarios and the event stream
// ---------------------------------------------------------------------------------------------

/// How the answer ends.
#[derive(Clone, Debug, PartialEq)]
enum Ending {
    Completed,
    EmptyOutput,
    Incomplete(String),
    Cut,
    Failed(String),
    ErrorEvent,
}

/// The answer's shape, read from `[mock:...]` markers in the last user message.
#[derive(Clone, Debug)]
struct Scenario {
    reasoning: bool,
    tool_calls: usize,
    ending: Ending,
    delta_delay: Duration,
    slow_deltas: Option<usize>,
    stall: bool,
    unsupported_model: bool,
    /// The last user text with the markers taken out.
    user_text: String,
    /// Set when the input ends with a tool result: the model then answers in text.
    tool_output: Option<String>,
}

impl Scenario {
    fn from_request(body: &Value) -> Self {
        let input = body
            .get("input")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let raw = last_user_text(input);
        let mut scenario = Scenario {
            reasoning: false,
            tool_calls: 0,
            ending: Ending::Completed,
            delta_delay: Duration::ZERO,
            slow_deltas: None,
            stall: false,
            unsupported_model: false,
            user_text: String::new(),
            tool_output: None,
        };
        let (markers, rest) = extract_markers(&raw);
        scenario.user_text = rest;
        for marker in markers {
            let mut parts = marker.split(':');
            let name = parts.next().unwrap_or("");
            let args: Vec<&str> = parts.collect();
            let arg = |i: usize| args.get(i).copied();
            match name {
                "reasoning" => scenario.reasoning = true,
                "tool_call" => scenario.tool_calls = 1,
                "tool_calls" | "two_tool_calls" => scenario.tool_calls = 2,
                "failed_overloaded" => {
                    scenario.ending = Ending::Failed("server_is_overloaded".into())
                }
                "failed_rate_limit" => {
                    scenario.ending = Ending::Failed("rate_limit_exceeded".into())
                }
                "failed" => {
                    scenario.ending = Ending::Failed(arg(0).unwrap_or("server_error").into())
                }
                "error_event" => scenario.ending = Ending::ErrorEvent,
                "cut" => scenario.ending = Ending::Cut,
                "empty_output" => scenario.ending = Ending::EmptyOutput,
                "incomplete" => {
                    scenario.ending =
                        Ending::Incomplete(arg(0).unwrap_or("max_output_tokens").into())
                }
                "slow" => {
                    let ms = arg(0).and_then(|a| a.parse().ok()).unwrap_or(SLOW_DELAY_MS);
                    let n = arg(1).and_then(|a| a.parse().ok()).unwrap_or(SLOW_DELTAS);
                    scenario.delta_delay = Duration::from_millis(ms);
                    scenario.slow_deltas = Some(n.max(1));
                }
                "stall" => scenario.stall = true,
                "unsupported_model" => scenario.unsupported_model = true,
                _ => {}
            }
        }
        if let Some(Value::Object(last)) = input.last() {
            if last.get("type").and_then(Value::as_str) == Some("function_call_output") {
                let output = match last.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                scenario.tool_output = Some(output);
                scenario.tool_calls = 0;
            }
        }
        scenario
    }

    fn events(&self, account_id: &str, model: &str, body: &Value) -> Vec<Step> {
        let reasoning_tokens = if self.reasoning {
            USAGE_REASONING_TOKENS
        } else {
            0
        };
        let mut sse = Sse::new(model, body, reasoning_tokens);
        sse.started();
        if self.stall {
            sse.pause(STALL);
        }
        match &self.ending {
            Ending::Failed(code) => {
                sse.failed(code);
                return sse.steps;
            }
            Ending::ErrorEvent => {
                sse.event(
                    "error",
                    json!({"code": "server_error", "param": null,
                           "message": "An error occurred while processing your request."}),
                );
                return sse.steps;
            }
            _ => {}
        }
        if self.reasoning {
            sse.reasoning(&[
                "**Thinking it over**\n\n",
                "The user wants an answer ",
                "from the mock.",
            ]);
        }
        let mut output_text = true;
        if self.tool_calls > 0 {
            output_text = false;
            let names = tool_names(body);
            for i in 0..self.tool_calls {
                let name = names
                    .get(i)
                    .or(names.first())
                    .cloned()
                    .unwrap_or_else(|| "get_weather".into());
                let args = json!({"city": "Paris", "account": account_id, "n": i}).to_string();
                sse.function_call(&name, &args);
            }
        }
        if output_text {
            let deltas = self.text_deltas(account_id, body);
            let cut = self.ending == Ending::Cut;
            // A cut stream stops halfway through the text, as a dropped upstream connection does.
            let sent = if cut {
                deltas.len().div_ceil(2)
            } else {
                deltas.len()
            };
            sse.message(&deltas[..sent], !cut, self.delta_delay);
        }
        match &self.ending {
            Ending::Completed => sse.finish("response.completed", "completed", true, None),
            Ending::EmptyOutput => sse.finish("response.completed", "completed", false, None),
            Ending::Incomplete(reason) => {
                sse.finish("response.incomplete", "incomplete", true, Some(reason))
            }
            Ending::Cut | Ending::Failed(_) | Ending::ErrorEvent => {}
        }
        sse.steps
    }

    fn text_deltas(&self, account_id: &str, body: &Value) -> Vec<String> {
        let structured = body
            .pointer("/text/format/type")
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_schema" || t == "json_object");
        if structured {
            let text = json!({"account": account_id, "answer": "ok"}).to_string();
            return chunks(&text, 8);
        }
        if let Some(n) = self.slow_deltas {
            let mut deltas = vec![format!("Hello from {account_id}!")];
            deltas.extend((1..n).map(|i| format!(" {i}")));
            return deltas;
        }
        let text = match &self.tool_output {
            Some(output) => format!(
                "Hello from {account_id}! Tool result: {}",
                truncate(output, ECHO_LIMIT)
            ),
            None if self.user_text.is_empty() => format!("Hello from {account_id}!"),
            None => format!(
                "Hello from {account_id}! You said: {}",
                truncate(&self.user_text, ECHO_LIMIT)
            ),
        };
        split_words(&text)
    }
}

/// Builds the SSE frames of one answer, numbering events and collecting the output items.
struct Sse {
    steps: Vec<Step>,
    seq: u64,
    response: Value,
    output: Vec<Value>,
    reasoning_tokens: u64,
}

impl Sse {
    fn new(model: &str, body: &Value, reasoning_tokens: u64) -> Self {
        // The response object echoes the request's settings, as upstream's does.
        let field = |key: &str, default: Value| body.get(key).cloned().unwrap_or(default);
        let response = json!({
            "id": format!("resp_{}", uuid::Uuid::new_v4().simple()),
            "object": "response",
            "created_at": chrono::Utc::now().timestamp(),
            "status": "in_progress",
            "background": false,
            "error": null,
            "incomplete_details": null,
            "instructions": field("instructions", Value::Null),
            "model": model,
            "output": [],
            "parallel_tool_calls": field("parallel_tool_calls", Value::Bool(false)),
            "reasoning": field("reasoning", Value::Null),
            "store": false,
            "tool_choice": field("tool_choice", Value::from("auto")),
            "tools": field("tools", json!([])),
            "usage": null,
            "metadata": {},
        });
        Self {
            steps: Vec::new(),
            seq: 0,
            response,
            output: Vec::new(),
            reasoning_tokens,
        }
    }

    fn event(&mut self, kind: &str, data: Value) {
        self.delayed_event(kind, data, Duration::ZERO);
    }

    fn delayed_event(&mut self, kind: &str, mut data: Value, delay: Duration) {
        if let Some(map) = data.as_object_mut() {
            map.insert("type".into(), Value::from(kind));
            map.insert("sequence_number".into(), Value::from(self.seq));
        }
        self.seq += 1;
        let bytes = Bytes::from(format!("event: {kind}\ndata: {data}\n\n"));
        self.steps.push(Step { delay, bytes });
    }

    /// Waits `delay`, then sends an SSE comment (clients ignore it), holding the stream open.
    fn pause(&mut self, delay: Duration) {
        self.steps.push(Step {
            delay,
            bytes: Bytes::from_static(b": keep-alive\n\n"),
        });
    }

    fn started(&mut self) {
        let response = self.response.clone();
        self.event("response.created", json!({ "response": response }));
        self.event("response.in_progress", json!({ "response": response }));
    }

    fn failed(&mut self, code: &str) {
        let message = match code {
            "server_is_overloaded" => {
                "Our servers are currently overloaded. Please try again later."
            }
            "rate_limit_exceeded" => "Rate limit reached. Please try again later.",
            _ => "An error occurred while processing your request.",
        };
        let mut response = self.response.clone();
        response["status"] = Value::from("failed");
        response["error"] = json!({"code": code, "message": message});
        self.event("response.failed", json!({ "response": response }));
    }

    fn reasoning(&mut self, deltas: &[&str]) {
        let index = self.output.len();
        let id = format!("rs_{}", uuid::Uuid::new_v4().simple());
        let full: String = deltas.concat();
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": {"id": id, "type": "reasoning", "summary": []}}),
        );
        self.event(
            "response.reasoning_summary_part.added",
            json!({"item_id": id, "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": ""}}),
        );
        for delta in deltas {
            self.event(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta}),
            );
        }
        self.event(
            "response.reasoning_summary_text.done",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "text": full}),
        );
        self.event(
            "response.reasoning_summary_part.done",
            json!({"item_id": id, "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": full}}),
        );
        let item = json!({
            "id": id, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": full}],
            "encrypted_content": format!("gAAAAB{}", uuid::Uuid::new_v4().simple()),
        });
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    fn function_call(&mut self, name: &str, arguments: &str) {
        let index = self.output.len();
        let id = format!("fc_{}", uuid::Uuid::new_v4().simple());
        let call_id = format!("call_{}", uuid::Uuid::new_v4().simple());
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": {
                "id": id, "type": "function_call", "status": "in_progress",
                "arguments": "", "call_id": call_id, "name": name,
            }}),
        );
        for delta in chunks(arguments, 10) {
            self.event(
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": index, "delta": delta}),
            );
        }
        self.event(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": index, "arguments": arguments}),
        );
        let item = json!({
            "id": id, "type": "function_call", "status": "completed",
            "arguments": arguments, "call_id": call_id, "name": name,
        });
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    /// The assistant message; with `complete` false it stops after the deltas (a cut stream).
    fn message(&mut self, deltas: &[String], complete: bool, delay: Duration) {
        let index = self.output.len();
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": {
                "id": id, "type": "message", "status": "in_progress", "role": "assistant",
                "content": [],
            }}),
        );
        self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "annotations": [], "text": ""}}),
        );
        for delta in deltas {
            self.delayed_event(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                       "delta": delta, "logprobs": []}),
                delay,
            );
        }
        if !complete {
            return;
        }
        let text: String = deltas.concat();
        self.event(
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "text": text, "logprobs": []}),
        );
        let part = json!({"type": "output_text", "annotations": [], "text": text});
        self.event(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
        );
        let item = json!({
            "id": id, "type": "message", "status": "completed", "role": "assistant",
            "content": [part],
        });
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    fn finish(&mut self, kind: &str, status: &str, with_output: bool, reason: Option<&str>) {
        let mut response = self.response.clone();
        response["status"] = Value::from(status);
        response["output"] = if with_output {
            Value::Array(self.output.clone())
        } else {
            json!([])
        };
        response["usage"] = usage(self.reasoning_tokens);
        if let Some(reason) = reason {
            response["incomplete_details"] = json!({ "reason": reason });
        }
        self.event(kind, json!({ "response": response }));
    }
}

fn usage(reasoning_tokens: u64) -> Value {
    json!({
        "input_tokens": USAGE_INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": USAGE_CACHED_TOKENS},
        "output_tokens": USAGE_OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": USAGE_INPUT_TOKENS + USAGE_OUTPUT_TOKENS,
    })
}

fn fast_events() -> Vec<Step> {
    let mut sse = Sse::new("gpt-5", &Value::Null, 0);
    sse.event(
        "response.created",
        json!({"response": sse.response.clone()}),
    );
    sse.message(&[FAST_ANSWER.to_owned()], true, Duration::ZERO);
    sse.finish("response.completed", "completed", true, None);
    sse.steps
}

/// The text of the last user message (string content or its `input_text` parts).
fn last_user_text(input: &[Value]) -> String {
    let Some(message) = input.iter().rev().find(|item| {
        item.get("role").and_then(Value::as_str) == Some("user")
            && item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("message")
                == "message"
    }) else {
        return String::new();
    };
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("input_text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Splits `[mock:a:b]` markers from the rest of the text.
fn extract_markers(text: &str) -> (Vec<String>, String) {
    let mut markers = Vec::new();
    let mut rest = String::new();
    let mut remaining = text;
    while let Some(start) = remaining.find("[mock:") {
        rest.push_str(&remaining[..start]);
        let after = &remaining[start + "[mock:".len()..];
        match after.find(']') {
            Some(end) => {
                markers.push(after[..end].trim().to_owned());
                remaining = &after[end + 1..];
            }
            None => {
                rest.push_str(&remaining[start..]);
                remaining = "";
            }
        }
    }
    rest.push_str(remaining);
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    (markers, rest)
}

fn tool_names(body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Word-sized deltas, each word with the space before it, so their concatenation is the text.
fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            out.push(word.to_owned());
        } else {
            out.push(format!(" {word}"));
        }
    }
    out
}

fn chunks(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

fn truncate(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

// ---------------------------------------------------------------------------------------------
// The OAuth token endpoint
// ---------------------------------------------------------------------------------------------

async fn oauth_token(req: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let params = parse_params(&content_type, &body);
    let (status, answer, delay) = {
        let mut inner = state.lock();
        let delay = inner.refresh_delay;
        let (status, answer, account_id, outcome) = match &params {
            Some(params) => decide_refresh(&mut inner, params),
            None => (
                400,
                json!({"error": "invalid_request", "error_description": "Unreadable body"}),
                None,
                "invalid_request".to_owned(),
            ),
        };
        inner.push_refresh(RecordedRefresh {
            account_id,
            content_type,
            params: params.unwrap_or_default(),
            status,
            outcome,
        });
        (status, answer, delay)
    };
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    HttpResponse::build(status_code(status)).json(answer)
}

/// Form-encoded or JSON parameters, whichever the body is.
fn parse_params(content_type: &str, body: &[u8]) -> Option<HashMap<String, String>> {
    let from_json = || -> Option<HashMap<String, String>> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let obj = value.as_object()?;
        Some(
            obj.iter()
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), v)
                })
                .collect(),
        )
    };
    let from_form = || -> Option<HashMap<String, String>> {
        let text = std::str::from_utf8(body).ok()?;
        web::Query::<HashMap<String, String>>::from_query(text)
            .ok()
            .map(web::Query::into_inner)
    };
    if content_type.starts_with("application/json") {
        from_json()
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        from_form()
    } else {
        from_json().or_else(from_form)
    }
}

type RefreshAnswer = (u16, Value, Option<String>, String);

fn decide_refresh(inner: &mut Inner, params: &HashMap<String, String>) -> RefreshAnswer {
    let oauth_error = |status: u16, code: &str, description: &str| -> RefreshAnswer {
        (
            status,
            json!({"error": code, "error_description": description}),
            None,
            code.to_owned(),
        )
    };
    let param = |key: &str| {
        params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if param("grant_type") != Some("refresh_token") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type must be refresh_token",
        );
    }
    match (param("client_id"), &inner.expected_client_id) {
        (None, _) => return oauth_error(400, "invalid_request", "Missing client_id"),
        (Some(got), Some(want)) if got != want => {
            return oauth_error(401, "invalid_client", "Unknown client")
        }
        _ => {}
    }
    let Some(refresh_token) = param("refresh_token") else {
        return oauth_error(400, "invalid_request", "Missing refresh_token");
    };
    let Some(account_id) = inner.refresh_owner.get(refresh_token).cloned() else {
        return oauth_error(400, "invalid_grant", "Invalid refresh token");
    };
    let lifetime = inner.token_lifetime_secs;
    let acc = inner.account(&account_id);
    acc.refresh_calls += 1;
    let behaviour = acc
        .refresh_queue
        .pop_front()
        .unwrap_or_else(|| acc.refresh_behaviour.clone());
    let is_current = acc.refresh_token.as_deref() == Some(refresh_token);
    let coded = |status: u16, code: &str, message: &str| -> RefreshAnswer {
        (
            status,
            openai_error(message, "invalid_request_error", None, Some(code)),
            Some(account_id.clone()),
            code.to_owned(),
        )
    };
    let reused = "Your refresh token has already been used to generate a new access token. \
                  Please try signing in again.";
    match behaviour {
        RefreshBehaviour::Ok if is_current => {}
        RefreshBehaviour::Ok | RefreshBehaviour::Reused => {
            acc.reuse_errors += 1;
            return coded(401, "refresh_token_reused", reused);
        }
        RefreshBehaviour::Expired => {
            return coded(
                401,
                "refresh_token_expired",
                "Your refresh token has expired. Please try signing in again.",
            )
        }
        RefreshBehaviour::Invalidated => {
            return coded(
                401,
                "refresh_token_invalidated",
                "Your refresh token has been invalidated. Please try signing in again.",
            )
        }
        RefreshBehaviour::InvalidGrant => {
            let mut answer = oauth_error(400, "invalid_grant", "Invalid refresh token");
            answer.2 = Some(account_id);
            return answer;
        }
        RefreshBehaviour::ServerError(status) => {
            return (
                status,
                openai_error("Internal server error", "server_error", None, None),
                Some(account_id),
                format!("status {status}"),
            )
        }
    }

    // Rotate: the old refresh token stays known (so reuse is detected) but is no longer valid.
    acc.refresh_successes += 1;
    let email = acc.email.clone();
    let plan = acc.plan_type.clone();
    let (access, seq) = inner.issue_access_token(&account_id, &email, &plan);
    let refresh = new_refresh_token();
    let id_token = make_id_token(&account_id, &email, &plan, lifetime);
    inner
        .refresh_owner
        .insert(refresh.clone(), account_id.clone());
    let acc = inner.account(&account_id);
    acc.access_tokens.insert(access.clone(), seq);
    acc.latest_access = access.clone();
    acc.id_token = id_token.clone();
    acc.refresh_token = Some(refresh.clone());
    (
        200,
        json!({
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": "openid profile email offline_access",
        }),
        Some(account_id),
        "ok".into(),
    )
}

fn new_refresh_token() -> String {
    format!("rt_mock_{}", uuid::Uuid::new_v4().simple())
}

fn make_id_token(account_id: &str, email: &Option<String>, plan: &str, lifetime: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "exp": now + lifetime,
        "iat": now,
        "iss": "https://auth.openai.com",
        "aud": ["app_EMoamEEZ73f0CkXaXp7hrann"],
        AUTH_CLAIM: {
            "chatgpt_account_id": account_id,
            "chatgpt_plan_type": plan,
            "chatgpt_user_id": format!("user-{account_id}"),
        },
    });
    if let (Some(email), Some(map)) = (email, claims.as_object_mut()) {
        map.insert("email".into(), Value::from(email.as_str()));
    }
    fake_jwt(&claims)
}

/// A JWT-shaped string (header.payload.signature) with these claims and a fake signature.
pub fn fake_jwt(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(claims.to_string()),
        b64.encode(b"mock-signature"),
    )
}

/// Decodes a JWT's payload without checking anything.
pub fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

// ---------------------------------------------------------------------------------------------
// Control endpoints (for the standalone process)
// ---------------------------------------------------------------------------------------------

async fn control_list_accounts(state: web::Data<MockState>) -> HttpResponse {
    let accounts: Vec<Value> = state
        .accounts()
        .iter()
        .map(MockAccount::to_cliproxy_json)
        .collect();
    HttpResponse::Ok().json(accounts)
}

/// `{"count": N, "prefix": "acct"}` creates N accounts; anything else is read as credential
/// file content to register. Answers the accounts as CLIProxyAPI credential objects.
async fn control_add_accounts(body: web::Json<Value>, state: web::Data<MockState>) -> HttpResponse {
    let body = body.into_inner();
    let ids = if let Some(count) = body.get("count").and_then(Value::as_u64) {
        let prefix = body
            .get("prefix")
            .and_then(Value::as_str)
            .unwrap_or("mock-account");
        let start = state.accounts().len() + 1;
        (start..start + count as usize)
            .map(|i| state.create_account(&format!("{prefix}-{i:03}")).account_id)
            .collect()
    } else {
        match state.add_accounts_from_value(&body) {
            Ok(ids) => ids,
            Err(e) => return HttpResponse::BadRequest().json(json!({"error": e})),
        }
    };
    let accounts: Vec<Value> = ids
        .iter()
        .filter_map(|id| state.account(id))
        .map(|a| a.to_cliproxy_json())
        .collect();
    HttpResponse::Ok().json(accounts)
}

/// `{"account_id", "behaviour", "times", "refresh", "refresh_times", "refresh_delay_ms",
/// "supported_models", "fast"}`, each optional but `account_id` when a behaviour is given.
async fn control_behaviour(body: web::Json<Value>, state: web::Data<MockState>) -> HttpResponse {
    match apply_control(&state, &body) {
        Ok(()) => HttpResponse::Ok().json(json!({"ok": true})),
        Err(e) => HttpResponse::BadRequest().json(json!({"error": e})),
    }
}

fn apply_control(state: &MockState, body: &Value) -> Result<(), String> {
    let account = body.get("account_id").and_then(Value::as_str);
    let times = |key: &str| body.get(key).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(b) = body.get("behaviour") {
        let behaviour = Behaviour::from_json(b)?;
        let id = account.ok_or("account_id is required with behaviour")?;
        match times("times") {
            Some(n) => state.queue_behaviour(id, behaviour, n),
            None => state.set_behaviour(id, behaviour),
        }
    }
    if let Some(b) = body.get("refresh") {
        let behaviour = RefreshBehaviour::from_json(b)?;
        let id = account.ok_or("account_id is required with refresh")?;
        match times("refresh_times") {
            Some(n) => state.queue_refresh_behaviour(id, behaviour, n),
            None => state.set_refresh_behaviour(id, behaviour),
        }
    }
    if let Some(ms) = body.get("refresh_delay_ms").and_then(Value::as_u64) {
        state.set_refresh_delay(Duration::from_millis(ms));
    }
    if let Some(models) = body.get("supported_models") {
        let list = models.as_array().map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
        state.set_supported_models(list);
    }
    if let Some(fast) = body.get("fast").and_then(Value::as_bool) {
        state.set_fast(fast);
    }
    Ok(())
}

impl Behaviour {
    /// Reads `"ok"`, `"unauthorized"`, `"forbidden"`, `"payment_required"`, `"rate_limited"`, or
    /// `{"kind": "usage_limit", "resets_in_seconds": N}`, `{"kind": "server_error", "status": N}`,
    /// `{"kind": "stream_failed", "code": C}`.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let kind = value
            .as_str()
            .or_else(|| value.get("kind").and_then(Value::as_str))
            .ok_or("behaviour must be a string or an object with `kind`")?;
        let number =
            |key: &str, default: u64| value.get(key).and_then(Value::as_u64).unwrap_or(default);
        Ok(match kind {
            "ok" => Behaviour::Ok,
            "usage_limit" => Behaviour::UsageLimit {
                resets_in_seconds: number("resets_in_seconds", 3600),
            },
            "rate_limited" => Behaviour::RateLimited,
            "server_error" => Behaviour::ServerError(number("status", 500) as u16),
            "unauthorized" => Behaviour::Unauthorized,
            "forbidden" => Behaviour::Forbidden,
            "payment_required" => Behaviour::PaymentRequired,
            "stream_failed" => Behaviour::StreamFailed(
                value
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("server_is_overloaded")
                    .to_owned(),
            ),
            other => return Err(format!("unknown behaviour `{other}`")),
        })
    }
}

impl RefreshBehaviour {
    /// Reads `"ok"`, `"reused"`, `"expired"`, `"invalidated"`, `"invalid_grant"`, or
    /// `{"kind": "server_error", "status": N}`.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let kind = value
            .as_str()
            .or_else(|| value.get("kind").and_then(Value::as_str))
            .ok_or("refresh must be a string or an object with `kind`")?;
        Ok(match kind {
            "ok" => RefreshBehaviour::Ok,
            "reused" => RefreshBehaviour::Reused,
            "expired" => RefreshBehaviour::Expired,
            "invalidated" => RefreshBehaviour::Invalidated,
            "invalid_grant" => RefreshBehaviour::InvalidGrant,
            "server_error" => RefreshBehaviour::ServerError(
                value.get("status").and_then(Value::as_u64).unwrap_or(500) as u16,
            ),
            other => return Err(format!("unknown refresh behaviour `{other}`")),
        })
    }
}

async fn control_stats(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats_json())
}

async fn control_reset(state: web::Data<MockState>) -> HttpResponse {
    state.reset_records();
    HttpResponse::Ok().json(json!({"ok": true}))
}

async fn unmatched(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    let line = format!("{} {}", req.method(), req.path());
    {
        let mut inner = state.lock();
        if inner.unmatched.len() >= MAX_RECORDS {
            inner.unmatched.pop_front();
        }
        inner.unmatched.push_back(line);
    }
    HttpResponse::NotFound().json(json!({"detail": "Not Found"}))
}
