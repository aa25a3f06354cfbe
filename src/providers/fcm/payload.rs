//! Pure FCM request building: a [`Push`] becomes the path and body of one
//! `POST /v1/projects/{project}/messages:send`, with no I/O, so every rule here is tested
//! offline.
//!
//! Every push is a data-only message: the app, not the system tray, decides what to show (a
//! full-screen ringing activity for a call), and data messages reach it in the background.
//! The push kind decides the urgency (docs/protocols.md, docs/architecture.md "Priorities, deadlines and overload"):
//!
//! | kind | `android.priority` | why |
//! |---|---|---|
//! | incoming call | `HIGH` | wake the phone now: it must ring |
//! | call ended | `HIGH` | stop a ringing phone now |
//! | missed call | `NORMAL` | a notice; FCM de-prioritises HIGH messages that show nothing urgent |
//!
//! `android.ttl` is the time left to the deadline in whole seconds (FCM stops trying by
//! then; a push is never delivered after its deadline), and `data` the payload
//! (docs/architecture.md, "What devices receive") with every value a string, as FCM requires
//! (`"v": "1"`, `"video": "true"`).
//!
//! No message carries an `android.collapse_key`. FCM treats collapsible messages as
//! content-free pings and throttles them per app and device — a burst of 20, then one every
//! 3 minutes, *delayed* while the send is answered 200 (FCM's "Throttling and quotas"). A
//! ring and an end per call make a busy callee's next ring minutes late. Non-collapsible
//! messages are not throttled that way; the TTL already keeps a ring from arriving stale.
//!
//! The `authorization` header is not set here: the client adds the cached access token
//! ([`super::auth`]) so that building stays pure.

use crate::providers::payload_fault::PayloadFault;
use crate::push::{CallPayload, EndReason, Push};
use crate::registry::PushAddress;
use crate::vocab::{PushKind, UnixMillis};
use bytes::Bytes;
use serde::Serialize;

/// FCM's limit on a message, in bytes (the whole request body is checked, which is stricter
/// than FCM's count of the data payload alone, so what passes here passes there).
pub const MESSAGE_LIMIT: usize = 4096;
/// The longest `android.ttl` FCM takes: four weeks, in seconds.
pub const MAX_TTL_SECONDS: u64 = 2_419_200;

/// `android.priority`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AndroidPriority {
    /// Delivered at once, waking the device from Doze: calls and call-state changes only.
    High,
    /// Delivered when convenient for the battery.
    Normal,
}

/// Why a push cannot become an FCM request. Each is final: the provider turns it into
/// [`Outcome::Rejected`](crate::vocab::Outcome::Rejected) (or `Expired`) without sending.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The body is over FCM's limit; FCM would answer `INVALID_ARGUMENT`, so it is not sent.
    #[error("message of {size} bytes is over the FCM limit of {limit} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The push's address is not an FCM registration token (a routing bug upstream).
    #[error("the push's address is not an FCM registration token")]
    NotFcm,
    /// The registration token is empty: FCM would answer `INVALID_ARGUMENT`.
    #[error("the FCM registration token is empty")]
    EmptyToken,
    /// The deadline has passed: a push is never sent after it.
    #[error("the push's deadline has passed")]
    Expired,
    /// The project id cannot be a path segment (a config error; checked so that a stray `/`
    /// cannot send to another path).
    #[error("project id {0:?} is not a Firebase project id (lowercase letters, digits, '-')")]
    BadProject(String),
    /// The body could not be serialized (not expected for these types).
    #[error("cannot serialize the message: {0}")]
    Json(String),
    /// The FCM base URL and the path make no URI (a config error).
    #[error("{0:?} is not an FCM base URL")]
    BadBase(String),
}

