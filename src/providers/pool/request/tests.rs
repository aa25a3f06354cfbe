use super::*;
use crate::providers::pool::request_block::tests::decoded;
use http::header::AUTHORIZATION;

const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
const APNS_ID: HeaderName = HeaderName::from_static("apns-id");

fn authority() -> Authority {
    Authority::from_static("api.push.apple.com")
}

fn sensitive(text: &'static str) -> HeaderValue {
    let mut value = HeaderValue::from_static(text);
    value.set_sensitive(true);
    value
}

fn shared() -> SharedFields {
    SharedFields::new(vec![
        (APNS_TOPIC, HeaderValue::from_static("com.example.voip")),
        (
            HeaderName::from_static("apns-collapse-id"),
            sensitive("call-1"),
        ),
        (CONTENT_LENGTH, HeaderValue::from_static("10")),
    ])
}

/// An APNs push before its connection's provider token is added.
fn unsigned() -> Fields {
    Fields::post(
        Path::from_slice(b"/3/device/ab12"),
        shared(),
        Bytes::from_static(b"{\"aps\":{}}"),
    )
    .unwrap()
    .with_unique(APNS_ID, b"0123")
    .unwrap()
}

fn push() -> Fields {
    unsigned().with(AUTHORIZATION, HeaderValue::from_static("bearer secret"))
}

