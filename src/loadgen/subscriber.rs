//! Web Push subscriptions for the load generator's browser devices, asked of the simulator
//! (`POST /wp/subscribe`: the simulator playing the browser), so that a node pointed at the
//! simulator can deliver to them. A made-up endpoint would measure the registration API
//! only: no push service knows it.
//!
//! One TLS + HTTP/2 connection (the simulator speaks nothing else), multiplexed by every
//! registration in flight and reopened by hyper-util's client if it drops. A subscription
//! lives in the simulator process that made it: registrations reused by a later run
//! (`reuse_registrations`) are delivered only while that process runs; a restarted simulator
//! answers 404, and the node then deletes each registration as a dead subscription.

use crate::providers::pool::tls::{TlsSetupError, client_config};
use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Why no subscription was made.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The simulator's certificate could not be loaded.
    #[error("the simulator's certificate: {0}")]
    Tls(#[from] TlsSetupError),
    /// The subscribe URL is not an `https://` URL with a host.
    #[error("webpush_subscribe_url {url:?}: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The request failed: no connection, or it broke.
    #[error("subscribing: {0}")]
    Http(#[from] hyper_util::client::legacy::Error),
    /// The answer's body broke off.
    #[error("reading the subscription: {0}")]
    Body(#[from] hyper::Error),
    /// No answer within the request timeout.
    #[error("no subscription within the request timeout")]
    Timeout,
    /// The simulator refused (a bad key, or not a simulator at that URL).
    #[error("the simulator answered {status}: {reason}")]
    Refused {
        /// The status.
        status: u16,
        /// Its text body.
        reason: String,
    },
    /// The answer is not `PushSubscription.toJSON()`.
    #[error("the answer is not a push subscription: {0}")]
    Unreadable(serde_json::Error),
}

impl SubscribeError {
    /// A short, stable name for the report's registration errors, apart from the node's.
    pub fn kind(&self) -> String {
        let kind = match self {
            SubscribeError::Tls(_) | SubscribeError::Url { .. } => "setup".to_owned(),
            SubscribeError::Http(_) | SubscribeError::Body(_) => "connection".to_owned(),
            SubscribeError::Timeout => "timeout".to_owned(),
            SubscribeError::Refused { status, .. } => format!("http_{status}"),
            SubscribeError::Unreadable(_) => "unreadable_answer".to_owned(),
        };
        format!("webpush_subscribe {kind}")
    }
}

/// What a browser hands its application server (`PushSubscription.toJSON()`), and what the
/// registration API takes for a Web Push device.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Subscription {
    /// Where pushes go: on the simulator.
    pub endpoint: String,
    /// The browser's keys.
    pub keys: SubscriptionKeys,
}

/// A subscription's keys, base64url as the browser gives them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key.
    pub p256dh: String,
    /// The 16-byte auth secret.
    pub auth: String,
}

impl Subscription {
    /// The registration body of a Web Push device of app `web` with this subscription.
    pub fn registration_body(&self) -> serde_json::Value {
        serde_json::json!({"platform": "webpush", "app": "web", "endpoint": self.endpoint,
            "keys": {"p256dh": self.keys.p256dh, "auth": self.keys.auth}})
    }
}

/// Makes subscriptions on one simulator.
pub struct Subscriber {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: Uri,
    timeout: Duration,
}

impl Subscriber {
    /// A subscriber posting to `url` (`https://host:port/wp/subscribe`), trusting only the
    /// certificates in `trusted_roots` (the simulator's). No connection is opened until the
    /// first subscription.
    pub fn new(url: &str, trusted_roots: &Path, timeout: Duration) -> Result<Self, SubscribeError> {
        let invalid = |message: &str| SubscribeError::Url {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let parsed: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if parsed.scheme_str() != Some("https") || parsed.host().is_none() {
            return Err(invalid("must be https://host:port/wp/subscribe"));
        }
        let mut tls = (*client_config(Some(trusted_roots))?).clone();
        // The connector sets ALPN itself (`enable_http2`: h2 only) and panics on a config
        // that names protocols already.
        tls.alpn_protocols.clear();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Ok(Subscriber {
            client,
            url: parsed,
            timeout,
        })
    }

    /// One new subscription, not bound to an application server key (the node's VAPID key
    /// is then accepted as any other would be).
    pub async fn subscribe(&self) -> Result<Subscription, SubscribeError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))
            // Method, a parsed URI and a static header cannot make an invalid request.
            .map_err(|error| SubscribeError::Url {
                url: self.url.to_string(),
                message: error.to_string(),
            })?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, SubscribeError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SubscribeError::Timeout)??;
        if status != http::StatusCode::CREATED {
            return Err(SubscribeError::Refused {
                status: status.as_u16(),
                reason: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(SubscribeError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_becomes_a_web_push_registration() {
        let subscription: Subscription = serde_json::from_str(
            r#"{"endpoint": "https://127.0.0.1:8443/wp/abc", "expirationTime": null,
                "keys": {"p256dh": "BPk", "auth": "x9"}}"#,
        )
        .unwrap();
        assert_eq!(
            subscription.registration_body(),
            serde_json::json!({"platform": "webpush", "app": "web",
                "endpoint": "https://127.0.0.1:8443/wp/abc",
                "keys": {"p256dh": "BPk", "auth": "x9"}})
        );
    }

    #[test]
    fn only_an_https_url_is_taken_and_errors_name_their_kind() {
        let roots = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev/simulator-cert.pem");
        let timeout = Duration::from_secs(1);
        for url in [
            "http://127.0.0.1:8443/wp/subscribe",
            "/wp/subscribe",
            "no url",
        ] {
            let error = Subscriber::new(url, &roots, timeout).err().unwrap();
            assert_eq!(error.kind(), "webpush_subscribe setup", "{url}");
        }
        assert!(Subscriber::new("https://127.0.0.1:8443/wp/subscribe", &roots, timeout).is_ok());
        let missing = Path::new("no/such/cert.pem");
        assert!(matches!(
            Subscriber::new("https://127.0.0.1:8443/wp/subscribe", missing, timeout),
            Err(SubscribeError::Tls(_))
        ));
        let refused = SubscribeError::Refused {
            status: 400,
            reason: "bad key".into(),
        };
        assert_eq!(refused.kind(), "webpush_subscribe http_400");
    }
}
