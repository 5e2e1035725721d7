//! The server-sent events of an answer, parsed into [`StreamEvent`], a tagged enum whose
//! `Unknown` arm swallows every event type the gateway does not act on, so new upstream events
//! never break a stream; the usage they report; and how a stream ends.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::UpstreamError;

/// One server-sent event of the answer, tagged by its `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    /// The response exists: carries its id, creation time and model.
    #[serde(rename = "response.created")]
    Created {
        /// The response so far.
        response: ResponseObject,
    },
    /// Generation goes on.
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// The response so far.
        response: ResponseObject,
    },
    /// A new output item starts.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// Position of the item in `response.output`.
        output_index: u32,
        /// The item as far as known.
        item: OutputItem,
    },
    /// An output item is complete.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        /// Position of the item in `response.output`.
        output_index: u32,
        /// The complete item.
        item: OutputItem,
    },
    /// More answer text.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// Item the text belongs to.
        #[serde(default)]
        output_index: u32,
        /// The new text.
        delta: String,
    },
    /// More reasoning summary text.
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        /// Reasoning item the text belongs to.
        #[serde(default)]
        output_index: u32,
        /// Summary part within the item.
        #[serde(default)]
        summary_index: u32,
        /// The new text.
        delta: String,
    },
    /// More function-call argument text.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// The call's output item.
        output_index: u32,
        /// The new argument text.
        delta: String,
    },
    /// The complete arguments of a call.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The call's output item.
        output_index: u32,
        /// All argument text.
        arguments: String,
    },
    /// Finished normally.
    #[serde(rename = "response.completed")]
    Completed {
        /// The final response (its `output` may be empty).
        response: ResponseObject,
    },
    /// Finished early (`incomplete_details.reason`).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The final response.
        response: ResponseObject,
    },
    /// Failed (with `response.error`), although the HTTP status was 200.
    #[serde(rename = "response.failed")]
    Failed {
        /// The final response.
        response: ResponseObject,
    },
    /// A stream-level error; the fields vary, so they are kept raw.
    #[serde(rename = "error")]
    Error(Map<String, Value>),
    /// Any other event (`response.content_part.added`, `response.output_text.done`, ...).
    #[serde(other)]
    Unknown,
}

impl StreamEvent {
    /// Parses one SSE frame; the `event:` name is used when the JSON lacks `type`.
    pub fn parse(event: Option<&str>, data: &str) -> Result<Self, serde_json::Error> {
        // `[DONE]` is OpenAI's end marker, not JSON; it carries nothing to act on.
        if data.trim() == "[DONE]" {
            return Ok(Self::Unknown);
        }
        // The upstream's events carry their `type`: read straight into the typed event, with
        // no intermediate JSON value. Only an event without `type` takes the long way round.
        match serde_json::from_str::<Self>(data) {
            Ok(parsed) => return Ok(parsed),
            Err(e) if event.is_none() => return Err(e),
            Err(_) => {}
        }
        let mut value: Value = serde_json::from_str(data)?;
        if let (Value::Object(obj), Some(name)) = (&mut value, event) {
            obj.entry("type")
                .or_insert_with(|| Value::String(name.to_owned()));
        }
        Self::from_value(&value)
    }

    /// Parses an already decoded event object.
    pub fn from_value(value: &Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(value)
    }

    /// The terminal outcome this event announces, if it ends the stream.
    pub fn outcome(&self) -> Option<StreamOutcome> {
        match self {
            Self::Completed { .. } => Some(Ok(Finish::Completed)),
            Self::Incomplete { response } => Some(Ok(Finish::Incomplete {
                reason: response
                    .incomplete_details
                    .as_ref()
                    .and_then(|d| d.reason.clone()),
            })),
            Self::Failed { response } => Some(Err(StreamError::Upstream(Box::new(
                response
                    .error
                    .as_ref()
                    .and_then(UpstreamError::from_value)
                    .unwrap_or_else(|| UpstreamError::message_only("response failed")),
            )))),
            Self::Error(fields) => Some(Err(StreamError::Upstream(Box::new(
                UpstreamError::from_map(fields)
                    .unwrap_or_else(|| UpstreamError::message_only("upstream stream error")),
            )))),
            _ => None,
        }
    }

