//! RFC 8292 as the simulated push service checks it: `Authorization: vapid t=<JWT>, k=<key>`,
//! ES256 by `k`, `aud` = the origin reached, `exp` in the future and at most 24 h ahead, `sub`
//! a `mailto:` or `https:` contact, and `k` the key a bound subscription was made for.
//!
//! A sender reuses one token per origin for hours (ringcast mints one per origin and keeps it
//! until five minutes before it expires), so [`VerifiedTokens`] remembers the tokens whose
//! signature checked out: the signature was two thirds of the simulator's CPU per Web Push
//! request, which made the simulator rather than the node the end-to-end benchmark's limit.
//! Only the signature is remembered; every claim is checked on every request, so each
//! request gets the verdict it would get without the cache.

use super::{Verdict, reject};
// The list of names that never resolve is a fact, shared; the rule that reads it is the
// simulator's own.
use crate::providers::webpush::auth::SPECIAL_USE;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// RFC 8292 §2: `exp` at most 24 hours ahead.
const MAX_EXP_AHEAD_SECS: u64 = 24 * 60 * 60;
/// Verified tokens kept at most; past it the memory starts over (a sender needs one per
/// origin and key, so only a flood of distinct tokens gets there).
const MAX_VERIFIED: usize = 4096;

/// The claims of tokens whose ES256 signature was verified, by `(t, k)`.
#[derive(Default)]
pub struct VerifiedTokens {
    claims: Mutex<HashMap<(String, String), serde_json::Value>>,
}

impl VerifiedTokens {
    /// The claims of token `t` signed by `k`: remembered, or verified now (and remembered
    /// if the signature holds). `None` for a bad signature or a malformed token.
    fn claims(&self, token: &str, key: &str, raw_key: &[u8]) -> Option<serde_json::Value> {
        let id = (token.to_owned(), key.to_owned());
        if let Some(claims) = self.lock().get(&id) {
            return Some(claims.clone());
        }
        let decoding = DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&raw_key[1..33]),
            &URL_SAFE_NO_PAD.encode(&raw_key[33..65]),
        )
        .ok()?;
        let mut validation = Validation::new(Algorithm::ES256);
        // The claims are checked by `check` on every request, against our own clock and the
        // origin each request reached, so the rules are exact and testable.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
            .ok()?
            .claims;
        let mut verified = self.lock();
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(id, claims.clone());
        Some(claims)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), serde_json::Value>> {
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Checks a request's `Authorization` (see the module doc) at `now_secs`, for a request that
/// reached `origin`, to a subscription bound to `bound_key` if any.
pub fn check(
    authorization: Option<&str>,
    origin: &str,
    bound_key: Option<&[u8]>,
    verified: &VerifiedTokens,
    now_secs: u64,
) -> Result<(), Verdict> {
    let unauthorized = |reason| Err(reject(401, reason));
    let Some(params) = authorization.and_then(|value| value.strip_prefix("vapid ")) else {
        return unauthorized("MissingVapid");
    };
    let (mut token, mut key) = (None, None);
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", value)) => token = Some(value.trim()),
            Some(("k", value)) => key = Some(value.trim()),
            _ => {}
        }
    }
    let (Some(token), Some(key)) = (token, key) else {
        return unauthorized("MalformedVapid");
    };
    let Ok(raw) = URL_SAFE_NO_PAD.decode(key) else {
        return unauthorized("MalformedVapidKey");
    };
    if raw.len() != 65 || raw[0] != 4 {
        return unauthorized("MalformedVapidKey");
    }
    if bound_key.is_some_and(|bound| bound != raw.as_slice()) {
        return Err(reject(403, "VapidKeyMismatch"));
    }
    let Some(claims) = verified.claims(token, key, &raw) else {
        return unauthorized("BadVapidSignatureOrAudience");
    };
    let audience_ok = match &claims["aud"] {
        serde_json::Value::String(aud) => aud == origin,
        serde_json::Value::Array(auds) => auds.iter().any(|aud| aud == origin),
        _ => false,
    };
    if !audience_ok {
        return unauthorized("BadVapidSignatureOrAudience");
    }
    let Some(exp) = claims["exp"].as_u64() else {
        return unauthorized("VapidNoExp");
    };
    if exp <= now_secs {
        return unauthorized("VapidExpired");
    }
    if exp > now_secs + MAX_EXP_AHEAD_SECS {
        return unauthorized("VapidExpTooFar");
    }
    let sub = claims["sub"].as_str().unwrap_or("");
    if !sub.starts_with("mailto:") && !sub.starts_with("https:") {
        return unauthorized("VapidBadSubject");
    }
    if !reachable_contact(sub) {
        // As Apple's service answers it; FCM and Mozilla take such a subject, Apple does not,
        // and the simulator is as strict as the strictest.
        return Err(reject(403, "BadJwtToken"));
    }
    Ok(())
}

/// Whether a subject names a contact Apple's service takes: no spaces or angle brackets, and
/// a host (after `@`, or the URL's) with a dot and not under `localhost` or a special-use name.
fn reachable_contact(sub: &str) -> bool {
    if sub.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
        return false;
    }
    let host = match sub.strip_prefix("mailto:") {
        Some(address) => address.rsplit('@').next().unwrap_or_default(),
        None => sub
            .trim_start_matches("https://")
            .split(['/', ':', '?', '#'])
            .next()
            .unwrap_or_default(),
    };
    let top = host
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or_default();
    host.contains('.')
        && top.bytes().any(|b| b.is_ascii_alphabetic())
        && !SPECIAL_USE
            .iter()
            .any(|special| top.eq_ignore_ascii_case(special))
}
