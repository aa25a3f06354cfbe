//! How urgent a push is, and the kinds of push that decide it.

use serde::{Deserialize, Serialize};

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
