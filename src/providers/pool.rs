//! K pooled connections to one push-service origin, shared by every provider: HTTP/2, or
//! HTTP/1.1 keep-alive where the server speaks only that ([`protocol`]).
//!
//! A client library's pool would hide what a push sender must see (the peer's stream limit,
//! GOAWAY, which connection a stream is on), so the pool is ours, over one HTTP/2 connection
//! per slot — spoken with `h2` ([`http2`]: no task per request) or with ringcast's own client
//! ([`driver`]: APNs, by `http2_client`), the same contract for both — or one hyper HTTP/1.1
//! connection:
//!
//! - **K slots**, each with a task that dials (TCP, TLS with ALPN, the HTTP handshake),
//!   drives the connection, and dials again when it ends — at once after a clean end, after a
//!   full-jitter backoff after a failure, so a dead host is not hammered while the other
//!   slots take the load.
//! - **HTTP/1.1 where the server picks it.** A pool that offers `h2` and `http/1.1`
//!   ([`Protocols::Http2OrHttp1`]) speaks what the server chose. An HTTP/1.1 connection
//!   carries one request at a time, so once the origin is seen to speak HTTP/1.1 the pool
//!   grows to `http1_connections` slots (a bound per origin); the extra slots, and every
//!   HTTP/1.1 slot whose connection the server closed, dial again only when a request finds
//!   no free connection (idle keep-alive connections are the server's to close, and no
//!   PING exists to keep them). Timeouts, the SSRF guard, the metrics and the wait for a
//!   free connection are the same for both.
//! - **The peer's stream limit is honoured by us**, not only by h2: each slot reads
//!   `SETTINGS_MAX_CONCURRENT_STREAMS` as the connection is driven, and [`Pool::acquire`]
//!   hands out a stream only where one is free (least-loaded connection first). Until the
//!   peer's SETTINGS arrive a connection allows one stream (APNs advertises 1 until the first
//!   valid request), so nothing is refused for guessing. The excess waits in the provider's
//!   priority queues, where priority still counts, not in h2's FIFO; when the peer raises its
//!   limit, every waiting push is woken (a freed stream wakes only one).
//! - **GOAWAY drains**: a stream refused by a GOAWAY marks its connection draining — no new
//!   streams on it, the open ones finish — and the slot dials a fresh connection once the old
//!   one closes. Such a stream was never processed ([`SendError::NotSent`]), so it is re-sent
//!   on another connection without any risk of a duplicate.
//! - **Retiring** ([`Pool::retire`]): a reload that changes the credential a connection is
//!   bound to (an APNs client certificate; an APNs provider token, which Apple lets a
//!   connection replace only every 20 minutes) drains every connection the same way and
//!   dials the replacements with the new TLS settings; streams in flight finish on the old
//!   connections.
//! - **A credential bound to the connection** ([`bound`]): every connection has a cell the
//!   service fills as streams are leased on it; APNs keeps there the provider token the
//!   connection carries, which Apple lets it change only every 20 minutes.
//! - **Idle connections are pinged** (HTTP/2 PING every `keep_alive_interval`, also while
//!   idle); a PING not answered within `keep_alive_timeout` closes the connection, which the
//!   slot then replaces. Push services drop idle connections silently otherwise.

pub mod answer_fields;
pub mod bound;
mod connection;
mod driver;
pub mod frame;
pub mod guard;
pub mod hpack;
pub mod http2;
pub mod protocol;
pub mod request;
pub mod request_block;
pub mod session;
pub mod tls;

pub use answer_fields::AnswerFields;
pub use bound::{Bound, BoundCredential};
pub use protocol::{Http2Client, Protocol, Protocols};
pub use request::{Fields, OwnField, Path, Request, SharedFields};

use crate::metrics::{self, ConnectionState};
use crate::vocab::Platform;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use protocol::Sender;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The largest response body read; push services answer with a few hundred bytes of JSON at
/// most, so anything bigger is cut off rather than buffered.
const RESPONSE_BODY_LIMIT: usize = 16 * 1024;

