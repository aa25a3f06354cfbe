//! Runs the store contract (`tests/contract.rs`) against every store: embedded, a real Redis
//! server, a 3-master Redis Cluster and a master behind Redis Sentinel (plain, with a
//! password, over TLS), started on loopback ports by the harness.

mod contract;
mod support;

use contract::{MAX_DEVICES, run_all};
use ringcast::app::BackgroundNode;
use ringcast::config::{Config, RedisConfig, SecretSource, StoreKind};
use ringcast::registry::embedded::EmbeddedStore;
use ringcast::registry::redis::sentinel::{MasterLogin, SentinelTarget};
use ringcast::registry::redis::{
    RedisClient, RedisClusterStore, RedisOptions, RedisSentinelStore, RedisSingleStore, tls,
};
use ringcast::registry::{IdentityKey, Store};
use std::time::{Duration, Instant};
use support::redis_sentinel::Replicated;
use support::redis_server::RedisServer;

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

/// The same contract over the redis crate's client (`client = "redis-rs"`); the test above
/// runs ringcast's own connection, the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_over_the_crates_client_keeps_the_contract() {
    let redis = support::redis_server::shared().await;
    let options = RedisOptions {
        max_devices_per_identity: MAX_DEVICES,
        client: RedisClient::RedisRs,
        ..RedisOptions::default()
    };
    let store = RedisSingleStore::connect(&redis.url(), &options)
        .await
        .unwrap();
    run_all(&store, &unique_tenant("redis-rs")).await;
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

/// The contract over a three-master cluster, over both clients (one cluster for both: each
/// case uses a tenant of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_keeps_the_contract() {
    let cluster = support::redis_cluster::RedisCluster::start(3).await;
    for client in [RedisClient::RedisRs, RedisClient::Ringcast] {
        let options = RedisOptions {
            max_devices_per_identity: MAX_DEVICES,
            client,
            ..RedisOptions::default()
        };
        let store = RedisClusterStore::connect(&cluster.urls(), &options)
            .await
            .unwrap();
        run_all(&store, &unique_tenant(&format!("cluster-{client:?}"))).await;
    }
}

/// The contract over TLS, against a server that asks for a client certificate: the CA and
/// client certificate are read from files by the same code as `[registry.redis]`'s; over
/// both clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_over_tls_keeps_the_contract() {
    let redis = support::redis_tls::TlsRedis::start(true);
    let config = RedisConfig {
        url: redis.url(),
        ca_file: Some(redis.files.ca_file()),
        client_cert: Some(redis.files.client_cert()),
        client_key: Some(redis.files.client_key()),
        ..RedisConfig::default()
    };
    let certificates = tls::certificates(&config).expect("the test's TLS files");
    for client in [RedisClient::RedisRs, RedisClient::Ringcast] {
        let options = RedisOptions {
            max_devices_per_identity: MAX_DEVICES,
            client,
            ..RedisOptions::default()
        };
        let store =
            RedisSingleStore::connect_with_tls(&redis.url(), certificates.as_ref(), &options)
                .await
                .unwrap_or_else(|error| {
                    panic!(
                        "connect over TLS ({client:?}): {error}\n{}",
                        std::fs::read_to_string(redis.server().dir().join("redis.log"))
                            .unwrap_or_default()
                    )
                });
        run_all(&store, &unique_tenant(&format!("redis-tls-{client:?}"))).await;
    }
}

/// The contract over a cluster whose nodes speak TLS: each client must reach every node it
/// learns from `CLUSTER SLOTS` over TLS with the same CA and client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_over_tls_keeps_the_contract() {
    let cluster = support::redis_tls::TlsRedisCluster::start().await;
    let config = RedisConfig {
        nodes: cluster.urls(),
        ca_file: Some(cluster.files.ca_file()),
        client_cert: Some(cluster.files.client_cert()),
        client_key: Some(cluster.files.client_key()),
        ..RedisConfig::default()
    };
    let certificates = tls::certificates(&config).expect("the test's TLS files");
    for client in [RedisClient::RedisRs, RedisClient::Ringcast] {
        let options = RedisOptions {
            max_devices_per_identity: MAX_DEVICES,
            client,
            ..RedisOptions::default()
        };
        let store =
            RedisClusterStore::connect_with_tls(&cluster.urls(), certificates.as_ref(), &options)
                .await
                .unwrap_or_else(|error| {
                    panic!("connect to the cluster over TLS ({client:?}): {error}")
                });
        run_all(&store, &unique_tenant(&format!("cluster-tls-{client:?}"))).await;
    }
}

