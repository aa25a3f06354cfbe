//! `POST /v1/registrations`: any bytes as the JSON body, through the same deserializer and
//! validator the API runs. An accepted registration must obey the documented limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::registry::validate::{RegistrationRequest, validate_registration};
use ringcast_fuzz::DEV;

fuzz_target!(|body: &[u8]| {
    let Ok(request) = serde_json::from_slice::<RegistrationRequest>(body) else {
        return;
    };
    let dev = &*DEV;
    if let Ok(valid) =
        validate_registration(&request, &dev.tenant, &dev.config.webpush.allowed_hosts)
    {
        let ttl = valid.ttl_seconds;
        assert!(
            (300..=dev.tenant.max_ttl_seconds).contains(&ttl),
            "accepted ttl {ttl}"
        );
    }
});
