//! The account pool: owns the in-memory state of every Codex account (enabled, health, expiry,
//! cooling-until and why, requests in flight, consecutive failures, circuit breaker, token
//! refresh in progress, usage windows and what a request adds to them) and the conversations'
//! pins, and picks an account for each request.
//!
//! Messages: [`Checkout`] (pick an account, answered with a [`Lease`]), [`Report`] (the outcome
//! of a request, fire-and-forget: the pool cools the account down, trips its breaker or takes
//! it out), [`Upsert`] / [`UpsertMany`] / [`Remove`] / [`Reload`] (keep in step with the
//! database), [`TokenRefreshed`] / [`RefreshFailed`] / [`MarkNeedsRelogin`] (from the refresh
//! scheduler), [`DueForProbe`] / [`UsageProbed`] (from the usage prober), [`ApplySettings`],
//! and [`Snapshot`] (for the console and the metrics). Health changes are written to the
//! database from spawned futures: neither the actor nor the reporter waits on them. Every
//! message that carries rows merges a fresh row with the live state in one place,
//! `AccountPool::put_row`.
//!
//! A request that belongs to a conversation names its pin: the pool sends it back to the
//! account that served the conversation before (its prompt cache holds the prefix) while that
//! account can serve. Otherwise it is served elsewhere at once (a pin never makes a request
//! wait): the pin holds through a short block and moves on a long one. Pins are bounded and
//! expire when idle ([`crate::affinity`]). New conversations are placed by the strategy; the
//! default, `quota_aware`, places them in proportion to what each account is worth
//! ([`quota_score`]).
//!
//! An account can serve when it is enabled, signed in, unexpired, not cooling down, not waiting
//! for a refresh of a refused token, under the quota ceiling in both windows (walking the last
//! stretch before it one request at a time), and its breaker is closed (or half-open with no
//! trial request in flight: then it serves exactly one request, whose outcome closes or re-opens
//! the breaker). When none can, the answer says when the nearest comes back, in the upstream's
//! usage-limit shape when every blocked account is spent ([`PoolError::Exhausted`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::Serialize;

use super::ActorError;
use crate::affinity::Pins;
use crate::codex::wire::{RateLimits, UsageReport};
use crate::db::account::{self, AccountStatus};
use crate::settings::{RuntimeSettings, Strategy};

/// An account checked out for one request. Dropping it frees the account's slot, so a
/// cancelled or disconnected request can never leak capacity.
#[derive(Debug)]
pub struct Lease {
    pub account_id: i32,
    pub chatgpt_account_id: String,
    pub access_token: Arc<str>,
    pub proxy_url: Option<String>,
    in_flight: Arc<AtomicUsize>,
    /// On a request's first checkout for a conversation: the account the conversation was
    /// pinned to (`Some(None)`: no pin), to tell at the end whether it stayed there.
    pub pinned_to: Option<Option<i32>>,
    /// Set when this request is the half-open breaker's single trial: cleared on drop, so a
    /// trial that ends without a verdict (the client's error, a disconnect) lets another try.
    trial: Option<Arc<AtomicBool>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(trial) = &self.trial {
            trial.store(false, Ordering::Release);
        }
    }
}

/// Why no account could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every account that could serve has spent its usage limit; the nearest is back then.
    #[error("every account's usage limit is reached")]
    Exhausted { resets_at: DateTime<Utc> },
    /// Every usable account is cooling down; the nearest one is back after this many seconds.
    #[error("every account is cooling down")]
    AllCooling { retry_after: u64 },
    /// None can serve now, but this one will when the refresh of its refused token (this one)
    /// ends: worth waiting for, briefly.
    #[error("the only accounts left are refreshing their tokens")]
    Refreshing { account_id: i32, token: Arc<str> },
    /// No account is usable at all (none imported, all disabled, expired or dead).
    #[error("no account is available")]
    NoAccount,
    /// The pool did not answer.
    #[error(transparent)]
    Actor(#[from] ActorError),
}

/// What became of a request on an account.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The upstream answered; the snapshot of its rate-limit headers, if any.
    Success(Option<RateLimits>),
    /// The plan's usage limit: cool down until it resets.
    UsageLimit {
        until: DateTime<Utc>,
        message: String,
    },
    /// 5xx, 408, 429 without usage limit, overload, network: short, growing cooldown.
    Transient(String),
    /// 402/403: long cooldown.
    Forbidden(String),
    /// Still 401 after a refresh: the account is taken out until it signs in again.
    Unauthorized(String),
    /// A 401 for this token, whose refresh is under way: the account is skipped until the
    /// refresh ends (unless the pool already holds a newer token).
    TokenRefused(Arc<str>),
    /// The usage windows a failed answer's headers reported; nothing else changes.
    Observed(RateLimits),
}

impl Outcome {
    /// The metrics label of this outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::UsageLimit { .. } => "usage_limit",
            Outcome::Transient(_) => "transient",
            Outcome::Forbidden(_) => "forbidden",
            Outcome::Unauthorized(_) => "unauthorized",
            Outcome::TokenRefused(_) => "token_refused",
            Outcome::Observed(_) => "observed",
        }
    }
}

/// Why an account is cooling down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cooldown {
    /// Its plan's usage limit, until the window resets.
    UsageLimit,
    /// A transient failure (5xx, network, other 429s); longer on repeats.
    Transient,
    /// 402/403 from the upstream.
    Forbidden,
    /// A refused token whose refresh failed for a transient reason; longer on repeats.
    Refresh,
    /// Its circuit breaker is open.
    Breaker,
}

/// The state of an account's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Too many transient failures: no requests until `cooldown_until`.
    Open,
    /// The open time is over: one trial request decides.
    HalfOpen,
}

/// Picks an account, skipping `exclude` (accounts already tried for this request), taking
/// the account that served the turn `turn` when it can serve (the backend's turn state is
/// bound to it), else `prefer` when it can serve (the account that served the stored previous
/// response), else the account `pin` is pinned to when it can serve, else one by the strategy.
/// `pin` then points to the account chosen, unless its own account is only briefly blocked (it
/// goes back there); `turn` points to the account chosen.
#[derive(Message)]
#[rtype(result = "Result<Lease, PoolError>")]
pub struct Checkout {
    pub exclude: Vec<i32>,
    pub prefer: Option<i32>,
    pub pin: Option<u64>,
    pub turn: Option<u64>,
}

/// A turn's state (hashed, see [`crate::conversation::turn_key`]) was handed out by the
/// backend through `account_id`: the turn's next requests go there.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PinTurn {
    pub turn: u64,
    pub account_id: i32,
}

/// One usable account per plan type (accounts without a known plan count as plan
/// `"unknown"`), to fetch the upstream's model catalog for that plan.
#[derive(Message)]
#[rtype(result = "Vec<(String, ProbeTarget)>")]
pub struct CatalogTargets;

/// Reports the outcome of a request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report {
    pub account_id: i32,
    pub outcome: Outcome,
}

/// Adds or replaces an account from its database row.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Upsert(pub account::Model);

/// Adds or replaces many accounts at once (an import), in one message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpsertMany(pub Vec<account::Model>);

/// Takes an account out of the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove(pub i32);

/// Reloads every account from the database (start-up, and to pick up other instances' changes).
#[derive(Message)]
#[rtype(result = "Result<usize, sea_orm::DbErr>")]
pub struct Reload;

/// A refresh stored new credentials.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TokenRefreshed {
    pub account_id: i32,
    pub access_token: Arc<str>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A refresh failed for a transient reason. An account whose token was refused cools down,
/// longer on each failure in a row, so it is not tried on every request; one whose token still
/// works keeps serving.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RefreshFailed {
    pub account_id: i32,
    pub reason: String,
}

/// Hands out up to `max` accounts whose usage windows are due for a probe, and marks them as
/// being probed (one probe per account at a time).
#[derive(Message)]
#[rtype(result = "Vec<ProbeTarget>")]
pub struct DueForProbe {
    pub max: usize,
}

/// An account to probe, with what the probe needs.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub account_id: i32,
    pub chatgpt_account_id: String,
    pub access_token: Arc<str>,
    pub proxy_url: Option<String>,
}

/// What a probe of an account's usage windows found (or why it found nothing).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UsageProbed {
    pub account_id: i32,
    pub report: Result<UsageReport, String>,
}

/// A permanent refresh failure: the account is out until it signs in again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkNeedsRelogin {
    pub account_id: i32,
    pub reason: String,
}

/// New runtime settings.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplySettings(pub RuntimeSettings);

/// The live state of every account and of the pins, for the console and the metrics.
#[derive(Message)]
#[rtype(result = "PoolSnapshot")]
pub struct Snapshot;

/// The live state of the pool.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolSnapshot {
    pub accounts: Vec<AccountView>,
    /// Conversations pinned, in all.
    pub pins: usize,
}

/// The live state of one account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub account_id: i32,
    pub available: bool,
    pub in_flight: usize,
    pub served: u64,
    pub consecutive_failures: u32,
    pub cooldown_until: Option<DateTime<Utc>>,
    /// Why it cools down, when the pool knows (not after a restart).
    pub cooldown_reason: Option<Cooldown>,
    pub breaker: BreakerState,
    /// A refused token is being refreshed.
    pub refreshing: bool,
    /// Conversations pinned to it.
    pub pinned_conversations: usize,
    /// A usage window is at or above the ceiling: left alone until this reset.
    pub over_ceiling_until: Option<DateTime<Utc>>,
    /// When its usage windows were last seen (from traffic or a probe).
    pub usage_checked_at: Option<DateTime<Utc>>,
    pub rate_limits: Option<RateLimits>,
}

/// How long an account is skipped while the refresh of its refused token runs, at most: the
/// refresh lease's length, in case the refresh scheduler never reports back.
const REFRESH_SKIP: chrono::Duration = chrono::Duration::seconds(150);
/// The longest growing cooldown (transient failures, failed refreshes).
const MAX_COOLDOWN_SECONDS: i64 = 3600;

/// An account's circuit breaker: `breaker_failures` transient failures within
/// `breaker_window_seconds` open it for `breaker_open_seconds`; then it is half-open and one
/// trial request decides: a success closes it, a failure opens it again for twice as long (at
/// most sixteen times).
#[derive(Debug, Clone, Default)]
struct Breaker {
    failures: VecDeque<DateTime<Utc>>,
    open_until: Option<DateTime<Utc>>,
    trips: u32,
}