/// TLS that checks nothing would pass the contract too: the server's certificate must chain
/// to the configured CA, and a server that asks for a client certificate gets one or refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_checks_the_server_and_shows_the_client_certificate() {
    let redis = support::redis_tls::TlsRedis::start(true);
    for client in [RedisClient::RedisRs, RedisClient::Ringcast] {
        let options = RedisOptions {
            client,
            ..RedisOptions::default()
        };
        let untrusted = RedisSingleStore::connect(&redis.url(), &options).await;
        assert!(
            untrusted.is_err(),
            "{client:?}: a server signed by an unknown CA must be refused (system trust store only)"
        );
        let ca_only = RedisConfig {
            url: redis.url(),
            ca_file: Some(redis.files.ca_file()),
            ..RedisConfig::default()
        };
        let certificates = tls::certificates(&ca_only).unwrap();
        let store =
            RedisSingleStore::connect_with_tls(&redis.url(), certificates.as_ref(), &options).await;
        let refused = match store {
            Err(_) => true,
            Ok(store) => store.ping().await.is_err(),
        };
        assert!(
            refused,
            "{client:?}: the server asks for a client certificate; none was shown"
        );
    }
}

/// The Sentinel store through `sentinel`, for the master it knows as `ringcast-master`,
/// speaking to the master with `client`.
async fn sentinel_store(sentinel: &RedisServer, client: RedisClient) -> RedisSentinelStore {
    let sentinels = vec![sentinel.url()];
    let target = SentinelTarget {
        sentinels: &sentinels,
        master: "ringcast-master",
        certificates: None,
        login: &MasterLogin::default(),
    };
    let options = RedisOptions {
        max_devices_per_identity: MAX_DEVICES,
        client,
        ..RedisOptions::default()
    };
    RedisSentinelStore::connect(&target, &options)
        .await
        .unwrap()
}

/// The contract through Redis Sentinel, then a failover (`SENTINEL FAILOVER`): the store,
/// connected to the old master over the own connection (the default), finds the promoted
/// replica by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_store_keeps_the_contract_and_follows_a_failover() {
    contract_then_failover(RedisClient::Ringcast).await;
}

/// The same over the crate's multiplexed connection (`client = "redis-rs"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_store_over_the_crates_client_follows_a_failover() {
    contract_then_failover(RedisClient::RedisRs).await;
}

async fn contract_then_failover(client: RedisClient) {
    let servers = Replicated::start("ringcast-master");
    let store = sentinel_store(&servers.sentinel, client).await;
    let tenant = unique_tenant(&format!("sentinel-{client:?}"));
    run_all(&store, &tenant).await;

    support::redis_sentinel::fail_over(
        &servers.sentinel,
        "ringcast-master",
        &servers.master,
        &servers.replica,
    )
    .await;

    // The store was connected to the old master, now a replica: it must find the new one.
    let who = IdentityKey::new(&tenant, "after-failover");
    let now = contract::wall_clock();
    let registration = contract::registration("phone", contract::apns(200), now, 3_600_000);
    let deadline = Instant::now() + Duration::from_secs(20);
    let registered = loop {
        match store.register(&who, &registration).await {
            Ok(registered) => break registered,
            // Polls a condition (the store reaches the new master) under a deadline.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{client:?}: the store did not follow the failover: {error}"),
        }
    };
    assert!(registered.created);
    assert_eq!(store.list(&who, now).await.unwrap().len(), 1);
    let on_new_master = support::redis_sentinel::key_exists(
        &servers.replica,
        &format!("{{{tenant}:after-failover}}"),
    )
    .await;
    assert!(
        on_new_master,
        "{client:?}: the write went to the promoted replica"
    );
}

/// A master turned into a replica while our connection to it stays up (an operator's
/// `REPLICAOF`; Sentinel's own failover also drops the old master's clients): its `READONLY`
/// answer makes the store ask the Sentinels again, and the write it refused lands on the
/// master they name now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_store_asks_again_when_its_master_answers_readonly() {
    asks_again_on_readonly(RedisClient::Ringcast).await;
}

/// The same over the crate's multiplexed connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_store_over_the_crates_client_asks_again_on_readonly() {
    asks_again_on_readonly(RedisClient::RedisRs).await;
}

