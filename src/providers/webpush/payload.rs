//! Pure request building for Web Push (RFC 8030, RFC 8291): the payload (docs/architecture.md, "What devices receive") encrypted
//! with `aes128gcm` for the subscription's keys, and the headers that make a ring behave
//! like a ring: `TTL` from the deadline, `Urgency`, and a `Topic` per call so that "call
//! ended" replaces a ring still waiting in the push service.

use super::aes128gcm::{self, EncryptError};
use crate::providers::payload_fault::PayloadFault;
use crate::push::{CallPayload, Push};
use crate::registry::PushAddress;
use crate::vocab::{PushKind, UnixMillis};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::HeaderValue;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName};

/// RFC 8291 §4: one record of at most 4096 bytes, so at most 3993 bytes of plaintext
/// (4096 − 86 header − 16 tag − 1 padding delimiter).
pub const MAX_PLAINTEXT: usize = 3993;

/// Why a push cannot become a Web Push request; each is final for the push.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The registration is not a Web Push subscription (a routing bug).
    #[error("not a web push subscription")]
    NotWebPush,
    /// The endpoint is not a URI (the registry and the client check it first, so not
    /// expected).
    #[error("the subscription's endpoint is not a URI")]
    BadEndpoint,
    /// The subscription's `p256dh` is not a point on P-256.
    #[error("the subscription's p256dh is not a P-256 public key")]
    BadSubscriptionKey,
    /// The JSON would not fit one record.
    #[error("payload of {0} bytes exceeds the {MAX_PLAINTEXT}-byte Web Push limit")]
    TooLarge(usize),
    /// Encryption failed.
    #[error("aes128gcm encryption failed: {0}")]
    Encryption(String),
}

impl PayloadError {
    /// What this error makes of the push ([`PayloadFault::outcome`]).
    pub fn fault(&self) -> PayloadFault {
        match self {
            PayloadError::NotWebPush => PayloadFault::Malformed("not_webpush"),
            PayloadError::BadEndpoint => PayloadFault::Malformed("bad_request"),
            PayloadError::BadSubscriptionKey => PayloadFault::Malformed("bad_subscription_key"),
            PayloadError::TooLarge(_) => PayloadFault::TooLarge,
            PayloadError::Encryption(_) => PayloadFault::Malformed("encryption_failed"),
        }
    }

    /// The outcome's reason label.
    pub fn reason(&self) -> &'static str {
        self.fault().reason()
    }
}

/// `TTL` (RFC 8030 §5.2).
pub const TTL: HeaderName = HeaderName::from_static("ttl");
/// `Urgency` (RFC 8030 §5.3).
pub const URGENCY: HeaderName = HeaderName::from_static("urgency");
/// `Topic` (RFC 8030 §5.4).
pub const TOPIC: HeaderName = HeaderName::from_static("topic");

/// The `Topic` of a call: RFC 8030 allows at most 32 base64url characters. The call id is
/// hashed (SHA-256, base64url, cut to 32 characters = 192 bits) so any call id fits and the
/// push service never sees it.
pub fn topic(call_id: &str) -> String {
    let digest = crate::sha256::of(call_id.as_bytes());
    let mut topic = URL_SAFE_NO_PAD.encode(digest);
    topic.truncate(32);
    topic
}

/// The `Urgency` of a kind of push (RFC 8030 §5.3).
pub fn urgency(kind: PushKind) -> &'static str {
    match kind {
        PushKind::IncomingCall | PushKind::CallEnded => "high",
        PushKind::MissedCall => "normal",
    }
}

/// The plaintext: the payload (docs/architecture.md, "What devices receive") as JSON.
pub fn plaintext(payload: &CallPayload) -> Result<Vec<u8>, PayloadError> {
    let json =
        serde_json::to_vec(payload).map_err(|error| PayloadError::Encryption(error.to_string()))?;
    if json.len() > MAX_PLAINTEXT {
        return Err(PayloadError::TooLarge(json.len()));
    }
    Ok(json)
}

