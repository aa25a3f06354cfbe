//! Call events through the router to the simulator: a real node (API, router, dispatchers,
//! pool) over the Redis at 127.0.0.1:6379 (the embedded store when none answers), ringing
//! APNs devices on the in-process simulator.
//!
//! `cargo bench --bench router` — for 1 and 5 devices per callee: call events/s, pushes/s,
//! and p50/p99/max from the event accepted to every push answered (`POST /v1/calls?wait=true`
//! by 64 concurrent callers, each waiting for its call's outcomes). `CALLS=20000` changes the
//! run length.

use ringcast::app::BackgroundNode;
use ringcast::config::{
    ApnsAppConfig, AppConfig, Config, SecretSource, ServerKeySource, StoreKind, TenantConfig,
};
use ringcast::simulator::{ApnsCredential, Simulator, SimulatorConfig};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "bench-server-key-0001";
const TEAM: &str = "TEAMID1234";
const KID: &str = "KEYID12345";
const CONCURRENCY: usize = 64;

fn main() {
    let calls: usize = std::env::var("CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let key_file = dir.path().join("apns.p8");
    std::fs::write(&key_file, pair.serialize_pem()).expect("key file");
    let cert = dir.path().join("simulator.pem");
    let sim = runtime
        .block_on(Simulator::start(SimulatorConfig {
            apns_keys: vec![ApnsCredential {
                team_id: TEAM.into(),
                key_id: KID.into(),
                public_key_pem: pair.public_key_pem(),
            }],
            cert_out: Some(cert.clone()),
            ..SimulatorConfig::default()
        }))
        .expect("simulator");

    let redis = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.server.workers = 1;
    config.registry.shards = 1;
    if redis {
        config.registry.store = StoreKind::Redis;
        config.registry.redis.url = "redis://127.0.0.1:6379".into();
    } else {
        config.registry.embedded.path = dir.path().join("registry.redb");
    }
    let ios = AppConfig::Apns(ApnsAppConfig {
        bundle_id: Some("com.example.phone".into()),
        team_id: Some(TEAM.into()),
        key_id: Some(KID.into()),
        key: Some(SecretSource::File(key_file)),
        ..Default::default()
    });
    let tenant = format!("bench{}", std::process::id() % 100_000);
    config.tenants.insert(
        tenant.clone(),
        TenantConfig {
            server_keys: vec![ServerKeySource::Sha256(hex::encode(Sha256::digest(KEY)))],
            identity_tokens: None,
            max_ttl_seconds: 86_400,
            ttl_caps: Vec::new(),
            ring_timeout_seconds: 45,
            apps: BTreeMap::from([("ios".to_owned(), ios)]),
            limits: Default::default(),
        },
    );
    let apns = &mut config.providers.apns;
    apns.production_url = sim.base_url();
    apns.sandbox_url = sim.apns_sandbox_url();
    apns.trusted_roots = Some(cert);
    let node = BackgroundNode::spawn(config).expect("node");
    let base = node.url();
    println!(
        "store: {}; {calls} calls per run, {CONCURRENCY} concurrent callers",
        if redis { "redis" } else { "embedded" }
    );

    for devices in [1usize, 5] {
        let callees = 2_000;
        let run = runtime.block_on(run(&base, devices, callees, calls));
        println!(
            "{devices} device(s)/callee: {:.0} calls/s, {:.0} pushes/s, event→all answered \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} not delivered)",
            run.calls_per_second,
            run.calls_per_second * devices as f64,
            run.p50.as_secs_f64() * 1e3,
            run.p99.as_secs_f64() * 1e3,
            run.max.as_secs_f64() * 1e3,
            run.failures
        );
    }
    runtime.block_on(async {
        node.stop().await.expect("node stops");
        sim.shutdown().await;
    });
}

/// What one run measured.
struct Run {
    calls_per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    failures: usize,
}

/// Registers `devices` devices for each of `callees` callees, then rings `calls` calls over
/// them with `CONCURRENCY` callers.
async fn run(base: &str, devices: usize, callees: usize, calls: usize) -> Run {
    let client = reqwest::Client::new();
    let prefix = format!("d{devices}-{}", std::process::id());
    for callee in 0..callees {
        for device in 0..devices {
            let token = format!("{callee:08x}{device:056x}");
            let response = client
                .put(format!(
                    "{base}/v1/identities/{prefix}-{callee}/registrations/dev{device}"
                ))
                .bearer_auth(KEY)
                .json(&json!({"platform": "apns", "app": "ios", "token": token}))
                .send()
                .await
                .expect("register");
            assert!(response.status().is_success(), "{}", response.status());
        }
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next, base, prefix) = (
                client.clone(),
                next.clone(),
                base.to_owned(),
                prefix.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0;
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= calls {
                        return (latencies, failures);
                    }
                    let body = json!({"call_id": format!("{prefix}-call-{n}"),
                        "callee": format!("{prefix}-{}", n % callees),
                        "caller": {"id": "+15550100", "display_name": "Bench"}});
                    let sent = Instant::now();
                    let answer: serde_json::Value = client
                        .post(format!("{base}/v1/calls?wait=true"))
                        .bearer_auth(KEY)
                        .json(&body)
                        .send()
                        .await
                        .expect("call")
                        .json()
                        .await
                        .expect("json");
                    latencies.push(sent.elapsed());
                    let delivered = answer["outcomes"].as_array().map_or(0, |outcomes| {
                        outcomes
                            .iter()
                            .filter(|o| o["outcome"] == "delivered")
                            .count()
                    });
                    failures += devices - delivered.min(devices);
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(calls);
    let mut failures = 0;
    for worker in workers {
        let (mut some, failed) = worker.await.expect("worker");
        latencies.append(&mut some);
        failures += failed;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Run {
        calls_per_second: calls as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
        failures,
    }
}
