//! Waiting for a condition instead of sleeping for it: on a busy 2-core machine a fixed sleep
//! is sometimes too short, and a test that then asserts fails by chance.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`eventually`] waits before it calls the condition never met: far longer than
/// anything these tests wait for takes, so only a broken behaviour reaches it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(10);

/// Polls `probe` until it returns `Some`, and returns that; panics naming `what` if it has
/// not within [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition that needs no await: waits until `holds` is true.
pub async fn until(what: &str, mut holds: impl FnMut() -> bool) {
    eventually(what, || std::future::ready(holds().then_some(()))).await;
}
