//! Registry bench: register, refresh, lookup (list) and revoke against the embedded store and
//! a local Redis (127.0.0.1:6379, skipped with a message when none answers), then a
//! concurrent run that reports registrations/s with the CPU each registration took (the bench
//! process's, i.e. the node's side, and Redis's), and lookup p50/p99.
//!
//! `cargo bench --bench registry`; `REGISTRY_CLIENTS` (64) and `REGISTRY_SECONDS` (3) shape
//! the concurrent run; `REDIS_CLIENT=redis-rs` runs the Redis store over the redis crate's
//! client instead of ringcast's own connection (`[registry.redis] client`).
//! `REDIS_SENTINEL=redis://127.0.0.1:26379` benches the Sentinel store too, through a
//! Sentinel that monitors that Redis as `REDIS_SENTINEL_MASTER` (`ringcast`);
//! `REDIS_CLUSTER=redis://127.0.0.1:7000,redis://…` the cluster store, over the client
//! `REDIS_CLIENT` names too (this process's CPU only: Redis's is spread over the cluster's
//! nodes).

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

#[path = "support/cpu.rs"]
mod cpu;

use criterion::{Criterion, criterion_group, criterion_main};
use ringcast::registry::embedded::EmbeddedStore;
use ringcast::registry::redis::sentinel::{MasterLogin, SentinelTarget};
use ringcast::registry::redis::{
    RedisClient, RedisClusterStore, RedisOptions, RedisSentinelStore, RedisSingleStore,
};
use ringcast::registry::{Environment, IdentityKey, PushAddress, Registration, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::runtime::Runtime;

/// The shared Redis the bench runs against (skipped when none answers).
const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// Bench registrations live 10 minutes, so a shared Redis cleans up after the bench by itself.
const TTL_MS: u64 = 600_000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn registration(device: &str, token: u64, at: u64) -> Registration {
    let mut bytes = vec![0u8; 32];
    bytes[..8].copy_from_slice(&token.to_le_bytes());
    Registration {
        device_id: device.to_owned(),
        app: "ios".into(),
        address: PushAddress::Apns {
            token: bytes,
            alert_token: None,
        },
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: at,
        updated_at: at,
        expires_at: at + TTL_MS,
    }
}

/// A tenant name unique to this run, so runs never see each other's data in a shared Redis.
fn run_tenant(store: &str) -> String {
    format!("bench-{store}-{}", now())
}

fn bench_store<S: Store>(c: &mut Criterion, runtime: &Runtime, store: S, redis_url: Option<&str>) {
    let tenant = run_tenant(store.name());
    let counter = AtomicU64::new(1);
    let mut group = c.benchmark_group(format!("registry/{}", store.name()));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));

    group.bench_function("register (new identity)", |b| {
        b.to_async(runtime).iter(|| async {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let who = IdentityKey::new(tenant.as_str(), format!("user-{n}"));
            store
                .register(&who, &registration("phone", n, now()))
                .await
                .expect("register")
        });
    });

    let regular = IdentityKey::new(tenant.as_str(), "regular");
    runtime.block_on(async {
        for (device, token) in [
            ("phone", 1u64 << 40),
            ("tablet", (1 << 40) + 1),
            ("laptop", (1 << 40) + 2),
        ] {
            store
                .register(&regular, &registration(device, token, now()))
                .await
                .expect("seed");
        }
    });
    group.bench_function("refresh", |b| {
        b.to_async(runtime).iter(|| async {
            store
                .register(&regular, &registration("phone", 1 << 40, now()))
                .await
                .expect("refresh")
        });
    });
    group.bench_function("lookup (3 devices)", |b| {
        b.to_async(runtime)
            .iter(|| async { store.list(&regular, now()).await.expect("list") });
    });
    group.bench_function("register + revoke", |b| {
        b.to_async(runtime).iter(|| async {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let who = IdentityKey::new(tenant.as_str(), format!("leaver-{n}"));
            store
                .register(&who, &registration("phone", n, now()))
                .await
                .expect("register");
            store.revoke(&who, now()).await.expect("revoke")
        });
    });
    group.finish();
    concurrent_report(runtime, &store, &tenant, redis_url);
}

