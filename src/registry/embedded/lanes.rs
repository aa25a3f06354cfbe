//! The embedded store's write lane: one write transaction at a time, and how many
//! blocking-pool threads that occupies.
//!
//! redb runs one write transaction at a time: a write started while another runs blocks its
//! thread until that one commits. With one blocking task per write, a ring load (a claim per
//! call event, from every shard at once) made tokio's blocking pools grow by about a hundred
//! threads, each keeping its stack and its allocator heap (mimalloc keeps one per thread):
//! measured with `benches/channel.sh`, the node went from 48 to 146 threads and its RSS grew
//! 160 MB as the rings started, and kept both. So a write waits for its turn here, as a
//! future, and holds one thread only while it runs. A write that cannot block (no fsync) runs
//! on the thread that got the turn ([`Turn::run_here`]).
//! Reads do not come here: redb runs them beside the writer, on the caller's thread.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinHandle};

/// The store's turns at redb's single writer.
#[derive(Clone)]
pub(super) struct Lanes {
    write: Arc<Semaphore>,
}

impl Lanes {
    /// One write lane.
    pub(super) fn new() -> Self {
        Self {
            write: Arc::new(Semaphore::new(1)),
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

    /// Runs `work` on this thread, holding the turn until it ends: for work that cannot
    /// block (a commit without an fsync), where the hop to a pool thread and back costs more
    /// than the work.
    pub(super) fn run_here<T>(self, work: impl FnOnce() -> T) -> T {
        let _turn = self;
        work()
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
    async fn writes_take_turns() {
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
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_is_held_by_its_work_not_by_the_caller_waiting_for_it() {
        use futures_util::FutureExt;
        let lanes = Lanes::new();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let turn = lanes.write_turn().await;
        // The caller stops waiting (a timeout dropped it); the write goes on.
        drop(turn.run(move || released.recv().unwrap()));
        assert!(
            lanes.write_turn().now_or_never().is_none(),
            "no turn while the write runs"
        );
        assert!(lanes.write(|| ()).now_or_never().is_none());
        release.send(()).unwrap();
        // The lane frees when the write ends, for a turn and a write alike.
        lanes.write_turn().await.run_here(|| ());
        lanes.write(|| ()).await.unwrap();
    }
}
