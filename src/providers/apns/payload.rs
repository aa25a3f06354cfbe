//! Pure APNs request building: a [`Push`] becomes the path, headers and body of one
//! `POST /3/device/<token>`, with no I/O, so every rule here is tested offline.
//!
//! The push kind decides the push type (docs/protocols.md, docs/architecture.md "Priorities, deadlines and overload"):
//!
//! | kind | token | `apns-push-type` | `apns-topic` | `apns-priority` | `aps` |
//! |---|---|---|---|---|---|
//! | incoming call | PushKit (`token`) | `voip` | `<bundle>.voip` | 10 | empty: PushKit hands the payload to the app, which reports the call to CallKit |
//! | call ended | regular (`alert_token`) | `alert` | `<bundle>` | 10 | alert + `content-available: 1` |
//! | missed call | regular (`alert_token`) | `alert` | `<bundle>` | 5 | alert |
//!
//! The PushKit token takes only `voip` pushes on `<bundle>.voip`; an alert to it is refused
//! with `DeviceTokenNotForTopic` (docs/protocols.md, "APNs"). So a notice goes to the app's
//! regular token, and a registration without one gets none over APNs
//! ([`PayloadError::NoAlertToken`]): never a non-VoIP push to a VoIP token.
//!
//! Call ended is an `alert`, never `voip`: iOS 13+ kills apps that get VoIP pushes they do
//! not report to CallKit as a new call. It is not a pure `background` push either: Apple
//! requires priority 5 for those and throttles them, while stopping a ring is urgent (P1). An
//! alert at priority 10 is delivered at once, and `content-available` also wakes the app so
//! it can end its CallKit call.
//!
//! The `authorization` header is not set here: the client adds the cached provider token
//! ([`super::auth`]) so that building stays pure.

use super::last_body::LastBody;
use crate::providers::payload_fault::PayloadFault;
use crate::providers::pool::{Fields, Path, Request, SharedFields, https_authority};
use crate::push::{CallPayload, EndReason, Push};
use crate::registry::PushAddress;
use crate::vocab::{PushKind, UnixMillis};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use serde::Serialize;
use smallvec::SmallVec;

/// APNs' limit on a VoIP payload, in bytes.
pub const VOIP_PAYLOAD_LIMIT: usize = 5120;
/// APNs' limit on every other payload, in bytes.
pub const PAYLOAD_LIMIT: usize = 4096;
/// The longest `apns-collapse-id` APNs accepts, in bytes.
pub const COLLAPSE_ID_LIMIT: usize = 64;

/// `apns-push-type`.
pub const APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
/// `apns-topic`.
pub const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
/// `apns-priority`.
pub const APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
/// `apns-expiration`.
pub const APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
/// `apns-collapse-id`.
pub const APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");
/// `apns-id`.
pub const APNS_ID: HeaderName = HeaderName::from_static("apns-id");

/// Why a push cannot become an APNs request. Each is final: the provider turns it into
/// [`Outcome::Rejected`](crate::vocab::Outcome::Rejected) (or `Expired`) without sending.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The body is over APNs' limit for its push type; APNs would answer 413, so it is not
    /// sent at all.
    #[error(
        "payload of {size} bytes is over the APNs limit of {limit} bytes for {push_type} pushes"
    )]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit for its push type.
        limit: usize,
        /// `voip` or `alert`.
        push_type: &'static str,
    },
    /// The push's address is not an APNs device token (a routing bug upstream).
    #[error("the push's address is not an APNs device token")]
    NotApns,
    /// A call-ended or missed-call notice to a registration with only a PushKit token: there
    /// is no token that takes an alert, so nothing is sent (not a failure).
    #[error("the registration has no regular APNs token for a non-VoIP push")]
    NoAlertToken,
    /// The device token is empty: APNs would answer `MissingDeviceToken`.
    #[error("the APNs device token is empty")]
    EmptyToken,
    /// The deadline has passed: a push is never sent after it.
    #[error("the push's deadline has passed")]
    Expired,
    /// The bundle id cannot be an `apns-topic` header (a config error).
    #[error("bundle id {0:?} is not a valid apns-topic")]
    BadTopic(String),
    /// The device token makes no request path (not expected: its hex digits always do).
    #[error("the device token makes no request path")]
    BadPath,
    /// The `apns-id` is not a field value (not expected: hex digits and dashes always are).
    #[error("the apns-id is not a header value")]
    BadId,
    /// The body could not be serialized (not expected for these types).
    #[error("cannot serialize the payload: {0}")]
    Json(String),
    /// The host's base URL is not an `https://host[:port]` origin, or it and the token make
    /// no URI (a config error).
    #[error("{0:?} is not an APNs base URL")]
    BadBase(String),
}

