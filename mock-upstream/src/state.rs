//! What the mock knows and counts: accounts' settings, records of the requests received and
//! stream counters, behind one lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::economy::{Economy, Ledger};
use crate::{Behaviour, RefreshBehaviour};

/// Records kept for assertions; a long-running standalone mock must not grow without bound.
const MAX_RECORDS: usize = 10_000;
/// Lifetime of the tokens the mock issues, about what the real endpoint grants.
pub(crate) const TOKEN_LIFETIME_SECS: i64 = 10 * 24 * 3600;

/// One request received by the responses endpoint.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// All headers, names in lower case.
    pub headers: HashMap<String, String>,
    /// The parsed JSON body (`Null` if it was not JSON or in fast mode).
    pub body: Value,
}

impl RecordedRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Everything the mock knows and counts; configure and inspect it from the tests.
pub struct MockState {
    inner: Mutex<Inner>,
}

/// The state behind the lock.
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) fast: bool,
    pub(crate) accounts: HashMap<String, AccountState>,
    /// Every refresh token ever issued, to tell "reused" from "never existed".
    pub(crate) refresh_owner: HashMap<String, String>,
    pub(crate) token_seq: u64,
    pub(crate) refresh_delay: Duration,
    /// The OAuth endpoint is down: every call answers 503, nothing is consumed.
    pub(crate) oauth_down: bool,
    pub(crate) oauth_outage_calls: usize,
    /// Budgets and prompt caches, when on.
    pub(crate) economy: Option<Economy>,
    /// For each usage-limit refusal of the economy: how full the emptiest other account was
    /// then (its fuller window, in percent; 100 when there was none).
    pub(crate) refusal_headroom: Vec<f64>,
    pub(crate) supported_models: Option<Vec<String>>,
    pub(crate) requests: VecDeque<RecordedRequest>,
    pub(crate) unmatched: VecDeque<String>,
    pub(crate) total_requests: usize,
    pub(crate) open_streams: usize,
    pub(crate) dropped_streams: usize,
    pub(crate) finished_streams: usize,
    pub(crate) sign_in: crate::signin::SignInState,
    /// The catalog served instead of each plan's default one.
    pub(crate) catalog: Option<Vec<Value>>,
    /// The status the catalog endpoint fails with, when set.
    pub(crate) catalog_status: Option<u16>,
    pub(crate) catalog_requests: usize,
}

/// What the mock knows and counts of one account.
#[derive(Default)]
pub(crate) struct AccountState {
    pub(crate) email: Option<String>,
    pub(crate) plan_type: String,
    /// Access tokens issued for this account, with their issue sequence number.
    pub(crate) access_tokens: HashMap<String, u64>,
    pub(crate) latest_access: String,
    pub(crate) id_token: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) behaviour: Behaviour,
    pub(crate) queue: VecDeque<Behaviour>,
    /// Tokens issued up to this sequence number are refused while `behaviour` is `Unauthorized`.
    pub(crate) unauthorized_up_to: u64,
    pub(crate) refresh_behaviour: RefreshBehaviour,
    pub(crate) refresh_queue: VecDeque<RefreshBehaviour>,
    pub(crate) requests: usize,
    pub(crate) refresh_calls: usize,
    pub(crate) refresh_successes: usize,
    pub(crate) reuse_errors: usize,
    pub(crate) dropped_streams: usize,
    /// Its budgets and prompt cache (used when the economy is on).
    pub(crate) ledger: Ledger,
    pub(crate) usage_calls: usize,
    pub(crate) usage_limit_refusals: usize,
}

