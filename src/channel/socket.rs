//! The server side of one channel WebSocket (RFC 6455) over the connection's own socket, with
//! buffers sized for what the channel carries.
//!
//! Why not actix-ws: it keeps actix-http's HTTP/1.1 dispatcher alive under the WebSocket,
//! with its 8 KiB read and 8 KiB write buffers, a frame queue between the session and the
//! dispatcher and a second task hop for every frame. A channel connection is idle nearly all
//! its life and carries a few hundred bytes at a time, so that was most of its memory
//! (README, "Internal push channel"). Here the session owns the socket once the handshake is
//! answered ([`crate::api::channel::upgrade`]): frames are parsed and built by actix-http's
//! own WebSocket codec, the read buffer starts small and shrinks back after a large frame, and
//! a frame is written straight from the session's task.

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, OpCode, Parser, ProtocolError};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use actix_http::ws::{CloseCode, CloseReason};

/// What an idle connection's read buffer holds room for: an ack frame is about 60 bytes.
const READ_BUFFER: usize = 256;
/// A buffer that grew beyond this for one large frame is given back once the frame is read.
const KEEP_AT_MOST: usize = 4096;

/// A frame from the client.
#[derive(Debug)]
pub enum Incoming {
    /// A text frame (UTF-8 checked).
    Text(String),
    /// A ping, with its payload to echo.
    Ping(bytes::Bytes),
    /// A pong.
    Pong,
    /// The client's close frame.
    Close,
    /// A binary or fragmented message: the channel carries single text frames only.
    Unsupported,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The frame broke RFC 6455 (or exceeded the size limit: [`ReadError::is_overflow`]).
    #[error("WebSocket protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A text frame that is not UTF-8.
    #[error("a text frame that is not UTF-8")]
    NotUtf8,
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

impl ReadError {
    /// The client sent a frame over the size limit.
    pub fn is_overflow(&self) -> bool {
        matches!(self, ReadError::Protocol(ProtocolError::Overflow))
    }
}

/// The read side of a channel socket.
pub struct Reader<R> {
    io: R,
    buffer: BytesMut,
    codec: Codec,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads frames from `io`, starting with `already_read` (bytes the client sent right after
    /// its handshake, read by the HTTP layer) and refusing frames over `max_frame_bytes`.
    pub fn new(io: R, already_read: BytesMut, max_frame_bytes: usize) -> Self {
        let buffer = if already_read.is_empty() {
            BytesMut::new()
        } else {
            already_read
        };
        Self {
            io,
            buffer,
            codec: Codec::new().max_size(max_frame_bytes),
        }
    }

    /// The next frame; `None` when the client closed the socket.
    ///
    /// Cancel-safe: bytes read before a cancellation stay in the buffer for the next call.
    pub async fn next(&mut self) -> Option<Result<Incoming, ReadError>> {
        loop {
            match self.codec.decode(&mut self.buffer) {
                Ok(Some(frame)) => {
                    self.give_back_room();
                    return Some(incoming(frame));
                }
                Ok(None) => {}
                Err(error) => return Some(Err(error.into())),
            }
            if self.buffer.capacity() - self.buffer.len() < READ_BUFFER / 4 {
                self.buffer.reserve(READ_BUFFER.max(self.buffer.len()));
            }
            match self.io.read_buf(&mut self.buffer).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => return Some(Err(error.into())),
            }
        }
    }

