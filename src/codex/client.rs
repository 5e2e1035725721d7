//! The HTTP side of the Codex upstream: one shared, pooled client (plus one per distinct proxy),
//! the `/responses` call with the headers the backend expects, and the OAuth refresh call.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::codex::wire::{RateLimits, UpstreamError, UsageReport};
use crate::config::CodexConfig;

/// Sends requests upstream; cheap to clone.
///
/// Each thread gets its own pooled client (per proxy URL): a connection is then driven by the
/// worker that uses it, instead of waking another worker's runtime for every read and write.
#[derive(Clone)]
pub struct CodexClient {
    config: std::sync::Arc<CodexConfig>,
    /// What every `/responses` request carries, parsed once.
    prepared: std::sync::Arc<Prepared>,
    /// The global proxy, if any.
    proxy: Option<String>,
    /// Tells this client's entries apart from another instance's in the thread-local map.
    id: usize,
}

thread_local! {
    /// Clients of this thread, by (instance, proxy URL).
    static CLIENTS: RefCell<HashMap<(usize, Option<String>), reqwest::Client>> =
        RefCell::new(HashMap::new());
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// The URL and fixed headers of `/responses`, parsed and checked once instead of for every
/// request.
struct Prepared {
    responses_url: reqwest::Url,
    headers: HeaderMap,
}

impl Prepared {
    fn new(config: &CodexConfig) -> Result<Self, ClientError> {
        let url = format!("{}/responses", config.base_url.trim_end_matches('/'));
        let responses_url =
            reqwest::Url::parse(&url).map_err(|_| ClientError::Invalid("codex.base_url"))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        for (name, key, value) in [
            ("originator", "codex.originator", &config.originator),
            ("user-agent", "codex.user_agent", &config.user_agent),
            ("version", "codex.client_version", &config.client_version),
        ] {
            let value = HeaderValue::from_str(value).map_err(|_| ClientError::Invalid(key))?;
            headers.insert(name, value);
        }
        Ok(Self {
            responses_url,
            headers,
        })
    }
}

/// Why the upstream client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client itself (an invalid proxy URL, say).
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
    /// A setting that cannot go into a request (named).
    #[error("`{0}` cannot be sent upstream")]
    Invalid(&'static str),
}

/// What a refresh answered.
#[derive(Debug, Clone, Deserialize)]
pub struct RefreshedTokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// A request that never got an answer (connect, timeout, proxy); the message names no URL.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Why a request to the backend got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The network, a timeout or a proxy: the account's trouble for now.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A value the client sent cannot be a header (it is named): the request's fault, which
    /// never reached the backend.
    #[error("the {0} header value cannot be sent")]
    InvalidHeader(&'static str),
}

/// What the models endpoint answered.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelsFetch {
    /// The catalog did not change since the `ETag` sent.
    NotModified,
    /// The catalog's `ModelInfo` objects, as sent, and its `ETag`.
    Fresh {
        models: Vec<serde_json::Value>,
        etag: Option<String>,
    },
}

/// Why a refresh failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token can never work again (reused, expired, invalidated, invalid_grant):
    /// the account must sign in again.
    #[error("refresh token rejected ({0}); the account must sign in again")]
    Permanent(String),
    /// Network trouble or a 5xx: try again later.
    #[error("refresh failed temporarily: {0}")]
    Transient(String),
}

/// The headers that tie a request to its conversation upstream (CODEX.md §7).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConversationHeaders<'a> {
    /// Sent as `session_id` and `session-id`.
    pub session: Option<&'a str>,
    /// `x-codex-turn-state`, the backend's sticky token for one turn.
    pub turn_state: Option<&'a str>,
    /// The client's other Codex headers, forwarded unchanged (checked by
    /// [`crate::conversation::Hints`]).
    pub forward: &'a [crate::conversation::Forwarded],
}

/// Codes with which the OAuth endpoint says a refresh token is dead for good.
const PERMANENT_REFRESH_CODES: &[&str] = &[
    "refresh_token_reused",
    "refresh_token_expired",
    "refresh_token_invalidated",
    "invalid_grant",
];

