//! APNs bench: pure request building for each push kind (as the `h2` client's
//! `http::Request`; and as the `Fields` the default client sends, for an event's first push,
//! which codes the event's fields, and for its other devices', which share them), and the
//! provider token from the cache versus minting a fresh ES256 JWT (what "never mint a JWT per
//! request" saves), and the `apns-id`'s SHA-256 through the `sha2` crate (what the node uses,
//! src/sha256.rs) against ring: callgrind counts `sha2` in software, since valgrind hides the
//! SHA extensions, so the choice between them is measured here, on the CPU itself.
//!
//! `cargo bench --bench apns`

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ringcast::providers::apns::auth::ProviderTokenCache;
use ringcast::providers::apns::last_body::LastBody;
use ringcast::providers::apns::payload::{build_fields, build_request};
use ringcast::push::{CallPayload, EndReason, Push, PushKind};
use ringcast::registry::{Environment, IdentityKey, PushAddress};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const NOW: u64 = 1_800_000_000_000;
const MINUTE: u64 = 60_000;

fn push(kind: PushKind) -> Push {
    Push {
        event_id: Arc::from("0b7f6a52-evt"),
        kind,
        accepted_at: NOW,
        deadline: NOW + 45_000,
        who: IdentityKey::new("acme", "alice").into(),
        device_id: "iphone-15".into(),
        app: "ios".into(),
        address: PushAddress::Apns {
            token: vec![0x5a; 32],
            alert_token: None,
        },
        environment: Environment::Production,
        payload: Arc::new(CallPayload {
            v: 1,
            kind,
            call_id: "call-7f3c2b1e-9a4d".into(),
            caller_id: "bob@acme".into(),
            caller_name: "Bob Example".into(),
            video: true,
            reason: (kind != PushKind::IncomingCall).then_some(EndReason::Cancelled),
            expires_at: "2027-01-15T08:00:45.000Z".into(),
        }),
    }
}

fn request_building(c: &mut Criterion) {
    let mut group = c.benchmark_group("apns_build_request");
    for (name, kind) in [
        ("incoming_call", PushKind::IncomingCall),
        ("call_ended", PushKind::CallEnded),
        ("missed_call", PushKind::MissedCall),
    ] {
        let push = push(kind);
        group.bench_function(name, |b| {
            b.iter(|| {
                build_request(
                    black_box(&push),
                    "com.acme.phone",
                    "https://api.push.apple.com",
                    NOW,
                )
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("apns_build_fields");
    let ring = push(PushKind::IncomingCall);
    group.bench_function("event_first_push", |b| {
        b.iter(|| {
            build_fields(
                black_box(&ring),
                "com.acme.phone",
                NOW,
                &LastBody::default(),
            )
        });
    });
    let last = LastBody::default();
    group.bench_function("event_other_devices", |b| {
        b.iter(|| build_fields(black_box(&ring), "com.acme.phone", NOW, &last));
    });
    group.finish();
}

fn provider_token(c: &mut Criterion) {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generate a P-256 key");
    let cache = ProviderTokenCache::new(
        "TEAM123456",
        "KEY1234567",
        key.serialize_pem().as_bytes(),
        Duration::from_secs(50 * 60),
    )
    .expect("a valid key");
    let mut group = c.benchmark_group("apns_provider_token");
    group.bench_function("cached", |b| b.iter(|| cache.token(black_box(NOW))));
    // Every call is 50 minutes after the last, so every call mints and signs.
    let mut now = NOW;
    group.bench_function("mint", |b| {
        b.iter(|| {
            now += 50 * MINUTE;
            cache.token(black_box(now))
        });
    });
    group.finish();
}

/// What an `apns-id` hashes: the event id, a zero byte, the device id.
fn apns_id_digest(c: &mut Criterion) {
    let (event, device) = ("0b7f6a52-evt", "iphone-15");
    let mut group = c.benchmark_group("apns_id_sha256");
    group.bench_function("sha2", |b| {
        b.iter(|| {
            let mut hasher = ringcast::sha256::Hasher::new();
            hasher.update(black_box(event).as_bytes());
            hasher.update(&[0]);
            hasher.update(device.as_bytes());
            hasher.finish()
        });
    });
    group.bench_function("ring", |b| {
        b.iter(|| {
            let mut context = ring::digest::Context::new(&ring::digest::SHA256);
            context.update(black_box(event).as_bytes());
            context.update(&[0]);
            context.update(device.as_bytes());
            context.finish()
        });
    });
    group.finish();
}

criterion_group!(benches, request_building, provider_token, apns_id_digest);
criterion_main!(benches);
