//! "Sign in with OpenAI": adding an account from the console with the Codex CLI's own OAuth
//! (CODEX.md §8), PKCE with a pasted redirect URL or a device code. [`SignInService`] starts
//! flows (kept by [`SignInFlows`]), completes them by exchanging the code through the account's
//! or the global upstream proxy, and stores the account as an import does
//! ([`AccountService::store_signed_in`]). A device flow is polled in the background by a task
//! its flow owns.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::{invalid, read, AccountService};
use crate::codex::client::CodexClient;
use crate::codex::oauth::{
    authorize_url, credentials_from_tokens, new_state, parse_callback, verification_url, Callback,
    Pkce, DEVICE_REDIRECT_URI, PKCE_REDIRECT_URI,
};
use crate::codex::signin::{DevicePoll, SignInError};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::accounts::AccountEntry;
use crate::sign_in_flows::{Claimed, FlowView, Method, Secrets, SignInFlows};
use crate::state::AppState;

/// Shortest and longest wait between two polls of a device flow, whatever the upstream says.
const POLL_INTERVAL_BOUNDS: (f64, f64) = (0.1, 60.0);

/// `POST /admin/tokens/oauth/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// `pkce` or `device`.
    #[serde(deserialize_with = "flow_method")]
    pub method: Method,
    /// A display name for the account.
    #[serde(default, deserialize_with = "flow_name")]
    pub name: Option<String>,
    /// An upstream proxy for the exchange and the account.
    #[serde(default, deserialize_with = "proxy_url")]
    pub proxy_url: Option<String>,
}

/// `pkce` or `device`.
fn flow_method<'de, D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
    read(d, "method", "must be \"pkce\" or \"device\"")
}

/// At most 200 characters, trimmed; blank means none.
fn flow_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    const WHY: &str = "must be a string of at most 200 characters";
    let name: Option<String> = read(d, "name", WHY)?;
    match name.as_deref().map(str::trim) {
        Some(name) if name.chars().count() > 200 => Err(invalid("name", WHY)),
        Some(name) if !name.is_empty() => Ok(Some(name.to_string())),
        _ => Ok(None),
    }
}

/// An `http://`, `https://`, `socks5://` or `socks5h://` URL; blank means none.
fn proxy_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    const WHY: &str = "must be an http://, https://, socks5:// or socks5h:// URL";
    let url: Option<String> = read(d, "proxy_url", WHY)?;
    let Some(url) = url.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    // The same rule as an imported account's proxy.
    let valid = crate::codex::credentials::check_proxy_url(&url).is_ok();
    if valid && reqwest::Proxy::all(&url).is_ok() {
        Ok(Some(url))
    } else {
        Err(invalid("proxy_url", WHY))
    }
}

/// A started flow, as the console needs it.
pub enum Started {
    /// Open `authorize_url`, then paste the address the browser lands on.
    Pkce {
        /// The flow's id.
        id: Uuid,
        /// Where the operator signs in.
        authorize_url: String,
        /// When the flow expires.
        expires_at: DateTime<Utc>,
    },
    /// Type `user_code` at `verification_url`.
    Device {
        /// The flow's id.
        id: Uuid,
        /// Where the code is typed.
        verification_url: String,
        /// The code to type.
        user_code: String,
        /// How often the gateway polls.
        interval_seconds: u64,
        /// When the flow expires.
        expires_at: DateTime<Utc>,
    },
}

/// Starts, completes, reads and cancels sign-in flows.
#[derive(Clone)]
pub struct SignInService {
    flows: SignInFlows,
    upstream: CodexClient,
    accounts: AccountService,
}

impl SignInService {
    /// The service over the shared state.
    pub fn new(state: &AppState) -> Self {
        Self {
            flows: state.sign_in_flows.clone(),
            upstream: state.upstream.clone(),
            accounts: AccountService::new(state),
        }
    }

    /// Starts a flow (429 `too_many_flows` beyond the cap).
    pub async fn start(&self, request: StartRequest) -> AppResult<Started> {
        let StartRequest {
            method,
            name,
            proxy_url,
        } = request;
        match method {
            Method::Pkce => {
                let pkce = Pkce::generate();
                let state = new_state();
                let config = self.upstream.config();
                let url = authorize_url(
                    &config.oauth_authorize_url,
                    &config.client_id,
                    &pkce.challenge,
                    &state,
                );
                let secrets = Secrets::Pkce {
                    verifier: pkce.verifier,
                    state,
                };
                let (id, expires_at) = self.flows.start(method, name, proxy_url, secrets)?;
                Ok(Started::Pkce {
                    id,
                    authorize_url: url,
                    expires_at,
                })
            }
            Method::Device => {
                // Fail before asking upstream for a code that could not be kept.
                self.flows.check_room()?;
                let code = self
                    .upstream
                    .device_usercode(proxy_url.as_deref())
                    .await
                    .map_err(|e| match e {
                        SignInError::DeviceDisabled => AppError::new(
                            ErrorCode::OauthDenied,
                            "device-code sign-in is not enabled upstream: use the PKCE sign-in",
                        ),
                        SignInError::Refused(reason) => AppError::upstream(format!(
                            "the device-code endpoint refused: {reason}"
                        )),
                        SignInError::Transport(why) => AppError::upstream(format!(
                            "could not reach the device-code endpoint: {why}"
                        )),
                    })?;
                let (min, max) = POLL_INTERVAL_BOUNDS;
                let interval = code.interval_seconds.clamp(min, max);
                let user_code = code.user_code.clone();
                let secrets = Secrets::Device {
                    device_auth_id: code.device_auth_id,
                    user_code: code.user_code,
                };
                let (id, expires_at) = self.flows.start(method, name, proxy_url, secrets)?;
                let poller = self.clone();
                self.flows.spawn_poller(
                    id,
                    poller.poll_device(id, Duration::from_secs_f64(interval)),
                );
                Ok(Started::Device {
                    id,
                    verification_url: verification_url(&self.upstream.config().device_usercode_url),
                    user_code,
                    interval_seconds: interval.ceil() as u64,
                    expires_at,
                })
            }
        }
    }

