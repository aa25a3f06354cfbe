//! ringcast's own connection to a Redis Cluster (`store = "redis-cluster"` with
//! `[registry.redis] client = "ringcast"`, the default): one pipelined connection per master
//! ([`super::pipelined`]), each command sent to the master of its key's slot ([`route`]) as
//! the slot map read with `CLUSTER SLOTS` says ([`slots`]).
//!
//! Why: the redis crate's cluster client cost this process 12.3–13.1 µs per registration
//! against 4.5 µs over the own connection to one server, and served 39–51 % of its lookups
//! (docs/performance.md, "The cluster over the own connection"); what it adds per command —
//! a task hop, a channel, a routing table behind a lock — is what the own connection removed
//! for one server.
//!
//! How it follows the cluster:
//! - **`MOVED <slot> <host:port>`**: the slot has another master now (a failover, a finished
//!   resharding). The map is read again and the command sent to the node named.
//! - **`ASK <slot> <host:port>`**: the slot is moving and this key has left already. The
//!   command goes once to the node named, after `ASKING`, in one write; the map stays, since
//!   the slot's other keys are still where they were. A node the map does not name yet (a new
//!   node receiving its first slot) gets one connection, kept for the redirections that
//!   follow: a resharding under load sends thousands of them there.
//! - **A master out of reach** (its connection ended or cannot be dialled): the map is read
//!   again, at most every [`READ_AGAIN_AFTER`] while it stays out of reach, so that callers
//!   fail fast rather than each asking the cluster. A command that was not sent goes to the
//!   master the new map names (after a failover, the replica that took over); a command that
//!   was sent and whose reply was lost fails, as on one server: it may have run.
//! - The map is read from the masters it named last, then from the configured nodes, in turn;
//!   the first that answers is believed. Connections to masters that stay in the map are kept.
//!
//! It follows no other kind of redirection and reads no replica: the node's commands each touch
//! one key of one slot, and it needs what it just wrote. Pipelines and transactions are refused
//! (nothing in the node sends them to a cluster; their keys could span slots).

mod route;
mod slots;

pub use route::{crc16, key_slot};

use super::pipelined::{Bookkeeping, PipelinedConnection, Redial, Write};
use crate::metrics::redis::{MapRead, Redirection};
use arc_swap::ArcSwap;
use redis::aio::ConnectionLike;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, ServerErrorKind, TlsCertificates, Value,
};
use route::Route;
use slots::{Address, SlotMap};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// While a master stays out of reach, the map is read again at most this often: often enough
/// to find the replica that takes over (Redis Cluster fails over after `cluster-node-timeout`,
/// seconds), seldom enough that failing callers do not flood the cluster.
const READ_AGAIN_AFTER: Duration = Duration::from_millis(100);

/// Redirections one command follows at most: one `MOVED` and one `ASK` are the most a
/// resharding needs; more means the nodes disagree, and the caller hears so.
const MAX_HOPS: usize = 5;

/// A cheap-to-clone handle on the cluster's connections; every clone shares them.
#[derive(Clone)]
pub struct OwnCluster {
    shared: Arc<Shared>,
    /// When this handle's commands are written, on whichever master's connection.
    write: Write,
}

impl Bookkeeping for OwnCluster {
    fn for_bookkeeping(&self) -> OwnCluster {
        OwnCluster {
            write: Write::WithNext,
            ..self.clone()
        }
    }
}

/// What every clone shares.
struct Shared {
    /// The configured nodes: where the map is read when no known master answers, and the
    /// login and TLS every node is dialled with (the first one's).
    seeds: Vec<ConnectionInfo>,
    certificates: Option<TlsCertificates>,
    /// Connect, command.
    timeouts: (Duration, Duration),
    /// The map and the masters' connections callers use now.
    topology: ArcSwap<Topology>,
    /// Held while the map is read: one reading at a time.
    reading: Arc<tokio::sync::Mutex<()>>,
    /// Connections to nodes a redirection named that the map does not name as masters,
    /// reused by the redirections that follow; a reading that names one as a master takes
    /// its connection over. A handful at most: a cluster's nodes.
    others: Mutex<HashMap<Address, PipelinedConnection>>,
}

/// The slot map and a connection to each of its masters.
struct Topology {
    /// Counts readings, so that callers that saw the same stale map read it once, not once
    /// each.
    generation: u64,
    read_at: Instant,
    map: Arc<SlotMap>,
    /// Per master of `map`, in its order, its connection; `None` where dialling it failed.
    masters: Vec<Option<PipelinedConnection>>,
}

