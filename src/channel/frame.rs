//! The channel's JSON text frames (docs/architecture.md, "The internal push channel"; README, "Internal push
//! channel"): what the node sends ([`ServerFrame`]) and what a client may send
//! ([`ClientFrame`]). Pure: no I/O, tested offline.

use crate::push::{CallPayload, EndReason};
use crate::vocab::PushKind;
use serde::{Deserialize, Serialize};

/// Who calls, as the frame names them.
#[derive(Debug, Serialize)]
pub struct FrameCaller<'a> {
    /// The caller's id.
    pub id: &'a str,
    /// The name the device shows.
    pub display_name: &'a str,
}

/// A frame to a client: the push payload's fields, plus the event id the client acks.
#[derive(Debug, Serialize)]
pub struct ServerFrame<'a> {
    /// `incoming_call`, `call_ended` or `missed_call`.
    #[serde(rename = "type")]
    pub kind: PushKind,
    /// What the client acks (a ring) and how it tells a repeat from a new event.
    pub event_id: &'a str,
    /// The call.
    pub call_id: &'a str,
    /// Who calls.
    pub caller: FrameCaller<'a>,
    /// Video or voice.
    pub video: bool,
    /// Why the call ended (ends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// When the frame stops meaning anything (RFC 3339): the ring's or notice's deadline.
    pub expires_at: &'a str,
}

impl<'a> ServerFrame<'a> {
    /// The frame of one call event, from the payload its platform pushes carry.
    pub fn of(event_id: &'a str, payload: &'a CallPayload) -> ServerFrame<'a> {
        ServerFrame {
            kind: payload.kind,
            event_id,
            call_id: &payload.call_id,
            caller: FrameCaller {
                id: &payload.caller_id,
                display_name: &payload.caller_name,
            },
            video: payload.video,
            reason: payload.reason,
            expires_at: &payload.expires_at,
        }
    }

    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        // A struct of strings and bools always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a client may send.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// The device got the ring: do not send its platform push.
    Ack {
        /// The ring's event id.
        event_id: String,
    },
}

/// Why a client's text frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a client message: {0}")]
pub struct BadMessage(String);

impl ClientFrame {
    /// Parses a client's text frame; anything but `{"type": "ack", "event_id": "…"}` with a
    /// 1-128 character event id is refused.
    pub fn parse(text: &str) -> Result<ClientFrame, BadMessage> {
        let frame: ClientFrame =
            serde_json::from_str(text).map_err(|error| BadMessage(error.to_string()))?;
        let ClientFrame::Ack { event_id } = &frame;
        if event_id.is_empty() || event_id.len() > crate::api::calls::MAX_CALL_ID_LEN {
            return Err(BadMessage("event_id must be 1-128 characters".into()));
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(kind: PushKind, reason: Option<EndReason>) -> CallPayload {
        CallPayload {
            v: 1,
            kind,
            call_id: "c-1".into(),
            caller_id: "bob".into(),
            caller_name: "Bob".into(),
            video: true,
            reason,
            expires_at: "2026-12-03T16:00:45Z".into(),
        }
    }

    #[test]
    fn a_ring_frame_carries_the_push_payloads_fields() {
        let ring = payload(PushKind::IncomingCall, None);
        let json: serde_json::Value =
            serde_json::from_str(&ServerFrame::of("e-1", &ring).to_text()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "incoming_call", "event_id": "e-1", "call_id": "c-1",
                "caller": {"id": "bob", "display_name": "Bob"}, "video": true,
                "expires_at": "2026-12-03T16:00:45Z"})
        );
    }

    #[test]
    fn an_end_frame_says_why() {
        let end = payload(PushKind::CallEnded, Some(EndReason::AnsweredElsewhere));
        let json: serde_json::Value =
            serde_json::from_str(&ServerFrame::of("c-1:end", &end).to_text()).unwrap();
        assert_eq!(json["type"], "call_ended");
        assert_eq!(json["reason"], "answered_elsewhere");
    }

    #[test]
    fn only_a_well_formed_ack_parses() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"ack","event_id":"e-1"}"#),
            Ok(ClientFrame::Ack {
                event_id: "e-1".into()
            })
        );
        for bad in [
            "ack",
            r#"{"type":"nack","event_id":"e-1"}"#,
            r#"{"type":"ack"}"#,
            r#"{"type":"ack","event_id":""}"#,
            r#"{"type":"ack","event_id":"e-1","extra":1}"#,
        ] {
            assert!(ClientFrame::parse(bad).is_err(), "{bad}");
        }
    }
}
