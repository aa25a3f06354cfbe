//! One Redis connection's I/O: the task that writes every caller's commands and hands each
//! reply, in order, to the caller that waits for it. [`super`] dials, logs in and redials;
//! this is the part between two dials.
//!
//! - **A command is queued by its caller** ([`Link::send`]): under the connection's lock it
//!   is packed straight into the buffer the task writes next, its waiter goes to the back of
//!   the queue, and the task is woken only if nothing else woke it since its last write. So
//!   the commands of every caller that arrive while the task is busy share one write, and
//!   usually one TCP segment — a ring's claim, the callee's registrations and presence leave
//!   together.
//! - **Replies come back in the order the commands went out** (Redis answers each connection
//!   in order): each decoded reply ([`super::super::resp`]) goes to the oldest waiter; a
//!   pipeline's waiter takes as many as it sent commands. A caller that gave up (its timeout)
//!   leaves its waiter in the queue, so the replies behind it still find theirs.
//! - **The task reads and writes in one poll**, never one waiting on the other: a server
//!   busy writing replies we do not read could otherwise stop reading our commands.
//! - **Ends**: the server closing, an I/O error, bytes that are not RESP2, no reply at all
//!   for a whole [`Limits::stall_after`] while commands wait (a server frozen or a path cut
//!   without a reset), or the last [`Link`] dropped once nothing waits. Every waiting caller
//!   then hears so at once, not at its timeout, and the link reports itself
//!   [closed](Link::is_open) so that the next caller dials anew.
//! - **Bookkeeping waits for company** ([`Write::WithNext`]): a command whose reply nobody
//!   waits on soon (an event's finish) is packed at once but written with the next command
//!   that is not, or [`WITH_NEXT_AT_MOST`] after it was queued if none comes. At moderate
//!   rates the worker thread sleeps between calls, and each wake costs more than the work it
//!   wakes for: a finish written alone was a write, and its reply a wake, of their own per
//!   call; written with the next call's claim, both ride on that call's. Order is kept: the
//!   bytes wait in the same buffer, behind those queued before them.
//! - **Bounded**: at most [`Limits::max_waiting`] commands wait on one connection; past it
//!   a caller is refused at once (the store answers `503`) instead of queueing without bound
//!   behind a server that does not answer.

use super::super::resp::{self, RespError};
use crate::metrics::redis::{self as metrics, ConnectionEnd};
use crate::outbox::Outbox;
use bytes::{Buf, BytesMut};
use redis::{ErrorKind, RedisError, RedisResult, ServerError, Value};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// The longest a [`Write::WithNext`] command waits for another command to be written with.
/// Far inside any lease (seconds), so what it records is never late for a takeover; long
/// enough that at a few hundred calls a second per worker the next call's claim comes first.
pub(super) const WITH_NEXT_AT_MOST: Duration = Duration::from_millis(2);

/// When a queued command is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Write {
    /// As soon as the connection's task runs: someone waits for the reply.
    #[default]
    Now,
    /// With the next [`Write::Now`] command, or [`WITH_NEXT_AT_MOST`] after it was queued:
    /// bookkeeping whose reply only confirms it.
    WithNext,
}

/// How much a connection may hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Commands waiting for their replies, at most.
    pub max_waiting: usize,
    /// Commands waiting and no reply read for this long: the connection is stalled and ends.
    pub stall_after: Duration,
}

/// What a waiter is given: one reply, or a pipeline's kept replies.
#[derive(Debug)]
pub(super) enum Reply {
    /// The reply to one command (an error reply is a [`Value::ServerError`]).
    One(Value),
    /// The replies a pipeline kept, in order.
    Many(Vec<Value>),
}

/// Which of a request's replies its caller keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Expect {
    /// Replies read and dropped first (a transaction's `MULTI` and `QUEUED`s).
    pub skip: usize,
    /// Replies kept after those; 0 for a single command, whose one reply is [`Reply::One`].
    pub keep: usize,
    /// A transaction: an error among the skipped replies means it was aborted.
    pub transaction: bool,
}

impl Expect {
    /// One command, one reply.
    pub const ONE: Expect = Expect {
        skip: 0,
        keep: 0,
        transaction: false,
    };

    /// How many replies the request is answered with.
    fn replies(&self) -> usize {
        self.skip + self.keep.max(1)
    }
}

/// A command that could not be queued: it was never written, so sending it elsewhere cannot
/// run it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotSent {
    /// The connection has ended.
    Closed,
    /// [`Limits::max_waiting`] commands wait already.
    Full,
}

