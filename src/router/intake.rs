//! Durable intake on Redis Streams (docs/architecture.md, "Cluster semantics"; README "Durable
//! intake"): with `[intake] durable = true`, a call event is appended to a stream before the
//! API answers, and stays pending there until every device has an outcome.
//!
//! # How an entry travels
//!
//! 1. **Accepted here.** The router that takes an API request appends the event with one
//!    script ([`APPEND`]): `XADD ... MAXLEN ~ max_len` and, in the same atomic step, delivers
//!    it to this node's consumer in the group ([`GROUP`], consumer = the node id), so it is
//!    pending *here* at once and no other node reads it as new. Then the event goes the way
//!    of a direct one — the ownership lease, the fan-out, `202` or the `?wait=true` outcomes —
//!    and once every device has an outcome the entry is acknowledged (`XACK`). A duplicate
//!    event's entry is acknowledged at once (the original has its own entry, or finished);
//!    an event refused with `503` is too (call control retries it; nothing may ring later).
//! 2. **Left by a dead node.** Every node runs one [`reader`] per stream. It claims entries
//!    idle for a lease (`XAUTOCLAIM`, min-idle = `[cluster] lease_ms`) — a node that died
//!    holding them renews neither its leases nor its entries — and routes each one through
//!    the same path, keeping the event's deadline: the lease is taken over, devices that
//!    already have an outcome are skipped. An entry whose owner still has the event in
//!    flight (its lease runs) is left pending and looked at again a lease later; one whose
//!    event finished is acknowledged as a duplicate.
//! 3. **Appended by someone else** (call control writing to the stream itself, entries from
//!    before a group existed): the reader's blocking `XREADGROUP ... >` picks them up.
//!
//! An entry past its event's deadline is acknowledged as expired and never rung. A node that
//! stops (SIGTERM) stops reading at once; the entries of its events that do not finish before
//! it exits stay pending, and the other nodes claim them.
//!
//! # Streams
//!
//! One stream on one server or Sentinel; on a Redis Cluster `[intake] streams` (16 unless
//! set), each on a hash tag in its own slot range so every master carries intake
//! ([`streams`]); an event's stream is picked by a hash of its tenant and event id. Every node
//! reads every stream.
//!
//! # Why the accepting node delivers its own entries
//!
//! It already holds the request, and `?wait=true` must answer with the outcomes: routing the
//! event through another node's read would add a hop to every ring and lose the answer. The
//! stream is what makes the event outlive the node; it is read for delivery only when the
//! node is gone. The cost is the append script and one `XACK` per event.

pub mod entry;
pub mod reader;
pub mod streams;

use crate::config::Config;
use crate::metrics::intake::{self as counted, EntryOutcome};
use crate::registry::lease::Progress;
use crate::registry::redis::command::ScriptCall;
use crate::registry::{AnyStore, StoreError};
use crate::router::ends::EndChannel;
use redis::Script;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// The consumer group every node reads in.
pub const GROUP: &str = "ringcast";

/// Appends an entry and delivers it to this node's consumer at once. `KEYS[1]` the stream;
/// `ARGV`: group, consumer, max length, the entry's `e` field. Returns the entry's id.
///
/// The read takes the oldest entry new to the group, which is this one unless another
/// producer's entries wait unread; then this one is claimed for the node directly (`XCLAIM
/// FORCE`) and the others are left to the readers. A stream without the group (new, or
/// flushed) gets it here, from the stream's start, so no entry is skipped.
pub static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[4])
local got = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', '1', 'STREAMS', key, '>')
if type(got) == 'table' and got.err then
  redis.call('XGROUP', 'CREATE', key, group, '0')
  got = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', '1', 'STREAMS', key, '>')
end
if not (got and got[1] and got[1][2][1] and got[1][2][1][1] == id) then
  redis.call('XCLAIM', key, group, consumer, '0', id, 'FORCE', 'JUSTID')
end
return id
"#,
    )
});

/// One entry of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRef {
    /// Which stream (an index into the node's stream keys).
    pub stream: usize,
    /// The entry's id in it.
    pub id: String,
}

/// The node's durable intake: its streams, its name in the group and its limits. One per
/// node, cloned into every router; cheap to clone.
#[derive(Clone, Debug)]
pub struct DurableIntake(Arc<Settings>);

#[derive(Debug)]
struct Settings {
    /// The streams' keys, in stream order.
    keys: Vec<String>,
    /// This node's consumer name: its node id.
    consumer: String,
    /// `[intake] max_len`.
    max_len: u64,
    /// `[intake] read_batch`.
    read_batch: usize,
    /// `[intake] block_ms`.
    block: Duration,
    /// An entry idle this long is claimed: the ownership lease.
    claim_idle: Duration,
    /// How long one Redis command may take.
    command_timeout: Duration,
}

impl DurableIntake {
    /// The node's intake when `[intake] durable` is on (validation made sure the store is
    /// Redis), else `None`.
    pub fn from_config(config: &Config, node: &str) -> Option<DurableIntake> {
        let intake = &config.intake;
        intake.durable.then(|| {
            DurableIntake(Arc::new(Settings {
                keys: streams::stream_keys(
                    &intake.name,
                    intake.stream_count(config.registry.store),
                ),
                consumer: node.to_owned(),
                max_len: intake.max_len,
                read_batch: intake.read_batch,
                block: intake.block(),
                claim_idle: config.cluster.lease(),
                command_timeout: Duration::from_millis(config.registry.redis.command_timeout_ms),
            }))
        })
    }

