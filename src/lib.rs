//! gpt2api: an OpenAI-compatible API gateway over a pool of ChatGPT/Codex accounts, with an
//! admin console. `main.rs` only parses the command line; everything else starts here.

pub mod actors;
pub mod auth;
pub mod codex;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod metrics;
pub mod request_log;
pub mod retention;
pub mod service;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;

/// The version shown by `--version`, the console and the statistics.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
