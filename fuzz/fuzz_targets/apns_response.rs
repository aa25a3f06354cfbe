//! An APNs answer (status, JSON body, `retry-after`) through the provider's parser: any
//! bytes, never a panic, and a 200 is always a delivery.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::apns::response::parse;
use ringcast_fuzz::NOW;

fuzz_target!(|input: (u16, Option<String>, &[u8])| {
    let (status, retry_after, body) = input;
    let answer = parse(status, body, retry_after.as_deref(), NOW);
    let _ = answer.final_outcome();
});
