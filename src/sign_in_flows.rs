//! The server-side state of "Sign in with OpenAI" flows: a PKCE verifier and state, or a
//! device flow's ids, kept in memory (they never leave the server), for at most
//! [`FLOW_TTL_SECONDS`], used once, and at most [`MAX_PENDING_FLOWS`] pending at a time.
//! A device flow's background poller is a task owned here: it ends with its flow (done,
//! failed, expired or cancelled), and there is at most one per pending flow.
//!
//! Finished and expired flows stay readable (for the console's status poll) until their
//! expiry plus one more lifetime, at most [`MAX_KEPT_FLOWS`] of them; memory stays bounded.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::error::{AppError, ErrorCode};
use crate::service::accounts::AccountEntry;

/// How long a flow may be completed after it starts (the device code's lifetime upstream).
pub const FLOW_TTL_SECONDS: i64 = 15 * 60;
/// Flows pending at once, beyond which a start answers 429 `too_many_flows`.
pub const MAX_PENDING_FLOWS: usize = 5;
/// Finished or expired flows kept for their status.
const MAX_KEPT_FLOWS: usize = 50;

/// The two ways to sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Authorization code with PKCE and a pasted redirect URL.
    Pkce,
    /// Device code: the operator types a code on OpenAI's page.
    Device,
}

/// The secrets a flow keeps; never rendered, never logged.
pub enum Secrets {
    /// PKCE: the verifier and the state.
    Pkce {
        /// The code verifier.
        verifier: String,
        /// The state the pasted URL must carry.
        state: String,
    },
    /// Device: the upstream's ids.
    Device {
        /// The upstream's flow id.
        device_auth_id: String,
        /// The code the operator types (shown once at the start).
        user_code: String,
    },
    /// Used: nothing is kept.
    Spent,
}

/// Where a flow is.
#[derive(Clone)]
enum Status {
    /// Waiting for the operator.
    Pending,
    /// The code is being exchanged (the flow is used).
    Working,
    /// Signed in: the account as stored.
    Done(Box<AccountEntry>),
    /// Refused: the error to show.
    Failed(ErrorCode, String),
    /// Ran out of time.
    Expired,
}

/// One flow.
struct Flow {
    method: Method,
    name: Option<String>,
    proxy_url: Option<String>,
    secrets: Secrets,
    expires_at: DateTime<Utc>,
    status: Status,
    /// The upstream's words on the device flow's last poll, shown if it expires.
    last_words: Option<String>,
    poller: Option<tokio::task::AbortHandle>,
}

/// What the console may see of a flow.
#[derive(Clone)]
pub struct FlowView {
    /// The flow's id.
    pub id: Uuid,
    /// Its method.
    pub method: Method,
    /// `pending`, `done`, `failed` or `expired`.
    pub status: &'static str,
    /// The account, once signed in.
    pub account: Option<AccountEntry>,
    /// Why it failed or expired.
    pub error: Option<(ErrorCode, String)>,
}

/// What completing a flow needs: its secrets and settings.
pub struct Claimed {
    /// The flow's name for the account.
    pub name: Option<String>,
    /// The proxy for the exchange (and the account).
    pub proxy_url: Option<String>,
    /// The PKCE verifier, or the device ids.
    pub secrets: Secrets,
}

/// The flows; cheap to clone.
#[derive(Clone, Default)]
pub struct SignInFlows {
    flows: Arc<Mutex<HashMap<Uuid, Flow>>>,
    pollers: Arc<AtomicUsize>,
}

fn not_found() -> AppError {
    AppError::not_found("no such sign-in flow (it may have been cancelled or forgotten)")
}

fn state_mismatch() -> AppError {
    AppError::new(
        ErrorCode::OauthStateMismatch,
        "the pasted URL belongs to another sign-in (its state does not match): \
         paste the address from the tab this sign-in opened",
    )
}

fn expired() -> AppError {
    AppError::new(
        ErrorCode::OauthFlowExpired,
        "this sign-in expired (15 minutes): start a new one",
    )
}

impl Flow {
    fn is_open(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, Status::Pending | Status::Working) && self.expires_at > now
    }
}

