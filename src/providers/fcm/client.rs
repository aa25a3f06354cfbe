//! The FCM client: the [`PushService`] that sends one app's pushes to its Firebase project
//! over the pool's HTTP/2 connections, with the service account's shared access token.
//!
//! Everything protocol-shaped is in the pure modules ([`super::payload`] builds the request,
//! [`super::auth`] decides who refreshes the token and reads the token endpoint's answer,
//! [`super::response`] reads FCM's answer); this file only joins them to the network:
//!
//! - the access token comes from the [`AccessTokenCache`] every shard shares. The caller told
//!   `MustRefresh` trades a fresh assertion for a token at the account's `token_uri` (over a
//!   pool of its own: Google's token host is not FCM's) while the others wait; the caller
//!   told `RefreshAhead` sends with the current token and starts the one background refresh;
//! - a 401 invalidates the token it was sent with, once for a whole burst, and the delivery
//!   loop re-sends (the next `prepare` refreshes); a 401 for the new token within
//!   [`MIN_401_REFRESH_INTERVAL`] is a credential problem, not an expiry, and refreshes
//!   nothing;
//! - `QUOTA_EXCEEDED` pauses the whole project ([`ProjectPause`], shared by every shard's
//!   client of that project), so no push of it goes out before the pause ends.

use super::auth::{
    AccessToken, AccessTokenCache, AssertionSigner, FORM_CONTENT_TYPE, TokenState,
    parse_token_response,
};
use super::config::FcmConfig;
use super::payload::{PayloadError, build_request, path};
use super::response::{Action, FcmErrorCode, parse};
use crate::clock::now_millis;
use crate::providers::live::Live;
use crate::providers::pool::{Answer, Origin, OriginError, Pool};
use crate::providers::service::{Prepared, PushService, Verdict};
use crate::push::{Outcome, Push};
use crate::registry::UnixMillis;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http_body_util::Full;
use rustls::ClientConfig;
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
/// An access token lives an hour: a second 401 within seconds is not an expiry but a
/// credential FCM refuses whatever the token (wrong scope, revoked account), and dropping
/// every new token would turn each wave of pushes into a token request to Google.
pub const MIN_401_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Why a client cannot start. Start-up reports it with the app's config key.
#[derive(Debug, thiserror::Error)]
pub enum FcmStartError {
    /// The FCM base URL or the service account's `token_uri` is not an HTTPS origin.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// The project id cannot be a path segment.
    #[error(transparent)]
    Project(#[from] PayloadError),
    /// The `token_uri` is not a URI.
    #[error("the service account's token_uri {0:?} is not a URI")]
    TokenUri(String),
}

/// Until when a Firebase project must not be sent to (UNIX milliseconds; 0 = not paused).
/// FCM's quota is per project, so one pause is shared by every client of the project on
/// every shard: cheap to clone, every clone sees the same pause.
#[derive(Clone, Debug, Default)]
pub struct ProjectPause(Arc<AtomicU64>);

impl ProjectPause {
    /// Extends the pause to `until`; never shortens a longer one another push set. Returns
    /// the end of the pause before, so the caller can tell a new pause from a burst of
    /// refusals extending the current one.
    pub fn extend_to(&self, until: UnixMillis) -> UnixMillis {
        self.0.fetch_max(until, Ordering::Relaxed)
    }

    /// The end of the current (or last) pause, if there ever was one.
    pub fn until(&self) -> Option<UnixMillis> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            until => Some(until),
        }
    }
}

/// What fetching an access token needs: the account's signer, its token endpoint and the
/// shared cache. Behind an `Arc`, so the one background refresh can outlive the send that
/// started it.
struct TokenSource {
    /// Connections to the token endpoint's origin.
    pool: Pool,
    /// The `token_uri`, path (and query) kept: honoured as the service account names it.
    uri: http::Uri,
    /// The service account and its token, swapped whole by a reload that changes the
    /// account (the next push then fetches a token with the new one).
    account: Live<FcmAccount>,
    /// How long a token request may take.
    timeout: Duration,
    /// When a token request last failed (UNIX milliseconds, 0 = not since the last
    /// success), for [`TOKEN_RETRY_AFTER_FAILURE`].
    failed_at: AtomicU64,
}