/// Builds the request for `push` at `now`: `POST <endpoint>` with `TTL` (whole seconds to the
/// deadline, at least 1: 0 would mean "deliver now or drop", which a phone switching networks
/// would miss), `Urgency`, the call's `Topic`, and the payload encrypted for the subscription
/// (a fresh ephemeral key and salt each time, as RFC 8291 requires). No `Authorization`: the
/// VAPID header is the credential, added by the client.
pub fn build_request(push: &Push, now: UnixMillis) -> Result<http::Request<Bytes>, PayloadError> {
    let PushAddress::WebPush {
        endpoint,
        p256dh,
        auth,
    } = &push.address
    else {
        return Err(PayloadError::NotWebPush);
    };
    let body = encrypt(&plaintext(&push.payload)?, p256dh, auth)?;
    let ttl = push.deadline.saturating_sub(now).div_ceil(1000).max(1);
    // Infallible: base64url is visible ASCII, which every header value accepts.
    let topic = HeaderValue::try_from(topic(&push.payload.call_id))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    let mut request = http::Request::post(endpoint.as_str())
        .body(body)
        .map_err(|_| PayloadError::BadEndpoint)?;
    let headers = request.headers_mut();
    headers.insert(TTL, HeaderValue::from(ttl));
    headers.insert(URGENCY, HeaderValue::from_static(urgency(push.kind)));
    headers.insert(TOPIC, topic);
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(request)
}