impl SignInFlows {
    /// No flows.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Flow>> {
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks flows past their time as expired (ending their pollers) and forgets old ones.
    fn sweep(flows: &mut HashMap<Uuid, Flow>, now: DateTime<Utc>) {
        for flow in flows.values_mut() {
            if matches!(flow.status, Status::Pending | Status::Working) && flow.expires_at <= now {
                flow.status = Status::Expired;
            }
            if !flow.is_open(now) {
                if let Some(poller) = flow.poller.take() {
                    poller.abort();
                }
            }
        }
        let ttl = Duration::seconds(FLOW_TTL_SECONDS);
        flows.retain(|_, flow| flow.is_open(now) || flow.expires_at + ttl > now);
        let mut closed: Vec<(DateTime<Utc>, Uuid)> = flows
            .iter()
            .filter(|(_, flow)| !flow.is_open(now))
            .map(|(id, flow)| (flow.expires_at, *id))
            .collect();
        if closed.len() > MAX_KEPT_FLOWS {
            closed.sort();
            for (_, id) in &closed[..closed.len() - MAX_KEPT_FLOWS] {
                flows.remove(id);
            }
        }
    }

    /// Fails with 429 `too_many_flows` when no more flow may start now.
    pub fn check_room(&self) -> Result<(), AppError> {
        let now = Utc::now();
        let mut flows = self.lock();
        Self::sweep(&mut flows, now);
        let pending = flows.values().filter(|f| f.is_open(now)).count();
        if pending >= MAX_PENDING_FLOWS {
            return Err(AppError::new(
                ErrorCode::TooManyFlows,
                format!(
                    "{MAX_PENDING_FLOWS} sign-ins are already in progress: finish or cancel one first"
                ),
            )
            .with_retry_after(60));
        }
        Ok(())
    }

    /// Starts a flow; answers its id and expiry, or 429 `too_many_flows`.
    pub fn start(
        &self,
        method: Method,
        name: Option<String>,
        proxy_url: Option<String>,
        secrets: Secrets,
    ) -> Result<(Uuid, DateTime<Utc>), AppError> {
        self.check_room()?;
        let id = Uuid::new_v4();
        let expires_at = Utc::now() + Duration::seconds(FLOW_TTL_SECONDS);
        self.lock().insert(
            id,
            Flow {
                method,
                name,
                proxy_url,
                secrets,
                expires_at,
                status: Status::Pending,
                last_words: None,
                poller: None,
            },
        );
        Ok((id, expires_at))
    }

    /// What the console may see of a flow.
    pub fn view(&self, id: Uuid) -> Result<FlowView, AppError> {
        let mut flows = self.lock();
        Self::sweep(&mut flows, Utc::now());
        let flow = flows.get(&id).ok_or_else(not_found)?;
        let (status, account, error) = match &flow.status {
            Status::Pending | Status::Working => ("pending", None, None),
            Status::Done(entry) => ("done", Some((**entry).clone()), None),
            Status::Failed(code, message) => ("failed", None, Some((*code, message.clone()))),
            Status::Expired => {
                let message = match &flow.last_words {
                    Some(words) => format!("{} (last answer: {words})", expired().message()),
                    None => expired().message().to_string(),
                };
                (
                    "expired",
                    None,
                    Some((ErrorCode::OauthFlowExpired, message)),
                )
            }
        };
        Ok(FlowView {
            id,
            method: flow.method,
            status,
            account,
            error,
        })
    }

    /// Claims a pending PKCE flow for its exchange when `state` is its state: the flow is used
    /// from then on. A wrong state changes nothing.
    pub fn claim_pkce(&self, id: Uuid, state: &str) -> Result<Claimed, AppError> {
        let mut flows = self.lock();
        Self::sweep(&mut flows, Utc::now());
        let flow = Self::pending_of(&mut flows, id, Method::Pkce)?;
        let Secrets::Pkce {
            verifier,
            state: expected,
        } = &flow.secrets
        else {
            return Err(not_found());
        };
        if !constant_time_eq(expected.as_bytes(), state.as_bytes()) {
            return Err(state_mismatch());
        }
        let verifier = verifier.clone();
        flow.status = Status::Working;
        // Used once: the flow keeps no secret from now on.
        flow.secrets = Secrets::Spent;
        Ok(Claimed {
            name: flow.name.clone(),
            proxy_url: flow.proxy_url.clone(),
            secrets: Secrets::Pkce {
                verifier,
                state: String::new(),
            },
        })
    }

