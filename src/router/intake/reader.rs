//! The node's stream readers (one task per intake stream, each on a connection of its own,
//! since a blocking read holds its connection): they claim entries left idle for a lease by
//! a dead node (`XAUTOCLAIM`), read entries new to the group (`XREADGROUP ... BLOCK`), and
//! route each through the node's routers (see the parent module for what becomes of them).
//! They stop reading when the node starts draining; what they read and did not finish stays
//! pending for the other nodes.

mod replies;

use super::entry::{Entry, Event};
use super::{Arrival, DurableIntake, EntryRef, GROUP};
use crate::clock::Clock;
use crate::config::RegistryConfig;
use crate::metrics::intake::{self as counted, EntryOutcome};
use crate::registry::redis::command::ScriptCall;
use crate::router::ends::EndChannel;
use crate::router::{Routed, Routers};
use anyhow::Context;
use redis::{Script, Value};
use replies::{Claimed, read_entries};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::watch;

/// How long a reader waits after a failed read before it tries again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// The most `XAUTOCLAIM` rounds (of `read_batch` entries each) per claim pass: bounded work.
const CLAIM_ROUNDS: usize = 16;
/// How often a reader forgets the group's consumers of nodes long gone.
const FORGET_EVERY: Duration = Duration::from_secs(60);
/// A consumer idle this long with nothing pending is a node that is gone: every living
/// node's readers touch theirs at least every `block_ms`.
const FORGET_IDLE: Duration = Duration::from_secs(600);

/// Deletes the group's consumers that have nothing pending and have been idle for
/// `ARGV[2]` ms, but this node's (`ARGV[3]`): a node id is new at every start by default, so
/// without this the group would keep one consumer per start forever. Checked and deleted in
/// one step, so a consumer that just got an entry is never deleted with it. Returns how many.
static FORGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) and f['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
"#,
    )
});

/// Tells the readers to stop reading (the node is draining). Cheap to clone.
#[derive(Clone)]
pub struct StopReading(Arc<watch::Sender<bool>>);

