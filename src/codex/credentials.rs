//! Account credential files: parsing what users upload, and writing it back for export.
//!
//! Users bring their ChatGPT/Codex accounts as files in one of two shapes: the CLIProxyAPI format
//! (one object per account, `type: "codex"`, tokens and times at the top level) and the Codex CLI's
//! own `~/.codex/auth.json` (tokens under `tokens`). A file may also hold a JSON array of such
//! objects. Parsing is pure (bytes in, records out) so the import endpoint, the command line and
//! the tests share it, and every entry gets its own result: a bad entry never hides the good ones.
//!
//! The JWT helpers only decode the payload (no signature check): the claims fill in what a file
//! leaves out (e-mail, account id, plan, expiry) and are re-read after each token refresh. They are
//! never used to decide what anyone is allowed to do.
//!
//! Secrets stay out of messages: errors name the field that is wrong but never echo a token, and
//! the record's `Debug` prints `[redacted]` instead of the tokens.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

/// Keys that may carry the access-token expiry, in order of preference.
pub const EXPIRY_KEYS: [&str; 6] = [
    "expired",
    "expire",
    "expires_at",
    "expiresAt",
    "expiry",
    "expires",
];

/// Keys that may carry the time of the last token refresh, in order of preference.
pub const LAST_REFRESH_KEYS: [&str; 3] = ["last_refresh", "lastRefresh", "last_refreshed_at"];

/// The JWT claim namespace where OpenAI puts the ChatGPT account id and plan.
const AUTH_CLAIM: &str = "https://api.openai.com/auth";

/// The JWT claim namespace where OpenAI access tokens carry the e-mail.
const PROFILE_CLAIM: &str = "https://api.openai.com/profile";

/// Numbers above this are unix milliseconds rather than seconds (1e12 s is the year 33658).
const MILLIS_THRESHOLD: f64 = 1e12;

/// How much of an unrecognised timestamp an error message quotes, so a mistake stays readable
/// without letting a pasted secret through whole.
const QUOTE_LIMIT: usize = 40;

/// base64url that accepts payloads with or without `=` padding: issuers differ.
const JWT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One Codex account as imported from a credential file.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountCredentials {
    /// Account e-mail: the file's, else the id_token's.
    pub email: Option<String>,
    /// ChatGPT account / workspace id, sent upstream as `Chatgpt-Account-Id`.
    pub account_id: String,
    /// Subscription plan (`plus`, `pro`, `team`, ...) from the id_token.
    pub plan_type: Option<String>,
    /// Bearer token for the Codex backend.
    pub access_token: String,
    /// Single-use OAuth refresh token.
    pub refresh_token: String,
    /// OIDC token carrying e-mail, account id and plan.
    pub id_token: Option<String>,
    /// Access-token expiry: the file's, else the access token's `exp`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Time of the last token refresh, when the file says.
    pub last_refresh: Option<DateTime<Utc>>,
    /// Whether the file marks the account as switched off.
    pub disabled: bool,
    /// Free-form name the user gave the account.
    pub label: Option<String>,
    /// Per-account upstream proxy (`http://`, `socks5://`, ...).
    pub proxy_url: Option<String>,
}

impl fmt::Debug for AccountCredentials {
    // Written by hand so that logging a record can never leak a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "[redacted]";
        f.debug_struct("AccountCredentials")
            .field("email", &self.email)
            .field("account_id", &self.account_id)
            .field("plan_type", &self.plan_type)
            .field("access_token", &REDACTED)
            .field("refresh_token", &REDACTED)
            .field("id_token", &self.id_token.as_ref().map(|_| REDACTED))
            .field("expires_at", &self.expires_at)
            .field("last_refresh", &self.last_refresh)
            .field("disabled", &self.disabled)
            .field("label", &self.label)
            .field("proxy_url", &self.proxy_url)
            .finish()
    }
}

/// Why a file or one of its entries could not be imported; the message never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The bytes are not JSON; carries the parser's position message.
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    /// The top-level value (or an array element) is not an object.
    #[error("expected a JSON object or an array of objects, found {0}")]
    NotAnObject(&'static str),
    /// The file is an empty array.
    #[error("the file holds an empty array: no account to import")]
    EmptyArray,
    /// The file is for another provider (CLIProxyAPI also writes `claude`, `gemini`, ...).
    #[error("unsupported account type `{0}`: only `codex` accounts can be imported")]
    UnsupportedType(String),
    /// A Codex CLI `auth.json` signed in with an API key instead of a ChatGPT account.
    #[error(
        "this auth.json holds an API key, not ChatGPT tokens: \
         sign in with ChatGPT and upload it again"
    )]
    ApiKeyOnly,
    /// A required field is absent or empty.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType {
        /// The offending key.
        field: &'static str,
        /// What was expected, e.g. "a string".
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// Neither the file nor its tokens name the ChatGPT account.
    #[error("no account_id in the file or its id_token (nor in its access_token)")]
    NoAccountId,
    /// One account object is larger than any real one.
    #[error("the entry is larger than 1 MiB: not an account file")]
    TooLarge,
    /// `proxy_url` is not an http, https, socks5 or socks5h URL with a host.
    #[error("`proxy_url` {0}")]
    BadProxyUrl(&'static str),
    /// A time field holds something that is not a recognised timestamp.
    #[error("unrecognised timestamp in `{field}`: {detail}")]
    BadTimestamp {
        /// The offending key.
        field: &'static str,
        /// The (shortened) value and the accepted forms.
        detail: String,
    },
    /// An error in one element of an array file (1-based position).
    #[error("array entry {index}: {error}")]
    ArrayEntry {
        /// 1-based position in the array.
        index: usize,
        /// What is wrong with that element.
        error: Box<CredentialError>,
    },
}

