//! Event ownership as a lease (docs/architecture.md, "Cluster semantics"): the pure state and its
//! transitions, shared by every store and tested here without a runtime or a store.
//!
//! A call event's claim records which node owns it, until when that node's lease runs (the
//! owner renews it while the event is in flight), which devices already have an outcome, and
//! whether the event is finished. A duplicate sent while the lease runs, or after the event
//! finished, is answered as a duplicate with that progress; one sent after the lease lapsed,
//! before the event finished, takes the event over and rings only the devices without an
//! outcome. The record itself lives until the event's deadline.
//!
//! The embedded store runs these functions inside one write transaction; the Redis stores
//! run the same rules in one Lua script per call (`src/registry/redis/claims.rs`), and the
//! store contract (`tests/contract.rs`) holds every store to them.

use super::registration::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// What the store keeps for one call event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLease {
    /// The node that owns the event (its `[cluster] node_id`).
    pub owner: String,
    /// Until when the owner's lease runs; past it, another node may take the event over.
    pub lease_until: UnixMillis,
    /// The event's deadline: the record is forgotten then (a ring is never sent after it).
    pub deadline: UnixMillis,
    /// Every device has an outcome: the event is never taken over again.
    pub finished: bool,
    /// The devices whose push has an outcome (delivered, expired, refused...): a node that
    /// takes the event over does not push to them again.
    pub done: BTreeSet<String>,
}

/// What a node asks for when it claims an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTerms {
    /// The claiming node (shared with the node's configuration: a claim copies no string).
    pub node: Arc<str>,
    /// How long the lease runs from now, in milliseconds, unless renewed.
    pub lease_ms: u64,
    /// The event's deadline: the claim ends with it.
    pub deadline: UnixMillis,
    /// Whether a lapsed lease of another node proves that node gone, so the event may be
    /// taken over. A node that has just seen the store fail says no: leases lapse while the
    /// store is unreachable too, and their owners, alive, renew them as soon as it is back;
    /// taking their events over then would push again what they already delivered.
    pub may_take_over: bool,
}

/// How far an event got, as a duplicate is told.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The devices that already have an outcome, by device id.
    pub done: Vec<String>,
    /// Every device has an outcome.
    pub finished: bool,
}

/// The answer to a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The claiming node owns the event now and must push to every device not in `done`.
    Owned {
        /// The previous owner, when the event was taken over after its lease lapsed (or
        /// picked up again by the same node after a lost answer).
        taken_over_from: Option<String>,
        /// Devices that already have an outcome: not pushed to again.
        done: Vec<String>,
    },
    /// Another node's lease runs, or the event finished: a duplicate, nothing is sent.
    Held {
        /// The owner.
        owner: String,
        /// How far it got.
        progress: Progress,
    },
    /// Another node's lease lapsed before the event finished, and the claim could not take
    /// it over ([`LeaseTerms::may_take_over`]): ask again later. Nothing was written.
    Lapsed {
        /// The owner whose lease lapsed.
        owner: String,
    },
}

/// Whether a claim is still live at `now` (the record is forgotten at the deadline).
fn live(lease: &EventLease, now: UnixMillis) -> bool {
    lease.deadline > now
}

/// Claims an event: the new record to write (if any) and the answer.
///
/// - No live record: the node owns the event, with nothing done.
/// - A finished event, or another node's running lease: a duplicate.
/// - A lapsed lease of an unfinished event (or the node's own record, which only a lost
///   answer leaves behind: the router never asks twice for an event it is routing): taken
///   over, keeping the progress, the deadline and the record's devices; unless another
///   node's lease lapsed and the terms may not take over: [`Claim::Lapsed`], nothing
///   written.
pub fn acquire(
    current: Option<EventLease>,
    terms: &LeaseTerms,
    now: UnixMillis,
) -> (Claim, Option<EventLease>) {
    let lease_until = now.saturating_add(terms.lease_ms).min(terms.deadline);
    match current.filter(|lease| live(lease, now)) {
        None => (
            Claim::Owned {
                taken_over_from: None,
                done: Vec::new(),
            },
            Some(EventLease {
                owner: terms.node.to_string(),
                lease_until,
                deadline: terms.deadline,
                finished: false,
                done: BTreeSet::new(),
            }),
        ),
        Some(lease)
            if lease.finished || (lease.lease_until > now && *lease.owner != *terms.node) =>
        {
            let progress = Progress {
                done: lease.done.iter().cloned().collect(),
                finished: lease.finished,
            };
            (
                Claim::Held {
                    owner: lease.owner,
                    progress,
                },
                None,
            )
        }
        Some(lease) if !terms.may_take_over && *lease.owner != *terms.node => {
            (Claim::Lapsed { owner: lease.owner }, None)
        }
        Some(mut lease) => {
            let previous = std::mem::replace(&mut lease.owner, terms.node.to_string());
            lease.lease_until = now.saturating_add(terms.lease_ms).min(lease.deadline);
            let done = lease.done.iter().cloned().collect();
            (
                Claim::Owned {
                    taken_over_from: Some(previous),
                    done,
                },
                Some(lease),
            )
        }
    }
}

