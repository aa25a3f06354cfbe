//! The embedded store's instrument (src/registry/embedded.rs): how long each write
//! transaction held redb's single writer. Every claim of a ring waits for the writer, so a
//! long hold — a durable flush, a sweep slice — shows here before it shows in ring latency.

use super::vocabulary::labels;
use metrics::{Unit, describe_histogram, histogram};
use std::time::Duration;

/// Time a write transaction of the embedded store held its single writer.
pub const WRITE_SECONDS: &str = "ringcast_embedded_write_seconds";

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
        "Time a write transaction of the embedded store held its single writer (redb runs one at a time; the rings' claims wait behind it), by durability: lazy (no fsync) or fsync."
    );
}

/// Registers both series; called only when the node uses the embedded store.
pub fn preregister() {
    for durability in WriteDurability::ALL {
        let _ = histogram!(WRITE_SECONDS, "durability" => durability.label());
    }
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