/// One entry of an uploaded file: where it came from and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEntry {
    /// The file name, with `[N]` appended for the N-th (1-based) element of an array.
    pub source: String,
    /// 1-based position in an array file, `None` for a single-object file.
    pub index: Option<usize>,
    /// The parsed account, or why this entry was rejected.
    pub result: Result<AccountCredentials, CredentialError>,
}

/// What an id_token says about its account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdTokenInfo {
    /// Top-level `email` claim.
    pub email: Option<String>,
    /// `chatgpt_account_id` of the OpenAI auth claim.
    pub account_id: Option<String>,
    /// `chatgpt_plan_type` of the OpenAI auth claim.
    pub plan_type: Option<String>,
}

/// Parses one uploaded file (an object or an array of objects) into one result per entry.
pub fn parse_credentials_file(source: &str, bytes: &[u8]) -> Vec<ImportEntry> {
    let mut entries = Vec::new();
    read_credentials_file(source, bytes, &mut |entry| {
        entries.push(entry);
        std::ops::ControlFlow::Continue(())
    });
    entries
}

/// The largest single account object read (bytes); a real one is a few kilobytes.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Reads a file's entries one at a time and hands each to `each`, which may stop the reading
/// (`Break`). An array is walked element by element without building it in memory: each
/// element is parsed only if it is an object of at most [`MAX_ENTRY_BYTES`], so a huge upload
/// of junk costs little more than its own bytes.
pub fn read_credentials_file(
    source: &str,
    bytes: &[u8],
    each: &mut dyn FnMut(ImportEntry) -> std::ops::ControlFlow<()>,
) {
    use serde::de::Deserializer as _;
    let whole_file = |each: &mut dyn FnMut(ImportEntry) -> std::ops::ControlFlow<()>, result| {
        let _ = each(ImportEntry {
            source: source.to_owned(),
            index: None,
            result,
        });
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let mut walker = ArrayWalker {
            source,
            each,
            seen: 0,
        };
        let outcome = (&mut de)
            .deserialize_seq(&mut walker)
            .and_then(|()| de.end());
        match outcome {
            Ok(()) if walker.seen == 0 => {
                whole_file(walker.each, Err(CredentialError::EmptyArray));
            }
            Ok(()) => {}
            Err(err) if err.to_string() == STOPPED => {}
            Err(err) => whole_file(
                walker.each,
                Err(CredentialError::InvalidJson(err.to_string())),
            ),
        }
        return;
    }
    if bytes.len() > MAX_ENTRY_BYTES {
        return whole_file(each, Err(CredentialError::TooLarge));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => whole_file(each, parse_account(&value)),
        Err(err) => whole_file(each, Err(CredentialError::InvalidJson(err.to_string()))),
    }
}

/// The message that ends an array walk stopped by its consumer.
const STOPPED: &str = "stopped";

/// Walks the elements of a JSON array, parsing each on its own.
struct ArrayWalker<'s, 'f> {
    source: &'s str,
    each: &'f mut dyn FnMut(ImportEntry) -> std::ops::ControlFlow<()>,
    seen: usize,
}

impl<'de> serde::de::Visitor<'de> for &mut ArrayWalker<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of account objects")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de serde_json::value::RawValue>()? {
            self.seen += 1;
            let index = self.seen;
            let text = raw.get();
            let result = if text.len() > MAX_ENTRY_BYTES {
                Err(CredentialError::TooLarge)
            } else if !text.starts_with('{') {
                Err(CredentialError::NotAnObject(json_kind_of(text)))
            } else {
                serde_json::from_str::<Value>(text)
                    .map_err(|e| CredentialError::InvalidJson(e.to_string()))
                    .and_then(|value| parse_account(&value))
            };
            let entry = ImportEntry {
                source: format!("{}[{index}]", self.source),
                index: Some(index),
                result: result.map_err(|error| CredentialError::ArrayEntry {
                    index,
                    error: Box::new(error),
                }),
            };
            if (self.each)(entry).is_break() {
                return Err(serde::de::Error::custom(STOPPED));
            }
        }
        Ok(())
    }
}

