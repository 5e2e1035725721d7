//! Signing an account in with the Codex CLI's own OAuth (CODEX.md §8), the pure part: PKCE
//! codes and state, the authorize URL, the pasted redirect URL, the device-code answers and the
//! token endpoint's answers. The HTTP calls are in [`crate::codex::client`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::codex::credentials::{parse_account, AccountCredentials};

/// Where the browser lands after signing in (a page that fails to load: the operator pastes
/// its address).
pub const PKCE_REDIRECT_URI: &str = "http://localhost:1455/auth/callback";

/// The redirect URI of the device flow's code exchange.
pub const DEVICE_REDIRECT_URI: &str = "https://auth.openai.com/deviceauth/callback";

/// The scopes the Codex CLI asks for.
const SCOPE: &str = "openid profile email offline_access";

/// The device flow's poll interval when the upstream does not give one.
const DEFAULT_INTERVAL_SECONDS: f64 = 5.0;

/// A PKCE verifier and its S256 challenge.
#[derive(Clone)]
pub struct Pkce {
    /// base64url (no padding) of 64 random bytes; never leaves the server.
    pub verifier: String,
    /// base64url (no padding) of the verifier's SHA-256.
    pub challenge: String,
}

impl Pkce {
    /// A new random verifier and its challenge.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 64];
        rand::thread_rng().fill_bytes(&mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        Self {
            challenge: challenge_of(&verifier),
            verifier,
        }
    }
}

/// The S256 challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A new random state: base64url of 32 random bytes.
pub fn new_state() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The address the operator opens to sign in.
pub fn authorize_url(base: &str, client_id: &str, challenge: &str, state: &str) -> String {
    // A misconfigured base still gives a link, which then visibly fails to open.
    let Ok(mut url) = url::Url::parse(base) else {
        return format!("{base}?state={state}");
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", PKCE_REDIRECT_URI)
        .append_pair("scope", SCOPE)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("id_token_add_organizations", "true")
        .append_pair("codex_cli_simplified_flow", "true")
        .append_pair("state", state)
        .append_pair("originator", "codex_cli_rs");
    // The Codex CLI encodes spaces as %20.
    url.to_string().replace('+', "%20")
}

/// The page where the operator types the device flow's user code: `/codex/device` on the
/// origin of the user-code endpoint.
pub fn verification_url(usercode_url: &str) -> String {
    match url::Url::parse(usercode_url) {
        Ok(url) => format!("{}/codex/device", url.origin().ascii_serialization()),
        Err(_) => "https://auth.openai.com/codex/device".into(),
    }
}

/// What a pasted redirect URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// Signed in: the code to exchange and the state to check.
    Code {
        /// The authorization code (a secret).
        code: String,
        /// The state the upstream sent back.
        state: String,
    },
    /// The upstream refused: its `error` and `error_description`.
    Denied {
        /// The OAuth error (`access_denied`, ...).
        error: String,
        /// Its explanation (`missing_codex_entitlement`, ...), when given.
        description: Option<String>,
        /// The state the upstream sent back, when it did.
        state: Option<String>,
    },
}

/// Why a pasted redirect URL cannot be used; the message never quotes the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not a URL at all.
    #[error(
        "the pasted text is not a URL: paste the whole address of the page that failed to load"
    )]
    NotAUrl,
    /// A URL without `code` (or `state`) nor `error`.
    #[error("the pasted URL has no `{0}` parameter: paste the whole address of the page that failed to load")]
    Missing(&'static str),
}

/// Reads a pasted redirect URL (`http://localhost:1455/auth/callback?code=...&state=...`); a
/// bare query string (`code=...&state=...`) is accepted too.
pub fn parse_callback(pasted: &str) -> Result<Callback, CallbackError> {
    let pasted = pasted.trim();
    let query = if let Ok(url) = url::Url::parse(pasted) {
        url.query().unwrap_or_default().to_string()
    } else if pasted.contains("code=") || pasted.contains("error=") {
        pasted.trim_start_matches('?').to_string()
    } else {
        return Err(CallbackError::NotAUrl);
    };
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.trim().to_string();
        if value.is_empty() {
            continue;
        }
        match key.as_ref() {
            "code" => code = Some(value),
            "state" => state = Some(value),
            "error" => error = Some(value),
            "error_description" => description = Some(value),
            _ => {}
        }
    }
    if let Some(error) = error {
        return Ok(Callback::Denied {
            error,
            description,
            state,
        });
    }
    let code = code.ok_or(CallbackError::Missing("code"))?;
    let state = state.ok_or(CallbackError::Missing("state"))?;
    Ok(Callback::Code { code, state })
}

