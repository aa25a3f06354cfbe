//! FCM's limit on messages to one device: 240 a minute and 5,000 an hour on Android (FCM's
//! "Throttling and quotas": "Maximum message rate to a single device"). Past it FCM answers
//! `429 QUOTA_EXCEEDED` with a `google.rpc.QuotaFailure` detail naming the device's rate.
//!
//! Counted in fixed windows per registration token, the minute's and the hour's, each opened
//! by the token's first message in it: a sender over the limit is refused as FCM refuses it,
//! and a load test whose callees are rung faster than a phone may be meets what it would meet.

use crate::vocab::UnixMillis;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
/// Tokens remembered before the ones idle for an hour are forgotten.
const PRUNE_AT: usize = 100_000;

/// The per-device limits of a profile; 0 turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Messages one token may get in a minute (FCM: 240).
    pub per_minute: u32,
    /// Messages one token may get in an hour (FCM: 5,000).
    pub per_hour: u32,
}

/// One token's two windows: when each opened and how many messages it took.
#[derive(Clone, Copy, Debug, Default)]
struct Windows {
    minute_from: UnixMillis,
    minute_count: u32,
    hour_from: UnixMillis,
    hour_count: u32,
}

/// The messages each token got lately.
#[derive(Debug)]
pub struct DeviceRates {
    limits: DeviceLimits,
    tokens: Mutex<Tokens>,
}

/// The windows of every token seen, and when the idle ones were last forgotten.
#[derive(Debug, Default)]
struct Tokens {
    windows: HashMap<String, Windows>,
    pruned_at: UnixMillis,
}

impl DeviceRates {
    /// Counts under `limits`.
    pub fn new(limits: DeviceLimits) -> DeviceRates {
        DeviceRates {
            limits,
            tokens: Mutex::new(Tokens::default()),
        }
    }

    /// Whether a message to `token` at `now` is within the device's limits; a message taken
    /// counts, a refused one does not (FCM counts what it delivers).
    pub fn admit(&self, token: &str, now: UnixMillis) -> bool {
        let DeviceLimits {
            per_minute,
            per_hour,
        } = self.limits;
        if per_minute == 0 && per_hour == 0 {
            return true;
        }
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        // At most once a minute: with more live tokens than PRUNE_AT, a sweep per new token
        // would make every first message cost the whole map.
        if tokens.windows.len() >= PRUNE_AT && now.saturating_sub(tokens.pruned_at) >= MINUTE_MS {
            tokens
                .windows
                .retain(|_, windows| now.saturating_sub(windows.hour_from) < HOUR_MS);
            tokens.pruned_at = now;
        }
        // Looked up first: a token seen before costs no allocation.
        if !tokens.windows.contains_key(token) {
            tokens.windows.insert(token.to_owned(), Windows::default());
        }
        let Some(windows) = tokens.windows.get_mut(token) else {
            return true;
        };
        if now.saturating_sub(windows.minute_from) >= MINUTE_MS {
            (windows.minute_from, windows.minute_count) = (now, 0);
        }
        if now.saturating_sub(windows.hour_from) >= HOUR_MS {
            (windows.hour_from, windows.hour_count) = (now, 0);
        }
        let over = (per_minute != 0 && windows.minute_count >= per_minute)
            || (per_hour != 0 && windows.hour_count >= per_hour);
        if !over {
            windows.minute_count += 1;
            windows.hour_count += 1;
        }
        !over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_800_000_000_000;

    fn rates(per_minute: u32, per_hour: u32) -> DeviceRates {
        DeviceRates::new(DeviceLimits {
            per_minute,
            per_hour,
        })
    }

    #[test]
    fn a_device_takes_its_minutes_worth_then_waits_for_the_next_minute() {
        let rates = rates(3, 100);
        let taken = (0..5).filter(|i| rates.admit("a", NOW + i)).count();
        assert_eq!(taken, 3);
        // Another device is not held back by the first.
        assert!(rates.admit("b", NOW + 10));
        assert!(!rates.admit("a", NOW + MINUTE_MS - 1));
        assert!(rates.admit("a", NOW + MINUTE_MS));
    }

    #[test]
    fn the_hours_limit_holds_across_minutes() {
        let rates = rates(10, 12);
        let taken = (0..30)
            .filter(|i| rates.admit("a", NOW + i * MINUTE_MS / 5))
            .count();
        assert_eq!(taken, 12);
        assert!(rates.admit("a", NOW + HOUR_MS));
    }

    #[test]
    fn tokens_idle_for_an_hour_are_forgotten_once_there_are_many() {
        let rates = rates(240, 5_000);
        for n in 0..PRUNE_AT {
            assert!(rates.admit(&format!("t{n}"), NOW));
        }
        assert!(rates.admit("fresh", NOW + HOUR_MS));
        let tokens = rates.tokens.lock().unwrap();
        assert_eq!(tokens.windows.len(), 1);
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let rates = rates(0, 0);
        assert!((0..1000).all(|_| rates.admit("a", NOW)));
    }
}