/// How the pool keeps its connections.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSettings {
    /// K: connections kept open to the origin.
    pub connections: usize,
    /// How long dialling (TCP + TLS + HTTP/2 handshake) may take.
    pub connect_timeout: Duration,
    /// Send an HTTP/2 PING after this much silence, also on an idle connection.
    pub keep_alive_interval: Duration,
    /// Close the connection when a PING is not answered within this.
    pub keep_alive_timeout: Duration,
    /// The first reconnect backoff window after a failed dial; it doubles per failure.
    pub reconnect_base: Duration,
    /// The largest reconnect backoff window.
    pub reconnect_max: Duration,
    /// Our own cap on streams per connection, below whatever the peer advertises.
    pub max_streams_per_connection: usize,
    /// What the pool offers in ALPN: `h2` only (APNs, FCM's send endpoint), or `h2` and
    /// `http/1.1` (token endpoints, WNS channel hosts, Web Push origins).
    pub protocols: Protocols,
    /// The most connections to the origin once it is seen to speak HTTP/1.1 (one request
    /// each at a time); never fewer than `connections`.
    pub http1_connections: usize,
    /// Which HTTP/2 implementation the connections speak with.
    pub http2_client: Http2Client,
    /// The push service, for `ringcast_connections{provider,state}`; `None` counts nothing
    /// (tests of the pool alone).
    pub provider: Option<Platform>,
    /// For origins a client supplied (Web Push endpoints): resolve the host, refuse
    /// internal addresses, connect to the vetted address. `None` for the configured push
    /// services (APNs, FCM), whose hosts come from the operator.
    pub guard: Option<guard::AddressGuard>,
    /// The answers' header fields the provider reads, kept by ringcast's own HTTP/2 client;
    /// it checks and drops the rest ([`answer_fields`]).
    pub answer_fields: AnswerFields,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            connections: 2,
            connect_timeout: Duration::from_secs(5),
            keep_alive_interval: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
            reconnect_base: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            max_streams_per_connection: 1000,
            protocols: Protocols::Http2,
            http1_connections: 4,
            http2_client: Http2Client::H2,
            provider: None,
            guard: None,
            answer_fields: AnswerFields::All,
        }
    }
}

/// Where the pool connects: the origin of a base URL, and whom to trust there.
#[derive(Clone, Debug)]
pub struct Origin {
    /// `host:port`, for the TCP connection.
    pub address: String,
    /// The host alone (no brackets), resolved by the SSRF guard.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The TLS server name (a DNS name or an IP address).
    pub server_name: ServerName<'static>,
    /// `https://host[:port]`, the scheme and authority of every request URI.
    pub base: String,
    /// The authority of `base`, parsed once: the `:authority` of every [`Fields`] request,
    /// joined to its path for the clients that need a whole URI.
    pub authority: http::uri::Authority,
    /// TLS settings: the roots to trust (the pool sets the ALPN ids it offers).
    pub tls: Arc<ClientConfig>,
}

/// Why a base URL cannot be an origin.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    /// Not an `https://host[:port]` URL.
    #[error("push service URL {0:?} must be https://host[:port]")]
    NotHttps(String),
    /// The host cannot be a TLS server name.
    #[error("push service URL {0:?} has a host that cannot be a TLS server name")]
    BadHost(String),
}

/// The `host[:port]` of an `https` URL with its path, if any, split off (a token endpoint has
/// one); `None` for anything else.
pub fn https_authority(url: &str) -> Option<(http::uri::Authority, http::uri::PathAndQuery)> {
    let parts = url.parse::<http::Uri>().ok()?.into_parts();
    if parts.scheme != Some(http::uri::Scheme::HTTPS) {
        return None;
    }
    let path = parts
        .path_and_query
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    Some((parts.authority?, path))
}

impl Origin {
    /// The origin of `url` (`https://host[:port]`, default port 443), trusting `tls`.
    pub fn parse(url: &str, tls: Arc<ClientConfig>) -> Result<Origin, OriginError> {
        let Some((authority, _path)) = https_authority(url) else {
            return Err(OriginError::NotHttps(url.to_owned()));
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| OriginError::BadHost(url.to_owned()))?;
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Origin {
            address,
            host: host.to_owned(),
            port,
            server_name,
            base: format!("https://{authority}"),
            authority,
            tls,
        })
    }
}

/// Why no stream could be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// No connection had a free stream before the wait ended (all down, or all busy).
    #[error("no connection had a free stream in time")]
    NoStream,
    /// The pool was closed (the node is stopping).
    #[error("the connection pool is closed")]
    Closed,
}

