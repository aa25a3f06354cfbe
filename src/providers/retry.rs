//! When to try a failed push again, shared by every provider ("share the code, don't copy it").
//!
//! Three rules, each one a lesson from push services that punish careless senders:
//!
//! - **Exponential backoff with full jitter**: the delay before attempt `n` is drawn uniformly
//!   from `0..=min(cap, base · 2ⁿ)`. Full jitter spreads a burst of failures over the whole
//!   window, so a thousand pushes that failed together do not come back together.
//! - **Never past the deadline**: a retry that would fire at or after the push's deadline is
//!   not scheduled; the push gives up at once, so its outcome is known while it still matters.
//!   A server's `Retry-After` is honoured as a floor on the delay, even when it overrides the
//!   cap: the server said when it can take more.
//! - **A retry budget**: retries may be at most a configured share of the sends over a sliding
//!   window (plus a small floor so a quiet provider can still retry). Above it, retries fail
//!   fast and are counted: an outage never becomes a retry storm.
//!
//! Everything takes `now` and an injectable [`fastrand::Rng`], so the tests need no sleeping
//! and no luck.

use crate::vocab::UnixMillis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a provider retries. Typed, with defaults suited to calls: the first retry comes fast
/// (a phone should ring within seconds), later ones back off quickly to the cap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// The backoff window of the first retry, in milliseconds; it doubles with every attempt.
    /// Small, because a P0 push has a 45 s deadline and a ring that comes late is worthless.
    pub base_delay_ms: u64,
    /// The largest backoff window, in milliseconds, so a long outage does not push retries
    /// out for minutes (a server `Retry-After` may still ask for longer).
    pub max_delay_ms: u64,
    /// How many retries one push may have after its first send. Bounded because FCM and APNs
    /// both punish senders that hammer them on errors.
    pub max_retries: u32,
    /// The share of recent sends that may be retries, in percent (10 = one retry per ten
    /// sends). Above it retries fail fast: this is what keeps an outage from becoming a storm.
    pub budget_percent: u32,
    /// Retries always allowed per window whatever the traffic, so a quiet provider whose one
    /// push failed can still retry it.
    pub budget_min_retries: u32,
    /// The sliding window over which sends and retries are counted, in seconds (1..=60).
    pub budget_window_seconds: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            base_delay_ms: 100,
            max_delay_ms: 10_000,
            max_retries: 5,
            budget_percent: 10,
            budget_min_retries: 10,
            budget_window_seconds: 10,
        }
    }
}

impl RetrySettings {
    /// Every problem with these settings, each naming its field under `prefix` (start-up
    /// validation reports all errors at once).
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if self.base_delay_ms == 0 {
            errors.push(format!("{prefix}.base_delay_ms must be at least 1"));
        }
        if self.max_delay_ms < self.base_delay_ms {
            errors.push(format!(
                "{prefix}.max_delay_ms ({}) must not be below base_delay_ms ({})",
                self.max_delay_ms, self.base_delay_ms
            ));
        }
        if self.budget_percent > 100 {
            errors.push(format!("{prefix}.budget_percent must be 0..=100"));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&self.budget_window_seconds) {
            errors.push(format!(
                "{prefix}.budget_window_seconds must be 1..={MAX_WINDOW_SECONDS}"
            ));
        }
        errors
    }
}

/// The longest budget window: the ring of per-second buckets has this many slots at most.
pub const MAX_WINDOW_SECONDS: u32 = 60;

/// Why a push will not be tried again. The provider turns it into the push's final outcome
/// (the last answer's outcome, or `Expired` for a deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// The retry would fire at or after the push's deadline: it would be pointless, and a
    /// push is never sent after its deadline.
    WouldPassDeadline,
    /// The push has had its `max_retries`.
    AttemptsExhausted,
    /// Retries already make up the budgeted share of recent sends: fail fast.
    BudgetExhausted,
}

impl GiveUp {
    /// The metric label and the reason put into a `Rejected` outcome.
    pub fn label(self) -> &'static str {
        match self {
            GiveUp::WouldPassDeadline => "would_pass_deadline",
            GiveUp::AttemptsExhausted => "attempts_exhausted",
            GiveUp::BudgetExhausted => "retry_budget_exhausted",
        }
    }
}

