//! `POST /v1/responses`: the Responses API, forwarded nearly as is after normalisation, so
//! that Responses clients (the Codex CLI among them) can use the gateway as their provider.
//! Streamed answers pass the upstream's frames through unchanged; others are aggregated into
//! the final `response` object.
//!
//! The backend stores nothing (`store: false` upstream), so the state clients expect lives here:
//! a request that continues with `previous_response_id` is sent with the stored turn's full
//! input and output in front of its own, on the account that served it when that account can
//! serve; `item_reference` items are replaced by the stored items they name; and every answer
//! whose request did not say `store: false` is kept in the response store (before its last
//! event reaches the client, so the client can continue at once).

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::invalid_request;
use super::serve::{Aggregate, Client, Endpoint, Relay, Relayed, Upstream};
use super::stored::store_error;
use crate::codex::aggregate::ResponsesAggregator;
use crate::codex::expand::{expand_input, referenced_ids, Previous};
use crate::codex::sse::{encode_frame, SseFrame};
use crate::codex::translate::normalize_responses_request;
use crate::codex::wire::{StreamError, StreamEvent, StreamOutcome};
use crate::error::{AppError, ErrorCode, OpenAiError};
use crate::response_store::{NewResponse, ResponseStore};

/// Distinct `item_reference` items one request may carry (each is looked up in the store).
const MAX_REFERENCES: usize = 1000;

/// The Responses endpoint for one request.
pub struct Responses {
    /// Where the answer is kept, when it is.
    keep: Option<Keep>,
}

/// What keeping an answer needs: the store, the key, and the request as it went upstream.
struct Keep {
    store: ResponseStore,
    api_key_id: i32,
    model: String,
    /// The full input sent upstream.
    input: Vec<Value>,
    /// The client's `previous_response_id`, shown on the kept response.
    previous_response_id: Option<String>,
}

impl Keep {
    /// Keeps a completed response; a failure is logged, and the client still gets its answer.
    async fn save(&self, account_id: i32, response: &mut Value) {
        annotate(response, self.previous_response_id.as_deref());
        let new = NewResponse {
            api_key_id: self.api_key_id,
            account_id: Some(account_id),
            model: &self.model,
            input: &self.input,
            response,
        };
        if let Err(e) = self.store.save(new).await {
            tracing::error!(error = %e, "cannot keep the response; it cannot be continued");
        }
    }
}

/// What the client sees of the stored state on the response object.
fn annotate(response: &mut Value, previous_response_id: Option<&str>) {
    if let Some(obj) = response.as_object_mut() {
        obj.insert("store".into(), Value::Bool(true));
        if let Some(previous) = previous_response_id {
            obj.insert("previous_response_id".into(), Value::from(previous));
        }
    }
}

impl Endpoint for Responses {
    const PATH: &'static str = "/v1/responses";
    type Aggregate = KeptAggregate;
    type Relay = PassThrough;

    async fn translate(client: &Client<'_>, body: Value) -> Result<(Self, Upstream), OpenAiError> {
        let previous_id = match body.get("previous_response_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            Some(_) => {
                return Err(
                    AppError::invalid_request("'previous_response_id' must be a string")
                        .with_param("previous_response_id")
                        .into(),
                )
            }
        };
        let wants_store = !matches!(body.get("store"), Some(Value::Bool(false)));
        let mut request = normalize_responses_request(body).map_err(invalid_request)?;
        let store = &client.state.responses;

        let previous = match &previous_id {
            Some(id) => Some(store.get(client.key.id, id).await.map_err(|e| {
                store_error(
                    e,
                    ErrorCode::PreviousResponseNotFound,
                    Some("previous_response_id"),
                )
            })?),
            None => None,
        };
        let input = match request.body.get_mut("input").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let references = referenced_ids(&input);
        if references.len() > MAX_REFERENCES {
            return Err(AppError::invalid_request(format!(
                "at most {MAX_REFERENCES} item_reference items per request"
            ))
            .with_param("input")
            .into());
        }
        let items = if references.is_empty() {
            HashMap::new()
        } else {
            store
                .find_items(client.key.id, &references)
                .await
                .map_err(|e| store_error(e, ErrorCode::InvalidRequest, Some("input")))?
        };
        let full = expand_input(
            previous.as_ref().map(|p| Previous {
                input: &p.input,
                output: p.output(),
            }),
            input,
            &items,
        )
        .map_err(|e| AppError::invalid_request(e.to_string()).with_param("input"))?;
        request.body["input"] = Value::Array(full);

