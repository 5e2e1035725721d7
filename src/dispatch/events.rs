//! The upstream's answer as a source of SSE frames, with look-ahead: [`EventSource`] reads
//! frames until the first one that carries output (or ends the answer), keeps them, and hands
//! them out again in order. What it read decides whether the request may still be retried.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::codex::sse::{SseDecoder, SseFrame};
use crate::codex::wire::{StreamError, StreamEvent, StreamOutcome};

/// The upstream body as it arrives.
pub(super) type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Upstream events of one answer: the frames read while deciding whether to retry, then the
/// rest of the body as it arrives.
pub struct EventSource {
    pending: VecDeque<SseFrame>,
    decoder: SseDecoder,
    body: ByteStream,
    ended: bool,
}

impl EventSource {
    /// A source reading `body`.
    pub(super) fn new(body: ByteStream) -> Self {
        Self {
            pending: VecDeque::new(),
            decoder: SseDecoder::new(),
            body,
            ended: false,
        }
    }

    /// The next frame; `None` when the upstream body ended (or broke off).
    pub async fn next_frame(&mut self) -> Option<SseFrame> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.pending.extend(self.decoder.feed(&bytes)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "upstream body broke off");
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
    }

    /// Reads frames into the buffer until one carries output or ends the answer. Returns the
    /// terminal outcome when the answer ended (or failed) before any output.
    pub(super) async fn peek_until_output(&mut self) -> Option<StreamOutcome> {
        let mut seen = VecDeque::new();
        let result = loop {
            let Some(frame) = self.next_frame().await else {
                break Some(Err(StreamError::Disconnected));
            };
            let event = StreamEvent::parse(frame.event.as_deref(), &frame.data).ok();
            seen.push_back(frame);
            if let Some(event) = event {
                if let Some(outcome) = event.outcome() {
                    break Some(outcome);
                }
                if event.carries_output() {
                    break None;
                }
            }
        };
        // Put everything back in order ahead of what is still pending.
        seen.extend(self.pending.drain(..));
        self.pending = seen;
        result
    }
}
