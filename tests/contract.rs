//! The store contract: one suite of behaviours every `Store` must show, run against the
//! embedded store, Redis and a 3-master Redis Cluster by `tests/store_contract.rs`.
//!
//! Each case takes a store and a tenant name no other case uses, so the cases can share a
//! Redis server with each other and with other test runs.

use ringcast::registry::lease::{Claim, LeaseTerms, Progress};
use ringcast::registry::{
    Environment, IdentityKey, PushAddress, Registration, Store, StoreError, UnixMillis,
};
use std::time::{SystemTime, UNIX_EPOCH};

/// The device limit every store under contract is built with.
pub const MAX_DEVICES: u32 = 64;

/// Real wall-clock time: Redis expires keys on its own clock, so the suite's "now" starts at
/// the real time and moves forward from there.
pub fn wall_clock() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn apns(byte: u8) -> PushAddress {
    PushAddress::Apns {
        token: vec![byte; 32],
        alert_token: None,
    }
}

pub fn registration(
    device_id: &str,
    address: PushAddress,
    now: UnixMillis,
    ttl_ms: u64,
) -> Registration {
    Registration {
        device_id: device_id.into(),
        app: "voip".into(),
        address,
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: now,
        updated_at: now,
        expires_at: now + ttl_ms,
    }
}

const DAY: u64 = 86_400_000;

/// Runs every case against `store`; `tenant` prefixes the tenants the cases use.
pub async fn run_all<S: Store>(store: &S, tenant: &str) {
    register_then_refresh(store, &format!("{tenant}-refresh")).await;
    list_is_sorted_and_live_only(store, &format!("{tenant}-list")).await;
    unregister_and_revoke(store, &format!("{tenant}-delete")).await;
    token_moves_between_identities(store, &format!("{tenant}-move")).await;
    token_moves_between_devices_of_one_identity(store, &format!("{tenant}-movedev")).await;
    changed_token_frees_the_old_one(store, &format!("{tenant}-change")).await;
    stale_owner_neither_blocks_nor_misdirects(store, &format!("{tenant}-stale")).await;
    neighbouring_tokens_are_owned_apart(store, &format!("{tenant}-neighbours")).await;
    dead_token_verdicts(store, &format!("{tenant}-dead")).await;
    alert_tokens_are_stored_and_owned(store, &format!("{tenant}-alert")).await;
    alert_token_moves_between_identities(store, &format!("{tenant}-alertmove")).await;
    environment_corrections(store, &format!("{tenant}-env")).await;
    tenants_are_isolated(store, &format!("{tenant}-iso")).await;
    revocations_are_kept_then_forgotten(store, &format!("{tenant}-revoked")).await;
    device_limit(store, &format!("{tenant}-limit")).await;
    event_claims(store, &format!("{tenant}-claims")).await;
    event_leases_hand_over_a_dead_owners_event(store, &format!("{tenant}-leases")).await;
    event_leases_handed_over_and_picked_up_again(store, &format!("{tenant}-handover")).await;
    event_leases_record_many_outcomes_at_once(store, &format!("{tenant}-many")).await;
    concurrent_registrations_lose_nothing(store, &format!("{tenant}-conc")).await;
    store.ping().await.expect("ping");
}

async fn register_then_refresh<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "alice");
    let now = wall_clock();
    let first = store
        .register(&who, &registration("phone", apns(1), now, DAY))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.moved_from, None);

    let later = now + 60_000;
    let refreshed = store
        .register(&who, &registration("phone", apns(1), later, 2 * DAY))
        .await
        .unwrap();
    assert!(!refreshed.created, "same device id again is a refresh");
    assert_eq!(
        refreshed.registration.created_at, now,
        "a refresh keeps created_at"
    );
    assert_eq!(refreshed.registration.updated_at, later);
    assert_eq!(
        refreshed.registration.expires_at,
        later + 2 * DAY,
        "a refresh renews the TTL"
    );

    let listed = store.list(&who, later).await.unwrap();
    assert_eq!(listed, vec![refreshed.registration]);
}

