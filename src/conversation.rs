//! The conversation a request belongs to, from the first hint present: the body's
//! `prompt_cache_key` (both `/v1/chat/completions` and `/v1/responses`), the Codex CLI's
//! session headers, and otherwise a key derived from the conversation itself (a hash of the API
//! key, the model family and the conversation's opening: the instructions, the system and
//! developer messages before the first user message, and that message), which is the same on
//! every turn of a client that resends the history. Every key is scoped by API key, so two
//! tenants never share a pin.
//!
//! Client-supplied values are checked before anything else happens with the request (visible
//! ASCII, at most [`MAX_HINT_LEN`] characters): a value that could not be sent as a header
//! upstream answers 400 and never reaches an account. Upstream, every request carries a stable
//! `prompt_cache_key` (the client's, its session id, or the derived one) and the session
//! header, so the backend's prompt cache routes the conversation too.

use actix_web::http::header::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::codex::translate::split_model_effort;
use crate::codex::wire::{CodexRequest, ContentItem, InputItem};
use crate::error::AppError;

/// The longest hint accepted, in characters.
pub const MAX_HINT_LEN: usize = 256;

/// The session headers that name a conversation, strongest first (CODEX.md §7; the underscore
/// forms are what older clients and other gateways send).
pub const SESSION_HEADERS: [&str; 4] = ["session_id", "session-id", "conversation_id", "thread-id"];

/// The backend's sticky token for one turn: passed through as is.
pub const TURN_STATE_HEADER: &str = "x-codex-turn-state";

/// The Codex CLI's other request headers, forwarded upstream unchanged (CODEX.md §7), with the
/// longest value accepted. Identifiers must be visible ASCII; the metadata headers may also
/// hold spaces and non-ASCII bytes (a JSON object naming the workspace), but no control
/// characters. A value that breaks its rule answers 400 naming the header, before anything else
/// happens with the request, as the session headers do.
pub const FORWARDED_HEADERS: [(&str, usize, Charset); 8] = [
    ("thread-id", MAX_HINT_LEN, Charset::Visible),
    ("x-client-request-id", MAX_HINT_LEN, Charset::Visible),
    ("x-codex-window-id", MAX_HINT_LEN, Charset::Visible),
    ("x-codex-parent-thread-id", MAX_HINT_LEN, Charset::Visible),
    ("x-openai-subagent", MAX_HINT_LEN, Charset::Visible),
    (
        "x-openai-internal-codex-responses-lite",
        MAX_HINT_LEN,
        Charset::Visible,
    ),
    ("x-codex-beta-features", MAX_METADATA_LEN, Charset::Text),
    ("x-codex-turn-metadata", MAX_METADATA_LEN, Charset::Text),
];

/// The longest metadata header accepted, in bytes.
pub const MAX_METADATA_LEN: usize = 8 * 1024;

/// What a forwarded header's value may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Visible ASCII only (no spaces).
    Visible,
    /// Anything but control characters.
    Text,
}

