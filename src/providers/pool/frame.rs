//! HTTP/2 frames (RFC 9113 §4 and §6) as a push client reads and writes them: the second part
//! of ringcast's own APNs HTTP/2 client, after [`super::hpack`] (docs/performance.md, "HPACK
//! of our own"). Pure: [`parse`] turns a frame's bytes into a [`Frame`] and refuses what the
//! RFC makes an error, with the error's code and scope; the writers append frames to a buffer.
//! The connection's state (streams, windows, what a GOAWAY leaves unprocessed) is
//! [`super::session`]'s.

mod settings;
#[cfg(test)]
mod tests;

pub use settings::{MAX_WINDOW, PeerSettings, Settings, setting};

/// What a client sends before its first frame (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header's length.
pub const HEAD_LEN: usize = 9;
/// The frame size every peer accepts until its SETTINGS say more (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16_384;

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// A stream's body bytes.
    pub const DATA: u8 = 0x0;
    /// A header block's first fragment.
    pub const HEADERS: u8 = 0x1;
    /// A deprecated priority signal.
    pub const PRIORITY: u8 = 0x2;
    /// The end of one stream.
    pub const RST_STREAM: u8 = 0x3;
    /// Connection parameters, or their acknowledgement.
    pub const SETTINGS: u8 = 0x4;
    /// A server push (refused: this client disables push).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// A liveness probe, or its answer.
    pub const PING: u8 = 0x6;
    /// The end of the connection.
    pub const GOAWAY: u8 = 0x7;
    /// More flow-control room.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// A header block's further fragment.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6); which apply depends on the type.
pub mod flag {
    /// DATA, HEADERS: the sender's last frame on the stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION: the header block is complete.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS: a pad length byte leads the payload.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: a stream dependency and weight lead the block (deprecated, skipped).
    pub const PRIORITY: u8 = 0x20;
}

/// An error code (RFC 9113 §7), as RST_STREAM and GOAWAY carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// A graceful end.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// The sender failed inside.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// A flow-control window was overrun.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// SETTINGS were not acknowledged in time.
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// A frame came on a closed stream.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// A frame of the wrong size.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// The stream was not processed: safe to send again, on any connection.
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// The stream is no longer wanted.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The HPACK state is broken: the connection ends.
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// A CONNECT tunnel failed.
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    /// The peer is being asked to slow down.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// The TLS parameters are not acceptable.
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    /// The peer wants HTTP/1.1 for this request.
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);
}

/// A frame's header (RFC 9113 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The payload's length.
    pub len: usize,
    /// The type ([`kind`]).
    pub kind: u8,
    /// The flags ([`flag`]).
    pub flags: u8,
    /// The stream, 0 for the connection (the reserved bit dropped).
    pub stream: u32,
}