/// Concurrent clients for the throughput phase (`REGISTRY_CLIENTS`, default 64).
fn clients() -> u64 {
    std::env::var("REGISTRY_CLIENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(64)
}

/// How long each concurrent phase runs (`REGISTRY_SECONDS`, default 3): long enough that a
/// scheduler hiccup on a shared machine is a small part of it.
fn phase() -> Duration {
    let seconds = std::env::var("REGISTRY_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

/// `clients()` concurrent clients registering new identities for `phase()`: registrations/s,
/// and the CPU per registration of this process (the store's side: what a node spends) and of
/// Redis when `redis_url` is given; then the same clients look their identities up for as
/// long: lookup p50/p99.
fn concurrent_report<S: Store>(
    runtime: &Runtime,
    store: &S,
    tenant: &str,
    redis_url: Option<&str>,
) {
    let clients = clients();
    let phase = phase();
    runtime.block_on(async {
        let redis_before = match redis_url {
            Some(url) => cpu::redis_seconds(url).await,
            None => 0.0,
        };
        let own_before = cpu::process_seconds();
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|client| {
                let store = store.clone();
                let tenant = tenant.to_owned();
                tokio::spawn(async move {
                    let mut registered = 0u64;
                    while started.elapsed() < phase {
                        let n = (1 << 50) + (client << 32) + registered;
                        let who = IdentityKey::new(tenant.as_str(), format!("concurrent-{n}"));
                        store
                            .register(&who, &registration("phone", n, now()))
                            .await
                            .expect("register");
                        registered += 1;
                    }
                    registered
                })
            })
            .collect();
        let mut per_client = Vec::with_capacity(tasks.len());
        for task in tasks {
            per_client.push(task.await.expect("client"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let own = cpu::process_seconds() - own_before;
        let redis = match redis_url {
            Some(url) => Some(cpu::redis_seconds(url).await - redis_before),
            None => None,
        };
        let registered: u64 = per_client.iter().sum();
        let per_registration = |seconds: f64| seconds * 1e6 / registered as f64;
        let redis = redis.map_or(String::new(), |seconds| {
            format!(", Redis {:.1} µs", per_registration(seconds))
        });
        println!(
            "registry/{}: {clients} concurrent clients, {elapsed:.1} s: {registered} registrations = \
             {:.0}/s; CPU per registration: this process {:.1} µs{redis}",
            store.name(),
            registered as f64 / elapsed,
            per_registration(own),
        );

        let started = Instant::now();
        let tasks: Vec<_> = per_client
            .iter()
            .enumerate()
            .map(|(client, &registered)| {
                let store = store.clone();
                let tenant = tenant.to_owned();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = 0;
                    while started.elapsed() < phase && registered > 0 {
                        let n = (1 << 50) + ((client as u64) << 32) + i % registered;
                        let who = IdentityKey::new(tenant.as_str(), format!("concurrent-{n}"));
                        let asked = Instant::now();
                        store.list(&who, now()).await.expect("list");
                        latencies.push(asked.elapsed());
                        i += 1;
                    }
                    latencies
                })
            })
            .collect();
        let mut lookups = Vec::new();
        for task in tasks {
            lookups.extend(task.await.expect("client"));
        }
        lookups.sort();
        let at = |q: f64| lookups[((lookups.len() as f64 * q) as usize).min(lookups.len() - 1)];
        println!(
            "registry/{}: {clients} concurrent clients: {} lookups = {:.0}/s; p50 {:?} p99 {:?} max {:?}",
            store.name(),
            lookups.len(),
            lookups.len() as f64 / started.elapsed().as_secs_f64(),
            at(0.50),
            at(0.99),
            lookups[lookups.len() - 1]
        );
    });
}

fn registry(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = EmbeddedStore::open(dir.path().join("bench.redb"), 32).expect("embedded store");
    bench_store(c, &runtime, embedded, None);

    let options = RedisOptions {
        max_devices_per_identity: 32,
        client: redis_client(),
        ..RedisOptions::default()
    };
    let redis = runtime.block_on(RedisSingleStore::connect(REDIS_URL, &options));
    match redis {
        Ok(redis) => bench_store(c, &runtime, redis, Some(REDIS_URL)),
        Err(error) => eprintln!("registry bench: skipping Redis (127.0.0.1:6379: {error})"),
    }

    if let Ok(sentinel) = std::env::var("REDIS_SENTINEL") {
        let master = std::env::var("REDIS_SENTINEL_MASTER").unwrap_or_else(|_| "ringcast".into());
        let sentinels = [sentinel];
        let target = SentinelTarget {
            sentinels: &sentinels,
            master: &master,
            certificates: None,
            login: &MasterLogin::default(),
        };
        let store = runtime
            .block_on(RedisSentinelStore::connect(&target, &options))
            .unwrap_or_else(|error| panic!("REDIS_SENTINEL={sentinels:?}: {error}"));
        bench_store(c, &runtime, store, Some(REDIS_URL));
    }

    if let Ok(nodes) = std::env::var("REDIS_CLUSTER") {
        let nodes: Vec<String> = nodes.split(',').map(str::to_owned).collect();
        let store = runtime
            .block_on(RedisClusterStore::connect(&nodes, &options))
            .unwrap_or_else(|error| panic!("REDIS_CLUSTER={nodes:?}: {error}"));
        bench_store(c, &runtime, store, None);
    }
}

/// `REDIS_CLIENT` (`ringcast`, the default, or `redis-rs`).
fn redis_client() -> RedisClient {
    match std::env::var("REDIS_CLIENT") {
        Ok(name) => serde_json::from_value(serde_json::Value::String(name.clone()))
            .unwrap_or_else(|_| panic!("REDIS_CLIENT={name:?}: ringcast or redis-rs")),
        Err(_) => RedisClient::default(),
    }
}

criterion_group!(benches, registry);
criterion_main!(benches);
