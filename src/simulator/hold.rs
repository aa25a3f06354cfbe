//! Holding the answers to pushes: a test that needs a push still unanswered while something
//! happens to its sender (the node killed, drained, its lease lapsed, a cancel arriving)
//! holds the answers, and releases them once that happened. A latency "long enough" is a
//! guess a busy machine can beat (a test thread waiting seconds for a core is not rare on a
//! shared 2-core CI box). A held push has arrived (it counts as received) and is judged and
//! recorded only on release, after its scripted latency, like any other.
//!
//! Token requests (OAuth, WNS) are never held: a sender waiting for its access token has sent
//! no push yet.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Whether answers are held now, and the wake-up of the answers waiting for the release.
#[derive(Default)]
pub(crate) struct AnswerGate {
    held: AtomicBool,
    released: Notify,
}

impl AnswerGate {
    pub(crate) fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    pub(crate) fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.released.notify_waiters();
    }

    /// Returns at once unless answers are held; then when they are released.
    pub(crate) async fn passed(&self) {
        // The load tests' path: one load per push while nothing is held.
        if !self.held.load(Ordering::SeqCst) {
            return;
        }
        loop {
            // Registered before the check, so a release between the two still wakes it.
            let released = self.released.notified();
            if !self.held.load(Ordering::SeqCst) {
                return;
            }
            released.await;
        }
    }
}

/// Answers to pushes are held while this lives ([`RunningSimulator::hold_answers`]); dropping
/// it releases them.
///
/// [`RunningSimulator::hold_answers`]: super::RunningSimulator::hold_answers
#[must_use = "the answers are released when this is dropped"]
pub struct HeldAnswers {
    pub(crate) shared: std::sync::Arc<super::server::Shared>,
}

impl HeldAnswers {
    /// Releases the held answers (as dropping does), where a test wants to say so.
    pub fn release(self) {}
}

impl Drop for HeldAnswers {
    fn drop(&mut self) {
        self.shared.answers.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn an_answer_waits_while_held_and_passes_once_released() {
        let gate = Arc::new(AnswerGate::default());
        gate.passed().await;
        gate.hold();
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.passed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        gate.release();
        waiting.await.unwrap();
        gate.passed().await;
    }
}
