//! Pure WNS request building: a [`Push`] becomes the `POST <channel URI>` of one raw
//! notification, with no I/O, so every rule is tested offline.
//!
//! | kind | `X-WNS-Cache-Policy` | why |
//! |---|---|---|
//! | incoming call, call ended | `no-cache` | a ring or a "stop ringing" for an offline device is stale by the time it comes online |
//! | missed call | `cache` | the notice is still worth showing later |
//!
//! Every push is `X-WNS-Type: wns/raw` (the app gets the bytes and decides what to show),
//! `application/octet-stream`, `X-WNS-TTL` from the deadline, and `X-WNS-RequestForStatus`
//! so the answer says whether the device was reached.

use crate::providers::payload_fault::PayloadFault;
use crate::push::Push;
use crate::registry::PushAddress;
use crate::vocab::{PushKind, UnixMillis};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

/// WNS's limit on a notification body, in bytes.
pub const PAYLOAD_LIMIT: usize = 5000;
/// `X-WNS-Type`.
pub const WNS_TYPE: HeaderName = HeaderName::from_static("x-wns-type");
/// `X-WNS-TTL`.
pub const WNS_TTL: HeaderName = HeaderName::from_static("x-wns-ttl");
/// `X-WNS-Cache-Policy`.
pub const WNS_CACHE_POLICY: HeaderName = HeaderName::from_static("x-wns-cache-policy");
/// `X-WNS-RequestForStatus`.
pub const WNS_REQUEST_FOR_STATUS: HeaderName = HeaderName::from_static("x-wns-requestforstatus");

/// Why a push cannot become a WNS request; each is final.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The body is over WNS's 5000 bytes (WNS would answer 413).
    #[error("payload of {0} bytes is over the WNS limit of 5000 bytes")]
    TooLarge(usize),
    /// Not a WNS channel (a routing bug upstream).
    #[error("the push's address is not a WNS channel")]
    NotWns,
    /// The channel is not `https://*.notify.windows.com/...`: never sent anywhere else.
    #[error("the channel URI is not on https://*.notify.windows.com")]
    ForeignChannel,
    /// The deadline has passed.
    #[error("the push's deadline has passed")]
    Expired,
    /// The body could not be serialized (not expected for these types).
    #[error("cannot serialize the payload: {0}")]
    Json(String),
}

impl PayloadError {
    /// What this error makes of the push ([`PayloadFault::outcome`]).
    pub fn fault(&self) -> PayloadFault {
        match self {
            PayloadError::TooLarge(_) => PayloadFault::TooLarge,
            PayloadError::NotWns => PayloadFault::Malformed("not_wns"),
            PayloadError::ForeignChannel => PayloadFault::Malformed("foreign_channel"),
            PayloadError::Expired => PayloadFault::Expired,
            PayloadError::Json(_) => PayloadFault::Malformed("json"),
        }
    }

    /// The reason put into the push's `Rejected` outcome.
    pub fn reason(&self) -> &'static str {
        self.fault().reason()
    }
}

/// The path and query of a channel URI on `*.notify.windows.com`, or `None` for anything
/// else (the registry refuses such channels already; the provider checks again before it
/// sends a request anywhere).
pub fn channel_path(channel: &str) -> Option<(&str, &str)> {
    let rest = channel.strip_prefix("https://")?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(split);
    let valid_host = host.ends_with(".notify.windows.com")
        && host.len() > ".notify.windows.com".len()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    valid_host.then_some((host, if path.is_empty() { "/" } else { path }))
}

/// The origin a push to `address` goes to, which names its dispatcher and pool
/// (crate::providers::origins): the channel's own host, `https://<host>`, or `channel_base`
/// (the simulator) when one is configured, so every push then goes to that one origin.
pub fn channel_origin(
    address: &PushAddress,
    channel_base: Option<&str>,
) -> Result<String, PayloadError> {
    let PushAddress::Wns { channel } = address else {
        return Err(PayloadError::NotWns);
    };
    let (host, _) = channel_path(channel).ok_or(PayloadError::ForeignChannel)?;
    Ok(match channel_base {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => format!("https://{host}"),
    })
}

