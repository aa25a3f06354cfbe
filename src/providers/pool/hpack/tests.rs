//! RFC 7541 Appendix C, and what a push client needs beyond it.

use super::encoder::{self, Coding, Indexing, Name, statics};
use super::table::STATIC_TABLE;
use super::{DecodeError, Decoder};

/// Bytes from the RFC's hex dumps ("8286 8441 ...").
pub(super) fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&digits[at..at + 2], 16).unwrap())
        .collect()
}

type Fields = Vec<(String, String)>;

fn fields(decoder: &mut Decoder, block: &[u8]) -> Result<Fields, DecodeError> {
    let mut out = Vec::new();
    decoder.decode(block, |name, value| {
        out.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    })?;
    Ok(out)
}

fn pairs(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn table(decoder: &Decoder) -> (Fields, usize) {
    let entries = decoder
        .table()
        .entries()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    (entries, decoder.table().size())
}

fn decoder() -> Decoder {
    Decoder::new(4096, 16 * 1024)
}

#[test]
fn integers_encode_as_in_c1() {
    let mut out = Vec::new();
    encoder::write_int(&mut out, 10, 5, 0);
    encoder::write_int(&mut out, 1337, 5, 0);
    encoder::write_int(&mut out, 42, 8, 0);
    assert_eq!(out, hex("0a 1f9a0a 2a"));
    let mut block = &out[..];
    for (prefix, want) in [(5, 10), (5, 1337), (8, 42)] {
        assert_eq!(super::decoder::read_int(&mut block, prefix), Ok(want));
    }
}

#[test]
fn single_fields_as_in_c2() {
    // C.2.1: with indexing (decoded only: this encoder never indexes).
    let mut d = decoder();
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(
        fields(&mut d, &block).unwrap(),
        pairs(&[("custom-key", "custom-header")])
    );
    assert_eq!(table(&d), (pairs(&[("custom-key", "custom-header")]), 55));

    // C.2.2: without indexing, C.2.3: never indexed; both written by the encoder too.
    for (block, name, value, indexing) in [
        (
            "040c 2f73 616d 706c 652f 7061 7468",
            Name::Static(statics::PATH),
            "/sample/path",
            Indexing::Without,
        ),
        (
            "1008 7061 7373 776f 7264 0673 6563 7265 74",
            Name::Literal(b"password"),
            "secret",
            Indexing::Never,
        ),
    ] {
        let mut out = Vec::new();
        encoder::literal(&mut out, name, value.as_bytes(), indexing, Coding::Raw);
        assert_eq!(out, hex(block));
        let mut d = decoder();
        let got = fields(&mut d, &out).unwrap();
        assert_eq!(got[0].1, value);
        assert_eq!(table(&d), (vec![], 0), "nothing indexed");
    }

    // C.2.4: indexed.
    let mut out = Vec::new();
    encoder::indexed(&mut out, 2);
    assert_eq!(out, [0x82]);
    assert_eq!(
        fields(&mut decoder(), &out).unwrap(),
        pairs(&[(":method", "GET")])
    );
}

#[test]
fn requests_as_in_c3_and_c4() {
    let blocks = [
        (
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        ),
        (
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8286 84be 5886 a8eb 1064 9cbf",
        ),
        (
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ),
    ];
    let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
    let authority = (":authority", "www.example.com");
    let want = [
        pairs(&[base[0], base[1], base[2], authority]),
        pairs(&[
            base[0],
            base[1],
            base[2],
            authority,
            ("cache-control", "no-cache"),
        ]),
        pairs(&[
            base[0],
            (":scheme", "https"),
            (":path", "/index.html"),
            authority,
            ("custom-key", "custom-value"),
        ]),
    ];
    let tables = [
        (pairs(&[authority]), 57),
        (pairs(&[("cache-control", "no-cache"), authority]), 110),
        (
            pairs(&[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                authority,
            ]),
            164,
        ),
    ];
    for huffman in [false, true] {
        let mut d = decoder();
        for (i, (plain, coded)) in blocks.iter().enumerate() {
            let block = hex(if huffman { coded } else { plain });
            assert_eq!(
                fields(&mut d, &block).unwrap(),
                want[i],
                "huffman {huffman}, request {i}"
            );
            assert_eq!(table(&d), tables[i], "huffman {huffman}, request {i}");
        }
    }
}

#[test]
fn responses_with_eviction_as_in_c5_and_c6() {
    let blocks = [
        (
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        ),
        ("4803 3330 37c1 c0bf", "4883 640e ffc1 c0bf"),
        (
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ),
    ];
    let (date1, date2) = (
        "Mon, 21 Oct 2013 20:13:21 GMT",
        "Mon, 21 Oct 2013 20:13:22 GMT",
    );
    let url = "https://www.example.com";
    let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    let want = [
        pairs(&[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", url),
        ]),
        pairs(&[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", date1),
            ("location", url),
        ]),
        pairs(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", date2),
            ("location", url),
            ("content-encoding", "gzip"),
            ("set-cookie", cookie),
        ]),
    ];
    let tables = [
        (
            pairs(&[
                ("location", url),
                ("date", date1),
                ("cache-control", "private"),
                (":status", "302"),
            ]),
            222,
        ),
        (
            pairs(&[
                (":status", "307"),
                ("location", url),
                ("date", date1),
                ("cache-control", "private"),
            ]),
            222,
        ),
        (
            pairs(&[
                ("set-cookie", cookie),
                ("content-encoding", "gzip"),
                ("date", date2),
            ]),
            215,
        ),
    ];
    for huffman in [false, true] {
        let mut d = Decoder::new(256, 16 * 1024);
        for (i, (plain, coded)) in blocks.iter().enumerate() {
            let block = hex(if huffman { coded } else { plain });
            assert_eq!(
                fields(&mut d, &block).unwrap(),
                want[i],
                "huffman {huffman}, response {i}"
            );
            assert_eq!(table(&d), tables[i], "huffman {huffman}, response {i}");
        }
    }
}

