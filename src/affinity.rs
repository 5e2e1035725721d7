//! Conversation pins: which account a conversation was last served by, so that its next turn
//! goes back there, where the upstream's prompt cache holds its prefix.
//!
//! [`Pins`] is a plain data structure owned by the account pool actor: bounded (the least
//! recently used pin goes first beyond `capacity`), with an idle TTL (a pin unused that long is
//! forgotten), and counted per account. Every operation is O(log n).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// One pin.
#[derive(Debug, Clone, Copy)]
struct Pin {
    account_id: i32,
    last_used: Instant,
    /// Its place in the recency order.
    seq: u64,
}

/// Conversation -> account pins, least recently used first out.
#[derive(Debug)]
pub struct Pins {
    by_key: HashMap<u64, Pin>,
    /// Recency order: sequence number -> conversation.
    order: BTreeMap<u64, u64>,
    per_account: HashMap<i32, usize>,
    next_seq: u64,
    capacity: usize,
}

/// How a conversation's request that was served found its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// It was served by its pinned account.
    Hit,
    /// Its pinned account could not serve it: it moved and was pinned anew.
    Moved,
    /// No pin (a new conversation, or one idle past the TTL): placed by the strategy.
    New,
}

impl Lookup {
    /// The lookup of a request whose conversation was pinned to `pinned_to` (if anywhere) and
    /// that was served by `served_by`.
    pub fn of(pinned_to: Option<i32>, served_by: i32) -> Self {
        match pinned_to {
            None => Lookup::New,
            Some(id) if id == served_by => Lookup::Hit,
            Some(_) => Lookup::Moved,
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Moved => "moved",
            Lookup::New => "new",
        }
    }
}

impl Pins {
    /// Room for `capacity` pins (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            order: BTreeMap::new(),
            per_account: HashMap::new(),
            next_seq: 0,
            capacity: capacity.max(1),
        }
    }

    /// The account a conversation is pinned to, unless the pin was idle longer than `ttl`
    /// (then it is forgotten).
    pub fn get(&mut self, key: u64, now: Instant, ttl: Duration) -> Option<i32> {
        let pin = *self.by_key.get(&key)?;
        if now.saturating_duration_since(pin.last_used) > ttl {
            self.remove(key);
            return None;
        }
        Some(pin.account_id)
    }

    /// Pins a conversation to an account (again), as its most recent use.
    pub fn pin(&mut self, key: u64, account_id: i32, now: Instant) {
        self.remove(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_key.insert(
            key,
            Pin {
                account_id,
                last_used: now,
                seq,
            },
        );
        self.order.insert(seq, key);
        *self.per_account.entry(account_id).or_default() += 1;
        while self.by_key.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.forget(oldest);
        }
    }

    /// Forgets every pin idle longer than `ttl`.
    pub fn sweep(&mut self, now: Instant, ttl: Duration) {
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            let idle = self
                .by_key
                .get(&key)
                .is_none_or(|pin| now.saturating_duration_since(pin.last_used) > ttl);
            if !idle {
                break;
            }
            self.remove(key);
        }
    }

    /// Pins in all.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Conversations pinned to an account.
    pub fn pinned_to(&self, account_id: i32) -> usize {
        self.per_account.get(&account_id).copied().unwrap_or(0)
    }

    fn remove(&mut self, key: u64) {
        if let Some(pin) = self.by_key.get(&key) {
            self.order.remove(&pin.seq);
            self.forget(key);
        }
    }

    /// Drops a pin whose place in the order is already gone.
    fn forget(&mut self, key: u64) {
        let Some(pin) = self.by_key.remove(&key) else {
            return;
        };
        if let Some(count) = self.per_account.get_mut(&pin.account_id) {
            *count -= 1;
            if *count == 0 {
                self.per_account.remove(&pin.account_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_mins(1);

    #[test]
    fn pins_are_kept_counted_and_evicted_least_recent_first() {
        let now = Instant::now();
        let mut pins = Pins::new(3);
        pins.pin(1, 10, now);
        pins.pin(2, 10, now);
        pins.pin(3, 20, now);
        assert_eq!((pins.pinned_to(10), pins.pinned_to(20)), (2, 1));
        // Re-pinning moves the pin and makes it the most recent.
        pins.pin(1, 20, now);
        assert_eq!((pins.pinned_to(10), pins.pinned_to(20)), (1, 2));
        pins.pin(4, 30, now);
        assert_eq!(pins.len(), 3);
        assert_eq!(pins.get(2, now, TTL), None, "the least recently used went");
        assert_eq!(pins.get(1, now, TTL), Some(20));
        assert_eq!(pins.get(4, now, TTL), Some(30));
        assert_eq!(pins.pinned_to(10), 0);
    }

    #[test]
    fn idle_pins_expire() {
        let start = Instant::now();
        let mut pins = Pins::new(10);
        pins.pin(1, 10, start);
        pins.pin(2, 10, start + Duration::from_secs(30));
        let later = start + Duration::from_secs(61);
        assert_eq!(pins.get(1, later, TTL), None);
        assert_eq!(pins.get(2, later, TTL), Some(10));
        pins.sweep(start + Duration::from_secs(200), TTL);
        assert!(pins.is_empty());
        assert_eq!(pins.pinned_to(10), 0);
    }
}
