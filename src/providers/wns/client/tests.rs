//! What a WNS client's status reports: its channel hosts' pools, which carry the pushes, and
//! not its token endpoint's pool.

use super::*;
use crate::config::Secret;
use crate::providers::oauth::DEFAULT_REFRESH_STALE_AFTER;
use crate::providers::pool::tls::client_config;

/// Every connection slot a snapshot counts, whatever its phase.
fn slots(snapshot: &PoolSnapshot) -> usize {
    snapshot.open + snapshot.connecting + snapshot.draining + snapshot.idle
}

fn client() -> WnsClient {
    let credential = WnsCredential {
        client_id: "ms-app://s-1-15-2-1".into(),
        client_secret: Secret::new("secret"),
        // Nothing listens there: no token is fetched in this test.
        token_url: "https://127.0.0.1:9/token".into(),
        scope: super::super::config::LEGACY_SCOPE.into(),
    };
    let tokens = AccessTokenCache::new(Duration::from_secs(300), DEFAULT_REFRESH_STALE_AFTER);
    WnsClient::start(
        &WnsConfig::default(),
        credential,
        tokens,
        client_config(None).unwrap(),
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_status_reports_the_channel_hosts_pools_not_the_token_endpoints() {
    let client = client();
    assert!(
        slots(&client.pool().snapshot()) > 0,
        "the token pool has its slots"
    );
    assert_eq!(
        client.pools(),
        PoolSnapshot::default(),
        "no channel host yet"
    );

    client.pool_of("https://127.0.0.1:10").unwrap();
    client.pool_of("https://127.0.0.1:11").unwrap();
    let per_host = slots(&client.pool().snapshot());
    assert_eq!(
        slots(&client.pools()),
        2 * per_host,
        "both hosts' pools, summed"
    );
}
