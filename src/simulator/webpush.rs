//! The Web Push side's rule book (RFC 8030, RFC 8291, RFC 8292), pure: a request in, a
//! verdict out. The simulator plays the push service *and* the browsers behind it: it makes
//! subscriptions as a browser does (a P-256 key pair and a 16-byte auth secret each, kept
//! here), checks the VAPID JWT, the headers, and decrypts each body as the browser would, so
//! a test sees the plaintext the device would get.
//!
//! Paths: `/wp/<subscription id>`. A subscription made with an application server key
//! accepts only that key's VAPID tokens (403 otherwise), as browsers bind them.
//!
//! `POST /wp/subscribe` is the browser's side, which no push service has (a browser reaches
//! its vendor's service over a private protocol): it makes a subscription as
//! `pushManager.subscribe({applicationServerKey})` does and answers
//! `PushSubscription.toJSON()`, so a process other than the simulator's own — the load
//! generator, a demo script — can play the browser. [`SubscribeOptions`] reads its body.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::rand_core::OsRng;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

/// The path prefix of subscription endpoints.
pub const PATH_PREFIX: &str = "/wp/";
/// Where a browser stand-in asks for a new subscription (`POST`); a simulator feature, not a
/// push service's API. Its last segment is reserved: no subscription is called `subscribe`.
pub const SUBSCRIBE_PATH: &str = "/wp/subscribe";
/// The largest `POST /wp/subscribe` body read: an application server key is 87 characters.
pub const MAX_SUBSCRIBE_BODY: usize = 1024;
/// RFC 8030 §7.2: push services must accept 4096 bytes of body; larger is 413.
pub const MAX_BODY: usize = 4096;

/// What a browser hands its application server: `PushSubscription.toJSON()`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NewSubscription {
    /// The id in the endpoint's path (tests script it as unregistered by this id).
    pub id: String,
    /// `https://<simulator>/wp/<id>`.
    pub endpoint: String,
    /// The browser's public key, base64url (65 bytes).
    pub p256dh: String,
    /// The auth secret, base64url (16 bytes).
    pub auth: String,
}

impl NewSubscription {
    /// `PushSubscription.toJSON()`: what a page posts to its application server, and what
    /// ringcast's registration API takes (`endpoint`, `keys`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        })
    }
}

/// The body of `POST /wp/subscribe`: `PushSubscriptionOptionsInit` as a page passes it to
/// `pushManager.subscribe()`. An empty body is an unbound subscription.
#[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscribeOptions {
    /// Browsers require `true` (every push must show something); taken and ignored, so a
    /// page's own options object can be posted as it is.
    pub user_visible_only: Option<bool>,
    /// The application server's VAPID public key, base64url: the subscription then accepts
    /// only that key's tokens.
    pub application_server_key: Option<String>,
}

impl SubscribeOptions {
    /// Reads a `POST /wp/subscribe` body: empty, or the options as JSON.
    pub fn from_body(body: &[u8]) -> Result<Self, String> {
        if body.trim_ascii().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_slice(body).map_err(|error| format!("not subscription options: {error}"))
    }
}

/// One subscription's private half, as only the browser holds it.
struct Subscription {
    secret: p256::SecretKey,
    auth: [u8; 16],
    /// The VAPID public key (raw, 65 bytes) the subscription was made for, if any.
    application_server_key: Option<Vec<u8>>,
}

/// Every subscription made so far.
#[derive(Default)]
pub struct Subscriptions {
    by_id: Mutex<HashMap<String, Subscription>>,
}

