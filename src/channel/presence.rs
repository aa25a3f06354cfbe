//! Presence: which node each channel device is connected to, in the store's Redis, so that a
//! ring routed on another node can reach it (docs/architecture.md, "The internal push
//! channel" → "Across nodes"; [`super::relay`] carries the ring there).
//!
//! # Key layout
//!
//! One sorted set per identity with a connected device, key `{<tenant>:<identity>}:channel`
//! (the identity hash's hash tag, so it lives on the identity's cluster slot). A member is
//! `<node id> <device id> <0|1>` (the last: the connection disabled rings), its score the
//! time the entry lapses (UNIX ms). Redis 7.0 has no per-field expiry, so the score stands in
//! for it: reads take only members scored after `now`, every write first drops the lapsed
//! ones, and the key's own TTL (set to `ttl` on every write) removes the set once no node
//! renews anything in it. Node ids are visible ASCII and device ids have no spaces (both
//! validated), so a space separates the parts.
//!
//! # Renewal
//!
//! A session writes its entry when it connects and again at every heartbeat (each ping, every
//! `[channel] ping_interval_ms`), and removes it when it ends. `[channel] presence_ttl_ms`
//! must outlast a ping interval with room for one late renewal: a node that dies stops
//! renewing, and its devices' entries lapse within that TTL; from then on the other nodes
//! send the platform push at once. Until then a ring offered to a dead node's device waits
//! `ack_timeout_ms` for an ack that does not come and then falls back, as for a device that
//! does not answer. Every node uses the same `presence_ttl_ms` (a write sets the key's TTL).
//!
//! Cost: one script per connect and per heartbeat (10,000 devices at 20 s pings: 500 a
//! second per node), one `ZRANGEBYSCORE` per ring (whatever the number of devices).

use crate::registry::redis::command::ScriptCall;
use crate::router::ends::EndChannel;
use crate::vocab::{IdentityKey, UnixMillis};
use std::sync::Arc;
use std::time::Duration;

/// How long one presence command may take: a ring must not wait long on presence, and a
/// missed renewal is made good at the next heartbeat.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// Writes an entry: drops the lapsed ones, the entry's other flag variant, adds it, and sets
/// the key's TTL. KEYS[1] the set; ARGV: now, lapses at, member, other member, TTL in ms.
const PUT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// A device connected to some node, as presence tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Present {
    /// The node the device is connected to.
    pub node: String,
    /// The device.
    pub device_id: String,
    /// Its connection disabled rings (`disable_internal_push_for_incoming_call=true`).
    pub rings_disabled: bool,
}

/// The presence key of an identity.
pub fn key(who: &IdentityKey) -> String {
    ["{", &who.tenant, ":", &who.identity, "}:channel"].concat()
}

/// The member naming `device_id` on `node` with the rings-disabled flag.
pub fn member(node: &str, device_id: &str, rings_disabled: bool) -> String {
    format!("{node} {device_id} {}", u8::from(rings_disabled))
}

/// Reads a member back; `None` for one this build did not write.
pub fn parse(member: &str) -> Option<Present> {
    let mut parts = member.split(' ');
    let (node, device_id, flag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || node.is_empty() || device_id.is_empty() {
        return None;
    }
    let rings_disabled = match flag {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    Some(Present {
        node: node.to_owned(),
        device_id: device_id.to_owned(),
        rings_disabled,
    })
}

/// This node's presence writer and reader. Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    /// This node's id, the first part of its members.
    node: Arc<str>,
    /// The store's Redis (the connection the call-end broadcasts use).
    redis: EndChannel,
    /// How long an entry lives unless renewed.
    ttl: Duration,
    script: Arc<redis::Script>,
}

impl Presence {
    /// Presence of `node`'s devices in `redis`, each entry living `ttl` unless renewed.
    pub fn new(node: Arc<str>, redis: EndChannel, ttl: Duration) -> Presence {
        Presence {
            node,
            redis,
            ttl,
            script: Arc::new(redis::Script::new(PUT)),
        }
    }

    /// The same presence over another connection to the same Redis.
    pub fn over(&self, redis: EndChannel) -> Presence {
        Presence {
            redis,
            ..self.clone()
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The Redis connection (the relay publishes on it too).
    pub fn redis(&self) -> &EndChannel {
        &self.redis
    }

    /// Writes (or renews) this node's entry for a connected device.
    pub async fn put(
        &self,
        who: &IdentityKey,
        device_id: &str,
        rings_disabled: bool,
        now: UnixMillis,
    ) -> Result<(), String> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = ScriptCall::new(&self.script, key(who));
        invocation
            .arg(now)
            .arg(now.saturating_add(ttl_ms))
            .arg(member(&self.node, device_id, rings_disabled))
            .arg(member(&self.node, device_id, !rings_disabled))
            .arg(ttl_ms.max(1));
        let _: i64 = bounded(self.redis.invoke(&invocation)).await?;
        Ok(())
    }

    /// Removes this node's entry for a device that disconnected.
    pub async fn remove(&self, who: &IdentityKey, device_id: &str) -> Result<(), String> {
        let mut command = redis::cmd("ZREM");
        command
            .arg(key(who))
            .arg(member(&self.node, device_id, false))
            .arg(member(&self.node, device_id, true));
        let _: i64 = self.query(&command).await?;
        Ok(())
    }

    /// The devices of `who` connected to any node at `now`.
    pub async fn of(&self, who: &IdentityKey, now: UnixMillis) -> Result<Vec<Present>, String> {
        let mut command = redis::cmd("ZRANGEBYSCORE");
        // `(now`: scores after now, not at it. Written by hand: one read per ring.
        let mut after = String::with_capacity(21);
        after.push('(');
        crate::decimal::push(&mut after, now, 1);
        command.arg(key(who)).arg(after).arg("+inf");
        let members: Vec<String> = self.query(&command).await?;
        Ok(members.iter().filter_map(|member| parse(member)).collect())
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, String> {
        bounded(self.redis.query(command)).await
    }
}

async fn bounded<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {COMMAND_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_reads_back_and_foreign_ones_are_skipped() {
        let written = member("node-a", "phone", true);
        assert_eq!(written, "node-a phone 1");
        assert_eq!(
            parse(&written),
            Some(Present {
                node: "node-a".into(),
                device_id: "phone".into(),
                rings_disabled: true,
            })
        );
        assert_eq!(
            parse("node-a phone 0").map(|p| p.rings_disabled),
            Some(false)
        );
        for foreign in [
            "",
            "node-a",
            "node-a phone",
            "node-a phone 2",
            "a b 0 extra",
        ] {
            assert_eq!(parse(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn an_identitys_presence_lives_on_its_slot() {
        assert_eq!(
            key(&IdentityKey::new("acme", "alice")),
            "{acme:alice}:channel"
        );
    }
}