impl Topology {
    /// The open connection to the master of `slot`.
    fn master_of(&self, slot: u16) -> Option<&PipelinedConnection> {
        let index = self.map.master_of(slot)?;
        open(self.masters.get(index)?.as_ref()?)
    }

    /// The open connection to the master at `address`.
    fn master_at(&self, address: &Address) -> Option<&PipelinedConnection> {
        let index = self.map.masters.iter().position(|known| known == address)?;
        open(self.masters.get(index)?.as_ref()?)
    }

    /// Any open connection to a master.
    fn any_master(&self) -> Option<&PipelinedConnection> {
        self.masters.iter().flatten().find_map(open)
    }

    /// Whether the map names `to` as the master of `slot`.
    fn names_master(&self, slot: u16, to: &Address) -> bool {
        self.map
            .master_of(slot)
            .is_some_and(|index| self.map.masters[index] == *to)
    }
}

fn open(connection: &PipelinedConnection) -> Option<&PipelinedConnection> {
    connection.is_open().then_some(connection)
}

/// Where a command goes next.
enum Hop {
    /// To the master of its slot, as the map says.
    Master,
    /// To the node a `MOVED` named, which the map read since does not (yet) name.
    Moved(Address),
    /// To the node an `ASK` named, after `ASKING`.
    Ask(Address),
}

/// Why the map is read again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// A node answered `MOVED`: the map is stale for sure.
    Moved,
    /// A master is out of reach: perhaps a failover; read at most every [`READ_AGAIN_AFTER`].
    Unreachable,
}

