//! The backend's rules for a request body, applied as strictly as it does (CODEX.md §3).

use serde_json::{json, Map, Value};

use crate::openai_error;

/// Parameters the backend refuses with `Unsupported parameter: X` (CODEX.md §3).
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
/// Model-name suffixes that select an effort on the gateway and must never reach upstream.
const EFFORT_SUFFIXES: [&str; 6] = ["-low", "-medium", "-high", "-xhigh", "-minimal", "-none"];
/// Accepted `reasoning.effort` values.
const EFFORTS: [&str; 6] = ["none", "minimal", "low", "medium", "high", "xhigh"];

/// The backend's body rules (CODEX.md §3); `Err` carries the status and body it would answer.
pub(crate) fn validate(body: &Value) -> Result<(), (u16, Value)> {
    let detail = |msg: &str| (400, json!({ "detail": msg }));
    let invalid = |msg: String, param: &str, code: &str| {
        (
            400,
            openai_error(&msg, "invalid_request_error", Some(param), Some(code)),
        )
    };
    let Some(obj) = body.as_object() else {
        return Err(detail("Request body must be a JSON object"));
    };
    for key in NEVER_FORWARD {
        if obj.contains_key(key) {
            return Err(detail(&format!("Unsupported parameter: {key}")));
        }
    }
    if obj.get("stream") != Some(&Value::Bool(true)) {
        return Err(detail("Stream must be set to true"));
    }
    if obj.get("store") != Some(&Value::Bool(false)) {
        return Err(detail("Store must be set to false"));
    }
    if !obj.get("instructions").is_some_and(Value::is_string) {
        return Err(detail("Instructions are required"));
    }
    if obj
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(detail("Model is required"));
    }
    let Some(input) = obj.get("input").and_then(Value::as_array) else {
        return Err(detail("Input must be a list"));
    };
    validate_input(input).map_err(|(msg, param, code)| invalid(msg, &param, code))?;
    validate_tools(obj).map_err(|(msg, param, code)| invalid(msg, &param, code))?;
    Ok(())
}

type Invalid = (String, String, &'static str);

fn validate_input(input: &[Value]) -> Result<(), Invalid> {
    let mut open_calls: Vec<String> = Vec::new();
    let mut all_calls: Vec<String> = Vec::new();
    for (i, item) in input.iter().enumerate() {
        let at = format!("input[{i}]");
        let Some(item) = item.as_object() else {
            return Err((
                format!("Invalid type for '{at}': expected an object."),
                at,
                "invalid_type",
            ));
        };
        let kind = match item.get("type").and_then(Value::as_str) {
            Some(kind) => kind,
            None if item.contains_key("role") => "message",
            None => {
                return Err((
                    format!("Missing required parameter: '{at}.type'."),
                    format!("{at}.type"),
                    "missing_required_parameter",
                ))
            }
        };
        match kind {
            "message" => validate_message(item, &at)?,
            "function_call" => {
                for key in ["call_id", "name", "arguments"] {
                    if !item.get(key).is_some_and(Value::is_string) {
                        return Err((
                            format!("Invalid type for '{at}.{key}': expected a string."),
                            format!("{at}.{key}"),
                            "invalid_type",
                        ));
                    }
                }
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                open_calls.push(call_id.to_owned());
                all_calls.push(call_id.to_owned());
            }
            "function_call_output" => {
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                if !all_calls.iter().any(|c| c == call_id) {
                    return Err((
                        format!(
                            "No tool call found for function call output with call_id {call_id}."
                        ),
                        "input".into(),
                        "invalid_value",
                    ));
                }
                if !item
                    .get("output")
                    .is_some_and(|o| o.is_string() || o.is_array())
                {
                    return Err((
                        format!("Invalid type for '{at}.output': expected a string."),
                        format!("{at}.output"),
                        "invalid_type",
                    ));
                }
                open_calls.retain(|c| c != call_id);
            }
            // Remote compaction: the trigger asks for the compaction of everything before it.
            "compaction_trigger" if i + 1 != input.len() => {
                return Err((
                    "Invalid 'input': a 'compaction_trigger' item must be the last item.".into(),
                    at,
                    "invalid_value",
                ));
            }
            "compaction" | "compaction_summary" | "context_compaction"
                if !item.get("encrypted_content").is_some_and(Value::is_string) =>
            {
                return Err((
                    format!("Missing required parameter: '{at}.encrypted_content'."),
                    format!("{at}.encrypted_content"),
                    "missing_required_parameter",
                ));
            }
            // Nothing is stored upstream (`store: false`), so there is nothing to refer to.
            "item_reference" => {
                let id = item.get("id").and_then(Value::as_str).unwrap_or("");
                return Err((
                    format!(
                        "Item with id '{id}' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input."
                    ),
                    "input".into(),
                    "invalid_value",
                ));
            }
            _ => {}
        }
    }
    if let Some(call_id) = open_calls.first() {
        return Err((
            format!("No tool output found for function call {call_id}."),
            "input".into(),
            "invalid_value",
        ));
    }
    Ok(())
}

fn validate_message(item: &Map<String, Value>, at: &str) -> Result<(), Invalid> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or("");
    let allowed: &[&str] = match role {
        "assistant" => &["output_text", "refusal"],
        "user" | "system" | "developer" => &["input_text", "input_image", "input_file"],
        _ => {
            return Err((
                format!(
                    "Invalid value: '{role}'. Supported values are: 'assistant', 'system', \
                     'developer', and 'user'."
                ),
                format!("{at}.role"),
                "invalid_value",
            ))
        }
    };
    match item.get("content") {
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                if !allowed.contains(&kind) {
                    let supported: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
                    return Err((
                        format!(
                            "Invalid value: '{kind}'. Supported values are: {}.",
                            supported.join(", ")
                        ),
                        format!("{at}.content[{j}].type"),
                        "invalid_value",
                    ));
                }
            }
            Ok(())
        }
        _ => Err((
            format!("Missing required parameter: '{at}.content'."),
            format!("{at}.content"),
            "missing_required_parameter",
        )),
    }
}

