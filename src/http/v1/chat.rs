//! `POST /v1/chat/completions`: translated to a Codex Responses request, streamed back as
//! `chat.completion.chunk` events ended by `data: [DONE]`, or aggregated into one
//! `chat.completion`.

use bytes::Bytes;
use serde_json::{json, Value};

use super::invalid_request;
use super::serve::{Aggregate, Client, Endpoint, Relay, Relayed, Upstream};
use crate::codex::aggregate::ChatAggregator;
use crate::codex::chat_stream::ChatStream;
use crate::codex::openai::{ChatCompletion, ChatRequest};
use crate::codex::sse::{encode_json, SseFrame, DONE_FRAME};
use crate::codex::translate::chat_to_codex;
use crate::codex::wire::{StreamError, StreamEvent, StreamOutcome};
use crate::error::{ErrorCode, OpenAiError};

/// The chat endpoint for one request, answering as the model the client named.
pub struct Chat {
    model: String,
    include_usage: bool,
}

impl Endpoint for Chat {
    const PATH: &'static str = "/v1/chat/completions";
    type Aggregate = ChatAggregator;
    type Relay = ChatStream;

    async fn translate(client: &Client<'_>, body: Value) -> Result<(Self, Upstream), OpenAiError> {
        let chat = ChatRequest::from_value(body).map_err(invalid_request)?;
        let mut codex = chat_to_codex(&chat).map_err(invalid_request)?;
        let conversation =
            client.conversation(chat.prompt_cache_key.as_deref(), &codex.model, |opening| {
                opening.codex_request(&codex);
            })?;
        codex.prompt_cache_key = Some(conversation.prompt_cache_key.clone());
        let endpoint = Chat {
            model: chat.model.clone(),
            include_usage: chat.include_usage(),
        };
        let upstream = Upstream::new(chat.model, chat.stream, conversation, &codex)?;
        Ok((endpoint, upstream))
    }

    fn aggregate(self, _: i32) -> ChatAggregator {
        ChatAggregator::new(self.model)
    }

    fn relay(self, _: i32) -> ChatStream {
        ChatStream::new(self.model, self.include_usage)
    }
}

impl Aggregate for ChatAggregator {
    type Answer = ChatCompletion;

    fn on_frame(&mut self, _: &SseFrame, event: Option<&StreamEvent>) {
        if let Some(event) = event {
            self.on_event(event);
        }
    }

    async fn finish(self) -> Result<ChatCompletion, StreamError> {
        ChatAggregator::finish(self)
    }
}

impl Relay for ChatStream {
    fn on_frame(&mut self, _: &SseFrame, event: Option<&StreamEvent>) -> Relayed {
        let Some(event) = event else {
            return Relayed::default();
        };
        let frames: Vec<Bytes> = self
            .on_event(event)
            .iter()
            .filter_map(|chunk| encode_json(chunk).ok())
            .map(Bytes::from)
            .collect();
        Relayed {
            output: !frames.is_empty(),
            frames,
        }
    }

    /// `[DONE]` after a complete answer; after a failure, an error event that OpenAI SDKs
    /// raise as an API error.
    fn closing_frame(&self, outcome: &StreamOutcome) -> Option<Bytes> {
        let frame = match outcome {
            Ok(_) => Bytes::from_static(DONE_FRAME.as_bytes()),
            Err(e) => {
                let code = ErrorCode::UpstreamError.name();
                let body = json!({"error": {"message": e.to_string(), "type": "upstream_error", "param": null, "code": code}});
                Bytes::from(format!("data: {body}\n\n"))
            }
        };
        Some(frame)
    }
}
