//! gpt2api: an OpenAI-compatible API gateway over a pool of ChatGPT/Codex accounts, with an
//! admin console.
//!
//! `main.rs` parses the command line and calls into this library: [`startup::Application`]
//! builds and runs the server (the tests use the same path), [`db`] and `migration` serve the
//! `migrate` command, [`auth`] the `admin reset-password` command.
//!
//! Where things live: [`http`] is the HTTP surface (`/v1` in `http::v1`, the admin API in
//! `http::admin`); [`dispatch`] sends a request upstream with failover and [`request_log`]
//! keeps its usage-log row; [`actors`] own the moving state (account pool, refresh scheduler,
//! usage-log writer, key cache); [`codex`] is the upstream protocol, its translation to and from
//! the OpenAI API, and the HTTP client; [`error`] is the one error type with its codes.

pub mod actors;
pub mod affinity;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod changes;
pub mod codex;
pub mod config;
pub mod conversation;
pub mod crypto;
pub mod db;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod reasons;
pub mod request_log;
pub mod response_store;
pub mod retention;
pub mod secrets;
pub mod service;
pub mod settings;
pub mod sign_in_flows;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod usage_history;

/// The version shown by `--version`, the console and the statistics.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