async fn asks_again_on_readonly(client: RedisClient) {
    let servers = Replicated::start("ringcast-master");
    let store = sentinel_store(&servers.sentinel, client).await;
    let tenant = unique_tenant(&format!("sentinel-readonly-{client:?}"));
    let now = contract::wall_clock();
    let before = IdentityKey::new(&tenant, "before");
    let registration = contract::registration("phone", contract::apns(201), now, 3_600_000);
    store.register(&before, &registration).await.unwrap();

    support::redis_sentinel::demote_keeping_clients(
        &servers.sentinel,
        "ringcast-master",
        &servers.master,
        &servers.replica,
    )
    .await;

    // The first write after the demotion is answered READONLY by the old master: the store
    // must find the new one on its own, so no retry loop here.
    let after = IdentityKey::new(&tenant, "after");
    let registration = contract::registration("phone", contract::apns(202), now, 3_600_000);
    let registered = store.register(&after, &registration).await.unwrap();
    assert!(registered.created);
    let on_new_master =
        support::redis_sentinel::key_exists(&servers.replica, &format!("{{{tenant}:after}}")).await;
    assert!(
        on_new_master,
        "{client:?}: the write went to the master Sentinel names now"
    );
}

/// The master's own login through Sentinel: an ACL user, its password read from a file the
/// way `[registry.redis] master_password = { file = ... }` is, and a database other than 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_store_logs_in_to_a_protected_master() {
    let servers = support::redis_sentinel::ProtectedMaster::start(
        "ringcast-master",
        "sentinel-knows-this",
        "ringcast",
        "ringcast-password",
    );
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("master.password");
    std::fs::write(&password_file, "ringcast-password\n").unwrap();
    let config = RedisConfig {
        sentinels: vec![servers.sentinel.url()],
        sentinel_master: "ringcast-master".into(),
        master_username: Some("ringcast".into()),
        master_password: Some(SecretSource::File(password_file)),
        master_db: 3,
        ..RedisConfig::default()
    };
    let login = config
        .master_login()
        .expect("the password file is readable");
    let target = SentinelTarget {
        sentinels: &config.sentinels,
        master: &config.sentinel_master,
        certificates: None,
        login: &login,
    };
    let options = RedisOptions {
        max_devices_per_identity: MAX_DEVICES,
        ..RedisOptions::default()
    };
    let store = RedisSentinelStore::connect(&target, &options)
        .await
        .expect("log in to the master Sentinel names");
    let tenant = unique_tenant("sentinel-auth");
    run_all(&store, &tenant).await;

    let who = IdentityKey::new(&tenant, "in-db-3");
    let now = contract::wall_clock();
    let registration = contract::registration("phone", contract::apns(201), now, 3_600_000);
    assert!(store.register(&who, &registration).await.unwrap().created);
    let key = format!("{{{tenant}:in-db-3}}");
    let in_db = |db| servers.key_exists("ringcast", "ringcast-password", db, &key);
    assert!(in_db(3).await, "the store writes to master_db");
    assert!(!in_db(0).await, "nothing lands in db 0");
}

/// A wrong master password stops the node at start-up with an error that says what failed
/// and where, and never shows the password; the right one starts it (its store and its
/// call-end channel both log in to the master).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_password_fails_start_up_without_showing_it() {
    let servers = support::redis_sentinel::ProtectedMaster::start(
        "ringcast-master",
        "sentinel-knows-this",
        "ringcast",
        "ringcast-password",
    );
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("master.password");
    std::fs::write(&password_file, "not-the-password-4711").unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.workers = 1;
    config.admin.on_api_listener = true;
    config.registry.store = StoreKind::RedisSentinel;
    let redis = &mut config.registry.redis;
    redis.sentinels = vec![servers.sentinel.url()];
    redis.sentinel_master = "ringcast-master".into();
    redis.master_username = Some("ringcast".into());
    redis.master_password = Some(SecretSource::File(password_file));
    config
        .validate()
        .expect("the configuration itself is valid");

    let wrong = config.clone();
    let started = tokio::task::spawn_blocking(move || BackgroundNode::spawn(wrong))
        .await
        .unwrap();
    let error = match started {
        Ok(_) => panic!("a node started with a wrong master password"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("registry.redis.sentinels")
            && error.contains("master_password")
            && error.contains("Password authentication failed"),
        "the error names the step and Redis's refusal: {error}"
    );
    assert!(
        !error.contains("not-the-password-4711") && !error.contains("ringcast-password"),
        "the error shows a password: {error}"
    );

    std::fs::write(dir.path().join("master.password"), "ringcast-password").unwrap();
    let node = tokio::task::spawn_blocking(move || BackgroundNode::spawn(config))
        .await
        .unwrap()
        .expect("the right master password starts the node");
    node.stop().await.unwrap();
}