/// The JSON type of a raw value, by its first character.
fn json_kind_of(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Parses one account object in either the CLIProxyAPI or the Codex CLI `auth.json` shape.
pub fn parse_account(value: &Value) -> Result<AccountCredentials, CredentialError> {
    let obj = value
        .as_object()
        .ok_or_else(|| CredentialError::NotAnObject(json_type(value)))?;

    if let Some(kind) = str_field(obj, "type")? {
        if !kind.eq_ignore_ascii_case("codex") {
            return Err(CredentialError::UnsupportedType(shorten(&kind)));
        }
    }

    // The Codex CLI shape keeps the tokens in a nested object; times and extras stay on top.
    let tokens = match obj.get("tokens") {
        Some(Value::Object(tokens)) => tokens,
        Some(Value::Null) | None if has_api_key(obj) => return Err(CredentialError::ApiKeyOnly),
        Some(Value::Null) | None => obj,
        Some(other) => {
            return Err(CredentialError::WrongType {
                field: "tokens",
                expected: "an object",
                found: json_type(other),
            })
        }
    };

    let access_token =
        str_field(tokens, "access_token")?.ok_or(CredentialError::Missing("access_token"))?;
    let refresh_token =
        str_field(tokens, "refresh_token")?.ok_or(CredentialError::Missing("refresh_token"))?;
    let id_token = str_field(tokens, "id_token")?;

    let id_info = id_token.as_deref().map(id_token_info).unwrap_or_default();
    let access_claims = jwt_claims(&access_token);
    let access_auth = access_claims.as_ref().and_then(|c| c.get(AUTH_CLAIM));

    let account_id = match str_field(tokens, "account_id")? {
        Some(id) => id,
        None => match str_field(obj, "account_id")? {
            Some(id) => id,
            None => id_info
                .account_id
                .clone()
                .or_else(|| claim_str(access_auth, "chatgpt_account_id"))
                .ok_or(CredentialError::NoAccountId)?,
        },
    };

    // The file's e-mail wins: the user may have corrected it, and old id_tokens can be stale.
    let email = str_field(obj, "email")?.or(id_info.email).or_else(|| {
        claim_str(
            access_claims.as_ref().and_then(|c| c.get(PROFILE_CLAIM)),
            "email",
        )
    });
    let plan_type = id_info
        .plan_type
        .or_else(|| claim_str(access_auth, "chatgpt_plan_type"));

    let expires_at = match timestamp_field(obj, &EXPIRY_KEYS)? {
        Some(at) => Some(at),
        None => access_claims.as_ref().and_then(claims_expiry),
    };
    let last_refresh = timestamp_field(obj, &LAST_REFRESH_KEYS)?;

    Ok(AccountCredentials {
        email,
        account_id,
        plan_type,
        access_token,
        refresh_token,
        id_token,
        expires_at,
        last_refresh,
        disabled: bool_field(obj, "disabled")?,
        label: str_field(obj, "label")?,
        proxy_url: str_field(obj, "proxy_url")?
            .map(|url| check_proxy_url(&url).map(|()| url))
            .transpose()
            .map_err(CredentialError::BadProxyUrl)?,
    })
}

/// Accepts an upstream proxy URL: http, https, socks5 or socks5h, with a host. The reason
/// never repeats the URL (it may hold a password).
pub fn check_proxy_url(text: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(text).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
        return Err("must use http, https, socks5 or socks5h");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host");
    }
    Ok(())
}

/// A proxy URL as the console may show it: scheme, host and port, with any credentials masked.
pub fn masked_proxy_url(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let host = url.host_str()?;
    let credentials = if url.username().is_empty() && url.password().is_none() {
        ""
    } else {
        "***@"
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{credentials}{host}{port}", url.scheme()))
}

impl AccountCredentials {
    /// Writes the record in the CLIProxyAPI format (`type: "codex"`, RFC 3339 times, `expired`).
    pub fn to_cliproxy_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("type".into(), Value::from("codex"));
        if let Some(email) = &self.email {
            obj.insert("email".into(), Value::from(email.as_str()));
        }
        obj.insert("account_id".into(), Value::from(self.account_id.as_str()));
        obj.insert(
            "access_token".into(),
            Value::from(self.access_token.as_str()),
        );
        obj.insert(
            "refresh_token".into(),
            Value::from(self.refresh_token.as_str()),
        );
        if let Some(id_token) = &self.id_token {
            obj.insert("id_token".into(), Value::from(id_token.as_str()));
        }
        if let Some(at) = self.last_refresh {
            obj.insert("last_refresh".into(), Value::from(format_timestamp(at)));
        }
        if let Some(at) = self.expires_at {
            obj.insert("expired".into(), Value::from(format_timestamp(at)));
        }
        obj.insert("disabled".into(), Value::from(self.disabled));
        if let Some(label) = &self.label {
            obj.insert("label".into(), Value::from(label.as_str()));
        }
        if let Some(proxy_url) = &self.proxy_url {
            obj.insert("proxy_url".into(), Value::from(proxy_url.as_str()));
        }
        Value::Object(obj)
    }

    /// File name CLIProxyAPI would use for this account: `codex-<email>-<plan>.json`.
    pub fn export_file_name(&self) -> String {
        let who = self.email.as_deref().unwrap_or(&self.account_id);
        let name = match &self.plan_type {
            Some(plan) => format!("codex-{who}-{plan}.json"),
            None => format!("codex-{who}.json"),
        };
        // Keep the name usable on every file system and inside archives.
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// Decodes a JWT's payload (base64url, no signature check); `None` if it is not a JWT object.
pub fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.trim().split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    let bytes = JWT_BASE64.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        claims @ Value::Object(_) => Some(claims),
        _ => None,
    }
}

