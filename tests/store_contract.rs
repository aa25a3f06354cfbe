//! Runs the store contract (`tests/contract.rs`) against every store: embedded, a real Redis
//! server and a 3-master Redis Cluster started on loopback ports by the harness.

mod contract;
mod support;

use contract::{MAX_DEVICES, run_all};
use ringcast::registry::embedded::EmbeddedStore;
use ringcast::registry::redis::{RedisClusterStore, RedisOptions, RedisSingleStore};

/// A tenant name no earlier run used, so runs can share one Redis.
fn unique_tenant(store: &str) -> String {
    format!(
        "contract-{store}-{}-{}",
        std::process::id(),
        contract::wall_clock()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("registry.redb"), MAX_DEVICES).unwrap();
    run_all(&store, &unique_tenant("embedded")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_keeps_the_contract() {
    let redis = support::redis_server::shared().await;
    let options = RedisOptions {
        max_devices_per_identity: MAX_DEVICES,
        ..RedisOptions::default()
    };
    let store = RedisSingleStore::connect(&redis.url(), &options)
        .await
        .unwrap();
    run_all(&store, &unique_tenant("redis")).await;
}

/// One owner bucket per tenant: every token of a case shares one hash, so pruning, claims and
/// compare-and-delete releases meet their neighbours' entries on every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_with_one_owner_bucket_keeps_the_contract() {
    let redis = support::redis_server::shared().await;
    let options = RedisOptions {
        max_devices_per_identity: MAX_DEVICES,
        owner_buckets: 1,
        ..RedisOptions::default()
    };
    let store = RedisSingleStore::connect(&redis.url(), &options)
        .await
        .unwrap();
    run_all(&store, &unique_tenant("redis-1bucket")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_keeps_the_contract() {
    let cluster = support::redis_cluster::RedisCluster::start(3).await;
    let options = RedisOptions {
        max_devices_per_identity: MAX_DEVICES,
        ..RedisOptions::default()
    };
    let store = RedisClusterStore::connect(&cluster.urls(), &options)
        .await
        .unwrap();
    run_all(&store, &unique_tenant("cluster")).await;
}

// ---- Redis only: what the contract cannot see (key TTLs, slots, outages). ----

mod redis_only {
    use super::{MAX_DEVICES, contract, support, unique_tenant};
    use ringcast::registry::redis::{RedisClusterStore, RedisOptions, RedisSingleStore};
    use ringcast::registry::{
        Environment, IdentityKey, PushAddress, Registration, Store, StoreError,
    };
    use std::time::{Duration, Instant};

    const HOUR: u64 = 3_600_000;
    /// Owner entries keep their expiry in whole seconds, rounded up: a bucket's TTL may pass
    /// its registration's by up to a second.
    const SECOND: u64 = 1_000;
    /// Slack between the caller's clock and Redis's when comparing TTLs.
    const SLACK_MS: i64 = 5_000;

    fn registration(device_id: &str, token: u8, now: u64, ttl_ms: u64) -> Registration {
        Registration {
            device_id: device_id.into(),
            app: "voip".into(),
            address: PushAddress::Apns {
                token: vec![token; 32],
                alert_token: None,
            },
            environment: Environment::Production,
            disable_internal_push: false,
            created_at: now,
            updated_at: now,
            expires_at: now + ttl_ms,
        }
    }

    /// How long a failing call may take: the command timeout, plus room for the reconnect
    /// backoff and a loaded machine. Far below "hangs", far above "fails at once".
    fn fail_fast_bound() -> Duration {
        options().command_timeout * 3
    }

    fn options() -> RedisOptions {
        RedisOptions {
            max_devices_per_identity: MAX_DEVICES,
            ..RedisOptions::default()
        }
    }

    async fn pttl(connection: &mut impl redis::aio::ConnectionLike, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(connection)
            .await
            .unwrap()
    }

    async fn hlen(connection: &mut impl redis::aio::ConnectionLike, key: &str) -> i64 {
        redis::cmd("HLEN")
            .arg(key)
            .query_async(connection)
            .await
            .unwrap()
    }

    fn assert_near(actual: i64, expected: u64, what: &str) {
        let expected = expected as i64;
        assert!(
            actual <= expected && actual > expected - SLACK_MS,
            "{what}: PTTL {actual} ms, expected about {expected} ms"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identity_and_owner_bucket_ttls_follow_their_latest_registration() {
        let redis = support::redis_server::shared().await;
        // One bucket per tenant, so every token of this test shares it.
        let options = RedisOptions {
            owner_buckets: 1,
            ..options()
        };
        let store = RedisSingleStore::connect(&redis.url(), &options)
            .await
            .unwrap();
        let client = redis::Client::open(redis.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let tenant = unique_tenant("redis-ttl");
        let who = IdentityKey::new(tenant.as_str(), "alice");
        let identity_key = format!("{{{tenant}:alice}}");
        let bucket = format!("o:{tenant}:0");
        let now = contract::wall_clock();

        store
            .register(&who, &registration("phone", 1, now, 2 * HOUR))
            .await
            .unwrap();
        assert_near(
            pttl(&mut connection, &identity_key).await,
            2 * HOUR,
            "one device: its own TTL",
        );
        assert_near(
            pttl(&mut connection, &bucket).await,
            2 * HOUR + SECOND,
            "bucket",
        );
        let encoding: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(&bucket)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(
            encoding, "listpack",
            "entries are small enough for a listpack"
        );

        store
            .register(&who, &registration("tablet", 2, now, 5 * HOUR))
            .await
            .unwrap();
        assert_near(
            pttl(&mut connection, &identity_key).await,
            5 * HOUR,
            "the latest expiry wins",
        );
        assert_near(
            pttl(&mut connection, &bucket).await,
            5 * HOUR + SECOND,
            "bucket too",
        );
        assert!(store.unregister(&who, "tablet", now).await.unwrap());
        assert_near(
            pttl(&mut connection, &identity_key).await,
            2 * HOUR,
            "settles to the devices left",
        );
        assert_near(
            pttl(&mut connection, &bucket).await,
            2 * HOUR + SECOND,
            "a release settles the bucket",
        );
        store
            .register(&who, &registration("phone", 1, now, HOUR))
            .await
            .unwrap();
        assert_near(
            pttl(&mut connection, &identity_key).await,
            HOUR,
            "a shorter refresh shortens it",
        );
        assert_near(
            pttl(&mut connection, &bucket).await,
            HOUR + SECOND,
            "and the bucket's",
        );

        // An expired entry stays until its bucket is next written, and no longer.
        let bob = IdentityKey::new(tenant.as_str(), "bob");
        store
            .register(&bob, &registration("watch", 3, now, 1_000))
            .await
            .unwrap();
        assert_eq!(hlen(&mut connection, &bucket).await, 2);
        store
            .register(&bob, &registration("phone", 4, now + 2_000, HOUR))
            .await
            .unwrap();
        assert_eq!(
            hlen(&mut connection, &bucket).await,
            2,
            "the next write pruned the watch's expired entry (alice's phone + bob's phone)"
        );

        assert_eq!(store.revoke(&who, now).await.unwrap(), 1);
        assert_eq!(store.revoke(&bob, now + 2_000).await.unwrap(), 1);
        let left: i64 = redis::cmd("EXISTS")
            .arg(&identity_key)
            .arg(&bucket)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(left, 0, "revoke leaves neither the hash nor an owner entry");
    }

    /// A revocation's key expires by itself once kept long enough (`keep_ms`): revoked
    /// identities do not pile up in Redis.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_key_expires_with_its_keep_time() {
        let redis = support::redis_server::shared().await;
        let store = RedisSingleStore::connect(&redis.url(), &options())
            .await
            .unwrap();
        let client = redis::Client::open(redis.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let tenant = unique_tenant("redis-revoked");
        let who = IdentityKey::new(tenant.as_str(), "alice");
        let now = contract::wall_clock();
        store.record_revocation(&who, now, 2 * HOUR).await.unwrap();
        assert_near(
            pttl(&mut connection, &format!("{{{tenant}:alice}}:revoked")).await,
            2 * HOUR,
            "revocation",
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_identity_lives_on_one_slot_and_owner_buckets_spread() {
        let cluster = support::redis_cluster::RedisCluster::start(3).await;
        let store = RedisClusterStore::connect(&cluster.urls(), &options())
            .await
            .unwrap();
        assert_eq!(store.name(), "redis-cluster");
        let now = contract::wall_clock();
        let who = IdentityKey::new("slots", "alice");
        for n in 0..16u8 {
            store
                .register(&who, &registration(&format!("d{n}"), n, now, HOUR))
                .await
                .unwrap();
        }
        assert_eq!(store.list(&who, now).await.unwrap().len(), 16);

        let client = redis::Client::open(cluster.urls()[0].as_str()).unwrap();
        let mut node = client.get_multiplexed_async_connection().await.unwrap();
        let slot = |key: String| redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).to_owned();
        let tagged: i64 = slot("{slots:alice}".into())
            .query_async(&mut node)
            .await
            .unwrap();
        let tag: i64 = slot("slots:alice".into())
            .query_async(&mut node)
            .await
            .unwrap();
        assert_eq!(tagged, tag, "the whole identity key is its hash tag");

        // Owner buckets live on many nodes: collect them from each, then check each one.
        let mut buckets = Vec::new();
        for url in cluster.urls() {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut node = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("o:slots:*")
                .query_async(&mut node)
                .await
                .unwrap();
            buckets.extend(keys);
        }
        // These 16 tokens fall into 16 different buckets of the default 65,536 (checked
        // independently); a change of the bucket derivation shows up here too.
        assert_eq!(
            buckets.len(),
            16,
            "one bucket per token here, across the nodes"
        );
        let cluster_client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
        let mut routed = cluster_client.get_async_connection().await.unwrap();
        let mut bucket_slots = std::collections::BTreeSet::new();
        let mut entries = 0;
        for key in buckets {
            assert_near(pttl(&mut routed, &key).await, HOUR + SECOND, "owner bucket");
            entries += hlen(&mut routed, &key).await;
            bucket_slots.insert(slot(key).query_async::<i64>(&mut node).await.unwrap());
        }
        assert_eq!(entries, 16, "one owner entry per token");
        assert!(
            bucket_slots.len() > 1,
            "buckets carry no hash tag: they spread over slots"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_down_redis_fails_fast_and_the_store_recovers_by_itself() {
        let mut server = tokio::task::spawn_blocking(support::redis_server::RedisServer::start)
            .await
            .unwrap();
        let store = RedisSingleStore::connect(&server.url(), &options())
            .await
            .unwrap();
        let who = IdentityKey::new("outage", "alice");
        let now = contract::wall_clock();
        store
            .register(&who, &registration("phone", 1, now, HOUR))
            .await
            .unwrap();

        server.stop();
        for _ in 0..3 {
            let started = Instant::now();
            match store.list(&who, now).await {
                Err(StoreError::Unavailable(_)) => {}
                other => panic!("expected Unavailable while Redis is down, got {other:?}"),
            }
            assert!(
                started.elapsed() < fail_fast_bound(),
                "took {:?}",
                started.elapsed()
            );
        }
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));

        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match store
                .register(&who, &registration("phone", 1, now, HOUR))
                .await
            {
                Ok(registered) => {
                    assert!(registered.created, "the restarted server started empty");
                    break;
                }
                Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("the store did not recover within 10 s: {error}"),
            }
        }
        assert_eq!(store.list(&who, now).await.unwrap().len(), 1);
        store.ping().await.unwrap();

        // A stalled Redis (connections open, no answers) is bounded by the command timeout.
        server.freeze();
        let started = Instant::now();
        let stalled = store.list(&who, now).await;
        let waited = started.elapsed();
        server.thaw();
        assert!(
            matches!(stalled, Err(StoreError::Unavailable(_))),
            "got {stalled:?}"
        );
        assert!(
            waited < fail_fast_bound(),
            "a stalled Redis held the call for {waited:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.list(&who, now).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the store did not recover after the stall"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