    /// Completes a PKCE flow with the pasted redirect URL.
    pub async fn callback(&self, id: Uuid, redirect_url: &str) -> AppResult<AccountEntry> {
        // An unknown or closed flow is reported before anything is read from the URL.
        self.flows.view(id)?;
        let callback =
            parse_callback(redirect_url).map_err(|e| AppError::invalid_request(e.to_string()))?;
        let (code, state) = match callback {
            Callback::Code { code, state } => (code, state),
            Callback::Denied {
                error,
                description,
                state,
            } => {
                let reason = match description {
                    Some(description) => format!("{error} ({description})"),
                    None => error,
                };
                let hint = if reason.contains("missing_codex_entitlement") {
                    ": Codex is not enabled for this workspace"
                } else {
                    ""
                };
                let denied = AppError::new(
                    ErrorCode::OauthDenied,
                    format!("OpenAI refused the sign-in: {reason}{hint}"),
                );
                self.flows.deny(id, state.as_deref(), &denied)?;
                return Err(denied);
            }
        };
        let claimed = self.flows.claim_pkce(id, &state)?;
        let Secrets::Pkce { verifier, .. } = &claimed.secrets else {
            return Err(AppError::internal("a PKCE flow without its verifier"));
        };
        let verifier = verifier.clone();
        let outcome = self
            .complete(&code, &verifier, PKCE_REDIRECT_URI, claimed)
            .await;
        self.flows.finish(id, &outcome);
        outcome
    }

    /// What the console may see of a flow.
    pub fn status(&self, id: Uuid) -> AppResult<FlowView> {
        self.flows.view(id)
    }

    /// Cancels a flow (its poller stops); 404 when unknown.
    pub fn cancel(&self, id: Uuid) -> AppResult<()> {
        if self.flows.cancel(id) {
            Ok(())
        } else {
            Err(AppError::not_found("no such sign-in flow"))
        }
    }

    /// Exchanges the code and stores the account.
    async fn complete(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        claimed: Claimed,
    ) -> AppResult<AccountEntry> {
        let body = self
            .upstream
            .exchange_code(code, verifier, redirect_uri, claimed.proxy_url.as_deref())
            .await
            .map_err(|e| {
                let message = match e {
                    SignInError::Transport(why) => {
                        format!("could not reach the token endpoint: {why}")
                    }
                    other => format!("the token endpoint refused the code: {other}"),
                };
                AppError::new(ErrorCode::OauthExchangeFailed, message)
            })?;
        let account = credentials_from_tokens(&body, claimed.name, claimed.proxy_url)
            .map_err(|e| AppError::new(ErrorCode::OauthExchangeFailed, e.to_string()))?;
        let (entry, created) = self.accounts.store_signed_in(account).await?;
        tracing::info!(
            account_id = entry.row.id,
            created,
            "account signed in from the console"
        );
        // Its usage is probed right away: an account whose windows were never read is due for
        // the pool's usage prober at its next tick (a second at most).
        Ok(entry)
    }

    /// Polls a device flow at `interval` until it is approved, refused, cancelled or expired.
    async fn poll_device(self, id: Uuid, interval: Duration) {
        loop {
            actix_web::rt::time::sleep(interval).await;
            let Some((device_auth_id, user_code, proxy)) = self.flows.device_poll_target(id) else {
                return;
            };
            match self
                .upstream
                .device_poll(&device_auth_id, &user_code, proxy.as_deref())
                .await
            {
                Ok(DevicePoll::Pending(words)) => self.flows.note_pending(id, words),
                Err(SignInError::Transport(why)) => self.flows.note_pending(id, Some(why)),
                Ok(DevicePoll::Approved(grant)) => {
                    let Ok(claimed) = self.flows.claim_device(id) else {
                        return;
                    };
                    let outcome = self
                        .complete(
                            &grant.authorization_code,
                            &grant.code_verifier,
                            DEVICE_REDIRECT_URI,
                            claimed,
                        )
                        .await;
                    self.flows.finish(id, &outcome);
                    return;
                }
                Err(e) => {
                    let refused = AppError::new(
                        ErrorCode::OauthDenied,
                        format!("OpenAI refused the device sign-in: {e}"),
                    );
                    if self.flows.claim_device(id).is_ok() {
                        self.flows.finish(id, &Err(refused));
                    }
                    return;
                }
            }
        }
    }
}
