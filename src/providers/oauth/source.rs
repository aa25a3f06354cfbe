//! Where access tokens come from: [`TokenSource`] performs what the [`AccessTokenCache`]
//! decides, for one account of one provider.
//!
//! - The caller told `MustRefresh` trades the grant for a token at the token endpoint (over a
//!   pool of its own: the token host is not the push host, and it may speak HTTP/1.1 only)
//!   while the others wait for it; the caller told `RefreshAhead` sends with the current token
//!   and starts the one background refresh.
//! - After a failed token request no other is made for [`TOKEN_RETRY_AFTER_FAILURE`]: the
//!   pushes that need a token meanwhile end as credential problems at once, so a failing
//!   endpoint gets one request a second per client, not one per push.
//! - A 401 for a token drops it once for a whole burst (the next push refreshes); a 401 for
//!   its successor within [`MIN_401_REFRESH_INTERVAL`] is a credential problem, not an
//!   expiry, and drops nothing.
//!
//! Time comes from the [`Clock`] it is given and from tokio's timers, so the tests run on
//! paused time against a scripted [`TokenExchange`].

use super::{AccessToken, AccessTokenCache, FORM_CONTENT_TYPE, Grant, OAuthAccount, TokenState};
use crate::clock::Clock;
use crate::metrics::{self, RefreshOutcome};
use crate::providers::live::Live;
use crate::providers::pool::Pool;
use crate::vocab::{Outcome, UnixMillis};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long a caller waiting for another caller's token refresh sleeps before it asks the
/// cache again: a refresher that hangs loses its claim after the cache's stale-after time,
/// and a waiter must come back to take it over rather than sleep to its deadline.
const AWAIT_REFRESH_POLL: Duration = Duration::from_secs(1);

/// How long after a failed token request no other is made: the pushes that need a token
/// meanwhile end as credential problems at once, so a failing token endpoint gets one
/// request a second per client, not one per push (nor a queue of pushes each waiting its
/// turn to fail).
pub const TOKEN_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How long after a 401 dropped the access token another 401 may not drop its successor.
/// An access token lives an hour or more: a second 401 within seconds is not an expiry but a
/// credential the service refuses whatever the token (wrong scope, revoked account), and
/// dropping every new token would turn each wave of pushes into a token request.
pub const MIN_401_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// One token request and its answer: the network side of a [`TokenSource`]. The real one is
/// [`TokenEndpoint`]; the tests script one.
pub trait TokenExchange: Send + Sync + 'static {
    /// Posts the form `body` and returns the answer's status and body, by `until`.
    fn exchange(
        &self,
        body: Vec<u8>,
        until: Instant,
    ) -> impl Future<Output = Result<(u16, Bytes), String>> + Send;
}

/// A token endpoint over its own connection pool.
pub struct TokenEndpoint {
    /// Connections to the endpoint's origin (HTTP/2 or HTTP/1.1, whichever it speaks).
    pool: Pool,
    /// The endpoint, path (and query) kept: honoured as the credential names it.
    uri: http::Uri,
}

impl TokenEndpoint {
    /// The endpoint `uri`, reached over `pool` (whose origin is the URI's).
    pub fn new(pool: Pool, uri: http::Uri) -> TokenEndpoint {
        TokenEndpoint { pool, uri }
    }

    /// The connections to the endpoint (a provider's status reports them).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl TokenExchange for TokenEndpoint {
    async fn exchange(&self, body: Vec<u8>, until: Instant) -> Result<(u16, Bytes), String> {
        let request = http::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(Bytes::from(body))
            .map_err(|error| format!("token request: {error}"))?;
        let stream = self
            .pool
            .acquire(until)
            .await
            .map_err(|error| format!("token endpoint: {error}"))?;
        let answer = stream
            .send(request)
            .await
            .map_err(|error| format!("token endpoint: {}", error.label()))?;
        Ok((answer.status, answer.body))
    }
}

