//! The WNS client: the [`PushService`] that posts one app's raw notifications to its
//! devices' channel URIs.
//!
//! Channels live on many regional hosts (`db5p.notify.windows.com`, `bn3p...`), so unlike
//! APNs and FCM there is one small pool per host, made on first use and bounded in number
//! (`max_hosts`); the dispatcher lets each delivery take its stream from its own host's pool
//! ([`PushService::single_pool`] is `false`), so a slow host does not hold up the others.
//! [`PushService::pool`] is the token endpoint's pool; the status reports the channel hosts'
//! pools ([`PushService::pools`]), which carry the pushes.

use super::auth::WnsCredential;
use super::config::WnsConfig;
use super::payload::{PayloadError, build_request, channel_path};
use super::response::judge;
use crate::clock::Clock;
use crate::providers::live::Live;
use crate::providers::oauth::{AccessTokenCache, OAuthAccount, TokenEndpoint, TokenSource};
use crate::providers::pool::{
    Answer, Origin, OriginError, Pool, PoolSettings, PoolSnapshot, Protocols,
};
use crate::providers::service::{Prepared, PushService, Verdict, alert_on};
use crate::push::Push;
use crate::registry::PushAddress;
use crate::vocab::{Outcome, Platform, UnixMillis};
use http::header::AUTHORIZATION;
use http_body_util::Full;
use rustls::ClientConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// One app's WNS pushes.
pub struct WnsClient {
    /// The access token, shared by every shard's client of the app, and how to get a new one
    /// (over connections to the app's token endpoint, the credential's `token_url`).
    tokens: Arc<TokenSource<WnsCredential>>,
    /// One pool per channel origin (`https://host`).
    pools: Mutex<HashMap<String, Pool>>,
    /// Whom the channel hosts must prove to be.
    tls: Arc<ClientConfig>,
    /// Settings.
    config: WnsConfig,
}

/// A WNS app's credential and the token it was exchanged for, replaced together by a reload
/// (the next push then fetches a token with the new credential).
pub type WnsAccount = OAuthAccount<WnsCredential>;

impl WnsClient {
    /// A client for the app with `credential`, sharing `tokens` with the app's other
    /// clients; starts the token endpoint's connections on the current runtime.
    pub fn start(
        config: &WnsConfig,
        credential: WnsCredential,
        tokens: AccessTokenCache,
        tls: Arc<ClientConfig>,
    ) -> Result<WnsClient, OriginError> {
        let account = WnsAccount {
            grant: credential,
            cache: tokens,
        };
        Self::start_live(config, Live::new(account), tls)
    }

    /// [`WnsClient::start`] with the app's reloadable credential cell. A reload may change
    /// the secret, client id and scope, not the `token_url` (the token pool's origin).
    pub fn start_live(
        config: &WnsConfig,
        account: Live<WnsAccount>,
        tls: Arc<ClientConfig>,
    ) -> Result<WnsClient, OriginError> {
        let token_url = account.load().grant.token_url.clone();
        let origin = Origin::parse(&token_url, Arc::clone(&tls))?;
        let uri: http::Uri = token_url
            .parse()
            .map_err(|_| OriginError::NotHttps(token_url.clone()))?;
        if let Some(base) = &config.channel_base_url {
            Origin::parse(base, Arc::clone(&tls))?;
        }
        let endpoint = TokenEndpoint::new(Pool::start(origin, pool_settings(config)), uri);
        Ok(WnsClient {
            tokens: TokenSource::new(endpoint, account, config.request_timeout(), Clock::System),
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
}

/// The pool settings of every WNS connection: Microsoft's token endpoints and some channel
/// hosts speak HTTP/1.1 only (docs/protocols.md, "Transport"), so both are offered.
pub fn pool_settings(config: &WnsConfig) -> PoolSettings {
    PoolSettings {
        connections: config.connections(),
        keep_alive_interval: Duration::from_secs(config.ping_interval_seconds),
        protocols: Protocols::Http2OrHttp1,
        http1_connections: config.http1_connections(),
        provider: Some(Platform::Wns),
        ..PoolSettings::default()
    }
}

impl PushService for WnsClient {
    fn name(&self) -> &'static str {
        "wns"
    }

    fn pool(&self) -> &Pool {
        self.tokens.endpoint().pool()
    }

    fn pools(&self) -> PoolSnapshot {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = PoolSnapshot::default();
        for pool in pools.values() {
            total += pool.snapshot();
        }
        total
    }

    fn single_pool(&self) -> bool {
        false
    }

    fn pool_for(&self, push: &Push) -> Pool {
        // `prepare` made the pool (or refused the push) before any stream is taken.
        self.origin_of(push)
            .and_then(|origin| self.pool_of(&origin).ok())
            .unwrap_or_else(|| self.pool().clone())
    }

    fn request_timeout(&self) -> Duration {
        self.config.request_timeout()
    }

    async fn prepare(&self, push: &Push, now: UnixMillis) -> Result<Prepared, Outcome> {
        let built = build_request(push, now, self.config.channel_base_url.as_deref())
            .map_err(|error| error.fault().outcome())?;
        let origin = self
            .origin_of(push)
            .ok_or_else(|| PayloadError::ForeignChannel.fault().outcome())?;
        self.pool_of(&origin)
            .map_err(|reason| Outcome::Rejected { reason })?;
        let token = self.tokens.token(push.deadline).await?;
        let mut request = built.map(Full::new);
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.authorization);
        Ok(Prepared {
            request,
            credential: token.obtained_at,
        })
    }

    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict {
        let verdict = judge(answer.status, &answer.headers, &answer.body, now);
        alert_on("wns", "channel", answer.status, &verdict);
        verdict
    }

    async fn refresh_credential(&self, credential: u64, now: UnixMillis) -> Result<(), String> {
        // Drop the refused token once for a burst of 401s; the re-send's `prepare` then
        // fetches a new one (crate::providers::oauth).
        self.tokens.refused(credential, now)
    }
}

#[cfg(test)]
mod tests;
