//! Group commit: the durable writes waiting at one moment share one transaction and one fsync.
//!
//! Every registration is a redb write transaction, and a durable commit is an fsync: one at a
//! time, the store managed 720–920 registrations/s on this project's 2-core machines. Writes
//! now queue here, and whoever gets the store's write lane takes every write queued by then
//! and runs them, in the order they came, in one transaction: serially equivalent, since each
//! sees the ones before it. A caller hears back only after the commit, so an answered write is
//! on disk.
//!
//! A write that fails (too many devices, a record that does not decode) must not take the
//! others with it, and redb cannot set a savepoint in a transaction that has already written.
//! So when any write of a batch fails, or its commit does, the batch is rolled back and each
//! write runs again alone: its outcome is then exactly what it would have been without
//! grouping. That is why an operation is `FnMut`: it may run twice.
//!
//! Call-event claims are grouped the same way, in a group of their own whose commits are not
//! fsync'd ([`Persistence::Lazy`]): a ring makes three or four claim writes, and one
//! transaction each, taking turns on redb's single writer, was the tail of the channel's ring
//! latency under load (docs/performance.md, "Internal push channel benchmark"). redb keeps a non-durable
//! commit's freed pages in memory until a durable commit, so that group makes one of its
//! commits durable every [`Persistence::lazy`]'s interval: the pending state stays bounded
//! under a ring-only load, which otherwise never commits durably.

use super::error::EmbeddedError;
use super::transactions::Tables;
use crate::metrics::embedded as metrics;
use redb::Database;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most writes one transaction carries: a bound on how long the first one waits.
const MAX_BATCH: usize = 512;

/// How a group's commits reach the disk.
pub(super) enum Persistence {
    /// Every commit is fsync'd before its writes are answered (registrations).
    Durable,
    /// Commits stay in memory (redb's `Durability::None`) and reach the disk with the next
    /// durable one; one commit is made durable at least every `every` (claims).
    Lazy {
        /// The longest time between durable commits.
        every: Duration,
        /// When this group last committed durably.
        flushed: Mutex<Instant>,
    },
}

impl Persistence {
    /// Lazy commits, one made durable at least every `every`.
    pub(super) fn lazy(every: Duration) -> Self {
        Persistence::Lazy {
            every,
            flushed: Mutex::new(Instant::now()),
        }
    }

    /// The durability of the batch about to run (which, when lazy, may be the flush).
    fn next(&self) -> redb::Durability {
        match self {
            Persistence::Durable => redb::Durability::Immediate,
            Persistence::Lazy { every, flushed } => {
                let mut flushed = flushed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if flushed.elapsed() >= *every {
                    *flushed = Instant::now();
                    redb::Durability::Immediate
                } else {
                    redb::Durability::None
                }
            }
        }
    }
}

/// Writes waiting for the write lane.
pub(super) struct Group {
    queue: Mutex<Vec<Box<dyn Job>>>,
    persistence: Persistence,
    /// Whether a leader is waiting for the write lane on the group's behalf (see
    /// [`become_leader`](Self::become_leader)).
    leader: AtomicBool,
    /// How many leaders the group has had.
    #[cfg(test)]
    leaders: std::sync::atomic::AtomicUsize,
}

