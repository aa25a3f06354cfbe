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
use crate::registry::AnyStore;
use crate::registry::redis::command::{ScriptCall, query};
use crate::registry::redis::sentinel::{self, MasterLogin, SentinelConnection, SentinelTarget};
use crate::registry::redis::{
    ClusterConnection, EitherClient, RedisClient, SingleConnection, cluster_client, tls,
};
use crate::vocab::IdentityKey;
use futures_util::StreamExt;
use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The channel every node listens on.
pub const CHANNEL: &str = "ringcast:call-ends";

/// How long a publish may take: an end is then answered without it, a relayed channel frame
/// counts as not relayed.
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
    Single(SingleConnection),
    /// A Redis Cluster (a `PUBLISH` on any node reaches every node's subscribers).
    Cluster(ClusterConnection),
    /// The master Redis Sentinel names; every node subscribes on the master too.
    Sentinel(SentinelConnection),
}

impl EndChannel {
    /// Connects to the store's Redis; `None` for the embedded store (one node alone).
    pub async fn connect(registry: &RegistryConfig) -> anyhow::Result<Option<EndChannel>> {
        Self::connect_answering_within(registry, PUBLISH_TIMEOUT).await
    }

    /// [`EndChannel::connect`] for commands whose answers may take `response_timeout` (a
    /// blocking stream read takes as long as it blocks).
    pub async fn connect_answering_within(
        registry: &RegistryConfig,
        response_timeout: Duration,
    ) -> anyhow::Result<Option<EndChannel>> {
        let Some(source) = EndSource::from_config(registry)? else {
            return Ok(None);
        };
        let connect_timeout = Duration::from_millis(registry.redis.connect_timeout_ms);
        let timeout = connect_timeout * 2;
        let connecting = async {
            Ok::<_, anyhow::Error>(match &source {
                EndSource::Servers { urls, certificates } if registry.store == StoreKind::Redis => {
                    let url = urls.first().map_or("", String::as_str);
                    let client = tls::client(url, certificates.as_ref())?;
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(connect_timeout))
                        .set_response_timeout(Some(response_timeout));
                    let connection = ConnectionManager::new_with_config(client, config).await?;
                    EndChannel::Single(SingleConnection::Crate(connection))
                }
                EndSource::Servers { urls, certificates } => {
                    let client = cluster_client(urls, certificates.as_ref())?
                        .connection_timeout(connect_timeout)
                        .response_timeout(response_timeout)
                        .build()?;
                    // The crate's client, as for one server: blocking reads (see below).
                    EndChannel::Cluster(EitherClient::Crate(client.get_async_connection().await?))
                }
                EndSource::Sentinel {
                    sentinels,
                    master,
                    certificates,
                    login,
                } => {
                    let target = SentinelTarget {
                        sentinels,
                        master,
                        certificates: certificates.as_ref(),
                        login,
                    };
                    // The crate's client, as for one server above: these connections carry
                    // blocking reads, which would hold every command behind them on the own
                    // pipelined one.
                    let connection = SentinelConnection::connect(
                        &target,
                        RedisClient::RedisRs,
                        connect_timeout,
                        response_timeout,
                    )
                    .await?;
                    EndChannel::Sentinel(connection)
                }
            })
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(channel) => Ok(Some(channel?)),
            Err(_) => anyhow::bail!("no answer from Redis within {timeout:?}"),
        }
    }

    /// The store's own connection (a clone of its handle, no new connection): `None` for the
    /// embedded store. A router's presence reads, relays, broadcasts, intake and outcome
    /// entries go over it, so that the commands a ring sends at one moment — its claim, the
    /// callee's registrations and presence — leave in one write and come back in one read.
    pub fn of_store(store: &AnyStore) -> Option<EndChannel> {
        Some(match store {
            AnyStore::Embedded(_) => return None,
            AnyStore::Redis(store) => EndChannel::Single(store.connection()),
            AnyStore::RedisCluster(store) => EndChannel::Cluster(store.connection()),
            AnyStore::RedisSentinel(store) => EndChannel::Sentinel(store.connection()),
        })
    }

    /// Publishes `notice`; a failure is counted and logged, never returned: the end was
    /// routed here, only other nodes' queued rings may go out.
    pub async fn publish(&self, notice: &EndNotice) {
        let Ok(payload) = serde_json::to_string(notice) else {
            return;
        };
        let mut command = redis::cmd("PUBLISH");
        command.arg(CHANNEL).arg(payload);
        match self.send(&command).await {
            Ok(()) => metrics::end_broadcast(EndBroadcast::Published),
            Err(error) => {
                metrics::end_broadcast(EndBroadcast::Failed);
                tracing::warn!(%error, "could not tell the other nodes that a call ended");
            }
        }
    }
}

