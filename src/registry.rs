//! The registry: who can be reached, on which devices, through which push service.
//!
//! - [`registration`]: the data model (a device's platform, address, app, lifetime).
//! - [`validate`]: turns an API request into a `Registration`, or says precisely what is wrong.
//! - [`store`]: the `Store` trait; [`embedded`] and [`redis`] implement it, [`AnyStore`]
//!   picks one at start-up, [`codec`] is their shared compact record format; [`lease`] is
//!   the rule by which a call event is owned by one node at a time; [`revocation`] the rule
//!   by which a revoked identity's older identity tokens are refused.
//! - [`shard`]: the registry shard actor, one per core, owning a store handle; [`shards`]
//!   routes each identity to its shard.

pub mod any;
pub mod codec;
pub mod embedded;
pub mod lease;
pub mod redis;
pub mod registration;
pub mod revocation;
pub mod shard;
pub mod shards;
pub mod store;
pub mod validate;

pub use any::AnyStore;
pub use registration::{Environment, IdentityKey, Platform, PushAddress, Registration, UnixMillis};
pub use store::{Registered, Store, StoreError};