impl Subscriptions {
    /// Makes a subscription on the simulator at `base` (`https://host:port`), bound to
    /// `application_server_key` (base64url) when given.
    pub fn subscribe(
        &self,
        base: &str,
        application_server_key: Option<&str>,
        id: Option<&str>,
    ) -> Result<NewSubscription, String> {
        if let Some(id) = id
            && (id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err("a subscription id is 1+ of A-Z a-z 0-9 -".into());
        }
        if id.is_some_and(|id| SUBSCRIBE_PATH.strip_prefix(PATH_PREFIX) == Some(id)) {
            return Err(
                "the subscription id `subscribe` is reserved for POST /wp/subscribe".into(),
            );
        }
        let key = application_server_key
            .map(|key| {
                URL_SAFE_NO_PAD
                    .decode(key)
                    .map_err(|_| "applicationServerKey is not base64url".to_owned())
            })
            .transpose()?;
        // Browsers refuse anything but an uncompressed P-256 point (InvalidAccessError); a
        // key taken here would only fail later, as a 403 on every push.
        if key
            .as_ref()
            .is_some_and(|key| key.len() != 65 || key[0] != 4)
        {
            return Err("applicationServerKey is not an uncompressed P-256 public key".into());
        }
        let secret = p256::SecretKey::random(&mut OsRng);
        let p256dh = secret.public_key().to_encoded_point(false);
        let auth: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
        // Not from the seeded generator: ids must not shift the scripted sequence.
        let id = id.map_or_else(
            || format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            str::to_owned,
        );
        let new = NewSubscription {
            endpoint: format!("{base}{PATH_PREFIX}{id}"),
            p256dh: URL_SAFE_NO_PAD.encode(p256dh.as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth),
            id: id.clone(),
        };
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Subscription {
                    secret,
                    auth,
                    application_server_key: key,
                },
            );
        Ok(new)
    }
}

/// A request as the rules see it.
pub struct WebPushRequest<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The path (`/wp/<id>`).
    pub path: &'a str,
    /// `https://<authority>`: the audience a VAPID token must name.
    pub origin: &'a str,
    /// The headers.
    pub headers: &'a http::HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// A message the browser got.
#[derive(Debug, PartialEq)]
pub struct Delivered {
    /// The subscription id.
    pub subscription: String,
    /// `TTL`, seconds.
    pub ttl: u64,
    /// `Urgency` (`normal` when absent).
    pub urgency: String,
    /// `Topic`, if any.
    pub topic: Option<String>,
    /// The decrypted body, as JSON.
    pub payload: serde_json::Value,
}

/// The push service's verdict.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// 201: delivered to the browser.
    Accept(Delivered),
    /// An error status and why.
    Reject {
        /// The status.
        status: u16,
        /// A short reason (the recorder's key).
        reason: &'static str,
    },
}

fn reject(status: u16, reason: &'static str) -> Verdict {
    Verdict::Reject { status, reason }
}

/// Judges a request at `now_secs`; `unregistered` tells whether the profile scripts the
/// subscription id as gone (410); `verified` remembers VAPID signatures already checked.
pub fn judge(
    request: WebPushRequest<'_>,
    subscriptions: &Subscriptions,
    verified: &vapid::VerifiedTokens,
    unregistered: impl Fn(&str) -> bool,
    now_secs: u64,
) -> Verdict {
    if request.method != http::Method::POST {
        return reject(405, "MethodNotAllowed");
    }
    let Some(id) = request.path.strip_prefix(PATH_PREFIX) else {
        return reject(404, "NoSuchSubscription");
    };
    if unregistered(id) {
        return reject(410, "Unsubscribed");
    }
    let by_id = subscriptions
        .by_id
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Some(subscription) = by_id.get(id) else {
        return reject(404, "NoSuchSubscription");
    };
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    if let Err(reason) = vapid::check(
        header("authorization"),
        request.origin,
        subscription.application_server_key.as_deref(),
        verified,
        now_secs,
    ) {
        return reason;
    }
    let Some(ttl) = header("ttl").and_then(|ttl| ttl.trim().parse::<u64>().ok()) else {
        return reject(400, "MissingTTL");
    };
    if header("content-encoding") != Some("aes128gcm") {
        return reject(415, "UnsupportedContentEncoding");
    }
    let urgency = header("urgency").unwrap_or("normal");
    if !["very-low", "low", "normal", "high"].contains(&urgency) {
        return reject(400, "BadUrgency");
    }
    let topic = header("topic");
    if let Some(topic) = topic
        && (topic.len() > 32
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return reject(400, "BadTopic");
    }
    if request.body.len() > MAX_BODY {
        return reject(413, "PayloadTooLarge");
    }
    let auth = web_push_native::Auth::from(subscription.auth);
    let Ok(plain) = web_push_native::decrypt(request.body.to_vec(), &subscription.secret, &auth)
    else {
        return reject(400, "DecryptionFailed");
    };
    let Ok(payload) = serde_json::from_slice(&plain) else {
        return reject(400, "PayloadNotJson");
    };
    Verdict::Accept(Delivered {
        subscription: id.to_owned(),
        ttl,
        urgency: urgency.to_owned(),
        topic: topic.map(str::to_owned),
        payload,
    })
}

pub mod vapid;

#[cfg(test)]
mod tests;