impl Breaker {
    fn state(&self, now: DateTime<Utc>) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if until > now => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Counts a transient failure; answers the end of the open time when it trips.
    fn failed(&mut self, now: DateTime<Utc>, settings: &RuntimeSettings) -> Option<DateTime<Utc>> {
        let window = chrono::Duration::seconds(settings.breaker_window_seconds as i64);
        self.failures.push_back(now);
        while self.failures.front().is_some_and(|at| *at <= now - window) {
            self.failures.pop_front();
        }
        let trip = match self.state(now) {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.failures.len() >= settings.breaker_failures as usize,
            BreakerState::Open => false,
        };
        if !trip {
            return None;
        }
        self.trips += 1;
        let factor = 1i64 << self.trips.saturating_sub(1).min(4);
        let until = now + chrono::Duration::seconds(settings.breaker_open_seconds as i64 * factor);
        self.open_until = Some(until);
        self.failures.clear();
        Some(until)
    }

    /// Counts a success: a half-open breaker closes.
    fn succeeded(&mut self, now: DateTime<Utc>) {
        if self.state(now) == BreakerState::HalfOpen {
            *self = Self::default();
        }
    }
}

/// Whether an account can take a request now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gate {
    /// It can.
    Open,
    /// It can, as its half-open breaker's one trial.
    Trial,
    /// Not before `until`; `spent` when that is its usage limit.
    Blocked { until: DateTime<Utc>, spent: bool },
    /// Once the refresh of its refused token ends.
    Refreshing,
    /// Not at all (disabled, signed out, expired).
    Out,
}

struct Account {
    id: i32,
    chatgpt_account_id: String,
    /// The plan type of its credentials, when known.
    plan_type: Option<String>,
    access_token: Arc<str>,
    proxy_url: Option<String>,
    enabled: bool,
    status: AccountStatus,
    expires_at: Option<DateTime<Utc>>,
    cooldown_until: Option<DateTime<Utc>>,
    cooldown_reason: Option<Cooldown>,
    consecutive_failures: u32,
    /// Transient refresh failures in a row.
    refresh_failures: u32,
    /// When the refresh of a refused token started, while it runs.
    refreshing_since: Option<DateTime<Utc>>,
    /// When a probe of its usage windows started, while it runs.
    probing_since: Option<DateTime<Utc>>,
    breaker: Breaker,
    /// A half-open breaker's trial request is in flight.
    trial: Arc<AtomicBool>,
    served: u64,
    in_flight: Arc<AtomicUsize>,
    rate_limits: Option<RateLimits>,
    /// What one request adds to its most used window, in percent (a running average of the
    /// headers' steps): the last stretch before the ceiling is walked one request at a time.
    step: f64,
}

impl Account {
    fn from_row(row: &account::Model) -> Self {
        Self {
            id: row.id,
            chatgpt_account_id: row.chatgpt_account_id.clone(),
            plan_type: row.plan_type.clone().filter(|p| !p.trim().is_empty()),
            access_token: Arc::from(row.access_token.as_str()),
            proxy_url: row.proxy_url.clone(),
            enabled: row.is_active && row.deleted_at.is_none(),
            status: row.status,
            expires_at: row.expires_at,
            cooldown_until: row.cooldown_until,
            cooldown_reason: None,
            consecutive_failures: 0,
            refresh_failures: 0,
            refreshing_since: None,
            probing_since: None,
            breaker: Breaker::default(),
            trial: Arc::new(AtomicBool::new(false)),
            served: row.usage_count.max(0) as u64,
            in_flight: Arc::new(AtomicUsize::new(0)),
            rate_limits: row
                .rate_limits
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            step: INITIAL_STEP,
        }
    }

    /// Carries the live state of the account this one replaces: requests in flight still hold
    /// the old counter, and the pool's counters are newer than the row's. The rate limits are
    /// the fresher of the two: the row's if it has any, else the live ones.
    fn keep_live(&mut self, old: Account) {
        self.in_flight = old.in_flight;
        self.trial = old.trial;
        self.served = self.served.max(old.served);
        self.consecutive_failures = old.consecutive_failures;
        self.refresh_failures = old.refresh_failures;
        self.breaker = old.breaker;
        // A refresh under way ends when the scheduler reports, whatever the row says.
        if self.access_token == old.access_token {
            self.refreshing_since = old.refreshing_since;
        }
        if self.cooldown_until == old.cooldown_until {
            self.cooldown_reason = old.cooldown_reason;
        }
        self.probing_since = old.probing_since;
        self.step = old.step;
        // The fresher snapshot wins: the row's is written in batches, behind the live one.
        let row_is_fresher = match (&self.rate_limits, &old.rate_limits) {
            (Some(row), Some(live)) => row.newer_than(live),
            (row, _) => row.is_some(),
        };
        if !row_is_fresher {
            self.rate_limits = old.rate_limits;
        }
    }

    /// Usable apart from cooling: enabled, signed in, not expired.
    fn usable(&self, now: DateTime<Utc>) -> bool {
        self.enabled
            && self.status != AccountStatus::NeedsRelogin
            && self.expires_at.is_none_or(|at| at > now)
    }

    fn refreshing(&self, now: DateTime<Utc>) -> bool {
        self.refreshing_since
            .is_some_and(|since| since + REFRESH_SKIP > now)
    }

    /// Whether the account can take a request now, and if not, until when. `ceiling` is the
    /// used percent of a window at which the account is left alone until the window resets.
    fn gate(&self, now: DateTime<Utc>, ceiling: f64) -> Gate {
        if !self.usable(now) {
            return Gate::Out;
        }
        let ceiling = self.ceiling(ceiling);
        if let Some(until) = self.over_ceiling(now, ceiling) {
            return Gate::Blocked { until, spent: true };
        }
        if let Some(until) = self.cooldown_until.filter(|until| *until > now) {
            return Gate::Blocked {
                until,
                spent: self.cooldown_reason == Some(Cooldown::UsageLimit),
            };
        }
        if self.refreshing(now) {
            return Gate::Refreshing;
        }
        match self.breaker.state(now) {
            BreakerState::Closed if self.last_stretch_busy(now, ceiling) => Gate::Blocked {
                until: now + chrono::Duration::seconds(1),
                spent: false,
            },
            BreakerState::Closed => Gate::Open,
            BreakerState::Open => Gate::Blocked {
                until: self.breaker.open_until.unwrap_or(now),
                spent: false,
            },
            BreakerState::HalfOpen if self.trial.load(Ordering::Acquire) => Gate::Blocked {
                until: now + chrono::Duration::seconds(1),
                spent: false,
            },
            BreakerState::HalfOpen => Gate::Trial,
        }
    }

    /// The ceiling for this account: the configured one, or lower when one request is known to
    /// spend more than the room left above it (the limit itself must not be reached).
    fn ceiling(&self, configured: f64) -> f64 {
        configured.min(100.0 - self.step.min(MAX_STEP_MARGIN))
    }

    /// Whether the account is in the last stretch before `ceiling` (the requests in flight and
    /// one more would reach it, at [`Account::step`] each) with a request in flight: there,
    /// one request at a time, so that requests in flight together cannot overshoot the limit
    /// before the headers show it.
    fn last_stretch_busy(&self, now: DateTime<Utc>, ceiling: f64) -> bool {
        let in_flight = self.in_flight.load(Ordering::Acquire);
        if in_flight == 0 {
            return false;
        }
        let Some(limits) = &self.rate_limits else {
            return false;
        };
        let ahead = self.step * (in_flight + 1) as f64;
        limits
            .windows()
            .any(|w| w.resets_at.is_none_or(|at| at > now) && w.used_percent + ahead >= ceiling)
    }

    /// Learns [`Account::step`] from a new snapshot of the windows: the increase of the most
    /// used window since the last snapshot, when it is the same window, newer and not smaller,
    /// at most twice the step so far.
    fn learn_step(&mut self, new: &RateLimits) {
        let Some(old) = &self.rate_limits else {
            return;
        };
        if !new.newer_than(old) {
            return;
        }
        let same = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
            (Some(a), Some(b)) => (a - b).num_seconds().abs() <= 120,
            (None, None) => true,
            _ => false,
        };
        let delta = old
            .windows()
            .zip(new.windows())
            .filter(|(o, n)| same(o.resets_at, n.resets_at) && n.used_percent >= o.used_percent)
            .map(|(o, n)| n.used_percent - o.used_percent)
            .fold(None, |max: Option<f64>, d| {
                Some(max.map_or(d, |m| m.max(d)))
            });
        if let Some(delta) = delta {
            // A jump far beyond the usual step is someone else's use of the account (or a
            // reset seen late), not what one request costs: it moves the average a little only.
            let delta = delta.min((2.0 * self.step).max(1.0));
            self.step = (self.step * (1.0 - STEP_WEIGHT) + delta * STEP_WEIGHT).clamp(0.0, 25.0);
        }
    }

    /// When the account's windows at or above `ceiling` percent reset, if any is: the last of
    /// them (the account needs them all); a window whose reset time passed is fresh again.
    fn over_ceiling(&self, now: DateTime<Utc>, ceiling: f64) -> Option<DateTime<Utc>> {
        let limits = self.rate_limits.as_ref()?;
        limits
            .windows()
            .filter(|w| w.used_percent >= ceiling)
            .filter_map(|w| match w.resets_at {
                Some(at) if at <= now => None,
                Some(at) => Some(at),
                // No reset time given: look again a little later.
                None => Some(limits.checked_at.unwrap_or(now) + chrono::Duration::minutes(5)),
            })
            .filter(|at| *at > now)
            .max()
    }

    /// Cools the account down until `until` (or longer, if it already cools longer).
    fn cool(&mut self, until: DateTime<Utc>, reason: Cooldown) {
        if self.cooldown_until.is_none_or(|current| current <= until) {
            self.cooldown_until = Some(until);
            self.cooldown_reason = Some(reason);
        }
    }

    fn view(&self, now: DateTime<Utc>, ceiling: f64) -> AccountView {
        let cooldown_until = self.cooldown_until.filter(|u| *u > now);
        AccountView {
            account_id: self.id,
            available: matches!(self.gate(now, ceiling), Gate::Open | Gate::Trial),
            over_ceiling_until: self.over_ceiling(now, self.ceiling(ceiling)),
            in_flight: self.in_flight.load(Ordering::Acquire),
            served: self.served,
            consecutive_failures: self.consecutive_failures,
            cooldown_until,
            cooldown_reason: cooldown_until.and(self.cooldown_reason),
            breaker: self.breaker.state(now),
            refreshing: self.refreshing(now),
            pinned_conversations: 0,
            usage_checked_at: self.rate_limits.as_ref().and_then(|l| l.checked_at),
            rate_limits: self.rate_limits.clone(),
        }
    }
}

/// The shortest share of a window's time taken into account: headroom that resets within 5%
/// of the window counts as much as if it reset then.
const MIN_TIME_SHARE: f64 = 0.05;

