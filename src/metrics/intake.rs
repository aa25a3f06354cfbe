//! The durable intake's instruments (src/router/intake.rs; README "Durable intake"): what
//! became of stream entries, and how many are pending. Kept apart from the catalog so that
//! the intake's series read as one group.

use super::vocabulary::labels;
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

/// Intake stream entries by what became of them.
pub const ENTRIES_TOTAL: &str = "ringcast_intake_entries_total";
/// Devices' outcomes appended to the outcome stream, or not (src/router/outcomes.rs).
pub const OUTCOME_STREAM_TOTAL: &str = "ringcast_outcome_stream_total";
/// Entries delivered to a node and not yet acknowledged, per stream, as this node last read
/// it (every node reads the same streams: take the max across nodes, not the sum).
pub const PENDING: &str = "ringcast_intake_pending";

labels! {
    /// What became of an intake stream entry (`ringcast_intake_entries_total{outcome}`).
    EntryOutcome {
        /// The API appended an event (before answering `202`).
        Appended => "appended",
        /// Appending failed: the API answered `503`, nothing was rung.
        AppendFailed => "append_failed",
        /// A new entry another producer appended reached this node's reader.
        Read => "read",
        /// This node claimed an entry left idle (a dead or slow node's) for a lease.
        Claimed => "claimed",
        /// Acknowledged: every device of the event has an outcome.
        Acked => "acked",
        /// Acknowledged without ringing: past its deadline.
        Expired => "expired",
        /// Acknowledged without ringing: a duplicate of an event that has its own entry or
        /// finished.
        Duplicate => "duplicate",
        /// Acknowledged without ringing: the API answered `503` and call control retries.
        Refused => "refused",
        /// Left pending for a later claim: the node could not route it now (overloaded,
        /// store error) or its owner still has it in flight.
        Deferred => "deferred",
        /// Acknowledged without ringing: not an entry this version can read.
        Malformed => "malformed",
        /// Trimmed from its stream (`intake.max_len`) while still pending: lost to a takeover.
        Trimmed => "trimmed",
        /// An acknowledgement failed in Redis: the entry is claimed again after a lease.
        AckFailed => "ack_failed",
    }
}

/// Describes the intake's metrics (the `# HELP` lines).
pub fn describe() {
    describe_counter!(
        ENTRIES_TOTAL,
        Unit::Count,
        "Durable intake stream entries by outcome: appended, append_failed, read, claimed, acked, expired, duplicate, refused, deferred, malformed, trimmed, ack_failed."
    );
    describe_counter!(
        OUTCOME_STREAM_TOTAL,
        Unit::Count,
        "Devices' outcomes appended to the tenant's outcome stream ([outcomes] stream = true), or failed to."
    );
    describe_gauge!(
        PENDING,
        Unit::Count,
        "Durable intake entries delivered and not yet acknowledged, per stream, as this node last read it (the same on every node: take the max, not the sum)."
    );
}

/// Registers every intake series at zero.
pub fn preregister() {
    for outcome in ["appended", "failed"] {
        counter!(OUTCOME_STREAM_TOTAL, "outcome" => outcome).absolute(0);
    }
    for outcome in EntryOutcome::ALL {
        counter!(ENTRIES_TOTAL, "outcome" => outcome.label()).absolute(0);
    }
}

/// `count` entries had `outcome`.
pub fn entries(outcome: EntryOutcome, count: u64) {
    counter!(ENTRIES_TOTAL, "outcome" => outcome.label()).increment(count);
}

/// Stream `stream` had `pending` entries pending when this node last looked.
pub fn pending(stream: usize, pending: u64) {
    gauge!(PENDING, "stream" => stream.to_string()).set(pending as f64);
}

/// A device's outcome was appended to the outcome stream (`true`) or could not be.
pub fn outcome_stream(appended: bool) {
    let outcome = if appended { "appended" } else { "failed" };
    counter!(OUTCOME_STREAM_TOTAL, "outcome" => outcome).increment(1);
}