/// What to do with a push whose send failed with a retryable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Send it again at `at` (UNIX milliseconds), `delay` from now.
    RetryAt {
        /// When to send again.
        at: UnixMillis,
        /// How long from now that is (for logs and metrics).
        delay: Duration,
    },
    /// Do not send it again.
    GiveUp(GiveUp),
}

/// The retry policy of one provider: backoff, deadline and budget together. One per provider
/// actor (a plain struct, no locks: the actor owns it).
#[derive(Debug)]
pub struct RetryPolicy {
    /// The backoff window of the first retry.
    base: Duration,
    /// The largest backoff window.
    cap: Duration,
    /// Retries per push.
    max_retries: u32,
    /// The sliding-window budget shared by every push of the provider.
    budget: RetryBudget,
    /// The jitter source; seeded in tests so delays are reproducible.
    rng: fastrand::Rng,
}

impl RetryPolicy {
    /// A policy from validated settings, with its jitter drawn from `rng` (pass
    /// `fastrand::Rng::new()` in production, `fastrand::Rng::with_seed(..)` in tests).
    pub fn new(settings: &RetrySettings, rng: fastrand::Rng) -> Self {
        RetryPolicy {
            base: Duration::from_millis(settings.base_delay_ms),
            cap: Duration::from_millis(settings.max_delay_ms.max(settings.base_delay_ms)),
            max_retries: settings.max_retries,
            budget: RetryBudget::new(settings),
            rng,
        }
    }

    /// Counts a first send of a push (not a retry): the budget is a share of these.
    pub fn record_send(&mut self, now: UnixMillis) {
        self.budget.record_send(now);
    }

    /// Decides about retry number `retry` (1 for the first retry) of a push due by
    /// `deadline`, at `now`, given the server's `Retry-After` if it sent one. A scheduled
    /// retry takes its place in the budget; a refused one is counted.
    pub fn decide(
        &mut self,
        retry: u32,
        now: UnixMillis,
        deadline: UnixMillis,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if retry > self.max_retries {
            return RetryDecision::GiveUp(GiveUp::AttemptsExhausted);
        }
        let delay = self
            .backoff(retry)
            .max(retry_after.unwrap_or(Duration::ZERO));
        let at = now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        if at >= deadline {
            return RetryDecision::GiveUp(GiveUp::WouldPassDeadline);
        }
        if !self.budget.try_retry(now) {
            return RetryDecision::GiveUp(GiveUp::BudgetExhausted);
        }
        RetryDecision::RetryAt { at, delay }
    }

    /// The jittered delay before retry number `retry`: uniform in `0..=min(cap, base · 2^(retry-1))`.
    pub fn backoff(&mut self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let window = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.rng.u64(0..=window_ms))
    }

    /// Retries refused by the budget since the policy was made (exported as a metric).
    pub fn budget_refusals(&self) -> u64 {
        self.budget.refused
    }
}

/// One second of the budget window.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which UNIX second the counts belong to; a bucket of another second is stale.
    second: u64,
    /// First sends in that second.
    sends: u32,
    /// Retries in that second.
    retries: u32,
}

/// The sliding-window retry budget: a ring of per-second buckets with running totals, so
/// every call is O(1) (at most `window` buckets are cleared when time jumps ahead, and the
/// window is at most 60).
#[derive(Debug)]
pub struct RetryBudget {
    /// One bucket per second of the window.
    buckets: Vec<Bucket>,
    /// Sends in the live buckets.
    sends: u64,
    /// Retries in the live buckets.
    retries: u64,
    /// The newest second seen; buckets older than `window` seconds before it are dropped.
    newest: u64,
    /// Allowed retries as a share of sends, in percent.
    percent: u64,
    /// Retries always allowed per window.
    min_retries: u64,
    /// Retries refused since creation.
    refused: u64,
}

impl RetryBudget {
    /// An empty budget with the settings' share, floor and window (clamped to 1..=60 s).
    pub fn new(settings: &RetrySettings) -> Self {
        let window = settings.budget_window_seconds.clamp(1, MAX_WINDOW_SECONDS) as usize;
        RetryBudget {
            buckets: vec![Bucket::default(); window],
            sends: 0,
            retries: 0,
            newest: 0,
            percent: u64::from(settings.budget_percent.min(100)),
            min_retries: u64::from(settings.budget_min_retries),
            refused: 0,
        }
    }

