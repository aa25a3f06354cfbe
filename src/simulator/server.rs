//! The network half: TCP accept → TLS → hyper's HTTP/2 server (the push listener, ALPN `h2`)
//! or HTTP/1.1 server (the HTTP/1.1-only hosts, ALPN `http/1.1`, keep-alive), one task per
//! connection. [`route`] decides which listener serves which service (a request on the
//! wrong one is answered `421`). Each request is told apart by its path (APNs, FCM or the OAuth token
//! endpoint), scripted by the profile, judged by that service's pure rules ([`super::apns`],
//! [`super::fcm`], [`super::oauth`]), and recorded; the connection owns its APNs
//! provider-token state and its stream counters. [`answer`] turns each service's verdict
//! into the HTTP answer and the record; [`subscribe`] is the browser's side of Web Push
//! (`POST /wp/subscribe`), answered before any scripting.

mod answer;
mod route;
mod stream_limit;
mod subscribe;

pub use route::TransportStats;
pub(crate) use route::{Transport, TransportCounters};

use super::apns::{ApnsKey, ConnectionToken};
use super::oauth::{self, AccessTokens, FcmAccount};
use super::profile::{Profile, Service};
use super::recorder::Recorder;
use super::stats;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stream_limit::{Raising, StreamLimit};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Largest body read at all; far above Apple's limits so oversize pushes still get a
/// proper 413 rather than a reset.
const BODY_READ_LIMIT: usize = 64 * 1024;
/// How long shutdown waits for connections to drain before dropping them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// State every connection shares.
pub(crate) struct Shared {
    /// Signing keys whose JWTs are accepted.
    pub keys: Vec<ApnsKey>,
    /// Service accounts whose OAuth assertions are accepted.
    pub fcm_accounts: Vec<FcmAccount>,
    /// FCM access tokens handed out, shared by every connection as Google's are.
    pub access_tokens: AccessTokens,
    /// How long an access token works.
    pub fcm_token_lifetime: Duration,
    /// `https://<bound address>/token` (the HTTP/1.1 listener): the audience accepted when a
    /// request names no authority.
    pub token_url: String,
    /// The HTTP/1.1 listener's port: where Web Push subscriptions point when the profile's
    /// `http1_only` is set.
    pub http1_port: u16,
    /// Which protocol the senders spoke.
    pub transport: TransportCounters,
    /// The APNs client-certificate check (certificate auth), when a CA is configured.
    pub client_certificates: Option<Arc<super::tls::ClientCertificates>>,
    /// Scripted behaviour.
    pub profile: Profile,
    /// The seeded generator behind the profile's choices; a std Mutex, held for one draw.
    pub rng: Mutex<fastrand::Rng>,
    /// Counters and records.
    pub recorder: Recorder,
    /// Windows apps whose token requests are granted.
    pub wns_apps: Vec<crate::simulator::wns::WnsApp>,
    /// WNS access tokens handed out.
    pub wns_tokens: crate::simulator::wns::WnsTokens,
    /// How long a WNS access token works.
    pub wns_token_lifetime: Duration,
    /// Push requests so far, over all connections (the throttle's clock).
    pub push_requests: AtomicU64,
    /// The Web Push subscriptions made so far, with their private keys.
    pub webpush: super::webpush::Subscriptions,
    /// VAPID tokens whose signature was checked already.
    pub vapid_verified: super::webpush::vapid::VerifiedTokens,
    /// Messages each FCM registration token got lately, against the device's limits.
    pub fcm_device_rates: super::fcm::device_rate::DeviceRates,
    /// Whether answers to pushes are held now ([`super::hold`]).
    pub answers: super::hold::AnswerGate,
}

