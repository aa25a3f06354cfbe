//! `POST /v1/calls` and `POST /v1/calls/{call_id}/end`: the input's first byte picks the
//! endpoint (even: ring, odd: end), the rest is the JSON body, through the API's
//! deserializer and validator. An accepted event must obey the documented limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::api::calls::{CallRequest, EndRequest, MAX_CALL_ID_LEN};
use ringcast::config::tenant::MAX_RING_TIMEOUT_SECONDS;

fuzz_target!(|data: &[u8]| {
    let Some((&endpoint, body)) = data.split_first() else {
        return;
    };
    if endpoint % 2 == 1 {
        let Ok(request) = serde_json::from_slice::<EndRequest>(body) else {
            return;
        };
        if let Ok(event) = request.into_event("call-1".into(), "t") {
            assert!(event.event_id.len() <= MAX_CALL_ID_LEN + ":declined_elsewhere".len());
        }
    } else {
        let Ok(request) = serde_json::from_slice::<CallRequest>(body) else {
            return;
        };
        if let Ok(event) = request.into_event("t", 45) {
            let timeout = event.ring_timeout.as_secs();
            assert!(
                (1..=MAX_RING_TIMEOUT_SECONDS).contains(&timeout),
                "timeout {timeout}"
            );
            assert!(!event.call_id.is_empty() && event.call_id.len() <= MAX_CALL_ID_LEN);
            assert!(event.event_id.len() <= MAX_CALL_ID_LEN);
        }
    }
});