    /// Counts a first send at `now`.
    pub fn record_send(&mut self, now: UnixMillis) {
        let bucket = self.advance(now);
        self.buckets[bucket].sends = self.buckets[bucket].sends.saturating_add(1);
        self.sends += 1;
    }

    /// Takes one retry from the budget at `now` if the window has room; counts a refusal
    /// otherwise.
    pub fn try_retry(&mut self, now: UnixMillis) -> bool {
        let bucket = self.advance(now);
        let allowed = self.min_retries + self.sends * self.percent / 100;
        if self.retries >= allowed {
            self.refused += 1;
            return false;
        }
        self.buckets[bucket].retries = self.buckets[bucket].retries.saturating_add(1);
        self.retries += 1;
        true
    }

    /// Retries refused since creation.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Moves the window to `now`'s second, dropping buckets that fell out of it, and returns
    /// the index of `now`'s bucket. A `now` older than the newest second seen (a clock step
    /// back) is counted in the newest bucket rather than resurrecting a stale one.
    fn advance(&mut self, now: UnixMillis) -> usize {
        let second = (now / 1000).max(self.newest);
        let window = self.buckets.len() as u64;
        if second > self.newest {
            let first_stale = self.newest.max(second.saturating_sub(window)) + 1;
            for stale in first_stale..=second {
                self.clear((stale % window) as usize);
            }
            self.newest = second;
        }
        let index = (second % window) as usize;
        if self.buckets[index].second != second {
            self.clear(index);
            self.buckets[index].second = second;
        }
        index
    }

