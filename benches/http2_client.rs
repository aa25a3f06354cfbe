//! The pieces of ringcast's own APNs HTTP/2 client (docs/performance.md, "HPACK of our
//! own"): one APNs request's header block from templates, from an `http::Request` (what the
//! pool wrote per push until the provider laid out its own request; `h2` spent ~14k
//! instructions in `HeaderBlock::into_encoding` on the same fields) and from the provider's
//! `Fields` (what it writes now), one APNs answer decoded, and one whole exchange through a
//! session (block, open, answer read, event).
//!
//! `cargo bench --bench http2_client`; instructions per call, repeatably:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*apns_request_block*'
//! --toggle-collect='*apns_answer*' --toggle-collect='*exchange*'
//! --toggle-collect='*from_request*' --toggle-collect='*from_fields*'
//! target/release/deps/http2_client-<hash> --bench --profile-time 2`, then
//! `callgrind_annotate --tree=caller --inclusive=yes` and divide by the calls.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use ringcast::providers::pool::frame;
use ringcast::providers::pool::hpack::encoder::{self, Coding, Indexing, Name, statics};
use ringcast::providers::pool::hpack::{Decoder, huffman};
use ringcast::providers::pool::session::{Event, OurSettings, Session};
use ringcast::providers::pool::{Fields, Path, SharedFields, request_block};
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

/// The same push as the provider hands it to the pool.
fn apns_request(path: &str, id: &str) -> http::Request<Bytes> {
    let mut request = http::Request::post(format!("https://api.push.apple.com{path}"))
        .header("apns-push-type", "voip")
        .header("apns-topic", "com.example.ringcast.voip")
        .header("apns-priority", "10")
        .header("apns-expiration", "1800000045")
        .header("apns-collapse-id", "call-7f3c2b1e-9a4d")
        .header("content-length", "312")
        .header("authorization", TOKEN)
        .body(Bytes::from(vec![b'{'; 312]))
        .expect("a valid request");
    let mut id = http::HeaderValue::from_str(id).expect("an ASCII id");
    id.set_sensitive(true);
    request.headers_mut().insert("apns-id", id);
    request
}

/// The same push as the APNs provider hands it to the pool now: the event's fields coded once
/// ([`SharedFields`]), the path, `apns-id` and token its own.
fn apns_fields(path: &str, id: &str) -> Fields {
    let header = |text: &str| http::HeaderValue::from_str(text).expect("ASCII");
    let name = http::HeaderName::from_static;
    let shared = SharedFields::new(vec![
        (name("apns-push-type"), header("voip")),
        (name("apns-topic"), header("com.example.ringcast.voip")),
        (name("apns-priority"), header("10")),
        (name("apns-expiration"), header("1800000045")),
        (name("apns-collapse-id"), header("call-7f3c2b1e-9a4d")),
        (name("content-length"), header("312")),
    ]);
    let path = Path::from_slice(path.as_bytes());
    Fields::post(path, shared, Bytes::from(vec![b'{'; 312]))
        .expect("a valid path")
        .with_unique(name("apns-id"), id.as_bytes())
        .expect("a valid id")
        .with(http::header::AUTHORIZATION, header(TOKEN))
}

#[inline(never)]
fn apns_request_block_from_fields(
    fields: &Fields,
    authority: &http::uri::Authority,
    block: &mut Vec<u8>,
) -> usize {
    block.clear();
    request_block::encode_fields(block, authority, fields);
    block.len()
}

#[inline(never)]
fn apns_request_block_from_request(request: &http::Request<Bytes>, block: &mut Vec<u8>) -> usize {
    block.clear();
    request_block::encode(block, request).map_or(0, |()| block.len())
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

/// One push through a settled session: its block from the templates, the stream opened with
/// a body, then the answer read (a `200` with its `apns-id`, and the connection window the
/// body used given back) and its event taken. `answer` holds the peer's frames; its HEADERS
/// frame's stream id is set to the new stream's.
#[inline(never)]
fn exchange(
    session: &mut Session,
    t: &Templates,
    block: &mut Vec<u8>,
    body: &Bytes,
    answer: &mut [u8],
    input: &mut BytesMut,
) -> u16 {
    apns_request_block(
        t,
        b"/3/device/5a5a",
        b"4c3a5e1e-6b8f-8d2c-9a4b-1f2e3d4c5b6a",
        b"1800000045",
        block,
    );
    let Ok(stream) = session.open(block, body.clone()) else {
        return 0;
    };
    session.output().clear();
    answer[5..9].copy_from_slice(&stream.to_be_bytes());
    input.extend_from_slice(answer);
    if session.receive(input).is_err() {
        return 0;
    }
    session.output().clear();
    match session.next_event() {
        Some(Event::Answer { status, .. }) => status,
        _ => 0,
    }
}

fn client(c: &mut Criterion) {
    let mut group = c.benchmark_group("http2_client");
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
        "an APNs request block is {} bytes ({} of them templates); Huffman-coding its per-push values would save {raw}",
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
    let request = apns_request(&path, std::str::from_utf8(id).expect("ASCII"));
    group.bench_function("apns_request_block_from_request", |b| {
        b.iter(|| apns_request_block_from_request(black_box(&request), &mut block));
    });
    let fields = apns_fields(&path, std::str::from_utf8(id).expect("ASCII"));
    let authority = http::uri::Authority::from_static("api.push.apple.com");
    group.bench_function("apns_request_block_from_fields", |b| {
        b.iter(|| apns_request_block_from_fields(black_box(&fields), &authority, &mut block));
    });
    let answer = answer_block();
    let mut decoder = Decoder::new(4096, 16 * 1024);
    group.bench_function("apns_answer_decode", |b| {
        b.iter(|| apns_answer(&mut decoder, black_box(&answer)));
    });
    let mut session = Session::new(OurSettings::default());
    let mut settings = Vec::new();
    frame::write_settings(
        &mut settings,
        &[(frame::setting::MAX_CONCURRENT_STREAMS, 1000)],
    );
    session
        .receive(&mut BytesMut::from(&settings[..]))
        .expect("valid SETTINGS");
    let body = Bytes::from(vec![b'{'; 300]);
    let mut answer = Vec::new();
    frame::write_headers(
        &mut answer,
        1,
        &answer_block(),
        true,
        frame::DEFAULT_MAX_FRAME_SIZE,
    );
    frame::write_window_update(&mut answer, 0, 300);
    let mut input = BytesMut::with_capacity(4096);
    group.bench_function("session_exchange", |b| {
        b.iter(|| exchange(&mut session, &t, &mut block, &body, &mut answer, &mut input));
    });
    group.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);
