//! The WNS client: the [`PushService`] that posts one app's raw notifications to its
//! devices' channel URIs.
//!
//! Channels live on many regional hosts (`db5p.notify.windows.com`, `bn3p...`), so unlike
//! APNs and FCM there is one small pool per host, made on first use and bounded in number
//! (`max_hosts`); the dispatcher lets each delivery take its stream from its own host's pool
//! ([`PushService::single_pool`] is `false`), so a slow host does not hold up the others.
//! [`PushService::pool`] is the token endpoint's pool.

use super::auth::{
    AccessToken, TokenCache, WnsCredential, parse_token_response, token_request_body,
};
use super::config::WnsConfig;
use super::payload::{PayloadError, build_request, channel_path};
use super::response::judge;
use crate::metrics::{self, RefreshOutcome};
use crate::providers::live::Live;
use crate::providers::pool::{Answer, Origin, OriginError, Pool, PoolSettings, Protocols};
use crate::providers::service::{Prepared, PushService, Verdict};
use crate::push::{Outcome, Push};
use crate::registry::{Platform, PushAddress, UnixMillis};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http_body_util::Full;
use rustls::ClientConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// One app's WNS pushes.
pub struct WnsClient {
    /// The credential and the access token it got, shared by every shard's client of the
    /// app; a reload that changes the credential swaps both (the next push fetches a token
    /// with the new one).
    account: Live<WnsAccount>,
    /// Connections to the app's token endpoint (the credential's `token_url`).
    token_pool: Pool,
    /// One pool per channel origin (`https://host`).
    pools: Mutex<HashMap<String, Pool>>,
    /// Whom the channel hosts must prove to be.
    tls: Arc<ClientConfig>,
    /// Settings.
    config: WnsConfig,
}

/// A WNS app's credential and the token it was exchanged for, replaced together.
#[derive(Clone)]
pub struct WnsAccount {
    /// The client id and secret, token endpoint and scope.
    pub credential: WnsCredential,
    /// The access token, shared by every shard's client of the app.
    pub tokens: Arc<TokenCache>,
}

impl WnsClient {
    /// A client for the app with `credential`, sharing `tokens` with the app's other
    /// clients; starts the token endpoint's connections on the current runtime.
    pub fn start(
        config: &WnsConfig,
        credential: WnsCredential,
        tokens: Arc<TokenCache>,
        tls: Arc<ClientConfig>,
    ) -> Result<WnsClient, OriginError> {
        Self::start_live(config, Live::new(WnsAccount { credential, tokens }), tls)
    }

    /// [`WnsClient::start`] with the app's reloadable credential cell. A reload may change
    /// the secret, client id and scope, not the `token_url` (the token pool's origin).
    pub fn start_live(
        config: &WnsConfig,
        account: Live<WnsAccount>,
        tls: Arc<ClientConfig>,
    ) -> Result<WnsClient, OriginError> {
        let origin = Origin::parse(&account.load().credential.token_url, Arc::clone(&tls))?;
        if let Some(base) = &config.channel_base_url {
            Origin::parse(base, Arc::clone(&tls))?;
        }
        Ok(WnsClient {
            account,
            token_pool: Pool::start(origin, pool_settings(config)),
            pools: Mutex::new(HashMap::new()),
            tls,
            config: config.clone(),
        })
    }

    /// The origin `push` is posted to: the override, or the channel's own host.
    fn origin_of(&self, push: &Push) -> Option<String> {
        if let Some(base) = &self.config.channel_base_url {
            return Some(base.trim_end_matches('/').to_owned());
        }
        let PushAddress::Wns { channel } = &push.address else {
            return None;
        };
        channel_path(channel).map(|(host, _)| format!("https://{host}"))
    }

