//! ringcast's own connection to one Redis server (`[registry.redis] client = "ringcast"`):
//! every caller's commands pipelined over one socket, the replies read by [`super::resp`].
//!
//! Why: in the end-to-end profile the redis crate's multiplexed connection costs ~12 % of the
//! node's instructions (docs/performance.md, "The Redis connection of our own"): a task
//! hop and a channel per command, a `combine` decoder per reply. Here a caller packs its
//! command straight into the buffer the connection writes next and waits on a oneshot; the
//! connection's one task writes what every caller queued since its last write and hands each
//! reply, in order, to its caller ([`driver`]).
//!
//! What it keeps of the crate's `ConnectionManager`, which it stands in for:
//! - **Fail fast, recover by itself**: when the connection ends (the server closed it, an
//!   I/O error, a stall), every waiting caller hears so at once; the next caller dials again
//!   (one at a time: the others wait for that dial; a task of its own, so a caller's timeout
//!   does not cancel it), bounded by the connect timeout, so while
//!   Redis is down calls fail within the store's command timeout and work again once it is
//!   back. A command that could not be queued was never sent and goes to the new connection.
//!   The Sentinel store's connection does not dial again ([`Redial::No`]): a failover may
//!   have made the old address a replica, so it asks the Sentinels instead.
//! - **The same URL**: `redis://` or `rediss://` (ring, the CA and client certificate of
//!   `[registry.redis]`, the system's trust store without a CA file), `AUTH` with the URL's
//!   user and password, `SELECT` its database.
//! - **The same answers**: replies are the crate's `Value`, error replies the crate's errors,
//!   so the store's code is the same over both.
//!
//! What it does not do: RESP3 (`?protocol=resp3` is refused), Unix sockets, `#insecure`
//! (a certificate not checked), pub/sub or blocking commands (they would hold every caller
//! behind them; the nodes subscribe and block on connections of their own).

mod driver;
#[cfg(test)]
mod tests;

use super::tls;
use arc_swap::ArcSwap;
pub use driver::Write;
use driver::{Expect, Limits, Link, NotSent, Reply, lost, refused};
use redis::aio::ConnectionLike;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline, ProtocolVersion,
    RedisError, RedisFuture, RedisResult, TlsCertificates, Value,
};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Commands that may wait for their replies on one connection. Far above what a node keeps
/// in flight (its API's concurrency); reached only when Redis stops answering, and then
/// callers are refused at once rather than queued without bound.
const MAX_WAITING: usize = 16_384;

/// What a caller does on finding the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redial {
    /// Dials the same server again (one server: it is where it was).
    Yes,
    /// Fails at once with a dropped connection, for the owner to find the server anew (the
    /// Sentinel store asks the Sentinels where the master is now).
    No,
}

/// A cheap-to-clone handle on the connection; every clone shares one socket.
#[derive(Clone)]
pub struct PipelinedConnection {
    shared: Arc<Shared>,
    /// When this handle's commands are written.
    write: Write,
}

/// A store connection that can give a handle for bookkeeping: commands whose reply nobody
/// waits on soon, written with the next command another handle sends ([`Write::WithNext`]).
/// The redis crate's connections have no such thing and give a plain clone.
pub trait Bookkeeping {
    /// The handle for bookkeeping, on the same connection(s).
    fn for_bookkeeping(&self) -> Self;
}

impl Bookkeeping for PipelinedConnection {
    fn for_bookkeeping(&self) -> PipelinedConnection {
        PipelinedConnection {
            write: Write::WithNext,
            ..self.clone()
        }
    }
}

/// What every clone shares.
struct Shared {
    target: Target,
    /// The connection callers use now, with a generation number so that callers that saw the
    /// same ended connection dial once, not once each.
    current: ArcSwap<Current>,
    /// Held while dialling: one dial at a time.
    dialling: Arc<tokio::sync::Mutex<()>>,
}

/// One connection.
struct Current {
    generation: u64,
    link: Link,
}

/// Where the server is and how to log in.
struct Target {
    host: String,
    port: u16,
    /// For `rediss://`: the client configuration and the name the certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    connect_timeout: Duration,
    limits: Limits,
    /// Whether a caller finding the connection ended dials the same address again (one
    /// server), or hears so at once (the Sentinel store, which asks the Sentinels where the
    /// master is now rather than redialling one a failover may have demoted).
    redial: Redial,
}

