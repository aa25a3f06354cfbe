//! A sender-wide pause: until when a push service takes none of a credential's pushes. FCM
//! pauses a project after `QUOTA_EXCEEDED`, WNS an app after its throttle (`406`) or quota
//! (`429`); the service's [`super::service::PushService::pause`] sets it from a
//! [`super::service::Verdict::Pause`], and the delivery loop waits on it.
//!
//! The limit is the service's, per credential, not per router, so one pause is shared by every
//! router's clients of that project or app: cheap to clone, every clone sees the same pause.

use crate::clock::now_millis;
use crate::metrics;
use crate::vocab::{Platform, UnixMillis};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Until when (UNIX milliseconds; 0 = never paused) nothing may be sent.
#[derive(Clone, Debug, Default)]
pub struct SharedPause(Arc<AtomicU64>);

impl SharedPause {
    /// Extends the pause to `until`; never shortens a longer one another push set. Returns
    /// the end of the pause before, so the caller can tell a new pause from a burst of
    /// refusals extending the current one.
    pub fn extend_to(&self, until: UnixMillis) -> UnixMillis {
        self.0.fetch_max(until, Ordering::Relaxed)
    }

    /// Extends the pause to `until` for `provider`'s `whose` (a project, a channel host),
    /// logging and counting a new pause once, not once per refused push of a burst.
    pub fn hold(&self, until: UnixMillis, provider: Platform, whose: &str) {
        let now = now_millis();
        if self.extend_to(until) <= now {
            metrics::provider_paused(provider);
            tracing::warn!(
                provider = provider.as_str(),
                whose,
                pause_ms = until.saturating_sub(now),
                "the push service refuses this credential's pushes for a while: pausing every \
                 push of it"
            );
        }
    }

    /// The end of the current (or last) pause, if there ever was one.
    pub fn until(&self) -> Option<UnixMillis> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            until => Some(until),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_is_extended_never_shortened_and_shared_by_clones() {
        let pause = SharedPause::default();
        assert_eq!(pause.until(), None);
        let clone = pause.clone();
        assert_eq!(clone.extend_to(2_000), 0);
        assert_eq!(pause.extend_to(1_000), 2_000);
        assert_eq!(pause.until(), Some(2_000));
    }
}
