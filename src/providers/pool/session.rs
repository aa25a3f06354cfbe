//! One HTTP/2 client connection's state, without I/O: the third part of ringcast's own APNs
//! HTTP/2 client, over [`super::frame`] and [`super::hpack`] (docs/performance.md, "HPACK of
//! our own"). The caller feeds it the bytes it reads ([`Session::receive`]), writes out what
//! it queues ([`Session::output`]), opens streams ([`Session::open`]) and takes what happened
//! ([`Session::next_event`]); [`super::driver`] is that caller, the I/O around it.
//!
//! What it keeps for the caller, so that a push sender can act on it:
//! - **the peer's stream limit**: [`Session::can_open`] is false until the peer's first
//!   SETTINGS (APNs announces 1 until a first valid request), at the limit, and after GOAWAY;
//! - **flow control both ways**: a body waits for window (per stream and per connection) and
//!   goes out as WINDOW_UPDATEs arrive; what we receive is given back once half is used;
//! - **what was never processed**: a stream above a GOAWAY's last stream id, or refused with
//!   `REFUSED_STREAM`, ends as [`Event::Reset`] with `unprocessed`, safe to send elsewhere;
//! - **every header block decoded**, even one for a stream already gone, so the HPACK table
//!   stays in step with the peer's.

use super::answer_fields::{AnswerFields, Field};
use super::frame::{self, ErrorCode, Frame, FrameError, HEAD_LEN, Head, PeerSettings, setting};
use super::hpack::Decoder;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

#[cfg(test)]
mod tests;

/// What this side announces in its SETTINGS.
#[derive(Debug, Clone, Copy)]
pub struct OurSettings {
    /// Each stream's receive window, and the connection's (raised by a WINDOW_UPDATE).
    pub window: u32,
    /// The largest header list an answer may decode to.
    pub max_header_list_size: u32,
    /// The largest answer body kept; a longer one is read as empty (the status decides) and
    /// its stream cancelled.
    pub max_body: usize,
    /// The answers' header fields kept; the rest are checked and dropped.
    pub answer_fields: AnswerFields,
}

impl Default for OurSettings {
    fn default() -> OurSettings {
        OurSettings {
            window: 1 << 20,
            max_header_list_size: 64 * 1024,
            max_body: 64 * 1024,
            answer_fields: AnswerFields::All,
        }
    }
}

/// What happened on the connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A stream's whole answer.
    Answer {
        /// The stream.
        stream: u32,
        /// `:status`.
        status: u16,
        /// The regular header fields.
        headers: http::HeaderMap,
        /// The body.
        body: Bytes,
    },
    /// A stream ended without an answer.
    Reset {
        /// The stream.
        stream: u32,
        /// The peer's code, or ours when we ended it (a malformed answer).
        code: ErrorCode,
        /// The peer never processed it (`REFUSED_STREAM`, or above a GOAWAY's last stream):
        /// sending it again cannot duplicate it.
        unprocessed: bool,
    },
    /// The peer is closing the connection; no stream can be opened on it any more.
    GoAway {
        /// The highest stream it may have processed.
        last_stream: u32,
        /// Why.
        code: ErrorCode,
    },
    /// The answer to our PING.
    PingAck([u8; 8]),
}

/// Why a stream cannot be opened now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// At the peer's stream limit, or before its first SETTINGS.
    #[error("no stream free on this connection")]
    NoStream,
    /// The peer sent GOAWAY, or the connection failed.
    #[error("the connection is closing")]
    Closing,
}

/// One stream's state on our side.
#[derive(Debug)]
struct Stream {
    /// Room the peer gave us to send on this stream.
    send_window: i64,
    /// The body, or what is left of it, waiting for window.
    pending: Bytes,
    /// Whether the body is all written (END_STREAM sent).
    sent: bool,
    /// Received bytes not yet given back in a WINDOW_UPDATE.
    unacked: u32,
    /// `:status` and the fields of the final header block, once read.
    answer: Option<(u16, http::HeaderMap)>,
    /// The body so far.
    body: BytesMut,
}

/// A header block arriving in CONTINUATION frames.
#[derive(Debug)]
struct OpenBlock {
    stream: u32,
    end_stream: bool,
    bytes: Vec<u8>,
}

