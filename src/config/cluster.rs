//! `[cluster]`: how this node shares call events with the other nodes over one store
//! (docs/architecture.md, "Cluster semantics"). Its own section, so the node's other settings stay as
//! they were.

use crate::config::StoreKind;
use crate::registry::redis::replicas::ReplicaAcks;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How this node owns call events.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name in event leases, so another node can tell whose event it is. Empty
    /// (the default): `<hostname>-<pid>-<random>`, new at every start, so a restarted node
    /// never mistakes its predecessor's events for its own. 1-128 visible ASCII characters.
    pub node_id: String,
    /// How long an event's lease runs unless its owner renews it, in milliseconds: after a
    /// node dies, a duplicate of its unfinished event is taken over once this lapsed. Short
    /// enough for a ring to still ring (rings last 45 s by default), long enough that a
    /// stalled store answer does not hand a living node's event over.
    pub lease_ms: u64,
    /// How often an owner renews the leases of its events in flight, in milliseconds; well
    /// under `lease_ms` so that one lost renewal does not lose the event.
    pub renew_ms: u64,
    /// How many Redis replicas must confirm an event's claim, renewal and finish, and a
    /// durable intake entry, before the node goes on (`WAIT`; src/registry/redis/replicas.rs).
    /// 0 (the default) does not wait. 1 closes most of the window in which a master killed
    /// right after a write loses it, so that a retried event rings twice or an accepted one
    /// survives only in its node's memory; it costs a replication round trip per write.
    pub replica_acks: u32,
    /// The longest wait for those replicas, in milliseconds. A wait that runs out is counted
    /// (`ringcast_replica_acks_total{outcome="short"}`) and the event goes on: a slow replica
    /// must not stop calls. Under `registry.redis.command_timeout_ms`.
    pub replica_ack_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            lease_ms: 3_000,
            renew_ms: 1_000,
            replica_acks: 0,
            replica_ack_timeout_ms: 50,
        }
    }
}

impl ClusterConfig {
    /// Everything wrong with the section, for `store` and its command timeout.
    pub fn problems(&self, store: StoreKind, command_timeout_ms: u64) -> Vec<String> {
        let mut problems = Vec::new();
        let id = &self.node_id;
        if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push("cluster.node_id must be 1-128 visible ASCII characters".into());
        }
        if !(100..=60_000).contains(&self.lease_ms) {
            problems.push("cluster.lease_ms must be 100..=60000".into());
        }
        if self.renew_ms < 10 || self.renew_ms.saturating_mul(2) > self.lease_ms {
            problems
                .push("cluster.renew_ms must be at least 10 and at most half of lease_ms".into());
        }
        if self.replica_acks > 16 {
            problems.push("cluster.replica_acks must be 0..=16".into());
        }
        if self.replica_acks > 0 && store == StoreKind::Embedded {
            problems.push(
                "cluster.replica_acks needs a Redis store: the embedded store has no replicas"
                    .into(),
            );
        }
        if self.replica_ack_timeout_ms == 0 || self.replica_ack_timeout_ms >= command_timeout_ms {
            problems.push(format!(
                "cluster.replica_ack_timeout_ms must be 1 up to under \
                 registry.redis.command_timeout_ms ({command_timeout_ms})"
            ));
        }
        problems
    }

    /// The node id: the configured one, or `<hostname>-<pid>-<random>`.
    pub fn resolved_node_id(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|name| {
                name.trim()
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(64)
                    .collect::<String>()
            })
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "node".into());
        format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
    }

    /// The lease, as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// What the Redis store's event writes wait for.
    pub fn replica_acks(&self) -> ReplicaAcks {
        ReplicaAcks {
            replicas: self.replica_acks,
            timeout_ms: self.replica_ack_timeout_ms,
        }
    }

    /// The renewal period, as a duration.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis(self.renew_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_problem_is_reported() {
        let defaults = ClusterConfig::default();
        assert!(defaults.problems(StoreKind::Embedded, 1_000).is_empty());
        let bad = ClusterConfig {
            node_id: "has space".into(),
            lease_ms: 50,
            renew_ms: 40,
            replica_acks: 17,
            replica_ack_timeout_ms: 1_000,
        };
        let problems = bad.problems(StoreKind::Redis, 1_000);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("command_timeout_ms (1000)"))
        );
    }

    #[test]
    fn waiting_for_replicas_needs_a_store_with_replicas() {
        let waiting = ClusterConfig {
            replica_acks: 1,
            ..ClusterConfig::default()
        };
        assert!(waiting.problems(StoreKind::RedisCluster, 1_000).is_empty());
        let problems = waiting.problems(StoreKind::Embedded, 1_000);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("embedded store has no replicas"));
        assert_eq!(
            waiting.replica_acks(),
            ReplicaAcks {
                replicas: 1,
                timeout_ms: 50
            }
        );
    }

    #[test]
    fn a_node_id_is_made_when_none_is_configured() {
        let config = ClusterConfig::default();
        let (one, two) = (config.resolved_node_id(), config.resolved_node_id());
        assert_ne!(one, two, "random per start");
        assert!(one.contains(&format!("-{}-", std::process::id())));
        let named = ClusterConfig {
            node_id: "node-a".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(named.resolved_node_id(), "node-a");
    }
}
