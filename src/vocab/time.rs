//! Time as the whole crate passes it around.

/// Milliseconds since the UNIX epoch. Every time in the registry is one of these, passed in
/// by the caller, so that expiry and refresh logic runs on a fake clock in tests.
pub type UnixMillis = u64;
