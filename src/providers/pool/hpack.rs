//! HPACK (RFC 7541), the header compression of HTTP/2, written for a push sender: the first
//! part of ringcast's own HTTP/2 client (docs/performance.md, "HPACK of our own"), which
//! speaks to APNs in place of `h2` ([`super::request_block`] writes a request with it).
//!
//! Why not `h2`'s: under callgrind its encoder costs ~14k of the node's ~97k instructions per
//! push. It Huffman-codes every literal afresh, and never indexes `authorization` or `:path`
//! (right, and what Apple asks), so the ~190-byte provider token and the device path are
//! coded whole on every push; each header also costs a table lookup. Most of an APNs
//! request's header block is the same from push to push for 20–60 minutes (method, scheme,
//! authority, topic, push type, priority, the token): [`encoder`] writes those once into a
//! template, and a push adds its path, ids and expiration as raw literals, which is copying.
//!
//! - [`huffman`]: the static Huffman code, and a decoder computed from it;
//! - [`table`]: the static table and the dynamic table the decoder keeps;
//! - [`decoder`]: a header block to fields, refusing what RFC 7541 refuses;
//! - [`encoder`]: fields to bytes, with no dynamic table (so no state).
//!
//! The RFC's examples (Appendix C) are the tests (`hpack/tests.rs`).

pub mod decoder;
pub mod encoder;
pub mod huffman;
pub mod table;

#[cfg(test)]
mod tests;

pub use decoder::Decoder;

/// Why a header block cannot be decoded. Each is HTTP/2's `COMPRESSION_ERROR` (RFC 9113
/// §4.3), a connection error, except that an over-long list could be refused per stream; it
/// ends the connection too, as the table must be dropped with a block decoded halfway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The block ends inside a field.
    #[error("the header block ends inside a field")]
    Truncated,
    /// An integer is longer than any real index or length.
    #[error("an integer in the header block is too large")]
    IntegerOverflow,
    /// An index in neither the static nor the dynamic table.
    #[error("index {0} is in neither HPACK table")]
    BadIndex(usize),
    /// A Huffman-coded string holds EOS or is padded wrongly.
    #[error("a Huffman-coded string is malformed")]
    Huffman,
    /// A table size update over the limit our SETTINGS gave.
    #[error("a table size update to {0} bytes is over the advertised limit")]
    TableSizeTooLarge(usize),
    /// A table size update after the block's first field.
    #[error("a table size update after the block's first field")]
    TableSizeUpdateLate,
    /// The fields decode to more than the limit (bytes, counted as RFC 9113 §6.5.2 does).
    #[error("the header list is over {0} bytes")]
    HeaderListTooLarge(usize),
}
