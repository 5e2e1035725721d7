//! The Codex upstream protocol and its translation to and from the OpenAI API.
//!
//! Everything here except [`client`] is pure: the HTTP layer reads bodies and byte streams and
//! hands them to these types and functions. [`wire`] holds the Codex Responses request, events,
//! usage, errors and rate-limit headers; [`openai`] the client-facing Chat Completions types;
//! [`error`] the translation error; [`sse`] the event-stream framing; [`translate`] the request
//! conversions; [`chat_stream`] the event-to-chunk state machine for streaming clients;
//! [`aggregate`] the whole-answer builders for non-streaming ones; [`credentials`] the account
//! files users import and export. [`client`] is the HTTP client that talks to the backend and
//! its OAuth endpoint.

pub mod aggregate;
pub mod chat_stream;
pub mod client;
pub mod credentials;
pub mod error;
pub mod expand;
pub mod oauth;
pub mod openai;
pub mod signin;
pub mod sse;
pub mod translate;
pub mod websocket;
pub mod wire;
