//! WNS answers through the provider's parsers: a notification's status and `X-WNS-*`
//! headers, and the OAuth token endpoint's answer. Any input, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::wns::auth::parse_token_response;
use ringcast::providers::wns::response::judge;
use ringcast_fuzz::{NOW, headers};

fuzz_target!(|input: (bool, u16, Vec<(String, String)>, &[u8])| {
    let (token_endpoint, status, pairs, body) = input;
    if token_endpoint {
        let _ = parse_token_response(status, body, NOW);
    } else {
        let _ = judge(status, &headers(&pairs), body, NOW);
    }
});
