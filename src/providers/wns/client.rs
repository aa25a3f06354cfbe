//! The WNS client: the [`PushService`] that posts one app's raw notifications to **one**
//! channel host (`https://db5p.notify.windows.com`, `https://bn3p...`) over that host's pool.
//!
//! Channels live on many regional hosts, so [`super::origins::WnsProvider`] keeps one such
//! client (and its dispatcher) per host, the shape Web Push has for its origins: the
//! dispatcher and delivery loop then stay unchanged, since every stream they take from
//! `pool()` leads to the host the request is for, and a slow host holds only its own
//! dispatcher's slots. Every host's client of an app of a router shares one [`WnsTokens`]:
//! one access token, fetched over one token-endpoint pool, whatever the number of hosts; and
//! every client of the app on every router shares one [`SharedPause`], since WNS throttles
//! the app (`406`, `429`), not a host.

use super::auth::WnsCredential;
use super::config::WnsConfig;
use super::payload::build_request;
use super::response::judge;
use crate::clock::Clock;
use crate::providers::live::Live;
use crate::providers::oauth::{OAuthAccount, TokenEndpoint, TokenSource};
use crate::providers::pause::SharedPause;
use crate::providers::pool::{Answer, Origin, OriginError, Pool, PoolSettings, Protocols};
use crate::providers::service::{Prepared, PushService, Verdict, alert_on};
use crate::push::Push;
use crate::vocab::{Outcome, Platform, UnixMillis};
use http::header::AUTHORIZATION;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

/// A WNS app's credential and the token it was exchanged for, replaced together by a reload
/// (the next push then fetches a token with the new credential).
pub type WnsAccount = OAuthAccount<WnsCredential>;

/// The access tokens of one app of one router and how to get a new one (over connections to
/// the credential's `token_url`), shared by the app's channel hosts' clients. The token
/// itself lives in the account's cache, which every router shares.
pub type WnsTokens = TokenSource<WnsCredential>;

/// Starts the token endpoint's connections for `account` on the current runtime. A reload
/// may change the secret, client id and scope, not the `token_url` (the pool's origin).
pub fn token_source(
    config: &WnsConfig,
    account: Live<WnsAccount>,
    tls: Arc<ClientConfig>,
) -> Result<Arc<WnsTokens>, OriginError> {
    let token_url = account.load().grant.token_url.clone();
    let origin = Origin::parse(&token_url, tls)?;
    let uri: http::Uri = token_url
        .parse()
        .map_err(|_| OriginError::NotHttps(token_url.clone()))?;
    let endpoint = TokenEndpoint::new(Pool::start(origin, pool_settings(config)), uri);
    Ok(TokenSource::new(
        endpoint,
        account,
        config.request_timeout(),
        Clock::System,
    ))
}

/// One app's WNS pushes to one channel host.
pub struct WnsClient {
    /// The origin, `https://host[:port]`: the channel host, or the configured
    /// `channel_base_url` (the simulator). Every request goes here, with the channel's path.
    origin: String,
    /// K connections to the origin.
    pool: Pool,
    /// The app's access token, shared with its other hosts' clients.
    tokens: Arc<WnsTokens>,
    /// The app's throttle pause: WNS throttles the app, so every host's client holds back.
    pause: SharedPause,
    /// How long an answer may take.
    request_timeout: Duration,
}

impl WnsClient {
    /// A client for `origin` (as [`super::payload::channel_origin`] gives it), authorised by
    /// `tokens`, trusting `tls`. Starts its connections on the current runtime.
    pub fn start(
        origin: &str,
        config: &WnsConfig,
        tokens: Arc<WnsTokens>,
        pause: SharedPause,
        tls: Arc<ClientConfig>,
    ) -> Result<WnsClient, OriginError> {
        let parsed = Origin::parse(origin, tls)?;
        Ok(WnsClient {
            origin: origin.to_owned(),
            pool: Pool::start(parsed, pool_settings(config)),
            tokens,
            pause,
            request_timeout: config.request_timeout(),
        })
    }

    /// The origin this client posts to.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// The pool settings of every WNS connection: Microsoft's token endpoints and some channel
/// hosts speak HTTP/1.1 only (docs/protocols.md, "Transport"), so both are offered. No SSRF
/// guard: a channel's host is on `*.notify.windows.com` (checked at registration and again
/// before a request), not an address a client picks.
pub fn pool_settings(config: &WnsConfig) -> PoolSettings {
    PoolSettings {
        connections: config.connections(),
        keep_alive_interval: Duration::from_secs(config.ping_interval_seconds),
        protocols: Protocols::Http2OrHttp1,
        http1_connections: config.http1_connections(),
        provider: Some(Platform::Wns),
        answer_fields: super::response::ANSWER_FIELDS,
        ..PoolSettings::default()
    }
}

impl PushService for WnsClient {
    fn name(&self) -> &'static str {
        "wns"
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    async fn prepare(&self, push: &Push, now: UnixMillis) -> Result<Prepared, Outcome> {
        // The channel's path on this client's origin: for a channel host, the channel URI
        // itself; for the override, the same path at the simulator.
        let mut request = build_request(push, now, Some(&self.origin))
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
        let verdict = judge(answer.status, &answer.headers, &answer.body, now);
        alert_on("wns", &self.origin, answer.status, &verdict);
        verdict
    }

    fn pause(&self, until: UnixMillis) {
        self.pause.hold(until, Platform::Wns, &self.origin);
    }

    fn paused_until(&self) -> Option<UnixMillis> {
        self.pause.until()
    }

    async fn refresh_credential(&self, credential: u64, now: UnixMillis) -> Result<(), String> {
        // Drop the refused token once for a burst of 401s, for every host of the app; the
        // re-send's `prepare` then fetches a new one (crate::providers::oauth).
        self.tokens.refused(credential, now)
    }
}