impl CodexClient {
    /// Builds the shared client from the configuration.
    pub fn new(config: CodexConfig) -> Result<Self, ClientError> {
        let proxy = config
            .proxy_url
            .as_ref()
            .map(|p| p.expose_secret().to_string())
            .filter(|p| !p.trim().is_empty());
        // Fail at start-up, not at the first request, when the global proxy URL is invalid.
        build_client(&config, proxy.as_deref())?;
        Ok(Self {
            prepared: std::sync::Arc::new(Prepared::new(&config)?),
            config: std::sync::Arc::new(config),
            proxy,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The configuration the client was built from.
    pub(crate) fn config(&self) -> &CodexConfig {
        &self.config
    }

    /// The pooled client for the account's proxy, else the global one, else none.
    pub(crate) fn client_for(
        &self,
        proxy_url: Option<&str>,
    ) -> Result<reqwest::Client, TransportError> {
        let proxy = proxy_url
            .filter(|p| !p.trim().is_empty())
            .map(str::to_string)
            .or_else(|| self.proxy.clone());
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            let key = (self.id, proxy);
            if let Some(client) = clients.get(&key) {
                return Ok(client.clone());
            }
            let client = build_client(&self.config, key.1.as_deref())
                .map_err(|_| TransportError("the account's proxy URL is invalid".into()))?;
            clients.insert(key, client.clone());
            Ok(client)
        })
    }

    /// `POST {base_url}/responses` with the account's credentials; the body is already the
    /// normalised Codex request.
    pub async fn responses(
        &self,
        access_token: &str,
        chatgpt_account_id: &str,
        proxy_url: Option<&str>,
        conversation: ConversationHeaders<'_>,
        body: Bytes,
    ) -> Result<reqwest::Response, SendError> {
        // Checked before building: reqwest would only fail at `send`, indistinguishable from a
        // network error, and a client's bad value must never count against an account.
        let value = |value: Option<&str>, name: &'static str| {
            value
                .map(reqwest::header::HeaderValue::from_str)
                .transpose()
                .map_err(|_| SendError::InvalidHeader(name))
        };
        let session = value(conversation.session, "session_id")?;
        let turn_state = value(conversation.turn_state, "x-codex-turn-state")?;
        let client = self.client_for(proxy_url)?;
        let mut request = client
            .post(self.prepared.responses_url.clone())
            .headers(self.prepared.headers.clone())
            .bearer_auth(access_token)
            .header("chatgpt-account-id", chatgpt_account_id)
            .body(body);
        if let Some(session) = session {
            request = request
                .header("session_id", session.clone())
                .header("session-id", session);
        }
        if let Some(turn_state) = turn_state {
            request = request.header("x-codex-turn-state", turn_state);
        }
        for (name, value) in conversation.forward {
            let value = reqwest::header::HeaderValue::from_bytes(value)
                .map_err(|_| SendError::InvalidHeader(name))?;
            request = request.header(*name, value);
        }
        request.send().await.map_err(|e| {
            if e.is_builder() {
                SendError::InvalidHeader("request")
            } else {
                SendError::Transport(TransportError(describe_transport(&e)))
            }
        })
    }

