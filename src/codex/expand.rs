//! Rebuilding a full input for a backend that stores nothing (pure, no I/O).
//!
//! Clients of the Responses API continue a conversation with `previous_response_id` and point at
//! earlier items with `{"type": "item_reference", "id": ...}`. The Codex backend is called with
//! `store: false` and knows neither, so the gateway sends what they stand for: the previous
//! response's full input, then its output items, then the new input, with every reference
//! replaced by the item it names.

use std::collections::HashMap;

use serde_json::Value;

/// What a continued request is built from: the earlier turn's input and output items.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    /// The full input the earlier turn sent upstream.
    pub input: &'a [Value],
    /// The output items it produced.
    pub output: &'a [Value],
}

/// An `item_reference` that names no stored item of this API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no stored item with id '{id}' (input[{index}])")]
pub struct UnknownReference {
    /// The referenced id.
    pub id: String,
    /// Where the reference sits in the client's input.
    pub index: usize,
}

/// The ids of the `item_reference` items in `input`, in order, without repeats.
pub fn referenced_ids(input: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for item in input {
        if let Some(id) = reference_id(item) {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

/// The full input to send upstream: `previous` input and output (when continuing), then the new
/// `input` with each reference replaced by the item from `items`.
pub fn expand_input<S: std::hash::BuildHasher>(
    previous: Option<Previous<'_>>,
    input: Vec<Value>,
    items: &HashMap<String, Value, S>,
) -> Result<Vec<Value>, UnknownReference> {
    let mut full = Vec::new();
    if let Some(previous) = previous {
        full.reserve(previous.input.len() + previous.output.len() + input.len());
        full.extend_from_slice(previous.input);
        full.extend_from_slice(previous.output);
    }
    for (index, item) in input.into_iter().enumerate() {
        match reference_id(&item) {
            Some(id) => match items.get(id) {
                Some(found) => full.push(found.clone()),
                None => {
                    return Err(UnknownReference {
                        id: id.to_owned(),
                        index,
                    })
                }
            },
            None => full.push(item),
        }
    }
    Ok(full)
}

/// The id an item is listed under: its own `id`, else `fallback` (a stored input item that came
/// without one is given an id, so that it can be listed and referenced).
pub fn item_id(item: &Value, fallback: impl FnOnce() -> String) -> String {
    item.get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map_or_else(fallback, str::to_owned)
}

fn reference_id(item: &Value) -> Option<&str> {
    (item.get("type").and_then(Value::as_str) == Some("item_reference"))
        .then(|| item.get("id").and_then(Value::as_str))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    #[test]
    fn continuing_puts_the_earlier_turn_first() {
        let earlier_input = vec![user("one")];
        let earlier_output = vec![
            json!({"id": "msg_1", "type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "first answer"}]}),
        ];
        let full = expand_input(
            Some(Previous {
                input: &earlier_input,
                output: &earlier_output,
            }),
            vec![user("two")],
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            full,
            vec![user("one"), earlier_output[0].clone(), user("two")]
        );
    }

    #[test]
    fn references_are_replaced_in_place() {
        let call = json!({"id": "fc_1", "type": "function_call", "call_id": "c1",
            "name": "f", "arguments": "{}"});
        let items = HashMap::from([("fc_1".to_owned(), call.clone())]);
        let input = vec![
            user("go"),
            json!({"type": "item_reference", "id": "fc_1"}),
            json!({"type": "function_call_output", "call_id": "c1", "output": "42"}),
        ];
        assert_eq!(referenced_ids(&input), vec!["fc_1".to_owned()]);
        let full = expand_input(None, input, &items).unwrap();
        assert_eq!(full[1], call);
        assert_eq!(full.len(), 3);
    }

    #[test]
    fn an_unknown_reference_is_named() {
        let err = expand_input(
            None,
            vec![
                user("x"),
                json!({"type": "item_reference", "id": "msg_gone"}),
            ],
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            UnknownReference {
                id: "msg_gone".into(),
                index: 1
            }
        );
        assert!(err.to_string().contains("msg_gone"));
    }

    #[test]
    fn items_without_an_id_get_the_fallback() {
        assert_eq!(item_id(&json!({"id": "msg_9"}), || "x".into()), "msg_9");
        assert_eq!(item_id(&user("hi"), || "msg_new".into()), "msg_new");
    }

    #[test]
    fn codex_items_without_references_pass_unchanged_and_in_order() {
        let input = vec![
            user("go"),
            json!({"type": "compaction", "id": "cmp_1", "encrypted_content": "AAA+/="}),
            json!({"type": "context_compaction", "id": "cc_1", "encrypted_content": "BBB"}),
            json!({"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": "x"}),
            json!({"type": "compaction_trigger"}),
        ];
        assert!(referenced_ids(&input).is_empty());
        let full = expand_input(None, input.clone(), &HashMap::new()).unwrap();
        assert_eq!(full, input);
    }
}
