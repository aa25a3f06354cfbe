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
