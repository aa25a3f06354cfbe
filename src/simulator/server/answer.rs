//! Each service's verdict as an HTTP answer: status, headers and body in the service's own
//! terms (Apple's `reason`, Google's error JSON, the OAuth error), with the recorder told
//! what happened. Pure rules decide; this only speaks.

use super::Shared;
use crate::clock::now_millis;
use crate::providers::apns::payload::APNS_ID;
use crate::simulator::apns::{self, ApnsRequest, ConnectionToken, Verdict};
use crate::simulator::fcm::{self, FcmRequest, Target};
use crate::simulator::oauth;
use crate::simulator::profile::{InjectedError, Service};
use crate::simulator::recorder::RecordedPush;
use crate::simulator::webpush;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A body over [`super::BODY_READ_LIMIT`], answered in the service's own terms.
pub(super) fn too_large(
    shared: &Shared,
    service: Service,
    headers: &http::HeaderMap,
) -> Response<Full<Bytes>> {
    match service {
        Service::Apns => reject(
            shared,
            &apns_id_of(headers),
            IdEncoding::Literal,
            413,
            "PayloadTooLarge",
        ),
        Service::Fcm => fcm_reject(
            shared,
            &fcm::Rejection::invalid("message", "Message is too big"),
        ),
        Service::Wns => wns_reject(shared, 413, "the notification is over 5000 bytes", None),
        Service::WebPush => webpush_reject(shared, 413, "PayloadTooLarge", None),
        Service::Oauth => {
            shared.recorder.token_refused();
            json_response(
                413,
                &oauth::Refusal::new(413, "invalid_request", "Request too large").body(),
                None,
            )
        }
    }
}

