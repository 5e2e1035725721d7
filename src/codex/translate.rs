//! Request translation: Chat Completions -> Codex Responses body, and the normalisation of
//! `/v1/responses` bodies that are passed through (CODEX.md §3 and §4).
//!
//! Everything the backend would reject is caught here and reported as a [`TranslateError`]
//! naming the OpenAI `param`, so the client gets a precise 400 instead of an opaque upstream one.
//! Decisions where the upstream description is silent:
//! - System and developer messages become `developer` input items in place; `instructions` stays
//!   `""`, which keeps their position in the conversation.
//! - An effort in the model name (`gpt-5-high`, `gpt-5(high)`) wins over `reasoning_effort`: it
//!   is a deliberate choice of whoever configured the client, while body defaults are often
//!   injected by SDKs. Without either, effort is `medium`. Unknown effort words pass through and
//!   the backend judges them.
//! - Tool pairing is strict: an assistant tool call with no later `tool` message, a `tool` message
//!   whose id no earlier call made, a second output for one call and a repeated call id are all
//!   errors (the backend answers 400 for unpaired items anyway).
//! - `tool` content given as parts is concatenated without separator (the parts are pieces of
//!   one text).
//! - Function tools always carry `strict` and `parameters`: Chat defaults `strict` to false while
//!   the Responses API defaults it to true, and Responses requires a parameters schema.
//! - `tool_choice` and `parallel_tool_calls` are dropped when there are no tools.

use serde_json::{json, Map, Value};

pub use super::error::TranslateError;
use super::openai::{
    ChatMessage, ChatRequest, ChatTool, ContentPart, MessageContent, ResponseFormat, ToolChoice,
};
use super::wire::{
    CodexRequest, CodexTool, CodexToolChoice, ContentItem, InputItem, Reasoning, TextConfig,
    TextFormat,
};

/// Effort words accepted as a model-name suffix.
pub const EFFORTS: [&str; 6] = ["none", "minimal", "low", "medium", "high", "xhigh"];

/// Effort used when the client names none.
pub const DEFAULT_EFFORT: &str = "medium";

/// The `include` every request carries: nothing is stored upstream, so reasoning travels
/// encrypted with the conversation.
const INCLUDE_ENCRYPTED_REASONING: &str = "reasoning.encrypted_content";

/// Fields the backend rejects with `Unsupported parameter`.
const NEVER_FORWARD: [&str; 12] = [
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "user",
    "truncation",
    "previous_response_id",
    "stream_options",
];

/// Splits `gpt-5-high` or `gpt-5(high)` into the base model and the effort; other names are
/// returned whole with no effort.
pub fn split_model_effort(model: &str) -> (&str, Option<&'static str>) {
    let model = model.trim();
    for effort in EFFORTS {
        if let Some(base) = model
            .strip_suffix(')')
            .and_then(|m| m.strip_suffix(effort))
            .and_then(|m| m.strip_suffix('('))
        {
            return (base.trim_end(), Some(effort));
        }
        if let Some(base) = model.strip_suffix(effort).and_then(|m| m.strip_suffix('-')) {
            // `-none` alone is not a model.
            if !base.is_empty() {
                return (base, Some(effort));
            }
        }
    }
    (model, None)
}

/// The reasoning settings for an effort: summaries unless reasoning is off.
fn reasoning_for(effort: &str) -> Reasoning {
    Reasoning {
        effort: effort.to_owned(),
        summary: (effort != "none").then(|| "auto".to_owned()),
    }
}

/// Translates a Chat Completions request into the Codex body (CODEX.md §3).
pub fn chat_to_codex(req: &ChatRequest) -> Result<CodexRequest, TranslateError> {
    let (model, suffix_effort) = split_model_effort(&req.model);
    if model.is_empty() {
        return Err(TranslateError::new("the model name is empty", "model"));
    }
    let effort = match (suffix_effort, &req.reasoning_effort) {
        (Some(effort), _) => effort.to_owned(),
        (None, Some(effort)) => effort.trim().to_ascii_lowercase(),
        (None, None) => DEFAULT_EFFORT.to_owned(),
    };

    let tools = req
        .tools
        .iter()
        .enumerate()
        .map(|(i, tool)| flatten_tool(i, tool))
        .collect::<Result<Vec<_>, _>>()?;
    let has_tools = !tools.is_empty();

    Ok(CodexRequest {
        model: model.to_owned(),
        instructions: String::new(),
        input: messages_to_input(&req.messages)?,
        tool_choice: req
            .tool_choice
            .as_ref()
            .filter(|_| has_tools)
            .map(|choice| match choice {
                ToolChoice::Mode(mode) => CodexToolChoice::Mode(mode.clone()),
                ToolChoice::Function { function: named } => CodexToolChoice::Function {
                    kind: "function".to_owned(),
                    name: named.name.clone(),
                },
                ToolChoice::Flat { name } => CodexToolChoice::Function {
                    kind: "function".to_owned(),
                    name: name.clone(),
                },
            }),
        parallel_tool_calls: has_tools.then(|| req.parallel_tool_calls.unwrap_or(true)),
        tools,
        reasoning: reasoning_for(&effort),
        include: vec![INCLUDE_ENCRYPTED_REASONING.to_owned()],
        store: false,
        stream: true,
        text: req.response_format.as_ref().and_then(text_config),
        prompt_cache_key: req.prompt_cache_key.clone(),
    })
}