#[test]
fn the_static_indexes_a_push_request_uses_name_the_right_entries() {
    for (index, name, value) in [
        (statics::AUTHORITY, ":authority", ""),
        (statics::METHOD_GET, ":method", "GET"),
        (statics::METHOD_POST, ":method", "POST"),
        (statics::PATH, ":path", "/"),
        (statics::SCHEME_HTTPS, ":scheme", "https"),
        (statics::AUTHORIZATION, "authorization", ""),
        (statics::CONTENT_LENGTH, "content-length", ""),
        (statics::CONTENT_TYPE, "content-type", ""),
    ] {
        assert_eq!(STATIC_TABLE[index - 1], (name, value));
    }
}

#[test]
fn an_apns_request_from_templates_decodes_to_its_fields() {
    // What the client will write: two parts coded once per connection and token (the
    // pseudo-headers, which must come first, and the regular headers every push repeats),
    // with each push's own literals around them. A table size update to 0 opens the block,
    // so the peer's table limit never matters.
    let token = "bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IkRFVktFWTEyMzQifQ.eyJpc3MiOiJERVZURUFNMTIzIiwiaWF0IjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJl";
    let named = |out: &mut Vec<u8>, name: &str, value: &str, coding| {
        let name = Name::Literal(name.as_bytes());
        encoder::literal(out, name, value.as_bytes(), Indexing::Without, coding);
    };
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
    named(
        &mut regular,
        "apns-topic",
        "com.example.ringcast.voip",
        Coding::Shortest,
    );
    named(&mut regular, "apns-push-type", "voip", Coding::Shortest);
    named(&mut regular, "apns-priority", "10", Coding::Shortest);
    let authorization = Name::Static(statics::AUTHORIZATION);
    encoder::literal(
        &mut regular,
        authorization,
        token.as_bytes(),
        Indexing::Never,
        Coding::Shortest,
    );

    let path = format!("/3/device/{}", "ab".repeat(32));
    let mut block = pseudo.clone();
    let path_name = Name::Static(statics::PATH);
    encoder::literal(
        &mut block,
        path_name,
        path.as_bytes(),
        Indexing::Without,
        Coding::Raw,
    );
    block.extend_from_slice(&regular);
    named(
        &mut block,
        "apns-id",
        "4c3a5e1e-6b8f-8d2c-9a4b-1f2e3d4c5b6a",
        Coding::Raw,
    );
    named(&mut block, "apns-expiration", "1800000045", Coding::Raw);

    let mut d = decoder();
    let got = fields(&mut d, &block).unwrap();
    assert_eq!(
        got,
        pairs(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "api.push.apple.com"),
            (":path", &path),
            ("apns-topic", "com.example.ringcast.voip"),
            ("apns-push-type", "voip"),
            ("apns-priority", "10"),
            ("authorization", token),
            ("apns-id", "4c3a5e1e-6b8f-8d2c-9a4b-1f2e3d4c5b6a"),
            ("apns-expiration", "1800000045"),
        ])
    );
    assert_eq!(table(&d), (vec![], 0), "the peer's table is left empty");
    // The templates Huffman-coded what they could: shorter than their fields' bytes.
    let raw: usize = [&got[..3], &got[4..8]]
        .concat()
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum();
    assert!(
        pseudo.len() + regular.len() < raw,
        "{} + {} < {raw}",
        pseudo.len(),
        regular.len()
    );
}