/// Where a request's replies go, and what it gathered so far.
struct Waiter {
    answer: oneshot::Sender<RedisResult<Reply>>,
    expect: Expect,
    /// Replies read for it so far.
    seen: usize,
    kept: Vec<Value>,
    /// A transaction's first error among its skipped replies.
    aborted: Option<ServerError>,
}

impl Waiter {
    /// Takes one reply; returns whether the waiter has all of its replies (and was answered).
    fn take(&mut self, value: Value) -> bool {
        self.seen += 1;
        if self.seen <= self.expect.skip {
            if let Value::ServerError(error) = value
                && self.expect.transaction
                && self.aborted.is_none()
            {
                self.aborted = Some(error);
            }
            return false;
        }
        self.kept.push(value);
        self.seen == self.expect.replies()
    }

    /// Answers the caller with a whole reply.
    fn answer(self, last: Option<Value>) {
        let reply = match (last, self.aborted) {
            (Some(value), _) => Ok(Reply::One(value)),
            (None, Some(error)) => Err(RedisError::from(error)),
            (None, None) => Ok(Reply::Many(self.kept)),
        };
        let _ = self.answer.send(reply);
    }
}

/// What the callers and the connection's task share.
struct Connection {
    inner: Mutex<Inner>,
    limits: Limits,
}

struct Inner {
    /// Packed commands not yet taken by the task.
    output: Vec<u8>,
    /// Oldest first, in the order their commands were queued.
    waiting: VecDeque<Waiter>,
    /// The task's waker, taken by the first caller that queues after the task's last write.
    io: Option<Waker>,
    /// `output` holds only [`Write::WithNext`] commands, the first queued then: the task
    /// leaves them there until a [`Write::Now`] command joins them or the wait is over.
    held_since: Option<Instant>,
    /// The task is gone: nothing more is written or read.
    ended: bool,
    /// The last [`Link`] is gone: the task ends once nothing waits.
    released: bool,
    /// Replies read since the connection opened (for the stall check).
    replies: u64,
}

impl Connection {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Taken over when poisoned: each update is a few fields with no invariant spanning a
        // panic point, and the waiting callers must still be answered.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A caller's side of one connection. Dropping the last one ends the connection once the
/// commands in flight are answered.
pub(super) struct Link {
    connection: Arc<Connection>,
}

impl Link {
    /// Queues a request to be written now: `pack` writes its commands, `expect` says which
    /// replies it keeps. The returned receiver gets them.
    pub(super) fn send(
        &self,
        pack: impl FnOnce(&mut Vec<u8>),
        expect: Expect,
    ) -> Result<oneshot::Receiver<RedisResult<Reply>>, NotSent> {
        self.send_with(pack, expect, Write::Now)
    }

    /// [`Link::send`], written as `write` says.
    pub(super) fn send_with(
        &self,
        pack: impl FnOnce(&mut Vec<u8>),
        expect: Expect,
        write: Write,
    ) -> Result<oneshot::Receiver<RedisResult<Reply>>, NotSent> {
        let (answer, answered) = oneshot::channel();
        let io = {
            let mut inner = self.connection.lock();
            if inner.ended {
                return Err(NotSent::Closed);
            }
            if inner.waiting.len() >= self.connection.limits.max_waiting {
                metrics::command_refused();
                return Err(NotSent::Full);
            }
            let alone = inner.output.is_empty();
            pack(&mut inner.output);
            inner.waiting.push_back(Waiter {
                answer,
                expect,
                seen: 0,
                kept: Vec::new(),
                aborted: None,
            });
            match write {
                Write::Now => inner.held_since = None,
                // Alone in the buffer: held, and the task woken once to time the wait.
                // Behind others: it leaves with them (held or not), no wake of its own.
                Write::WithNext if alone => inner.held_since = Some(Instant::now()),
                Write::WithNext => return Ok(answered),
            }
            inner.io.take()
        };
        if let Some(io) = io {
            io.wake();
        }
        Ok(answered)
    }

