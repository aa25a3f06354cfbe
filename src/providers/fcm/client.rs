//! The FCM client: the [`PushService`] that sends one app's pushes to its Firebase project
//! over the pool's HTTP/2 connections, with the service account's shared access token.
//!
//! Everything protocol-shaped is in the pure modules ([`super::payload`] builds the request,
//! [`super::auth`] is the service account's grant, [`super::response`] judges FCM's answer);
//! this file only joins them to the network:
//!
//! - the access token comes from the shared OAuth [`TokenSource`] (one refresh for every
//!   waiting push, refreshed ahead of expiry, backed off after a failure, one drop per burst
//!   of 401s: [`crate::providers::oauth`]), over a pool of its own: Google's token host is not
//!   FCM's;
//! - `QUOTA_EXCEEDED` pauses the whole project ([`SharedPause`], one per project, shared by
//!   every router's client of it), so no push of it goes out before the pause ends.

use super::auth::{AccessTokenCache, AssertionSigner};
use super::config::FcmConfig;
use super::payload::{PayloadError, build_request, path};
use super::response::judge;
use crate::clock::Clock;
use crate::providers::live::Live;
use crate::providers::oauth::{OAuthAccount, TokenEndpoint, TokenSource};
use crate::providers::pause::SharedPause;
use crate::providers::pool::{Answer, Origin, OriginError, Pool};
use crate::providers::service::{Prepared, PushService, Verdict, alert_on};
use crate::push::Push;
use crate::vocab::{Outcome, Platform, UnixMillis};
use http::header::AUTHORIZATION;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

pub use crate::providers::oauth::{MIN_401_REFRESH_INTERVAL, TOKEN_RETRY_AFTER_FAILURE};

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

/// A service account as pushes use it: its signer and the token every client of the account
/// shares ([`crate::providers::oauth`]). Replaced whole on reload, so a token is always stored
/// in the cache of the account that signed for it.
pub type FcmAccount = OAuthAccount<AssertionSigner>;

/// One app's FCM pushes, to one Firebase project.
pub struct FcmClient {
    /// The K connections to FCM.
    pool: Pool,
    /// The Firebase project sent to; checked at start to be a valid path segment.
    project_id: String,
    /// The access token and how to get a new one.
    tokens: Arc<TokenSource<AssertionSigner>>,
    /// The project's quota pause, shared with the project's other clients.
    pause: SharedPause,
    /// How long an answer may take.
    request_timeout: Duration,
    /// The pause after `QUOTA_EXCEEDED` when FCM names no longer `Retry-After`.
    quota_pause_default: Duration,
}

impl FcmClient {
    /// A client sending to `project_id` with `signer`'s service account, sharing `tokens`
    /// (one cache per service account) and `pause` (one per project) with the other routers,
    /// trusting `tls`. Starts its connections (to FCM and to the token endpoint) on the
    /// current runtime; no token is fetched until the first push needs one.
    pub fn start(
        config: &FcmConfig,
        project_id: &str,
        signer: AssertionSigner,
        tokens: AccessTokenCache,
        pause: SharedPause,
        tls: Arc<ClientConfig>,
    ) -> Result<FcmClient, FcmStartError> {
        let account = Live::new(FcmAccount {
            grant: signer,
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
        pause: SharedPause,
        tls: Arc<ClientConfig>,
    ) -> Result<FcmClient, FcmStartError> {
        path(project_id)?;
        let origin = Origin::parse(&config.base_url, Arc::clone(&tls))?;
        let token_uri = account.load().grant.token_uri().to_owned();
        let uri: http::Uri = token_uri
            .parse()
            .map_err(|_| FcmStartError::TokenUri(token_uri.clone()))?;
        let token_origin = Origin::parse(&token_uri, tls)?;
        let endpoint =
            TokenEndpoint::new(Pool::start(token_origin, config.token_pool_settings()), uri);
        Ok(FcmClient {
            pool: Pool::start(origin, config.pool_settings()),
            project_id: project_id.to_owned(),
            tokens: TokenSource::new(endpoint, account, config.request_timeout(), Clock::System),
            pause,
            request_timeout: config.request_timeout(),
            quota_pause_default: config.quota_backoff_default(),
        })
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
        let mut request = build_request(push, &self.project_id, self.pool.base(), now)
            .map_err(|error| error.fault().outcome())?;
        let token = self.tokens.token(push.deadline).await?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.authorization);
        Ok(Prepared {
            request: request.into(),
            credential: token.obtained_at,
        })
    }

    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict {
        let verdict = judge(
            answer.status,
            &answer.headers,
            &answer.body,
            now,
            self.quota_pause_default,
        );
        alert_on("fcm", &self.project_id, answer.status, &verdict);
        verdict
    }

    fn pause(&self, until: UnixMillis) {
        self.pause.hold(until, Platform::Fcm, &self.project_id);
    }

    fn paused_until(&self) -> Option<UnixMillis> {
        self.pause.until()
    }

    async fn refresh_credential(&self, credential: u64, now: UnixMillis) -> Result<(), String> {
        // Drop the refused token once for a burst of 401s; the re-send's `prepare` then
        // fetches a new one, or waits for the push that does (crate::providers::oauth).
        self.tokens.refused(credential, now)
    }
}
