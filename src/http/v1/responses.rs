//! `POST /v1/responses`: the Responses API, forwarded nearly as is after normalisation, so
//! that Responses clients (the Codex CLI among them) can use the gateway as their provider.
//! Streamed answers pass the upstream's frames through unchanged; others are aggregated into
//! the final `response` object.

use bytes::Bytes;
use serde_json::{json, Value};

use super::invalid_request;
use super::serve::{Aggregate, Endpoint, Relay, Relayed, Upstream};
use crate::codex::aggregate::ResponsesAggregator;
use crate::codex::sse::{encode_frame, SseFrame};
use crate::codex::translate::normalize_responses_request;
use crate::codex::wire::{StreamError, StreamEvent, StreamOutcome};
use crate::error::OpenAiError;

/// The Responses endpoint.
pub struct Responses;

impl Endpoint for Responses {
    const PATH: &'static str = "/v1/responses";
    type Aggregate = ResponsesAggregator;
    type Relay = PassThrough;

    fn translate(body: Value) -> Result<(Self, Upstream), OpenAiError> {
        let request = normalize_responses_request(body).map_err(invalid_request)?;
        let session = request
            .body
            .get("prompt_cache_key")
            .and_then(Value::as_str)
            .map(str::to_string);
        let upstream = Upstream::new(request.model, request.stream, session, &request.body)?;
        Ok((Responses, upstream))
    }

    fn aggregate(&self) -> ResponsesAggregator {
        ResponsesAggregator::new()
    }

    fn relay(&self) -> PassThrough {
        PassThrough
    }
}

impl Aggregate for ResponsesAggregator {
    type Answer = Value;

    /// Works on the frame's JSON, so that every field the backend sends passes through.
    fn on_frame(&mut self, frame: &SseFrame, _: Option<&StreamEvent>) {
        if let Ok(value) = serde_json::from_str::<Value>(&frame.data) {
            self.on_event(&value);
        }
    }

    fn finish(self) -> Result<Value, StreamError> {
        ResponsesAggregator::finish(self)
    }
}

/// Sends every upstream frame on as it came.
#[derive(Debug, Clone, Copy)]
pub struct PassThrough;

impl Relay for PassThrough {
    fn on_frame(&mut self, frame: &SseFrame, event: Option<&StreamEvent>) -> Relayed {
        Relayed {
            frames: vec![Bytes::from(encode_frame(
                frame.event.as_deref(),
                &frame.data,
            ))],
            output: event.is_some_and(StreamEvent::carries_output),
        }
    }

    /// Nothing after the upstream's own terminal event; an `error` event when there was none.
    fn closing_frame(&self, outcome: &StreamOutcome) -> Option<Bytes> {
        match outcome {
            Err(StreamError::Disconnected) => {
                let message = StreamError::Disconnected.to_string();
                let event =
                    json!({"type": "error", "code": "stream_disconnected", "message": message});
                Some(Bytes::from(encode_frame(Some("error"), &event.to_string())))
            }
            Ok(_) | Err(StreamError::Upstream(_)) => None,
        }
    }
}