/// Why a request got no answer. The difference between the two decides whether re-sending
/// can duplicate a push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The push service never processed the request (stream refused, above a GOAWAY's last
    /// stream id, or the connection closed before it was written): re-sending is safe.
    #[error("not sent: {0}")]
    NotSent(&'static str),
    /// The request went out but its answer was lost (connection reset, stream reset, PING
    /// timeout): re-sending may deliver the push twice, so such re-sends are counted.
    #[error("answer lost: {0}")]
    Lost(&'static str),
    /// The request went out but no answer came within the time the sender gave it
    /// ([`Stream::send_within`]); its stream was reset (over HTTP/1.1, its connection
    /// closed). As with [`SendError::Lost`], the service may have processed it.
    #[error("no answer in time")]
    TimedOut,
}

impl SendError {
    /// The metric label (`retries_total{reason}`).
    pub fn label(self) -> &'static str {
        match self {
            SendError::NotSent(reason) | SendError::Lost(reason) => reason,
            SendError::TimedOut => "timeout",
        }
    }
}

/// An answer: status, the headers a provider reads, and the (bounded) body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers: over ringcast's own HTTP/2 client, only those the pool's
    /// [`PoolSettings::answer_fields`] keeps (`Retry-After`, WNS' error description).
    pub headers: http::HeaderMap,
    /// The body, at most 16 KiB.
    pub body: Bytes,
}

/// A connection's phase, as `/metrics` shows it (`connections{state}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Dialling, or waiting to dial again after a failure.
    Connecting,
    /// Taking new streams.
    Open,
    /// Got a GOAWAY: finishing its open streams, taking no new ones.
    Draining,
    /// An HTTP/1.1 slot without a connection, dialling again only when a request needs one;
    /// not counted in `connections{state}`, since nothing is open or being opened.
    Idle,
}

impl Phase {
    /// The metric label of the phase, if it is counted.
    fn state(self) -> Option<ConnectionState> {
        match self {
            Phase::Connecting => Some(ConnectionState::Connecting),
            Phase::Open => Some(ConnectionState::Open),
            Phase::Draining => Some(ConnectionState::Draining),
            Phase::Idle => None,
        }
    }
}

/// Moves `slot` to `to`, keeping the node's connection gauges in step.
fn set_phase(settings: &PoolSettings, slot: &mut Slot, to: Phase) {
    if slot.phase == to {
        return;
    }
    if let Some(provider) = settings.provider {
        if let Some(from) = slot.phase.state() {
            metrics::connections(provider, from, -1);
        }
        if let Some(to) = to.state() {
            metrics::connections(provider, to, 1);
        }
    }
    slot.phase = to;
}

/// One of the K connections.
struct Slot {
    /// Bumped for every new connection, so a lease of an old one does not touch the new.
    generation: u64,
    /// Where it is in its life.
    phase: Phase,
    /// Streams leased on the current connection.
    in_flight: usize,
    /// The peer's current `SETTINGS_MAX_CONCURRENT_STREAMS`, kept up to date by the task
    /// that drives the connection.
    peer_limit: Arc<AtomicUsize>,
    /// The request handle of the current connection: `None` while connecting, and while an
    /// HTTP/1.1 connection's one request is out.
    sender: Option<Sender>,
    /// What the current (or last) connection speaks.
    protocol: Option<Protocol>,
    /// The credential the current connection carries (APNs provider tokens); a new cell
    /// with every connection.
    bound: Arc<BoundCredential>,
}

impl Slot {
    /// A slot without a connection yet, in `phase`.
    fn new(phase: Phase) -> Slot {
        Slot {
            generation: 0,
            phase,
            in_flight: 0,
            peer_limit: Arc::new(AtomicUsize::new(1)),
            sender: None,
            protocol: None,
            bound: Arc::default(),
        }
    }

    /// Streams this slot can still open.
    fn free(&self, cap: usize) -> usize {
        if self.phase != Phase::Open {
            return 0;
        }
        match &self.sender {
            None => 0,
            Some(Sender::Http1(_)) => usize::from(self.in_flight == 0),
            Some(Sender::Http2(_) | Sender::Ringcast(_)) => {
                let limit = self.peer_limit.load(Ordering::Relaxed).min(cap);
                limit.saturating_sub(self.in_flight)
            }
        }
    }
}

