//! VAPID (RFC 8292): the application server's credential. A push service checks an ES256
//! JWT whose `aud` is its own origin, so one token per origin is minted and cached until
//! five minutes before it expires (`exp` ≤ 24 h ahead), on a passed-in clock.

use crate::vocab::UnixMillis;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::config::MAX_VAPID_VALIDITY;

/// A cached token is re-minted this long before its `exp`, so no request carries a token
/// that expires on its way.
const REMINT_MARGIN_MS: u64 = 5 * 60 * 1000;
/// Origins whose token is cached; past this the expired entries (then all) are dropped.
const MAX_CACHED_ORIGINS: usize = 256;

/// Why a VAPID credential cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    /// The key is not a P-256 PKCS#8 PEM private key.
    #[error("VAPID key is not a P-256 PKCS#8 PEM key: {0}")]
    BadKey(String),
    /// The subject is not a contact every push service takes ([`is_vapid_subject`]).
    #[error("{}", SUBJECT_RULE)]
    BadSubject,
    /// The validity is above RFC 8292's 24 hours, or too short for the re-mint margin.
    #[error("VAPID validity {0:?} must be 10 minutes..=24 hours")]
    Validity(Duration),
    /// Signing failed.
    #[error("signing the VAPID JWT failed: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// What a VAPID subject must be, as an operator is told.
pub const SUBJECT_RULE: &str = "VAPID subject must be a mailto: or https: URI (RFC 8292) on a \
    public DNS name: Apple's push service refuses localhost, special-use names (.local, .invalid, \
    .test, .example, .internal, .arpa), single-label and IP hosts, spaces and <>";

/// The special-use top-level names (RFC 2606, RFC 6761, RFC 6762, ICANN's `.internal`) that
/// never resolve publicly: a VAPID subject under one is refused.
pub const SPECIAL_USE: [&str; 7] = [
    "localhost",
    "local",
    "invalid",
    "test",
    "example",
    "internal",
    "arpa",
];

/// Whether `subject` is a contact every push service takes: a `mailto:` or `https:` URI
/// (RFC 8292) whose host is a public DNS name. FCM and Mozilla check the scheme alone; Apple's
/// service answers `403 BadJwtToken` to every push signed with a subject on `localhost` or
/// a special-use name, or one with spaces or angle brackets (senders' reports: web-push
/// issue 947 and its pull request 988, web-push-php issue 406), so one such setting would
/// silently cost every Safari and iOS web app its rings.
pub fn is_vapid_subject(subject: &str) -> bool {
    if subject
        .chars()
        .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return false;
    }
    let host = if let Some(address) = subject.strip_prefix("mailto:") {
        match address.split_once('@') {
            Some((user, host)) if !user.is_empty() && !host.contains('@') => host,
            _ => return false,
        }
    } else if let Some(rest) = subject.strip_prefix("https://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') || authority.starts_with('[') {
            // A login in the contact, or an IPv6 literal.
            return false;
        }
        authority
            .split_once(':')
            .map_or(authority, |(host, _port)| host)
    } else {
        return false;
    };
    is_public_name(host)
}

/// Whether `host` is a DNS name that can resolve publicly: two labels or more of letters,
/// digits and hyphens, a top-level label with a letter (so not an IPv4 address) that is not a
/// special-use name.
fn is_public_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    let well_formed = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let Some(top) = labels.last().filter(|_| well_formed) else {
        return false;
    };
    top.bytes().any(|b| b.is_ascii_alphabetic())
        && !SPECIAL_USE
            .iter()
            .any(|special| top.eq_ignore_ascii_case(special))
}

/// Parses a VAPID key (P-256 PKCS#8 PEM) the one way start-up checks, the signer and reloads
/// all do: its signing key and its public key as browsers take it (base64url).
pub fn vapid_key(key_pem: &[u8]) -> Result<(EncodingKey, String), VapidError> {
    let pem = std::str::from_utf8(key_pem).map_err(|e| VapidError::BadKey(e.to_string()))?;
    // rcgen (ring) parses the PKCS#8 key and gives the public point; it is in the tree for the
    // simulator's certificates already.
    let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| VapidError::BadKey(e.to_string()))?;
    if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
        return Err(VapidError::BadKey("not a P-256 key".into()));
    }
    let key = EncodingKey::from_ec_pem(key_pem).map_err(|e| VapidError::BadKey(e.to_string()))?;
    Ok((key, URL_SAFE_NO_PAD.encode(pair.public_key_raw())))
}