/// A header forwarded upstream unchanged: its name and its value's bytes (checked).
pub type Forwarded = (&'static str, Vec<u8>);

/// The key of a turn's state in the pool, scoped by API key.
pub fn turn_key(api_key_id: i32, turn_state: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"turn\0");
    hasher.update(api_key_id.to_le_bytes());
    hasher.update(turn_state.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The hints a client sent, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// The body's `prompt_cache_key`.
    pub prompt_cache_key: Option<String>,
    /// The first session header present (see [`SESSION_HEADERS`]).
    pub session: Option<String>,
    /// `x-codex-turn-state`.
    pub turn_state: Option<String>,
    /// The other headers forwarded unchanged ([`FORWARDED_HEADERS`]), in that order.
    pub forward: Vec<Forwarded>,
}

impl Hints {
    /// Reads and checks the hints of a request's headers, before its body is read.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, AppError> {
        Self::read(headers, None)
    }

    /// Adds the body's `prompt_cache_key`, checked.
    pub fn with_prompt_cache_key(mut self, key: Option<&str>) -> Result<Self, AppError> {
        if let Some(key) = key {
            self.prompt_cache_key =
                checked(key.as_bytes(), "prompt_cache_key", "`prompt_cache_key`")?;
        }
        Ok(self)
    }

    /// Reads and checks the hints of a request: its headers and its body's `prompt_cache_key`.
    /// Empty values count as absent.
    pub fn read(headers: &HeaderMap, prompt_cache_key: Option<&str>) -> Result<Self, AppError> {
        let header = |name: &'static str| -> Result<Option<String>, AppError> {
            match headers.get(name) {
                None => Ok(None),
                Some(value) => checked(value.as_bytes(), name, &format!("the {name} header")),
            }
        };
        let mut session = None;
        for name in SESSION_HEADERS {
            let value = header(name)?;
            session = session.or(value);
        }
        let turn_state = header(TURN_STATE_HEADER)?;
        let mut forward = Vec::new();
        for (name, max, charset) in FORWARDED_HEADERS {
            if let Some(value) = headers.get(name) {
                if let Some(value) = forwarded(value.as_bytes(), name, max, charset)? {
                    forward.push((name, value));
                }
            }
        }
        let prompt_cache_key = match prompt_cache_key {
            None => None,
            Some(key) => checked(key.as_bytes(), "prompt_cache_key", "`prompt_cache_key`")?,
        };
        Ok(Self {
            prompt_cache_key,
            session,
            turn_state,
            forward,
        })
    }

    /// The session header to send upstream: the client's, else its `prompt_cache_key`.
    pub fn upstream_session(&self) -> Option<&str> {
        self.session.as_deref().or(self.prompt_cache_key.as_deref())
    }
}

/// Where a conversation's key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The body's `prompt_cache_key`.
    PromptCacheKey,
    /// A session header.
    Session,
    /// Derived from the conversation's opening.
    Derived,
}

/// The conversation of one request: its pin in the pool and what goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The key of its pin in the account pool, scoped by API key.
    pub pin: u64,
    /// Where the key came from.
    pub source: Source,
    /// The `prompt_cache_key` sent upstream.
    pub prompt_cache_key: String,
    /// The session header sent upstream.
    pub session: String,
    /// `x-codex-turn-state`, passed through.
    pub turn_state: Option<String>,
    /// The turn's key in the pool (from `turn_state`, scoped by API key).
    pub turn: Option<u64>,
    /// The API key the conversation belongs to (the scope of its keys).
    pub api_key_id: i32,
    /// The client's other headers, forwarded unchanged.
    pub forward: Vec<Forwarded>,
}

impl Conversation {
    /// The pool key of a turn state the backend handed out for this conversation's request.
    pub fn turn_key(&self, turn_state: &str) -> u64 {
        turn_key(self.api_key_id, turn_state)
    }
}

impl Conversation {
    /// The conversation of a request with these (checked) hints, by `api_key_id`, asking
    /// `opening` for the conversation's opening only when no hint names it.
    pub fn resolve(
        hints: &Hints,
        api_key_id: i32,
        model: &str,
        opening: impl FnOnce(&mut Opening),
    ) -> Self {
        let (source, value) = match (&hints.prompt_cache_key, &hints.session) {
            (Some(key), _) => (Source::PromptCacheKey, key.clone()),
            (None, Some(session)) => (Source::Session, session.clone()),
            (None, None) => {
                let mut hasher = Opening::new(api_key_id, model);
                opening(&mut hasher);
                (Source::Derived, hasher.finish())
            }
        };
        let mut pin = Sha256::new();
        pin.update(b"pin\0");
        pin.update(api_key_id.to_le_bytes());
        pin.update([source as u8]);
        pin.update(value.as_bytes());
        let digest = pin.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Self {
            pin: u64::from_le_bytes(first),
            source,
            session: hints.session.clone().unwrap_or_else(|| value.clone()),
            prompt_cache_key: value,
            turn_state: hints.turn_state.clone(),
            turn: hints
                .turn_state
                .as_deref()
                .map(|state| turn_key(api_key_id, state)),
            api_key_id,
            forward: hints.forward.clone(),
        }
    }
}

/// The most of one part of the opening that is hashed: enough to tell conversations apart,
/// without hashing a pasted file or an image in full.
const MAX_PART_BYTES: usize = 16 * 1024;