    /// The pool of `origin`, made on first use while fewer than `max_hosts` exist.
    fn pool_of(&self, origin: &str) -> Result<Pool, String> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = pools.get(origin) {
            return Ok(pool.clone());
        }
        if pools.len() >= self.config.max_hosts {
            return Err("too_many_push_hosts".into());
        }
        let parsed = Origin::parse(origin, Arc::clone(&self.tls)).map_err(|e| e.to_string())?;
        let pool = Pool::start(parsed, pool_settings(&self.config));
        pools.insert(origin.to_owned(), pool.clone());
        Ok(pool)
    }

    /// Exchanges the credential for a new access token.
    async fn fetch_token(
        &self,
        credential: &WnsCredential,
        now: UnixMillis,
    ) -> Result<AccessToken, String> {
        let fetched = self.exchange(credential, now).await;
        let outcome = match fetched {
            Ok(_) => RefreshOutcome::Ok,
            Err(_) => RefreshOutcome::Error,
        };
        metrics::credential_refresh(Platform::Wns, outcome);
        if let Err(error) = &fetched {
            tracing::error!(provider = "wns", %error, "WNS access token refresh failed");
        }
        fetched
    }

    async fn exchange(
        &self,
        credential: &WnsCredential,
        now: UnixMillis,
    ) -> Result<AccessToken, String> {
        let stream = self
            .token_pool
            .acquire(Instant::now() + self.config.request_timeout())
            .await
            .map_err(|error| format!("token endpoint: {error}"))?;
        let request = http::Request::post(&credential.token_url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(Full::new(Bytes::from(token_request_body(credential))))
            .map_err(|error| format!("token request: {error}"))?;
        let answer = tokio::time::timeout(self.config.request_timeout(), stream.send(request))
            .await
            .map_err(|_| "token endpoint timed out".to_owned())?
            .map_err(|error| format!("token endpoint: {error}"))?;
        parse_token_response(answer.status, &answer.body, now)
    }
}

/// The pool settings of every WNS connection: Microsoft's token endpoints and some channel
/// hosts speak HTTP/1.1 only (docs/protocols.md, "Transport"), so both are offered.
fn pool_settings(config: &WnsConfig) -> PoolSettings {
    PoolSettings {
        connections: config.connections_per_host,
        protocols: Protocols::Http2OrHttp1,
        http1_connections: config.http1_connections_per_host,
        provider: Some(Platform::Wns),
        ..PoolSettings::default()
    }
}

impl PushService for WnsClient {
    fn name(&self) -> &'static str {
        "wns"
    }

    fn pool(&self) -> &Pool {
        &self.token_pool
    }

    fn single_pool(&self) -> bool {
        false
    }

    fn pool_for(&self, push: &Push) -> Pool {
        // `prepare` made the pool (or refused the push) before any stream is taken.
        self.origin_of(push)
            .and_then(|origin| self.pool_of(&origin).ok())
            .unwrap_or_else(|| self.token_pool.clone())
    }

    fn request_timeout(&self) -> Duration {
        self.config.request_timeout()
    }

    async fn prepare(&self, push: &Push, now: UnixMillis) -> Result<Prepared, Outcome> {
        let built =
            build_request(push, now, self.config.channel_base_url.as_deref()).map_err(|error| {
                match error {
                    PayloadError::Expired => Outcome::Expired,
                    other => Outcome::Rejected {
                        reason: other.reason().to_owned(),
                    },
                }
            })?;
        let origin = self.origin_of(push).ok_or_else(|| Outcome::Rejected {
            reason: PayloadError::ForeignChannel.reason().to_owned(),
        })?;
        self.pool_of(&origin)
            .map_err(|reason| Outcome::Rejected { reason })?;
        let account = self.account.load_full();
        let token = account
            .tokens
            .get(now, || self.fetch_token(&account.credential, now))
            .await
            .map_err(|reason| Outcome::CredentialProblem { reason })?;
        let mut request = http::Request::post(built.uri)
            .body(Full::new(Bytes::from(built.body)))
            .map_err(|error| Outcome::Rejected {
                reason: format!("request: {error}"),
            })?;
        *request.headers_mut() = built.headers;
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.authorization);
        Ok(Prepared {
            request,
            credential: token.obtained_at,
        })
    }

    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict {
        judge(answer.status, &answer.headers, now)
    }

    async fn refresh_credential(&self, credential: u64, _now: UnixMillis) -> Result<(), String> {
        // Dropping the refused token makes the next `prepare` fetch a new one (once).
        self.account.load_full().tokens.invalidate(credential).await;
        Ok(())
    }
}
