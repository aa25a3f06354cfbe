//! SKELETON — replaced by the Redis store implementation.
use super::registration::{IdentityKey, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};

#[derive(Clone)]
pub struct RedisStore<C>(C);

impl<C: Clone + Send + Sync + Unpin + 'static> Store for RedisStore<C> {
    fn name(&self) -> &'static str {
        "redis"
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
pub type RedisSingleStore = RedisStore<redis::aio::ConnectionManager>;
pub type RedisClusterStore = RedisStore<redis::cluster_async::ClusterConnection>;
#[derive(Default)]
pub struct RedisOptions {
    pub max_devices_per_identity: u32,
    pub connect_timeout: std::time::Duration,
    pub command_timeout: std::time::Duration,
}
impl<C> RedisStore<C> {
    pub async fn connect<U: ?Sized>(_: &U, _: &RedisOptions) -> Result<Self, StoreError> {
        unimplemented!()
    }
}
