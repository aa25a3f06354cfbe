//! One intake stream entry: a call event as it was accepted, with the time it was accepted,
//! so that whichever node delivers it keeps the event's deadline (README "Durable intake",
//! the entry's schema).
//!
//! An entry has one field, `e`, holding this JSON (one field keeps the entry small in the
//! stream's listpack):
//!
//! ```json
//! {"v": 1, "kind": "ring", "tenant": "acme", "event_id": "c-1", "call_id": "c-1",
//!  "callee": "alice", "caller_id": "+1555", "caller_name": "Bob", "video": false,
//!  "accepted_at": 1800000000000, "ring_timeout_ms": 45000}
//! {"v": 1, "kind": "end", ..., "reason": "cancelled", "device_id": "phone"}
//! ```
//!
//! The tenant is the one the accepting node authenticated; the callee is the identity.

use crate::api::calls::{MAX_CALL_ID_LEN, MAX_CALLER_LEN};
use crate::config::tenant::MAX_RING_TIMEOUT_SECONDS;
use crate::push::EndReason;
use crate::registry::validate::validate_identity;
use crate::router::fanout::{CallEvent, Caller, EndEvent};
use crate::vocab::{IdentityKey, UnixMillis};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The entry's one field.
pub const FIELD: &str = "e";

/// A call event in a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An incoming call.
    Ring(CallEvent),
    /// The end of a call.
    End(EndEvent),
}

/// What an entry holds: the event, and when it was accepted (UNIX ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The event.
    pub event: Event,
    /// When the API accepted it: its deadline counts from here on every node.
    pub accepted_at: UnixMillis,
}

/// The JSON form (see the module doc).
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    kind: String,
    tenant: String,
    event_id: String,
    call_id: String,
    callee: String,
    #[serde(default)]
    caller_id: String,
    #[serde(default)]
    caller_name: String,
    #[serde(default)]
    video: bool,
    accepted_at: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ring_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
}

/// Why an entry could not be read (it is acknowledged and counted `malformed`: it would never
/// read better).
#[derive(Debug, thiserror::Error)]
#[error("malformed intake entry: {0}")]
pub struct Malformed(String);

impl Entry {
    /// The event's tenant.
    pub fn tenant(&self) -> &str {
        match &self.event {
            Event::Ring(call) => &call.callee.tenant,
            Event::End(end) => &end.callee.tenant,
        }
    }

    /// The event id.
    pub fn event_id(&self) -> &str {
        match &self.event {
            Event::Ring(call) => &call.event_id,
            Event::End(end) => &end.event_id,
        }
    }

    /// The event's deadline: after it, nothing of it is sent.
    pub fn deadline(&self) -> UnixMillis {
        let lasts = match &self.event {
            Event::Ring(call) => call.ring_timeout,
            Event::End(end) => end.deadline_after(),
        };
        self.accepted_at.saturating_add(lasts.as_millis() as u64)
    }

    /// The entry's `e` field.
    pub fn encode(&self) -> String {
        match &self.event {
            Event::Ring(call) => encode_ring(call, self.accepted_at),
            Event::End(end) => encode_end(end, self.accepted_at),
        }
    }

    /// Reads an entry's `e` field.
    pub fn decode(text: &str) -> Result<Entry, Malformed> {
        let wire: Wire = serde_json::from_str(text).map_err(|e| Malformed(e.to_string()))?;
        if wire.v != 1 {
            return Err(Malformed(format!("version {}", wire.v)));
        }
        check(&wire)?;
        let callee = std::sync::Arc::new(IdentityKey::new(wire.tenant, wire.callee));
        let caller = Caller {
            id: wire.caller_id,
            display_name: wire.caller_name,
        };
        let event = match wire.kind.as_str() {
            "ring" => Event::Ring(CallEvent {
                event_id: wire.event_id,
                call_id: wire.call_id,
                callee,
                caller,
                video: wire.video,
                ring_timeout: Duration::from_millis(
                    wire.ring_timeout_ms
                        .ok_or_else(|| Malformed("a ring without ring_timeout_ms".into()))?,
                ),
            }),
            "end" => Event::End(EndEvent {
                event_id: wire.event_id,
                call_id: wire.call_id,
                callee,
                reason: reason(wire.reason.as_deref())?,
                device_id: wire.device_id,
                caller,
                video: wire.video,
            }),
            other => return Err(Malformed(format!("kind {other:?}"))),
        };
        Ok(Entry {
            event,
            accepted_at: wire.accepted_at,
        })
    }
}

/// The `e` field of `call` accepted at `accepted_at`.
pub fn encode_ring(call: &CallEvent, accepted_at: UnixMillis) -> String {
    encoded(&Wire {
        v: 1,
        kind: "ring".into(),
        tenant: call.callee.tenant.clone(),
        event_id: call.event_id.clone(),
        call_id: call.call_id.clone(),
        callee: call.callee.identity.clone(),
        caller_id: call.caller.id.clone(),
        caller_name: call.caller.display_name.clone(),
        video: call.video,
        accepted_at,
        ring_timeout_ms: Some(call.ring_timeout.as_millis() as u64),
        reason: None,
        device_id: None,
    })
}

