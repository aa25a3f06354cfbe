//! Admission by priority: when a router has too much work in flight, it refuses new
//! events before doing any of their work, the lowest priority first (docs/architecture.md: "under
//! overload the lowest priority is shed first").
//!
//! Why count events in flight: every event's routing (claim, lookup, fan-out, submit) waits
//! for the router's thread and for Redis. When the node is short of CPU or Redis is slow, those
//! waits grow, and by Little's law so does the number of events in flight at a given rate. A
//! bound on it bounds the time an admitted event spends being routed, so a ring that is let
//! in still rings within milliseconds, and the excess gets `503` with `Retry-After` at once
//! (call control retries) instead of queueing for seconds. The thresholds are staggered so
//! that missed-call notices stop first, then "call ended", and rings last.

use crate::metrics;
use crate::vocab::Priority;
use std::cell::Cell;
use std::rc::Rc;

/// The share of the limit each priority may fill: P2 half, P1 three quarters, P0 all of it.
fn threshold(limit: usize, priority: Priority) -> usize {
    match priority {
        Priority::P0 => limit,
        Priority::P1 => limit * 3 / 4,
        Priority::P2 => limit / 2,
    }
}

/// One router's count of events in flight and its limit. Single-threaded: a router and the
/// tasks it spawns all run on the router's thread. Both show in `/metrics`, summed over the
/// node's routers: `ringcast_events_in_flight` and `ringcast_events_in_flight_limit`.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    in_flight: Rc<Cell<usize>>,
}

impl Admission {
    /// Admits at most `limit` events in flight (at least 1 per priority).
    pub fn new(limit: usize) -> Admission {
        let limit = limit.max(2);
        metrics::events_in_flight_limit(limit as i64);
        Admission {
            limit,
            in_flight: Rc::default(),
        }
    }

    /// A pass for one event of `priority`, or `None` when that priority is shed right now.
    /// The event counts as in flight until the pass is dropped.
    pub fn admit(&self, priority: Priority) -> Option<Pass> {
        let in_flight = self.in_flight.get();
        if in_flight >= threshold(self.limit, priority).max(1) {
            return None;
        }
        self.in_flight.set(in_flight + 1);
        metrics::events_in_flight(1);
        Some(Pass {
            in_flight: Rc::clone(&self.in_flight),
        })
    }

    /// Events in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }
}

/// An admitted event; dropping it (when the event's routing is done) frees its place.
#[derive(Debug)]
pub struct Pass {
    in_flight: Rc<Cell<usize>>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        metrics::events_in_flight(-1);
    }
}

impl Drop for Admission {
    /// A stopped router's limit leaves the node's sum.
    fn drop(&mut self) {
        metrics::events_in_flight_limit(-(self.limit as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_priorities_are_shed_first() {
        let admission = Admission::new(8);
        let passes: Vec<Pass> = (0..4)
            .map(|_| admission.admit(Priority::P0).expect("room"))
            .collect();
        // Half full: missed-call notices wait, "call ended" and rings still go.
        assert!(admission.admit(Priority::P2).is_none());
        let ended = admission.admit(Priority::P1).expect("room for P1");
        let more_ended = admission.admit(Priority::P1).expect("room for P1");
        // Three quarters: only rings.
        assert!(admission.admit(Priority::P1).is_none());
        let rings = [
            admission.admit(Priority::P0).expect("room for P0"),
            admission.admit(Priority::P0).expect("room for P0"),
        ];
        assert!(admission.admit(Priority::P0).is_none());
        assert_eq!(admission.in_flight(), 8);
        drop((passes, ended, more_ended, rings));
        assert_eq!(admission.in_flight(), 0);
        assert!(admission.admit(Priority::P2).is_some());
    }

    #[test]
    fn a_tiny_limit_still_admits_every_priority_when_idle() {
        let admission = Admission::new(0);
        for priority in Priority::ALL {
            assert!(admission.admit(priority).is_some(), "{priority:?}");
        }
    }
}