/// Reads e-mail, account id and plan from an id_token (all `None` if it does not decode).
pub fn id_token_info(id_token: &str) -> IdTokenInfo {
    let Some(claims) = jwt_claims(id_token) else {
        return IdTokenInfo::default();
    };
    let auth = claims.get(AUTH_CLAIM);
    IdTokenInfo {
        email: claims
            .get("email")
            .and_then(Value::as_str)
            .and_then(non_empty),
        account_id: claim_str(auth, "chatgpt_account_id"),
        plan_type: claim_str(auth, "chatgpt_plan_type"),
    }
}

/// The `exp` claim of an access token, if it decodes and has one.
pub fn access_token_expiry(access_token: &str) -> Option<DateTime<Utc>> {
    jwt_claims(access_token).as_ref().and_then(claims_expiry)
}

/// Parses a timestamp in any accepted form; `Ok(None)` for null, `""` and `0` (meaning unknown).
///
/// Accepted: RFC 3339 with or without fraction and with any offset, `YYYY-MM-DD HH:MM[:SS[.f]]`
/// (and the same with `T`) read as UTC, and unix seconds or milliseconds (above 1e12) as a JSON
/// number or a numeric string. The error says what was found, shortened.
pub fn parse_timestamp(value: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(x) => unix_to_datetime(x).map_err(|why| format!("{n}: {why}")),
            None => Err(format!("{n}: not a usable number")),
        },
        Value::String(s) => parse_timestamp_str(s),
        other => Err(format!(
            "expected a string or a number, found {}",
            json_type(other)
        )),
    }
}

/// Formats a time the way the CLIProxyAPI format stores it (RFC 3339, UTC, fraction only if any).
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_timestamp_str(raw: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let accepted = "expected RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or unix seconds/milliseconds";
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match s.parse::<f64>() {
            Ok(x) => unix_to_datetime(x).map_err(|why| format!("{}: {why}", quote(s))),
            Err(_) => Err(format!("{} ({accepted})", quote(s))),
        };
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    // RFC 3339-like with a space instead of `T`, as some tools write it.
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(at) = DateTime::parse_from_str(s, format) {
            return Ok(Some(at.with_timezone(&Utc)));
        }
    }
    // No offset at all: the convention of the files that use these forms is UTC.
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(Some(naive.and_utc()));
        }
    }
    Err(format!("{} ({accepted})", quote(s)))
}

fn unix_to_datetime(x: f64) -> Result<Option<DateTime<Utc>>, String> {
    if !x.is_finite() || x < 0.0 {
        return Err("not a valid unix time".into());
    }
    if x == 0.0 {
        return Ok(None);
    }
    let millis = if x > MILLIS_THRESHOLD { x } else { x * 1000.0 };
    // Rounding to whole milliseconds is plenty for expiry bookkeeping; the cast saturates and the
    // range check below rejects what it cannot represent.
    match Utc.timestamp_millis_opt(millis.round() as i64) {
        chrono::LocalResult::Single(at) => Ok(Some(at)),
        _ => Err("out of range".into()),
    }
}

fn timestamp_field(
    obj: &Map<String, Value>,
    keys: &[&'static str],
) -> Result<Option<DateTime<Utc>>, CredentialError> {
    for &key in keys {
        if let Some(value) = obj.get(key) {
            let parsed = parse_timestamp(value)
                .map_err(|detail| CredentialError::BadTimestamp { field: key, detail })?;
            if parsed.is_some() {
                return Ok(parsed);
            }
        }
    }
    Ok(None)
}

fn claims_expiry(claims: &Value) -> Option<DateTime<Utc>> {
    let exp = claims.get("exp")?;
    // `exp` is seconds by the JWT spec; reuse the tolerant reader for strings and floats.
    parse_timestamp(exp).ok().flatten()
}

/// A string field: absent, null or blank -> `None`; another JSON type -> an error naming the key.
fn str_field(
    obj: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, CredentialError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(non_empty(s)),
        Some(other) => Err(CredentialError::WrongType {
            field: key,
            expected: "a string",
            found: json_type(other),
        }),
    }
}

fn bool_field(obj: &Map<String, Value>, key: &'static str) -> Result<bool, CredentialError> {
    let wrong = |found| CredentialError::WrongType {
        field: key,
        expected: "true or false",
        found,
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            _ => Err(wrong("another string")),
        },
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(wrong("another number")),
        },
        Some(other) => Err(wrong(json_type(other))),
    }
}

fn has_api_key(obj: &Map<String, Value>) -> bool {
    matches!(obj.get("OPENAI_API_KEY"), Some(Value::String(s)) if !s.trim().is_empty())
}

fn claim_str(claims: Option<&Value>, key: &str) -> Option<String> {
    claims?.get(key)?.as_str().and_then(non_empty)
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= QUOTE_LIMIT {
        s.to_owned()
    } else {
        let head: String = s.chars().take(QUOTE_LIMIT).collect();
        format!("{head}...")
    }
}

