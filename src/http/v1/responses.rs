//! `POST /v1/responses`: the Responses API, forwarded nearly as is after normalisation, so
//! that Responses clients (the Codex CLI among them) can use the gateway as their provider.

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use super::extract::{ApiKeyAuth, OpenAiJson, RequestId};
use super::{event_stream, invalid_request};
use crate::codex::aggregate::ResponsesAggregator;
use crate::codex::sse::encode_frame;
use crate::codex::translate::normalize_responses_request;
use crate::codex::wire::StreamEvent;
use crate::dispatch::{dispatch_logged, failed_after_dispatch};
use crate::error::{AppError, OpenAiError};
use crate::request_log::RequestLog;
use crate::state::AppState;

/// Handles one Responses API request.
pub async fn create(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    request_id: RequestId,
    OpenAiJson(body): OpenAiJson<Value>,
) -> Result<HttpResponse, OpenAiError> {
    let request = normalize_responses_request(body).map_err(invalid_request)?;
    key.check_model(&request.model)?;
    let session = request
        .body
        .get("prompt_cache_key")
        .and_then(Value::as_str)
        .map(str::to_string);
    let upstream_body = Bytes::from(serde_json::to_vec(&request.body).map_err(AppError::internal)?);

    state.keys.admit(key.0.clone()).await?;
    let log = RequestLog::start(
        &state,
        &key.0,
        &request.model,
        "/v1/responses",
        request.stream,
        request_id.0,
    );
    let (dispatched, mut log) =
        dispatch_logged(&state, upstream_body, session.as_deref(), log).await?;
    let lease = dispatched.lease;
    let mut events = dispatched.events;

    if !request.stream {
        let mut aggregator = ResponsesAggregator::new();
        while let Some(frame) = events.next_frame().await {
            if let Ok(value) = serde_json::from_str::<Value>(&frame.data) {
                aggregator.on_event(&value);
                if aggregator.outcome().is_some() {
                    break;
                }
            }
        }
        drop(lease);
        log.usage(aggregator.usage());
        return match aggregator.finish() {
            Ok(response) => {
                log.finish(200, None);
                Ok(HttpResponse::Ok().json(response))
            }
            Err(e) => Err(failed_after_dispatch(log, &e).into()),
        };
    }

    let stream = async_stream::stream! {
        let _lease = lease;
        let mut log = log;
        let mut outcome = None;
        while let Some(frame) = events.next_frame().await {
            let event = StreamEvent::parse(frame.event.as_deref(), &frame.data).ok();
            if let Some(event) = &event {
                if event.carries_output() {
                    log.first_token();
                }
                if let Some(usage) = event.usage() {
                    log.usage(Some(usage));
                }
            }
            yield Ok::<Bytes, actix_web::Error>(Bytes::from(encode_frame(frame.event.as_deref(), &frame.data)));
            if let Some(done) = event.and_then(|e| e.outcome()) {
                outcome = Some(done);
                break;
            }
        }
        match outcome {
            Some(Ok(_)) => log.finish(200, None),
            Some(Err(e)) => log.finish(502, Some(e.to_string())),
            None => {
                let message = "stream disconnected before completion";
                let event = json!({"type": "error", "code": "stream_disconnected", "message": message});
                yield Ok(Bytes::from(encode_frame(Some("error"), &event.to_string())));
                log.finish(502, Some(message.to_string()));
            }
        }
    };
    Ok(event_stream(stream))
}