impl PayloadError {
    /// What this error makes of the push ([`PayloadFault::outcome`]).
    pub fn fault(&self) -> PayloadFault {
        match self {
            PayloadError::TooLarge { .. } => PayloadFault::TooLarge,
            PayloadError::NotFcm => PayloadFault::Malformed("not_fcm"),
            PayloadError::EmptyToken => PayloadFault::Malformed("empty_token"),
            PayloadError::Expired => PayloadFault::Expired,
            PayloadError::BadProject(_) => PayloadFault::Malformed("bad_project"),
            PayloadError::Json(_) => PayloadFault::Malformed("json"),
            PayloadError::BadBase(_) => PayloadFault::Malformed("bad_base_url"),
        }
    }

    /// The reason put into the push's `Rejected` outcome and the metric label.
    pub fn reason(&self) -> &'static str {
        self.fault().reason()
    }
}

/// The `messages:send` path of `project_id`.
pub fn path(project_id: &str) -> Result<String, PayloadError> {
    let valid = !project_id.is_empty()
        && project_id
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if !valid {
        return Err(PayloadError::BadProject(project_id.to_owned()));
    }
    Ok(format!("/v1/projects/{project_id}/messages:send"))
}

/// Builds the FCM request for `push` to the app's Firebase project `project_id` on FCM's
/// `base` URL, at `now`: `POST <base>/v1/projects/<project>/messages:send` with
/// `content-type: application/json` and the message, all but `authorization` (the client's:
/// the access token).
pub fn build_request(
    push: &Push,
    project_id: &str,
    base: &str,
    now: UnixMillis,
) -> Result<http::Request<Bytes>, PayloadError> {
    let PushAddress::Fcm { token } = &push.address else {
        return Err(PayloadError::NotFcm);
    };
    if token.is_empty() {
        return Err(PayloadError::EmptyToken);
    }
    if push.is_expired(now) {
        return Err(PayloadError::Expired);
    }
    let path = path(project_id)?;
    let priority = match push.kind {
        PushKind::IncomingCall | PushKind::CallEnded => AndroidPriority::High,
        PushKind::MissedCall => AndroidPriority::Normal,
    };
    // Whole seconds, rounded down: FCM stops trying at or before the deadline, never after.
    let ttl_seconds = ((push.deadline - now) / 1000).min(MAX_TTL_SECONDS);
    let payload = &push.payload;
    let body = Body {
        message: Message {
            token,
            data: Data {
                v: payload.v.to_string(),
                kind: kind_name(payload.kind),
                call_id: &payload.call_id,
                caller_id: &payload.caller_id,
                caller_name: &payload.caller_name,
                video: if payload.video { "true" } else { "false" },
                reason: payload.reason.map(EndReason::label),
                expires_at: &payload.expires_at,
            },
            android: Android {
                priority,
                ttl: format!("{ttl_seconds}s"),
            },
        },
    };
    let mut out = Vec::with_capacity(estimate(token, payload).min(MESSAGE_LIMIT + 1));
    serde_json::to_writer(&mut out, &body)
        .map_err(|error| PayloadError::Json(error.to_string()))?;
    if out.len() > MESSAGE_LIMIT {
        return Err(PayloadError::TooLarge {
            size: out.len(),
            limit: MESSAGE_LIMIT,
        });
    }
    let mut request = http::Request::post(format!("{base}{path}"))
        .body(Bytes::from(out))
        .map_err(|_| PayloadError::BadBase(base.to_owned()))?;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(request)
}

/// The usual body size: fixed JSON of ~250 bytes plus the strings (the call id twice).
fn estimate(token: &str, payload: &CallPayload) -> usize {
    256 + token.len()
        + 2 * payload.call_id.len()
        + payload.caller_id.len()
        + payload.caller_name.len()
        + payload.expires_at.len()
}

/// The push kind as the payload names it (the serde name of [`PushKind`]).
fn kind_name(kind: PushKind) -> &'static str {
    match kind {
        PushKind::IncomingCall => "incoming_call",
        PushKind::CallEnded => "call_ended",
        PushKind::MissedCall => "missed_call",
    }
}

/// `SendMessageRequest`.
#[derive(Serialize)]
struct Body<'a> {
    /// The one message.
    message: Message<'a>,
}

