//! HPACK bench: one APNs request's header block from templates (the fields `h2` codes per push
//! today, under callgrind ~14k instructions in `HeaderBlock::into_encoding`), and one APNs
//! answer decoded.
//!
//! `cargo bench --bench hpack`; instructions per block, repeatably (docs/performance.md):
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*apns_request_block*'
//! --toggle-collect='*apns_answer*' target/release/deps/hpack-<hash> --bench --profile-time 2`,
//! then `callgrind_annotate --inclusive=yes` and divide by the calls.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ringcast::providers::pool::hpack::encoder::{self, Coding, Indexing, Name, statics};
use ringcast::providers::pool::hpack::{Decoder, huffman};
use std::hint::black_box;

/// A provider token of the real length (ES256, no `typ`: ~190 bytes with "bearer ").
const TOKEN: &str = "bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IkRFVktFWTEyMzQifQ.eyJpc3MiOiJERVZURUFNMTIzIiwiaWF0IjoxNzY0OTc5MjAwfQ.MEUCIQDx8cTk3nq2n1aH0o1y9m4v5u2wq7e6c3b2a1z0y9x8wIgV7u6t5s4r3q2p1o0n9m8l7k6j5i4h3g2f1e0d9c8b7a6";

/// What every push of one connection and token repeats: the pseudo-headers (first, as
/// HTTP/2 requires) and the regular headers, coded once.
struct Templates {
    pseudo: Vec<u8>,
    regular: Vec<u8>,
}

fn templates() -> Templates {
    let mut pseudo = Vec::new();
    encoder::table_size_update(&mut pseudo, 0);
    encoder::indexed(&mut pseudo, statics::METHOD_POST);
    encoder::indexed(&mut pseudo, statics::SCHEME_HTTPS);
    let authority = Name::Static(statics::AUTHORITY);
    encoder::literal(
        &mut pseudo,
        authority,
        b"api.push.apple.com",
        Indexing::Without,
        Coding::Shortest,
    );
    let mut regular = Vec::new();
    for (name, value) in [
        ("apns-push-type", "voip"),
        ("apns-topic", "com.example.ringcast.voip"),
        ("apns-priority", "10"),
    ] {
        let name = Name::Literal(name.as_bytes());
        encoder::literal(
            &mut regular,
            name,
            value.as_bytes(),
            Indexing::Without,
            Coding::Shortest,
        );
    }
    let authorization = Name::Static(statics::AUTHORIZATION);
    encoder::literal(
        &mut regular,
        authorization,
        TOKEN.as_bytes(),
        Indexing::Never,
        Coding::Shortest,
    );
    Templates { pseudo, regular }
}

/// One push's block: the templates around its path, then its own values, raw.
#[inline(never)]
fn apns_request_block(
    t: &Templates,
    path: &[u8],
    id: &[u8],
    expiration: &[u8],
    block: &mut Vec<u8>,
) {
    block.clear();
    block.extend_from_slice(&t.pseudo);
    encoder::literal(
        block,
        Name::Static(statics::PATH),
        path,
        Indexing::Without,
        Coding::Raw,
    );
    block.extend_from_slice(&t.regular);
    for (name, value) in [
        (&b"apns-expiration"[..], expiration),
        (b"apns-collapse-id", b"call-7f3c2b1e-9a4d"),
        (b"apns-id", id),
    ] {
        encoder::literal(
            block,
            Name::Literal(name),
            value,
            Indexing::Without,
            Coding::Raw,
        );
    }
    encoder::literal(
        block,
        Name::Static(statics::CONTENT_LENGTH),
        b"312",
        Indexing::Without,
        Coding::Raw,
    );
}

/// An APNs `200`: `:status` indexed, its `apns-id` a Huffman-coded literal.
fn answer_block() -> Vec<u8> {
    let mut block = Vec::new();
    encoder::indexed(&mut block, 8);
    let id = b"4c3a5e1e-6b8f-8d2c-9a4b-1f2e3d4c5b6a";
    encoder::literal(
        &mut block,
        Name::Literal(b"apns-id"),
        id,
        Indexing::Without,
        Coding::Shortest,
    );
    block
}

#[inline(never)]
fn apns_answer(decoder: &mut Decoder, block: &[u8]) -> usize {
    let mut status = 0;
    decoder
        .decode(block, |name, value| {
            if name == b":status" {
                status = value.len();
            }
        })
        .map(|()| status)
        .unwrap_or(0)
}

fn hpack(c: &mut Criterion) {
    let mut group = c.benchmark_group("hpack");
    let t = templates();
    let path = format!("/3/device/{}", "5a".repeat(32));
    let mut block = Vec::with_capacity(512);
    let id = b"4c3a5e1e-6b8f-8d2c-9a4b-1f2e3d4c5b6a";
    apns_request_block(&t, path.as_bytes(), id, b"1800000045", &mut block);
    // What coding the per-push values raw costs on the wire.
    let raw: usize = [
        path.as_bytes(),
        id,
        b"1800000045",
        b"call-7f3c2b1e-9a4d",
        b"312",
    ]
    .iter()
    .map(|value| value.len() - huffman::encoded_len(value).min(value.len()))
    .sum();
    println!(
        "hpack: an APNs request block is {} bytes ({} of them templates); Huffman-coding its per-push values would save {raw}",
        block.len(),
        t.pseudo.len() + t.regular.len()
    );
    group.bench_function("apns_request_block", |b| {
        b.iter(|| {
            apns_request_block(
                &t,
                black_box(path.as_bytes()),
                black_box(id),
                black_box(b"1800000045"),
                &mut block,
            );
            block.len()
        });
    });
    let answer = answer_block();
    let mut decoder = Decoder::new(4096, 16 * 1024);
    group.bench_function("apns_answer_decode", |b| {
        b.iter(|| apns_answer(&mut decoder, black_box(&answer)));
    });
    group.finish();
}

criterion_group!(benches, hpack);
criterion_main!(benches);