    /// `GET {base_url}/models?client_version=...` with the account's credentials: the
    /// upstream's model catalog for the account's plan. `etag` is the catalog's last `ETag`:
    /// an unchanged catalog answers [`ModelsFetch::NotModified`]. The error is a sentence safe
    /// to log (no URL, no token).
    pub async fn models(
        &self,
        access_token: &str,
        chatgpt_account_id: &str,
        proxy_url: Option<&str>,
        etag: Option<&str>,
    ) -> Result<ModelsFetch, String> {
        let client = self.client_for(proxy_url).map_err(|e| e.0)?;
        let url = format!("{}/models", self.config.base_url.trim_end_matches('/'));
        let mut request = client
            .get(url)
            .query(&[("client_version", self.config.client_version.as_str())])
            .bearer_auth(access_token)
            .header("chatgpt-account-id", chatgpt_account_id)
            .header("accept", "application/json")
            .header("originator", &self.config.originator)
            .header("user-agent", &self.config.user_agent)
            .header("version", &self.config.client_version)
            .timeout(Duration::from_secs(20));
        if let Some(etag) = etag.and_then(|e| reqwest::header::HeaderValue::from_str(e).ok()) {
            request = request.header("if-none-match", etag);
        }
        let response = request.send().await.map_err(|e| describe_transport(&e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(ModelsFetch::NotModified);
        }
        if !status.is_success() {
            return Err(format!("the models endpoint answered {status}"));
        }
        let etag = ["etag", "x-models-etag"].iter().find_map(|name| {
            response
                .headers()
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| "the models endpoint answered an unreadable body".to_owned())?;
        match body.get("models") {
            Some(serde_json::Value::Array(models)) => Ok(ModelsFetch::Fresh {
                models: models.clone(),
                etag,
            }),
            _ => Err("the models endpoint answered without a models list".to_owned()),
        }
    }

    /// `GET` the usage endpoint (CODEX.md §9: the base URL's origin, `/backend-api/wham/usage`)
    /// with the account's credentials: its usage windows, without spending any. The error is a
    /// sentence safe to log (no URL, no token).
    pub async fn usage(
        &self,
        access_token: &str,
        chatgpt_account_id: &str,
        proxy_url: Option<&str>,
    ) -> Result<UsageReport, String> {
        let client = self.client_for(proxy_url).map_err(|e| e.0)?;
        let url = usage_url(&self.config.base_url)
            .ok_or_else(|| "the upstream base URL has no origin".to_owned())?;
        let response = client
            .get(url)
            .bearer_auth(access_token)
            .header("chatgpt-account-id", chatgpt_account_id)
            .header("accept", "application/json")
            .header("originator", &self.config.originator)
            .header("user-agent", &self.config.user_agent)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| describe_transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the usage endpoint answered {status}"));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| "the usage endpoint answered an unreadable body".to_owned())?;
        RateLimits::from_usage(&body, chrono::Utc::now())
            .ok_or_else(|| "the usage endpoint answered without rate limits".to_owned())
    }

    /// Exchanges a refresh token for new tokens at the OAuth endpoint.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        proxy_url: Option<&str>,
    ) -> Result<RefreshedTokens, RefreshError> {
        let client = self
            .client_for(proxy_url)
            .map_err(|e| RefreshError::Transient(e.0))?;
        let form = [
            ("client_id", self.config.client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", "openid profile email"),
        ];
        let response = client
            .post(&self.config.oauth_token_url)
            .header("accept", "application/json")
            .form(&form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| RefreshError::Transient(describe_transport(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| RefreshError::Transient(describe_transport(&e)))?;
        if status.is_success() {
            let tokens: RefreshedTokens = serde_json::from_slice(&body).map_err(|_| {
                RefreshError::Transient("the token endpoint answered an unreadable body".into())
            })?;
            if tokens.access_token.is_empty() {
                return Err(RefreshError::Transient(
                    "the token endpoint answered without an access token".into(),
                ));
            }
            return Ok(tokens);
        }
        let parsed = UpstreamError::from_body(&body);
        let code = parsed
            .as_ref()
            .and_then(|e| e.code.clone().or_else(|| e.kind.clone()))
            .or_else(|| {
                // The plain OAuth shape: {"error": "invalid_grant", "error_description": ...}
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            })
            .unwrap_or_default();
        let message_code = parsed
            .as_ref()
            .map(|e| e.message.clone())
            .filter(|m| PERMANENT_REFRESH_CODES.iter().any(|c| m.contains(c)));
        if let Some(code) = PERMANENT_REFRESH_CODES
            .iter()
            .find(|c| code == **c || message_code.as_deref().is_some_and(|m| m.contains(**c)))
        {
            return Err(RefreshError::Permanent((*code).to_string()));
        }
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(RefreshError::Transient(format!(
                "the token endpoint answered {status}"
            )));
        }
        // Any other 4xx without a known code: the token is not accepted; treat as permanent so
        // that a dead account does not hammer the endpoint, and keep the status for the admin.
        Err(RefreshError::Permanent(if code.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            code
        }))
    }
}

/// The usage endpoint of a base URL: its origin and `/backend-api/wham/usage`.
fn usage_url(base_url: &str) -> Option<String> {
    let parsed = url::Url::parse(base_url).ok()?;
    let origin = parsed.origin();
    origin
        .is_tuple()
        .then(|| format!("{}/backend-api/wham/usage", origin.ascii_serialization()))
}

fn build_client(
    config: &CodexConfig,
    proxy: Option<&str>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(config.connect_timeout_seconds))
        .read_timeout(Duration::from_secs(config.read_timeout_seconds))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256);
    if let Some(proxy) = proxy {
        builder = builder.proxy(reqwest::Proxy::all(proxy)?);
    }
    builder.build()
}

