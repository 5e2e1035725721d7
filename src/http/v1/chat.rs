//! `POST /v1/chat/completions`: translated to a Codex Responses request, streamed back as
//! `chat.completion.chunk` events or aggregated into one `chat.completion`.

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use serde_json::Value;

use super::extract::{ApiKeyAuth, OpenAiJson, RequestId};
use super::{error_frame, event_stream, invalid_request};
use crate::codex::aggregate::ChatAggregator;
use crate::codex::chat_stream::ChatStream;
use crate::codex::openai::ChatRequest;
use crate::codex::sse::{encode_json, DONE_FRAME};
use crate::codex::translate::chat_to_codex;
use crate::codex::wire::StreamEvent;
use crate::dispatch::{dispatch_logged, failed_after_dispatch};
use crate::error::{AppError, OpenAiError};
use crate::request_log::RequestLog;
use crate::state::AppState;

/// Handles one chat completion.
pub async fn completions(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    request_id: RequestId,
    OpenAiJson(body): OpenAiJson<Value>,
) -> Result<HttpResponse, OpenAiError> {
    let chat = ChatRequest::from_value(body).map_err(invalid_request)?;
    key.check_model(&chat.model)?;
    let codex = chat_to_codex(&chat).map_err(invalid_request)?;
    let upstream_body = Bytes::from(serde_json::to_vec(&codex).map_err(AppError::internal)?);

    state.keys.admit(key.0.clone()).await?;
    let log = RequestLog::start(
        &state,
        &key.0,
        &chat.model,
        "/v1/chat/completions",
        chat.stream,
        request_id.0,
    );
    let (dispatched, mut log) =
        dispatch_logged(&state, upstream_body, chat.prompt_cache_key.as_deref(), log).await?;
    let lease = dispatched.lease;
    let mut events = dispatched.events;

    if !chat.stream {
        let mut aggregator = ChatAggregator::new(chat.model.clone());
        while let Some(frame) = events.next_frame().await {
            if let Ok(event) = StreamEvent::parse(frame.event.as_deref(), &frame.data) {
                aggregator.on_event(&event);
                if aggregator.outcome().is_some() {
                    break;
                }
            }
        }
        drop(lease);
        log.usage(aggregator.usage());
        return match aggregator.finish() {
            Ok(completion) => {
                log.finish(200, None);
                Ok(HttpResponse::Ok().json(completion))
            }
            Err(e) => Err(failed_after_dispatch(log, &e).into()),
        };
    }

    let mut converter = ChatStream::new(chat.model.clone(), chat.include_usage());
    let stream = async_stream::stream! {
        // Both guards live as long as the stream: a client that goes away drops them, which
        // frees the account and still writes the log row.
        let _lease = lease;
        let mut log = log;
        while let Some(frame) = events.next_frame().await {
            let Ok(event) = StreamEvent::parse(frame.event.as_deref(), &frame.data) else {
                continue;
            };
            let chunks = converter.on_event(&event);
            log.usage(converter.usage());
            for chunk in chunks {
                if let Ok(text) = encode_json(&chunk) {
                    log.first_token();
                    yield Ok::<Bytes, actix_web::Error>(Bytes::from(text));
                }
            }
            if converter.outcome().is_some() {
                break;
            }
        }
        let outcome = converter.finish().clone();
        log.usage(converter.usage());
        match outcome {
            Ok(_) => {
                yield Ok(Bytes::from_static(DONE_FRAME.as_bytes()));
                log.finish(200, None);
            }
            Err(e) => {
                let message = e.to_string();
                yield Ok(error_frame(&message, "upstream_error"));
                log.finish(502, Some(message));
            }
        }
    };
    Ok(event_stream(stream))
}
