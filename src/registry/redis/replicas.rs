//! Writes that wait for Redis replicas (`[cluster] replica_acks`; docs/architecture.md,
//! "Cluster semantics").
//!
//! Redis replicates asynchronously: a master answers a write before any replica has it, and
//! a master killed in that moment takes the write with it when a replica is promoted. For
//! the registry that costs nothing (the device registers again), but for a call event it
//! does: a lost claim or finish lets a retried event ring twice, and a lost intake entry
//! leaves an accepted ring only in the memory of the node that accepted it. With
//! `replica_acks = n` each such write is followed by `WAIT n timeout` in the same pipeline,
//! so the node goes on only once `n` replicas hold it, or the timeout passed.
//!
//! A timeout does not fail the write: it is counted (`ringcast_replica_acks_total{outcome=
//! "short"}`) and the event goes on. Refusing calls because a replica is slow or down would
//! turn a replica's outage into an outage of calls; the master still holds the write, and
//! only a failover in the same moment can lose it. `WAIT` narrows the window, it does not make
//! Redis synchronous (a failover may still pick a replica that had not confirmed).
//!
//! In a Redis Cluster the pipeline goes to the node of its script's key (a keyless `WAIT`
//! follows the first keyed command), so `WAIT` counts that shard's replicas.

use crate::metrics::replicas::{ReplicaAck, ReplicatedWrite, replica_ack};
use redis::aio::ConnectionLike;
use redis::{ErrorKind, FromRedisValue, RedisResult, ScriptInvocation, ServerErrorKind};

/// How many replicas must confirm a cluster write, and how long the node waits for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaAcks {
    /// Replicas that must confirm; 0 (the default) does not wait at all.
    pub replicas: u32,
    /// The longest wait, in milliseconds; what is not confirmed by then is counted as short.
    pub timeout_ms: u64,
}

/// Runs `invocation` (a script writing one key) and, when `acks` asks for replicas, waits for
/// them in the same round trip. The script's answer is returned either way.
pub async fn invoke<C, T>(
    connection: &mut C,
    invocation: &ScriptInvocation<'_>,
    acks: ReplicaAcks,
    write: ReplicatedWrite,
) -> RedisResult<T>
where
    C: ConnectionLike,
    T: FromRedisValue,
{
    if acks.replicas == 0 {
        return invocation.invoke_async(connection).await;
    }
    let mut pipeline = redis::pipe();
    pipeline
        .invoke_script(invocation)
        .cmd("WAIT")
        .arg(acks.replicas)
        .arg(acks.timeout_ms);
    let answered: RedisResult<(T, u32)> = match pipeline.query_async(connection).await {
        // A server that lost its script cache (restarted, failed over) answers NOSCRIPT: load
        // the script and send the pipeline again, as `invoke_async` does for a lone script.
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            invocation.load_async(connection).await?;
            pipeline.query_async(connection).await
        }
        answered => answered,
    };
    let (answer, confirmed) = answered?;
    let outcome = if confirmed >= acks.replicas {
        ReplicaAck::Confirmed
    } else {
        ReplicaAck::Short
    };
    replica_ack(write, outcome);
    Ok(answer)
}
