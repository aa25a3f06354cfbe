//! ringcast's own HTTP/2 client connection: the I/O around a [`Session`], the last part of
//! the client that replaces `h2` on the APNs path (docs/performance.md, "HPACK of our own").
//!
//! One task per connection (the pool's slot task polls the future [`handshake`] returns)
//! owns the TLS stream; the session sits behind a lock it shares with the pushes:
//!
//! - **A push opens its own stream** ([`Handle::send`]): under the lock it encodes its header
//!   block ([`super::request_block`]) into a buffer the connection keeps, queues its frames in
//!   the session's output, leaves a oneshot for the answer, and wakes the connection's task
//!   only if nothing else has since that task last wrote. Pushes that arrive while the task is
//!   busy share its next write: one TLS write, and usually one TCP segment, for many pushes.
//! - **The task reads and writes in one poll**, never one waiting on the other (a peer that
//!   stops reading while its answers pile up cannot deadlock it): what it reads goes through
//!   the session and each whole answer to its push; what the session queued is written.
//! - **Ends**: an answer, a stream reset (`REFUSED_STREAM` or above a GOAWAY's last stream:
//!   [`SendError::NotSent`], safe to send elsewhere), the connection ending (every waiting
//!   push: [`SendError::Lost`]), or the push's deadline passing ([`SendError::TimedOut`]).
//!   A push that gives up (its future dropped) resets its stream, as one that timed out does.
//! - **Deadlines**: a push leaves its deadline with its answer slot, and the task's one
//!   timer waits for the soonest of them (or the next PING, if sooner), where a `tokio`
//!   timer per push cost every push a timer-wheel entry and its removal. Under steady load
//!   the soonest deadline belongs to a push sent moments ago, so the timer fires about once
//!   per request timeout, finds nothing due, and moves on; only a new deadline sooner than
//!   every other re-arms it.
//! - **The peer's stream limit** is published to the pool as it changes. A GOAWAY sets it to
//!   0 and marks the slot draining (`connections{state="draining"}`) even when no stream of
//!   ours was refused by it; the connection closes once its streams have finished, as it does
//!   once no handle is left (the pool retired it).
//! - **Keep-alive**: a PING every `keep_alive_interval`, the connection ended when one is not
//!   answered within `keep_alive_timeout` (as the `h2` path does).
//! - **The handshake waits for the peer's SETTINGS**: APNs announces its stream limit there,
//!   and the session opens no stream before it.
//!
//! Tested with the pool: its HTTP/2 contract with each client (`pool/tests.rs`), and what
//! only this client does (`pool/tests/ringcast.rs`).

use super::frame::{self, ErrorCode, FrameError};
use super::hpack::encoder;
use super::session::{Event, OpenError, OurSettings, Session, StreamIds};
use super::{Answer, PoolSettings, RESPONSE_BODY_LIMIT, Request, SendError};
use crate::outbox::Outbox;
use bytes::BytesMut;
use http::uri::Authority;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// The largest header block accepted in an answer (as on the `h2` path).
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Bytes read from the stream at a time: one TLS record's plaintext.
const READ_CHUNK: usize = 16 * 1024;

/// Called once when the peer sends GOAWAY: the pool marks the connection draining.
pub(super) type GoingAway = Box<dyn FnOnce() + Send>;

/// The data of our PINGs.
const PING: [u8; 8] = *b"ringcast";

/// Why the handshake failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection before its SETTINGS.
    #[error("the peer closed the connection before its SETTINGS")]
    Closed,
    /// The peer sent GOAWAY before the connection was of any use.
    #[error("the peer sent GOAWAY during the handshake")]
    GoingAway,
    /// The peer broke the protocol.
    #[error("{} ({:?})", .0.what, .0.code)]
    Protocol(FrameError),
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum Ended {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer broke the protocol: our GOAWAY was sent.
    #[error("{} ({:?})", .0.what, .0.code)]
    Protocol(FrameError),
    /// A PING went unanswered: the peer (or the path to it) is wedged.
    #[error("no answer to a PING within {0:?}")]
    PingTimeout(Duration),
}

/// A push waiting for its answer.
struct Waiter {
    /// Where its answer goes.
    answer: oneshot::Sender<Result<Answer, SendError>>,
    /// When it stops waiting ([`SendError::TimedOut`]); `None`: never.
    deadline: Option<Instant>,
}

/// Deadlines closer together than this are timed out in one wake: a peer that stops
/// answering a burst of pushes costs one wake per millisecond, not one per push, and each
/// wake looks at every waiting push.
const DEADLINE_SLACK: Duration = Duration::from_millis(1);