/// What spending an account now is worth, by its usage windows: per window, the headroom left
/// over the share of the window's time left until it resets. 1 is on pace; more is headroom
/// that will go unused by the reset unless it is spent (it resets soon); less is an account
/// ahead of its pace (little left for long). The account's worth is that of its tightest
/// window; a window not seen, or reset since it was seen, is on pace.
pub fn quota_score(limits: Option<&RateLimits>, now: DateTime<Utc>) -> f64 {
    let Some(limits) = limits else {
        return 1.0;
    };
    let score = limits
        .windows()
        .map(|w| {
            let length = (w.minutes.unwrap_or(300).max(1) * 60) as f64;
            let left = match w.resets_at {
                Some(at) if at <= now => return 1.0,
                Some(at) => ((at - now).num_seconds() as f64 / length).clamp(MIN_TIME_SHARE, 1.0),
                None => 1.0,
            };
            ((100.0 - w.used_percent) / 100.0).clamp(0.0, 1.0) / left
        })
        .fold(f64::INFINITY, f64::min);
    if score.is_finite() {
        score
    } else {
        1.0
    }
}

/// `quota_aware`: the account with the least load for its worth (see [`quota_score`]): the
/// conversations pinned to it (the turns to come) and its requests in flight, over its score.
/// New conversations thus spread over the accounts in proportion to what each is worth:
/// headroom that resets soon draws most of them, an account twice as full draws half as many,
/// and so the accounts run dry together instead of one after the other (each one that runs dry
/// sheds its conversations, and their caches). Nothing herds onto one account while the used
/// percents lag. Ties go by rendezvous hashing of `seed` (the conversation).
fn quota_aware<'a>(
    candidates: &[&'a Account],
    seed: u64,
    now: DateTime<Utc>,
    pinned: impl Fn(i32) -> usize,
) -> Option<&'a Account> {
    let scored: Vec<(&Account, f64)> = candidates
        .iter()
        .map(|a| (*a, quota_score(a.rate_limits.as_ref(), now)))
        .collect();
    let load = |a: &Account, score: f64| {
        let busy = pinned(a.id) + a.in_flight.load(Ordering::Acquire) + 1;
        busy as f64 / score.max(f64::EPSILON)
    };
    scored
        .into_iter()
        .map(|(a, score)| (a, load(a, score), rendezvous(seed, a.id)))
        .min_by(|(_, x, hx), (_, y, hy)| x.total_cmp(y).then(hy.cmp(hx)))
        .map(|(a, _, _)| a)
}

/// A well-mixed hash of a seed and an account (splitmix64).
fn rendezvous(seed: u64, account_id: i32) -> u64 {
    let mut z = seed ^ (account_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a request is taken to add to an account's most used window before the headers say.
const INITIAL_STEP: f64 = 1.0;
/// The most room below the limit a large step keeps free (the ceiling drops at most to 90%).
const MAX_STEP_MARGIN: f64 = 10.0;
/// The weight of a new observation in the running average of the step.
const STEP_WEIGHT: f64 = 0.2;
/// A conversation whose account is blocked for no longer than this (a transient cooldown, a
/// refresh, a breaker's trial, the last stretch's queue) is served elsewhere meanwhile but
/// keeps its pin, and goes back to its cache afterwards; a longer block (a usage limit, the
/// ceiling, a long cooldown) moves the pin.
const PIN_HOLD: chrono::Duration = chrono::Duration::seconds(60);

/// A cooldown that doubles with each failure in a row: `base` after the first, at most an hour.
fn growing(base_seconds: u64, failures: u32) -> chrono::Duration {
    let factor = 1i64 << failures.saturating_sub(1).min(6);
    chrono::Duration::seconds((base_seconds as i64 * factor).min(MAX_COOLDOWN_SECONDS))
}

/// The account pool actor.
pub struct AccountPool {
    db: DatabaseConnection,
    reload_every: Duration,
    accounts: BTreeMap<i32, Account>,
    settings: RuntimeSettings,
    /// The id handed out last by round-robin.
    cursor: Option<i32>,
    /// Opens the tokens of the rows it reads (rows in clear pass as they are).
    cipher: Option<Arc<crate::crypto::Cipher>>,
    pins: Pins,
    /// Turn states -> the account that served the turn, bounded like the pins.
    turns: Pins,
    /// The tie-breaking seed of `quota_aware` for requests without a conversation.
    spread: u64,
    /// Tells the webhooks of accounts near their limits or signed out, and of the pool
    /// running dry and recovering.
    notifier: super::webhooks::WebhookHandle,
    /// Whether some account could serve at the last look (`pool.exhausted` fires when this
    /// turns false, `pool.recovered` when it turns true again).
    serving: bool,
}

/// The `account.limit_near` events of an account's windows at or above `percent`.
fn notify_near_limits(
    notifier: &super::webhooks::WebhookHandle,
    account_id: i32,
    limits: &RateLimits,
) {
    use super::webhooks::{EventKind, Subject};
    let percent = notifier.limit_near_percent;
    let windows = [
        (
            "primary",
            limits.primary_used_percent,
            limits.primary_window_minutes,
            limits.primary_resets_at,
        ),
        (
            "secondary",
            limits.secondary_used_percent,
            limits.secondary_window_minutes,
            limits.secondary_resets_at,
        ),
    ];
    let near = windows
        .into_iter()
        .filter(|(_, used, _, _)| used.is_some_and(|u| percent > 0.0 && u >= percent))
        .max_by(|a, b| a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)));
    if let Some((window, used, minutes, resets_at)) = near {
        notifier.emit(
            EventKind::LimitNear,
            Subject::Account(account_id),
            serde_json::json!({
                "account_id": account_id,
                "window": window,
                "used_percent": used,
                "window_minutes": minutes,
                "resets_at": resets_at,
                "threshold_percent": percent,
            }),
        );
    }
}

impl AccountPool {
    /// A pool with no accounts yet and room for `max_pins` conversation pins; send [`Reload`]
    /// to fill it.
    pub fn new(
        db: DatabaseConnection,
        settings: RuntimeSettings,
        reload_every: Duration,
        max_pins: usize,
    ) -> Self {
        Self {
            db,
            reload_every,
            accounts: BTreeMap::new(),
            settings,
            cursor: None,
            cipher: None,
            pins: Pins::new(max_pins),
            turns: Pins::new(max_pins),
            spread: 0,
            notifier: super::webhooks::WebhookHandle::default(),
            serving: true,
        }
    }

    /// Tells `notifier` of accounts near their limits or signed out, and of the pool running
    /// dry and recovering.
    #[must_use]
    pub fn with_notifier(mut self, notifier: super::webhooks::WebhookHandle) -> Self {
        self.notifier = notifier;
        self
    }

    /// Looks whether some account can serve now, and tells the webhooks when that changed.
    /// A pool with no usable account at all (none imported, all disabled) is not "exhausted":
    /// it never served.
    fn check_serving(&mut self, now: DateTime<Utc>) {
        use super::webhooks::{EventKind, Subject};
        let ceiling = self.settings.quota_ceiling_percent;
        let mut counted = 0usize;
        let mut serving = false;
        let mut back_at: Option<DateTime<Utc>> = None;
        for account in self.accounts.values().filter(|a| a.enabled) {
            counted += 1;
            match account.gate(now, ceiling) {
                Gate::Open | Gate::Trial | Gate::Refreshing => serving = true,
                Gate::Blocked { until, .. } => {
                    back_at = Some(back_at.map_or(until, |b| b.min(until)));
                }
                Gate::Out => {}
            }
        }
        if counted == 0 || serving == self.serving {
            return;
        }
        self.serving = serving;
        if serving {
            tracing::info!("an account can serve again");
            self.notifier.emit(
                EventKind::PoolRecovered,
                Subject::Pool,
                serde_json::json!({"accounts": counted}),
            );
        } else {
            tracing::warn!("no account can serve");
            self.notifier.emit(
                EventKind::PoolExhausted,
                Subject::Pool,
                serde_json::json!({"accounts": counted, "next_available_at": back_at}),
            );
        }
    }

    fn pin_ttl(&self) -> Duration {
        Duration::from_secs(self.settings.affinity_ttl_seconds)
    }

    /// The live state, for the console and the metrics.
    fn snapshot(&self) -> PoolSnapshot {
        let now = Utc::now();
        let accounts = self
            .accounts
            .values()
            .map(|a| AccountView {
                pinned_conversations: self.pins.pinned_to(a.id),
                ..a.view(now, self.settings.quota_ceiling_percent)
            })
            .collect();
        PoolSnapshot {
            accounts,
            pins: self.pins.len(),
        }
    }

