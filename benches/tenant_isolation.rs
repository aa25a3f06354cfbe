//! Tenant isolation: tenant A offered ten times its call rate must not slow tenant B.
//!
//! A real node (embedded store, two HTTP workers, two shards) with tenants `a` and `b`, each
//! limited to `LIMIT` call events a second. Phase 1: B alone rings at half its limit, open
//! loop, for `SECONDS`. Phase 2: the same B load while A offers ten times its limit. The
//! callees have no devices, so what is measured is the API path every call event takes
//! (authentication, the tenant's bucket, validation, the router's claim and lookup), not a
//! push service. Prints B's p50/p99 in both phases, their ratio, and A's admitted and
//! refused (`429`) counts.
//!
//! `cargo bench --bench tenant_isolation` (`LIMIT=50 SECONDS=15` by default: A then offers
//! 500 calls/s. The client runs in this process, so on a small box a higher `LIMIT` measures
//! the client's and the node's CPU running out — refusing costs CPU too — rather than the
//! limiter; README "Limits per tenant" has runs of both).

use hdrhistogram::Histogram;
use ringcast::app::BackgroundNode;
use ringcast::config::{Config, ServerKeySource, TenantConfig};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEY_A: &str = "isolation-tenant-a-key-0001";
const KEY_B: &str = "isolation-tenant-b-key-0002";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one tenant's load got back.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
}

/// Offers `rate` calls a second for `seconds` as `key`, open loop (a request is sent on
/// schedule whether or not earlier ones were answered); returns the latency histogram (µs).
async fn offer(
    client: reqwest::Client,
    url: String,
    key: &'static str,
    tag: &'static str,
    rate: u64,
    seconds: u64,
    tally: Arc<Tally>,
) -> Histogram<u64> {
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * seconds;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        ticks.tick().await;
        let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"call_id": format!("{tag}-{n}"), "callee": format!("{tag}-callee-{}", n % 1000),
                "caller": {"id": "+15550000000"}});
            let started = Instant::now();
            let status = client
                .post(&url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .map(|response| response.status().as_u16());
            let elapsed = started.elapsed();
            match status {
                Ok(202) => tally.accepted.fetch_add(1, Ordering::Relaxed),
                Ok(429) => tally.limited.fetch_add(1, Ordering::Relaxed),
                _ => tally.other.fetch_add(1, Ordering::Relaxed),
            };
            elapsed
        }));
    }
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for task in tasks {
        if let Ok(elapsed) = task.await {
            let _ = histogram.record(elapsed.as_micros() as u64);
        }
    }
    histogram
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn main() {
    let limit = env("LIMIT", 50) as u32;
    let seconds = env("SECONDS", 15);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.server.workers = 2;
    config.registry.shards = 2;
    config.registry.embedded.path = dir.path().join("registry.redb");
    config.log.level = "warn".into();
    for (id, key) in [("a", KEY_A), ("b", KEY_B)] {
        let mut tenant = TenantConfig {
            server_keys: vec![ServerKeySource::Sha256(hex::encode(Sha256::digest(key)))],
            identity_tokens: None,
            max_ttl_seconds: 86_400,
            ring_timeout_seconds: 45,
            apps: BTreeMap::new(),
            limits: Default::default(),
            ttl_caps: Vec::new(),
        };
        tenant.limits.calls_per_second = limit;
        tenant.limits.calls_burst = limit;
        config.tenants.insert(id.into(), tenant);
    }
    let node = BackgroundNode::spawn(config).expect("node");
    let url = format!("{}/v1/calls", node.url());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let b_rate = u64::from(limit / 2).max(1);
    let a_rate = u64::from(limit) * 10;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client");
    let (alone, shared, tally_a, tally_b) = runtime.block_on(async {
        // Warm the connections and the node's caches up.
        let warm = Arc::new(Tally::default());
        offer(client.clone(), url.clone(), KEY_B, "warm", b_rate, 1, warm).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let tally_b = Arc::new(Tally::default());
        let alone = offer(
            client.clone(),
            url.clone(),
            KEY_B,
            "b1",
            b_rate,
            seconds,
            tally_b.clone(),
        )
        .await;
        let tally_a = Arc::new(Tally::default());
        let flood = tokio::spawn(offer(
            client.clone(),
            url.clone(),
            KEY_A,
            "a",
            a_rate,
            seconds,
            tally_a.clone(),
        ));
        let shared = offer(
            client.clone(),
            url.clone(),
            KEY_B,
            "b2",
            b_rate,
            seconds,
            tally_b.clone(),
        )
        .await;
        let _ = flood.await;
        (alone, shared, tally_a, tally_b)
    });
    let (p99_alone, p99_shared) = (
        alone.value_at_quantile(0.99),
        shared.value_at_quantile(0.99),
    );
    println!(
        "tenant_isolation: limit {limit} calls/s per tenant, {seconds} s per phase, B offered {b_rate}/s, A offered {a_rate}/s (10x its limit)"
    );
    println!(
        "B alone:   p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} calls)",
        ms(alone.value_at_quantile(0.5)),
        ms(p99_alone),
        ms(alone.max()),
        alone.len()
    );
    println!(
        "B with A:  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} calls)",
        ms(shared.value_at_quantile(0.5)),
        ms(p99_shared),
        ms(shared.max()),
        shared.len()
    );
    println!(
        "A: {} accepted, {} refused with 429, {} other; B: {} accepted, {} refused, {} other",
        tally_a.accepted.load(Ordering::Relaxed),
        tally_a.limited.load(Ordering::Relaxed),
        tally_a.other.load(Ordering::Relaxed),
        tally_b.accepted.load(Ordering::Relaxed),
        tally_b.limited.load(Ordering::Relaxed),
        tally_b.other.load(Ordering::Relaxed),
    );
    println!(
        "B p99 with A / alone = {:.3} (target <= 1.20)",
        p99_shared as f64 / p99_alone.max(1) as f64
    );
    runtime.block_on(async { node.stop().await.expect("node stops") });
}
