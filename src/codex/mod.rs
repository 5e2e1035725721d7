//! The Codex upstream protocol and its translation to and from the OpenAI API, as pure code.
//!
//! No I/O happens here: the HTTP layer reads bodies and byte streams and hands them to these
//! types and functions. [`openai`] holds the client-facing Chat Completions types, [`upstream`]
//! the Codex Responses request, events, usage and errors, [`sse`] the event-stream framing,
//! [`translate`] the request conversions, [`chat_stream`] the event-to-chunk state machine for
//! streaming clients and [`aggregate`] the whole-answer builders for non-streaming ones.

pub mod aggregate;
pub mod chat_stream;
pub mod openai;
pub mod sse;
pub mod translate;
pub mod upstream;

pub mod credentials;
