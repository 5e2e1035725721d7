//! The answer's shape: `[mock:...]` markers in the last user message make a `Scenario`, which
//! writes the answer's events.

use std::time::Duration;

use serde_json::{json, Value};

use crate::economy::TokenUsage;
use crate::sse::{chunks, Sse, Step};
use crate::USAGE_REASONING_TOKENS;

/// Default spacing and count of deltas for `[mock:slow]`: about ten seconds of stream.
const SLOW_DELAY_MS: u64 = 50;
const SLOW_DELTAS: usize = 200;
/// How long `[mock:stall]` keeps a stream open without sending anything.
const STALL: Duration = Duration::from_hours(1);
/// How much of the user's text the answer echoes.
const ECHO_LIMIT: usize = 200;

/// How the answer ends.
#[derive(Clone, Debug, PartialEq)]
enum Ending {
    Completed,
    EmptyOutput,
    Incomplete(String),
    Cut,
    Failed(String),
    ErrorEvent,
}

/// The answer's shape, read from `[mock:...]` markers in the last user message.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    reasoning: bool,
    tool_calls: usize,
    ending: Ending,
    delta_delay: Duration,
    slow_deltas: Option<usize>,
    stall: bool,
    pub(crate) unsupported_model: bool,
    /// The last user text with the markers taken out.
    user_text: String,
    /// Set when the input ends with a tool result: the model then answers in text.
    tool_output: Option<String>,
    /// `[mock:exec:CMD]`: a call of the request's shell tool running CMD.
    exec: Option<String>,
    /// The input ends with `compaction_trigger`: the items before it, to compact.
    compaction: Option<usize>,
}

impl Scenario {
    pub(crate) fn from_request(body: &Value) -> Self {
        let input = body
            .get("input")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let raw = last_user_text(input);
        let mut scenario = Scenario {
            reasoning: false,
            tool_calls: 0,
            ending: Ending::Completed,
            delta_delay: Duration::ZERO,
            slow_deltas: None,
            stall: false,
            unsupported_model: false,
            user_text: String::new(),
            tool_output: None,
            exec: None,
            compaction: None,
        };
        let (markers, rest) = extract_markers(&raw);
        scenario.user_text = rest;
        for marker in markers {
            let mut parts = marker.split(':');
            let name = parts.next().unwrap_or("");
            let args: Vec<&str> = parts.collect();
            let arg = |i: usize| args.get(i).copied();
            match name {
                "reasoning" => scenario.reasoning = true,
                "tool_call" => scenario.tool_calls = 1,
                "tool_calls" | "two_tool_calls" => scenario.tool_calls = 2,
                "failed_overloaded" => {
                    scenario.ending = Ending::Failed("server_is_overloaded".into());
                }
                "failed_rate_limit" => {
                    scenario.ending = Ending::Failed("rate_limit_exceeded".into());
                }
                "failed" => {
                    scenario.ending = Ending::Failed(arg(0).unwrap_or("server_error").into());
                }
                "error_event" => scenario.ending = Ending::ErrorEvent,
                "cut" => scenario.ending = Ending::Cut,
                "empty_output" => scenario.ending = Ending::EmptyOutput,
                "incomplete" => {
                    scenario.ending =
                        Ending::Incomplete(arg(0).unwrap_or("max_output_tokens").into());
                }
                "slow" => {
                    let ms = arg(0).and_then(|a| a.parse().ok()).unwrap_or(SLOW_DELAY_MS);
                    let n = arg(1).and_then(|a| a.parse().ok()).unwrap_or(SLOW_DELTAS);
                    scenario.delta_delay = Duration::from_millis(ms);
                    scenario.slow_deltas = Some(n.max(1));
                }
                "stall" => scenario.stall = true,
                "unsupported_model" => scenario.unsupported_model = true,
                "exec" if !args.is_empty() => scenario.exec = Some(args.join(":")),
                _ => {}
            }
        }
        if let Some(Value::Object(last)) = input.last() {
            if last.get("type").and_then(Value::as_str) == Some("function_call_output") {
                let output = match last.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                scenario.tool_output = Some(output);
                scenario.tool_calls = 0;
                scenario.exec = None;
            }
            if last.get("type").and_then(Value::as_str) == Some("compaction_trigger") {
                scenario.compaction = Some(input.len() - 1);
            }
        }
        // A conversation compacted since the last user message already ran its tools: the
        // model answers in text, as it would with the tool results in the compacted history.
        if compacted_since_user(input) {
            scenario.exec = None;
            scenario.tool_calls = 0;
        }
        scenario
    }

