//! The SSE frames of an answer, built event by event as the backend sends them.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::economy::TokenUsage;

/// `input_tokens` reported by every completed answer.
pub const USAGE_INPUT_TOKENS: u64 = 12;
/// `input_tokens_details.cached_tokens` reported by every completed answer.
pub const USAGE_CACHED_TOKENS: u64 = 4;
/// `output_tokens` reported by every completed answer.
pub const USAGE_OUTPUT_TOKENS: u64 = 8;
/// `output_tokens_details.reasoning_tokens` reported when the answer reasons (else 0).
pub const USAGE_REASONING_TOKENS: u64 = 3;
/// The whole answer text in fast mode.
pub const FAST_ANSWER: &str = "ok";

/// One SSE frame and how long to wait before sending it.
pub(crate) struct Step {
    pub(crate) delay: Duration,
    pub(crate) bytes: Bytes,
}

/// Builds the SSE frames of one answer, numbering events and collecting the output items.
pub(crate) struct Sse {
    pub(crate) steps: Vec<Step>,
    seq: u64,
    response: Value,
    output: Vec<Value>,
    reasoning_tokens: u64,
    /// The economy's count of the answer's tokens, when it is on.
    tokens: Option<TokenUsage>,
}

impl Sse {
    pub(crate) fn new(model: &str, body: &Value, reasoning_tokens: u64) -> Self {
        // The response object echoes the request's settings, as upstream's does.
        let field = |key: &str, default: Value| body.get(key).cloned().unwrap_or(default);
        let response = json!({
            "id": format!("resp_{}", uuid::Uuid::new_v4().simple()),
            "object": "response",
            "created_at": chrono::Utc::now().timestamp(),
            "status": "in_progress",
            "background": false,
            "error": null,
            "incomplete_details": null,
            "instructions": field("instructions", Value::Null),
            "model": model,
            "output": [],
            "parallel_tool_calls": field("parallel_tool_calls", Value::Bool(false)),
            "reasoning": field("reasoning", Value::Null),
            "store": false,
            "tool_choice": field("tool_choice", Value::from("auto")),
            "tools": field("tools", json!([])),
            "usage": null,
            "metadata": {},
        });
        Self {
            steps: Vec::new(),
            seq: 0,
            response,
            output: Vec::new(),
            reasoning_tokens,
            tokens: None,
        }
    }

    /// Reports these token counts in the answer's usage instead of the fixed ones.
    pub(crate) fn set_tokens(&mut self, tokens: Option<TokenUsage>) {
        self.tokens = tokens;
    }

    pub(crate) fn event(&mut self, kind: &str, data: Value) {
        self.delayed_event(kind, data, Duration::ZERO);
    }

    fn delayed_event(&mut self, kind: &str, mut data: Value, delay: Duration) {
        if let Some(map) = data.as_object_mut() {
            map.insert("type".into(), Value::from(kind));
            map.insert("sequence_number".into(), Value::from(self.seq));
        }
        self.seq += 1;
        let bytes = Bytes::from(format!("event: {kind}\ndata: {data}\n\n"));
        self.steps.push(Step { delay, bytes });
    }

    /// Waits `delay`, then sends an SSE comment (clients ignore it), holding the stream open.
    pub(crate) fn pause(&mut self, delay: Duration) {
        self.steps.push(Step {
            delay,
            bytes: Bytes::from_static(b": keep-alive\n\n"),
        });
    }

    pub(crate) fn started(&mut self) {
        let response = self.response.clone();
        self.event("response.created", json!({ "response": response }));
        self.event("response.in_progress", json!({ "response": response }));
    }

    pub(crate) fn failed(&mut self, code: &str) {
        let message = match code {
            "server_is_overloaded" => {
                "Our servers are currently overloaded. Please try again later."
            }
            "rate_limit_exceeded" => "Rate limit reached. Please try again later.",
            _ => "An error occurred while processing your request.",
        };
        let mut response = self.response.clone();
        response["status"] = Value::from("failed");
        response["error"] = json!({"code": code, "message": message});
        self.event("response.failed", json!({ "response": response }));
    }

