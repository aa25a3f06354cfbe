use super::*;
use crate::registry::PushAddress;
use actix::{Addr, Supervisor};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A store whose `list` panics for the identity "boom" and answers for every other.
#[derive(Clone, Default)]
struct FragileStore {
    lists: Arc<AtomicUsize>,
}

impl Store for FragileStore {
    fn name(&self) -> &'static str {
        "fragile"
    }
    async fn register(&self, _: &IdentityKey, _: &Registration) -> Result<Registered, StoreError> {
        Err(StoreError::Unavailable("not used".into()))
    }
    async fn list(
        &self,
        who: &IdentityKey,
        _: UnixMillis,
    ) -> Result<Vec<Registration>, StoreError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        assert_ne!(who.identity, "boom", "simulated bug");
        Ok(Vec::new())
    }
    async fn unregister(
        &self,
        _: &IdentityKey,
        _: &str,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn revoke(&self, _: &IdentityKey, _: UnixMillis) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn remove_dead_token(
        &self,
        _: &IdentityKey,
        _: &str,
        _: &PushAddress,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        std::future::pending().await
    }
}

fn start(store: FragileStore) -> Addr<RegistryShard<FragileStore>> {
    Supervisor::start(move |_| RegistryShard::new(0, store, Duration::from_millis(100), 8))
}

fn list(identity: &str) -> List {
    List {
        who: IdentityKey::new("t", identity),
        now: 0,
    }
}

#[actix_rt::test]
async fn a_panicking_operation_is_answered_and_the_shard_keeps_serving() {
    let store = FragileStore::default();
    let shard = start(store.clone());
    assert!(shard.send(list("fine")).await.unwrap().is_ok());
    match shard.send(list("boom")).await.unwrap() {
        Err(StoreError::Bug(what)) => assert!(what.contains("simulated bug"), "{what}"),
        other => panic!("expected Bug, got {other:?}"),
    }
    // The shard stopped and its supervisor restarted it: the same address keeps answering.
    assert!(shard.send(list("fine")).await.unwrap().is_ok());
    assert_eq!(store.lists.load(Ordering::SeqCst), 3);
}

#[actix_rt::test]
async fn a_store_that_never_answers_gives_unavailable_in_bounded_time() {
    let shard = start(FragileStore::default());
    let started = std::time::Instant::now();
    let answer = shard.send(Ping {}).await.unwrap();
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