/// Renews `node`'s lease for `lease_ms` and records `outcomes` (devices whose push now has
/// an outcome). Returns whether `node` still owns the event, and the record to write.
///
/// Outcomes are recorded even when another node took the event over meanwhile: they are
/// true either way, and they spare the new owner a second push to those devices.
pub fn renew(
    current: Option<EventLease>,
    node: &str,
    outcomes: &[String],
    lease_ms: u64,
    now: UnixMillis,
) -> (bool, Option<EventLease>) {
    let Some(mut lease) = current.filter(|lease| live(lease, now)) else {
        return (false, None);
    };
    let owned = lease.owner == node;
    if owned {
        lease.lease_until = now.saturating_add(lease_ms).min(lease.deadline);
    }
    lease.done.extend(outcomes.iter().cloned());
    (owned, Some(lease))
}

/// Records the last `outcomes` and, when `node` still owns the event, marks it finished:
/// from then on every duplicate is answered as one, until the deadline.
pub fn finish(
    current: Option<EventLease>,
    node: &str,
    outcomes: &[String],
    now: UnixMillis,
) -> Option<EventLease> {
    let mut lease = current.filter(|lease| live(lease, now))?;
    lease.done.extend(outcomes.iter().cloned());
    if lease.owner == node {
        lease.finished = true;
    }
    Some(lease)
}

