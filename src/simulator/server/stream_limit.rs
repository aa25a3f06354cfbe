//! The stream limit APNs raises: a new connection may carry one stream until a request on it
//! passes the credential check, then the real limit (Apple: "APNs allows only one stream until
//! you post a request with a valid authentication token"; docs/protocols.md). A sender that
//! reads `SETTINGS_MAX_CONCURRENT_STREAMS` only once, or whose waiting pushes never hear of
//! the raise, sends one push per round trip for the connection's whole life.
//!
//! hyper's server announces its limit once, in its first SETTINGS frame, so for an HTTP/2
//! connection [`Raising`] sits between the TLS stream and hyper:
//!
//! - it rewrites hyper's first SETTINGS frame to announce [`StreamLimit::first`];
//! - once [`StreamLimit::raise`] was called, it writes a SETTINGS frame of its own announcing
//!   hyper's real limit, between two of hyper's frames (the handler raises before hyper writes
//!   its answer, so the sender reads the raise before that answer);
//! - it drops the sender's ACK of that frame: hyper never sent it, and an ACK it did not
//!   expect is a connection error to hyper.
//!
//! After that it copies bytes untouched. It reads frame heads itself (nine bytes, RFC 9113
//! §4.1) rather than borrow the client's frame code, so the simulator stays an independent
//! peer of the client under test.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the connection preface of a client starts with (RFC 9113 §3.4).
const CLIENT_PREFACE_LEN: usize = 24;
const HEAD_LEN: usize = 9;
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// Output held back while the sender does not read: hyper waits beyond it.
const MAX_HELD: usize = 64 * 1024;

/// A connection's announced stream limit: `first` until [`StreamLimit::raise`], then `then`.
#[derive(Debug)]
pub struct StreamLimit {
    first: u32,
    then: u32,
    raised: AtomicBool,
}

impl StreamLimit {
    /// A limit that starts at `first` and is raised to `then`; `first >= then` never changes.
    pub fn new(first: u32, then: u32) -> StreamLimit {
        StreamLimit {
            first: first.min(then),
            then,
            raised: AtomicBool::new(first >= then),
        }
    }

    /// Whether the limit ever changes, i.e. whether a connection needs [`Raising`].
    pub fn rises(&self) -> bool {
        !self.raised.load(Ordering::Acquire)
    }

    /// What the connection announces now: the recorder judges streams in flight by it.
    pub fn announced(&self) -> u32 {
        if self.raised.load(Ordering::Acquire) {
            self.then
        } else {
            self.first
        }
    }

    /// Announces `then` from now on; later calls change nothing.
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Release);
    }
}

/// An HTTP/2 server's I/O with its stream limit announced as `limit` says (module doc).
pub struct Raising<T> {
    io: T,
    limit: Arc<StreamLimit>,
    /// Server → sender: the server's bytes not yet a whole frame.
    partial: Vec<u8>,
    /// Whole frames for the sender, written up to `sent`.
    out: Vec<u8>,
    sent: usize,
    /// Whether the server's first SETTINGS frame went out (rewritten).
    first_settings: bool,
    /// Whether our raising SETTINGS frame went out.
    raised: bool,
    /// Sender → server: preface bytes still to pass unread.
    preface_left: usize,
    /// The sender's bytes not yet a whole frame.
    input: Vec<u8>,
    /// Whole frames for the server, read up to `taken`.
    ready: Vec<u8>,
    taken: usize,
    /// For each SETTINGS frame the sender has yet to acknowledge, in order: whether it is
    /// ours (its ACK is dropped) or the server's.
    unacked: VecDeque<bool>,
}

impl<T> Raising<T> {
    /// Wraps a server connection's `io`.
    pub fn new(io: T, limit: Arc<StreamLimit>) -> Raising<T> {
        // A limit that never rises is hyper's own from the start: nothing to rewrite.
        let constant = !limit.rises();
        Raising {
            io,
            limit,
            partial: Vec::new(),
            out: Vec::new(),
            sent: 0,
            first_settings: constant,
            raised: constant,
            preface_left: CLIENT_PREFACE_LEN,
            input: Vec::new(),
            ready: Vec::new(),
            taken: 0,
            unacked: VecDeque::new(),
        }
    }

    /// Whether the server's output is now passed through as it is: our frame is out and
    /// nothing of the server's is held.
    fn writing_through(&self) -> bool {
        self.raised && self.partial.is_empty() && self.sent == self.out.len()
    }

    /// Whether the sender's input is now passed through as it is: our frame's ACK was dropped
    /// and nothing of the sender's is held.
    fn reading_through(&self) -> bool {
        self.raised
            && !self.unacked.contains(&true)
            && self.input.is_empty()
            && self.taken == self.ready.len()
    }

