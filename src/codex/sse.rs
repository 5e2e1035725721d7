//! Server-sent events: an incremental decoder for the upstream byte stream and helpers that
//! write frames for clients.
//!
//! The decoder follows the WHATWG rules the gateway needs: lines end in `\n` or `\r\n`, a blank
//! line dispatches the frame, `data:` lines are joined with `\n`, lines starting with `:` are
//! comments, `id:`/`retry:` are ignored, and a frame without data is dropped. Bytes are buffered
//! until a whole line is present, so chunks may split a frame anywhere, including inside a UTF-8
//! character. A lone `\r` as line ending is not supported (no upstream sends it). A frame left
//! unfinished when the input ends is discarded, as the standard says: a half-received
//! `response.completed` must not count as one.

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE decoder: feed byte chunks, collect complete frames.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes not yet consumed (at most one partial line after `feed` returns).
    buf: Vec<u8>,
    /// `event:` of the frame being built.
    event: Option<String>,
    /// `data:` of the frame being built; `None` until a data line arrives.
    data: Option<String>,
}

impl SseDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk and returns the frames it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        // Only the new bytes can hold a newline: earlier ones were scanned by the previous call.
        let mut scan_from = self.buf.len();
        self.buf.extend_from_slice(chunk);
        let mut line_start = 0;
        while let Some(pos) = self.buf[scan_from..].iter().position(|&b| b == b'\n') {
            let end = scan_from + pos;
            let mut line = &self.buf[line_start..end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            // A complete line cannot end inside a character; invalid bytes become U+FFFD.
            let line = String::from_utf8_lossy(line).into_owned();
            if let Some(frame) = self.process_line(&line) {
                frames.push(frame);
            }
            line_start = end + 1;
            scan_from = line_start;
        }
        self.buf.drain(..line_start);
        frames
    }

    /// Applies one line; returns a frame when the line is blank and data was collected.
    fn process_line(&mut self, line: &str) -> Option<SseFrame> {
        if line.is_empty() {
            let event = self.event.take();
            return self.data.take().map(|data| SseFrame { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

/// The frame that ends an OpenAI stream.
pub const DONE_FRAME: &str = "data: [DONE]\n\n";

/// Writes a frame (`event: x\ndata: y\n\n`, or just `data: y\n\n` without a name).
pub fn encode_frame(event: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    // A newline inside the data would end the field early: each line gets its own `data:`.
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Writes a `data:`-only frame holding `value` as compact JSON, in one buffer (compact JSON
/// holds no newline, so it is one `data:` line as it is).
pub fn encode_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut out, value)?;
    out.extend_from_slice(b"\n\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_chunks(input: &[u8], size: usize) -> Vec<SseFrame> {
        let mut decoder = SseDecoder::new();
        input
            .chunks(size)
            .flat_map(|chunk| decoder.feed(chunk))
            .collect()
    }

    fn frame(event: Option<&str>, data: &str) -> SseFrame {
        SseFrame {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn decodes_across_any_split() {
        let input = "event: a\ndata: {\"x\":\"héllo ✓\"}\n\n: keep-alive\n\ndata: one\ndata: two\n\nevent: b\ndata:no-space\nid: 7\nretry: 10\n\n";
        let expected = vec![
            frame(Some("a"), "{\"x\":\"héllo ✓\"}"),
            frame(None, "one\ntwo"),
            frame(Some("b"), "no-space"),
        ];
        for size in [1, 2, 3, 7, 64, input.len()] {
            assert_eq!(
                decode_in_chunks(input.as_bytes(), size),
                expected,
                "size {size}"
            );
        }
        let crlf = input.replace('\n', "\r\n");
        for size in [1, 5, crlf.len()] {
            assert_eq!(
                decode_in_chunks(crlf.as_bytes(), size),
                expected,
                "crlf {size}"
            );
        }
    }

    #[test]
    fn split_inside_utf8_character() {
        let input = "data: ✓\n\n".as_bytes();
        let mut d = SseDecoder::new();
        // "✓" is three bytes; cut after the first of them.
        assert!(d.feed(&input[..7]).is_empty());
        assert_eq!(d.feed(&input[7..]), vec![frame(None, "✓")]);
    }

    #[test]
    fn empty_and_bare_fields() {
        // `data` without colon is an empty data line; an event without data is dropped.
        let out = decode_in_chunks(b"data\n\nevent: lonely\n\ndata: x\n\n", 4);
        assert_eq!(out, vec![frame(None, ""), frame(None, "x")]);
    }

    #[test]
    fn unfinished_frame_is_not_emitted() {
        let mut d = SseDecoder::new();
        assert!(d
            .feed(b"event: response.completed\ndata: {\"type\":\"response.completed\"}\n")
            .is_empty());
    }

    #[test]
    fn encodes_frames() {
        assert_eq!(encode_frame(Some("x"), "y"), "event: x\ndata: y\n\n");
        assert_eq!(encode_frame(None, "y"), "data: y\n\n");
        assert_eq!(encode_frame(None, "a\nb"), "data: a\ndata: b\n\n");
        assert_eq!(
            encode_json(&serde_json::json!({"a": 1, "t": "x\ny"})).expect("serialises"),
            b"data: {\"a\":1,\"t\":\"x\\ny\"}\n\n"
        );
        // What the encoder writes, the decoder reads back.
        let written = encode_frame(Some("e"), "l1\nl2");
        assert_eq!(
            decode_in_chunks(written.as_bytes(), 3),
            vec![frame(Some("e"), "l1\nl2")]
        );
    }
}