    /// Opens sealed tokens with `cipher`.
    #[must_use]
    pub fn with_cipher(mut self, cipher: Arc<crate::crypto::Cipher>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Puts a fresh database row in the pool, merged with the live state of the account it
    /// replaces; a deleted row leaves the pool.
    fn put_row(&mut self, row: &account::Model) {
        let old = self.accounts.remove(&row.id);
        if row.deleted_at.is_some() {
            return;
        }
        let opened;
        let row = match &self.cipher {
            Some(cipher) => match crate::secrets::open_account(cipher, row.clone()) {
                Ok(open) => {
                    opened = open;
                    &opened
                }
                Err(e) => {
                    tracing::error!(account_id = row.id, error = %e, "cannot decrypt the account's tokens; it stays out of the pool");
                    return;
                }
            },
            None => row,
        };
        let mut fresh = Account::from_row(row);
        if let Some(old) = old {
            fresh.keep_live(old);
        }
        self.accounts.insert(row.id, fresh);
    }

    /// [`Checkout`]: the turn's account first, then as [`Self::pick`]; the turn then points to
    /// the account chosen.
    fn checkout(&mut self, msg: &Checkout) -> Result<Lease, PoolError> {
        let clock = std::time::Instant::now();
        let ttl = self.pin_ttl();
        let turn_home = msg.turn.and_then(|key| self.turns.get(key, clock, ttl));
        let lease = self.pick(&msg.exclude, turn_home.or(msg.prefer), msg.pin)?;
        if let Some(key) = msg.turn {
            self.turns.pin(key, lease.account_id, clock);
        }
        Ok(lease)
    }

    /// One usable account per plan type, the least busy of each, for the catalog fetch.
    fn catalog_targets(&self, now: DateTime<Utc>) -> Vec<(String, ProbeTarget)> {
        let ceiling = self.settings.quota_ceiling_percent;
        let mut by_plan: BTreeMap<String, &Account> = BTreeMap::new();
        for account in self.accounts.values() {
            if !matches!(account.gate(now, ceiling), Gate::Open | Gate::Trial) {
                continue;
            }
            let plan = account
                .plan_type
                .clone()
                .unwrap_or_else(|| "unknown".to_owned());
            let busy = |a: &Account| a.in_flight.load(Ordering::Acquire);
            by_plan
                .entry(plan)
                .and_modify(|known| {
                    if busy(account) < busy(known) {
                        *known = account;
                    }
                })
                .or_insert(account);
        }
        by_plan
            .into_iter()
            .map(|(plan, a)| {
                let target = ProbeTarget {
                    account_id: a.id,
                    chatgpt_account_id: a.chatgpt_account_id.clone(),
                    access_token: a.access_token.clone(),
                    proxy_url: a.proxy_url.clone(),
                };
                (plan, target)
            })
            .collect()
    }

    fn pick(
        &mut self,
        exclude: &[i32],
        prefer: Option<i32>,
        pin: Option<u64>,
    ) -> Result<Lease, PoolError> {
        let now = Utc::now();
        let clock = std::time::Instant::now();
        let ttl = self.pin_ttl();
        let pinned = pin.and_then(|key| self.pins.get(key, clock, ttl));
        let excluded: HashSet<i32> = exclude.iter().copied().collect();
        // The nearest time a blocked account comes back, and whether every blocked one is
        // spent (its usage limit). Accounts already tried for this request count too: they may
        // have just started cooling.
        let mut nearest: Option<DateTime<Utc>> = None;
        let mut all_spent = true;
        let mut refreshing: Option<&Account> = None;
        let mut candidates: Vec<&Account> = Vec::new();
        let ceiling = self.settings.quota_ceiling_percent;
        // Whether the pinned account is out for long (then the pin moves), or only briefly.
        let mut pin_holds = false;
        for account in self.accounts.values() {
            let gate = account.gate(now, ceiling);
            if pinned == Some(account.id) {
                pin_holds = match gate {
                    Gate::Out => false,
                    Gate::Blocked { until, spent } => !spent && until <= now + PIN_HOLD,
                    Gate::Refreshing | Gate::Open | Gate::Trial => true,
                };
            }
            match gate {
                Gate::Out => {}
                Gate::Refreshing => {
                    refreshing = refreshing
                        .filter(|r| r.refreshing_since <= account.refreshing_since)
                        .or(Some(account));
                }
                Gate::Blocked { until, spent } => {
                    nearest = Some(nearest.map_or(until, |n| n.min(until)));
                    all_spent &= spent;
                }
                Gate::Open | Gate::Trial if excluded.contains(&account.id) => {}
                Gate::Open | Gate::Trial => candidates.push(account),
            }
        }
        let find =
            |id: Option<i32>| id.and_then(|id| candidates.iter().copied().find(|a| a.id == id));
        let from_prefer = find(prefer);
        let preferred = from_prefer.or_else(|| find(pinned));
        let by_strategy = preferred.is_none();
        // The stored previous response's account wins, and takes the pin.
        let explicit = from_prefer.is_some();
        let chosen = preferred.or_else(|| match self.settings.strategy {
            Strategy::QuotaAware => {
                self.spread = self.spread.wrapping_add(1);
                let pins = &self.pins;
                quota_aware(&candidates, pin.unwrap_or(self.spread), now, |id| {
                    pins.pinned_to(id)
                })
            }
            Strategy::FillFirst => candidates.first().copied(),
            Strategy::LeastUsed => candidates
                .iter()
                .copied()
                .min_by_key(|a| (a.in_flight.load(Ordering::Acquire), a.served)),
            Strategy::RoundRobin => {
                let after = self.cursor;
                candidates
                    .iter()
                    .copied()
                    .find(|a| after.is_none_or(|c| a.id > c))
                    .or_else(|| candidates.first().copied())
            }
        });
        let Some(chosen) = chosen else {
            if let Some(account) = refreshing {
                return Err(PoolError::Refreshing {
                    account_id: account.id,
                    token: account.access_token.clone(),
                });
            }
            return Err(match nearest {
                Some(at) if all_spent => PoolError::Exhausted { resets_at: at },
                Some(at) => PoolError::AllCooling {
                    retry_after: (at - now).num_seconds().max(1) as u64,
                },
                None => PoolError::NoAccount,
            });
        };
        let trial = (chosen.gate(now, ceiling) == Gate::Trial).then(|| {
            chosen.trial.store(true, Ordering::Release);
            chosen.trial.clone()
        });
        chosen.in_flight.fetch_add(1, Ordering::AcqRel);
        let pinned_to = pin.filter(|_| exclude.is_empty()).map(|_| pinned);
        let lease = Lease {
            account_id: chosen.id,
            chatgpt_account_id: chosen.chatgpt_account_id.clone(),
            access_token: chosen.access_token.clone(),
            proxy_url: chosen.proxy_url.clone(),
            in_flight: chosen.in_flight.clone(),
            pinned_to,
            trial,
        };
        if by_strategy {
            self.cursor = Some(chosen.id);
        }
        if let Some(key) = pin {
            // A pin held through a short block is only touched, so it does not expire.
            let home = match pinned {
                Some(home) if pin_holds && !explicit => home,
                _ => lease.account_id,
            };
            self.pins.pin(key, home, clock);
        }
        Ok(lease)
    }

    /// Writes an account's health to the database from a spawned future: the actor goes on
    /// serving other messages meanwhile, and nobody waits for it. `message` is the failure to
    /// record, if any.
    fn persist_health(&self, id: i32, message: Option<String>) {
        let Some(account) = self.accounts.get(&id) else {
            return;
        };
        let db = self.db.clone();
        let cooldown = account.cooldown_until;
        let status = account.status;
        let fut = async move {
            let mut update = account::Entity::update_many()
                .col_expr(account::Column::CooldownUntil, Expr::value(cooldown))
                .col_expr(account::Column::Status, Expr::value(status))
                .col_expr(account::Column::UpdatedAt, Expr::value(Utc::now()));
            if let Some(message) = message {
                update = update
                    .col_expr(account::Column::LastError, Expr::value(message))
                    .col_expr(account::Column::LastErrorAt, Expr::value(Utc::now()))
                    .col_expr(
                        account::Column::ErrorCount,
                        Expr::col(account::Column::ErrorCount).add(1),
                    );
            }
            if let Err(e) = update.filter(account::Column::Id.eq(id)).exec(&db).await {
                tracing::error!(account_id = id, error = %e, "cannot store account health");
            }
        };
        write_behind(fut);
    }

    /// Applies an outcome to the live state; answers the failure to store, if any.
    fn apply(&mut self, id: i32, outcome: Outcome, now: DateTime<Utc>) -> Option<String> {
        let settings = &self.settings;
        let account = self.accounts.get_mut(&id)?;
        let message = match outcome {
            Outcome::Success(limits) => {
                account.consecutive_failures = 0;
                account.served += 1;
                account.breaker.succeeded(now);
                if let Some(limits) = limits {
                    account.learn_step(&limits);
                    notify_near_limits(&self.notifier, id, &limits);
                    account.rate_limits = Some(limits);
                }
                return None;
            }
            Outcome::Observed(limits) => {
                notify_near_limits(&self.notifier, id, &limits);
                account.rate_limits = Some(limits);
                return None;
            }
            Outcome::TokenRefused(token) => {
                // A 401 for a token already replaced says nothing about the new one.
                if token == account.access_token {
                    account.refreshing_since = Some(now);
                }
                return None;
            }
            Outcome::UsageLimit { until, message } => {
                account.cool(
                    until.max(now + chrono::Duration::seconds(1)),
                    Cooldown::UsageLimit,
                );
                message
            }
            Outcome::Transient(message) => {
                account.consecutive_failures += 1;
                let cooldown = growing(
                    settings.transient_cooldown_seconds,
                    account.consecutive_failures,
                );
                account.cool(now + cooldown, Cooldown::Transient);
                if let Some(until) = account.breaker.failed(now, settings) {
                    account.cool(until, Cooldown::Breaker);
                    tracing::warn!(account_id = id, open_until = %until, "circuit breaker opened");
                }
                message
            }
            Outcome::Forbidden(message) => {
                account.consecutive_failures += 1;
                let seconds = settings.forbidden_cooldown_seconds as i64;
                account.cool(
                    now + chrono::Duration::seconds(seconds),
                    Cooldown::Forbidden,
                );
                message
            }
            Outcome::Unauthorized(message) => {
                account.status = AccountStatus::NeedsRelogin;
                account.refreshing_since = None;
                self.notifier.emit(
                    super::webhooks::EventKind::NeedsRelogin,
                    super::webhooks::Subject::Account(id),
                    serde_json::json!({"account_id": id, "reason": message}),
                );
                message
            }
        };
        tracing::warn!(account_id = id, reason = %message, cooldown_until = ?account.cooldown_until, status = ?account.status, "account taken out of rotation for now");
        Some(message)
    }
}

/// A probe that never reported back is given up after this long.
const PROBE_TIMEOUT: chrono::Duration = chrono::Duration::seconds(60);

impl AccountPool {
    /// Up to `max` accounts due for a probe of their usage windows, the longest unseen first:
    /// usable ones whose windows were not seen (by traffic or a probe) for
    /// `usage_probe_interval_seconds`, not being probed or refreshed, and not cooling for a
    /// reason a probe cannot end (402/403, a failed refresh). They are marked as probed.
    fn due_for_probe(&mut self, now: DateTime<Utc>, max: usize) -> Vec<ProbeTarget> {
        let interval = self.settings.usage_probe_interval_seconds as i64;
        if interval == 0 || max == 0 {
            return Vec::new();
        }
        let stale_before = now - chrono::Duration::seconds(interval);
        let mut due: Vec<&mut Account> = self
            .accounts
            .values_mut()
            .filter(|a| {
                let checked = a.rate_limits.as_ref().and_then(|l| l.checked_at);
                let hopeless = a.cooldown_until.is_some_and(|u| u > now)
                    && matches!(
                        a.cooldown_reason,
                        Some(Cooldown::Forbidden | Cooldown::Refresh)
                    );
                a.usable(now)
                    && !a.refreshing(now)
                    && !hopeless
                    && a.probing_since
                        .is_none_or(|since| since + PROBE_TIMEOUT <= now)
                    && checked.is_none_or(|at| at <= stale_before)
            })
            .collect();
        due.sort_by_key(|a| a.rate_limits.as_ref().and_then(|l| l.checked_at));
        due.into_iter()
            .take(max)
            .map(|a| {
                a.probing_since = Some(now);
                ProbeTarget {
                    account_id: a.id,
                    chatgpt_account_id: a.chatgpt_account_id.clone(),
                    access_token: a.access_token.clone(),
                    proxy_url: a.proxy_url.clone(),
                }
            })
            .collect()
    }