/// One HTTP/2 client connection (RFC 9113), without I/O.
#[derive(Debug)]
pub struct Session {
    ours: OurSettings,
    peer: PeerSettings,
    /// Whether the peer's first SETTINGS arrived.
    settled: bool,
    /// The id the next stream gets (odd, rising).
    next_stream: u32,
    streams: StreamIds<Stream>,
    /// Room the peer gave us to send on the connection.
    send_window: i64,
    /// Received bytes not yet given back on the connection.
    unacked: u32,
    decoder: Decoder,
    block: Option<OpenBlock>,
    /// The peer's GOAWAY (its last stream), or our own after a connection error.
    closing: Option<u32>,
    out: Vec<u8>,
    events: VecDeque<Event>,
}

/// A map keyed by stream id. The ids are distinct small integers that no peer chooses (ours,
/// odd and rising), so SipHash's protection against chosen keys buys nothing: one multiply
/// spreads them (the map takes its buckets from the low bits and its tags from the top ones,
/// which the id alone would leave all zero).
pub type StreamIds<V> = HashMap<u32, V, BuildHasherDefault<StreamIdHasher>>;

/// 2^64 divided by the golden ratio: consecutive ids land far apart in every bit.
const FIBONACCI: u64 = 0x9e37_79b9_7f4a_7c15;

/// The hasher of [`StreamIds`]: Fibonacci hashing of the id.
#[derive(Default)]
pub struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(FIBONACCI);
        }
    }
    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(FIBONACCI);
    }
}

/// The connection window every peer starts with (RFC 9113 §6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;

