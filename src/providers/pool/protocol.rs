//! Which HTTP a connection speaks, as the server picked it by ALPN (docs/protocols.md, "Transport,
//! for every service"): HTTP/2, many streams per connection; or HTTP/1.1, one request at a
//! time per keep-alive connection.
//!
//! APNs accepts nothing but `h2`, and FCM's send endpoint is HTTP/2, so their pools offer
//! only `h2`. OAuth token endpoints (Google's `token_uri`, Microsoft's `login.live.com` and
//! `login.microsoftonline.com`), WNS channel hosts and Web Push origins may answer HTTP/1.1
//! only: their pools offer `h2` and `http/1.1` and speak what the server picked.

use bytes::Bytes;
use http::header::HOST;
use http_body_util::Full;
use hyper::client::conn::http1;

/// What a pool offers in ALPN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocols {
    /// `h2` only: a server that does not agree is a failed dial (APNs, FCM's send
    /// endpoint).
    #[default]
    Http2,
    /// `h2` first, then `http/1.1`: the server picks. A server that answers no ALPN at all
    /// speaks HTTP/1.1 (RFC 7301, section 3.1).
    Http2OrHttp1,
}

impl Protocols {
    /// The ALPN protocol ids offered, most preferred first.
    pub fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Protocols::Http2 => vec![b"h2".to_vec()],
            Protocols::Http2OrHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// Which HTTP/2 implementation a pool's connections speak with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Http2Client {
    /// The `h2` crate ([`super::http2`]).
    #[default]
    H2,
    /// ringcast's own client ([`super::driver`]): a header block of its own encoder, one
    /// write for the pushes queued between two wake-ups of the connection's task.
    Ringcast,
}

/// The HTTP a dialled connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/2: streams up to the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`.
    Http2,
    /// HTTP/1.1: one request at a time, the connection kept alive between requests.
    Http1,
}

impl Protocol {
    /// What the server picked among `offered`, from the ALPN id it answered (`None`: it
    /// answered none). `None` when the answer is not something we can speak.
    pub fn negotiated(offered: Protocols, alpn: Option<&[u8]>) -> Option<Protocol> {
        match (offered, alpn) {
            (_, Some(b"h2")) => Some(Protocol::Http2),
            (Protocols::Http2OrHttp1, Some(b"http/1.1") | None) => Some(Protocol::Http1),
            _ => None,
        }
    }
}

/// A connection's request handle. An HTTP/2 handle (h2's own, [`super::http2`]) is cloned
/// into every stream; an HTTP/1.1 handle is *moved* into the one request the connection
/// carries and moved back when its answer has been read in full, so a second request can
/// never queue behind the first.
pub(super) enum Sender {
    /// Shared by the connection's streams.
    Http2(h2::client::SendRequest<Bytes>),
    /// Lent to one request at a time.
    Http1(http1::SendRequest<Full<Bytes>>),
    /// ringcast's own HTTP/2 client, shared like `h2`'s.
    Ringcast(super::driver::Handle),
}

impl Sender {
    /// The protocol of the connection.
    pub(super) fn protocol(&self) -> Protocol {
        match self {
            Sender::Http2(_) | Sender::Ringcast(_) => Protocol::Http2,
            Sender::Http1(_) => Protocol::Http1,
        }
    }
}

/// An HTTP/1.1 request line carries the path (origin form, RFC 9112 section 3.2.1) and the
/// authority goes in `Host`; the providers build absolute URIs, which HTTP/2 needs for its
/// `:scheme` and `:authority`.
pub(super) fn origin_form(request: http::Request<Bytes>) -> http::Request<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    if let Some(authority) = parts.uri.authority().cloned() {
        if !parts.headers.contains_key(HOST)
            && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(HOST, host);
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        if let Ok(uri) = path.parse() {
            parts.uri = uri;
        }
    }
    http::Request::from_parts(parts, Full::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_only_pools_refuse_anything_else_and_the_others_take_http1() {
        assert_eq!(
            Protocol::negotiated(Protocols::Http2, Some(b"h2")),
            Some(Protocol::Http2)
        );
        assert_eq!(
            Protocol::negotiated(Protocols::Http2, Some(b"http/1.1")),
            None
        );
        assert_eq!(Protocol::negotiated(Protocols::Http2, None), None);
        let both = Protocols::Http2OrHttp1;
        assert_eq!(
            Protocol::negotiated(both, Some(b"h2")),
            Some(Protocol::Http2)
        );
        assert_eq!(
            Protocol::negotiated(both, Some(b"http/1.1")),
            Some(Protocol::Http1)
        );
        assert_eq!(Protocol::negotiated(both, None), Some(Protocol::Http1));
        assert_eq!(both.alpn(), vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn an_http1_request_names_its_path_and_host() {
        let request = http::Request::post("https://login.live.com:443/accesstoken.srf?x=1")
            .body(Bytes::new())
            .unwrap();
        let request = origin_form(request);
        assert_eq!(request.uri(), "/accesstoken.srf?x=1");
        assert_eq!(request.headers()[HOST], "login.live.com:443");
    }
}
