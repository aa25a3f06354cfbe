use super::*;
use std::time::Duration;

const T0: UnixMillis = 1_800_000_000_000;
const MINUTE: u64 = 60_000;

fn key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn cache(key: &rcgen::KeyPair) -> ProviderTokenCache {
    refreshing_at(key, 50)
}

/// A cache whose connections replace their token at `minutes`.
fn refreshing_at(key: &rcgen::KeyPair, minutes: u64) -> ProviderTokenCache {
    ProviderTokenCache::new(
        "TEAM123456",
        "KEY1234567",
        key.serialize_pem().as_bytes(),
        Duration::from_secs(minutes * 60),
    )
    .unwrap()
}

#[test]
fn a_connection_opened_just_before_a_refresh_keeps_its_token_twenty_minutes() {
    let key = key();
    let cache = cache(&key);
    let early = BoundCredential::default();
    let late = BoundCredential::default();
    assert_eq!(cache.for_connection(&early, 0, T0).credential, T0);
    // Opened at minute 34 (after a GOAWAY, say): the newest is young enough to start on.
    assert_eq!(
        cache.for_connection(&late, 0, T0 + 34 * MINUTE).credential,
        T0
    );
    // Minute 50: the early connection's token is at the refresh age, and it has carried it
    // 50 minutes: it takes a new one.
    let renewed = cache.for_connection(&early, 0, T0 + 50 * MINUTE);
    assert_eq!(renewed.credential, T0 + 50 * MINUTE);
    assert_eq!(renewed.since, T0 + 50 * MINUTE);
    // The late one has carried its token 16 minutes: changing now is what Apple refuses
    // (429 TooManyProviderTokenUpdates). It keeps it until the 20 minutes are up...
    let kept = cache.for_connection(&late, 0, T0 + 53 * MINUTE);
    assert_eq!((kept.credential, kept.since), (T0, T0 + 34 * MINUTE));
    // ...when the token is 54 minutes old, under Apple's hour with its margin.
    let moved = cache.for_connection(&late, 0, T0 + 54 * MINUTE);
    assert_eq!(moved.credential, T0 + 50 * MINUTE);
    assert_eq!(moved.authorization, renewed.authorization);
}

#[test]
fn a_token_refused_as_expired_is_left_at_once_by_every_connection_carrying_it() {
    let key = key();
    let cache = cache(&key);
    let first = BoundCredential::default();
    let second = BoundCredential::default();
    let at_start = cache.for_connection(&first, 0, T0);
    cache.for_connection(&second, 0, T0 + MINUTE);
    // APNs (its clock ahead of ours) calls the token expired at minute 25.
    cache
        .refresh_expired(at_start.credential, T0 + 25 * MINUTE)
        .unwrap();
    for connection in [&first, &second] {
        let bound = cache.for_connection(connection, 0, T0 + 25 * MINUTE + 1);
        assert_eq!(bound.credential, T0 + 25 * MINUTE);
        assert_ne!(bound.authorization, at_start.authorization);
    }
}

#[test]
fn a_refused_token_the_cache_may_not_replace_yet_is_no_change_for_the_connection() {
    let key = key();
    let cache = cache(&key);
    let connection = BoundCredential::default();
    let first = cache.for_connection(&connection, 0, T0);
    // Refused within 20 minutes of its mint: the cache keeps it (Apple's floor), so the
    // connection carries the same token, and its 20 minutes still count from the start.
    cache
        .refresh_expired(first.credential, T0 + 5 * MINUTE)
        .unwrap();
    let same = cache.for_connection(&connection, 0, T0 + 5 * MINUTE);
    assert_eq!((same.credential, same.since), (T0, T0));
}

#[test]
fn a_connection_carrying_a_replaced_keys_token_takes_the_new_keys_at_once() {
    // A reload replaced the key (generation 0 → 1) while a push held a stream on a
    // connection of the old one: it goes out with the new key, even within 20 minutes.
    let (old_key, new_key) = (key(), key());
    let (old, new) = (cache(&old_key), cache(&new_key));
    let connection = BoundCredential::default();
    let before = old.for_connection(&connection, 0, T0);
    let after = new.for_connection(&connection, 1, T0 + MINUTE);
    assert_ne!(after.authorization, before.authorization);
    assert_eq!((after.issuer, after.since), (1, T0 + MINUTE));
    assert_eq!(new.for_connection(&connection, 1, T0 + 2 * MINUTE), after);
}

