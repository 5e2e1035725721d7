//! Streaming translation: upstream events -> Chat Completions chunks, one event at a time.
//!
//! [`ChatStream`] is a small state machine. Each event maps at once to zero or more chunks (the
//! answer is never buffered), all chunks of one answer share one `id` and `created`, and the
//! first chunk carries `delta.role = "assistant"`. Events that only announce structure
//! (`response.created`, a `message` item starting, ...) produce nothing, so until the first chunk
//! is written the gateway may still retry the request on another account. The stream also keeps
//! the usage and the terminal outcome, including "disconnected before completion" when the input
//! ends without a terminal event. Reasoning summary parts are separated by a blank line, as the
//! backend sends them as separate paragraphs. After `response.failed` or `error` no chunk is
//! produced: the caller ends the stream with its own error frame.

use std::time::{SystemTime, UNIX_EPOCH};

use super::openai::{
    ChatCompletionChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, ToolCallDelta,
};
use super::wire::{
    Finish, OutputItem, ResponseObject, StreamError, StreamEvent, StreamOutcome, Usage,
};

/// `object` of every streamed chunk.
const CHUNK_OBJECT: &str = "chat.completion.chunk";

/// Separates reasoning summary parts, which the backend sends as separate paragraphs.
pub(super) const SUMMARY_SEPARATOR: &str = "\n\n";

/// The Chat Completions id for an upstream response id: `resp_abc` -> `chatcmpl-abc`.
pub fn chat_id_from_response_id(response_id: &str) -> String {
    let bare = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("chatcmpl-{bare}")
}

/// The `finish_reason` of an answer that ended normally.
pub fn finish_reason(finish: &Finish, called_tools: bool) -> FinishReason {
    match finish {
        Finish::Incomplete { reason } => match reason.as_deref() {
            Some("max_output_tokens") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        },
        Finish::Completed if called_tools => FinishReason::ToolCalls,
        Finish::Completed => FinishReason::Stop,
    }
}

/// The `id` and `created` of an answer: given by the caller, else taken from
/// `response.created`, else made up when the first chunk is written.
#[derive(Debug, Clone, Default)]
pub(super) struct Identity {
    id: Option<String>,
    created: Option<i64>,
}

impl Identity {
    /// Sets the id chosen by the caller (tests pin it).
    #[cfg(test)]
    pub(super) fn set_id(&mut self, id: String) {
        self.id = Some(id);
    }

    /// Sets the creation time chosen by the caller (tests pin it).
    #[cfg(test)]
    pub(super) fn set_created(&mut self, created: i64) {
        self.created = Some(created);
    }

    /// Fills what the caller left open from the upstream response.
    pub(super) fn observe(&mut self, response: &ResponseObject) {
        if self.id.is_none() && !response.id.is_empty() {
            self.id = Some(chat_id_from_response_id(&response.id));
        }
        if self.created.is_none() {
            self.created = response.created_at;
        }
    }

    /// Fixes and returns the identity; later observations no longer change it.
    pub(super) fn resolve(&mut self) -> (String, i64) {
        let id = self
            .id
            .get_or_insert_with(|| format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()))
            .clone();
        let created = *self.created.get_or_insert_with(|| {
            // A clock before 1970 is a broken host; 0 still yields a valid chunk.
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        (id, created)
    }
}

/// A tool call seen in this answer; its position in [`ChatStream::calls`] is its `index`.
#[derive(Debug, Clone)]
struct CallSlot {
    output_index: u32,
    /// Whether argument text was already sent (then `.done` events must not repeat it).
    sent_arguments: bool,
}

/// Turns upstream events into Chat Completions chunks for a streaming client.
#[derive(Debug)]
pub struct ChatStream {
    identity: Identity,
    model: String,
    include_usage: bool,
    role_sent: bool,
    calls: Vec<CallSlot>,
    /// `(output_index, summary_index)` of the last reasoning text, to separate parts.
    last_summary: Option<(u32, u32)>,
    usage: Option<Usage>,
    outcome: Option<StreamOutcome>,
}

impl ChatStream {
    /// A stream answering as `model` (the name the client asked for); `include_usage` adds the
    /// final usage chunk.
    pub fn new(model: impl Into<String>, include_usage: bool) -> Self {
        Self {
            identity: Identity::default(),
            model: model.into(),
            include_usage,
            role_sent: false,
            calls: Vec::new(),
            last_summary: None,
            usage: None,
            outcome: None,
        }
    }

