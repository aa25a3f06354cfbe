//! The embedded store's unit tests: what the shared contract suite (`tests/store_contract.rs`)
//! cannot see, such as index rows left behind, the sweep, reopening a file and corrupt data.

use super::keys::{EXPIRY, OWNERS, REGISTRATIONS};
use super::*;
use crate::vocab::Environment;
use redb::ReadableTableMetadata;

const DAY: u64 = 86_400_000;
const NOW: UnixMillis = 1_700_000_000_000;

fn store(dir: &tempfile::TempDir, max_devices: u32) -> EmbeddedStore {
    EmbeddedStore::open(dir.path().join("registry.redb"), max_devices).unwrap()
}

fn registration(device_id: &str, address: PushAddress, now: UnixMillis, ttl: u64) -> Registration {
    Registration {
        device_id: device_id.into(),
        app: "voip".into(),
        address,
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: now,
        updated_at: now,
        expires_at: now + ttl,
    }
}

fn apns(byte: u8) -> PushAddress {
    PushAddress::Apns {
        token: vec![byte; 32],
        alert_token: None,
    }
}

/// Rows in (registrations, owners, expiry): what a user of the file pays for.
fn rows(store: &EmbeddedStore) -> (u64, u64, u64) {
    let txn = store.db.begin_read().unwrap();
    (
        txn.open_table(REGISTRATIONS).unwrap().len().unwrap(),
        txn.open_table(OWNERS).unwrap().len().unwrap(),
        txn.open_table(EXPIRY).unwrap().len().unwrap(),
    )
}

#[tokio::test]
async fn sweep_deletes_only_expired_rows_and_their_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    let who = IdentityKey::new("acme", "alice");
    store
        .register(&who, &registration("short", apns(1), NOW, 1_000))
        .await
        .unwrap();
    store
        .register(&who, &registration("long", apns(2), NOW, DAY))
        .await
        .unwrap();
    // Refreshed from short to long: its first expiry entry must not delete it.
    store
        .register(&who, &registration("renewed", apns(3), NOW, 1_000))
        .await
        .unwrap();
    store
        .register(&who, &registration("renewed", apns(3), NOW + 500, DAY))
        .await
        .unwrap();
    assert_eq!(rows(&store), (3, 3, 3));

    assert_eq!(
        store.sweep(NOW + 999).await.unwrap(),
        0,
        "nothing expired yet"
    );
    assert_eq!(
        store.sweep(NOW + 1_000).await.unwrap(),
        1,
        "expiry time is inclusive"
    );
    assert_eq!(rows(&store), (2, 2, 2));
    let left: Vec<_> = store
        .list(&who, NOW + 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.device_id)
        .collect();
    assert_eq!(left, ["long", "renewed"]);
    assert_eq!(
        store.sweep(NOW + 1_000).await.unwrap(),
        0,
        "a second sweep finds nothing"
    );
    assert_eq!(store.sweep(u64::MAX).await.unwrap(), 2);
    assert_eq!(rows(&store), (0, 0, 0));
}

#[tokio::test]
async fn a_sweep_in_small_batches_deletes_everything_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    let who = IdentityKey::new("acme", "alice");
    for n in 0..5 {
        store
            .register(
                &who,
                &registration(&format!("old-{n}"), apns(n), NOW, 1_000),
            )
            .await
            .unwrap();
    }
    store
        .register(&who, &registration("live", apns(9), NOW, DAY))
        .await
        .unwrap();
    assert_eq!(store.sweep_in_batches(NOW + 1_000, 2).await.unwrap(), 5);
    assert_eq!(rows(&store), (1, 1, 1));
}

#[tokio::test]
async fn registrations_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/registry.redb");
    let who = IdentityKey::new("acme", "alice");
    let stored = {
        let store = EmbeddedStore::open(&path, 8).unwrap();
        let stored = store
            .register(&who, &registration("phone", apns(1), NOW, DAY))
            .await
            .unwrap();
        stored.registration
    };
    // The handle above is gone, so the file is closed and may be opened again.
    let store = EmbeddedStore::open(&path, 8).unwrap();
    assert_eq!(store.list(&who, NOW).await.unwrap(), vec![stored]);
    let other = IdentityKey::new("acme", "bob");
    let moved = store
        .register(&other, &registration("p", apns(1), NOW, DAY))
        .await
        .unwrap();
    assert_eq!(
        moved.moved_from.as_deref(),
        Some("alice"),
        "the owner index survived too"
    );
}

