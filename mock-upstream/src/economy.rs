//! The mock's economy, off until a test turns it on ([`MockState::set_economy`]): each account
//! has a token budget per usage window (a 5-hour and a weekly one), which its answers spend and
//! its `x-codex-*-used-percent` headers report (as whole percents, as upstream); at 100% of
//! either window it answers 429 `usage_limit_reached` until the window resets. Each account also
//! keeps a prompt cache: the item-aligned prefixes of the inputs it served, so that a
//! conversation sent back to the same account gets `cached_tokens` for the prefix it already
//! saw, and cached input costs less of the budget. `GET /backend-api/wham/usage` (CODEX.md §9)
//! reports the windows without spending anything.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::responses::RateLimits;
use crate::state::{AccountState, Inner, MockState};

/// Prefixes an account's prompt cache holds at most; beyond it, the cache starts afresh.
const MAX_CACHED_PREFIXES: usize = 100_000;

/// The rules of the economy.
#[derive(Clone, Debug, PartialEq)]
pub struct Economy {
    /// Budget of the primary window, in tokens.
    pub primary_budget: f64,
    /// Length of the primary window.
    pub primary_window: Duration,
    /// Budget of the secondary window, in tokens.
    pub secondary_budget: f64,
    /// Length of the secondary window.
    pub secondary_window: Duration,
    /// What a cached input token spends of a budget, against 1 for an uncached one.
    pub cached_cost: f64,
}

impl Default for Economy {
    fn default() -> Self {
        Self {
            primary_budget: 1_000_000.0,
            primary_window: Duration::from_hours(5),
            secondary_budget: 5_000_000.0,
            secondary_window: Duration::from_hours(7 * 24),
            cached_cost: 0.1,
        }
    }
}

/// One usage window of an account.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    spent: f64,
    started: Instant,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            spent: 0.0,
            started: Instant::now(),
        }
    }
}

impl Window {
    /// Starts afresh when its time is over.
    fn roll(&mut self, length: Duration, now: Instant) {
        if now.duration_since(self.started) >= length {
            *self = Self {
                spent: 0.0,
                started: now,
            };
        }
    }

    fn left(&self, length: Duration, now: Instant) -> Duration {
        length.saturating_sub(now.duration_since(self.started))
    }
}

/// What the economy keeps of one account.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    primary: Window,
    secondary: Window,
    /// Hashes of the item-aligned input prefixes served.
    cache: HashSet<u64>,
}

/// The tokens of one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub(crate) input: u64,
    pub(crate) cached: u64,
    pub(crate) output: u64,
}

/// The state of an account's windows now.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Standing {
    pub(crate) limits: RateLimits,
    /// Seconds until the spent window resets, when one is spent.
    pub(crate) spent_until: Option<u64>,
}

impl Economy {
    /// The account's windows now (rolled over when their time is up).
    pub(crate) fn standing(&self, ledger: &mut Ledger, now: Instant) -> Standing {
        ledger.primary.roll(self.primary_window, now);
        ledger.secondary.roll(self.secondary_window, now);
        let percent = |w: &Window, budget: f64| (w.spent / budget * 100.0).floor().min(100.0);
        let primary_used = percent(&ledger.primary, self.primary_budget);
        let secondary_used = percent(&ledger.secondary, self.secondary_budget);
        let primary_left = ledger.primary.left(self.primary_window, now).as_secs();
        let secondary_left = ledger.secondary.left(self.secondary_window, now).as_secs();
        let spent_until = match (primary_used >= 100.0, secondary_used >= 100.0) {
            (_, true) => Some(secondary_left.max(primary_left)),
            (true, false) => Some(primary_left),
            (false, false) => None,
        };
        Standing {
            limits: RateLimits {
                primary_used_percent: primary_used,
                primary_window_minutes: self.primary_window.as_secs() / 60,
                primary_reset_after_seconds: primary_left,
                secondary_used_percent: secondary_used,
                secondary_window_minutes: self.secondary_window.as_secs() / 60,
                secondary_reset_after_seconds: secondary_left,
            },
            spent_until,
        }
    }