impl Head {
    /// Reads a frame header.
    pub fn parse(bytes: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize,
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A frame, its payload borrowed from the read buffer. `stream` is always the frame's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Body bytes.
    Data {
        /// The stream.
        stream: u32,
        /// The peer's last frame on the stream.
        end_stream: bool,
        /// The bytes, padding taken off.
        data: &'a [u8],
        /// What flow control counts: the whole payload, padding included (RFC 9113 §6.1).
        flow_len: usize,
    },
    /// The first fragment of a header block.
    Headers {
        /// The stream.
        stream: u32,
        /// The peer's last frame on the stream (trailers, or an answer without a body).
        end_stream: bool,
        /// The block is complete; otherwise CONTINUATION frames follow, nothing else.
        end_headers: bool,
        /// The block's bytes, padding and priority fields taken off.
        fragment: &'a [u8],
    },
    /// A further fragment of the header block open on `stream`.
    Continuation {
        /// The stream.
        stream: u32,
        /// The block is complete.
        end_headers: bool,
        /// The block's next bytes.
        fragment: &'a [u8],
    },
    /// A deprecated priority signal: read and ignored (RFC 9113 §5.3.2).
    Priority {
        /// The stream.
        stream: u32,
    },
    /// The peer ended the stream.
    RstStream {
        /// The stream.
        stream: u32,
        /// Why; `REFUSED_STREAM` means it was never processed.
        code: ErrorCode,
    },
    /// The peer's settings, to apply and acknowledge.
    Settings(Settings<'a>),
    /// The peer acknowledged our settings.
    SettingsAck,
    /// A server push: this client's SETTINGS disable push, so it is a connection error.
    PushPromise {
        /// The stream it was promised on.
        stream: u32,
    },
    /// A PING to answer, or the answer to ours.
    Ping {
        /// An answer.
        ack: bool,
        /// What to echo, or what we sent.
        data: [u8; 8],
    },
    /// The peer is closing the connection.
    GoAway {
        /// The highest stream it may have processed: those above were not, and may be sent
        /// again elsewhere.
        last_stream: u32,
        /// Why.
        code: ErrorCode,
        /// The peer's free-form explanation (APNs: none; others: text).
        debug: &'a [u8],
    },
    /// More room in a flow-control window.
    WindowUpdate {
        /// The stream, or 0: the connection's window.
        stream: u32,
        /// The room added (never 0: that is refused).
        increment: u32,
    },
    /// A frame type this client does not know: ignored (RFC 9113 §4.1).
    Unknown {
        /// Its type.
        kind: u8,
    },
}

/// A frame the RFC makes an error, with what it ends: the stream or the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} (HTTP/2 error {code:?} on {})", if *.stream == 0 { "the connection".to_owned() } else { format!("stream {}", .stream) })]
pub struct FrameError {
    /// The code to send in RST_STREAM or GOAWAY.
    pub code: ErrorCode,
    /// The stream it ends, or 0: the connection (GOAWAY).
    pub stream: u32,
    /// What was wrong.
    pub what: &'static str,
}

impl FrameError {
    fn connection(code: ErrorCode, what: &'static str) -> FrameError {
        FrameError {
            code,
            stream: 0,
            what,
        }
    }
}

/// Reads the frame `head` announced from its `payload` (exactly `head.len` bytes), the
/// checks of RFC 9113 §4.2 and §6 applied. `max_frame_size` is what our SETTINGS allowed.
pub fn parse(head: Head, payload: &[u8], max_frame_size: usize) -> Result<Frame<'_>, FrameError> {
    use ErrorCode as E;
    let size_error = |what| FrameError::connection(E::FRAME_SIZE_ERROR, what);
    let protocol = |what| FrameError::connection(E::PROTOCOL_ERROR, what);
    debug_assert_eq!(head.len, payload.len());
    if head.len > max_frame_size {
        return Err(size_error("a frame over our SETTINGS_MAX_FRAME_SIZE"));
    }
    let stream = head.stream;
    let needs_stream = |what| {
        if stream == 0 {
            Err(protocol(what))
        } else {
            Ok(())
        }
    };
    let needs_connection = |what| {
        if stream == 0 {
            Ok(())
        } else {
            Err(protocol(what))
        }
    };
    Ok(match head.kind {
        kind::DATA => {
            needs_stream("DATA on stream 0")?;
            Frame::Data {
                stream,
                end_stream: head.has(flag::END_STREAM),
                data: unpadded(head, payload)?,
                flow_len: payload.len(),
            }
        }
        kind::HEADERS => {
            needs_stream("HEADERS on stream 0")?;
            let mut fragment = unpadded(head, payload)?;
            if head.has(flag::PRIORITY) {
                fragment = fragment
                    .get(5..)
                    .ok_or_else(|| size_error("HEADERS too short for its priority fields"))?;
            }
            Frame::Headers {
                stream,
                end_stream: head.has(flag::END_STREAM),
                end_headers: head.has(flag::END_HEADERS),
                fragment,
            }
        }
        kind::CONTINUATION => {
            needs_stream("CONTINUATION on stream 0")?;
            Frame::Continuation {
                stream,
                end_headers: head.has(flag::END_HEADERS),
                fragment: payload,
            }
        }
        kind::PRIORITY => {
            needs_stream("PRIORITY on stream 0")?;
            if payload.len() != 5 {
                // A stream error (RFC 9113 §6.3): only that stream ends.
                return Err(FrameError {
                    code: E::FRAME_SIZE_ERROR,
                    stream,
                    what: "PRIORITY of a length other than 5",
                });
            }
            Frame::Priority { stream }
        }
        kind::RST_STREAM => {
            needs_stream("RST_STREAM on stream 0")?;
            let code =
                be_u32(payload).ok_or_else(|| size_error("RST_STREAM of a length other than 4"))?;
            Frame::RstStream {
                stream,
                code: ErrorCode(code),
            }
        }
        kind::SETTINGS => {
            needs_connection("SETTINGS on a stream")?;
            if head.has(flag::ACK) {
                if !payload.is_empty() {
                    return Err(size_error("a SETTINGS acknowledgement with a payload"));
                }
                Frame::SettingsAck
            } else {
                Frame::Settings(
                    Settings::new(payload)
                        .ok_or_else(|| size_error("SETTINGS not a multiple of 6 bytes"))?,
                )
            }
        }
        kind::PUSH_PROMISE => {
            needs_stream("PUSH_PROMISE on stream 0")?;
            Frame::PushPromise { stream }
        }
        kind::PING => {
            needs_connection("PING on a stream")?;
            let data: [u8; 8] = payload
                .try_into()
                .map_err(|_| size_error("PING of a length other than 8"))?;
            Frame::Ping {
                ack: head.has(flag::ACK),
                data,
            }
        }
        kind::GOAWAY => {
            needs_connection("GOAWAY on a stream")?;
            if payload.len() < 8 {
                return Err(size_error("GOAWAY shorter than 8 bytes"));
            }
            Frame::GoAway {
                last_stream: be_u32(&payload[..4]).unwrap_or(0) & 0x7fff_ffff,
                code: ErrorCode(be_u32(&payload[4..8]).unwrap_or(0)),
                debug: &payload[8..],
            }
        }
        kind::WINDOW_UPDATE => {
            let increment = be_u32(payload)
                .ok_or_else(|| size_error("WINDOW_UPDATE of a length other than 4"))?
                & 0x7fff_ffff;
            if increment == 0 {
                // On a stream, only that stream ends (RFC 9113 §6.9).
                return Err(FrameError {
                    code: E::PROTOCOL_ERROR,
                    stream,
                    what: "a WINDOW_UPDATE of 0",
                });
            }
            Frame::WindowUpdate { stream, increment }
        }
        other => Frame::Unknown { kind: other },
    })
}

/// A DATA or HEADERS payload without its padding (RFC 9113 §6.1).
fn unpadded(head: Head, payload: &[u8]) -> Result<&[u8], FrameError> {
    if !head.has(flag::PADDED) {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or_else(|| {
        FrameError::connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "a padded frame with no pad length",
        )
    })?;
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|len| &rest[..len])
        .ok_or_else(|| {
            FrameError::connection(ErrorCode::PROTOCOL_ERROR, "padding longer than the payload")
        })
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    bytes.try_into().ok().map(u32::from_be_bytes)
}

