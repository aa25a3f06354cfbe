//! Wall-clock time for the parts that need "now", and its RFC 3339 rendering for the API.
//!
//! Code that waits or measures time on the delivery path (dispatcher, delivery loop) reads it
//! from a [`Clock`] it is given rather than from [`now_millis`], so its tests run on tokio's
//! paused time instead of sleeping.

use crate::decimal;
use crate::vocab::UnixMillis;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the UNIX epoch. A clock before 1970 reads as 0 rather than failing:
/// registrations then simply look expired, which is the safe side.
pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Where "now" comes from. A `Copy` enum rather than a trait object: reading it costs no
/// allocation and no indirection on the hot path, and there are exactly two clocks.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// The system's wall clock ([`now_millis`]): production.
    System,
    /// Tokio's clock read as UNIX milliseconds from an origin: it follows
    /// `tokio::time::pause` and `advance`, so a test of code that waits (backoff, pause,
    /// deadline) runs in no real time and needs no luck.
    Tokio {
        /// The UNIX milliseconds `at` stands for.
        origin: UnixMillis,
        /// The tokio instant the clock started at.
        at: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock on tokio's time that reads `origin` now.
    pub fn tokio(origin: UnixMillis) -> Clock {
        Clock::Tokio {
            origin,
            at: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the UNIX epoch, by this clock.
    pub fn now(&self) -> UnixMillis {
        match self {
            Clock::System => now_millis(),
            Clock::Tokio { origin, at } => {
                let elapsed = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
                origin.saturating_add(elapsed)
            }
        }
    }

    /// Sleeps until this clock reads `until` (at once if it already does).
    pub async fn sleep_until(&self, until: UnixMillis) {
        let left = until.saturating_sub(self.now());
        if left > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(left)).await;
        }
    }

    /// The tokio instant at which this clock will read `when` (now if it is past), for
    /// APIs that wait with a tokio deadline (the pool's `acquire`).
    pub fn instant_at(&self, when: UnixMillis) -> tokio::time::Instant {
        let left = when.saturating_sub(self.now());
        tokio::time::Instant::now() + std::time::Duration::from_millis(left)
    }
}

/// Microseconds since the UNIX epoch: for measurements finer than a millisecond (the
/// simulator's records, from which the load generator computes delivery latency). 0 before
/// 1970, like [`now_millis`].
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Renders a time as RFC 3339 UTC with milliseconds, e.g. `2026-11-27T23:58:15.000Z`.
pub fn rfc3339(millis: UnixMillis) -> String {
    let seconds = millis / 1000;
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    // Digit by digit: every ring carries one, and `format!` costs several times more.
    let mut text = String::with_capacity("yyyy-mm-ddThh:mm:ss.mmmZ".len());
    let fields = [
        (year as u64, 4, '-'),
        (u64::from(month), 2, '-'),
        (u64::from(day), 2, 'T'),
        (of_day / 3600, 2, ':'),
        (of_day % 3600 / 60, 2, ':'),
        (of_day % 60, 2, '.'),
        (millis % 1000, 3, 'Z'),
    ];
    for (value, width, then) in fields {
        decimal::push(&mut text, value, width);
        text.push(then);
    }
    text
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm), so the
/// API needs no date-time crate for one format.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_the_formatter_would() {
        let mut millis = 0u64;
        while millis < 300_000_000_000_000 {
            let seconds = millis / 1000;
            let of_day = seconds % 86_400;
            let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
            let formatted = format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
                of_day / 3600,
                of_day % 3600 / 60,
                of_day % 60,
                millis % 1000
            );
            assert_eq!(rfc3339(millis), formatted);
            millis = millis * 3 + 7_919;
        }
    }

    #[test]
    fn renders_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_823_895_000), "2026-11-27T23:58:15.000Z");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let clock = Clock::tokio(1_000);
        assert_eq!(clock.now(), 1_000);
        tokio::time::advance(std::time::Duration::from_millis(250)).await;
        assert_eq!(clock.now(), 1_250);
        clock.sleep_until(5_000).await;
        assert_eq!(clock.now(), 5_000);
        // A time already past does not wait.
        clock.sleep_until(10).await;
        assert_eq!(clock.now(), 5_000);
    }
}
