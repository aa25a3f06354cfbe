//! A provider's waiting room: one bounded queue per priority, served strictly in priority
//! order, with the lowest priority shed first when the room is full (docs/architecture.md, "Priorities
//! and deadlines").
//!
//! Each priority has its own bound, and all of them share a total bound. A push that finds
//! its own queue full is refused. A push that finds the room full evicts the newest push of
//! the lowest priority below its own — a missed-call notice makes way for a call-ended push,
//! which makes way for a ring — and is refused only when nothing below it is queued. The
//! caller learns of a refusal at once (the API answers `503` for a refused ring), and an
//! evicted push ends as [`Outcome::Shed`](crate::vocab::Outcome::Shed). Nothing waits unbounded.

use crate::vocab::Priority;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The bounds of a provider's queues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueLimits {
    /// Pushes of all priorities waiting at once: the memory bound.
    pub total: usize,
    /// Incoming-call pushes waiting at once.
    pub p0: usize,
    /// Call-ended pushes waiting at once.
    pub p1: usize,
    /// Missed-call notices waiting at once. Lower than the others so a flood of notices
    /// cannot hold the room when rings arrive (they would be evicted, but never need to be).
    pub p2: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            total: 8192,
            p0: 8192,
            p1: 4096,
            p2: 2048,
        }
    }
}

impl QueueLimits {
    /// The bound of one priority's queue.
    pub fn of(&self, priority: Priority) -> usize {
        match priority {
            Priority::P0 => self.p0,
            Priority::P1 => self.p1,
            Priority::P2 => self.p2,
        }
    }

    /// Every problem with these limits, naming its key under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, value) in [
            ("total", self.total),
            ("p0", self.p0),
            ("p1", self.p1),
            ("p2", self.p2),
        ] {
            if value == 0 {
                errors.push(format!("{prefix}.{key} must be at least 1"));
            }
        }
        errors
    }
}

/// What became of an offered item.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// Queued.
    Queued,
    /// Queued, and to make room this lower-priority item was evicted: it is shed.
    Evicted(T),
    /// Not queued: its own queue is full, or the room is full of pushes as urgent as it.
    Refused(T),
}

/// The per-priority queues of one provider.
#[derive(Debug)]
pub struct PriorityQueues<T> {
    /// One FIFO per priority, indexed by `Priority as usize`.
    queues: [VecDeque<T>; 3],
    /// The bounds.
    limits: QueueLimits,
}

impl<T> PriorityQueues<T> {
    /// Empty queues with these bounds.
    pub fn new(limits: QueueLimits) -> Self {
        PriorityQueues {
            queues: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            limits,
        }
    }

    /// Offers `item` at `priority`.
    pub fn offer(&mut self, priority: Priority, item: T) -> Offer<T> {
        let index = priority as usize;
        if self.queues[index].len() >= self.limits.of(priority) {
            return Offer::Refused(item);
        }
        if self.len() < self.limits.total {
            self.queues[index].push_back(item);
            return Offer::Queued;
        }
        // The room is full: the newest of the lowest priority below this one makes way (the
        // newest has waited least, so the least waiting is lost).
        for lower in (index + 1..self.queues.len()).rev() {
            if let Some(evicted) = self.queues[lower].pop_back() {
                self.queues[index].push_back(item);
                return Offer::Evicted(evicted);
            }
        }
        Offer::Refused(item)
    }

    /// The next item to send: the oldest of the most urgent priority.
    pub fn pop(&mut self) -> Option<T> {
        self.queues.iter_mut().find_map(VecDeque::pop_front)
    }

    /// Removes and returns every queued item `matches` picks (e.g. the rings of a call that
    /// ended before they left), keeping the others in order.
    pub fn remove_where(&mut self, mut matches: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut removed = Vec::new();
        for queue in &mut self.queues {
            let mut kept = VecDeque::with_capacity(queue.len());
            for item in queue.drain(..) {
                if matches(&item) {
                    removed.push(item);
                } else {
                    kept.push_back(item);
                }
            }
            *queue = kept;
        }
        removed
    }

    /// Items waiting at `priority`.
    pub fn depth(&self, priority: Priority) -> usize {
        self.queues[priority as usize].len()
    }

    /// Items waiting in all.
    pub fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bounds.
    pub fn limits(&self) -> &QueueLimits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Priority::{P0, P1, P2};

    fn queues(total: usize, p0: usize, p1: usize, p2: usize) -> PriorityQueues<&'static str> {
        PriorityQueues::new(QueueLimits { total, p0, p1, p2 })
    }

    #[test]
    fn serves_strictly_by_priority_then_in_order() {
        let mut q = queues(10, 10, 10, 10);
        for (priority, item) in [(P2, "m1"), (P1, "e1"), (P0, "r1"), (P2, "m2"), (P0, "r2")] {
            assert_eq!(q.offer(priority, item), Offer::Queued);
        }
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["r1", "r2", "e1", "m1", "m2"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_room_sheds_the_lowest_priority_first_and_never_a_ring() {
        let mut q = queues(4, 4, 4, 4);
        for (priority, item) in [(P2, "m1"), (P2, "m2"), (P1, "e1"), (P1, "e2")] {
            assert_eq!(q.offer(priority, item), Offer::Queued);
        }
        // Rings evict the newest missed-call notices first, then call-ended pushes.
        assert_eq!(q.offer(P0, "r1"), Offer::Evicted("m2"));
        assert_eq!(q.offer(P0, "r2"), Offer::Evicted("m1"));
        assert_eq!(q.offer(P0, "r3"), Offer::Evicted("e2"));
        // A call-ended push may evict only what is below it; nothing is.
        assert_eq!(q.offer(P1, "e3"), Offer::Refused("e3"));
        assert_eq!(q.offer(P2, "m3"), Offer::Refused("m3"));
        assert_eq!(q.offer(P0, "r4"), Offer::Evicted("e1"));
        // Only rings left: the next ring is refused, never another ring evicted.
        assert_eq!(q.offer(P0, "r5"), Offer::Refused("r5"));
        assert_eq!((q.depth(P0), q.depth(P1), q.depth(P2)), (4, 0, 0));
    }

    #[test]
    fn each_priority_has_its_own_bound() {
        let mut q = queues(10, 10, 10, 2);
        assert_eq!(q.offer(P2, "m1"), Offer::Queued);
        assert_eq!(q.offer(P2, "m2"), Offer::Queued);
        assert_eq!(q.offer(P2, "m3"), Offer::Refused("m3"));
        assert_eq!(q.offer(P0, "r1"), Offer::Queued);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn queued_items_can_be_withdrawn() {
        let mut q = queues(10, 10, 10, 10);
        for (priority, item) in [(P0, "a-ring"), (P0, "b-ring"), (P1, "a-end")] {
            q.offer(priority, item);
        }
        let removed = q.remove_where(|item| item.starts_with("a-"));
        assert_eq!(removed, ["a-ring", "a-end"]);
        assert_eq!(q.pop(), Some("b-ring"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn zero_bounds_are_reported() {
        let limits = QueueLimits {
            total: 0,
            p2: 0,
            ..QueueLimits::default()
        };
        assert_eq!(limits.validate("q").len(), 2);
        assert!(QueueLimits::default().validate("q").is_empty());
    }
}
