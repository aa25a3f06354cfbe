//! [`TokenSource`] on tokio's paused time, against a scripted token endpoint: one request for
//! a burst, the refresh ahead of expiry, the backoff after a failure, the 401 rule, a reload.

use super::*;
use crate::clock::Clock;
use crate::providers::live::Live;
use crate::vocab::Outcome;
use bytes::Bytes;
use http::HeaderValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const T0: UnixMillis = 1_800_000_000_000;
const HOUR_MS: u64 = 3_600_000;

/// A grant whose tokens are named after it and live an hour.
#[derive(Debug)]
struct TestGrant(&'static str);

impl Grant for TestGrant {
    const PROVIDER: Platform = Platform::Wns;

    fn request_body(&self, _now: UnixMillis) -> Result<Vec<u8>, String> {
        Ok(self.0.as_bytes().to_vec())
    }

    fn read_answer(
        &self,
        status: u16,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<AccessToken, String> {
        if status != 200 {
            return Err(format!("refused {status}"));
        }
        let name = std::str::from_utf8(body).map_err(|_| "not text".to_owned())?;
        Ok(AccessToken {
            authorization: HeaderValue::try_from(format!("Bearer {name}")).unwrap(),
            obtained_at: now,
            expires_at: now + HOUR_MS,
        })
    }
}

/// A token endpoint that answers after `latency`, numbering its tokens, or refuses with 503
/// while `failing`.
#[derive(Default)]
struct Endpoint {
    /// Token requests received.
    requests: AtomicUsize,
    /// Answer 503.
    failing: AtomicBool,
    /// How long an answer takes.
    latency: Duration,
}

impl TokenExchange for Endpoint {
    async fn exchange(&self, body: Vec<u8>, _until: Instant) -> Result<(u16, Bytes), String> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.latency).await;
        if self.failing.load(Ordering::SeqCst) {
            return Ok((503, Bytes::new()));
        }
        let grant = String::from_utf8(body).unwrap();
        Ok((200, Bytes::from(format!("{grant}-{n}"))))
    }
}

fn account(grant: &'static str) -> OAuthAccount<TestGrant> {
    OAuthAccount {
        grant: TestGrant(grant),
        cache: AccessTokenCache::new(Duration::from_secs(300), DEFAULT_REFRESH_STALE_AFTER),
    }
}

fn source(latency: Duration) -> Arc<TokenSource<TestGrant, Endpoint>> {
    let endpoint = Endpoint {
        latency,
        ..Endpoint::default()
    };
    TokenSource::new(
        endpoint,
        Live::new(account("tok")),
        Duration::from_secs(5),
        Clock::tokio(T0),
    )
}

fn bearer(token: &AccessToken) -> &str {
    token.authorization.to_str().unwrap()
}

fn requests(source: &TokenSource<TestGrant, Endpoint>) -> usize {
    source.endpoint().requests.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_pushes_without_a_token_makes_one_request() {
    let source = source(Duration::from_millis(200));
    let deadline = T0 + 45_000;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let source = Arc::clone(&source);
        burst.spawn(async move { source.token(deadline).await });
    }
    let tokens = burst.join_all().await;
    assert_eq!(requests(&source), 1);
    for token in tokens {
        assert_eq!(bearer(&token.unwrap()), "Bearer tok-1");
    }
}

#[tokio::test(start_paused = true)]
async fn the_token_is_refreshed_ahead_of_expiry_while_pushes_keep_sending() {
    let source = source(Duration::from_millis(200));
    let first = source.token(T0 + HOUR_MS * 2).await.unwrap();
    assert_eq!(bearer(&first), "Bearer tok-1");
    // Before the window (five minutes before expiry): no request.
    tokio::time::advance(Duration::from_secs(54 * 60)).await;
    let deadline = T0 + HOUR_MS * 2;
    assert_eq!(
        bearer(&source.token(deadline).await.unwrap()),
        "Bearer tok-1"
    );
    assert_eq!(requests(&source), 1);
    // In the window: the push goes out at once with the current token; one refresh starts.
    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    let started = Instant::now();
    assert_eq!(
        bearer(&source.token(deadline).await.unwrap()),
        "Bearer tok-1"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "nobody waits for it");
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let token = source.token(deadline).await.unwrap();
        if bearer(&token) == "Bearer tok-2" {
            break;
        }
        assert!(Instant::now() < give_up, "the refresh never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(requests(&source), 2, "one refresh for all those pushes");
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_asked_once_a_second_not_once_per_push() {
    let source = source(Duration::from_millis(10));
    source.endpoint().failing.store(true, Ordering::SeqCst);
    let deadline = T0 + 45_000;
    let first = source.token(deadline).await.unwrap_err();
    assert_eq!(
        first,
        Outcome::CredentialProblem {
            reason: "refused 503".into()
        }
    );
    for _ in 0..20 {
        let held = source.token(deadline).await.unwrap_err();
        assert!(
            matches!(&held, Outcome::CredentialProblem { reason } if reason.contains("next attempt")),
            "{held:?}"
        );
    }
    assert_eq!(requests(&source), 1);
    // A second later the next push asks again, and the endpoint is back.
    tokio::time::advance(TOKEN_RETRY_AFTER_FAILURE).await;
    source.endpoint().failing.store(false, Ordering::SeqCst);
    assert_eq!(
        bearer(&source.token(deadline).await.unwrap()),
        "Bearer tok-2"
    );
    assert_eq!(requests(&source), 2);
}

#[tokio::test(start_paused = true)]
async fn a_push_whose_deadline_comes_first_expires() {
    let source = source(Duration::from_secs(30));
    let started = Instant::now();
    let outcome = source.token(T0 + 2_000).await.unwrap_err();
    assert_eq!(outcome, Outcome::Expired);
    assert!(started.elapsed() <= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_401_drops_the_token_once_and_a_fresh_one_refused_is_a_credential_problem() {
    let source = source(Duration::ZERO);
    let deadline = T0 + HOUR_MS;
    let first = source.token(deadline).await.unwrap();
    let now = T0 + 1_000;
    // A burst of 401s for the first token: dropped once, the others change nothing.
    for _ in 0..10 {
        source.refused(first.obtained_at, now).unwrap();
    }
    let second = source.token(deadline).await.unwrap();
    assert_eq!(bearer(&second), "Bearer tok-2");
    assert_eq!(requests(&source), 2);
    // The new token refused seconds later: a refused credential, nothing dropped.
    assert!(source.refused(second.obtained_at, now + 2_000).is_err());
    assert_eq!(
        bearer(&source.token(deadline).await.unwrap()),
        "Bearer tok-2"
    );
    // Ten seconds after the last drop, a 401 is an expiry again.
    let later = now + MIN_401_REFRESH_INTERVAL.as_millis() as u64;
    source.refused(second.obtained_at, later).unwrap();
    assert_eq!(
        bearer(&source.token(deadline).await.unwrap()),
        "Bearer tok-3"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_swaps_the_credential_and_the_next_push_fetches_with_it() {
    let source = source(Duration::ZERO);
    let deadline = T0 + HOUR_MS;
    assert_eq!(
        bearer(&source.token(deadline).await.unwrap()),
        "Bearer tok-1"
    );
    let old = source.account().load_full();
    source.account().replace(account("rotated"));
    assert_eq!(
        bearer(&source.token(deadline).await.unwrap()),
        "Bearer rotated-2"
    );
    assert_eq!(requests(&source), 2);
    // The replaced account's cache is not touched by the new credential's token.
    assert!(matches!(
        old.cache.current(T0 + 1),
        TokenState::Fresh(token) if bearer(&token) == "Bearer tok-1"
    ));
}
