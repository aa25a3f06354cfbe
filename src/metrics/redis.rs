//! The instruments of ringcast's own Redis connection (src/registry/redis/pipelined.rs, the
//! default client of the single-server and Sentinel stores): its bounded queue of commands
//! waiting for replies, what that bound refused, and why connections ended. The crate's
//! connections (the cluster store, `client = "redis-rs"`) report none of these.

use super::hot::Handles;
use super::vocabulary::labels;
use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};

/// Commands sent on the node's own Redis connections and not yet answered.
pub const COMMANDS_WAITING: &str = "ringcast_redis_commands_waiting";
/// Commands refused unsent: their connection had its most commands waiting.
pub const COMMANDS_REFUSED_TOTAL: &str = "ringcast_redis_commands_refused_total";
/// Own Redis connections that ended, by why.
pub const CONNECTIONS_ENDED_TOTAL: &str = "ringcast_redis_connections_ended_total";

labels! {
    /// Why an own Redis connection ended (`ringcast_redis_connections_ended_total{reason}`).
    ConnectionEnd {
        /// The server closed it.
        Closed => "closed",
        /// Reading or writing failed.
        Io => "io",
        /// The server sent what is not a RESP2 reply, or a reply no command asked for.
        Protocol => "protocol",
        /// Commands waited a whole command timeout and no reply came.
        Stalled => "stalled",
    }
}

/// Describes the connection's metrics (the `# HELP` lines).
pub fn describe() {
    describe_gauge!(
        COMMANDS_WAITING,
        Unit::Count,
        "Commands sent on this node's own Redis connections and not yet answered, summed over its connections (each holds at most 16384, then refuses), as each connection's task last saw them."
    );
    describe_counter!(
        COMMANDS_REFUSED_TOTAL,
        Unit::Count,
        "Redis commands refused unsent (the store answers 503) because their connection had 16384 commands waiting."
    );
    describe_counter!(
        CONNECTIONS_ENDED_TOTAL,
        Unit::Count,
        "This node's own Redis connections that ended, by reason: closed (by the server), io, protocol, stalled (commands waited a command timeout with no reply)."
    );
}

/// Registers every series at zero; called when the node opens its first own connection, so
/// a node on the cluster store or the crate's client shows none. Idempotent: later calls add
/// nothing.
pub fn preregister() {
    gauge!(COMMANDS_WAITING).increment(0.0);
    counter!(COMMANDS_REFUSED_TOTAL).increment(0);
    for reason in ConnectionEnd::ALL {
        counter!(CONNECTIONS_ENDED_TOTAL, "reason" => reason.label()).increment(0);
    }
}

/// The commands waiting on one connection changed by `delta` since its task last reported.
pub fn commands_waiting(delta: i64) {
    static WAITING: Handles<Gauge, 1> = Handles::new();
    WAITING.with(
        0,
        || gauge!(COMMANDS_WAITING),
        |gauge| gauge.increment(delta as f64),
    );
}

/// A command was refused unsent: its connection was full.
pub fn command_refused() {
    static REFUSED: Handles<Counter, 1> = Handles::new();
    REFUSED.with(
        0,
        || counter!(COMMANDS_REFUSED_TOTAL),
        |counter| counter.increment(1),
    );
}

/// A connection ended for `reason`.
pub fn connection_ended(reason: ConnectionEnd) {
    counter!(CONNECTIONS_ENDED_TOTAL, "reason" => reason.label()).increment(1);
}
