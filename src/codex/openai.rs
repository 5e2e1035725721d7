//! OpenAI Chat Completions wire types: the request a client sends and the answers it gets back.
//!
//! Requests are read through [`ChatRequest::from_value`] rather than a derived `Deserialize` so
//! that a malformed body is reported with the OpenAI `param` that is wrong (`model`,
//! `messages[3]`, ...). Only the fields the gateway uses are kept: sampling and limit parameters
//! (`temperature`, `max_tokens`, `n`, `user`, ...) are accepted and dropped, because the Codex
//! backend rejects them.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::TranslateError;
use super::wire::Usage;

/// A parsed `POST /v1/chat/completions` body (only the fields that reach the upstream).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// Model id as the client wrote it, possibly with an effort suffix (`gpt-5-high`).
    pub model: String,
    /// The conversation, in order.
    pub messages: Vec<ChatMessage>,
    /// Function tools offered to the model.
    pub tools: Vec<ChatTool>,
    /// `"none" | "auto" | "required"` or a named function.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// Structured-output request.
    pub response_format: Option<ResponseFormat>,
    /// `none | minimal | low | medium | high | xhigh`.
    pub reasoning_effort: Option<String>,
    /// Whether the client wants `text/event-stream`.
    pub stream: bool,
    /// Streaming options (`include_usage`).
    pub stream_options: Option<StreamOptions>,
    /// Client-chosen prompt cache key, forwarded upstream.
    pub prompt_cache_key: Option<String>,
}

impl ChatRequest {
    /// Reads a parsed request body, naming the offending `param` when it is malformed.
    pub fn from_value(value: Value) -> Result<Self, TranslateError> {
        let Value::Object(mut obj) = value else {
            return Err(TranslateError::body(
                "the request body must be a JSON object",
            ));
        };
        let model: String = field(&mut obj, "model")?
            .filter(|m: &String| !m.trim().is_empty())
            .ok_or_else(|| TranslateError::new("you must provide a model parameter", "model"))?;
        let raw_messages: Vec<Value> = field(&mut obj, "messages")?
            .ok_or_else(|| TranslateError::new("'messages' is a required property", "messages"))?;
        if raw_messages.is_empty() {
            return Err(TranslateError::new(
                "'messages' must contain at least one message",
                "messages",
            ));
        }
        let messages = raw_messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                serde_json::from_value(m).map_err(|e| {
                    TranslateError::new(format!("invalid message: {e}"), &format!("messages[{i}]"))
                })
            })
            .collect::<Result<Vec<ChatMessage>, _>>()?;
        let tools = field::<Vec<Value>>(&mut obj, "tools")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                serde_json::from_value(t).map_err(|e| {
                    TranslateError::new(format!("invalid tool: {e}"), &format!("tools[{i}]"))
                })
            })
            .collect::<Result<Vec<ChatTool>, _>>()?;
        Ok(Self {
            model,
            messages,
            tools,
            tool_choice: field(&mut obj, "tool_choice")?,
            parallel_tool_calls: field(&mut obj, "parallel_tool_calls")?,
            response_format: field(&mut obj, "response_format")?,
            reasoning_effort: field::<String>(&mut obj, "reasoning_effort")?
                .filter(|e| !e.trim().is_empty()),
            stream: field(&mut obj, "stream")?.unwrap_or(false),
            stream_options: field(&mut obj, "stream_options")?,
            prompt_cache_key: field(&mut obj, "prompt_cache_key")?,
        })
    }

    /// Whether a streaming client asked for the final usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream
            && self
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false)
    }
}

/// Takes `key` out of the body; absent and `null` both mean "not given".
fn field<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<T>, TranslateError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|e| TranslateError::new(format!("invalid '{key}': {e}"), key)),
    }
}

/// One conversation message, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    /// System prompt.
    System {
        /// Text (parts must be text).
        content: MessageContent,
    },
    /// Developer prompt (the newer name of `system`).
    Developer {
        /// Text (parts must be text).
        content: MessageContent,
    },
    /// A user turn.
    User {
        /// Text, images and files.
        content: MessageContent,
    },
    /// An earlier model turn.
    Assistant {
        /// The answer text; `null` for a tool-call-only turn.
        #[serde(default)]
        content: Option<MessageContent>,
        /// Function calls the model made.
        #[serde(default)]
        tool_calls: Option<Vec<ToolCall>>,
    },
    /// A function result.
    Tool {
        /// The result (parts must be text).
        content: MessageContent,
        /// The `id` of the call this answers.
        tool_call_id: String,
    },
}