    /// Moves the server's whole frames to `out`, rewriting its first SETTINGS and putting our
    /// own SETTINGS between two frames once the limit is raised.
    fn frame_output(&mut self) {
        let mut at = 0;
        loop {
            self.raise_if_due();
            let Some(len) = whole_frame(&self.partial[at..]) else {
                break;
            };
            let frame = &self.partial[at..at + len];
            let (kind, flags) = (frame[3], frame[4]);
            if kind == SETTINGS && flags & ACK == 0 {
                if !self.first_settings {
                    self.first_settings = true;
                    announce(frame, self.limit.first, &mut self.out);
                } else {
                    self.out.extend_from_slice(frame);
                }
                self.unacked.push_back(false);
            } else {
                self.out.extend_from_slice(frame);
            }
            at += len;
        }
        self.partial.drain(..at);
    }

    /// Writes our raising SETTINGS to `out` (which ends on a frame boundary) once due.
    fn raise_if_due(&mut self) {
        if self.raised || !self.first_settings || self.limit.announced() == self.limit.first {
            return;
        }
        self.raised = true;
        self.out
            .extend_from_slice(&[0, 0, 6, SETTINGS, 0, 0, 0, 0, 0]);
        self.out
            .extend_from_slice(&MAX_CONCURRENT_STREAMS.to_be_bytes());
        self.out.extend_from_slice(&self.limit.then.to_be_bytes());
        self.unacked.push_back(true);
    }

    /// Moves the sender's whole frames to `ready`, dropping its ACK of our SETTINGS.
    fn frame_input(&mut self) {
        let preface = self.preface_left.min(self.input.len());
        self.ready.extend_from_slice(&self.input[..preface]);
        self.preface_left -= preface;
        let mut at = preface;
        while let Some(len) = whole_frame(&self.input[at..]) {
            let frame = &self.input[at..at + len];
            let is_ack = frame[3] == SETTINGS && frame[4] & ACK != 0;
            let ours = is_ack && self.unacked.pop_front().unwrap_or(false);
            if !ours {
                self.ready.extend_from_slice(frame);
            }
            at += len;
        }
        self.input.drain(..at);
    }
}

impl<T: AsyncWrite + Unpin> Raising<T> {
    /// Writes `out` to the sender until it is all out or the sender stops reading.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `bufs` from the server (after sending what was held, if that is too much).
    fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.out.len() - self.sent > MAX_HELD {
            ready!(self.poll_send(cx))?;
        }
        let mut taken = 0;
        for buf in bufs {
            self.partial.extend_from_slice(buf);
            taken += buf.len();
        }
        self.frame_output();
        // Sends what it can now; the rest goes with the server's flush.
        if let Poll::Ready(Err(error)) = self.poll_send(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(taken))
    }
}

/// The length of the frame `bytes` starts with, if all of it is there.
fn whole_frame(bytes: &[u8]) -> Option<usize> {
    let head = bytes.get(..HEAD_LEN)?;
    let len =
        HEAD_LEN + (usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]));
    (bytes.len() >= len).then_some(len)
}

/// Writes the SETTINGS `frame` to `out` announcing `streams` as its stream limit, in place of
/// whatever it announced (added if it announced none).
fn announce(frame: &[u8], streams: u32, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(frame);
    let mut found = false;
    for param in out[start + HEAD_LEN..].chunks_exact_mut(6) {
        if u16::from_be_bytes([param[0], param[1]]) == MAX_CONCURRENT_STREAMS {
            param[2..].copy_from_slice(&streams.to_be_bytes());
            found = true;
        }
    }
    if !found {
        out.extend_from_slice(&MAX_CONCURRENT_STREAMS.to_be_bytes());
        out.extend_from_slice(&streams.to_be_bytes());
        let len = (out.len() - start - HEAD_LEN) as u32;
        out[start..start + 3].copy_from_slice(&len.to_be_bytes()[1..]);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Raising<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.reading_through() {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            if this.taken < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.taken);
                buf.put_slice(&this.ready[this.taken..this.taken + n]);
                this.taken += n;
                if this.taken == this.ready.len() {
                    this.ready.clear();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The sender closed: the server sees the end (a torn frame is its to judge).
                return Poll::Ready(Ok(()));
            }
            this.input.extend_from_slice(read.filled());
            this.frame_input();
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Raising<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.writing_through() {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        this.poll_take(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.writing_through() {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        this.poll_take(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // A raise goes out even with nothing of the server's to follow (`out` always ends
        // on a frame boundary).
        this.raise_if_due();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