    /// Uses this chunk id instead of one derived from the response id.
    #[cfg(test)]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.identity.set_id(id.into());
        self
    }

    /// Uses this `created` instead of the response's `created_at`.
    #[cfg(test)]
    pub fn with_created(mut self, created: i64) -> Self {
        self.identity.set_created(created);
        self
    }

    /// Whether a chunk with model output has been produced (after which no retry is possible).
    pub fn has_emitted(&self) -> bool {
        self.role_sent
    }

    /// Usage reported by the terminal event, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The terminal outcome, once a terminal event (or [`ChatStream::finish`]) was seen.
    pub fn outcome(&self) -> Option<&StreamOutcome> {
        self.outcome.as_ref()
    }

    /// Marks the end of input: without a terminal event the stream counts as disconnected.
    pub fn finish(&mut self) -> &StreamOutcome {
        self.outcome.get_or_insert(Err(StreamError::Disconnected))
    }

    /// Maps one event to the chunks to send now (often none).
    pub fn on_event(&mut self, event: &StreamEvent) -> Vec<ChatCompletionChunk> {
        // Anything after the end is noise (e.g. a stray event after `response.completed`).
        if self.outcome.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        match event {
            StreamEvent::Created { response } | StreamEvent::InProgress { response } => {
                self.identity.observe(response);
            }
            StreamEvent::OutputTextDelta { delta, .. } if !delta.is_empty() => {
                out.push(self.chunk(Delta {
                    content: Some(delta.clone()),
                    ..Delta::default()
                }));
            }
            StreamEvent::ReasoningSummaryTextDelta {
                output_index,
                summary_index,
                delta,
            } if !delta.is_empty() => {
                let part = (*output_index, *summary_index);
                let text = match self.last_summary.replace(part) {
                    Some(last) if last != part => format!("{SUMMARY_SEPARATOR}{delta}"),
                    _ => delta.clone(),
                };
                out.push(self.chunk(Delta {
                    reasoning_content: Some(text),
                    ..Delta::default()
                }));
            }
            StreamEvent::OutputItemAdded {
                output_index,
                item:
                    OutputItem::FunctionCall {
                        call_id,
                        name,
                        arguments: _,
                    },
            } if self.slot(*output_index).is_none() => {
                out.push(self.open_call(*output_index, call_id, name));
            }
            StreamEvent::FunctionCallArgumentsDelta {
                output_index,
                delta,
            } if !delta.is_empty() => {
                // Deltas for a call whose `.added` never came have no index, id or name to
                // attach to; the `.done` item re-sends the call whole in that case.
                if let Some(index) = self.slot(*output_index) {
                    self.calls[index].sent_arguments = true;
                    out.push(self.arguments_chunk(index, delta));
                }
            }
            StreamEvent::FunctionCallArgumentsDone {
                output_index,
                arguments,
            } => {
                if let Some(index) = self.slot(*output_index) {
                    out.extend(self.complete_arguments(index, arguments));
                }
            }
            StreamEvent::OutputItemDone {
                output_index,
                item:
                    OutputItem::FunctionCall {
                        call_id,
                        name,
                        arguments,
                    },
            } => {
                let index = if let Some(index) = self.slot(*output_index) {
                    index
                } else {
                    out.push(self.open_call(*output_index, call_id, name));
                    self.calls.len() - 1
                };
                out.extend(self.complete_arguments(index, arguments));
            }
            StreamEvent::Completed { response }
            | StreamEvent::Incomplete { response }
            | StreamEvent::Failed { response } => {
                self.usage = response.usage.or(self.usage);
                if let Some(outcome) = event.outcome() {
                    if let Ok(finish) = &outcome {
                        let reason = finish_reason(finish, !self.calls.is_empty());
                        out.push(self.final_chunk(reason));
                        if self.include_usage {
                            out.push(self.usage_chunk());
                        }
                    }
                    self.outcome = Some(outcome);
                }
            }
            StreamEvent::Error(_) => self.outcome = event.outcome(),
            _ => {}
        }
        out
    }

