//! One channel connection (over [`super::socket`]): writes the hub's frames to the client, reads its acks, pings it,
//! and closes it with a close code that says why (README, "Internal push channel").

use super::frame::ClientFrame;
use super::socket::{CloseCode, CloseReason, Incoming, ReadError, Reader, Writer};
use super::{Attached, Outbound};
use crate::metrics::channel::{self as metrics, AckOutcome, CloseCause, MessageOutcome};
use bytes::BytesMut;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long the closing handshake may take before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Rings a connection waits for acks of at once before it forgets those whose wait ended.
const PRUNE_ABOVE: usize = 64;

/// A connection's timing (`[channel]`).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How often the client is pinged.
    pub ping_every: Duration,
    /// How long the client may stay silent (no frame, no pong).
    pub idle_timeout: Duration,
    /// The largest frame the client may send.
    pub max_frame_bytes: usize,
}

/// The close code and reason the client sees for `cause` (RFC 6455 §7.4; 4000-4999 are the
/// application's own).
pub fn close_reason(cause: CloseCause) -> CloseReason {
    let code = match cause {
        CloseCause::Client => CloseCode::Normal,
        CloseCause::Idle => CloseCode::Other(4000),
        CloseCause::Replaced => CloseCode::Other(4001),
        CloseCause::SlowClient => CloseCode::Other(4002),
        CloseCause::Revoked => CloseCode::Other(4003),
        CloseCause::BadMessage => CloseCode::Policy,
        CloseCause::UnsupportedFrame => CloseCode::Unsupported,
        CloseCause::TooLarge => CloseCode::Size,
        CloseCause::ProtocolError => CloseCode::Protocol,
    };
    CloseReason {
        code,
        description: Some(cause.label().to_owned()),
    }
}

/// When a new connection's first ping is due: at a random point of its first interval, not a
/// whole interval after it connected. Clients that connected together (every client of a node
/// that restarted, or a load test's) would otherwise be pinged together forever: ten thousand
/// pings, pongs and presence renewals in one burst every interval, which measured as the
/// channel's worst ring latency (docs/performance.md, "Internal push channel benchmark").
fn first_ping(every: Duration) -> Instant {
    Instant::now() + every.mul_f64(fastrand::f64()).max(Duration::from_millis(1))
}

