//! `[intake]`: durable intake of call events on Redis Streams (README "Cluster", "Durable
//! intake"; src/router/intake.rs).
//!
//! With `durable = true` an accepted event is appended to a Redis Stream before the API
//! answers, and stays there, pending, until every device has an outcome; a node that dies
//! with events in flight leaves them to the others. It needs a Redis store: the embedded
//! store serves one node, which has nobody to leave its events to, so `durable = true` with
//! it is a configuration error rather than a setting silently ignored.

use super::StoreKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Streams on a Redis Cluster when `streams = 0`: enough that every master of a cluster of
/// up to a dozen masters carries some (each stream covers 1/16 of the slots).
pub const CLUSTER_STREAMS: u32 = 16;

/// How call events are taken in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Append every call event to a Redis Stream before answering `202`, so that another
    /// node delivers it if this one dies (default false: the lease alone, and call control's
    /// retry, carry an event over a node's death).
    pub durable: bool,
    /// The streams' name: their keys are `{<name>:intake:<i>...}`. Deployments sharing one
    /// Redis need names of their own (each reads every entry of its streams). 1-64 visible
    /// ASCII characters, no `{` or `}`.
    pub name: String,
    /// How many streams (0 = automatic: 1 on one server or Sentinel, 16 on a Redis Cluster).
    /// On a cluster each stream's key is placed in its own slot range, so every master
    /// carries intake; an event's stream is picked by a hash of its event id. Changing it
    /// leaves the entries of the former streams to be finished by nobody: change it on an
    /// idle cluster.
    pub streams: u32,
    /// The most entries each stream keeps (`XADD MAXLEN ~`, approximate). Must exceed the
    /// entries still pending at peak: about the peak rate ÷ `streams` × the time an event
    /// stays in flight (seconds for most, a ring's timeout at worst). An entry trimmed while
    /// pending is lost to a takeover and counted (`outcome="trimmed"`).
    pub max_len: u64,
    /// The most entries one read or claim returns.
    pub read_batch: usize,
    /// How long a read waits for new entries, in milliseconds (`XREADGROUP BLOCK`); also how
    /// late a stopping node notices it should stop reading.
    pub block_ms: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            durable: false,
            name: "ringcast".into(),
            streams: 0,
            max_len: 100_000,
            read_batch: 64,
            block_ms: 1_000,
        }
    }
}

impl IntakeConfig {
    /// Everything wrong with the section for `store`.
    pub fn problems(&self, store: StoreKind) -> Vec<String> {
        let mut problems = Vec::new();
        if self.durable && store == StoreKind::Embedded {
            problems.push(
                "intake.durable = true needs a Redis store (registry.store = \"redis\", \
                 \"redis-cluster\" or \"redis-sentinel\"): the embedded store serves one node, \
                 which has no other node to leave its events to"
                    .into(),
            );
        }
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
        {
            problems
                .push("intake.name must be 1-64 visible ASCII characters without { or }".into());
        }
        if self.streams > 1_024 {
            problems.push("intake.streams must be 0 (automatic) to 1024".into());
        }
        if !(1_000..=100_000_000).contains(&self.max_len) {
            problems.push("intake.max_len must be 1000..=100000000".into());
        }
        if !(1..=1_024).contains(&self.read_batch) {
            problems.push("intake.read_batch must be 1..=1024".into());
        }
        if !(10..=60_000).contains(&self.block_ms) {
            problems.push("intake.block_ms must be 10..=60000".into());
        }
        problems
    }

    /// The number of streams in effect for `store`.
    pub fn stream_count(&self, store: StoreKind) -> u32 {
        match (self.streams, store) {
            (0, StoreKind::RedisCluster) => CLUSTER_STREAMS,
            (0, _) => 1,
            (n, _) => n,
        }
    }

    /// [`IntakeConfig::block_ms`] as a duration.
    pub fn block(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_problem_is_reported() {
        assert!(
            IntakeConfig::default()
                .problems(StoreKind::Embedded)
                .is_empty()
        );
        let bad = IntakeConfig {
            durable: true,
            name: "{x}".into(),
            streams: 5_000,
            max_len: 10,
            read_batch: 0,
            block_ms: 0,
        };
        assert_eq!(bad.problems(StoreKind::Embedded).len(), 6);
        assert_eq!(bad.problems(StoreKind::Redis).len(), 5, "Redis is fine");
    }

    #[test]
    fn durable_with_the_embedded_store_says_why_it_is_refused() {
        let durable = IntakeConfig {
            durable: true,
            ..IntakeConfig::default()
        };
        let problems = durable.problems(StoreKind::Embedded);
        assert!(problems[0].contains("needs a Redis store"), "{problems:?}");
        assert!(durable.problems(StoreKind::RedisSentinel).is_empty());
    }

    #[test]
    fn automatic_stream_count_spreads_over_a_cluster_only() {
        let auto = IntakeConfig::default();
        assert_eq!(auto.stream_count(StoreKind::Redis), 1);
        assert_eq!(auto.stream_count(StoreKind::RedisSentinel), 1);
        assert_eq!(auto.stream_count(StoreKind::RedisCluster), CLUSTER_STREAMS);
        let four = IntakeConfig { streams: 4, ..auto };
        assert_eq!(four.stream_count(StoreKind::Redis), 4);
    }
}
