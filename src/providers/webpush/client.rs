//! The Web Push client: the [`PushService`] that sends one app's pushes to **one** push
//! service origin (`https://fcm.googleapis.com`, `https://updates.push.services.mozilla.com`
//! ...) over that origin's pool. Subscriptions spread over many origins, so
//! [`super::origins::WebPushProvider`] keeps one such client (and its dispatcher) per origin:
//! the shared dispatcher and delivery loop then stay unchanged, since every stream they take
//! from `pool()` leads to the origin the request is for.
//!
//! The endpoint is client-supplied: before any request it is checked again (HTTPS, a host on
//! the allowlist, this client's origin), and the pool resolves and vets the address at
//! connect time (the SSRF guard, [`crate::providers::pool::guard`]).

use super::auth::VapidSigner;
use super::config::WebPushProviderConfig;
use super::payload::build_request;
use super::response;
use crate::providers::live::Live;
use crate::providers::pool::guard::AddressGuard;
use crate::providers::pool::{Answer, Origin, OriginError, Pool, PoolSettings, Protocols};
use crate::providers::service::{Prepared, PushService, Verdict, alert_on};
use crate::push::Push;
use crate::registry::PushAddress;
use crate::registry::validate::host_allowed;
use crate::vocab::{Outcome, Platform, UnixMillis};
use http::HeaderValue;
use http::header::AUTHORIZATION;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;

/// Where a client-supplied endpoint may lead: the host allowlist and the address guard.
#[derive(Clone, Debug)]
pub struct EndpointPolicy {
    /// Hosts (`host`, `host:port`, `*.domain`) a subscription may name.
    pub allowed_hosts: Arc<[String]>,
    /// The connect-time address check.
    pub guard: AddressGuard,
}

/// Why an endpoint gets no request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// Not an absolute `https://` URI.
    #[error("endpoint is not an https:// URI")]
    NotHttps,
    /// The host is not on the allowlist.
    #[error("endpoint host {0} is not an allowed push service")]
    NotAllowed(String),
}

impl EndpointPolicy {
    /// The origin (`https://host[:port]`) of `endpoint`, if it may get a request at all.
    pub fn origin_of(&self, endpoint: &str) -> Result<String, EndpointError> {
        let uri: http::Uri = endpoint.parse().map_err(|_| EndpointError::NotHttps)?;
        let (Some("https"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(EndpointError::NotHttps);
        };
        if authority.as_str().contains('@') {
            return Err(EndpointError::NotHttps);
        }
        let host = authority.host().to_ascii_lowercase();
        if !host_allowed(&host, authority.port_u16(), &self.allowed_hosts) {
            return Err(EndpointError::NotAllowed(host));
        }
        Ok(match authority.port_u16() {
            Some(port) if port != 443 => format!("https://{host}:{port}"),
            _ => format!("https://{host}"),
        })
    }
}

/// One app's Web Push pushes to one push-service origin.
pub struct WebPushClient {
    /// The origin, `https://host[:port]`: the VAPID `aud`, and the only place this client's
    /// pool connects to.
    origin: String,
    /// K connections to the origin, dialled through the SSRF guard.
    pool: Pool,
    /// The app's VAPID key and its per-origin tokens; a reload that changes the key swaps
    /// the cell, and the next push signs a token with the new key.
    signer: Live<VapidSigner>,
    /// The allowlist, checked again before each request.
    policy: EndpointPolicy,
    /// How long an answer may take.
    request_timeout: Duration,
}

impl WebPushClient {
    /// A client for `origin` (as [`EndpointPolicy::origin_of`] gives it), signing with
    /// `signer`, trusting `tls`. Starts its connections on the current runtime.
    pub fn start(
        origin: &str,
        config: &WebPushProviderConfig,
        policy: EndpointPolicy,
        signer: impl Into<Live<VapidSigner>>,
        tls: Arc<ClientConfig>,
    ) -> Result<WebPushClient, OriginError> {
        let signer = signer.into();
        let parsed = Origin::parse(origin, tls)?;
        let settings = config.pool_settings(policy.guard.clone());
        Ok(WebPushClient {
            origin: origin.to_owned(),
            pool: Pool::start(parsed, settings),
            signer,
            policy,
            request_timeout: config.request_timeout(),
        })
    }

