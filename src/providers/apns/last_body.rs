//! The APNs body of the last event a client built a push for, kept for the event's other
//! devices.
//!
//! Every APNs push of one event carries the same body: it is made of the event's payload
//! alone (`aps` and `ringcast`, [`super::payload`]), and the router gives all of an event's
//! pushes one shared [`CallPayload`]. The pushes of one event reach their client one after
//! another (the router queues them as one batch), so a single slot spares encoding the
//! body again for each device: with five iPhones per callee, four of five encodings.
//!
//! The slot is keyed by the payload's allocation and holds a [`Weak`] to it, so the address
//! cannot be reused by another event's payload while the slot remembers it, and a payload
//! changed in place (`Arc::make_mut` moves a value that weak pointers still see) is a new
//! allocation, never a stale hit.

use crate::push::CallPayload;
use bytes::Bytes;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// One event's encoded body (with what else is made from the event alone: `T`, the
/// request's [`EventParts`](super::payload::EventParts)), for the pushes of the same event
/// that follow.
pub struct LastBody<T = Bytes>(Mutex<Option<(Weak<CallPayload>, T)>>);

impl<T> Default for LastBody<T> {
    fn default() -> Self {
        LastBody(Mutex::new(None))
    }
}

impl<T: Clone> LastBody<T> {
    /// The body of `payload`'s event: the one remembered if it is that event's, else
    /// `encode`'s (remembered in turn when it succeeds).
    pub fn get_or_encode<E>(
        &self,
        payload: &Arc<CallPayload>,
        encode: impl FnOnce(&CallPayload) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((event, body)) = slot.as_ref()
            && std::ptr::eq(event.as_ptr(), Arc::as_ptr(payload))
        {
            return Ok(body.clone());
        }
        let body = encode(payload)?;
        *slot = Some((Arc::downgrade(payload), body.clone()));
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::PushKind;
    use std::cell::Cell;

    fn payload(call_id: &str) -> Arc<CallPayload> {
        Arc::new(CallPayload {
            v: 1,
            kind: PushKind::IncomingCall,
            call_id: call_id.into(),
            caller_id: "+15550100".into(),
            caller_name: "Bob".into(),
            video: false,
            reason: None,
            expires_at: "2026-12-05T10:00:00Z".into(),
        })
    }

    /// Encodes as the call id, counting encodings.
    fn encode<'a>(count: &'a Cell<u32>) -> impl FnOnce(&CallPayload) -> Result<Bytes, ()> + 'a {
        move |payload| {
            count.set(count.get() + 1);
            Ok(Bytes::from(payload.call_id.clone()))
        }
    }

    #[test]
    fn an_events_pushes_share_one_encoding_and_the_next_event_gets_its_own() {
        let (last, count) = (LastBody::default(), Cell::new(0));
        let first = payload("call-1");
        let shared = Arc::clone(&first);
        assert_eq!(
            last.get_or_encode(&first, encode(&count)),
            Ok("call-1".into())
        );
        assert_eq!(
            last.get_or_encode(&shared, encode(&count)),
            Ok("call-1".into())
        );
        assert_eq!(count.get(), 1);
        let second = payload("call-2");
        assert_eq!(
            last.get_or_encode(&second, encode(&count)),
            Ok("call-2".into())
        );
        assert_eq!(count.get(), 2);
    }

    #[test]
    fn a_payload_changed_in_place_or_a_failed_encoding_is_never_remembered() {
        let (last, count) = (LastBody::default(), Cell::new(0));
        let mut event = payload("call-1");
        assert_eq!(
            last.get_or_encode(&event, encode(&count)),
            Ok("call-1".into())
        );
        // The only strong pointer: make_mut changes it in place for its owner, but the
        // slot's weak pointer moves it to a new allocation.
        Arc::make_mut(&mut event).call_id = "call-1b".into();
        assert_eq!(
            last.get_or_encode(&event, encode(&count)),
            Ok("call-1b".into())
        );
        assert_eq!(count.get(), 2);

        let failing = payload("call-2");
        assert_eq!(
            last.get_or_encode(&failing, |_| Err::<Bytes, _>("too large")),
            Err("too large")
        );
        assert_eq!(
            last.get_or_encode(&failing, encode(&count)),
            Ok("call-2".into())
        );
        assert_eq!(count.get(), 3);
    }

    #[test]
    fn a_dropped_event_never_answers_for_a_new_one_at_the_same_address() {
        let (last, count) = (LastBody::default(), Cell::new(0));
        assert_eq!(
            last.get_or_encode(&payload("call-1"), encode(&count)),
            Ok("call-1".into())
        );
        // The first payload is dropped; the slot's weak pointer keeps its allocation, so the
        // next one cannot be placed there and look like it.
        for call in 2..50 {
            let id = format!("call-{call}");
            assert_eq!(
                last.get_or_encode(&payload(&id), encode(&count)),
                Ok(Bytes::from(id))
            );
        }
        assert_eq!(count.get(), 49);
    }
}
