//! The RFC 8599 registration form (`pn-provider`, `pn-prid`, `pn-param`), including the APNs
//! two-token form `pn-prid=<voip>:voip&<regular>:remote`: fuzz-chosen strings in each field,
//! so the fuzzer works on the form's own grammar rather than on JSON syntax.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::registry::validate::{RegistrationRequest, validate_registration};
use ringcast_fuzz::DEV;

fuzz_target!(
    |fields: (Option<String>, Option<String>, Option<String>, Option<u64>)| {
        let (provider, prid, param, ttl) = fields;
        let body = serde_json::json!({
            "pn_provider": provider,
            "pn_prid": prid,
            "pn_param": param,
            "ttl_seconds": ttl,
        });
        let request: RegistrationRequest =
            serde_json::from_value(body).expect("the RFC 8599 fields deserialize");
        let dev = &*DEV;
        if let Ok(valid) =
            validate_registration(&request, &dev.tenant, &dev.config.webpush.allowed_hosts)
        {
            assert!(
                dev.tenant.apps.contains_key(&valid.app),
                "unknown app {}",
                valid.app
            );
            assert!(
                valid.ttl_seconds >= 300,
                "accepted ttl {}",
                valid.ttl_seconds
            );
        }
    }
);