impl OwnCluster {
    /// Reads the slot map from the first of `urls` that answers and connects to every master
    /// in it. `certificates` are `[registry.redis]`'s for `rediss://`; `command_timeout` is
    /// the store's (a connection whose commands wait this long with no reply at all ends).
    pub async fn connect(
        urls: &[String],
        certificates: Option<&TlsCertificates>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> RedisResult<OwnCluster> {
        let seeds = urls
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<RedisResult<Vec<_>>>()?;
        if seeds.is_empty() {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "no Redis Cluster node to connect to",
            )));
        }
        crate::metrics::redis::preregister_cluster();
        let shared = Shared {
            seeds,
            certificates: certificates.cloned(),
            timeouts: (connect_timeout, command_timeout),
            topology: ArcSwap::from_pointee(Topology {
                generation: 0,
                read_at: Instant::now(),
                map: Arc::new(SlotMap::empty()),
                masters: Vec::new(),
            }),
            reading: Arc::new(tokio::sync::Mutex::new(())),
            others: Mutex::new(HashMap::new()),
        };
        let topology = shared.read_topology(&shared.topology.load_full()).await?;
        shared.topology.store(Arc::new(topology));
        Ok(OwnCluster {
            shared: Arc::new(shared),
            write: Write::Now,
        })
    }

    /// Sends `cmd` where its key lives and waits for the reply, following the cluster's
    /// redirections.
    pub async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        match route::of(cmd) {
            Route::Slot(slot) => self.to_slot(slot, cmd).await,
            Route::AnyMaster => {
                let topology = self.shared.topology.load_full();
                let connection = match topology.any_master() {
                    Some(connection) => connection.clone(),
                    None => self
                        .read_again(&topology, Why::Unreachable)
                        .await
                        .any_master()
                        .cloned()
                        .ok_or_else(no_master)?,
                };
                connection.command_written(cmd, self.write).await
            }
            Route::EveryMaster => self.to_every_master(cmd).await,
        }
    }

    /// Sends `cmd` to the master of `slot`, following `MOVED` and `ASK`.
    async fn to_slot(&self, slot: u16, cmd: &Cmd) -> RedisResult<Value> {
        let mut topology = self.shared.topology.load_full();
        let mut hop = Hop::Master;
        for _ in 0..MAX_HOPS {
            let answer = match &hop {
                Hop::Master => {
                    if topology.master_of(slot).is_none() {
                        topology = self.read_again(&topology, Why::Unreachable).await;
                    }
                    // Borrowed from the map held: one reference count per command, the map's.
                    let connection = topology.master_of(slot).ok_or_else(|| unreachable(slot))?;
                    connection.command_written(cmd, self.write).await
                }
                Hop::Moved(to) => {
                    let connection = self.connection_to(&topology, to).await?;
                    connection.command_written(cmd, self.write).await
                }
                Hop::Ask(to) => self.connection_to(&topology, to).await?.asking(cmd).await,
            };
            hop = match answer {
                Ok(Value::ServerError(error)) => match (error.kind(), redirection(&error)) {
                    (Some(ServerErrorKind::Moved), Some(to)) => {
                        crate::metrics::redis::cluster_redirected(Redirection::Moved);
                        topology = self.read_again(&topology, Why::Moved).await;
                        // The map read may lag the node that answered: then the answer wins.
                        match topology.names_master(slot, &to) {
                            true => Hop::Master,
                            false => Hop::Moved(to),
                        }
                    }
                    (Some(ServerErrorKind::Ask), Some(to)) => {
                        crate::metrics::redis::cluster_redirected(Redirection::Ask);
                        Hop::Ask(to)
                    }
                    _ => return Ok(Value::ServerError(error)),
                },
                Err(error) if error.is_io_error() => {
                    // Sent, and the connection ended before its reply: it may have run, so it
                    // is not sent again; the map is read again for the calls that follow.
                    self.read_again_in_background(&topology);
                    return Err(error);
                }
                answer => return answer,
            };
        }
        Err(RedisError::from((
            ErrorKind::Client,
            "the Redis Cluster redirected a command too many times",
            format!("slot {slot}"),
        )))
    }

    /// `SCRIPT LOAD` on every master it can reach: the first error, or else the first reply.
    async fn to_every_master(&self, cmd: &Cmd) -> RedisResult<Value> {
        let topology = self.shared.topology.load_full();
        let mut first = None;
        for connection in topology.masters.iter().flatten().filter_map(open) {
            match connection.command(cmd).await? {
                Value::ServerError(error) => return Ok(Value::ServerError(error)),
                value => {
                    first.get_or_insert(value);
                }
            }
        }
        first.ok_or_else(no_master)
    }

    /// The connection to the node at `address`: the map's, or one of [`Shared::others`] for
    /// a node the map does not name (a node a slot is moving to before it serves any).
    async fn connection_to(
        &self,
        topology: &Topology,
        address: &Address,
    ) -> RedisResult<PipelinedConnection> {
        match topology.master_at(address) {
            Some(connection) => Ok(connection.clone()),
            None => self.shared.other(address).await,
        }
    }

    /// The map read again, unless another caller did since `seen`, or (for an unreachable
    /// master) it was read within [`READ_AGAIN_AFTER`]. The reading runs as a task of its
    /// own: a caller that gives up does not cancel it for the others.
    async fn read_again(&self, seen: &Arc<Topology>, why: Why) -> Arc<Topology> {
        let one_at_a_time = Arc::clone(&self.shared.reading).lock_owned().await;
        let current = self.shared.topology.load_full();
        let recent = current.read_at.elapsed() < READ_AGAIN_AFTER;
        if current.generation != seen.generation || (why == Why::Unreachable && recent) {
            return current;
        }
        let shared = Arc::clone(&self.shared);
        let reading = tokio::spawn(async move {
            let _one_at_a_time = one_at_a_time;
            let next = match shared.read_topology(&current).await {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(%error, "Redis Cluster: no node told where the slots are");
                    crate::metrics::redis::cluster_map_read(MapRead::Failed);
                    // The same map, marked read: callers fail fast until the next try.
                    Topology {
                        generation: current.generation + 1,
                        read_at: Instant::now(),
                        map: Arc::clone(&current.map),
                        masters: current.masters.clone(),
                    }
                }
            };
            let next = Arc::new(next);
            shared.topology.store(Arc::clone(&next));
            next
        });
        match reading.await {
            Ok(next) => next,
            Err(_) => self.shared.topology.load_full(),
        }
    }

    /// [`OwnCluster::read_again`] for a master found out of reach, without waiting for it.
    fn read_again_in_background(&self, seen: &Arc<Topology>) {
        let this = self.clone();
        let seen = Arc::clone(seen);
        tokio::spawn(async move { this.read_again(&seen, Why::Unreachable).await });
    }

    /// The address of every node, masters and replicas, as the map names them (the settings
    /// check asks each).
    pub fn nodes(&self) -> Vec<Address> {
        let topology = self.shared.topology.load();
        let map = &topology.map;
        map.masters.iter().chain(&map.replicas).cloned().collect()
    }

    /// A connection of its own to the node at `address`, for a few commands (the settings
    /// check): not one of the masters' shared ones.
    pub async fn dial(&self, address: &Address) -> RedisResult<PipelinedConnection> {
        self.shared.dial(address).await
    }
}