fn quote(s: &str) -> String {
    format!("{:?}", shorten(s))
}

#[cfg(test)]
// Test helpers take owned JSON literals, which reads better at the call sites.
#[allow(clippy::needless_pass_by_value, clippy::similar_names)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALICE: &str = include_str!("../../tests/fixtures/auth/codex-alice@example.com-plus.json");
    const BOB: &str =
        include_str!("../../tests/fixtures/auth/codex-3f9a12bc-bob@example.com-pro.json");
    const CLI: &str = include_str!("../../tests/fixtures/auth/codex-cli-auth.json");
    const ARRAY: &str = include_str!("../../tests/fixtures/auth/array-of-two.json");
    const BROKEN: &str = include_str!("../../tests/fixtures/auth/broken-not-json.json");
    const NO_REFRESH: &str = include_str!("../../tests/fixtures/auth/missing-refresh-token.json");

    /// 2030-01-01T00:00:00Z, the expiry of every fixture.
    const Y2030: i64 = 1_893_456_000;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0)
            .single()
            .expect("valid test time")
    }

    fn single(source: &str, text: &str) -> Result<AccountCredentials, CredentialError> {
        let mut entries = parse_credentials_file(source, text.as_bytes());
        assert_eq!(entries.len(), 1, "one entry expected from {source}");
        let entry = entries.remove(0);
        assert_eq!(entry.source, source);
        assert_eq!(entry.index, None);
        entry.result
    }

    fn ts(value: Value) -> Option<DateTime<Utc>> {
        parse_timestamp(&value).expect("timestamp should parse")
    }

    /// Builds an unsigned JWT-shaped token with the given payload.
    fn jwt(payload: Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            b64.encode(br#"{"alg":"none"}"#),
            b64.encode(payload.to_string())
        )
    }

    #[test]
    fn alice_cliproxy_with_offsets() {
        let acc = single("alice.json", ALICE).expect("alice imports");
        assert_eq!(acc.email.as_deref(), Some("alice@example.com"));
        assert_eq!(acc.account_id, "2b7f0c4e-0000-4a1b-9c2d-000000000001");
        assert_eq!(acc.plan_type.as_deref(), Some("plus"));
        assert_eq!(acc.refresh_token, "rt_fake_alice_0001");
        assert!(acc.id_token.is_some());
        assert_eq!(acc.expires_at, Some(at(Y2030)));
        // 2026-11-20T08:00:00+08:00 is midnight UTC.
        assert_eq!(
            acc.last_refresh,
            Some(Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap())
        );
        assert!(!acc.disabled);
        assert_eq!(acc.label, None);
        assert_eq!(acc.proxy_url, None);
    }

    #[test]
    fn bob_compact_written_back_form() {
        let acc = single("bob.json", BOB).expect("bob imports");
        assert_eq!(acc.email.as_deref(), Some("bob@example.com"));
        assert_eq!(acc.account_id, "2b7f0c4e-0000-4a1b-9c2d-000000000002");
        assert_eq!(acc.plan_type.as_deref(), Some("pro"));
        assert!(!acc.disabled);
        assert_eq!(acc.expires_at, Some(at(Y2030)));
        assert_eq!(
            acc.last_refresh,
            Some(Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn codex_cli_auth_json() {
        let acc = single("auth.json", CLI).expect("auth.json imports");
        assert_eq!(acc.email.as_deref(), Some("carol@example.com"));
        assert_eq!(acc.account_id, "2b7f0c4e-0000-4a1b-9c2d-000000000003");
        assert_eq!(acc.plan_type.as_deref(), Some("team"));
        assert_eq!(acc.refresh_token, "rt_fake_carol_0003");
        // No expiry in the file: it comes from the access token's `exp`.
        assert_eq!(acc.expires_at, Some(at(Y2030)));
        let expected = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(acc.last_refresh, Some(expected));
    }

    #[test]
    fn array_of_two_both_imported() {
        let entries = parse_credentials_file("two.json", ARRAY.as_bytes());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].source, "two.json[1]");
        assert_eq!(entries[1].index, Some(2));
        let dave = entries[0].result.as_ref().expect("dave imports");
        let erin = entries[1].result.as_ref().expect("erin imports");
        // The id_tokens say alice@example.com: the file's e-mail wins.
        assert_eq!(dave.email.as_deref(), Some("dave@example.com"));
        assert_eq!(erin.email.as_deref(), Some("erin@example.com"));
        // Likewise the file's account ids win over the tokens' claims.
        assert_eq!(dave.account_id, "2b7f0c4e-0000-4a1b-9c2d-000000000004");
        assert_eq!(erin.account_id, "2b7f0c4e-0000-4a1b-9c2d-000000000005");
        assert_eq!(dave.plan_type.as_deref(), Some("plus"));
        // Unix seconds and `YYYY-MM-DD HH:MM:SS` name the same instant here.
        assert_eq!(dave.expires_at, Some(at(Y2030)));
        assert_eq!(erin.expires_at, Some(at(Y2030)));
    }

    #[test]
    fn broken_json_rejected_with_position() {
        let err = single("broken.json", BROKEN).expect_err("not JSON");
        let msg = err.to_string();
        assert!(msg.starts_with("not valid JSON: "), "{msg}");
        assert!(msg.contains("line 1 column 58"), "{msg}");
    }

    #[test]
    fn missing_refresh_token_rejected() {
        let err = single("nort.json", NO_REFRESH).expect_err("no refresh token");
        assert_eq!(err, CredentialError::Missing("refresh_token"));
        assert_eq!(err.to_string(), "missing refresh_token");
        assert!(!err.to_string().contains("abc"));
    }

    #[test]
    fn bad_array_entry_does_not_affect_the_others() {
        let text = json!([
            {"access_token": "at-1", "refresh_token": "rt-1", "account_id": "a1"},
            {"access_token": "at-2", "account_id": "a2"},
            42
        ])
        .to_string();
        let entries = parse_credentials_file("mixed.json", text.as_bytes());
        assert_eq!(entries.len(), 3);
        assert!(entries[0].result.is_ok());
        let second = entries[1].result.as_ref().unwrap_err().to_string();
        assert_eq!(second, "array entry 2: missing refresh_token");
        let third = entries[2].result.as_ref().unwrap_err().to_string();
        assert_eq!(
            third,
            "array entry 3: expected a JSON object or an array of objects, found a number"
        );
    }

    #[test]
    fn structural_errors() {
        let err = |v: Value| parse_account(&v).expect_err("should fail").to_string();
        assert_eq!(
            err(json!({"refresh_token": "r", "account_id": "a"})),
            "missing access_token"
        );
        assert_eq!(
            err(json!({"access_token": "", "refresh_token": "r", "account_id": "a"})),
            "missing access_token"
        );
        assert!(err(json!({"access_token": "x", "refresh_token": "r"}))
            .starts_with("no account_id in the file or its id_token"));
        assert_eq!(
            err(json!({"type": "claude", "access_token": "x", "refresh_token": "r"})),
            "unsupported account type `claude`: only `codex` accounts can be imported"
        );
        assert_eq!(
            err(json!({"access_token": 5, "refresh_token": "r", "account_id": "a"})),
            "`access_token` must be a string, found a number"
        );
        assert!(err(json!({"OPENAI_API_KEY": "sk-x", "tokens": null})).contains("API key"));
        assert_eq!(
            parse_credentials_file("e.json", b"[]")[0].result,
            Err(CredentialError::EmptyArray)
        );
        assert_eq!(
            parse_credentials_file("s.json", b"\"hi\"")[0]
                .result
                .as_ref()
                .unwrap_err()
                .to_string(),
            "expected a JSON object or an array of objects, found a string"
        );
    }

    #[test]
    fn account_id_and_email_fall_back_to_tokens() {
        let id_token = jwt(json!({
            "email": "zed@example.com",
            AUTH_CLAIM: {"chatgpt_account_id": "acc-from-id", "chatgpt_plan_type": "business"}
        }));
        let access = jwt(json!({"exp": Y2030, AUTH_CLAIM: {"chatgpt_account_id": "acc-from-at"}}));
        let acc = parse_account(&json!({
            "access_token": access, "refresh_token": "r", "id_token": id_token
        }))
        .expect("imports");
        assert_eq!(acc.account_id, "acc-from-id");
        assert_eq!(acc.email.as_deref(), Some("zed@example.com"));
        assert_eq!(acc.plan_type.as_deref(), Some("business"));
        assert_eq!(acc.expires_at, Some(at(Y2030)));

        // Without an id_token the access token's claims still identify the account.
        let access = jwt(json!({
            AUTH_CLAIM: {"chatgpt_account_id": "acc-from-at"},
            PROFILE_CLAIM: {"email": "yan@example.com"}
        }));
        let acc =
            parse_account(&json!({"access_token": access, "refresh_token": "r"})).expect("imports");
        assert_eq!(acc.account_id, "acc-from-at");
        assert_eq!(acc.email.as_deref(), Some("yan@example.com"));
        assert_eq!(acc.expires_at, None);
    }

    #[test]
    fn file_expiry_wins_over_token_exp() {
        let access = jwt(json!({"exp": Y2030}));
        let acc = parse_account(&json!({
            "access_token": access, "refresh_token": "r", "account_id": "a",
            "expires_at": "2029-06-01T00:00:00Z"
        }))
        .expect("imports");
        assert_eq!(
            acc.expires_at,
            Some(Utc.with_ymd_and_hms(2029, 6, 1, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn every_expiry_and_refresh_key() {
        for key in EXPIRY_KEYS {
            let acc = parse_account(&json!({
                "access_token": "x", "refresh_token": "r", "account_id": "a", key: Y2030
            }))
            .expect("imports");
            assert_eq!(acc.expires_at, Some(at(Y2030)), "key {key}");
        }
        for key in LAST_REFRESH_KEYS {
            let acc = parse_account(&json!({
                "access_token": "x", "refresh_token": "r", "account_id": "a", key: Y2030
            }))
            .expect("imports");
            assert_eq!(acc.last_refresh, Some(at(Y2030)), "key {key}");
        }
    }

    #[test]
    fn every_timestamp_form() {
        let t = Some(at(Y2030));
        assert_eq!(ts(json!("2030-01-01T00:00:00Z")), t);
        assert_eq!(ts(json!("2030-01-01T08:00:00+08:00")), t);
        assert_eq!(ts(json!("2029-12-31T19:00:00-05:00")), t);
        assert_eq!(ts(json!("2030-01-01T00:00:00.000Z")), t);
        assert_eq!(ts(json!("2030-01-01T08:00:00.000000+08:00")), t);
        assert_eq!(ts(json!("2030-01-01 08:00:00+08:00")), t);
        assert_eq!(ts(json!("2030-01-01 00:00:00")), t);
        assert_eq!(ts(json!("2030-01-01 00:00")), t);
        assert_eq!(ts(json!("2030-01-01 00:00:00.000")), t);
        assert_eq!(ts(json!("2030-01-01T00:00:00")), t);
        assert_eq!(ts(json!("2030-01-01T00:00")), t);
        assert_eq!(ts(json!(" 2030-01-01T00:00:00Z ")), t);
        assert_eq!(ts(json!(Y2030)), t);
        assert_eq!(ts(json!(Y2030 as f64)), t);
        assert_eq!(ts(json!(Y2030.to_string())), t);
        assert_eq!(ts(json!(Y2030 * 1000)), t);
        assert_eq!(ts(json!((Y2030 * 1000).to_string())), t);
        let frac = ts(json!("2030-01-01T00:00:00.250Z")).expect("some");
        assert_eq!(frac.timestamp_subsec_millis(), 250);
        let frac = ts(json!(1_893_456_000.5)).expect("some");
        assert_eq!(frac.timestamp_subsec_millis(), 500);
    }

    #[test]
    fn seconds_versus_milliseconds() {
        // Exactly 1e12 is still seconds by the rule (> 1e12 means ms); just above is ms.
        let below = ts(json!(999_999_999_999_i64)).expect("some");
        assert!(below.timestamp() > 4_000_000_000_i64, "read as seconds");
        let above = ts(json!(1_000_000_000_001_i64)).expect("some");
        assert_eq!(above.timestamp(), 1_000_000_000);
        assert_eq!(ts(json!(1_700_000_000_000_i64)), Some(at(1_700_000_000)));
        assert_eq!(ts(json!(1_700_000_000_i64)), Some(at(1_700_000_000)));
    }

    #[test]
    fn absent_timestamps() {
        assert_eq!(ts(Value::Null), None);
        assert_eq!(ts(json!("")), None);
        assert_eq!(ts(json!(0)), None);
        // An empty `expired` falls through to the next key, then to the token.
        let acc = parse_account(&json!({
            "access_token": jwt(json!({"exp": Y2030})), "refresh_token": "r",
            "account_id": "a", "expired": ""
        }))
        .expect("imports");
        assert_eq!(acc.expires_at, Some(at(Y2030)));
    }

    #[test]
    fn unrecognised_timestamps() {
        for bad in [
            json!("tomorrow"),
            json!("2030-13-01T00:00:00Z"),
            json!(true),
            json!(-5),
            json!("1.2.3"),
        ] {
            assert!(parse_timestamp(&bad).is_err(), "{bad} should be rejected");
        }
        let err = parse_account(&json!({
            "access_token": "x", "refresh_token": "r", "account_id": "a", "expired": "soon"
        }))
        .expect_err("bad time");
        let msg = err.to_string();
        assert!(
            msg.starts_with("unrecognised timestamp in `expired`: \"soon\""),
            "{msg}"
        );
        let err = parse_account(&json!({
            "access_token": "x", "refresh_token": "r", "account_id": "a", "lastRefresh": [1]
        }))
        .expect_err("bad time");
        assert!(err
            .to_string()
            .starts_with("unrecognised timestamp in `lastRefresh`"));
    }

    #[test]
    fn errors_never_contain_tokens() {
        let secret_at = "SECRET-ACCESS-TOKEN-VALUE";
        let secret_rt = "rt_SECRET_REFRESH_VALUE";
        let cases = [
            json!({"access_token": secret_at, "account_id": "a"}),
            json!({"refresh_token": secret_rt, "account_id": "a"}),
            json!({"access_token": secret_at, "refresh_token": secret_rt}),
            json!({"access_token": secret_at, "refresh_token": secret_rt, "account_id": "a",
                   "expired": "not a time"}),
            json!({"access_token": secret_at, "refresh_token": secret_rt, "account_id": 7}),
            json!({"access_token": secret_at, "refresh_token": secret_rt, "account_id": "a",
                   "disabled": "perhaps"}),
            json!({"type": "gemini", "access_token": secret_at, "refresh_token": secret_rt}),
            json!({"tokens": {"access_token": secret_at, "refresh_token": secret_rt}}),
            json!({"tokens": "nope", "access_token": secret_at}),
            json!([{"access_token": secret_at}]),
        ];
        for case in cases {
            let text = case.to_string();
            for entry in parse_credentials_file("f.json", text.as_bytes()) {
                let msg = entry.result.expect_err("should be rejected").to_string();
                assert!(!msg.contains("SECRET"), "{msg}");
            }
        }
        // A truncated file that stops inside a token does not echo it either.
        let cut = format!(r#"{{"access_token": "{secret_at}", "refresh_token": "{secret_rt}"#);
        let msg = single("cut.json", &cut).unwrap_err().to_string();
        assert!(!msg.contains("SECRET"), "{msg}");
    }

    #[test]
    fn debug_redacts_tokens() {
        let acc = single("alice.json", ALICE).expect("alice imports");
        let shown = format!("{acc:?}");
        assert!(shown.contains("alice@example.com"));
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains(&acc.access_token));
        assert!(!shown.contains(&acc.refresh_token));
        assert!(!shown.contains(acc.id_token.as_deref().unwrap()));
        let entries = parse_credentials_file("alice.json", ALICE.as_bytes());
        assert!(!format!("{entries:?}").contains("rt_fake_alice"));
    }

    #[test]
    fn extras_kept_and_ignored() {
        let acc = parse_account(&json!({
            "type": "codex", "access_token": "x", "refresh_token": "r", "account_id": "a",
            "disabled": true, "label": "team seat 3", "note": "ignored", "priority": 5,
            "proxy_url": "socks5://127.0.0.1:1080", "weight": 2, "headers": {"X": "y"},
            "excluded_models": ["gpt-5"]
        }))
        .expect("imports");
        assert!(acc.disabled);
        assert_eq!(acc.label.as_deref(), Some("team seat 3"));
        assert_eq!(acc.proxy_url.as_deref(), Some("socks5://127.0.0.1:1080"));
        for bad in [
            "file:///etc/passwd",
            "ftp://proxy:21",
            "http://",
            "not a url",
            "socks4://h:1",
        ] {
            assert!(check_proxy_url(bad).is_err(), "{bad}");
        }
        for good in [
            "http://h:3128",
            "https://u:p@h",
            "socks5://127.0.0.1:1080",
            "socks5h://proxy.example:1080",
        ] {
            assert!(check_proxy_url(good).is_ok(), "{good}");
        }
        assert_eq!(
            masked_proxy_url("socks5h://user:secret@proxy.example:1080").as_deref(),
            Some("socks5h://***@proxy.example:1080")
        );
        assert_eq!(
            masked_proxy_url("http://proxy.example:3128").as_deref(),
            Some("http://proxy.example:3128")
        );
        let acc = parse_account(&json!({
            "access_token": "x", "refresh_token": "r", "account_id": "a", "disabled": "false"
        }))
        .expect("imports");
        assert!(!acc.disabled);
    }

    #[test]
    fn export_then_import_round_trips() {
        let mut all = Vec::new();
        for (name, text) in [("a", ALICE), ("b", BOB), ("c", CLI), ("d", ARRAY)] {
            for entry in parse_credentials_file(name, text.as_bytes()) {
                all.push(entry.result.expect("fixture imports"));
            }
        }
        let mut extra = all[0].clone();
        extra.disabled = true;
        extra.label = Some("spare".into());
        extra.proxy_url = Some("http://127.0.0.1:3128".into());
        all.push(extra);
        for acc in all {
            let exported = acc.to_cliproxy_json();
            assert_eq!(exported["type"], "codex");
            assert!(exported.get("expired").is_some());
            let text = serde_json::to_string_pretty(&exported).expect("serialises");
            let back = single("x", &text).expect("re-imports");
            assert_eq!(back, acc);
        }
        let carol = single("c", CLI).unwrap().to_cliproxy_json();
        assert_eq!(carol["expired"], "2030-01-01T00:00:00Z");
        assert_eq!(carol["last_refresh"], "2026-11-20T00:00:00.123456Z");
        assert_eq!(carol["email"], "carol@example.com");
    }

    #[test]
    fn export_file_name_is_cliproxy_style() {
        let acc = single("a", ALICE).unwrap();
        assert_eq!(acc.export_file_name(), "codex-alice@example.com-plus.json");
        let mut odd = acc.clone();
        odd.email = Some("a/b c@example.com".into());
        odd.plan_type = None;
        assert_eq!(odd.export_file_name(), "codex-a_b_c@example.com.json");
    }

    #[test]
    fn jwt_helpers() {
        let info = id_token_info(&single("a", ALICE).unwrap().id_token.unwrap());
        assert_eq!(
            info,
            IdTokenInfo {
                email: Some("alice@example.com".into()),
                account_id: Some("2b7f0c4e-0000-4a1b-9c2d-000000000001".into()),
                plan_type: Some("plus".into()),
            }
        );
        assert_eq!(id_token_info("garbage"), IdTokenInfo::default());
        assert_eq!(jwt_claims("a.b.c"), None);
        assert_eq!(jwt_claims(""), None);
        assert_eq!(jwt_claims(&jwt(json!([1, 2]))), None);
        // Padded payloads are accepted too.
        let padded = format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE.encode(br#"{"exp":1893456000}"#)
        );
        assert_eq!(access_token_expiry(&padded), Some(at(Y2030)));
        assert_eq!(access_token_expiry("not-a-jwt"), None);
    }
}