    pub(crate) fn events(
        &self,
        account_id: &str,
        model: &str,
        body: &Value,
        tokens: Option<TokenUsage>,
    ) -> Vec<Step> {
        let reasoning_tokens = if self.reasoning {
            USAGE_REASONING_TOKENS
        } else {
            0
        };
        let mut sse = Sse::new(model, body, reasoning_tokens);
        sse.set_tokens(tokens);
        sse.started();
        if self.stall {
            sse.pause(STALL);
        }
        match &self.ending {
            Ending::Failed(code) => {
                sse.failed(code);
                return sse.steps;
            }
            Ending::ErrorEvent => {
                sse.event(
                    "error",
                    json!({"code": "server_error", "param": null,
                           "message": "An error occurred while processing your request."}),
                );
                return sse.steps;
            }
            _ => {}
        }
        if self.reasoning {
            sse.reasoning(&[
                "**Thinking it over**\n\n",
                "The user wants an answer ",
                "from the mock.",
            ]);
        }
        if let Some(items) = self.compaction {
            sse.compaction(items);
            sse.finish("response.completed", "completed", true, None);
            return sse.steps;
        }
        let mut output_text = true;
        if let Some(command) = &self.exec {
            output_text = false;
            let (name, arguments) = shell_call(body, command);
            sse.function_call(&name, &arguments.to_string());
        } else if self.tool_calls > 0 {
            output_text = false;
            let names = tool_names(body);
            for i in 0..self.tool_calls {
                let name = names
                    .get(i)
                    .or(names.first())
                    .cloned()
                    .unwrap_or_else(|| "get_weather".into());
                let args = json!({"city": "Paris", "account": account_id, "n": i}).to_string();
                sse.function_call(&name, &args);
            }
        }
        if output_text {
            let deltas = self.text_deltas(account_id, body);
            let cut = self.ending == Ending::Cut;
            // A cut stream stops halfway through the text, as a dropped upstream connection does.
            let sent = if cut {
                deltas.len().div_ceil(2)
            } else {
                deltas.len()
            };
            sse.message(&deltas[..sent], !cut, self.delta_delay);
        }
        match &self.ending {
            Ending::Completed => sse.finish("response.completed", "completed", true, None),
            Ending::EmptyOutput => sse.finish("response.completed", "completed", false, None),
            Ending::Incomplete(reason) => {
                sse.finish("response.incomplete", "incomplete", true, Some(reason));
            }
            Ending::Cut | Ending::Failed(_) | Ending::ErrorEvent => {}
        }
        sse.steps
    }

    fn text_deltas(&self, account_id: &str, body: &Value) -> Vec<String> {
        let structured = body
            .pointer("/text/format/type")
            .and_then(Value::as_str)
            .is_some_and(|t| t == "json_schema" || t == "json_object");
        if structured {
            let text = json!({"account": account_id, "answer": "ok"}).to_string();
            return chunks(&text, 8);
        }
        if let Some(n) = self.slow_deltas {
            let mut deltas = vec![format!("Hello from {account_id}!")];
            deltas.extend((1..n).map(|i| format!(" {i}")));
            return deltas;
        }
        let text = match &self.tool_output {
            Some(output) => format!(
                "Hello from {account_id}! Tool result: {}",
                truncate(output, ECHO_LIMIT)
            ),
            None if self.user_text.is_empty() => format!("Hello from {account_id}!"),
            None => format!(
                "Hello from {account_id}! You said: {}",
                truncate(&self.user_text, ECHO_LIMIT)
            ),
        };
        split_words(&text)
    }
}

/// Whether a compaction item follows the last user message.
fn compacted_since_user(input: &[Value]) -> bool {
    let kind = |item: &Value| item.get("type").and_then(Value::as_str).map(str::to_owned);
    input
        .iter()
        .rev()
        .take_while(|item| {
            !(item.get("role").and_then(Value::as_str) == Some("user")
                && kind(item).as_deref().unwrap_or("message") == "message")
        })
        .any(|item| {
            matches!(
                kind(item).as_deref(),
                Some("compaction" | "compaction_summary")
            )
        })
}

/// The text of the last user message (string content or its `input_text` parts).
fn last_user_text(input: &[Value]) -> String {
    let Some(message) = input.iter().rev().find(|item| {
        item.get("role").and_then(Value::as_str) == Some("user")
            && item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("message")
                == "message"
    }) else {
        return String::new();
    };
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("input_text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Splits `[mock:a:b]` markers from the rest of the text.
fn extract_markers(text: &str) -> (Vec<String>, String) {
    let mut markers = Vec::new();
    let mut rest = String::new();
    let mut remaining = text;
    while let Some(start) = remaining.find("[mock:") {
        rest.push_str(&remaining[..start]);
        let after = &remaining[start + "[mock:".len()..];
        if let Some(end) = after.find(']') {
            markers.push(after[..end].trim().to_owned());
            remaining = &after[end + 1..];
        } else {
            rest.push_str(&remaining[start..]);
            remaining = "";
        }
    }
    rest.push_str(remaining);
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    (markers, rest)
}

/// The call of the request's shell tool that runs `command`, with the arguments that tool
/// takes (the Codex CLI sends one of these, by version and model).
fn shell_call(body: &Value, command: &str) -> (String, Value) {
    let names = tool_names(body);
    let has = |name: &str| names.iter().any(|n| n == name);
    if has("exec_command") {
        ("exec_command".into(), json!({"cmd": command}))
    } else if has("shell_command") {
        ("shell_command".into(), json!({"command": command}))
    } else {
        ("shell".into(), json!({"command": ["bash", "-lc", command]}))
    }
}

fn tool_names(body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Word-sized deltas, each word with the space before it, so their concatenation is the text.
fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            out.push(word.to_owned());
        } else {
            out.push(format!(" {word}"));
        }
    }
    out
}

fn truncate(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}