async fn list_is_sorted_and_live_only<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "bob");
    let now = wall_clock();
    assert_eq!(
        store.list(&who, now).await.unwrap(),
        vec![],
        "unknown identity lists nothing"
    );
    store
        .register(&who, &registration("c-tablet", apns(2), now, DAY))
        .await
        .unwrap();
    store
        .register(&who, &registration("a-phone", apns(3), now, DAY))
        .await
        .unwrap();
    store
        .register(&who, &registration("b-short", apns(4), now, 1_000))
        .await
        .unwrap();

    let ids = |list: Vec<Registration>| list.into_iter().map(|r| r.device_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(&who, now).await.unwrap()),
        ["a-phone", "b-short", "c-tablet"]
    );
    assert_eq!(
        ids(store.list(&who, now + 1_000).await.unwrap()),
        ["a-phone", "c-tablet"],
        "a registration at its expiry time is gone"
    );
    assert!(
        !store
            .unregister(&who, "b-short", now + 5_000)
            .await
            .unwrap(),
        "expired is not live"
    );
    // The expired device's token is free again for anyone.
    let other = IdentityKey::new(tenant, "carol");
    let taken = store
        .register(&other, &registration("p", apns(4), now + 5_000, DAY))
        .await
        .unwrap();
    assert_eq!(taken.moved_from, None, "an expired owner is no owner");
}

async fn unregister_and_revoke<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "dave");
    let now = wall_clock();
    store
        .register(&who, &registration("one", apns(5), now, DAY))
        .await
        .unwrap();
    store
        .register(&who, &registration("two", apns(6), now, DAY))
        .await
        .unwrap();
    store
        .register(&who, &registration("gone", apns(7), now, 1_000))
        .await
        .unwrap();

    assert!(store.unregister(&who, "one", now).await.unwrap());
    assert!(
        !store.unregister(&who, "one", now).await.unwrap(),
        "second unregister finds nothing"
    );
    assert_eq!(
        store.revoke(&who, now + 2_000).await.unwrap(),
        1,
        "revoke counts live registrations only"
    );
    assert_eq!(store.list(&who, now).await.unwrap(), vec![]);
    assert_eq!(store.revoke(&who, now).await.unwrap(), 0);

    // Deleted tokens are free: registering them elsewhere moves nothing.
    let other = IdentityKey::new(tenant, "erin");
    for (device, byte) in [("x", 5), ("y", 6)] {
        let r = store
            .register(&other, &registration(device, apns(byte), now, DAY))
            .await
            .unwrap();
        assert_eq!(r.moved_from, None);
    }
}

async fn token_moves_between_identities<S: Store>(store: &S, tenant: &str) {
    let alice = IdentityKey::new(tenant, "alice");
    let bob = IdentityKey::new(tenant, "bob");
    let now = wall_clock();
    store
        .register(&alice, &registration("shared-phone", apns(9), now, DAY))
        .await
        .unwrap();
    store
        .register(
            &alice,
            &registration(
                "laptop",
                PushAddress::Fcm {
                    token: "keep".into(),
                },
                now,
                DAY,
            ),
        )
        .await
        .unwrap();

    let taken = store
        .register(&bob, &registration("phone", apns(9), now + 1, DAY))
        .await
        .unwrap();
    assert!(taken.created);
    assert_eq!(taken.moved_from.as_deref(), Some("alice"));
    let alice_left: Vec<_> = store
        .list(&alice, now + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.device_id)
        .collect();
    assert_eq!(alice_left, ["laptop"], "only the moved token left alice");
    assert_eq!(store.list(&bob, now + 1).await.unwrap().len(), 1);

    // Alice's later sign-out must not delete the token bob now holds.
    assert_eq!(store.revoke(&alice, now + 2).await.unwrap(), 1);
    assert_eq!(store.list(&bob, now + 2).await.unwrap().len(), 1);
    let back = store
        .register(&alice, &registration("again", apns(9), now + 3, DAY))
        .await
        .unwrap();
    assert_eq!(
        back.moved_from.as_deref(),
        Some("bob"),
        "the owner index still points at bob"
    );
}

async fn token_moves_between_devices_of_one_identity<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "frank");
    let now = wall_clock();
    store
        .register(&who, &registration("old-install", apns(10), now, DAY))
        .await
        .unwrap();
    let moved = store
        .register(&who, &registration("new-install", apns(10), now + 1, DAY))
        .await
        .unwrap();
    assert!(moved.created);
    assert_eq!(moved.moved_from, None, "same identity: nothing to report");
    let ids: Vec<_> = store
        .list(&who, now + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.device_id)
        .collect();
    assert_eq!(
        ids,
        ["new-install"],
        "one token, one device: it would ring twice otherwise"
    );
}