/// The access tokens of one account of one provider, for every push of one client. Behind an
/// `Arc`, so the one background refresh can outlive the send that started it.
pub struct TokenSource<G, E = TokenEndpoint> {
    /// Where token requests go.
    endpoint: E,
    /// The grant and its token, swapped whole by a reload that changes the credential (the
    /// next push then fetches a token with the new one).
    account: Live<OAuthAccount<G>>,
    /// How long a token request may take.
    timeout: Duration,
    /// What "now" is.
    clock: Clock,
    /// When a token request last failed (UNIX milliseconds, 0 = not since the last
    /// success), for [`TOKEN_RETRY_AFTER_FAILURE`].
    failed_at: AtomicU64,
    /// When a 401 last dropped the token (UNIX milliseconds, 0 = never), for
    /// [`MIN_401_REFRESH_INTERVAL`].
    last_401_refresh: AtomicU64,
}

/// Releases a refresh claim that ends without a stored token (an error, a timeout, or the
/// refreshing push being dropped), so the next caller takes over at once instead of every
/// sender waiting for the claim to go stale.
struct Claim<'a> {
    /// The cache whose claim this is.
    cache: &'a AccessTokenCache,
    /// Whether a token was stored (the claim is already released).
    stored: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.stored {
            self.cache.refresh_failed();
        }
    }
}

impl<G: Grant, E: TokenExchange> TokenSource<G, E> {
    /// A source asking `endpoint` for `account`'s tokens, each request bounded by `timeout`,
    /// reading time from `clock`. No token is fetched until the first push needs one.
    pub fn new(
        endpoint: E,
        account: Live<OAuthAccount<G>>,
        timeout: Duration,
        clock: Clock,
    ) -> Arc<TokenSource<G, E>> {
        Arc::new(TokenSource {
            endpoint,
            account,
            timeout,
            clock,
            failed_at: AtomicU64::new(0),
            last_401_refresh: AtomicU64::new(0),
        })
    }

    /// Where token requests go.
    pub fn endpoint(&self) -> &E {
        &self.endpoint
    }

    /// The account's reloadable cell.
    pub fn account(&self) -> &Live<OAuthAccount<G>> {
        &self.account
    }

    /// The token to send with, by `deadline`: the cached one, or one this caller fetches,
    /// or one another caller fetches while this one waits. A push that cannot get one is
    /// `Expired` (its deadline came first) or a `CredentialProblem`.
    pub async fn token(self: &Arc<Self>, deadline: UnixMillis) -> Result<AccessToken, Outcome> {
        let provider = G::PROVIDER.as_str();
        loop {
            let now = self.clock.now();
            if now >= deadline {
                return Err(Outcome::Expired);
            }
            let until = self.clock.instant_at(deadline);
            let account = self.account.load_full();
            let backing_off = self.backing_off(now);
            let held_back = |wait_ms: u64| Outcome::CredentialProblem {
                reason: format!("the token endpoint failed; next attempt in {wait_ms} ms"),
            };
            match (account.cache.current(now), backing_off) {
                (TokenState::Fresh(token), _) => return Ok(token),
                (TokenState::RefreshAhead(token), Some(_)) => {
                    // Still valid: send with it, and leave the refresh to a later caller.
                    account.cache.refresh_failed();
                    return Ok(token);
                }
                (TokenState::RefreshAhead(token), None) => {
                    // The one background refresh; this push goes out with the current token.
                    let source = Arc::clone(self);
                    tokio::spawn(async move {
                        let until = Instant::now() + source.timeout;
                        if let Err(error) = source.refresh(&account, until).await {
                            tracing::warn!(provider, %error,
                                "refreshing the access token ahead of expiry failed");
                        }
                    });
                    return Ok(token);
                }
                (TokenState::MustRefresh, Some(wait_ms)) => {
                    account.cache.refresh_failed();
                    return Err(held_back(wait_ms));
                }
                (TokenState::MustRefresh, None) => {
                    return self.refresh(&account, until).await.map_err(|error| {
                        tracing::error!(provider, %error,
                            "no access token: the token endpoint refused or failed");
                        if self.clock.now() >= deadline {
                            Outcome::Expired
                        } else {
                            Outcome::CredentialProblem { reason: error }
                        }
                    });
                }
                (TokenState::AwaitRefresh(_), Some(wait_ms)) => return Err(held_back(wait_ms)),
                (TokenState::AwaitRefresh(wait), None) => {
                    let poll = until.min(Instant::now() + AWAIT_REFRESH_POLL);
                    // Woken by a store or a failure, or polled: either way, ask again.
                    let _ = tokio::time::timeout_at(poll, wait.until_refreshed()).await;
                }
            }
        }
    }