impl PayloadError {
    /// What this error makes of the push ([`PayloadFault::outcome`]).
    pub fn fault(&self) -> PayloadFault {
        match self {
            PayloadError::TooLarge { .. } => PayloadFault::TooLarge,
            PayloadError::NotApns => PayloadFault::Malformed("not_apns"),
            PayloadError::NoAlertToken => PayloadFault::NoAlertToken,
            PayloadError::EmptyToken => PayloadFault::Malformed("empty_token"),
            PayloadError::Expired => PayloadFault::Expired,
            PayloadError::BadTopic(_) => PayloadFault::Malformed("bad_topic"),
            PayloadError::BadPath => PayloadFault::Malformed("bad_path"),
            PayloadError::BadId => PayloadFault::Malformed("bad_apns_id"),
            PayloadError::Json(_) => PayloadFault::Malformed("json"),
            PayloadError::BadBase(_) => PayloadFault::Malformed("bad_base_url"),
        }
    }

    /// The reason put into the push's `Rejected` outcome and the metric label.
    pub fn reason(&self) -> &'static str {
        self.fault().reason()
    }
}

/// Builds the APNs request for `push` to the app `topic_base` (its bundle id) on the host
/// `base` (`https://api.push.apple.com`, the push's environment's), at `now_ms`, as the `h2`
/// and HTTP/1.1 clients send it: [`build_fields`] with its URI made absolute.
pub fn build_request(
    push: &Push,
    topic_base: &str,
    base: &str,
    now_ms: UnixMillis,
) -> Result<http::Request<Bytes>, PayloadError> {
    // The pool's reading of a base URL, and no path: the request's path is APNs'.
    let authority = https_authority(base)
        .filter(|(_, path)| path == "/")
        .map(|(authority, _)| authority)
        .ok_or_else(|| PayloadError::BadBase(base.to_owned()))?;
    let fields = build_fields(push, topic_base, now_ms, &LastBody::default())?;
    Request::from(fields)
        .into_http(&authority)
        .ok_or_else(|| PayloadError::BadBase(base.to_owned()))
}