/// `response_format` -> `text.format`; plain text needs no format.
fn text_config(format: &ResponseFormat) -> Option<TextConfig> {
    let format = match format {
        ResponseFormat::Text => return None,
        ResponseFormat::JsonObject => TextFormat::JsonObject,
        ResponseFormat::JsonSchema { json_schema } => TextFormat::JsonSchema {
            name: json_schema
                .name
                .clone()
                .unwrap_or_else(|| "response".to_owned()),
            description: json_schema.description.clone(),
            schema: json_schema
                .schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object"})),
            strict: json_schema.strict.unwrap_or(false),
        },
    };
    Some(TextConfig { format })
}

/// `{"type":"function","function":{...}}` -> `{"type":"function","name",...}`.
fn flatten_tool(i: usize, tool: &ChatTool) -> Result<CodexTool, TranslateError> {
    let param = format!("tools[{i}]");
    if tool.kind != "function" {
        return Err(TranslateError::new(
            format!(
                "tool type '{}' is not supported; only 'function' tools are",
                tool.kind
            ),
            &param,
        ));
    }
    let Some(function) = &tool.function else {
        return Err(TranslateError::new(
            "a function tool needs a 'function' object",
            &param,
        ));
    };
    if function.name.trim().is_empty() {
        return Err(TranslateError::new("the function name is empty", &param));
    }
    Ok(CodexTool {
        kind: "function".to_owned(),
        name: function.name.clone(),
        description: function.description.clone(),
        parameters: function
            .parameters
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        strict: function.strict.unwrap_or(false),
    })
}

/// Converts the messages and checks that every tool call and output are paired.
fn messages_to_input(messages: &[ChatMessage]) -> Result<Vec<InputItem>, TranslateError> {
    let mut items = Vec::with_capacity(messages.len());
    // Calls still waiting for their output: (call id, index of the assistant message).
    let mut open_calls: Vec<(&str, usize)> = Vec::new();
    let mut answered: Vec<&str> = Vec::new();

    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        match message {
            ChatMessage::System { content } | ChatMessage::Developer { content } => {
                let parts = text_parts(content, &param)?
                    .into_iter()
                    .map(|text| ContentItem::InputText { text })
                    .collect();
                items.push(message_item("developer", parts));
            }
            ChatMessage::User { content } => {
                items.push(message_item("user", user_parts(content, &param)?));
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let texts = match content {
                    Some(content) => assistant_texts(content, &param)?,
                    None => Vec::new(),
                };
                let calls = tool_calls.as_deref().unwrap_or_default();
                // A tool-call-only turn gets no empty message item, and an empty turn adds
                // nothing the model could use.
                if texts.iter().any(|t| !t.is_empty()) {
                    let parts = texts
                        .into_iter()
                        .map(|text| ContentItem::OutputText { text })
                        .collect();
                    items.push(message_item("assistant", parts));
                }
                for call in calls {
                    let id = call.id.as_str();
                    if id.is_empty() {
                        return Err(TranslateError::new("a tool call has an empty id", &param));
                    }
                    if call.function.name.is_empty() {
                        return Err(TranslateError::new(
                            format!("tool call '{id}' has an empty function name"),
                            &param,
                        ));
                    }
                    if open_calls.iter().any(|(open, _)| *open == id) || answered.contains(&id) {
                        return Err(TranslateError::new(
                            format!("tool call id '{id}' is used more than once"),
                            &param,
                        ));
                    }
                    open_calls.push((id, i));
                    items.push(InputItem::FunctionCall {
                        call_id: id.to_owned(),
                        name: call.function.name.clone(),
                        arguments: call.function.arguments.clone(),
                    });
                }
            }
            ChatMessage::Tool {
                content,
                tool_call_id,
            } => {
                let id = tool_call_id.as_str();
                match open_calls.iter().position(|(open, _)| *open == id) {
                    Some(pos) => {
                        open_calls.remove(pos);
                        answered.push(id);
                    }
                    None if answered.contains(&id) => {
                        return Err(TranslateError::new(
                            format!("tool call '{id}' already has a tool message"),
                            &param,
                        ))
                    }
                    None => {
                        return Err(TranslateError::new(
                            format!(
                                "no earlier assistant tool call has the id '{id}' named by \
                                 this tool message's tool_call_id"
                            ),
                            &param,
                        ))
                    }
                }
                items.push(InputItem::FunctionCallOutput {
                    call_id: id.to_owned(),
                    output: text_parts(content, &param)?.concat(),
                });
            }
        }
    }

    if let Some((id, i)) = open_calls.first() {
        return Err(TranslateError::new(
            format!("the assistant tool call '{id}' has no tool message with its result"),
            &format!("messages[{i}]"),
        ));
    }
    Ok(items)
}