    /// The service answered 401 to the token stamped `credential` (its `obtained_at`): drop it
    /// if it is still the current one (once for a burst of 401s), so the re-send's
    /// [`token`](Self::token) fetches a new one or waits for the push that does. A 401 for a
    /// token already replaced changes nothing: the re-send uses the new one. `Err` when the
    /// token refused is one fetched seconds ago: a refused credential, not an expiry.
    pub fn refused(&self, credential: u64, now: UnixMillis) -> Result<(), String> {
        let account = self.account.load_full();
        let cache = &account.cache;
        let Some(refused) = cache.obtained_at(credential) else {
            return Ok(());
        };
        let last = self.last_401_refresh.load(Ordering::Relaxed);
        let interval = MIN_401_REFRESH_INTERVAL.as_millis() as u64;
        if last != 0 && now < last.saturating_add(interval) {
            return Err(format!(
                "{} refused a fresh access token (the last one was dropped {} ms ago): \
                 not refreshing again within {} s",
                G::PROVIDER.as_str(),
                now.saturating_sub(last),
                MIN_401_REFRESH_INTERVAL.as_secs()
            ));
        }
        if cache.invalidate_after_401(&refused) {
            self.last_401_refresh.store(now, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Refreshes the token under the claim the cache gave this caller, by `until`; stores it
    /// (waking the waiters) or releases the claim.
    async fn refresh(
        &self,
        account: &OAuthAccount<G>,
        until: Instant,
    ) -> Result<AccessToken, String> {
        let mut claim = Claim {
            cache: &account.cache,
            stored: false,
        };
        let limit = until.min(Instant::now() + self.timeout);
        let fetched = tokio::time::timeout_at(limit, self.fetch(&account.grant, limit))
            .await
            .map_err(|_| "the token endpoint did not answer in time".to_owned())
            .and_then(|fetched| fetched);
        let outcome = match fetched {
            Ok(_) => RefreshOutcome::Ok,
            Err(_) => RefreshOutcome::Error,
        };
        metrics::credential_refresh(G::PROVIDER, outcome);
        match fetched {
            Ok(token) => {
                self.failed_at.store(0, Ordering::Relaxed);
                account.cache.store(token.clone());
                claim.stored = true;
                Ok(token)
            }
            Err(error) => {
                // Recorded before the claim is released, so the waiters it wakes see it;
                // never 0, which means "no failure".
                self.failed_at
                    .store(self.clock.now().max(1), Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// How long token requests are still held back after a failure at `now`, if they are.
    fn backing_off(&self, now: UnixMillis) -> Option<u64> {
        let failed_at = self.failed_at.load(Ordering::Relaxed);
        let until = failed_at.saturating_add(TOKEN_RETRY_AFTER_FAILURE.as_millis() as u64);
        (failed_at != 0 && now < until).then(|| until - now)
    }

    /// One token request: the grant's body made now, posted, the answer read.
    async fn fetch(&self, grant: &G, until: Instant) -> Result<AccessToken, String> {
        let body = grant.request_body(self.clock.now())?;
        let (status, answer) = self.endpoint.exchange(body, until).await?;
        grant.read_answer(status, &answer, self.clock.now())
    }
}