/// RFC 8291 `aes128gcm` for the user agent's key `p256dh` and secret `auth`.
pub fn encrypt(
    plaintext: &[u8],
    p256dh: &[u8; 65],
    auth: &[u8; 16],
) -> Result<Bytes, PayloadError> {
    aes128gcm::encrypt(plaintext, p256dh, auth).map_err(|error| match error {
        EncryptError::BadKey => PayloadError::BadSubscriptionKey,
        EncryptError::Crypto(what) => PayloadError::Encryption(what.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::EndReason;
    use crate::vocab::{Environment, IdentityKey};
    use std::sync::Arc;
    use web_push_native::p256::elliptic_curve::rand_core::OsRng;
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

    /// A browser's subscription keys: the private key stays here, for decrypting.
    fn browser() -> (web_push_native::p256::SecretKey, [u8; 65], [u8; 16]) {
        let secret = web_push_native::p256::SecretKey::random(&mut OsRng);
        let public = secret.public_key().to_encoded_point(false);
        let p256dh: [u8; 65] = public.as_bytes().try_into().unwrap();
        (secret, p256dh, [7u8; 16])
    }

    fn push(kind: PushKind, p256dh: [u8; 65], auth: [u8; 16]) -> Push {
        Push {
            event_id: Arc::from("ev-1"),
            kind,
            accepted_at: 1_000,
            deadline: 46_000,
            who: IdentityKey::new("a", "alice").into(),
            device_id: "browser".into(),
            app: "web".into(),
            address: PushAddress::WebPush {
                endpoint: "https://fcm.googleapis.com/fcm/send/abc".into(),
                p256dh,
                auth,
            },
            environment: Environment::Production,
            payload: Arc::new(CallPayload {
                v: 1,
                kind,
                call_id: "call-42".into(),
                caller_id: "bob".into(),
                caller_name: "Bob".into(),
                video: true,
                reason: (kind != PushKind::IncomingCall).then_some(EndReason::Cancelled),
                expires_at: "2026-01-01T00:00:46Z".into(),
            }),
        }
    }

    /// The value of header `name` of `request`.
    fn header(request: &http::Request<Bytes>, name: &HeaderName) -> String {
        request.headers()[name].to_str().unwrap().to_owned()
    }

    /// `TTL`, in seconds.
    fn ttl(request: &http::Request<Bytes>) -> u64 {
        header(request, &TTL).parse().unwrap()
    }

    #[test]
    fn a_ring_decrypts_to_the_design_payload_with_ring_headers() {
        let (secret, p256dh, auth) = browser();
        let request = build_request(&push(PushKind::IncomingCall, p256dh, auth), 1_000).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri().to_string(),
            "https://fcm.googleapis.com/fcm/send/abc"
        );
        assert_eq!(
            (ttl(&request), header(&request, &URGENCY)),
            (45, "high".into())
        );
        assert_eq!(header(&request, &CONTENT_ENCODING), "aes128gcm");
        assert_eq!(header(&request, &CONTENT_TYPE), "application/octet-stream");
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
        let auth = web_push_native::Auth::from(auth);
        let plain = web_push_native::decrypt(request.body().to_vec(), &secret, &auth).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v": 1, "type": "incoming_call", "call_id": "call-42",
                "caller_id": "bob", "caller_name": "Bob", "video": true,
                "expires_at": "2026-01-01T00:00:46Z"})
        );
    }

    #[test]
    fn each_body_is_freshly_encrypted() {
        let (_, p256dh, auth) = browser();
        let ring = push(PushKind::IncomingCall, p256dh, auth);
        let (a, b) = (
            build_request(&ring, 1_000).unwrap(),
            build_request(&ring, 1_000).unwrap(),
        );
        assert_ne!(
            a.body(),
            b.body(),
            "a new salt and ephemeral key per message"
        );
    }

    #[test]
    fn call_ended_replaces_the_ring_and_missed_is_normal() {
        let (_, p256dh, auth) = browser();
        let ring = build_request(&push(PushKind::IncomingCall, p256dh, auth), 1_000).unwrap();
        let ended = build_request(&push(PushKind::CallEnded, p256dh, auth), 1_000).unwrap();
        let missed = build_request(&push(PushKind::MissedCall, p256dh, auth), 1_000).unwrap();
        assert_eq!(
            header(&ring, &TOPIC),
            header(&ended, &TOPIC),
            "same call, same topic"
        );
        assert_eq!(header(&ring, &TOPIC), topic("call-42"));
        assert_eq!(header(&ended, &URGENCY), "high");
        assert_eq!(header(&missed, &URGENCY), "normal");
        assert_ne!(topic("call-42"), topic("call-43"));
    }

    #[test]
    fn the_topic_is_at_most_32_base64url_characters() {
        for id in ["", "x", &"y".repeat(500), "ünïcödé call / with spaces"] {
            let t = topic(id);
            assert!(t.len() <= 32 && !t.is_empty(), "{t}");
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
    }

    #[test]
    fn ttl_is_whole_seconds_to_the_deadline_and_never_zero() {
        let (_, p256dh, auth) = browser();
        let ring = push(PushKind::IncomingCall, p256dh, auth);
        assert_eq!(ttl(&build_request(&ring, 45_001).unwrap()), 1);
        assert_eq!(ttl(&build_request(&ring, 45_999).unwrap()), 1);
        assert_eq!(ttl(&build_request(&ring, 44_000).unwrap()), 2);
    }

    #[test]
    fn unusable_pushes_are_refused_without_panicking() {
        let (_, _, auth) = browser();
        let mut bad_key = [0u8; 65];
        bad_key[0] = 4;
        let error = build_request(&push(PushKind::IncomingCall, bad_key, auth), 0).unwrap_err();
        assert_eq!(error, PayloadError::BadSubscriptionKey);
        let (_, p256dh, auth) = browser();
        let mut huge = push(PushKind::IncomingCall, p256dh, auth);
        Arc::make_mut(&mut huge.payload).caller_name = "x".repeat(4000);
        assert!(matches!(
            build_request(&huge, 0),
            Err(PayloadError::TooLarge(_))
        ));
        let mut apns = push(PushKind::IncomingCall, p256dh, auth);
        apns.address = PushAddress::Apns {
            token: vec![1; 32],
            alert_token: None,
        };
        assert_eq!(
            build_request(&apns, 0).unwrap_err(),
            PayloadError::NotWebPush
        );
    }
}
