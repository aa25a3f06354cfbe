//! Pure fan-out: a call event and the callee's live registrations become one [`Push`] per
//! device, with the event's push kind, priority and deadline (docs/architecture.md, "Priorities and
//! deadlines"). No I/O: the router actor looks the registrations up and hands the pushes on.

use crate::clock::rfc3339;
use crate::push::{CallPayload, EndReason, Push};
use crate::registry::Registration;
use crate::vocab::{IdentityKey, PushKind, UnixMillis};
use std::sync::Arc;
use std::time::Duration;

/// How long a "call ended" push is worth delivering (P1).
pub const CALL_ENDED_DEADLINE: Duration = Duration::from_secs(60);
/// How long a missed-call notice is worth delivering (P2).
pub const MISSED_CALL_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// Who calls, as the callee's phone shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's id (a number or a user id).
    pub id: String,
    /// The name the phone shows.
    pub display_name: String,
}

/// An incoming call: ring every device of the callee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEvent {
    /// The event id: the same id twice rings once (default: the call id).
    pub event_id: String,
    /// The call, as call control names it.
    pub call_id: String,
    /// Whose devices ring; shared with the event's pushes and withdrawals.
    pub callee: Arc<IdentityKey>,
    /// Who calls.
    pub caller: Caller,
    /// Video or voice.
    pub video: bool,
    /// How long the phones ring: the rings' deadline.
    pub ring_timeout: Duration,
}

/// The end of a call before it was answered here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndEvent {
    /// The event id (default: call id and reason).
    pub event_id: String,
    /// The call.
    pub call_id: String,
    /// Whose devices were ringing; shared with the event's pushes and withdrawals.
    pub callee: Arc<IdentityKey>,
    /// Why it ended.
    pub reason: EndReason,
    /// The device that answered or declined, which needs no "call ended" push.
    pub device_id: Option<String>,
    /// The caller, for the missed-call notice (unknown: empty).
    pub caller: Caller,
    /// Video or voice.
    pub video: bool,
}

impl EndEvent {
    /// The push kind this end becomes: a missed-call notice, or "call ended".
    pub fn kind(&self) -> PushKind {
        match self.reason {
            EndReason::Missed => PushKind::MissedCall,
            _ => PushKind::CallEnded,
        }
    }

    /// How long its pushes are worth delivering.
    pub fn deadline_after(&self) -> Duration {
        match self.kind() {
            PushKind::MissedCall => MISSED_CALL_DEADLINE,
            _ => CALL_ENDED_DEADLINE,
        }
    }
}

/// What a ring of `call` tells the device, due by `deadline`: the same payload whether it
/// travels as a platform push or over the internal channel.
pub fn ring_payload(call: &CallEvent, deadline: UnixMillis) -> CallPayload {
    CallPayload {
        v: 1,
        kind: PushKind::IncomingCall,
        call_id: call.call_id.clone(),
        caller_id: call.caller.id.clone(),
        caller_name: call.caller.display_name.clone(),
        video: call.video,
        reason: None,
        expires_at: rfc3339(deadline),
    }
}

/// The rings of `call`: one incoming-call push per registration, due by the ring timeout.
/// The registrations become the pushes: their device ids, app ids and addresses move, not
/// copied (three allocations a push fewer), and the callee is shared (two more).
pub fn rings(call: &CallEvent, registrations: Vec<Registration>, now: UnixMillis) -> Vec<Push> {
    let deadline = now + call.ring_timeout.as_millis() as u64;
    let payload = Arc::new(ring_payload(call, deadline));
    let event_id: Arc<str> = Arc::from(call.event_id.as_str());
    registrations
        .into_iter()
        .map(|registration| {
            push(
                &event_id,
                PushKind::IncomingCall,
                &call.callee,
                registration,
                &payload,
                now,
                deadline,
            )
        })
        .collect()
}

/// The pushes of `end` to `registrations`, skipping the device that answered or declined
/// and every device in `not_rung` (its ring was withdrawn before it left: nothing to stop).
/// A missed-call notice goes to every device: the user should see it wherever they look.
/// The registrations become the pushes, as in [`rings`].
pub fn ends(
    end: &EndEvent,
    registrations: Vec<Registration>,
    not_rung: &[String],
    now: UnixMillis,
) -> Vec<Push> {
    let kind = end.kind();
    let deadline = now + end.deadline_after().as_millis() as u64;
    let payload = Arc::new(CallPayload {
        v: 1,
        kind,
        call_id: end.call_id.clone(),
        caller_id: end.caller.id.clone(),
        caller_name: end.caller.display_name.clone(),
        video: end.video,
        reason: Some(end.reason),
        expires_at: rfc3339(deadline),
    });
    let event_id: Arc<str> = Arc::from(end.event_id.as_str());
    registrations
        .into_iter()
        .filter(|registration| {
            kind == PushKind::MissedCall
                || (end.device_id.as_deref() != Some(registration.device_id.as_str())
                    && !not_rung.contains(&registration.device_id))
        })
        .map(|registration| {
            push(
                &event_id,
                kind,
                &end.callee,
                registration,
                &payload,
                now,
                deadline,
            )
        })
        .collect()
}