/// A WNS request's answer: the token endpoint's grant, or a channel's verdict (401 for a
/// missing or expired token, 410 for a scripted dead channel, 200 and a record otherwise).
pub(super) fn wns(
    parts: &http::request::Parts,
    body: &[u8],
    injected: Option<InjectedError>,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    use crate::simulator::wns;
    let now = now_millis();
    if wns::is_token_path(parts.uri.path()) {
        // Scripted errors are for the channels; the token endpoint refuses by its rules (a
        // wrong secret shows its refusal).
        return match wns::judge_token_request(parts.uri.path(), body, &shared.wns_apps) {
            Ok(app) => {
                let lifetime = shared.wns_token_lifetime;
                let token = shared
                    .wns_tokens
                    .issue(app, now + lifetime.as_millis() as u64);
                shared.recorder.token_issued();
                let body = serde_json::json!({"access_token": token, "token_type": "bearer",
                    "expires_in": lifetime.as_secs()});
                json_response(200, &body, None)
            }
            Err((status, error)) => {
                shared.recorder.token_refused();
                json_response(status, &serde_json::json!({ "error": error }), None)
            }
        };
    }
    if let Some(error) = injected {
        if error.status == 200 {
            return wns_drop(
                shared,
                &parts.headers,
                &error.reason,
                error.retry_after_seconds,
            );
        }
        return wns_reject(
            shared,
            error.status,
            &error.reason,
            error.retry_after_seconds,
        );
    }
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let live = shared.wns_tokens.is_live(authorization, now);
    let accepted = match wns::judge_notification(&parts.headers, body, live) {
        Ok(accepted) => accepted,
        Err((status, description)) => return wns_reject(shared, status, description, None),
    };
    let channel = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    if shared
        .profile
        .unregistered_tokens
        .iter()
        .any(|token| token == wns::channel_token(&channel))
    {
        return wns_reject(shared, 410, "the channel expired", None);
    }
    let message_id = format!("{:016X}", fastrand::u64(..));
    shared.recorder.accepted(RecordedPush {
        received_at_ms: now,
        received_at_us: crate::clock::now_micros(),
        service: "wns",
        device_token: channel,
        topic: accepted.cache_policy.clone().unwrap_or_default(),
        push_type: accepted.kind,
        priority: 0,
        apns_id: message_id.clone(),
        collapse_id: None,
        expiration: accepted.ttl.map(|ttl| now / 1000 + ttl),
        payload: accepted.payload,
        android_priority: None,
        ttl: accepted.ttl.map(|ttl| ttl.to_string()),
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert("x-wns-status", http::HeaderValue::from_static("received"));
    if let Ok(id) = http::HeaderValue::from_str(&message_id) {
        headers.insert("x-wns-msg-id", id);
    }
    tell_device_state(&parts.headers, headers, "connected");
    response
}

/// `X-WNS-DeviceConnectionStatus: <state>`, which WNS answers only to a request that asked
/// with `X-WNS-RequestForStatus: true`.
fn tell_device_state(request: &http::HeaderMap, answer: &mut http::HeaderMap, state: &'static str) {
    let asked = request
        .get("x-wns-requestforstatus")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
    if asked {
        answer.insert(
            "x-wns-deviceconnectionstatus",
            http::HeaderValue::from_static(state),
        );
    }
}

/// A refused WNS notification: the status, Microsoft's description header, no body.
fn wns_reject(
    shared: &Shared,
    status: u16,
    description: &str,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    shared.recorder.rejected(status, description);
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = http::HeaderValue::from_str(description) {
        response
            .headers_mut()
            .insert("x-wns-error-description", value);
    }
    set_retry_after(&mut response, retry_after);
    response
}

/// A WNS notification accepted and then dropped: `200`, no delivery, and WNS' word for why
/// in `X-WNS-Status` (`dropped`, `channelthrottled`), which is all a sender has to go on
/// besides the device's state when asked for: a scripted drop plays an offline device.
fn wns_drop(
    shared: &Shared,
    request: &http::HeaderMap,
    wns_status: &str,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    shared.recorder.rejected(200, wns_status);
    let mut response = Response::new(Full::new(Bytes::new()));
    if let Ok(value) = http::HeaderValue::from_str(wns_status) {
        response.headers_mut().insert("x-wns-status", value);
    }
    let state = if wns_status == "dropped" {
        "disconnected"
    } else {
        "connected"
    };
    tell_device_state(request, response.headers_mut(), state);
    set_retry_after(&mut response, retry_after);
    response
}

/// The client's `apns-id`, or a new one as Apple makes up.
fn apns_id_of(headers: &http::HeaderMap) -> String {
    headers
        .get(APNS_ID)
        .and_then(|value| value.to_str().ok())
        .map_or_else(new_apns_id, str::to_owned)
}

/// An APNs request's answer: the scripted error, else Apple's verdict (with the
/// connection's provider-token state), 410 for a scripted unregistered token, or 200 and a
/// record.
pub(super) fn apns(
    parts: &http::request::Parts,
    body: &[u8],
    injected: Option<InjectedError>,
    shared: &Shared,
    connection_token: &Mutex<ConnectionToken>,
    id_named: &AtomicBool,
) -> Response<Full<Bytes>> {
    let apns_id = apns_id_of(&parts.headers);
    let encoding = IdEncoding::next(id_named);
    if let Some(error) = injected {
        let mut response = reject(shared, &apns_id, encoding, error.status, &error.reason);
        set_retry_after(&mut response, error.retry_after_seconds);
        return response;
    }
    let verdict = {
        let mut token = connection_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        apns::judge(
            ApnsRequest {
                method: &parts.method,
                path: parts.uri.path(),
                headers: &parts.headers,
                body,
                authority: parts.uri.authority().map(http::uri::Authority::as_str),
                bundle_ids: &shared.profile.apns_bundle_ids,
                key_environments: &shared.profile.apns_key_environments,
            },
            &shared.keys,
            now_millis() / 1000,
            &mut token,
        )
    };
    match verdict {
        Verdict::Reject { status, reason } => reject(shared, &apns_id, encoding, status, reason),
        Verdict::Accept(push) if shared.profile.is_unregistered(&push.device_token) => {
            shared.recorder.rejected(410, "Unregistered");
            let body = serde_json::json!({"reason": "Unregistered", "timestamp": now_millis()});
            respond(410, &apns_id, encoding, body.to_string())
        }
        Verdict::Accept(push) => {
            shared.recorder.accepted(RecordedPush {
                received_at_ms: now_millis(),
                received_at_us: crate::clock::now_micros(),
                service: "apns",
                device_token: push.device_token,
                topic: push.topic,
                push_type: push.push_type,
                priority: push.priority,
                apns_id: apns_id.clone(),
                collapse_id: push.collapse_id,
                expiration: push.expiration,
                payload: push.payload,
                android_priority: None,
                ttl: None,
            });
            respond(200, &apns_id, encoding, String::new())
        }
    }
}

/// An FCM request's answer: the scripted error, else FCM's verdict (against the access tokens
/// handed out), 404 `UNREGISTERED` for a scripted token, or 200 `{"name"}` and a record.
pub(super) fn fcm(
    parts: &http::request::Parts,
    body: &[u8],
    injected: Option<InjectedError>,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    if let Some(error) = injected {
        let rejection =
            fcm::Rejection::scripted(error.status, &error.reason, error.retry_after_seconds);
        return fcm_reject(shared, &rejection);
    }
    let now = now_millis();
    let request = FcmRequest {
        method: &parts.method,
        path: parts.uri.path(),
        headers: &parts.headers,
        body,
    };
    let message = match fcm::judge(request, &shared.access_tokens, now) {
        fcm::Verdict::Reject(rejection) => return fcm_reject(shared, &rejection),
        fcm::Verdict::Accept(message) => message,
    };
    if let Target::Token(token) = &message.target
        && shared.profile.is_unregistered_fcm(token)
    {
        let gone = fcm::Rejection::fcm("UNREGISTERED", "Requested entity was not found.");
        return fcm_reject(shared, &gone);
    }
    if message.validate_only {
        shared.recorder.validated_only();
        let name = format!("projects/{}/messages/fake_message_id", message.project_id);
        return json_response(200, &serde_json::json!({ "name": name }), None);
    }
    if let Target::Token(token) = &message.target
        && !shared.fcm_device_rates.admit(token, now)
    {
        return fcm_reject(shared, &fcm::Rejection::device_rate());
    }
    // FCM's ids look like `0:<microseconds>%<16 hex>`; not from the seeded generator, so ids
    // do not shift the scripted sequence.
    let id = format!(
        "0:{}%{:016x}",
        now * 1000 + fastrand::u64(..1000),
        fastrand::u64(..)
    );
    let name = format!("projects/{}/messages/{id}", message.project_id);
    let device_token = match message.target {
        Target::Token(token) => token,
        Target::Topic(topic) => format!("topic:{topic}"),
        Target::Condition(condition) => format!("condition:{condition}"),
    };
    shared.recorder.accepted(RecordedPush {
        received_at_ms: now,
        received_at_us: crate::clock::now_micros(),
        service: "fcm",
        device_token,
        topic: message.project_id,
        push_type: "data".to_owned(),
        priority: if message.android_priority.as_deref() == Some("HIGH") {
            10
        } else {
            5
        },
        apns_id: id,
        collapse_id: message.collapse_key,
        expiration: message.ttl_seconds.map(|ttl| now / 1000 + ttl),
        payload: message.data,
        android_priority: message.android_priority,
        ttl: message.ttl,
    });
    json_response(200, &serde_json::json!({ "name": name }), None)
}

/// Google's error JSON for `rejection`, counted by its FCM code (or gRPC status).
fn fcm_reject(shared: &Shared, rejection: &fcm::Rejection) -> Response<Full<Bytes>> {
    shared
        .recorder
        .rejected(rejection.status, rejection.label());
    json_response(
        rejection.status,
        &rejection.body(),
        rejection.retry_after_secs,
    )
}

/// A token request's answer: the scripted refusal, else Google's judgement of the assertion:
/// a new access token for the account, or the OAuth error.
pub(super) fn oauth(
    parts: &http::request::Parts,
    body: &[u8],
    injected: Option<InjectedError>,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let refuse = |refusal: oauth::Refusal, retry_after: Option<u64>| {
        shared.recorder.token_refused();
        json_response(refusal.status, &refusal.body(), retry_after)
    };
    if let Some(error) = injected {
        let refusal = oauth::Refusal::new(error.status, &error.reason, "Scripted failure");
        return refuse(refusal, error.retry_after_seconds);
    }
    if parts.method != http::Method::POST {
        return refuse(
            oauth::Refusal::new(405, "invalid_request", "The token endpoint takes POST"),
            None,
        );
    }
    // The audience a client may name is the URL it reached: the request's authority (what
    // the `token_uri` said), whatever address the simulator is known by.
    let token_url = parts.uri.authority().map_or_else(
        || shared.token_url.clone(),
        |authority| format!("https://{authority}{}", oauth::PATH),
    );
    let now = now_millis();
    match oauth::judge_assertion(body, &shared.fcm_accounts, &token_url, now / 1000) {
        Ok(account) => {
            let lifetime = shared.fcm_token_lifetime;
            let (token, _) = shared.access_tokens.issue(account, now, lifetime);
            shared.recorder.token_issued();
            json_response(200, &oauth::grant_body(&token, lifetime.as_secs()), None)
        }
        Err(refusal) => refuse(refusal, None),
    }
}

/// A Web Push request's answer: the scripted error, else the push service's verdict (VAPID,
/// headers, size, a subscription that exists and was not scripted as gone), and for an
/// accepted one the browser's decryption, recorded; `201` with a `Location`, as RFC 8030.
pub(super) fn webpush(
    parts: &http::request::Parts,
    body: &[u8],
    injected: Option<InjectedError>,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    if let Some(error) = injected {
        return webpush_reject(
            shared,
            error.status,
            &error.reason,
            error.retry_after_seconds,
        );
    }
    // The audience is the origin the client reached, whatever address we are known by.
    let origin = parts.uri.authority().map_or_else(
        || shared.token_url.trim_end_matches(oauth::PATH).to_owned(),
        |authority| format!("https://{authority}"),
    );
    let now = now_millis();
    let request = webpush::WebPushRequest {
        method: &parts.method,
        path: parts.uri.path(),
        origin: &origin,
        headers: &parts.headers,
        body,
    };
    let unregistered = |id: &str| shared.profile.unregistered_tokens.iter().any(|t| t == id);
    let verified = &shared.vapid_verified;
    match webpush::judge(request, &shared.webpush, verified, unregistered, now / 1000) {
        webpush::Verdict::Reject { status, reason } => webpush_reject(shared, status, reason, None),
        webpush::Verdict::Accept(delivered) => {
            let id = format!("{:016x}", fastrand::u64(..));
            shared.recorder.accepted(RecordedPush {
                received_at_ms: now,
                received_at_us: crate::clock::now_micros(),
                service: "webpush",
                device_token: delivered.subscription,
                topic: delivered.topic.clone().unwrap_or_default(),
                push_type: delivered.urgency.clone(),
                priority: if delivered.urgency == "high" { 10 } else { 5 },
                apns_id: id.clone(),
                collapse_id: delivered.topic,
                expiration: Some(now / 1000 + delivered.ttl),
                payload: delivered.payload,
                android_priority: None,
                ttl: Some(delivered.ttl.to_string()),
            });
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = http::StatusCode::CREATED;
            if let Ok(location) = http::HeaderValue::from_str(&format!("/m/{id}")) {
                response
                    .headers_mut()
                    .insert(http::header::LOCATION, location);
            }
            response
        }
    }
}

/// A Web Push error answer (a short text body, as push services send), counted.
fn webpush_reject(
    shared: &Shared,
    status: u16,
    reason: &str,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    shared.recorder.rejected(status, reason);
    let mut response = Response::new(Full::new(Bytes::from(reason.to_owned())));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    set_retry_after(&mut response, retry_after);
    response
}

/// A JSON answer with an optional `Retry-After` (seconds).
fn json_response(
    status: u16,
    body: &serde_json::Value,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    set_retry_after(&mut response, retry_after);
    response
}

/// Adds `Retry-After: <seconds>` when there is one.
fn set_retry_after(response: &mut Response<Full<Bytes>>, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
}

/// An APNs error answer with Apple's `reason`, counted.
fn reject(
    shared: &Shared,
    apns_id: &str,
    encoding: IdEncoding,
    status: u16,
    reason: &str,
) -> Response<Full<Bytes>> {
    shared.recorder.rejected(status, reason);
    let body = serde_json::json!({ "reason": reason });
    respond(status, apns_id, encoding, body.to_string())
}

/// How an answer's `apns-id` goes through HPACK. Apple asks senders to send `apns-id` with
/// incremental indexing the first time, so that its name enters the table, and as a literal
/// without indexing after that: APNs keeps a small table, and each id is unique. The
/// simulator answers the same way on each connection. Indexing every answer's id cost this
/// encoder a table insert and a comparison with every `apns-id` entry already there (~50 in
/// 4 KiB), and the client's decoder an insert; a literal with a literal name cost the client
/// the name's parsing (~1k instructions per push, `CALLGRIND=1 … benches/e2e.sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdEncoding {
    /// The connection's first answer: name and value enter the table.
    Indexed,
    /// Every later answer: a literal, under the name the first one indexed.
    Literal,
}

impl IdEncoding {
    /// The encoding of a connection's next answer; `named` is the connection's flag.
    fn next(named: &AtomicBool) -> IdEncoding {
        if named.swap(true, Ordering::Relaxed) {
            IdEncoding::Literal
        } else {
            IdEncoding::Indexed
        }
    }
}

/// An APNs answer carrying the `apns-id`.
fn respond(
    status: u16,
    apns_id: &str,
    encoding: IdEncoding,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(mut value) = http::HeaderValue::from_str(apns_id) {
        // `h2` sends a sensitive value as a never-indexed literal, under the name's table
        // index once the first answer put it there.
        value.set_sensitive(encoding == IdEncoding::Literal);
        response.headers_mut().insert(APNS_ID, value);
    }
    if status != 200 {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// A random UUID in Apple's upper-case canonical form, for requests that sent no `apns-id`.
/// Not from the seeded generator: ids must not shift the scripted sequence.
fn new_apns_id() -> String {
    let (high, low) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
        high >> 32,
        (high >> 16) & 0xFFFF,
        high & 0xFFFF,
        low >> 48,
        low & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connections_first_apns_id_is_indexed_and_the_rest_are_literals() {
        let named = AtomicBool::new(false);
        assert_eq!(IdEncoding::next(&named), IdEncoding::Indexed);
        assert_eq!(IdEncoding::next(&named), IdEncoding::Literal);
        assert_eq!(IdEncoding::next(&named), IdEncoding::Literal);
        assert_eq!(
            IdEncoding::next(&AtomicBool::new(false)),
            IdEncoding::Indexed,
            "a new connection starts over"
        );
        const ID: &str = "0d7c1e3a-1b2c-4d5e-8f90-a1b2c3d4e5f6";
        for status in [200, 400] {
            let first = respond(status, ID, IdEncoding::Indexed, String::new());
            assert_eq!(first.headers()[APNS_ID], ID);
            assert!(!first.headers()[APNS_ID].is_sensitive());
            let later = respond(status, ID, IdEncoding::Literal, String::new());
            assert_eq!(later.headers()[APNS_ID], ID);
            assert!(later.headers()[APNS_ID].is_sensitive());
        }
    }
}
