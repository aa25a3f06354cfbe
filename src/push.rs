//! The vocabulary between the router and the providers: what a push is, how urgent, and what
//! became of it.
//!
//! A call event becomes one [`Push`] per device; every push of one event shares one
//! [`CallPayload`] (an `Arc`), so fanning out to five devices copies no payload. A provider
//! answers every push with exactly one [`Outcome`].

use crate::registry::{Environment, IdentityKey, PushAddress, UnixMillis};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How urgent a push is. Lower sorts first: a higher priority is always served first, and
/// under overload the lowest priority is shed first (docs/architecture.md, "Priorities, deadlines and overload").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Incoming call: the phone must ring.
    P0 = 0,
    /// Call ended before it was answered here: stop ringing.
    P1 = 1,
    /// Missed-call notice.
    P2 = 2,
}

impl Priority {
    /// Every priority, most urgent first (queue arrays are indexed by `as usize`).
    pub const ALL: [Priority; 3] = [Priority::P0, Priority::P1, Priority::P2];

    /// The metric label (`p0`, `p1`, `p2`).
    pub fn label(self) -> &'static str {
        match self {
            Priority::P0 => "p0",
            Priority::P1 => "p1",
            Priority::P2 => "p2",
        }
    }
}

/// What a push tells the device; it decides the priority and each platform's push type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// Ring: APNs `voip`, FCM data HIGH, WNS raw, Web Push urgency high.
    IncomingCall,
    /// Stop ringing. Never an APNs `voip` push: iOS 13+ requires every VoIP push to be
    /// reported to CallKit as a new call (docs/protocols.md).
    CallEnded,
    /// A call nobody took: APNs alert priority 5, FCM NORMAL, Web Push urgency normal.
    MissedCall,
}

impl PushKind {
    /// The priority class of this kind of push.
    pub fn priority(self) -> Priority {
        match self {
            PushKind::IncomingCall => Priority::P0,
            PushKind::CallEnded => Priority::P1,
            PushKind::MissedCall => Priority::P2,
        }
    }
}

/// Why a call ended, as the device is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The caller hung up before anyone answered.
    Cancelled,
    /// Another device of the callee answered.
    AnsweredElsewhere,
    /// Another device of the callee declined.
    DeclinedElsewhere,
    /// Nobody answered before the ring timeout.
    Missed,
}

impl EndReason {
    /// The name call control and devices use (`answered_elsewhere`, ...).
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Cancelled => "cancelled",
            EndReason::AnsweredElsewhere => "answered_elsewhere",
            EndReason::DeclinedElsewhere => "declined_elsewhere",
            EndReason::Missed => "missed",
        }
    }

    /// The push an end sends: a missed-call notice when nobody answered, "call ended"
    /// otherwise.
    pub fn kind(self) -> PushKind {
        match self {
            EndReason::Missed => PushKind::MissedCall,
            _ => PushKind::CallEnded,
        }
    }
}

/// The payload every device receives (docs/architecture.md): APNs puts it under `"ringcast"`, FCM sends
/// it as string `data`, WNS as raw JSON, Web Push encrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallPayload {
    /// Payload format version: 1.
    pub v: u8,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: PushKind,
    /// The call, as call control names it.
    pub call_id: String,
    /// Who calls.
    pub caller_id: String,
    /// What the phone shows.
    pub caller_name: String,
    /// Video or voice call.
    pub video: bool,
    /// Why the call ended (`call_ended` and `missed_call` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// When the push stops being worth showing (RFC 3339): the push's deadline.
    pub expires_at: String,
}

/// One push to one device.
#[derive(Clone, Debug)]
pub struct Push {
    /// The event it belongs to (idempotency key; logs carry it, never the token).
    pub event_id: Arc<str>,
    /// What it tells the device.
    pub kind: PushKind,
    /// When the event was accepted: push latency is measured from here.
    pub accepted_at: UnixMillis,
    /// After this instant the push is never sent: it becomes [`Outcome::Expired`].
    pub deadline: UnixMillis,
    /// Whose device: a dead-token verdict deletes the registration through it.
    pub who: IdentityKey,
    /// Which device of that identity.
    pub device_id: String,
    /// The tenant's app id: it selects the provider credential.
    pub app: String,
    /// Where the push service delivers.
    pub address: PushAddress,
    /// Which environment of the push service (APNs production or sandbox host).
    pub environment: Environment,
    /// The payload, shared by every push of the event.
    pub payload: Arc<CallPayload>,
}