impl Shared {
    /// The map, read from the masters `current` names and then from the configured nodes,
    /// and a connection to each of its masters: `current`'s where it is still open, a new one
    /// otherwise (dialled together; one that fails is `None` until the next reading).
    async fn read_topology(&self, current: &Topology) -> RedisResult<Topology> {
        let map = Arc::new(self.read_map(current).await?);
        let dials = map.masters.iter().map(|address| async move {
            if let Some(connection) = current.master_at(address) {
                return Some(connection.clone());
            }
            if let Some(connection) = self.take_other(address) {
                return Some(connection);
            }
            match self.dial(address).await {
                Ok(connection) => Some(connection),
                Err(error) => {
                    tracing::warn!(%error, node = %node_name(address), "Redis Cluster: a master is out of reach");
                    None
                }
            }
        });
        let masters = futures_util::future::join_all(dials).await;
        crate::metrics::redis::cluster_map_read(MapRead::Read);
        Ok(Topology {
            generation: current.generation + 1,
            read_at: Instant::now(),
            map,
            masters,
        })
    }

    /// `CLUSTER SLOTS` from the first node that answers: the known masters, then the seeds.
    async fn read_map(&self, current: &Topology) -> RedisResult<SlotMap> {
        let mut last_error = None;
        let known = current.masters.iter().zip(&current.map.masters);
        for (connection, address) in known {
            let Some(connection) = connection.as_ref().and_then(open) else {
                continue;
            };
            match self.ask_slots(connection, &address.0).await {
                Ok(map) => return Ok(map),
                Err(error) => last_error = Some(error),
            }
        }
        for seed in &self.seeds {
            let asked = match seed.addr() {
                ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host,
                _ => continue,
            };
            let connecting = PipelinedConnection::connect_to(
                seed,
                self.certificates.as_ref(),
                self.timeouts,
                Redial::No,
            );
            let answer = match connecting.await {
                Ok(connection) => self.ask_slots(&connection, asked).await,
                Err(error) => Err(error),
            };
            match answer {
                Ok(map) => return Ok(map),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(no_master))
    }

    /// `CLUSTER SLOTS` on one node, within the command timeout.
    async fn ask_slots(
        &self,
        connection: &PipelinedConnection,
        asked: &str,
    ) -> RedisResult<SlotMap> {
        let mut slots = redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        let (_, command_timeout) = self.timeouts;
        let reply = tokio::time::timeout(command_timeout, connection.command(&slots))
            .await
            .map_err(|_| {
                RedisError::from((
                    ErrorKind::Io,
                    "no CLUSTER SLOTS reply within the command timeout",
                ))
            })??;
        match reply {
            Value::ServerError(error) => Err(error.into()),
            reply => SlotMap::read(&reply, asked),
        }
    }

    /// The kept connection to a node the map does not name, or a new one, kept. Callers that
    /// miss it at once each dial, and the last one is kept: a moment's extra connections,
    /// rather than callers waiting on one another's dial (or its timeout).
    async fn other(&self, address: &Address) -> RedisResult<PipelinedConnection> {
        let kept = self.lock_others().get(address).and_then(open).cloned();
        if let Some(connection) = kept {
            return Ok(connection);
        }
        let connection = self.dial(address).await?;
        self.lock_others()
            .insert(address.clone(), connection.clone());
        Ok(connection)
    }

    /// The kept connection to `address`, if open, out of [`Shared::others`]: the map names it
    /// as a master now.
    fn take_other(&self, address: &Address) -> Option<PipelinedConnection> {
        self.lock_others()
            .remove(address)
            .filter(PipelinedConnection::is_open)
    }

    fn lock_others(&self) -> std::sync::MutexGuard<'_, HashMap<Address, PipelinedConnection>> {
        self.others.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection to the node at `address`, with the first configured node's login and TLS
    /// (a cluster's nodes share them). It does not dial again by itself: when it ends, the
    /// map is read again first, since the address may no longer be a master.
    async fn dial(&self, (host, port): &Address) -> RedisResult<PipelinedConnection> {
        let template = &self.seeds[0];
        let addr = match template.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        let info = template.clone().set_addr(addr);
        PipelinedConnection::connect_to(
            &info,
            self.certificates.as_ref(),
            self.timeouts,
            Redial::No,
        )
        .await
    }
}

/// The node a `MOVED` or `ASK` names.
fn redirection(error: &redis::ServerError) -> Option<Address> {
    let mut details = error.details()?.split_ascii_whitespace();
    let _slot = details.next()?;
    let (host, port) = details.next()?.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// `host:port`, for logs.
pub fn node_name((host, port): &Address) -> String {
    format!("{host}:{port}")
}

fn unreachable(slot: u16) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("the Redis Cluster master of slot {slot} is out of reach"),
    ))
}

fn no_master() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "no Redis Cluster master is in reach",
    ))
}

impl ConnectionLike for OwnCluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        _: &'a Pipeline,
        _: usize,
        _: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async {
            Err(RedisError::from((
                ErrorKind::Client,
                "ringcast's Redis Cluster connection sends single commands, not pipelines",
            )))
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests;