    /// Usage reported by a terminal event.
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Self::Completed { response }
            | Self::Incomplete { response }
            | Self::Failed { response } => response.usage,
            _ => None,
        }
    }

    /// Whether the event carries model output, after which a request can no longer be retried
    /// without the client noticing (used when passing `/v1/responses` events through).
    pub fn carries_output(&self) -> bool {
        matches!(
            self,
            Self::OutputItemAdded { .. }
                | Self::OutputItemDone { .. }
                | Self::OutputTextDelta { .. }
                | Self::ReasoningSummaryTextDelta { .. }
                | Self::FunctionCallArgumentsDelta { .. }
                | Self::FunctionCallArgumentsDone { .. }
        )
    }
}

/// The `response` object inside events (only the fields the gateway reads).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResponseObject {
    /// `resp_...`.
    #[serde(default)]
    pub id: String,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// The model that answered.
    #[serde(default)]
    pub model: Option<String>,
    /// Output items; may be empty in `response.completed`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub output: Vec<OutputItem>,
    /// Token counts (terminal events).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Why the answer stopped early.
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
    /// Why the answer failed, kept raw for [`UpstreamError::from_value`].
    #[serde(default)]
    pub error: Option<Value>,
}

/// Treats an explicit `null` like an absent field.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `response.incomplete_details`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens`, `content_filter`, ...
    #[serde(default)]
    pub reason: Option<String>,
}

/// An output item of the answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// Assistant text.
    Message {
        /// Parts (`output_text`, `refusal`).
        #[serde(default, deserialize_with = "null_as_default")]
        content: Vec<OutputContent>,
    },
    /// A function call.
    FunctionCall {
        /// Id the client echoes in its `tool` message.
        #[serde(default)]
        call_id: String,
        /// Function name.
        #[serde(default)]
        name: String,
        /// JSON-encoded arguments (empty in `.added`).
        #[serde(default)]
        arguments: String,
    },
    /// Reasoning, with its summaries.
    Reasoning {
        /// Summary parts.
        #[serde(default, deserialize_with = "null_as_default")]
        summary: Vec<SummaryPart>,
    },
    /// Any other item (web search, ...).
    #[serde(other)]
    Other,
}

/// A part of an output message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// Answer text.
    OutputText {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// Anything else (refusals, ...).
    #[serde(other)]
    Other,
}

/// A reasoning summary part (`summary_text`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SummaryPart {
    /// The summary text.
    #[serde(default)]
    pub text: String,
}

/// Token usage of one answer, flattened from the Responses shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "UsageWire")]
pub struct Usage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens served from the prompt cache.
    pub cached_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Input plus output.
    pub total_tokens: u64,
}

/// `usage` as the backend sends it.
#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<InputDetailsWire>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetailsWire>,
}

#[derive(Deserialize)]
struct InputDetailsWire {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct OutputDetailsWire {
    #[serde(default)]
    reasoning_tokens: u64,
}

impl From<UsageWire> for Usage {
    fn from(w: UsageWire) -> Self {
        Self {
            input_tokens: w.input_tokens,
            output_tokens: w.output_tokens,
            cached_tokens: w.input_tokens_details.map_or(0, |d| d.cached_tokens),
            reasoning_tokens: w.output_tokens_details.map_or(0, |d| d.reasoning_tokens),
            // Older answers omit the total; it is the plain sum by definition.
            total_tokens: w.total_tokens.unwrap_or(w.input_tokens + w.output_tokens),
        }
    }
}

/// How a stream ended normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// `response.completed`.
    Completed,
    /// `response.incomplete` with its reason (`max_output_tokens`, `content_filter`, ...).
    Incomplete {
        /// `incomplete_details.reason`.
        reason: Option<String>,
    },
}

/// How a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// `response.failed` or an `error` event.
    #[error("upstream error: {0}")]
    Upstream(Box<UpstreamError>),
    /// The input ended without a terminal event.
    #[error("stream disconnected before completion")]
    Disconnected,
}

/// The terminal outcome of a stream.
pub type StreamOutcome = Result<Finish, StreamError>;

