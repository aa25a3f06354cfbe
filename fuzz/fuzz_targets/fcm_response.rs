//! FCM's answers through the provider's parsers: the send answer (status, error JSON,
//! `Retry-After`) and the OAuth token endpoint's answer. Any bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::fcm::auth::parse_token_response;
use ringcast::providers::fcm::response::judge;
use ringcast_fuzz::{NOW, headers};
use std::time::Duration;

fuzz_target!(|input: (bool, u16, Option<String>, &[u8])| {
    let (token_endpoint, status, retry_after, body) = input;
    if token_endpoint {
        let _ = parse_token_response(status, body, NOW);
    } else {
        let pairs: Vec<(String, String)> = retry_after
            .into_iter()
            .map(|value| ("retry-after".to_owned(), value))
            .collect();
        let _ = judge(status, &headers(&pairs), body, NOW, Duration::from_secs(60));
    }
});