/// `Message`: a data-only message to one registration token.
#[derive(Serialize)]
struct Message<'a> {
    /// The registration token.
    token: &'a str,
    /// What the app reads.
    data: Data<'a>,
    /// Android delivery options.
    android: Android,
}

/// The payload (docs/architecture.md, "What devices receive") as FCM data: every value a string.
#[derive(Serialize)]
struct Data<'a> {
    /// Payload format version.
    v: String,
    /// What happened.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The call.
    call_id: &'a str,
    /// Who calls.
    caller_id: &'a str,
    /// What the phone shows.
    caller_name: &'a str,
    /// `"true"` or `"false"`.
    video: &'static str,
    /// Why the call ended (call ended and missed call only).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// When the push stops being worth showing (RFC 3339).
    expires_at: &'a str,
}

/// `AndroidConfig`.
#[derive(Serialize)]
struct Android {
    /// `HIGH` or `NORMAL`.
    priority: AndroidPriority,
    /// Time to live, `"<seconds>s"`.
    ttl: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{Environment, IdentityKey};
    use std::sync::Arc;

    const NOW: UnixMillis = 1_800_000_000_000;

    fn push(kind: PushKind) -> Push {
        Push {
            event_id: Arc::from("evt-1"),
            kind,
            accepted_at: NOW,
            deadline: NOW + 42_900,
            who: IdentityKey::new("acme", "alice").into(),
            device_id: "pixel".into(),
            app: "android".into(),
            address: PushAddress::Fcm {
                token: "dGVzdA:APA91bH-example".into(),
            },
            environment: Environment::Production,
            payload: Arc::new(CallPayload {
                v: 1,
                kind,
                call_id: "call-42".into(),
                caller_id: "bob".into(),
                caller_name: "Bob \"B\" Ünal".into(),
                video: true,
                reason: (kind != PushKind::IncomingCall).then_some(EndReason::Cancelled),
                expires_at: "2027-01-15T08:00:45.500Z".into(),
            }),
        }
    }

    /// FCM's base URL, as the client passes it.
    const BASE: &str = "https://fcm.googleapis.com";

    fn json(request: &http::Request<Bytes>) -> serde_json::Value {
        serde_json::from_slice(request.body()).unwrap()
    }

    /// The `android.ttl` sent, in seconds.
    fn ttl_seconds(request: &http::Request<Bytes>) -> u64 {
        let ttl = json(request)["message"]["android"]["ttl"].clone();
        ttl.as_str().unwrap().trim_end_matches('s').parse().unwrap()
    }