/// Builds the request for `push` at `now`: `POST <channel URI>` with the `X-WNS-*` headers,
/// the content type and the raw JSON body, all but `authorization` (the client's: the access
/// token); `channel_base` replaces the channel's origin (the simulator).
pub fn build_request(
    push: &Push,
    now: UnixMillis,
    channel_base: Option<&str>,
) -> Result<http::Request<Bytes>, PayloadError> {
    let PushAddress::Wns { channel } = &push.address else {
        return Err(PayloadError::NotWns);
    };
    let (_, path) = channel_path(channel).ok_or(PayloadError::ForeignChannel)?;
    if push.is_expired(now) {
        return Err(PayloadError::Expired);
    }
    let body = serde_json::to_vec(&*push.payload)
        .map_err(|error| PayloadError::Json(error.to_string()))?;
    if body.len() > PAYLOAD_LIMIT {
        return Err(PayloadError::TooLarge(body.len()));
    }
    let uri = match channel_base {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => channel.clone(),
    };
    // Whole seconds, rounded up so a push due in 300 ms still gets a TTL of 1, not 0 (which
    // WNS reads as "no expiry").
    let ttl = push.deadline.saturating_sub(now).div_ceil(1000).max(1);
    let cache = match push.kind {
        PushKind::MissedCall => "cache",
        PushKind::IncomingCall | PushKind::CallEnded => "no-cache",
    };
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(WNS_TYPE, HeaderValue::from_static("wns/raw"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(WNS_TTL, HeaderValue::from(ttl));
    headers.insert(WNS_CACHE_POLICY, HeaderValue::from_static(cache));
    headers.insert(WNS_REQUEST_FOR_STATUS, HeaderValue::from_static("true"));
    // The channel passed `channel_path` (an https URL on *.notify.windows.com) and a
    // configured base is an origin checked at start-up: not a URI only if that check broke.
    let mut request = http::Request::post(uri)
        .body(Bytes::from(body))
        .map_err(|_| PayloadError::ForeignChannel)?;
    *request.headers_mut() = headers;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{CallPayload, EndReason};
    use crate::vocab::{Environment, IdentityKey};
    use std::sync::Arc;

    const NOW: UnixMillis = 1_800_000_000_000;
    const CHANNEL: &str = "https://db5p.notify.windows.com/w/?token=AwYAAAB%2fQ";

    fn push(kind: PushKind, channel: &str, deadline: UnixMillis) -> Push {
        Push {
            event_id: Arc::from("e1"),
            kind,
            accepted_at: NOW,
            deadline,
            who: IdentityKey::new("t", "alice").into(),
            device_id: "desktop".into(),
            app: "windows".into(),
            address: PushAddress::Wns {
                channel: channel.into(),
            },
            environment: Environment::Production,
            payload: Arc::new(CallPayload {
                v: 1,
                kind,
                call_id: "c1".into(),
                caller_id: "bob".into(),
                caller_name: "Bob".into(),
                video: false,
                reason: (kind != PushKind::IncomingCall).then_some(EndReason::Cancelled),
                expires_at: "2027-01-15T08:00:45.000Z".into(),
            }),
        }
    }

    #[test]
    fn a_ring_is_a_raw_uncached_notification_due_by_its_deadline() {
        let request = build_request(
            &push(PushKind::IncomingCall, CHANNEL, NOW + 45_000),
            NOW,
            None,
        )
        .unwrap();
        assert_eq!(request.uri().to_string(), CHANNEL);
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("x-wns-type"), "wns/raw");
        assert_eq!(header("content-type"), "application/octet-stream");
        assert_eq!(header("x-wns-ttl"), "45");
        assert_eq!(header("x-wns-cache-policy"), "no-cache");
        assert_eq!(header("x-wns-requestforstatus"), "true");
        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(body["type"], "incoming_call");
        assert_eq!(body["call_id"], "c1");
    }

    #[test]
    fn a_missed_call_may_wait_in_the_cache_and_a_short_deadline_keeps_a_ttl() {
        let request =
            build_request(&push(PushKind::MissedCall, CHANNEL, NOW + 300), NOW, None).unwrap();
        assert_eq!(request.headers()["x-wns-cache-policy"], "cache");
        assert_eq!(request.headers()["x-wns-ttl"], "1");
    }

    #[test]
    fn the_simulator_override_keeps_path_and_query() {
        let request = build_request(
            &push(PushKind::CallEnded, CHANNEL, NOW + 1000),
            NOW,
            Some("https://127.0.0.1:8443/"),
        )
        .unwrap();
        assert_eq!(
            request.uri().to_string(),
            "https://127.0.0.1:8443/w/?token=AwYAAAB%2fQ"
        );
    }

    #[test]
    fn a_channel_goes_to_its_own_host_or_to_the_override() {
        let wns = |channel: &str| PushAddress::Wns {
            channel: channel.into(),
        };
        assert_eq!(
            channel_origin(&wns(CHANNEL), None).unwrap(),
            "https://db5p.notify.windows.com"
        );
        assert_eq!(
            channel_origin(&wns("https://bn3p.notify.windows.com/?token=x"), None).unwrap(),
            "https://bn3p.notify.windows.com"
        );
        assert_eq!(
            channel_origin(&wns(CHANNEL), Some("https://127.0.0.1:8443/")).unwrap(),
            "https://127.0.0.1:8443"
        );
        assert_eq!(
            channel_origin(&wns("https://evil.example/w/"), Some("https://127.0.0.1:1")),
            Err(PayloadError::ForeignChannel),
            "the override does not let a foreign channel through"
        );
        let web = PushAddress::WebPush {
            endpoint: "https://fcm.googleapis.com/x".into(),
            p256dh: [0; 65],
            auth: [0; 16],
        };
        assert_eq!(channel_origin(&web, None), Err(PayloadError::NotWns));
    }

    #[test]
    fn foreign_channels_expired_and_oversized_pushes_are_never_sent() {
        for channel in [
            "https://evil.example/w/",
            "http://db5p.notify.windows.com/w/",
            "https://notify.windows.com.evil.example/",
            "https://.notify.windows.com/",
            "https://db5p.notify.windows.com@evil.example/",
        ] {
            assert_eq!(
                build_request(&push(PushKind::IncomingCall, channel, NOW + 1), NOW, None)
                    .unwrap_err(),
                PayloadError::ForeignChannel,
                "{channel}"
            );
        }
        let expired = push(PushKind::IncomingCall, CHANNEL, NOW);
        assert_eq!(
            build_request(&expired, NOW, None).unwrap_err(),
            PayloadError::Expired
        );
        let mut big = push(PushKind::IncomingCall, CHANNEL, NOW + 1000);
        let mut payload = (*big.payload).clone();
        payload.caller_name = "x".repeat(6000);
        big.payload = Arc::new(payload);
        assert!(matches!(
            build_request(&big, NOW, None),
            Err(PayloadError::TooLarge(_))
        ));
    }
}