#[test]
fn malformed_blocks_are_refused() {
    let refused = |block: &str| fields(&mut decoder(), &hex(block)).unwrap_err();
    // Index 0, and one past the (empty) dynamic table.
    assert_eq!(refused("80"), DecodeError::BadIndex(0));
    assert_eq!(refused("be"), DecodeError::BadIndex(62));
    // A literal whose value is cut short, and an integer with no last byte.
    assert_eq!(refused("040c 2f73"), DecodeError::Truncated);
    assert_eq!(refused("ff ff"), DecodeError::Truncated);
    // An integer of more continuation bytes than any real value has.
    assert_eq!(
        refused("ff ff ff ff ff ff ff 01"),
        DecodeError::IntegerOverflow
    );
    // A table size update over the 4,096 we allow, and one after a field.
    assert_eq!(refused("3fe2 1f"), DecodeError::TableSizeTooLarge(4097));
    assert_eq!(refused("82 20"), DecodeError::TableSizeUpdateLate);
    // Several updates before the first field are fine (RFC 7541 §4.2).
    assert_eq!(
        fields(&mut decoder(), &hex("20 3fe1 1f 82")).unwrap(),
        pairs(&[(":method", "GET")])
    );
    // A Huffman value padded with a zero bit.
    assert_eq!(refused("0481 06"), DecodeError::Huffman);
}

#[test]
fn a_header_list_over_the_limit_is_refused_before_it_is_held() {
    let mut d = Decoder::new(4096, 100);
    // One field of 32 + 5 + 60 bytes fits; a second one does not.
    let mut block = Vec::new();
    encoder::literal(
        &mut block,
        Name::Literal(b"x-one"),
        &[b'a'; 60],
        Indexing::Without,
        Coding::Raw,
    );
    assert!(fields(&mut d, &block).is_ok());
    block.extend_from_within(..);
    assert_eq!(
        fields(&mut d, &block),
        Err(DecodeError::HeaderListTooLarge(100))
    );
    // A single string longer than the whole limit is refused before decoding it.
    let mut block = Vec::new();
    encoder::literal(
        &mut block,
        Name::Literal(b"x"),
        &[b'a'; 200],
        Indexing::Without,
        Coding::Raw,
    );
    assert_eq!(
        fields(&mut d, &block),
        Err(DecodeError::HeaderListTooLarge(100))
    );
}

/// Reads frames from `io` until a HEADERS frame on `stream`; returns its block (the test's
/// answers fit one frame: END_HEADERS is checked).
async fn headers_frame(io: &mut (impl tokio::io::AsyncRead + Unpin), stream: u32) -> Vec<u8> {
    use crate::providers::pool::frame::{self, DEFAULT_MAX_FRAME_SIZE, Frame, HEAD_LEN, Head};
    use tokio::io::AsyncReadExt;
    loop {
        let mut head = [0u8; HEAD_LEN];
        io.read_exact(&mut head).await.unwrap();
        let head = Head::parse(&head);
        let mut payload = vec![0; head.len];
        io.read_exact(&mut payload).await.unwrap();
        if let Frame::Headers {
            stream: id,
            end_headers,
            fragment,
            ..
        } = frame::parse(head, &payload, DEFAULT_MAX_FRAME_SIZE).unwrap()
            && id == stream
        {
            assert!(end_headers);
            return fragment.to_vec();
        }
    }
}

