//! Providers with many origins (Web Push push services, WNS channel hosts): one dispatcher
//! per origin behind one router-facing actor per app and router.
//!
//! - [`provider`]: the actor, [`OriginsProvider`], generic over the small [`OriginService`]
//!   each such provider implements (how a push names its origin, whether a new origin is
//!   vetted by the SSRF guard, how one origin's client starts);
//! - this file: the bounded map of origins it keeps: what is open per origin, which origin
//!   was used least recently, which went idle, and which origins the SSRF guard refused a
//!   while ago, so their pushes are refused without another lookup.
//!
//! The map is pure bookkeeping on a passed-in `now` (tokio's [`Instant`], paused in tests);
//! the actor that owns it starts and stops what it holds. Bounded twice: at most `max`
//! origins (the least recently used is let go when a new one comes), and the refusal memory
//! at most [`REFUSAL_BOUND`] times that, so a flood of refused names cannot grow it.

pub mod provider;

pub use provider::{ADDRESS_REFUSED, OriginService, OriginSettings, OriginsProvider};

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// How long an origin refused by the SSRF guard is remembered (and its pushes refused
/// without another lookup).
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(60);

/// The refusal memory holds at most this many times `max` origins; when full it is
/// forgotten at once (the next push to a refused origin is vetted again, never let through).
pub const REFUSAL_BOUND: usize = 4;

/// One origin's value and when it was last used.
struct Entry<T> {
    value: T,
    last_used: Instant,
}

/// The origins of one provider, each with its `T` (e.g. its dispatcher's address).
pub struct OriginMap<T> {
    entries: HashMap<String, Entry<T>>,
    refused: HashMap<String, Instant>,
    max: usize,
    idle: Duration,
}

impl<T: Clone> OriginMap<T> {
    /// A map of at most `max` origins (at least one), each let go after `idle` unused.
    pub fn new(max: usize, idle: Duration) -> Self {
        OriginMap {
            entries: HashMap::new(),
            refused: HashMap::new(),
            max: max.max(1),
            idle,
        }
    }

    /// The value of `origin`, if it is open; marks it used at `now`.
    pub fn get(&mut self, origin: &str, now: Instant) -> Option<T> {
        let entry = self.entries.get_mut(origin)?;
        entry.last_used = now;
        Some(entry.value.clone())
    }

    /// Opens `origin` with `value`, used at `now`. When the map is full, the least recently
    /// used origin is let go first and returned, for the caller to log (its value is dropped
    /// here: a dispatcher finishes what it holds and stops).
    pub fn insert(&mut self, origin: String, value: T, now: Instant) -> Option<String> {
        let mut evicted = None;
        if !self.entries.contains_key(&origin) && self.entries.len() >= self.max {
            evicted = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(origin, _)| origin.clone());
            if let Some(oldest) = &evicted {
                self.entries.remove(oldest);
            }
        }
        let entry = Entry {
            value,
            last_used: now,
        };
        self.entries.insert(origin, entry);
        evicted
    }

    /// Whether `origin` was refused less than [`REFUSAL_MEMORY`] before `now`.
    pub fn is_refused(&self, origin: &str, now: Instant) -> bool {
        self.refused
            .get(origin)
            .is_some_and(|at| now.duration_since(*at) < REFUSAL_MEMORY)
    }

    /// Remembers that the guard refused `origin` at `now`.
    pub fn refuse(&mut self, origin: String, now: Instant) {
        if self.refused.len() >= REFUSAL_BOUND * self.max {
            self.refused.clear();
        }
        self.refused.insert(origin, now);
    }

    /// Lets go of the origins unused for the idle time and forgets old refusals; answers the
    /// origins let go, for the caller to log.
    pub fn sweep(&mut self, now: Instant) -> Vec<String> {
        self.refused
            .retain(|_, at| now.duration_since(*at) < REFUSAL_MEMORY);
        let idle: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, entry)| now.duration_since(entry.last_used) >= self.idle)
            .map(|(origin, _)| origin.clone())
            .collect();
        for origin in &idle {
            self.entries.remove(origin);
        }
        idle
    }

    /// Every open origin's value.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.values().map(|entry| &entry.value)
    }

    /// How many origins are open.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no origin is open.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many refusals are remembered (bounded; for tests).
    pub fn refusals(&self) -> usize {
        self.refused.len()
    }
}

#[cfg(test)]
mod tests;
