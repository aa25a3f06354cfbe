//! Redis replies decoded by hand, for ringcast's own Redis connection ([`super::pipelined`]).
//!
//! Why: the redis crate decodes every reply through `combine` parser combinators that keep a
//! partial state between reads. In the end-to-end profile (docs/performance.md, "Where the
//! instructions go now") that decoding is ~4k instructions per reply and ~5 % of all the
//! node's instructions — a ring reads four replies per event (its claim, the callee's
//! registrations, presence, its outcomes). [`decode`] reads the same replies 3–5× faster
//! (`cargo bench --bench redis_reply`).
//!
//! What it reads: RESP2, the protocol the store's connections speak (they never send
//! `HELLO 3`): simple strings, errors, integers, bulk strings and arrays, nested up to
//! [`MAX_DEPTH`]. A RESP3 type byte is an error here, as any byte no RESP2 server sends.
//!
//! What it gives: the redis crate's own [`Value`], equal to what the crate's parser gives for
//! the same bytes (the tests and the `redis_reply` fuzz target hold the two to that), so the
//! crate's conversions (`FromRedisValue`) and its error kinds (`NOSCRIPT`, `MOVED`,
//! `READONLY`, …) apply unchanged. An error reply is handed to the crate's parser to be
//! named: errors are rare, and what kind each code is belongs to the crate.
//!
//! How: one reply from the start of a buffer, or `None` when the buffer holds only part of
//! one. Nothing is kept between calls, so a reply split over several reads is decoded again
//! from its start once more bytes came: the replies on a ring's path are a few hundred bytes,
//! read whole in one read, and a partial state would cost every reply to spare the rare one.

use redis::Value;
use std::fmt;

/// How deeply arrays may nest: a reply deeper than this is refused, not recursed into
/// (the store's replies nest two levels; the redis crate refuses past 100).
pub const MAX_DEPTH: usize = 32;

/// The longest bulk string a Redis server sends (its `proto-max-bulk-len` default, 512 MB).
const MAX_BULK_LEN: i64 = 512 * 1024 * 1024;

/// Bytes that are not a RESP2 reply: the connection can no longer be read in step with its
/// requests and must be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A type byte RESP2 does not have (RESP3's among them).
    UnknownType(u8),
    /// A length or integer line that is not a decimal integer.
    BadInteger,
    /// A length below -1, or a bulk string longer than a server sends.
    BadLength,
    /// A bulk string not followed by CRLF.
    MissingCrlf,
    /// A CR inside a line that is not followed by LF (RESP2 lines hold neither).
    LoneCr,
    /// A simple string or error line that is not UTF-8.
    NotUtf8,
    /// Arrays nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::UnknownType(byte) => write!(f, "unknown RESP2 type byte 0x{byte:02x}"),
            RespError::BadInteger => f.write_str("a RESP integer that is not a decimal integer"),
            RespError::BadLength => f.write_str("a RESP length out of range"),
            RespError::MissingCrlf => f.write_str("a RESP bulk string without its CRLF"),
            RespError::LoneCr => f.write_str("a RESP line with a CR not followed by LF"),
            RespError::NotUtf8 => f.write_str("a RESP line that is not UTF-8"),
            RespError::TooDeep => write!(f, "RESP arrays nested deeper than {MAX_DEPTH}"),
        }
    }
}

impl std::error::Error for RespError {}

/// Decodes the reply at the start of `buf`: `Ok(Some((value, bytes used)))`, `Ok(None)` when
/// `buf` ends inside it (call again once more bytes came), or an error for bytes no Redis
/// server sends.
pub fn decode(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    let mut reader = Reader { buf, at: 0 };
    match reader.value(0) {
        Ok(value) => Ok(Some((value, reader.at))),
        Err(Stop::Incomplete) => Ok(None),
        Err(Stop::Invalid(error)) => Err(error),
    }
}

/// Why a reply was not read: it is not all there yet, or it is not RESP2.
enum Stop {
    Incomplete,
    Invalid(RespError),
}

