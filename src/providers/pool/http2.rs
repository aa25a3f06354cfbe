//! An HTTP/2 connection spoken with the `h2` crate directly, not through hyper's client.
//!
//! hyper's HTTP/2 client hands each request to the connection's task over a channel, and that
//! task spawns one more task per request to await the answer and pass it back over a oneshot:
//! a spawn and two task hops per push, on the path every ring takes. Here the task that sends
//! a push awaits its own answer: opening the stream takes h2's connection lock once, and the
//! connection's task is woken only to write the frames and to read the answer.
//!
//! What hyper did that this module now does: a PING every `keep_alive_interval` (also while
//! idle) and the connection ended when one is not answered within `keep_alive_timeout`;
//! `content-length` on a request with a body; the flow-control window given back as an
//! answer body is read; the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` read as the connection is
//! driven (the pool's own stream limit, module doc of `providers::pool`); no server push.

use super::{Answer, PoolSettings, RESPONSE_BODY_LIMIT};
use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{Ping, PingPong, RecvStream};
use http::HeaderValue;
use http::header::CONTENT_LENGTH;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The largest header block accepted in an answer: push services answer with a handful of
/// headers (hyper's client default, which this replaces).
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum Ended {
    /// The connection failed or was closed with an error.
    #[error("{0}")]
    Connection(h2::Error),
    /// A PING went unanswered: the peer (or the path to it) is wedged.
    #[error("no answer to a PING within {0:?}")]
    PingTimeout(Duration),
}

/// The HTTP/2 handshake over `io`. Returns the request handle and the future that drives the
/// connection, which keeps `limit` at the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` and PINGs
/// the peer per `settings`.
pub(super) async fn handshake<T>(
    io: T,
    settings: &PoolSettings,
    limit: Arc<AtomicUsize>,
) -> Result<
    (
        SendRequest<Bytes>,
        impl Future<Output = Result<(), Ended>> + Send + use<T>,
    ),
    h2::Error,
>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, mut connection) = h2::client::Builder::new()
        // One stream until the peer's SETTINGS say more (APNs starts at 1).
        .initial_max_send_streams(1)
        .enable_push(false)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .handshake::<T, Bytes>(io)
        .await?;
    let pings = connection.ping_pong();
    let (interval, timeout) = (settings.keep_alive_interval, settings.keep_alive_timeout);
    let driving = async move {
        let run = std::future::poll_fn(|cx| {
            let polled = Pin::new(&mut connection).poll(cx);
            limit.store(connection.max_concurrent_send_streams(), Ordering::Relaxed);
            polled
        });
        let watchdog = async {
            match pings {
                Some(pings) => keep_alive(pings, interval, timeout).await,
                // Taken once per connection, and this is the only taker: always there.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = run => ended.map_err(Ended::Connection),
            dead = watchdog => Err(dead),
        }
    };
    Ok((sender, driving))
}

/// PINGs the peer every `interval` and returns when one is not answered within `timeout`
/// (or the connection can no longer carry one).
async fn keep_alive(mut pings: PingPong, interval: Duration, timeout: Duration) -> Ended {
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, pings.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(error)) => return Ended::Connection(error),
            Err(_) => return Ended::PingTimeout(timeout),
        }
    }
}

/// How an exchange failed: before the request was handed to the connection (nothing of it
/// can have reached the server), or after.
#[derive(Debug)]
pub enum Failed {
    /// The connection could not open a stream.
    NotSent(h2::Error),
    /// The stream was opened; its answer did not come.
    Sent(h2::Error),
}

impl Failed {
    /// h2's error, whichever side of sending it came from.
    pub fn into_error(self) -> h2::Error {
        match self {
            Failed::NotSent(error) | Failed::Sent(error) => error,
        }
    }
}

/// Sends `request` (an absolute URI: h2 takes `:scheme` and `:authority` from it) on a new
/// stream of `sender`'s connection and returns the answer's head, its body still to read
/// ([`read_body`]). Also the load generator's h2c request.
pub async fn request(
    sender: SendRequest<Bytes>,
    request: http::Request<Bytes>,
) -> Result<http::Response<RecvStream>, Failed> {
    let mut sender = sender.ready().await.map_err(Failed::NotSent)?;
    let (mut head, body) = request.into_parts();
    let end_of_stream = body.is_empty();
    if !end_of_stream && !head.headers.contains_key(CONTENT_LENGTH) {
        head.headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let (response, mut stream) = sender
        .send_request(http::Request::from_parts(head, ()), end_of_stream)
        .map_err(Failed::NotSent)?;
    if !end_of_stream {
        // Buffered by h2 and written as the peer's window allows: a push is a few KiB.
        stream.send_data(body, true).map_err(Failed::Sent)?;
    }
    response.await.map_err(Failed::Sent)
}

/// [`request`], then the answer's body up to the pool's limit (a longer or broken body is
/// read as empty: the status decides).
pub(super) async fn exchange(
    sender: SendRequest<Bytes>,
    request: http::Request<Bytes>,
) -> Result<Answer, Failed> {
    let (head, mut body) = self::request(sender, request).await?.into_parts();
    Ok(Answer {
        status: head.status.as_u16(),
        headers: head.headers,
        body: read_body(&mut body, RESPONSE_BODY_LIMIT)
            .await
            .unwrap_or_default(),
    })
}

/// An answer's body, its flow-control window given back as it is read (h2 returns a closed
/// stream's window by itself; a body longer than the stream's window would stall without
/// this); `None` when it is longer than `limit` bytes or breaks off. Also the load generator's, which speaks h2c with `h2` for the same reason.
pub async fn read_body(body: &mut RecvStream, limit: usize) -> Option<Bytes> {
    // Most answers have no body (APNs' 200) or one DATA frame: no copy for either.
    let mut whole: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.ok()?;
        let _ = body.flow_control().release_capacity(chunk.len());
        let read = whole.as_ref().map_or(joined.len(), Bytes::len) + chunk.len();
        if read > limit {
            return None;
        }
        match whole.take() {
            None if joined.is_empty() => whole = Some(chunk),
            first => {
                if let Some(first) = first {
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&chunk);
            }
        }
    }
    Some(whole.unwrap_or_else(|| joined.freeze()))
}