#[tokio::test]
async fn a_file_open_elsewhere_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let _first = store(&dir, 8);
    match EmbeddedStore::open(dir.path().join("registry.redb"), 8) {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("registry.redb"), "{message}");
            // Says what to do: the common cause is a second node or demo on the same file.
            assert!(message.contains("another process"), "{message}");
            assert!(message.contains("registry.embedded.path"), "{message}");
        }
        other => panic!("expected Unavailable, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn same_token_bytes_on_two_platforms_are_two_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    let alice = IdentityKey::new("acme", "alice");
    let bob = IdentityKey::new("acme", "bob");
    store
        .register(
            &alice,
            &registration(
                "p",
                PushAddress::Fcm {
                    token: "same".into(),
                },
                NOW,
                DAY,
            ),
        )
        .await
        .unwrap();
    let r = store
        .register(
            &bob,
            &registration(
                "p",
                PushAddress::Wns {
                    channel: "same".into(),
                },
                NOW,
                DAY,
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.moved_from, None);
    assert_eq!(store.list(&alice, NOW).await.unwrap().len(), 1);
    let wns = PushAddress::Wns {
        channel: "same".into(),
    };
    assert!(
        !store
            .remove_dead_token(&alice, "p", &wns, NOW + 1)
            .await
            .unwrap(),
        "not alice's platform"
    );
    assert_eq!(rows(&store), (2, 2, 2));
}

#[tokio::test]
async fn a_token_moving_between_devices_at_the_limit_is_not_a_new_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 2);
    let who = IdentityKey::new("acme", "alice");
    store
        .register(&who, &registration("a", apns(1), NOW, DAY))
        .await
        .unwrap();
    store
        .register(&who, &registration("b", apns(2), NOW, DAY))
        .await
        .unwrap();
    let reinstall = store
        .register(&who, &registration("a2", apns(1), NOW + 1, DAY))
        .await
        .unwrap();
    assert!(reinstall.created);
    match store
        .register(&who, &registration("c", apns(3), NOW + 1, DAY))
        .await
    {
        Err(StoreError::TooManyDevices { max: 2 }) => {}
        other => panic!("expected TooManyDevices, got {other:?}"),
    }
    assert_eq!(
        rows(&store),
        (2, 2, 2),
        "the refused registration left nothing behind"
    );
}

#[tokio::test]
async fn deletions_leave_no_index_entries_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    let who = IdentityKey::new("acme", "alice");
    for (device, byte) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        store
            .register(&who, &registration(device, apns(byte), NOW, DAY))
            .await
            .unwrap();
    }
    store
        .register(&who, &registration("a", apns(9), NOW + 1, DAY))
        .await
        .unwrap();
    assert_eq!(
        rows(&store),
        (4, 4, 4),
        "a changed token replaces its owner entry"
    );
    assert!(store.unregister(&who, "a", NOW + 2).await.unwrap());
    assert!(
        store
            .remove_dead_token(&who, "b", &apns(2), NOW + 2)
            .await
            .unwrap()
    );
    assert_eq!(rows(&store), (2, 2, 2));
    assert_eq!(store.revoke(&who, NOW + 2).await.unwrap(), 2);
    assert_eq!(rows(&store), (0, 0, 0));
}