    #[test]
    fn an_incoming_call_is_a_high_priority_data_message() {
        let request =
            build_request(&push(PushKind::IncomingCall), "ringcast-demo", BASE, NOW).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri().to_string(),
            "https://fcm.googleapis.com/v1/projects/ringcast-demo/messages:send"
        );
        assert_eq!(request.headers()["content-type"], "application/json");
        assert!(request.headers().get("authorization").is_none());
        assert_eq!(ttl_seconds(&request), 42);
        assert_eq!(
            json(&request),
            serde_json::json!({"message": {
                "token": "dGVzdA:APA91bH-example",
                "data": {"v": "1", "type": "incoming_call", "call_id": "call-42",
                    "caller_id": "bob", "caller_name": "Bob \"B\" Ünal", "video": "true",
                    "expires_at": "2027-01-15T08:00:45.500Z"},
                "android": {"priority": "HIGH", "ttl": "42s"},
            }})
        );
    }

    #[test]
    fn no_message_is_collapsible_so_fcm_never_throttles_a_callees_rings_as_pings() {
        for kind in [
            PushKind::IncomingCall,
            PushKind::CallEnded,
            PushKind::MissedCall,
        ] {
            let body = json(&build_request(&push(kind), "p", BASE, NOW).unwrap());
            let android = body["message"]["android"].as_object().unwrap();
            assert!(
                !android.contains_key("collapse_key"),
                "{kind:?}: {android:?}"
            );
        }
    }

    #[test]
    fn every_data_value_is_a_string_with_the_payloads_names() {
        for kind in [
            PushKind::IncomingCall,
            PushKind::CallEnded,
            PushKind::MissedCall,
        ] {
            let push = push(kind);
            let body = json(&build_request(&push, "p", BASE, NOW).unwrap());
            let data = body["message"]["data"].as_object().unwrap();
            assert!(data.values().all(serde_json::Value::is_string), "{data:?}");
            // The same keys and values as the payload (docs/architecture.md, "What devices receive"), stringified.
            let design = serde_json::to_value(&*push.payload).unwrap();
            for (key, value) in design.as_object().unwrap() {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                assert_eq!(data[key], text, "{key}");
            }
            assert_eq!(data.len(), design.as_object().unwrap().len());
        }
        for reason in [
            EndReason::Cancelled,
            EndReason::AnsweredElsewhere,
            EndReason::DeclinedElsewhere,
            EndReason::Missed,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.label());
        }
    }

    #[test]
    fn call_ended_is_high_and_missed_call_normal() {
        let ended = build_request(&push(PushKind::CallEnded), "p", BASE, NOW).unwrap();
        let body = json(&ended);
        assert_eq!(body["message"]["android"]["priority"], "HIGH");
        assert_eq!(body["message"]["data"]["reason"], "cancelled");
        let missed = build_request(&push(PushKind::MissedCall), "p", BASE, NOW).unwrap();
        assert_eq!(json(&missed)["message"]["android"]["priority"], "NORMAL");
    }

    #[test]
    fn the_ttl_is_whole_seconds_to_the_deadline_capped_at_four_weeks() {
        let mut push = push(PushKind::MissedCall);
        let ttl = |push: &Push, now| {
            let request = build_request(push, "p", BASE, now).unwrap();
            ttl_seconds(&request)
        };
        assert_eq!(ttl(&push, NOW), 42);
        assert_eq!(ttl(&push, push.deadline - 999), 0);
        push.deadline = NOW + 86_400_000;
        assert_eq!(ttl(&push, NOW), 86_400);
        push.deadline = NOW + 40 * 86_400_000;
        assert_eq!(ttl(&push, NOW), MAX_TTL_SECONDS);
    }

    #[test]
    fn the_size_limit_is_checked_before_sending() {
        let mut push = push(PushKind::IncomingCall);
        Arc::make_mut(&mut push.payload).caller_name = "B".repeat(3600);
        let fits = build_request(&push, "p", BASE, NOW).unwrap();
        assert!(fits.body().len() <= MESSAGE_LIMIT);
        Arc::make_mut(&mut push.payload).caller_name = "B".repeat(4000);
        let error = build_request(&push, "p", BASE, NOW).unwrap_err();
        assert!(matches!(
            error,
            PayloadError::TooLarge { size, limit: 4096 } if size > 4096
        ));
        assert_eq!(error.reason(), "payload_too_large");
    }

    #[test]
    fn unusable_pushes_are_refused_without_panicking() {
        let mut apns = push(PushKind::IncomingCall);
        apns.address = PushAddress::Apns {
            token: vec![1],
            alert_token: None,
        };
        assert_eq!(
            build_request(&apns, "p", BASE, NOW).unwrap_err(),
            PayloadError::NotFcm
        );
        let mut empty = push(PushKind::IncomingCall);
        empty.address = PushAddress::Fcm {
            token: String::new(),
        };
        assert_eq!(
            build_request(&empty, "p", BASE, NOW).unwrap_err(),
            PayloadError::EmptyToken
        );
        let late = push(PushKind::IncomingCall);
        assert_eq!(
            build_request(&late, "p", BASE, late.deadline).unwrap_err(),
            PayloadError::Expired
        );
        for project in ["", "a/b", "Ringcast", "p?x=1"] {
            assert!(matches!(
                build_request(&push(PushKind::MissedCall), project, BASE, NOW).unwrap_err(),
                PayloadError::BadProject(_)
            ));
        }
    }
}
