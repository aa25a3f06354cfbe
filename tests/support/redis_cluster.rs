//! A real Redis Cluster for tests: N masters on free loopback ports, no replicas, all stopped
//! on drop.

use super::redis_server::{RedisServer, redis_cli_binary};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// How long `redis-cli --cluster create` and the cluster's convergence may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Redis Cluster's bus listens on the client port plus this offset.
const BUS_OFFSET: u16 = 10_000;

/// A running Redis Cluster of masters only.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes, joins them with `redis-cli --cluster create` and waits until
    /// every node reports `cluster_state:ok`.
    pub async fn start(masters: usize) -> Self {
        Self::start_with(masters, |_| Vec::new()).await
    }

    /// [`RedisCluster::start`] with extra `redis-server` arguments for each node, given its
    /// index (the TLS cluster adds its TLS port and certificates).
    pub async fn start_with(
        masters: usize,
        extra: impl Fn(usize) -> Vec<String> + Send + 'static,
    ) -> Self {
        assert!(
            masters >= 3,
            "Redis Cluster needs at least 3 masters, got {masters}"
        );
        let ports = cluster_ports(masters);
        // Starting a node blocks for a few milliseconds each: run them off the async threads.
        let nodes = tokio::task::spawn_blocking(move || {
            ports
                .into_iter()
                .enumerate()
                .map(|(index, port)| {
                    let config = format!("nodes-{port}.conf");
                    let mut args = ["--cluster-enabled", "yes", "--cluster-config-file", &config]
                        .map(String::from)
                        .to_vec();
                    args.extend(extra(index));
                    RedisServer::start_with(port, &args)
                })
                .collect::<Vec<_>>()
        })
        .await
        .expect("start the cluster's nodes");
        let cluster = RedisCluster { nodes };
        cluster.create().await;
        cluster.wait_until_ok().await;
        cluster
    }

    /// One URL per node, `redis://127.0.0.1:PORT/`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Runs `redis-cli --cluster create` over all nodes, assigning the slots evenly.
    async fn create(&self) {
        let mut command = tokio::process::Command::new(redis_cli_binary());
        command.args(["--cluster", "create"]);
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        command.args(["--cluster-replicas", "0", "--cluster-yes"]);
        command.kill_on_drop(true);
        let output = tokio::time::timeout(CLUSTER_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| {
                panic!("redis-cli --cluster create took longer than {CLUSTER_TIMEOUT:?}")
            })
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Polls `CLUSTER INFO` on every node until each says `cluster_state:ok`.
    async fn wait_until_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for node in &self.nodes {
            let url = node.url();
            loop {
                let info = cluster_info(&url).await;
                if info
                    .as_deref()
                    .is_some_and(|info| info.contains("cluster_state:ok"))
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {url} not ok within {CLUSTER_TIMEOUT:?}; last CLUSTER INFO: {info:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `CLUSTER INFO` of one node, or `None` if it does not answer (yet).
async fn cluster_info(url: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let asking = async {
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(2), asking)
        .await
        .ok()
        .flatten()
}

/// `count` free loopback ports P whose cluster-bus port P + 10000 is free too.
fn cluster_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(5);
    while ports.len() < count {
        assert!(
            Instant::now() < deadline,
            "no free port pairs (P, P+{BUS_OFFSET}) on loopback"
        );
        // Ask the kernel for a port below 55536 so that its bus port exists.
        let Some(port) = (0..50).find_map(|_| {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .ok()?
                .local_addr()
                .ok()?
                .port();
            (port < u16::MAX - BUS_OFFSET).then_some(port)
        }) else {
            continue;
        };
        let free = |port: u16| {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            TcpListener::bind(addr).is_ok()
        };
        if !ports.contains(&port) && free(port) && free(port + BUS_OFFSET) {
            ports.push(port);
        }
    }
    ports
}