impl Session {
    /// A session whose preface and SETTINGS are queued in [`Session::output`].
    pub fn new(ours: OurSettings) -> Session {
        let mut out = frame::PREFACE.to_vec();
        frame::write_settings(
            &mut out,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, ours.window),
                (setting::MAX_HEADER_LIST_SIZE, ours.max_header_list_size),
            ],
        );
        // The connection's window cannot be set by SETTINGS, only raised.
        if i64::from(ours.window) > DEFAULT_WINDOW {
            frame::write_window_update(&mut out, 0, ours.window - DEFAULT_WINDOW as u32);
        }
        Session {
            ours,
            peer: PeerSettings::default(),
            settled: false,
            next_stream: 1,
            streams: StreamIds::default(),
            send_window: DEFAULT_WINDOW,
            unacked: 0,
            decoder: Decoder::new(4096, ours.max_header_list_size as usize),
            block: None,
            closing: None,
            out,
            events: VecDeque::new(),
        }
    }

    /// Whether [`Session::open`] would open a stream now.
    pub fn can_open(&self) -> bool {
        self.closing.is_none()
            && self.settled
            && self.streams.len()
                < self
                    .peer
                    .max_concurrent_streams
                    .map_or(usize::MAX, |n| n as usize)
            && self.next_stream < 1 << 31
    }

    /// Whether the peer's first SETTINGS arrived (no stream opens before).
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// What the peer's SETTINGS have said.
    pub fn peer(&self) -> &PeerSettings {
        &self.peer
    }

    /// Opens a stream with a header block (from [`super::hpack::encoder`]) and a body; the
    /// body goes out as far as the windows allow, the rest as they open.
    pub fn open(&mut self, block: &[u8], body: Bytes) -> Result<u32, OpenError> {
        if self.closing.is_some() {
            return Err(OpenError::Closing);
        }
        if !self.can_open() {
            return Err(OpenError::NoStream);
        }
        let id = self.next_stream;
        self.next_stream += 2;
        let max_frame = self.peer.max_frame_size as usize;
        frame::write_headers(&mut self.out, id, block, body.is_empty(), max_frame);
        let stream = Stream {
            send_window: i64::from(self.peer.initial_window_size),
            sent: body.is_empty(),
            pending: body,
            unacked: 0,
            answer: None,
            body: BytesMut::new(),
        };
        self.streams.insert(id, stream);
        self.send_pending(id);
        Ok(id)
    }

    /// Queues a PING; its answer comes as [`Event::PingAck`].
    pub fn ping(&mut self, data: [u8; 8]) {
        frame::write_ping(&mut self.out, data, false);
    }

    /// Ends a stream we no longer want (RST_STREAM CANCEL).
    pub fn cancel(&mut self, stream: u32) {
        if self.streams.remove(&stream).is_some() {
            frame::write_rst_stream(&mut self.out, stream, ErrorCode::CANCEL);
        }
    }

    /// The bytes to write to the peer; the caller writes them all and clears the buffer.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// The next thing that happened, oldest first.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Reads every whole frame at the front of `input`, leaving a partial one there. A
    /// connection error queues GOAWAY and is returned: the caller writes the output, then
    /// closes; every open stream has ended as [`Event::Reset`].
    pub fn receive(&mut self, input: &mut BytesMut) -> Result<(), FrameError> {
        let result = self.receive_frames(input);
        if let Err(error) = result {
            frame::write_goaway(&mut self.out, 0, error.code);
            self.closing = Some(0);
            let open: Vec<u32> = self.streams.keys().copied().collect();
            for stream in open {
                self.streams.remove(&stream);
                self.events.push_back(Event::Reset {
                    stream,
                    code: error.code,
                    unprocessed: false,
                });
            }
        }
        result
    }

    fn receive_frames(&mut self, input: &mut BytesMut) -> Result<(), FrameError> {
        while input.len() >= HEAD_LEN {
            let head = Head::parse(input[..HEAD_LEN].try_into().unwrap_or(&[0; HEAD_LEN]));
            if head.len > frame::DEFAULT_MAX_FRAME_SIZE {
                // We announce no larger frame size; refuse before buffering it.
                return Err(connection_error(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "a frame over our frame size",
                ));
            }
            if input.len() < HEAD_LEN + head.len {
                break;
            }
            input.advance(HEAD_LEN);
            let payload = input.split_to(head.len);
            match frame::parse(head, &payload, frame::DEFAULT_MAX_FRAME_SIZE) {
                Ok(parsed) => self.on_frame(parsed)?,
                Err(error) if error.stream != 0 => self.reset(error.stream, error.code),
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, parsed: Frame<'_>) -> Result<(), FrameError> {
        if let Some(block) = &self.block {
            let continues =
                matches!(parsed, Frame::Continuation { stream, .. } if stream == block.stream);
            if !continues {
                return Err(connection_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "a frame inside a header block",
                ));
            }
        }
        match parsed {
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
            } => {
                self.check_not_idle(stream)?;
                if end_headers {
                    // The common case, decoded where it lies.
                    self.on_block(stream, end_stream, fragment)?;
                } else {
                    self.block = Some(OpenBlock {
                        stream,
                        end_stream,
                        bytes: fragment.to_vec(),
                    });
                }
            }
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => {
                let Some(block) = self.block.as_mut() else {
                    return Err(connection_error(
                        ErrorCode::PROTOCOL_ERROR,
                        "CONTINUATION without a header block",
                    ));
                };
                block.bytes.extend_from_slice(fragment);
                if block.bytes.len() > self.ours.max_header_list_size as usize {
                    return Err(connection_error(
                        ErrorCode::ENHANCE_YOUR_CALM,
                        "a header block over our limit",
                    ));
                }
                if end_headers {
                    let block = self.block.take().expect("checked above");
                    self.on_block(block.stream, block.end_stream, &block.bytes)?;
                }
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(stream, end_stream, data, flow_len)?,
            Frame::RstStream { stream, code } => {
                if self.streams.remove(&stream).is_some() {
                    let unprocessed = code == ErrorCode::REFUSED_STREAM;
                    self.events.push_back(Event::Reset {
                        stream,
                        code,
                        unprocessed,
                    });
                }
            }
            Frame::Settings(settings) => {
                let change = settings.apply(&mut self.peer)?;
                for stream in self.streams.values_mut() {
                    stream.send_window += change;
                    if stream.send_window > i64::from(frame::MAX_WINDOW) {
                        return Err(connection_error(
                            ErrorCode::FLOW_CONTROL_ERROR,
                            "a stream window over 2^31-1",
                        ));
                    }
                }
                // SETTINGS_HEADER_TABLE_SIZE asks nothing of us: our encoder keeps no table.
                self.settled = true;
                frame::write_settings_ack(&mut self.out);
                self.send_all_pending();
            }
            Frame::SettingsAck | Frame::Priority { .. } | Frame::Unknown { .. } => {}
            Frame::PushPromise { .. } => {
                return Err(connection_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "PUSH_PROMISE with push disabled",
                ));
            }
            Frame::Ping { ack: false, data } => frame::write_ping(&mut self.out, data, true),
            Frame::Ping { ack: true, data } => self.events.push_back(Event::PingAck(data)),
            Frame::GoAway {
                last_stream, code, ..
            } => self.on_goaway(last_stream, code),
            Frame::WindowUpdate {
                stream: 0,
                increment,
            } => {
                self.send_window += i64::from(increment);
                if self.send_window > i64::from(frame::MAX_WINDOW) {
                    return Err(connection_error(
                        ErrorCode::FLOW_CONTROL_ERROR,
                        "the connection window over 2^31-1",
                    ));
                }
                self.send_all_pending();
            }
            Frame::WindowUpdate { stream, increment } => {
                if let Some(open) = self.streams.get_mut(&stream) {
                    open.send_window += i64::from(increment);
                    if open.send_window > i64::from(frame::MAX_WINDOW) {
                        self.reset(stream, ErrorCode::FLOW_CONTROL_ERROR);
                    } else {
                        self.send_pending(stream);
                    }
                }
            }
        }
        Ok(())
    }

    /// A frame on a stream we never opened is a connection error (RFC 9113 §5.1: idle).
    fn check_not_idle(&self, stream: u32) -> Result<(), FrameError> {
        if stream.is_multiple_of(2) || stream >= self.next_stream {
            return Err(connection_error(
                ErrorCode::PROTOCOL_ERROR,
                "a frame on a stream we never opened",
            ));
        }
        Ok(())
    }

    /// A whole header block: decoded always (the table must follow the peer's), kept when
    /// its stream is still ours.
    fn on_block(&mut self, id: u32, end_stream: bool, block: &[u8]) -> Result<(), FrameError> {
        let mut status = None;
        // Allocates on its first field only: most answers keep none.
        let mut regular = http::HeaderMap::new();
        let answer_fields = self.ours.answer_fields;
        let mut malformed = false;
        // Whether a regular field came, kept or not: a pseudo-header after one is malformed
        // (RFC 9113 §8.3).
        let mut past_pseudo = false;
        self.decoder
            .decode(block, |name, value| {
                if name == b":status" && status.is_none() && !past_pseudo {
                    status = status_code(value);
                } else if name.starts_with(b":") {
                    malformed = true;
                } else {
                    past_pseudo = true;
                    match answer_fields.keep(name, value) {
                        Field::Kept(name, value) => {
                            regular.append(name, value);
                        }
                        Field::Dropped => {}
                        Field::Malformed => malformed = true,
                    }
                }
            })
            .map_err(|error| connection_error(ErrorCode::COMPRESSION_ERROR, error_text(error)))?;
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        match (stream.answer.is_some(), status) {
            // An interim answer (1xx) is skipped; the final one follows.
            (false, Some(code)) if (100..200).contains(&code) && !malformed => return Ok(()),
            (false, Some(code)) if !malformed => stream.answer = Some((code, regular)),
            // Trailers after the answer: no pseudo-headers allowed; not kept.
            (true, None) if !malformed && end_stream => {}
            _ => {
                self.reset(id, ErrorCode::PROTOCOL_ERROR);
                return Ok(());
            }
        }
        if end_stream {
            self.finish(id);
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        stream: u32,
        end_stream: bool,
        data: &[u8],
        flow_len: usize,
    ) -> Result<(), FrameError> {
        self.check_not_idle(stream)?;
        let flow_len = flow_len as u32;
        // The connection's window counts every DATA, even for a stream already gone.
        self.unacked += flow_len;
        if self.unacked > self.ours.window {
            return Err(connection_error(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA over the connection window",
            ));
        }
        if self.unacked >= self.ours.window / 2 {
            frame::write_window_update(&mut self.out, 0, self.unacked);
            self.unacked = 0;
        }
        let max_body = self.ours.max_body;
        let Some(open) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        open.unacked += flow_len;
        if open.unacked > self.ours.window {
            self.reset(stream, ErrorCode::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        if open.answer.is_none() {
            // DATA before the answer's headers (RFC 9113 §8.1: malformed).
            self.reset(stream, ErrorCode::PROTOCOL_ERROR);
            return Ok(());
        }
        if open.body.len() + data.len() > max_body {
            // Longer than any push service's answer: the status still decides, as on the
            // pool's other paths (its body read as empty); the rest is not received.
            open.body = BytesMut::new();
            open.sent = true;
            frame::write_rst_stream(&mut self.out, stream, ErrorCode::CANCEL);
            self.finish(stream);
            return Ok(());
        }
        open.body.extend_from_slice(data);
        if end_stream {
            self.finish(stream);
        } else if open.unacked >= self.ours.window / 2 {
            frame::write_window_update(&mut self.out, stream, open.unacked);
            open.unacked = 0;
        }
        Ok(())
    }

    fn on_goaway(&mut self, last_stream: u32, code: ErrorCode) {
        self.closing = Some(self.closing.map_or(last_stream, |was| was.min(last_stream)));
        let mut refused: Vec<u32> = self
            .streams
            .keys()
            .copied()
            .filter(|&id| id > last_stream)
            .collect();
        refused.sort_unstable();
        for stream in refused {
            self.streams.remove(&stream);
            self.events.push_back(Event::Reset {
                stream,
                code,
                unprocessed: true,
            });
        }
        self.events.push_back(Event::GoAway { last_stream, code });
    }

    /// The stream's answer is whole.
    fn finish(&mut self, stream: u32) {
        let Some(open) = self.streams.remove(&stream) else {
            return;
        };
        let Some((status, headers)) = open.answer else {
            return;
        };
        if !open.sent {
            // The peer answered before taking the whole body: stop sending it.
            frame::write_rst_stream(&mut self.out, stream, ErrorCode::NO_ERROR);
        }
        self.events.push_back(Event::Answer {
            stream,
            status,
            headers,
            body: open.body.freeze(),
        });
    }

    /// Ends a stream on our side with `code`.
    fn reset(&mut self, stream: u32, code: ErrorCode) {
        frame::write_rst_stream(&mut self.out, stream, code);
        if self.streams.remove(&stream).is_some() {
            self.events.push_back(Event::Reset {
                stream,
                code,
                unprocessed: false,
            });
        }
    }

    fn send_all_pending(&mut self) {
        let waiting: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.sent)
            .map(|(&id, _)| id)
            .collect();
        for stream in waiting {
            self.send_pending(stream);
        }
    }

    /// Writes as much of a stream's waiting body as both windows allow.
    fn send_pending(&mut self, id: u32) {
        let max_frame = self.peer.max_frame_size as usize;
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.sent {
            return;
        }
        let room = stream.send_window.min(self.send_window).max(0) as usize;
        let len = room.min(stream.pending.len());
        if len == 0 && !stream.pending.is_empty() {
            return;
        }
        let chunk = stream.pending.split_to(len);
        let done = stream.pending.is_empty();
        frame::write_data(&mut self.out, id, &chunk, done, max_frame);
        stream.send_window -= len as i64;
        self.send_window -= len as i64;
        stream.sent = done;
    }
}

/// A `:status` value: exactly three digits (RFC 9110 §15), where `str::parse` also took a
/// sign and leading zeros ("+200", "0200").
fn status_code(value: &[u8]) -> Option<u16> {
    match *value {
        [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

fn connection_error(code: ErrorCode, what: &'static str) -> FrameError {
    FrameError {
        code,
        stream: 0,
        what,
    }
}

fn error_text(error: super::hpack::DecodeError) -> &'static str {
    use super::hpack::DecodeError as D;
    match error {
        D::Truncated => "a header block ends inside a field",
        D::IntegerOverflow => "an integer in a header block is too large",
        D::BadIndex(_) => "a header block names an index in neither table",
        D::Huffman => "a malformed Huffman string in a header block",
        D::TableSizeTooLarge(_) => "a table size update over our limit",
        D::TableSizeUpdateLate => "a table size update after a field",
        D::HeaderListTooLarge(_) => "a header list over our limit",
    }
}