/// What the pushes and the connection's task share.
struct Connection {
    inner: Mutex<Inner>,
    /// Live [`Handle`]s: the pool's and one per stream being sent. At 0 the connection
    /// closes once its streams have finished.
    handles: AtomicUsize,
    /// The peer's stream limit, as the pool reads it.
    limit: Arc<AtomicUsize>,
}

struct Inner {
    session: Session,
    waiters: StreamIds<Waiter>,
    /// The connection task's waker, taken by the first push that queues output after the
    /// task's last write.
    io: Option<Waker>,
    /// The soonest deadline of a waiting push, no sooner than [`DEADLINE_SLACK`] after the
    /// task last timed pushes out: the task's timer waits for it. `None`: no push has one.
    earliest: Option<Instant>,
    /// A push's header block, encoded here so that no push allocates one.
    block: Vec<u8>,
    /// No block was sent yet: the first begins with a table size update to 0.
    first_block: bool,
    /// The task is gone: nothing more is read or written.
    ended: bool,
    /// The peer sent GOAWAY.
    going_away: bool,
}

impl Connection {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Taken over when poisoned: every update is a few fields with no invariant spanning
        // a panic point, and the waiting pushes must still be answered.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands every event the session produced to its push. Returns whether our PING was
    /// answered.
    fn dispatch(&self, inner: &mut Inner) -> bool {
        let mut pong = false;
        while let Some(event) = inner.session.next_event() {
            match event {
                Event::Answer {
                    stream,
                    status,
                    headers,
                    body,
                } => {
                    if let Some(waiter) = inner.waiters.remove(&stream) {
                        let answer = Answer {
                            status,
                            headers,
                            body,
                        };
                        let _ = waiter.answer.send(Ok(answer));
                    }
                }
                Event::Reset {
                    stream,
                    code,
                    unprocessed,
                } => {
                    if let Some(waiter) = inner.waiters.remove(&stream) {
                        let _ = waiter.answer.send(Err(reset(code, unprocessed)));
                    }
                }
                Event::GoAway { .. } => inner.going_away = true,
                Event::PingAck(data) => pong |= data == PING,
            }
        }
        let limit = if inner.going_away {
            0
        } else {
            inner
                .session
                .peer()
                .max_concurrent_streams
                .map_or(usize::MAX, |limit| limit as usize)
        };
        self.limit.store(limit, Ordering::Relaxed);
        pong
    }
}

/// Answers every push whose deadline is at or before `now` with [`SendError::TimedOut`] and
/// resets its stream; keeps the next deadline in `inner.earliest`.
fn expire(inner: &mut Inner, now: Instant) {
    let Inner {
        waiters, session, ..
    } = inner;
    let due = |_: &u32, waiter: &mut Waiter| waiter.deadline.is_some_and(|at| at <= now);
    for (stream, waiter) in waiters.extract_if(due) {
        session.cancel(stream);
        let _ = waiter.answer.send(Err(SendError::TimedOut));
    }
    let next = waiters.values().filter_map(|waiter| waiter.deadline).min();
    inner.earliest = next.map(|at| at.max(now + DEADLINE_SLACK));
}

/// What a stream reset means for sending again.
fn reset(code: ErrorCode, unprocessed: bool) -> SendError {
    match (unprocessed, code) {
        (true, ErrorCode::REFUSED_STREAM) => SendError::NotSent("refused_stream"),
        // Above a GOAWAY's last stream id: never processed.
        (true, _) => SendError::NotSent("goaway"),
        (false, _) => SendError::Lost("stream_reset"),
    }
}

/// A connection's request handle: cloned into every stream the pool hands out.
pub(super) struct Handle {
    connection: Arc<Connection>,
}

impl Clone for Handle {
    fn clone(&self) -> Handle {
        self.connection.handles.fetch_add(1, Ordering::Relaxed);
        Handle {
            connection: Arc::clone(&self.connection),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.connection.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: the task closes the connection once its streams are done.
            let io = self.connection.lock().io.take();
            if let Some(io) = io {
                io.wake();
            }
        }
    }
}

