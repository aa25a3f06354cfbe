//! Which listener serves which service, as the real hosts do (docs/protocols.md, "Transport, for
//! every service"): APNs and FCM's send endpoint speak HTTP/2 only; OAuth token endpoints
//! HTTP/1.1 only; WNS channel hosts and Web Push origins HTTP/2 unless the profile's
//! `http1_only` makes them HTTP/1.1-only hosts. A request that reaches a listener whose
//! protocol its host does not speak is answered `421 Misdirected Request` (RFC 9110,
//! section 15.5.20): the simulator cannot refuse it earlier, since one TLS listener serves
//! every host of a protocol, while the real host refuses at ALPN.

use super::Shared;
use crate::simulator::profile::Service;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use std::sync::atomic::{AtomicU64, Ordering};

/// What the listeners saw, for tests that check which protocol a sender spoke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// TLS connections that negotiated HTTP/1.1 (on the HTTP/1.1 listener).
    pub http1_connections: u64,
    /// Requests on HTTP/1.1 connections.
    pub http1_requests: u64,
    /// Requests answered `421`: sent to a listener whose protocol their host does not speak.
    pub misdirected: u64,
}

/// The counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct TransportCounters {
    http1_connections: AtomicU64,
    http1_requests: AtomicU64,
    misdirected: AtomicU64,
}

impl TransportCounters {
    /// A connection was accepted on `transport`.
    pub(super) fn connection(&self, transport: Transport) {
        if transport == Transport::Http1 {
            self.http1_connections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request arrived on `transport`.
    pub(super) fn request(&self, transport: Transport) {
        if transport == Transport::Http1 {
            self.http1_requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub(crate) fn stats(&self) -> TransportStats {
        TransportStats {
            http1_connections: self.http1_connections.load(Ordering::Relaxed),
            http1_requests: self.http1_requests.load(Ordering::Relaxed),
            misdirected: self.misdirected.load(Ordering::Relaxed),
        }
    }
}

/// Which HTTP a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// ALPN `h2`: the push listener.
    Http2,
    /// ALPN `http/1.1`: the HTTP/1.1-only hosts.
    Http1,
}

/// Whether `service` (at `path`) is served over `transport`; `None` when it is, else the
/// `421` answer saying where it is served.
pub(super) fn misdirected(
    service: Service,
    path: &str,
    transport: Transport,
    shared: &Shared,
) -> Option<Response<Full<Bytes>>> {
    let token_endpoint = service == Service::Oauth || crate::simulator::wns::is_token_path(path);
    let wanted = match service {
        _ if token_endpoint => Transport::Http1,
        Service::Apns | Service::Fcm => Transport::Http2,
        Service::Wns | Service::WebPush if shared.profile.http1_only => Transport::Http1,
        Service::Wns | Service::WebPush => Transport::Http2,
        Service::Oauth => Transport::Http1,
    };
    if wanted == transport {
        return None;
    }
    shared.transport.misdirected.fetch_add(1, Ordering::Relaxed);
    let speaks = match wanted {
        Transport::Http1 => "HTTP/1.1 only (ALPN http/1.1)",
        Transport::Http2 => "HTTP/2 only (ALPN h2)",
    };
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "this host speaks {speaks}: {path} is served on the simulator's other listener\n"
    ))));
    *response.status_mut() = http::StatusCode::MISDIRECTED_REQUEST;
    Some(response)
}

/// `request` with its URI's authority taken from `Host` when the URI has none (HTTP/1.1's
/// origin form), so the rules that read the authority the client reached (OAuth and VAPID
/// audiences, subscription endpoints) work the same over both protocols.
pub(super) fn with_authority<B>(request: Request<B>) -> Request<B> {
    if request.uri().authority().is_some() {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_owned);
    if let Some(host) = host {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        if let Ok(uri) = format!("https://{host}{path}").parse() {
            parts.uri = uri;
        }
    }
    Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http1_request_gets_its_authority_from_host() {
        let request = Request::post("/token")
            .header("host", "127.0.0.1:8444")
            .body(())
            .unwrap();
        assert_eq!(
            with_authority(request).uri(),
            "https://127.0.0.1:8444/token"
        );
        let h2 = Request::post("https://127.0.0.1:8443/3/device/ab")
            .header("host", "elsewhere")
            .body(())
            .unwrap();
        assert_eq!(
            with_authority(h2).uri(),
            "https://127.0.0.1:8443/3/device/ab"
        );
    }
}