fn validate_tools(obj: &Map<String, Value>) -> Result<(), Invalid> {
    let missing = |param: String| {
        (
            format!("Missing required parameter: '{param}'."),
            param,
            "missing_required_parameter",
        )
    };
    if let Some(tools) = obj.get("tools") {
        let Some(tools) = tools.as_array() else {
            return Err((
                "Invalid type for 'tools': expected an array.".into(),
                "tools".into(),
                "invalid_type",
            ));
        };
        for (i, tool) in tools.iter().enumerate() {
            if tool.get("type").and_then(Value::as_str) == Some("function")
                && !tool.get("name").is_some_and(Value::is_string)
            {
                return Err(missing(format!("tools[{i}].name")));
            }
        }
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if ["auto", "none", "required"].contains(&s.as_str()) => {}
        Some(Value::Object(choice)) => {
            if choice.get("type").and_then(Value::as_str) == Some("function")
                && !choice.get("name").is_some_and(Value::is_string)
            {
                return Err(missing("tool_choice.name".into()));
            }
        }
        Some(other) => {
            return Err((
                format!(
                    "Invalid value: {other}. Supported values are: 'none', 'auto', and 'required'."
                ),
                "tool_choice".into(),
                "invalid_value",
            ))
        }
    }
    if let Some(effort) = obj.get("reasoning").and_then(|r| r.get("effort")) {
        if !effort.as_str().is_some_and(|e| EFFORTS.contains(&e)) {
            return Err((
                format!(
                    "Invalid value: {effort}. Supported values are: {}.",
                    EFFORTS.map(|e| format!("'{e}'")).join(", ")
                ),
                "reasoning.effort".into(),
                "invalid_value",
            ));
        }
    }
    if let Some(format) = obj.get("text").and_then(|t| t.get("format")) {
        if format.get("type").and_then(Value::as_str) == Some("json_schema") {
            for key in ["name", "schema"] {
                if format.get(key).is_none() {
                    return Err(missing(format!("text.format.{key}")));
                }
            }
        }
    }
    Ok(())
}

/// Whether the backend serves `model`: never with an effort suffix, and only from `supported`
/// when a list is set.
pub(crate) fn model_supported(model: &str, supported: &Option<Vec<String>>) -> bool {
    if EFFORT_SUFFIXES.iter().any(|s| model.ends_with(s)) || model.contains('(') {
        return false;
    }
    supported
        .as_ref()
        .is_none_or(|list| list.iter().any(|m| m == model))
}
