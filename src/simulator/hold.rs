//! Holding the answers to pushes: a test that needs a push still unanswered while something
//! happens to its sender (the node killed, drained, its lease lapsed, a cancel arriving)
//! holds the answers, and releases them once that happened. A latency "long enough" is a
//! guess a busy machine can beat (a test thread waiting seconds for a core is not rare on a
//! shared 2-core CI box). A held push has arrived (it counts as received) and is judged and
//! recorded only on release, after its scripted latency, like any other.
//!
//! Token requests (OAuth, WNS) are never held: a sender waiting for its access token has sent
//! no push yet.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// How many holds are on (answers wait while any is), and the wake-up of the answers waiting
/// for the last one's release.
#[derive(Default)]
pub(crate) struct AnswerGate {
    holds: AtomicUsize,
    released: Notify,
}

impl AnswerGate {
    pub(crate) fn hold(&self) {
        self.holds.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends one hold; the answers pass once none is left.
    pub(crate) fn release(&self) {
        if self.holds.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.released.notify_waiters();
        }
    }

    fn held(&self) -> bool {
        self.holds.load(Ordering::SeqCst) > 0
    }

    /// Returns at once unless answers are held; then when they are released.
    pub(crate) async fn passed(&self) {
        // The load tests' path: one load per push while nothing is held.
        if !self.held() {
            return;
        }
        loop {
            // Registered before the check, so a release between the two still wakes it.
            let released = self.released.notified();
            if !self.held() {
                return;
            }
            released.await;
        }
    }
}

/// Answers to pushes are held while this lives ([`RunningSimulator::hold_answers`]); dropping
/// it releases them, once no other hold is left.
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

    #[tokio::test]
    async fn answers_pass_only_once_every_hold_is_released() {
        let gate = Arc::new(AnswerGate::default());
        gate.hold();
        gate.hold();
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.passed().await }
        });
        gate.release();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one hold is still on");
        gate.release();
        waiting.await.unwrap();
    }
}
