//! The request body of `POST /backend-api/codex/responses` and its parts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /backend-api/codex/responses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodexRequest {
    /// Base model id (effort suffix removed).
    pub model: String,
    /// System instructions; must be present, may be empty.
    pub instructions: String,
    /// The conversation as Responses input items.
    pub input: Vec<InputItem>,
    /// Function tools; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<CodexTool>,
    /// Only sent together with tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<CodexToolChoice>,
    /// Only sent together with tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Effort and summary mode.
    pub reasoning: Reasoning,
    /// Always `["reasoning.encrypted_content"]` (nothing is stored upstream).
    pub include: Vec<String>,
    /// Always `false`: the backend refuses to store.
    pub store: bool,
    /// Always `true`: the backend only streams.
    pub stream: bool,
    /// Structured-output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// Groups requests for prompt caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
}

/// One Responses input item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputItem {
    /// A `developer`, `user` or `assistant` message.
    Message {
        /// `developer | user | assistant`.
        role: String,
        /// Typed parts.
        content: Vec<ContentItem>,
    },
    /// A call the model made earlier.
    FunctionCall {
        /// Pairs the call with its output.
        call_id: String,
        /// Function name.
        name: String,
        /// JSON-encoded arguments.
        arguments: String,
    },
    /// The result of a call.
    FunctionCallOutput {
        /// The call this answers.
        call_id: String,
        /// The result text.
        output: String,
    },
}

/// A part of an input message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentItem {
    /// Text from the user or developer.
    InputText {
        /// The text.
        text: String,
    },
    /// An image by URL or data URI.
    InputImage {
        /// `https://...` or `data:image/...`.
        image_url: String,
    },
    /// A file, inline or by id.
    InputFile {
        /// `data:<mime>;base64,...`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_data: Option<String>,
        /// An uploaded file id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        /// Original name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
    /// Text of an earlier assistant turn.
    OutputText {
        /// The text.
        text: String,
    },
}

/// A flattened function tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodexTool {
    /// Always `"function"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Function name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// Strict schema adherence; always sent because the Responses default differs from Chat's.
    pub strict: bool,
}

/// `tool_choice` in the Responses shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CodexToolChoice {
    /// `"none" | "auto" | "required"`.
    Mode(String),
    /// `{"type":"function","name":N}`.
    Function {
        /// Always `"function"`.
        #[serde(rename = "type")]
        kind: String,
        /// Function name.
        name: String,
    },
}

/// `reasoning` of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// `none | minimal | low | medium | high | xhigh`.
    pub effort: String,
    /// `"auto"` unless effort is `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// `text` of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// The output format.
    pub format: TextFormat,
}

/// `text.format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// What the output is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The JSON Schema.
        schema: Value,
        /// Strict schema adherence.
        strict: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_serialisation_omits_empty_optionals() {
        let req = CodexRequest {
            model: "gpt-5".into(),
            instructions: String::new(),
            input: vec![InputItem::FunctionCallOutput {
                call_id: "c".into(),
                output: "o".into(),
            }],
            tools: vec![],
            tool_choice: None,
            parallel_tool_calls: None,
            reasoning: Reasoning {
                effort: "none".into(),
                summary: None,
            },
            include: vec!["reasoning.encrypted_content".into()],
            store: false,
            stream: true,
            text: None,
            prompt_cache_key: None,
        };
        assert_eq!(
            serde_json::to_value(&req).expect("serialises"),
            json!({"model": "gpt-5", "instructions": "",
                   "input": [{"type": "function_call_output", "call_id": "c", "output": "o"}],
                   "reasoning": {"effort": "none"}, "include": ["reasoning.encrypted_content"],
                   "store": false, "stream": true})
        );
    }
}
