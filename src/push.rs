//! What travels between the router and the providers: a push and its payload. How urgent a
//! push is and what became of it are words of the whole crate ([`crate::vocab`], re-exported
//! here).
//!
//! A call event becomes one [`Push`] per device; every push of one event shares one
//! [`CallPayload`] (an `Arc`), so fanning out to five devices copies no payload. A provider
//! answers every push with exactly one [`Outcome`].

use crate::registry::PushAddress;
use crate::vocab::{Environment, IdentityKey, UnixMillis};
pub use crate::vocab::{Outcome, Priority, PushKind};
use serde::Serialize;
use std::sync::Arc;

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
    /// Whose device: a dead-token verdict deletes the registration through it. Shared by
    /// the event's pushes (cloning it is a count, not two strings).
    pub who: Arc<IdentityKey>,
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
