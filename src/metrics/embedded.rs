//! The embedded store's instruments (src/registry/embedded.rs): how long each write
//! transaction held redb's single writer (registrations wait behind it), and how many
//! call-event claims were answered from memory and wait for the file (they grow while the
//! writer is held: a long durable flush or a stalled disk shows in both).

use super::vocabulary::labels;
use metrics::{Unit, describe_gauge, describe_histogram, gauge, histogram};
use std::time::Duration;

/// Time a write transaction of the embedded store held its single writer.
pub const WRITE_SECONDS: &str = "ringcast_embedded_write_seconds";
/// Claim records answered and not yet committed to the file.
pub const CLAIMS_UNWRITTEN: &str = "ringcast_embedded_claims_unwritten";

labels! {
    /// How a write transaction of the embedded store committed
    /// (`ringcast_embedded_write_seconds{durability}`).
    WriteDurability {
        /// Without an fsync: the claims between two flushes, and the claims' sweep.
        Lazy => "lazy",
        /// With an fsync: registrations and revocations, and the claims' flush once a second.
        Fsync => "fsync",
    }
}

/// Describes the embedded store's metric (the `# HELP` line).
pub fn describe() {
    describe_histogram!(
        WRITE_SECONDS,
        Unit::Seconds,
        "Time a write transaction of the embedded store held its single writer (redb runs one at a time), by durability: lazy (no fsync) or fsync."
    );
    describe_gauge!(
        CLAIMS_UNWRITTEN,
        "Call-event claims the embedded store answered from memory and has not yet committed to its file (after each batch of them; at most 100000, beyond which claims are refused)."
    );
}

/// Registers both series; called only when the node uses the embedded store.
pub fn preregister() {
    for durability in WriteDurability::ALL {
        let _ = histogram!(WRITE_SECONDS, "durability" => durability.label());
    }
    claims_unwritten(0);
}

/// `unwritten` claim records wait for the file.
pub fn claims_unwritten(unwritten: usize) {
    gauge!(CLAIMS_UNWRITTEN).set(unwritten as f64);
}

/// A write transaction committed with `durability` after holding the writer for `held`.
pub fn write_held(durability: WriteDurability, held: Duration) {
    histogram!(WRITE_SECONDS, "durability" => durability.label()).record(held.as_secs_f64());
}

impl From<redb::Durability> for WriteDurability {
    fn from(durability: redb::Durability) -> Self {
        match durability {
            redb::Durability::Immediate => WriteDurability::Fsync,
            _ => WriteDurability::Lazy,
        }
    }
}