/// The contract through a Sentinel and a master that both speak only TLS to the node (and
/// ask for its client certificate): `rediss://` Sentinels mean a TLS master too; over both
/// clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_store_over_tls_keeps_the_contract() {
    let servers = support::redis_tls::TlsSentinel::start("ringcast-master");
    let files = &servers.master.files;
    let config = RedisConfig {
        sentinels: vec![servers.sentinel_url()],
        sentinel_master: "ringcast-master".into(),
        ca_file: Some(files.ca_file()),
        client_cert: Some(files.client_cert()),
        client_key: Some(files.client_key()),
        ..RedisConfig::default()
    };
    let certificates = tls::certificates(&config).expect("the test's TLS files");
    let target = SentinelTarget {
        sentinels: &config.sentinels,
        master: &config.sentinel_master,
        certificates: certificates.as_ref(),
        login: &MasterLogin::default(),
    };
    for client in [RedisClient::Ringcast, RedisClient::RedisRs] {
        let options = RedisOptions {
            max_devices_per_identity: MAX_DEVICES,
            client,
            ..RedisOptions::default()
        };
        let store = RedisSentinelStore::connect(&target, &options)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "connect through a TLS Sentinel ({client:?}): {error}\n{}",
                    servers.sentinel_log()
                )
            });
        run_all(&store, &unique_tenant(&format!("sentinel-tls-{client:?}"))).await;
    }
}

// ---- Redis only: what the contract cannot see (key TTLs, slots, outages). ----

mod redis_only {
    use super::{MAX_DEVICES, contract, support, unique_tenant};
    use redis::{ErrorKind, ServerErrorKind};
    use ringcast::registry::redis::{
        RedisClient, RedisClusterStore, RedisOptions, RedisSingleStore,
    };
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
    async fn a_slot_moving_between_masters_is_followed_by_the_crates_client() {
        a_slot_moving_between_masters_is_followed(RedisClient::RedisRs).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slot_moving_between_masters_is_followed_by_the_own_client() {
        a_slot_moving_between_masters_is_followed(RedisClient::Ringcast).await;
    }

    /// An identity's slot moves to another master while the store uses it, as `redis-cli
    /// --cluster reshard` moves slots. During the move the source answers `-ASK` for the keys
    /// it no longer holds, so the client must send `ASKING` and the command to the target;
    /// after it every other master answers `-MOVED`, so the client must learn the new owner.
    /// Reads and writes go on through the same store all along, and the identity ends up on
    /// the target with every write made.
    async fn a_slot_moving_between_masters_is_followed(client: RedisClient) {
        let cluster = support::redis_cluster::RedisCluster::start(3).await;
        let options = RedisOptions {
            client,
            ..options()
        };
        let store = RedisClusterStore::connect(&cluster.urls(), &options)
            .await
            .unwrap();
        let tenant = unique_tenant(&format!("cluster-reshard-{client:?}"));
        let who = IdentityKey::new(tenant.as_str(), "alice");
        let identity_key = format!("{{{tenant}:alice}}");
        let now = contract::wall_clock();
        for (token, device) in ["d0", "d1"].into_iter().enumerate() {
            register_new(&store, &who, device, token as u8, now, "before the move").await;
        }

        let urls = cluster.urls();
        let slot = key_slot(&urls[0], &identity_key).await;
        let source = cluster.owner_of_slot(slot).await;
        // Every node of a 3-master cluster without replicas is a master.
        let target = (source + 1) % 3;
        let (source_url, target_url) = (&urls[source], &urls[target]);

        cluster.begin_slot_migration(slot, source, target).await;
        let moved = cluster.migrate_keys(slot, source, target).await;
        assert!(
            moved.contains(&identity_key),
            "the identity's hash moved to the target: {moved:?}"
        );
        let asked = hlen_on(source_url, &identity_key).await;
        assert_redirected(asked, ServerErrorKind::Ask, &cluster.address(target), slot);
        assert_eq!(
            device_ids(&store, &who, now).await,
            ["d0", "d1"],
            "read during the move: the source answers ASK"
        );
        register_new(&store, &who, "d2", 2, now, "during the move (ASK)").await;
        assert_eq!(
            device_ids(&store, &who, now).await,
            ["d0", "d1", "d2"],
            "a write during the move lands where reads find it"
        );

        cluster.finish_slot_migration(slot, target).await;
        let told = hlen_on(source_url, &identity_key).await;
        assert_redirected(told, ServerErrorKind::Moved, &cluster.address(target), slot);
        assert_eq!(
            device_ids(&store, &who, now).await,
            ["d0", "d1", "d2"],
            "read after the move: the source answers MOVED"
        );
        register_new(&store, &who, "d3", 3, now, "after the move (MOVED)").await;
        assert_eq!(
            device_ids(&store, &who, now).await,
            ["d0", "d1", "d2", "d3"],
            "a write after the move"
        );
        let unregistered = store.unregister(&who, "d0", now).await;
        assert!(
            unregistered.expect("unregister after the move"),
            "d0 was live, so unregistering it says so"
        );
        assert_eq!(
            device_ids(&store, &who, now).await,
            ["d1", "d2", "d3"],
            "an unregistration after the move"
        );
        let held = hlen_on(target_url, &identity_key).await;
        let held = held.unwrap_or_else(|error| panic!("the target serves the identity: {error}"));
        assert_eq!(
            held, 3,
            "the target itself holds the identity, one field per device left"
        );
    }

    /// Registers a device `who` did not have yet, an hour long, with a token of its own.
    async fn register_new(
        store: &RedisClusterStore,
        who: &IdentityKey,
        device: &str,
        token: u8,
        now: u64,
        when: &str,
    ) {
        let registered = store
            .register(who, &registration(device, token, now, HOUR))
            .await
            .unwrap_or_else(|error| panic!("register {device} {when}: {error}"));
        assert!(registered.created, "{device} is a new device {when}");
    }

    /// `who`'s live devices by id, as the store lists them (ordered by id).
    async fn device_ids(store: &RedisClusterStore, who: &IdentityKey, now: u64) -> Vec<String> {
        let listed = store.list(who, now).await;
        let registrations = listed.unwrap_or_else(|error| panic!("list {who:?}: {error}"));
        registrations
            .into_iter()
            .map(|registration| registration.device_id)
            .collect()
    }

    /// The cluster slot of `key` (`CLUSTER KEYSLOT`, asked of the node at `url`).
    async fn key_slot(url: &str, key: &str) -> u16 {
        let client = redis::Client::open(url).unwrap();
        let mut node = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut node)
            .await
            .unwrap()
    }