    /// Whether commands can still be queued: false once the connection ended.
    pub(super) fn is_open(&self) -> bool {
        !self.connection.lock().ended
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let io = {
            let mut inner = self.connection.lock();
            inner.released = true;
            inner.io.take()
        };
        if let Some(io) = io {
            io.wake();
        }
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum Ended {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// The server closed the connection.
    #[error("Redis closed the connection")]
    Closed,
    /// The server sent bytes that are not a RESP2 reply.
    #[error("Redis sent what is not a RESP2 reply: {0}")]
    Protocol(RespError),
    /// A reply came that no command asked for: the connection is out of step.
    #[error("Redis sent a reply no command asked for")]
    Unasked,
    /// Commands waited and no reply came.
    #[error("no reply from Redis within {0:?} while commands waited")]
    Stalled(Duration),
}

/// Hands every whole reply at the start of `input` to its waiter; returns the bytes used.
fn answer(connection: &Connection, input: &[u8]) -> Result<usize, Ended> {
    let mut used = 0;
    let mut inner = connection.lock();
    while let Some((value, length)) = resp::decode(&input[used..]).map_err(Ended::Protocol)? {
        used += length;
        inner.replies += 1;
        let Some(waiter) = inner.waiting.front_mut() else {
            return Err(Ended::Unasked);
        };
        if waiter.expect.keep == 0 {
            if let Some(waiter) = inner.waiting.pop_front() {
                waiter.answer(Some(value));
            }
        } else if waiter.take(value)
            && let Some(waiter) = inner.waiting.pop_front()
        {
            waiter.answer(None);
        }
    }
    Ok(used)
}

/// The link for `io` and the future that drives it (to be spawned).
pub(super) fn start<T>(io: T, limits: Limits) -> (Link, Driver<T>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let connection = Arc::new(Connection {
        inner: Mutex::new(Inner {
            output: Vec::with_capacity(READ_CHUNK),
            waiting: VecDeque::new(),
            io: None,
            held_since: None,
            ended: false,
            released: false,
            replies: 0,
        }),
        limits,
    });
    let driver = Driver {
        io,
        connection: Arc::clone(&connection),
        input: BytesMut::new(),
        read: vec![0; READ_CHUNK].into_boxed_slice(),
        output: Outbox::with_capacity(READ_CHUNK),
        watch: Box::pin(tokio::time::sleep(limits.stall_after)),
        watched: None,
        release: Release {
            timer: Box::pin(tokio::time::sleep(WITH_NEXT_AT_MOST)),
            armed: false,
        },
        reported: 0,
    };
    (Link { connection }, driver)
}

/// The connection's task: writes what callers queued, reads and hands out the replies.
pub(super) struct Driver<T> {
    io: T,
    connection: Arc<Connection>,
    /// Read and not yet a whole reply.
    input: BytesMut,
    /// Where the socket is read into.
    read: Box<[u8]>,
    /// Being written.
    output: Outbox,
    /// Ticks every [`Limits::stall_after`] to check for progress.
    watch: Pin<Box<Sleep>>,
    /// At the last tick, with commands waiting: the replies read until then.
    watched: Option<u64>,
    /// When held [`Write::WithNext`] commands are written anyway.
    release: Release,
    /// The commands waiting as last added to `ringcast_redis_commands_waiting`: the gauge is
    /// brought up to date once per poll, not per command.
    reported: usize,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    /// Reads all there is and answers the waiters. `Ok(true)`: the server closed.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, Ended> {
        loop {
            let mut buf = ReadBuf::new(&mut self.read);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Err(error)) => return Err(Ended::Io(error)),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Ok(true),
                Poll::Ready(Ok(())) => {
                    let filled = buf.filled().len();
                    if self.input.is_empty() {
                        // The usual case, whole replies in one read: decoded where they were
                        // read, only a cut-off tail kept.
                        let used = answer(&self.connection, &self.read[..filled])?;
                        self.input.extend_from_slice(&self.read[used..filled]);
                    } else {
                        self.input.extend_from_slice(&self.read[..filled]);
                        let used = answer(&self.connection, &self.input)?;
                        self.input.advance(used);
                    }
                }
            }
        }
    }

    /// Ends a connection on which commands waited a whole tick and no reply came.
    fn poll_watch(&mut self, cx: &mut Context<'_>) -> Result<(), Ended> {
        while self.watch.as_mut().poll(cx).is_ready() {
            let limit = self.connection.limits.stall_after;
            let inner = self.connection.lock();
            if let Some(replies) = self.watched
                && replies == inner.replies
                && !inner.waiting.is_empty()
            {
                return Err(Ended::Stalled(limit));
            }
            self.watched = (!inner.waiting.is_empty()).then_some(inner.replies);
            drop(inner);
            self.watch.as_mut().reset(Instant::now() + limit);
        }
        Ok(())
    }