async fn changed_token_frees_the_old_one<S: Store>(store: &S, tenant: &str) {
    let grace = IdentityKey::new(tenant, "grace");
    let henry = IdentityKey::new(tenant, "henry");
    let now = wall_clock();
    store
        .register(&grace, &registration("phone", apns(11), now, DAY))
        .await
        .unwrap();
    store
        .register(&grace, &registration("phone", apns(12), now + 1, DAY))
        .await
        .unwrap();
    let r = store
        .register(&henry, &registration("phone", apns(11), now + 2, DAY))
        .await
        .unwrap();
    assert_eq!(r.moved_from, None, "grace no longer holds the old token");
    let grace_tokens: Vec<_> = store
        .list(&grace, now + 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.address)
        .collect();
    assert_eq!(
        grace_tokens,
        [apns(12)],
        "grace's phone keeps its new token"
    );
}

/// A token whose registration expired has no owner: registering it elsewhere reports no move
/// and deletes nothing, even though its former holder (same identity, same device id) is live
/// again with another token. A store that keeps owner entries past their registration's
/// expiry (Redis until the bucket is next written) must look through them.
async fn stale_owner_neither_blocks_nor_misdirects<S: Store>(store: &S, tenant: &str) {
    let nina = IdentityKey::new(tenant, "nina");
    let omar = IdentityKey::new(tenant, "omar");
    let now = wall_clock();
    store
        .register(&nina, &registration("phone", apns(16), now, 1_000))
        .await
        .unwrap();
    let again = store
        .register(&nina, &registration("phone", apns(17), now + 2_000, DAY))
        .await
        .unwrap();
    assert!(again.created, "the expired registration is gone");

    let taken = store
        .register(&omar, &registration("phone", apns(16), now + 3_000, DAY))
        .await
        .unwrap();
    assert_eq!(taken.moved_from, None, "an expired owner is no owner");
    assert_eq!(
        store.list(&nina, now + 3_000).await.unwrap()[0].address,
        apns(17),
        "nina's phone keeps its new token"
    );
    assert_eq!(store.list(&omar, now + 3_000).await.unwrap().len(), 1);

    // Omar's token now moves on as any live token does.
    let moved = store
        .register(&nina, &registration("tablet", apns(16), now + 4_000, DAY))
        .await
        .unwrap();
    assert_eq!(moved.moved_from.as_deref(), Some("omar"));
    assert_eq!(store.list(&omar, now + 4_000).await.unwrap(), vec![]);
}

/// Owner records of different tokens do not disturb each other (in Redis they may share a
/// bucket hash): releasing, re-tokening and moving one leaves the others' owners intact.
async fn neighbouring_tokens_are_owned_apart<S: Store>(store: &S, tenant: &str) {
    let now = wall_clock();
    let people: Vec<IdentityKey> = (0..8)
        .map(|n| IdentityKey::new(tenant, format!("p{n}")))
        .collect();
    for (n, who) in people.iter().enumerate() {
        store
            .register(who, &registration("phone", apns(100 + n as u8), now, DAY))
            .await
            .unwrap();
    }
    assert!(store.unregister(&people[0], "phone", now).await.unwrap());
    assert_eq!(store.revoke(&people[1], now).await.unwrap(), 1);
    store
        .register(&people[2], &registration("phone", apns(120), now + 1, DAY))
        .await
        .unwrap();
    let newcomer = IdentityKey::new(tenant, "newcomer");
    for (n, expected) in [
        (0, None),
        (1, None),
        (2, None),
        (3, Some("p3")),
        (7, Some("p7")),
    ] {
        let r = store
            .register(
                &newcomer,
                &registration(&format!("d{n}"), apns(100 + n), now + 2, DAY),
            )
            .await
            .unwrap();
        assert_eq!(r.moved_from.as_deref(), expected, "token {n}");
    }
    for n in [4, 5, 6] {
        assert_eq!(store.list(&people[n], now + 2).await.unwrap().len(), 1);
    }
    assert_eq!(store.list(&people[3], now + 2).await.unwrap(), vec![]);
    assert_eq!(store.list(&newcomer, now + 2).await.unwrap().len(), 5);
}

