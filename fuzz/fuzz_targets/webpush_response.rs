//! A Web Push service's answer (status and `Retry-After`)
//! through the provider's judge. Any input, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::webpush::response::{judge, parse_retry_after};
use ringcast_fuzz::NOW;

fuzz_target!(|input: (u16, Option<String>)| {
    let (status, retry_after) = input;
    if let Some(value) = retry_after.as_deref() {
        let _ = parse_retry_after(value);
    }
    let _ = judge(status, retry_after.as_deref(), NOW);
});
