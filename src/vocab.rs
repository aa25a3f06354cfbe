//! The crate's vocabulary: the few types every part speaks in (time, platform and
//! environment, identity, priority, outcome). A leaf: it imports nothing else of the crate,
//! so the registry, the router, the providers, the clock and the tools all depend on it and
//! never on each other for a word.

mod identity;
mod outcome;
mod platform;
mod priority;
mod time;

pub use identity::IdentityKey;
pub use outcome::Outcome;
pub use platform::{Environment, Platform};
pub use priority::{Priority, PushKind};
pub use time::UnixMillis;
