//! WNS's many origins: channels live on many regional hosts, so each app keeps one
//! [`WnsClient`] (and dispatcher) per channel host behind one router-facing actor, the
//! shared [`OriginsProvider`] that Web Push uses too. This file says what is WNS's own in it:
//! a push's origin is its channel's host (or the configured `channel_base_url`, which sends
//! every push to the simulator), no SSRF lookup is made (the host is on
//! `*.notify.windows.com`, checked before anything is started for it), and every host's
//! client shares the app's one access token.
//!
//! `max_hosts` bounds the hosts open at once: when full, the least recently used host is let
//! go (its dispatcher finishes what it holds) rather than a push to a new host refused.

use super::client::{WnsAccount, WnsClient, WnsTokens, token_source};
use super::config::WnsConfig;
use super::payload::channel_origin;
use crate::providers::dispatcher::DispatcherSettings;
use crate::providers::live::Live;
use crate::providers::origins::{OriginService, OriginSettings, OriginsProvider};
use crate::providers::pause::SharedPause;
use crate::providers::pool::OriginError;
use crate::push::Push;
use crate::registry::AnyStore;
use crate::vocab::Platform;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

/// The per-app, per-router WNS provider.
pub type WnsProvider = OriginsProvider<WnsHosts>;

/// What every channel host's dispatcher of one app of one router is made from.
#[derive(Clone)]
pub struct WnsHosts {
    /// Connection, queue and retry settings.
    pub config: WnsConfig,
    /// The app's access token and its token endpoint's connections, shared by every host's
    /// client, so the token is fetched once for the app, not once per host; a credential
    /// reload swaps the account inside it and so reaches every host.
    pub tokens: Arc<WnsTokens>,
    /// The app's throttle pause, shared by every host's client and every router's.
    pub pause: SharedPause,
    /// Whom the channel hosts must prove to be.
    pub tls: Arc<ClientConfig>,
    /// Where dead channels' registrations are deleted.
    pub cleanup: Option<AnyStore>,
}

impl WnsHosts {
    /// The hosts of the app with `account`; starts its token endpoint's connections on the
    /// current runtime (the channel hosts' start on first use).
    pub fn start(
        config: &WnsConfig,
        account: Live<WnsAccount>,
        pause: SharedPause,
        tls: Arc<ClientConfig>,
        cleanup: Option<AnyStore>,
    ) -> Result<WnsHosts, OriginError> {
        if let Some(base) = &config.channel_base_url {
            // Refused at start-up, not at every push.
            crate::providers::pool::Origin::parse(base, Arc::clone(&tls))?;
        }
        Ok(WnsHosts {
            tokens: token_source(config, account, Arc::clone(&tls))?,
            pause,
            config: config.clone(),
            tls,
            cleanup,
        })
    }
}

impl OriginService for WnsHosts {
    type Client = WnsClient;

    /// A channel host that passed `channel_path` yet is no TLS server name: as foreign as
    /// a channel off Microsoft's hosts.
    const UNUSABLE: &'static str = "foreign_channel";

    fn settings(&self) -> OriginSettings {
        let config = &self.config;
        OriginSettings {
            max_origins: config.max_hosts,
            idle: Duration::from_secs(config.idle_host_seconds),
            dispatcher: DispatcherSettings::new(
                &config.queues,
                config.max_in_flight,
                &config.retry,
                self.cleanup.as_ref(),
                Platform::Wns,
            ),
            vetting: None,
        }
    }

    fn origin_of(&self, push: &Push) -> Result<String, &'static str> {
        channel_origin(&push.address, self.config.channel_base_url.as_deref())
            .map_err(|error| error.reason())
    }

    fn start(&self, origin: &str) -> Result<WnsClient, OriginError> {
        WnsClient::start(
            origin,
            &self.config,
            Arc::clone(&self.tokens),
            self.pause.clone(),
            Arc::clone(&self.tls),
        )
    }
}
