//! The HTTP calls of signing an account in (CODEX.md §8): the code exchange and the device-code
//! endpoints, through the account's or the global upstream proxy. What they send and read is
//! built and parsed by the pure [`crate::codex::oauth`].

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use crate::codex::client::{describe_transport, CodexClient};
use crate::codex::oauth::{
    error_reason, parse_device_code, parse_device_grant, DeviceCode, DeviceGrant,
};

/// How long one sign-in call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a sign-in call failed; messages carry the upstream's reason, never a secret or a URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignInError {
    /// No answer (connect, timeout, proxy).
    #[error("{0}")]
    Transport(String),
    /// The upstream refused, with its reason.
    #[error("{0}")]
    Refused(String),
    /// Device-code sign-in is not enabled upstream (404 on the user-code endpoint).
    #[error("device-code sign-in is not enabled for this client")]
    DeviceDisabled,
}

/// What one poll of the device flow found.
pub enum DevicePoll {
    /// Not approved yet (403/404): the upstream's words, for the console.
    Pending(Option<String>),
    /// Approved: what the exchange needs.
    Approved(DeviceGrant),
}

impl CodexClient {
    /// Posts, answering the status and body.
    async fn sign_in_call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Bytes), SignInError> {
        let response = request
            .header("accept", "application/json")
            .header("user-agent", &self.config().user_agent)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| SignInError::Transport(describe_transport(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| SignInError::Transport(describe_transport(&e)))?;
        Ok((status, body))
    }

    fn sign_in_client(&self, proxy_url: Option<&str>) -> Result<reqwest::Client, SignInError> {
        self.client_for(proxy_url)
            .map_err(|e| SignInError::Transport(e.0))
    }

    /// Exchanges an authorization code for tokens; answers the token endpoint's body.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        proxy_url: Option<&str>,
    ) -> Result<Bytes, SignInError> {
        let client = self.sign_in_client(proxy_url)?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", self.config().client_id.as_str()),
            ("code_verifier", verifier),
        ];
        let request = client.post(&self.config().oauth_token_url).form(&form);
        let (status, body) = self.sign_in_call(request).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(SignInError::Refused(
                error_reason(&body).unwrap_or_else(|| format!("HTTP {status}")),
            ))
        }
    }

    /// Starts a device-code sign-in.
    pub async fn device_usercode(
        &self,
        proxy_url: Option<&str>,
    ) -> Result<DeviceCode, SignInError> {
        let client = self.sign_in_client(proxy_url)?;
        let request = client
            .post(&self.config().device_usercode_url)
            .json(&json!({"client_id": self.config().client_id}));
        let (status, body) = self.sign_in_call(request).await?;
        match status {
            200..=299 => parse_device_code(&body).ok_or_else(|| {
                SignInError::Refused("the user-code endpoint answered an unreadable body".into())
            }),
            404 => Err(SignInError::DeviceDisabled),
            _ => Err(SignInError::Refused(
                error_reason(&body).unwrap_or_else(|| format!("HTTP {status}")),
            )),
        }
    }

    /// Polls a device-code sign-in once.
    pub async fn device_poll(
        &self,
        device_auth_id: &str,
        user_code: &str,
        proxy_url: Option<&str>,
    ) -> Result<DevicePoll, SignInError> {
        let client = self.sign_in_client(proxy_url)?;
        let request = client
            .post(&self.config().device_token_url)
            .json(&json!({"device_auth_id": device_auth_id, "user_code": user_code}));
        let (status, body) = self.sign_in_call(request).await?;
        match status {
            200..=299 => parse_device_grant(&body)
                .map(DevicePoll::Approved)
                .ok_or_else(|| {
                    SignInError::Refused(
                        "the device token endpoint answered an unreadable body".into(),
                    )
                }),
            403 | 404 => Ok(DevicePoll::Pending(error_reason(&body))),
            _ => Err(SignInError::Refused(
                error_reason(&body).unwrap_or_else(|| format!("HTTP {status}")),
            )),
        }
    }
}
