//! One slot's life: dial, drive the connection while keeping its peer stream limit current,
//! and dial again when it ends — at once after a clean end of an HTTP/2 connection (a
//! drained GOAWAY, a PING timeout), after a jittered backoff when dialling fails, and for
//! HTTP/1.1 only when a request finds no free connection (the server closes idle
//! keep-alive connections; redialling each at once would only feed its idle timer).

use super::protocol::{Protocol, Sender};
use super::{Phase, Shared, grow_for_http1, mark_draining, set_phase};
use super::{driver, http2};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Keeps slot `index` of the pool connected until the pool closes; an `idle` slot (an
/// HTTP/1.1 slot beyond the first K) waits for a request before it dials.
pub(super) async fn run(shared: Arc<Shared>, index: usize, idle: bool) {
    keep_connected(&shared, index, idle).await;
    // The pool closed: this slot no longer counts in any state.
    if let Some(provider) = shared.settings.provider {
        let phase = shared.lock().slots[index].phase;
        if let Some(state) = phase.state() {
            crate::metrics::connections(provider, state, -1);
        }
    }
}

/// Dials, drives and redials slot `index` until the pool closes.
async fn keep_connected(shared: &Arc<Shared>, index: usize, mut idle: bool) {
    let mut failures: u32 = 0;
    let mut rng = fastrand::Rng::new();
    loop {
        if idle && !await_demand(shared, index).await {
            return;
        }
        idle = false;
        if shared.lock().closed {
            return;
        }
        {
            let mut state = shared.lock();
            set_phase(&shared.settings, &mut state.slots[index], Phase::Connecting);
        }
        let limit = Arc::new(AtomicUsize::new(1));
        let tls = shared.tls.load_full();
        // The generation the connection will have once it is the slot's (only this task
        // changes it): a GOAWAY the own client reads marks that connection draining.
        let generation = shared.lock().slots[index].generation + 1;
        let going_away = {
            let shared = Arc::clone(shared);
            move || mark_draining(&shared, index, generation)
        };
        let dialled = tokio::time::timeout(
            shared.settings.connect_timeout,
            dial(shared, Arc::clone(&tls), Arc::clone(&limit), going_away),
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
        if !Arc::ptr_eq(&tls, &shared.tls.load()) {
            // Retired while dialling: this connection carries the replaced credential.
            continue;
        }
        let protocol = sender.protocol();
        {
            let mut state = shared.lock();
            let slot = &mut state.slots[index];
            slot.generation += 1;
            set_phase(&shared.settings, slot, Phase::Open);
            slot.in_flight = 0;
            slot.peer_limit = Arc::clone(&limit);
            slot.sender = Some(sender);
            slot.protocol = Some(protocol);
            slot.bound = Arc::default();
        }
        tracing::debug!(origin = %shared.origin.base, slot = index, ?protocol,
            "push service connected");
        if protocol == Protocol::Http1 {
            grow_for_http1(shared);
        }
        shared.capacity.notify_waiters();

        // Registered before the check, so a close in between is not missed.
        let closing = shared.closing.notified();
        if shared.lock().closed {
            return;
        }
        tokio::select! {
            result = waking_on_raises(driving, &limit, shared) => {
                if let Err(error) = result {
                    tracing::info!(origin = %shared.origin.base, slot = index, %error,
                        "push service connection ended");
                }
            }
            () = closing => {}
        }
        // An HTTP/1.1 slot rests until a request needs it; an HTTP/2 one redials at once.
        idle = protocol == Protocol::Http1;
        {
            let mut state = shared.lock();
            let slot = &mut state.slots[index];
            let next = if idle { Phase::Idle } else { Phase::Connecting };
            set_phase(&shared.settings, slot, next);
            slot.sender = None;
        }
        if idle {
            // A request already waiting for a stream claims the idle slot and dials it; it
            // would otherwise wait out its deadline (the connection it waited on had closed
            // after an abandoned request, with nothing else to wake it).
            shared.capacity.notify_waiters();
        }
    }
}

/// Drives the connection and wakes every push waiting for a stream whenever the peer raises
/// its stream limit: a freed stream wakes only one waiter, so pushes queued while APNs allowed
/// one stream (until the connection's first valid provider token) would otherwise go out one
/// round trip at a time after it allowed hundreds.
async fn waking_on_raises(
    mut driving: Driving,
    limit: &AtomicUsize,
    shared: &Shared,
) -> Result<(), Ended> {
    let mut known = limit.load(Ordering::Relaxed);
    std::future::poll_fn(|cx| {
        let polled = driving.as_mut().poll(cx);
        let now = limit.load(Ordering::Relaxed);
        if now > known {
            shared.capacity.notify_waiters();
        }
        known = now;
        polled
    })
    .await
}

/// Waits until a request that found no free connection claims slot `index` (moves it out
/// of [`Phase::Idle`]: true) or the pool closes (false).
async fn await_demand(shared: &Shared, index: usize) -> bool {
    loop {
        let demand = shared.demand.notified();
        let closing = shared.closing.notified();
        tokio::pin!(demand, closing);
        // Registered before looking, so a claim or a close in between is not missed.
        demand.as_mut().enable();
        closing.as_mut().enable();
        {
            let state = shared.lock();
            if state.closed {
                return false;
            }
            if state.slots[index].phase != Phase::Idle {
                return true;
            }
        }
        tokio::select! {
            () = demand => {}
            () = closing => return false,
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
    #[error("the server did not agree to {offered} (ALPN)")]
    NoProtocol {
        /// What was offered, for the log.
        offered: &'static str,
    },
    #[error("HTTP/1.1 handshake: {0}")]
    Http1Handshake(hyper::Error),
    #[error("HTTP/2 handshake: {0}")]
    Http2Handshake(h2::Error),
    #[error("HTTP/2 handshake: {0}")]
    RingcastHandshake(driver::HandshakeError),
}

/// Why a connection ended, whichever its protocol.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("{0}")]
    Http1(hyper::Error),
    #[error("{0}")]
    Http2(http2::Ended),
    #[error("{0}")]
    Ringcast(driver::Ended),
}

/// The future that drives one connection, whichever its protocol.
type Driving = Pin<Box<dyn Future<Output = Result<(), Ended>> + Send>>;

/// TCP, TLS with the pool's ALPN ids, and the handshake of the protocol the server picked.
/// Returns the request handle and the future that drives the connection; for HTTP/2 it also
/// keeps `limit` at the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` (HTTP/1.1: 1).
async fn dial(
    shared: &Shared,
    tls: Arc<rustls::ClientConfig>,
    limit: Arc<AtomicUsize>,
    going_away: impl FnOnce() + Send + 'static,
) -> Result<(Sender, Driving), DialError> {
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
    let tls = TlsConnector::from(tls)
        .connect(origin.server_name.clone(), tcp)
        .await
        .map_err(DialError::Tls)?;
    let offered = shared.settings.protocols;
    let Some(protocol) = Protocol::negotiated(offered, tls.get_ref().1.alpn_protocol()) else {
        return Err(DialError::NoProtocol {
            offered: match offered {
                super::Protocols::Http2 => "HTTP/2",
                super::Protocols::Http2OrHttp1 => "HTTP/2 or HTTP/1.1",
            },
        });
    };
    if protocol == Protocol::Http1 {
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(tls))
            .await
            .map_err(DialError::Http1Handshake)?;
        limit.store(1, Ordering::Relaxed);
        let driving = async move { connection.await.map_err(Ended::Http1) };
        return Ok((Sender::Http1(sender), Box::pin(driving)));
    }
    if shared.settings.http2_client == super::Http2Client::Ringcast {
        let (handle, connection) =
            driver::handshake(tls, &shared.settings, limit, Box::new(going_away))
                .await
                .map_err(DialError::RingcastHandshake)?;
        let driving = async move { connection.await.map_err(Ended::Ringcast) };
        return Ok((Sender::Ringcast(handle), Box::pin(driving)));
    }
    let (sender, connection) = http2::handshake(tls, &shared.settings, limit)
        .await
        .map_err(DialError::Http2Handshake)?;
    let driving = async move { connection.await.map_err(Ended::Http2) };
    Ok((Sender::Http2(sender), Box::pin(driving)))
}
