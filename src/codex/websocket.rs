//! The Responses protocol over WebSocket (CODEX.md §7), its pure part: reading the client's
//! frames, building the gateway's own frames, and the per-connection memory of the last turn
//! that rebuilds an incremental turn into the full input the stateless backend needs.
//!
//! A client frame is one JSON object: `{"type": "response.create", ...}` with the fields of the
//! HTTP body, or `{"type": "response.processed"}`, which needs no answer. On a reused
//! connection the Codex CLI sends `previous_response_id` and only the items added since that
//! response: the full input is the last turn's full input, then its output items, then the
//! new items.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::codex::wire::RateLimits;
use crate::error::{AppError, ErrorCode};

/// One message of the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A turn to run.
    Create(Create),
    /// The client has read a response: nothing to do.
    Processed,
}

/// A `response.create` frame, taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Create {
    /// The body of the equivalent HTTP request, without `type`, `generate`,
    /// `previous_response_id` and `input`.
    pub body: Map<String, Value>,
    /// The response this turn continues.
    pub previous_response_id: Option<String>,
    /// `false` for a prewarm: the gateway answers without calling the upstream.
    pub generate: bool,
    /// The turn's own input items (a text input becomes one user message).
    pub input: Vec<Value>,
}

/// Reads one text frame of the client. A frame that is not a JSON object with a known `type`
/// is a 400 that names what is wrong (never quoting the frame).
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, AppError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        AppError::invalid_request(format!(
            "a message must be one JSON object: {} at line {} column {}",
            category(&e),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut body) = value else {
        return Err(AppError::invalid_request(
            "a message must be one JSON object",
        ));
    };
    let kind = match body.remove("type") {
        Some(Value::String(kind)) => kind,
        None => {
            return Err(AppError::invalid_request("a message needs a \"type\"").with_param("type"))
        }
        Some(_) => {
            return Err(AppError::invalid_request("\"type\" must be a string").with_param("type"))
        }
    };
    match kind.as_str() {
        "response.create" => create(body).map(ClientFrame::Create),
        "response.processed" => Ok(ClientFrame::Processed),
        _ => Err(AppError::invalid_request(format!(
            "unsupported message type '{}': send response.create",
            kind.chars().take(64).collect::<String>()
        ))
        .with_param("type")),
    }
}

/// What kind of JSON error, without serde's quote of the input.
fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "invalid data",
    }
}

fn create(mut body: Map<String, Value>) -> Result<Create, AppError> {
    let previous_response_id = match body.remove("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.is_empty() => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err(
                AppError::invalid_request("'previous_response_id' must be a string")
                    .with_param("previous_response_id"),
            )
        }
    };
    let generate = match body.remove("generate") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(generate)) => generate,
        Some(_) => {
            return Err(
                AppError::invalid_request("'generate' must be a boolean").with_param("generate")
            )
        }
    };
    let input = input_items(body.remove("input").unwrap_or(Value::Null))?;
    Ok(Create {
        body,
        previous_response_id,
        generate,
        input,
    })
}

/// The input as items: a text is one user message, an array its items, nothing no items.
pub fn input_items(input: Value) -> Result<Vec<Value>, AppError> {
    match input {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })]),
        Value::Array(items) => Ok(items),
        _ => Err(
            AppError::invalid_request("'input' must be a string or an array of items")
                .with_param("input"),
        ),
    }
}

/// The error frame for `error`: its status, OpenAI's error object, and the headers an HTTP
/// answer would carry (`retry-after`).
pub fn error_event(error: &AppError) -> Value {
    let mut headers = Map::new();
    if let Some(seconds) = error.retry_after() {
        headers.insert("retry-after".into(), Value::from(seconds.to_string()));
    }
    json!({
        "type": "error",
        "status": error.status().as_u16(),
        "error": error.openai_error(),
        "headers": headers,
    })
}

/// The error frame of a turn whose upstream stream broke off after its output had begun.
pub fn disconnected_event() -> Value {
    error_event(&AppError::new(
        ErrorCode::UpstreamError,
        "the upstream stream ended before the response was complete",
    ))
}

/// The `codex.rate_limits` event of an account's usage windows (the Codex CLI's status line),
/// from the rate-limit headers of an answer.
pub fn rate_limits_event(limits: &RateLimits) -> Value {
    let window = |used: Option<f64>, minutes: Option<i64>, resets: Option<DateTime<Utc>>| {
        used.map(|used| {
            json!({
                "used_percent": used,
                "window_minutes": minutes,
                "reset_at": resets.map(|at| at.timestamp()),
            })
        })
    };
    json!({
        "type": "codex.rate_limits",
        "rate_limits": {
            "primary": window(
                limits.primary_used_percent,
                limits.primary_window_minutes,
                limits.primary_resets_at,
            ),
            "secondary": window(
                limits.secondary_used_percent,
                limits.secondary_window_minutes,
                limits.secondary_resets_at,
            ),
        },
    })
}

/// The `response.metadata` event that hands the client the backend's turn-state token.
pub fn metadata_event(turn_state: &str) -> Value {
    json!({"type": "response.metadata", "headers": {"x-codex-turn-state": turn_state}})
}

