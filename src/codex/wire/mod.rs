//! Codex backend wire types: the Responses request body ([`request`]), the server-sent events
//! of the answer and their usage ([`event`]), upstream errors ([`error`]) and the rate-limit
//! headers every answer carries ([`rate_limits`]).

pub mod error;
pub mod event;
pub mod rate_limits;
pub mod request;

pub use error::UpstreamError;
pub use event::{
    Finish, IncompleteDetails, OutputContent, OutputItem, ResponseObject, StreamError, StreamEvent,
    StreamOutcome, SummaryPart, Usage,
};
pub use rate_limits::{RateLimits, UsageReport, Window};
pub use request::{
    CodexRequest, CodexTool, CodexToolChoice, ContentItem, InputItem, Reasoning, TextConfig,
    TextFormat,
};