    /// Takes in a probe's report. A usage-limit cooldown ends at once when the windows say the
    /// limit is no longer reached (a window reset early); a limit reached that the pool did not
    /// know of starts one. Answers the windows to store and whether the health changed.
    fn probed(&mut self, msg: UsageProbed, now: DateTime<Utc>) -> (Option<RateLimits>, bool) {
        let ceiling = self.settings.quota_ceiling_percent;
        let Some(account) = self.accounts.get_mut(&msg.account_id) else {
            return (None, false);
        };
        account.probing_since = None;
        let report = match msg.report {
            Ok(report) => report,
            Err(reason) => {
                tracing::debug!(account_id = msg.account_id, %reason, "usage probe failed");
                return (None, false);
            }
        };
        if account
            .rate_limits
            .as_ref()
            .is_some_and(|current| current.newer_than(&report.limits))
        {
            // Traffic brought fresher windows while the probe ran.
            return (None, false);
        }
        notify_near_limits(&self.notifier, msg.account_id, &report.limits);
        account.rate_limits = Some(report.limits.clone());
        let usage_cooling = account.cooldown_until.is_some_and(|u| u > now)
            && account.cooldown_reason == Some(Cooldown::UsageLimit);
        let mut changed = false;
        let ceiling = account.ceiling(ceiling);
        if usage_cooling && !report.limit_reached && account.over_ceiling(now, ceiling).is_none() {
            tracing::info!(
                account_id = msg.account_id,
                "usage window reset early; the account serves again"
            );
            account.cooldown_until = None;
            account.cooldown_reason = None;
            changed = true;
        } else if report.limit_reached && !usage_cooling {
            let until = report
                .limits
                .windows()
                .filter_map(|w| w.resets_at)
                .filter(|at| *at > now)
                .max()
                .unwrap_or(now + chrono::Duration::minutes(5));
            account.cool(until, Cooldown::UsageLimit);
            changed = true;
        }
        (Some(report.limits), changed)
    }

    /// Writes an account's usage windows to the database from a spawned future.
    fn persist_limits(&self, id: i32, limits: &RateLimits) {
        let Ok(text) = serde_json::to_string(limits) else {
            return;
        };
        let db = self.db.clone();
        let limits = limits.clone();
        let fut = async move {
            let update = account::Entity::update_many()
                .col_expr(account::Column::RateLimits, Expr::value(text))
                .filter(account::Column::Id.eq(id))
                .exec(&db)
                .await;
            let history = match update {
                Ok(_) => crate::usage_history::record(&db, id, &limits, Utc::now()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = history {
                tracing::error!(account_id = id, error = %e, "cannot store usage windows");
            }
        };
        write_behind(fut);
    }

    /// New credentials: the account serves again. Answers whether a cooldown of a failed
    /// refresh ended (to be stored).
    fn refreshed(&mut self, msg: TokenRefreshed) -> bool {
        let Some(account) = self.accounts.get_mut(&msg.account_id) else {
            return false;
        };
        account.access_token = msg.access_token;
        account.expires_at = msg.expires_at;
        account.status = AccountStatus::Active;
        account.refreshing_since = None;
        account.refresh_failures = 0;
        if account.cooldown_reason != Some(Cooldown::Refresh) {
            return false;
        }
        account.cooldown_until = None;
        account.cooldown_reason = None;
        true
    }

    /// A transient refresh failure: an account whose token was refused (or has expired)
    /// cools down, longer on each failure in a row; one whose token still works keeps serving.
    /// Answers whether it cools (to be stored).
    fn refresh_failed(&mut self, msg: &RefreshFailed, now: DateTime<Utc>) -> bool {
        let base = self.settings.transient_cooldown_seconds;
        let Some(account) = self.accounts.get_mut(&msg.account_id) else {
            return false;
        };
        let refused = account.refreshing_since.take().is_some();
        let expired = account.expires_at.is_some_and(|at| at <= now);
        if !refused && !expired {
            return false;
        }
        account.refresh_failures += 1;
        account.status = AccountStatus::RefreshFailed;
        account.cool(
            now + growing(base, account.refresh_failures),
            Cooldown::Refresh,
        );
        tracing::warn!(account_id = msg.account_id, reason = %msg.reason, cooldown_until = ?account.cooldown_until, "refresh failed; the account cools down");
        true
    }
}

impl Actor for AccountPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // Other instances sharing the database change accounts too.
        ctx.run_interval(self.reload_every, |_, ctx| ctx.notify(Reload));
        ctx.run_interval(Duration::from_secs(30), |act, _| {
            let ttl = act.pin_ttl();
            act.pins.sweep(std::time::Instant::now(), ttl);
            act.turns.sweep(std::time::Instant::now(), ttl);
        });
        // Cooldowns end without a message: look again every second.
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            act.check_serving(Utc::now());
        });
    }
}

impl Handler<Checkout> for AccountPool {
    type Result = Result<Lease, PoolError>;

    fn handle(&mut self, msg: Checkout, _: &mut Self::Context) -> Self::Result {
        let picked = self.checkout(&msg);
        if picked.is_err() {
            self.check_serving(Utc::now());
        }
        picked
    }
}

impl Handler<PinTurn> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: PinTurn, _: &mut Self::Context) {
        self.turns
            .pin(msg.turn, msg.account_id, std::time::Instant::now());
    }
}

impl Handler<CatalogTargets> for AccountPool {
    type Result = MessageResult<CatalogTargets>;

    fn handle(&mut self, _: CatalogTargets, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.catalog_targets(Utc::now()))
    }
}

impl Handler<Report> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: Report, _: &mut Self::Context) {
        if let Some(message) = self.apply(msg.account_id, msg.outcome, Utc::now()) {
            self.persist_health(msg.account_id, Some(message));
        }
    }
}

impl Handler<Upsert> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: Upsert, _: &mut Self::Context) {
        self.put_row(&msg.0);
    }
}

impl Handler<UpsertMany> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: UpsertMany, _: &mut Self::Context) {
        for row in &msg.0 {
            self.put_row(row);
        }
    }
}

impl Handler<Remove> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: Remove, _: &mut Self::Context) {
        self.accounts.remove(&msg.0);
    }
}

impl Handler<Reload> for AccountPool {
    type Result = ResponseActFuture<Self, Result<usize, sea_orm::DbErr>>;

    fn handle(&mut self, _: Reload, _: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(
            async move {
                account::Entity::find()
                    .filter(account::Column::DeletedAt.is_null())
                    .all(&db)
                    .await
            }
            .into_actor(self)
            .map(|rows, act, _| {
                let rows = rows?;
                let ids: HashSet<i32> = rows.iter().map(|r| r.id).collect();
                act.accounts.retain(|id, _| ids.contains(id));
                let count = rows.len();
                for row in &rows {
                    act.put_row(row);
                }
                Ok(count)
            }),
        )
    }
}

impl Handler<TokenRefreshed> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: TokenRefreshed, _: &mut Self::Context) {
        let id = msg.account_id;
        if self.refreshed(msg) {
            self.persist_health(id, None);
        }
    }
}

impl Handler<RefreshFailed> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: RefreshFailed, _: &mut Self::Context) {
        let id = msg.account_id;
        if self.refresh_failed(&msg, Utc::now()) {
            // The refresh scheduler stored the failure itself; only the cooldown is new.
            self.persist_health(id, None);
        }
    }
}

impl Handler<DueForProbe> for AccountPool {
    type Result = MessageResult<DueForProbe>;

    fn handle(&mut self, msg: DueForProbe, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.due_for_probe(Utc::now(), msg.max))
    }
}

impl Handler<UsageProbed> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: UsageProbed, _: &mut Self::Context) {
        let id = msg.account_id;
        let (limits, changed) = self.probed(msg, Utc::now());
        if let Some(limits) = limits {
            self.persist_limits(id, &limits);
        }
        if changed {
            self.persist_health(id, None);
        }
    }
}

impl Handler<MarkNeedsRelogin> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: MarkNeedsRelogin, _: &mut Self::Context) {
        if let Some(account) = self.accounts.get_mut(&msg.account_id) {
            account.status = AccountStatus::NeedsRelogin;
            account.refreshing_since = None;
            tracing::warn!(account_id = msg.account_id, reason = %msg.reason, "account needs a new sign-in");
        }
    }
}

impl Handler<ApplySettings> for AccountPool {
    type Result = ();

    fn handle(&mut self, msg: ApplySettings, _: &mut Self::Context) {
        self.settings = msg.0;
    }
}

impl Handler<Snapshot> for AccountPool {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

/// The handlers' way to the account pool.
#[derive(Clone)]
pub struct AccountPoolHandle {
    addr: Addr<AccountPool>,
    timeout: Duration,
}

impl AccountPoolHandle {
    /// Wraps the address of a started pool.
    pub fn new(addr: Addr<AccountPool>, timeout: Duration) -> Self {
        Self { addr, timeout }
    }

    /// Checks out an account for a request (see [`Checkout`]).
    pub async fn checkout(&self, checkout: Checkout) -> Result<Lease, PoolError> {
        super::ask(&self.addr, checkout, self.timeout, "account pool").await?
    }

    /// Reports how a request went on an account, without waiting: the pool's mailbox keeps
    /// the order, so the next checkout already sees it, and the database write happens in the
    /// background. A full mailbox drops the report (logged).
    pub fn report(&self, account_id: i32, outcome: Outcome) {
        let failure = !matches!(outcome, Outcome::Success(_));
        if self
            .addr
            .try_send(Report {
                account_id,
                outcome,
            })
            .is_err()
        {
            if failure {
                tracing::warn!(
                    account_id,
                    "account pool mailbox full: failure report dropped"
                );
            } else {
                tracing::debug!(
                    account_id,
                    "account pool mailbox full: success report dropped"
                );
            }
        }
    }

    /// Accounts due for a probe of their usage windows (see [`DueForProbe`]).
    pub async fn due_for_probe(&self, max: usize) -> Result<Vec<ProbeTarget>, ActorError> {
        super::ask(
            &self.addr,
            DueForProbe { max },
            self.timeout,
            "account pool",
        )
        .await
    }

    /// Sends the turn `turn` to `account_id` from now on, without waiting (a full mailbox
    /// drops it: the turn is then placed like any request).
    pub fn pin_turn(&self, turn: u64, account_id: i32) {
        if self.addr.try_send(PinTurn { turn, account_id }).is_err() {
            tracing::debug!(account_id, "account pool mailbox full: turn pin dropped");
        }
    }

    /// One usable account per plan type (see [`CatalogTargets`]).
    pub async fn catalog_targets(&self) -> Result<Vec<(String, ProbeTarget)>, ActorError> {
        super::ask(&self.addr, CatalogTargets, self.timeout, "account pool").await
    }