/// The gateway's own answer to a prewarm (`generate: false`): `response.created` and
/// `response.completed` of an empty response with this id.
pub fn prewarm_events(id: &str, model: &str, created_at: i64) -> [Value; 2] {
    let response = |status: &str| {
        json!({
            "id": id,
            "object": "response",
            "created_at": created_at,
            "status": status,
            "model": model,
            "output": [],
            "usage": {
                "input_tokens": 0,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 0,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 0,
            },
        })
    };
    [
        json!({"type": "response.created", "response": response("in_progress")}),
        json!({"type": "response.completed", "response": response("completed")}),
    ]
}

/// What a connection keeps of its last completed turn.
#[derive(Debug, Clone, PartialEq)]
pub struct LastTurn {
    /// The response's id, which the next turn names as `previous_response_id`.
    pub id: String,
    /// The turn's full input.
    pub input: Vec<Value>,
    /// Its output items.
    pub output: Vec<Value>,
    /// The account that served it.
    pub account_id: Option<i32>,
    /// About how much memory this holds (the JSON sizes of the items).
    pub bytes: usize,
}

/// A connection's memory of its last turn, at most `max_bytes` of it.
#[derive(Debug, Clone)]
pub struct Turns {
    last: Option<LastTurn>,
    max_bytes: usize,
}

impl Turns {
    /// An empty memory that keeps at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            last: None,
            max_bytes,
        }
    }

    /// The last turn, when one is kept.
    pub fn last(&self) -> Option<&LastTurn> {
        self.last.as_ref()
    }

    /// The full input of a turn that continues `previous_id` with `input`: the last turn's
    /// input, its output, then `input`; with its size. `input` comes back unchanged when
    /// `previous_id` is not the last turn's response.
    pub fn rebuild(
        &self,
        previous_id: &str,
        input: Vec<Value>,
    ) -> Result<(Vec<Value>, usize), Vec<Value>> {
        let Some(last) = self.last.as_ref().filter(|last| last.id == previous_id) else {
            return Err(input);
        };
        let added = items_bytes(&input);
        Ok((
            join(&last.input, &last.output, input),
            last.bytes.saturating_add(added),
        ))
    }

    /// Keeps a completed turn, or forgets everything when it is larger than the limit (the
    /// next incremental turn is then refused and the client resends the full input).
    pub fn remember(&mut self, turn: LastTurn) {
        self.last = (turn.bytes <= self.max_bytes).then_some(turn);
    }
}

/// `input`, then `output`, then `added`.
pub fn join(input: &[Value], output: &[Value], added: Vec<Value>) -> Vec<Value> {
    let mut full = Vec::with_capacity(input.len() + output.len() + added.len());
    full.extend_from_slice(input);
    full.extend_from_slice(output);
    full.extend(added);
    full
}

/// About how many bytes items take (their JSON length).
pub fn items_bytes(items: &[Value]) -> usize {
    items
        .iter()
        .map(|item| serde_json::to_vec(item).map_or(0, |v| v.len()))
        .sum()
}

/// Collects a turn's output items from its events (`response.output_item.done`), in order, and
/// gives up (keeping nothing) beyond `max_bytes`.
#[derive(Debug, Clone)]
pub struct OutputItems {
    items: Vec<Value>,
    bytes: usize,
    max_bytes: usize,
    overflowed: bool,
}