        let prompt_cache_key = match request.body.get("prompt_cache_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => Some(key.clone()),
            Some(_) => {
                return Err(
                    AppError::invalid_request("'prompt_cache_key' must be a string")
                        .with_param("prompt_cache_key")
                        .into(),
                )
            }
        };
        let conversation =
            client.conversation(prompt_cache_key.as_deref(), &request.model, |opening| {
                opening.responses_body(&request.body);
            })?;
        request.body["prompt_cache_key"] = Value::from(conversation.prompt_cache_key.clone());
        let mut upstream = Upstream::new(
            request.model.clone(),
            request.stream,
            conversation,
            &request.body,
        )?;
        upstream.prefer = previous.as_ref().and_then(|p| p.account_id);
        let keep = (wants_store && store.enabled()).then(|| Keep {
            store: store.clone(),
            api_key_id: client.key.id,
            model: request.model,
            input: match request.body.get_mut("input").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            previous_response_id: previous_id,
        });
        Ok((Responses { keep }, upstream))
    }

    fn aggregate(self, account_id: i32) -> KeptAggregate {
        KeptAggregate {
            inner: ResponsesAggregator::new(),
            keep: self.keep,
            account_id,
        }
    }

    fn relay(self, account_id: i32) -> PassThrough {
        PassThrough {
            kept: self.keep.map(|keep| (keep, ResponsesAggregator::new())),
            account_id,
        }
    }
}

/// The whole answer as one response object, kept when the request asked for it.
pub struct KeptAggregate {
    inner: ResponsesAggregator,
    keep: Option<Keep>,
    account_id: i32,
}

impl Aggregate for KeptAggregate {
    type Answer = Value;

    /// Works on the frame's JSON, so that every field the backend sends passes through.
    fn on_frame(&mut self, frame: &SseFrame, _: Option<&StreamEvent>) {
        if let Ok(value) = serde_json::from_str::<Value>(&frame.data) {
            self.inner.on_event(&value);
        }
    }

    async fn finish(self) -> Result<Value, StreamError> {
        let mut response = self.inner.finish()?;
        if let Some(keep) = &self.keep {
            keep.save(self.account_id, &mut response).await;
        }
        Ok(response)
    }
}

/// Sends every upstream frame on as it came, building the response object on the side when
/// it is to be kept.
pub struct PassThrough {
    kept: Option<(Keep, ResponsesAggregator)>,
    account_id: i32,
}

impl Relay for PassThrough {
    fn on_frame(&mut self, frame: &SseFrame, event: Option<&StreamEvent>) -> Relayed {
        if let Some((_, aggregator)) = &mut self.kept {
            if let Ok(value) = serde_json::from_str::<Value>(&frame.data) {
                aggregator.on_event(&value);
            }
        }
        Relayed {
            frames: vec![Bytes::from(encode_frame(
                frame.event.as_deref(),
                &frame.data,
            ))],
            output: event.is_some_and(StreamEvent::carries_output),
        }
    }

    async fn completed(&mut self, outcome: &StreamOutcome) {
        if outcome.is_err() {
            return;
        }
        if let Some((keep, aggregator)) = self.kept.take() {
            if let Ok(mut response) = aggregator.finish() {
                keep.save(self.account_id, &mut response).await;
            }
        }
    }

    /// Nothing after the upstream's own terminal event; an `error` event when there was none.
    fn closing_frame(&self, outcome: &StreamOutcome) -> Option<Bytes> {
        match outcome {
            Err(StreamError::Disconnected) => {
                let message = StreamError::Disconnected.to_string();
                let event =
                    json!({"type": "error", "code": "stream_disconnected", "message": message});
                Some(Bytes::from(encode_frame(Some("error"), &event.to_string())))
            }
            Ok(_) | Err(StreamError::Upstream(_)) => None,
        }
    }
}
