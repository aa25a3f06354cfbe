//! An API connection whose writes `h2` batches.
//!
//! `h2` writes a DATA frame of 256 bytes or more as its own buffer, handed to a vectored write
//! after the frames before it, when the connection says it writes vectors (a `TcpStream`
//! does); it then writes the frames after it in another call. A ring's `?wait=true` answer is
//! a few hundred bytes, and actix-http ends every answer with a separate empty DATA frame
//! (END_STREAM), so each answer took two `writev`s: the head and body, then the 9-byte end
//! (one write in three on the API's sockets at the knee was such a lone end, 9, 18 or 27
//! bytes; docs/performance.md). Over a connection that does not claim vectored writes, `h2`
//! copies DATA frames up to 1 KiB into its buffer, so an answer's frames, and the answers
//! finished in the same turn of the worker, leave in one write. Longer bodies are written as
//! before.

use actix_http::Protocol;
use actix_http::error::DispatchError;
use actix_rt::net::TcpStream;
use actix_service::{ServiceFactory, ServiceFactoryExt, fn_service};
use actix_tls::accept::TlsError;
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream that writes one buffer at a time (`is_write_vectored` is false), so that `h2`
/// copies small DATA frames into its own write buffer instead of chaining them.
#[derive(Debug)]
pub struct CopiedWrites<T>(T);

impl<T> CopiedWrites<T> {
    /// The connection itself.
    pub fn get_ref(&self) -> &T {
        &self.0
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CopiedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(context, buffer)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CopiedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(context)
    }

    // `poll_write_vectored` and `is_write_vectored` keep their defaults: one buffer per call,
    // and `false`, which is the point.
}

/// What actix-http's `rustls_0_23_with_config` does — the TLS handshake within
/// `handshake_timeout` with ALPN `h2` and `http/1.1` offered, the protocol taken from ALPN,
/// `TCP_NODELAY` on — with the TLS stream wrapped in [`CopiedWrites`] before `http` serves
/// it: each write becomes one TLS record, where a chained DATA frame made a record of its own.
pub fn rustls<S>(
    mut config: rustls::ServerConfig,
    handshake_timeout: Duration,
    http: S,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (),
    Error = TlsError<io::Error, DispatchError>,
    InitError = (),
>
where
    S: ServiceFactory<
            (
                CopiedWrites<TlsStream<TcpStream>>,
                Protocol,
                Option<SocketAddr>,
            ),
            Config = (),
            Response = (),
            Error = DispatchError,
            InitError = (),
        >,
{
    let mut protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    protocols.extend_from_slice(&config.alpn_protocols);
    config.alpn_protocols = protocols;
    let mut acceptor = Acceptor::new(config);
    acceptor.set_handshake_timeout(handshake_timeout);
    acceptor
        .map_init_err(|_| unreachable!("the TLS acceptor's factory never fails to start"))
        .map_err(TlsError::into_service_error)
        .and_then(|io: TlsStream<TcpStream>| async move {
            let (tcp, session) = io.get_ref();
            let protocol = match session.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            no_delay(tcp);
            let peer = tcp.peer_addr().ok();
            Ok((CopiedWrites(io), protocol, peer))
        })
        .and_then(http.map_err(TlsError::Service))
}

/// Sets `TCP_NODELAY`: small answers on long-lived connections would otherwise wait for the
/// client's delayed ACK behind Nagle's algorithm. Not worth refusing the connection over, as
/// in actix-http.
fn no_delay(io: &TcpStream) {
    if let Err(error) = io.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set on an API connection");
    }
}

/// What actix-http's `tcp_auto_h2c` does — HTTP/2 with prior knowledge or HTTP/1.1 on one
/// plaintext port, told apart by the first bytes, `TCP_NODELAY` on — with the connection
/// wrapped in [`CopiedWrites`] before `http` serves it.
pub fn tcp_auto_h2c<S>(
    http: S,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
where
    S: ServiceFactory<
            (CopiedWrites<TcpStream>, Protocol, Option<SocketAddr>),
            Config = (),
            Response = (),
            Error = DispatchError,
            InitError = (),
        >,
{
    fn_service(|io: TcpStream| async move {
        // The start of the HTTP/2 connection preface (RFC 9113 §3.4), as actix-http peeks it.
        const H2_PREFACE: &[u8] = b"PRI * HTTP/2";
        let mut start = [0; 12];
        io.peek(&mut start).await?;
        let protocol = if start == H2_PREFACE {
            Protocol::Http2
        } else {
            Protocol::Http1
        };
        no_delay(&io);
        let peer = io.peer_addr().ok();
        Ok((CopiedWrites(io), protocol, peer))
    })
    .and_then(http)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_one_buffer_at_a_time_and_passes_both_ways() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut near = CopiedWrites(near);
        // What makes h2 copy small DATA frames into its buffer instead of chaining them.
        assert!(!near.is_write_vectored());
        near.write_all(b"answer").await.unwrap();
        let mut read = [0; 6];
        far.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"answer");
        far.write_all(b"request").await.unwrap();
        let mut read = [0; 7];
        near.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"request");
    }
}
