//! `[channel]`: the internal push channel, `GET /v1/channel` (docs/architecture.md, "Internal push
//! channel"). Its own section, so the node's other settings stay as they were.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the node keeps its WebSocket clients and how long a ring waits for their ack.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelConfig {
    /// How long a ring offered over the channel waits for the device's ack before its
    /// platform push is sent after all, in milliseconds. Short: the phone of a device that
    /// does not ack rings that much later.
    pub ack_timeout_ms: u64,
    /// How often the node pings each client, in milliseconds (20 s: under the idle timeouts
    /// of common NATs and proxies, so the connection stays open). A connection's first ping
    /// comes at a random moment within its first interval (`channel::session`).
    pub ping_interval_ms: u64,
    /// A client that sent nothing (not even a pong) for this long is closed, in
    /// milliseconds: its phone is gone, and a ring must not wait for its ack.
    pub idle_timeout_ms: u64,
    /// Frames waiting to be written to one client; a client that lets this many pile up is
    /// closed (and counted) rather than holding memory and delaying its rings.
    pub send_queue: usize,
    /// The largest frame a client may send, in bytes (an ack is under 200).
    pub max_frame_bytes: usize,
    /// With a Redis store: how long a device's presence (which node it is connected to) lives
    /// unless its connection's heartbeat (every `ping_interval_ms`) renews it, in
    /// milliseconds. When a node dies, rings for its devices wait for an ack that cannot come
    /// until this lapsed, then go to the platform push at once. Every node must use the same
    /// value. More than `ping_interval_ms`, so one late heartbeat does not hide a device.
    pub presence_ttl_ms: u64,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            ack_timeout_ms: 500,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            send_queue: 32,
            max_frame_bytes: 4096,
            presence_ttl_ms: 45_000,
        }
    }
}

impl ChannelConfig {
    /// Everything wrong with the section.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(10..=10_000).contains(&self.ack_timeout_ms) {
            problems.push("channel.ack_timeout_ms must be 10..=10000".into());
        }
        if !(100..=300_000).contains(&self.ping_interval_ms) {
            problems.push("channel.ping_interval_ms must be 100..=300000".into());
        }
        if self.idle_timeout_ms <= self.ping_interval_ms {
            problems.push("channel.idle_timeout_ms must be more than ping_interval_ms".into());
        }
        if !(1..=4096).contains(&self.send_queue) {
            problems.push("channel.send_queue must be 1..=4096".into());
        }
        if !(256..=65_536).contains(&self.max_frame_bytes) {
            problems.push("channel.max_frame_bytes must be 256..=65536".into());
        }
        if self.presence_ttl_ms <= self.ping_interval_ms || self.presence_ttl_ms > 3_600_000 {
            problems.push(
                "channel.presence_ttl_ms must be more than ping_interval_ms and at most 3600000"
                    .into(),
            );
        }
        problems
    }

    /// The ack timeout, as a duration.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }

    /// The ping period, as a duration.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// The presence TTL, as a duration.
    pub fn presence_ttl(&self) -> Duration {
        Duration::from_millis(self.presence_ttl_ms)
    }

    /// The idle timeout, as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_all_reported() {
        assert!(ChannelConfig::default().problems().is_empty());
        let bad = ChannelConfig {
            ack_timeout_ms: 0,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 1_000,
            send_queue: 0,
            max_frame_bytes: 1,
            presence_ttl_ms: 20_000,
        };
        assert_eq!(bad.problems().len(), 5);
    }
}
