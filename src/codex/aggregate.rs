//! Aggregation for non-streaming clients: the whole upstream stream in, one answer out.
//!
//! The upstream always streams, so a client that asked for a plain JSON answer gets it built
//! here after the last event. The final output is `response.completed.response.output`; when the
//! backend leaves that empty (it sometimes does), it is rebuilt from the
//! `response.output_item.done` items ordered by `output_index`.

use serde_json::Value;

use super::chat_stream::{finish_reason, Identity, SUMMARY_SEPARATOR};
use super::openai::{AssistantMessage, ChatCompletion, Choice, FunctionCall, ToolCall};
use super::wire::{OutputContent, OutputItem, StreamError, StreamEvent, StreamOutcome, Usage};

/// Collects upstream events into one `chat.completion`.
#[derive(Debug)]
pub struct ChatAggregator {
    identity: Identity,
    model: String,
    /// `response.output_item.done` items with their `output_index`, in arrival order.
    done_items: Vec<(u32, OutputItem)>,
    /// `response.output` of the terminal event.
    final_output: Vec<OutputItem>,
    usage: Option<Usage>,
    outcome: Option<StreamOutcome>,
}

impl ChatAggregator {
    /// An aggregator answering as `model` (the name the client asked for).
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            identity: Identity::default(),
            model: model.into(),
            done_items: Vec::new(),
            final_output: Vec::new(),
            usage: None,
            outcome: None,
        }
    }

    /// Uses this id instead of one derived from the response id.
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

    /// Usage reported by the terminal event, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The terminal outcome, once a terminal event was seen.
    pub fn outcome(&self) -> Option<&StreamOutcome> {
        self.outcome.as_ref()
    }

    /// Takes one event into account.
    pub fn on_event(&mut self, event: &StreamEvent) {
        if self.outcome.is_some() {
            return;
        }
        match event {
            StreamEvent::Created { response } | StreamEvent::InProgress { response } => {
                self.identity.observe(response);
            }
            StreamEvent::OutputItemDone { output_index, item } => {
                self.done_items.push((*output_index, item.clone()));
            }
            StreamEvent::Completed { response }
            | StreamEvent::Incomplete { response }
            | StreamEvent::Failed { response } => {
                self.identity.observe(response);
                self.usage = response.usage.or(self.usage);
                self.final_output.clone_from(&response.output);
                self.outcome = event.outcome();
            }
            StreamEvent::Error(_) => self.outcome = event.outcome(),
            _ => {}
        }
    }

    /// Builds the answer; fails when the stream failed or ended without a terminal event.
    pub fn finish(mut self) -> Result<ChatCompletion, StreamError> {
        let finish = self
            .outcome
            .take()
            .unwrap_or(Err(StreamError::Disconnected))?;
        let items = if self.final_output.is_empty() {
            sorted_by_index(self.done_items)
        } else {
            self.final_output
        };

        let mut content: Option<String> = None;
        let mut summaries: Vec<String> = Vec::new();
        let mut tool_calls = Vec::new();
        for item in items {
            match item {
                OutputItem::Message { content: parts } => {
                    let text = content.get_or_insert_with(String::new);
                    for part in parts {
                        if let OutputContent::OutputText { text: piece } = part {
                            text.push_str(&piece);
                        }
                    }
                }
                OutputItem::Reasoning { summary } => {
                    summaries.extend(
                        summary
                            .into_iter()
                            .map(|p| p.text)
                            .filter(|t| !t.is_empty()),
                    );
                }
                OutputItem::FunctionCall {
                    call_id,
                    name,
                    arguments,
                } => tool_calls.push(ToolCall {
                    id: call_id,
                    kind: "function".to_owned(),
                    function: FunctionCall { name, arguments },
                }),
                OutputItem::Other => {}
            }
        }
        let reason = finish_reason(&finish, !tool_calls.is_empty());
        // OpenAI's convention: `content` is null for a tool-call-only turn, a string otherwise.
        if content.is_none() && tool_calls.is_empty() {
            content = Some(String::new());
        }
        let (id, created) = self.identity.resolve();
        Ok(ChatCompletion {
            id,
            object: "chat.completion".to_owned(),
            created,
            model: self.model,
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".to_owned(),
                    content,
                    reasoning_content: (!summaries.is_empty())
                        .then(|| summaries.join(SUMMARY_SEPARATOR)),
                    tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                },
                finish_reason: Some(reason),
            }],
            usage: Some(self.usage.unwrap_or_default().into()),
        })
    }
}

/// Orders items by `output_index`, keeping arrival order for equal indexes.
fn sorted_by_index<T>(mut items: Vec<(u32, T)>) -> Vec<T> {
    items.sort_by_key(|(index, _)| *index);
    items.into_iter().map(|(_, item)| item).collect()
}