/// The pool's state behind one lock: a handful of slots, touched for a few instructions per
/// stream (a std `Mutex`, never held across an await).
struct State {
    /// The K slots.
    slots: Vec<Slot>,
    /// Set by [`Pool::close`]: no new streams, no reconnects.
    closed: bool,
    /// Whether the slots were already grown to `http1_connections` (the origin spoke
    /// HTTP/1.1 once).
    grown: bool,
}

/// What every handle of a pool shares.
struct Shared {
    /// Where to connect.
    origin: Origin,
    /// The TLS settings new connections dial with (ALPN set); [`Pool::retire`] replaces
    /// them. `origin.tls` is the value at start.
    tls: arc_swap::ArcSwap<ClientConfig>,
    /// How.
    settings: PoolSettings,
    /// The slots.
    state: Mutex<State>,
    /// Woken when a stream frees or a connection opens.
    capacity: Notify,
    /// Woken when the pool closes, so the connection tasks stop.
    closing: Notify,
    /// Woken when a request that found no free stream claimed an idle HTTP/1.1 slot (moved
    /// it to connecting): that slot dials.
    demand: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock is taken over: slots are only ever updated field by field with
        // no invariant spanning a panic point.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A pool's connection counts, for `/metrics` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Connections taking streams.
    pub open: usize,
    /// Slots dialling or waiting to redial.
    pub connecting: usize,
    /// Connections finishing their streams after a GOAWAY.
    pub draining: usize,
    /// Streams in flight over all connections.
    pub in_flight: usize,
    /// Streams that could be opened right now.
    pub free_streams: usize,
    /// HTTP/1.1 slots without a connection, dialling when a request needs one.
    pub idle: usize,
    /// Open connections speaking HTTP/1.1 (the rest speak HTTP/2).
    pub http1: usize,
}

impl std::ops::AddAssign for PoolSnapshot {
    /// Adds another pool's figures: a provider with a dispatcher and pool per origin (WNS
    /// channel hosts, Web Push endpoints) reports the sum of its origins' pools.
    fn add_assign(&mut self, other: PoolSnapshot) {
        self.open += other.open;
        self.connecting += other.connecting;
        self.draining += other.draining;
        self.in_flight += other.in_flight;
        self.free_streams += other.free_streams;
        self.idle += other.idle;
        self.http1 += other.http1;
    }
}

/// K HTTP/2 connections to one origin. Cheap to clone; the connections close when
/// [`Pool::close`] is called (the node stopping) or the last handle is dropped.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
    /// Closes the pool when the last handle goes.
    _closer: Arc<Closer>,
}

/// Closes the pool on drop.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        close(&self.0);
    }
}

fn close(shared: &Shared) {
    shared.lock().closed = true;
    shared.closing.notify_waiters();
    shared.capacity.notify_waiters();
}

/// The origin spoke HTTP/1.1: adds idle slots up to `http1_connections` (once), each
/// dialling when a request needs it. Called by a connection task as its slot opens.
fn grow_for_http1(shared: &Arc<Shared>) {
    let added = {
        let mut state = shared.lock();
        if state.grown || state.closed {
            return;
        }
        state.grown = true;
        let first = state.slots.len();
        let wanted = shared.settings.http1_connections.max(first);
        state
            .slots
            .extend((first..wanted).map(|_| Slot::new(Phase::Idle)));
        first..wanted
    };
    for index in added {
        tokio::spawn(connection::run(Arc::clone(shared), index, true));
    }
}

impl Pool {
    /// Starts K connection tasks to `origin` on the current tokio runtime; streams can be
    /// acquired as soon as the first connection is up.
    pub fn start(mut origin: Origin, settings: PoolSettings) -> Pool {
        origin.tls = tls::offering(&origin.tls, settings.protocols);
        let dial_tls = arc_swap::ArcSwap::new(Arc::clone(&origin.tls));
        let slots = (0..settings.connections.max(1))
            .map(|_| Slot::new(Phase::Connecting))
            .collect();
        let shared = Arc::new(Shared {
            origin,
            tls: dial_tls,
            settings,
            state: Mutex::new(State {
                slots,
                closed: false,
                grown: false,
            }),
            capacity: Notify::new(),
            closing: Notify::new(),
            demand: Notify::new(),
        });
        if let Some(provider) = shared.settings.provider {
            let slots = shared.settings.connections.max(1) as i64;
            metrics::connections(provider, ConnectionState::Connecting, slots);
        }
        for index in 0..shared.settings.connections.max(1) {
            tokio::spawn(connection::run(Arc::clone(&shared), index, false));
        }
        Pool {
            _closer: Arc::new(Closer(Arc::clone(&shared))),
            shared,
        }
    }

