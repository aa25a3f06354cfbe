//! A request's header block, written by ringcast's own HPACK encoder ([`super::hpack`]) for
//! the pool's own HTTP/2 client ([`super::driver`]): from an `http::Request` ([`encode`]) or
//! from a request whose shared fields were coded once ([`encode_fields`],
//! [`super::request::Fields`]).
//!
//! Every field is an index into the static table or a literal that no table keeps, its
//! strings raw (not Huffman-coded): a push's fields are mostly new to the connection (the
//! path, the ids, the expiration) or long and secret (the provider token), so coding them
//! costs more instructions than the bytes it saves are worth on a connection that carries
//! ~500 bytes per push. `authorization` and any value marked sensitive go as *never indexed*
//! (RFC 7541 §6.2.3), so no hop may compress them.

use super::hpack::encoder::{self, Coding, Indexing, Name, statics};
use super::request::Fields;
use crate::decimal;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::uri::Authority;

/// Appends the header block of `request` to `dst`: the pseudo-headers first (RFC 9113
/// §8.3: a peer resets a stream whose pseudo-header follows a regular field), then the
/// request's headers, then `content-length` when the body has bytes and the request
/// names none. `None` when the URI is not absolute (HTTP/2 needs its scheme and authority).
pub fn encode(dst: &mut Vec<u8>, request: &http::Request<Bytes>) -> Option<()> {
    let uri = request.uri();
    let authority = uri.authority()?;
    if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
        return None;
    }
    if request.method() == http::Method::POST {
        encoder::indexed(dst, statics::METHOD_POST);
    } else {
        let method = request.method().as_str().as_bytes();
        literal(dst, Name::Static(statics::METHOD_GET), method);
    }
    encoder::indexed(dst, statics::SCHEME_HTTPS);
    literal(
        dst,
        Name::Static(statics::AUTHORITY),
        authority.as_str().as_bytes(),
    );
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    literal(dst, Name::Static(statics::PATH), path.as_bytes());
    fields(dst, request.headers());
    let body = request.body().len();
    if body > 0 && !request.headers().contains_key(CONTENT_LENGTH) {
        content_length(dst, body);
    }
    Some(())
}

/// Appends the header block of `request`, a `POST` on `authority`: the same block [`encode`]
/// writes for it as an `http::Request`, with its shared fields copied from their fragment
/// rather than coded again.
pub fn encode_fields(dst: &mut Vec<u8>, authority: &Authority, request: &Fields) {
    encoder::indexed(dst, statics::METHOD_POST);
    encoder::indexed(dst, statics::SCHEME_HTTPS);
    literal(
        dst,
        Name::Static(statics::AUTHORITY),
        authority.as_str().as_bytes(),
    );
    literal(dst, Name::Static(statics::PATH), request.path());
    dst.extend_from_slice(request.shared().block());
    for own in request.own() {
        field(dst, own.name, own.value, own.sensitive);
    }
    let body = request.body().len();
    if body > 0
        && !request.shared().has_content_length()
        && !request.own().any(|own| own.name == CONTENT_LENGTH)
    {
        content_length(dst, body);
    }
}

/// Appends regular header fields, each a raw literal that no table keeps: never indexed for
/// `authorization` and for a value marked sensitive, without indexing otherwise.
pub fn fields<'a>(
    dst: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>,
) {
    for (name, value) in fields {
        field(dst, name, value.as_bytes(), value.is_sensitive());
    }
}

/// Appends one regular field as a raw literal: never indexed when `sensitive` or for
/// `authorization`, without indexing otherwise.
fn field(dst: &mut Vec<u8>, name: &HeaderName, value: &[u8], sensitive: bool) {
    let indexing = if sensitive || name == AUTHORIZATION {
        Indexing::Never
    } else {
        Indexing::Without
    };
    encoder::literal(dst, name_of(name), value, indexing, Coding::Raw);
}

