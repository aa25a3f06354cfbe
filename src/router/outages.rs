//! What a node has seen of its store failing, and so whether a lapsed lease proves its owner
//! dead (docs/architecture.md, "Cluster semantics").
//!
//! An owner renews its events' leases every `renew_ms`; a lease that lapsed says the owner
//! stopped renewing. That is proof of a dead node only while the store was reachable: when a
//! Redis master fails over, every lease on its slots lapses during the seconds its slots are
//! unanswered, although every owner is alive and renews as soon as the slots are served
//! again. A node taking those events over in that moment pushes once more to every device
//! its owner had already rung and not yet recorded (measured: 19-26 takeovers and 3-8
//! duplicate pushes per 800 events in `benches/cluster.sh`'s master kill, with no ringcast
//! node down).
//!
//! So a node that saw a store operation fail within the last two leases takes nothing over:
//! the claim answers [`crate::registry::lease::Claim::Lapsed`], the event is answered `503`
//! (the API) or left pending (the intake's readers), and asked for again later. Two leases
//! because the owner needs up to one renewal period after the store is back, and this node
//! may have seen its last failure up to a lease before the store came back (the readers
//! look at a pending entry again a lease later). A node that really died is taken over
//! that much later; only when the store failed too.

use crate::registry::StoreError;
use crate::vocab::UnixMillis;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// When this node last saw its store fail, shared by every router of the node.
#[derive(Clone, Debug, Default)]
pub struct StoreOutages {
    /// UNIX ms of the last failure seen; 0 for never.
    last_failure: Arc<AtomicU64>,
}

impl StoreOutages {
    /// A store operation failed at `now` with `error`: noted when the store could not be
    /// reached or did not answer (a corrupt record says nothing about the store's health).
    pub fn failed(&self, error: &StoreError, now: UnixMillis) {
        if matches!(error, StoreError::Unavailable(_)) {
            self.last_failure.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Whether, at `now`, a lapsed lease of `lease_ms` proves its owner gone: no failure seen
    /// within the last two leases.
    pub fn may_take_over(&self, now: UnixMillis, lease_ms: u64) -> bool {
        let last = self.last_failure.load(Ordering::Relaxed);
        last == 0 || now >= last.saturating_add(lease_ms.saturating_mul(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takeovers_wait_two_leases_after_the_last_failure_seen() {
        let outages = StoreOutages::default();
        let down = StoreError::Unavailable("timed out".into());
        assert!(outages.may_take_over(1_000, 3_000), "never failed");
        outages.failed(&StoreError::Corrupt("a bad record".into()), 10_000);
        assert!(outages.may_take_over(10_000, 3_000), "not an outage");
        outages.failed(&down, 10_000);
        outages.failed(&down, 9_000);
        assert!(!outages.may_take_over(10_000, 3_000));
        assert!(!outages.may_take_over(15_999, 3_000));
        assert!(
            outages.may_take_over(16_000, 3_000),
            "two leases after the last"
        );
        outages.failed(&down, 20_000);
        assert!(
            !outages.may_take_over(20_001, 3_000),
            "a new failure starts again"
        );
        let shared = outages.clone();
        shared.failed(&down, 30_000);
        assert!(
            !outages.may_take_over(35_000, 3_000),
            "clones share what they saw"
        );
    }
}
