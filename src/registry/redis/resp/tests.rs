use super::*;

/// Replies a Redis server sends, among them the store's own shapes: an `HGETALL` of binary
/// records (CR and LF inside), a script's nested answer, and errors of each kind the store
/// acts on.
fn replies() -> Vec<Vec<u8>> {
    let mut hgetall = b"*4\r\n$6\r\nphone1\r\n$12\r\n\x01\x02\r\n\x00\xff\r\nab\r\n\r\n".to_vec();
    hgetall.extend_from_slice(b"$6\r\nphone2\r\n$0\r\n\r\n");
    [
        &b"+OK\r\n"[..],
        b"+PONG\r\n",
        b"+\r\n",
        b":0\r\n",
        b":-42\r\n",
        b":+7\r\n",
        b":9223372036854775807\r\n",
        b":-9223372036854775808\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"$5\r\nhe\r\nl\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"*3\r\n:1\r\n$-1\r\n*2\r\n+OK\r\n$3\r\nabc\r\n",
        b"*2\r\n:1\r\n-ERR inside an array\r\n",
        b"-ERR unknown command 'FOO'\r\n",
        b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
        b"-MOVED 3999 127.0.0.1:6381\r\n",
        b"-READONLY You can't write against a read only replica.\r\n",
        b"-WRONGPASS invalid username-password pair\r\n",
        &hgetall,
    ]
    .iter()
    .map(|reply| reply.to_vec())
    .collect()
}

#[test]
fn every_reply_decodes_to_what_the_redis_crate_reads() {
    for reply in replies() {
        let expected = redis::parse_redis_value(&reply).unwrap();
        let decoded = decode(&reply).unwrap();
        assert_eq!(
            decoded,
            Some((expected, reply.len())),
            "{:?}",
            String::from_utf8_lossy(&reply)
        );
    }
}

#[test]
fn a_reply_cut_anywhere_asks_for_more() {
    for reply in replies() {
        for end in 0..reply.len() {
            assert_eq!(
                decode(&reply[..end]),
                Ok(None),
                "{:?} cut at {end}",
                String::from_utf8_lossy(&reply)
            );
        }
    }
}

#[test]
fn replies_back_to_back_are_read_one_at_a_time() {
    let all: Vec<u8> = replies().concat();
    let mut at = 0;
    for reply in replies() {
        let (value, used) = decode(&all[at..]).unwrap().unwrap();
        assert_eq!(value, redis::parse_redis_value(&reply).unwrap());
        assert_eq!(used, reply.len());
        at += used;
    }
    assert_eq!(at, all.len());
}

#[test]
fn an_error_keeps_the_kind_the_store_acts_on() {
    let (value, _) = decode(b"-NOSCRIPT No matching script.\r\n")
        .unwrap()
        .unwrap();
    let Value::ServerError(error) = value else {
        panic!("not an error: {value:?}");
    };
    assert_eq!(error.code(), "NOSCRIPT");
    let error = redis::RedisError::from(error);
    assert_eq!(
        error.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
    );
}

#[test]
fn the_store_reads_a_decoded_hgetall_as_before() {
    let reply = b"*4\r\n$1\r\na\r\n$3\r\n\x00\r\n\r\n$1\r\nb\r\n$1\r\nz\r\n";
    let (value, _) = decode(reply).unwrap().unwrap();
    let fields: Vec<(String, Vec<u8>)> = redis::FromRedisValue::from_redis_value(value).unwrap();
    assert_eq!(
        fields,
        vec![
            ("a".into(), b"\x00\r\n".to_vec()),
            ("b".into(), b"z".to_vec())
        ]
    );
}

#[test]
fn bytes_no_redis_sends_are_refused() {
    let cases: [(&[u8], RespError); 12] = [
        (b"?x\r\n", RespError::UnknownType(b'?')),
        (b"%1\r\n+a\r\n+b\r\n", RespError::UnknownType(b'%')),
        (b"_\r\n", RespError::UnknownType(b'_')),
        (b":12a\r\n", RespError::BadInteger),
        (b":\r\n", RespError::BadInteger),
        (b": 1\r\n", RespError::BadInteger),
        (b":99999999999999999999\r\n", RespError::BadInteger),
        (b":9223372036854775808\r\n", RespError::BadInteger),
        (b"$-2\r\n", RespError::BadLength),
        (b"$3\r\nabcX\r\n", RespError::MissingCrlf),
        (b"+\xff\r\n", RespError::NotUtf8),
        (b":1\rx\n", RespError::LoneCr),
    ];
    for (bytes, error) in cases {
        assert_eq!(
            decode(bytes),
            Err(error.clone()),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(decode(b"$536870913\r\n"), Err(RespError::BadLength));
}

#[test]
fn arrays_nest_as_deep_as_the_limit_and_no_deeper() {
    let nested = |depth: usize| {
        let mut bytes = b"*1\r\n".repeat(depth);
        bytes.extend_from_slice(b":1\r\n");
        bytes
    };
    let deepest = nested(MAX_DEPTH);
    assert_eq!(
        decode(&deepest).unwrap(),
        Some((redis::parse_redis_value(&deepest).unwrap(), deepest.len()))
    );
    assert_eq!(decode(&nested(MAX_DEPTH + 1)), Err(RespError::TooDeep));
}

#[test]
fn a_length_larger_than_the_buffer_reserves_only_what_is_there() {
    // A billion elements announced, two present: incomplete, and no billion-slot vector.
    assert_eq!(decode(b"*1000000000\r\n:1\r\n:2\r\n"), Ok(None));
}
