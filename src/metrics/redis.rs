//! The instruments of ringcast's own Redis connection (src/registry/redis/pipelined.rs, the
//! default client of every Redis store): its bounded queue of commands waiting for replies,
//! what that bound refused, and why connections ended; over a cluster
//! (src/registry/redis/cluster.rs), the redirections it followed and its readings of the slot
//! map. The crate's connections (`client = "redis-rs"`) report none of these.

use super::hot::Handles;
use super::vocabulary::labels;
use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};

/// Commands sent on the node's own Redis connections and not yet answered.
pub const COMMANDS_WAITING: &str = "ringcast_redis_commands_waiting";
/// Commands refused unsent: their connection had its most commands waiting.
pub const COMMANDS_REFUSED_TOTAL: &str = "ringcast_redis_commands_refused_total";
/// Own Redis connections that ended, by why.
pub const CONNECTIONS_ENDED_TOTAL: &str = "ringcast_redis_connections_ended_total";
/// Commands a Redis Cluster redirected, by kind of redirection.
pub const CLUSTER_REDIRECTIONS_TOTAL: &str = "ringcast_redis_cluster_redirections_total";
/// Readings of a Redis Cluster's slot map, by outcome.
pub const CLUSTER_MAP_READS_TOTAL: &str = "ringcast_redis_cluster_map_reads_total";

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

labels! {
    /// How a Redis Cluster redirected a command
    /// (`ringcast_redis_cluster_redirections_total{kind}`).
    Redirection {
        /// `MOVED`: the slot has another master; the map is read again.
        Moved => "moved",
        /// `ASK`: the slot is moving and the key has left; sent once to the node named.
        Ask => "ask",
    }
}

labels! {
    /// How a reading of a Redis Cluster's slot map went
    /// (`ringcast_redis_cluster_map_reads_total{outcome}`).
    MapRead {
        /// A node answered `CLUSTER SLOTS`.
        Read => "read",
        /// No node answered: callers keep the map they had.
        Failed => "failed",
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
    describe_counter!(
        CLUSTER_REDIRECTIONS_TOTAL,
        Unit::Count,
        "Commands the Redis Cluster redirected to another node, by kind: moved (the slot has another master: a failover or a finished resharding), ask (the slot is moving). Own cluster connection only."
    );
    describe_counter!(
        CLUSTER_MAP_READS_TOTAL,
        Unit::Count,
        "Readings of the Redis Cluster's slot map (CLUSTER SLOTS) by outcome: read, failed (no node answered). Own cluster connection only; each follows a MOVED or a master out of reach."
    );
}

/// Registers every series at zero; called when the node opens its first own connection, so
/// a node on the crate's client shows none. Idempotent: later calls add
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

/// Registers the cluster connection's series at zero; called when an own cluster connection
/// opens. Idempotent.
pub fn preregister_cluster() {
    for kind in Redirection::ALL {
        counter!(CLUSTER_REDIRECTIONS_TOTAL, "kind" => kind.label()).increment(0);
    }
    for outcome in MapRead::ALL {
        counter!(CLUSTER_MAP_READS_TOTAL, "outcome" => outcome.label()).increment(0);
    }
}

/// A Redis Cluster redirected a command.
pub fn cluster_redirected(kind: Redirection) {
    counter!(CLUSTER_REDIRECTIONS_TOTAL, "kind" => kind.label()).increment(1);
}

/// The cluster's slot map was read, or no node answered.
pub fn cluster_map_read(outcome: MapRead) {
    counter!(CLUSTER_MAP_READS_TOTAL, "outcome" => outcome.label()).increment(1);
}
