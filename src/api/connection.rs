//! The public listener's limits per connection (README, "Connection limits"), on top of the
//! ones actix-web applies itself (`[server]` keep-alive, request-head timeout, connections per
//! worker, TLS handshakes; wired in src/app.rs).
//!
//! - **Streams per connection.** HTTP/2 lets one connection open any number of streams, and
//!   actix-http 3 exposes no `SETTINGS_MAX_CONCURRENT_STREAMS`, so the limit is kept here: a
//!   request beyond `max_streams_per_connection` in progress on its connection gets `503`
//!   with `Retry-After` before anything else runs. One connection thus cannot take the node's
//!   whole intake ([`super::intake`]) from everyone else. The health, readiness, metrics and
//!   description routes are never refused, as in the intake.
//! - **Header size.** A request head (method, path, headers) over `max_header_bytes` gets
//!   `431`. actix-http refuses HTTP/1.1 heads over 128 KiB itself, before any of this runs.
//! - **Counting cut-offs.** actix-http answers a client that does not finish its request head
//!   within `client_request_timeout_ms` with `408` and closes the connection, out of sight of
//!   any middleware. What is counted is what the connection itself shows when it ends (its
//!   [`ConnectionWatch`] is dropped with it): no request ever started on it, and it lived at
//!   least the timeout less [`CLOCK_TICK`] — the node closed it for not sending a request in
//!   time (a slowloris client dribbling its headers, or a silent one). A connection cut off after an earlier
//!   complete request (a slow *second* request) is not told apart from an ordinary keep-alive
//!   close, and is not counted.
//!
//! Every refusal is counted in `ringcast_connections_refused_total{reason}`.

use super::problem::ApiError;
use crate::metrics::{self, ConnectionRefusal};
use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use actix_web::middleware::Next;
use actix_web::{Error, web};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How stale actix-http's clock may be: it reads the time from a cache refreshed every 500 ms,
/// so it cuts a connection off up to that much *before* `client_request_timeout_ms`.
pub const CLOCK_TICK: Duration = Duration::from_millis(500);

/// The limits this module keeps, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// `max_streams_per_connection`.
    pub max_streams: usize,
    /// `max_header_bytes`.
    pub max_header_bytes: usize,
    /// `client_request_timeout_ms`: a connection without a request that lived this long was
    /// cut off.
    pub request_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `[server]` configures.
    pub fn of(server: &crate::config::ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_streams: server.max_streams_per_connection,
            max_header_bytes: server.max_header_bytes,
            request_timeout: server.client_request_timeout(),
        }
    }

    /// The `on_connect` hook: gives the new connection its watch. Connection data lives on
    /// the connection's own worker thread, hence `Rc` and `Cell`.
    pub fn watch(&self, extensions: &mut Extensions) {
        extensions.insert(ConnectionWatch {
            opened: Instant::now(),
            requests: Cell::new(0),
            in_progress: Rc::new(Cell::new(0)),
            request_timeout: self.request_timeout,
        });
    }
}

/// One connection's requests: how many started, how many are in progress.
#[derive(Debug)]
pub struct ConnectionWatch {
    opened: Instant,
    requests: Cell<u64>,
    in_progress: Rc<Cell<usize>>,
    request_timeout: Duration,
}

