//! Signing in (CODEX.md §8): the authorize page, which answers at once with the redirect to the
//! callback URL as the real page does after the operator signed in; the authorization-code
//! exchange (single-use codes, the PKCE verifier checked against the challenge); and the device
//! endpoints (pending for N polls, then approved; expiry; 404 when disabled).
//!
//! Who signs in is set with [`MockState::set_sign_in`] (or `POST /__mock/signin`): an account
//! (created when the mock does not know it) or a refusal such as `missing_codex_entitlement`.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::accounts::new_refresh_token;
use crate::state::{Inner, MockState, TOKEN_LIFETIME_SECS};

/// Path of the authorize page.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// Path of the device flow's user-code endpoint.
pub const DEVICE_USERCODE_PATH: &str = "/api/accounts/deviceauth/usercode";
/// Path of the device flow's token endpoint.
pub const DEVICE_TOKEN_PATH: &str = "/api/accounts/deviceauth/token";
/// The device flow's redirect URI (the exchange must name it).
const DEVICE_REDIRECT_URI: &str = "https://auth.openai.com/deviceauth/callback";
/// Codes and device flows kept at most (a long-running mock stays bounded).
const MAX_PENDING: usize = 1000;

/// What the authorize page does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// This account signs in (created when unknown).
    Account(String),
    /// The sign-in is refused: `error=access_denied` with this description.
    Denied(String),
}

impl Default for SignIn {
    fn default() -> Self {
        Self::Account("signin-account".into())
    }
}

/// What the device endpoints do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSettings {
    /// False: the user-code endpoint answers 404 (device login not enabled).
    pub enabled: bool,
    /// Polls answered "pending" before the approval; `None`: never approved.
    pub approve_after: Option<usize>,
    /// The `interval` answered (a string holding a number, as upstream sometimes does).
    pub interval: String,
    /// Every poll answers 403 "expired".
    pub expired: bool,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            approve_after: Some(2),
            interval: "5".into(),
            expired: false,
        }
    }
}

/// An authorization code the mock issued.
struct IssuedCode {
    account_id: String,
    challenge: String,
    redirect_uri: String,
    used: bool,
}

/// A device flow the mock started.
struct DeviceAuth {
    user_code: String,
    polls: usize,
}

/// The sign-in side of the mock's state.
#[derive(Default)]
pub(crate) struct SignInState {
    next: SignIn,
    device: DeviceSettings,
    codes: HashMap<String, IssuedCode>,
    devices: HashMap<String, DeviceAuth>,
    exchanges: usize,
    device_polls: usize,
}

impl MockState {
    /// Sets who signs in at the authorize page (and approves device flows).
    pub fn set_sign_in(&self, sign_in: SignIn) {
        self.lock().sign_in.next = sign_in;
    }

    /// Sets what the device endpoints do.
    pub fn set_device(&self, settings: DeviceSettings) {
        self.lock().sign_in.device = settings;
    }

    /// Successful authorization-code exchanges.
    pub fn code_exchanges(&self) -> usize {
        self.lock().sign_in.exchanges
    }

    /// Polls of the device token endpoint.
    pub fn device_polls(&self) -> usize {
        self.lock().sign_in.device_polls
    }
}

/// The sign-in routes, below the server root.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(AUTHORIZE_PATH, web::get().to(authorize))
        .route(DEVICE_USERCODE_PATH, web::post().to(device_usercode))
        .route(DEVICE_TOKEN_PATH, web::post().to(device_token))
        .route("/__mock/signin", web::post().to(control));
}

fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl SignInState {
    fn issue_code(&mut self, account_id: &str, challenge: &str, redirect_uri: &str) -> String {
        if self.codes.len() >= MAX_PENDING {
            self.codes.clear();
        }
        let code = random_token("ac_mock_");
        self.codes.insert(
            code.clone(),
            IssuedCode {
                account_id: account_id.to_owned(),
                challenge: challenge.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                used: false,
            },
        );
        code
    }
}