impl PipelinedConnection {
    /// Connects to the server of `url` (`redis://` or `rediss://`, with `certificates` for the
    /// latter as in `[registry.redis]`). `command_timeout` is the store's: a connection on
    /// which commands wait this long with no reply at all is ended and dialled again.
    pub async fn connect(
        url: &str,
        certificates: Option<&TlsCertificates>,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> RedisResult<Self> {
        let info = url.into_connection_info()?;
        let timeouts = (connect_timeout, command_timeout);
        PipelinedConnection::connect_to(&info, certificates, timeouts, Redial::Yes).await
    }

    /// [`PipelinedConnection::connect`] to the server `info` names (the Sentinel store's
    /// master: the address Sentinel gives, the login the configuration does), with the
    /// connect and command timeouts, and whether to dial again once the connection ends.
    pub async fn connect_to(
        info: &ConnectionInfo,
        certificates: Option<&TlsCertificates>,
        timeouts: (Duration, Duration),
        redial: Redial,
    ) -> RedisResult<Self> {
        crate::metrics::redis::preregister();
        let target = Target::of(info, certificates, timeouts, redial)?;
        let link = target.dial().await?;
        Ok(PipelinedConnection {
            write: Write::Now,
            shared: Arc::new(Shared {
                target,
                current: ArcSwap::from_pointee(Current {
                    generation: 0,
                    link,
                }),
                dialling: Arc::new(tokio::sync::Mutex::new(())),
            }),
        })
    }

    /// Sends a request and waits for its replies; on a connection that ended, dials a new one
    /// and sends it there.
    async fn request(
        &self,
        pack: impl Fn(&mut Vec<u8>),
        expect: Expect,
        write: Write,
    ) -> RedisResult<Reply> {
        // A guard, not a clone: no reference count touched per command; dropped before any
        // wait.
        let sent = {
            let current = self.shared.current.load();
            current
                .link
                .send_with(&pack, expect, write)
                .map_err(|why| (why, current.generation))
        };
        let answered = match sent {
            Ok(answered) => answered,
            Err((NotSent::Closed, _)) if self.shared.target.redial == Redial::No => {
                return Err(refused(NotSent::Closed));
            }
            Err((NotSent::Closed, generation)) => {
                // Boxed: dialling (TCP, TLS, login) is a large future, and held inline it would
                // make every command's future as large, moved at each command's start.
                let current = Box::pin(self.redial(generation)).await?;
                current
                    .link
                    .send_with(&pack, expect, write)
                    .map_err(refused)?
            }
            Err((full, _)) => return Err(refused(full)),
        };
        answered.await.unwrap_or_else(|_| Err(lost()))
    }

    /// Replaces the connection of generation `ended` by a new one, unless another caller did
    /// meanwhile. The dial runs as a task of its own: a caller that gives up (its command
    /// timeout, shorter than the connect timeout) does not cancel a dial about to succeed.
    async fn redial(&self, ended: u64) -> RedisResult<Arc<Current>> {
        let one_at_a_time = Arc::clone(&self.shared.dialling).lock_owned().await;
        let current = self.shared.current.load_full();
        if current.generation != ended && current.link.is_open() {
            return Ok(current);
        }
        let shared = Arc::clone(&self.shared);
        let dialling = tokio::spawn(async move {
            let _one_at_a_time = one_at_a_time;
            let link = shared.target.dial().await?;
            let current = Arc::new(Current {
                generation: current.generation + 1,
                link,
            });
            shared.current.store(Arc::clone(&current));
            tracing::info!("Redis: connected again");
            Ok(current)
        });
        dialling.await.unwrap_or_else(|_| Err(lost()))
    }
}

impl PipelinedConnection {
    /// Sends one command and waits for its reply. An error reply is handed on as a value, as
    /// the crate's connections do: whoever reads it (`command::query`, `Cmd::query_async`)
    /// makes it an error.
    pub async fn command(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.command_written(cmd, self.write).await
    }

    /// [`PipelinedConnection::command`], written as `write` says rather than as this
    /// handle's commands are (a cluster's handle for bookkeeping, on a master's connection).
    pub async fn command_written(&self, cmd: &Cmd, write: Write) -> RedisResult<Value> {
        match self
            .request(|out| cmd.write_packed_command(out), Expect::ONE, write)
            .await?
        {
            Reply::One(value) => Ok(value),
            Reply::Many(_) => Err(out_of_step()),
        }
    }

    /// Sends `ASKING` and `cmd` in one write and waits for `cmd`'s reply: how a Redis
    /// Cluster client follows an `ASK` redirection to the node a slot is moving to.
    pub async fn asking(&self, cmd: &Cmd) -> RedisResult<Value> {
        let pack = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"*1\r\n$6\r\nASKING\r\n");
            cmd.write_packed_command(out);
        };
        let expect = Expect {
            skip: 1,
            keep: 1,
            transaction: false,
        };
        match self.request(pack, expect, Write::Now).await? {
            Reply::Many(mut values) if values.len() == 1 => values.pop().ok_or_else(out_of_step),
            _ => Err(out_of_step()),
        }
    }

    /// Whether the connection is up: not ended, or ended and dialled again since.
    pub fn is_open(&self) -> bool {
        self.shared.current.load().link.is_open()
    }
}

impl ConnectionLike for PipelinedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match (offset, count) {
                // An empty pipeline: nothing to send.
                (0, 0) => return Ok(Vec::new()),
                // Commands whose replies nobody keeps: the crate never asks for that, and
                // a waiter that keeps nothing could not tell where its replies end.
                (_, 0) => return Err(out_of_step()),
                _ => {}
            }
            let expect = Expect {
                skip: offset,
                keep: count,
                transaction: pipeline.is_transaction(),
            };
            let packed = pipeline.get_packed_pipeline();
            let pack = |out: &mut Vec<u8>| out.extend_from_slice(&packed);
            match self.request(pack, expect, self.write).await? {
                Reply::Many(values) => Ok(values),
                Reply::One(_) => Err(out_of_step()),
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.target.db
    }
}