/// Builds the APNs request for `push` to the app `topic_base` (its bundle id) at `now_ms`:
/// `POST /3/device/<token>` with the `apns-*` headers and the JSON body, all but
/// `authorization` (the client's: the JWT, or nothing with certificate auth); the host is
/// the pool's. No `content-type`: Apple documents none (the body is always JSON), and every
/// header costs bytes on each push. The body and the event's fields come from `last` when
/// the event's previous push made them ([`EventParts`]); the path and the `apns-id` are the
/// push's own.
pub fn build_fields(
    push: &Push,
    topic_base: &str,
    now_ms: UnixMillis,
    last: &LastBody<EventParts>,
) -> Result<Fields, PayloadError> {
    let PushAddress::Apns { token, alert_token } = &push.address else {
        return Err(PayloadError::NotApns);
    };
    let token = match push.kind {
        PushKind::IncomingCall => token,
        PushKind::CallEnded | PushKind::MissedCall => {
            alert_token.as_ref().ok_or(PayloadError::NoAlertToken)?
        }
    };
    if token.is_empty() {
        return Err(PayloadError::EmptyToken);
    }
    if push.is_expired(now_ms) {
        return Err(PayloadError::Expired);
    }
    let (push_type, limit) = match push.kind {
        PushKind::IncomingCall => ("voip", VOIP_PAYLOAD_LIMIT),
        PushKind::CallEnded | PushKind::MissedCall => ("alert", PAYLOAD_LIMIT),
    };

    let event = last.get_or_encode(&push.payload, |payload| {
        EventParts::new(payload, push, topic_base, limit)
    })?;
    // Every push of an event has its kind and deadline; should one not, it gets its own.
    let event = if event.kind == push.kind && event.deadline == push.deadline {
        event
    } else {
        EventParts::new(&push.payload, push, topic_base, limit)?
    };
    if event.body.len() > limit {
        return Err(PayloadError::TooLarge {
            size: event.body.len(),
            limit,
            push_type,
        });
    }

    // The path and the `apns-id` alone are new per push, both held in the request itself.
    let mut path = Path::new();
    path.extend_from_slice(DEVICE_PATH);
    push_hex(&mut path, token);
    let fields = Fields::post(path, event.fields, event.body).ok_or(PayloadError::BadPath)?;
    // Unique to this push, so HPACK gains nothing from keeping it: sent as a never-indexed
    // literal. Indexed, each id took a slot of the connection's 4 KiB table (and of Apple's
    // decoder's), evicting headers that every push repeats.
    fields
        .with_unique(APNS_ID, &apns_id(&push.event_id, &push.device_id))
        .ok_or(PayloadError::BadId)
}

/// The path of a push before its device token's hex.
const DEVICE_PATH: &[u8] = b"/3/device/";

/// What every APNs push of one event shares, made once for the event's first push and kept
/// in the client's [`LastBody`] for the others: the body, and the fields that follow from the
/// event alone, coded once ([`SharedFields`]). Cloning it bumps two reference counts.
#[derive(Clone)]
pub struct EventParts {
    /// The push kind it was made for (it decides the topic, the push type, the priority and
    /// the body's limit).
    kind: PushKind,
    /// The deadline it was made for (it decides `apns-expiration`).
    deadline: UnixMillis,
    /// The JSON body.
    body: Bytes,
    /// `apns-push-type`, `apns-topic`, `apns-priority`, `apns-expiration`,
    /// `apns-collapse-id` and `content-length`, in that order.
    fields: SharedFields,
}

impl EventParts {
    /// The parts of `push`'s event, with `payload` its payload.
    fn new(
        payload: &CallPayload,
        push: &Push,
        topic_base: &str,
        limit: usize,
    ) -> Result<EventParts, PayloadError> {
        let body = body(payload, limit)?;
        let (push_type, priority) = match push.kind {
            PushKind::IncomingCall => ("voip", "10"),
            PushKind::CallEnded => ("alert", "10"),
            PushKind::MissedCall => ("alert", "5"),
        };
        let topic = match push.kind {
            PushKind::IncomingCall => HeaderValue::from_maybe_shared(voip_topic(topic_base)),
            PushKind::CallEnded | PushKind::MissedCall => HeaderValue::try_from(topic_base),
        }
        .map_err(|_| PayloadError::BadTopic(topic_base.to_owned()))?;
        // One call's, so one or two pushes per connection use it: sent as a literal that
        // stays out of the HPACK table, as Apple asks of `apns-collapse-id` (APNs keeps a
        // small table; a new entry per call would evict the headers every push repeats).
        let mut collapse_id =
            collapse_id(&payload.call_id).unwrap_or_else(|| hashed_collapse_id(&payload.call_id));
        collapse_id.set_sensitive(true);
        let fields = SharedFields::new(vec![
            (APNS_PUSH_TYPE, HeaderValue::from_static(push_type)),
            (APNS_TOPIC, topic),
            (APNS_PRIORITY, HeaderValue::from_static(priority)),
            // Seconds, rounded down: APNs stops trying at or before the deadline, never after.
            (APNS_EXPIRATION, HeaderValue::from(push.deadline / 1000)),
            (APNS_COLLAPSE_ID, collapse_id),
            (CONTENT_LENGTH, HeaderValue::from(body.len())),
        ]);
        Ok(EventParts {
            kind: push.kind,
            deadline: push.deadline,
            body,
            fields,
        })
    }
}