    /// Drains every connection (no new streams; the open ones finish, then it closes) and
    /// dials their replacements, with `tls` (its ALPN ids set here) when given: for a
    /// credential bound to the connection that a reload replaced.
    pub fn retire(&self, tls: Option<&Arc<ClientConfig>>) {
        if let Some(tls) = tls {
            let offered = tls::offering(tls, self.shared.settings.protocols);
            self.shared.tls.store(offered);
        }
        let mut state = self.shared.lock();
        for slot in &mut state.slots {
            if slot.phase == Phase::Open {
                set_phase(&self.shared.settings, slot, Phase::Draining);
                // The pool's request handle goes; h2 closes the connection once the
                // streams in flight (each holding a handle of its own) have finished.
                slot.sender = None;
            }
        }
    }

    /// The origin's `https://host[:port]`, to build request URIs.
    pub fn base(&self) -> &str {
        &self.shared.origin.base
    }

    /// A stream on the least-loaded open connection, waiting until `until` for one to free
    /// up or for a connection to come up.
    pub async fn acquire(&self, until: Instant) -> Result<Stream, AcquireError> {
        loop {
            let notified = self.shared.capacity.notified();
            tokio::pin!(notified);
            // Registered before looking, so a stream freed in between is not missed.
            notified.as_mut().enable();
            if let Some(stream) = self.try_acquire()? {
                return Ok(stream);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return Err(AcquireError::NoStream);
            }
        }
    }

    /// A stream if one is free right now.
    pub fn try_acquire(&self) -> Result<Option<Stream>, AcquireError> {
        let cap = self.shared.settings.max_streams_per_connection;
        let mut state = self.shared.lock();
        if state.closed {
            return Err(AcquireError::Closed);
        }
        let best = (0..state.slots.len())
            .map(|index| (index, state.slots[index].free(cap)))
            .filter(|&(_, free)| free > 0)
            .max_by_key(|&(_, free)| free);
        let Some((index, _)) = best else {
            // An idle HTTP/1.1 slot, if there is one, is claimed for this request (moved to
            // connecting under the lock, so one request wakes one slot) and dials.
            let settings = &self.shared.settings;
            let claimed = state
                .slots
                .iter_mut()
                .find(|slot| slot.phase == Phase::Idle)
                .map(|slot| set_phase(settings, slot, Phase::Connecting))
                .is_some();
            drop(state);
            if claimed {
                self.shared.demand.notify_waiters();
            }
            return Ok(None);
        };
        let slot = &mut state.slots[index];
        let sender = match &mut slot.sender {
            Some(Sender::Http2(sender)) => Sender::Http2(sender.clone()),
            Some(Sender::Ringcast(handle)) => Sender::Ringcast(handle.clone()),
            // Moved out: the connection takes no other request until it comes back.
            Some(Sender::Http1(_)) => match slot.sender.take() {
                Some(sender) => sender,
                None => return Ok(None),
            },
            None => return Ok(None),
        };
        slot.in_flight += 1;
        Ok(Some(Stream {
            shared: Arc::clone(&self.shared),
            slot: index,
            generation: slot.generation,
            sender: Some(sender),
            reusable: true,
            bound: Arc::clone(&slot.bound),
        }))
    }

    /// Connection counts right now.
    pub fn snapshot(&self) -> PoolSnapshot {
        let cap = self.shared.settings.max_streams_per_connection;
        let state = self.shared.lock();
        let mut snapshot = PoolSnapshot::default();
        for slot in &state.slots {
            match slot.phase {
                Phase::Connecting => snapshot.connecting += 1,
                Phase::Open => snapshot.open += 1,
                Phase::Draining => snapshot.draining += 1,
                Phase::Idle => snapshot.idle += 1,
            }
            if slot.phase == Phase::Open && slot.protocol == Some(Protocol::Http1) {
                snapshot.http1 += 1;
            }
            snapshot.in_flight += slot.in_flight;
            snapshot.free_streams += slot.free(cap);
        }
        snapshot
    }