impl Group {
    /// An empty group whose commits reach the disk as `persistence` says.
    pub(super) fn new(persistence: Persistence) -> Self {
        Group {
            queue: Mutex::new(Vec::new()),
            persistence,
            leader: AtomicBool::new(false),
            #[cfg(test)]
            leaders: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Makes the caller the group's leader if it has none waiting: `true` means the caller
    /// must wait for the write lane and run the group. One leader waits at a time, however
    /// many writes queue behind it: with a leader per write, a flush holding the lane for
    /// 10–25 ms left hundreds of claim leaders queued on the lane, each to be woken and
    /// scheduled in turn on a busy worker only to find its write already run, and the rings'
    /// claims waited behind that convoy (docs/performance.md, "Internal push channel benchmark").
    pub(super) fn become_leader(&self) -> bool {
        let became = !self.leader.swap(true, Ordering::AcqRel);
        #[cfg(test)]
        if became {
            self.leaders.fetch_add(1, Ordering::Relaxed);
        }
        became
    }

    /// How many leaders the group has had.
    #[cfg(test)]
    pub(super) fn leaders(&self) -> usize {
        self.leaders.load(Ordering::Relaxed)
    }

    /// The leader got the write lane. From here on a newly queued write needs a leader of
    /// its own: this one may already have taken its batch.
    pub(super) fn leader_has_turn(&self) {
        self.leader.store(false, Ordering::Release);
    }

    /// Queues `op`; the receiver answers once it ran and its transaction committed.
    pub(super) fn push<T, F>(&self, op: F) -> oneshot::Receiver<Result<T, EmbeddedError>>
    where
        T: Send + 'static,
        F: FnMut(&mut Tables<'_>) -> Result<T, EmbeddedError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.lock().push(Box::new(Pending {
            op,
            result: None,
            reply,
        }));
        answer
    }

    /// Whether no write waits.
    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many writes wait.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Queues `job`, which answers for itself once it ran and its transaction committed.
    pub(super) fn push_job(&self, job: Box<dyn Job>) {
        self.lock().push(job);
    }

    /// The durability of the batch about to run (when lazy, it may be the flush that is due).
    pub(super) fn next_durability(&self) -> redb::Durability {
        self.persistence.next()
    }

    /// Runs the writes queued by now (up to [`MAX_BATCH`]) in one transaction committed with
    /// `durability` and answers each. Call it on the write lane; with an fsync, on the
    /// blocking pool.
    ///
    /// `db` is let go before anyone is answered: a caller that drops its last store handle
    /// once answered closes the file then and there (it may be opened again at once).
    pub(super) fn run_as(&self, db: Arc<Database>, durability: redb::Durability) {
        let mut batch: Vec<Box<dyn Job>> = {
            let mut queue = self.lock();
            let take = queue.len().min(MAX_BATCH);
            queue.drain(..take).collect()
        };
        let started = Instant::now();
        let outcomes: Vec<Result<(), EmbeddedError>> =
            if batch.len() > 1 && together(&db, durability, &mut batch).is_ok() {
                batch.iter().map(|_| Ok(())).collect()
            } else {
                batch
                    .iter_mut()
                    .map(|job| together(&db, durability, std::slice::from_mut(job)))
                    .collect()
            };
        metrics::write_held(durability.into(), started.elapsed());
        drop(db);
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            job.answer(outcome);
        }
    }

    /// Answers every queued write with `why` (the store was closed before they ran).
    pub(super) fn refuse_all(&self, why: &'static str) {
        let batch: Vec<Box<dyn Job>> = self.lock().drain(..).collect();
        for job in batch {
            job.answer(Err(EmbeddedError::MalformedRecord(why)));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn Job>>> {
        // A panic while the lock is held cannot leave the queue half-changed (push and drain
        // are whole), so a poisoned lock is still a good queue.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs every job of `batch` in one transaction committed with `durability`; any failure
/// rolls all of them back.
fn together(
    db: &Database,
    durability: redb::Durability,
    batch: &mut [Box<dyn Job>],
) -> Result<(), EmbeddedError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    let changed = {
        let mut tables = Tables::open(&txn)?;
        for job in batch.iter_mut() {
            job.run(&mut tables)?;
        }
        tables.changed
    };
    commit_if(txn, changed)
}

/// Commits when something was written; an unchanged transaction is rolled back, which spares
/// a commit (and, when durable, an fsync).
fn commit_if(txn: redb::WriteTransaction, changed: bool) -> Result<(), EmbeddedError> {
    if changed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(())
}

/// A queued write, whatever its result type.
pub(super) trait Job: Send {
    /// Runs the operation in `tables`, keeping its result.
    fn run(&mut self, tables: &mut Tables<'_>) -> Result<(), EmbeddedError>;
    /// Answers the caller: its kept result when `outcome` is `Ok` (the transaction
    /// committed), else the failure.
    fn answer(self: Box<Self>, outcome: Result<(), EmbeddedError>);
}

struct Pending<T, F> {
    op: F,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, EmbeddedError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut Tables<'_>) -> Result<T, EmbeddedError> + Send,
{
    fn run(&mut self, tables: &mut Tables<'_>) -> Result<(), EmbeddedError> {
        self.result = Some((self.op)(tables)?);
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<(), EmbeddedError>) {
        let Pending { result, reply, .. } = *self;
        let answer = outcome.and_then(|()| {
            // `run` succeeded before every `Ok` outcome, so the result is there.
            result.ok_or(EmbeddedError::MalformedRecord(
                "a write answered before it ran",
            ))
        });
        // The caller may have stopped waiting; the write stands either way.
        let _ = reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_commits_are_made_durable_once_per_interval() {
        assert!(matches!(
            Persistence::Durable.next(),
            redb::Durability::Immediate
        ));
        let hourly = Persistence::lazy(Duration::from_secs(3_600));
        assert!(matches!(hourly.next(), redb::Durability::None));
        assert!(matches!(hourly.next(), redb::Durability::None));
        let always = Persistence::lazy(Duration::ZERO);
        assert!(matches!(always.next(), redb::Durability::Immediate));
    }
}
