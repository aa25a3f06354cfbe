//! A credential a reload may replace while pushes are in flight (README, "Configuration" →
//! "Reload").
//!
//! Every client of an app (one per router, per environment) holds a clone of the app's
//! [`Live`] cell and loads it per request or per token refresh, so a reload that swaps the
//! cell reaches every router at once, without a lock on the request path and without
//! touching the connections: a request sees the old credential or the new one, never a mix.

use arc_swap::ArcSwap;
use std::sync::Arc;

/// One app's current credential (a provider-token cache, a service account and its access
/// token, ...). Cheap to clone: every clone sees the same value.
pub struct Live<T>(Arc<ArcSwap<T>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(Arc::clone(&self.0))
    }
}

impl<T> Live<T> {
    /// A cell holding `value` until a reload replaces it.
    pub fn new(value: T) -> Live<T> {
        Live(Arc::new(ArcSwap::from_pointee(value)))
    }

    /// The value in effect now. The guard is cheap (no reference count on the fast path);
    /// hold it for one request, not across a long wait.
    pub fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.0.load()
    }

    /// The value in effect now, as an `Arc` that may be kept across awaits.
    pub fn load_full(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Replaces the value for every clone; requests already holding the old one finish
    /// with it.
    pub fn replace(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

impl<T> From<T> for Live<T> {
    fn from(value: T) -> Live<T> {
        Live::new(value)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Live").field(&**self.0.load()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_a_replacement_and_a_held_value_stays_whole() {
        let cell = Live::new(String::from("old"));
        let other = cell.clone();
        let held = cell.load_full();
        other.replace(String::from("new"));
        assert_eq!(**cell.load(), "new");
        assert_eq!(
            *held, "old",
            "a request holding the old credential finishes with it"
        );
    }
}