/// Appends a frame header.
pub fn write_head(dst: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len < 1 << 24);
    dst.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    dst.push(kind);
    dst.push(flags);
    dst.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// Appends a header block as HEADERS and, past the peer's `max_frame_size`, CONTINUATION
/// frames; the last carries END_HEADERS.
pub fn write_headers(
    dst: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: usize,
) {
    let mut chunks = block.chunks(max_frame_size.max(1));
    let first = chunks.next().unwrap_or(&[]);
    let mut rest = chunks.peekable();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if rest.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    write_head(dst, first.len(), kind::HEADERS, flags, stream);
    dst.extend_from_slice(first);
    while let Some(chunk) = rest.next() {
        let flags = if rest.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        write_head(dst, chunk.len(), kind::CONTINUATION, flags, stream);
        dst.extend_from_slice(chunk);
    }
}

/// Appends `data` as DATA frames of at most `max_frame_size`; flow control is the caller's.
pub fn write_data(
    dst: &mut Vec<u8>,
    stream: u32,
    data: &[u8],
    end_stream: bool,
    max_frame_size: usize,
) {
    let mut chunks = data.chunks(max_frame_size.max(1)).peekable();
    if chunks.peek().is_none() {
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        write_head(dst, 0, kind::DATA, flags, stream);
        return;
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last && end_stream {
            flag::END_STREAM
        } else {
            0
        };
        write_head(dst, chunk.len(), kind::DATA, flags, stream);
        dst.extend_from_slice(chunk);
    }
}

/// Appends SETTINGS with `params` (identifier, value).
pub fn write_settings(dst: &mut Vec<u8>, params: &[(u16, u32)]) {
    write_head(dst, params.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in params {
        dst.extend_from_slice(&id.to_be_bytes());
        dst.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends the acknowledgement of the peer's SETTINGS.
pub fn write_settings_ack(dst: &mut Vec<u8>) {
    write_head(dst, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a PING, or the answer to one (`ack`, the same data).
pub fn write_ping(dst: &mut Vec<u8>, data: [u8; 8], ack: bool) {
    write_head(dst, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    dst.extend_from_slice(&data);
}

/// Appends a WINDOW_UPDATE (the connection's with `stream` 0).
pub fn write_window_update(dst: &mut Vec<u8>, stream: u32, increment: u32) {
    write_head(dst, 4, kind::WINDOW_UPDATE, 0, stream);
    dst.extend_from_slice(&(increment & 0x7fff_ffff).to_be_bytes());
}

/// Appends an RST_STREAM.
pub fn write_rst_stream(dst: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    write_head(dst, 4, kind::RST_STREAM, 0, stream);
    dst.extend_from_slice(&code.0.to_be_bytes());
}

/// Appends a GOAWAY: the last stream the peer opened that we processed (a client: 0).
pub fn write_goaway(dst: &mut Vec<u8>, last_stream: u32, code: ErrorCode) {
    write_head(dst, 8, kind::GOAWAY, 0, 0);
    dst.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    dst.extend_from_slice(&code.0.to_be_bytes());
}