fn message_item(role: &str, content: Vec<ContentItem>) -> InputItem {
    InputItem::Message {
        role: role.to_owned(),
        content,
    }
}

/// Texts of a system, developer or tool message; other part types are refused.
fn text_parts(content: &MessageContent, param: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        MessageContent::Text(text) => Ok(vec![text.clone()]),
        MessageContent::Parts(parts) => {
            if parts.is_empty() {
                return Err(TranslateError::new("content must not be empty", param));
            }
            parts
                .iter()
                .map(|part| match part {
                    ContentPart::Text { text } => Ok(text.clone()),
                    _ => Err(TranslateError::new(
                        "only text parts are allowed in this message",
                        param,
                    )),
                })
                .collect()
        }
    }
}

/// Texts of an assistant message (text and refusal parts).
fn assistant_texts(content: &MessageContent, param: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        MessageContent::Text(text) => Ok(vec![text.clone()]),
        MessageContent::Parts(parts) => parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text } => Ok(text.clone()),
                ContentPart::Refusal { refusal } => Ok(refusal.clone()),
                _ => Err(TranslateError::new(
                    "assistant messages may only hold text or refusal parts",
                    param,
                )),
            })
            .collect(),
    }
}

/// Parts of a user message: text, images and files.
fn user_parts(content: &MessageContent, param: &str) -> Result<Vec<ContentItem>, TranslateError> {
    let parts = match content {
        MessageContent::Text(text) => {
            return Ok(vec![ContentItem::InputText { text: text.clone() }])
        }
        MessageContent::Parts(parts) => parts,
    };
    if parts.is_empty() {
        return Err(TranslateError::new("content must not be empty", param));
    }
    parts
        .iter()
        .map(|part| match part {
            ContentPart::Text { text } => Ok(ContentItem::InputText { text: text.clone() }),
            ContentPart::ImageUrl { image_url } if !image_url.url().is_empty() => {
                Ok(ContentItem::InputImage {
                    image_url: image_url.url().to_owned(),
                })
            }
            ContentPart::ImageUrl { .. } => {
                Err(TranslateError::new("an image_url part has no url", param))
            }
            ContentPart::File { file } if file.file_data.is_some() || file.file_id.is_some() => {
                Ok(ContentItem::InputFile {
                    file_data: file.file_data.clone(),
                    file_id: file.file_id.clone(),
                    filename: file.filename.clone(),
                })
            }
            ContentPart::File { .. } => Err(TranslateError::new(
                "a file part needs file_data or file_id",
                param,
            )),
            ContentPart::InputAudio { .. } => Err(TranslateError::new(
                "audio input is not supported by this model",
                param,
            )),
            ContentPart::Refusal { .. } => Err(TranslateError::new(
                "refusal parts are only allowed in assistant messages",
                param,
            )),
        })
        .collect()
}

/// A `/v1/responses` body ready for the upstream, and what the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesRequest {
    /// The normalised body to send upstream.
    pub body: Value,
    /// Whether the client wants the events streamed (the upstream always streams).
    pub stream: bool,
    /// The base model sent upstream.
    pub model: String,
}