async fn dead_token_verdicts<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "ivan");
    let now = wall_clock();
    store
        .register(&who, &registration("phone", apns(13), now, DAY))
        .await
        .unwrap();
    store
        .register(&who, &registration("phone", apns(13), now + 10_000, DAY))
        .await
        .unwrap();

    assert!(
        !store
            .remove_dead_token(&who, "phone", &apns(13), now + 5_000)
            .await
            .unwrap(),
        "a verdict older than the last registration keeps it"
    );
    assert!(
        !store
            .remove_dead_token(&who, "phone", &apns(14), now + 20_000)
            .await
            .unwrap(),
        "a verdict about another token keeps it"
    );
    assert!(
        !store
            .remove_dead_token(&who, "tablet", &apns(13), now + 20_000)
            .await
            .unwrap()
    );
    assert_eq!(store.list(&who, now + 20_000).await.unwrap().len(), 1);
    assert!(
        store
            .remove_dead_token(&who, "phone", &apns(13), now + 20_000)
            .await
            .unwrap()
    );
    assert_eq!(store.list(&who, now + 20_000).await.unwrap(), vec![]);
    let other = IdentityKey::new(tenant, "judy");
    let r = store
        .register(&other, &registration("p", apns(13), now + 30_000, DAY))
        .await
        .unwrap();
    assert_eq!(r.moved_from, None, "a dead token has no owner");
}

/// An APNs address with the PushKit token `voip` and the regular token `alert`.
fn apns_with_alert(voip: u8, alert: u8) -> PushAddress {
    PushAddress::Apns {
        token: vec![voip; 32],
        alert_token: Some(vec![alert; 32]),
    }
}

async fn alert_tokens_are_stored_and_owned<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "kate");
    let now = wall_clock();
    store
        .register(
            &who,
            &registration("phone", apns_with_alert(40, 41), now, DAY),
        )
        .await
        .unwrap();
    store
        .register(&who, &registration("old-phone", apns(42), now, DAY))
        .await
        .unwrap();
    let listed = store.list(&who, now + 1).await.unwrap();
    assert_eq!(
        listed[0].address,
        apns(42),
        "no alert token: none read back"
    );
    assert_eq!(listed[1].address, apns_with_alert(40, 41));

    // A refresh that drops the alert token frees it: another identity takes it quietly.
    store
        .register(&who, &registration("phone", apns(40), now + 2, DAY))
        .await
        .unwrap();
    let other = IdentityKey::new(tenant, "liam");
    let r = store
        .register(
            &other,
            &registration("p", apns_with_alert(43, 41), now + 3, DAY),
        )
        .await
        .unwrap();
    assert_eq!(r.moved_from, None, "kate no longer holds that alert token");
    assert_eq!(store.list(&who, now + 3).await.unwrap().len(), 2);

    // A dead-token verdict deletes the registration and frees both its tokens.
    assert!(
        store
            .remove_dead_token(&other, "p", &apns_with_alert(43, 41), now + 4)
            .await
            .unwrap()
    );
    let r = store
        .register(
            &who,
            &registration("tablet", apns_with_alert(44, 41), now + 5, DAY),
        )
        .await
        .unwrap();
    assert_eq!(
        r.moved_from, None,
        "a dead registration owns no alert token"
    );
    // Unregistering frees the alert token too.
    assert!(store.unregister(&who, "tablet", now + 6).await.unwrap());
    let r = store
        .register(
            &other,
            &registration("q", apns_with_alert(45, 41), now + 7, DAY),
        )
        .await
        .unwrap();
    assert_eq!(r.moved_from, None);
}

async fn alert_token_moves_between_identities<S: Store>(store: &S, tenant: &str) {
    let mia = IdentityKey::new(tenant, "mia");
    let noah = IdentityKey::new(tenant, "noah");
    let now = wall_clock();
    store
        .register(
            &mia,
            &registration("phone", apns_with_alert(50, 51), now, DAY),
        )
        .await
        .unwrap();
    store
        .register(&mia, &registration("tablet", apns(52), now, DAY))
        .await
        .unwrap();
    // The phone signed in as noah: its app registered its regular token there (with a new
    // PushKit token). Mia must not get noah's notices, nor noah mia's: her phone goes.
    let taken = store
        .register(
            &noah,
            &registration("phone", apns_with_alert(53, 51), now + 1, DAY),
        )
        .await
        .unwrap();
    assert_eq!(taken.moved_from.as_deref(), Some("mia"));
    let left: Vec<_> = store
        .list(&mia, now + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.device_id)
        .collect();
    assert_eq!(left, ["tablet"]);
    // Mia's sign-out afterwards leaves noah's phone alone.
    assert_eq!(store.revoke(&mia, now + 2).await.unwrap(), 1);
    assert_eq!(
        store.list(&noah, now + 2).await.unwrap()[0].address,
        apns_with_alert(53, 51)
    );
    // A token held as the regular token elsewhere is one token: registering it as a
    // PushKit token takes it too.
    let back = store
        .register(&mia, &registration("phone", apns(51), now + 3, DAY))
        .await
        .unwrap();
    assert_eq!(back.moved_from.as_deref(), Some("noah"));
    assert!(store.list(&noah, now + 3).await.unwrap().is_empty());
}