impl Handle {
    /// Sends `request` (an `http::Request`'s URI absolute `https`; a [`Request::Fields`]
    /// goes to `authority`) on a new stream and waits for its answer until `deadline`.
    pub(super) async fn send(
        self,
        request: Request,
        authority: &Authority,
        deadline: Option<Instant>,
    ) -> Result<Answer, SendError> {
        let (answer, answered) = oneshot::channel();
        let (stream, io) = {
            let mut guard = self.connection.lock();
            let inner = &mut *guard;
            if inner.ended {
                return Err(SendError::NotSent("connection_closed"));
            }
            inner.block.clear();
            if inner.first_block {
                encoder::table_size_update(&mut inner.block, 0);
            }
            if request.write_block(&mut inner.block, authority).is_none() {
                // Not an absolute https URI: a caller's mistake, nothing was sent.
                return Err(SendError::NotSent("connection_closed"));
            }
            let stream = match inner.session.open(&inner.block, request.into_body()) {
                Ok(stream) => stream,
                Err(OpenError::Closing) => return Err(SendError::NotSent("goaway")),
                // The peer lowered its limit since the pool counted a free stream.
                Err(OpenError::NoStream) => return Err(SendError::NotSent("refused_stream")),
            };
            inner.first_block = false;
            inner.waiters.insert(stream, Waiter { answer, deadline });
            // The task reads `earliest` whenever it is woken, and this push wakes it (or
            // finds it already woken) to write its frames.
            if let Some(at) = deadline
                && inner.earliest.is_none_or(|earliest| at < earliest)
            {
                inner.earliest = Some(at);
            }
            (stream, inner.io.take())
        };
        if let Some(io) = io {
            io.wake();
        }
        let mut open = OpenStream {
            connection: &self.connection,
            stream: Some(stream),
        };
        let answer = answered
            .await
            .unwrap_or(Err(SendError::Lost("connection_lost")));
        open.stream = None;
        answer
    }
}

/// A stream whose answer is awaited: dropped before it (the push gave up), it is reset.
struct OpenStream<'a> {
    connection: &'a Connection,
    stream: Option<u32>,
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        let Some(stream) = self.stream else {
            return;
        };
        let io = {
            let mut inner = self.connection.lock();
            if inner.waiters.remove(&stream).is_none() {
                return;
            }
            inner.session.cancel(stream);
            inner.io.take()
        };
        if let Some(io) = io {
            io.wake();
        }
    }
}

/// The HTTP/2 handshake over `io`: our preface and SETTINGS out, the peer's SETTINGS in.
/// Returns the connection's handle and the future that drives it, which keeps `limit` at the
/// peer's `SETTINGS_MAX_CONCURRENT_STREAMS` and PINGs the peer per `settings`.
pub(super) async fn handshake<T>(
    mut io: T,
    settings: &PoolSettings,
    limit: Arc<AtomicUsize>,
    going_away: GoingAway,
) -> Result<
    (
        Handle,
        impl Future<Output = Result<(), Ended>> + Send + use<T>,
    ),
    HandshakeError,
>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::new(OurSettings {
        window: 1 << 20,
        max_header_list_size: MAX_HEADER_LIST_SIZE,
        max_body: RESPONSE_BODY_LIMIT,
        answer_fields: settings.answer_fields,
    });
    io.write_all(session.output()).await?;
    io.flush().await?;
    session.output().clear();
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    while !session.settled() {
        if io.read_buf(&mut input).await? == 0 {
            return Err(HandshakeError::Closed);
        }
        session
            .receive(&mut input)
            .map_err(HandshakeError::Protocol)?;
    }
    let connection = Arc::new(Connection {
        inner: Mutex::new(Inner {
            session,
            waiters: StreamIds::default(),
            io: None,
            earliest: None,
            block: Vec::with_capacity(1024),
            first_block: true,
            ended: false,
            going_away: false,
        }),
        handles: AtomicUsize::new(1),
        limit,
    });
    {
        let mut inner = connection.lock();
        connection.dispatch(&mut inner);
        if inner.going_away {
            return Err(HandshakeError::GoingAway);
        }
    }
    let driver = Driver {
        io,
        connection: Arc::clone(&connection),
        input,
        read: vec![0; READ_CHUNK].into_boxed_slice(),
        output: Outbox::with_capacity(READ_CHUNK),
        timer: Box::pin(tokio::time::sleep(settings.keep_alive_interval)),
        keep_alive_at: Instant::now() + settings.keep_alive_interval,
        pinging: false,
        interval: settings.keep_alive_interval,
        timeout: settings.keep_alive_timeout,
        closing: false,
        going_away: Some(going_away),
    };
    Ok((Handle { connection }, driver))
}

