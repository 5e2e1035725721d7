//! The upstream's answer as a source of SSE frames, with look-ahead: [`EventSource`] reads
//! frames until the first one that carries output (or ends the answer), keeps them, and hands
//! them out again in order. What it read decides whether the request may still be retried.
//! Each frame's event is parsed once, when the frame is decoded, and travels with it.

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
    pending: VecDeque<Parsed>,
    decoder: SseDecoder,
    body: ByteStream,
    ended: bool,
}

/// A frame of the answer with its event, when it parses as one.
#[derive(Debug)]
pub struct Parsed {
    /// The frame as it came.
    pub frame: SseFrame,
    /// Its event.
    pub event: Option<StreamEvent>,
}

impl Parsed {
    fn of(frame: SseFrame) -> Self {
        let event = StreamEvent::parse(frame.event.as_deref(), &frame.data).ok();
        Self { frame, event }
    }
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

    /// The next frame and its event; `None` when the upstream body ended (or broke off).
    pub async fn next_frame(&mut self) -> Option<Parsed> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self
                    .pending
                    .extend(self.decoder.feed(&bytes).into_iter().map(Parsed::of)),
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
            let Some(parsed) = self.next_frame().await else {
                break Some(Err(StreamError::Disconnected));
            };
            let decided = parsed.event.as_ref().and_then(|event| {
                event
                    .outcome()
                    .map(Some)
                    .or_else(|| event.carries_output().then_some(None))
            });
            seen.push_back(parsed);
            if let Some(decided) = decided {
                break decided;
            }
        };
        // Put everything back in order ahead of what is still pending.
        seen.extend(self.pending.drain(..));
        self.pending = seen;
        result
    }
}