async fn environment_corrections<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "olga");
    let now = wall_clock();
    store
        .register(
            &who,
            &registration("phone", apns_with_alert(60, 61), now, DAY),
        )
        .await
        .unwrap();
    let environment = |listed: Vec<Registration>| listed[0].environment;
    // A finding older than the last registration, about another token or device: nothing.
    assert!(
        !store
            .correct_environment(&who, "phone", &apns(60), Environment::Sandbox, now - 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .correct_environment(&who, "phone", &apns(62), Environment::Sandbox, now + 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .correct_environment(&who, "tablet", &apns(60), Environment::Sandbox, now + 1)
            .await
            .unwrap()
    );
    assert_eq!(
        environment(store.list(&who, now + 1).await.unwrap()),
        Environment::Production
    );
    assert!(
        store
            .correct_environment(&who, "phone", &apns(60), Environment::Sandbox, now + 1)
            .await
            .unwrap()
    );
    let listed = store.list(&who, now + 2).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].environment, Environment::Sandbox);
    assert_eq!(
        listed[0].address,
        apns_with_alert(60, 61),
        "nothing else changed"
    );
    assert_eq!(listed[0].updated_at, now);
    assert!(
        !store
            .correct_environment(&who, "phone", &apns(60), Environment::Sandbox, now + 3)
            .await
            .unwrap(),
        "already there"
    );
    // The tokens are still owned by the phone.
    let r = store
        .register(
            &IdentityKey::new(tenant, "pete"),
            &registration("p", apns(61), now + 4, DAY),
        )
        .await
        .unwrap();
    assert_eq!(r.moved_from.as_deref(), Some("olga"));
}

async fn tenants_are_isolated<S: Store>(store: &S, tenant: &str) {
    let a = IdentityKey::new(format!("{tenant}-a"), "kim");
    let b = IdentityKey::new(format!("{tenant}-b"), "kim");
    let now = wall_clock();
    store
        .register(&a, &registration("phone", apns(15), now, DAY))
        .await
        .unwrap();
    let r = store
        .register(&b, &registration("phone", apns(15), now, DAY))
        .await
        .unwrap();
    assert_eq!(r.moved_from, None, "a token is owned per tenant");
    assert_eq!(store.list(&a, now).await.unwrap().len(), 1);
    assert_eq!(store.revoke(&b, now).await.unwrap(), 1);
    assert_eq!(
        store.list(&a, now).await.unwrap().len(),
        1,
        "revoking in b leaves a alone"
    );
}

/// Revoke means revoke: the time of an identity's last revocation is kept for `keep_ms`, per
/// identity and tenant, and a later one replaces it.
async fn revocations_are_kept_then_forgotten<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "rita");
    let neighbour = IdentityKey::new(tenant, "rita2");
    let other_tenant = IdentityKey::new(format!("{tenant}-b"), "rita");
    let now = wall_clock();
    assert_eq!(store.revoked_at(&who, now).await.unwrap(), None);
    store.record_revocation(&who, now, DAY).await.unwrap();
    assert_eq!(store.revoked_at(&who, now).await.unwrap(), Some(now));
    assert_eq!(
        store.revoked_at(&who, now + DAY - 1).await.unwrap(),
        Some(now),
        "kept for keep_ms"
    );
    assert_eq!(
        store.revoked_at(&who, now + DAY).await.unwrap(),
        None,
        "forgotten once every token it could refuse has expired"
    );
    assert_eq!(store.revoked_at(&neighbour, now).await.unwrap(), None);
    assert_eq!(store.revoked_at(&other_tenant, now).await.unwrap(), None);

    store
        .record_revocation(&who, now + 5_000, DAY)
        .await
        .unwrap();
    assert_eq!(
        store.revoked_at(&who, now + 5_000).await.unwrap(),
        Some(now + 5_000),
        "a later revocation replaces the earlier one"
    );
    assert_eq!(
        store.revoked_at(&who, now + DAY + 4_999).await.unwrap(),
        Some(now + 5_000),
        "and is kept from its own time on"
    );

    // A revocation does not stop the identity from registering again (with a new token).
    store
        .register(&who, &registration("phone", apns(41), now + 6_000, DAY))
        .await
        .unwrap();
    assert_eq!(store.list(&who, now + 6_000).await.unwrap().len(), 1);
}