/// `GET /oauth/authorize`: checks the request as the real page would, then redirects to the
/// callback with a code (or the refusal) and the state.
async fn authorize(
    query: web::Query<HashMap<String, String>>,
    state: web::Data<MockState>,
) -> HttpResponse {
    let param = |key: &str| query.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let bad =
        |why: &str| HttpResponse::BadRequest().body(format!("invalid authorize request: {why}"));
    if param("response_type") != Some("code") {
        return bad("response_type must be code");
    }
    if param("client_id").is_none() {
        return bad("client_id is missing");
    }
    if param("code_challenge_method") != Some("S256") {
        return bad("code_challenge_method must be S256");
    }
    let (Some(redirect_uri), Some(challenge), Some(oauth_state)) = (
        param("redirect_uri"),
        param("code_challenge"),
        param("state"),
    ) else {
        return bad("redirect_uri, code_challenge and state are required");
    };
    let Ok(mut location) = url::Url::parse(redirect_uri) else {
        return bad("redirect_uri is not a URL");
    };
    let mut inner = state.lock();
    let next = inner.sign_in.next.clone();
    match next {
        SignIn::Account(account_id) => {
            ensure_account(&mut inner, &account_id);
            let code = inner
                .sign_in
                .issue_code(&account_id, challenge, redirect_uri);
            location
                .query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("scope", "openid profile email offline_access")
                .append_pair("state", oauth_state);
        }
        SignIn::Denied(description) => {
            location
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("error_description", &description)
                .append_pair("state", oauth_state);
        }
    }
    HttpResponse::Found()
        .insert_header(("location", location.to_string()))
        .finish()
}

/// Registers an account with fresh tokens when the mock does not know it yet.
fn ensure_account(inner: &mut Inner, account_id: &str) {
    if inner
        .accounts
        .get(account_id)
        .is_some_and(|a| a.refresh_token.is_some())
    {
        return;
    }
    let email = Some(format!("{account_id}@example.com"));
    let (access, _) = inner.issue_access_token(account_id, &email, "plus");
    let refresh = new_refresh_token();
    inner.register(account_id, &refresh, &access, email, "plus".into());
}

