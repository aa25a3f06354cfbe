//! The calls whose rings this node still holds ([`Ringing`]), so that a call's end asks the
//! node's routers and providers to withdraw rings only when there may be one to withdraw.
//!
//! An end withdraws the call's queued rings on every router of the node, from every provider
//! of the tenant (src/router.rs, `withdraw`), and a notice of an end on another node does the
//! same here (src/router/ends.rs). That was a message to each provider of each router per
//! end, the other routers' across threads, and the end's answer waited for all of them; yet a
//! ring is delivered milliseconds after it is queued, and most calls end seconds later, when
//! nothing of theirs is left to withdraw. On a cluster of n nodes every end cost each node
//! that work, though at most one of them had rung the call.
//!
//! A ring is counted here from before its pushes reach a provider until its event has every
//! outcome (the held event's guards keep the count: src/router/ownership.rs), so an end that
//! finds its call not counted knows no provider of this node holds one of its rings, and asks
//! none. Calls are keyed by a 64-bit hash of callee and call id: two calls that collide only
//! make one end ask the providers for nothing, as every end did before.

use crate::vocab::IdentityKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The node's calls with rings held, shared by its routers. Held for an insert, a remove or a
/// lookup only, never across an await.
#[derive(Clone, Default)]
pub struct Ringing(Arc<Mutex<HashMap<u64, u32>>>);

/// One ring event's count in [`Ringing`], until dropped.
pub struct RingHeld {
    ringing: Ringing,
    call: u64,
}

impl Ringing {
    /// Counts a ring event of `callee`'s call `call_id` until the returned guard drops.
    pub fn hold(&self, callee: &IdentityKey, call_id: &str) -> RingHeld {
        let call = call_key(callee, call_id);
        let mut calls = self.lock();
        let count = calls.entry(call).or_insert(0);
        *count += 1;
        if *count == 1 {
            crate::metrics::calls_ringing(1);
        }
        RingHeld {
            ringing: self.clone(),
            call,
        }
    }

    /// Whether this node may still hold a ring of `callee`'s call `call_id`.
    pub fn may_hold(&self, callee: &IdentityKey, call_id: &str) -> bool {
        self.lock().contains_key(&call_key(callee, call_id))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RingHeld {
    fn drop(&mut self) {
        let mut calls = self.ringing.lock();
        if let Some(count) = calls.get_mut(&self.call) {
            *count -= 1;
            if *count == 0 {
                calls.remove(&self.call);
                crate::metrics::calls_ringing(-1);
            }
        }
    }
}

/// The call's key: FNV-1a over the callee's hash and the call id (the same function as
/// [`IdentityKey::stable_hash`], continued past a separator).
fn call_key(callee: &IdentityKey, call_id: &str) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    std::iter::once(0)
        .chain(call_id.bytes())
        .fold(callee.stable_hash(), |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> IdentityKey {
        IdentityKey::new("acme", "alice")
    }

    #[test]
    fn a_call_is_counted_while_any_of_its_ring_events_is_held() {
        let ringing = Ringing::default();
        assert!(!ringing.may_hold(&alice(), "call-1"));
        // The same ring routed twice (a takeover, a retry on another router): both count.
        let first = ringing.hold(&alice(), "call-1");
        let second = ringing.hold(&alice(), "call-1");
        assert!(ringing.may_hold(&alice(), "call-1"));
        assert_eq!(ringing.lock().len(), 1);
        drop(first);
        assert!(ringing.may_hold(&alice(), "call-1"), "one ring still held");
        drop(second);
        assert!(!ringing.may_hold(&alice(), "call-1"));
        assert!(ringing.lock().is_empty(), "nothing left behind");
    }

    #[test]
    fn calls_are_told_apart_by_callee_and_call_id() {
        let ringing = Ringing::default();
        let _held = ringing.hold(&alice(), "call-1");
        assert!(!ringing.may_hold(&alice(), "call-2"));
        // A group call: one call id, several callees; one callee's end is not another's.
        assert!(!ringing.may_hold(&IdentityKey::new("acme", "bob"), "call-1"));
        assert!(!ringing.may_hold(&IdentityKey::new("other", "alice"), "call-1"));
        // Where the identity ends and the call id starts is part of the key.
        assert_ne!(
            call_key(&IdentityKey::new("acme", "alice"), "1"),
            call_key(&IdentityKey::new("acme", "alice1"), "")
        );
    }

    #[test]
    fn the_routers_share_one_set() {
        let ringing = Ringing::default();
        let on_another_router = ringing.clone();
        let held = ringing.hold(&alice(), "call-1");
        assert!(on_another_router.may_hold(&alice(), "call-1"));
        drop(held);
        assert!(!on_another_router.may_hold(&alice(), "call-1"));
    }
}
