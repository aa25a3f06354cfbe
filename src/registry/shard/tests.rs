use super::*;
use crate::registry::PushAddress;
use crate::vocab::Environment;
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
    async fn record_revocation(
        &self,
        _: &IdentityKey,
        _: UnixMillis,
        _: u64,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn revoked_at(
        &self,
        _: &IdentityKey,
        _: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        Ok(None)
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
    async fn correct_environment(
        &self,
        _: &IdentityKey,
        _: &str,
        _: &PushAddress,
        _: Environment,
        _: UnixMillis,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn acquire_event(
        &self,
        _: &str,
        _: &str,
        _: &crate::registry::lease::LeaseTerms,
        _: UnixMillis,
    ) -> Result<crate::registry::lease::Claim, StoreError> {
        Ok(crate::registry::lease::Claim::Owned {
            taken_over_from: None,
            done: Vec::new(),
        })
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
        Ok(true)
    }
    async fn finish_event(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &[String],
        _: UnixMillis,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn release_event(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
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

/// The value of the rendered series `name{labels}` (labels in their rendered order), 0 if absent.
fn series(name_and_labels: &str) -> f64 {
    crate::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[actix_rt::test]
async fn every_operation_is_counted_with_its_outcome_and_timed_against_its_store() {
    // The global recorder is shared with other tests; only this test runs these operations
    // on a store named "fragile", so its store-labelled counts are exact.
    crate::metrics::install();
    let timed = |op: &str| {
        series(&format!(
            "ringcast_registry_op_seconds_count{{op=\"{op}\",store=\"fragile\"}}"
        ))
    };
    let counted = |op: &str, outcome: &str| {
        series(&format!(
            "ringcast_registrations_total{{op=\"{op}\",outcome=\"{outcome}\"}}"
        ))
    };
    let before = [
        timed("register"),
        timed("unregister"),
        timed("revoke"),
        timed("remove_dead_token"),
    ];
    let before_counts = [
        counted("register", "unavailable"),
        counted("unregister", "not_found"),
        counted("revoke", "ok"),
        counted("remove_dead_token", "not_found"),
    ];

    let shard = start(FragileStore::default());
    let who = IdentityKey::new("t", "someone");
    let registration = Registration {
        device_id: "phone".into(),
        app: "ios".into(),
        address: PushAddress::Fcm {
            token: "token".into(),
        },
        environment: crate::vocab::Environment::Production,
        disable_internal_push: false,
        created_at: 0,
        updated_at: 0,
        expires_at: 1,
    };
    let register = Register {
        who: who.clone(),
        registration,
    };
    assert!(shard.send(register).await.unwrap().is_err());
    let unregister = Unregister {
        who: who.clone(),
        device_id: "phone".into(),
        now: 0,
    };
    assert!(!shard.send(unregister).await.unwrap().unwrap());
    let revoke = Revoke {
        who: who.clone(),
        now: 0,
        keep_ms: Some(1_000),
    };
    assert_eq!(shard.send(revoke).await.unwrap().unwrap(), 0);
    let dead = RemoveDeadToken {
        who,
        device_id: "phone".into(),
        address: PushAddress::Fcm {
            token: "token".into(),
        },
        verdict_at: 0,
    };
    assert!(!shard.send(dead).await.unwrap().unwrap());
    // Ping is a readiness check, not a registry operation: neither counted nor timed.
    let _ = shard.send(Ping {}).await;

    let after = [
        timed("register"),
        timed("unregister"),
        timed("revoke"),
        timed("remove_dead_token"),
    ];
    assert_eq!(
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
        [1.0; 4]
    );
    let after_counts = [
        counted("register", "unavailable"),
        counted("unregister", "not_found"),
        counted("revoke", "ok"),
        counted("remove_dead_token", "not_found"),
    ];
    for (after, before) in after_counts.iter().zip(&before_counts) {
        assert!(
            after - before >= 1.0,
            "{after_counts:?} vs {before_counts:?}"
        );
    }
    assert!(!crate::metrics::render().contains("op=\"ping\""));
}
