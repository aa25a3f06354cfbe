//! Frames written and read back, the RFC's errors, and `h2`'s server as the peer.

use super::*;
use crate::providers::pool::hpack::Decoder;
use crate::providers::pool::hpack::encoder::{self, Coding, Indexing, Name, statics};

/// Splits a buffer of whole frames into (head, payload).
fn frames(mut bytes: &[u8]) -> Vec<(Head, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let head = Head::parse(bytes[..HEAD_LEN].try_into().unwrap());
        out.push((head, bytes[HEAD_LEN..HEAD_LEN + head.len].to_vec()));
        bytes = &bytes[HEAD_LEN + head.len..];
    }
    out
}

fn one(bytes: &[u8]) -> (Head, Vec<u8>) {
    let mut all = frames(bytes);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn parsed(head: Head, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    parse(head, payload, DEFAULT_MAX_FRAME_SIZE)
}

fn head(len: usize, kind: u8, flags: u8, stream: u32) -> Head {
    Head {
        len,
        kind,
        flags,
        stream,
    }
}

#[test]
fn every_frame_a_client_writes_reads_back() {
    let mut out = Vec::new();
    write_settings(
        &mut out,
        &[
            (setting::ENABLE_PUSH, 0),
            (setting::INITIAL_WINDOW_SIZE, 1 << 20),
        ],
    );
    write_settings_ack(&mut out);
    write_ping(&mut out, *b"ringcast", false);
    write_window_update(&mut out, 0, 1 << 20);
    write_rst_stream(&mut out, 3, ErrorCode::CANCEL);
    write_goaway(&mut out, 0, ErrorCode::NO_ERROR);
    write_data(&mut out, 5, b"{}", true, DEFAULT_MAX_FRAME_SIZE);
    let all = frames(&out);
    let got: Vec<Frame<'_>> = all.iter().map(|(h, p)| parsed(*h, p).unwrap()).collect();
    let Frame::Settings(settings) = got[0] else {
        panic!("{:?}", got[0])
    };
    assert_eq!(
        settings.pairs().collect::<Vec<_>>(),
        [
            (setting::ENABLE_PUSH, 0),
            (setting::INITIAL_WINDOW_SIZE, 1 << 20)
        ]
    );
    assert_eq!(
        got[1..],
        [
            Frame::SettingsAck,
            Frame::Ping {
                ack: false,
                data: *b"ringcast"
            },
            Frame::WindowUpdate {
                stream: 0,
                increment: 1 << 20
            },
            Frame::RstStream {
                stream: 3,
                code: ErrorCode::CANCEL
            },
            Frame::GoAway {
                last_stream: 0,
                code: ErrorCode::NO_ERROR,
                debug: b""
            },
            Frame::Data {
                stream: 5,
                end_stream: true,
                data: b"{}",
                flow_len: 2
            },
        ]
    );
}

#[test]
fn a_large_header_block_continues_and_only_its_last_frame_ends_it() {
    let block = vec![0x82; 40_000];
    let mut out = Vec::new();
    write_headers(&mut out, 1, &block, true, DEFAULT_MAX_FRAME_SIZE);
    let all = frames(&out);
    let shape: Vec<_> = all.iter().map(|(h, _)| (h.kind, h.flags, h.len)).collect();
    assert_eq!(
        shape,
        [
            (kind::HEADERS, flag::END_STREAM, 16_384),
            (kind::CONTINUATION, 0, 16_384),
            (kind::CONTINUATION, flag::END_HEADERS, 40_000 - 2 * 16_384),
        ]
    );
    let joined: Vec<u8> = all.iter().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(joined, block);

    let mut out = Vec::new();
    write_headers(&mut out, 7, &[0x82], false, DEFAULT_MAX_FRAME_SIZE);
    let (h, p) = one(&out);
    assert_eq!(
        parsed(h, &p).unwrap(),
        Frame::Headers {
            stream: 7,
            end_stream: false,
            end_headers: true,
            fragment: &[0x82]
        }
    );
}

#[test]
fn a_body_is_split_at_the_frame_size_and_an_empty_one_still_ends_the_stream() {
    let mut out = Vec::new();
    write_data(&mut out, 1, &[7; 20_000], true, DEFAULT_MAX_FRAME_SIZE);
    let shape: Vec<_> = frames(&out).iter().map(|(h, _)| (h.flags, h.len)).collect();
    assert_eq!(shape, [(0, 16_384), (flag::END_STREAM, 20_000 - 16_384)]);
    let mut out = Vec::new();
    write_data(&mut out, 1, &[], true, DEFAULT_MAX_FRAME_SIZE);
    assert_eq!(one(&out).0, head(0, kind::DATA, flag::END_STREAM, 1));
}

#[test]
fn padding_and_priority_fields_are_taken_off() {
    // DATA padded: pad length 3, "hi", three zero bytes; flow control counts all six.
    let payload = [3, b'h', b'i', 0, 0, 0];
    assert_eq!(
        parsed(head(6, kind::DATA, flag::PADDED, 1), &payload).unwrap(),
        Frame::Data {
            stream: 1,
            end_stream: false,
            data: b"hi",
            flow_len: 6
        }
    );
    // HEADERS padded and with priority: pad length 1, 5 priority bytes, the block, 1 pad.
    let payload = [1, 0, 0, 0, 0, 16, 0x88, 0];
    let h = head(
        8,
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
        1,
    );
    assert_eq!(
        parsed(h, &payload).unwrap(),
        Frame::Headers {
            stream: 1,
            end_stream: false,
            end_headers: true,
            fragment: &[0x88]
        }
    );
}

#[test]
fn what_the_rfc_makes_an_error_is_refused_with_its_code_and_scope() {
    use ErrorCode as E;
    let cases: [(Head, &[u8], ErrorCode, u32); 13] = [
        (head(2, kind::DATA, 0, 0), b"{}", E::PROTOCOL_ERROR, 0),
        (
            head(2, kind::DATA, flag::PADDED, 1),
            &[5, 0],
            E::PROTOCOL_ERROR,
            0,
        ),
        (
            head(0, kind::HEADERS, flag::PADDED, 1),
            &[],
            E::FRAME_SIZE_ERROR,
            0,
        ),
        (head(0, kind::SETTINGS, 0, 1), &[], E::PROTOCOL_ERROR, 0),
        (
            head(5, kind::SETTINGS, 0, 0),
            &[0; 5],
            E::FRAME_SIZE_ERROR,
            0,
        ),
        (
            head(6, kind::SETTINGS, flag::ACK, 0),
            &[0; 6],
            E::FRAME_SIZE_ERROR,
            0,
        ),
        (head(7, kind::PING, 0, 0), &[0; 7], E::FRAME_SIZE_ERROR, 0),
        (head(8, kind::PING, 0, 1), &[0; 8], E::PROTOCOL_ERROR, 0),
        (head(7, kind::GOAWAY, 0, 0), &[0; 7], E::FRAME_SIZE_ERROR, 0),
        (
            head(3, kind::RST_STREAM, 0, 1),
            &[0; 3],
            E::FRAME_SIZE_ERROR,
            0,
        ),
        // A zero increment ends the stream it names, or the connection.
        (
            head(4, kind::WINDOW_UPDATE, 0, 3),
            &[0; 4],
            E::PROTOCOL_ERROR,
            3,
        ),
        (
            head(4, kind::WINDOW_UPDATE, 0, 0),
            &[0x80, 0, 0, 0],
            E::PROTOCOL_ERROR,
            0,
        ),
        (
            head(4, kind::PRIORITY, 0, 5),
            &[0; 4],
            E::FRAME_SIZE_ERROR,
            5,
        ),
    ];
    for (h, payload, code, stream) in cases {
        let error = parsed(h, payload).unwrap_err();
        assert_eq!((error.code, error.stream), (code, stream), "{h:?}: {error}");
    }
    let big = vec![0; DEFAULT_MAX_FRAME_SIZE + 1];
    let error = parsed(head(big.len(), kind::DATA, 0, 1), &big).unwrap_err();
    assert_eq!(error.code, E::FRAME_SIZE_ERROR);
    // Unknown types are ignored, whatever their stream.
    assert_eq!(
        parsed(head(1, 0xfa, 0, 9), &[1]).unwrap(),
        Frame::Unknown { kind: 0xfa }
    );
}

#[test]
fn settings_apply_in_order_and_forbidden_values_are_refused() {
    let mut out = Vec::new();
    write_settings(
        &mut out,
        &[
            (setting::MAX_CONCURRENT_STREAMS, 1),
            (setting::MAX_CONCURRENT_STREAMS, 1000),
            (setting::INITIAL_WINDOW_SIZE, 100_000),
            (setting::MAX_FRAME_SIZE, 1 << 20),
            (setting::HEADER_TABLE_SIZE, 0),
            (0xff, 42),
        ],
    );
    let (h, p) = one(&out);
    let Frame::Settings(settings) = parsed(h, &p).unwrap() else {
        panic!()
    };
    let mut peer = PeerSettings::default();
    assert_eq!(settings.apply(&mut peer), Ok(100_000 - 65_535));
    assert_eq!(
        peer,
        PeerSettings {
            header_table_size: 0,
            max_concurrent_streams: Some(1000),
            initial_window_size: 100_000,
            max_frame_size: 1 << 20,
            max_header_list_size: None,
        }
    );
    for (pair, code) in [
        ((setting::ENABLE_PUSH, 2), ErrorCode::PROTOCOL_ERROR),
        (
            (setting::INITIAL_WINDOW_SIZE, 1 << 31),
            ErrorCode::FLOW_CONTROL_ERROR,
        ),
        (
            (setting::MAX_FRAME_SIZE, (1 << 14) - 1),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            (setting::MAX_FRAME_SIZE, 1 << 24),
            ErrorCode::PROTOCOL_ERROR,
        ),
    ] {
        let mut out = Vec::new();
        write_settings(&mut out, &[pair]);
        let (h, p) = one(&out);
        let Frame::Settings(settings) = parsed(h, &p).unwrap() else {
            panic!()
        };
        assert_eq!(
            settings
                .apply(&mut PeerSettings::default())
                .unwrap_err()
                .code,
            code,
            "{pair:?}"
        );
    }
}

#[tokio::test]
async fn h2_serves_a_request_made_of_these_frames_and_its_answer_parses() {
    // A refused request would leave the client waiting: bounded.
    tokio::time::timeout(std::time::Duration::from_secs(30), exchange_with_h2())
        .await
        .expect("h2 answered");
}

async fn exchange_with_h2() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, server) = tokio::io::duplex(256 * 1024);
    let serve = tokio::spawn(async move {
        let mut connection = h2::server::Builder::new()
            .max_concurrent_streams(7)
            .handshake(server)
            .await
            .unwrap();
        let (request, mut respond) = connection.accept().await.unwrap().unwrap();
        let big = request
            .headers()
            .get("x-big")
            .map_or(0, http::HeaderValue::len);
        let mut body = request.into_body();
        let mut len = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            len += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let answer = http::Response::builder()
            .status(200)
            .header("x-lengths", format!("{big} {len}"))
            .body(())
            .unwrap();
        let mut send = respond.send_response(answer, false).unwrap();
        send.send_data(bytes::Bytes::from_static(b"done"), true)
            .unwrap();
        let _ = connection.accept().await;
    });

    // The request: a header block over one frame (a 20,000-byte header), so it continues,
    // and a body over one frame.
    let mut block = Vec::new();
    encoder::table_size_update(&mut block, 0);
    encoder::indexed(&mut block, statics::METHOD_POST);
    encoder::indexed(&mut block, statics::SCHEME_HTTPS);
    let raw = |block: &mut Vec<u8>, name, value: &[u8]| {
        encoder::literal(block, name, value, Indexing::Without, Coding::Raw);
    };
    raw(
        &mut block,
        Name::Static(statics::AUTHORITY),
        b"api.push.apple.com",
    );
    raw(&mut block, Name::Static(statics::PATH), b"/3/device/ab");
    raw(&mut block, Name::Literal(b"x-big"), &[b'b'; 20_000]);
    let mut out = PREFACE.to_vec();
    write_settings(&mut out, &[(setting::ENABLE_PUSH, 0)]);
    write_headers(&mut out, 1, &block, false, DEFAULT_MAX_FRAME_SIZE);
    write_data(&mut out, 1, &[b'{'; 20_000], true, DEFAULT_MAX_FRAME_SIZE);
    client.write_all(&out).await.unwrap();

    let mut peer = PeerSettings::default();
    let mut decoder = Decoder::new(4096, 64 * 1024);
    let (mut fields, mut body, mut acked) = (Vec::new(), Vec::new(), false);
    loop {
        let mut bytes = [0u8; HEAD_LEN];
        client.read_exact(&mut bytes).await.unwrap();
        let head = Head::parse(&bytes);
        let mut payload = vec![0; head.len];
        client.read_exact(&mut payload).await.unwrap();
        match parse(head, &payload, DEFAULT_MAX_FRAME_SIZE).unwrap() {
            Frame::Settings(settings) => {
                settings.apply(&mut peer).unwrap();
                let mut ack = Vec::new();
                write_settings_ack(&mut ack);
                client.write_all(&ack).await.unwrap();
            }
            Frame::SettingsAck => acked = true,
            Frame::Headers {
                stream: 1,
                end_headers: true,
                fragment,
                ..
            } => {
                decoder
                    .decode(fragment, |n, v| {
                        fields.push((
                            String::from_utf8_lossy(n).into_owned(),
                            String::from_utf8_lossy(v).into_owned(),
                        ));
                    })
                    .unwrap();
            }
            Frame::Data {
                stream: 1,
                end_stream,
                data,
                ..
            } => {
                body.extend_from_slice(data);
                if end_stream {
                    break;
                }
            }
            Frame::WindowUpdate { .. } | Frame::Ping { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(acked, "h2 acknowledged our SETTINGS");
    assert_eq!(
        peer.max_concurrent_streams,
        Some(7),
        "h2's SETTINGS applied"
    );
    assert_eq!(
        fields,
        [
            (":status".to_owned(), "200".to_owned()),
            ("x-lengths".to_owned(), "20000 20000".to_owned())
        ]
    );
    assert_eq!(body, b"done");
    drop(client);
    serve.await.unwrap();
}