/// Message content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// A plain string.
    Text(String),
    /// A list of parts.
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for MessageContent {
    // Hand-written so the error says what is allowed instead of serde's generic
    // "did not match any variant of untagged enum".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self::Text(s)),
            parts @ Value::Array(_) => serde_json::from_value(parts)
                .map(Self::Parts)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "content must be a string or an array of content parts",
            )),
        }
    }
}

/// One typed content part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text (also accepted under the Responses name `input_text`).
    #[serde(alias = "input_text", alias = "output_text")]
    Text {
        /// The text.
        text: String,
    },
    /// An image by URL or `data:` URI.
    ImageUrl {
        /// `{"url": ...}` or a bare string.
        image_url: ImageUrl,
    },
    /// A file (inline base64 `file_data` or an uploaded `file_id`).
    File {
        /// The file reference.
        file: FilePart,
    },
    /// Audio input: parsed so it can be rejected with a clear message.
    InputAudio {
        /// Ignored payload.
        #[serde(default)]
        input_audio: Value,
    },
    /// An assistant refusal part.
    Refusal {
        /// The refusal text.
        refusal: String,
    },
}

/// An image reference: OpenAI's object form or the bare string some clients send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    /// `{"url": "...", "detail": "..."}`.
    Object {
        /// `https://...` or `data:image/...;base64,...`.
        url: String,
        /// `auto | low | high` (not forwarded).
        #[serde(default)]
        detail: Option<String>,
    },
    /// `"https://..."`.
    Url(String),
}

impl ImageUrl {
    /// The URL or data URI.
    pub fn url(&self) -> &str {
        match self {
            Self::Object { url, .. } | Self::Url(url) => url,
        }
    }
}

/// A file content part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilePart {
    /// `data:<mime>;base64,...`.
    #[serde(default)]
    pub file_data: Option<String>,
    /// An uploaded file id.
    #[serde(default)]
    pub file_id: Option<String>,
    /// Original file name.
    #[serde(default)]
    pub filename: Option<String>,
}

/// A function call made by the assistant (request history and non-streaming answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, echoed by the matching `tool` message.
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Name and arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_owned()
}

/// Function name and JSON-encoded arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string (an object is accepted and re-encoded).
    #[serde(default, deserialize_with = "string_or_json")]
    pub arguments: String,
}

/// Accepts a JSON string as is and encodes any other value, since some clients send objects.
fn string_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// A tool definition as the client sends it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChatTool {
    /// Only `"function"` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function, for `type: "function"`.
    #[serde(default)]
    pub function: Option<FunctionDef>,
}

/// A function tool's declaration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionDef {
    /// Function name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode string or a named function.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `"none" | "auto" | "required"`.
    Mode(String),
    /// `{"type":"function","function":{"name":N}}`.
    Function {
        /// The named function.
        function: NamedFunction,
    },
    /// `{"type":"function","name":N}` (the Responses form, accepted for convenience).
    Flat {
        /// The function name.
        name: String,
    },
}

/// The function named by a `tool_choice` object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NamedFunction {
    /// Function name.
    pub name: String,
}

/// `response_format`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Plain text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// The `json_schema` member of `response_format`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JsonSchemaFormat {
    /// Schema name (OpenAI requires it; `"response"` is used when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// What the output is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The JSON Schema.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Strict schema adherence.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `stream_options`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and empty `choices`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end of the answer.
    Stop,
    /// The output token limit was reached.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// The answer was cut by a content filter.
    ContentFilter,
}

/// A non-streaming answer (`object: "chat.completion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: String,
    /// Always `"chat.completion"`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// The model name shown to the client.
    pub model: String,
    /// Exactly one choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Always 0.
    pub index: u32,
    /// The assistant's message.
    pub message: AssistantMessage,
    /// Why the model stopped.
    pub finish_reason: Option<FinishReason>,
}

/// The assistant message of a non-streaming answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `"assistant"`.
    pub role: String,
    /// The text; `null` when the turn only calls tools.
    pub content: Option<String>,
    /// Reasoning summaries (the de facto field of OpenAI-compatible servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Function calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// A streamed piece of an answer (`object: "chat.completion.chunk"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Same for every chunk of one answer.
    pub id: String,
    /// Always `"chat.completion.chunk"`.
    pub object: String,
    /// Same for every chunk of one answer.
    pub created: i64,
    /// The model name shown to the client.
    pub model: String,
    /// One choice, or none in the final usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Only in the final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
}

/// The choice of a [`ChatCompletionChunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Set on the last chunk only (serialised as `null` before).
    pub finish_reason: Option<FinishReason>,
}