/// `<bundle id>.voip`, the topic of a VoIP push: copied into one buffer of the right size
/// (every ring builds it; `format!` costs several times more).
fn voip_topic(topic_base: &str) -> Bytes {
    let mut topic = Vec::with_capacity(topic_base.len() + ".voip".len());
    topic.extend_from_slice(topic_base.as_bytes());
    topic.extend_from_slice(b".voip");
    Bytes::from(topic)
}

/// The call id as `apns-collapse-id` when APNs can take it as is: at most 64 bytes of
/// visible ASCII. A cancel then replaces the ring's notification, and a missed-call notice
/// the call-ended one.
fn collapse_id(call_id: &str) -> Option<HeaderValue> {
    let fits = !call_id.is_empty()
        && call_id.len() <= COLLAPSE_ID_LIMIT
        && call_id.bytes().all(|byte| byte.is_ascii_graphic());
    if fits {
        HeaderValue::from_str(call_id).ok()
    } else {
        None
    }
}

/// A call id too long (or not ASCII) for `apns-collapse-id` is hashed rather than dropped:
/// 64 hex characters of its SHA-256. The same call always gets the same collapse id, so
/// collapsing keeps working; dropping it would let a cancel leave the ring's banner behind.
fn hashed_collapse_id(call_id: &str) -> HeaderValue {
    let mut text = SmallVec::<[u8; 64]>::new();
    push_hex(&mut text, &crate::sha256::of(call_id.as_bytes()));
    // Infallible: hex digits are visible ASCII, which every header value accepts.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The `apns-id`: a canonical lowercase UUID derived from (event id, device id), so every
/// retry of one push carries the same id and can be recognised in Apple's answers and in
/// logs. It is a version-8 (custom, RFC 9562) UUID made of the first 16 bytes of
/// `SHA-256(event_id ‖ 0 ‖ device_id)`. Its text, in a stack buffer: it is built for every
/// push, and the request holds it inline ([`Fields::with_unique`]).
pub fn apns_id(event_id: &str, device_id: &str) -> [u8; 36] {
    let mut hasher = crate::sha256::Hasher::new();
    hasher.update(event_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(device_id.as_bytes());
    let digest = hasher.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    let mut uuid = [b'-'; 36];
    let mut at = 0;
    for (index, byte) in bytes.into_iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            at += 1; // the '-' already there
        }
        uuid[at] = HEX_DIGITS[usize::from(byte >> 4)];
        uuid[at + 1] = HEX_DIGITS[usize::from(byte & 0x0f)];
        at += 2;
    }
    uuid
}

/// Lowercase hex digits by value.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` in lowercase hex, 32 bytes at a time through a stack buffer: `hex::encode`
/// goes through a `char` iterator and a second `String` (~2,200 instructions for a 32-byte
/// token under callgrind), and pushing each digit into the `SmallVec` checks its room 64
/// times (~500); a copy per 32 bytes costs ~130 (docs/performance.md, "An answer's fields by
/// table").
fn push_hex<const N: usize>(out: &mut SmallVec<[u8; N]>, bytes: &[u8]) {
    for chunk in bytes.chunks(32) {
        let mut text = [0u8; 64];
        for (digits, byte) in text.chunks_exact_mut(2).zip(chunk) {
            digits[0] = HEX_DIGITS[usize::from(byte >> 4)];
            digits[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
        }
        out.extend_from_slice(&text[..chunk.len() * 2]);
    }
}

/// The JSON body: `aps` for iOS, and the payload (docs/architecture.md, "What devices receive") under `"ringcast"`.
#[derive(Serialize)]
struct Body<'a> {
    /// What iOS itself acts on.
    aps: Aps<'a>,
    /// What the app reads.
    ringcast: &'a CallPayload,
}