    /// Closes a pending PKCE flow whose sign-in the upstream refused; a refusal that names
    /// another flow's state changes nothing.
    pub fn deny(&self, id: Uuid, state: Option<&str>, error: &AppError) -> Result<(), AppError> {
        let mut flows = self.lock();
        Self::sweep(&mut flows, Utc::now());
        let flow = Self::pending_of(&mut flows, id, Method::Pkce)?;
        if let (
            Some(state),
            Secrets::Pkce {
                state: expected, ..
            },
        ) = (state, &flow.secrets)
        {
            if !constant_time_eq(expected.as_bytes(), state.as_bytes()) {
                return Err(state_mismatch());
            }
        }
        flow.status = Status::Failed(error.code(), error.message().to_string());
        flow.secrets = Secrets::Spent;
        Ok(())
    }

    /// Claims a pending device flow for its exchange (the poller does, once approved).
    pub fn claim_device(&self, id: Uuid) -> Result<Claimed, AppError> {
        let mut flows = self.lock();
        Self::sweep(&mut flows, Utc::now());
        let flow = Self::pending_of(&mut flows, id, Method::Device)?;
        flow.status = Status::Working;
        // Used once: the flow keeps no secret from now on.
        let secrets = std::mem::replace(&mut flow.secrets, Secrets::Spent);
        Ok(Claimed {
            name: flow.name.clone(),
            proxy_url: flow.proxy_url.clone(),
            secrets,
        })
    }

    /// The device ids and proxy of a pending device flow, for one poll; `None` once it is no
    /// longer pending (done, cancelled, expired).
    pub fn device_poll_target(&self, id: Uuid) -> Option<(String, String, Option<String>)> {
        let mut flows = self.lock();
        Self::sweep(&mut flows, Utc::now());
        let flow = flows
            .get(&id)
            .filter(|f| matches!(f.status, Status::Pending))?;
        match &flow.secrets {
            Secrets::Device {
                device_auth_id,
                user_code,
            } => Some((
                device_auth_id.clone(),
                user_code.clone(),
                flow.proxy_url.clone(),
            )),
            Secrets::Pkce { .. } | Secrets::Spent => None,
        }
    }

    /// Notes the upstream's words on the last poll, shown if the flow expires.
    pub fn note_pending(&self, id: Uuid, words: Option<String>) {
        let mut flows = self.lock();
        if let Some(flow) = flows.get_mut(&id) {
            flow.last_words = words;
        }
    }

    fn pending_of(
        flows: &mut HashMap<Uuid, Flow>,
        id: Uuid,
        method: Method,
    ) -> Result<&mut Flow, AppError> {
        let flow = flows.get_mut(&id).ok_or_else(not_found)?;
        if flow.method != method {
            return Err(AppError::invalid_request(match flow.method {
                Method::Device => {
                    "this is a device-code sign-in: it completes by itself once approved"
                }
                Method::Pkce => "this is a PKCE sign-in: paste the redirect URL",
            }));
        }
        match flow.status {
            Status::Pending => Ok(flow),
            Status::Expired => Err(expired()),
            Status::Working | Status::Done(_) | Status::Failed(..) => Err(AppError::new(
                ErrorCode::OauthFlowExpired,
                "this sign-in was already used: start a new one",
            )),
        }
    }

    /// Records a flow's outcome; the flow is closed from then on.
    pub fn finish(&self, id: Uuid, outcome: &Result<AccountEntry, AppError>) {
        let mut flows = self.lock();
        if let Some(flow) = flows.get_mut(&id) {
            flow.status = match outcome {
                Ok(entry) => Status::Done(Box::new(entry.clone())),
                Err(e) => Status::Failed(e.code(), e.message().to_string()),
            };
            // A poller finishing its own flow is ending anyway; aborting it here would cut
            // the bookkeeping short, so it is only forgotten.
            flow.poller = None;
        }
    }

