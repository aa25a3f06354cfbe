//! What the pool sends: a request as the `http` crate holds it, or one whose header fields its
//! provider laid out ([`Fields`]).
//!
//! Every provider but APNs builds an `http::Request`. An APNs push differs from the other
//! pushes of its event only in its path (the device token), its `apns-id` and, every 20–60
//! minutes, its provider token; the event's six other fields are the same for all of them. So
//! the APNs provider codes those six into an HPACK fragment once per event ([`SharedFields`])
//! and hands the pool the path and the push's own fields beside it. Ringcast's own HTTP/2
//! client copies the fragment into each push's header block
//! ([`super::request_block::encode_fields`]), where an `http::Request` cost every push a
//! `HeaderMap` (hashing each name), a checked `PathAndQuery` and a walk over the map that
//! coded each field again (~4k of ~72k instructions per push under callgrind;
//! docs/performance.md). The `h2` and HTTP/1.1 clients get the same request as an
//! `http::Request` ([`Request::into_http`]): their encoders need the fields, not bytes.

use super::request_block;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use smallvec::SmallVec;
use std::sync::Arc;

/// A request for [`super::Stream::send`]. A push's request is moved from layer to layer
/// (its delivery, the pool, the connection) before it is written, so it is boxed: one
/// allocation, where a request held by value cost each move a copy of a few hundred bytes.
pub enum Request {
    /// An absolute `https` URI on the pool's origin, headers and body.
    Http(Box<http::Request<Bytes>>),
    /// A `POST` on the pool's origin, its fields laid out by the provider.
    Fields(Box<Fields>),
}

impl From<http::Request<Bytes>> for Request {
    fn from(request: http::Request<Bytes>) -> Request {
        Request::Http(Box::new(request))
    }
}

impl From<Fields> for Request {
    fn from(fields: Fields) -> Request {
        Request::Fields(Box::new(fields))
    }
}

impl Request {
    /// The request as an `http::Request` with an absolute URI on `authority`, for the `h2`
    /// and HTTP/1.1 clients. `None` only if the `http` crate refuses a path [`Fields::post`]
    /// took (it takes a subset of what `http` does, so never).
    pub fn into_http(self, authority: &Authority) -> Option<http::Request<Bytes>> {
        match self {
            Request::Http(request) => Some(*request),
            Request::Fields(fields) => fields.into_http(authority),
        }
    }

    /// Appends the request's header block to `dst` for ringcast's own HTTP/2 client
    /// ([`request_block`]). `None` for an `http::Request` whose URI is not absolute `https`.
    pub fn write_block(&self, dst: &mut Vec<u8>, authority: &Authority) -> Option<()> {
        match self {
            Request::Http(request) => request_block::encode(dst, request),
            Request::Fields(fields) => {
                request_block::encode_fields(dst, authority, fields);
                Some(())
            }
        }
    }

    /// Adds a field after those already there: for a credential that is chosen only once
    /// the request's connection is known ([`super::bound`]).
    pub fn add_field(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            Request::Http(request) => {
                request.headers_mut().append(name, value);
            }
            Request::Fields(fields) => fields.own.push((name, OwnValue::Header(value))),
        }
    }

    /// The body, the request's last use.
    pub fn into_body(self) -> Bytes {
        match self {
            Request::Http(request) => request.into_body(),
            Request::Fields(fields) => fields.body,
        }
    }
}

/// How many fields of its own a [`Fields`] request holds inline (APNs' `apns-id` and
/// `authorization`), so that a push allocates nothing for them; more spill to the heap.
const OWN_FIELDS: usize = 2;

/// The bytes of `:path` held in the request itself: `/3/device/` and a 32-byte token's 64 hex
/// digits fit; a longer path spills to the heap.
const PATH_INLINE: usize = 80;

/// A [`Fields`] request's `:path`.
pub type Path = SmallVec<[u8; PATH_INLINE]>;

/// The bytes of a [`Fields::with_unique`] value held in the request itself: a UUID's 36
/// characters fit.
const UNIQUE_INLINE: usize = 40;

/// The value of a field of a request's own.
enum OwnValue {
    /// As the `http` crate holds it: a credential cached for many requests, shared by a clone.
    Header(HeaderValue),
    /// Held in the request, checked as `HeaderValue` checks a value, sent never indexed: a
    /// value new for every push, which as a `HeaderValue` cost each push an allocation.
    Unique(SmallVec<[u8; UNIQUE_INLINE]>),
}

impl OwnValue {
    fn as_bytes(&self) -> &[u8] {
        match self {
            OwnValue::Header(value) => value.as_bytes(),
            OwnValue::Unique(value) => value,
        }
    }

    fn is_sensitive(&self) -> bool {
        match self {
            OwnValue::Header(value) => value.is_sensitive(),
            OwnValue::Unique(_) => true,
        }
    }

    /// The value as the `http` crate's clients take it.
    fn to_header(&self) -> Option<HeaderValue> {
        match self {
            OwnValue::Header(value) => Some(value.clone()),
            OwnValue::Unique(value) => {
                let mut value = HeaderValue::from_bytes(value).ok()?;
                value.set_sensitive(true);
                Some(value)
            }
        }
    }
}

/// A field of a request's own, as the clients write it.
pub struct OwnField<'a> {
    /// Its name.
    pub name: &'a HeaderName,
    /// Its value.
    pub value: &'a [u8],
    /// Sent as a never-indexed literal (RFC 7541 §6.2.3): marked sensitive, or unique.
    pub sensitive: bool,
}