    /// Stops taking streams and closes every connection (their open streams end with the
    /// connection).
    pub fn close(&self) {
        close(&self.shared);
    }
}

/// One leased stream (on HTTP/1.1: the connection itself). Sending consumes it; dropping it
/// unsent gives it back.
pub struct Stream {
    shared: Arc<Shared>,
    slot: usize,
    generation: u64,
    /// Taken by `send`; an HTTP/1.1 handle goes back to the slot on drop once `reusable`.
    sender: Option<Sender>,
    /// Nothing was sent, or the answer was read in full: an HTTP/1.1 connection may carry
    /// the next request. A request abandoned halfway (its timeout, or its future dropped)
    /// leaves its connection unusable: hyper closes it, the slot goes idle and wakes the
    /// requests waiting for a stream, and the first of them dials a fresh one.
    reusable: bool,
    /// The credential of the stream's connection.
    bound: Arc<BoundCredential>,
}

impl Stream {
    /// The HTTP the stream's connection speaks.
    pub fn protocol(&self) -> Option<Protocol> {
        self.sender.as_ref().map(Sender::protocol)
    }

    /// The credential the stream's connection carries, for a service that binds its
    /// credential to the connection ([`bound`]).
    pub fn bound_credential(&self) -> &BoundCredential {
        &self.bound
    }

    /// Sends `request` (on the pool's origin: an `http::Request`'s URI is absolute) and reads
    /// the answer, however long it takes. A GOAWAY seen here marks the connection draining.
    pub fn send(
        self,
        request: impl Into<Request>,
    ) -> impl Future<Output = Result<Answer, SendError>> {
        self.exchange(request.into(), None)
    }