/// Normalises a `/v1/responses` body for the backend (CODEX.md §4): string `input` becomes one
/// user message, `system` messages become `developer`, `stream`/`store`/`instructions` are
/// forced, never-forward fields are dropped, and a model-name effort is applied.
pub fn normalize_responses_request(body: Value) -> Result<ResponsesRequest, TranslateError> {
    let Value::Object(mut obj) = body else {
        return Err(TranslateError::body(
            "the request body must be a JSON object",
        ));
    };

    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(Value::String(_) | Value::Null) | None => {
            return Err(TranslateError::new(
                "you must provide a model parameter",
                "model",
            ))
        }
        Some(_) => return Err(TranslateError::new("'model' must be a string", "model")),
    };
    let (base, suffix_effort) = split_model_effort(&model);
    let base = base.to_owned();
    obj.insert("model".into(), Value::String(base.clone()));

    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(TranslateError::new("'stream' must be a boolean", "stream")),
    };

    for key in NEVER_FORWARD {
        obj.remove(key);
    }
    obj.insert("stream".into(), Value::Bool(true));
    obj.insert("store".into(), Value::Bool(false));
    match obj.get("instructions") {
        None | Some(Value::Null) => {
            obj.insert("instructions".into(), Value::String(String::new()));
        }
        Some(Value::String(_)) => {}
        Some(_) => {
            return Err(TranslateError::new(
                "'instructions' must be a string",
                "instructions",
            ))
        }
    }

    let input = match obj.remove("input") {
        Some(Value::String(text)) => vec![json!({
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]
        })],
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| normalize_input_item(i, item))
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => {
            return Err(TranslateError::new(
                "'input' is a required property",
                "input",
            ))
        }
        Some(_) => {
            return Err(TranslateError::new(
                "'input' must be a string or an array of items",
                "input",
            ))
        }
    };
    obj.insert("input".into(), Value::Array(input));

    normalize_reasoning(&mut obj, suffix_effort)?;

    let mut include = match obj.remove("include") {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(TranslateError::new("'include' must be an array", "include")),
    };
    if !include.iter().any(|v| v == INCLUDE_ENCRYPTED_REASONING) {
        include.push(Value::from(INCLUDE_ENCRYPTED_REASONING));
    }
    obj.insert("include".into(), Value::Array(include));

    // Lite models carry their tools in an `additional_tools` input item instead.
    let has_tools = matches!(obj.get("tools"), Some(Value::Array(tools)) if !tools.is_empty())
        || matches!(obj.get("input"), Some(Value::Array(items)) if items.iter().any(|item| {
            item.get("type").and_then(Value::as_str) == Some("additional_tools")
        }));
    if !has_tools {
        obj.remove("tools");
        obj.remove("tool_choice");
        obj.remove("parallel_tool_calls");
    }

    Ok(ResponsesRequest {
        body: Value::Object(obj),
        stream,
        model: base,
    })
}

/// Forwards the client's `reasoning` as given: an effort in the model name overrides its
/// `effort`, and nothing is added. Summaries come only when the client asks for them, so it
/// receives no events it did not request (the Chat Completions translation differs: it asks for
/// summaries, because `reasoning_content` is built from them).
fn normalize_reasoning(
    obj: &mut Map<String, Value>,
    suffix_effort: Option<&str>,
) -> Result<(), TranslateError> {
    let reasoning = match obj.remove("reasoning") {
        Some(Value::Object(r)) => Some(r),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(TranslateError::new(
                "'reasoning' must be an object",
                "reasoning",
            ))
        }
    };
    let reasoning = match (reasoning, suffix_effort) {
        (Some(mut reasoning), Some(effort)) => {
            reasoning.insert("effort".into(), Value::from(effort));
            Some(reasoning)
        }
        (None, Some(effort)) => {
            let mut reasoning = Map::new();
            reasoning.insert("effort".into(), Value::from(effort));
            Some(reasoning)
        }
        (reasoning, None) => reasoning,
    };
    if let Some(reasoning) = reasoning {
        obj.insert("reasoning".into(), Value::Object(reasoning));
    }
    Ok(())
}

