//! The session against hand-made server frames (every rule, deterministically) and against
//! `h2`'s server (the whole exchange, flow control included).

use super::*;
use crate::providers::pool::hpack::encoder::{self, Coding, Indexing, Name, statics};

/// A server's frames, as `Session::receive` takes them.
#[derive(Default)]
struct Server(Vec<u8>);

impl Server {
    fn settings(mut self, pairs: &[(u16, u32)]) -> Server {
        frame::write_settings(&mut self.0, pairs);
        self
    }
    fn answer(mut self, stream: u32, status_index: usize, body: &[u8]) -> Server {
        let block = header_block(status_index, &[(b"apns-id", b"x")]);
        frame::write_headers(
            &mut self.0,
            stream,
            &block,
            body.is_empty(),
            frame::DEFAULT_MAX_FRAME_SIZE,
        );
        if !body.is_empty() {
            frame::write_data(
                &mut self.0,
                stream,
                body,
                true,
                frame::DEFAULT_MAX_FRAME_SIZE,
            );
        }
        self
    }
    fn raw(mut self, write: impl FnOnce(&mut Vec<u8>)) -> Server {
        write(&mut self.0);
        self
    }
    fn into_input(self) -> BytesMut {
        BytesMut::from(&self.0[..])
    }
}

/// A header block: `:status` from the static table's entry `status_index`, then `fields` as
/// literals never indexed.
fn header_block(status_index: usize, fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    encoder::indexed(&mut block, status_index);
    for (name, value) in fields {
        encoder::literal(
            &mut block,
            Name::Literal(name),
            value,
            Indexing::Without,
            Coding::Raw,
        );
    }
    block
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.next_event()).collect()
}

/// The frames in `out`, as (type, flags, stream, payload), the client preface skipped.
fn written(out: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut bytes = out.strip_prefix(&frame::PREFACE[..]).unwrap_or(out);
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let head = Head::parse(bytes[..HEAD_LEN].try_into().unwrap());
        frames.push((
            head.kind,
            head.flags,
            head.stream,
            bytes[HEAD_LEN..HEAD_LEN + head.len].to_vec(),
        ));
        bytes = &bytes[HEAD_LEN + head.len..];
    }
    frames
}

fn settled(pairs: &[(u16, u32)]) -> Session {
    settled_with(OurSettings::default(), pairs)
}

/// A session with `ours` whose peer's first SETTINGS (`pairs`) arrived; output cleared.
fn settled_with(ours: OurSettings, pairs: &[(u16, u32)]) -> Session {
    let mut session = Session::new(ours);
    session
        .receive(&mut Server::default().settings(pairs).into_input())
        .unwrap();
    session.output().clear();
    session
}

#[test]
fn it_opens_with_the_preface_our_settings_and_a_larger_connection_window() {
    let mut session = Session::new(OurSettings::default());
    let out = session.output().clone();
    assert!(out.starts_with(frame::PREFACE));
    let frames = written(&out);
    assert_eq!(frames[0].0, frame::kind::SETTINGS);
    assert_eq!(
        frames[1],
        (
            frame::kind::WINDOW_UPDATE,
            0,
            0,
            ((1u32 << 20) - 65_535).to_be_bytes().to_vec()
        )
    );
    // No stream before the peer's SETTINGS (APNs announces its limit there).
    assert!(!session.can_open());
    assert_eq!(
        session.open(&[0x82], Bytes::new()),
        Err(OpenError::NoStream)
    );
}