    /// The tool-call index of the call at `output_index`.
    fn slot(&self, output_index: u32) -> Option<usize> {
        self.calls
            .iter()
            .position(|c| c.output_index == output_index)
    }

    /// Registers a call and returns its first chunk (id, type, name, empty arguments).
    fn open_call(&mut self, output_index: u32, call_id: &str, name: &str) -> ChatCompletionChunk {
        let index = self.calls.len();
        self.calls.push(CallSlot {
            output_index,
            sent_arguments: false,
        });
        self.chunk(Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index: index as u32,
                id: Some(call_id.to_owned()),
                kind: Some("function".to_owned()),
                function: FunctionCallDelta {
                    name: Some(name.to_owned()),
                    arguments: Some(String::new()),
                },
            }]),
            ..Delta::default()
        })
    }

    /// Sends the full arguments unless deltas already carried them.
    fn complete_arguments(&mut self, index: usize, arguments: &str) -> Option<ChatCompletionChunk> {
        if self.calls[index].sent_arguments || arguments.is_empty() {
            return None;
        }
        self.calls[index].sent_arguments = true;
        Some(self.arguments_chunk(index, arguments))
    }

    fn arguments_chunk(&mut self, index: usize, arguments: &str) -> ChatCompletionChunk {
        self.chunk(Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index: index as u32,
                id: None,
                kind: None,
                function: FunctionCallDelta {
                    name: None,
                    arguments: Some(arguments.to_owned()),
                },
            }]),
            ..Delta::default()
        })
    }

    fn final_chunk(&mut self, reason: FinishReason) -> ChatCompletionChunk {
        let mut chunk = self.chunk(Delta::default());
        chunk.choices[0].finish_reason = Some(reason);
        chunk
    }

    /// OpenAI's usage chunk: empty `choices`, zeros when the upstream reported nothing.
    fn usage_chunk(&mut self) -> ChatCompletionChunk {
        let (id, created) = self.identity.resolve();
        ChatCompletionChunk {
            id,
            object: CHUNK_OBJECT.to_owned(),
            created,
            model: self.model.clone(),
            choices: Vec::new(),
            usage: Some(self.usage.unwrap_or_default().into()),
        }
    }

    /// A one-choice chunk; the first one of the answer also carries the role.
    fn chunk(&mut self, mut delta: Delta) -> ChatCompletionChunk {
        if !self.role_sent {
            self.role_sent = true;
            delta.role = Some("assistant".to_owned());
        }
        let (id, created) = self.identity.resolve();
        ChatCompletionChunk {
            id,
            object: CHUNK_OBJECT.to_owned(),
            created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: None,
            }],
            usage: None,
        }
    }
}

#[cfg(test)]
// Test helpers take owned JSON literals, which reads better at the call sites.
#[allow(clippy::needless_pass_by_value)]
pub(super) mod tests {
    use super::*;
    use crate::codex::sse::SseDecoder;
    use serde_json::{json, Value};

    pub(crate) const TEXT: &str = include_str!("../../tests/fixtures/sse/text.sse");
    pub(crate) const TOOL_CALL: &str = include_str!("../../tests/fixtures/sse/tool_call.sse");
    pub(crate) const REASONING: &str = include_str!("../../tests/fixtures/sse/reasoning.sse");
    pub(crate) const EMPTY_OUTPUT: &str = include_str!("../../tests/fixtures/sse/empty_output.sse");
    pub(crate) const FAILED: &str = include_str!("../../tests/fixtures/sse/failed_overloaded.sse");
    pub(crate) const DISCONNECTED: &str = include_str!("../../tests/fixtures/sse/disconnected.sse");
    pub(crate) const INCOMPLETE: &str = include_str!("../../tests/fixtures/sse/incomplete.sse");

    /// Chunk sizes that split frames, lines and UTF-8 characters in awkward places.
    pub(crate) const CHUNK_SIZES: [usize; 4] = [1, 7, 64, usize::MAX];

