//! The Redis replies a ring reads, decoded by the store's own RESP decoder
//! (`src/registry/redis/resp.rs`) and by the redis crate's decoder as its connections run it
//! (`redis::ValueCodec`, a tokio-util `Decoder` over `combine`): the callee's `HGETALL` (five
//! devices), the claim script's answer and an empty presence read.
//!
//! `cargo bench --bench redis_reply`. Both decoders read from a `BytesMut` filled the same
//! way and allocate the same (a `Vec` per bulk string and per array), so what differs is the
//! reading itself.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use bytes::{Buf, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use redis::{Value, ValueCodec};
use ringcast::registry::redis::resp;
use std::hint::black_box;
use tokio_util::codec::Decoder;

/// `HGETALL` of an identity with five devices: ids as the load generator names them, records
/// of the store's size (~110 bytes, binary).
fn hgetall() -> Vec<u8> {
    let mut reply = b"*10\r\n".to_vec();
    for device in 0..5u8 {
        let id = format!("e2e-5-001234-{device}");
        reply.extend_from_slice(format!("${}\r\n{id}\r\n", id.len()).as_bytes());
        let record: Vec<u8> = (0..110u8)
            .map(|byte| byte.wrapping_mul(device + 3))
            .collect();
        reply.extend_from_slice(format!("${}\r\n", record.len()).as_bytes());
        reply.extend_from_slice(&record);
        reply.extend_from_slice(b"\r\n");
    }
    reply
}

/// The claim script's answer for a new event: `{'taken', owner, '0'}`.
const CLAIM: &[u8] = b"*3\r\n$5\r\ntaken\r\n$13\r\n1765000000000\r\n$1\r\n0\r\n";

/// Presence of a callee with no device on the channel.
const NOBODY: &[u8] = b"*0\r\n";

/// From a buffer filled as a connection's read would fill it, as the crate's codec is given.
fn decode_with_resp(reply: &[u8]) -> Value {
    let mut buffer = BytesMut::from(reply);
    match resp::decode(&buffer) {
        Ok(Some((value, used))) => {
            buffer.advance(used);
            value
        }
        other => panic!("{other:?}"),
    }
}

fn decode_with_codec(codec: &mut ValueCodec, reply: &[u8]) -> Value {
    let mut buffer = BytesMut::from(reply);
    match codec.decode(&mut buffer) {
        Ok(Some(value)) => value,
        other => panic!("{other:?}"),
    }
}

fn replies(c: &mut Criterion) {
    let hgetall = hgetall();
    let cases: [(&str, &[u8]); 3] = [
        ("hgetall_5_devices", &hgetall),
        ("claim", CLAIM),
        ("empty_presence", NOBODY),
    ];
    let mut codec = ValueCodec::default();
    for (name, reply) in cases {
        assert_eq!(
            decode_with_resp(reply),
            decode_with_codec(&mut codec, reply)
        );
        c.bench_function(&format!("redis_reply/{name}/resp"), |b| {
            b.iter(|| decode_with_resp(black_box(reply)));
        });
        c.bench_function(&format!("redis_reply/{name}/redis_crate"), |b| {
            b.iter(|| decode_with_codec(&mut codec, black_box(reply)));
        });
    }
}

criterion_group!(benches, replies);
criterion_main!(benches);
