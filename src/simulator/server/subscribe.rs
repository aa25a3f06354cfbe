//! `POST /wp/subscribe` over the network: the simulator playing a browser for a process
//! that is not the simulator's own (the load generator, a demo script). The rules are
//! [`crate::simulator::webpush`]'s; this reads the body and speaks HTTP.
//!
//! It is the browser's side, not the push service's, so it is answered before the profile is
//! consulted: no scripted latency, fault, GOAWAY or throttle, and it is not counted as a
//! push request.

use super::Shared;
use crate::simulator::webpush::{MAX_SUBSCRIBE_BODY, SubscribeOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Response;
use hyper::body::Incoming;

/// Makes a subscription whose endpoint is on the origin the client reached: `201` with
/// `PushSubscription.toJSON()` and the endpoint as `Location`; `400` with the reason as text
/// for a body that is not subscription options or a key that is not a P-256 public key;
/// `413` for a body over [`MAX_SUBSCRIBE_BODY`].
pub(super) async fn answer(
    request: hyper::Request<Incoming>,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    // The endpoint must name the address the client reached, whatever address the simulator
    // is bound to (0.0.0.0 is no place to push to).
    let origin = request.uri().authority().map_or_else(
        || {
            shared
                .token_url
                .trim_end_matches(crate::simulator::oauth::PATH)
                .to_owned()
        },
        |authority| format!("https://{authority}"),
    );
    // An HTTP/1.1-only Web Push side: the endpoint names the HTTP/1.1 listener's port.
    let origin = if shared.profile.http1_only {
        on_port(&origin, shared.http1_port)
    } else {
        origin
    };
    let Ok(body) = Limited::new(request.into_body(), MAX_SUBSCRIBE_BODY)
        .collect()
        .await
    else {
        return text(413, "subscription options over 1024 bytes".into());
    };
    let made = SubscribeOptions::from_body(&body.to_bytes()).and_then(|options| {
        shared
            .webpush
            .subscribe(&origin, options.application_server_key.as_deref(), None)
    });
    match made {
        Ok(subscription) => {
            let mut response =
                Response::new(Full::new(Bytes::from(subscription.to_json().to_string())));
            *response.status_mut() = http::StatusCode::CREATED;
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            if let Ok(location) = http::HeaderValue::from_str(&subscription.endpoint) {
                headers.insert(http::header::LOCATION, location);
            }
            response
        }
        Err(reason) => text(400, reason),
    }
}

/// `https://host[:port]` moved to `port`.
fn on_port(origin: &str, port: u16) -> String {
    let authority = origin.trim_start_matches("https://");
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal's last colon is inside its brackets when it has no port.
        Some((host, tail)) if !tail.contains(']') => host,
        _ => authority,
    };
    format!("https://{host}:{port}")
}

/// A plain-text error answer.
fn text(status: u16, reason: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reason)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}