impl StopReading {
    /// From now on no reader reads or claims; entries already routed finish.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// The node's readers, one per stream.
pub struct Readers {
    stop: StopReading,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Readers {
    /// Connects one reader per stream of `intake` (making the group where it is missing) and
    /// starts them, routing through `routers`; entries past their deadline by `clock` are
    /// acknowledged unrouted.
    pub async fn start(
        intake: &DurableIntake,
        registry: &RegistryConfig,
        routers: Routers,
        clock: Clock,
    ) -> anyhow::Result<Readers> {
        let (stop, stopped) = watch::channel(false);
        let settings = &intake.0;
        // A blocking read answers after `block`: the connection waits that long and more.
        let block = settings.block.min(claim_every(settings.claim_idle));
        let response_timeout = block + settings.command_timeout;
        let mut tasks = Vec::with_capacity(settings.keys.len());
        for (stream, key) in settings.keys.iter().enumerate() {
            let redis = connect(registry, response_timeout)
                .await
                .with_context(|| format!("connecting the intake reader of {key}"))?;
            let reader = StreamReader {
                intake: intake.clone(),
                stream,
                key: key.clone(),
                redis,
                routers: routers.clone(),
                block,
                clock,
            };
            reader
                .make_group()
                .await
                .with_context(|| format!("creating the consumer group of {key}"))?;
            tasks.push(actix_rt::spawn(reader.run(stopped.clone())));
        }
        Ok(Readers {
            stop: StopReading(Arc::new(stop)),
            tasks,
        })
    }

    /// A handle that stops the readers (for the drain).
    pub fn stopper(&self) -> StopReading {
        self.stop.clone()
    }

    /// Ends the reader tasks (the node stopped).
    pub fn abort(self) {
        self.stop.stop();
        for task in self.tasks {
            task.abort();
        }
    }
}

/// How often idle entries are looked for: twice per lease, so a dead node's entries are
/// claimed between one and one and a half leases after its last renewal.
fn claim_every(lease: Duration) -> Duration {
    (lease / 2).max(Duration::from_millis(10))
}

/// One stream's reader.
struct StreamReader {
    intake: DurableIntake,
    stream: usize,
    key: String,
    redis: EndChannel,
    routers: Routers,
    block: Duration,
    clock: Clock,
}

impl StreamReader {
    /// `XGROUP CREATE ... 0 MKSTREAM`, unless the group exists.
    async fn make_group(&self) -> redis::RedisResult<()> {
        let mut command = redis::cmd("XGROUP");
        command
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.redis.query::<()>(&command).await {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Claims and reads until told to stop.
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let every = claim_every(self.intake.0.claim_idle);
        let mut next_claim = tokio::time::Instant::now();
        let mut next_forget = tokio::time::Instant::now() + FORGET_EVERY;
        loop {
            if *stopped.borrow() {
                return;
            }
            if tokio::time::Instant::now() >= next_forget {
                next_forget = tokio::time::Instant::now() + FORGET_EVERY;
                self.forget_gone_consumers().await;
            }
            if tokio::time::Instant::now() >= next_claim {
                next_claim = tokio::time::Instant::now() + every;
                if let Err(error) = self.claim_idle().await {
                    tracing::warn!(stream = %self.key, %error, "intake claim failed");
                }
                self.count_pending().await;
            }
            let read = tokio::select! {
                read = self.read_new() => read,
                _ = stopped.changed() => return,
            };
            match read {
                Ok(entries) => self.route_all(entries, EntryOutcome::Read).await,
                Err(error) => {
                    tracing::warn!(stream = %self.key, %error, "intake read failed; retrying");
                    if error.code() == Some("NOGROUP") {
                        let _ = self.make_group().await;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
        }
    }

    /// Claims the entries idle for a lease (`XAUTOCLAIM`), a bounded number of rounds, and
    /// routes them; entries trimmed away while pending are counted.
    async fn claim_idle(&self) -> redis::RedisResult<()> {
        let settings = &self.intake.0;
        let mut cursor = "0-0".to_owned();
        for _ in 0..CLAIM_ROUNDS {
            let mut command = redis::cmd("XAUTOCLAIM");
            command
                .arg(&self.key)
                .arg(GROUP)
                .arg(&settings.consumer)
                .arg(settings.claim_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(settings.read_batch);
            let answer: Value = self.redis.query(&command).await?;
            let claimed = Claimed::of(&answer);
            if !claimed.trimmed.is_empty() {
                counted::entries(EntryOutcome::Trimmed, claimed.trimmed.len() as u64);
                tracing::error!(stream = %self.key, entries = claimed.trimmed.len(),
                    "pending intake entries were trimmed before delivery: raise intake.max_len");
            }
            self.route_all(claimed.entries, EntryOutcome::Claimed).await;
            match claimed.cursor {
                Some(next) if next != "0-0" => cursor = next,
                _ => break,
            }
        }
        Ok(())
    }

    /// Entries new to the group, waiting up to `block` for some.
    async fn read_new(&self) -> redis::RedisResult<Vec<(String, Option<String>)>> {
        let settings = &self.intake.0;
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(&settings.consumer)
            .arg("COUNT")
            .arg(settings.read_batch)
            .arg("BLOCK")
            .arg(self.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">");
        let answer: Value = self.redis.query(&command).await?;
        Ok(read_entries(&answer))
    }

    /// Deletes the consumers of nodes long gone ([`FORGET`]); a failure only waits for the
    /// next round.
    async fn forget_gone_consumers(&self) {
        let mut invocation = ScriptCall::new(&FORGET, &self.key);
        invocation
            .arg(GROUP)
            .arg(FORGET_IDLE.as_millis() as u64)
            .arg(&self.intake.0.consumer);
        match self.redis.invoke::<i64>(&invocation).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(stream = %self.key, removed, "forgot the intake consumers of nodes gone");
            }
            Err(error) => {
                tracing::debug!(stream = %self.key, %error, "could not forget gone consumers");
            }
        }
    }

    /// Sets the pending gauge from `XPENDING`'s summary.
    async fn count_pending(&self) {
        let mut command = redis::cmd("XPENDING");
        command.arg(&self.key).arg(GROUP);
        if let Ok(Value::Array(summary)) = self.redis.query::<Value>(&command).await
            && let Some(Value::Int(count)) = summary.first()
        {
            counted::pending(self.stream, (*count).max(0) as u64);
        }
    }

    /// Routes a batch of entries at once: expired and malformed ones are acknowledged here;
    /// the rest go to their routers, which acknowledge them when they are done.
    async fn route_all(&self, entries: Vec<(String, Option<String>)>, how: EntryOutcome) {
        if entries.is_empty() {
            return;
        }
        counted::entries(how, entries.len() as u64);
        let now = self.clock.now();
        let mut expired = Vec::new();
        let mut malformed = Vec::new();
        let mut routes = Vec::new();
        for (id, field) in entries {
            let entry = match field.as_deref().map(Entry::decode) {
                Some(Ok(entry)) => entry,
                Some(Err(error)) => {
                    tracing::warn!(stream = %self.key, %error, "acknowledging an unreadable intake entry");
                    malformed.push(id);
                    continue;
                }
                None => {
                    tracing::warn!(stream = %self.key, "acknowledging an intake entry without its field");
                    malformed.push(id);
                    continue;
                }
            };
            if entry.deadline() <= now {
                expired.push(id);
                continue;
            }
            let arrival = Arrival::Stream {
                entry: EntryRef {
                    stream: self.stream,
                    id,
                },
                accepted_at: entry.accepted_at,
            };
            routes.push(deliver(&self.routers, entry.event, arrival));
        }
        self.ack(&expired, EntryOutcome::Expired).await;
        self.ack(&malformed, EntryOutcome::Malformed).await;
        // The routers acknowledge what they finish or find finished; the rest stays pending
        // for a later claim.
        let deferred = futures_util::future::join_all(routes)
            .await
            .iter()
            .filter(|routed| match routed {
                Ok(routed) => routed.duplicate && !finished(routed),
                Err(_) => true,
            })
            .count();
        if deferred > 0 {
            counted::entries(EntryOutcome::Deferred, deferred as u64);
        }
    }

    /// Acknowledges `ids`, counted as `outcome`.
    async fn ack(&self, ids: &[String], outcome: EntryOutcome) {
        if ids.is_empty() {
            return;
        }
        let mut command = redis::cmd("XACK");
        command.arg(&self.key).arg(GROUP).arg(ids);
        match self.redis.query::<i64>(&command).await {
            Ok(_) => counted::entries(outcome, ids.len() as u64),
            Err(error) => {
                counted::entries(EntryOutcome::AckFailed, ids.len() as u64);
                tracing::warn!(stream = %self.key, %error, "could not acknowledge intake entries");
            }
        }
    }
}

/// Whether a duplicate's owner finished the event.
fn finished(routed: &Routed) -> bool {
    routed
        .progress
        .as_ref()
        .is_some_and(|progress| progress.finished)
}

/// Routes one stream entry's event through its callee's router.
async fn deliver(
    routers: &Routers,
    event: Event,
    arrival: Arrival,
) -> Result<Routed, crate::router::RoutersError> {
    match event {
        Event::Ring(call) => routers.ring_arriving(call, arrival).await,
        Event::End(end) => routers.end_arriving(end, arrival).await,
    }
}

/// A connection of its own to the store's Redis whose answers may take `response_timeout`.
async fn connect(
    registry: &RegistryConfig,
    response_timeout: Duration,
) -> anyhow::Result<EndChannel> {
    EndChannel::connect_answering_within(registry, response_timeout)
        .await?
        .context("durable intake needs a Redis store")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_entries_are_looked_for_twice_per_lease() {
        assert_eq!(
            claim_every(Duration::from_secs(3)),
            Duration::from_millis(1_500)
        );
        assert_eq!(claim_every(Duration::ZERO), Duration::from_millis(10));
    }
}
