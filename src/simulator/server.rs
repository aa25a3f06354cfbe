//! The network half: TCP accept → TLS (ALPN `h2`) → hyper's HTTP/2 server, one task per
//! connection. Each request is told apart by its path (APNs, FCM or the OAuth token
//! endpoint), scripted by the profile, judged by that service's pure rules ([`super::apns`],
//! [`super::fcm`], [`super::oauth`]), and recorded; the connection owns its APNs
//! provider-token state and its stream counters.

use super::apns::{self, ApnsKey, ApnsRequest, ConnectionToken, Verdict};
use super::fcm::{self, FcmRequest, Target};
use super::oauth::{self, AccessTokens, FcmAccount};
use super::profile::{InjectedError, Profile, Service};
use super::recorder::{RecordedPush, Recorder};
use super::stats;
use crate::clock::now_millis;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    /// `https://<bound address>/token`: the audience accepted when a request names no
    /// authority.
    pub token_url: String,
    /// Scripted behaviour.
    pub profile: Profile,
    /// The seeded generator behind the profile's choices; a std Mutex, held for one draw.
    pub rng: Mutex<fastrand::Rng>,
    /// Counters and records.
    pub recorder: Recorder,
}

/// Per-connection state: what Apple tracks per connection.
struct Connection {
    token: Mutex<ConnectionToken>,
    streams: AtomicU64,
    in_flight: AtomicU64,
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
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(error) => {
            tracing::debug!(%error, "simulator: TLS handshake failed");
            return;
        }
    };
    shared.recorder.connection();
    let connection = Arc::new(Connection {
        token: Mutex::new(ConnectionToken::default()),
        streams: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        goaway: Notify::new(),
        reset: Notify::new(),
        stall: Notify::new(),
    });
    let service = {
        let (shared, connection) = (shared.clone(), connection.clone());
        service_fn(move |request| {
            let (shared, connection) = (shared.clone(), connection.clone());
            async move { Ok::<_, Infallible>(handle(request, &shared, &connection).await) }
        })
    };
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(shared.profile.max_concurrent_streams)
        .serve_connection(TokioIo::new(tls), service);
    let mut served = std::pin::pin!(served);
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
                served.as_mut().graceful_shutdown();
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Counts a stream in flight for as long as it lives.
struct InFlight<'c>(&'c AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: &Shared,
    connection: &Connection,
) -> Response<Full<Bytes>> {
    let now_in_flight = connection.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _in_flight = InFlight(&connection.in_flight);
    shared.recorder.in_flight(
        now_in_flight,
        u64::from(shared.profile.max_concurrent_streams),
    );
    if request.uri().path() == stats::PATH && request.method() == http::Method::GET {
        return stats::response(&shared.recorder.stats());
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
    let Ok(collected) = Limited::new(body, BODY_READ_LIMIT).collect().await else {
        return too_large(shared, service, &parts.headers);
    };
    let body = collected.to_bytes();
    let script = {
        let mut rng = shared
            .rng
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        shared.profile.script(service, &mut rng)
    };
    if !script.latency.is_zero() {
        tokio::time::sleep(script.latency).await;
    }
    if script.reset {
        shared.recorder.reset();
        connection.reset.notify_one();
        // Never answer: the connection task drops this stream along with the connection.
        return std::future::pending().await;
    }
    match service {
        Service::Apns => apns_answer(&parts, &body, script.error, shared, connection),
        Service::Fcm => fcm_answer(&parts, &body, script.error, shared),
        Service::Oauth => oauth_answer(&parts, &body, script.error, shared),
    }
}

/// Which service a path belongs to; anything unknown goes to APNs, which answers `BadPath`
/// as before FCM existed.
fn service_of(path: &str) -> Service {
    if path == oauth::PATH {
        Service::Oauth
    } else if path.starts_with("/v1/") {
        Service::Fcm
    } else {
        Service::Apns
    }
}

/// A body over [`BODY_READ_LIMIT`], answered in the service's own terms.
fn too_large(
    shared: &Shared,
    service: Service,
    headers: &http::HeaderMap,
) -> Response<Full<Bytes>> {
    match service {
        Service::Apns => reject(shared, &apns_id_of(headers), 413, "PayloadTooLarge"),
        Service::Fcm => fcm_reject(
            shared,
            &fcm::Rejection::invalid("message", "Message is too big"),
        ),
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

/// The client's `apns-id`, or a new one as Apple makes up.
fn apns_id_of(headers: &http::HeaderMap) -> String {
    headers
        .get("apns-id")
        .and_then(|value| value.to_str().ok())
        .map_or_else(new_apns_id, str::to_owned)
}

fn apns_answer(
    parts: &http::request::Parts,
    body: &[u8],
    injected: Option<InjectedError>,
    shared: &Shared,
    connection: &Connection,
) -> Response<Full<Bytes>> {
    let apns_id = apns_id_of(&parts.headers);
    if let Some(error) = injected {
        let mut response = reject(shared, &apns_id, error.status, &error.reason);
        set_retry_after(&mut response, error.retry_after_seconds);
        return response;
    }
    let verdict = {
        let mut token = connection
            .token
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        apns::judge(
            ApnsRequest {
                method: &parts.method,
                path: parts.uri.path(),
                headers: &parts.headers,
                body,
            },
            &shared.keys,
            now_millis() / 1000,
            &mut token,
        )
    };
    match verdict {
        Verdict::Reject { status, reason } => reject(shared, &apns_id, status, reason),
        Verdict::Accept(push) if shared.profile.is_unregistered(&push.device_token) => {
            shared.recorder.rejected(410, "Unregistered");
            let body = serde_json::json!({"reason": "Unregistered", "timestamp": now_millis()});
            respond(410, &apns_id, body.to_string())
        }
        Verdict::Accept(push) => {
            shared.recorder.accepted(RecordedPush {
                received_at_ms: now_millis(),
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
            respond(200, &apns_id, String::new())
        }
    }
}

fn fcm_answer(
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

fn oauth_answer(
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

fn set_retry_after(response: &mut Response<Full<Bytes>>, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
}

fn reject(shared: &Shared, apns_id: &str, status: u16, reason: &str) -> Response<Full<Bytes>> {
    shared.recorder.rejected(status, reason);
    let body = serde_json::json!({ "reason": reason });
    respond(status, apns_id, body.to_string())
}

fn respond(status: u16, apns_id: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = http::HeaderValue::from_str(apns_id) {
        response.headers_mut().insert("apns-id", value);
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
