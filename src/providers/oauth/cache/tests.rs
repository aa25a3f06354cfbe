use super::*;

const T0: UnixMillis = 1_800_000_000_000;
const MINUTE: u64 = 60_000;

/// A token obtained at `at`, living `life_ms`, named `name`.
fn token(name: &str, at: UnixMillis, life_ms: u64) -> AccessToken {
    AccessToken {
        authorization: HeaderValue::try_from(format!("Bearer {name}")).unwrap(),
        obtained_at: at,
        expires_at: at + life_ms,
    }
}

fn cache() -> AccessTokenCache {
    AccessTokenCache::new(Duration::from_secs(300), DEFAULT_REFRESH_STALE_AFTER)
}

fn bearer(state: &TokenState) -> Option<&str> {
    match state {
        TokenState::Fresh(token) | TokenState::RefreshAhead(token) => {
            Some(token.authorization.to_str().unwrap())
        }
        TokenState::MustRefresh | TokenState::AwaitRefresh(_) => None,
    }
}

#[test]
fn the_first_caller_fetches_and_the_others_wait_for_it() {
    let cache = cache();
    let other_connection = cache.clone();
    assert!(matches!(cache.current(T0), TokenState::MustRefresh));
    assert!(matches!(
        other_connection.current(T0 + 10),
        TokenState::AwaitRefresh(_)
    ));
    cache.store(token("first", T0 + 100, 60 * MINUTE));
    assert_eq!(
        bearer(&other_connection.current(T0 + 200)),
        Some("Bearer first")
    );
    assert!(matches!(
        other_connection.current(T0 + 200),
        TokenState::Fresh(_)
    ));
}

#[test]
fn within_the_window_one_caller_refreshes_while_everyone_keeps_sending() {
    let cache = cache();
    assert!(matches!(cache.current(T0), TokenState::MustRefresh));
    cache.store(token("first", T0, 60 * MINUTE));
    // Before the window (55 minutes in): fresh for everyone.
    assert!(matches!(
        cache.current(T0 + 54 * MINUTE),
        TokenState::Fresh(_)
    ));
    // In the window: the first caller sends and refreshes, the rest just send.
    let first = cache.current(T0 + 56 * MINUTE);
    assert!(matches!(first, TokenState::RefreshAhead(_)));
    assert_eq!(bearer(&first), Some("Bearer first"));
    for later in 1..5 {
        let state = cache.current(T0 + 56 * MINUTE + later);
        assert!(matches!(state, TokenState::Fresh(_)), "{state:?}");
        assert_eq!(bearer(&state), Some("Bearer first"));
    }
    cache.store(token("second", T0 + 57 * MINUTE, 60 * MINUTE));
    assert_eq!(
        bearer(&cache.current(T0 + 58 * MINUTE)),
        Some("Bearer second")
    );
    assert!(matches!(
        cache.current(T0 + 58 * MINUTE),
        TokenState::Fresh(_)
    ));
}

#[test]
fn a_refresher_that_never_reports_back_is_replaced_after_the_stale_time() {
    let cache = cache();
    cache.store(token("first", T0, 60 * MINUTE));
    let window = T0 + 56 * MINUTE;
    assert!(matches!(cache.current(window), TokenState::RefreshAhead(_)));
    assert!(matches!(
        cache.current(window + 29_999),
        TokenState::Fresh(_)
    ));
    assert!(matches!(
        cache.current(window + 30_000),
        TokenState::RefreshAhead(_)
    ));
    // Expired with the claim fresh: wait; with it stale: take over.
    let expired = T0 + 60 * MINUTE;
    assert!(matches!(cache.current(expired), TokenState::MustRefresh));
    assert!(matches!(
        cache.current(expired + 1),
        TokenState::AwaitRefresh(_)
    ));
    assert!(matches!(
        cache.current(expired + 30_000),
        TokenState::MustRefresh
    ));
}

#[test]
fn a_failed_refresh_hands_the_claim_on_and_keeps_the_valid_token() {
    let cache = cache();
    cache.store(token("first", T0, 60 * MINUTE));
    let window = T0 + 56 * MINUTE;
    assert!(matches!(cache.current(window), TokenState::RefreshAhead(_)));
    cache.refresh_failed();
    let next = cache.current(window + 1);
    assert!(matches!(next, TokenState::RefreshAhead(_)));
    assert_eq!(bearer(&next), Some("Bearer first"));
}

#[test]
fn a_burst_of_401s_for_one_token_causes_one_refresh() {
    let cache = cache();
    cache.store(token("first", T0, 60 * MINUTE));
    let TokenState::Fresh(failed) = cache.current(T0 + MINUTE) else {
        panic!("no token")
    };
    // Fifty in-flight pushes come back 401: the token is dropped once.
    let dropped = (0..50)
        .filter(|_| cache.invalidate_after_401(&failed))
        .count();
    assert_eq!(dropped, 1);
    // One caller refreshes, the other 49 wait.
    let states: Vec<TokenState> = (0..50).map(|i| cache.current(T0 + MINUTE + i)).collect();
    let refreshers = states
        .iter()
        .filter(|state| matches!(state, TokenState::MustRefresh))
        .count();
    let waiters = states
        .iter()
        .filter(|state| matches!(state, TokenState::AwaitRefresh(_)))
        .count();
    assert_eq!((refreshers, waiters), (1, 49));
    cache.store(token("second", T0 + MINUTE + 500, 60 * MINUTE));
    // A late 401 for the old token does not drop the new one, nor does its stamp find it.
    assert!(!cache.invalidate_after_401(&failed));
    assert!(cache.obtained_at(failed.obtained_at).is_none());
    assert!(cache.obtained_at(T0 + MINUTE + 500).is_some());
    assert_eq!(
        bearer(&cache.current(T0 + 2 * MINUTE)),
        Some("Bearer second")
    );
}

#[test]
fn a_short_lived_token_refreshes_at_half_life_and_an_older_one_never_wins() {
    // A simulator's 10-second token under a 300-second window: refresh at 5 s, not at once.
    let cache = cache();
    cache.store(token("short", T0, 10_000));
    assert!(matches!(cache.current(T0 + 4_999), TokenState::Fresh(_)));
    assert!(matches!(
        cache.current(T0 + 5_000),
        TokenState::RefreshAhead(_)
    ));
    // Two refreshers (one took over a stale claim) store out of order: the longer-lived wins.
    cache.store(token("newer", T0 + 6_000, 10_000));
    cache.store(token("older", T0 + 5_500, 10_000));
    assert_eq!(bearer(&cache.current(T0 + 6_100)), Some("Bearer newer"));
}

#[tokio::test]
async fn waiters_wake_when_the_token_is_stored() {
    let cache = cache();
    assert!(matches!(cache.current(T0), TokenState::MustRefresh));
    let TokenState::AwaitRefresh(wait) = cache.current(T0 + 1) else {
        panic!("should wait")
    };
    let waiter = tokio::spawn(wait.until_refreshed());
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    cache.store(token("first", T0 + 100, 60 * MINUTE));
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    // A failed refresh wakes them too.
    assert!(cache.invalidate_after_401(&token("first", T0 + 100, 60 * MINUTE)));
    assert!(matches!(cache.current(T0 + 200), TokenState::MustRefresh));
    let TokenState::AwaitRefresh(wait) = cache.current(T0 + 201) else {
        panic!("should wait")
    };
    cache.refresh_failed();
    tokio::time::timeout(Duration::from_secs(5), wait.until_refreshed())
        .await
        .unwrap();
}
