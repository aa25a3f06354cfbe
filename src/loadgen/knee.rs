//! The knee of an open-loop ramp: the highest offered rate at which ring delivery still keeps
//! its p99 under a bound (`knee_p99_ms`, 10 ms by default), read off the report's per-second
//! timeline.
//!
//! A fixed concurrency measures latency as much as capacity (a slower answer means fewer
//! calls offered); a ramp offers every rate in turn regardless of the answers, so the rate at
//! which delivery falls behind is the node's capacity at that latency. `benches/e2e.sh` ramps
//! past it and then runs its fixed-rate phases at half and twice the knee.
//!
//! One second over the bound does not end the search: on a box shared with the load
//! generator and the simulator, a lone stall of a few tens of milliseconds lands in some
//! second at any rate. The latency has broken away when [`SUSTAINED`] seconds in a row are
//! over it; the knee is the highest rate of a second within the bound before that.

use super::report::TimelinePoint;
use serde::Serialize;

/// Seconds in a row over the bound that mark the end of the curve's flat part.
pub const SUSTAINED: usize = 2;

/// Failed calls a second may have (share of those offered) and still count as within the
/// bound: a refused call (`503`) was not delivered late, but it was not delivered either.
pub const FAILED_SHARE: f64 = 0.01;

/// Where the ramp's delivery latency broke away.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Knee {
    /// Calls offered in that second: the knee's rate, calls per second.
    pub calls_per_second: u64,
    /// The second of the run it was (from the start of the drive phase).
    pub second: u64,
    /// Ring delivery p99 in that second, ms.
    pub delivery_p99_ms: f64,
    /// The bound the search held delivery p99 to, ms.
    pub p99_bound_ms: f64,
    /// The first second of the break-away (`SUSTAINED` seconds over the bound); `None` when
    /// the ramp never broke away, so its top rate is only a lower bound of the knee.
    pub broke_at_second: Option<u64>,
}

/// Whether one second kept delivery within the bound.
fn within(point: &TimelinePoint, bound_ms: f64) -> bool {
    let failed_ok = point.errors as f64 <= FAILED_SHARE * point.offered as f64;
    // A second whose calls were offered but never delivered is over any bound.
    let latency_ok = point.delivery_p99_ms.is_some_and(|p99| p99 <= bound_ms);
    failed_ok && latency_ok
}

/// The knee of `timeline` at `bound_ms`, or `None` when no second stayed within it before
/// the break-away (or the run delivered nothing: no simulator record).
pub fn find(timeline: &[TimelinePoint], bound_ms: f64) -> Option<Knee> {
    // Seconds with nothing offered (a ramp from 0, the run's last sliver) say nothing.
    let offered: Vec<&TimelinePoint> = timeline.iter().filter(|p| p.offered > 0).collect();
    if offered.iter().all(|p| p.delivery_p99_ms.is_none()) {
        return None;
    }
    let broke = offered
        .windows(SUSTAINED)
        .position(|run| run.iter().all(|point| !within(point, bound_ms)));
    let before = &offered[..broke.unwrap_or(offered.len())];
    let knee = before
        .iter()
        .filter(|point| within(point, bound_ms))
        // The highest rate; of equal rates, the earliest second.
        .max_by(|a, b| {
            a.offered
                .cmp(&b.offered)
                .then_with(|| b.second.cmp(&a.second))
        })?;
    Some(Knee {
        calls_per_second: knee.offered,
        second: knee.second,
        delivery_p99_ms: knee.delivery_p99_ms.unwrap_or_default(),
        p99_bound_ms: bound_ms,
        broke_at_second: broke.map(|index| offered[index].second),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timeline of (offered, failed, delivery p99) per second.
    fn timeline(seconds: &[(u64, u64, Option<f64>)]) -> Vec<TimelinePoint> {
        seconds
            .iter()
            .enumerate()
            .map(|(second, &(offered, errors, p99))| TimelinePoint {
                second: second as u64,
                offered,
                ok: offered - errors,
                errors,
                api_p50_ms: None,
                api_p99_ms: None,
                delivery_p99_ms: p99,
            })
            .collect()
    }

    #[test]
    fn the_knee_is_the_last_rate_within_the_bound_before_latency_breaks_away() {
        let ramp = timeline(&[
            (1000, 0, Some(1.2)),
            (2000, 0, Some(1.5)),
            (3000, 0, Some(4.0)),
            (4000, 0, Some(9.5)),
            (5000, 0, Some(14.0)),
            (6000, 0, Some(80.0)),
            (7000, 30, Some(150.0)),
        ]);
        let knee = find(&ramp, 10.0).unwrap();
        assert_eq!(knee.calls_per_second, 4000);
        assert_eq!(knee.second, 3);
        assert_eq!(knee.delivery_p99_ms, 9.5);
        assert_eq!(knee.broke_at_second, Some(4));
    }

    #[test]
    fn a_lone_stall_does_not_end_the_search() {
        let ramp = timeline(&[
            (1000, 0, Some(1.0)),
            (2000, 0, Some(45.0)),
            (3000, 0, Some(2.0)),
            (4000, 0, Some(12.0)),
            (5000, 0, Some(30.0)),
        ]);
        let knee = find(&ramp, 10.0).unwrap();
        assert_eq!(knee.calls_per_second, 3000);
        assert_eq!(knee.broke_at_second, Some(3));
    }

    #[test]
    fn refused_calls_count_as_over_the_bound() {
        // Fast deliveries of the calls admitted, but 5 % refused with 503 from 3,000/s on.
        let ramp = timeline(&[
            (1000, 0, Some(1.0)),
            (2000, 10, Some(1.0)),
            (3000, 150, Some(2.0)),
            (4000, 200, Some(2.0)),
        ]);
        let knee = find(&ramp, 10.0).unwrap();
        assert_eq!(knee.calls_per_second, 2000, "1 % failed still counts");
        assert_eq!(knee.broke_at_second, Some(2));
    }

    #[test]
    fn seconds_without_deliveries_are_over_and_empty_seconds_are_skipped() {
        let ramp = timeline(&[
            (0, 0, None),
            (1000, 0, Some(1.0)),
            (2000, 0, None),
            (3000, 0, None),
            (0, 0, None),
        ]);
        let knee = find(&ramp, 10.0).unwrap();
        assert_eq!(knee.calls_per_second, 1000);
        assert_eq!(knee.broke_at_second, Some(2));
    }

    #[test]
    fn a_ramp_that_never_breaks_away_gives_its_top_as_a_lower_bound() {
        let ramp = timeline(&[
            (1000, 0, Some(1.0)),
            (2000, 0, Some(11.0)),
            (3000, 0, Some(2.0)),
            (1500, 0, Some(1.0)),
        ]);
        let knee = find(&ramp, 10.0).unwrap();
        assert_eq!(knee.calls_per_second, 3000);
        assert_eq!(knee.broke_at_second, None);
    }

    #[test]
    fn no_knee_without_deliveries_or_when_the_first_seconds_break_away() {
        assert_eq!(
            find(&timeline(&[(1000, 0, None), (2000, 0, None)]), 10.0),
            None
        );
        assert_eq!(find(&[], 10.0), None);
        let over_at_once = timeline(&[(1000, 0, Some(20.0)), (2000, 0, Some(30.0))]);
        assert_eq!(find(&over_at_once, 10.0), None);
    }
}