/// The `aps` dictionary.
#[derive(Serialize)]
struct Aps<'a> {
    /// The visible notification (alert kinds only).
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert<'a>>,
    /// `1` wakes the app in the background (call ended: end the CallKit call).
    #[serde(rename = "content-available", skip_serializing_if = "Option::is_none")]
    content_available: Option<u8>,
    /// Groups a call's notifications together in Notification Center.
    #[serde(rename = "thread-id", skip_serializing_if = "Option::is_none")]
    thread_id: Option<&'a str>,
}

/// A visible notification.
#[derive(Serialize)]
struct Alert<'a> {
    /// The first line.
    title: &'a str,
    /// The text under it.
    body: String,
}

/// Serializes the body for `payload` into one buffer sized up front.
fn body(payload: &CallPayload, limit: usize) -> Result<Bytes, PayloadError> {
    let kind = if payload.video { "video call" } else { "call" };
    // An end event may not name the caller: the caller's id, else a neutral word, so the
    // alert never reads " cancelled the call".
    let name = [payload.caller_name.as_str(), payload.caller_id.as_str()]
        .into_iter()
        .find(|name| !name.trim().is_empty())
        .unwrap_or("the caller");
    let (alert, content_available) = match payload.kind {
        PushKind::IncomingCall => (None, None),
        PushKind::CallEnded => {
            let text = match payload.reason {
                Some(EndReason::AnsweredElsewhere) => format!("{name}: answered on another device"),
                Some(EndReason::DeclinedElsewhere) => format!("{name}: declined on another device"),
                Some(EndReason::Cancelled) => format!("{name} cancelled the {kind}"),
                Some(EndReason::Missed) | None => format!("The {kind} from {name} ended"),
            };
            let title = "Call ended";
            (Some(Alert { title, body: text }), Some(1))
        }
        PushKind::MissedCall => {
            let title = "Missed call";
            let text = format!("Missed {kind} from {name}");
            (Some(Alert { title, body: text }), None)
        }
    };
    let thread_id = alert.as_ref().map(|_| payload.call_id.as_str());
    let body = Body {
        aps: Aps {
            alert,
            content_available,
            thread_id,
        },
        ringcast: payload,
    };
    // Sized for the usual body at once: fixed JSON of ~250 bytes plus the strings (caller
    // name twice, call id twice); capped at the limit + 1 so an oversize body stops growing
    // the estimate past what is needed to report it.
    let strings = 2 * payload.caller_name.len()
        + 2 * payload.call_id.len()
        + payload.caller_id.len()
        + payload.expires_at.len();
    let mut out = Vec::with_capacity((256 + strings).min(limit + 1));
    serde_json::to_writer(&mut out, &body)
        .map_err(|error| PayloadError::Json(error.to_string()))?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::CallPayload;
    use crate::vocab::{Environment, IdentityKey};
    use std::sync::Arc;

    const NOW: UnixMillis = 1_800_000_000_000;

    fn push(kind: PushKind) -> Push {
        Push {
            event_id: Arc::from("evt-1"),
            kind,
            accepted_at: NOW,
            deadline: NOW + 45_500,
            who: IdentityKey::new("acme", "alice").into(),
            device_id: "iphone".into(),
            app: "ios".into(),
            address: PushAddress::Apns {
                token: vec![0xab, 0xcd, 0x01],
                alert_token: Some(vec![0xee, 0x02]),
            },
            environment: Environment::Production,
            payload: Arc::new(CallPayload {
                v: 1,
                kind,
                call_id: "call-42".into(),
                caller_id: "bob".into(),
                caller_name: "Bob".into(),
                video: false,
                reason: (kind != PushKind::IncomingCall).then_some(EndReason::Missed),
                expires_at: "2027-01-15T08:00:45.500Z".into(),
            }),
        }
    }

    /// The production host, as the client passes it.
    const BASE: &str = "https://api.push.apple.com";

    fn header<'a>(request: &'a http::Request<Bytes>, name: &HeaderName) -> &'a str {
        request.headers().get(name).unwrap().to_str().unwrap()
    }

    fn json(request: &http::Request<Bytes>) -> serde_json::Value {
        serde_json::from_slice(request.body()).unwrap()
    }

    #[test]
    fn an_incoming_call_is_a_voip_push_at_priority_10() {
        let request =
            build_request(&push(PushKind::IncomingCall), "com.acme.phone", BASE, NOW).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri().to_string(),
            "https://api.push.apple.com/3/device/abcd01"
        );
        // Only headers Apple documents, and the body's length: nothing else on every push.
        let names: Vec<&str> = request.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "apns-push-type",
                "apns-topic",
                "apns-priority",
                "apns-expiration",
                "apns-collapse-id",
                "content-length",
                "apns-id"
            ]
        );
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
        assert_eq!(header(&request, &APNS_PUSH_TYPE), "voip");
        assert_eq!(header(&request, &APNS_TOPIC), "com.acme.phone.voip");
        assert_eq!(header(&request, &APNS_PRIORITY), "10");
        assert_eq!(header(&request, &APNS_EXPIRATION), "1800000045");
        assert_eq!(header(&request, &APNS_COLLAPSE_ID), "call-42");
        // Out of the HPACK table, as Apple asks: a call's value serves a push or two.
        assert!(request.headers()[&APNS_COLLAPSE_ID].is_sensitive());
        let body = json(&request);
        assert_eq!(body["aps"], serde_json::json!({}));
        assert_eq!(body["ringcast"]["type"], "incoming_call");
        assert_eq!(body["ringcast"]["call_id"], "call-42");
        assert_eq!(body["ringcast"]["v"], 1);
    }

    #[test]
    fn a_call_ended_is_an_alert_never_voip() {
        let request =
            build_request(&push(PushKind::CallEnded), "com.acme.phone", BASE, NOW).unwrap();
        // To the app's regular token: the PushKit token takes only VoIP pushes.
        assert_eq!(request.uri().path(), "/3/device/ee02");
        assert_eq!(header(&request, &APNS_PUSH_TYPE), "alert");
        assert_eq!(header(&request, &APNS_TOPIC), "com.acme.phone");
        assert_eq!(header(&request, &APNS_PRIORITY), "10");
        let body = json(&request);
        assert_eq!(body["aps"]["content-available"], 1);
        assert_eq!(body["aps"]["alert"]["title"], "Call ended");
        assert_eq!(body["ringcast"]["type"], "call_ended");

        // An end that names no caller still reads well.
        let mut anonymous = push(PushKind::CallEnded);
        let payload = Arc::make_mut(&mut anonymous.payload);
        payload.caller_name.clear();
        payload.caller_id.clear();
        let body = json(&build_request(&anonymous, "com.acme.phone", BASE, NOW).unwrap());
        let text = body["aps"]["alert"]["body"].as_str().unwrap();
        assert!(
            text.contains("the caller") && !text.starts_with(' '),
            "{text}"
        );
    }

    #[test]
    fn without_a_regular_token_no_notice_goes_out_and_never_to_the_voip_token() {
        for kind in [PushKind::CallEnded, PushKind::MissedCall] {
            let mut voip_only = push(kind);
            voip_only.address = PushAddress::Apns {
                token: vec![0xab, 0xcd, 0x01],
                alert_token: None,
            };
            let error = build_request(&voip_only, "com.acme.phone", BASE, NOW).unwrap_err();
            assert_eq!(error, PayloadError::NoAlertToken, "{kind:?}");
            assert_eq!(error.reason(), "no_alert_token");
        }
        // A ring still goes to the VoIP token, alert token or not.
        let request =
            build_request(&push(PushKind::IncomingCall), "com.acme.phone", BASE, NOW).unwrap();
        assert_eq!(request.uri().path(), "/3/device/abcd01");
    }

    #[test]
    fn a_missed_call_is_an_alert_at_priority_5() {
        let mut push = push(PushKind::MissedCall);
        Arc::make_mut(&mut push.payload).video = true;
        let request = build_request(&push, "com.acme.phone", BASE, NOW).unwrap();
        assert_eq!(request.uri().path(), "/3/device/ee02");
        assert_eq!(header(&request, &APNS_PUSH_TYPE), "alert");
        assert_eq!(header(&request, &APNS_TOPIC), "com.acme.phone");
        assert_eq!(header(&request, &APNS_PRIORITY), "5");
        let body = json(&request);
        assert_eq!(body["aps"]["alert"]["body"], "Missed video call from Bob");
        assert_eq!(body["aps"].get("content-available"), None);
        assert_eq!(body["ringcast"]["reason"], "missed");
    }

    #[test]
    fn a_base_that_is_not_an_https_origin_is_refused() {
        let push = push(PushKind::IncomingCall);
        for base in [
            "http://api.push.apple.com",
            "https://api.push.apple.com/v1",
            "nonsense",
        ] {
            assert!(
                matches!(
                    build_request(&push, "b", base, NOW),
                    Err(PayloadError::BadBase(_))
                ),
                "{base}"
            );
        }
        let request = build_request(&push, "b", "https://127.0.0.1:8443/", NOW).unwrap();
        assert_eq!(request.uri().authority().unwrap(), "127.0.0.1:8443");
        assert_eq!(request.method(), http::Method::POST);
    }

    #[test]
    fn an_events_pushes_share_its_body_and_headers_and_a_new_deadline_gets_its_own() {
        let last = LastBody::default();
        let first = push(PushKind::IncomingCall);
        let mut second = first.clone();
        second.device_id = "ipad".into();
        second.address = PushAddress::Apns {
            token: vec![0x12, 0x34],
            alert_token: None,
        };
        let host = http::uri::Authority::from_static("api.push.apple.com");
        let sharing = |push: &Push| {
            let fields = build_fields(push, "b", NOW, &last).unwrap();
            Request::from(fields).into_http(&host).unwrap()
        };
        let a = sharing(&first);
        let b = sharing(&second);
        assert_eq!(a.body().as_ptr(), b.body().as_ptr(), "one encoding");
        assert_eq!(b.uri().path(), "/3/device/1234");
        assert_ne!(header(&a, &APNS_ID), header(&b, &APNS_ID));
        assert_eq!(header(&b, &CONTENT_LENGTH), b.body().len().to_string());
        for name in [&APNS_TOPIC, &APNS_EXPIRATION, &APNS_COLLAPSE_ID] {
            assert_eq!(header(&a, name), header(&b, name), "{name}");
        }
        // A push of the same payload with another deadline is never sent the event's expiry.
        let mut later = second.clone();
        later.deadline += 5_000;
        let c = sharing(&later);
        assert_eq!(header(&c, &APNS_EXPIRATION), "1800000050");
        assert_eq!(header(&b, &APNS_EXPIRATION), "1800000045");
    }

    #[test]
    fn tokens_of_any_length_are_written_in_lowercase_hex() {
        // Across the 32-byte chunks, and past the path's inline room.
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        for len in [0, 1, 31, 32, 33, 64, 100, 256] {
            let mut path = Path::new();
            path.extend_from_slice(DEVICE_PATH);
            push_hex(&mut path, &bytes[..len]);
            let expected = format!("/3/device/{}", hex::encode(&bytes[..len]));
            assert_eq!(path.as_slice(), expected.as_bytes(), "{len} bytes");
        }
    }

    #[test]
    fn the_apns_id_is_a_canonical_uuid_stable_across_retries() {
        let first_push = push(PushKind::IncomingCall);
        let first = build_request(&first_push, "b", BASE, NOW).unwrap();
        let retry = build_request(&push(PushKind::IncomingCall), "b", BASE, NOW + 2_000).unwrap();
        assert_eq!(header(&first, &APNS_ID), header(&retry, &APNS_ID));
        // Never indexed by HPACK: a value no later push repeats.
        assert!(first.headers()[&APNS_ID].is_sensitive());
        let id = |event: &str, device: &str| String::from_utf8(apns_id(event, device).to_vec());
        assert_eq!(
            header(&first, &APNS_ID),
            id(&first_push.event_id, &first_push.device_id).unwrap()
        );
        // The derivation is part of the contract: a ring retried by another node (or by the
        // next release) must carry the same id.
        assert_eq!(
            id("evt-1", "iphone").unwrap(),
            "c28774b3-363c-8888-bd2a-82239b64b12f"
        );
        let id = header(&first, &APNS_ID);
        assert_eq!(id.len(), 36);
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(&id[14..15], "8", "version 8");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "RFC variant");
        assert_ne!(apns_id("evt-1", "iphone"), apns_id("evt-1", "ipad"));
        assert_ne!(apns_id("evt-1", "iphone"), apns_id("evt-2", "iphone"));
        assert_ne!(apns_id("ab", "c"), apns_id("a", "bc"));
    }

    #[test]
    fn a_long_call_id_gets_a_stable_hashed_collapse_id() {
        let mut long = push(PushKind::CallEnded);
        Arc::make_mut(&mut long.payload).call_id = "x".repeat(65);
        let request = build_request(&long, "b", BASE, NOW).unwrap();
        let collapse = header(&request, &APNS_COLLAPSE_ID).to_owned();
        assert_eq!(collapse.len(), 64);
        assert_ne!(collapse, "x".repeat(64));
        let again = build_request(&long, "b", BASE, NOW).unwrap();
        assert_eq!(header(&again, &APNS_COLLAPSE_ID), collapse);
        let mut exact = push(PushKind::CallEnded);
        Arc::make_mut(&mut exact.payload).call_id = "y".repeat(64);
        let request = build_request(&exact, "b", BASE, NOW).unwrap();
        assert_eq!(header(&request, &APNS_COLLAPSE_ID), "y".repeat(64));
    }

    #[test]
    fn the_size_limit_is_checked_before_sending() {
        // A name that fits a VoIP push (5120) but not an alert (4096).
        let mut voip = push(PushKind::IncomingCall);
        Arc::make_mut(&mut voip.payload).caller_name = "B".repeat(4500);
        let request = build_request(&voip, "b", BASE, NOW).unwrap();
        assert!(request.body().len() > PAYLOAD_LIMIT && request.body().len() <= VOIP_PAYLOAD_LIMIT);

        let mut missed = push(PushKind::MissedCall);
        Arc::make_mut(&mut missed.payload).caller_name = "B".repeat(2500);
        let error = build_request(&missed, "b", BASE, NOW).unwrap_err();
        let PayloadError::TooLarge {
            size,
            limit,
            push_type,
        } = error
        else {
            panic!("{error:?}");
        };
        assert!(size > 4096);
        assert_eq!((limit, push_type), (4096, "alert"));
        assert!(error.to_string().contains("limit of 4096 bytes for alert"));

        Arc::make_mut(&mut voip.payload).caller_name = "B".repeat(5200);
        let error = build_request(&voip, "b", BASE, NOW).unwrap_err();
        assert!(matches!(
            error,
            PayloadError::TooLarge {
                limit: 5120,
                push_type: "voip",
                ..
            }
        ));
        assert_eq!(error.reason(), "payload_too_large");
    }

    #[test]
    fn unusable_pushes_are_refused_without_panicking() {
        let mut fcm = push(PushKind::IncomingCall);
        fcm.address = PushAddress::Fcm { token: "t".into() };
        assert_eq!(
            build_request(&fcm, "b", BASE, NOW).unwrap_err(),
            PayloadError::NotApns
        );

        let mut empty = push(PushKind::IncomingCall);
        empty.address = PushAddress::Apns {
            token: vec![],
            alert_token: None,
        };
        assert_eq!(
            build_request(&empty, "b", BASE, NOW).unwrap_err(),
            PayloadError::EmptyToken
        );

        let late = push(PushKind::IncomingCall);
        assert_eq!(
            build_request(&late, "b", BASE, late.deadline).unwrap_err(),
            PayloadError::Expired
        );
        assert!(matches!(
            build_request(&push(PushKind::MissedCall), "bad\ntopic", BASE, NOW).unwrap_err(),
            PayloadError::BadTopic(_)
        ));
    }
}