/// The device flow's start, as the user-code endpoint answers it.
#[derive(Clone)]
pub struct DeviceCode {
    /// The upstream's id of the flow (never leaves the server).
    pub device_auth_id: String,
    /// The code the operator types.
    pub user_code: String,
    /// Seconds between polls.
    pub interval_seconds: f64,
}

/// Reads the user-code endpoint's answer (`user_code` or `usercode`; `interval` a number or a
/// string holding one, 5 when absent).
pub fn parse_device_code(body: &[u8]) -> Option<DeviceCode> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let interval = match value.get("interval") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|i| i.is_finite() && *i >= 0.0)
    .unwrap_or(DEFAULT_INTERVAL_SECONDS);
    Some(DeviceCode {
        device_auth_id: text("device_auth_id")?,
        user_code: text("user_code").or_else(|| text("usercode"))?,
        interval_seconds: interval,
    })
}

/// What an approved device flow hands over for the exchange.
#[derive(Clone)]
pub struct DeviceGrant {
    /// The authorization code (a secret).
    pub authorization_code: String,
    /// The verifier the upstream made for it (a secret).
    pub code_verifier: String,
}

/// Reads the device token endpoint's success answer.
pub fn parse_device_grant(body: &[u8]) -> Option<DeviceGrant> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some(DeviceGrant {
        authorization_code: text("authorization_code")?,
        code_verifier: text("code_verifier")?,
    })
}

/// The reason in an OAuth error body: `{"error": "..." | {"code", "message"},
/// "error_description"}`, as one line; `None` when the body has none.
pub fn error_reason(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let description = value
        .get("error_description")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let (code, message) = match value.get("error") {
        Some(Value::String(code)) => (Some(code.as_str()), None),
        Some(Value::Object(obj)) => (
            obj.get("code").and_then(Value::as_str),
            obj.get("message").and_then(Value::as_str),
        ),
        _ => (None, None),
    };
    let parts: Vec<&str> = [code, message.or(description)]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| shorten(&parts.join(": ")))
}

/// Keeps an upstream message readable and bounded.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 300;
    let text = text.trim();
    if text.chars().count() <= LIMIT {
        text.to_string()
    } else {
        let cut: String = text.chars().take(LIMIT).collect();
        format!("{cut}...")
    }
}

/// Why the token endpoint's success answer cannot become an account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenAnswerError {
    /// Not JSON, or a required token is missing.
    #[error("the token endpoint answered without {0}")]
    Missing(&'static str),
    /// The tokens do not name an account (or are otherwise unusable).
    #[error("the tokens cannot be used: {0}")]
    Unusable(String),
}