/// The claims of a VAPID JWT.
#[derive(Serialize)]
struct Claims<'a> {
    /// The push service's origin (`https://host[:port]`).
    aud: &'a str,
    /// Expiry, seconds since the epoch.
    exp: u64,
    /// Our contact.
    sub: &'a str,
}

/// One minted `Authorization` value.
#[derive(Clone)]
pub struct VapidToken {
    /// `vapid t=<jwt>, k=<public key>`.
    pub header: Arc<str>,
    /// When it expires (ms).
    pub expires_at: UnixMillis,
    /// A number that changes with every mint (the `Prepared::credential` stamp).
    pub serial: u64,
}

impl fmt::Debug for VapidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer credential for a day: never printed.
        f.debug_struct("VapidToken")
            .field("header", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

struct Inner {
    key: EncodingKey,
    /// `k=`: the uncompressed public key, base64url.
    public_key: String,
    subject: String,
    validity_ms: u64,
    cache: Mutex<(u64, HashMap<String, VapidToken>)>,
}

/// One app's VAPID key and its per-origin tokens; cheap to clone, shared by every router.
#[derive(Clone)]
pub struct VapidSigner {
    inner: Arc<Inner>,
}

impl fmt::Debug for VapidSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidSigner")
            .field("public_key", &self.inner.public_key)
            .field("subject", &self.inner.subject)
            .finish_non_exhaustive()
    }
}

impl VapidSigner {
    /// A signer for the PKCS#8 PEM P-256 key `key_pem`, naming `subject` as the contact.
    pub fn new(key_pem: &[u8], subject: &str, validity: Duration) -> Result<Self, VapidError> {
        if !is_vapid_subject(subject) {
            return Err(VapidError::BadSubject);
        }
        if validity > MAX_VAPID_VALIDITY || validity < Duration::from_secs(600) {
            return Err(VapidError::Validity(validity));
        }
        let (key, public_key) = vapid_key(key_pem)?;
        Ok(VapidSigner {
            inner: Arc::new(Inner {
                key,
                public_key,
                subject: subject.to_owned(),
                validity_ms: validity.as_millis() as u64,
                cache: Mutex::new((0, HashMap::new())),
            }),
        })
    }

    /// The public key as browsers take it (`applicationServerKey`), base64url.
    pub fn public_key(&self) -> &str {
        &self.inner.public_key
    }

    fn lock(&self) -> MutexGuard<'_, (u64, HashMap<String, VapidToken>)> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The `Authorization` value for `origin` (`https://host[:port]`) at `now`: the cached
    /// one unless it is within five minutes of expiry.
    pub fn token(&self, origin: &str, now: UnixMillis) -> Result<VapidToken, VapidError> {
        let mut cache = self.lock();
        if let Some(token) = cache.1.get(origin)
            && token.expires_at > now + REMINT_MARGIN_MS
        {
            return Ok(token.clone());
        }
        // Whole seconds, rounded down, so `exp` never lands past now + validity.
        let exp = (now + self.inner.validity_ms) / 1000;
        let claims = Claims {
            aud: origin,
            exp,
            sub: &self.inner.subject,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.inner.key)
            .map_err(VapidError::Sign)?;
        cache.0 += 1;
        let token = VapidToken {
            header: format!("vapid t={jwt}, k={}", self.inner.public_key).into(),
            expires_at: exp * 1000,
            serial: cache.0,
        };
        if cache.1.len() >= MAX_CACHED_ORIGINS {
            cache
                .1
                .retain(|_, token| token.expires_at > now + REMINT_MARGIN_MS);
            if cache.1.len() >= MAX_CACHED_ORIGINS {
                cache.1.clear();
            }
        }
        cache.1.insert(origin.to_owned(), token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn signer(validity: Duration) -> (VapidSigner, rcgen::KeyPair) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signer = VapidSigner::new(
            pair.serialize_pem().as_bytes(),
            "mailto:ops@example.com",
            validity,
        )
        .unwrap();
        (signer, pair)
    }

    fn parts(header: &str) -> (&str, &str) {
        let rest = header.strip_prefix("vapid t=").unwrap();
        rest.split_once(", k=").unwrap()
    }

    #[test]
    fn the_token_names_the_origin_and_verifies_with_k() {
        let (signer, pair) = signer(Duration::from_secs(12 * 3600));
        let now = 1_700_000_000_000;
        let token = signer.token("https://fcm.googleapis.com", now).unwrap();
        let (jwt, k) = parts(&token.header);
        assert_eq!(URL_SAFE_NO_PAD.decode(k).unwrap(), pair.public_key_raw());
        let raw = URL_SAFE_NO_PAD.decode(k).unwrap();
        let key = DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&raw[1..33]),
            &URL_SAFE_NO_PAD.encode(&raw[33..65]),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://fcm.googleapis.com"]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        assert_eq!(claims["exp"], (now / 1000) + 12 * 3600);
    }