    /// Serves an input on an account: the prompt cache answers what it held, the budgets are
    /// spent, and the cache learns the input's prefixes.
    pub(crate) fn serve(&self, ledger: &mut Ledger, body: &Value, output: u64) -> TokenUsage {
        let items = prefix_items(body);
        let mut hasher = DefaultHasher::new();
        let mut input = 0;
        let mut cached = 0;
        let mut prefixes = Vec::with_capacity(items.len());
        let mut hit = true;
        for item in &items {
            item.hash(&mut hasher);
            let hash = hasher.finish();
            let tokens = tokens_of(item);
            input += tokens;
            hit = hit && ledger.cache.contains(&hash);
            if hit {
                cached += tokens;
            }
            prefixes.push(hash);
        }
        if ledger.cache.len() + prefixes.len() > MAX_CACHED_PREFIXES {
            ledger.cache.clear();
        }
        ledger.cache.extend(prefixes);
        let cost = (input - cached) as f64 + cached as f64 * self.cached_cost + output as f64;
        ledger.primary.spent += cost;
        ledger.secondary.spent += cost;
        TokenUsage {
            input,
            cached,
            output,
        }
    }

    /// Sets an account's windows to these percents of their budgets (a test's starting point).
    pub(crate) fn set_used(&self, ledger: &mut Ledger, primary: f64, secondary: f64) {
        ledger.primary.spent = self.primary_budget * primary / 100.0;
        ledger.secondary.spent = self.secondary_budget * secondary / 100.0;
    }
}

impl Ledger {
    /// Both windows start afresh now (an early reset).
    pub(crate) fn reset(&mut self) {
        self.primary = Window::default();
        self.secondary = Window::default();
    }
}

/// The input as prefix items: the instructions first, then each input item, as JSON text.
fn prefix_items(body: &Value) -> Vec<String> {
    let mut items = vec![body
        .get("instructions")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()];
    if let Some(input) = body.get("input").and_then(Value::as_array) {
        items.extend(input.iter().map(Value::to_string));
    }
    items
}