/// The incremental part of a chunk; absent fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `"assistant"` on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning summary text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool-call pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of one tool call in a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Position of the call in this answer, from 0.
    pub index: u32,
    /// Call id (first piece only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"function"` (first piece only).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name (first piece) and argument text.
    pub function: FunctionCallDelta,
}

/// Function part of a [`ToolCallDelta`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// Function name (first piece only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More argument text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// OpenAI usage counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUsage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens (reasoning included).
    pub completion_tokens: u64,
    /// Input plus output.
    pub total_tokens: u64,
    /// Cached input.
    pub prompt_tokens_details: PromptTokensDetails,
    /// Reasoning share of the output.
    pub completion_tokens_details: CompletionTokensDetails,
}

impl From<Usage> for ChatUsage {
    fn from(u: Usage) -> Self {
        ChatUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_tokens,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Input tokens served from the prompt cache.
    pub cached_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ChatRequest, TranslateError> {
        ChatRequest::from_value(v)
    }

    #[test]
    fn parses_every_role_and_part() {
        let req = parse(json!({
            "model": "gpt-5",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA", "filename": "a.pdf"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"}
            ],
            "temperature": 0.2, "max_tokens": 10, "n": 1, "user": "u", "frequency_penalty": 0,
            "stream": true, "stream_options": {"include_usage": true},
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {}}},
            "reasoning_effort": "high"
        }))
        .expect("valid request");
        assert_eq!(req.messages.len(), 5);
        assert!(req.include_usage());
        assert_eq!(req.reasoning_effort.as_deref(), Some("high"));
        let ChatMessage::User {
            content: MessageContent::Parts(parts),
        } = &req.messages[2]
        else {
            panic!("user parts expected");
        };
        let ContentPart::ImageUrl { image_url } = &parts[2] else {
            panic!("image expected")
        };
        assert_eq!(image_url.url(), "data:image/png;base64,AAAA");
        let ChatMessage::Assistant {
            tool_calls: Some(calls),
            ..
        } = &req.messages[3]
        else {
            panic!("assistant expected");
        };
        // An object `arguments` is re-encoded as the JSON string the upstream wants.
        assert_eq!(calls[0].function.arguments, r#"{"a":1}"#);
        assert!(matches!(
            req.tool_choice,
            Some(ToolChoice::Function { ref function }) if function.name == "f"
        ));
    }

    #[test]
    fn include_usage_needs_stream() {
        let req = parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": true}}),
        )
        .expect("valid");
        assert!(!req.include_usage());
    }

    #[test]
    fn malformed_requests_name_the_param() {
        let err = |v: Value| parse(v).expect_err("should be rejected");
        let hi = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(err(json!({"messages": hi})).param.as_deref(), Some("model"));
        assert_eq!(
            err(json!({"model": "", "messages": hi})).param.as_deref(),
            Some("model")
        );
        assert_eq!(
            err(json!({"model": 5, "messages": hi})).param.as_deref(),
            Some("model")
        );
        assert_eq!(
            err(json!({"model": "m"})).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": []})).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": "hi"}))
                .param
                .as_deref(),
            Some("messages")
        );
        let e = err(json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}]}));
        assert_eq!(e.param.as_deref(), Some("messages[1]"));
        assert!(e.message.contains("wizard"), "{}", e.message);
        let e = err(json!({"model": "m", "messages": [{"role": "user", "content": 7}]}));
        assert!(e.message.contains("string or an array"), "{}", e.message);
        let e = err(json!({"model": "m", "messages": [{"content": "x"}]}));
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
        let e = err(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}));
        assert!(e.message.contains("tool_call_id"), "{}", e.message);
        let e = err(json!({"model": "m", "messages": hi, "stream": "yes"}));
        assert_eq!(e.param.as_deref(), Some("stream"));
        let e = err(json!({"model": "m", "messages": hi, "tools": [{"function": {}}]}));
        assert_eq!(e.param.as_deref(), Some("tools[0]"));
        assert!(ChatRequest::from_value(serde_json::json!([])).is_err());
    }

    #[test]
    fn chunk_serialisation_omits_absent_fields() {
        let chunk = ChatCompletionChunk {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: "m".into(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    content: Some("hi".into()),
                    ..Delta::default()
                },
                finish_reason: None,
            }],
            usage: None,
        };
        assert_eq!(
            serde_json::to_value(&chunk).expect("serialises"),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                   "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"},
                   "finish_reason": null}]})
        );
        assert_eq!(
            serde_json::to_value(FinishReason::ToolCalls).expect("serialises"),
            json!("tool_calls")
        );
    }
}
