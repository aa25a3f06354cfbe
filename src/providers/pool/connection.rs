//! One slot's life: dial, drive the connection while keeping its peer stream limit current,
//! and dial again when it ends — at once after a clean end (a drained GOAWAY, a PING
//! timeout), after a jittered backoff when dialling fails.

use super::{Phase, Shared, set_phase};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Keeps slot `index` of the pool connected until the pool closes.
pub(super) async fn run(shared: Arc<Shared>, index: usize) {
    keep_connected(&shared, index).await;
    // The pool closed: this slot no longer counts in any state.
    if let Some(provider) = shared.settings.provider {
        let phase = shared.lock().slots[index].phase;
        crate::metrics::connections(provider, phase.state(), -1);
    }
}

/// Dials, drives and redials slot `index` until the pool closes.
async fn keep_connected(shared: &Arc<Shared>, index: usize) {
    let mut failures: u32 = 0;
    let mut rng = fastrand::Rng::new();
    loop {
        if shared.lock().closed {
            return;
        }
        let limit = Arc::new(AtomicUsize::new(1));
        let dialled = tokio::time::timeout(
            shared.settings.connect_timeout,
            dial(shared, Arc::clone(&limit)),
        )
        .await;
        let (sender, driving) = match dialled {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => {
                failures += 1;
                tracing::warn!(origin = %shared.origin.base, slot = index, failures, %error,
                    "push service connection failed");
                backoff(shared, failures, &mut rng).await;
                continue;
            }
            Err(_) => {
                failures += 1;
                tracing::warn!(origin = %shared.origin.base, slot = index, failures,
                    "push service connection timed out");
                backoff(shared, failures, &mut rng).await;
                continue;
            }
        };
        failures = 0;
        {
            let mut state = shared.lock();
            let slot = &mut state.slots[index];
            slot.generation += 1;
            set_phase(&shared.settings, slot, Phase::Open);
            slot.in_flight = 0;
            slot.peer_limit = limit;
            slot.sender = Some(sender);
        }
        tracing::debug!(origin = %shared.origin.base, slot = index, "push service connected");
        shared.capacity.notify_waiters();

        // Registered before the check, so a close in between is not missed.
        let closing = shared.closing.notified();
        if shared.lock().closed {
            return;
        }
        tokio::select! {
            result = driving => {
                if let Err(error) = result {
                    tracing::info!(origin = %shared.origin.base, slot = index, %error,
                        "push service connection ended");
                }
            }
            () = closing => {}
        }
        {
            let mut state = shared.lock();
            let slot = &mut state.slots[index];
            set_phase(&shared.settings, slot, Phase::Connecting);
            slot.sender = None;
        }
    }
}

/// Waits the full-jitter backoff for the `failures`-th failed dial in a row, or until the
/// pool closes.
async fn backoff(shared: &Shared, failures: u32, rng: &mut fastrand::Rng) {
    let settings = &shared.settings;
    let window = settings
        .reconnect_base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(settings.reconnect_max);
    let delay = Duration::from_millis(rng.u64(0..=window.as_millis() as u64));
    let closing = shared.closing.notified();
    if shared.lock().closed {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = closing => {}
    }
}

/// Why dialling failed.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("tcp: {0}")]
    Tcp(std::io::Error),
    #[error("{0}")]
    Refused(super::guard::GuardError),
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("the server did not agree to HTTP/2 (ALPN)")]
    NoH2,
    #[error("http/2 handshake: {0}")]
    Handshake(hyper::Error),
}

/// TCP, TLS with ALPN `h2`, and the HTTP/2 handshake. Returns the request handle and the
/// future that drives the connection, which also keeps `limit` at the peer's
/// `SETTINGS_MAX_CONCURRENT_STREAMS`.
async fn dial(
    shared: &Shared,
    limit: Arc<AtomicUsize>,
) -> Result<
    (
        SendRequest<Full<Bytes>>,
        impl Future<Output = Result<(), hyper::Error>> + use<>,
    ),
    DialError,
> {
    let origin = &shared.origin;
    let tcp = match &shared.settings.guard {
        None => TcpStream::connect(&origin.address).await,
        // A client-supplied origin: resolve once, vet every address, and connect to the
        // vetted addresses themselves, so no second lookup can answer differently.
        Some(guard) => {
            let vetted = guard
                .resolve(&origin.host, origin.port, shared.settings.connect_timeout)
                .await
                .map_err(DialError::Refused)?;
            TcpStream::connect(&vetted[..]).await
        }
    }
    .map_err(DialError::Tcp)?;
    // Pushes are small and latency-bound: never wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let tls = TlsConnector::from(Arc::clone(&origin.tls))
        .connect(origin.server_name.clone(), tcp)
        .await
        .map_err(DialError::Tls)?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(DialError::NoH2);
    }
    let settings = &shared.settings;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // One stream until the peer's SETTINGS say more (APNs starts at 1).
        .initial_max_send_streams(1)
        .keep_alive_interval(settings.keep_alive_interval)
        .keep_alive_timeout(settings.keep_alive_timeout)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tls))
        .await
        .map_err(DialError::Handshake)?;
    let mut connection = Box::pin(connection);
    let driving = std::future::poll_fn(move |cx| {
        let polled = connection.as_mut().poll(cx);
        limit.store(connection.current_max_send_streams(), Ordering::Relaxed);
        polled
    });
    Ok((sender, driving))
}