/// The `e` field of `end` accepted at `accepted_at`.
pub fn encode_end(end: &EndEvent, accepted_at: UnixMillis) -> String {
    encoded(&Wire {
        v: 1,
        kind: "end".into(),
        tenant: end.callee.tenant.clone(),
        event_id: end.event_id.clone(),
        call_id: end.call_id.clone(),
        callee: end.callee.identity.clone(),
        caller_id: end.caller.id.clone(),
        caller_name: end.caller.display_name.clone(),
        video: end.video,
        accepted_at,
        ring_timeout_ms: None,
        reason: Some(end.reason.label().into()),
        device_id: end.device_id.clone(),
    })
}

/// JSON of strings, numbers and booleans only: serializing cannot fail.
fn encoded(wire: &Wire) -> String {
    serde_json::to_string(wire).unwrap_or_default()
}

/// What the API checks of an event, checked again: another producer (call control writing
/// to the stream) may write entries, and an entry reaches the push services as the API's
/// events do.
fn check(wire: &Wire) -> Result<(), Malformed> {
    let id = |field: &str, id: &str| {
        let fits = !id.is_empty()
            && id.len() <= MAX_CALL_ID_LEN
            && id.bytes().all(|b| b.is_ascii_graphic());
        fits.then_some(())
            .ok_or_else(|| Malformed(format!("{field} must be 1-{MAX_CALL_ID_LEN} visible ASCII")))
    };
    id("event_id", &wire.event_id)?;
    id("call_id", &wire.call_id)?;
    validate_identity(&wire.callee)
        .map_err(|error| Malformed(format!("callee: {}", error.message)))?;
    let caller =
        |text: &str| text.chars().count() <= MAX_CALLER_LEN && !text.chars().any(char::is_control);
    if !caller(&wire.caller_id) || !caller(&wire.caller_name) {
        return Err(Malformed(
            "caller too long or with control characters".into(),
        ));
    }
    if let Some(ms) = wire.ring_timeout_ms
        && !(1_000..=MAX_RING_TIMEOUT_SECONDS * 1_000).contains(&ms)
    {
        return Err(Malformed(format!("ring_timeout_ms {ms}")));
    }
    Ok(())
}

/// An end's reason by its label.
fn reason(label: Option<&str>) -> Result<EndReason, Malformed> {
    [
        EndReason::Cancelled,
        EndReason::AnsweredElsewhere,
        EndReason::DeclinedElsewhere,
        EndReason::Missed,
    ]
    .into_iter()
    .find(|reason| Some(reason.label()) == label)
    .ok_or_else(|| Malformed(format!("reason {label:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            id: "+15550100".into(),
            display_name: "Bob".into(),
        }
    }

    #[test]
    fn a_ring_reads_back_as_written_and_keeps_its_deadline() {
        let entry = Entry {
            event: Event::Ring(CallEvent {
                event_id: "e-1".into(),
                call_id: "c-1".into(),
                callee: IdentityKey::new("acme", "alice").into(),
                caller: caller(),
                video: true,
                ring_timeout: Duration::from_secs(30),
            }),
            accepted_at: 1_800_000_000_000,
        };
        let text = entry.encode();
        assert!(text.contains(r#""kind":"ring""#), "{text}");
        let read = Entry::decode(&text).unwrap();
        assert_eq!(read, entry);
        assert_eq!(read.deadline(), 1_800_000_030_000);
        assert_eq!((read.tenant(), read.event_id()), ("acme", "e-1"));
    }

    #[test]
    fn an_end_reads_back_with_its_reason_and_device() {
        let entry = Entry {
            event: Event::End(EndEvent {
                event_id: "c-1:answered_elsewhere".into(),
                call_id: "c-1".into(),
                callee: IdentityKey::new("acme", "alice").into(),
                reason: EndReason::AnsweredElsewhere,
                device_id: Some("phone".into()),
                caller: caller(),
                video: false,
            }),
            accepted_at: 1_000,
        };
        let read = Entry::decode(&entry.encode()).unwrap();
        assert_eq!(read, entry);
        assert_eq!(read.deadline(), 61_000, "a call-ended notice lasts 60 s");
    }

    #[test]
    fn what_is_not_an_entry_is_malformed() {
        for text in [
            "",
            "{}",
            r#"{"v":2,"kind":"ring","tenant":"a","event_id":"e","call_id":"c","callee":"x","accepted_at":1,"ring_timeout_ms":1}"#,
            r#"{"v":1,"kind":"ring","tenant":"a","event_id":"e","call_id":"c","callee":"x","accepted_at":1}"#,
            r#"{"v":1,"kind":"end","tenant":"a","event_id":"e","call_id":"c","callee":"x","accepted_at":1,"reason":"bored"}"#,
            r#"{"v":1,"kind":"poke","tenant":"a","event_id":"e","call_id":"c","callee":"x","accepted_at":1}"#,
            r#"{"v":1,"kind":"ring","tenant":"a","event_id":"e e","call_id":"c","callee":"x","accepted_at":1,"ring_timeout_ms":1000}"#,
            r#"{"v":1,"kind":"ring","tenant":"a","event_id":"e","call_id":"c","callee":"","accepted_at":1,"ring_timeout_ms":1000}"#,
            r#"{"v":1,"kind":"ring","tenant":"a","event_id":"e","call_id":"c","callee":"x","accepted_at":1,"ring_timeout_ms":900000}"#,
        ] {
            assert!(Entry::decode(text).is_err(), "{text}");
        }
    }
}