    /// The intake over one router's store connection (`None` for the embedded store, which
    /// validation refuses with durable intake).
    pub fn on(&self, store: &AnyStore) -> Option<RouterIntake> {
        let redis = EndChannel::of_store(store)?;
        Some(RouterIntake {
            intake: self.clone(),
            redis,
        })
    }

    /// The streams' keys.
    pub fn keys(&self) -> &[String] {
        &self.0.keys
    }

    /// This node's consumer name.
    pub fn consumer(&self) -> &str {
        &self.0.consumer
    }
}

/// The durable intake as one router uses it: over its own store connection, so the
/// appends of a router travel with the rest of its Redis traffic, on its thread.
#[derive(Clone)]
pub struct RouterIntake {
    intake: DurableIntake,
    redis: EndChannel,
}

impl RouterIntake {
    /// Appends `entry` (its `e` field, see [`entry`]) for `event_id` of `tenant`, pending on
    /// this node. An error means nothing was appended (or its answer was lost: the entry is
    /// then pending here, and claimed by a node after a lease).
    pub async fn append(
        &self,
        tenant: &str,
        event_id: &str,
        entry: String,
    ) -> Result<EntryRef, StoreError> {
        let settings = &self.intake.0;
        let stream = streams::stream_of(tenant, event_id, settings.keys.len());
        let mut invocation = ScriptCall::new(&APPEND, &settings.keys[stream]);
        invocation
            .arg(GROUP)
            .arg(&settings.consumer)
            .arg(settings.max_len)
            .arg(entry);
        let appended =
            tokio::time::timeout(settings.command_timeout, self.redis.invoke(&invocation)).await;
        match appended {
            Ok(Ok(id)) => {
                counted::entries(EntryOutcome::Appended, 1);
                Ok(EntryRef { stream, id })
            }
            Ok(Err(error)) => {
                counted::entries(EntryOutcome::AppendFailed, 1);
                Err(StoreError::Unavailable(error.to_string()))
            }
            Err(_) => {
                counted::entries(EntryOutcome::AppendFailed, 1);
                Err(StoreError::Unavailable(format!(
                    "redis did not answer the intake append within {:?}",
                    settings.command_timeout
                )))
            }
        }
    }

    /// Acknowledges `entry`, counted as `outcome`. A failure is counted and logged, not
    /// returned: the entry is then claimed again after a lease and found finished.
    pub async fn ack(&self, entry: &EntryRef, outcome: EntryOutcome) {
        let settings = &self.intake.0;
        let mut command = redis::cmd("XACK");
        command
            .arg(&settings.keys[entry.stream])
            .arg(GROUP)
            .arg(&entry.id);
        let acked =
            tokio::time::timeout(settings.command_timeout, self.redis.query::<i64>(&command)).await;
        match acked {
            Ok(Ok(_)) => counted::entries(outcome, 1),
            Ok(Err(error)) => {
                counted::entries(EntryOutcome::AckFailed, 1);
                tracing::warn!(%error, "could not acknowledge an intake entry; it is claimed again after a lease");
            }
            Err(_) => {
                counted::entries(EntryOutcome::AckFailed, 1);
                tracing::warn!(
                    "no answer to an intake acknowledgement; it is claimed again after a lease"
                );
            }
        }
    }
}

/// How an event reached its router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Through this node's API: appended to the intake first when it is durable.
    Api,
    /// From an intake stream (claimed from a dead node, or appended by another producer),
    /// accepted at `accepted_at` (UNIX ms): its deadline counts from then.
    Stream {
        /// The entry.
        entry: EntryRef,
        /// When the event was accepted.
        accepted_at: crate::vocab::UnixMillis,
    },
}

/// The intake entry an event is being routed with, and what becomes of it on each way out.
pub struct Pending {
    intake: RouterIntake,
    entry: EntryRef,
    /// Appended by this request (the API's caller is waiting) rather than read from a stream.
    appended_here: bool,
}

impl Pending {
    /// The entry of an event arriving by `arrival` at a router with `intake`: appended now
    /// for an API request (an append error is the request's `503`), the stream's entry
    /// otherwise; `None` without durable intake.
    pub async fn of(
        intake: Option<&RouterIntake>,
        arrival: &Arrival,
        tenant: &str,
        event_id: &str,
        entry: impl FnOnce() -> String,
    ) -> Result<Option<Pending>, StoreError> {
        let Some(intake) = intake else {
            return Ok(None);
        };
        let (entry, appended_here) = match arrival {
            Arrival::Api => (intake.append(tenant, event_id, entry()).await?, true),
            Arrival::Stream { entry, .. } => (entry.clone(), false),
        };
        Ok(Some(Pending {
            intake: intake.clone(),
            entry,
            appended_here,
        }))
    }

    /// Every device has an outcome: acknowledged.
    pub async fn delivered(self) {
        self.intake.ack(&self.entry, EntryOutcome::Acked).await;
    }

    /// The event was a duplicate. An entry appended for it now is acknowledged (the original
    /// has its own entry, or finished); a stream's entry only once the event finished, else
    /// it is left for a later look (its owner still has it in flight).
    pub async fn duplicate(self, progress: Option<&Progress>) {
        let finished = progress.is_some_and(|progress| progress.finished);
        // A stream's entry left pending is counted `deferred` by its reader.
        if self.appended_here || finished {
            self.intake.ack(&self.entry, EntryOutcome::Duplicate).await;
        }
    }

    /// The event could not be routed now. An entry appended for it now is acknowledged: the
    /// caller is told `503` and retries, so it must not ring later too. A stream's entry is
    /// left pending, for a claim after a lease.
    pub async fn refused(self) {
        if self.appended_here {
            self.intake.ack(&self.entry, EntryOutcome::Refused).await;
        }
    }
}