    /// The origin this client sends to.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl WebPushProviderConfig {
    /// The settings of one origin's pool, dialled through `guard` (the SSRF check).
    pub fn pool_settings(&self, guard: AddressGuard) -> PoolSettings {
        PoolSettings {
            connections: self.connections(),
            // Browsers' push services may speak HTTP/1.1 only (docs/protocols.md, "Transport").
            protocols: Protocols::Http2OrHttp1,
            http1_connections: self.http1_connections(),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            keep_alive_interval: Duration::from_secs(self.ping_interval_seconds),
            provider: Some(Platform::Webpush),
            guard: Some(guard),
            answer_fields: response::ANSWER_FIELDS,
            ..PoolSettings::default()
        }
    }
}

impl PushService for WebPushClient {
    fn name(&self) -> &'static str {
        "webpush"
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    async fn prepare(&self, push: &Push, now: UnixMillis) -> Result<Prepared, Outcome> {
        let rejected = |reason: &str| Outcome::Rejected {
            reason: reason.to_owned(),
        };
        let PushAddress::WebPush { endpoint, .. } = &push.address else {
            return Err(rejected("not_webpush"));
        };
        // Again here, whatever the registry let through: never a request off the allowlist
        // or to another origin than the one this pool's connections were vetted for.
        match self.policy.origin_of(endpoint) {
            Ok(origin) if origin == self.origin => {}
            Ok(_) => return Err(rejected("wrong_origin")),
            Err(error) => {
                tracing::warn!(event_id = %push.event_id, %error, "web push endpoint refused");
                return Err(rejected("endpoint_not_allowed"));
            }
        }
        let mut request = build_request(push, now).map_err(|error| error.fault().outcome())?;
        let token = self
            .signer
            .load()
            .token(&self.origin, now)
            .map_err(|error| {
                tracing::error!(provider = "webpush", %error, "cannot mint a VAPID token");
                Outcome::CredentialProblem {
                    reason: "vapid_unusable".into(),
                }
            })?;
        let authorization =
            HeaderValue::try_from(&*token.header).map_err(|_| rejected("bad_request"))?;
        request.headers_mut().insert(AUTHORIZATION, authorization);
        Ok(Prepared {
            request: request.into(),
            credential: token.serial,
        })
    }

    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict {
        let verdict = response::judge(answer.status, &answer.headers, &answer.body, now);
        alert_on("webpush", &self.origin, answer.status, &verdict);
        verdict
    }

    /// VAPID refusals are final (a subscription made for another key stays refused), so the
    /// delivery loop never asks for a refresh; a cached token is re-minted before expiry.
    async fn refresh_credential(&self, _credential: u64, _now: UnixMillis) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> EndpointPolicy {
        EndpointPolicy {
            allowed_hosts: hosts.iter().map(std::string::ToString::to_string).collect(),
            guard: AddressGuard::default(),
        }
    }

    #[test]
    fn origins_come_only_from_allowed_https_endpoints() {
        let p = policy(&[
            "fcm.googleapis.com",
            "*.notify.windows.com",
            "127.0.0.1:8443",
        ]);
        assert_eq!(
            p.origin_of("https://fcm.googleapis.com/fcm/send/x")
                .unwrap(),
            "https://fcm.googleapis.com"
        );
        assert_eq!(
            p.origin_of("https://FCM.googleapis.com:443/x").unwrap(),
            "https://fcm.googleapis.com"
        );
        assert_eq!(
            p.origin_of("https://wns2-par02p.notify.windows.com/w/?token=x")
                .unwrap(),
            "https://wns2-par02p.notify.windows.com"
        );
        assert_eq!(
            p.origin_of("https://127.0.0.1:8443/wp/1").unwrap(),
            "https://127.0.0.1:8443"
        );
        for bad in [
            "http://fcm.googleapis.com/x",
            "https://evil.example/x",
            "https://127.0.0.1:9999/x",
            "https://user@fcm.googleapis.com/x",
            "fcm.googleapis.com/x",
        ] {
            assert!(p.origin_of(bad).is_err(), "{bad}");
        }
    }
}
