//! SKELETON — replaced by the embedded store implementation.
use super::registration::{IdentityKey, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};

#[derive(Clone)]
pub struct EmbeddedStore;

impl Store for EmbeddedStore {
    fn name(&self) -> &'static str {
        "embedded"
    }
    async fn register(&self, _: &IdentityKey, _: &Registration) -> Result<Registered, StoreError> {
        unimplemented!()
    }
    async fn list(&self, _: &IdentityKey, _: UnixMillis) -> Result<Vec<Registration>, StoreError> {
        unimplemented!()
    }
    async fn unregister(
        &self,
        _: &IdentityKey,
        _: &str,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        unimplemented!()
    }
    async fn revoke(&self, _: &IdentityKey, _: UnixMillis) -> Result<u64, StoreError> {
        unimplemented!()
    }
    async fn remove_dead_token(
        &self,
        _: &IdentityKey,
        _: &str,
        _: &PushAddress,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        unimplemented!()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        unimplemented!()
    }
}
impl EmbeddedStore {
    pub fn open(_: impl AsRef<std::path::Path>, _: u32) -> Result<Self, StoreError> {
        unimplemented!()
    }
    pub fn spawn_sweeper(&self, _: std::time::Duration) -> tokio::task::JoinHandle<()> {
        unimplemented!()
    }
}
