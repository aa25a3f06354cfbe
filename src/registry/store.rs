//! The `Store` trait: the boundary between the registry and where registrations live.
//!
//! Three implementations pass one contract suite (`tests/store_contract.rs`): the embedded
//! redb file for a single node, Redis, and Redis Cluster. Every method takes the current time
//! from its caller, so expiry is testable on a fake clock.

use super::lease::{Claim, LeaseTerms};
use super::registration::{Environment, IdentityKey, PushAddress, Registration, UnixMillis};
use std::future::Future;
use thiserror::Error;

/// What a store can fail with. The API maps `Unavailable` to `503` with `Retry-After`.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer in time; retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The identity already has the most devices a store allows (`max_devices_per_identity`).
    #[error("identity already has {max} registered devices")]
    TooManyDevices {
        /// The configured limit.
        max: u32,
    },
    /// The store holds data this build cannot read, or answered in an unexpected shape.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// The operation panicked: a bug. The shard that ran it restarts (see `RegistryShard`).
    #[error("store operation failed unexpectedly: {0}")]
    Bug(String),
}

/// What `register` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// `true` for a new device, `false` for a refresh of an existing one.
    pub created: bool,
    /// The registration as stored (a refresh keeps the original `created_at`).
    pub registration: Registration,
    /// The identity the token was taken from, when it was registered to another identity of
    /// the tenant (one token, one owner: a signed-out user must not get another's calls).
    pub moved_from: Option<String>,
}

/// Where registrations live. Implementations are cheap to clone (a handle), and every method
/// is atomic for one identity. `Unpin` because actors own their store handles by value.
pub trait Store: Clone + Send + Sync + Unpin + 'static {
    /// The store's name for metric labels and logs (`embedded`, `redis`, `redis-cluster`).
    fn name(&self) -> &'static str;

    /// Registers a device, or refreshes it when the identity already has that device id.
    /// `registration.updated_at` is the current time. Takes the token from any other identity
    /// of the tenant that holds it.
    fn register(
        &self,
        who: &IdentityKey,
        registration: &Registration,
    ) -> impl Future<Output = Result<Registered, StoreError>> + Send;

    /// The identity's live registrations at `now`, ordered by device id.
    fn list(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Vec<Registration>, StoreError>> + Send;

    /// Deletes one device's registration; `false` when there was no live one.
    fn unregister(
        &self,
        who: &IdentityKey,
        device_id: &str,
        now: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes every registration of the identity; returns how many live ones there were.
    fn revoke(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records that `who` was revoked at `at` (`DELETE /v1/identities/{identity}`), so that
    /// identity tokens issued until then stop working ([`super::revocation`]). The record is
    /// kept until `at + keep_ms` and forgotten after: the caller passes the longest an identity
    /// token lives, past which every token it could refuse is refused for its age anyway, so
    /// records do not pile up. A later record replaces an earlier one.
    fn record_revocation(
        &self,
        who: &IdentityKey,
        at: UnixMillis,
        keep_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// When `who` was last revoked, if that record is still kept at `now`.
    fn revoked_at(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Option<UnixMillis>, StoreError>> + Send;

    /// Acts on a push service's verdict that `address` is dead: deletes the device's
    /// registration if it still holds that address and was not registered again after
    /// `verdict_at`. Returns whether it deleted.
    fn remove_dead_token(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        verdict_at: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Acts on a push service's finding that the device's token belongs to `environment`
    /// (APNs: the registered environment answered `BadDeviceToken`, the other accepted it):
    /// sets the registration's environment if it still holds `address` and was not
    /// registered again after `found_at`. Returns whether it changed the registration.
    fn correct_environment(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        environment: Environment,
        found_at: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Claims call event `event_id` of `tenant` for `terms.node` (see [`super::lease`]):
    /// [`Claim::Owned`] for the first claim, or when the owner's lease lapsed before the
    /// event finished (a takeover: push only to the devices not yet done);
    /// [`Claim::Held`] while the owner's lease runs or once the event finished. The router
    /// sends pushes only when it owns the event, so one event sent twice, to any node
    /// sharing the store, rings once, and an event whose node died still rings.
    fn acquire_event(
        &self,
        tenant: &str,
        event_id: &str,
        terms: &LeaseTerms,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Renews `node`'s lease on the event for `lease_ms` and records the devices whose push
    /// now has an outcome. `false`: the node no longer owns the event (its lease lapsed and
    /// another node took it over, or the claim is gone); the outcomes are recorded anyway.
    fn renew_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        lease_ms: u64,
        now: UnixMillis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records the last outcomes and marks the event finished (when `node` still owns it):
    /// no node takes it over again before its deadline.
    fn finish_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        now: UnixMillis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives an unfinished claim of `node`'s back: the event could not be routed (`503`), so
    /// the caller's retry must be able to ring at once. Another node's claim is left alone.
    fn release_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks that the store answers (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