    /// As [`Stream::send`], giving up after `timeout` ([`SendError::TimedOut`]: the stream
    /// is reset). Over ringcast's own client the connection keeps the push's deadline and
    /// times it out with the others it holds, where a `tokio` timer per push cost each push a
    /// timer-wheel entry (docs/performance.md, "A push's send timeout kept by its
    /// connection"). Not an `async fn` (nor is [`Stream::send`]): one would hold the stream
    /// and the request beside the exchange's own copies, and every push's delivery future
    /// (moved into a box when it starts) would carry both.
    pub fn send_within(
        self,
        request: impl Into<Request>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Answer, SendError>> {
        self.exchange(request.into(), Some(timeout))
    }

    /// [`Stream::send`] and [`Stream::send_within`]: one request on the stream's connection,
    /// given up after `timeout` if there is one.
    async fn exchange(
        mut self,
        request: Request,
        timeout: Option<Duration>,
    ) -> Result<Answer, SendError> {
        self.reusable = false;
        let authority = &self.shared.origin.authority;
        // Only the own client writes a `Fields` request's block itself; the others need it
        // as an `http::Request` (one the `http` crate refuses was never sent).
        let unsent = || SendError::NotSent("connection_closed");
        // Taken, not cloned: cloning an h2 handle takes the connection's lock to count it.
        // The `h2` crate's and HTTP/1.1 exchanges are boxed, each with its timer: their
        // futures are over a kilobyte, and inline they sized every delivery's future, the
        // own client's too (each push's delivery is moved into a box of its own when it
        // starts).
        match self.sender.take() {
            Some(Sender::Http2(sender)) => {
                let request = request.into_http(authority).ok_or_else(unsent)?;
                match Box::pin(within(timeout, http2::exchange(sender, request))).await {
                    Some(answered) => answered.map_err(|failed| self.classify_http2(&failed)),
                    None => Err(SendError::TimedOut),
                }
            }
            Some(Sender::Http1(sender)) => {
                let request = request.into_http(authority).ok_or_else(unsent)?;
                Box::pin(within(timeout, self.send_http1(sender, request)))
                    .await
                    .unwrap_or(Err(SendError::TimedOut))
            }
            Some(Sender::Ringcast(handle)) => {
                let deadline = timeout.map(|timeout| Instant::now() + timeout);
                handle
                    .send(request, authority, deadline)
                    .await
                    .inspect_err(|error| {
                        if *error == SendError::NotSent("goaway") {
                            self.mark_draining();
                        }
                    })
            }
            None => Err(unsent()),
        }
    }

    /// The HTTP/1.1 half of [`Stream::send`]: the connection goes back to the slot on drop
    /// only if its answer was read in full.
    async fn send_http1(
        &mut self,
        mut sender: http1::SendRequest<Full<Bytes>>,
        request: http::Request<Bytes>,
    ) -> Result<Answer, SendError> {
        // The previous answer was read, but hyper may not have seen the connection ready
        // again yet; a connection the server closed fails here, unsent.
        if sender.ready().await.is_err() {
            return Err(SendError::NotSent("connection_closed"));
        }
        let response = sender
            .send_request(protocol::origin_form(request))
            .await
            .map_err(|error| classify_http1(&error))?;
        let (answer, whole) = read_http1_answer(response).await;
        self.reusable = whole;
        self.sender = Some(Sender::Http1(sender));
        Ok(answer)
    }

    /// What a failed HTTP/2 exchange means for re-sending.
    fn classify_http2(&self, failed: &http2::Failed) -> SendError {
        let error = match failed {
            http2::Failed::NotSent(error) if error.is_go_away() && error.is_remote() => {
                self.mark_draining();
                return SendError::NotSent("goaway");
            }
            http2::Failed::NotSent(_) => return SendError::NotSent("connection_closed"),
            http2::Failed::Sent(error) => error,
        };
        if error.is_go_away() && error.is_remote() {
            // Above the GOAWAY's last stream id: never processed.
            self.mark_draining();
            SendError::NotSent("goaway")
        } else if error.is_reset() && error.reason() == Some(h2::Reason::REFUSED_STREAM) {
            SendError::NotSent("refused_stream")
        } else if error.is_reset() {
            SendError::Lost("stream_reset")
        } else {
            SendError::Lost("connection_lost")
        }
    }

    /// Stops new streams on this stream's connection (it got a GOAWAY).
    fn mark_draining(&self) {
        mark_draining(&self.shared, self.slot, self.generation);
    }
}

/// Stops new streams on slot `index`'s connection of `generation` (it got a GOAWAY), if that
/// connection is still the slot's and open.
fn mark_draining(shared: &Shared, index: usize, generation: u64) {
    let mut state = shared.lock();
    let slot = &mut state.slots[index];
    if slot.generation == generation && slot.phase == Phase::Open {
        set_phase(&shared.settings, slot, Phase::Draining);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            let slot = &mut state.slots[self.slot];
            if slot.generation == self.generation {
                slot.in_flight = slot.in_flight.saturating_sub(1);
                // An HTTP/1.1 connection goes back for the next request, if it still stands
                // and its last answer was read in full.
                if let Some(Sender::Http1(sender)) = self.sender.take()
                    && self.reusable
                    && slot.phase == Phase::Open
                    && slot.sender.is_none()
                    && !sender.is_closed()
                {
                    slot.sender = Some(Sender::Http1(sender));
                }
            }
        }
        self.shared.capacity.notify_one();
    }
}

/// `exchange`'s output, or `None` if `timeout` passed first (dropping it: the `h2` crate
/// resets the stream, hyper's HTTP/1.1 connection is closed).
async fn within<T>(timeout: Option<Duration>, exchange: impl Future<Output = T>) -> Option<T> {
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, exchange).await.ok(),
        None => Some(exchange.await),
    }
}

/// What a failed HTTP/1.1 request means for re-sending: cancelled or closed before it was
/// written (hyper's own errors), else lost.
fn classify_http1(error: &hyper::Error) -> SendError {
    if error.is_canceled() || error.is_closed() {
        SendError::NotSent("connection_closed")
    } else {
        SendError::Lost("connection_lost")
    }
}

/// The answer to an HTTP/1.1 request, its body read up to the limit, and whether it was read
/// in full (the connection may then carry the next request). A body cut short is read as
/// empty: the status decides.
async fn read_http1_answer(response: http::Response<hyper::body::Incoming>) -> (Answer, bool) {
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let (body, whole) = match Limited::new(body, RESPONSE_BODY_LIMIT).collect().await {
        Ok(collected) => (collected.to_bytes(), true),
        Err(_) => (Bytes::new(), false),
    };
    let answer = Answer {
        status,
        headers: parts.headers,
        body,
    };
    (answer, whole)
}

// Against the simulator's HTTP/2 servers (its GOAWAYs, resets and stalls): built with it.
#[cfg(all(test, feature = "simulator"))]
mod tests;