/// Collects raw upstream events into the `response` object a non-streaming `/v1/responses`
/// client gets. Works on JSON values so every field the backend sends passes through unchanged.
#[derive(Debug, Default)]
pub struct ResponsesAggregator {
    done_items: Vec<(u32, Value)>,
    response: Option<Value>,
    usage: Option<Usage>,
    outcome: Option<StreamOutcome>,
}

impl ResponsesAggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Usage reported by the terminal event, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The terminal outcome, once a terminal event was seen.
    pub fn outcome(&self) -> Option<&StreamOutcome> {
        self.outcome.as_ref()
    }

    /// Takes one event (the parsed `data:` JSON) into account.
    pub fn on_event(&mut self, event: &Value) {
        if self.outcome.is_some() {
            return;
        }
        match event.get("type").and_then(Value::as_str) {
            Some("response.output_item.done") => {
                let index = event
                    .get("output_index")
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok())
                    .unwrap_or(u32::MAX);
                if let Some(item) = event.get("item") {
                    self.done_items.push((index, item.clone()));
                }
            }
            Some("response.completed" | "response.incomplete" | "response.failed" | "error") => {
                // The typed view gives outcome and usage; a terminal event that does not parse
                // leaves the outcome open, which ends as "disconnected" rather than a success.
                if let Ok(typed) = StreamEvent::from_value(event) {
                    self.usage = typed.usage().or(self.usage);
                    self.outcome = typed.outcome();
                    self.response = event.get("response").cloned();
                }
            }
            _ => {}
        }
    }

    /// The final `response` object, with `output` rebuilt when the backend left it empty.
    pub fn finish(mut self) -> Result<Value, StreamError> {
        self.outcome
            .take()
            .unwrap_or(Err(StreamError::Disconnected))?;
        let mut response = self
            .response
            .unwrap_or_else(|| Value::Object(serde_json::Map::default()));
        let output_empty = match response.get("output") {
            Some(Value::Array(items)) => items.is_empty(),
            _ => true,
        };
        if output_empty {
            if let Value::Object(obj) = &mut response {
                obj.insert(
                    "output".into(),
                    Value::Array(sorted_by_index(self.done_items)),
                );
            }
        }
        Ok(response)
    }
}

