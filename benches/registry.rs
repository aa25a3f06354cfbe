//! Registry bench: register, refresh, lookup (list) and revoke against the embedded store and
//! a local Redis (127.0.0.1:6379, skipped with a message when none answers), then a
//! concurrent run that reports registrations/s and lookup p50/p99.
//!
//! `cargo bench --bench registry`

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ringcast::registry::embedded::EmbeddedStore;
use ringcast::registry::redis::{RedisOptions, RedisSingleStore};
use ringcast::registry::{Environment, IdentityKey, PushAddress, Registration, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::runtime::Runtime;

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

fn bench_store<S: Store>(c: &mut Criterion, runtime: &Runtime, store: S) {
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
    concurrent_report(runtime, &store, &tenant);
}

/// 64 concurrent clients: registrations/s, then lookup latency percentiles.
fn concurrent_report<S: Store>(runtime: &Runtime, store: &S, tenant: &str) {
    const CLIENTS: u64 = 64;
    const PER_CLIENT: u64 = 100;
    let (registered_per_second, lookups) = runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let store = store.clone();
                let tenant = tenant.to_owned();
                tokio::spawn(async move {
                    for i in 0..PER_CLIENT {
                        let n = (1 << 50) + client * PER_CLIENT + i;
                        let who = IdentityKey::new(tenant.as_str(), format!("concurrent-{n}"));
                        store
                            .register(&who, &registration("phone", n, now()))
                            .await
                            .expect("register");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("client");
        }
        let per_second = (CLIENTS * PER_CLIENT) as f64 / started.elapsed().as_secs_f64();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let store = store.clone();
                let tenant = tenant.to_owned();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(PER_CLIENT as usize);
                    for i in 0..PER_CLIENT {
                        let n = (1 << 50) + client * PER_CLIENT + i;
                        let who = IdentityKey::new(tenant.as_str(), format!("concurrent-{n}"));
                        let started = Instant::now();
                        store.list(&who, now()).await.expect("list");
                        latencies.push(started.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client"));
        }
        (per_second, all)
    });
    let mut lookups = lookups;
    lookups.sort();
    let at = |q: f64| lookups[((lookups.len() as f64 * q) as usize).min(lookups.len() - 1)];
    println!(
        "registry/{}: {CLIENTS} concurrent clients: {registered_per_second:.0} registrations/s; lookup p50 {:?} p99 {:?} max {:?}",
        store.name(),
        at(0.50),
        at(0.99),
        lookups[lookups.len() - 1]
    );
}

fn registry(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = EmbeddedStore::open(dir.path().join("bench.redb"), 32).expect("embedded store");
    bench_store(c, &runtime, embedded);

    let redis = runtime.block_on(async {
        let options = RedisOptions {
            max_devices_per_identity: 32,
            ..RedisOptions::default()
        };
        RedisSingleStore::connect("redis://127.0.0.1:6379/", &options).await
    });
    match redis {
        Ok(redis) => bench_store(c, &runtime, redis),
        Err(error) => eprintln!("registry bench: skipping Redis (127.0.0.1:6379: {error})"),
    }
}

criterion_group!(benches, registry);
criterion_main!(benches);