    /// Reads and drops whatever the client still sends until it closes its side: after the
    /// node's close frame, so that unread bytes (a frame refused as too large, the client's
    /// own close frame) do not make the kernel reset the connection before the client read
    /// why it was closed.
    pub async fn discard_until_closed(&mut self) {
        loop {
            self.buffer.clear();
            if self.buffer.capacity() < READ_BUFFER {
                self.buffer.reserve(READ_BUFFER);
            }
            match self.io.read_buf(&mut self.buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Drops a buffer that grew for a large frame once nothing is left in it.
    fn give_back_room(&mut self) {
        if self.buffer.is_empty() && self.buffer.capacity() > KEEP_AT_MOST {
            self.buffer = BytesMut::new();
        }
    }
}

fn incoming(frame: Frame) -> Result<Incoming, ReadError> {
    Ok(match frame {
        Frame::Text(bytes) => {
            Incoming::Text(String::from_utf8(bytes.to_vec()).map_err(|_| ReadError::NotUtf8)?)
        }
        Frame::Ping(payload) => Incoming::Ping(payload),
        Frame::Pong(_) => Incoming::Pong,
        Frame::Close(_) => Incoming::Close,
        Frame::Binary(_) | Frame::Continuation(_) => Incoming::Unsupported,
    })
}

/// The write side of a channel socket: each call writes one whole frame and flushes it.
pub struct Writer<W> {
    io: W,
    buffer: BytesMut,
    /// A write was cancelled part-way: the stream holds a partial frame, so nothing more
    /// (not even a close frame) may follow it.
    torn: bool,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Writes frames to `io`.
    pub fn new(io: W) -> Self {
        Self {
            io,
            buffer: BytesMut::new(),
            torn: false,
        }
    }

    /// Sends a text frame.
    pub async fn text(&mut self, text: &str) -> std::io::Result<()> {
        self.frame(OpCode::Text, text.as_bytes()).await
    }

    /// Sends a ping.
    pub async fn ping(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.frame(OpCode::Ping, payload).await
    }

    /// Answers a ping.
    pub async fn pong(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.frame(OpCode::Pong, payload).await
    }

    /// Sends a close frame with `reason` (unless an earlier write was cancelled part-way) and
    /// closes the node's side of the socket.
    pub async fn close(&mut self, reason: CloseReason) -> std::io::Result<()> {
        if !self.torn {
            self.buffer.clear();
            Parser::write_close(&mut self.buffer, Some(reason), false);
            self.flush_buffer().await?;
        }
        self.io.shutdown().await
    }

    async fn frame(&mut self, op: OpCode, payload: &[u8]) -> std::io::Result<()> {
        if self.torn {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        self.buffer.clear();
        Parser::write_message(&mut self.buffer, payload, op, true, false);
        self.flush_buffer().await
    }

    async fn flush_buffer(&mut self) -> std::io::Result<()> {
        // Marked torn until the whole frame is out: a cancellation in between leaves it set.
        self.torn = true;
        self.io.write_all(&self.buffer).await?;
        self.io.flush().await?;
        self.torn = false;
        if self.buffer.capacity() > KEEP_AT_MOST {
            self.buffer = BytesMut::new();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// A client's masked frame (RFC 6455 §5.3: a client masks every frame).
    fn client_frame(op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut buffer = BytesMut::new();
        Parser::write_message(&mut buffer, payload, op, true, true);
        buffer.to_vec()
    }

    #[tokio::test]
    async fn reads_frames_split_across_reads_and_keeps_the_bytes_read_before_the_socket() {
        let (mut client, server) = duplex(64);
        let ack = client_frame(OpCode::Text, br#"{"type":"ack","event_id":"e1"}"#);
        let (head, tail) = ack.split_at(5);
        let tail = tail.to_vec();
        let mut reader = Reader::new(server, BytesMut::from(head), 1024);
        let writing = tokio::spawn(async move {
            for byte in tail {
                client.write_all(&[byte]).await.unwrap();
            }
            client
                .write_all(&client_frame(OpCode::Ping, b"hi"))
                .await
                .unwrap();
            client
        });
        match reader.next().await {
            Some(Ok(Incoming::Text(text))) => assert_eq!(text, r#"{"type":"ack","event_id":"e1"}"#),
            other => panic!("expected the ack, got {other:?}"),
        }
        match reader.next().await {
            Some(Ok(Incoming::Ping(payload))) => assert_eq!(&payload[..], b"hi"),
            other => panic!("expected a ping, got {other:?}"),
        }
        drop(writing.await.unwrap());
        assert!(
            reader.next().await.is_none(),
            "the client closed the socket"
        );
    }

    #[tokio::test]
    async fn refuses_unmasked_oversized_and_non_utf8_frames_and_flags_binary_ones() {
        let unmasked = {
            let mut buffer = BytesMut::new();
            Parser::write_message(&mut buffer, b"x", OpCode::Text, true, false);
            buffer
        };
        let (_client, server) = duplex(64);
        let mut reader = Reader::new(server, unmasked, 1024);
        assert!(matches!(
            reader.next().await,
            Some(Err(ReadError::Protocol(_)))
        ));

        let (_client, server) = duplex(64);
        let big = BytesMut::from(&client_frame(OpCode::Text, &[b'a'; 200])[..]);
        let mut reader = Reader::new(server, big, 100);
        assert!(reader.next().await.unwrap().unwrap_err().is_overflow());

        let (_client, server) = duplex(64);
        let bad = BytesMut::from(&client_frame(OpCode::Text, &[0xff, 0xfe])[..]);
        let mut reader = Reader::new(server, bad, 100);
        assert!(matches!(reader.next().await, Some(Err(ReadError::NotUtf8))));

        let (_client, server) = duplex(64);
        let binary = BytesMut::from(&client_frame(OpCode::Binary, b"\x00")[..]);
        let mut reader = Reader::new(server, binary, 100);
        assert!(matches!(
            reader.next().await,
            Some(Ok(Incoming::Unsupported))
        ));
    }

    #[tokio::test]
    async fn a_large_frame_is_read_and_its_room_given_back() {
        let (_client, server) = duplex(64);
        let large = BytesMut::from(&client_frame(OpCode::Text, &[b'a'; 10_000])[..]);
        let mut reader = Reader::new(server, large, 65_536);
        assert!(
            matches!(reader.next().await, Some(Ok(Incoming::Text(text))) if text.len() == 10_000)
        );
        assert!(reader.buffer.capacity() <= KEEP_AT_MOST);
    }

    #[tokio::test]
    async fn writes_unmasked_frames_the_client_codec_reads_back() {
        let (client, server) = duplex(1024);
        let mut writer = Writer::new(server);
        writer.text("hello").await.unwrap();
        writer.ping(b"").await.unwrap();
        writer
            .close(CloseReason {
                code: CloseCode::Other(4000),
                description: Some("idle".into()),
            })
            .await
            .unwrap();
        let mut bytes = BytesMut::new();
        let mut client = client;
        client.read_buf(&mut bytes).await.unwrap();
        let mut codec = Codec::new().client_mode();
        assert!(
            matches!(codec.decode(&mut bytes).unwrap(), Some(Frame::Text(text)) if &text[..] == b"hello")
        );
        assert!(matches!(
            codec.decode(&mut bytes).unwrap(),
            Some(Frame::Ping(_))
        ));
        match codec.decode(&mut bytes).unwrap() {
            Some(Frame::Close(Some(reason))) => {
                assert_eq!(reason.code, CloseCode::Other(4000));
                assert_eq!(reason.description.as_deref(), Some("idle"));
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
    }
}