/// A `POST` whose header fields are the shared ones of its kind ([`SharedFields`], coded once)
/// and its own, sent in that order. The path and a push's unique field are held inline: each
/// was an allocation per push.
pub struct Fields {
    /// `:path`, checked by [`Fields::post`].
    path: Path,
    /// The fields many requests share.
    shared: SharedFields,
    /// This request's own fields, after the shared ones.
    own: SmallVec<[(HeaderName, OwnValue); OWN_FIELDS]>,
    /// The body.
    body: Bytes,
}

impl Fields {
    /// A `POST` of `body` to `path` with the `shared` fields. `None` when `path` is not `/`
    /// followed by characters RFC 3986 allows unescaped in a path and query (a provider's
    /// bug: ringcast's own client writes the path as it is, so it is checked here).
    pub fn post(path: Path, shared: SharedFields, body: Bytes) -> Option<Fields> {
        if path.first() != Some(&b'/') || !is_path(&path) {
            return None;
        }
        Some(Fields {
            path,
            shared,
            own: SmallVec::new(),
            body,
        })
    }

    /// Adds a field of this request's own, after the shared ones and those added before.
    /// A value marked sensitive, and `authorization`, go as never-indexed literals.
    pub fn with(mut self, name: HeaderName, value: HeaderValue) -> Fields {
        self.own.push((name, OwnValue::Header(value)));
        self
    }

    /// Adds a field whose value no other request carries (APNs' `apns-id`), held in the
    /// request and sent as a never-indexed literal: a table entry for it would only evict
    /// fields that requests repeat. `None` when `value` is not a field value (a control
    /// character other than tab), as `HeaderValue::from_bytes` refuses it.
    pub fn with_unique(mut self, name: HeaderName, value: &[u8]) -> Option<Fields> {
        if !super::answer_fields::is_field_value(value) {
            return None;
        }
        self.own
            .push((name, OwnValue::Unique(SmallVec::from_slice(value))));
        Some(self)
    }

    /// `:path`.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The shared fields.
    pub fn shared(&self) -> &SharedFields {
        &self.shared
    }

    /// The request's own fields, in order.
    pub fn own(&self) -> impl Iterator<Item = OwnField<'_>> {
        self.own.iter().map(|(name, value)| OwnField {
            name,
            value: value.as_bytes(),
            sensitive: value.is_sensitive(),
        })
    }

    /// [`Request::into_http`] of a [`Fields`] request.
    fn into_http(self, authority: &Authority) -> Option<http::Request<Bytes>> {
        let mut headers = HeaderMap::with_capacity(self.shared.0.fields.len() + self.own.len());
        for (name, value) in self.shared.fields() {
            headers.append(name.clone(), value.clone());
        }
        for (name, value) in &self.own {
            headers.append(name.clone(), value.to_header()?);
        }
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTPS);
        uri.authority = Some(authority.clone());
        let path = Bytes::copy_from_slice(&self.path);
        uri.path_and_query = Some(PathAndQuery::from_maybe_shared(path).ok()?);
        let mut request = http::Request::new(self.body);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_parts(uri).ok()?;
        *request.headers_mut() = headers;
        Some(request)
    }
}

/// Header fields that many requests share, and the same coded once as a fragment of an HPACK
/// header block ([`request_block::fields`]). Cloning bumps a reference count.
#[derive(Clone)]
pub struct SharedFields(Arc<Coded>);

/// The inside of [`SharedFields`].
struct Coded {
    /// The fields, in order.
    fields: Vec<(HeaderName, HeaderValue)>,
    /// The fields coded.
    block: Vec<u8>,
    /// Whether `content-length` is among them.
    content_length: bool,
}

impl SharedFields {
    /// `fields`, in their order, coded once.
    pub fn new(fields: Vec<(HeaderName, HeaderValue)>) -> SharedFields {
        // Each field: its name and value, a type byte and two lengths (a byte each, mostly).
        let size = fields
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 3)
            .sum();
        let mut block = Vec::with_capacity(size);
        request_block::fields(&mut block, fields.iter().map(|(name, value)| (name, value)));
        let content_length = fields.iter().any(|(name, _)| name == CONTENT_LENGTH);
        SharedFields(Arc::new(Coded {
            fields,
            block,
            content_length,
        }))
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.fields.iter().map(|(name, value)| (name, value))
    }

    /// The fields as a fragment of a header block.
    pub fn block(&self) -> &[u8] {
        &self.0.block
    }

    /// Whether `content-length` is among the fields.
    pub fn has_content_length(&self) -> bool {
        self.0.content_length
    }
}

/// Whether every byte of `path` is one RFC 3986 allows unescaped in a path and query:
/// unreserved, `%` (of a percent-escape), sub-delims, `:`, `@`, `/` and `?`. No `#`, no
/// space, no control or non-ASCII byte. Written without an early return so that it compiles
/// to a loop without branches.
fn is_path(path: &[u8]) -> bool {
    path.iter()
        .fold(true, |ok, &byte| ok & PATH[usize::from(byte)])
}

/// [`is_path`]'s table: which bytes may appear.
static PATH: [bool; 256] = {
    let mut table = [false; 256];
    let allowed =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@/?";
    let mut at = 0;
    while at < allowed.len() {
        table[allowed[at] as usize] = true;
        at += 1;
    }
    table
};

#[cfg(test)]
mod tests;