    /// A probe's report, without waiting.
    pub fn probed(&self, account_id: i32, report: Result<UsageReport, String>) {
        if self
            .addr
            .try_send(UsageProbed { account_id, report })
            .is_err()
        {
            tracing::debug!(
                account_id,
                "account pool mailbox full: probe report dropped"
            );
        }
    }

    /// A transient refresh failure (from the refresh scheduler), without waiting.
    pub fn refresh_failed(&self, account_id: i32, reason: String) {
        if self
            .addr
            .try_send(RefreshFailed { account_id, reason })
            .is_err()
        {
            tracing::warn!(
                account_id,
                "account pool mailbox full: refresh failure dropped"
            );
        }
    }

    /// Adds or replaces an account.
    pub async fn upsert(&self, row: account::Model) -> Result<(), ActorError> {
        super::ask(&self.addr, Upsert(row), self.timeout, "account pool").await
    }

    /// Adds or replaces many accounts in one message (an import).
    pub async fn upsert_many(&self, rows: Vec<account::Model>) -> Result<(), ActorError> {
        super::ask(&self.addr, UpsertMany(rows), self.timeout, "account pool").await
    }

    /// Removes an account.
    pub async fn remove(&self, account_id: i32) -> Result<(), ActorError> {
        super::ask(&self.addr, Remove(account_id), self.timeout, "account pool").await
    }

    /// Reloads every account from the database.
    pub async fn reload(&self) -> Result<usize, ActorError> {
        Ok(super::ask(&self.addr, Reload, self.timeout * 5, "account pool").await??)
    }

    /// New credentials after a refresh.
    pub async fn refreshed(
        &self,
        account_id: i32,
        access_token: Arc<str>,
        expires_at: Option<DateTime<Utc>>,
    ) {
        let msg = TokenRefreshed {
            account_id,
            access_token,
            expires_at,
        };
        let _ = super::ask(&self.addr, msg, self.timeout, "account pool").await;
    }

    /// The account must sign in again.
    pub async fn needs_relogin(&self, account_id: i32, reason: String) {
        let _ = super::ask(
            &self.addr,
            MarkNeedsRelogin { account_id, reason },
            self.timeout,
            "account pool",
        )
        .await;
    }

    /// New runtime settings.
    pub async fn apply_settings(&self, settings: RuntimeSettings) {
        let _ = super::ask(
            &self.addr,
            ApplySettings(settings),
            self.timeout,
            "account pool",
        )
        .await;
    }

    /// The live state of every account and of the pins.
    pub async fn snapshot(&self) -> Result<PoolSnapshot, ActorError> {
        super::ask(&self.addr, Snapshot, self.timeout, "account pool").await
    }