/// Hashes a conversation's opening into a derived key: the API key, the model family (the model
/// without its effort suffix), the instructions, the system and developer messages before the
/// first user message, and that message. Feed the input in order; later items change nothing.
pub struct Opening {
    hasher: Sha256,
    done: bool,
}

impl Opening {
    /// A hasher for a conversation of this key and model.
    pub fn new(api_key_id: i32, model: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"opening\0");
        hasher.update(api_key_id.to_le_bytes());
        hasher.update(split_model_effort(model).0.as_bytes());
        hasher.update(b"\0");
        Self {
            hasher,
            done: false,
        }
    }

    /// One part of the opening, tagged with its role.
    fn part(&mut self, role: &str, text: &str) {
        let bytes = text.as_bytes();
        self.hasher.update(role.as_bytes());
        self.hasher.update(b"\0");
        self.hasher
            .update(&bytes[..bytes.len().min(MAX_PART_BYTES)]);
        self.hasher.update(b"\0");
    }

    /// The instructions.
    pub fn instructions(&mut self, text: &str) {
        if !text.is_empty() {
            self.part("instructions", text);
        }
    }

    /// A message's parts, in order; answers whether more input matters (false once the first
    /// user message was taken).
    pub fn message<'a>(&mut self, role: &str, parts: impl IntoIterator<Item = &'a str>) -> bool {
        if self.done {
            return false;
        }
        let role = match role {
            "system" | "developer" => "developer",
            "user" => "user",
            // Anything before the first user message other than instructions is left out.
            _ => return true,
        };
        for text in parts {
            self.part(role, text);
        }
        self.done = role == "user";
        !self.done
    }

    /// The opening of a Codex request built from a Chat Completions request.
    pub fn codex_request(&mut self, request: &CodexRequest) {
        self.instructions(&request.instructions);
        for item in &request.input {
            let InputItem::Message { role, content } = item else {
                continue;
            };
            let parts = content.iter().map(|part| match part {
                ContentItem::InputText { text } | ContentItem::OutputText { text } => text.as_str(),
                ContentItem::InputImage { image_url } => image_url.as_str(),
                ContentItem::InputFile {
                    file_data,
                    file_id,
                    filename,
                } => file_id
                    .as_deref()
                    .or(file_data.as_deref())
                    .or(filename.as_deref())
                    .unwrap_or(""),
            });
            if !self.message(role, parts) {
                break;
            }
        }
    }

    /// The opening of a normalised Responses body (`instructions` and `input` items).
    pub fn responses_body(&mut self, body: &Value) {
        self.instructions(
            body.get("instructions")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        let Some(items) = body.get("input").and_then(Value::as_array) else {
            return;
        };
        for item in items {
            let kind = item
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("message");
            let Some(role) = item.get("role").and_then(Value::as_str) else {
                continue;
            };
            if kind != "message" {
                continue;
            }
            let parts: Vec<&str> = match item.get("content") {
                Some(Value::String(text)) => vec![text.as_str()],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| {
                        ["text", "image_url", "file_id", "file_data", "filename"]
                            .iter()
                            .find_map(|k| p.get(*k).and_then(Value::as_str))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !self.message(role, parts) {
                break;
            }
        }
    }

    /// The derived key: stable, visible ASCII, well under the length limit.
    pub fn finish(self) -> String {
        let digest = self.hasher.finalize();
        format!("gpt2api-{}", hex::encode(&digest[..16]))
    }
}

/// A forwarded header's value when it keeps its rule (see [`FORWARDED_HEADERS`]); `None` when
/// empty; 400 naming the header otherwise. The value is never echoed back.
fn forwarded(
    value: &[u8],
    name: &str,
    max: usize,
    charset: Charset,
) -> Result<Option<Vec<u8>>, AppError> {
    if value.is_empty() {
        return Ok(None);
    }
    let fits = match charset {
        Charset::Visible => value.iter().all(|b| (0x21..=0x7e).contains(b)),
        Charset::Text => value
            .iter()
            .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)),
    };
    if value.len() > max || !fits {
        let rule = match charset {
            Charset::Visible => "visible ASCII characters (no spaces or control characters)",
            Charset::Text => "bytes without control characters",
        };
        return Err(AppError::invalid_request(format!(
            "the {name} header must be at most {max} {rule}"
        ))
        .with_param(name));
    }
    Ok(Some(value.to_vec()))
}

