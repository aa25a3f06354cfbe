//! What a tenant's rate limit costs a request (src/limits.rs): one token taken from a GCRA
//! bucket, alone and with the other core taking from the same tenant's bucket at once (the
//! worst case: both HTTP workers serving one tenant), next to reading the clock it needs.
//!
//! `cargo bench --bench limits`

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ringcast::config::tenant::LimitsConfig;
use ringcast::limits::{Clock, LimitKind, TenantLimits};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A bucket that never runs dry during the bench, so every take is the admitting path.
fn roomy() -> TenantLimits {
    TenantLimits::new(&LimitsConfig {
        calls_per_second: 1_000_000,
        calls_burst: 1_000_000,
        ..LimitsConfig::default()
    })
}

fn take(c: &mut Criterion) {
    let mut group = c.benchmark_group("tenant_limit");
    group.bench_function("clock_now", |b| b.iter(Clock::now));
    let limits = roomy();
    group.bench_function("take_alone", |b| {
        b.iter(|| black_box(limits.take(black_box(LimitKind::Call))));
    });
    let limits = Arc::new(roomy());
    let stop = Arc::new(AtomicBool::new(false));
    let rival = {
        let (limits, stop) = (limits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = black_box(limits.take(LimitKind::Call));
            }
        })
    };
    group.bench_function("take_contended", |b| {
        b.iter(|| black_box(limits.take(black_box(LimitKind::Call))));
    });
    stop.store(true, Ordering::Relaxed);
    let _ = rival.join();
    group.finish();
}

criterion_group!(benches, take);
criterion_main!(benches);