/// Per-connection state: what Apple tracks per connection.
struct Connection {
    token: Mutex<ConnectionToken>,
    /// Whether an answer has put `apns-id` in this connection's HPACK table
    /// (`answer::IdEncoding`).
    apns_id_named: AtomicBool,
    streams: AtomicU64,
    in_flight: AtomicU64,
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` it announces now ([`stream_limit`]).
    stream_limit: Arc<StreamLimit>,
    goaway: Notify,
    /// Drop the connection now (profile `reset_rate`).
    reset: Notify,
    /// Stop polling the connection for a while (profile `stall_after_streams`).
    stall: Notify,
}

/// Accepts connections until `shutdown` turns true, then lets them drain.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    transport: Transport,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(serve_connection(
                        tcp,
                        acceptor.clone(),
                        transport,
                        shared.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(error) => tracing::warn!(%error, "simulator: accept failed"),
            },
            _ = shutdown.changed() => break,
            // Reap finished connections so the set does not grow over a long load test.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    transport: Transport,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    // Answers are small frames: without TCP_NODELAY one can wait behind Nagle's algorithm for
    // the sender's delayed ACK, and the simulator would add latency no push service adds.
    let _ = tcp.set_nodelay(true);
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(error) => {
            tracing::debug!(%error, "simulator: TLS handshake failed");
            return;
        }
    };
    shared.recorder.connection();
    shared.transport.connection(transport);
    let client_certificate = shared
        .client_certificates
        .as_ref()
        .map(|check| check.judge(tls.get_ref().1.peer_certificates()))
        .unwrap_or_default();
    let max = shared.profile.max_concurrent_streams;
    let stream_limit = Arc::new(match transport {
        Transport::Http2 => StreamLimit::new(shared.profile.initial_max_concurrent_streams, max),
        Transport::Http1 => StreamLimit::new(1, 1),
    });
    let connection = Arc::new(Connection {
        token: Mutex::new(ConnectionToken {
            client_certificate,
            ..ConnectionToken::default()
        }),
        apns_id_named: AtomicBool::new(false),
        streams: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        stream_limit: Arc::clone(&stream_limit),
        goaway: Notify::new(),
        reset: Notify::new(),
        stall: Notify::new(),
    });
    let service = {
        let (shared, connection) = (shared.clone(), connection.clone());
        service_fn(move |request| {
            let (shared, connection) = (shared.clone(), connection.clone());
            async move {
                // A stream beyond the limit the connection announced is refused before
                // anything reads it (RFC 9113 §5.1.2: REFUSED_STREAM, which tells the sender
                // it was not processed); hyper resets the stream with the reason given here.
                // hyper's own limit is the raised one, so below it only this check refuses.
                let path = request.uri().path();
                let Some(_in_flight) = InFlight::admit(&shared, &connection, path) else {
                    return Err(h2::Error::from(h2::Reason::REFUSED_STREAM));
                };
                Ok(handle(request, transport, shared, connection).await)
            }
        })
    };
    match transport {
        Transport::Http2 => {
            let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_concurrent_streams(max)
                .serve_connection(TokioIo::new(Raising::new(tls, stream_limit)), service);
            let served = std::pin::pin!(served);
            drive(
                served,
                hyper::server::conn::http2::Connection::graceful_shutdown,
                &shared,
                &connection,
                shutdown,
            )
            .await;
        }
        Transport::Http1 => {
            // Keep-alive is hyper's default: one request at a time, the connection reused.
            let served = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service);
            let served = std::pin::pin!(served);
            drive(
                served,
                hyper::server::conn::http1::Connection::graceful_shutdown,
                &shared,
                &connection,
                shutdown,
            )
            .await;
        }
    }
}

/// Drives a served connection of either protocol until it ends, acting on the profile's
/// reset, stall and GOAWAY (HTTP/1.1: `Connection: close` after the current answer) and on
/// shutdown.
async fn drive<F>(
    mut served: std::pin::Pin<&mut F>,
    graceful_shutdown: impl Fn(std::pin::Pin<&mut F>),
    shared: &Shared,
    connection: &Connection,
    mut shutdown: watch::Receiver<bool>,
) where
    F: std::future::Future<Output = Result<(), hyper::Error>>,
{
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "simulator: connection ended with an error");
                }
                return;
            }
            // Returning drops the HTTP/2 connection and the TLS stream: the peer sees the
            // socket close with streams unanswered.
            () = connection.reset.notified() => return,
            // Not polling the connection is the stall: hyper reads, writes and answers PINGs
            // only when polled.
            () = connection.stall.notified() => {
                tokio::time::sleep(Duration::from_millis(shared.profile.stall_ms)).await;
            }
            () = connection.goaway.notified(), if !closing => {
                shared.recorder.goaway();
                closing = true;
                // hyper sends GOAWAY, finishes the streams it already took, then closes.
                graceful_shutdown(served.as_mut());
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                graceful_shutdown(served.as_mut());
            }
        }
    }
}

impl Connection {
    /// Whether an APNs request on this connection showed a valid credential, what APNs waits
    /// for before it raises the stream limit: a provider token it accepted or a trusted client
    /// certificate, whatever else the push got wrong.
    fn holds_credential(&self) -> bool {
        self.token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .holds_credential()
    }
}

/// Counts a stream in flight for as long as it lives.
struct InFlight(Arc<Connection>);

impl InFlight {
    /// Counts a new stream for `path` in, unless it is beyond the limit the connection
    /// announces now (counted as a violation, and not in flight). Only APNs makes a connection
    /// earn its limit: any other service's request raises it at once, so a sender of those
    /// is never refused for opening streams before it read the SETTINGS frame.
    fn admit(shared: &Shared, connection: &Arc<Connection>, path: &str) -> Option<InFlight> {
        if service_of(path) != Service::Apns || path == stats::PATH {
            connection.stream_limit.raise();
        }
        let now = connection.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let in_flight = InFlight(Arc::clone(connection));
        let limit = u64::from(connection.stream_limit.announced());
        shared.recorder.in_flight(now, limit).then_some(in_flight)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(
    request: Request<Incoming>,
    transport: Transport,
    shared: Arc<Shared>,
    connection: Arc<Connection>,
) -> Response<Full<Bytes>> {
    // HTTP/1.1 names the authority in `Host`; the services' rules read it from the URI, as
    // HTTP/2's `:authority` puts it there.
    let request = route::with_authority(request);
    shared.transport.request(transport);
    if request.uri().path() == stats::PATH && request.method() == http::Method::GET {
        return stats::response(&shared.recorder.stats());
    }
    if request.uri().path() == super::webpush::SUBSCRIBE_PATH
        && request.method() == http::Method::POST
    {
        return subscribe::answer(request, &shared).await;
    }
    let streams = connection.streams.fetch_add(1, Ordering::Relaxed) + 1;
    if shared.profile.goaway_after_streams == Some(streams) {
        // notify_one keeps a permit, so the connection task sees it even if it is busy.
        connection.goaway.notify_one();
    }
    if shared.profile.stall_after_streams == Some(streams) {
        connection.stall.notify_one();
    }

    let (parts, body) = request.into_parts();
    let service = service_of(parts.uri.path());
    if let Some(misdirected) = route::misdirected(service, parts.uri.path(), transport, &shared) {
        return misdirected;
    }
    let Ok(collected) = Limited::new(body, BODY_READ_LIMIT).collect().await else {
        return answer::too_large(&shared, service, &parts.headers);
    };
    let body = collected.to_bytes();
    let mut script = {
        let mut rng = shared
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shared.profile.script(service, &mut rng)
    };
    let is_push =
        service != Service::Oauth && !crate::simulator::wns::is_token_path(parts.uri.path());
    if is_push {
        let n = shared.push_requests.fetch_add(1, Ordering::Relaxed) + 1;
        shared.recorder.received();
        if let Some(throttled) = shared.profile.throttled(service, n) {
            script.error = Some(throttled);
        }
    }
    if script.reset {
        if !script.latency.is_zero() {
            tokio::time::sleep(script.latency).await;
        }
        shared.recorder.reset();
        connection.reset.notify_one();
        // Never answer: the connection task drops this stream along with the connection.
        return std::future::pending().await;
    }
    // The whole request has arrived: like the real services, the simulator now has the push,
    // and a sender that goes away (killed, or its connection lost) while waiting for the
    // answer does not take it back: it is still judged and recorded. (Dropping it with the
    // stream would hide the duplicate a node that takes over the event sends.)
    let judged_on = Arc::clone(&connection);
    let (shared, connection) = (Arc::clone(&shared), Arc::clone(&connection));
    let answered = tokio::spawn(async move {
        if !script.latency.is_zero() {
            tokio::time::sleep(script.latency).await;
        }
        if is_push {
            shared.answers.passed().await;
        }
        let shared = &*shared;
        match service {
            Service::Apns => answer::apns(
                &parts,
                &body,
                script.error,
                shared,
                &connection.token,
                &connection.apns_id_named,
            ),
            Service::Fcm => answer::fcm(&parts, &body, script.error, shared),
            Service::Oauth => answer::oauth(&parts, &body, script.error, shared),
            Service::Wns => answer::wns(&parts, &body, script.error, shared),
            Service::WebPush => answer::webpush(&parts, &body, script.error, shared),
        }
    });
    let response = answered.await.unwrap_or_else(|_| {
        // The answer task panicked: a simulator bug, answered as a server error.
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        response
    });
    // Raised before hyper writes this answer, so the sender reads the new limit first.
    if service == Service::Apns && judged_on.holds_credential() {
        judged_on.stream_limit.raise();
    }
    response
}

/// Which service a path belongs to; anything unknown goes to APNs, which answers `BadPath`
/// as before FCM existed.
fn service_of(path: &str) -> Service {
    if path == oauth::PATH {
        Service::Oauth
    } else if crate::simulator::wns::is_token_path(path) || path.starts_with("/w/") {
        Service::Wns
    } else if path.starts_with("/v1/") {
        Service::Fcm
    } else if path.starts_with(super::webpush::PATH_PREFIX) {
        Service::WebPush
    } else {
        Service::Apns
    }
}