    /// Empties one bucket and takes its counts out of the totals.
    fn clear(&mut self, index: usize) {
        let bucket = std::mem::take(&mut self.buckets[index]);
        self.sends -= u64::from(bucket.sends);
        self.retries -= u64::from(bucket.retries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = 1_800_000_000_000;

    fn settings() -> RetrySettings {
        RetrySettings {
            base_delay_ms: 100,
            max_delay_ms: 1_000,
            max_retries: 8,
            budget_percent: 10,
            budget_min_retries: 0,
            budget_window_seconds: 10,
        }
    }

    fn policy(settings: &RetrySettings) -> RetryPolicy {
        RetryPolicy::new(settings, fastrand::Rng::with_seed(7))
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_and_is_capped() {
        let mut policy = policy(&settings());
        for (retry, window) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let draws: Vec<u64> = (0..2000)
                .map(|_| policy.backoff(retry).as_millis() as u64)
                .collect();
            let (min, max) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
            assert!(*max <= window, "retry {retry}: {max} > {window}");
            // Full jitter: the draws cover the whole window, from near zero to near the top.
            assert!(*min < window / 10, "retry {retry}: min {min}");
            assert!(*max > window * 9 / 10, "retry {retry}: max {max}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let delays = |seed| {
            let mut policy = RetryPolicy::new(&settings(), fastrand::Rng::with_seed(seed));
            (1..6).map(|n| policy.backoff(n)).collect::<Vec<_>>()
        };
        assert_eq!(delays(1), delays(1));
        assert_ne!(delays(1), delays(2));
    }

    #[test]
    fn never_schedules_a_retry_past_the_deadline() {
        let mut policy = policy(&RetrySettings {
            budget_min_retries: 100,
            ..settings()
        });
        // 50 ms left, but a Retry-After of 1 s: give up now rather than send late.
        let decision = policy.decide(1, T0, T0 + 50, Some(Duration::from_secs(1)));
        assert_eq!(decision, RetryDecision::GiveUp(GiveUp::WouldPassDeadline));
        // Already past the deadline: whatever the jitter draws, give up.
        assert_eq!(
            policy.decide(1, T0, T0, None),
            RetryDecision::GiveUp(GiveUp::WouldPassDeadline)
        );
        // With room, every scheduled retry lands before the deadline.
        for _ in 0..100 {
            match policy.decide(3, T0, T0 + 300, None) {
                RetryDecision::RetryAt { at, .. } => assert!(at < T0 + 300),
                RetryDecision::GiveUp(reason) => assert_eq!(reason, GiveUp::WouldPassDeadline),
            }
        }
    }

    #[test]
    fn retry_after_is_a_floor_even_above_the_cap() {
        let mut policy = policy(&RetrySettings {
            budget_min_retries: 100,
            ..settings()
        });
        for _ in 0..50 {
            let decision = policy.decide(1, T0, T0 + 60_000, Some(Duration::from_secs(5)));
            let RetryDecision::RetryAt { at, delay } = decision else {
                panic!("{decision:?}");
            };
            assert_eq!(delay, Duration::from_secs(5));
            assert_eq!(at, T0 + 5_000);
        }
    }

    #[test]
    fn retries_are_bounded_per_push() {
        let mut policy = policy(&RetrySettings {
            budget_min_retries: 100,
            max_retries: 2,
            ..settings()
        });
        assert!(matches!(
            policy.decide(2, T0, T0 + 60_000, None),
            RetryDecision::RetryAt { .. }
        ));
        assert_eq!(
            policy.decide(3, T0, T0 + 60_000, None),
            RetryDecision::GiveUp(GiveUp::AttemptsExhausted)
        );
    }

    #[test]
    fn the_budget_fails_fast_above_its_share_and_counts_refusals() {
        let mut policy = policy(&settings());
        for i in 0..100 {
            policy.record_send(T0 + i);
        }
        // 10 % of 100 sends: ten retries, then an outage gets no more.
        for _ in 0..10 {
            assert!(matches!(
                policy.decide(1, T0 + 200, T0 + 60_000, None),
                RetryDecision::RetryAt { .. }
            ));
        }
        assert_eq!(
            policy.decide(1, T0 + 200, T0 + 60_000, None),
            RetryDecision::GiveUp(GiveUp::BudgetExhausted)
        );
        assert_eq!(policy.budget_refusals(), 1);
    }

    #[test]
    fn the_budget_floor_lets_a_quiet_provider_retry() {
        let mut budget = RetryBudget::new(&RetrySettings {
            budget_min_retries: 2,
            ..settings()
        });
        assert!(budget.try_retry(T0));
        assert!(budget.try_retry(T0));
        assert!(!budget.try_retry(T0));
        assert_eq!(budget.refused(), 1);
    }

    #[test]
    fn the_budget_window_slides() {
        let mut budget = RetryBudget::new(&settings());
        for _ in 0..10 {
            budget.record_send(T0);
        }
        assert!(budget.try_retry(T0 + 1_000));
        assert!(!budget.try_retry(T0 + 2_000));
        // Nine seconds after the sends they still count; at ten they have left the window
        // (the retry of second one has not): no budget.
        assert!(!budget.try_retry(T0 + 9_999));
        assert!(!budget.try_retry(T0 + 10_000));
        assert_eq!((budget.sends, budget.retries), (0, 1));
        // At eleven the retry has left too: 20 fresh sends buy two retries.
        for _ in 0..20 {
            budget.record_send(T0 + 11_500);
        }
        assert!(budget.try_retry(T0 + 11_500));
        assert!(budget.try_retry(T0 + 11_500));
        assert!(!budget.try_retry(T0 + 11_500));
        // A long silence empties the whole ring.
        budget.record_send(T0 + 3_600_000);
        assert_eq!((budget.sends, budget.retries), (1, 0));
    }

    #[test]
    fn a_clock_step_back_neither_panics_nor_resurrects_old_counts() {
        let mut budget = RetryBudget::new(&settings());
        budget.record_send(T0 + 20_000);
        budget.record_send(T0);
        assert_eq!(budget.sends, 2);
    }

    #[test]
    fn settings_are_validated_all_at_once() {
        let errors = RetrySettings {
            base_delay_ms: 0,
            max_delay_ms: 0,
            budget_percent: 101,
            budget_window_seconds: 0,
            ..RetrySettings::default()
        }
        .validate("providers.apns.retry");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("providers.apns.retry.base_delay_ms"));
        assert!(RetrySettings::default().validate("x").is_empty());
    }
}
