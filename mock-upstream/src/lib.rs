//! A fake Codex backend and OAuth token endpoint, for the tests, browser tests and the benchmark.
//!
//! The real backend cannot be reached from development machines, so everything the gateway does
//! upstream is tested against this mock. It is as strict as the real one on purpose (CODEX.md §3):
//! a gateway that forwards a body the backend would refuse gets the same 400 here. Refresh tokens
//! rotate and are single use, as upstream, so a gateway that refreshes twice concurrently is
//! caught. Input items of type `item_reference` are refused, as upstream with `store: false`.
//! Counters and records let tests assert on what arrived (`GET /__mock/requests/last` serves
//! the last request to a standalone mock's clients).
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
//! - `[mock:unsupported_model]` the backend's 400 for a model the plan does not have;
//! - `[mock:exec:CMD]` a call of the request's shell tool (`exec_command`, `shell_command` or
//!   `shell`, with the arguments each expects) running CMD, as the Codex CLI executes it; the
//!   follow-up that carries its output gets text quoting it.
//!
//! A request whose input ends with `{"type": "compaction_trigger"}` (remote compaction, CODEX.md
//! §7) is answered with exactly one `compaction` output item (`cmp_...` with opaque
//! `encrypted_content`). As upstream, `compaction_trigger` anywhere but last is refused, and so
//! is `previous_response_id`. Every other item type the Codex CLI sends is accepted.
//!
//! The model catalog (`GET /backend-api/codex/models?client_version=X`) answers each plan's
//! `ModelInfo` objects with an `ETag` (`catalog.rs`).
//!
//! Signing in (CODEX.md §8) works too: the authorize page redirects at once to the callback URL
//! with a code (or a refusal), codes are single use and checked against their PKCE challenge,
//! and the device-code endpoints answer "pending" N times before the approval (`signin.rs`).
//!
//! Each account can also be told to fail (`Behaviour`: usage limit, 401 until refreshed, 5xx, ...)
//! lastingly or for its next N requests, and its refreshes likewise (`RefreshBehaviour`); the
//! whole OAuth endpoint can be taken down (`set_oauth_down`: 503 for everyone).
//!
//! The economy (`set_economy`, off by default) gives every account usage budgets behind its
//! `x-codex-*-used-percent` headers (429 `usage_limit_reached` at 100%, early resets with
//! `reset_usage`), a prompt cache that rewards sending a conversation back to the same account
//! with `cached_tokens`, and the usage endpoint `GET /backend-api/wham/usage`.
//!
//! It runs inside the test process (`MockUpstream::start()` from an actix System, port 0) or as a
//! standalone process, the crate's `mock_upstream` binary (`cargo run -p mock-upstream`), driven
//! over `/__mock/*`.
// A test fixture: it panics loudly when it cannot run (that fails the test that needs it), and
// it favours plain clones and owned arguments over allocation tuning.
#![allow(
    clippy::expect_used,
    clippy::missing_panics_doc,
    clippy::assigning_clones,
    clippy::ref_option,
    clippy::needless_pass_by_value,
    clippy::map_unwrap_or
)]

mod accounts;
mod catalog;
mod control;
mod economy;
mod oauth;
mod responses;
mod scenario;
mod signin;
mod sse;
mod state;
mod validate;

use std::net::{SocketAddr, TcpListener};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpServer};
use serde_json::{json, Value};

pub use accounts::{fake_jwt, jwt_claims, MockAccount};
pub use catalog::model_info;
pub use economy::Economy;
pub use oauth::RefreshBehaviour;
pub use responses::Behaviour;
pub use signin::{DeviceSettings, SignIn};
pub use sse::{
    FAST_ANSWER, USAGE_CACHED_TOKENS, USAGE_INPUT_TOKENS, USAGE_OUTPUT_TOKENS,
    USAGE_REASONING_TOKENS,
};
pub use state::{MockState, RecordedRequest};

/// Path of the responses endpoint below the server root.
pub const RESPONSES_PATH: &str = "/backend-api/codex/responses";
/// Path of the model catalog below the server root (CODEX.md §7).
pub const MODELS_PATH: &str = "/backend-api/codex/models";
/// Path of the usage endpoint below the server root (CODEX.md §9).
pub const USAGE_PATH: &str = "/backend-api/wham/usage";
/// Path of the OAuth token endpoint below the server root.
pub const OAUTH_PATH: &str = "/oauth/token";

/// Request bodies carry images as data URIs, so allow far more than actix's 256 KiB default.
const MAX_BODY_BYTES: usize = 64 << 20;

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

/// The running mock: its URLs and (through `Deref`) the state to configure and inspect.
pub struct MockUpstream {
    addr: SocketAddr,
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
        actix_web::rt::spawn(server);
        Ok(Self { addr, state })
    }

    /// The value for the gateway's `codex.base_url` (requests go to `{base_url}/responses`).
    pub fn base_url(&self) -> String {
        format!("http://{}/backend-api/codex", self.addr)
    }

    /// The OAuth token endpoint URL.
    pub fn oauth_url(&self) -> String {
        format!("http://{}{OAUTH_PATH}", self.addr)
    }

    /// The sign-in page (the gateway's `codex.oauth_authorize_url`).
    pub fn authorize_url(&self) -> String {
        format!("http://{}{}", self.addr, signin::AUTHORIZE_PATH)
    }

    /// The device flow's user-code endpoint (`codex.device_usercode_url`).
    pub fn device_usercode_url(&self) -> String {
        format!("http://{}{}", self.addr, signin::DEVICE_USERCODE_PATH)
    }

    /// The device flow's token endpoint (`codex.device_token_url`).
    pub fn device_token_url(&self) -> String {
        format!("http://{}{}", self.addr, signin::DEVICE_TOKEN_PATH)
    }

    /// The server root, e.g. for the `/__mock/*` control endpoints.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Deref for MockUpstream {
    type Target = MockState;

    fn deref(&self) -> &MockState {
        &self.state
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(RESPONSES_PATH, web::post().to(responses::responses))
        .route(MODELS_PATH, web::get().to(catalog::models))
        .route(USAGE_PATH, web::get().to(economy::usage))
        .route(OAUTH_PATH, web::post().to(oauth::oauth_token))
        .configure(signin::routes)
        .configure(control::routes)
        .default_service(web::to(control::unmatched));
}

/// The OpenAI error body, `{"error": {"message", "type", "param", "code"}}`.
fn openai_error(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// The status to answer; an invalid number becomes a 500.
fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
