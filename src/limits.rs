//! Limits per tenant: one tenant cannot use up a node's intake.
//!
//! Each tenant has two token buckets on each node, one for registry operations and one for
//! call events (README "Limits per tenant"). A request beyond its bucket gets `429` with
//! `Retry-After` before any of its work is done, and is counted in
//! `ringcast_rate_limited_total{tenant,kind}`.
//!
//! The bucket is GCRA (the generic cell rate algorithm, a token bucket written as one
//! timestamp): the whole state is the "theoretical arrival time" of the next request in one
//! `AtomicU64`, updated with a compare-and-swap. No lock and no refill task: the call path
//! pays one atomic load and one CAS on a cache line only that tenant's requests touch.

use crate::config::tenant::LimitsConfig;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a request spends from its tenant's buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Registry operations: register, refresh, list, unregister, revoke.
    Registration,
    /// Call events: rings and call ends.
    Call,
}

impl LimitKind {
    /// Both kinds, for registering metric series.
    pub const ALL: [LimitKind; 2] = [LimitKind::Registration, LimitKind::Call];

    /// The `kind` label of `ringcast_rate_limited_total`.
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::Registration => "registration",
            LimitKind::Call => "call",
        }
    }
}

/// A token bucket of `per_second` tokens a second holding at most `burst`, as GCRA.
#[derive(Debug)]
pub struct Bucket {
    /// Nanoseconds between two requests at the sustained rate (the emission interval).
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run: `burst` intervals.
    tolerance: u64,
    /// The theoretical arrival time, in nanoseconds of the [`Clock`].
    arrival: AtomicU64,
}

impl Bucket {
    /// A full bucket. `per_second` and `burst` are at least 1 (the configuration checks).
    pub fn new(per_second: u32, burst: u32) -> Bucket {
        let interval = 1_000_000_000 / u64::from(per_second.max(1));
        Bucket {
            interval,
            tolerance: interval * u64::from(burst.max(1)),
            arrival: AtomicU64::new(0),
        }
    }

    /// Takes one token at `now` (nanoseconds of the node's [`Clock`]), or says how long until
    /// one is available.
    pub fn take(&self, now: u64) -> Result<(), Duration> {
        let mut arrival = self.arrival.load(Ordering::Relaxed);
        loop {
            let next = arrival.max(now) + self.interval;
            let ahead = next - now;
            if ahead > self.tolerance {
                return Err(Duration::from_nanos(ahead - self.tolerance));
            }
            match self.arrival.compare_exchange_weak(
                arrival,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => arrival = current,
            }
        }
    }
}

/// One tenant's buckets on this node.
#[derive(Debug)]
pub struct TenantLimits {
    registrations: Bucket,
    calls: Bucket,
}

impl TenantLimits {
    /// Full buckets sized by the tenant's configuration.
    pub fn new(config: &LimitsConfig) -> TenantLimits {
        TenantLimits {
            registrations: Bucket::new(config.registrations_per_second, config.registrations_burst),
            calls: Bucket::new(config.calls_per_second, config.calls_burst),
        }
    }

    /// Takes a token of `kind` now, or says how long to wait.
    pub fn take(&self, kind: LimitKind) -> Result<(), Duration> {
        self.take_at(kind, Clock::now())
    }

    /// Takes a token of `kind` at `now` (tests pass their own time).
    pub fn take_at(&self, kind: LimitKind, now: u64) -> Result<(), Duration> {
        match kind {
            LimitKind::Registration => self.registrations.take(now),
            LimitKind::Call => self.calls.take(now),
        }
    }
}

/// The buckets' monotonic clock: nanoseconds since the first reading in this process.
pub struct Clock;

impl Clock {
    /// Now. Monotonic, so a wall-clock step never fills or drains a bucket.
    pub fn now() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Seconds for `Retry-After` (RFC 9110 §10.2.3 takes whole seconds): the wait rounded up, at
/// least 1, so a client that obeys it finds a token.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_full_bucket_takes_its_burst_then_refuses_until_a_token_returns() {
        let bucket = Bucket::new(10, 5);
        let start = 7 * SECOND;
        for n in 0..5 {
            assert_eq!(bucket.take(start), Ok(()), "request {n} of the burst");
        }
        let wait = bucket.take(start).expect_err("the sixth is over the burst");
        assert_eq!(wait, Duration::from_millis(100), "one token every 100 ms");
        assert!(bucket.take(start + 99_000_000).is_err(), "not yet");
        assert_eq!(
            bucket.take(start + 100_000_000),
            Ok(()),
            "a token came back"
        );
        assert!(bucket.take(start + 100_000_000).is_err(), "and only one");
    }

    #[test]
    fn the_sustained_rate_is_the_configured_one() {
        let bucket = Bucket::new(100, 10);
        let mut admitted = 0;
        // Offered 1,000 a second (one per millisecond) for ten seconds.
        for millisecond in 0..10_000u64 {
            if bucket.take(SECOND + millisecond * 1_000_000).is_ok() {
                admitted += 1;
            }
        }
        // 10 s at 100/s, plus the initial burst of 10.
        assert!((1_005..=1_011).contains(&admitted), "{admitted}");
    }

    #[test]
    fn an_idle_bucket_refills_to_its_burst_and_no_more() {
        let bucket = Bucket::new(1, 3);
        for _ in 0..3 {
            bucket.take(0).unwrap();
        }
        assert!(bucket.take(0).is_err());
        let later = 3_600 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(
            bucket.take(later).is_err(),
            "an hour idle refills 3, not 3,600"
        );
    }

    #[test]
    fn kinds_spend_from_their_own_buckets() {
        let config = LimitsConfig {
            registrations_per_second: 1,
            registrations_burst: 1,
            calls_per_second: 1,
            calls_burst: 2,
        };
        let limits = TenantLimits::new(&config);
        assert!(limits.take_at(LimitKind::Registration, 0).is_ok());
        assert!(limits.take_at(LimitKind::Registration, 0).is_err());
        assert!(
            limits.take_at(LimitKind::Call, 0).is_ok(),
            "calls are apart"
        );
        assert!(limits.take_at(LimitKind::Call, 0).is_ok());
        assert!(limits.take_at(LimitKind::Call, 0).is_err());
    }

    #[test]
    fn concurrent_takers_never_admit_more_than_the_burst() {
        let bucket = std::sync::Arc::new(Bucket::new(1, 1_000));
        let admitted: usize = (0..4)
            .map(|_| {
                let bucket = bucket.clone();
                std::thread::spawn(move || (0..1_000).filter(|_| bucket.take(0).is_ok()).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .sum();
        assert_eq!(admitted, 1_000);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1_001)), 2);
    }
}
