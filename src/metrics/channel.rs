//! The internal push channel's instruments (src/channel.rs; docs/architecture.md, "Internal push
//! channel"): connections, frames by type and outcome, acks, closes by reason, and rings that
//! fell back to the platform push. Kept apart from the catalog so that the channel's series
//! read as one group.

use super::vocabulary::{PUSH_KINDS, event_kind, labels};
use crate::vocab::{Outcome, Priority, PushKind};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use std::time::Duration;

/// WebSocket clients connected to this node.
pub const CONNECTIONS: &str = "ringcast_channel_connections";
/// Frames to clients, by type and outcome.
pub const MESSAGES_TOTAL: &str = "ringcast_channel_messages_total";
/// Acks from clients, by whether they came in time.
pub const ACKS_TOTAL: &str = "ringcast_channel_acks_total";
/// Rings offered over the channel that went to the platform push after all.
pub const FALLBACKS_TOTAL: &str = "ringcast_channel_fallbacks_total";
/// Connections the node closed or saw closed, by reason.
pub const CLOSES_TOTAL: &str = "ringcast_channel_closes_total";
/// Messages between nodes for devices connected to another node, by what happened.
pub const RELAYS_TOTAL: &str = "ringcast_channel_relays_total";
/// Time from a ring's offer over the channel to its ack in time.
pub const ACK_SECONDS: &str = "ringcast_channel_ack_seconds";

labels! {
    /// What became of a frame for a client (`ringcast_channel_messages_total{outcome}`).
    MessageOutcome {
        /// Queued for the client.
        Queued => "queued",
        /// Written to the client's connection.
        Sent => "sent",
        /// Not queued: the client's queue was full (the client is closed) or it was gone.
        Dropped => "dropped",
    }
}

labels! {
    /// When an ack came (`ringcast_channel_acks_total{outcome}`).
    AckOutcome {
        /// Within `[channel] ack_timeout_ms`: the platform push was not sent.
        InTime => "in_time",
        /// After it, or for an event this connection was not waiting for: ignored.
        Late => "late",
    }
}

labels! {
    /// Why a ring offered over the channel went to the platform push
    /// (`ringcast_channel_fallbacks_total{reason}`).
    FallbackReason {
        /// No ack within `[channel] ack_timeout_ms`.
        NoAck => "no_ack",
        /// The connection closed before the ack.
        Closed => "closed",
        /// The client's send queue was full: it was closed instead.
        SlowClient => "slow_client",
        /// The device is connected to another node, which could not be told (Redis failed)
        /// or no longer had it.
        Relay => "relay",
    }
}

labels! {
    /// A message between nodes about a device connected to one of them
    /// (`ringcast_channel_relays_total{outcome}`; src/channel/relay.rs).
    RelayOutcome {
        /// A ring or notice published for a device connected to another node.
        Sent => "sent",
        /// Publishing it failed (Redis unreachable): the platform push carries the ring.
        Failed => "failed",
        /// A ring or notice from another node, for a device connected here.
        Received => "received",
        /// Its device acked a relayed ring, and the ack went back to the ring's node.
        Acked => "acked",
        /// The device of a relayed ring is no longer connected here (or opted out): the
        /// ring's node was told, so it sends the platform push at once.
        Gone => "gone",
    }
}

labels! {
    /// Why a channel connection ended (`ringcast_channel_closes_total{reason}`).
    CloseCause {
        /// The client closed it or its connection dropped.
        Client => "client",
        /// The same device connected again: the new connection replaces this one.
        Replaced => "replaced",
        /// Nothing (not even a pong) came within `[channel] idle_timeout_ms`.
        Idle => "idle",
        /// Its send queue filled up (`[channel] send_queue`).
        SlowClient => "slow_client",
        /// A text frame that is not a valid client message.
        BadMessage => "bad_message",
        /// A binary or fragmented frame: the channel speaks JSON text frames.
        UnsupportedFrame => "unsupported_frame",
        /// A frame over `[channel] max_frame_bytes`.
        TooLarge => "too_large",
        /// A WebSocket protocol error.
        ProtocolError => "protocol_error",
        /// The identity was revoked.
        Revoked => "revoked",
    }
}