async fn device_limit<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "leo");
    let now = wall_clock();
    store
        .register(&who, &registration("short-lived", apns(200), now, 1_000))
        .await
        .unwrap();
    for n in 0..MAX_DEVICES - 1 {
        let token = PushAddress::Fcm {
            token: format!("limit-{n}"),
        };
        store
            .register(&who, &registration(&format!("d{n:02}"), token, now, DAY))
            .await
            .unwrap();
    }
    let later = now + 2_000;
    let token = PushAddress::Fcm {
        token: "limit-last".into(),
    };
    store
        .register(&who, &registration("last", token, later, DAY))
        .await
        .expect("expired devices do not count");
    let token = PushAddress::Fcm {
        token: "limit-over".into(),
    };
    match store
        .register(&who, &registration("over", token, later, DAY))
        .await
    {
        Err(StoreError::TooManyDevices { max }) => assert_eq!(max, MAX_DEVICES),
        other => panic!("expected TooManyDevices, got {other:?}"),
    }
    let token = PushAddress::Fcm {
        token: "limit-0".into(),
    };
    store
        .register(&who, &registration("d00", token, later, DAY))
        .await
        .expect("a refresh at the limit is fine");
    assert_eq!(
        store.list(&who, later).await.unwrap().len(),
        MAX_DEVICES as usize
    );
}