/// Whether `node` may delete the record: only its owner gives an unfinished event back (a
/// node whose lease lapsed must not delete the new owner's claim).
pub fn may_release(current: Option<&EventLease>, node: &str) -> bool {
    current.is_some_and(|lease| lease.owner == node && !lease.finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 3_000;

    fn terms(node: &str, deadline: UnixMillis) -> LeaseTerms {
        LeaseTerms {
            node: node.into(),
            lease_ms: LEASE,
            deadline,
            may_take_over: true,
        }
    }

    fn owned(claim: &Claim) -> Option<&[String]> {
        match claim {
            Claim::Owned { done, .. } => Some(done),
            Claim::Held { .. } | Claim::Lapsed { .. } => None,
        }
    }

    #[test]
    fn the_first_claim_owns_and_a_duplicate_sees_the_progress_while_the_owner_lives() {
        let (claim, record) = acquire(None, &terms("a", 45_000), 0);
        assert_eq!(owned(&claim), Some(&[][..]));
        let record = record.unwrap();
        assert_eq!((record.owner.as_str(), record.lease_until), ("a", LEASE));

        let (alive, record) = renew(Some(record), "a", &["phone".into()], LEASE, 1_000);
        assert!(alive);
        let record = record.unwrap();
        assert_eq!(record.lease_until, 1_000 + LEASE);

        let (claim, write) = acquire(Some(record.clone()), &terms("b", 50_000), 3_500);
        assert_eq!(
            claim,
            Claim::Held {
                owner: "a".into(),
                progress: Progress {
                    done: vec!["phone".into()],
                    finished: false
                }
            }
        );
        assert!(write.is_none(), "a duplicate changes nothing");
    }

    #[test]
    fn after_the_lease_lapsed_a_duplicate_takes_over_and_skips_the_devices_done() {
        let (_, record) = acquire(None, &terms("a", 45_000), 0);
        let (_, record) = renew(record, "a", &["phone".into()], LEASE, 500);
        // a died: no renewal after 500 ms; its lease runs until 3,500.
        let (claim, record) = acquire(record, &terms("b", 60_000), 3_501);
        assert_eq!(
            claim,
            Claim::Owned {
                taken_over_from: Some("a".into()),
                done: vec!["phone".into()]
            }
        );
        let record = record.unwrap();
        assert_eq!(record.owner, "b");
        assert_eq!(record.deadline, 45_000, "the event keeps its deadline");
        // The old owner, should it wake up, is told it lost the event; its outcomes count.
        let (alive, record) = renew(Some(record), "a", &["tablet".into()], LEASE, 3_600);
        assert!(!alive);
        let record = record.unwrap();
        assert_eq!(record.owner, "b");
        assert_eq!(record.lease_until, 3_501 + LEASE, "not renewed by a");
        assert!(record.done.contains("tablet"));
        // ...and may not delete b's claim.
        assert!(!may_release(Some(&record), "a"));
        assert!(may_release(Some(&record), "b"));
    }

    #[test]
    fn a_claim_that_may_not_take_over_leaves_a_lapsed_lease_to_its_owner() {
        let (_, record) = acquire(None, &terms("a", 45_000), 0);
        let (_, record) = renew(record, "a", &["phone".into()], LEASE, 500);
        // The store was unreachable here: a's lease lapsed, but a may be alive.
        let cautious = LeaseTerms {
            may_take_over: false,
            ..terms("b", 60_000)
        };
        let (claim, write) = acquire(record.clone(), &cautious, 3_501);
        assert_eq!(claim, Claim::Lapsed { owner: "a".into() });
        assert!(write.is_none(), "nothing written");
        // a renews once the store is back, and keeps its event.
        let (alive, record) = renew(record, "a", &["tablet".into()], LEASE, 3_600);
        assert!(alive);
        let (claim, _) = acquire(record.clone(), &cautious, 3_700);
        assert!(matches!(claim, Claim::Held { ref owner, .. } if owner == "a"));
        // The caution is about other nodes' leases only: a node's own record is its own.
        let (claim, _) = acquire(
            record,
            &LeaseTerms {
                may_take_over: false,
                ..terms("a", 60_000)
            },
            9_000,
        );
        assert!(matches!(claim, Claim::Owned { taken_over_from: Some(ref n), .. } if n == "a"));
    }

    #[test]
    fn a_finished_event_is_never_taken_over() {
        let (_, record) = acquire(None, &terms("a", 45_000), 0);
        let record = finish(record, "a", &["phone".into()], 100).unwrap();
        assert!(record.finished);
        let (claim, write) = acquire(Some(record.clone()), &terms("b", 90_000), 10_000);
        assert!(matches!(claim, Claim::Held { progress, .. } if progress.finished));
        assert!(write.is_none());
        assert!(
            !may_release(Some(&record), "a"),
            "finished: nothing to give back"
        );
        // Past the deadline the record is gone: a new event under that id rings.
        let (claim, _) = acquire(Some(record), &terms("b", 90_000), 45_000);
        assert_eq!(owned(&claim), Some(&[][..]));
    }

    #[test]
    fn a_node_that_lost_its_answer_picks_its_own_claim_up_again() {
        let (_, record) = acquire(None, &terms("a", 45_000), 0);
        let (claim, record) = acquire(record, &terms("a", 45_000), 10);
        assert!(matches!(claim, Claim::Owned { taken_over_from: Some(ref n), .. } if n == "a"));
        assert_eq!(record.unwrap().lease_until, 10 + LEASE);
    }

    #[test]
    fn a_finish_by_a_node_that_lost_the_lease_records_without_finishing() {
        let (_, record) = acquire(None, &terms("a", 45_000), 0);
        let (_, record) = acquire(record, &terms("b", 45_000), 4_000);
        let record = finish(record, "a", &["phone".into()], 4_100).unwrap();
        assert!(!record.finished);
        assert!(record.done.contains("phone"));
        assert!(
            renew(None, "a", &[], LEASE, 0).1.is_none(),
            "nothing to renew"
        );
    }

    #[test]
    fn a_lease_never_outlives_the_deadline() {
        let (_, record) = acquire(None, &terms("a", 1_000), 0);
        assert_eq!(record.unwrap().lease_until, 1_000);
    }
}