/// Describes the channel's metrics (the `# HELP` lines).
pub fn describe() {
    describe_histogram!(
        ACK_SECONDS,
        Unit::Seconds,
        "Time from a ring's offer over the internal push channel to the client's ack, for acks in time."
    );
    describe_gauge!(
        CONNECTIONS,
        Unit::Count,
        "WebSocket clients connected to this node's internal push channel."
    );
    describe_counter!(
        MESSAGES_TOTAL,
        Unit::Count,
        "Frames for channel clients, by type (incoming_call, call_ended, missed_call) and outcome (queued, sent, dropped)."
    );
    describe_counter!(
        ACKS_TOTAL,
        Unit::Count,
        "Acks from channel clients: in time (the platform push was not sent) or late."
    );
    describe_counter!(
        FALLBACKS_TOTAL,
        Unit::Count,
        "Rings offered over the channel that went to the platform push after all, by reason."
    );
    describe_counter!(
        CLOSES_TOTAL,
        Unit::Count,
        "Channel connections ended, by reason."
    );
    describe_counter!(
        RELAYS_TOTAL,
        Unit::Count,
        "Channel messages between nodes for devices connected to another node, by outcome."
    );
}

/// The `provider` label of rings delivered over the channel in `ringcast_pushes_total`: no
/// platform provider sent them, whatever the device's platform.
pub const PROVIDER: &str = "channel";

/// Registers every channel series at zero.
pub fn preregister() {
    for outcome in [
        Outcome::DeliveredInternal,
        Outcome::Rejected {
            reason: String::new(),
        },
    ] {
        counter!(super::catalog::PUSHES_TOTAL, "provider" => PROVIDER, "priority" => Priority::P0.label(), "outcome" => outcome.label())
            .absolute(0);
    }
    gauge!(CONNECTIONS).increment(0.0);
    let _ = histogram!(ACK_SECONDS);
    for kind in PUSH_KINDS {
        for outcome in MessageOutcome::ALL {
            counter!(MESSAGES_TOTAL, "type" => event_kind(kind), "outcome" => outcome.label())
                .absolute(0);
        }
    }
    for outcome in AckOutcome::ALL {
        counter!(ACKS_TOTAL, "outcome" => outcome.label()).absolute(0);
    }
    for reason in FallbackReason::ALL {
        counter!(FALLBACKS_TOTAL, "reason" => reason.label()).absolute(0);
    }
    for reason in CloseCause::ALL {
        counter!(CLOSES_TOTAL, "reason" => reason.label()).absolute(0);
    }
    for outcome in RelayOutcome::ALL {
        counter!(RELAYS_TOTAL, "outcome" => outcome.label()).absolute(0);
    }
}

/// A message between nodes had `outcome`.
pub fn relay(outcome: RelayOutcome) {
    counter!(RELAYS_TOTAL, "outcome" => outcome.label()).increment(1);
}

/// A client connected (`1`) or went away (`-1`).
pub fn connections(delta: i64) {
    gauge!(CONNECTIONS).increment(delta as f64);
}

/// A frame of `kind` for a client had `outcome`.
pub fn message(kind: PushKind, outcome: MessageOutcome) {
    counter!(MESSAGES_TOTAL, "type" => event_kind(kind), "outcome" => outcome.label()).increment(1);
}

/// An ack came.
pub fn ack(outcome: AckOutcome) {
    counter!(ACKS_TOTAL, "outcome" => outcome.label()).increment(1);
}

/// A ring offered over the channel `waited` for its ack, which came in time: what
/// `[channel] ack_timeout_ms` must stay above (most acks) and what a ring over the channel
/// costs on the node's side (queue, write, the client's read and answer).
pub fn acked_after(waited: Duration) {
    histogram!(ACK_SECONDS).record(waited.as_secs_f64());
}

/// A ring went to the platform push after being offered over the channel.
pub fn fallback(reason: FallbackReason) {
    counter!(FALLBACKS_TOTAL, "reason" => reason.label()).increment(1);
}

/// A connection ended.
pub fn closed(cause: CloseCause) {
    counter!(CLOSES_TOTAL, "reason" => cause.label()).increment(1);
}

/// A ring offered over the channel ended there: acked (`delivered_internal`), or
/// `rejected` for a device with no platform push to fall back to
/// (`ringcast_pushes_total{provider="channel"}`).
pub fn push_finished(outcome: &Outcome) {
    counter!(super::catalog::PUSHES_TOTAL, "provider" => PROVIDER, "priority" => Priority::P0.label(), "outcome" => outcome.label())
        .increment(1);
}
