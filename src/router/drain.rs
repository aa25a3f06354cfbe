//! The node's count of call events still being delivered, so a stopping node can wait for
//! them (docs/architecture.md, "Cluster semantics": drain).
//!
//! An event counts from its claim until every device's push has an outcome (delivered,
//! expired at its deadline, refused...), retries included; the count is shared by every
//! router and read by the shutdown path in `app`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often a drain looks at the count again.
const POLL: Duration = Duration::from_millis(20);

/// Events in flight on this node. Cheap to clone: every clone shares one count.
#[derive(Clone, Debug, Default)]
pub struct EventsInFlight {
    count: Arc<AtomicUsize>,
}

/// One event in flight; dropping it (when the event's work ends, however it ends) takes it
/// off the count.
#[derive(Debug)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
}

impl EventsInFlight {
    /// Counts one more event until the returned guard is dropped.
    pub fn enter(&self) -> InFlight {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlight {
            count: Arc::clone(&self.count),
        }
    }

    /// Events in flight now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no event is in flight, or `limit` passed; `true` when drained.
    pub async fn drained_within(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if self.count() == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + POLL)).await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_drain_waits_for_the_last_event_or_gives_up_at_its_limit() {
        let events = EventsInFlight::default();
        assert!(events.drained_within(Duration::ZERO).await, "idle");
        let (one, two) = (events.enter(), events.enter());
        assert_eq!(events.count(), 2);
        drop(one);
        assert!(!events.drained_within(Duration::from_secs(1)).await);
        let waiter = tokio::spawn({
            let events = events.clone();
            async move { events.drained_within(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(two);
        assert!(waiter.await.unwrap());
    }
}
