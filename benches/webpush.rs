//! Web Push bench: encrypting one ring for a subscription (RFC 8291 `aes128gcm`, what every
//! Web Push message costs the node), with ring as ringcast does and, in the same run, with
//! the pure-Rust P-256 of `web_push_native` it replaced.
//!
//! `cargo bench --bench webpush`

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ringcast::providers::webpush::aes128gcm;
use std::hint::black_box;
use web_push_native::p256::elliptic_curve::rand_core::OsRng;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

/// A ring's payload as the node sends it (docs/architecture.md), about 200 bytes of JSON.
const RING: &[u8] = br#"{"v":1,"type":"incoming_call","call_id":"call-7f3c2b1e-9a4d","caller_id":"bob@acme","caller_name":"Bob Example","video":true,"expires_at":"2027-01-15T08:00:45.000Z"}"#;

fn encryption(c: &mut Criterion) {
    let browser = web_push_native::p256::SecretKey::random(&mut OsRng);
    let p256dh: [u8; 65] = browser
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .try_into()
        .unwrap();
    let auth = [7u8; 16];
    let mut group = c.benchmark_group("webpush_encrypt_ring");
    group.bench_function("ring", |b| {
        b.iter(|| aes128gcm::encrypt(black_box(RING), &p256dh, &auth).unwrap());
    });
    let ua_public = browser.public_key();
    let auth = web_push_native::Auth::from(auth);
    group.bench_function("web_push_native", |b| {
        b.iter(|| web_push_native::encrypt(black_box(RING).to_vec(), &ua_public, &auth).unwrap());
    });
    group.finish();
}

criterion_group!(benches, encryption);
criterion_main!(benches);
