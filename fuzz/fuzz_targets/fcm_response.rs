//! FCM's answers through the provider's parsers: the send answer (status, error JSON,
//! `Retry-After`) and the OAuth token endpoint's answer. Any bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::fcm::auth::parse_token_response;
use ringcast::providers::fcm::response::parse;
use ringcast_fuzz::NOW;
use std::time::Duration;

fuzz_target!(|input: (bool, u16, Option<String>, &[u8])| {
    let (token_endpoint, status, retry_after, body) = input;
    if token_endpoint {
        let _ = parse_token_response(status, body, NOW);
    } else {
        let answer = parse(
            status,
            body,
            retry_after.as_deref(),
            NOW,
            Duration::from_secs(60),
        );
        let _ = answer.final_outcome();
    }
});
