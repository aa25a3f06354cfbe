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

use super::error::EmbeddedError;
use super::transactions::Tables;
use redb::Database;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most writes one transaction carries: a bound on how long the first one waits.
const MAX_BATCH: usize = 512;

/// Writes waiting for the write lane.
#[derive(Default)]
pub(super) struct Group {
    queue: Mutex<Vec<Box<dyn Job>>>,
}

impl Group {
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

    /// Runs the writes queued by now (up to [`MAX_BATCH`]) in one transaction and answers
    /// each. Blocking: call it on the write lane.
    ///
    /// `db` is let go before anyone is answered: a caller that drops its last store handle
    /// once answered closes the file then and there (it may be opened again at once).
    pub(super) fn run(&self, db: Arc<Database>) {
        let mut batch: Vec<Box<dyn Job>> = {
            let mut queue = self.lock();
            let take = queue.len().min(MAX_BATCH);
            queue.drain(..take).collect()
        };
        let outcomes: Vec<Result<(), EmbeddedError>> =
            if batch.len() > 1 && together(&db, &mut batch).is_ok() {
                batch.iter().map(|_| Ok(())).collect()
            } else {
                batch
                    .iter_mut()
                    .map(|job| together(&db, std::slice::from_mut(job)))
                    .collect()
            };
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

/// Runs every job of `batch` in one transaction; any failure rolls all of them back.
fn together(db: &Database, batch: &mut [Box<dyn Job>]) -> Result<(), EmbeddedError> {
    let txn = db.begin_write()?;
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
/// an fsync.
fn commit_if(txn: redb::WriteTransaction, changed: bool) -> Result<(), EmbeddedError> {
    if changed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(())
}

/// A queued write, whatever its result type.
trait Job: Send {
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