#[test]
fn a_certificate_app_binds_no_token() {
    let bound =
        ProviderTokenCache::certificate().for_connection(&BoundCredential::default(), 0, T0);
    assert_eq!(bound.authorization, None);
}

/// Hours of pushes over connections that come and go at odd times, every push judged by
/// the simulator's APNs rules (one connection state each), with tokens chosen per
/// connection, and then with one token shared by all: only the first passes.
#[cfg(feature = "simulator")]
mod judged_by_the_simulator {
    use super::*;
    use crate::simulator::apns::{ApnsKey, ApnsRequest, ConnectionToken, Verdict, judge};
    use http::{HeaderMap, HeaderValue, Method};
    use std::collections::BTreeMap;

    /// The refusals of a six-hour run: four connections, each replaced after 1 to 90
    /// minutes (a GOAWAY, a reset), a push every 15 s on each; `stamp` picks the token.
    fn refusals(
        key: &rcgen::KeyPair,
        stamp: impl Fn(&BoundCredential, UnixMillis) -> Bound,
    ) -> Vec<&'static str> {
        let keys = [ApnsKey::from_pem("TEAM123456", "KEY1234567", &key.public_key_pem()).unwrap()];
        let path = format!("/3/device/{}", "ab".repeat(32));
        let mut connections: Vec<(BoundCredential, ConnectionToken, UnixMillis)> = Vec::new();
        let mut refused = Vec::new();
        // A fixed lifetime sequence (1 to 90 minutes): repeatable, and dense around every
        // refresh.
        let mut lifetimes = (0u64..).map(|n| (n * 37 + 11) % 90 + 1);
        let mut now = T0;
        while now < T0 + 6 * 60 * MINUTE {
            for slot in 0..4 {
                if connections.len() <= slot {
                    connections.push(Default::default());
                    connections[slot].2 = now;
                }
                if now >= connections[slot].2 {
                    let lifetime = lifetimes.next().unwrap_or(30);
                    connections[slot] = (
                        BoundCredential::default(),
                        ConnectionToken::default(),
                        now + lifetime * MINUTE,
                    );
                }
                let (bound, apple, _) = &mut connections[slot];
                let stamped = stamp(bound, now);
                let mut headers = HeaderMap::new();
                headers.insert("authorization", stamped.authorization.unwrap());
                headers.insert(
                    "apns-topic",
                    HeaderValue::from_static("com.example.app.voip"),
                );
                headers.insert("apns-push-type", HeaderValue::from_static("voip"));
                headers.insert("apns-priority", HeaderValue::from_static("10"));
                let request = ApnsRequest {
                    method: &Method::POST,
                    path: &path,
                    headers: &headers,
                    body: b"{}",
                    authority: None,
                    bundle_ids: &[],
                    key_environments: &BTreeMap::new(),
                };
                if let Verdict::Reject { reason, .. } = judge(request, &keys, now / 1000, apple) {
                    refused.push(reason);
                }
            }
            now += 15_000;
        }
        refused
    }

    #[test]
    fn per_connection_tokens_pass_six_hours_of_connection_churn() {
        let key = key();
        // The shortest, the default and the longest refresh age config allows.
        for minutes in [20, 50, 55] {
            let cache = refreshing_at(&key, minutes);
            let refused = refusals(&key, |connection, now| {
                cache.for_connection(connection, 0, now)
            });
            assert!(
                refused.is_empty(),
                "refreshing at {minutes} min: {refused:?}"
            );
        }
    }

    #[test]
    fn one_token_shared_by_every_connection_is_refused_as_too_many_updates() {
        // The control: the judge does catch what per-connection tokens avoid.
        let key = key();
        let cache = cache(&key);
        let refused = refusals(&key, |_, now| {
            let token = cache.token(now).unwrap();
            Bound {
                authorization: token.authorization,
                credential: token.minted_at,
                issuer: 0,
                since: now,
            }
        });
        assert!(
            refused.contains(&"TooManyProviderTokenUpdates"),
            "{refused:?}"
        );
    }
}
