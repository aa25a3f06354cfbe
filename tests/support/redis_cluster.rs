//! A real Redis Cluster for tests: N masters on free loopback ports, optionally with replicas
//! that take over when their master fails (`CLUSTER FAILOVER`, or a killed master), all
//! stopped on drop.

use super::eventually::eventually;
use super::redis_server::{RedisServer, redis_cli_binary};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// How long `redis-cli --cluster create` and the cluster's convergence may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// `cluster-node-timeout` unless a test sets it: Redis's default.
const DEFAULT_NODE_TIMEOUT_MS: u64 = 15_000;
/// Redis Cluster's bus listens on the client port plus this offset.
const BUS_OFFSET: u16 = 10_000;
/// How long one step a test takes on purpose (a `CLUSTER SETSLOT`, a `MIGRATE`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How many keys [`RedisCluster::migrate_keys`] moves per `MIGRATE`.
const MIGRATE_BATCH: usize = 100;

/// A running Redis Cluster.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// `cluster-node-timeout` (ms): how long a master may be silent before its replica takes
    /// over.
    node_timeout_ms: u64,
}

/// What one node is, as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Serves slots.
    Master,
    /// Replicates the master at this node index.
    Replica(usize),
    /// Agreed to be down (`fail`): it serves nothing until it is back.
    Failed,
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
        Self::launch(masters, 0, DEFAULT_NODE_TIMEOUT_MS, extra).await
    }

    /// `masters` masters with one replica each, whose replica takes over once its master has
    /// been silent for `node_timeout_ms` (`cluster-node-timeout`). Waits until every replica
    /// is in sync with its master.
    pub async fn start_replicated(masters: usize, node_timeout_ms: u64) -> Self {
        let cluster = Self::launch(masters, 1, node_timeout_ms, |_| Vec::new()).await;
        cluster.wait_until_replicas_synced().await;
        cluster
    }

    async fn launch(
        masters: usize,
        replicas: usize,
        node_timeout_ms: u64,
        extra: impl Fn(usize) -> Vec<String> + Send + 'static,
    ) -> Self {
        assert!(
            masters >= 3,
            "Redis Cluster needs at least 3 masters, got {masters}"
        );
        let ports = cluster_ports(masters * (1 + replicas));
        // Starting a node blocks for a few milliseconds each: run them off the async threads.
        let nodes = tokio::task::spawn_blocking(move || {
            ports
                .into_iter()
                .enumerate()
                .map(|(index, port)| {
                    let config = format!("nodes-{port}.conf");
                    let timeout = node_timeout_ms.to_string();
                    // A replica may always take over, however long its link was down: the
                    // tests restart nodes and want the cluster whole again, not stale-safe.
                    let mut args = [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &config,
                        "--cluster-node-timeout",
                        &timeout,
                        "--cluster-replica-validity-factor",
                        "0",
                    ]
                    .map(String::from)
                    .to_vec();
                    args.extend(extra(index));
                    RedisServer::start_with(port, &args)
                })
                .collect::<Vec<_>>()
        })
        .await
        .expect("start the cluster's nodes");
        let cluster = RedisCluster {
            nodes,
            node_timeout_ms,
        };
        cluster.create(replicas).await;
        cluster.wait_until_ok().await;
        cluster
    }

    /// One URL per node, `redis://127.0.0.1:PORT/`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Runs `redis-cli --cluster create` over all nodes, assigning the slots evenly over the
    /// first ones and `replicas` replicas to each.
    async fn create(&self, replicas: usize) {
        let mut command = tokio::process::Command::new(redis_cli_binary());
        command.args(["--cluster", "create"]);
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        command.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
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

    /// Polls `CLUSTER INFO` on every running node until each says `cluster_state:ok`.
    pub async fn wait_until_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
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

    /// Every node's role, as the cluster's running nodes agree on it (`CLUSTER NODES` of each
    /// running node, which must say the same of every running node). `None` while they
    /// disagree or one does not answer: a failover is still spreading.
    pub async fn roles(&self) -> Option<Vec<Role>> {
        let mut agreed: Option<Vec<Role>> = None;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let seen = self.roles_seen_by(&node.url()).await?;
            match &agreed {
                Some(roles) if *roles != seen => return None,
                _ => agreed = Some(seen),
            }
        }
        agreed
    }

    /// The roles `CLUSTER NODES` of the node at `url` reports, by node index.
    async fn roles_seen_by(&self, url: &str) -> Option<Vec<Role>> {
        let text = cluster_command(url, "NODES").await?;
        // Each line: <id> <ip:port@bus> <flags> <master id or -> ...
        let mut by_port = std::collections::HashMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [id, address, flags, master, ..] = fields[..] else {
                continue;
            };
            let port: u16 = address.split(['@', ':']).nth(1)?.parse().ok()?;
            by_port.insert(port, (id, flags, master));
        }
        let index_of_id = |wanted: &str| {
            self.nodes.iter().position(|node| {
                by_port
                    .get(&node.port())
                    .is_some_and(|(id, ..)| *id == wanted)
            })
        };
        self.nodes
            .iter()
            .map(|node| {
                let (_, flags, master) = by_port.get(&node.port())?;
                // `fail?` is only suspected; `fail` is agreed on.
                let flags: Vec<&str> = flags.split(',').collect();
                if flags.contains(&"fail") {
                    return Some(Role::Failed);
                }
                if flags.contains(&"master") {
                    Some(Role::Master)
                } else {
                    index_of_id(master).map(Role::Replica)
                }
            })
            .collect()
    }

    /// The index of a node serving slots, and of its replica.
    pub async fn a_master_and_its_replica(&self) -> (usize, usize) {
        let roles = self.roles_agreed().await;
        roles
            .iter()
            .enumerate()
            .find_map(|(replica, role)| match role {
                Role::Replica(master) => Some((*master, replica)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no master with a replica: {roles:?}"))
    }

    /// Waits until the running nodes agree on the roles; those roles.
    pub async fn roles_agreed(&self) -> Vec<Role> {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            if let Some(roles) = self.roles().await {
                return roles;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster's nodes did not agree on roles within {CLUSTER_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks replica `replica` to take over from its master (`CLUSTER FAILOVER`: the master
    /// stops taking writes, the replica catches up and is promoted, nothing written is
    /// lost), and waits until every running node sees it as master and the cluster is ok.
    pub async fn failover(&self, replica: usize) {
        let url = self.nodes[replica].url();
        let answer = cluster_command(&url, "FAILOVER").await;
        assert_eq!(answer.as_deref(), Some("OK"), "CLUSTER FAILOVER on {url}");
        self.wait_until_master(replica).await;
    }

    /// Kills node `index` (`kill -9`): a master's replica takes over after the node timeout.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    /// Starts node `index` again on its port with its cluster config file and an empty
    /// dataset: it rejoins, as a replica when another node took its slots meanwhile, and
    /// copies its master's data.
    pub fn restart(&mut self, index: usize) {
        self.nodes[index].restart();
    }

    /// Waits until every running node sees node `index` as a master and the cluster is ok:
    /// the slots it took are served again.
    pub async fn wait_until_master(&self, index: usize) {
        // A killed master's replica waits the node timeout, then an election: a few of them.
        let deadline =
            Instant::now() + CLUSTER_TIMEOUT + Duration::from_millis(self.node_timeout_ms * 4);
        loop {
            let roles = self.roles().await;
            if roles
                .as_ref()
                .is_some_and(|roles| roles[index] == Role::Master)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {index} did not become master; roles {roles:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_until_ok().await;
    }

    /// Waits until every running replica's link to its master is up and the initial copy is
    /// done (`INFO replication`: `master_link_status:up`, not `master_sync_in_progress:1`).
    pub async fn wait_until_replicas_synced(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let roles = self.roles_agreed().await;
        for (index, role) in roles.iter().enumerate() {
            if !matches!(role, Role::Replica(_)) || !self.nodes[index].is_running() {
                continue;
            }
            let url = self.nodes[index].url();
            loop {
                let info = query::<String>(&url, redis::cmd("INFO").arg("replication")).await;
                let synced = info.as_deref().is_some_and(|info| {
                    info.contains("master_link_status:up")
                        && !info.contains("master_sync_in_progress:1")
                });
                if synced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {url} not in sync within {CLUSTER_TIMEOUT:?}: {info:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Node `index`'s id (`CLUSTER MYID`): how `CLUSTER SETSLOT` names a node.
    pub async fn node_id(&self, index: usize) -> String {
        self.run(index, &["CLUSTER", "MYID"]).await
    }

    /// Node `index`'s address as redirections name it, `127.0.0.1:PORT`.
    pub fn address(&self, index: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[index].port())
    }

    /// The index of the master serving `slot`, once the running nodes agree on it.
    pub async fn owner_of_slot(&self, slot: u16) -> usize {
        eventually(
            &format!("the nodes to agree who serves slot {slot}"),
            || self.agreed_owner_of_slot(slot),
        )
        .await
    }

    /// Starts moving `slot` from master `from` to master `to`, as `redis-cli --cluster
    /// reshard` does: `to` imports it, then `from` migrates it. Until
    /// [`RedisCluster::finish_slot_migration`], `from` still serves the slot's keys it holds
    /// and answers `-ASK <slot> <to's address>` for the others, which `to` serves only after
    /// `ASKING`.
    pub async fn begin_slot_migration(&self, slot: u16, from: usize, to: usize) {
        let slot = slot.to_string();
        let (from_id, to_id) = (self.node_id(from).await, self.node_id(to).await);
        // The target first: a client sent there by an ASK must find it importing already.
        let _: String = self
            .run(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id])
            .await;
        let _: String = self
            .run(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id])
            .await;
    }

    /// Moves every key of `slot` that master `from` still holds to master `to` (`MIGRATE`,
    /// in batches), once [`RedisCluster::begin_slot_migration`] began; the keys it moved.
    pub async fn migrate_keys(&self, slot: u16, from: usize, to: usize) -> Vec<String> {
        let slot = slot.to_string();
        let port = self.nodes[to].port().to_string();
        let timeout_ms = COMMAND_TIMEOUT.as_millis().to_string();
        let batch = MIGRATE_BATCH.to_string();
        let mut moved = Vec::new();
        loop {
            let keys: Vec<String> = self
                .run(from, &["CLUSTER", "GETKEYSINSLOT", &slot, &batch])
                .await;
            if keys.is_empty() {
                return moved;
            }
            // An empty key and `KEYS` move many keys at once; database 0 is a cluster's only.
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", &timeout_ms, "KEYS"];
            migrate.extend(keys.iter().map(String::as_str));
            let _: String = self.run(from, &migrate).await;
            moved.extend(keys);
        }
    }

    /// Hands `slot` to master `to` for good (`CLUSTER SETSLOT <slot> NODE <to>` on every
    /// master, `to` first so that it bumps its epoch and the change wins over gossip), and
    /// waits until every running node says `to` serves it: from then on the other masters
    /// answer `-MOVED <slot> <to's address>`.
    pub async fn finish_slot_migration(&self, slot: u16, to: usize) {
        let (slot_arg, to_id) = (slot.to_string(), self.node_id(to).await);
        let roles = self.roles_agreed().await;
        let others = (0..self.nodes.len()).filter(|&index| index != to);
        for index in std::iter::once(to).chain(others) {
            if roles[index] == Role::Master {
                let _: String = self
                    .run(index, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id])
                    .await;
            }
        }
        eventually(
            &format!("every node to see node {to} serve slot {slot}"),
            || async move { (self.agreed_owner_of_slot(slot).await? == to).then_some(()) },
        )
        .await;
    }

    /// The master serving `slot` if every running node says the same, by node index.
    async fn agreed_owner_of_slot(&self, slot: u16) -> Option<usize> {
        let mut agreed = None;
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            let seen = self.owner_of_slot_seen_by(&node.url(), slot).await?;
            if agreed.is_some_and(|owner| owner != seen) {
                return None;
            }
            agreed = Some(seen);
        }
        agreed
    }

    /// The master serving `slot` as `CLUSTER NODES` of the node at `url` says, by node index.
    async fn owner_of_slot_seen_by(&self, url: &str, slot: u16) -> Option<usize> {
        let text = cluster_command(url, "NODES").await?;
        // Each line: <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slots…>
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, slots) = (fields.get(1)?, fields.get(8..)?);
            if !slots.iter().any(|entry| slot_entry_holds(entry, slot)) {
                return None;
            }
            let port: u16 = address.split(['@', ':']).nth(1)?.parse().ok()?;
            self.nodes.iter().position(|node| node.port() == port)
        })
    }

    /// Runs `args` on node `index` and reads its answer as `T`; panics with the node's error.
    /// For the steps a test takes on purpose, where an error is the test's own mistake and
    /// should say so rather than look like a slow cluster.
    async fn run<T: redis::FromRedisValue>(&self, index: usize, args: &[&str]) -> T {
        let url = self.nodes[index].url();
        let client = redis::Client::open(url.as_str()).expect("a node's URL parses");
        let answering = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd(args[0])
                .arg(&args[1..])
                .query_async::<T>(&mut connection)
                .await
        };
        let command = args.join(" ");
        tokio::time::timeout(COMMAND_TIMEOUT, answering)
            .await
            .unwrap_or_else(|_| {
                panic!("{url} did not answer `{command}` within {COMMAND_TIMEOUT:?}")
            })
            .unwrap_or_else(|error| panic!("{url} refused `{command}`: {error}"))
    }
}

/// `CLUSTER INFO` of one node, or `None` if it does not answer (yet).
async fn cluster_info(url: &str) -> Option<String> {
    cluster_command(url, "INFO").await
}

/// `CLUSTER <subcommand>`'s answer from one node, or `None` if it does not answer (yet).
async fn cluster_command(url: &str, subcommand: &str) -> Option<String> {
    query(url, redis::cmd("CLUSTER").arg(subcommand)).await
}

/// One command's answer from one node, or `None` if it does not answer within 2 s.
async fn query<T: redis::FromRedisValue>(url: &str, command: &redis::Cmd) -> Option<T> {
    let client = redis::Client::open(url).ok()?;
    let asking = async {
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        command.query_async::<T>(&mut connection).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(2), asking)
        .await
        .ok()
        .flatten()
}

/// Whether one slot entry of a `CLUSTER NODES` line (`5461`, `0-5460`) holds `slot`. A
/// migration's marker (`[5461->-<id>]`, `[5461-<-<id>]`) says nothing about who serves it.
fn slot_entry_holds(entry: &str, slot: u16) -> bool {
    if entry.starts_with('[') {
        return false;
    }
    let (first, last) = entry.split_once('-').unwrap_or((entry, entry));
    match (first.parse::<u16>(), last.parse::<u16>()) {
        (Ok(first), Ok(last)) => (first..=last).contains(&slot),
        _ => false,
    }
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