/// A transport error as a sentence without the URL (which may carry credentials of a proxy).
pub(crate) fn describe_transport(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "broke off while reading"
    } else {
        "failed"
    };
    format!("upstream request {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_endpoint_is_at_the_base_urls_origin() {
        assert_eq!(
            usage_url("https://chatgpt.com/backend-api/codex").as_deref(),
            Some("https://chatgpt.com/backend-api/wham/usage")
        );
        assert_eq!(
            usage_url("http://127.0.0.1:8081/backend-api/codex/").as_deref(),
            Some("http://127.0.0.1:8081/backend-api/wham/usage")
        );
        assert_eq!(usage_url("not a url"), None);
    }

    #[actix_web::test]
    async fn responses_go_to_the_base_url_with_the_configured_headers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(head).unwrap().to_ascii_lowercase()
        });
        let config = CodexConfig {
            base_url: format!("http://127.0.0.1:{port}/backend-api/codex/"),
            originator: "orig-x".into(),
            user_agent: "agent-y/1.0".into(),
            client_version: "9.8.7".into(),
            ..CodexConfig::default()
        };
        let client = CodexClient::new(config).unwrap();
        let answer = client
            .responses(
                "tok",
                "acct-1",
                None,
                ConversationHeaders::default(),
                Bytes::from_static(b"{}"),
            )
            .await
            .expect("answered");
        assert_eq!(answer.status(), 200);
        let head = server.await.unwrap();
        assert!(
            head.starts_with("post /backend-api/codex/responses http/1.1\r\n"),
            "{head}"
        );
        for line in [
            "authorization: bearer tok",
            "chatgpt-account-id: acct-1",
            "content-type: application/json",
            "accept: text/event-stream",
            "originator: orig-x",
            "user-agent: agent-y/1.0",
            "version: 9.8.7",
        ] {
            assert!(
                head.contains(&format!("\r\n{line}\r\n")),
                "{line} missing: {head}"
            );
        }
    }

    #[test]
    fn a_setting_that_cannot_be_sent_is_refused_when_the_client_is_built() {
        let config = CodexConfig {
            user_agent: "a\nb".into(),
            ..CodexConfig::default()
        };
        let err = CodexClient::new(config).err().expect("refused");
        assert!(
            matches!(err, ClientError::Invalid("codex.user_agent")),
            "{err}"
        );
        let config = CodexConfig {
            base_url: "no url".into(),
            ..CodexConfig::default()
        };
        let err = CodexClient::new(config).err().expect("refused");
        assert!(
            matches!(err, ClientError::Invalid("codex.base_url")),
            "{err}"
        );
    }

    #[actix_web::test]
    async fn a_value_that_cannot_be_a_header_is_the_requests_fault() {
        let config = CodexConfig {
            // Nothing listens there: a request that left would fail as a transport error.
            base_url: "http://127.0.0.1:9/backend-api/codex".into(),
            ..CodexConfig::default()
        };
        let client = CodexClient::new(config).unwrap();
        let bad = ConversationHeaders {
            session: Some("a\u{1}b"),
            turn_state: None,
            forward: &[],
        };
        let sent = client
            .responses("at", "acct", None, bad, Bytes::new())
            .await;
        assert!(matches!(sent, Err(SendError::InvalidHeader("session_id"))));
        let bad = ConversationHeaders {
            session: Some("fine"),
            turn_state: Some("bad\nvalue"),
            forward: &[],
        };
        let sent = client
            .responses("at", "acct", None, bad, Bytes::new())
            .await;
        assert!(matches!(
            sent,
            Err(SendError::InvalidHeader("x-codex-turn-state"))
        ));
        let fine = ConversationHeaders {
            session: Some("fine"),
            turn_state: None,
            forward: &[],
        };
        let sent = client
            .responses("at", "acct", None, fine, Bytes::new())
            .await;
        assert!(matches!(sent, Err(SendError::Transport(_))));
    }
}