async fn concurrent_registrations_lose_nothing<S: Store>(store: &S, tenant: &str) {
    let who = IdentityKey::new(tenant, "mia");
    let now = wall_clock();
    let tasks: Vec<_> = (0..48)
        .map(|n| {
            let store = store.clone();
            let who = who.clone();
            tokio::spawn(async move {
                let token = PushAddress::Fcm {
                    token: format!("concurrent-{n}"),
                };
                store
                    .register(&who, &registration(&format!("dev-{n:02}"), token, now, DAY))
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap().created);
    }
    assert_eq!(store.list(&who, now).await.unwrap().len(), 48);
}

/// Lease terms for `node`: a 3 s lease on an event whose deadline is a minute after `now`.
fn terms(node: &str, now: UnixMillis) -> LeaseTerms {
    LeaseTerms {
        node: node.into(),
        lease_ms: 3_000,
        deadline: now + 60_000,
        may_take_over: true,
    }
}

fn owned(claim: &Claim) -> Option<Vec<String>> {
    match claim {
        Claim::Owned { done, .. } => Some(done.clone()),
        Claim::Held { .. } | Claim::Lapsed { .. } => None,
    }
}

/// A call event rings once: the first claim owns it while its lease runs, per tenant; a
/// released claim lets the retry ring.
async fn event_claims<S: Store>(store: &S, tenant: &str) {
    let other = format!("{tenant}-other");
    let now = wall_clock();
    let first = store
        .acquire_event(tenant, "call-1", &terms("node-a", now), now)
        .await
        .unwrap();
    assert_eq!(owned(&first), Some(vec![]));
    // Another node, while the lease runs: a duplicate, told who owns it.
    let again = store
        .acquire_event(tenant, "call-1", &terms("node-b", now), now + 10)
        .await
        .unwrap();
    assert!(
        matches!(&again, Claim::Held { owner, progress } if owner == "node-a" && !progress.finished),
        "{again:?}"
    );
    // Event ids are the caller's: another tenant's equal id is another event.
    let elsewhere = store
        .acquire_event(&other, "call-1", &terms("node-b", now), now)
        .await
        .unwrap();
    assert_eq!(owned(&elsewhere), Some(vec![]));
    // An id with a Redis hash tag and odd bytes is just an id.
    let odd = store
        .acquire_event(tenant, "{x}\u{e9}:end", &terms("node-a", now), now)
        .await
        .unwrap();
    assert_eq!(owned(&odd), Some(vec![]));

    // Released (the event could not be queued): the retry, on any node, claims it again.
    store
        .acquire_event(tenant, "call-2", &terms("node-a", now), now)
        .await
        .unwrap();
    // Only by its owner: another node's release leaves the claim alone.
    store
        .release_event(tenant, "call-2", "node-b")
        .await
        .unwrap();
    assert!(
        owned(
            &store
                .acquire_event(tenant, "call-2", &terms("node-c", now), now + 1)
                .await
                .unwrap()
        )
        .is_none()
    );
    store
        .release_event(tenant, "call-2", "node-a")
        .await
        .unwrap();
    let retried = store
        .acquire_event(tenant, "call-2", &terms("node-b", now), now + 2)
        .await
        .unwrap();
    assert_eq!(owned(&retried), Some(vec![]));
    // Releasing what is not claimed is fine.
    store
        .release_event(tenant, "never-claimed", "node-a")
        .await
        .unwrap();

    // A claim ends with its event's deadline (Redis on its own clock: real time passes).
    let start = wall_clock();
    let short = LeaseTerms {
        node: "node-a".into(),
        lease_ms: 3_000,
        deadline: start + 200,
        may_take_over: true,
    };
    store
        .acquire_event(tenant, "call-3", &short, start)
        .await
        .unwrap();
    store
        .finish_event(tenant, "call-3", "node-a", &[], start)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let later = wall_clock();
    let after_deadline = store
        .acquire_event(tenant, "call-3", &terms("node-b", later), later)
        .await
        .unwrap();
    assert_eq!(owned(&after_deadline), Some(vec![]));
}

/// The owner renews its lease and records outcomes; a duplicate sees that progress; after
/// the lease lapsed another node takes the event over and is told which devices are done;
/// the old owner learns it lost the event, and its late outcomes still count.
async fn event_leases_hand_over_a_dead_owners_event<S: Store>(store: &S, tenant: &str) {
    let now = wall_clock();
    let owned_by_a = store
        .acquire_event(tenant, "ring-1", &terms("node-a", now), now)
        .await
        .unwrap();
    assert_eq!(owned(&owned_by_a), Some(vec![]));
    let phone = vec!["phone".to_owned()];
    assert!(
        store
            .renew_event(tenant, "ring-1", "node-a", &phone, 3_000, now + 1_000)
            .await
            .unwrap()
    );
    // Renewed at +1 s: still a's at +3.5 s, and the duplicate sees the phone done.
    let duplicate = store
        .acquire_event(tenant, "ring-1", &terms("node-b", now), now + 3_500)
        .await
        .unwrap();
    match duplicate {
        Claim::Held { owner, progress } => {
            assert_eq!(owner, "node-a");
            assert_eq!(progress.done, phone);
            assert!(!progress.finished);
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    // Its lease lapsed at +4 s, but a node that just saw the store fail does not take the
    // event over (a may only have been cut off from the store): nothing is written.
    let cautious = LeaseTerms {
        may_take_over: false,
        ..terms("node-b", now)
    };
    let withheld = store
        .acquire_event(tenant, "ring-1", &cautious, now + 4_001)
        .await
        .unwrap();
    assert_eq!(
        withheld,
        Claim::Lapsed {
            owner: "node-a".into()
        }
    );
    // a died: b takes over and skips the phone.
    let taken = store
        .acquire_event(tenant, "ring-1", &terms("node-b", now), now + 4_001)
        .await
        .unwrap();
    assert_eq!(
        taken,
        Claim::Owned {
            taken_over_from: Some("node-a".into()),
            done: phone.clone()
        }
    );
    // A third node, during b's lease: a duplicate.
    assert!(
        owned(
            &store
                .acquire_event(tenant, "ring-1", &terms("node-c", now), now + 4_100)
                .await
                .unwrap()
        )
        .is_none()
    );
    // a wakes up: it no longer owns the event; its outcome is recorded anyway; it cannot
    // release or finish b's claim.
    let tablet = vec!["tablet".to_owned()];
    assert!(
        !store
            .renew_event(tenant, "ring-1", "node-a", &tablet, 3_000, now + 4_200)
            .await
            .unwrap()
    );
    store
        .release_event(tenant, "ring-1", "node-a")
        .await
        .unwrap();
    store
        .finish_event(tenant, "ring-1", "node-a", &[], now + 4_300)
        .await
        .unwrap();
    let seen = store
        .acquire_event(tenant, "ring-1", &terms("node-c", now), now + 4_400)
        .await
        .unwrap();
    match seen {
        Claim::Held { owner, progress } => {
            assert_eq!(owner, "node-b");
            assert_eq!(progress.done, vec!["phone".to_owned(), "tablet".to_owned()]);
            assert!(!progress.finished);
        }
        other => panic!("expected b's claim, got {other:?}"),
    }
    // b finishes: nobody takes the event over again, even long after b's lease.
    store
        .finish_event(
            tenant,
            "ring-1",
            "node-b",
            &["laptop".to_owned()],
            now + 5_000,
        )
        .await
        .unwrap();
    let (owner, progress) = held(store, tenant, "ring-1", "node-c", now, now + 30_000).await;
    assert_eq!(owner, "node-b", "a finished event is never taken over");
    assert!(progress.finished);
    assert_eq!(progress.done.len(), 3);
    // And a finished event is not released by its owner either.
    store
        .release_event(tenant, "ring-1", "node-b")
        .await
        .unwrap();
    assert!(
        owned(
            &store
                .acquire_event(tenant, "ring-1", &terms("node-c", now), now + 31_000)
                .await
                .unwrap()
        )
        .is_none()
    );
}

/// Outcomes are recorded in batches of any size (the Redis scripts write them in slices, as
/// Lua's `unpack` takes a few thousand values at most), and every one of them is seen.
async fn event_leases_record_many_outcomes_at_once<S: Store>(store: &S, tenant: &str) {
    let now = wall_clock();
    let devices = |from: usize, to: usize| -> Vec<String> {
        (from..to).map(|i| format!("device-{i:05}")).collect()
    };
    claim_then_renew(
        store,
        tenant,
        "ring-many",
        &devices(0, 1_500),
        3_000,
        now,
        now + 1,
    )
    .await;
    store
        .finish_event(
            tenant,
            "ring-many",
            "node-a",
            &devices(1_500, 2_100),
            now + 2,
        )
        .await
        .unwrap();
    let (owner, progress) = held(store, tenant, "ring-many", "node-b", now, now + 3).await;
    assert_eq!(owner, "node-a");
    assert!(progress.finished);
    assert_eq!(progress.done, devices(0, 2_100));
}

/// node-a claims `event` at `now`, then renews its lease for `lease_ms` at `at`, recording
/// `done`; the renewal must find the event still node-a's.
async fn claim_then_renew<S: Store>(
    store: &S,
    tenant: &str,
    event: &str,
    done: &[String],
    lease_ms: u64,
    now: UnixMillis,
    at: UnixMillis,
) {
    let claim = store
        .acquire_event(tenant, event, &terms("node-a", now), now)
        .await
        .unwrap();
    assert_eq!(owned(&claim), Some(vec![]), "node-a claims {event}");
    assert!(
        store
            .renew_event(tenant, event, "node-a", done, lease_ms, at)
            .await
            .unwrap(),
        "node-a renews {event}"
    );
}

/// What `node` is told when it claims `event` at `at` and another node holds it: the owner and
/// its progress (a claim of its own fails the test).
async fn held<S: Store>(
    store: &S,
    tenant: &str,
    event: &str,
    node: &str,
    now: UnixMillis,
    at: UnixMillis,
) -> (String, Progress) {
    match store
        .acquire_event(tenant, event, &terms(node, now), at)
        .await
        .unwrap()
    {
        Claim::Held { owner, progress } => (owner, progress),
        other => panic!("expected another node's claim on {event}, got {other:?}"),
    }
}

/// A lease renewed with length 0 ends at once (how a stopping node hands its unfinished
/// events over), and a node whose claim answer was lost picks its own claim up again.
async fn event_leases_handed_over_and_picked_up_again<S: Store>(store: &S, tenant: &str) {
    let now = wall_clock();
    claim_then_renew(
        store,
        tenant,
        "ring-2",
        &["phone".to_owned()],
        0,
        now,
        now + 100,
    )
    .await;
    let taken = store
        .acquire_event(tenant, "ring-2", &terms("node-b", now), now + 101)
        .await
        .unwrap();
    assert_eq!(owned(&taken), Some(vec!["phone".to_owned()]));
    // b's answer was lost; b (which is not routing the event any more) asks again.
    let again = store
        .acquire_event(tenant, "ring-2", &terms("node-b", now), now + 200)
        .await
        .unwrap();
    assert!(
        matches!(&again, Claim::Owned { taken_over_from: Some(node), .. } if node == "node-b"),
        "{again:?}"
    );
    // Concurrent claims of one new event by many nodes: exactly one owns it.
    let claims = futures_util::future::join_all((0..8).map(|n| {
        let node = format!("node-{n}");
        async move {
            store
                .acquire_event(tenant, "ring-3", &terms(&node, now), now)
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| owned(c).is_some()).count(), 1);
}
