//! Integration tests: the real application on port 0 with its own database, driven over HTTP.
//! SQLite always; PostgreSQL as well when `TEST_DATABASE_URL` is set.

// A test that cannot set itself up should stop at once, with the cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_auth;
mod admin_resources;
mod admins;
mod cli;
mod codex_cli;
mod hardening;
mod helpers;
mod instances;
mod keys_usage;
mod migrations;
mod ops;
mod pool;
mod proxy;
mod responses_state;
mod server;
mod sign_in;
mod stats;
mod webhooks;
mod websocket;