/// A hint's value when it is 1 to [`MAX_HINT_LEN`] visible ASCII characters; `None` when empty;
/// 400 naming `param` otherwise. The value is never echoed back.
fn checked(value: &[u8], param: &str, what: &str) -> Result<Option<String>, AppError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_HINT_LEN || !value.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(AppError::invalid_request(format!(
            "{what} must be at most {MAX_HINT_LEN} visible ASCII characters (no spaces or control characters)"
        ))
        .with_param(param));
    }
    // Only visible ASCII is left, which is UTF-8.
    Ok(Some(String::from_utf8_lossy(value).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hints_are_read_strongest_first() {
        let h = Hints::read(
            &headers(&[("thread-id", b"t-1"), ("session-id", b"s-1")]),
            Some("pck-1"),
        )
        .unwrap();
        assert_eq!(h.prompt_cache_key.as_deref(), Some("pck-1"));
        assert_eq!(h.session.as_deref(), Some("s-1"));
        assert_eq!(h.upstream_session(), Some("s-1"));
        let h = Hints::read(&headers(&[("conversation_id", b"c")]), None).unwrap();
        assert_eq!(h.session.as_deref(), Some("c"));
        let h = Hints::read(&HeaderMap::new(), Some("k")).unwrap();
        assert_eq!(h.upstream_session(), Some("k"));
        let h = Hints::read(&headers(&[("session_id", b"")]), Some("")).unwrap();
        assert_eq!(h, Hints::default(), "empty values are absent");
    }

    fn derived(api_key_id: i32, body: &Value) -> Conversation {
        Conversation::resolve(&Hints::default(), api_key_id, "gpt-5-high", |o| {
            o.responses_body(body);
        })
    }

    fn turn(history: &[(&str, &str)]) -> Value {
        let input: Vec<Value> = history
            .iter()
            .map(|(role, text)| {
                let kind = if *role == "assistant" {
                    "output_text"
                } else {
                    "input_text"
                };
                serde_json::json!({"type": "message", "role": role,
                    "content": [{"type": kind, "text": text}]})
            })
            .collect();
        serde_json::json!({"instructions": "be brief", "input": input})
    }

    #[test]
    fn the_derived_key_stays_the_same_on_every_turn_of_a_resent_history() {
        let one = turn(&[("developer", "sys"), ("user", "hello")]);
        let two = turn(&[
            ("developer", "sys"),
            ("user", "hello"),
            ("assistant", "hi!"),
            ("user", "more"),
        ]);
        let first = derived(1, &one);
        assert_eq!(first.source, Source::Derived);
        assert_eq!(first, derived(1, &two));
        assert!(first.prompt_cache_key.starts_with("gpt2api-"));
        assert!(first.prompt_cache_key.len() <= MAX_HINT_LEN);
        assert_eq!(first.session, first.prompt_cache_key);
        // Another opening, another key, another model family or tenant: another conversation.
        let other = turn(&[("developer", "sys"), ("user", "good bye")]);
        assert_ne!(first.pin, derived(1, &other).pin);
        assert_ne!(first.pin, derived(2, &one).pin);
        let mini = Conversation::resolve(&Hints::default(), 1, "gpt-5-mini", |o| {
            o.responses_body(&one);
        });
        assert_ne!(first.pin, mini.pin);
        // The effort suffix is not the family.
        let low = Conversation::resolve(&Hints::default(), 1, "gpt-5(low)", |o| {
            o.responses_body(&one);
        });
        assert_eq!(first.pin, low.pin);
    }

    #[test]
    fn both_endpoints_derive_the_same_opening() {
        let chat = crate::codex::openai::ChatRequest::from_value(serde_json::json!({
            "model": "gpt-5",
            "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}],
        }))
        .unwrap();
        let codex = crate::codex::translate::chat_to_codex(&chat).unwrap();
        let via_chat = Conversation::resolve(&Hints::default(), 1, "gpt-5", |o| {
            o.codex_request(&codex);
        });
        let responses = serde_json::to_value(&codex).unwrap();
        assert_eq!(via_chat, derived(1, &responses));
    }

    #[test]
    fn a_hint_wins_and_is_scoped_by_api_key() {
        let hints = Hints {
            prompt_cache_key: Some("conv-1".into()),
            session: Some("sess-1".into()),
            turn_state: Some("ts".into()),
            forward: vec![("x-codex-window-id", b"w:1".to_vec())],
        };
        let called = std::cell::Cell::new(false);
        let c = Conversation::resolve(&hints, 1, "gpt-5", |_| called.set(true));
        assert!(!called.get(), "a hinted conversation is not hashed");
        assert_eq!(c.source, Source::PromptCacheKey);
        assert_eq!(
            (c.prompt_cache_key.as_str(), c.session.as_str()),
            ("conv-1", "sess-1")
        );
        assert_eq!(c.turn_state.as_deref(), Some("ts"));
        assert_eq!(c.turn, Some(turn_key(1, "ts")));
        assert_eq!(c.turn_key("ts"), turn_key(1, "ts"));
        assert_eq!(c.forward, hints.forward);
        let other_key = Conversation::resolve(&hints, 2, "gpt-5", |_| {});
        assert_ne!(c.pin, other_key.pin);
        assert_ne!(c.turn, other_key.turn, "turns are scoped by API key");
        let session_only = Hints {
            session: Some("sess-1".into()),
            ..Hints::default()
        };
        let s = Conversation::resolve(&session_only, 1, "gpt-5", |_| {});
        assert_eq!(s.source, Source::Session);
        assert_eq!(
            (s.prompt_cache_key.as_str(), s.session.as_str()),
            ("sess-1", "sess-1")
        );
    }

    #[test]
    fn bad_values_are_refused_and_named() {
        let long = "a".repeat(MAX_HINT_LEN + 1);
        for key in [
            "a\u{1}b",
            "tab\there",
            "two words",
            "caf\u{e9}",
            long.as_str(),
        ] {
            let e = Hints::read(&HeaderMap::new(), Some(key)).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::InvalidRequest, "{key:?}");
            assert!(e.message().contains("prompt_cache_key"), "{}", e.message());
            assert!(!e.message().contains(key));
        }
        assert!(Hints::read(&HeaderMap::new(), Some(&"a".repeat(MAX_HINT_LEN))).is_ok());
        for name in ["session_id", "thread-id", "x-codex-turn-state"] {
            let e = Hints::read(&headers(&[(name, b"caf\xc3\xa9")]), None).unwrap_err();
            assert!(e.message().contains(name), "{}", e.message());
        }
    }

    #[test]
    fn the_clis_headers_are_kept_in_order_and_checked_by_their_rule() {
        let h = Hints::read(
            &headers(&[
                (
                    "x-codex-turn-metadata",
                    "{\"cwd\":\"/home/j\u{f6}rg/my dir\"}".as_bytes(),
                ),
                ("x-client-request-id", b"thread-1"),
                ("x-openai-subagent", b""),
                ("x-codex-parent-thread-id", b"parent-1"),
                ("x-unknown", b"not forwarded"),
            ]),
            None,
        )
        .unwrap();
        let names: Vec<&str> = h.forward.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "x-client-request-id",
                "x-codex-parent-thread-id",
                "x-codex-turn-metadata"
            ]
        );
        assert_eq!(
            h.forward[2].1,
            "{\"cwd\":\"/home/j\u{f6}rg/my dir\"}".as_bytes()
        );

        let long_id = "a".repeat(MAX_HINT_LEN + 1);
        let long_meta = "a".repeat(MAX_METADATA_LEN + 1);
        let refused: [(&'static str, &[u8]); 4] = [
            ("x-codex-window-id", b"two words"),
            ("x-client-request-id", long_id.as_bytes()),
            ("x-codex-parent-thread-id", "caf\u{e9}".as_bytes()),
            ("x-codex-turn-metadata", long_meta.as_bytes()),
        ];
        for (name, value) in refused {
            let e = Hints::read(&headers(&[(name, value)]), None).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::InvalidRequest, "{name}");
            assert!(e.message().contains(name), "{}", e.message());
        }
        let meta = "a".repeat(MAX_METADATA_LEN);
        assert!(Hints::read(
            &headers(&[("x-codex-turn-metadata", meta.as_bytes())]),
            None
        )
        .is_ok());
    }
}