/// About four characters a token, at least one.
fn tokens_of(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

impl MockState {
    /// Turns the economy on with these rules (`None`: off; answers report fixed usage).
    pub fn set_economy(&self, economy: Option<Economy>) {
        self.lock().economy = economy;
    }

    /// Sets an account's used percents of its budgets (the economy must be on).
    pub fn set_usage(&self, account_id: &str, primary_percent: f64, secondary_percent: f64) {
        let mut inner = self.lock();
        let Some(economy) = inner.economy.clone() else {
            return;
        };
        economy.set_used(
            &mut inner.account(account_id).ledger,
            primary_percent,
            secondary_percent,
        );
    }

    /// Resets an account's windows now, before their time (an early reset).
    pub fn reset_usage(&self, account_id: &str) {
        self.lock().account(account_id).ledger.reset();
    }

    /// Calls of the usage endpoint for this account.
    pub fn usage_calls(&self, account_id: &str) -> usize {
        self.lock()
            .accounts
            .get(account_id)
            .map_or(0, |a| a.usage_calls)
    }

    /// Usage-limit refusals the economy answered while another account was used less than
    /// `ceiling` percent in both windows (it could have served the request).
    pub fn refusals_while_another_had_headroom(&self, ceiling: f64) -> usize {
        self.lock()
            .refusal_headroom
            .iter()
            .filter(|used| **used < ceiling)
            .count()
    }

    /// Usage-limit refusals (429 `usage_limit_reached`) the economy answered, all accounts.
    pub fn usage_limit_refusals(&self) -> usize {
        self.lock()
            .accounts
            .values()
            .map(|a| a.usage_limit_refusals)
            .sum()
    }
}

impl Inner {
    /// How full the emptiest account other than `account_id` is: its fuller window, in
    /// percent (100 when there is no other account).
    pub(crate) fn least_used_elsewhere(
        &mut self,
        account_id: &str,
        economy: &Economy,
        now: Instant,
    ) -> f64 {
        self.accounts
            .iter_mut()
            .filter(|(id, _)| id.as_str() != account_id)
            .map(|(_, a)| {
                let l = economy.standing(&mut a.ledger, now).limits;
                l.primary_used_percent.max(l.secondary_used_percent)
            })
            .fold(100.0, f64::min)
    }
}

impl AccountState {
    /// The windows the account's headers and usage endpoint report now.
    pub(crate) fn standing(&mut self, economy: Option<&Economy>, now: Instant) -> Standing {
        match economy {
            Some(economy) => economy.standing(&mut self.ledger, now),
            None => Standing {
                limits: RateLimits::default(),
                spent_until: None,
            },
        }
    }
}

/// `GET /backend-api/wham/usage`: the account's windows, as CODEX.md §9 shows them.
pub(crate) async fn usage(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
    let (Some(bearer), Some(account_id)) = (bearer, header("chatgpt-account-id")) else {
        return HttpResponse::Unauthorized().json(json!({"detail": "Unauthorized"}));
    };
    let mut inner = state.lock();
    let economy = inner.economy.clone();
    let account = inner.account(&account_id);
    account.usage_calls += 1;
    if !account.access_tokens.is_empty() && !account.access_tokens.contains_key(&bearer) {
        return HttpResponse::Unauthorized().json(json!({"detail": "token_invalidated"}));
    }
    let plan = account.plan_type.clone();
    let standing = account.standing(economy.as_ref(), Instant::now());
    let now = chrono::Utc::now().timestamp();
    let l = &standing.limits;
    let window = |used: f64, minutes: u64, left: u64| {
        json!({
            "used_percent": used,
            "limit_window_seconds": minutes * 60,
            "reset_after_seconds": left,
            "reset_at": now + left as i64,
        })
    };
    let reached = standing.spent_until.is_some();
    HttpResponse::Ok().json(json!({
        "plan_type": plan,
        "rate_limit": {
            "allowed": !reached,
            "limit_reached": reached,
            "primary_window": window(l.primary_used_percent, l.primary_window_minutes, l.primary_reset_after_seconds),
            "secondary_window": window(l.secondary_used_percent, l.secondary_window_minutes, l.secondary_reset_after_seconds),
        },
        "credits": {"has_credits": false, "unlimited": false, "balance": "0"},
        "additional_rate_limits": [],
    }))
}

#[cfg(test)]
// Whole percents compare exactly.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn turn(history: &[&str]) -> Value {
        let input: Vec<Value> = history
            .iter()
            .map(|t| json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": t}]}))
            .collect();
        json!({"instructions": "be brief", "input": input})
    }

    #[test]
    fn the_prompt_cache_rewards_the_same_account_and_cached_input_costs_less() {
        let economy = Economy {
            primary_budget: 1000.0,
            ..Economy::default()
        };
        let mut ledger = Ledger::default();
        let first = economy.serve(&mut ledger, &turn(&["hello"]), 8);
        assert_eq!(first.cached, 0);
        let second = economy.serve(&mut ledger, &turn(&["hello", "more"]), 8);
        assert!(
            second.cached > 0 && second.cached < second.input,
            "{second:?}"
        );
        assert_eq!(second.cached, first.input, "the prefix served before");
        let mut other = Ledger::default();
        assert_eq!(
            economy
                .serve(&mut other, &turn(&["hello", "more"]), 8)
                .cached,
            0
        );
        assert!(ledger.primary.spent < other.primary.spent * 2.0);
        // A different opening shares nothing but the instructions.
        let third = economy.serve(&mut ledger, &turn(&["bye"]), 8);
        assert_eq!(third.cached, tokens_of("be brief"));
    }

    #[test]
    fn windows_report_whole_percents_and_reset() {
        let economy = Economy {
            primary_budget: 1000.0,
            primary_window: Duration::from_mins(1),
            ..Economy::default()
        };
        let mut ledger = Ledger::default();
        let now = Instant::now();
        economy.set_used(&mut ledger, 42.7, 1.0);
        let standing = economy.standing(&mut ledger, now);
        assert_eq!(standing.limits.primary_used_percent, 42.0);
        assert_eq!(standing.spent_until, None);
        economy.set_used(&mut ledger, 100.0, 1.0);
        let standing = economy.standing(&mut ledger, now);
        assert!(standing.spent_until.is_some_and(|s| s <= 60));
        let later = economy.standing(&mut ledger, now + Duration::from_secs(61));
        assert_eq!(
            later.limits.primary_used_percent, 0.0,
            "the window rolled over"
        );
        economy.set_used(&mut ledger, 100.0, 1.0);
        ledger.reset();
        assert_eq!(economy.standing(&mut ledger, now).spent_until, None);
    }
}