/// `POST /oauth/token` with `grant_type=authorization_code`.
pub(crate) fn exchange(inner: &mut Inner, params: &HashMap<String, String>) -> (u16, Value) {
    let oauth_error = |code: &str, description: &str| {
        (
            400,
            json!({"error": code, "error_description": description}),
        )
    };
    let param = |key: &str| {
        params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if param("client_id").is_none() {
        return oauth_error("invalid_request", "Missing client_id");
    }
    let (Some(code), Some(verifier), Some(redirect_uri)) =
        (param("code"), param("code_verifier"), param("redirect_uri"))
    else {
        return oauth_error(
            "invalid_request",
            "code, code_verifier and redirect_uri are required",
        );
    };
    let Some(issued) = inner.sign_in.codes.get_mut(code) else {
        return oauth_error("invalid_grant", "Invalid authorization code");
    };
    if issued.used {
        return oauth_error("invalid_grant", "Authorization code has already been used");
    }
    // A code is spent by its first exchange, good or bad.
    issued.used = true;
    if challenge_of(verifier) != issued.challenge {
        return oauth_error(
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        );
    }
    if issued.redirect_uri != redirect_uri {
        return oauth_error("invalid_grant", "redirect_uri does not match");
    }
    let account_id = issued.account_id.clone();
    inner.sign_in.exchanges += 1;
    let (email, plan) = {
        let acc = inner.account(&account_id);
        (acc.email.clone(), acc.plan_type.clone())
    };
    let (access, _) = inner.issue_access_token(&account_id, &email, &plan);
    let refresh = new_refresh_token();
    let account = inner.register(&account_id, &refresh, &access, email, plan);
    (
        200,
        json!({
            "access_token": account.access_token,
            "refresh_token": account.refresh_token,
            "id_token": account.id_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "scope": "openid profile email offline_access",
        }),
    )
}

fn json_body(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// `POST /api/accounts/deviceauth/usercode`.
async fn device_usercode(body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let body = json_body(&body);
    let mut inner = state.lock();
    let sign_in = &mut inner.sign_in;
    if !sign_in.device.enabled {
        return HttpResponse::NotFound().json(json!({"error": "Not Found"}));
    }
    if body.get("client_id").and_then(Value::as_str).is_none() {
        return HttpResponse::BadRequest()
            .json(json!({"error": "invalid_request", "error_description": "Missing client_id"}));
    }
    if sign_in.devices.len() >= MAX_PENDING {
        sign_in.devices.clear();
    }
    let id = random_token("deviceauth_");
    let raw = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let user_code = format!("{}-{}", &raw[..4], &raw[4..9]);
    sign_in.devices.insert(
        id.clone(),
        DeviceAuth {
            user_code: user_code.clone(),
            polls: 0,
        },
    );
    HttpResponse::Ok().json(json!({
        "device_auth_id": id,
        "user_code": user_code,
        "interval": sign_in.device.interval,
    }))
}

/// `POST /api/accounts/deviceauth/token`.
async fn device_token(body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let body = json_body(&body);
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or_default();
    let mut inner = state.lock();
    inner.sign_in.device_polls += 1;
    let settings = inner.sign_in.device.clone();
    let Some(device) = inner.sign_in.devices.get_mut(text("device_auth_id")) else {
        return HttpResponse::NotFound().json(json!({"error": {"code": "deviceauth_not_found", "message": "Unknown device authorization"}}));
    };
    if device.user_code != text("user_code") {
        return HttpResponse::NotFound().json(json!({"error": {"code": "deviceauth_not_found", "message": "Unknown device authorization"}}));
    }
    device.polls += 1;
    if settings.expired {
        return HttpResponse::Forbidden().json(json!({"error": {"code": "deviceauth_expired", "message": "The device code has expired"}}));
    }
    let approved = settings.approve_after.is_some_and(|n| device.polls > n);
    let SignIn::Account(account_id) = inner.sign_in.next.clone() else {
        return HttpResponse::Forbidden().json(
            json!({"error": {"code": "access_denied", "message": "missing_codex_entitlement"}}),
        );
    };
    if !approved {
        return HttpResponse::Forbidden().json(json!({"error": {"code": "deviceauth_authorization_pending", "message": "Waiting for the user to enter the code"}}));
    }
    inner.sign_in.devices.remove(text("device_auth_id"));
    ensure_account(&mut inner, &account_id);
    let verifier = random_token("verifier_");
    let challenge = challenge_of(&verifier);
    let code = inner
        .sign_in
        .issue_code(&account_id, &challenge, DEVICE_REDIRECT_URI);
    HttpResponse::Ok().json(json!({
        "authorization_code": code,
        "code_challenge": challenge,
        "code_verifier": verifier,
    }))
}

/// `POST /__mock/signin` `{"account_id"?, "denied"?, "device_enabled"?, "device_approve_after"?
/// (a number or null), "device_interval"?, "device_expired"?}`.
async fn control(body: web::Json<Value>, state: web::Data<MockState>) -> HttpResponse {
    let body = body.into_inner();
    let mut inner = state.lock();
    if let Some(id) = body.get("account_id").and_then(Value::as_str) {
        inner.sign_in.next = SignIn::Account(id.to_owned());
    }
    if let Some(reason) = body.get("denied").and_then(Value::as_str) {
        inner.sign_in.next = SignIn::Denied(reason.to_owned());
    }
    let device = &mut inner.sign_in.device;
    if let Some(enabled) = body.get("device_enabled").and_then(Value::as_bool) {
        device.enabled = enabled;
    }
    if let Some(after) = body.get("device_approve_after") {
        device.approve_after = after.as_u64().map(|n| n as usize);
    }
    if let Some(interval) = body.get("device_interval") {
        device.interval = interval
            .as_str()
            .map_or_else(|| interval.to_string(), str::to_owned);
    }
    if let Some(expired) = body.get("device_expired").and_then(Value::as_bool) {
        device.expired = expired;
    }
    HttpResponse::Ok().json(json!({"ok": true}))
}