    /// What the node at `url` itself answers to `HLEN key`: the field count where the key's
    /// slot is served, else its `ASK` or `MOVED` redirection (a plain connection follows
    /// none).
    async fn hlen_on(url: &str, key: &str) -> redis::RedisResult<i64> {
        let client = redis::Client::open(url)?;
        let mut node = client.get_multiplexed_async_connection().await?;
        redis::cmd("HLEN").arg(key).query_async(&mut node).await
    }

    /// `answer` is a redirection of `kind` (`ASK` or `MOVED`) to `slot` on the node at
    /// `address`: the scenario really makes the client follow one.
    fn assert_redirected(
        answer: redis::RedisResult<i64>,
        kind: ServerErrorKind,
        address: &str,
        slot: u16,
    ) {
        let Err(error) = answer else {
            panic!("expected a {kind:?} redirection to {address}, got {answer:?}");
        };
        assert_eq!(error.kind(), ErrorKind::Server(kind), "{error}");
        assert_eq!(error.redirect_node(), Some((address, slot)), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_down_redis_fails_fast_and_the_store_recovers_by_itself() {
        a_down_redis_fails_fast_and_the_store_recovers(RedisClient::RedisRs).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_down_redis_fails_fast_and_the_own_connection_recovers_by_itself() {
        a_down_redis_fails_fast_and_the_store_recovers(RedisClient::Ringcast).await;
    }

    async fn a_down_redis_fails_fast_and_the_store_recovers(client: RedisClient) {
        let mut server = tokio::task::spawn_blocking(support::redis_server::RedisServer::start)
            .await
            .unwrap();
        let options = RedisOptions {
            client,
            ..options()
        };
        let store = RedisSingleStore::connect(&server.url(), &options)
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

    /// The own connection logs in and selects the database as its URL says, on its first
    /// connection and on every one after: a wrong password fails start-up without showing it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_own_connection_logs_in_and_selects_the_urls_database() {
        let args = ["--requirepass", "s3cret-pw"].map(String::from);
        let mut server = tokio::task::spawn_blocking(move || {
            support::redis_server::RedisServer::start_with(
                support::redis_server::free_port(),
                &args,
            )
        })
        .await
        .unwrap();
        let options = RedisOptions {
            client: RedisClient::Ringcast,
            ..options()
        };
        let port = server.port();
        let wrong = format!("redis://:not-it-pw@127.0.0.1:{port}/3");
        let refused = RedisSingleStore::connect(&wrong, &options).await;
        let Err(error) = refused else {
            panic!("a wrong password must fail start-up");
        };
        assert!(!error.to_string().contains("not-it-pw"), "{error}");

        let url = format!("redis://:s3cret-pw@127.0.0.1:{port}/3");
        let store = RedisSingleStore::connect(&url, &options).await.unwrap();
        let who = IdentityKey::new("auth", "alice");
        let now = contract::wall_clock();
        store
            .register(&who, &registration("phone", 1, now, HOUR))
            .await
            .unwrap();
        let in_db = |db: u8| {
            let url = format!("redis://:s3cret-pw@127.0.0.1:{port}/{db}");
            async move {
                let client = redis::Client::open(url).unwrap();
                let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                redis::cmd("EXISTS")
                    .arg("{auth:alice}")
                    .query_async::<i64>(&mut connection)
                    .await
                    .unwrap()
            }
        };
        assert_eq!((in_db(3).await, in_db(0).await), (1, 0));

        // A new connection after a restart logs in and selects the database again.
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store
            .register(
                &IdentityKey::new("auth", "bob"),
                &registration("phone", 2, now, HOUR),
            )
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "no recovery after the restart");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let client = redis::Client::open(format!("redis://:s3cret-pw@127.0.0.1:{port}/3")).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let bob: i64 = redis::cmd("EXISTS")
            .arg("{auth:bob}")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(bob, 1, "the new connection selected db 3");
    }

    /// Start-up names each Redis setting below what the node needs (README "Stores"): `hz`
    /// (latency: the call events' keys expire in the background) and
    /// `hash-max-listpack-value` (memory); at the recommendations it says nothing.
    #[tokio::test]
    async fn settings_below_the_recommendations_are_warned_about_at_start_up() {
        for (hz, listpack, warned) in [("10", "64", true), ("100", "128", false)] {
            let args = ["--hz", hz, "--hash-max-listpack-value", listpack].map(String::from);
            let redis = tokio::task::spawn_blocking(move || {
                support::redis_server::RedisServer::start_with(
                    support::redis_server::free_port(),
                    &args,
                )
            })
            .await
            .unwrap();
            let logged = logged_by(RedisSingleStore::connect(&redis.url(), &options())).await;
            for advice in ["set hz 100", "set hash-max-listpack-value 128"] {
                assert_eq!(
                    logged.contains(advice),
                    warned,
                    "hz {hz}, hash-max-listpack-value {listpack}: {logged}"
                );
            }
        }
    }

    /// What `connecting` logs while it connects (it must connect).
    async fn logged_by<S>(connecting: impl Future<Output = Result<S, StoreError>>) -> String {
        let logged = ringcast::logging::MemoryLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(logged.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        let connected = connecting.await;
        drop(guard);
        assert!(connected.is_ok(), "{}", logged.text());
        logged.text()
    }

    /// On a Redis Cluster each node has its own settings, and a node's client would send an
    /// unrouted `CONFIG GET` to one node of its choosing: start-up asks every node and names
    /// the one that is low.
    #[tokio::test]
    async fn a_cluster_node_below_the_recommendations_is_named_at_start_up() {
        const LOW: usize = 2;
        let cluster = support::redis_cluster::RedisCluster::start_with(3, |index| {
            let hz = if index == LOW { "10" } else { "100" };
            ["--hz", hz, "--hash-max-listpack-value", "128"]
                .map(String::from)
                .to_vec()
        })
        .await;
        let logged = logged_by(RedisClusterStore::connect(&cluster.urls(), &options())).await;
        let warnings: Vec<&str> = logged
            .lines()
            .filter(|l| l.contains("set hz 100"))
            .collect();
        let low = cluster.urls()[LOW]
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        assert_eq!(warnings.len(), 1, "{logged}");
        assert!(warnings[0].contains(&low), "names {low}: {logged}");
        assert!(!logged.contains("hash-max-listpack-value 128"), "{logged}");
    }
}