/// The connection's task: reads, writes, PINGs.
struct Driver<T> {
    io: T,
    connection: Arc<Connection>,
    /// Read and not yet a whole frame.
    input: BytesMut,
    /// Where the stream reads into.
    read: Box<[u8]>,
    /// Being written.
    output: Outbox,
    /// The task's one timer, at the sooner of `keep_alive_at` and the soonest deadline of a
    /// waiting push (two timers cost every poll of the task two checks).
    timer: Pin<Box<Sleep>>,
    /// When to PING, or, with `pinging`, when the PING is overdue.
    keep_alive_at: Instant,
    pinging: bool,
    interval: Duration,
    timeout: Duration,
    /// Our GOAWAY is queued: the connection ends once it is written.
    closing: bool,
    /// Tells the pool of the peer's GOAWAY; taken when called.
    going_away: Option<GoingAway>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    /// Reads all there is and passes it through the session. `Ok(true)`: the peer closed
    /// the connection.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, Ended> {
        loop {
            let mut buf = ReadBuf::new(&mut self.read);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Err(error)) => return Err(Ended::Io(error)),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Ok(true),
                Poll::Ready(Ok(())) => {
                    self.input.extend_from_slice(buf.filled());
                    let mut inner = self.connection.lock();
                    let received = inner.session.receive(&mut self.input);
                    let pong = self.connection.dispatch(&mut inner);
                    let going_away = inner.going_away;
                    drop(inner);
                    // Outside the connection's lock: the pool takes its own.
                    if going_away && let Some(tell) = self.going_away.take() {
                        tell();
                    }
                    if pong && self.pinging {
                        self.pinging = false;
                        self.keep_alive_at = Instant::now() + self.interval;
                    }
                    // On an error the session queued our GOAWAY: written before the end.
                    received.map_err(Ended::Protocol)?;
                }
            }
        }
    }

    /// On the timer: PINGs when it is time (an overdue answer ends the connection), and
    /// times out the pushes whose deadline passed (their streams' resets are written next).
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Result<(), Ended> {
        // A fired timer stays ready until reset: after one, it is armed anew even for the
        // same instant (it may fire a hair before a deadline it was rounded to).
        let mut fired = false;
        loop {
            let earliest = self.connection.lock().earliest;
            let at = earliest.map_or(self.keep_alive_at, |at| at.min(self.keep_alive_at));
            if fired || self.timer.deadline() != at {
                self.timer.as_mut().reset(at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            fired = true;
            let now = Instant::now();
            if now >= self.keep_alive_at {
                if self.pinging {
                    return Err(Ended::PingTimeout(self.timeout));
                }
                self.connection.lock().session.ping(PING);
                self.pinging = true;
                self.keep_alive_at = now + self.timeout;
            }
            if earliest.is_some_and(|at| at <= now) {
                expire(&mut self.connection.lock(), now);
            }
        }
    }

    /// Writes what the session queued until nothing is left or the stream is full; leaves
    /// the task's waker for the pushes that queue more. Ready once all is written and
    /// flushed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Ended>> {
        loop {
            if self.output.is_drained() {
                let mut inner = self.connection.lock();
                self.output.refill(inner.session.output());
                if !inner.io.as_ref().is_some_and(|io| io.will_wake(cx.waker())) {
                    inner.io = Some(cx.waker().clone());
                }
                if !self.closing && self.is_done(&inner) {
                    frame::write_goaway(self.output.bytes_mut(), 0, ErrorCode::NO_ERROR);
                    self.closing = true;
                }
                drop(inner);
                if self.output.is_empty() {
                    break;
                }
            }
            ready!(self.output.poll_drain(&mut self.io, cx)).map_err(Ended::Io)?;
        }
        Pin::new(&mut self.io).poll_flush(cx).map_err(Ended::Io)
    }

    /// Whether the connection has nothing more to do: the peer is going away, or no handle
    /// is left, and no stream is open.
    fn is_done(&self, inner: &Inner) -> bool {
        let unused = self.connection.handles.load(Ordering::Acquire) == 0;
        (inner.going_away || unused) && inner.session.open_streams() == 0
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driver<T> {
    type Output = Result<(), Ended>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Ended>> {
        let this = &mut *self;
        let read = this.poll_read(cx);
        let kept = read.and_then(|eof| this.poll_timer(cx).map(|()| eof));
        // What the session queued goes out even when the connection is ending: our
        // GOAWAY after a protocol error, the answers' acknowledgements.
        let written = this.poll_write(cx);
        match (kept, written) {
            (Err(ended), _) | (Ok(_), Poll::Ready(Err(ended))) => Poll::Ready(Err(ended)),
            // After a GOAWAY the peer closing is the expected end.
            (Ok(true), _) if this.connection.lock().going_away => Poll::Ready(Ok(())),
            (Ok(true), _) => Poll::Ready(Err(Ended::Closed)),
            (Ok(false), Poll::Ready(Ok(()))) if this.closing => Poll::Ready(Ok(())),
            (Ok(false), _) => Poll::Pending,
        }
    }
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        // Whatever ended the task (the peer, an error, the pool closing), no answer will
        // come: every waiting push hears so now rather than at its timeout.
        let mut inner = self.connection.lock();
        inner.ended = true;
        self.connection.limit.store(0, Ordering::Relaxed);
        for (_, waiter) in inner.waiters.drain() {
            let _ = waiter.answer.send(Err(SendError::Lost("connection_lost")));
        }
    }
}
