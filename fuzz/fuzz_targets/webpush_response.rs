//! A Web Push service's answer (status and `Retry-After`) through the provider's judge, and
//! the `Retry-After` value through the one parser every provider shares. Any input, never a
//! panic, and never a wait past the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::retry_after::{MAX_RETRY_AFTER, parse};
use ringcast::providers::webpush::response::judge;
use ringcast_fuzz::{NOW, headers};

fuzz_target!(|input: (u16, Option<String>)| {
    let (status, retry_after) = input;
    if let Some(value) = retry_after.as_deref()
        && let Some(wait) = parse(value, NOW)
    {
        assert!(wait <= MAX_RETRY_AFTER);
    }
    let pairs: Vec<(String, String)> = retry_after
        .into_iter()
        .map(|value| ("retry-after".to_owned(), value))
        .collect();
    let _ = judge(status, &headers(&pairs), b"", NOW);
});