/// The account the token endpoint's answer (`id_token`, `access_token`, `refresh_token`, all
/// required) signs in, its claims read as an import reads them.
pub fn credentials_from_tokens(
    body: &[u8],
    name: Option<String>,
    proxy_url: Option<String>,
) -> Result<AccountCredentials, TokenAnswerError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| TokenAnswerError::Missing("a JSON body"))?;
    let token = |key: &'static str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenAnswerError::Missing(key))
    };
    let file = json!({
        "tokens": {
            "id_token": token("id_token")?,
            "access_token": token("access_token")?,
            "refresh_token": token("refresh_token")?,
        },
        "last_refresh": crate::codex::credentials::format_timestamp(chrono::Utc::now()),
    });
    let mut account =
        parse_account(&file).map_err(|e| TokenAnswerError::Unusable(e.to_string()))?;
    if let Some(seconds) = value.get("expires_in").and_then(Value::as_i64) {
        if account.expires_at.is_none() && seconds > 0 {
            account.expires_at = Some(chrono::Utc::now() + chrono::Duration::seconds(seconds));
        }
    }
    account.label = name;
    account.proxy_url = proxy_url;
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_codes_are_random_and_s256() {
        let a = Pkce::generate();
        let b = Pkce::generate();
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.verifier.len(), 86); // 64 bytes, base64url without padding
        assert!(!a.verifier.contains('='));
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(new_state().len(), 43);
        assert_ne!(new_state(), new_state());
    }

    #[test]
    fn the_authorize_url_is_the_codex_clis() {
        let url = authorize_url(
            "https://auth.openai.com/oauth/authorize",
            "app_EMoamEEZ73f0CkXaXp7hrann",
            "CHAL",
            "STATE",
        );
        assert_eq!(
            url,
            "https://auth.openai.com/oauth/authorize?response_type=code\
             &client_id=app_EMoamEEZ73f0CkXaXp7hrann\
             &redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback\
             &scope=openid%20profile%20email%20offline_access&code_challenge=CHAL\
             &code_challenge_method=S256&id_token_add_organizations=true\
             &codex_cli_simplified_flow=true&state=STATE&originator=codex_cli_rs"
        );
        assert_eq!(
            verification_url("http://127.0.0.1:9/api/accounts/deviceauth/usercode"),
            "http://127.0.0.1:9/codex/device"
        );
    }

    #[test]
    fn pasted_urls_are_read() {
        assert_eq!(
            parse_callback(" http://localhost:1455/auth/callback?code=ac_1&scope=x&state=s%2B1 "),
            Ok(Callback::Code {
                code: "ac_1".into(),
                state: "s+1".into()
            })
        );
        assert_eq!(
            parse_callback("code=ac_1&state=s"),
            Ok(Callback::Code {
                code: "ac_1".into(),
                state: "s".into()
            })
        );
        assert_eq!(
            parse_callback(
                "http://localhost:1455/auth/callback?error=access_denied\
                 &error_description=missing_codex_entitlement&state=s"
            ),
            Ok(Callback::Denied {
                error: "access_denied".into(),
                description: Some("missing_codex_entitlement".into()),
                state: Some("s".into())
            })
        );
        assert_eq!(parse_callback("hello"), Err(CallbackError::NotAUrl));
        assert_eq!(
            parse_callback("http://localhost:1455/auth/callback?state=s"),
            Err(CallbackError::Missing("code"))
        );
        assert_eq!(
            parse_callback("http://localhost:1455/auth/callback?code=c"),
            Err(CallbackError::Missing("state"))
        );
        let message = parse_callback("not a url with secret")
            .unwrap_err()
            .to_string();
        assert!(!message.contains("secret"));
    }

    #[test]
    fn device_answers_are_read() {
        let code =
            parse_device_code(br#"{"device_auth_id":"d1","usercode":"AB-12","interval":"3"}"#)
                .unwrap();
        assert_eq!(
            (code.device_auth_id.as_str(), code.user_code.as_str()),
            ("d1", "AB-12")
        );
        assert!((code.interval_seconds - 3.0).abs() < f64::EPSILON);
        let code = parse_device_code(br#"{"device_auth_id":"d1","user_code":"X"}"#).unwrap();
        assert!((code.interval_seconds - 5.0).abs() < f64::EPSILON);
        assert!(parse_device_code(br#"{"user_code":"X"}"#).is_none());
        let grant = parse_device_grant(
            br#"{"authorization_code":"c","code_challenge":"h","code_verifier":"v"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                grant.authorization_code.as_str(),
                grant.code_verifier.as_str()
            ),
            ("c", "v")
        );
        assert!(parse_device_grant(b"{}").is_none());
    }

    #[test]
    fn oauth_errors_give_their_reason() {
        assert_eq!(
            error_reason(br#"{"error":"invalid_grant","error_description":"Code already used"}"#)
                .as_deref(),
            Some("invalid_grant: Code already used")
        );
        assert_eq!(
            error_reason(br#"{"error":{"code":"token_expired","message":"Too late"}}"#).as_deref(),
            Some("token_expired: Too late")
        );
        assert_eq!(error_reason(b"<html>"), None);
    }

    #[test]
    fn token_answers_become_accounts() {
        let claims = json!({
            "email": "a@example.com",
            "https://api.openai.com/auth": {"chatgpt_account_id": "acct-1", "chatgpt_plan_type": "pro"},
        });
        let jwt = format!(
            "e30.{}.sig",
            URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
        );
        let body =
            json!({"id_token": jwt, "access_token": "at", "refresh_token": "rt", "expires_in": 60});
        let account =
            credentials_from_tokens(body.to_string().as_bytes(), Some("work".into()), None)
                .unwrap();
        assert_eq!(account.account_id, "acct-1");
        assert_eq!(account.email.as_deref(), Some("a@example.com"));
        assert_eq!(account.plan_type.as_deref(), Some("pro"));
        assert_eq!(account.label.as_deref(), Some("work"));
        assert!(account.expires_at.is_some());
        let missing = json!({"id_token": jwt, "access_token": "at"});
        assert_eq!(
            credentials_from_tokens(missing.to_string().as_bytes(), None, None).unwrap_err(),
            TokenAnswerError::Missing("refresh_token")
        );
    }
}
