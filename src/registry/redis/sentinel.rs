//! A connection to the master that Redis Sentinel names, which finds the master again after
//! a failover (`store = "redis-sentinel"`).
//!
//! The redis crate's Sentinel client resolves the master once per connection it opens; it
//! has no reconnecting manager. [`SentinelConnection`] adds that: it multiplexes every call
//! over one connection to the current master, and when a call shows that the master is gone
//! (the connection broke, or the server answers `READONLY` because a failover turned it into
//! a replica), the first caller to notice asks the Sentinels again and swaps in a connection
//! to whichever master they name now. Calls failing meanwhile fail fast, as with the other
//! stores while Redis is down; a call refused without running (`READONLY`, connection refused)
//! is sent once more to the new master, since it cannot have taken effect on the old one.
//!
//! Two logins are involved: the Sentinels' (from their URLs) and the master's
//! ([`MasterLogin`], from `registry.redis.master_*`), since operators protect them apart.
//!
//! The connection to the master is ringcast's own ([`super::pipelined`], `[registry.redis]
//! client = "ringcast"`, the default) or the crate's multiplexed one (`"redis-rs"`). The own
//! one is opened not to dial the same address again when it ends: that is this module's
//! decision, after asking the Sentinels.

use super::pipelined::{Bookkeeping, PipelinedConnection, Redial, Write};
use super::single::{EitherClient, RedisClient};
use super::tls::install_ring;
use crate::config::Secret;
use arc_swap::ArcSwap;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, TlsCertificates, TlsMode, Value,
};
use std::sync::Arc;
use std::time::Duration;

/// A cheap-to-clone handle on the current master's connection.
#[derive(Clone)]
pub struct SentinelConnection {
    shared: Arc<Shared>,
    /// When this handle's commands are written.
    write: Write,
}

impl Bookkeeping for SentinelConnection {
    fn for_bookkeeping(&self) -> SentinelConnection {
        SentinelConnection {
            write: Write::WithNext,
            ..self.clone()
        }
    }
}

/// What every clone shares.
struct Shared {
    /// Asks the Sentinels; behind a lock because its lookups take `&mut self`, and so that one
    /// caller at a time re-resolves the master.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The connection calls use now, with a generation number so that callers that saw the same
    /// broken connection re-resolve it once, not once each.
    current: ArcSwap<Current>,
    /// How each new connection to a master is opened.
    opening: Opening,
}

/// One connection to one master.
struct Current {
    generation: u64,
    connection: Master,
}

/// How a connection to the master is opened: which client, its timeouts, the certificates.
struct Opening {
    client: RedisClient,
    /// Connect, command.
    timeouts: (Duration, Duration),
    certificates: Option<TlsCertificates>,
}

/// A connection to the master, of either client; the own one never dials again by itself.
type Master = EitherClient<MultiplexedConnection>;

impl Opening {
    /// A connection to the master the Sentinels name now.
    async fn open(&self, sentinel: &mut SentinelClient) -> RedisResult<Master> {
        match self.client {
            RedisClient::RedisRs => {
                let (connect, command) = self.timeouts;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect))
                    .set_response_timeout(Some(command));
                sentinel
                    .get_async_connection_with_config(&config)
                    .await
                    .map(EitherClient::Crate)
            }
            RedisClient::Ringcast => {
                // The master's address as the Sentinels give it, with the login and TLS
                // mode [`sentinel_client`] configured for it.
                let master = sentinel.async_get_client().await?;
                let info = master.get_connection_info();
                let certificates = self.certificates.as_ref();
                PipelinedConnection::connect_to(info, certificates, self.timeouts, Redial::No)
                    .await
                    .map(EitherClient::Own)
            }
        }
    }
}

/// Where the Sentinels are and what to ask them.
pub struct SentinelTarget<'a> {
    /// `redis://host:26379` (or `rediss://`) of each Sentinel; credentials in a URL are the
    /// Sentinels' own.
    pub sentinels: &'a [String],
    /// The master's name (`sentinel monitor <name> ...`).
    pub master: &'a str,
    /// CA and client certificate for TLS, used when the Sentinel URLs are `rediss://` (the
    /// master is then reached over TLS too).
    pub certificates: Option<&'a TlsCertificates>,
    /// How to log in to the master (and each master after a failover).
    pub login: &'a MasterLogin,
}

/// The master's login: its own, not the Sentinels'. The default logs in to no user, db 0.
#[derive(Clone, Debug, Default)]
pub struct MasterLogin {
    /// The ACL user (`None`: the `default` user).
    pub username: Option<String>,
    /// `requirepass` or the ACL user's password; `Debug` prints `[redacted]`.
    pub password: Option<Secret>,
    /// The database number (`SELECT`).
    pub db: i64,
}

impl SentinelConnection {
    /// Asks the Sentinels for the master and connects to it with `client`.
    pub async fn connect(
        target: &SentinelTarget<'_>,
        client: RedisClient,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> RedisResult<Self> {
        let mut sentinel = sentinel_client(target)?;
        let opening = Opening {
            client,
            timeouts: (connect_timeout, command_timeout),
            certificates: target.certificates.cloned(),
        };
        let connection = opening.open(&mut sentinel).await?;
        Ok(SentinelConnection {
            write: Write::Now,
            shared: Arc::new(Shared {
                sentinel: tokio::sync::Mutex::new(sentinel),
                current: ArcSwap::from_pointee(Current {
                    generation: 0,
                    connection,
                }),
                opening,
            }),
        })
    }

    /// Replaces the connection of generation `failed` by one to the master the Sentinels name
    /// now. Returns whether a usable connection newer than `failed` is in place. Another
    /// caller already re-resolving is not waited for: this call fails fast instead.
    async fn refresh(&self, failed: u64) -> bool {
        let Ok(mut sentinel) = self.shared.sentinel.try_lock() else {
            return false;
        };
        if self.shared.current.load().generation != failed {
            return true;
        }
        match self.shared.opening.open(&mut sentinel).await {
            Ok(connection) => {
                self.shared.current.store(Arc::new(Current {
                    generation: failed + 1,
                    connection,
                }));
                tracing::info!("Redis Sentinel: reconnected to the master it names now");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "Redis Sentinel: no master reachable yet");
                false
            }
        }
    }