#[cfg(test)]
// Test helpers take owned JSON literals, which reads better at the call sites.
#[allow(clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use crate::codex::chat_stream::tests::{
        events, CHUNK_SIZES, DISCONNECTED, EMPTY_OUTPUT, FAILED, INCOMPLETE, REASONING, TEXT,
        TOOL_CALL,
    };
    use crate::codex::sse::SseDecoder;
    use serde_json::json;

    fn aggregate(fixture: &str, size: usize) -> Result<Value, StreamError> {
        let mut agg = ChatAggregator::new("gpt-5");
        for event in events(fixture, size) {
            agg.on_event(&event);
        }
        agg.finish()
            .map(|c| serde_json::to_value(c).expect("serialises"))
    }

    fn completion(id: &str, message: Value, finish: &str, usage: Value) -> Value {
        json!({"id": id, "object": "chat.completion", "created": 1_760_000_000, "model": "gpt-5",
               "choices": [{"index": 0, "message": message, "finish_reason": finish}],
               "usage": usage})
    }

    fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Value {
        json!({"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion,
               "prompt_tokens_details": {"cached_tokens": cached},
               "completion_tokens_details": {"reasoning_tokens": reasoning}})
    }

    #[test]
    fn text_completion() {
        for size in CHUNK_SIZES {
            assert_eq!(
                aggregate(TEXT, size).expect("completes"),
                completion(
                    "chatcmpl-text01",
                    json!({"role": "assistant", "content": "Bonjour à vous ✓"}),
                    "stop",
                    usage(12, 6, 4, 0)
                )
            );
        }
    }

    #[test]
    fn tool_call_completion() {
        assert_eq!(
            aggregate(TOOL_CALL, 7).expect("completes"),
            completion(
                "chatcmpl-tool01",
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_paris", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_lyon", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}
                ]}),
                "tool_calls",
                usage(80, 90, 0, 64)
            )
        );
    }

    #[test]
    fn reasoning_completion() {
        assert_eq!(
            aggregate(REASONING, 1).expect("completes"),
            completion(
                "chatcmpl-reason01",
                json!({"role": "assistant", "content": "42",
                       "reasoning_content": "**Counting** the answer.\n\nChecking it."}),
                "stop",
                usage(30, 120, 0, 100)
            )
        );
    }

    #[test]
    fn empty_output_is_rebuilt_from_done_items() {
        assert_eq!(
            aggregate(EMPTY_OUTPUT, 7).expect("completes"),
            completion(
                "chatcmpl-empty01",
                json!({"role": "assistant", "content": "Hello there",
                       "reasoning_content": "Thinking.",
                       "tool_calls": [{"id": "call_x", "type": "function",
                                       "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]}),
                "tool_calls",
                usage(20, 30, 10, 5)
            )
        );
    }

    #[test]
    fn done_items_are_ordered_by_output_index() {
        let mut agg = ChatAggregator::new("m")
            .with_id("chatcmpl-x")
            .with_created(1);
        for e in [
            json!({"type": "response.output_item.done", "output_index": 1, "item":
                {"type": "message", "content": [{"type": "output_text", "text": "second"}]}}),
            json!({"type": "response.output_item.done", "output_index": 0, "item":
                {"type": "message", "content": [{"type": "output_text", "text": "first "}]}}),
            json!({"type": "response.completed", "response": {"id": "resp_1", "output": []}}),
        ] {
            agg.on_event(&StreamEvent::from_value(&e).expect("event"));
        }
        let done = agg.finish().expect("completes");
        assert_eq!(done.id, "chatcmpl-x");
        assert_eq!(done.created, 1);
        assert_eq!(
            done.choices[0].message.content.as_deref(),
            Some("first second")
        );
    }

    #[test]
    fn final_output_wins_over_done_items() {
        let mut agg = ChatAggregator::new("m");
        for e in [
            json!({"type": "response.output_item.done", "output_index": 0, "item":
                {"type": "message", "content": [{"type": "output_text", "text": "from done"}]}}),
            json!({"type": "response.completed", "response": {"id": "resp_9", "created_at": 7,
                "output": [{"type": "message", "content": [
                    {"type": "output_text", "text": "from final"},
                    {"type": "refusal", "refusal": "ignored"}]}]}}),
        ] {
            agg.on_event(&StreamEvent::from_value(&e).expect("event"));
        }
        let done = agg.finish().expect("completes");
        assert_eq!(done.id, "chatcmpl-9");
        assert_eq!(done.created, 7);
        assert_eq!(
            done.choices[0].message.content.as_deref(),
            Some("from final")
        );
        assert_eq!(done.choices[0].message.reasoning_content, None);
    }

    #[test]
    fn incomplete_completion_has_length() {
        let done = aggregate(INCOMPLETE, 64).expect("an incomplete answer is still an answer");
        assert_eq!(done["choices"][0]["finish_reason"], "length");
        assert_eq!(done["choices"][0]["message"]["content"], "Once upon a time");
    }

    #[test]
    fn failures_are_errors() {
        let Err(StreamError::Upstream(err)) = aggregate(FAILED, 7) else {
            panic!("failure expected")
        };
        assert!(err.is("server_is_overloaded"));
        assert_eq!(aggregate(DISCONNECTED, 7), Err(StreamError::Disconnected));
    }

    fn raw_events(fixture: &str, size: usize) -> Vec<Value> {
        let mut decoder = SseDecoder::new();
        fixture
            .as_bytes()
            .chunks(size)
            .flat_map(|piece| decoder.feed(piece))
            .map(|f| serde_json::from_str(&f.data).expect("json"))
            .collect()
    }

    fn responses(fixture: &str) -> (Result<Value, StreamError>, Option<Usage>) {
        let mut agg = ResponsesAggregator::new();
        for event in raw_events(fixture, 7) {
            agg.on_event(&event);
        }
        let usage = agg.usage();
        (agg.finish(), usage)
    }

    #[test]
    fn responses_object_passes_through() {
        let (response, usage) = responses(TEXT);
        let response = response.expect("completes");
        assert_eq!(response["id"], "resp_text01");
        assert_eq!(response["status"], "completed");
        assert_eq!(
            response["output"][0]["content"][0]["text"],
            "Bonjour à vous ✓"
        );
        // Fields the gateway does not model pass through untouched.
        assert_eq!(
            response["output"][0]["content"][0]["annotations"],
            json!([])
        );
        assert_eq!(usage.map(|u| u.cached_tokens), Some(4));
    }

    #[test]
    fn responses_output_rebuilt_when_empty() {
        let (response, _) = responses(EMPTY_OUTPUT);
        let output = response.expect("completes")["output"].clone();
        let kinds: Vec<&str> = output
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|i| i["type"].as_str())
            .collect();
        assert_eq!(kinds, ["reasoning", "message", "function_call"]);
        // The rebuilt items are the `.done` versions, encrypted reasoning included.
        assert_eq!(output[0]["encrypted_content"], "gAAAAAB-enc-final");
        assert_eq!(output[2]["arguments"], "{\"q\":\"x\"}");
    }

    #[test]
    fn responses_failures() {
        let (response, _) = responses(FAILED);
        assert!(matches!(response, Err(StreamError::Upstream(ref e)) if e.is_transient()));
        let (response, _) = responses(DISCONNECTED);
        assert_eq!(response, Err(StreamError::Disconnected));
        let (response, usage) = responses(INCOMPLETE);
        let response = response.expect("incomplete is an answer");
        assert_eq!(
            response["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(usage.map(|u| u.output_tokens), Some(8));
    }
}