    /// Decodes a fixture fed in `size`-byte pieces into events.
    pub(crate) fn events(fixture: &str, size: usize) -> Vec<StreamEvent> {
        let mut decoder = SseDecoder::new();
        let bytes = fixture.as_bytes();
        bytes
            .chunks(size.min(bytes.len()))
            .flat_map(|piece| decoder.feed(piece))
            .map(|frame| {
                StreamEvent::parse(frame.event.as_deref(), &frame.data).expect("fixture event")
            })
            .collect()
    }

    struct Run {
        chunks: Vec<Value>,
        outcome: StreamOutcome,
        usage: Option<Usage>,
        /// Whether output had reached the client when the terminal event arrived.
        emitted_before_terminal: bool,
    }

    fn run(fixture: &str, size: usize, include_usage: bool) -> Run {
        let mut stream = ChatStream::new("gpt-5", include_usage);
        let mut chunks = Vec::new();
        let mut emitted_before_terminal = false;
        for event in events(fixture, size) {
            if event.outcome().is_some() {
                emitted_before_terminal = stream.has_emitted();
            }
            for chunk in stream.on_event(&event) {
                chunks.push(serde_json::to_value(chunk).expect("serialises"));
            }
        }
        let outcome = stream.finish().clone();
        Run {
            chunks,
            outcome,
            usage: stream.usage(),
            emitted_before_terminal,
        }
    }