#[tokio::test]
async fn h2_reads_what_this_encoder_writes_and_this_decoder_reads_what_h2_writes() {
    // A refused request would leave the client waiting for an answer: bounded.
    tokio::time::timeout(std::time::Duration::from_secs(30), interop_with_h2())
        .await
        .expect("h2 answered both requests");
}

async fn interop_with_h2() {
    use crate::providers::pool::frame;
    use tokio::io::AsyncWriteExt;
    // A raw client on one end of a pipe, `h2`'s server on the other: two requests from this
    // encoder, two answers from `h2`'s encoder (which indexes, so the second is decoded from
    // the dynamic table the first built).
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let serve = tokio::spawn(async move {
        let mut connection = h2::server::handshake(server).await.unwrap();
        let mut seen = Vec::new();
        for n in 0..2 {
            let (request, mut respond) = connection.accept().await.unwrap().unwrap();
            seen.push((
                request.method().clone(),
                request.uri().to_string(),
                request.headers().get("apns-id").cloned(),
                request.headers().get("authorization").cloned(),
            ));
            let answer = http::Response::builder()
                .status(200)
                .header("apns-id", format!("id-{n}"))
                .header("apns-unique-id", "8a1f0a56-1d2c-4b3a-9c8d-7e6f5a4b3c2d")
                .body(())
                .unwrap();
            respond.send_response(answer, true).unwrap();
        }
        // Keep the connection driven until the client has read the answers.
        let _ = connection.accept().await;
        seen
    });

    // Pseudo-headers first (RFC 9113 §8.3; h2 answers PROTOCOL_ERROR otherwise), so a
    // request is two template parts around its `:path`.
    let mut pseudo = Vec::new();
    encoder::table_size_update(&mut pseudo, 0);
    encoder::indexed(&mut pseudo, statics::METHOD_POST);
    encoder::indexed(&mut pseudo, statics::SCHEME_HTTPS);
    encoder::literal(
        &mut pseudo,
        Name::Static(statics::AUTHORITY),
        b"api.push.apple.com",
        Indexing::Without,
        Coding::Shortest,
    );
    let mut regular = Vec::new();
    encoder::literal(
        &mut regular,
        Name::Static(statics::AUTHORIZATION),
        b"bearer x.y.z",
        Indexing::Never,
        Coding::Shortest,
    );
    let mut out = frame::PREFACE.to_vec();
    frame::write_settings(&mut out, &[]);
    for (stream, token) in [(1u32, "aa"), (3, "bb")] {
        let mut block = pseudo.clone();
        let path = format!("/3/device/{token}");
        encoder::literal(
            &mut block,
            Name::Static(statics::PATH),
            path.as_bytes(),
            Indexing::Without,
            Coding::Raw,
        );
        block.extend_from_slice(&regular);
        encoder::literal(
            &mut block,
            Name::Literal(b"apns-id"),
            token.as_bytes(),
            Indexing::Without,
            Coding::Raw,
        );
        frame::write_headers(
            &mut out,
            stream,
            &block,
            true,
            frame::DEFAULT_MAX_FRAME_SIZE,
        );
    }
    client.write_all(&out).await.unwrap();

    let mut d = decoder();
    for (stream, id) in [(1, "id-0"), (3, "id-1")] {
        let block = headers_frame(&mut client, stream).await;
        let got = fields(&mut d, &block).unwrap();
        assert_eq!(got[0], (":status".to_owned(), "200".to_owned()));
        assert!(
            got.contains(&("apns-id".to_owned(), id.to_owned())),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|(n, v)| n == "apns-unique-id" && v.starts_with("8a1f"))
        );
    }
    assert!(d.table().size() > 0, "h2 indexed its answers' headers");
    drop(client);

    let seen = serve.await.unwrap();
    assert_eq!(seen.len(), 2);
    for ((method, uri, id, authorization), token) in seen.into_iter().zip(["aa", "bb"]) {
        assert_eq!(method, http::Method::POST);
        assert_eq!(uri, format!("https://api.push.apple.com/3/device/{token}"));
        assert_eq!(id.unwrap(), token);
        // Never-indexed (C.2.3's form, checked above); h2 does not report the flag.
        assert_eq!(authorization.unwrap(), "bearer x.y.z");
    }
}