impl OutputItems {
    /// A collector of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            items: Vec::new(),
            bytes: 0,
            max_bytes,
            overflowed: false,
        }
    }

    /// Takes one event into account; `size` is the length of its frame.
    pub fn on_event(&mut self, event: &Value, size: usize) {
        if self.overflowed
            || event.get("type").and_then(Value::as_str) != Some("response.output_item.done")
        {
            return;
        }
        let Some(item) = event.get("item") else {
            return;
        };
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.max_bytes {
            self.overflowed = true;
            self.items = Vec::new();
            return;
        }
        self.items.push(item.clone());
    }

    /// The items and their size; `None` when they were too large to keep.
    pub fn finish(self) -> Option<(Vec<Value>, usize)> {
        (!self.overflowed).then_some((self.items, self.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    #[test]
    fn a_create_frame_is_taken_apart() {
        let frame = r#"{"type":"response.create","model":"gpt-5","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],"previous_response_id":"resp_1","generate":false,"tools":[]}"#;
        let ClientFrame::Create(create) = parse_client_frame(frame).unwrap() else {
            panic!("a create expected")
        };
        assert_eq!(create.previous_response_id.as_deref(), Some("resp_1"));
        assert!(!create.generate);
        assert_eq!(create.input, vec![user("hi")]);
        assert_eq!(
            Value::Object(create.body),
            json!({"model": "gpt-5", "tools": []})
        );

        let ClientFrame::Create(plain) =
            parse_client_frame(r#"{"type":"response.create","model":"m","input":"hi"}"#).unwrap()
        else {
            panic!("a create expected")
        };
        assert!(plain.generate && plain.previous_response_id.is_none());
        assert_eq!(plain.input, vec![user("hi")]);
        assert_eq!(
            parse_client_frame(r#"{"type":"response.processed","response_id":"resp_1"}"#).unwrap(),
            ClientFrame::Processed
        );
    }

    #[test]
    fn malformed_frames_are_named_without_quoting_them() {
        for (frame, says) in [
            ("{\"type\": \"response.create\", secret", "syntax error"),
            ("[1, 2]", "one JSON object"),
            ("{\"model\": \"m\"}", "needs a \"type\""),
            ("{\"type\": 7}", "must be a string"),
            (
                "{\"type\": \"response.append\"}",
                "unsupported message type",
            ),
            (
                "{\"type\": \"response.create\", \"input\": 5}",
                "'input' must be",
            ),
            (
                "{\"type\": \"response.create\", \"generate\": \"no\"}",
                "'generate'",
            ),
            (
                "{\"type\": \"response.create\", \"previous_response_id\": 1}",
                "'previous_response_id'",
            ),
        ] {
            let e = parse_client_frame(frame).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidRequest, "{frame}");
            assert!(e.message().contains(says), "{frame}: {}", e.message());
            assert!(!e.message().contains("secret"));
        }
    }

    #[test]
    fn an_incremental_turn_is_rebuilt_from_the_last_one() {
        let mut turns = Turns::new(1 << 20);
        assert_eq!(
            turns.rebuild("resp_1", vec![user("x")]),
            Err(vec![user("x")])
        );
        let call =
            json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"});
        let input = vec![user("one")];
        let bytes = items_bytes(&input) + items_bytes(std::slice::from_ref(&call));
        turns.remember(LastTurn {
            id: "resp_1".into(),
            input,
            output: vec![call.clone()],
            account_id: Some(3),
            bytes,
        });
        let result = json!({"type": "function_call_output", "call_id": "c1", "output": "42"});
        let (full, size) = turns.rebuild("resp_1", vec![result.clone()]).unwrap();
        assert_eq!(full, vec![user("one"), call, result.clone()]);
        assert_eq!(size, bytes + items_bytes(&[result]));
        assert_eq!(turns.rebuild("resp_0", vec![]), Err(vec![]));
        assert_eq!(turns.last().unwrap().account_id, Some(3));
    }

    #[test]
    fn a_turn_larger_than_the_limit_is_forgotten() {
        let mut turns = Turns::new(100);
        let turn = |id: &str, bytes| LastTurn {
            id: id.into(),
            input: vec![],
            output: vec![],
            account_id: None,
            bytes,
        };
        turns.remember(turn("resp_1", 50));
        assert!(turns.last().is_some());
        turns.remember(turn("resp_2", 101));
        assert!(
            turns.last().is_none(),
            "neither the old nor the new is kept"
        );
        assert_eq!(turns.rebuild("resp_1", vec![]), Err(vec![]));
    }

    #[test]
    fn output_items_are_collected_in_order_within_a_bound() {
        let done = |id: &str| json!({"type": "response.output_item.done", "item": {"id": id}});
        let mut items = OutputItems::new(100);
        items.on_event(
            &json!({"type": "response.output_text.delta", "delta": "x"}),
            40,
        );
        items.on_event(&done("a"), 40);
        items.on_event(&done("b"), 40);
        assert_eq!(
            items.finish(),
            Some((vec![json!({"id": "a"}), json!({"id": "b"})], 80))
        );
        let mut items = OutputItems::new(100);
        for id in ["a", "b", "c"] {
            items.on_event(&done(id), 40);
        }
        assert_eq!(items.finish(), None);
    }

    #[test]
    fn frames_of_the_gateway_have_the_clis_shapes() {
        let e = AppError::new(ErrorCode::RateLimitExceeded, "slow down").with_retry_after(7);
        let frame = error_event(&e);
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["status"], 429);
        assert_eq!(frame["error"]["code"], "rate_limit_exceeded");
        assert_eq!(frame["error"]["type"], "rate_limit_error");
        assert_eq!(frame["error"]["message"], "slow down");
        assert_eq!(frame["headers"]["retry-after"], "7");

        let at = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let limits = RateLimits {
            primary_used_percent: Some(25.0),
            primary_window_minutes: Some(300),
            primary_resets_at: Some(at),
            ..RateLimits::default()
        };
        let event = rate_limits_event(&limits);
        assert_eq!(event["type"], "codex.rate_limits");
        assert_eq!(
            event["rate_limits"]["primary"],
            json!({"used_percent": 25.0, "window_minutes": 300, "reset_at": 1_900_000_000})
        );
        assert!(event["rate_limits"]["secondary"].is_null());

        assert_eq!(
            metadata_event("ts-1"),
            json!({"type": "response.metadata", "headers": {"x-codex-turn-state": "ts-1"}})
        );
        let [created, completed] = prewarm_events("resp_w", "gpt-5", 5);
        assert_eq!(created["type"], "response.created");
        assert_eq!(completed["type"], "response.completed");
        assert_eq!(completed["response"]["id"], "resp_w");
        assert_eq!(completed["response"]["status"], "completed");
    }
}