    /// A chunk of the fixture answers (`chatcmpl-` + the response id, created 1760000000).
    fn chunk(id: &str, delta: Value, finish: Value) -> Value {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_760_000_000,
               "model": "gpt-5", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn usage_chunk(id: &str, usage: Value) -> Value {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_760_000_000,
               "model": "gpt-5", "choices": [], "usage": usage})
    }

    #[test]
    fn text_answer() {
        let id = "chatcmpl-text01";
        for size in CHUNK_SIZES {
            let r = run(TEXT, size, true);
            assert_eq!(
                r.chunks,
                vec![
                    chunk(
                        id,
                        json!({"role": "assistant", "content": "Bonjour"}),
                        Value::Null
                    ),
                    chunk(id, json!({"content": " à vous ✓"}), Value::Null),
                    chunk(id, json!({}), json!("stop")),
                    usage_chunk(
                        id,
                        json!({"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18,
                               "prompt_tokens_details": {"cached_tokens": 4},
                               "completion_tokens_details": {"reasoning_tokens": 0}})
                    ),
                ],
                "size {size}"
            );
            assert_eq!(r.outcome, Ok(Finish::Completed));
            assert_eq!(r.usage.map(|u| u.total_tokens), Some(18));
            assert!(r.emitted_before_terminal);
        }
    }

    #[test]
    fn usage_chunk_only_when_asked() {
        let r = run(TEXT, 7, false);
        assert_eq!(r.chunks.len(), 3);
        assert!(r.chunks.iter().all(|c| c.get("usage").is_none()));
        // The gateway still learns the usage for its own records.
        assert_eq!(r.usage.map(|u| u.input_tokens), Some(12));
    }

    #[test]
    fn tool_call_answer() {
        let id = "chatcmpl-tool01";
        for size in CHUNK_SIZES {
            let r = run(TOOL_CALL, size, false);
            assert_eq!(
                r.chunks,
                vec![
                    chunk(
                        id,
                        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_paris",
                        "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                        Value::Null
                    ),
                    chunk(
                        id,
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\""}}]}),
                        Value::Null
                    ),
                    chunk(
                        id,
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": ":\"Paris\"}"}}]}),
                        Value::Null
                    ),
                    chunk(
                        id,
                        json!({"tool_calls": [{"index": 1, "id": "call_lyon",
                        "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                        Value::Null
                    ),
                    // No deltas for the second call: its arguments come whole from `.done`, once.
                    chunk(
                        id,
                        json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"city\":\"Lyon\"}"}}]}),
                        Value::Null
                    ),
                    chunk(id, json!({}), json!("tool_calls")),
                ],
                "size {size}"
            );
            assert_eq!(r.usage.map(|u| u.reasoning_tokens), Some(64));
        }
    }

    #[test]
    fn reasoning_answer() {
        let id = "chatcmpl-reason01";
        for size in CHUNK_SIZES {
            let r = run(REASONING, size, false);
            assert_eq!(
                r.chunks,
                vec![
                    chunk(
                        id,
                        json!({"role": "assistant", "reasoning_content": "**Counting**"}),
                        Value::Null
                    ),
                    chunk(
                        id,
                        json!({"reasoning_content": " the answer."}),
                        Value::Null
                    ),
                    // A new summary part starts a new paragraph.
                    chunk(
                        id,
                        json!({"reasoning_content": "\n\nChecking it."}),
                        Value::Null
                    ),
                    chunk(id, json!({"content": "42"}), Value::Null),
                    chunk(id, json!({}), json!("stop")),
                ],
                "size {size}"
            );
        }
    }

    #[test]
    fn empty_output_still_streams_from_deltas() {
        let r = run(EMPTY_OUTPUT, 7, false);
        let contents: String = r
            .chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(contents, "Hello there");
        let last = r.chunks.last().expect("chunks");
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(r.outcome, Ok(Finish::Completed));
    }

    #[test]
    fn failure_before_content_is_retryable() {
        for size in CHUNK_SIZES {
            let r = run(FAILED, size, true);
            assert!(r.chunks.is_empty(), "nothing reaches the client");
            assert!(!r.emitted_before_terminal);
            let Err(StreamError::Upstream(err)) = &r.outcome else {
                panic!("failure expected, got {:?}", r.outcome)
            };
            assert!(err.is("server_is_overloaded"));
            assert!(err.is_transient());
        }
    }

    #[test]
    fn cut_stream_is_a_failure() {
        for size in CHUNK_SIZES {
            let r = run(DISCONNECTED, size, true);
            assert_eq!(r.outcome, Err(StreamError::Disconnected), "size {size}");
            assert_eq!(
                r.outcome.as_ref().unwrap_err().to_string(),
                "stream disconnected before completion"
            );
            // The unfinished last frame is dropped, and no finish or usage chunk is invented.
            let contents: Vec<&str> = r
                .chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(contents, ["Partial ", "answ"]);
            assert!(r
                .chunks
                .iter()
                .all(|c| c["choices"][0]["finish_reason"].is_null()));
        }
    }

    #[test]
    fn incomplete_maps_to_length() {
        let id = "chatcmpl-inc01";
        for size in CHUNK_SIZES {
            let r = run(INCOMPLETE, size, true);
            assert_eq!(
                r.chunks[2..],
                [
                    chunk(id, json!({}), json!("length")),
                    usage_chunk(
                        id,
                        json!({"prompt_tokens": 15, "completion_tokens": 8, "total_tokens": 23,
                               "prompt_tokens_details": {"cached_tokens": 0},
                               "completion_tokens_details": {"reasoning_tokens": 0}})
                    ),
                ]
            );
            assert_eq!(
                r.outcome,
                Ok(Finish::Incomplete {
                    reason: Some("max_output_tokens".into())
                })
            );
        }
    }

    #[test]
    fn finish_reasons() {
        let inc = |r: &str| Finish::Incomplete {
            reason: Some(r.into()),
        };
        assert_eq!(finish_reason(&Finish::Completed, false), FinishReason::Stop);
        assert_eq!(
            finish_reason(&Finish::Completed, true),
            FinishReason::ToolCalls
        );
        assert_eq!(
            finish_reason(&inc("max_output_tokens"), true),
            FinishReason::Length
        );
        assert_eq!(
            finish_reason(&inc("content_filter"), false),
            FinishReason::ContentFilter
        );
        assert_eq!(finish_reason(&inc("other"), false), FinishReason::Stop);
        assert_eq!(
            finish_reason(&Finish::Incomplete { reason: None }, false),
            FinishReason::Stop
        );
    }

    fn ev(v: Value) -> StreamEvent {
        StreamEvent::from_value(&v).expect("event")
    }

    #[test]
    fn caller_identity_wins_and_stays_fixed() {
        let mut s = ChatStream::new("my-model", false)
            .with_id("chatcmpl-mine")
            .with_created(5);
        s.on_event(&ev(json!({"type": "response.created",
            "response": {"id": "resp_other", "created_at": 99}})));
        let chunks = s.on_event(&ev(
            json!({"type": "response.output_text.delta", "delta": "x"}),
        ));
        assert_eq!(chunks[0].id, "chatcmpl-mine");
        assert_eq!(chunks[0].created, 5);
        assert_eq!(chunks[0].model, "my-model");

        // Without response.created or caller values, an id is made up and then kept.
        let mut s = ChatStream::new("m", false);
        let a = s.on_event(&ev(
            json!({"type": "response.output_text.delta", "delta": "a"}),
        ));
        s.on_event(&ev(
            json!({"type": "response.created", "response": {"id": "resp_late"}}),
        ));
        let b = s.on_event(&ev(
            json!({"type": "response.output_text.delta", "delta": "b"}),
        ));
        assert!(a[0].id.starts_with("chatcmpl-"));
        assert_eq!(a[0].id, b[0].id);
        assert_eq!(a[0].created, b[0].created);
        assert!(a[0].created > 1_700_000_000);
    }

    #[test]
    fn only_output_counts_as_emitted() {
        let mut s = ChatStream::new("m", false);
        for e in [
            json!({"type": "response.created", "response": {"id": "resp_1"}}),
            json!({"type": "response.in_progress", "response": {"id": "resp_1"}}),
            json!({"type": "response.output_item.added", "output_index": 0,
                   "item": {"type": "reasoning", "summary": []}}),
            json!({"type": "response.output_item.added", "output_index": 1,
                   "item": {"type": "message", "content": []}}),
            json!({"type": "response.output_text.delta", "delta": ""}),
            json!({"type": "response.content_part.added"}),
        ] {
            assert!(s.on_event(&ev(e)).is_empty());
        }
        assert!(!s.has_emitted());
        assert!(!s
            .on_event(&ev(
                json!({"type": "response.output_text.delta", "delta": "hi"})
            ))
            .is_empty());
        assert!(s.has_emitted());
    }

    #[test]
    fn error_event_and_late_events() {
        let mut s = ChatStream::new("m", true);
        s.on_event(&ev(
            json!({"type": "response.output_text.delta", "delta": "a"}),
        ));
        assert!(s
            .on_event(&ev(
                json!({"type": "error", "code": "server_error", "message": "boom"})
            ))
            .is_empty());
        let Some(Err(StreamError::Upstream(err))) = s.outcome() else {
            panic!("failure expected")
        };
        assert_eq!(err.code.as_deref(), Some("server_error"));
        // Nothing after a terminal event, and finish keeps the recorded outcome.
        assert!(s
            .on_event(&ev(
                json!({"type": "response.output_text.delta", "delta": "late"})
            ))
            .is_empty());
        assert!(matches!(s.finish(), Err(StreamError::Upstream(_))));
    }

    #[test]
    fn call_without_added_event_is_sent_whole() {
        let mut s = ChatStream::new("m", false);
        // A stray delta with no known call is dropped rather than sent without an id.
        assert!(s
            .on_event(&ev(
                json!({"type": "response.function_call_arguments.delta",
                "output_index": 3, "delta": "{}"})
            ))
            .is_empty());
        let chunks = s.on_event(&ev(json!({"type": "response.output_item.done", "output_index": 3,
            "item": {"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{\"a\":1}"}})));
        let chunks: Vec<Value> = chunks
            .into_iter()
            .map(|c| serde_json::to_value(c).expect("serialises")["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            chunks,
            vec![
                json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "c9", "type": "function",
                    "function": {"name": "f", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}),
            ]
        );
    }

    #[test]
    fn content_filter_incomplete() {
        let mut s = ChatStream::new("m", false);
        let chunks = s.on_event(&ev(json!({"type": "response.incomplete", "response": {
            "incomplete_details": {"reason": "content_filter"}}})));
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].choices[0].finish_reason,
            Some(FinishReason::ContentFilter)
        );
        // An empty answer's only chunk still carries the role.
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
    }
}