impl MockState {
    pub(crate) fn new(fast: bool) -> Self {
        Self {
            inner: Mutex::new(Inner {
                fast,
                ..Inner::default()
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not turn every later assertion into a poison error.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets an account's lasting behaviour on the responses endpoint.
    pub fn set_behaviour(&self, account_id: &str, behaviour: Behaviour) {
        let mut inner = self.lock();
        let seq = inner.token_seq;
        let acc = inner.account(account_id);
        if behaviour == Behaviour::Unauthorized {
            acc.unauthorized_up_to = seq;
        }
        acc.behaviour = behaviour;
    }

    /// Makes the next `times` requests of an account behave so, before the lasting behaviour.
    pub fn queue_behaviour(&self, account_id: &str, behaviour: Behaviour, times: usize) {
        let mut inner = self.lock();
        let acc = inner.account(account_id);
        acc.queue.extend(std::iter::repeat_n(behaviour, times));
    }

    /// Sets an account's lasting behaviour on the OAuth endpoint.
    pub fn set_refresh_behaviour(&self, account_id: &str, behaviour: RefreshBehaviour) {
        self.lock().account(account_id).refresh_behaviour = behaviour;
    }

    /// Makes the next `times` refreshes of an account behave so.
    pub fn queue_refresh_behaviour(
        &self,
        account_id: &str,
        behaviour: RefreshBehaviour,
        times: usize,
    ) {
        let mut inner = self.lock();
        let acc = inner.account(account_id);
        acc.refresh_queue
            .extend(std::iter::repeat_n(behaviour, times));
    }

    /// Delays every OAuth answer (the token is consumed on arrival, answered after the delay).
    pub fn set_refresh_delay(&self, delay: Duration) {
        self.lock().refresh_delay = delay;
    }

    /// Takes the OAuth endpoint down (every refresh answers 503, tokens untouched) or back up.
    pub fn set_oauth_down(&self, down: bool) {
        self.lock().oauth_down = down;
    }

    /// Calls of the OAuth endpoint answered 503 because it was down.
    pub fn oauth_outage_calls(&self) -> usize {
        self.lock().oauth_outage_calls
    }

    /// Restricts the accepted models (`None`: any model without an effort suffix).
    pub fn set_supported_models(&self, models: Option<Vec<String>>) {
        self.lock().supported_models = models;
    }

    /// Switches fast mode (benchmark) on or off.
    /// Serves these `ModelInfo` objects as every plan's catalog (`None`: the defaults).
    pub fn set_catalog(&self, models: Option<Vec<Value>>) {
        self.lock().catalog = models;
    }

    /// Makes the catalog endpoint answer this status (`None`: it works).
    pub fn set_catalog_status(&self, status: Option<u16>) {
        self.lock().catalog_status = status;
    }

    /// Calls of the catalog endpoint so far.
    pub fn catalog_requests(&self) -> usize {
        self.lock().catalog_requests
    }

    /// The last `n` responses requests received, oldest first.
    pub fn recent_requests(&self, n: usize) -> Vec<RecordedRequest> {
        let inner = self.lock();
        let skip = inner.requests.len().saturating_sub(n);
        inner.requests.iter().skip(skip).cloned().collect()
    }

    pub fn set_fast(&self, fast: bool) {
        self.lock().fast = fast;
    }

    /// Refresh calls whose token belonged to this account.
    pub fn refresh_calls(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.refresh_calls)
    }

    /// Successful refreshes of this account.
    pub fn refresh_successes(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.refresh_successes)
    }

    /// `refresh_token_reused` answers given for all accounts.
    pub fn total_reuse_errors(&self) -> usize {
        self.lock().accounts.values().map(|a| a.reuse_errors).sum()
    }

    /// The most recent responses request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.lock().requests.back().cloned()
    }

    /// How many responses requests carried this account id (counted in fast mode too).
    pub fn request_count(&self, account_id: &str) -> usize {
        self.with_account(account_id, |a| a.requests)
    }

    /// How many responses requests arrived in all.
    pub fn total_requests(&self) -> usize {
        self.lock().total_requests
    }

    /// Answer streams dropped (client gone) before their last event.
    pub fn dropped_streams(&self) -> usize {
        self.lock().dropped_streams
    }

    /// Forgets records and counters (accounts, tokens and behaviours stay).
    pub fn reset_records(&self) {
        let mut inner = self.lock();
        inner.requests.clear();
        inner.unmatched.clear();
        inner.total_requests = 0;
        inner.dropped_streams = 0;
        inner.finished_streams = 0;
        for acc in inner.accounts.values_mut() {
            acc.requests = 0;
            acc.refresh_calls = 0;
            acc.refresh_successes = 0;
            acc.reuse_errors = 0;
            acc.dropped_streams = 0;
            acc.usage_calls = 0;
            acc.usage_limit_refusals = 0;
        }
    }

    /// Polls `condition` every 5 ms until it holds or `timeout` passes; says whether it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&MockState) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Counters as JSON (served at `GET /__mock/stats`).
    pub fn stats_json(&self) -> Value {
        let inner = self.lock();
        let accounts: Map<String, Value> = inner
            .accounts
            .iter()
            .map(|(id, a)| {
                let stats = json!({
                    "requests": a.requests,
                    "refresh_calls": a.refresh_calls,
                    "refresh_successes": a.refresh_successes,
                    "reuse_errors": a.reuse_errors,
                    "dropped_streams": a.dropped_streams,
                    "usage_calls": a.usage_calls,
                    "usage_limit_refusals": a.usage_limit_refusals,
                });
                (id.clone(), stats)
            })
            .collect();
        json!({
            "requests": inner.total_requests,
            "open_streams": inner.open_streams,
            "dropped_streams": inner.dropped_streams,
            "finished_streams": inner.finished_streams,
            "unmatched": inner.unmatched.iter().collect::<Vec<_>>(),
            "catalog_requests": inner.catalog_requests,
            "accounts": accounts,
        })
    }

    fn with_account(&self, account_id: &str, f: impl Fn(&AccountState) -> usize) -> usize {
        self.lock().accounts.get(account_id).map_or(0, f)
    }
}

impl Inner {
    pub(crate) fn account(&mut self, account_id: &str) -> &mut AccountState {
        self.accounts
            .entry(account_id.to_owned())
            .or_insert_with(|| AccountState {
                plan_type: "plus".into(),
                ..AccountState::default()
            })
    }

    pub(crate) fn push_request(&mut self, record: RecordedRequest) {
        push_bounded(&mut self.requests, record);
    }

    /// Records a request to a path the mock does not serve (`METHOD path`).
    pub(crate) fn push_unmatched(&mut self, line: String) {
        push_bounded(&mut self.unmatched, line);
    }
}

/// Appends a record, forgetting the oldest beyond `MAX_RECORDS`.
fn push_bounded<T>(records: &mut VecDeque<T>, record: T) {
    if records.len() >= MAX_RECORDS {
        records.pop_front();
    }
    records.push_back(record);
}