    pub(crate) fn reasoning(&mut self, deltas: &[&str]) {
        let index = self.output.len();
        let id = format!("rs_{}", uuid::Uuid::new_v4().simple());
        let full: String = deltas.concat();
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": {"id": id, "type": "reasoning", "summary": []}}),
        );
        self.event(
            "response.reasoning_summary_part.added",
            json!({"item_id": id, "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": ""}}),
        );
        for delta in deltas {
            self.event(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta}),
            );
        }
        self.event(
            "response.reasoning_summary_text.done",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "text": full}),
        );
        self.event(
            "response.reasoning_summary_part.done",
            json!({"item_id": id, "output_index": index, "summary_index": 0,
                   "part": {"type": "summary_text", "text": full}}),
        );
        let item = json!({
            "id": id, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": full}],
            "encrypted_content": format!("gAAAAB{}", uuid::Uuid::new_v4().simple()),
        });
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    pub(crate) fn function_call(&mut self, name: &str, arguments: &str) {
        let index = self.output.len();
        let id = format!("fc_{}", uuid::Uuid::new_v4().simple());
        let call_id = format!("call_{}", uuid::Uuid::new_v4().simple());
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": {
                "id": id, "type": "function_call", "status": "in_progress",
                "arguments": "", "call_id": call_id, "name": name,
            }}),
        );
        for delta in chunks(arguments, 10) {
            self.event(
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": index, "delta": delta}),
            );
        }
        self.event(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": index, "arguments": arguments}),
        );
        let item = json!({
            "id": id, "type": "function_call", "status": "completed",
            "arguments": arguments, "call_id": call_id, "name": name,
        });
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    /// The one output item of a remote compaction: the conversation so far, opaque.
    pub(crate) fn compaction(&mut self, summary_of: usize) {
        let index = self.output.len();
        let id = format!("cmp_{}", uuid::Uuid::new_v4().simple());
        let encrypted = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("mock compaction of {summary_of} items {id}"),
        );
        let item = json!({"id": id, "type": "compaction", "encrypted_content": encrypted});
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    /// The assistant message; with `complete` false it stops after the deltas (a cut stream).
    pub(crate) fn message(&mut self, deltas: &[String], complete: bool, delay: Duration) {
        let index = self.output.len();
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": {
                "id": id, "type": "message", "status": "in_progress", "role": "assistant",
                "content": [],
            }}),
        );
        self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "annotations": [], "text": ""}}),
        );
        for delta in deltas {
            self.delayed_event(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                       "delta": delta, "logprobs": []}),
                delay,
            );
        }
        if !complete {
            return;
        }
        let text: String = deltas.concat();
        self.event(
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "text": text, "logprobs": []}),
        );
        let part = json!({"type": "output_text", "annotations": [], "text": text});
        self.event(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
        );
        let item = json!({
            "id": id, "type": "message", "status": "completed", "role": "assistant",
            "content": [part],
        });
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
    }

    pub(crate) fn finish(
        &mut self,
        kind: &str,
        status: &str,
        with_output: bool,
        reason: Option<&str>,
    ) {
        let mut response = self.response.clone();
        response["status"] = Value::from(status);
        response["output"] = if with_output {
            Value::Array(self.output.clone())
        } else {
            json!([])
        };
        response["usage"] = usage(self.reasoning_tokens, self.tokens);
        if let Some(reason) = reason {
            response["incomplete_details"] = json!({ "reason": reason });
        }
        self.event(kind, json!({ "response": response }));
    }
}

fn usage(reasoning_tokens: u64, tokens: Option<TokenUsage>) -> Value {
    let t = tokens.unwrap_or(TokenUsage {
        input: USAGE_INPUT_TOKENS,
        cached: USAGE_CACHED_TOKENS,
        output: USAGE_OUTPUT_TOKENS,
    });
    json!({
        "input_tokens": t.input,
        "input_tokens_details": {"cached_tokens": t.cached},
        "output_tokens": t.output,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": t.input + t.output,
    })
}

/// The fixed answer of fast mode (the benchmark): `response.created`, `FAST_ANSWER` as one
/// message, `response.completed`.
pub(crate) fn fast_events() -> Vec<Step> {
    let mut sse = Sse::new("gpt-5", &Value::Null, 0);
    sse.event(
        "response.created",
        json!({"response": sse.response.clone()}),
    );
    sse.message(&[FAST_ANSWER.to_owned()], true, Duration::ZERO);
    sse.finish("response.completed", "completed", true, None);
    sse.steps
}

/// The text in pieces of `size` characters.
pub(crate) fn chunks(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}
