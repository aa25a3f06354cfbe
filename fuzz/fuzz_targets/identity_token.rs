//! Identity-token verification. Two shapes: any string as the token, and fuzz-chosen header
//! and claims signed with the development tenant's real HS256 secret, so the fuzzer reaches
//! the claim checks (algorithm pinning, `iss`, `sub`, `iat`, `exp`, lifetime) behind the
//! signature.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use ringcast::registry::validate::validate_identity;
use ringcast_fuzz::{DEV, repository};
use std::sync::LazyLock;

static SECRET: LazyLock<ring::hmac::Key> = LazyLock::new(|| {
    let secret = std::fs::read(repository().join("config/dev/identity-token-hs256.secret"))
        .expect("the development identity-token secret");
    let secret = String::from_utf8(secret).expect("utf-8");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.trim().as_bytes())
});

fuzz_target!(|input: (bool, String, String)| {
    let (signed, first, second) = input;
    let token = if signed {
        let head = URL_SAFE_NO_PAD.encode(first.as_bytes());
        let claims = URL_SAFE_NO_PAD.encode(second.as_bytes());
        let signing_input = format!("{head}.{claims}");
        let tag = ring::hmac::sign(&SECRET, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    } else {
        first
    };
    if let Ok((tenant, identity, _issued_at)) = DEV.tenants.verify_identity_token(&token) {
        assert_eq!(tenant.id, "demo");
        assert!(
            validate_identity(&identity).is_ok(),
            "accepted identity {identity:?}"
        );
    }
});
