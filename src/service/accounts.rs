//! Codex accounts ("tokens" in the HTTP contract): the console's derived [`AccountState`], the
//! counts of accounts by state, and the typed [`AccountChanges`] an admin may make.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::{invalid, is_active, read};
use crate::db::account::{self, AccountStatus};

/// The console's status of an account, derived from its stored health, its expiry, its
/// cooldown and the clock. Declared in the order the console lists them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::EnumIter,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AccountState {
    /// Serving, and not expiring soon.
    Active,
    /// Serving, but the access token expires within the refresh lead.
    Expiring,
    /// The access token has expired.
    Expired,
    /// Taken out of rotation until its cooldown ends.
    CoolingDown,
    /// The last refresh failed for a transient reason.
    RefreshFailed,
    /// The refresh token is dead: the account must sign in again.
    NeedsRelogin,
    /// Switched off by an admin.
    Disabled,
}

impl AccountState {
    /// The state of `row` at `now`, with tokens expiring within `lead_seconds` as `Expiring`.
    pub fn of(row: &account::Model, lead_seconds: u64, now: DateTime<Utc>) -> Self {
        if !row.is_active {
            Self::Disabled
        } else if row.status == AccountStatus::NeedsRelogin {
            Self::NeedsRelogin
        } else if row.expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else if row.status == AccountStatus::RefreshFailed {
            Self::RefreshFailed
        } else if row.cooldown_until.is_some_and(|until| until > now) {
            Self::CoolingDown
        } else if row
            .expires_at
            .is_some_and(|at| at <= now + chrono::Duration::seconds(lead_seconds as i64))
        {
            Self::Expiring
        } else {
            Self::Active
        }
    }

    /// The contract's name (`cooling_down`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the account still serves requests (an expiring one does until it expires).
    pub fn is_serving(self) -> bool {
        matches!(self, Self::Active | Self::Expiring)
    }
}

/// How many accounts are in each [`AccountState`].
#[derive(Debug, Clone, Default)]
pub struct StateCounts(HashMap<AccountState, u64>);

impl StateCounts {
    /// Counts the states of `rows` at `now`.
    pub fn of(rows: &[account::Model], lead_seconds: u64, now: DateTime<Utc>) -> Self {
        let mut counts = HashMap::new();
        for row in rows {
            *counts
                .entry(AccountState::of(row, lead_seconds, now))
                .or_default() += 1;
        }
        Self(counts)
    }

    /// The number of accounts in `state`.
    pub fn get(&self, state: AccountState) -> u64 {
        self.0.get(&state).copied().unwrap_or(0)
    }

    /// The number of accounts that still serve requests (see [`AccountState::is_serving`]).
    pub fn serving(&self) -> u64 {
        self.0
            .iter()
            .filter(|(state, _)| state.is_serving())
            .map(|(_, n)| n)
            .sum()
    }
}

/// The changes `PATCH /admin/tokens/{id}` may make; an absent field stays as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountChanges {
    /// The display name; `null` or blank clears it.
    #[serde(default, deserialize_with = "account_name")]
    pub name: Option<Option<String>>,
    /// Whether the account is in rotation.
    #[serde(default, deserialize_with = "is_active")]
    pub is_active: Option<bool>,
}

/// Reads a display name: at most 200 characters, trimmed, blank meaning none.
fn account_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    const WHY: &str = "must be a string of at most 200 characters or null";
    match read::<_, Option<String>>(d, "name", WHY)? {
        None => Ok(Some(None)),
        Some(name) if name.chars().count() <= 200 => {
            let name = name.trim();
            Ok(Some((!name.is_empty()).then(|| name.to_string())))
        }
        Some(_) => Err(invalid("name", WHY)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn row() -> account::Model {
        let mut row = crate::actors::account_pool::tests::row(None);
        row.expires_at = Some(Utc::now() + Duration::days(10));
        row
    }

    #[test]
    fn the_state_is_derived_in_order_of_precedence() {
        let now = Utc::now();
        let lead = 3600;
        let state = |change: &dyn Fn(&mut account::Model)| {
            let mut row = row();
            change(&mut row);
            AccountState::of(&row, lead, now)
        };
        assert_eq!(state(&|_| {}), AccountState::Active);
        assert_eq!(
            state(&|r| r.expires_at = Some(now + Duration::minutes(30))),
            AccountState::Expiring
        );
        assert_eq!(
            state(&|r| r.cooldown_until = Some(now + Duration::minutes(1))),
            AccountState::CoolingDown
        );
        assert_eq!(
            state(&|r| {
                r.status = AccountStatus::RefreshFailed;
                r.cooldown_until = Some(now + Duration::minutes(1));
            }),
            AccountState::RefreshFailed
        );
        assert_eq!(
            state(&|r| {
                r.status = AccountStatus::RefreshFailed;
                r.expires_at = Some(now - Duration::minutes(1));
            }),
            AccountState::Expired
        );
        assert_eq!(
            state(&|r| {
                r.status = AccountStatus::NeedsRelogin;
                r.expires_at = Some(now - Duration::minutes(1));
            }),
            AccountState::NeedsRelogin
        );
        assert_eq!(
            state(&|r| {
                r.is_active = false;
                r.status = AccountStatus::NeedsRelogin;
            }),
            AccountState::Disabled
        );
    }

    #[test]
    fn states_have_the_contract_names() {
        use strum::IntoEnumIterator;
        let names: Vec<&str> = AccountState::iter().map(AccountState::as_str).collect();
        assert_eq!(
            names,
            [
                "active",
                "expiring",
                "expired",
                "cooling_down",
                "refresh_failed",
                "needs_relogin",
                "disabled"
            ]
        );
        for state in AccountState::iter() {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(state.as_str().parse::<AccountState>().ok(), Some(state));
        }
    }

    #[test]
    fn counts_add_expiring_accounts_to_the_serving_ones() {
        let now = Utc::now();
        let mut expiring = row();
        expiring.expires_at = Some(now + Duration::minutes(5));
        let mut disabled = row();
        disabled.is_active = false;
        let counts = StateCounts::of(&[row(), expiring, disabled], 3600, now);
        assert_eq!(counts.get(AccountState::Active), 1);
        assert_eq!(counts.get(AccountState::Expiring), 1);
        assert_eq!(counts.get(AccountState::Disabled), 1);
        assert_eq!(counts.get(AccountState::Expired), 0);
        assert_eq!(counts.serving(), 2);
    }

    #[test]
    fn an_account_name_may_be_cleared() {
        let read = |body| serde_json::from_value::<AccountChanges>(body).map_err(|e| e.to_string());
        let blank = read(serde_json::json!({"name": "  "})).unwrap();
        assert_eq!(blank.name, Some(None));
        let named = read(serde_json::json!({"name": " work ", "is_active": false})).unwrap();
        assert_eq!(named.name, Some(Some("work".to_string())));
        assert_eq!(named.is_active, Some(false));
        let long = read(serde_json::json!({"name": "x".repeat(201)})).unwrap_err();
        assert!(
            long.starts_with("`name` must be a string of at most 200"),
            "{long}"
        );
        let other = read(serde_json::json!({"email": "a@b"})).unwrap_err();
        assert!(other.contains("unknown field `email`"), "{other}");
    }
}