    /// Cancels a flow: it is forgotten and its poller stops. False when it is unknown.
    pub fn cancel(&self, id: Uuid) -> bool {
        let Some(flow) = self.lock().remove(&id) else {
            return false;
        };
        if let Some(poller) = flow.poller {
            poller.abort();
        }
        true
    }

    /// Runs a device flow's poller as a task of this flow: it is aborted when the flow is
    /// cancelled or expires.
    pub fn spawn_poller<F>(&self, id: Uuid, poller: F)
    where
        F: Future<Output = ()> + 'static,
    {
        let guard = PollerGuard::new(self.pollers.clone());
        let task = actix_web::rt::spawn(async move {
            let _guard = guard;
            poller.await;
        });
        let mut flows = self.lock();
        match flows.get_mut(&id) {
            Some(flow) if matches!(flow.status, Status::Pending) => {
                flow.poller = Some(task.abort_handle());
            }
            _ => task.abort(),
        }
    }

    /// Device-flow pollers running now.
    pub fn running_pollers(&self) -> usize {
        self.pollers.load(Ordering::SeqCst)
    }

    /// Moves a flow's expiry into the past (tests use it instead of waiting 15 minutes).
    #[doc(hidden)]
    pub fn expire_now(&self, id: Uuid) {
        if let Some(flow) = self.lock().get_mut(&id) {
            flow.expires_at = Utc::now() - Duration::seconds(1);
        }
    }
}

/// Counts a running poller while it lives.
struct PollerGuard(Arc<AtomicUsize>);

impl PollerGuard {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for PollerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Compares without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkce(flows: &SignInFlows) -> Result<Uuid, AppError> {
        flows
            .start(
                Method::Pkce,
                None,
                None,
                Secrets::Pkce {
                    verifier: "v".into(),
                    state: "s".into(),
                },
            )
            .map(|(id, _)| id)
    }

    #[test]
    fn flows_are_capped_single_use_and_expire() {
        let flows = SignInFlows::new();
        let ids: Vec<Uuid> = (0..MAX_PENDING_FLOWS)
            .map(|_| pkce(&flows).unwrap())
            .collect();
        assert_eq!(pkce(&flows).unwrap_err().code(), ErrorCode::TooManyFlows);
        assert!(flows.cancel(ids[0]));
        let id = pkce(&flows).unwrap();

        assert_eq!(
            flows.claim_pkce(id, "x").err().map(|e| e.code()),
            Some(ErrorCode::OauthStateMismatch)
        );
        assert_eq!(flows.view(id).unwrap().status, "pending");
        let denied = AppError::new(ErrorCode::OauthDenied, "no");
        assert_eq!(
            flows.deny(id, Some("x"), &denied).err().map(|e| e.code()),
            Some(ErrorCode::OauthStateMismatch)
        );
        assert_eq!(flows.view(id).unwrap().status, "pending");
        assert!(flows.claim_pkce(id, "s").is_ok());
        assert_eq!(
            flows.claim_pkce(id, "s").err().map(|e| e.code()),
            Some(ErrorCode::OauthFlowExpired)
        );
        flows.finish(id, &Err(AppError::new(ErrorCode::OauthDenied, "no")));
        assert_eq!(flows.view(id).unwrap().status, "failed");

        flows.expire_now(ids[1]);
        assert_eq!(flows.view(ids[1]).unwrap().status, "expired");
        assert_eq!(
            flows.claim_pkce(ids[1], "s").err().map(|e| e.code()),
            Some(ErrorCode::OauthFlowExpired)
        );
        // The expired and the used flow no longer count against the cap.
        assert!(pkce(&flows).is_ok());
        assert!(pkce(&flows).is_ok());
        assert_eq!(
            flows.view(Uuid::new_v4()).err().map(|e| e.code()),
            Some(ErrorCode::NotFound)
        );
    }

    #[test]
    fn closed_flows_are_bounded() {
        let flows = SignInFlows::new();
        for _ in 0..(MAX_KEPT_FLOWS + 20) {
            let id = pkce(&flows).unwrap();
            flows.expire_now(id);
        }
        pkce(&flows).unwrap();
        assert!(flows.lock().len() <= MAX_KEPT_FLOWS + 1);
    }
}
