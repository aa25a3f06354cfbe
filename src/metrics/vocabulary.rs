//! The bounded label values that are not already the crate's own types: each is an enum with
//! its `label()`, and `ALL` for pre-registration.

use crate::registry::StoreError;
use crate::vocab::{Platform, PushKind};

/// Declares a label enum: its variants, their label spelling, and `ALL`.
macro_rules! labels {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, for pre-registering the series.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The label value.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }
    };
}

/// Lets sibling modules (src/metrics/channel.rs) declare their label enums the same way.
pub(super) use labels;

labels! {
    /// Which share of the node's request limit an API request may use
    /// (`ringcast_requests_refused_total{route}`; src/api/intake.rs).
    IntakeRoute {
        /// `POST /v1/calls`: refused only at the limit.
        Ring => "ring",
        /// `POST /v1/calls/{call_id}/end`: refused from three quarters.
        End => "end",
        /// Registrations and the rest: refused from half.
        Other => "other",
    }
}

labels! {
    /// Why the API's connection limits refused a client
    /// (`ringcast_connections_refused_total{reason}`; src/api/connection.rs).
    ConnectionRefusal {
        /// A connection closed by the node before its first request arrived, after at least
        /// `client_request_timeout_ms`: a slow (slowloris) or silent client, cut off.
        RequestTimeout => "request_timeout",
        /// A request over its connection's `max_streams_per_connection` (`503`).
        Streams => "streams",
        /// A request head over `max_header_bytes` (`431`).
        HeaderSize => "header_size",
    }
}

labels! {
    /// The state of a provider's HTTP/2 connection (`ringcast_connections{state}`).
    ConnectionState {
        /// Connected, taking streams.
        Open => "open",
        /// TCP/TLS/HTTP/2 handshake under way.
        Connecting => "connecting",
        /// Takes no new streams (GOAWAY received, or being replaced); finishing its streams.
        Draining => "draining",
    }
}

impl RetryReason {
    /// The retry reason of a provider's or the connection pool's own reason label: the
    /// pool's "never processed" reasons (GOAWAY, refused stream, closed before sending) are
    /// `refused_stream`, a lost answer is `connection_lost`, throttling is
    /// `too_many_requests`, and every other server failure `status_5xx`.
    pub fn of(reason: &str) -> RetryReason {
        match reason {
            "goaway" | "refused_stream" | "connection_closed" => RetryReason::RefusedStream,
            "stream_reset" | "connection_lost" => RetryReason::ConnectionLost,
            "timeout" => RetryReason::Timeout,
            "idle_timeout" => RetryReason::IdleTimeout,
            "expired_provider_token" => RetryReason::ExpiredProviderToken,
            "too_many_requests" | "too_many_provider_token_updates" | "quota_exceeded" => {
                RetryReason::TooManyRequests
            }
            _ => RetryReason::Status5xx,
        }
    }
}

labels! {
    /// Why a push is sent again (`ringcast_retries_total{reason}`).
    RetryReason {
        /// The push service answered 5xx (APNs 500/503, FCM INTERNAL/UNAVAILABLE, ...).
        Status5xx => "status_5xx",
        /// The push service answered 429 (FCM QUOTA_EXCEEDED, APNs TooManyRequests).
        TooManyRequests => "too_many_requests",
        /// The connection broke (reset, GOAWAY, TLS error) before the answer came.
        ConnectionLost => "connection_lost",
        /// The peer refused the HTTP/2 stream (REFUSED_STREAM: it was never processed).
        RefusedStream => "refused_stream",
        /// No answer within the request timeout.
        Timeout => "timeout",
        /// APNs `IdleTimeout`: the connection sat idle too long.
        IdleTimeout => "idle_timeout",
        /// APNs `ExpiredProviderToken`: the JWT was refreshed and the push sent again.
        ExpiredProviderToken => "expired_provider_token",
    }
}

labels! {
    /// How a credential refresh went (`ringcast_credential_refresh_total{outcome}`).
    RefreshOutcome {
        /// A new credential is in use.
        Ok => "ok",
        /// The refresh failed (token endpoint unreachable, key refused, ...).
        Error => "error",
    }
}

labels! {
    /// A step in the life of a call event's lease (`ringcast_event_leases_total{outcome}`,
    /// src/router/ownership.rs).
    LeaseOutcome {
        /// The node claimed a new event.
        Owned => "owned",
        /// The node took over an event whose owner's lease lapsed.
        TakenOver => "taken_over",
        /// Another owner (or this router) holds the event, or it finished: nothing sent.
        Duplicate => "duplicate",
        /// The node gave a claim back (the event could not be routed).
        Released => "released",
        /// Every device of an owned event has an outcome.
        Finished => "finished",
        /// Another node took over an event this node still had in flight.
        Lost => "lost",
        /// The node stopped before every device had an outcome and ended its lease.
        HandedOver => "handed_over",
        /// A lease operation failed in the store.
        StoreError => "store_error",
        /// A lapsed lease of another node was not taken over: this node saw the store fail
        /// within the last two leases, so the owner may be alive (src/router/outages.rs). The
        /// event is answered `503`, or its entry left pending, and asked for again later.
        TakeoverWithheld => "takeover_withheld",
    }
}

labels! {
    /// A call-end notice between nodes (`ringcast_end_broadcasts_total{outcome}`,
    /// src/router/ends.rs).
    EndBroadcast {
        /// This node told the others that a call ended.
        Published => "published",
        /// It could not (Redis unreachable): other nodes' queued rings may go out.
        Failed => "failed",
        /// Another node's notice arrived here.
        Received => "received",
        /// A notice withdrew rings queued here.
        Withdrew => "withdrew",
    }
}

