//! The one cache of an OAuth2 access token, shared by every connection of an account on every
//! router: [`AccessTokenCache::current`] tells each caller about to send whether to send,
//! send and refresh ahead of expiry, refresh first, or wait for the refresh another caller is
//! doing. A state machine on a passed-in clock, with no I/O: the fetching is
//! [`super::source::TokenSource`]'s.

use crate::vocab::UnixMillis;
use http::HeaderValue;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// How long a caller told to refresh holds the claim before another caller may take it over:
/// a refresher that crashed or hangs must not leave every sender waiting forever.
pub const DEFAULT_REFRESH_STALE_AFTER: Duration = Duration::from_secs(30);

/// An access token, ready to be sent.
#[derive(Clone)]
pub struct AccessToken {
    /// `authorization: Bearer <token>`. Cloning it is a reference-count bump.
    ///
    /// Sent on every push as a literal without indexing, whole: `h2` never puts
    /// `authorization` in its HPACK table, whatever the value's sensitive flag says. `Debug`
    /// below never prints it.
    pub authorization: HeaderValue,
    /// When the token endpoint answered (UNIX milliseconds): the refresh-ahead window is
    /// never more than half the token's life.
    pub obtained_at: UnixMillis,
    /// When the service stops accepting it (UNIX milliseconds).
    pub expires_at: UnixMillis,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("authorization", &"[redacted]")
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AccessToken {
    /// When to start refreshing it: `ahead` before expiry, but never earlier than half-way
    /// through its life, so a short-lived token (a simulator's) is not refreshed constantly.
    fn refresh_at(&self, ahead_ms: u64) -> UnixMillis {
        let life = self.expires_at.saturating_sub(self.obtained_at);
        self.expires_at.saturating_sub(ahead_ms.min(life / 2))
    }

    /// Whether this is the same token as `other` (same bearer string).
    fn same_as(&self, other: &AccessToken) -> bool {
        self.authorization.as_bytes() == other.authorization.as_bytes()
    }
}

/// What a caller about to send should do.
#[derive(Debug)]
pub enum TokenState {
    /// Send with this token.
    Fresh(AccessToken),
    /// Send with this token, and refresh it now: it is within the refresh-ahead window and
    /// this caller is the only one told so. Report the result with
    /// [`AccessTokenCache::store`] or [`AccessTokenCache::refresh_failed`].
    RefreshAhead(AccessToken),
    /// No usable token (none yet, expired, or invalidated by a 401), and this caller is the
    /// one to fetch it; the others wait for it. Report as for `RefreshAhead`.
    MustRefresh,
    /// No usable token, and another caller is fetching one: wait for it, then ask again.
    AwaitRefresh(TokenWait),
}

/// A wait for the refresh another caller is doing.
#[derive(Debug)]
pub struct TokenWait(watch::Receiver<u64>);

impl TokenWait {
    /// Resolves when a token is stored or the refresh failed (then ask
    /// [`AccessTokenCache::current`] again: a failed refresh hands the claim to the next
    /// caller). Bound it with a timeout: a refresher that hangs is only replaced after the
    /// stale-after time, when the next caller asks.
    pub async fn until_refreshed(mut self) {
        // An error means the cache is gone; there is nothing left to wait for.
        let _ = self.0.changed().await;
    }
}

/// The current token and who is refreshing it.
#[derive(Debug, Default)]
struct State {
    /// The token, if there is one (it may have expired).
    token: Option<AccessToken>,
    /// When the current refresher was told to refresh; `None` when nobody is.
    refreshing_since: Option<UnixMillis>,
}

/// The one access token of a service account, shared by every connection on every thread.
/// Cheap to clone: every clone shares the same token and the same refresh claim.
#[derive(Clone, Debug)]
pub struct AccessTokenCache {
    /// Shared state.
    inner: Arc<Inner>,
}

/// What every clone of an [`AccessTokenCache`] shares.
#[derive(Debug)]
struct Inner {
    /// How long before expiry a refresh starts.
    refresh_ahead_ms: u64,
    /// How long a refresh claim holds before another caller may take it over.
    stale_after_ms: u64,
    /// A std `Mutex`: held for a few comparisons and a clone, never across an await.
    state: Mutex<State>,
    /// Bumped on every store and failed refresh, to wake waiters.
    changes: watch::Sender<u64>,
}

impl AccessTokenCache {
    /// An empty cache refreshing `refresh_ahead` before expiry, taking over a refresh claim
    /// older than `stale_after` (e.g. [`DEFAULT_REFRESH_STALE_AFTER`]).
    pub fn new(refresh_ahead: Duration, stale_after: Duration) -> Self {
        AccessTokenCache {
            inner: Arc::new(Inner {
                refresh_ahead_ms: refresh_ahead.as_millis() as u64,
                stale_after_ms: stale_after.as_millis() as u64,
                state: Mutex::new(State::default()),
                changes: watch::Sender::new(0),
            }),
        }
    }