    /// Writes what callers queued until nothing is left or the socket is full; leaves the
    /// task's waker for callers that queue more. Ready once all is written and flushed, with
    /// whether the connection is done (no link left, nothing waiting), read under the same
    /// lock as the last refill.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Ended>> {
        let done = loop {
            if self.output.is_drained() {
                let mut inner = self.connection.lock();
                let release = &mut self.release;
                let held = match inner.held_since {
                    Some(since) => release.holds(since + WITH_NEXT_AT_MOST, cx),
                    // Released early, by a command that writes now: the timer must not wake
                    // the thread for nothing later.
                    None => {
                        release.disarm();
                        false
                    }
                };
                if !held {
                    inner.held_since = None;
                    self.output.refill(&mut inner.output);
                }
                if !inner.io.as_ref().is_some_and(|io| io.will_wake(cx.waker())) {
                    inner.io = Some(cx.waker().clone());
                }
                let done = inner.released && inner.waiting.is_empty();
                let waiting = inner.waiting.len();
                drop(inner);
                self.report_waiting(waiting);
                if self.output.is_empty() {
                    break done;
                }
            }
            ready!(self.output.poll_drain(&mut self.io, cx)).map_err(Ended::Io)?;
        };
        ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(Ended::Io)?;
        Poll::Ready(Ok(done))
    }
}

/// The timer of held [`Write::WithNext`] commands.
struct Release {
    timer: Pin<Box<Sleep>>,
    /// Set for held commands, not fired yet.
    armed: bool,
}

impl Release {
    /// Whether commands held until `until` wait on: the time has not come, and the timer
    /// wakes the task when it does.
    fn holds(&mut self, until: Instant, cx: &mut Context<'_>) -> bool {
        if !self.armed || self.timer.deadline() != until {
            self.timer.as_mut().reset(until);
        }
        self.armed = self.timer.as_mut().poll(cx).is_pending();
        self.armed
    }

    /// Stops the timer of commands that left before their time.
    fn disarm(&mut self) {
        if self.armed {
            self.armed = false;
            self.timer.as_mut().reset(Instant::now() + NEVER);
        }
    }
}

/// Far enough that a disarmed timer never fires: tokio keeps a timer it was given until it
/// is reset or dropped.
const NEVER: Duration = Duration::from_secs(24 * 60 * 60);

impl<T> Driver<T> {
    /// Brings `ringcast_redis_commands_waiting` to `waiting` for this connection.
    fn report_waiting(&mut self, waiting: usize) {
        if waiting != self.reported {
            metrics::commands_waiting(waiting as i64 - self.reported as i64);
            self.reported = waiting;
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driver<T> {
    type Output = Result<(), Ended>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Ended>> {
        let this = &mut *self;
        let read = this.poll_read(cx);
        let watched = read.and_then(|closed| this.poll_watch(cx).map(|()| closed));
        let written = this.poll_write(cx);
        let ended = match (watched, written) {
            (Err(ended), _) | (Ok(_), Poll::Ready(Err(ended))) => ended,
            (Ok(true), _) => Ended::Closed,
            (Ok(false), Poll::Ready(Ok(true))) => return Poll::Ready(Ok(())),
            (Ok(false), Poll::Ready(Ok(false)) | Poll::Pending) => return Poll::Pending,
        };
        metrics::connection_ended(ended.reason());
        Poll::Ready(Err(ended))
    }
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        // Whatever ended the task, no reply will come: every waiting caller hears so now
        // rather than at its timeout.
        let mut inner = self.connection.lock();
        inner.ended = true;
        inner.output.clear();
        for waiter in inner.waiting.drain(..) {
            let _ = waiter.answer.send(Err(lost()));
        }
        drop(inner);
        self.report_waiting(0);
    }
}

impl Ended {
    /// The `reason` label of `ringcast_redis_connections_ended_total`.
    pub(super) fn reason(&self) -> ConnectionEnd {
        match self {
            Ended::Io(_) => ConnectionEnd::Io,
            Ended::Closed => ConnectionEnd::Closed,
            Ended::Protocol(_) | Ended::Unasked => ConnectionEnd::Protocol,
            Ended::Stalled(_) => ConnectionEnd::Stalled,
        }
    }
}

/// The error a caller gets when the connection ended before its reply: an I/O error, which
/// the store reports as Redis being unavailable.
pub(super) fn lost() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the Redis connection ended before the reply",
    ))
}

/// A request the connection refused without sending it.
pub(super) fn refused(why: NotSent) -> RedisError {
    match why {
        NotSent::Closed => RedisError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the Redis connection is closed",
        )),
        NotSent::Full => RedisError::from((
            ErrorKind::Io,
            "too many Redis commands wait on this connection",
        )),
    }
}