    #[test]
    fn tokens_are_cached_per_origin_until_near_expiry() {
        let (signer, _) = signer(Duration::from_secs(3600));
        let now = 1_700_000_000_000;
        let a = signer.token("https://a.example", now).unwrap();
        let again = signer
            .token("https://a.example", now + 54 * 60_000)
            .unwrap();
        assert_eq!(
            a.serial, again.serial,
            "cached while more than 5 minutes remain"
        );
        let b = signer.token("https://b.example", now).unwrap();
        assert_ne!(a.serial, b.serial, "one token per origin (aud)");
        let late = signer
            .token("https://a.example", now + 56 * 60_000)
            .unwrap();
        assert_ne!(a.serial, late.serial, "re-minted 5 minutes before exp");
        assert!(!format!("{late:?}").contains("vapid t="), "never printed");
    }

    #[test]
    fn a_subject_is_a_public_contact_as_apple_requires() {
        for good in [
            "mailto:ops@example.com",
            "mailto:push-ops@carrier.co.uk",
            "https://carrier.example.com",
            "https://carrier.com:8443/contact?x=1",
            "mailto:ops@example.com.",
        ] {
            assert!(is_vapid_subject(good), "{good}");
        }
        for bad in [
            "ops@example.com",
            "http://carrier.com",
            "mailto:",
            "mailto:@carrier.com",
            "mailto:ops@localhost",
            "mailto:ops@box.local",
            "mailto:security@gateway.invalid",
            "mailto:ops@ci.test",
            "mailto:ops@corp.internal",
            "mailto:ops@LOCALHOST",
            "mailto:ops@server",
            "mailto:ops@10.0.0.1",
            "mailto: <ops@example.com>",
            "mailto:<ops@example.com>",
            "mailto:ops@example.com ",
            "mailto:a@b@example.com",
            "https://localhost",
            "https://localhost:8443/",
            "https://127.0.0.1",
            "https://[::1]/",
            "https://user@carrier.com",
            "https://",
            "https://carrier..com",
        ] {
            assert!(!is_vapid_subject(bad), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = pair.serialize_pem();
        let day = Duration::from_secs(24 * 3600);
        assert!(matches!(
            VapidSigner::new(pem.as_bytes(), "ops@example.com", day),
            Err(VapidError::BadSubject)
        ));
        assert!(matches!(
            VapidSigner::new(
                pem.as_bytes(),
                "mailto:ops@example.com",
                day + Duration::from_secs(1)
            ),
            Err(VapidError::Validity(_))
        ));
        assert!(matches!(
            VapidSigner::new(b"not a key", "mailto:ops@example.com", day),
            Err(VapidError::BadKey(_))
        ));
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(
            VapidSigner::new(
                p384.serialize_pem().as_bytes(),
                "mailto:ops@example.com",
                day
            )
            .is_err()
        );
    }
}