    /// What a caller about to send at `now` should do. At most one caller at a time is told
    /// to refresh (`RefreshAhead` or `MustRefresh`), until it reports back or its claim is
    /// older than the stale-after time.
    pub fn current(&self, now: UnixMillis) -> TokenState {
        let mut state = self.lock();
        let claim_free = state
            .refreshing_since
            .is_none_or(|since| now.saturating_sub(since) >= self.inner.stale_after_ms);
        match &state.token {
            Some(token) if now < token.refresh_at(self.inner.refresh_ahead_ms) => {
                TokenState::Fresh(token.clone())
            }
            Some(token) if now < token.expires_at => {
                let token = token.clone();
                if claim_free {
                    state.refreshing_since = Some(now);
                    TokenState::RefreshAhead(token)
                } else {
                    TokenState::Fresh(token)
                }
            }
            _ if claim_free => {
                state.refreshing_since = Some(now);
                TokenState::MustRefresh
            }
            // Subscribed under the lock: a store after this point always wakes the waiter.
            _ => TokenState::AwaitRefresh(TokenWait(self.inner.changes.subscribe())),
        }
    }

    /// A refresh succeeded: `token` becomes the current one (unless the cache already holds
    /// one that lives longer, from a refresher that took over a stale claim), the claim is
    /// released and waiters wake.
    pub fn store(&self, token: AccessToken) {
        let mut state = self.lock();
        if state
            .token
            .as_ref()
            .is_none_or(|current| token.expires_at >= current.expires_at)
        {
            state.token = Some(token);
        }
        state.refreshing_since = None;
        drop(state);
        self.inner
            .changes
            .send_modify(|generation| *generation += 1);
    }

    /// A refresh failed: the claim is released and waiters wake, so the next caller tries.
    /// The current token, if still valid, keeps being used. Backing off between failed
    /// refreshes is the caller's (the retry policy), so a broken token endpoint is not
    /// hammered.
    pub fn refresh_failed(&self) {
        self.lock().refreshing_since = None;
        self.inner
            .changes
            .send_modify(|generation| *generation += 1);
    }

    /// FCM answered 401 to `failed`: drop it if it is still the current token, so the next
    /// caller refreshes and the rest wait. A burst of 401s for the same token drops it once
    /// and so causes one refresh; a 401 for a token already replaced changes nothing (the
    /// caller retries with the new one). Returns whether the token was dropped.
    pub fn invalidate_after_401(&self, failed: &AccessToken) -> bool {
        let mut state = self.lock();
        if state
            .token
            .as_ref()
            .is_some_and(|token| token.same_as(failed))
        {
            state.token = None;
            true
        } else {
            false
        }
    }

    /// The current token if it is the one obtained at `obtained_at`: a request carries only
    /// that stamp ([`crate::providers::service::Prepared::credential`]), and a 401 for it
    /// must be matched against the token it was sent with before
    /// [`invalidate_after_401`](Self::invalidate_after_401) drops anything.
    pub fn obtained_at(&self, obtained_at: UnixMillis) -> Option<AccessToken> {
        self.lock()
            .token
            .as_ref()
            .filter(|token| token.obtained_at == obtained_at)
            .cloned()
    }

    /// Whether `other` is this very cache (a clone of it), not merely one with the same
    /// token: a reload must give a new credential a new cache.
    pub fn same_as(&self, other: &AccessTokenCache) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Locks the state. A poisoned lock is taken over: every update leaves it consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