/// A request in progress on its connection; dropping it (when the answer is ready) frees
/// its place.
struct Stream(Rc<Cell<usize>>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl ConnectionWatch {
    /// Starts a request, or `None` when `max` are in progress already.
    fn start(&self, max: usize) -> Option<Stream> {
        self.requests.set(self.requests.get() + 1);
        let now = self.in_progress.get();
        if now >= max {
            return None;
        }
        self.in_progress.set(now + 1);
        Some(Stream(Rc::clone(&self.in_progress)))
    }

    /// Whether the connection ended the way the request timeout ends one: no request, at
    /// least the timeout old (as actix-http's clock tells it).
    fn cut_off(&self, lived: Duration) -> bool {
        self.requests.get() == 0 && lived >= self.request_timeout.saturating_sub(CLOCK_TICK)
    }
}

impl Drop for ConnectionWatch {
    fn drop(&mut self) {
        if self.cut_off(self.opened.elapsed()) {
            metrics::connection_refused(ConnectionRefusal::RequestTimeout);
            tracing::debug!(
                lived_ms = self.opened.elapsed().as_millis() as u64,
                "connection cut off: no request within client_request_timeout_ms"
            );
        }
    }
}

/// The bytes of a request head as HTTP/1.1 would carry it: request line and header lines.
fn head_bytes(request: &ServiceRequest) -> usize {
    let line = request.method().as_str().len() + uri_len(request.uri()) + 12;
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// The length of `uri` as it displays, counted without writing it (a `String` and several
/// formatting calls per request, only to be measured).
fn uri_len(uri: &Uri) -> usize {
    let scheme = uri
        .scheme_str()
        .map_or(0, |scheme| scheme.len() + "://".len());
    let authority = uri
        .authority()
        .map_or(0, |authority| authority.as_str().len());
    let query = uri.query().map_or(0, |query| query.len() + 1);
    scheme + authority + uri.path().len() + query
}

/// The middleware: the header size, then the connection's stream limit.
pub async fn limit(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(limits) = request
        .app_data::<web::Data<ConnectionLimits>>()
        .map(|data| *data.get_ref())
    else {
        return next.call(request).await;
    };
    if head_bytes(&request) > limits.max_header_bytes {
        metrics::connection_refused(ConnectionRefusal::HeaderSize);
        return Err(ApiError::HeadersTooLarge {
            limit: limits.max_header_bytes,
        }
        .into());
    }
    let watch = request.conn_data::<ConnectionWatch>();
    let exempt = super::intake::route(request.method(), request.path()).is_none();
    let _stream = match watch {
        None => None,
        Some(watch) if exempt => {
            // Counted as a request (the connection is not silent), never refused.
            watch.requests.set(watch.requests.get() + 1);
            None
        }
        Some(watch) => match watch.start(limits.max_streams) {
            Some(stream) => Some(stream),
            None => {
                metrics::connection_refused(ConnectionRefusal::Streams);
                return Err(ApiError::Unavailable(
                    "too many requests in progress on this connection; retry shortly or on another connection",
                )
                .into());
            }
        },
    };
    next.call(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(timeout_ms: u64) -> ConnectionWatch {
        ConnectionWatch {
            opened: Instant::now(),
            requests: Cell::new(0),
            in_progress: Rc::new(Cell::new(0)),
            request_timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn a_uri_is_measured_as_it_displays() {
        for uri in [
            "/v1/calls",
            "/v1/calls?wait=true",
            "/",
            "*",
            "https://ringcast.example:8443/v1/calls/abc/end?wait=true",
            "http://[::1]/v1/registrations",
            "ringcast.example:443",
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(uri_len(&uri), uri.to_string().len(), "{uri}");
        }
    }

    #[test]
    fn a_connection_takes_streams_up_to_its_limit_and_frees_them() {
        let watch = watch(1_000);
        let first = watch.start(2).unwrap();
        let _second = watch.start(2).unwrap();
        assert!(watch.start(2).is_none(), "the third is refused");
        drop(first);
        assert!(
            watch.start(2).is_some(),
            "a finished request frees its place"
        );
    }

    #[test]
    fn only_a_connection_without_requests_that_reached_the_timeout_was_cut_off() {
        let silent = watch(1_000);
        assert!(
            !silent.cut_off(Duration::from_millis(499)),
            "closed early by the client"
        );
        assert!(
            silent.cut_off(Duration::from_millis(500)),
            "actix's clock is 500 ms coarse"
        );
        assert!(silent.cut_off(Duration::from_millis(1_000)));
        let served = watch(1_000);
        let _ = served.start(4);
        assert!(
            !served.cut_off(Duration::from_secs(60)),
            "it sent a request"
        );
    }
}