labels! {
    /// How a configuration reload went (`ringcast_config_reloads_total{outcome}`).
    ReloadOutcome {
        /// The new configuration is in use.
        Applied => "applied",
        /// The new configuration was invalid (or unreadable): the old one stays in use.
        Refused => "refused",
    }
}

labels! {
    /// What became of a call event (`ringcast_events_total{outcome}`).
    EventOutcome {
        /// Turned into pushes.
        Accepted => "accepted",
        /// An event id already seen: it rings once.
        Duplicate => "duplicate",
        /// The callee has no live registration.
        NoDevices => "no_devices",
        /// Refused: bad input.
        Invalid => "invalid",
        /// Refused: a full queue or mailbox (backpressure).
        Busy => "busy",
        /// Refused: the store could not be reached.
        Unavailable => "unavailable",
    }
}

labels! {
    /// A registry operation (`ringcast_registrations_total{op}`, `ringcast_registry_op_seconds{op}`).
    RegistryOp {
        /// A new device registered (or a failed register/refresh, which cannot tell which).
        Register => "register",
        /// An existing device registered again (its TTL renewed).
        Refresh => "refresh",
        /// An identity's devices listed (the API, and the router's lookup per call).
        List => "list",
        /// One device unregistered.
        Unregister => "unregister",
        /// Every device of an identity deleted.
        Revoke => "revoke",
        /// A push service's dead-token verdict acted on.
        RemoveDeadToken => "remove_dead_token",
    }
}

labels! {
    /// How a registry operation ended (`ringcast_registrations_total{outcome}`).
    RegistryOutcome {
        /// Done.
        Ok => "ok",
        /// No such (live) registration: an unregister or dead-token removal that found none.
        NotFound => "not_found",
        /// The identity already has the most devices allowed.
        TooManyDevices => "too_many_devices",
        /// The store could not be reached or did not answer in time.
        Unavailable => "unavailable",
        /// The store holds data this build cannot read.
        Corrupt => "corrupt",
        /// The operation panicked (a bug); the shard restarts.
        Bug => "bug",
        /// The API refused the request's input before it reached the registry.
        Invalid => "invalid",
        /// The identity's shard did not take or answer it within the wait bound (a full
        /// mailbox: backpressure), or the shard was stopping.
        Busy => "busy",
    }
}

impl RegistryOutcome {
    /// The outcome of a store error.
    pub fn of_error(error: &StoreError) -> RegistryOutcome {
        match error {
            StoreError::Unavailable(_) => RegistryOutcome::Unavailable,
            StoreError::TooManyDevices { .. } => RegistryOutcome::TooManyDevices,
            StoreError::Corrupt(_) => RegistryOutcome::Corrupt,
            StoreError::Bug(_) => RegistryOutcome::Bug,
        }
    }
}

/// The `kind` label of a call event: its push kind, spelled as in the payload's `type`.
pub fn event_kind(kind: PushKind) -> &'static str {
    match kind {
        PushKind::IncomingCall => "incoming_call",
        PushKind::CallEnded => "call_ended",
        PushKind::MissedCall => "missed_call",
    }
}

/// Every `kind` of call event.
pub(crate) const PUSH_KINDS: [PushKind; 3] = [
    PushKind::IncomingCall,
    PushKind::CallEnded,
    PushKind::MissedCall,
];

/// The documented dead-token reasons of each push service (docs/protocols.md).
pub(crate) fn dead_token_reasons(provider: Platform) -> &'static [&'static str] {
    match provider {
        // DeviceTokenNotForTopic is not here: it blames the sender's topic, not the token.
        Platform::Apns => &["BadDeviceToken", "ExpiredToken", "Unregistered"],
        Platform::Fcm => &["UNREGISTERED", "INVALID_ARGUMENT"],
        Platform::Wns | Platform::Webpush => &["404", "410"],
    }
}

/// The `reason` label of a dead-token verdict: `reason` itself when it is one the push
/// service documents, `unknown` otherwise (so a new or garbled reason cannot add series).
pub fn dead_token_reason(provider: Platform, reason: &str) -> &'static str {
    dead_token_reasons(provider)
        .iter()
        .find(|known| **known == reason)
        .copied()
        .unwrap_or("unknown")
}

/// The reasons of `ringcast_push_config_errors_total{reason}`: the push services' answers that
/// blame the sender's configuration or credential (a wrong bundle id or project, a refused
/// key), never the device. A reason outside the list is counted as `other`.
pub(crate) fn config_error_reasons(provider: Platform) -> &'static [&'static str] {
    match provider {
        Platform::Apns => &[
            "DeviceTokenNotForTopic",
            "BadTopic",
            "TopicDisallowed",
            "BadCertificate",
            "BadCertificateEnvironment",
            "BadEnvironmentKeyInToken",
            "ExpiredProviderToken",
            "Forbidden",
            "InvalidProviderToken",
            "MissingProviderToken",
        ],
        Platform::Fcm => &[
            "SENDER_ID_MISMATCH",
            "THIRD_PARTY_AUTH_ERROR",
            "PERMISSION_DENIED",
            "UNAUTHENTICATED",
        ],
        Platform::Wns | Platform::Webpush => &["401", "403"],
    }
}

/// The `reason` label of a configuration error: `reason` itself when it is one of
/// [`config_error_reasons`], `other` otherwise (a credential error's text is not a label).
pub fn config_error_reason(provider: Platform, reason: &str) -> &'static str {
    config_error_reasons(provider)
        .iter()
        .find(|known| **known == reason)
        .copied()
        .unwrap_or("other")
}
