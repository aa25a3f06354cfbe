//! The connection of the store over one Redis server (`store = "redis"`): the redis crate's
//! reconnecting `ConnectionManager`, or ringcast's own pipelined connection
//! ([`super::pipelined`]), as `[registry.redis] client` says. Both multiplex every clone of
//! the store over one socket and give the same answers, so the store, the call-end channel
//! and the settings check use either through the one type below.

use super::pipelined::PipelinedConnection;
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

/// A single server's connection, of either client.
#[derive(Clone)]
pub enum SingleConnection {
    /// The redis crate's.
    Manager(ConnectionManager),
    /// ringcast's own.
    Pipelined(PipelinedConnection),
}

impl ConnectionLike for SingleConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            SingleConnection::Manager(connection) => connection.req_packed_command(cmd),
            SingleConnection::Pipelined(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            SingleConnection::Manager(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            SingleConnection::Pipelined(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            SingleConnection::Manager(connection) => connection.get_db(),
            SingleConnection::Pipelined(connection) => connection.get_db(),
        }
    }
}