impl EndChannel {
    /// Runs `command` on the store's Redis. The channel's presence and relay share this
    /// connection with the call-end broadcasts.
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> RedisResult<T> {
        match self.clone() {
            EndChannel::Single(mut connection) => query(&mut connection, command).await,
            EndChannel::Cluster(mut connection) => query(&mut connection, command).await,
            EndChannel::Sentinel(mut connection) => query(&mut connection, command).await,
        }
    }

    /// Runs a Lua script on the store's Redis (`EVALSHA`, loading it when the server lacks it).
    pub async fn invoke<T: redis::FromRedisValue>(&self, call: &ScriptCall<'_>) -> RedisResult<T> {
        match self.clone() {
            EndChannel::Single(mut connection) => call.run(&mut connection).await,
            EndChannel::Cluster(mut connection) => call.run(&mut connection).await,
            EndChannel::Sentinel(mut connection) => call.run(&mut connection).await,
        }
    }

    /// Sends a `PUBLISH` within [`PUBLISH_TIMEOUT`].
    pub async fn send(&self, command: &redis::Cmd) -> Result<(), String> {
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.query::<i64>(command)).await {
            Ok(Ok(_receivers)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {PUBLISH_TIMEOUT:?}")),
        }
    }
}

/// Where a listener subscribes: any one of the store's servers, or the master the Sentinels
/// name when it (re)connects.
#[derive(Clone)]
pub enum EndSource {
    /// One server (`store = "redis"`) or the cluster's nodes, tried in turn.
    Servers {
        /// The URLs.
        urls: Vec<String>,
        /// TLS files for `rediss://`.
        certificates: Option<redis::TlsCertificates>,
    },
    /// Redis Sentinel (`store = "redis-sentinel"`).
    Sentinel {
        /// The Sentinels' URLs.
        sentinels: Vec<String>,
        /// The master's name.
        master: String,
        /// TLS files for `rediss://`.
        certificates: Option<redis::TlsCertificates>,
        /// The master's login: the listener subscribes on the master.
        login: MasterLogin,
    },
}

impl EndSource {
    /// The store's servers; `None` for the embedded store.
    pub fn from_config(registry: &RegistryConfig) -> anyhow::Result<Option<EndSource>> {
        let redis = &registry.redis;
        let certificates =
            || tls::certificates(redis).map_err(|problems| anyhow::anyhow!(problems.join("; ")));
        Ok(Some(match registry.store {
            StoreKind::Embedded => return Ok(None),
            StoreKind::Redis | StoreKind::RedisCluster => EndSource::Servers {
                urls: redis.urls(registry.store).1.to_vec(),
                certificates: certificates()?,
            },
            StoreKind::RedisSentinel => EndSource::Sentinel {
                sentinels: redis.sentinels.clone(),
                master: redis.sentinel_master.clone(),
                certificates: certificates()?,
                login: redis.master_login().map_err(anyhow::Error::msg)?,
            },
        }))
    }

    /// A client for the `attempt`-th connection (the call-end and channel-relay listeners
    /// subscribe through it).
    pub async fn client(&self, attempt: usize) -> redis::RedisResult<redis::Client> {
        match self {
            EndSource::Servers { urls, certificates } => {
                let url = urls.get(attempt % urls.len().max(1)).ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no URL"))
                })?;
                tls::client(url, certificates.as_ref())
            }
            EndSource::Sentinel {
                sentinels,
                master,
                certificates,
                login,
            } => {
                let target = SentinelTarget {
                    sentinels,
                    master,
                    certificates: certificates.as_ref(),
                    login,
                };
                sentinel::sentinel_client(&target)?.async_get_client().await
            }
        }
    }
}

/// Listens for other nodes' ends on `source` (one server at a time; the next when one fails)
/// and withdraws this node's queued rings of each, until the task is aborted.
pub fn spawn_listener(
    source: EndSource,
    node: Arc<str>,
    routers: Routers,
) -> tokio::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut attempt = 0;
        loop {
            let listened = match source.client(attempt).await {
                Ok(client) => listen(client, &node, &routers).await,
                Err(error) => Err(error),
            };
            attempt += 1;
            if let Err(error) = listened {
                tracing::warn!(%error, "call-end listener lost its Redis connection; reconnecting");
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    })
}

/// Listens on one server until its connection fails.
async fn listen(client: redis::Client, node: &str, routers: &Routers) -> redis::RedisResult<()> {
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
        routers.withdraw_ended_elsewhere(callee, &notice.call_id);
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