    /// Whether the actor is running.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}

/// Runs a write that nobody waits for as a task of the runtime, not of the actor's context:
/// a write still in flight when the runtime shuts down is then dropped inside the runtime,
/// where the database driver can hand its connection back (it spawns a task to do so, which
/// panics outside a runtime).
fn write_behind(write: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(write);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn limits(percent: f64) -> RateLimits {
        RateLimits {
            primary_used_percent: Some(percent),
            ..Default::default()
        }
    }

    /// An active account row, id 7, without expiry.
    pub(crate) fn row(rate_limits: Option<RateLimits>) -> account::Model {
        let now = Utc::now();
        account::Model {
            id: 7,
            name: None,
            email: None,
            chatgpt_account_id: "acct-7".into(),
            plan_type: None,
            access_token: "at".into(),
            refresh_token: "rt".into(),
            id_token: None,
            expires_at: None,
            last_refresh_at: None,
            is_active: true,
            status: AccountStatus::Active,
            last_error: None,
            last_error_at: None,
            error_count: 0,
            usage_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            last_used_at: None,
            last_success_at: None,
            cooldown_until: None,
            rate_limits: rate_limits.map(|l| serde_json::to_string(&l).unwrap()),
            proxy_url: None,
            refresh_lock_owner: None,
            refresh_lock_until: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    fn pool() -> AccountPool {
        let settings = RuntimeSettings {
            strategy: Strategy::RoundRobin,
            transient_cooldown_seconds: 1,
            forbidden_cooldown_seconds: 1,
            ..RuntimeSettings::from_config(&crate::config::Config::default())
        };
        AccountPool::new(
            DatabaseConnection::default(),
            settings,
            Duration::from_mins(1),
            10_000,
        )
    }

    /// A pool with accounts of these ids (token `at-<id>`), and settings adjusted.
    fn pool_of(ids: &[i32], adjust: impl FnOnce(&mut RuntimeSettings)) -> AccountPool {
        let mut pool = pool();
        adjust(&mut pool.settings);
        for id in ids {
            let mut account = row(None);
            account.id = *id;
            account.chatgpt_account_id = format!("acct-{id}");
            account.access_token = format!("at-{id}");
            pool.put_row(&account);
        }
        pool
    }

    fn transient() -> Outcome {
        Outcome::Transient("upstream answered 500".into())
    }

    /// Moves an account's cooldown and breaker times `seconds` into the past.
    fn age(pool: &mut AccountPool, id: i32, seconds: i64) {
        let ago = chrono::Duration::seconds(seconds);
        let account = pool.accounts.get_mut(&id).unwrap();
        account.cooldown_until = account.cooldown_until.map(|t| t - ago);
        account.breaker.open_until = account.breaker.open_until.map(|t| t - ago);
        for at in &mut account.breaker.failures {
            *at -= ago;
        }
    }

    #[test]
    fn the_breaker_opens_after_n_failures_and_one_trial_decides() {
        let mut pool = pool_of(&[1, 2], |s| {
            s.breaker_failures = 2;
            s.breaker_window_seconds = 60;
            s.breaker_open_seconds = 30;
        });
        let now = Utc::now();
        pool.apply(1, transient(), now);
        assert_eq!(pool.accounts[&1].breaker.state(now), BreakerState::Closed);
        age(&mut pool, 1, 2);
        pool.apply(1, transient(), now);
        let view = pool.accounts[&1].view(now, 98.0);
        assert_eq!(view.breaker, BreakerState::Open);
        assert_eq!(view.cooldown_reason, Some(Cooldown::Breaker));
        assert!(!view.available);
        assert_eq!(pool.pick(&[], Some(1), None).unwrap().account_id, 2);

        // Half-open: exactly one request goes to it while its trial runs.
        age(&mut pool, 1, 31);
        let trial = pool.pick(&[], Some(1), None).unwrap();
        assert_eq!(trial.account_id, 1);
        assert_eq!(
            pool.accounts[&1].view(Utc::now(), 98.0).breaker,
            BreakerState::HalfOpen
        );
        for _ in 0..3 {
            assert_eq!(pool.pick(&[], Some(1), None).unwrap().account_id, 2);
        }
        // A trial that ends without a verdict (the client's error) lets another one try.
        drop(trial);
        let trial = pool.pick(&[], Some(1), None).unwrap();
        assert_eq!(trial.account_id, 1);
        // A failed trial opens it again, for twice as long.
        pool.apply(1, transient(), Utc::now());
        drop(trial);
        let until = pool.accounts[&1].breaker.open_until.unwrap();
        assert!(
            until > Utc::now() + chrono::Duration::seconds(55),
            "{until}"
        );
        assert_eq!(pool.pick(&[], Some(1), None).unwrap().account_id, 2);
        // A successful trial closes it.
        age(&mut pool, 1, 61);
        let trial = pool.pick(&[], Some(1), None).unwrap();
        assert_eq!(trial.account_id, 1);
        pool.apply(1, Outcome::Success(None), Utc::now());
        drop(trial);
        let account = &pool.accounts[&1];
        assert_eq!(account.breaker.state(Utc::now()), BreakerState::Closed);
        assert_eq!(account.breaker.trips, 0);
        assert_eq!(pool.pick(&[], Some(1), None).unwrap().account_id, 1);
        assert_eq!(
            pool.pick(&[], Some(1), None).unwrap().account_id,
            1,
            "no trial any more"
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_open_the_breaker() {
        let mut pool = pool_of(&[1], |s| {
            s.breaker_failures = 2;
            s.breaker_window_seconds = 10;
        });
        pool.apply(1, transient(), Utc::now());
        age(&mut pool, 1, 11);
        pool.apply(1, transient(), Utc::now());
        assert_eq!(
            pool.accounts[&1].breaker.state(Utc::now()),
            BreakerState::Closed
        );
    }

    #[test]
    fn a_refused_token_is_skipped_until_its_refresh_ends() {
        let mut pool = pool_of(&[1, 2], |_| {});
        let now = Utc::now();
        pool.apply(1, Outcome::TokenRefused(Arc::from("at-1")), now);
        assert!(pool.accounts[&1].view(now, 98.0).refreshing);
        assert_eq!(pool.pick(&[], Some(1), None).unwrap().account_id, 2);
        // With nobody else, the pool says which refresh to wait for.
        match pool.pick(&[2], None, None) {
            Err(PoolError::Refreshing { account_id, token }) => {
                assert_eq!((account_id, &*token), (1, "at-1"));
            }
            other => panic!("refreshing expected, got {other:?}"),
        }
        let refreshed = TokenRefreshed {
            account_id: 1,
            access_token: Arc::from("at-1b"),
            expires_at: None,
        };
        assert!(!pool.refreshed(refreshed), "nothing to store");
        assert_eq!(pool.pick(&[], Some(1), None).unwrap().account_id, 1);
        assert_eq!(
            &*pool.pick(&[], Some(1), None).unwrap().access_token,
            "at-1b"
        );
        // A late 401 for the old token says nothing about the new one.
        pool.apply(1, Outcome::TokenRefused(Arc::from("at-1")), now);
        assert!(!pool.accounts[&1].view(now, 98.0).refreshing);
    }

    #[test]
    fn a_failed_refresh_of_a_refused_token_cools_longer_each_time() {
        let mut pool = pool_of(&[1, 2], |s| s.transient_cooldown_seconds = 60);
        let failed = RefreshFailed {
            account_id: 1,
            reason: "the token endpoint answered 503".into(),
        };
        // Ahead of expiry, with a working token: nothing changes.
        assert!(!pool.refresh_failed(&failed, Utc::now()));
        assert!(pool.accounts[&1].view(Utc::now(), 98.0).available);

        let mut cooldowns = Vec::new();
        for _ in 0..3 {
            let now = Utc::now();
            pool.apply(1, Outcome::TokenRefused(Arc::from("at-1")), now);
            assert!(pool.refresh_failed(&failed, now));
            let view = pool.accounts[&1].view(now, 98.0);
            assert_eq!(view.cooldown_reason, Some(Cooldown::Refresh));
            assert!(!view.refreshing && !view.available);
            cooldowns.push((view.cooldown_until.unwrap() - now).num_seconds());
            age(&mut pool, 1, 10_000);
        }
        assert_eq!(cooldowns, [60, 120, 240]);
        assert_eq!(pool.accounts[&1].status, AccountStatus::RefreshFailed);

        // A refresh that works ends the cooldown at once.
        let now = Utc::now();
        pool.apply(1, Outcome::TokenRefused(Arc::from("at-1")), now);
        pool.refresh_failed(&failed, now);
        let refreshed = TokenRefreshed {
            account_id: 1,
            access_token: Arc::from("at-new"),
            expires_at: None,
        };
        assert!(pool.refreshed(refreshed), "the cleared cooldown is stored");
        assert!(pool.accounts[&1].view(now, 98.0).available);
        assert_eq!(pool.accounts[&1].refresh_failures, 0);
    }

    #[test]
    fn a_turn_goes_back_to_its_account_whatever_the_strategy_says() {
        let mut pool = pool_of(&[1, 2, 3], |_| {});
        let checkout = |turn: Option<u64>, exclude: Vec<i32>| Checkout {
            exclude,
            prefer: None,
            pin: None,
            turn,
        };
        // The backend handed out the turn's state through account 2.
        pool.turns.pin(77, 2, std::time::Instant::now());
        for _ in 0..4 {
            let lease = pool.checkout(&checkout(Some(77), vec![])).unwrap();
            assert_eq!(lease.account_id, 2);
        }
        // Round-robin alone moves on.
        let a = pool.checkout(&checkout(None, vec![])).unwrap().account_id;
        let b = pool.checkout(&checkout(None, vec![])).unwrap().account_id;
        assert_ne!(a, b);
        // An account that cannot serve the turn hands it to another, which keeps it.
        let moved = pool.checkout(&checkout(Some(77), vec![2])).unwrap();
        assert_ne!(moved.account_id, 2);
        let again = pool.checkout(&checkout(Some(77), vec![])).unwrap();
        assert_eq!(again.account_id, moved.account_id);
    }

    #[test]
    fn the_catalog_is_fetched_through_one_usable_account_per_plan() {
        let mut pool = pool_of(&[1, 2, 3, 4], |_| {});
        let plans = [
            (1, Some("plus")),
            (2, Some("pro")),
            (3, Some("plus")),
            (4, None),
        ];
        for (id, plan) in plans {
            pool.accounts.get_mut(&id).unwrap().plan_type = plan.map(str::to_owned);
        }
        let now = Utc::now();
        pool.apply(1, transient(), now);
        pool.accounts.get_mut(&1).unwrap().cooldown_until = Some(now + chrono::Duration::hours(1));
        let targets: Vec<(String, i32)> = pool
            .catalog_targets(now)
            .into_iter()
            .map(|(plan, t)| (plan, t.account_id))
            .collect();
        assert_eq!(
            targets,
            [("plus".into(), 3), ("pro".into(), 2), ("unknown".into(), 4)]
        );
    }

    #[test]
    fn an_exhausted_pool_says_when_the_nearest_usage_limit_resets() {
        let mut pool = pool_of(&[1, 2], |_| {});
        let now = Utc::now();
        let soon = now + chrono::Duration::seconds(120);
        let later = now + chrono::Duration::seconds(600);
        for (id, until) in [(1, later), (2, soon)] {
            let message = "usage limit reached".to_owned();
            pool.apply(id, Outcome::UsageLimit { until, message }, now);
        }
        match pool.pick(&[], None, None) {
            Err(PoolError::Exhausted { resets_at }) => assert_eq!(resets_at, soon),
            other => panic!("exhausted expected, got {other:?}"),
        }
        // One account cooling for another reason: the pool is not spent, only cooling.
        pool.accounts.get_mut(&2).unwrap().cooldown_until = None;
        pool.apply(2, transient(), now);
        assert!(matches!(
            pool.pick(&[], None, None),
            Err(PoolError::AllCooling { .. })
        ));
        // A cooldown whose time has passed is over at once, without a reload.
        age(&mut pool, 2, 3600);
        assert_eq!(pool.pick(&[], None, None).unwrap().account_id, 2);
    }

    #[test]
    fn a_conversation_goes_back_to_its_pin_and_moves_without_waiting() {
        let mut pool = pool_of(&[1, 2, 3], |s| s.transient_cooldown_seconds = 30);
        let first = pool.pick(&[], None, Some(42)).unwrap();
        assert_eq!(first.pinned_to, Some(None), "a new conversation");
        let home = first.account_id;
        for _ in 0..5 {
            // Round robin moves on for others; the conversation stays.
            let other = pool.pick(&[], None, None).unwrap();
            assert!(other.pinned_to.is_none());
            let again = pool.pick(&[], None, Some(42)).unwrap();
            assert_eq!(again.account_id, home);
            assert_eq!(again.pinned_to, Some(Some(home)));
        }
        assert_eq!(
            pool.snapshot().accounts[(home - 1) as usize].pinned_conversations,
            1
        );
        // A short block (a transient cooldown): served elsewhere at once, the pin stays.
        pool.apply(home, transient(), Utc::now());
        let elsewhere = pool.pick(&[], None, Some(42)).unwrap();
        assert_ne!(elsewhere.account_id, home);
        assert_eq!(elsewhere.pinned_to, Some(Some(home)));
        age(&mut pool, home, 3600);
        assert_eq!(
            pool.pick(&[], None, Some(42)).unwrap().account_id,
            home,
            "back to its cache"
        );
        // A long one (its usage limit): it moves, and is pinned to where it went.
        let message = "usage limit reached".to_owned();
        let until = Utc::now() + chrono::Duration::hours(2);
        pool.apply(home, Outcome::UsageLimit { until, message }, Utc::now());
        let moved = pool.pick(&[], None, Some(42)).unwrap();
        assert_ne!(moved.account_id, home);
        assert_eq!(moved.pinned_to, Some(Some(home)));
        age(&mut pool, home, 3 * 3600);
        assert_eq!(
            pool.pick(&[], None, Some(42)).unwrap().account_id,
            moved.account_id
        );
        // A retry (the pinned account failed, briefly) serves elsewhere without counting again.
        let retry = pool.pick(&[moved.account_id], None, Some(42)).unwrap();
        assert!(retry.pinned_to.is_none());
        assert_ne!(retry.account_id, moved.account_id);
        assert_eq!(
            pool.pick(&[], None, Some(42)).unwrap().account_id,
            moved.account_id
        );
        assert_eq!(pool.snapshot().pins, 1);
        // A stored previous response's account wins over the pin, and takes it.
        let preferred = pool.pick(&[], Some(home), Some(42)).unwrap();
        assert_eq!(preferred.account_id, home);
        assert_eq!(pool.pick(&[], None, Some(42)).unwrap().account_id, home);
    }

    #[test]
    fn the_last_stretch_before_the_ceiling_is_walked_one_request_at_a_time() {
        let mut pool = pool_of(&[1, 2], |s| s.strategy = Strategy::FillFirst);
        set_limits(&mut pool, 1, windows((90.0, 9000), (10.0, 300_000)));
        // Far from the ceiling, requests go together.
        let a = pool.pick(&[], None, None).unwrap();
        let b = pool.pick(&[], None, None).unwrap();
        assert_eq!((a.account_id, b.account_id), (1, 1));
        drop((a, b));
        // The headers say each request adds about 2% (learned as about 1.5%): at 96%, with one
        // in flight, the next would reach the ceiling: it goes elsewhere.
        for used in [92.0, 94.0, 96.0] {
            let now = Utc::now();
            let mut next = windows((used, 9000), (10.0, 300_000));
            next.checked_at = Some(now + chrono::Duration::milliseconds(used as i64));
            pool.apply(1, Outcome::Success(Some(next)), now);
        }
        let step = pool.accounts[&1].step;
        assert!(step > 1.0 && step < 2.0, "{step}");
        set_limits(&mut pool, 1, windows((96.0, 9000), (10.0, 300_000)));
        let first = pool.pick(&[], None, None).unwrap();
        assert_eq!(first.account_id, 1);
        assert_eq!(pool.pick(&[], None, None).unwrap().account_id, 2);
        drop(first);
        assert_eq!(
            pool.pick(&[], None, None).unwrap().account_id,
            1,
            "its turn again"
        );
    }

    #[test]
    fn an_idle_pin_expires() {
        let mut pool = pool_of(&[1, 2], |s| s.affinity_ttl_seconds = 1);
        let home = pool.pick(&[], None, Some(7)).unwrap().account_id;
        let clock = std::time::Instant::now() + Duration::from_secs(2);
        assert_eq!(pool.pins.get(7, clock, pool.pin_ttl()), None);
        assert_eq!(pool.pins.pinned_to(home), 0);
    }

    /// Windows used so much, resetting in so many seconds (primary 5 h, secondary a week).
    fn windows(primary: (f64, i64), secondary: (f64, i64)) -> RateLimits {
        let now = Utc::now();
        RateLimits {
            primary_used_percent: Some(primary.0),
            primary_window_minutes: Some(300),
            primary_resets_at: Some(now + chrono::Duration::seconds(primary.1)),
            secondary_used_percent: Some(secondary.0),
            secondary_window_minutes: Some(10_080),
            secondary_resets_at: Some(now + chrono::Duration::seconds(secondary.1)),
            checked_at: Some(now),
        }
    }

    fn set_limits(pool: &mut AccountPool, id: i32, limits: RateLimits) {
        pool.accounts.get_mut(&id).unwrap().rate_limits = Some(limits);
    }

    #[test]
    fn headroom_is_worth_more_the_sooner_it_resets() {
        let now = Utc::now();
        let week = 7 * 86_400;
        assert!(
            (quota_score(None, now) - 1.0).abs() < 1e-9,
            "unknown: on pace"
        );
        // A fresh account, both windows just started: on pace.
        let fresh = quota_score(Some(&windows((0.0, 18_000), (0.0, week))), now);
        assert!((fresh - 1.0).abs() < 0.01, "{fresh}");
        // 40% of the 5-hour window left, resetting in 20 minutes: spend it now.
        let soon = quota_score(Some(&windows((60.0, 1200), (20.0, 3 * 86_400))), now);
        // 10% of the week left for six days: spare it.
        let tight = quota_score(Some(&windows((5.0, 17_000), (90.0, 6 * 86_400))), now);
        assert!(soon > fresh && fresh > tight, "{soon} {fresh} {tight}");
        // A window whose reset passed is fresh again.
        let passed = quota_score(Some(&windows((99.0, -10), (10.0, week))), now);
        assert!(passed > 0.8, "{passed}");
    }

    /// Where `conversations` new conversations go, by account.
    fn placements(pool: &mut AccountPool, conversations: u64) -> BTreeMap<i32, usize> {
        let mut placed = BTreeMap::new();
        for conversation in 0..conversations {
            let lease = pool.pick(&[], None, Some(conversation)).unwrap();
            *placed.entry(lease.account_id).or_default() += 1;
        }
        placed
    }

    #[test]
    fn quota_aware_spends_the_headroom_that_resets_first() {
        let mut pool = pool_of(&[1, 2, 3], |s| s.strategy = Strategy::QuotaAware);
        let week = 7 * 86_400;
        // Little of the week left; half of a 5-hour window that resets in 15 minutes; fresh.
        set_limits(&mut pool, 1, windows((10.0, 17_000), (85.0, 6 * 86_400)));
        set_limits(&mut pool, 2, windows((50.0, 900), (30.0, 2 * 86_400)));
        set_limits(&mut pool, 3, windows((5.0, 18_000), (5.0, week)));
        // Account 2 is worth its weekly pace, 0.7 / (2/7) = 2.45 (its 5-hour window alone
        // would be worth 10); account 3 0.95; account 1 0.15 / (6/7) = 0.175.
        let placed = placements(&mut pool, 100);
        assert!(placed[&2] >= 60, "{placed:?}");
        assert!(placed[&3] >= 20 && placed[&3] > placed[&1], "{placed:?}");
    }

    #[test]
    fn quota_aware_places_conversations_in_proportion_to_headroom() {
        let mut pool = pool_of(&[1, 2, 3, 4], |s| s.strategy = Strategy::QuotaAware);
        for (id, used) in [(1, 0.0), (2, 25.0), (3, 50.0), (4, 75.0)] {
            set_limits(
                &mut pool,
                id,
                windows((used, 17_000), (used / 10.0, 500_000)),
            );
        }
        let placed = placements(&mut pool, 100);
        for (id, share) in [(1, 40), (2, 30), (3, 20), (4, 10)] {
            assert!(placed[&id].abs_diff(share) <= 2, "{placed:?}");
        }
    }

    #[test]
    fn quota_aware_spreads_new_conversations_over_equal_accounts() {
        let mut pool = pool_of(&[1, 2, 3, 4], |s| s.strategy = Strategy::QuotaAware);
        for id in 1..=4 {
            set_limits(&mut pool, id, windows((30.0, 9000), (30.0, 300_000)));
        }
        let placed = placements(&mut pool, 400);
        assert_eq!(placed.len(), 4);
        assert!(placed.values().all(|n| *n == 100), "balanced: {placed:?}");
        // Requests in flight count too: a busy account is passed over.
        let busy: Vec<Lease> = (0..3)
            .map(|c| pool.pick(&[], None, Some(1000 + c)).unwrap())
            .collect();
        let idle = pool.pick(&[], None, Some(2000)).unwrap();
        assert!(busy.iter().all(|l| l.account_id != idle.account_id));
    }

    #[test]
    fn an_account_at_the_ceiling_is_left_alone_until_its_window_resets() {
        let mut pool = pool_of(&[1, 2], |s| {
            s.strategy = Strategy::FillFirst;
            s.quota_ceiling_percent = 98.0;
        });
        let home = pool.pick(&[], None, Some(5)).unwrap().account_id;
        assert_eq!(home, 1);
        set_limits(&mut pool, 1, windows((97.0, 600), (50.0, 86_400)));
        assert_eq!(
            pool.pick(&[], None, Some(5)).unwrap().account_id,
            1,
            "headroom left"
        );
        set_limits(&mut pool, 1, windows((98.0, 600), (50.0, 86_400)));
        let view = pool.snapshot().accounts[0].clone();
        assert!(!view.available && view.over_ceiling_until.is_some());
        assert_eq!(
            pool.pick(&[], None, Some(5)).unwrap().account_id,
            2,
            "the pin moves"
        );
        assert_eq!(
            pool.pick(&[], None, None).unwrap().account_id,
            2,
            "and new ones go elsewhere"
        );
        // The weekly window counts too, and the account needs both windows back.
        set_limits(&mut pool, 1, windows((99.0, 600), (99.0, 86_400)));
        pool.accounts.get_mut(&2).unwrap().cooldown_until =
            Some(Utc::now() + chrono::Duration::hours(2));
        pool.accounts.get_mut(&2).unwrap().cooldown_reason = Some(Cooldown::UsageLimit);
        match pool.pick(&[], None, None) {
            Err(PoolError::Exhausted { resets_at }) => {
                let in_seconds = (resets_at - Utc::now()).num_seconds();
                assert!(
                    (7100..=7200).contains(&in_seconds),
                    "the nearest: account 2 in {in_seconds}"
                );
            }
            other => panic!("exhausted expected, got {other:?}"),
        }
        // Once its window's reset time passes, it serves at once.
        set_limits(&mut pool, 1, windows((99.0, -1), (50.0, 86_400)));
        assert_eq!(pool.pick(&[], None, None).unwrap().account_id, 1);
    }

    #[test]
    fn idle_accounts_are_probed_one_at_a_time_and_an_early_reset_ends_the_cooldown() {
        let mut pool = pool_of(&[1, 2, 3], |s| s.usage_probe_interval_seconds = 60);
        let now = Utc::now();
        set_limits(&mut pool, 3, windows((10.0, 600), (10.0, 86_400)));
        // Accounts never seen are due (the longest unseen first); a recently seen one is not.
        let due: Vec<i32> = pool
            .due_for_probe(now, 10)
            .iter()
            .map(|t| t.account_id)
            .collect();
        assert_eq!(due, [1, 2]);
        assert!(
            pool.due_for_probe(now, 10).is_empty(),
            "one probe per account at a time"
        );
        // Probes that never answer are given up.
        let later = now + PROBE_TIMEOUT + chrono::Duration::seconds(1);
        assert_eq!(
            pool.due_for_probe(later, 1).len(),
            1,
            "at most as many as asked"
        );

        // Account 1 hit its usage limit; its probe says the window reset early.
        let message = "usage limit reached".to_owned();
        let until = now + chrono::Duration::hours(4);
        pool.apply(1, Outcome::UsageLimit { until, message }, now);
        assert!(!pool.accounts[&1].view(now, 98.0).available);
        let report = UsageReport {
            limits: windows((3.0, 18_000), (20.0, 86_400)),
            limit_reached: false,
        };
        let msg = UsageProbed {
            account_id: 1,
            report: Ok(report),
        };
        let (stored, changed) = pool.probed(msg, Utc::now());
        assert!(stored.is_some() && changed);
        let view = pool.accounts[&1].view(Utc::now(), 98.0);
        assert!(
            view.available && view.usage_checked_at.is_some(),
            "{view:?}"
        );

        // A limit the pool did not know of starts a cooldown until the reset.
        let report = UsageReport {
            limits: windows((100.0, 1200), (20.0, 86_400)),
            limit_reached: true,
        };
        let (_, changed) = pool.probed(
            UsageProbed {
                account_id: 2,
                report: Ok(report),
            },
            Utc::now(),
        );
        assert!(changed);
        let view = pool.accounts[&2].view(Utc::now(), 98.0);
        assert_eq!(view.cooldown_reason, Some(Cooldown::UsageLimit));
        // A failed probe changes nothing but lets the next one go.
        pool.accounts.get_mut(&3).unwrap().probing_since = Some(now);
        let (stored, changed) = pool.probed(
            UsageProbed {
                account_id: 3,
                report: Err("503".into()),
            },
            now,
        );
        assert!(stored.is_none() && !changed);
        assert!(pool.accounts[&3].probing_since.is_none());
        // Off: nobody is due.
        pool.settings.usage_probe_interval_seconds = 0;
        assert!(pool
            .due_for_probe(later + chrono::Duration::hours(1), 10)
            .is_empty());
    }

    #[test]
    fn a_preferred_account_is_taken_when_it_can_serve() {
        let mut pool = pool();
        for id in [7, 8, 9] {
            let mut account = row(None);
            account.id = id;
            account.chatgpt_account_id = format!("acct-{id}");
            pool.put_row(&account);
        }
        assert_eq!(pool.pick(&[], Some(9), None).unwrap().account_id, 9);
        assert_eq!(pool.pick(&[], Some(9), None).unwrap().account_id, 9);
        // Not when it was already tried for this request, nor when it is unknown.
        assert_ne!(pool.pick(&[9], Some(9), None).unwrap().account_id, 9);
        assert!(pool.pick(&[], Some(42), None).is_ok());
        // Nor while it cools down.
        pool.accounts.get_mut(&9).unwrap().cooldown_until =
            Some(Utc::now() + chrono::Duration::minutes(5));
        assert_ne!(pool.pick(&[], Some(9), None).unwrap().account_id, 9);
    }

    #[test]
    fn a_fresh_row_keeps_the_live_counters_and_the_fresher_rate_limits() {
        let seen = |percent: f64, seconds_ago: i64| RateLimits {
            checked_at: Some(Utc::now() - chrono::Duration::seconds(seconds_ago)),
            ..limits(percent)
        };
        let mut pool = pool();
        pool.put_row(&row(None));
        let lease = pool.pick(&[], None, None).unwrap();
        let live_limits = seen(40.0, 10);
        {
            let live = pool.accounts.get_mut(&7).unwrap();
            live.served = 5;
            live.consecutive_failures = 2;
            live.rate_limits = Some(live_limits.clone());
        }

        pool.put_row(&row(None));
        let merged = &pool.accounts[&7];
        assert_eq!(merged.in_flight.load(Ordering::Acquire), 1);
        assert_eq!((merged.served, merged.consecutive_failures), (5, 2));
        assert_eq!(
            merged.rate_limits,
            Some(live_limits.clone()),
            "live ones without fresh"
        );

        pool.put_row(&row(Some(seen(30.0, 60))));
        assert_eq!(
            pool.accounts[&7].rate_limits,
            Some(live_limits),
            "the row's are older (written in batches)"
        );
        let newer = seen(75.0, 1);
        pool.put_row(&row(Some(newer.clone())));
        assert_eq!(
            pool.accounts[&7].rate_limits,
            Some(newer),
            "the row's are fresher"
        );

        drop(lease);
        assert_eq!(pool.accounts[&7].in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_deleted_row_leaves_the_pool() {
        let mut pool = pool();
        pool.put_row(&row(None));
        let mut deleted = row(None);
        deleted.deleted_at = Some(Utc::now());
        pool.put_row(&deleted);
        assert!(pool.accounts.is_empty());
    }
}