impl Push {
    /// The push's priority class.
    pub fn priority(&self) -> Priority {
        self.kind.priority()
    }

    /// Whether the deadline has passed at `now`.
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        now >= self.deadline
    }
}

/// What became of a push: every push ends in exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The push service accepted it.
    Delivered,
    /// The device acked the ring over the internal push channel in time, so its platform
    /// push was not sent (docs/architecture.md, "The internal push channel"). Counted with
    /// `provider="channel"`.
    DeliveredInternal,
    /// Its deadline passed before it could be delivered; it was not sent after that.
    Expired,
    /// Dropped under overload to make room for more urgent pushes.
    Shed,
    /// The call ended before this ring left the queue: dropped instead of sent (and no
    /// "call ended" push follows it to that device).
    Withdrawn,
    /// The push service proved the token dead (APNs 410, or BadDeviceToken from both
    /// environments; FCM UNREGISTERED or an INVALID_ARGUMENT naming the token; WNS 404/410; Web
    /// Push 404/410), as of `verdict_at`: the registration is deleted unless the device
    /// registered again after that (docs/architecture.md, "The registry and its stores").
    DeadToken {
        /// The verdict's time (APNs `timestamp`, otherwise when the answer came).
        verdict_at: UnixMillis,
        /// The push service's reason.
        reason: String,
    },
    /// The push service blames the sender's configuration, not the device (APNs
    /// DeviceTokenNotForTopic, BadTopic, TopicDisallowed; FCM SENDER_ID_MISMATCH): a wrong
    /// bundle id or project id. Nothing is deleted, since a configuration mistake must never
    /// wipe a tenant's registrations; it is counted per app and alerted on.
    Misconfigured {
        /// The push service's reason.
        reason: String,
    },
    /// A call-ended or missed-call notice to an APNs registration that holds only a PushKit
    /// (VoIP) token: APNs takes only rings on that token, so nothing was sent over APNs (the
    /// app learns of the end over its own connection). Not a failure.
    NoAlertToken,
    /// The provider's credential was refused: alert, do not retry blindly.
    CredentialProblem {
        /// The push service's reason.
        reason: String,
    },
    /// Refused for good (bad payload, topic, size...), or retries ran out.
    Rejected {
        /// The push service's reason, or why ringcast gave up.
        reason: String,
    },
}

impl Outcome {
    /// Every outcome label, for metrics that list their series up front.
    pub const LABELS: [&'static str; 10] = [
        "delivered",
        "delivered_internal",
        "expired",
        "shed",
        "withdrawn",
        "dead_token",
        "misconfigured",
        "no_alert_token",
        "credential_problem",
        "rejected",
    ];

    /// The outcome's reason, where it has one (the push service's, or ringcast's).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::DeadToken { reason, .. }
            | Outcome::Misconfigured { reason }
            | Outcome::CredentialProblem { reason }
            | Outcome::Rejected { reason } => Some(reason),
            _ => None,
        }
    }

    /// The metric label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Expired => "expired",
            Outcome::Shed => "shed",
            Outcome::Withdrawn => "withdrawn",
            Outcome::DeliveredInternal => "delivered_internal",
            Outcome::DeadToken { .. } => "dead_token",
            Outcome::Misconfigured { .. } => "misconfigured",
            Outcome::NoAlertToken => "no_alert_token",
            Outcome::CredentialProblem { .. } => "credential_problem",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_sort_most_urgent_first() {
        let mut kinds = [
            PushKind::MissedCall,
            PushKind::IncomingCall,
            PushKind::CallEnded,
        ];
        kinds.sort_by_key(|kind| kind.priority());
        assert_eq!(
            kinds,
            [
                PushKind::IncomingCall,
                PushKind::CallEnded,
                PushKind::MissedCall
            ]
        );
    }

    #[test]
    fn the_payload_has_the_design_shape() {
        let payload = CallPayload {
            v: 1,
            kind: PushKind::CallEnded,
            call_id: "c1".into(),
            caller_id: "bob".into(),
            caller_name: "Bob".into(),
            video: true,
            reason: Some(EndReason::AnsweredElsewhere),
            expires_at: "2026-11-28T00:00:00.000Z".into(),
        };
        let json = serde_json::to_value(&payload).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v": 1, "type": "call_ended", "call_id": "c1", "caller_id": "bob",
                "caller_name": "Bob", "video": true, "reason": "answered_elsewhere",
                "expires_at": "2026-11-28T00:00:00.000Z"})
        );
    }
}