/// Runs the connection over `io` until it closes; `attached` leaves the hub as soon as the
/// connection starts closing. `already_read` holds what the client sent right after its handshake.
pub async fn run<IO>(io: IO, already_read: BytesMut, attached: Attached, timing: Timing)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, writer) = tokio::io::split(io);
    let mut reader = Reader::new(reader, already_read, timing.max_frame_bytes);
    let mut writer = Writer::new(writer);
    let mut attached = attached;
    let mut waiting: HashMap<std::sync::Arc<str>, oneshot::Sender<()>> = HashMap::new();
    let mut last_heard = Instant::now();
    let mut pings = tokio::time::interval_at(first_ping(timing.ping_every), timing.ping_every);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cause = loop {
        tokio::select! {
            biased;
            changed = attached.close.changed() => {
                match (changed, *attached.close.borrow()) {
                    (Ok(()), Some(cause)) => break cause,
                    (Ok(()), None) => continue,
                    // The hub's side is gone: only `attached` holds it, so this cannot happen.
                    (Err(_), _) => break CloseCause::Client,
                }
            }
            frame = attached.outbox.recv() => {
                // `attached` keeps the sender's connection in the hub, so the queue stays open.
                let Some(Outbound { text, kind, ack }) = frame else { break CloseCause::Client };
                if let Some((event_id, reply)) = ack {
                    if waiting.len() >= PRUNE_ABOVE {
                        waiting.retain(|_, reply| !reply.is_closed());
                    }
                    waiting.insert(event_id, reply);
                }
                // A client that does not read blocks this write; the close signal still wins.
                tokio::select! {
                    biased;
                    _ = attached.close.changed() => break attached.close.borrow().unwrap_or(CloseCause::Client),
                    written = writer.text(&text) => {
                        if written.is_err() {
                            break CloseCause::Client;
                        }
                        metrics::message(kind, MessageOutcome::Sent);
                    }
                }
            }
            incoming = reader.next() => {
                last_heard = Instant::now();
                match incoming {
                    None | Some(Ok(Incoming::Close)) => break CloseCause::Client,
                    Some(Ok(Incoming::Text(text))) => match ClientFrame::parse(&text) {
                        Ok(ClientFrame::Ack { event_id }) => {
                            let in_time = waiting
                                .remove(event_id.as_str())
                                .is_some_and(|reply| reply.send(()).is_ok());
                            metrics::ack(if in_time { AckOutcome::InTime } else { AckOutcome::Late });
                        }
                        Err(error) => {
                            tracing::debug!(%error, "channel client sent a bad message");
                            break CloseCause::BadMessage;
                        }
                    },
                    Some(Ok(Incoming::Ping(payload))) => {
                        if writer.pong(&payload).await.is_err() {
                            break CloseCause::Client;
                        }
                    }
                    Some(Ok(Incoming::Pong)) => {}
                    Some(Ok(Incoming::Unsupported)) => break CloseCause::UnsupportedFrame,
                    Some(Err(error)) if error.is_overflow() => break CloseCause::TooLarge,
                    Some(Err(ReadError::Io(_))) => break CloseCause::Client,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "channel protocol error");
                        break CloseCause::ProtocolError;
                    }
                }
            }
            _ = pings.tick() => {
                if last_heard.elapsed() >= timing.idle_timeout {
                    break CloseCause::Idle;
                }
                if writer.ping(b"").await.is_err() {
                    break CloseCause::Client;
                }
                // The heartbeat renews the device's presence for the other nodes.
                attached.renew_presence();
            }
        }
    };
    metrics::closed(cause);
    // Out of the hub first: rings must not wait on a connection that is closing.
    drop(attached);
    // The closing handshake (RFC 6455 §7.1): the node's close frame (the answer to the
    // client's own, or the reason it is closed), then the client's remaining bytes until it
    // closes its side. Bounded: a client that never finishes it is dropped.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if writer.close(close_reason(cause)).await.is_ok() {
            reader.discard_until_closed().await;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelHub;
    use crate::registry::IdentityKey;
    use actix_codec::Decoder;
    use actix_http::ws::{Codec, Frame};
    use tokio::io::{AsyncReadExt, duplex};

    /// Clients that connect at one instant are first pinged at different times, each within
    /// its first interval, so their pings (and presence renewals) never come as one burst.
    #[tokio::test(start_paused = true)]
    async fn connections_made_together_are_pinged_apart() {
        const CLIENTS: usize = 20;
        let every = Duration::from_secs(20);
        let timing = Timing {
            ping_every: every,
            idle_timeout: Duration::from_secs(60),
            max_frame_bytes: 4096,
        };
        let hub = ChannelHub::new(4);
        let connected = Instant::now();
        let mut first_pings = Vec::new();
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (mut near, far) = duplex(1024);
            let attached = hub.attach(
                IdentityKey::new("t", format!("u{client}")),
                "d".into(),
                false,
            );
            tokio::spawn(run(far, BytesMut::new(), attached, timing));
            clients.push(tokio::spawn(async move {
                let mut bytes = BytesMut::new();
                let mut codec = Codec::new().client_mode();
                loop {
                    if let Some(frame) = codec.decode(&mut bytes).expect("a frame") {
                        assert!(matches!(frame, Frame::Ping(_)), "{frame:?}");
                        return connected.elapsed();
                    }
                    assert!(near.read_buf(&mut bytes).await.expect("read") > 0);
                }
            }));
        }
        for client in clients {
            first_pings.push(client.await.expect("client"));
        }
        first_pings.sort();
        assert!(first_pings.iter().all(|at| *at <= every), "{first_pings:?}");
        // Uniform draws: 20 of them within a quarter of the interval would be one chance in 10^11.
        let spread = first_pings[CLIENTS - 1] - first_pings[0];
        assert!(spread > every / 4, "first pings bunched: {first_pings:?}");
    }
}
