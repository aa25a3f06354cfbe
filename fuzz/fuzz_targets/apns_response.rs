//! An APNs answer (status, JSON body, `retry-after`) through the provider's judge: any
//! bytes, never a panic, and a 200 is always a delivery.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::apns::response::judge;
use ringcast::providers::service::Verdict;
use ringcast::push::Outcome;
use ringcast_fuzz::{NOW, headers};

fuzz_target!(|input: (u16, Option<String>, &[u8])| {
    let (status, retry_after, body) = input;
    let pairs: Vec<(String, String)> = retry_after
        .into_iter()
        .map(|value| ("retry-after".to_owned(), value))
        .collect();
    let verdict = judge(status, &headers(&pairs), body, NOW);
    if status == 200 {
        assert_eq!(verdict, Verdict::Final(Outcome::Delivered));
    }
});