/// One push to one registration.
fn push(
    event_id: &Arc<str>,
    kind: PushKind,
    who: &Arc<IdentityKey>,
    registration: Registration,
    payload: &Arc<CallPayload>,
    now: UnixMillis,
    deadline: UnixMillis,
) -> Push {
    Push {
        event_id: Arc::clone(event_id),
        kind,
        accepted_at: now,
        deadline,
        who: Arc::clone(who),
        device_id: registration.device_id,
        app: registration.app,
        address: registration.address,
        environment: registration.environment,
        payload: Arc::clone(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PushAddress;
    use crate::vocab::Environment;
    use crate::vocab::Priority;

    const NOW: UnixMillis = 1_800_000_000_000;

    fn registration(device: &str) -> Registration {
        Registration {
            device_id: device.into(),
            app: "ios".into(),
            address: PushAddress::Apns {
                token: vec![1; 32],
                alert_token: None,
            },
            environment: Environment::Sandbox,
            disable_internal_push: false,
            created_at: NOW,
            updated_at: NOW,
            expires_at: NOW + 86_400_000,
        }
    }

    fn caller() -> Caller {
        Caller {
            id: "bob".into(),
            display_name: "Bob".into(),
        }
    }

    fn end(reason: EndReason, device_id: Option<&str>) -> EndEvent {
        EndEvent {
            event_id: "c1:end".into(),
            call_id: "c1".into(),
            callee: IdentityKey::new("t", "alice").into(),
            reason,
            device_id: device_id.map(str::to_owned),
            caller: caller(),
            video: true,
        }
    }

    #[test]
    fn a_call_rings_every_device_as_p0_until_the_ring_timeout() {
        let call = CallEvent {
            event_id: "c1".into(),
            call_id: "c1".into(),
            callee: IdentityKey::new("t", "alice").into(),
            caller: caller(),
            video: false,
            ring_timeout: Duration::from_secs(30),
        };
        let devices = vec![registration("phone"), registration("tablet")];
        let pushes = rings(&call, devices, NOW);
        let targets: Vec<_> = pushes
            .iter()
            .map(|push| (push.device_id.as_str(), push.app.as_str(), &push.address))
            .collect();
        let address = registration("phone").address;
        assert_eq!(
            targets,
            [("phone", "ios", &address), ("tablet", "ios", &address)]
        );
        for push in &pushes {
            assert_eq!(push.priority(), Priority::P0);
            assert_eq!(push.deadline, NOW + 30_000);
            assert_eq!(push.environment, Environment::Sandbox);
            assert_eq!(push.payload.expires_at, rfc3339(NOW + 30_000));
            assert_eq!(push.payload.caller_name, "Bob");
        }
        // One payload shared by every device of the event.
        assert!(Arc::ptr_eq(&pushes[0].payload, &pushes[1].payload));
    }

    #[test]
    fn answered_elsewhere_skips_the_answering_device_and_devices_never_rung() {
        let devices = vec![
            registration("phone"),
            registration("tablet"),
            registration("watch"),
        ];
        let pushes = ends(
            &end(EndReason::AnsweredElsewhere, Some("phone")),
            devices,
            &["watch".to_owned()],
            NOW,
        );
        let targets: Vec<_> = pushes.iter().map(|p| p.device_id.as_str()).collect();
        assert_eq!(targets, ["tablet"]);
        assert_eq!(pushes[0].priority(), Priority::P1);
        assert_eq!(pushes[0].deadline, NOW + 60_000);
        assert_eq!(pushes[0].payload.reason, Some(EndReason::AnsweredElsewhere));
    }

    #[test]
    fn a_missed_call_is_a_p2_notice_to_every_device() {
        let devices = vec![registration("phone"), registration("tablet")];
        let pushes = ends(
            &end(EndReason::Missed, None),
            devices,
            &["tablet".to_owned()],
            NOW,
        );
        assert_eq!(pushes.len(), 2);
        assert!(pushes.iter().all(|p| p.priority() == Priority::P2));
        assert_eq!(pushes[0].deadline, NOW + 86_400_000);
    }
}