/// A reply of the other shape than its request's: a defect of this module, reported rather
/// than handed on.
fn out_of_step() -> RedisError {
    RedisError::from((
        ErrorKind::Client,
        "the Redis connection answered a request with the wrong shape of reply",
    ))
}

impl Target {
    /// Reads the server's address and login from `info` and prepares TLS; `timeouts` are the
    /// connect and command timeouts.
    fn of(
        info: &ConnectionInfo,
        certificates: Option<&TlsCertificates>,
        (connect_timeout, command_timeout): (Duration, Duration),
        redial: Redial,
    ) -> RedisResult<Target> {
        let settings = info.redis_settings();
        if settings.protocol() != ProtocolVersion::RESP2 {
            return Err(unsupported(RESP3));
        }
        let (host, port, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port, None),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                ..
            } => {
                let config = tls::client_config(certificates).map_err(|why| {
                    RedisError::from((ErrorKind::InvalidClientConfig, "TLS", why))
                })?;
                let name = ServerName::try_from(host.clone()).map_err(|_| {
                    RedisError::from((ErrorKind::InvalidClientConfig, "not a TLS server name"))
                })?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                (host.clone(), *port, Some((connector, name)))
            }
            ConnectionAddr::TcpTls { .. } => return Err(unsupported(INSECURE)),
            _ => return Err(unsupported(UNIX)),
        };
        Ok(Target {
            host,
            port,
            tls,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            db: settings.db(),
            connect_timeout,
            limits: Limits {
                max_waiting: MAX_WAITING,
                stall_after: command_timeout,
            },
            redial,
        })
    }

    /// A new connection, logged in, within the connect timeout.
    async fn dial(&self) -> RedisResult<Link> {
        match tokio::time::timeout(self.connect_timeout, self.dial_unbounded()).await {
            Ok(link) => link,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection to Redis within {:?}", self.connect_timeout),
            ))),
        }
    }

    async fn dial_unbounded(&self) -> RedisResult<Link> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        // Commands go out as they are queued: the pipelining is the driver's, not Nagle's.
        tcp.set_nodelay(true)?;
        let link = match &self.tls {
            None => spawn(tcp, self.limits),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                spawn(tls, self.limits)
            }
        };
        self.log_in(&link).await?;
        Ok(link)
    }

    /// `AUTH` and `SELECT` as the URL asks, each answered before the link is handed out.
    async fn log_in(&self, link: &Link) -> RedisResult<()> {
        if let Some(password) = &self.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(username) = &self.username {
                auth.arg(username);
            }
            auth.arg(password);
            ask(link, &auth).await?;
        }
        if self.db != 0 {
            ask(link, redis::cmd("SELECT").arg(self.db)).await?;
        }
        Ok(())
    }
}

/// Sends one command on `link` and waits for its reply.
async fn ask(link: &Link, cmd: &Cmd) -> RedisResult<Value> {
    let answered = link
        .send(|out| cmd.write_packed_command(out), Expect::ONE)
        .map_err(refused)?;
    match answered.await.unwrap_or_else(|_| Err(lost()))? {
        Reply::One(value) => value.extract_error(),
        Reply::Many(_) => Err(out_of_step()),
    }
}

/// Starts the task that drives a connection over `io`.
fn spawn<T>(io: T, limits: Limits) -> Link
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (link, driver) = driver::start(io, limits);
    tokio::spawn(async move {
        if let Err(ended) = driver.await {
            tracing::warn!(%ended, "Redis: the connection ended");
        }
    });
    link
}

const RESP3: &str = "RESP3 (protocol=resp3)";
const INSECURE: &str = "TLS without certificate checks (#insecure)";
const UNIX: &str = "Unix sockets";

/// Why this connection cannot serve `url`, for the configuration's check (the URL's own
/// syntax is checked there too); `Ok` when it can.
pub fn check_url(url: &str) -> Result<(), String> {
    let info = url
        .into_connection_info()
        .map_err(|error| error.to_string())?;
    let what = match info.addr() {
        _ if info.redis_settings().protocol() != ProtocolVersion::RESP2 => RESP3,
        ConnectionAddr::TcpTls { insecure: true, .. } => INSECURE,
        ConnectionAddr::Tcp(..) | ConnectionAddr::TcpTls { .. } => return Ok(()),
        _ => UNIX,
    };
    Err(format!(
        "{what} is not supported by registry.redis.client = \"ringcast\" (use \"redis-rs\")"
    ))
}

/// A URL this connection cannot serve: the crate's client (`client = "redis-rs"`) can.
fn unsupported(what: &'static str) -> RedisError {
    RedisError::from((
        ErrorKind::InvalidClientConfig,
        "not supported by registry.redis.client = \"ringcast\" (use \"redis-rs\")",
        what.to_owned(),
    ))
}
