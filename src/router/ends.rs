//! End events reach every node (docs/architecture.md, "Cluster semantics"): a call's end handled on one
//! node withdraws the rings of that call still queued on any node.
//!
//! The node that routes an end withdraws its own queued rings, then publishes an
//! [`EndNotice`] on the Redis channel [`CHANNEL`]; every node listens on it and withdraws its
//! queued rings of that callee's call. The end event itself is claimed like any event (see
//! [`super::ownership`]), so its "call ended" fan-out happens once, on one node.
//!
//! Why pub/sub: it costs one `PUBLISH` per end event and nothing per ring. The other ways
//! cost every ring: a per-call "ended" marker read before each ring push adds one store
//! round trip to every push on the hot path, and routing the end to the ring's owner needs
//! every node's address in the store. On a Redis Cluster a `PUBLISH` reaches the subscribers
//! of every node, so a node listens on any one of them. Pub/sub is at-most-once: a node that
//! is reconnecting misses a notice, and its queued ring then goes out (the device gets the
//! "call ended" push after it, as a ring already sent does).
//!
//! The node that handled the end does not learn which devices other nodes withdrew, so those
//! devices still get the "call ended" notice (on APNs only where the app registered its
//! regular token); a phone that never rang ignores the end of a call it does not know.

use super::Routers;
use crate::config::{RegistryConfig, StoreKind};
use crate::metrics::{self, EndBroadcast};
use crate::registry::IdentityKey;
use futures_util::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The channel every node listens on.
pub const CHANNEL: &str = "ringcast:call-ends";

/// How long a publish may take before the end is answered without it.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a listener waits before reconnecting.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// What a node tells the others when a call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndNotice {
    /// The node that routed the end (it withdrew its own rings already).
    pub node: String,
    /// The callee's tenant.
    pub tenant: String,
    /// The callee.
    pub identity: String,
    /// The call.
    pub call_id: String,
}

/// Where ends are published: the store's Redis.
#[derive(Clone)]
pub enum EndChannel {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster (a `PUBLISH` on any node reaches every node's subscribers).
    Cluster(redis::cluster_async::ClusterConnection),
}

impl EndChannel {
    /// Connects to the store's Redis; `None` for the embedded store (one node alone).
    pub async fn connect(registry: &RegistryConfig) -> anyhow::Result<Option<EndChannel>> {
        let timeout = Duration::from_millis(registry.redis.connect_timeout_ms) * 2;
        let connecting = async {
            Ok::<_, redis::RedisError>(match registry.store {
                StoreKind::Embedded => None,
                StoreKind::Redis => {
                    let client = redis::Client::open(registry.redis.url.as_str())?;
                    Some(EndChannel::Single(ConnectionManager::new(client).await?))
                }
                StoreKind::RedisCluster => {
                    let nodes = registry.redis.nodes.iter().map(String::as_str);
                    let client = redis::cluster::ClusterClientBuilder::new(nodes).build()?;
                    Some(EndChannel::Cluster(client.get_async_connection().await?))
                }
            })
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(channel) => Ok(channel?),
            Err(_) => anyhow::bail!("no answer from Redis within {timeout:?}"),
        }
    }

    /// The servers a listener may subscribe on.
    pub fn listen_urls(registry: &RegistryConfig) -> Vec<String> {
        match registry.store {
            StoreKind::Embedded => Vec::new(),
            StoreKind::Redis => vec![registry.redis.url.clone()],
            StoreKind::RedisCluster => registry.redis.nodes.clone(),
        }
    }

    /// Publishes `notice`; a failure is counted and logged, never returned: the end was
    /// routed here, only other nodes' queued rings may go out.
    pub async fn publish(&self, notice: &EndNotice) {
        let Ok(payload) = serde_json::to_string(notice) else {
            return;
        };
        let mut command = redis::cmd("PUBLISH");
        command.arg(CHANNEL).arg(payload);
        let published = match self.clone() {
            EndChannel::Single(mut connection) => send(&mut connection, &command).await,
            EndChannel::Cluster(mut connection) => send(&mut connection, &command).await,
        };
        match published {
            Ok(()) => metrics::end_broadcast(EndBroadcast::Published),
            Err(error) => {
                metrics::end_broadcast(EndBroadcast::Failed);
                tracing::warn!(%error, "could not tell the other nodes that a call ended");
            }
        }
    }
}

async fn send(connection: &mut impl ConnectionLike, command: &redis::Cmd) -> Result<(), String> {
    match tokio::time::timeout(PUBLISH_TIMEOUT, command.query_async::<i64>(connection)).await {
        Ok(Ok(_receivers)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {PUBLISH_TIMEOUT:?}")),
    }
}

/// Listens for other nodes' ends on the Redis servers at `urls` (any one of them; the next
/// when one fails) and withdraws this node's queued rings of each, until the task is aborted.
pub fn spawn_listener(
    urls: Vec<String>,
    node: Arc<str>,
    routers: Routers,
) -> tokio::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut next = 0;
        loop {
            let Some(url) = urls.get(next % urls.len().max(1)) else {
                return;
            };
            next += 1;
            if let Err(error) = listen(url, &node, &routers).await {
                tracing::warn!(%error, "call-end listener lost its Redis connection; reconnecting");
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    })
}

/// Listens on one server until its connection fails.
async fn listen(url: &str, node: &str, routers: &Routers) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    let mut messages = pubsub.into_on_message();
    while let Some(message) = messages.next().await {
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        let Ok(notice) = serde_json::from_str::<EndNotice>(&payload) else {
            tracing::warn!("ignored a malformed call-end notice");
            continue;
        };
        if notice.node == node {
            continue;
        }
        metrics::end_broadcast(EndBroadcast::Received);
        let callee = IdentityKey::new(notice.tenant, notice.identity);
        routers.withdraw(callee, notice.call_id).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_small_json() {
        let notice = EndNotice {
            node: "node-a".into(),
            tenant: "acme".into(),
            identity: "alice".into(),
            call_id: "c-1".into(),
        };
        let text = serde_json::to_string(&notice).unwrap();
        assert_eq!(
            text,
            r#"{"node":"node-a","tenant":"acme","identity":"alice","call_id":"c-1"}"#
        );
        assert_eq!(serde_json::from_str::<EndNotice>(&text).unwrap(), notice);
    }
}
