//! `AnyStore`: the store chosen by configuration at start-up.
//!
//! An enum rather than `dyn Store`: the trait's async methods are not object-safe without
//! boxing every call, and there are exactly four stores.

use super::embedded::EmbeddedStore;
use super::lease::{Claim, LeaseTerms};
use super::redis::{RedisClusterStore, RedisSentinelStore, RedisSingleStore};
use super::registration::{Environment, IdentityKey, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};

/// One of the four stores.
#[derive(Clone)]
pub enum AnyStore {
    /// The redb file of a single node.
    Embedded(EmbeddedStore),
    /// One Redis server.
    Redis(RedisSingleStore),
    /// A Redis Cluster.
    RedisCluster(RedisClusterStore),
    /// The master Redis Sentinel names.
    RedisSentinel(RedisSentinelStore),
}

/// Calls the same method on whichever store this is.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Embedded($store) => $call,
            AnyStore::Redis($store) => $call,
            AnyStore::RedisCluster($store) => $call,
            AnyStore::RedisSentinel($store) => $call,
        }
    };
}

impl Store for AnyStore {
    fn name(&self) -> &'static str {
        each!(self, store => store.name())
    }

    async fn register(
        &self,
        who: &IdentityKey,
        registration: &Registration,
    ) -> Result<Registered, StoreError> {
        each!(self, store => store.register(who, registration).await)
    }

    async fn list(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> Result<Vec<Registration>, StoreError> {
        each!(self, store => store.list(who, now).await)
    }

    async fn unregister(
        &self,
        who: &IdentityKey,
        device_id: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        each!(self, store => store.unregister(who, device_id, now).await)
    }

    async fn revoke(&self, who: &IdentityKey, now: UnixMillis) -> Result<u64, StoreError> {
        each!(self, store => store.revoke(who, now).await)
    }

    async fn record_revocation(
        &self,
        who: &IdentityKey,
        at: UnixMillis,
        keep_ms: u64,
    ) -> Result<(), StoreError> {
        each!(self, store => store.record_revocation(who, at, keep_ms).await)
    }

    async fn revoked_at(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        each!(self, store => store.revoked_at(who, now).await)
    }

    async fn remove_dead_token(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        verdict_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        each!(self, store => store.remove_dead_token(who, device_id, address, verdict_at).await)
    }

    async fn correct_environment(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        environment: Environment,
        found_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        each!(self, store => store.correct_environment(who, device_id, address, environment, found_at).await)
    }

    async fn acquire_event(
        &self,
        tenant: &str,
        event_id: &str,
        terms: &LeaseTerms,
        now: UnixMillis,
    ) -> Result<Claim, StoreError> {
        each!(self, store => store.acquire_event(tenant, event_id, terms, now).await)
    }

    async fn renew_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        lease_ms: u64,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        each!(self, store => store.renew_event(tenant, event_id, node, outcomes, lease_ms, now).await)
    }

    async fn finish_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        each!(self, store => store.finish_event(tenant, event_id, node, outcomes, now).await)
    }

    async fn release_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        each!(self, store => store.release_event(tenant, event_id, node).await)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        each!(self, store => store.ping().await)
    }
}
