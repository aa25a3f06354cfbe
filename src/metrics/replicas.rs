//! How many of the cluster's writes Redis replicas confirmed before the node went on
//! (`[cluster] replica_acks`; src/registry/redis/replicas.rs). Kept apart from the catalog so
//! the series read as one group, like the intake's.

use super::vocabulary::labels;
use metrics::{Unit, counter, describe_counter};

/// Cluster writes by kind and by whether enough replicas confirmed them in time.
pub const REPLICA_ACKS_TOTAL: &str = "ringcast_replica_acks_total";

labels! {
    /// Which write waited for replicas (`ringcast_replica_acks_total{write}`).
    ReplicatedWrite {
        /// A call event appended to the durable intake, before the API answers `202`.
        Intake => "intake",
        /// An event's lease taken (the claim that makes a duplicate `duplicate: true`).
        Claim => "claim",
        /// An event's lease renewed, with the devices that got an outcome since.
        Renew => "renew",
        /// An event finished, with its last outcomes.
        Finish => "finish",
    }
}

labels! {
    /// What the replicas answered (`ringcast_replica_acks_total{outcome}`).
    ReplicaAck {
        /// As many replicas as `replica_acks` confirmed the write within the timeout.
        Confirmed => "confirmed",
        /// Fewer did: the write stands on the master (and the replicas that did confirm)
        /// alone, and a failover now may lose it.
        Short => "short",
    }
}

/// Describes the series (the `# HELP` line).
pub fn describe() {
    describe_counter!(
        REPLICA_ACKS_TOTAL,
        Unit::Count,
        "Cluster writes ([cluster] replica_acks > 0) by write (intake, claim, renew, finish) and outcome: confirmed by enough replicas in time, or short."
    );
}

/// Registers every series at zero.
pub fn preregister() {
    for write in ReplicatedWrite::ALL {
        for outcome in ReplicaAck::ALL {
            counter!(REPLICA_ACKS_TOTAL, "write" => write.label(), "outcome" => outcome.label())
                .absolute(0);
        }
    }
}

/// One `write` waited for replicas, with `outcome`.
pub fn replica_ack(write: ReplicatedWrite, outcome: ReplicaAck) {
    counter!(REPLICA_ACKS_TOTAL, "write" => write.label(), "outcome" => outcome.label())
        .increment(1);
}
