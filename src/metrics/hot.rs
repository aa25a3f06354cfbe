//! Handles of the instruments that every push and every call event updates, looked up in the
//! recorder once instead of on every update. A lookup (`counter!` and its kin) builds the
//! series' key, hashes it, takes the registry's lock and wraps the handle in a fresh
//! allocation; on the node's hot path that was ~3.5 % of its CPU samples at 1,200 calls/s
//! (docs/performance.md). A cached handle is the same series: nothing renders differently.
//!
//! Only once ringcast's recorder is installed ([`super::install`]): a handle looked up before
//! would be the no-op one for good. And never in the crate's unit tests, which count into
//! recorders of their own (`metrics::with_local_recorder`, one per test) that a process-wide
//! cache would bypass; the integration tests, like the node, use the global one.

use std::sync::OnceLock;

/// One instrument's handles, one per combination of its label values (`N` of them), each
/// looked up the first time it is used.
pub struct Handles<H, const N: usize>([OnceLock<H>; N]);

impl<H, const N: usize> Handles<H, N> {
    /// None looked up yet.
    pub const fn new() -> Self {
        Handles([const { OnceLock::new() }; N])
    }

    /// Runs `update` on the handle of combination `index`, which `look_up` finds in the
    /// recorder the first time (and every time while caching is off, see the module's
    /// comment).
    pub fn with(&self, index: usize, look_up: impl FnOnce() -> H, update: impl FnOnce(&H)) {
        if caching() {
            update(self.0[index].get_or_init(look_up));
        } else {
            update(&look_up());
        }
    }
}

fn caching() -> bool {
    !cfg!(test) && super::INSTALLED.get().is_some()
}
