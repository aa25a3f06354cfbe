//! The Redis settings a node checks at start-up (the Redis module doc says why each matters):
//! it warns about each one below what the node needs, on every server that holds its data.
//! On a Redis Cluster that is every node, replicas included (a replica that takes over keeps
//! its own settings), so the cluster is asked node by node; a single server or Sentinel's
//! master is asked once. Managed Redis services often disable `CONFIG`: a server that refuses
//! leaves the check silent for it.

use super::EitherClient;
use super::cluster::OwnCluster;
use redis::aio::ConnectionLike;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{RedisResult, Value};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A Redis setting the node checks at start-up.
struct CheckedSetting {
    name: &'static str,
    /// Below this, the node warns.
    lowest: i64,
    recommended: i64,
    /// What goes wrong below `lowest`.
    why: &'static str,
}

/// The settings checked at start-up.
const CHECKED_SETTINGS: [CheckedSetting; 2] = [
    CheckedSetting {
        name: "hash-max-listpack-value",
        // An APNs record with a 16-byte app id (see `codec`); FCM and Web Push ones are longer.
        lowest: 79,
        recommended: 128,
        why: "Redis stores registrations in hash tables at this setting (~120 B more each)",
    },
    CheckedSetting {
        name: "hz",
        lowest: 50,
        recommended: 100,
        why: "Redis expires the call events' keys in bursts of up to ~25 ms at this setting, \
              every command waiting behind them",
    },
];

/// One server's value of a setting: the server's address where the connection spans several
/// (a cluster's nodes), `None` for the one server a connection talks to.
type Reading = (Option<String>, i64);

/// How a store's connection reads a setting from every server it writes to.
pub(super) trait ReadSettings {
    /// `CONFIG GET name` on every server that answers it.
    fn read_setting<'a>(
        &'a mut self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = RedisResult<Vec<Reading>>> + Send + 'a>>;
}

/// `CONFIG GET name` on the one server `connection` talks to.
async fn read_one(connection: &mut impl ConnectionLike, name: &str) -> RedisResult<Vec<Reading>> {
    let pair: Vec<String> =
        super::command::query(connection, redis::cmd("CONFIG").arg("GET").arg(name)).await?;
    Ok(value_of(&pair)
        .map(|value| (None, value))
        .into_iter()
        .collect())
}

/// The number in a `CONFIG GET` answer (`[name, value]`).
fn value_of(pair: &[String]) -> Option<i64> {
    pair.get(1).and_then(|value| value.parse().ok())
}

impl ReadSettings for super::SingleConnection {
    fn read_setting<'a>(
        &'a mut self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = RedisResult<Vec<Reading>>> + Send + 'a>> {
        Box::pin(read_one(self, name))
    }
}

impl ReadSettings for super::sentinel::SentinelConnection {
    fn read_setting<'a>(
        &'a mut self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = RedisResult<Vec<Reading>>> + Send + 'a>> {
        Box::pin(read_one(self, name))
    }
}

impl ReadSettings for super::ClusterConnection {
    /// Every node, masters and replicas: a cluster client would send an unrouted `CONFIG GET`
    /// to one node of its choosing.
    fn read_setting<'a>(
        &'a mut self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = RedisResult<Vec<Reading>>> + Send + 'a>> {
        Box::pin(async move {
            match self {
                EitherClient::Crate(connection) => {
                    let mut query = redis::cmd("CONFIG");
                    query.arg("GET").arg(name);
                    let every_node =
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
                    let answers = connection.route_command(query, every_node).await?;
                    Ok(per_node(answers))
                }
                EitherClient::Own(cluster) => Ok(read_every_node(cluster, name).await),
            }
        })
    }
}

/// `CONFIG GET name` on every node the own cluster connection's map names, each over a
/// connection of its own; a node out of reach is left out.
async fn read_every_node(cluster: &OwnCluster, name: &str) -> Vec<Reading> {
    let mut readings = Vec::new();
    for address in cluster.nodes() {
        let Ok(mut node) = cluster.dial(&address).await else {
            continue;
        };
        if let Ok(Some((_, value))) = read_one(&mut node, name).await.map(|mut one| one.pop()) {
            readings.push((Some(super::cluster::node_name(&address)), value));
        }
    }
    readings
}

/// The readings in a multi-node answer: a map of node address to that node's `CONFIG GET`
/// answer (a node that refused answers an error, and is left out).
fn per_node(answers: Value) -> Vec<Reading> {
    let Value::Map(answers) = answers else {
        return Vec::new();
    };
    answers
        .into_iter()
        .filter_map(|(node, answer)| {
            let node: String = redis::from_redis_value(node).ok()?;
            let pair: Vec<String> = redis::from_redis_value(answer).ok()?;
            Some((Some(node), value_of(&pair)?))
        })
        .collect()
}

/// Warns about each setting in [`CHECKED_SETTINGS`] below what the node needs, on every
/// server `connection` writes to; a server that does not answer within `timeout` is skipped.
pub(super) async fn check(mut connection: impl ReadSettings, timeout: Duration) {
    for setting in &CHECKED_SETTINGS {
        let read = connection.read_setting(setting.name);
        if let Ok(Ok(readings)) = tokio::time::timeout(timeout, read).await {
            warn_below(setting, &readings);
        }
    }
}

/// Warns about `setting` on each server whose reading is below its lowest.
fn warn_below(setting: &CheckedSetting, readings: &[Reading]) {
    for (server, value) in readings {
        if *value < setting.lowest {
            tracing::warn!(
                setting = setting.name,
                value,
                server = server.as_deref().unwrap_or("the server"),
                recommended = setting.recommended,
                "{}; set {} {}",
                setting.why,
                setting.name,
                setting.recommended
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_multi_node_answer_reads_as_each_nodes_value_and_skips_refusals() {
        let answers = Value::Map(vec![
            (
                bulk("127.0.0.1:7000"),
                Value::Array(vec![bulk("hz"), bulk("10")]),
            ),
            (
                bulk("127.0.0.1:7001"),
                Value::Array(vec![bulk("hz"), bulk("100")]),
            ),
            // What a node that refused leaves in the map is no `[name, value]` pair.
            (bulk("127.0.0.1:7002"), Value::Nil),
        ]);
        assert_eq!(
            per_node(answers),
            [
                (Some("127.0.0.1:7000".to_owned()), 10),
                (Some("127.0.0.1:7001".to_owned()), 100),
            ]
        );
        assert!(per_node(Value::Nil).is_empty());
    }
}