/// Gives a message item its `type`, renames `system` to `developer` and turns string content
/// into one text part (input or output text by role); other items pass unchanged.
fn normalize_input_item(i: usize, item: Value) -> Result<Value, TranslateError> {
    let Value::Object(mut item) = item else {
        return Err(TranslateError::new(
            "an input item must be an object",
            &format!("input[{i}]"),
        ));
    };
    let is_message = match item.get("type") {
        Some(Value::String(t)) => t == "message",
        None => item.contains_key("role"),
        _ => false,
    };
    if !is_message {
        return Ok(Value::Object(item));
    }
    item.insert("type".into(), Value::from("message"));
    if item.get("role").and_then(Value::as_str) == Some("system") {
        item.insert("role".into(), Value::from("developer"));
    }
    if let Some(Value::String(text)) = item.get("content") {
        let part_type = if item.get("role").and_then(Value::as_str) == Some("assistant") {
            "output_text"
        } else {
            "input_text"
        };
        let part = json!([{"type": part_type, "text": text}]);
        item.insert("content".into(), part);
    }
    Ok(Value::Object(item))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(v: Value) -> Result<Value, TranslateError> {
        let req = ChatRequest::from_value(v)?;
        let codex = chat_to_codex(&req)?;
        Ok(serde_json::to_value(codex).expect("serialises"))
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn minimal_request_has_every_required_field() {
        let body = chat(json!({"model": "gpt-5", "messages": [user("hi")],
            "temperature": 1, "top_p": 1, "max_tokens": 5, "max_completion_tokens": 5, "n": 1,
            "presence_penalty": 0, "frequency_penalty": 0, "user": "x", "stream": false,
            "stream_options": {"include_usage": true}}))
        .expect("translates");
        assert_eq!(
            body,
            json!({
                "model": "gpt-5",
                "instructions": "",
                "input": [{"type": "message", "role": "user",
                           "content": [{"type": "input_text", "text": "hi"}]}],
                "reasoning": {"effort": "medium", "summary": "auto"},
                "include": ["reasoning.encrypted_content"],
                "store": false,
                "stream": true
            })
        );
    }

    #[test]
    fn every_role_maps_to_its_item() {
        let body = chat(json!({"model": "gpt-5", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "developer", "content": [{"type": "text", "text": "d1"}, {"type": "text", "text": "d2"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "https://img/x.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,BB", "filename": "f.pdf"}},
                {"type": "file", "file": {"file_id": "file-1"}}
            ]},
            {"role": "assistant", "content": "answer"},
            {"role": "assistant", "content": "calling", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c2", "content": "r2"},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "r"}, {"type": "text", "text": "1"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "a", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c3", "content": "r3"}
        ]}))
        .expect("translates");
        assert_eq!(
            body["input"],
            json!([
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sys"}]},
                {"type": "message", "role": "developer", "content": [
                    {"type": "input_text", "text": "d1"}, {"type": "input_text", "text": "d2"}]},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": "https://img/x.png"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAA"},
                    {"type": "input_file", "file_data": "data:application/pdf;base64,BB", "filename": "f.pdf"},
                    {"type": "input_file", "file_id": "file-1"}
                ]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "answer"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
                {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{\"x\":1}"},
                {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c2", "output": "r2"},
                {"type": "function_call_output", "call_id": "c1", "output": "r1"},
                // The tool-call-only turn has no empty assistant message before its call.
                {"type": "function_call", "call_id": "c3", "name": "a", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c3", "output": "r3"}
            ])
        );
        assert_eq!(body["instructions"], "");
    }

    #[test]
    fn empty_assistant_content_with_calls_adds_no_message() {
        let body = chat(json!({"model": "m", "messages": [
            user("q"),
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "r"}
        ]}))
        .expect("translates");
        let input = body["input"].as_array().expect("array");
        assert_eq!(input.len(), 3);
        assert_eq!(input[1]["type"], "function_call");
    }

    #[test]
    fn tool_pairing_errors_name_the_message() {
        let call = |id: &str| {
            json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
        };
        let tool = |id: &str| json!({"role": "tool", "tool_call_id": id, "content": "r"});
        let err = |messages: Value| {
            chat(json!({"model": "m", "messages": messages})).expect_err("must be rejected")
        };

        let e = err(json!([user("q"), call("c1"), user("next")]));
        assert_eq!(e.param.as_deref(), Some("messages[1]"));
        assert!(e.message.contains("c1"), "{}", e.message);

        let e = err(json!([user("q"), tool("ghost")]));
        assert_eq!(e.param.as_deref(), Some("messages[1]"));
        assert!(e.message.contains("ghost"), "{}", e.message);

        // The output comes before its call.
        let e = err(json!([user("q"), tool("c1"), call("c1")]));
        assert_eq!(e.param.as_deref(), Some("messages[1]"));

        let e = err(json!([user("q"), call("c1"), tool("c1"), tool("c1")]));
        assert_eq!(e.param.as_deref(), Some("messages[3]"));
        assert!(e.message.contains("already"), "{}", e.message);

        let e = err(json!([
            user("q"),
            call("c1"),
            tool("c1"),
            call("c1"),
            tool("c1")
        ]));
        assert_eq!(e.param.as_deref(), Some("messages[3]"));
        assert!(e.message.contains("more than once"), "{}", e.message);

        let e = err(json!([user("q"), call("")]));
        assert!(e.message.contains("empty id"), "{}", e.message);

        // Outputs may come after other messages, as long as they follow their call.
        chat(json!({"model": "m", "messages": [user("q"), call("c1"), user("wait"), tool("c1")]}))
            .expect("late output is fine");
    }

    #[test]
    fn content_part_errors() {
        let err = |msg: Value| {
            chat(json!({"model": "m", "messages": [msg]})).expect_err("must be rejected")
        };
        let e = err(json!({"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}));
        assert!(e.message.contains("audio"), "{}", e.message);
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
        let e = err(json!({"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "https://x"}}]}));
        assert!(e.message.contains("only text"), "{}", e.message);
        let e = err(json!({"role": "user", "content": []}));
        assert!(e.message.contains("empty"), "{}", e.message);
        let e = err(json!({"role": "user", "content": [{"type": "file", "file": {}}]}));
        assert!(e.message.contains("file_data"), "{}", e.message);
        let e = err(json!({"role": "user", "content": [{"type": "video", "video": 1}]}));
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
    }

    #[test]
    fn tools_flatten_and_choice_maps() {
        let body = chat(json!({"model": "m", "messages": [user("q")],
            "tools": [
                {"type": "function", "function": {"name": "get", "description": "d",
                    "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}, "strict": true}},
                {"type": "function", "function": {"name": "bare"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get"}},
            "parallel_tool_calls": false}))
        .expect("translates");
        assert_eq!(
            body["tools"],
            json!([
                {"type": "function", "name": "get", "description": "d",
                 "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}, "strict": true},
                {"type": "function", "name": "bare",
                 "parameters": {"type": "object", "properties": {}}, "strict": false}
            ])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "name": "get"})
        );
        assert_eq!(body["parallel_tool_calls"], false);

        for mode in ["auto", "none", "required"] {
            let body = chat(
                json!({"model": "m", "messages": [user("q")], "tool_choice": mode,
                "tools": [{"type": "function", "function": {"name": "f"}}]}),
            )
            .expect("translates");
            assert_eq!(body["tool_choice"], mode);
            assert_eq!(body["parallel_tool_calls"], true);
        }

        // Without tools, neither tool_choice nor parallel_tool_calls is sent.
        let body = chat(
            json!({"model": "m", "messages": [user("q")], "tool_choice": "auto",
            "parallel_tool_calls": true}),
        )
        .expect("translates");
        assert!(body.get("tool_choice").is_none());
        assert!(body.get("parallel_tool_calls").is_none());
        assert!(body.get("tools").is_none());

        let e = chat(json!({"model": "m", "messages": [user("q")],
            "tools": [{"type": "code_interpreter"}]}))
        .expect_err("unsupported tool");
        assert_eq!(e.param.as_deref(), Some("tools[0]"));
    }

    #[test]
    fn response_format_maps_to_text_format() {
        let body = chat(json!({"model": "m", "messages": [user("q")],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": {"type": "object"}, "strict": true}}}))
        .expect("translates");
        assert_eq!(
            body["text"],
            json!({"format": {"type": "json_schema", "name": "answer",
                              "schema": {"type": "object"}, "strict": true}})
        );
        let body = chat(json!({"model": "m", "messages": [user("q")],
            "response_format": {"type": "json_object"}}))
        .expect("translates");
        assert_eq!(body["text"], json!({"format": {"type": "json_object"}}));
        let body = chat(json!({"model": "m", "messages": [user("q")],
            "response_format": {"type": "text"}}))
        .expect("translates");
        assert!(body.get("text").is_none());
    }

    #[test]
    fn split_model_effort_forms() {
        assert_eq!(split_model_effort("gpt-5"), ("gpt-5", None));
        assert_eq!(split_model_effort("gpt-5-high"), ("gpt-5", Some("high")));
        assert_eq!(split_model_effort("gpt-5-xhigh"), ("gpt-5", Some("xhigh")));
        assert_eq!(
            split_model_effort("gpt-5.1-codex-low"),
            ("gpt-5.1-codex", Some("low"))
        );
        assert_eq!(
            split_model_effort("gpt-5-minimal"),
            ("gpt-5", Some("minimal"))
        );
        assert_eq!(split_model_effort("gpt-5-none"), ("gpt-5", Some("none")));
        assert_eq!(
            split_model_effort("gpt-5-medium"),
            ("gpt-5", Some("medium"))
        );
        assert_eq!(split_model_effort("gpt-5(high)"), ("gpt-5", Some("high")));
        assert_eq!(
            split_model_effort("gpt-5.4 (low)"),
            ("gpt-5.4", Some("low"))
        );
        // `-mini` is part of a model name, not an effort.
        assert_eq!(split_model_effort("gpt-5.4-mini"), ("gpt-5.4-mini", None));
        assert_eq!(split_model_effort("gpt-5(turbo)"), ("gpt-5(turbo)", None));
        assert_eq!(split_model_effort("-high"), ("-high", None));
    }

    #[test]
    fn effort_sources_and_precedence() {
        let effort = |model: &str, explicit: Option<&str>| {
            let mut req = json!({"model": model, "messages": [user("q")]});
            if let Some(e) = explicit {
                req["reasoning_effort"] = json!(e);
            }
            chat(req).expect("translates")
        };
        let body = effort("gpt-5-high", None);
        assert_eq!(body["model"], "gpt-5");
        assert_eq!(
            body["reasoning"],
            json!({"effort": "high", "summary": "auto"})
        );
        assert_eq!(effort("gpt-5", Some("low"))["reasoning"]["effort"], "low");
        // The model-name suffix wins over the body field.
        assert_eq!(
            effort("gpt-5(xhigh)", Some("low"))["reasoning"]["effort"],
            "xhigh"
        );
        assert_eq!(effort("gpt-5", None)["reasoning"]["effort"], "medium");
        // No summary when reasoning is off.
        assert_eq!(
            effort("gpt-5", Some("none"))["reasoning"],
            json!({"effort": "none"})
        );
        assert_eq!(
            effort("gpt-5-none", None)["reasoning"],
            json!({"effort": "none"})
        );
    }

    #[test]
    fn prompt_cache_key_is_forwarded() {
        let body = chat(json!({"model": "m", "messages": [user("q")], "prompt_cache_key": "k1"}))
            .expect("translates");
        assert_eq!(body["prompt_cache_key"], "k1");
    }

    #[test]
    fn responses_string_input_and_forced_fields() {
        let out = normalize_responses_request(json!({
            "model": "gpt-5-codex-high", "input": "hello", "stream": false, "store": true,
            "temperature": 0.5, "top_p": 1, "max_output_tokens": 100, "max_tokens": 1,
            "max_completion_tokens": 1, "n": 1, "presence_penalty": 0, "frequency_penalty": 0,
            "user": "u", "truncation": "auto", "previous_response_id": "resp_1",
            "stream_options": {}, "metadata": {"k": "v"}, "parallel_tool_calls": true
        }))
        .expect("normalises");
        assert!(!out.stream);
        assert_eq!(out.model, "gpt-5-codex");
        assert_eq!(
            out.body,
            json!({
                "model": "gpt-5-codex", "stream": true, "store": false, "instructions": "",
                "input": [{"type": "message", "role": "user",
                           "content": [{"type": "input_text", "text": "hello"}]}],
                "reasoning": {"effort": "high"},
                "include": ["reasoning.encrypted_content"],
                "metadata": {"k": "v"}
            })
        );
    }

    #[test]
    fn responses_items_roles_and_reasoning() {
        let out = normalize_responses_request(json!({
            "model": "gpt-5", "stream": true, "instructions": "be good",
            "input": [
                {"role": "system", "content": "sys"},
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "s2"}]},
                {"role": "assistant", "content": "prev"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "o"}
            ],
            "reasoning": {"effort": "low", "summary": "detailed"},
            "include": ["reasoning.encrypted_content", "other"],
            "tools": [{"type": "function", "name": "f", "parameters": {}}],
            "tool_choice": "auto"
        }))
        .expect("normalises");
        assert!(out.stream);
        let body = &out.body;
        assert_eq!(body["instructions"], "be good");
        assert_eq!(
            body["input"],
            json!([
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sys"}]},
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "s2"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "prev"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "o"}
            ])
        );
        // The client's own summary mode and include list are kept.
        assert_eq!(
            body["reasoning"],
            json!({"effort": "low", "summary": "detailed"})
        );
        assert_eq!(
            body["include"],
            json!(["reasoning.encrypted_content", "other"])
        );
        assert_eq!(body["tool_choice"], "auto");

        // A model suffix overrides the body's effort; none means no summary.
        let out = normalize_responses_request(json!({"model": "gpt-5-none", "input": "x",
            "reasoning": {"effort": "high"}}))
        .expect("normalises");
        assert_eq!(out.body["reasoning"], json!({"effort": "none"}));

        // Without reasoning from the client, none is sent (and no summary is asked for).
        let out = normalize_responses_request(json!({"model": "gpt-5", "input": "x"}))
            .expect("normalises");
        assert!(out.body.get("reasoning").is_none(), "{}", out.body);
        let out = normalize_responses_request(json!({"model": "gpt-5", "input": "x",
            "reasoning": {"effort": "low"}}))
        .expect("normalises");
        assert_eq!(out.body["reasoning"], json!({"effort": "low"}));
    }

    #[test]
    fn responses_malformed() {
        let err = |v: Value| normalize_responses_request(v).expect_err("must be rejected");
        assert_eq!(err(json!({"input": "x"})).param.as_deref(), Some("model"));
        assert_eq!(
            err(json!({"model": 1, "input": "x"})).param.as_deref(),
            Some("model")
        );
        assert_eq!(err(json!({"model": "m"})).param.as_deref(), Some("input"));
        assert_eq!(
            err(json!({"model": "m", "input": 5})).param.as_deref(),
            Some("input")
        );
        assert_eq!(
            err(json!({"model": "m", "input": [1]})).param.as_deref(),
            Some("input[0]")
        );
        assert_eq!(
            err(json!({"model": "m", "input": "x", "stream": "y"}))
                .param
                .as_deref(),
            Some("stream")
        );
        assert_eq!(
            err(json!({"model": "m", "input": "x", "instructions": 3}))
                .param
                .as_deref(),
            Some("instructions")
        );
        assert_eq!(err(json!([1])).param, None);
    }

    /// Every input item type the Codex CLI sends (CODEX.md §7), as it sends them.
    fn codex_cli_items() -> Vec<Value> {
        vec![
            json!({"type": "message", "role": "developer",
                   "content": [{"type": "input_text", "text": "base"}]}),
            json!({"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "go"}]}),
            json!({"type": "reasoning", "id": "rs_1", "summary": [],
                   "encrypted_content": "gAAAAB+/=enc\u{1F600}\\\"x"}),
            json!({"type": "function_call", "id": "fc_1", "call_id": "c1",
                   "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"}),
            json!({"type": "function_call_output", "call_id": "c1",
                   "output": "a\nb"}),
            json!({"type": "custom_tool_call", "id": "ctc_1", "call_id": "c2",
                   "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch",
                   "status": "completed"}),
            json!({"type": "custom_tool_call_output", "call_id": "c2", "output": "Done"}),
            json!({"type": "local_shell_call", "id": "lsc_1", "call_id": "c3",
                   "status": "completed",
                   "action": {"type": "exec", "command": ["ls"], "env": {}}}),
            json!({"type": "tool_search_call", "id": "tsc_1", "call_id": "c4",
                   "status": "completed", "execution": "client",
                   "arguments": {"query": "files"}}),
            json!({"type": "tool_search_output", "call_id": "c4", "status": "completed",
                   "execution": "client", "tools": [{"type": "namespace", "name": "fs"}]}),
            json!({"type": "web_search_call", "id": "ws_1", "status": "completed",
                   "action": {"type": "search", "query": "rust"}}),
            json!({"type": "image_generation_call", "id": "ig_1", "status": "completed",
                   "result": "iVBORw0KGgo="}),
            json!({"type": "additional_tools", "tools": [
                   {"type": "namespace", "name": "mcp__fs", "tools": []}]}),
            json!({"type": "agent_message", "id": "am_1", "author": "subagent",
                   "content": [{"type": "input_text", "text": "done"}]}),
            json!({"type": "context_compaction", "id": "cc_1",
                   "encrypted_content": "Q0NfT1BBUVVF+/=="}),
            json!({"type": "compaction", "id": "cmp_1",
                   "encrypted_content": "Q01QX09QQVFVRQ+/=="}),
            json!({"type": "compaction_trigger"}),
        ]
    }

    #[test]
    fn every_codex_cli_item_field_and_tool_passes_through_untouched() {
        let input = codex_cli_items();
        let tools = json!([
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"},
             "strict": false},
            {"type": "custom", "name": "apply_patch", "description": "patch",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
            {"type": "namespace", "name": "mcp__fs", "description": "fs", "tools": []},
            {"type": "tool_search", "execution": "client", "description": "find tools",
             "parameters": {"type": "object"}},
            {"type": "web_search", "external_web_access": false},
            {"type": "image_generation", "output_format": "png"}
        ]);
        let body = json!({
            "model": "gpt-5.5", "instructions": "base", "input": input, "tools": tools,
            "tool_choice": "auto", "parallel_tool_calls": true,
            "reasoning": {"effort": "high", "summary": "auto", "context": "all_turns"},
            "store": false, "stream": true,
            "include": ["reasoning.encrypted_content"], "service_tier": "priority",
            "prompt_cache_key": "thread-1", "text": {"verbosity": "low"},
            "client_metadata": {"x-codex-window-id": "thread-1:0", "turn_id": "t1"}
        });
        let out = normalize_responses_request(body.clone()).expect("passes");
        // Nothing was added, dropped, reordered or re-encoded.
        assert_eq!(out.body, body);
        let items = out.body["input"].as_array().expect("input");
        assert_eq!(items.last(), Some(&json!({"type": "compaction_trigger"})));
        // The opaque payloads keep their bytes on the wire.
        let wire = serde_json::to_string(&out.body).expect("serialises");
        for item in &codex_cli_items() {
            if let Some(content) = item.get("encrypted_content").and_then(Value::as_str) {
                let encoded = serde_json::to_string(content).expect("serialises");
                assert!(wire.contains(&encoded), "{encoded} changed");
            }
        }
        for (i, item) in codex_cli_items().iter().enumerate() {
            assert_eq!(&items[i], item, "input[{i}] ({})", item["type"]);
        }
    }

    #[test]
    fn tools_of_lite_models_in_additional_tools_keep_their_choice() {
        let body = json!({"model": "m", "input": [
            {"type": "additional_tools", "tools": [{"type": "namespace", "name": "n", "tools": []}]},
            {"type": "message", "role": "user", "content": "hi"}],
            "tool_choice": "auto", "parallel_tool_calls": false});
        let out = normalize_responses_request(body).expect("passes");
        assert_eq!(out.body["tool_choice"], "auto");
        assert_eq!(out.body["parallel_tool_calls"], false);
        let plain = json!({"model": "m", "input": "hi", "tool_choice": "auto"});
        let out = normalize_responses_request(plain).expect("passes");
        assert!(out.body.get("tool_choice").is_none());
    }
}
