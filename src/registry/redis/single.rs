//! The connection of the store over one Redis server (`store = "redis"`): the redis crate's
//! reconnecting `ConnectionManager`, or ringcast's own pipelined connection
//! ([`super::pipelined`]), as `[registry.redis] client` says. Both multiplex every clone of
//! the store over one socket and give the same answers, so the store, the call-end channel
//! and the settings check use either through the one type below (the Sentinel store's
//! connection to its master is the same choice over the crate's multiplexed connection, a
//! cluster's the choice between the crate's cluster client and [`super::cluster`]).

use super::pipelined::{Bookkeeping, PipelinedConnection};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// Which Redis client a single-server store speaks with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisClient {
    /// The redis crate's `ConnectionManager`.
    RedisRs,
    /// ringcast's own: commands queued between two wake-ups of the connection's task go out
    /// in one write, replies decoded by hand ([`super::pipelined`]); ~7 % fewer instructions
    /// per push end to end than the crate's (docs/performance.md).
    #[default]
    Ringcast,
}

/// A connection of either client: the crate's `C`, or ringcast's own `O` (to one server, or
/// to a cluster's masters).
#[derive(Clone)]
pub enum EitherClient<C, O = PipelinedConnection> {
    /// The redis crate's.
    Crate(C),
    /// ringcast's own.
    Own(O),
}

/// A single server's connection: the crate's reconnecting manager, or the own one.
pub type SingleConnection = EitherClient<ConnectionManager>;

impl<C: Clone, O: Bookkeeping> Bookkeeping for EitherClient<C, O> {
    fn for_bookkeeping(&self) -> Self {
        match self {
            EitherClient::Crate(crate_connection) => EitherClient::Crate(crate_connection.clone()),
            EitherClient::Own(own) => EitherClient::Own(own.for_bookkeeping()),
        }
    }
}

impl<C: ConnectionLike + Send, O: ConnectionLike + Send> ConnectionLike for EitherClient<C, O> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            EitherClient::Crate(connection) => connection.req_packed_command(cmd),
            EitherClient::Own(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            EitherClient::Crate(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            EitherClient::Own(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            EitherClient::Crate(connection) => connection.get_db(),
            EitherClient::Own(connection) => connection.get_db(),
        }
    }
}
