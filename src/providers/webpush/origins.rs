//! Web Push's many origins: subscriptions point at many push services, so each app keeps one
//! [`WebPushClient`] (and dispatcher) per origin behind one router-facing actor, the shared
//! [`OriginsProvider`]. This file says what is Web Push's own in it: a push's origin comes
//! from its endpoint (HTTPS, on the allowlist), and every new origin is vetted by the SSRF
//! guard before its dispatcher starts, since endpoints are client-supplied URLs.

use super::auth::VapidSigner;
use super::client::{EndpointPolicy, WebPushClient};
use super::config::WebPushProviderConfig;
use crate::providers::dispatcher::DispatcherSettings;
use crate::providers::live::Live;
use crate::providers::origins::{OriginService, OriginSettings, OriginsProvider};
use crate::providers::pool::OriginError;
use crate::push::Push;
use crate::registry::{AnyStore, PushAddress};
use crate::vocab::Platform;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

pub use crate::providers::origins::ADDRESS_REFUSED;

/// The per-app, per-router Web Push provider.
pub type WebPushProvider = OriginsProvider<WebPushApp>;

/// What every origin's dispatcher of one app is made from.
#[derive(Clone)]
pub struct WebPushApp {
    /// Connection, queue and retry settings.
    pub config: WebPushProviderConfig,
    /// The allowlist and the SSRF guard.
    pub policy: EndpointPolicy,
    /// The app's VAPID key (shared by every router), swapped by a reload that changes it.
    pub signer: Live<VapidSigner>,
    /// Whom to trust.
    pub tls: Arc<ClientConfig>,
    /// Where dead subscriptions are deleted.
    pub cleanup: Option<AnyStore>,
}

impl OriginService for WebPushApp {
    type Client = WebPushClient;

    /// The origin passed the allowlist but cannot be dialled: to the device, the same as
    /// an endpoint off the allowlist.
    const UNUSABLE: &'static str = "endpoint_not_allowed";

    fn settings(&self) -> OriginSettings {
        let config = &self.config;
        OriginSettings {
            max_origins: config.max_origins,
            idle: Duration::from_secs(config.idle_origin_seconds),
            dispatcher: DispatcherSettings::new(
                &config.queues,
                config.max_in_flight,
                &config.retry,
                self.cleanup.as_ref(),
                Platform::Webpush,
            ),
            vetting: Some((
                self.policy.guard.clone(),
                Duration::from_millis(config.connect_timeout_ms),
            )),
        }
    }

    fn origin_of(&self, push: &Push) -> Result<String, &'static str> {
        let PushAddress::WebPush { endpoint, .. } = &push.address else {
            return Err("not_webpush");
        };
        // An endpoint off the allowlist or not HTTPS never gets a pool, a lookup or a request.
        self.policy.origin_of(endpoint).map_err(|error| {
            tracing::warn!(event_id = %push.event_id, %error, "web push endpoint refused");
            "endpoint_not_allowed"
        })
    }

    fn start(&self, origin: &str) -> Result<WebPushClient, OriginError> {
        WebPushClient::start(
            origin,
            &self.config,
            self.policy.clone(),
            self.signer.clone(),
            Arc::clone(&self.tls),
        )
    }
}