#[cfg(test)]
// Test helpers take owned JSON literals, which reads better at the call sites.
#[allow(clippy::needless_pass_by_value, clippy::similar_names)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> StreamEvent {
        StreamEvent::from_value(&v).expect("parses")
    }

    #[test]
    fn parses_known_and_unknown_events() {
        let e = event(json!({"type": "response.output_text.delta", "delta": "hi",
            "output_index": 1, "item_id": "msg_1", "content_index": 0, "sequence_number": 4}));
        assert_eq!(
            e,
            StreamEvent::OutputTextDelta {
                output_index: 1,
                delta: "hi".into()
            }
        );
        assert!(e.carries_output());
        let e = event(json!({"type": "response.content_part.added", "part": {}}));
        assert_eq!(e, StreamEvent::Unknown);
        assert!(!e.carries_output());
        let e = event(
            json!({"type": "response.output_item.added", "output_index": 2,
            "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                     "arguments": "", "status": "in_progress"}}),
        );
        assert_eq!(
            e,
            StreamEvent::OutputItemAdded {
                output_index: 2,
                item: OutputItem::FunctionCall {
                    call_id: "call_1".into(),
                    name: "f".into(),
                    arguments: String::new()
                }
            }
        );
        let e = event(
            json!({"type": "response.output_item.done", "output_index": 0,
            "item": {"type": "web_search_call", "id": "ws"}}),
        );
        assert!(matches!(
            e,
            StreamEvent::OutputItemDone {
                item: OutputItem::Other,
                ..
            }
        ));
    }

    #[test]
    fn parse_uses_event_name_and_ignores_done() {
        let e = StreamEvent::parse(Some("response.output_text.delta"), r#"{"delta":"x"}"#)
            .expect("parses");
        assert!(matches!(e, StreamEvent::OutputTextDelta { ref delta, .. } if delta == "x"));
        // The JSON's own `type` wins over the event line.
        let e = StreamEvent::parse(
            Some("whatever"),
            r#"{"type":"response.in_progress","response":{"id":"r"}}"#,
        )
        .expect("parses");
        assert!(matches!(e, StreamEvent::InProgress { .. }));
        assert_eq!(
            StreamEvent::parse(None, "[DONE]").expect("ok"),
            StreamEvent::Unknown
        );
        assert!(StreamEvent::parse(None, "{not json").is_err());
    }

    #[test]
    fn usage_maps_details_and_fills_total() {
        let u: Usage = serde_json::from_value(json!({"input_tokens": 10, "output_tokens": 5,
            "total_tokens": 15, "input_tokens_details": {"cached_tokens": 4},
            "output_tokens_details": {"reasoning_tokens": 2}}))
        .expect("parses");
        assert_eq!(
            u,
            Usage {
                input_tokens: 10,
                output_tokens: 5,
                cached_tokens: 4,
                reasoning_tokens: 2,
                total_tokens: 15
            }
        );
        assert_eq!(
            serde_json::to_value(crate::codex::openai::ChatUsage::from(u)).expect("serialises"),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 4},
                   "completion_tokens_details": {"reasoning_tokens": 2}})
        );
        let u: Usage = serde_json::from_value(json!({"input_tokens": 3, "output_tokens": 4,
            "input_tokens_details": null}))
        .expect("parses");
        assert_eq!(u.total_tokens, 7);
        assert_eq!(u.cached_tokens, 0);
    }

    #[test]
    fn stream_failures_become_outcomes() {
        let e = event(
            json!({"type": "response.failed", "response": {"id": "r", "status": "failed",
            "error": {"code": "server_is_overloaded", "message": "busy"}}}),
        );
        let Some(Err(StreamError::Upstream(err))) = e.outcome() else {
            panic!("failure expected")
        };
        assert!(err.is("server_is_overloaded"));
        assert!(err.is_transient());
        let e = event(
            json!({"type": "error", "code": "rate_limit_exceeded", "message": "m",
            "param": null, "sequence_number": 2}),
        );
        let Some(Err(StreamError::Upstream(err))) = e.outcome() else {
            panic!("failure expected")
        };
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
        let e = event(
            json!({"type": "error", "error": {"type": "usage_limit_reached",
            "message": "limit", "resets_in_seconds": 60}}),
        );
        let Some(Err(StreamError::Upstream(err))) = e.outcome() else {
            panic!("failure expected")
        };
        assert!(err.is_usage_limit());
        assert_eq!(err.resets_in_seconds, Some(60));
        // A failure without details still fails.
        let e = event(json!({"type": "response.failed", "response": {"error": null}}));
        assert!(matches!(e.outcome(), Some(Err(StreamError::Upstream(_)))));
        let e = event(json!({"type": "response.incomplete", "response": {
            "incomplete_details": {"reason": "max_output_tokens"}, "output": null}}));
        assert_eq!(
            e.outcome(),
            Some(Ok(Finish::Incomplete {
                reason: Some("max_output_tokens".into())
            }))
        );
        assert_eq!(
            event(json!({"type": "response.in_progress", "response": {}})).outcome(),
            None
        );
    }
}