#[tokio::test]
async fn an_undecodable_record_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    let who = IdentityKey::new("acme", "alice");
    let txn = store.db.begin_write().unwrap();
    txn.open_table(REGISTRATIONS)
        .unwrap()
        .insert(b"acme\0alice\0phone".as_slice(), b"\x01".as_slice())
        .unwrap();
    txn.commit().unwrap();
    assert!(matches!(
        store.list(&who, NOW).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.unregister(&who, "phone", NOW).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(store.ping().await.is_ok(), "the file itself is fine");
}

#[tokio::test]
async fn the_sweeper_runs_until_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    let who = IdentityKey::new("acme", "alice");
    // Already expired by the wall clock the sweeper reads.
    let past = wall_clock() - DAY;
    store
        .register(&who, &registration("old", apns(1), past, 1_000))
        .await
        .unwrap();
    let sweeper = store.spawn_sweeper(Duration::from_millis(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while rows(&store) != (0, 0, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper never swept"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sweeper.abort();
    assert!(sweeper.await.unwrap_err().is_cancelled());
}

/// Waits until `n` registration writes are queued for the write lane.
async fn queued(store: &EmbeddedStore, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.group.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} writes never queued"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_in_a_group_commit_takes_none_of_the_others_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 2);
    let (alice, bob) = (
        IdentityKey::new("acme", "alice"),
        IdentityKey::new("acme", "bob"),
    );
    store
        .register(&alice, &registration("a", apns(1), NOW, DAY))
        .await
        .unwrap();
    // Hold the write lane so the next three writes queue and then run as one group: alice's
    // second device, her third (over the limit of 2), and bob's first.
    let turn = store.lanes.write_turn().await;
    let mut writes = Vec::new();
    for (n, (who, device, byte)) in [(&alice, "b", 2), (&alice, "c", 3), (&bob, "x", 4)]
        .into_iter()
        .enumerate()
    {
        let (writer, who) = (store.clone(), who.clone());
        writes.push(tokio::spawn(async move {
            writer
                .register(&who, &registration(device, apns(byte), NOW + 1, DAY))
                .await
        }));
        queued(&store, n + 1).await;
    }
    drop(turn);
    let answers: Vec<_> = futures_util::future::join_all(writes).await;
    assert!(answers[0].as_ref().unwrap().as_ref().unwrap().created);
    match answers[1].as_ref().unwrap() {
        Err(StoreError::TooManyDevices { max: 2 }) => {}
        other => panic!("expected TooManyDevices, got {other:?}"),
    }
    assert!(answers[2].as_ref().unwrap().as_ref().unwrap().created);
    assert_eq!(rows(&store), (3, 3, 3), "a, b and x; nothing of c");
    let devices = |list: Vec<Registration>| -> Vec<String> {
        list.into_iter().map(|r| r.device_id).collect()
    };
    assert_eq!(
        devices(store.list(&alice, NOW + 2).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(devices(store.list(&bob, NOW + 2).await.unwrap()), ["x"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_together_are_all_committed_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    {
        let store = EmbeddedStore::open(&path, 8).unwrap();
        let turn = store.lanes.write_turn().await;
        let writes: Vec<_> = (0..50u8)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let who = IdentityKey::new("acme", format!("user-{n}"));
                    store
                        .register(&who, &registration("phone", apns(n), NOW, DAY))
                        .await
                })
            })
            .collect();
        queued(&store, 50).await;
        drop(turn);
        for write in writes {
            assert!(write.await.unwrap().unwrap().created);
        }
    }
    let reopened = EmbeddedStore::open(&path, 8).unwrap();
    assert_eq!(rows(&reopened), (50, 50, 50));
}

/// Waits until every claim answered has been committed to the file.
async fn claims_written(store: &EmbeddedStore) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.unwritten.len() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "claims never reached the file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

fn lease_terms(node: &str) -> crate::registry::lease::LeaseTerms {
    crate::registry::lease::LeaseTerms {
        node: node.into(),
        lease_ms: 5_000,
        deadline: NOW + 45_000,
        may_take_over: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_answer_in_order_while_the_lane_is_held_and_a_corrupt_one_changes_nothing() {
    use crate::registry::lease::Claim;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let store = EmbeddedStore::open(&path, 8).unwrap();
    // A record that does not decode, as a claim of event "bad" would find it.
    let txn = store.db.begin_write().unwrap();
    txn.open_table(keys::EVENTS)
        .unwrap()
        .insert(
            keys::event_key("acme", "bad").as_slice(),
            [0u8; 12].as_slice(),
        )
        .unwrap();
    txn.commit().unwrap();

    // The write lane is held (as by a durable flush stuck on the disk): every claim still
    // answers, each seeing the ones before it.
    let turn = store.lanes.write_turn().await;
    let mut answers = Vec::new();
    for (event, node) in [
        ("e1", "node-a"),
        ("e1", "node-b"),
        ("bad", "node-a"),
        ("e2", "node-b"),
    ] {
        let terms = lease_terms(node);
        let claim = store.acquire_event("acme", event, &terms, NOW);
        let answered = tokio::time::timeout(std::time::Duration::from_secs(10), claim).await;
        answers.push(answered.expect("a claim does not wait for the write lane"));
    }
    assert!(matches!(answers[0], Ok(Claim::Owned { .. })), "{answers:?}");
    match &answers[1] {
        Ok(Claim::Held { owner, .. }) => assert_eq!(owner, "node-a", "it saw the claim before it"),
        other => panic!("expected the second claim held by node-a, got {other:?}"),
    }
    assert!(
        matches!(answers[2], Err(StoreError::Corrupt(_))),
        "the corrupt record is an error: {answers:?}"
    );
    assert!(matches!(answers[3], Ok(Claim::Owned { .. })), "{answers:?}");
    assert_eq!(store.unwritten.len(), 2, "e1 and e2 wait for the file");
    assert_eq!(store.claims.leaders(), 1, "one leader waits for the lane");
    drop(turn);
    claims_written(&store).await;
    drop(store);

    // Reopened: the file has what the claims answered, and the corrupt record as it was.
    let reopened = EmbeddedStore::open(&path, 8).unwrap();
    for (event, owner) in [("e1", "node-a"), ("e2", "node-b")] {
        match reopened
            .acquire_event("acme", event, &lease_terms("node-c"), NOW + 1)
            .await
        {
            Ok(Claim::Held { owner: held, .. }) => assert_eq!(held, owner),
            other => panic!("expected {event} held by {owner}, got {other:?}"),
        }
    }
    let bad = reopened
        .acquire_event("acme", "bad", &lease_terms("node-c"), NOW + 1)
        .await;
    assert!(matches!(bad, Err(StoreError::Corrupt(_))), "{bad:?}");
}

/// Claims that keep coming while the lane is held share one leader waiting for it, which
/// writes them all once it has it. A leader per write queued hundreds of tasks on the lane
/// behind each flush, each woken in turn only to find its write already done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_made_while_the_lane_is_held_share_one_leader_and_all_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    let turn = store.lanes.write_turn().await;
    for n in 0..200 {
        let claim = store
            .acquire_event("acme", &format!("e{n}"), &lease_terms("node-a"), NOW)
            .await;
        assert!(claim.is_ok(), "{claim:?}");
    }
    assert_eq!(store.unwritten.len(), 200);
    assert_eq!(store.claims.leaders(), 1);
    drop(turn);
    claims_written(&store).await;
    assert_eq!(store.claims.leaders(), 1, "one turn wrote all 200");
    let txn = store.db.begin_read().unwrap();
    assert_eq!(txn.open_table(keys::EVENTS).unwrap().len().unwrap(), 200);
}

/// A claim (no flush due) and a read run on the caller's thread: with the runtime's only
/// blocking-pool thread held, both still finish. Were either sent to the pool, it would wait
/// for that thread until the timeout.
#[test]
fn claims_and_reads_run_without_a_pool_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(&dir, 8);
    // No flush due during the test, however slow the machine: a flush fsyncs on the pool.
    store.claims = Arc::new(Group::new(Persistence::lazy(Duration::from_secs(3_600))));
    let (release, held) = std::sync::mpsc::channel::<()>();
    runtime.block_on(async {
        let blocker = tokio::task::spawn_blocking(move || held.recv());
        let terms = LeaseTerms {
            node: "node-a".into(),
            lease_ms: 5_000,
            deadline: NOW + 45_000,
            may_take_over: true,
        };
        let who = IdentityKey::new("acme", "alice");
        let work = async {
            let claim = store.acquire_event("acme", "e1", &terms, NOW).await;
            let list = store.list(&who, NOW).await;
            (claim, list)
        };
        let done = tokio::time::timeout(Duration::from_secs(10), work).await;
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let (claim, list) = done.expect("neither waited for the pool's only thread");
        assert!(matches!(claim, Ok(Claim::Owned { .. })), "{claim:?}");
        assert!(list.unwrap().is_empty());
    });
}

/// The claims' sweep deletes exactly the claims that ended, across several slices (a batch of
/// 3 over 10 claims), and keeps the live ones.
#[tokio::test]
async fn the_claims_sweep_works_in_slices_and_keeps_live_claims() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, 8);
    for n in 0..10u64 {
        let terms = LeaseTerms {
            node: "node-a".into(),
            lease_ms: 5_000,
            // Even events ended at NOW + 1,000; odd ones ring until NOW + 60,000.
            deadline: NOW + if n % 2 == 0 { 1_000 } else { 60_000 },
            may_take_over: true,
        };
        let claim = store
            .acquire_event("acme", &format!("e{n}"), &terms, NOW)
            .await;
        assert!(matches!(claim, Ok(Claim::Owned { .. })), "{claim:?}");
    }
    claims_written(&store).await;
    let claims = |store: &EmbeddedStore| {
        let txn = store.db.begin_read().unwrap();
        txn.open_table(keys::EVENTS).unwrap().len().unwrap()
    };
    assert_eq!(store.sweep_claims_in_batches(NOW, 3).await.unwrap(), 0);
    assert_eq!(
        store.sweep_claims_in_batches(NOW + 2_000, 3).await.unwrap(),
        5
    );
    assert_eq!(claims(&store), 5, "the five live claims stay");
    let terms = LeaseTerms {
        node: "node-b".into(),
        lease_ms: 5_000,
        deadline: NOW + 60_000,
        may_take_over: true,
    };
    match store.acquire_event("acme", "e1", &terms, NOW + 2_000).await {
        Ok(Claim::Held { owner, .. }) => assert_eq!(owner, "node-a", "a live claim survived"),
        other => panic!("expected e1 still held by node-a, got {other:?}"),
    }
}