impl From<RespError> for Stop {
    fn from(error: RespError) -> Stop {
        Stop::Invalid(error)
    }
}

/// A cursor over the buffer.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn value(&mut self, depth: usize) -> Result<Value, Stop> {
        let start = self.at;
        let Some(&kind) = self.buf.get(self.at) else {
            return Err(Stop::Incomplete);
        };
        self.at += 1;
        match kind {
            b'+' => {
                let line = self.line()?;
                if line == b"OK" {
                    Ok(Value::Okay)
                } else {
                    Ok(Value::SimpleString(utf8(line)?.to_owned()))
                }
            }
            b':' => Ok(Value::Int(integer(self.line()?)?)),
            b'$' => {
                let length = integer(self.line()?)?;
                if length < 0 {
                    return nil(length);
                }
                if length > MAX_BULK_LEN {
                    return Err(RespError::BadLength.into());
                }
                let end = self.at + length as usize;
                let Some(tail) = self.buf.get(end..end + 2) else {
                    return Err(Stop::Incomplete);
                };
                if tail != b"\r\n" {
                    return Err(RespError::MissingCrlf.into());
                }
                let bytes = self.buf[self.at..end].to_vec();
                self.at = end + 2;
                Ok(Value::BulkString(bytes))
            }
            b'*' => {
                let length = integer(self.line()?)?;
                if length < 0 {
                    return nil(length);
                }
                if depth + 1 > MAX_DEPTH {
                    return Err(RespError::TooDeep.into());
                }
                // Every element takes at least 3 bytes (`:0\r\n` is 4, `*0\r\n` too): a length
                // the buffer cannot hold reserves no more than what is there.
                let mut items = Vec::with_capacity((length as usize).min(self.buf.len() / 3));
                for _ in 0..length {
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            b'-' => {
                self.line()?;
                // The crate names the error's kind from its code; it reads this one line.
                let line = &self.buf[start..self.at];
                match redis::parse_redis_value(line) {
                    Ok(value @ Value::ServerError(_)) => Ok(value),
                    _ => Err(RespError::NotUtf8.into()),
                }
            }
            other => Err(RespError::UnknownType(other).into()),
        }
    }

    /// The line from the cursor to the next CRLF (without it); the cursor moves past it.
    fn line(&mut self) -> Result<&[u8], Stop> {
        let rest = &self.buf[self.at..];
        let Some(cr) = rest.iter().position(|&byte| byte == b'\r') else {
            return Err(Stop::Incomplete);
        };
        match rest.get(cr + 1) {
            None => Err(Stop::Incomplete),
            Some(b'\n') => {
                self.at += cr + 2;
                Ok(&rest[..cr])
            }
            // A lone CR inside a line: the crate's parser reads on to the next CRLF; no
            // server writes one in a length, an integer, a status or an error line.
            Some(_) => Err(RespError::LoneCr.into()),
        }
    }
}

/// `-1` is RESP2's null bulk string and null array; any other negative length is garbage.
fn nil(length: i64) -> Result<Value, Stop> {
    if length == -1 {
        Ok(Value::Nil)
    } else {
        Err(RespError::BadLength.into())
    }
}

/// A decimal integer line (an optional `-` or `+`, then digits), as Redis writes them.
fn integer(line: &[u8]) -> Result<i64, RespError> {
    let (negative, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(RespError::BadInteger);
    }
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return Err(RespError::BadInteger);
        }
        let digit = i64::from(digit - b'0');
        value = value
            .checked_mul(10)
            .and_then(|value| {
                if negative {
                    value.checked_sub(digit)
                } else {
                    value.checked_add(digit)
                }
            })
            .ok_or(RespError::BadInteger)?;
    }
    Ok(value)
}

fn utf8(line: &[u8]) -> Result<&str, RespError> {
    std::str::from_utf8(line).map_err(|_| RespError::NotUtf8)
}

#[cfg(test)]
mod tests;