/// A service account as pushes use it: its signer and the token every client of the account
/// shares. Replaced whole on reload, so a token is always stored in the cache of the account
/// that signed for it.
#[derive(Clone)]
pub struct FcmAccount {
    /// Signs the assertion traded for a token.
    pub signer: AssertionSigner,
    /// The token every client of the account shares, and who refreshes it.
    pub cache: AccessTokenCache,
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

impl TokenSource {
    /// Refreshes the token under the claim the cache gave this caller, by `until`; stores it
    /// (waking the waiters) or releases the claim.
    async fn refresh(&self, account: &FcmAccount, until: Instant) -> Result<AccessToken, String> {
        let mut claim = Claim {
            cache: &account.cache,
            stored: false,
        };
        let limit = until.min(Instant::now() + self.timeout);
        let fetched = tokio::time::timeout_at(limit, self.fetch(&account.signer, limit))
            .await
            .map_err(|_| "the token endpoint did not answer in time".to_owned())
            .and_then(|fetched| fetched);
        let outcome = match fetched {
            Ok(_) => crate::metrics::RefreshOutcome::Ok,
            Err(_) => crate::metrics::RefreshOutcome::Error,
        };
        crate::metrics::credential_refresh(crate::registry::Platform::Fcm, outcome);
        match fetched {
            Ok(token) => {
                self.failed_at.store(0, Ordering::Relaxed);
                account.cache.store(token.clone());
                claim.stored = true;
                Ok(token)
            }
            Err(error) => {
                // Recorded before the claim is released, so the waiters it wakes see it.
                self.failed_at.store(now_millis(), Ordering::Relaxed);
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

    /// One token request: the assertion signed now, posted to `token_uri`, the answer read.
    async fn fetch(&self, signer: &AssertionSigner, until: Instant) -> Result<AccessToken, String> {
        let body = signer
            .token_request_body(now_millis())
            .map_err(|error| error.to_string())?;
        let request = http::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(Full::new(Bytes::from(body)))
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
        parse_token_response(answer.status, &answer.body, now_millis())
            .map_err(|error| error.to_string())
    }

    /// The token to send with, by `deadline`: the cached one, or one this caller fetches,
    /// or one another caller fetches while this one waits.
    async fn token(self: &Arc<Self>, deadline: UnixMillis) -> Result<AccessToken, Outcome> {
        loop {
            let now = now_millis();
            if now >= deadline {
                return Err(Outcome::Expired);
            }
            let until = Instant::now() + Duration::from_millis(deadline - now);
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
                            tracing::warn!(provider = "fcm", %error,
                                "refreshing the FCM access token ahead of expiry failed");
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
                        tracing::error!(provider = "fcm", %error,
                            "no FCM access token: the token endpoint refused or failed");
                        if now_millis() >= deadline {
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
}

/// One app's FCM pushes, to one Firebase project.
pub struct FcmClient {
    /// The K connections to FCM.
    pool: Pool,
    /// The Firebase project sent to; checked at start to be a valid path segment.
    project_id: String,
    /// The access token and how to get a new one.
    tokens: Arc<TokenSource>,
    /// The project's quota pause, shared with the project's other clients.
    pause: ProjectPause,
    /// How long an answer may take.
    request_timeout: Duration,
    /// The pause after `QUOTA_EXCEEDED` when FCM names no longer `Retry-After`.
    quota_pause_default: Duration,
    /// When a 401 last dropped the token (UNIX milliseconds, 0 = never), for
    /// [`MIN_401_REFRESH_INTERVAL`].
    last_401_refresh: AtomicU64,
}

impl FcmClient {
    /// A client sending to `project_id` with `signer`'s service account, sharing `tokens`
    /// (one cache per service account) and `pause` (one per project) with the other shards,
    /// trusting `tls`. Starts its connections (to FCM and to the token endpoint) on the
    /// current runtime; no token is fetched until the first push needs one.
    pub fn start(
        config: &FcmConfig,
        project_id: &str,
        signer: AssertionSigner,
        tokens: AccessTokenCache,
        pause: ProjectPause,
        tls: Arc<ClientConfig>,
    ) -> Result<FcmClient, FcmStartError> {
        let account = Live::new(FcmAccount {
            signer,
            cache: tokens,
        });
        Self::start_live(config, project_id, account, pause, tls)
    }

    /// [`FcmClient::start`] with the app's reloadable account cell. A reload may change the
    /// account's key, never its `token_uri` (the token pool's origin): that needs a restart.
    pub fn start_live(
        config: &FcmConfig,
        project_id: &str,
        account: Live<FcmAccount>,
        pause: ProjectPause,
        tls: Arc<ClientConfig>,
    ) -> Result<FcmClient, FcmStartError> {
        path(project_id)?;
        let origin = Origin::parse(&config.base_url, Arc::clone(&tls))?;
        let token_uri = account.load().signer.token_uri().to_owned();
        let uri: http::Uri = token_uri
            .parse()
            .map_err(|_| FcmStartError::TokenUri(token_uri.clone()))?;
        let token_origin = Origin::parse(&token_uri, tls)?;
        let tokens = Arc::new(TokenSource {
            pool: Pool::start(token_origin, config.token_pool_settings()),
            uri,
            account,
            timeout: config.request_timeout(),
            failed_at: AtomicU64::new(0),
        });
        Ok(FcmClient {
            pool: Pool::start(origin, config.pool_settings()),
            project_id: project_id.to_owned(),
            tokens,
            pause,
            request_timeout: config.request_timeout(),
            quota_pause_default: config.quota_backoff_default(),
            last_401_refresh: AtomicU64::new(0),
        })
    }
}

/// The `retries_total{reason}` label of a retried or paused FCM answer.
fn retry_label(status: u16, code: Option<&FcmErrorCode>) -> &'static str {
    match code {
        Some(FcmErrorCode::QuotaExceeded) => "quota_exceeded",
        Some(FcmErrorCode::Unavailable) => "unavailable",
        Some(FcmErrorCode::Internal) => "internal",
        _ if status == 429 => "quota_exceeded",
        _ => "status_5xx",
    }
}

impl PushService for FcmClient {
    fn name(&self) -> &'static str {
        "fcm"
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    async fn prepare(&self, push: &Push, now: UnixMillis) -> Result<Prepared, Outcome> {
        let built = build_request(push, &self.project_id, now).map_err(|error| match error {
            PayloadError::Expired => Outcome::Expired,
            other => Outcome::Rejected {
                reason: other.reason().to_owned(),
            },
        })?;
        let token = self.tokens.token(push.deadline).await?;
        let mut request = http::Request::post(format!("{}{}", self.pool.base(), built.path))
            .body(Full::new(Bytes::from(built.body)))
            .map_err(|error| Outcome::Rejected {
                reason: format!("request: {error}"),
            })?;
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, token.authorization);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Prepared {
            request,
            credential: token.obtained_at,
        })
    }

    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict {
        let retry_after = answer
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok());
        let parsed = parse(
            answer.status,
            &answer.body,
            retry_after,
            now,
            self.quota_pause_default,
        );
        match parsed.action {
            Action::Retry { after } => Verdict::Retry {
                after,
                reason: retry_label(parsed.status, parsed.code.as_ref()),
                otherwise: parsed.final_outcome(),
            },
            Action::Pause { for_ } => Verdict::Pause {
                for_,
                reason: retry_label(parsed.status, parsed.code.as_ref()),
                otherwise: parsed.final_outcome(),
            },
            Action::RefreshCredentialOnce => Verdict::RefreshCredential {
                otherwise: parsed.final_outcome(),
            },
            Action::CredentialAlert | Action::BugAlert => {
                let code = parsed.code.as_ref().map_or("", |code| code.as_str());
                tracing::error!(provider = "fcm", project = %self.project_id,
                    status = parsed.status, code, "FCM refused the credential or request");
                Verdict::Final(parsed.final_outcome())
            }
            Action::Delivered
            | Action::DeleteRegistration { .. }
            | Action::TryOtherEnvironment { .. }
            | Action::ConfigAlert
            | Action::Reject => Verdict::Final(parsed.final_outcome()),
        }
    }

    fn pause(&self, until: UnixMillis) {
        let now = now_millis();
        // Logged once per pause, not once per refused push of a burst.
        if self.pause.extend_to(until) <= now {
            tracing::warn!(provider = "fcm", project = %self.project_id,
                pause_ms = until.saturating_sub(now),
                "FCM quota exceeded: pausing every push of the project");
        }
    }

    fn paused_until(&self) -> Option<UnixMillis> {
        self.pause.until()
    }

    async fn refresh_credential(&self, credential: u64, now: UnixMillis) -> Result<(), String> {
        // Drop the refused token if it is still the current one (once for a burst of 401s);
        // the re-send's `prepare` then fetches a new one, or waits for the push that does. A
        // 401 for a token already replaced changes nothing: the re-send uses the new one.
        let account = self.tokens.account.load_full();
        let cache = &account.cache;
        let Some(refused) = cache.obtained_at(credential) else {
            return Ok(());
        };
        let last = self.last_401_refresh.load(Ordering::Relaxed);
        let interval = MIN_401_REFRESH_INTERVAL.as_millis() as u64;
        if last != 0 && now < last.saturating_add(interval) {
            return Err(format!(
                "FCM refused a fresh access token (the last one was dropped {} ms ago): \
                 not refreshing again within {} s",
                now.saturating_sub(last),
                MIN_401_REFRESH_INTERVAL.as_secs()
            ));
        }
        if cache.invalidate_after_401(&refused) {
            self.last_401_refresh.store(now, Ordering::Relaxed);
        }
        Ok(())
    }
}