    /// The connection in use now, and its generation.
    fn current(&self) -> (u64, Master) {
        let current = self.shared.current.load();
        let connection = match self.write {
            Write::Now => current.connection.clone(),
            Write::WithNext => current.connection.for_bookkeeping(),
        };
        (current.generation, connection)
    }

    /// After a call on the connection of `generation` failed with `error`: re-resolves the
    /// master if the error says it is lost, and returns the new connection when the call
    /// cannot have run and may be sent again (module doc).
    async fn recover(&self, generation: u64, error: &RedisError) -> Option<Master> {
        if !lost_master(error) {
            return None;
        }
        let refreshed = self.refresh(generation).await;
        (refreshed && not_run(error)).then(|| self.current().1)
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut connection) = self.current();
            match refused_by_replica(connection.req_packed_command(cmd).await) {
                Err(error) => match self.recover(generation, &error).await {
                    Some(mut connection) => connection.req_packed_command(cmd).await,
                    None => Err(error),
                },
                answer => answer,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut connection) = self.current();
            match connection
                .req_packed_commands(pipeline, offset, count)
                .await
            {
                Err(error) => match self.recover(generation, &error).await {
                    Some(mut connection) => {
                        connection
                            .req_packed_commands(pipeline, offset, count)
                            .await
                    }
                    None => Err(error),
                },
                answer => answer,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.current.load().connection.get_db()
    }
}

/// The crate's Sentinel client for `target`; TLS (and its certificates) for the Sentinels and
/// the master when the Sentinel URLs are `rediss://`.
pub fn sentinel_client(target: &SentinelTarget<'_>) -> RedisResult<SentinelClient> {
    let infos = target
        .sentinels
        .iter()
        .map(|url| url.as_str().into_connection_info())
        .collect::<RedisResult<Vec<_>>>()?;
    let tls = target
        .sentinels
        .iter()
        .any(|url| url.starts_with("rediss://"));
    if tls {
        install_ring();
    }
    let Some(first) = infos.first() else {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "no Sentinel URL given",
        )));
    };
    // The Sentinels' credentials, from their URLs (all Sentinels of a master share them).
    let (username, password) = (
        first.redis_settings().username().map(str::to_owned),
        first.redis_settings().password().map(str::to_owned),
    );
    let addresses = infos.into_iter().map(|info| info.addr().clone());
    let mut builder =
        SentinelClientBuilder::new(addresses, target.master, SentinelServerType::Master)?;
    if let Some(username) = username {
        builder = builder.set_client_to_sentinel_username(username);
    }
    if let Some(password) = password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    let login = target.login;
    if let Some(username) = &login.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &login.password {
        let password = std::str::from_utf8(password.expose()).map_err(|_| {
            // Validation refuses such a password; the message never carries its bytes.
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "registry.redis.master_password is not UTF-8",
            ))
        })?;
        builder = builder.set_client_to_redis_password(password);
    }
    builder = builder.set_client_to_redis_db(login.db);
    if tls {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certificates) = target.certificates {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates.clone());
        }
    }
    builder.build()
}

/// A command's answer, with a `READONLY` reply made the error it is here. The crate's
/// connection hands a server's error reply on as a value (whoever reads it makes it an
/// error), so without this a master that a failover turned into a replica without dropping
/// our connection would refuse every write until the connection broke, never asking the
/// Sentinels again.
fn refused_by_replica(answer: RedisResult<Value>) -> RedisResult<Value> {
    match answer {
        Ok(Value::ServerError(error)) if error.kind() == Some(ServerErrorKind::ReadOnly) => {
            Err(error.into())
        }
        answer => answer,
    }
}

/// Whether `error` says the connection no longer reaches a writable master.
fn lost_master(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || is_read_only(error)
}

/// Whether `error` proves the call never ran, so sending it again cannot apply it twice.
fn not_run(error: &RedisError) -> bool {
    is_read_only(error) || error.is_connection_refusal()
}

fn is_read_only(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(bytes: &[u8]) -> RedisResult<Value> {
        redis::parse_redis_value(bytes)
    }

    #[test]
    fn a_readonly_reply_is_a_lost_master_that_never_ran_the_call() {
        let error = refused_by_replica(reply(
            b"-READONLY You can't write against a read only replica.\r\n",
        ))
        .unwrap_err();
        assert!(lost_master(&error) && not_run(&error), "{error}");
    }

    #[test]
    fn other_replies_and_errors_pass_as_they_came() {
        let other = refused_by_replica(reply(b"-ERR unknown command\r\n")).unwrap();
        assert!(matches!(other, Value::ServerError(_)), "{other:?}");
        assert_eq!(refused_by_replica(reply(b":1\r\n")).unwrap(), Value::Int(1));
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(refused_by_replica(Err(dropped)).unwrap_err().is_io_error());
    }
}