#[test]
fn the_own_clients_block_is_the_one_its_http_request_gets_byte_for_byte() {
    // The two ways a request reaches the wire must not differ: the `h2` and HTTP/1.1 clients
    // send `into_http`, the own client the block written from the fields.
    let mut from_fields = Vec::new();
    Request::from(push())
        .write_block(&mut from_fields, &authority())
        .unwrap();
    let http = Request::from(push()).into_http(&authority()).unwrap();
    let mut from_http = Vec::new();
    request_block::encode(&mut from_http, &http).unwrap();
    assert_eq!(from_fields, from_http);
    assert_eq!(
        decoded(&from_fields),
        [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "api.push.apple.com"),
            (":path", "/3/device/ab12"),
            ("apns-topic", "com.example.voip"),
            ("apns-collapse-id", "call-1"),
            ("content-length", "10"),
            ("apns-id", "0123"),
            ("authorization", "bearer secret"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
    );
}

#[test]
fn a_field_added_once_the_connection_is_known_goes_last_in_either_form() {
    let bearer = HeaderValue::from_static("bearer secret");
    let mut fields = Request::from(unsigned());
    fields.add_field(AUTHORIZATION, bearer.clone());
    let mut http = Request::from(Request::from(unsigned()).into_http(&authority()).unwrap());
    http.add_field(AUTHORIZATION, bearer);
    let signed = Request::from(push()).into_http(&authority()).unwrap();
    for request in [fields, http] {
        let request = request.into_http(&authority()).unwrap();
        assert_eq!(request.headers(), signed.headers());
        let last = request
            .headers()
            .iter()
            .last()
            .map(|(name, _)| name.clone());
        assert_eq!(last, Some(AUTHORIZATION));
    }
}

#[test]
fn as_an_http_request_it_keeps_its_uri_order_sensitivity_and_body() {
    let request = Request::from(push()).into_http(&authority()).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(
        request.uri().to_string(),
        "https://api.push.apple.com/3/device/ab12"
    );
    let names: Vec<&str> = request.headers().keys().map(HeaderName::as_str).collect();
    assert_eq!(
        names,
        [
            "apns-topic",
            "apns-collapse-id",
            "content-length",
            "apns-id",
            "authorization"
        ]
    );
    assert!(request.headers()["apns-collapse-id"].is_sensitive());
    assert!(request.headers()[&APNS_ID].is_sensitive());
    assert!(!request.headers()[&APNS_TOPIC].is_sensitive());
    assert_eq!(request.body().as_ref(), b"{\"aps\":{}}");
}

#[test]
fn sensitive_values_and_the_credential_are_never_indexed_the_rest_without_indexing() {
    let mut block = Vec::new();
    Request::from(push())
        .write_block(&mut block, &authority())
        .unwrap();
    // A literal name: 0000 0000 (without indexing) or 0001 0000 (never indexed), the name's
    // length and bytes, the value's. `authorization` is static index 23: 0001 1111 then 8.
    let literal = |flags: u8, name: &[u8], value: &[u8]| {
        let mut bytes = vec![flags, name.len() as u8];
        bytes.extend_from_slice(name);
        bytes.push(value.len() as u8);
        bytes.extend_from_slice(value);
        bytes
    };
    let holds = |bytes: &[u8]| block.windows(bytes.len()).any(|w| w == bytes);
    assert!(holds(&literal(0x00, b"apns-topic", b"com.example.voip")));
    assert!(holds(&literal(0x10, b"apns-collapse-id", b"call-1")));
    assert!(holds(&literal(0x10, b"apns-id", b"0123")));
    assert!(holds(b"\x1f\x08\x0dbearer secret"));
}

#[test]
fn a_body_without_a_named_length_gets_one_and_an_empty_body_none() {
    let shared = SharedFields::new(vec![(APNS_TOPIC, HeaderValue::from_static("t"))]);
    assert!(!shared.has_content_length());
    let with_body = Fields::post(
        Path::from_slice(b"/x"),
        shared.clone(),
        Bytes::from_static(b"abc"),
    )
    .unwrap();
    let mut block = Vec::new();
    request_block::encode_fields(&mut block, &authority(), &with_body);
    assert_eq!(
        decoded(&block).last().unwrap(),
        &("content-length".into(), "3".into())
    );
    let empty = Fields::post(Path::from_slice(b"/x"), shared, Bytes::new()).unwrap();
    block.clear();
    request_block::encode_fields(&mut block, &authority(), &empty);
    assert!(
        decoded(&block)
            .iter()
            .all(|(name, _)| name != "content-length")
    );
}

#[test]
fn only_a_path_the_http_crate_would_take_too_is_accepted() {
    let post = |path: &'static [u8]| Fields::post(Path::from_slice(path), shared(), Bytes::new());
    for good in [
        &b"/3/device/abcdef0123"[..],
        b"/",
        b"/v1/projects/p-1/messages:send",
        b"/a/b?c=d&e=%20f",
        b"/~user/(x)*+,;=:@!$'",
    ] {
        let fields = post(good).unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(good)));
        let request = Request::from(fields).into_http(&authority()).unwrap();
        assert_eq!(
            request.uri().path_and_query().unwrap().as_str().as_bytes(),
            good
        );
    }
    for bad in [
        &b""[..],
        b"3/device/ab",
        b"/a b",
        b"/a#b",
        b"/a\nb",
        b"/a\x7fb",
        b"/\xc3\xa9",
        b"/a<b>",
        b"/a\\b",
        b"/a^b",
        b"/a`b",
    ] {
        assert!(post(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn own_fields_past_the_two_held_inline_are_kept_in_order() {
    let third = HeaderName::from_static("x-third");
    let fields = push().with(third.clone(), HeaderValue::from_static("3"));
    let names: Vec<&HeaderName> = fields.own().map(|own| own.name).collect();
    assert_eq!(names, [&APNS_ID, &AUTHORIZATION, &third]);
    let mut block = Vec::new();
    Request::from(fields)
        .write_block(&mut block, &authority())
        .unwrap();
    assert_eq!(
        decoded(&block).last().unwrap(),
        &("x-third".into(), "3".into())
    );
}

#[test]
fn an_http_request_passes_through_unchanged() {
    let request = http::Request::post("https://fcm.googleapis.com/v1/projects/p/messages:send")
        .header(AUTHORIZATION, "Bearer x")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let mut block = Vec::new();
    let mut expected = Vec::new();
    request_block::encode(&mut expected, &request).unwrap();
    let request = Request::from(request);
    // The authority given is the pool's; an `http::Request` names its own.
    request.write_block(&mut block, &authority()).unwrap();
    assert_eq!(block, expected);
    let back = request.into_http(&authority()).unwrap();
    assert_eq!(back.uri().host(), Some("fcm.googleapis.com"));
    assert_eq!(back.into_body().as_ref(), b"{}");
}

#[test]
fn a_unique_value_is_checked_as_a_header_value_and_may_be_longer_than_its_inline_room() {
    for bad in [&b"a\nb"[..], b"a\rb", b"\x00", b"a\x7fb"] {
        assert!(unsigned().with_unique(APNS_ID, bad).is_none(), "{bad:?}");
    }
    let long = [b'x'; 100];
    let tabbed = b"a\tb \xff";
    let fields = unsigned()
        .with_unique(HeaderName::from_static("x-long"), &long)
        .unwrap()
        .with_unique(HeaderName::from_static("x-tabbed"), tabbed)
        .unwrap();
    let http = Request::from(fields).into_http(&authority()).unwrap();
    assert_eq!(http.headers()["x-long"].as_bytes(), long);
    assert_eq!(http.headers()["x-tabbed"].as_bytes(), tabbed);
    assert!(http.headers()["x-long"].is_sensitive());
}

#[test]
fn a_path_longer_than_its_inline_room_is_sent_whole() {
    // A 100-byte token's hex: 200 digits, past the 80 bytes held inline.
    let mut path = Path::from_slice(b"/3/device/");
    path.extend_from_slice(&[b'a'; 200]);
    let fields = Fields::post(path.clone(), shared(), Bytes::new()).unwrap();
    let mut block = Vec::new();
    Request::from(fields)
        .write_block(&mut block, &authority())
        .unwrap();
    assert_eq!(decoded(&block)[3].1.as_bytes(), &path[..]);
}
