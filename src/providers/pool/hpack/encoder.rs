//! Encoding header fields (RFC 7541 §6) without a dynamic table: the fields a request repeats
//! are coded once into a template and copied, the rest written as literals per request.
//!
//! The encoder never inserts into the peer's table, so it keeps no state and needs no
//! lookups: each field is an index into the static table or a literal *without indexing*,
//! the form Apple asks senders to use for `authorization`, `:path` and the per-push `apns-*`
//! values (APNs keeps a small table per connection). A connection's first block begins with
//! [`table_size_update`]`(0)`, so the peer may shrink its table limit at any time without
//! this encoder owing it another update (RFC 7541 §4.2).

use super::huffman;

/// Static table indexes (RFC 7541 Appendix A) a push request uses; the tests check each
/// against [`super::table::STATIC_TABLE`].
pub mod statics {
    /// `:authority` (name).
    pub const AUTHORITY: usize = 1;
    /// `:method: GET` (the name, for any method but POST).
    pub const METHOD_GET: usize = 2;
    /// `:method: POST`.
    pub const METHOD_POST: usize = 3;
    /// `:path` (name; `/` as value).
    pub const PATH: usize = 4;
    /// `:scheme: https`.
    pub const SCHEME_HTTPS: usize = 7;
    /// `authorization` (name).
    pub const AUTHORIZATION: usize = 23;
    /// `content-length` (name).
    pub const CONTENT_LENGTH: usize = 28;
    /// `content-type` (name).
    pub const CONTENT_TYPE: usize = 31;
}

/// A literal's name: a static table index, or the name itself (lowercase, as HTTP/2
/// requires).
#[derive(Debug, Clone, Copy)]
pub enum Name<'a> {
    /// The name of the static table's entry at this index.
    Static(usize),
    /// A name not in the static table.
    Literal(&'a [u8]),
}

/// How a string is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// As is: what a per-request value costs least to write.
    Raw,
    /// Huffman-coded where that is shorter: for values coded once into a template.
    Shortest,
}

/// Whether an intermediary may index the field (RFC 7541 §6.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexing {
    /// Literal without indexing (`0000`).
    Without,
    /// Literal never indexed (`0001`): a secret, which no hop may compress.
    Never,
}

/// Appends an indexed field (§6.1): the static entry at `index`, name and value.
pub fn indexed(dst: &mut Vec<u8>, index: usize) {
    write_int(dst, index, 7, 0x80);
}

/// Appends a literal field that no table keeps (§6.2.2, §6.2.3).
pub fn literal(
    dst: &mut Vec<u8>,
    name: Name<'_>,
    value: &[u8],
    indexing: Indexing,
    coding: Coding,
) {
    let flags = match indexing {
        Indexing::Without => 0x00,
        Indexing::Never => 0x10,
    };
    match name {
        Name::Static(index) => write_int(dst, index, 4, flags),
        Name::Literal(name) => {
            dst.push(flags);
            write_string(dst, name, coding);
        }
    }
    write_string(dst, value, coding);
}

/// Appends a dynamic table size update (§6.3).
pub fn table_size_update(dst: &mut Vec<u8>, size: usize) {
    write_int(dst, size, 5, 0x20);
}

/// Appends `value` with an N-bit prefix (§5.1), the prefix's other bits being `flags`'s.
pub fn write_int(dst: &mut Vec<u8>, value: usize, prefix: u8, flags: u8) {
    let max = (1usize << prefix) - 1;
    if value < max {
        dst.push(flags | value as u8);
        return;
    }
    dst.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        dst.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.push(rest as u8);
}

/// Appends a string literal (§5.2).
pub fn write_string(dst: &mut Vec<u8>, value: &[u8], coding: Coding) {
    let coded = match coding {
        Coding::Raw => value.len(),
        Coding::Shortest => huffman::encoded_len(value),
    };
    if coded < value.len() {
        write_int(dst, coded, 7, 0x80);
        huffman::encode(value, dst);
    } else {
        write_int(dst, value.len(), 7, 0x00);
        dst.extend_from_slice(value);
    }
}