#[test]
fn streams_follow_the_peers_limit_and_answers_arrive_whole() {
    let mut session = settled(&[(setting::MAX_CONCURRENT_STREAMS, 2)]);
    assert_eq!(session.open(&[0x83], Bytes::from_static(b"{}")), Ok(1));
    assert_eq!(session.open(&[0x83], Bytes::from_static(b"{}")), Ok(3));
    assert!(!session.can_open());
    assert_eq!(
        session.open(&[0x83], Bytes::new()),
        Err(OpenError::NoStream)
    );
    let frames = written(session.output());
    assert_eq!(
        frames[0],
        (
            frame::kind::HEADERS,
            frame::flag::END_HEADERS,
            1,
            vec![0x83]
        )
    );
    assert_eq!(
        frames[1],
        (
            frame::kind::DATA,
            frame::flag::END_STREAM,
            1,
            b"{}".to_vec()
        )
    );

    let input =
        Server::default()
            .answer(3, 8, b"")
            .answer(1, 12, br#"{"reason":"BadDeviceToken"}"#);
    session.receive(&mut input.into_input()).unwrap();
    let mut apns_id = http::HeaderMap::new();
    apns_id.insert("apns-id", http::HeaderValue::from_static("x"));
    assert_eq!(
        events(&mut session),
        [
            Event::Answer {
                stream: 3,
                status: 200,
                headers: apns_id.clone(),
                body: Bytes::new()
            },
            Event::Answer {
                stream: 1,
                status: 400,
                headers: apns_id,
                body: Bytes::from_static(br#"{"reason":"BadDeviceToken"}"#)
            },
        ]
    );
    assert!(session.can_open());
}

/// A provider's judge reads one or two fields; the rest of an answer is checked and dropped
/// unread ([`AnswerFields`]), `apns-id` among them.
#[test]
fn only_the_fields_the_provider_reads_are_kept() {
    let ours = OurSettings {
        answer_fields: AnswerFields::Only(&[http::header::RETRY_AFTER]),
        ..OurSettings::default()
    };
    let mut session = settled_with(ours, &[]);
    session.open(&[0x83], Bytes::new()).unwrap();
    // :status 500
    let block = header_block(14, &[(b"apns-id", b"x"), (b"retry-after", b"7")]);
    let input = Server::default().raw(|out| frame::write_headers(out, 1, &block, true, 16_384));
    session.receive(&mut input.into_input()).unwrap();
    let mut retry_after = http::HeaderMap::new();
    retry_after.insert("retry-after", http::HeaderValue::from_static("7"));
    assert_eq!(
        events(&mut session),
        [Event::Answer {
            stream: 1,
            status: 500,
            headers: retry_after,
            body: Bytes::new()
        }]
    );
}

#[test]
fn a_body_waits_for_window_and_goes_out_as_it_opens() {
    let mut session = settled(&[(setting::INITIAL_WINDOW_SIZE, 10)]);
    let id = session.open(&[0x83], Bytes::from(vec![7u8; 25])).unwrap();
    let sent = |session: &mut Session| -> usize {
        let frames = written(session.output());
        session.output().clear();
        frames
            .iter()
            .filter(|f| f.0 == frame::kind::DATA)
            .map(|f| f.3.len())
            .sum()
    };
    assert_eq!(sent(&mut session), 10);
    let update =
        |stream, n| Server::default().raw(|out| frame::write_window_update(out, stream, n));
    session.receive(&mut update(id, 10).into_input()).unwrap();
    assert_eq!(sent(&mut session), 10);
    // A larger initial window opens every stream's window by the difference.
    let mut settings = Server::default()
        .settings(&[(setting::INITIAL_WINDOW_SIZE, 100)])
        .into_input();
    session.receive(&mut settings).unwrap();
    let frames = written(session.output());
    assert!(
        frames
            .iter()
            .any(|f| f.0 == frame::kind::DATA && f.1 == frame::flag::END_STREAM && f.3.len() == 5)
    );
}

#[test]
fn what_the_peer_never_processed_is_marked_so() {
    let mut session = settled(&[]);
    for _ in 0..3 {
        session.open(&[0x83], Bytes::new()).unwrap();
    }
    let input = Server::default()
        .raw(|out| frame::write_rst_stream(out, 1, ErrorCode::REFUSED_STREAM))
        .raw(|out| frame::write_goaway(out, 3, ErrorCode::NO_ERROR));
    session.receive(&mut input.into_input()).unwrap();
    assert_eq!(
        events(&mut session),
        [
            Event::Reset {
                stream: 1,
                code: ErrorCode::REFUSED_STREAM,
                unprocessed: true
            },
            Event::Reset {
                stream: 5,
                code: ErrorCode::NO_ERROR,
                unprocessed: true
            },
            Event::GoAway {
                last_stream: 3,
                code: ErrorCode::NO_ERROR
            },
        ]
    );
    // Stream 3 may still be answered; nothing new may open.
    assert_eq!(session.open(&[0x83], Bytes::new()), Err(OpenError::Closing));
    session
        .receive(&mut Server::default().answer(3, 8, b"").into_input())
        .unwrap();
    assert!(matches!(
        events(&mut session)[..],
        [Event::Answer {
            stream: 3,
            status: 200,
            ..
        }]
    ));
}

#[test]
fn pings_are_answered_and_ours_come_back() {
    let mut session = settled(&[]);
    session.ping(*b"ours....");
    let input = Server::default()
        .raw(|out| frame::write_ping(out, *b"theirs..", false))
        .raw(|out| frame::write_ping(out, *b"ours....", true));
    session.receive(&mut input.into_input()).unwrap();
    let frames = written(session.output());
    assert_eq!(
        frames[1],
        (frame::kind::PING, frame::flag::ACK, 0, b"theirs..".to_vec())
    );
    assert_eq!(events(&mut session), [Event::PingAck(*b"ours....")]);
}

#[test]
fn a_partial_frame_waits_for_the_rest() {
    let mut session = settled(&[]);
    session.open(&[0x83], Bytes::new()).unwrap();
    let whole = Server::default().answer(1, 8, b"body").into_input();
    let mut input = BytesMut::from(&whole[..whole.len() - 2]);
    session.receive(&mut input).unwrap();
    assert!(events(&mut session).is_empty());
    input.extend_from_slice(&whole[whole.len() - 2..]);
    session.receive(&mut input).unwrap();
    assert!(input.is_empty());
    assert!(matches!(
        &events(&mut session)[..],
        [Event::Answer { stream: 1, .. }]
    ));
}

#[test]
fn a_status_is_three_digits() {
    assert_eq!(status_code(b"200"), Some(200));
    assert_eq!(status_code(b"429"), Some(429));
    assert_eq!(status_code(b"103"), Some(103));
    for bad in [&b"+200"[..], b"0200", b"20", b"", b"2x0", b" 200", b"200 "] {
        assert_eq!(status_code(bad), None, "{bad:?}");
    }
}

/// RFC 9113 §8.1.1: a malformed answer ends its stream, not the connection.
#[test]
fn a_malformed_answer_resets_its_stream_only() {
    let block = |fields: &[(&[u8], &[u8])]| header_block(8, fields);
    // A field, then `:status 200` (one byte, indexed: moved from the front to the end).
    let mut status_after_a_field = block(&[(b"apns-id", b"x")]);
    status_after_a_field.rotate_left(1);
    let cases: [(&str, Vec<u8>); 4] = [
        ("an upper-case name", block(&[(b"Apns-Id", b"x")])),
        (
            "a value with a line break",
            block(&[(b"apns-id", b"x\r\ny")]),
        ),
        (
            "a pseudo-header after a field",
            block(&[(b"apns-id", b"x"), (b":path", b"/")]),
        ),
        ("`:status` after a field", status_after_a_field),
    ];
    // The same whether the fields are kept or dropped unread (`apns-id` is not kept by the
    // second: APNs' own setting).
    let kept = [
        AnswerFields::All,
        AnswerFields::Only(&[http::header::RETRY_AFTER]),
    ];
    for ((what, block), answer_fields) in cases
        .iter()
        .flat_map(|case| kept.iter().map(move |kept| (case, *kept)))
    {
        let ours = OurSettings {
            answer_fields,
            ..OurSettings::default()
        };
        let mut session = settled_with(ours, &[]);
        session.open(&[0x83], Bytes::new()).unwrap();
        let input = Server::default().raw(|out| frame::write_headers(out, 1, block, true, 16_384));
        session.receive(&mut input.into_input()).unwrap();
        assert_eq!(
            events(&mut session),
            [Event::Reset {
                stream: 1,
                code: ErrorCode::PROTOCOL_ERROR,
                unprocessed: false
            }],
            "{what}, {answer_fields:?}"
        );
        assert!(session.can_open(), "{what}");
    }
}

#[test]
fn connection_errors_end_every_stream_and_queue_goaway() {
    let cases: [(&str, Server, ErrorCode); 5] = [
        (
            "push promise",
            Server::default()
                .raw(|out| frame::write_head(out, 4, frame::kind::PUSH_PROMISE, 4, 1))
                .raw(|out| out.extend_from_slice(&[0, 0, 0, 2])),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            "headers on a stream never opened",
            Server::default().answer(7, 8, b""),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            "a frame inside a header block",
            Server::default().raw(|out| {
                frame::write_head(out, 1, frame::kind::HEADERS, 0, 1);
                out.push(0x88);
                frame::write_ping(out, [0; 8], false);
            }),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            "a broken header block",
            Server::default().raw(|out| frame::write_headers(out, 1, &[0xbe], true, 16_384)),
            ErrorCode::COMPRESSION_ERROR,
        ),
        (
            "the connection window overrun",
            Server::default().raw(|out| frame::write_window_update(out, 0, frame::MAX_WINDOW)),
            ErrorCode::FLOW_CONTROL_ERROR,
        ),
    ];
    for (what, input, code) in cases {
        let mut session = settled(&[]);
        session.open(&[0x83], Bytes::new()).unwrap();
        let error = session.receive(&mut input.into_input()).unwrap_err();
        assert_eq!(error.code, code, "{what}");
        assert_eq!(
            events(&mut session),
            [Event::Reset {
                stream: 1,
                code,
                unprocessed: false
            }],
            "{what}"
        );
        let goaway = written(session.output()).pop().unwrap();
        assert_eq!(goaway.0, frame::kind::GOAWAY, "{what}");
        assert!(!session.can_open(), "{what}");
    }
}

#[test]
fn received_data_is_given_back_once_half_the_window_is_used() {
    let ours = OurSettings {
        window: 100,
        max_header_list_size: 4096,
        max_body: 1000,
        ..OurSettings::default()
    };
    let mut session = settled_with(ours, &[]);
    session.open(&[0x83], Bytes::new()).unwrap();
    let input = Server::default().raw(|out| {
        let mut block = Vec::new();
        encoder::indexed(&mut block, 8);
        frame::write_headers(out, 1, &block, false, 16_384);
        frame::write_data(out, 1, &[1; 30], false, 16_384);
        frame::write_data(out, 1, &[1; 30], false, 16_384);
    });
    session.receive(&mut input.into_input()).unwrap();
    let updates: Vec<_> = written(session.output())
        .into_iter()
        .filter(|f| f.0 == frame::kind::WINDOW_UPDATE)
        .map(|f| (f.2, f.3))
        .collect();
    assert_eq!(
        updates,
        [
            (0, 60u32.to_be_bytes().to_vec()),
            (1, 60u32.to_be_bytes().to_vec())
        ]
    );
}

/// The pool's contract on every path: an answer body over the limit is read as empty, and
/// the status decides.
#[test]
fn an_answer_body_over_the_limit_is_read_as_empty_and_the_stream_cancelled() {
    let ours = OurSettings {
        max_body: 10,
        ..OurSettings::default()
    };
    let mut session = settled_with(ours, &[]);
    session.open(&[0x83], Bytes::new()).unwrap();
    let input = Server::default().raw(|out| {
        let mut block = Vec::new();
        encoder::indexed(&mut block, 13); // :status 404
        frame::write_headers(out, 1, &block, false, 16_384);
        frame::write_data(out, 1, &[b'x'; 8], false, 16_384);
        frame::write_data(out, 1, &[b'x'; 8], false, 16_384);
        frame::write_data(out, 1, &[b'x'; 8], true, 16_384);
    });
    session.receive(&mut input.into_input()).unwrap();
    assert_eq!(
        events(&mut session),
        [Event::Answer {
            stream: 1,
            status: 404,
            headers: http::HeaderMap::new(),
            body: Bytes::new()
        }]
    );
    let resets: Vec<_> = written(session.output())
        .into_iter()
        .filter(|f| f.0 == frame::kind::RST_STREAM)
        .collect();
    assert_eq!(
        resets,
        [(
            frame::kind::RST_STREAM,
            0,
            1,
            ErrorCode::CANCEL.0.to_be_bytes().to_vec()
        )]
    );
}

#[tokio::test]
async fn h2_serves_what_the_session_sends() {
    tokio::time::timeout(std::time::Duration::from_secs(30), exchange_with_h2())
        .await
        .expect("the exchange ended");
}

/// Three requests at once to `h2`'s server, one with a body larger than the stream window it
/// grants, so the body goes out as its WINDOW_UPDATEs arrive.
async fn exchange_with_h2() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut connection = h2::server::Builder::new()
            .initial_window_size(1000)
            .max_concurrent_streams(3)
            .handshake(server)
            .await
            .unwrap();
        while let Some(Ok((request, mut respond))) = connection.accept().await {
            tokio::spawn(async move {
                let path = request.uri().path().to_owned();
                let mut body = request.into_body();
                let mut len = 0;
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    len += chunk.len();
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                let answer = http::Response::builder()
                    .status(200)
                    .header("x-path", path)
                    .body(())
                    .unwrap();
                let mut send = respond.send_response(answer, false).unwrap();
                send.send_data(bytes::Bytes::from(len.to_string()), true)
                    .unwrap();
            });
        }
    });

    let mut session = Session::new(OurSettings::default());
    let mut input = BytesMut::new();
    let mut answers = Vec::new();
    let mut opened = 0;
    while answers.len() < 3 {
        while opened < 3 && session.can_open() {
            let mut block = Vec::new();
            encoder::indexed(&mut block, statics::METHOD_POST);
            encoder::indexed(&mut block, statics::SCHEME_HTTPS);
            let raw = |block: &mut Vec<u8>, index, value: &[u8]| {
                encoder::literal(
                    block,
                    Name::Static(index),
                    value,
                    Indexing::Without,
                    Coding::Raw,
                );
            };
            raw(&mut block, statics::AUTHORITY, b"api.push.apple.com");
            raw(
                &mut block,
                statics::PATH,
                format!("/3/device/{opened}").as_bytes(),
            );
            let body = if opened == 1 {
                vec![b'x'; 4000]
            } else {
                b"{}".to_vec()
            };
            session.open(&block, Bytes::from(body)).unwrap();
            opened += 1;
        }
        let out = std::mem::take(session.output());
        client.write_all(&out).await.unwrap();
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "h2 closed the connection");
        input.extend_from_slice(&chunk[..n]);
        session.receive(&mut input).unwrap();
        while let Some(event) = session.next_event() {
            answers.push(event);
        }
    }
    assert_eq!(session.peer().max_concurrent_streams, Some(3));
    answers.sort_by_key(|event| match event {
        Event::Answer { stream, .. } => *stream,
        other => panic!("{other:?}"),
    });
    for (event, (stream, len)) in answers.iter().zip([(1, "2"), (3, "4000"), (5, "2")]) {
        let Event::Answer {
            stream: id,
            status,
            headers,
            body,
        } = event
        else {
            unreachable!()
        };
        assert_eq!((*id, *status, &body[..]), (stream, 200, len.as_bytes()));
        let path = format!("/3/device/{}", (stream - 1) / 2);
        assert_eq!(headers["x-path"], path.as_str());
    }
}