/// `content-length: <body>`, for a body whose request names no length.
fn content_length(dst: &mut Vec<u8>, body: usize) {
    let mut digits = [0u8; 20];
    literal(
        dst,
        Name::Static(statics::CONTENT_LENGTH),
        decimal::digits(body as u64, 1, &mut digits),
    );
}

/// A literal without indexing, raw.
fn literal(dst: &mut Vec<u8>, name: Name<'_>, value: &[u8]) {
    encoder::literal(dst, name, value, Indexing::Without, Coding::Raw);
}

/// The static table's index for the names a push request carries, else the name itself.
fn name_of(name: &HeaderName) -> Name<'_> {
    if name == AUTHORIZATION {
        Name::Static(statics::AUTHORIZATION)
    } else if name == CONTENT_LENGTH {
        Name::Static(statics::CONTENT_LENGTH)
    } else if name == CONTENT_TYPE {
        Name::Static(statics::CONTENT_TYPE)
    } else {
        Name::Literal(name.as_str().as_bytes())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::providers::pool::hpack::Decoder;

    /// A header block's fields as text, decoded by our own decoder.
    pub(in crate::providers::pool) fn decoded(block: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        Decoder::new(4096, 1 << 16)
            .decode(block, |name, value| {
                let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
                fields.push((text(name), text(value)));
            })
            .unwrap();
        fields
    }

    #[test]
    fn a_push_request_decodes_to_its_fields_pseudo_headers_first() {
        let mut request = http::Request::post("https://api.push.apple.com/3/device/ab12")
            .header("apns-topic", "com.example.voip")
            .header(AUTHORIZATION, "bearer secret")
            .body(Bytes::from_static(b"{\"aps\":{}}"))
            .unwrap();
        request.headers_mut().insert(
            "apns-id",
            http::HeaderValue::from_static("0123").tap_sensitive(),
        );
        let mut block = Vec::new();
        encode(&mut block, &request).unwrap();
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            decoded(&block),
            pairs(&[
                (":method", "POST"),
                (":scheme", "https"),
                (":authority", "api.push.apple.com"),
                (":path", "/3/device/ab12"),
                ("apns-topic", "com.example.voip"),
                ("authorization", "bearer secret"),
                ("apns-id", "0123"),
                ("content-length", "10"),
            ])
        );
        // The token is a never-indexed literal: 0001 and its name's index 23 (15 in the 4-bit
        // prefix, 8 more in the next byte), then its length.
        let at = block
            .windows(b"bearer secret".len())
            .position(|w| w == b"bearer secret")
            .unwrap();
        assert_eq!(block[at - 3..at], [0x1f, 8, 13]);
    }

    #[test]
    fn a_get_and_an_explicit_content_length_are_kept_as_given() {
        let request = http::Request::get("https://login.example.com/token?x=1")
            .header(CONTENT_LENGTH, "0")
            .body(Bytes::new())
            .unwrap();
        let mut block = Vec::new();
        encode(&mut block, &request).unwrap();
        let fields = decoded(&block);
        assert_eq!(fields[0], (":method".into(), "GET".into()));
        assert_eq!(fields[3], (":path".into(), "/token?x=1".into()));
        assert_eq!(fields[4], ("content-length".into(), "0".into()));
        assert_eq!(fields.len(), 5);
    }

    #[test]
    fn a_relative_or_plain_http_uri_has_no_block() {
        let relative = http::Request::post("/3/device/ab")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(encode(&mut Vec::new(), &relative), None);
        let plain = http::Request::post("http://example.com/")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(encode(&mut Vec::new(), &plain), None);
    }

    /// `HeaderValue::set_sensitive` as an expression.
    trait TapSensitive {
        fn tap_sensitive(self) -> Self;
    }

    impl TapSensitive for http::HeaderValue {
        fn tap_sensitive(mut self) -> Self {
            self.set_sensitive(true);
            self
        }
    }
}
