//! A store that is down: every call fails as unavailable, and the finishes tried are noted
//! with the time they were tried at.

use crate::registry::lease::{Claim, LeaseTerms};
use crate::registry::{
    Environment, IdentityKey, PushAddress, Registered, Registration, Store, StoreError, UnixMillis,
};
use std::sync::{Arc, Mutex};

/// The store, with the clock readings of the finishes it was asked for.
#[derive(Clone, Default)]
pub struct UnavailableStore {
    pub finishes: Arc<Mutex<Vec<UnixMillis>>>,
}

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("the store is down".into()))
}

impl Store for UnavailableStore {
    fn name(&self) -> &'static str {
        "unavailable"
    }
    async fn register(&self, _: &IdentityKey, _: &Registration) -> Result<Registered, StoreError> {
        down()
    }
    async fn list(&self, _: &IdentityKey, _: UnixMillis) -> Result<Vec<Registration>, StoreError> {
        down()
    }
    async fn unregister(
        &self,
        _: &IdentityKey,
        _: &str,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        down()
    }
    async fn revoke(&self, _: &IdentityKey, _: UnixMillis) -> Result<u64, StoreError> {
        down()
    }
    async fn record_revocation(
        &self,
        _: &IdentityKey,
        _: UnixMillis,
        _: u64,
    ) -> Result<(), StoreError> {
        down()
    }
    async fn revoked_at(
        &self,
        _: &IdentityKey,
        _: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        down()
    }
    async fn remove_dead_token(
        &self,
        _: &IdentityKey,
        _: &str,
        _: &PushAddress,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        down()
    }
    async fn correct_environment(
        &self,
        _: &IdentityKey,
        _: &str,
        _: &PushAddress,
        _: Environment,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        down()
    }
    async fn acquire_event(
        &self,
        _: &str,
        _: &str,
        _: &LeaseTerms,
        _: UnixMillis,
    ) -> Result<Claim, StoreError> {
        down()
    }
    async fn renew_event(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &[String],
        _: u64,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        down()
    }
    async fn finish_event(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &[String],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.finishes.lock().unwrap().push(now);
        down()
    }
    async fn release_event(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
        down()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        down()
    }
}
