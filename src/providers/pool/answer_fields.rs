//! Which header fields of an answer ringcast's own HTTP/2 client keeps ([`AnswerFields`]),
//! and the checks every field passes whether kept or not.
//!
//! A push service's answer carries fields no judge reads: every APNs answer has an `apns-id`
//! (and, in development, an `apns-unique-id`), each a fresh UUID. Copying them into an
//! `http::HeaderMap` cost every push the map's allocations, a copy of each name and value
//! (five allocations in all) and ~500 instructions under callgrind, to be dropped unread
//! (docs/performance.md). A provider names the fields
//! its judge reads; the rest are checked, as RFC 9113 §8.2.1 asks of every field, and
//! dropped. The `h2` crate's and HTTP/1.1 connections hand over whatever they received: the
//! judges read the same fields from either.

use http::HeaderName;
use http::header::HeaderValue;

/// The regular header fields of an answer the session keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerFields {
    /// Every field (the pool used alone, its tests, a token endpoint).
    All,
    /// Only these; any other well-formed field is dropped once checked.
    Only(&'static [HeaderName]),
}

/// What becomes of one field of an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Field {
    /// Kept, as the `http` crate holds it.
    Kept(HeaderName, HeaderValue),
    /// Well formed, and not kept.
    Dropped,
    /// A name with upper case or a character no token has, or a value with a control
    /// character: the answer is malformed (RFC 9113 §8.2.1).
    Malformed,
}

impl AnswerFields {
    /// What becomes of the field `name: value`.
    pub fn keep(self, name: &[u8], value: &[u8]) -> Field {
        let kept = match self {
            AnswerFields::All => match HeaderName::from_lowercase(name) {
                Ok(name) => name,
                Err(_) => return Field::Malformed,
            },
            AnswerFields::Only(kept) => {
                if !is_field_name(name) || !is_field_value(value) {
                    return Field::Malformed;
                }
                match kept.iter().find(|kept| kept.as_str().as_bytes() == name) {
                    Some(kept) => kept.clone(),
                    None => return Field::Dropped,
                }
            }
        };
        match HeaderValue::from_bytes(value) {
            Ok(value) => Field::Kept(kept, value),
            Err(_) => Field::Malformed,
        }
    }
}

/// A name `http::HeaderName::from_lowercase` takes: lower-case letters, digits and the
/// other characters of a token, without allocating for it.
fn is_field_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&byte| NAME_BYTES[usize::from(byte)])
}

/// A value `http::HeaderValue::from_bytes` takes: no control character but tab. Also the
/// check of a request's own unique values ([`super::Fields::with_unique`]).
pub(super) fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&byte| VALUE_BYTES[usize::from(byte)])
}

/// Per byte, whether a field name may hold it. A table, because every answer's fields are
/// checked byte by byte: a lookup per byte where the comparisons cost a string search for
/// each punctuation byte (docs/performance.md, "An answer's fields by table").
const NAME_BYTES: [bool; 256] = {
    // RFC 9110's token characters (§5.6.2) less upper case, and `"`, which `http` takes too.
    const PUNCTUATION: &[u8] = b"!\"#$%&'*+-.^_`|~";
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_lowercase() || b.is_ascii_digit();
        byte += 1;
    }
    let mut at = 0;
    while at < PUNCTUATION.len() {
        table[PUNCTUATION[at] as usize] = true;
        at += 1;
    }
    table
};

/// Per byte, whether a field value may hold it.
const VALUE_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = (b >= 0x20 && b != 0x7f) || b == b'\t';
        byte += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::RETRY_AFTER;

    const ONLY: AnswerFields = AnswerFields::Only(&[RETRY_AFTER]);

    #[test]
    fn only_the_named_fields_are_kept() {
        assert_eq!(
            ONLY.keep(b"retry-after", b"7"),
            Field::Kept(RETRY_AFTER, HeaderValue::from_static("7"))
        );
        assert_eq!(ONLY.keep(b"apns-id", b"0123-abcd"), Field::Dropped);
        assert_eq!(
            AnswerFields::All.keep(b"apns-id", b"0123-abcd"),
            Field::Kept(
                HeaderName::from_static("apns-id"),
                HeaderValue::from_static("0123-abcd")
            )
        );
    }

    #[test]
    fn a_dropped_field_is_checked_as_strictly_as_a_kept_one() {
        // Every byte in a name, alone and after a valid prefix, and in a value: `Only`
        // refuses exactly what `http` (and so `All`) refuses, kept or not.
        let ok = |field: Field| field != Field::Malformed;
        for byte in 0..=255u8 {
            for name in [vec![byte], vec![b'x', byte]] {
                let by_http = ok(AnswerFields::All.keep(&name, b"1"));
                assert_eq!(ok(ONLY.keep(&name, b"1")), by_http, "name {name:?}");
            }
            let value = [b'a', byte, b'b'];
            let by_http = ok(AnswerFields::All.keep(b"x-y", &value));
            assert_eq!(ok(ONLY.keep(b"x-y", &value)), by_http, "value {value:?}");
            assert_eq!(ok(ONLY.keep(b"retry-after", &value)), by_http);
        }
        // Upper case is refused in HTTP/2 (RFC 9113 §8.2.1), and so is an empty name.
        assert_eq!(ONLY.keep(b"Retry-After", b"7"), Field::Malformed);
        assert_eq!(ONLY.keep(b"", b"1"), Field::Malformed);
        assert_eq!(AnswerFields::All.keep(b"", b"1"), Field::Malformed);
    }
}
