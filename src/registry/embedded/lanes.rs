//! How many blocking-pool threads the embedded store occupies at once.
//!
//! redb runs one write transaction at a time: a write started while another runs blocks its
//! thread until that one commits. With one blocking task per write, a ring load (a claim per
//! call event, from every shard at once) made tokio's blocking pools grow by about a hundred
//! threads, each keeping its stack and its allocator heap (mimalloc keeps one per thread):
//! measured with `benches/channel.sh`, the node went from 48 to 146 threads and its RSS grew
//! 160 MB as the rings started, and kept both. So a write waits for its turn here, as a
//! future, and holds one thread only while it runs; reads, which redb runs side by side,
//! share a few threads.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinHandle};

/// The store's turns on the blocking pool: one write at a time, a few reads.
#[derive(Clone)]
pub(super) struct Lanes {
    write: Arc<Semaphore>,
    read: Arc<Semaphore>,
}

impl Lanes {
    /// One write lane and two read lanes per core.
    pub(super) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self {
            write: Arc::new(Semaphore::new(1)),
            read: Arc::new(Semaphore::new(2 * cores)),
        }
    }

    /// Runs `work` (a write transaction) on the blocking pool when no other write runs.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JoinError> {
        run(&self.write, work).await
    }

    /// Waits for the write lane without taking a thread yet.
    pub(super) async fn write_turn(&self) -> Turn {
        Turn::of(&self.write).await
    }

    /// Runs `work` (a read transaction) on the blocking pool on one of the read lanes.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JoinError> {
        run(&self.read, work).await
    }
}

async fn run<T: Send + 'static>(
    lane: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JoinError> {
    Turn::of(lane).await.run(work).await
}

/// A turn on a lane, held until the work run with it ends.
pub(super) struct Turn {
    _held: OwnedSemaphorePermit,
}

impl Turn {
    async fn of(lane: &Arc<Semaphore>) -> Turn {
        // The semaphores are never closed, so acquiring only waits.
        Turn {
            _held: Arc::clone(lane)
                .acquire_owned()
                .await
                .expect("the lanes' semaphores are never closed"),
        }
    }

    /// Runs `work` on the blocking pool. The turn ends with the work itself, not with the
    /// returned handle: a caller that stops waiting does not let another write onto a thread
    /// while this one still runs.
    pub(super) fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        tokio::task::spawn_blocking(move || {
            let _turn = self;
            work()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_take_turns_and_reads_run_side_by_side() {
        let lanes = Lanes::new();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let work = |running: Arc<AtomicUsize>, most: Arc<AtomicUsize>| {
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        let writes: Vec<_> = (0..16)
            .map(|_| {
                let lanes = lanes.clone();
                let work = work(running.clone(), most.clone());
                tokio::spawn(async move { lanes.write(work).await })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "one write at a time");

        most.store(0, Ordering::SeqCst);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let reads: Vec<_> = (0..2)
            .map(|_| {
                let lanes = lanes.clone();
                let barrier = barrier.clone();
                // Both reads must be inside at once to pass the barrier: a lane count of one
                // would deadlock here (and the test time out) instead of passing.
                tokio::spawn(async move { lanes.read(move || barrier.wait()).await })
            })
            .collect();
        for read in reads {
            tokio::time::timeout(std::time::Duration::from_secs(10), read)
                .await
                .expect("two reads ran side by side")
                .unwrap()
                .unwrap();
        }
    }
}
