//! `[cluster]`: how this node shares call events with the other nodes over one store
//! (docs/architecture.md, "Cluster semantics"). Its own section, so the node's other settings stay as
//! they were.

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
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            lease_ms: 3_000,
            renew_ms: 1_000,
        }
    }
}

impl ClusterConfig {
    /// Everything wrong with the section.
    pub fn problems(&self) -> Vec<String> {
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
        assert!(ClusterConfig::default().problems().is_empty());
        let bad = ClusterConfig {
            node_id: "has space".into(),
            lease_ms: 50,
            renew_ms: 40,
        };
        assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
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
