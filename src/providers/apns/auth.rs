//! The APNs provider token: an ES256 JWT signed with the team's `.p8` key, one per
//! (team, key), minted rarely and shared by the connections.
//!
//! Apple punishes both extremes (docs/protocols.md): a token older than an hour is refused
//! (`ExpiredProviderToken`), and a connection that changes its token within 20 minutes of
//! the last change is refused with `TooManyProviderTokenUpdates`. Apple judges the second per
//! connection, so the cache does not decide alone which token a push carries:
//!
//! - the cache keeps the newest token, and mints one only when the newest is too old for a
//!   connection to *start* carrying it ([`ProviderTokenCache::token`]: it must last the 20
//!   minutes the connection then has to keep it, so at most 35 minutes old);
//! - each connection keeps the token it carries until that is `jwt_refresh_seconds` old and
//!   it has carried it 20 minutes, then takes the newest ([`connection`]);
//! - after an `ExpiredProviderToken` the cache re-mints once, and never within 20 minutes of
//!   the last mint ([`ProviderTokenCache::refresh_expired`]).
//!
//! The clock is passed in, so the tests travel through hours without sleeping.
//!
//! An app may use a client certificate instead ([`certificate`]): the TLS connection then
//! authenticates every push, and the cache made by [`ProviderTokenCache::certificate`] hands
//! out tokens without an `authorization` header (docs/protocols.md, APNs: "Certificate (mTLS) auth
//! also exists").

pub mod certificate;
pub mod connection;
pub mod topics;

use super::config::{MAX_JWT_REFRESH, MIN_JWT_REFRESH};
use crate::vocab::UnixMillis;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Why a provider token cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The `.p8` key is not a PKCS#8 PEM P-256 key. The error never includes the key.
    #[error("the APNs signing key (.p8) is not a valid P-256 PKCS#8 PEM key: {0}")]
    BadKey(jsonwebtoken::errors::Error),
    /// Signing failed.
    #[error("cannot sign the APNs provider token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    /// The refresh age is outside the window Apple allows, less the margin for clock skew (20..=55 minutes).
    #[error("the APNs token refresh age must be 20..=55 minutes, got {0:?}")]
    RefreshAge(Duration),
}

/// A minted provider token, ready to be sent.
#[derive(Clone)]
pub struct ProviderToken {
    /// `authorization: bearer <jwt>`. Cloning it is a reference-count bump.
    ///
    /// Sent on every push as a literal *without indexing*: `h2` never puts `authorization`
    /// in its HPACK table, and that is what Apple asks (APNs keeps a small table per
    /// connection, and asks senders to keep the token and `:path` out of it). So each push
    /// carries the whole Huffman-coded token; it is kept short ([`Inner::header`]). `Debug`
    /// below never prints it.
    ///
    /// `None` for an app that authenticates with its client certificate: its pushes carry
    /// no JWT at all.
    pub authorization: Option<HeaderValue>,
    /// When it was minted (its `iat`, in milliseconds): a connection that sees
    /// `ExpiredProviderToken` tells the cache which token failed.
    pub minted_at: UnixMillis,
}

impl std::fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderToken")
            .field("authorization", &"[redacted]")
            .field("minted_at", &self.minted_at)
            .finish()
    }
}

/// The claims Apple reads: the team (`iss`) and the issue time (`iat`, seconds).
#[derive(Serialize)]
struct Claims<'a> {
    /// The Apple developer team id.
    iss: &'a str,
    /// Issued at, UNIX seconds.
    iat: u64,
}

/// The provider tokens of a (team, key). Cheap to clone: every clone shares the same tokens,
/// which is what "never mint a JWT per request" asks for.
#[derive(Clone)]
pub struct ProviderTokenCache {
    /// Shared by every connection of the credential, on any thread; `None` for an app that
    /// authenticates with a client certificate (no token at all).
    inner: Option<Arc<Inner>>,
}

/// The signing material and the newest token.
struct Inner {
    /// The `.p8` key, parsed once.
    key: EncodingKey,
    /// `alg: ES256` and `kid` (the key id), without jsonwebtoken's default `typ`.
    header: Header,
    /// The team id (`iss`).
    team_id: String,
    /// How old a connection's token may get before the connection takes a newer one.
    refresh_age_ms: u64,
    /// The oldest token a connection may start carrying ([`new_use_age`]).
    new_use_age_ms: u64,
    /// The newest token. A std `Mutex`: the critical section is a clone, or a mint once per
    /// half hour, never held across an await, and it is shared across arbiter threads.
    newest: Mutex<Option<ProviderToken>>,
    /// Every token minted at or before this was refused as expired by APNs: a connection
    /// carrying one takes the newest at once.
    refused_through: AtomicU64,
}

/// The oldest token a connection may start carrying when connections replace theirs at
/// `refresh_age`: it must stay under [`MAX_JWT_REFRESH`] through the [`MIN_JWT_REFRESH`]
/// the connection then has to keep it.
fn new_use_age(refresh_age: Duration) -> Duration {
    refresh_age.min(MAX_JWT_REFRESH - MIN_JWT_REFRESH)
}

impl std::fmt::Debug for ProviderTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(inner) => f
                .debug_struct("ProviderTokenCache")
                .field("team_id", &inner.team_id)
                .field("key_id", &inner.header.kid)
                .finish_non_exhaustive(),
            None => f.write_str("ProviderTokenCache(client certificate)"),
        }
    }
}

/// Parses a team's `.p8` signing key: the one parser of it, for start-up checks, the
/// provider and reloads alike.
pub fn signing_key(key_pem: &[u8]) -> Result<EncodingKey, AuthError> {
    EncodingKey::from_ec_pem(key_pem).map_err(AuthError::BadKey)
}

impl ProviderTokenCache {
    /// A cache for the team's key `key_id`, signing with `key_pem` (the `.p8` file's
    /// contents), whose connections replace their token at `refresh_age` (20..=55 minutes).
    pub fn new(
        team_id: &str,
        key_id: &str,
        key_pem: &[u8],
        refresh_age: Duration,
    ) -> Result<Self, AuthError> {
        if !(MIN_JWT_REFRESH..=MAX_JWT_REFRESH).contains(&refresh_age) {
            return Err(AuthError::RefreshAge(refresh_age));
        }
        let key = signing_key(key_pem)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key_id.to_owned());
        // Apple's token header is `alg` and `kid`, nothing else. jsonwebtoken adds `typ: JWT`
        // by default: 16 more characters in the `authorization` of every push, which `h2`
        // Huffman-codes anew each time (Apple asks for it unindexed).
        header.typ = None;
        Ok(ProviderTokenCache {
            inner: Some(Arc::new(Inner {
                key,
                header,
                team_id: team_id.to_owned(),
                refresh_age_ms: refresh_age.as_millis() as u64,
                new_use_age_ms: new_use_age(refresh_age).as_millis() as u64,
                newest: Mutex::new(None),
                refused_through: AtomicU64::new(0),
            })),
        })
    }

    /// The "cache" of an app that authenticates with its client certificate: every token it
    /// hands out is empty (no `authorization` header), and there is nothing to refresh.
    pub fn certificate() -> Self {
        ProviderTokenCache { inner: None }
    }

    /// The token a connection starting on one at `now` takes: the newest, minted anew once
    /// it is too old to be carried for the 20 minutes a connection must keep it.
    pub fn token(&self, now: UnixMillis) -> Result<ProviderToken, AuthError> {
        let Some(inner) = &self.inner else {
            return Ok(NO_TOKEN);
        };
        let mut newest = lock(inner);
        if let Some(token) = newest.as_ref()
            && !is_older(token, now, inner.new_use_age_ms)
        {
            return Ok(token.clone());
        }
        mint_into(inner, &mut newest, now)
    }

    /// After APNs answered `ExpiredProviderToken` to the token minted at `failed`: every
    /// connection carrying it (or an older one) takes the newest, which is re-minted unless
    /// it is less than 20 minutes old (another connection already refreshed it, or it was
    /// just minted), so that Apple's 20-minute rule holds.
    pub fn refresh_expired(
        &self,
        failed: UnixMillis,
        now: UnixMillis,
    ) -> Result<ProviderToken, AuthError> {
        let Some(inner) = &self.inner else {
            return Ok(NO_TOKEN);
        };
        inner.refused_through.fetch_max(failed, Ordering::AcqRel);
        let mut newest = lock(inner);
        if let Some(token) = newest.as_ref() {
            let floor = MIN_JWT_REFRESH.as_millis() as u64;
            if token.minted_at != failed || !is_older(token, now, floor) {
                return Ok(token.clone());
            }
        }
        mint_into(inner, &mut newest, now)
    }
}

/// What a certificate-authenticated app sends: no `authorization` header.
const NO_TOKEN: ProviderToken = ProviderToken {
    authorization: None,
    minted_at: 0,
};

/// Whether `token` is at least `age_ms` old at `now` (a clock step back reads as young).
fn is_older(token: &ProviderToken, now: UnixMillis, age_ms: u64) -> bool {
    now.saturating_sub(token.minted_at) >= age_ms
}

/// Locks the newest token. A poisoned lock is taken over: the slot is only ever replaced
/// whole, so a panic elsewhere cannot leave it half-written.
fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, Option<ProviderToken>> {
    inner.newest.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Signs a new token at `now` and makes it the newest.
fn mint_into(
    inner: &Inner,
    newest: &mut Option<ProviderToken>,
    now: UnixMillis,
) -> Result<ProviderToken, AuthError> {
    let claims = Claims {
        iss: &inner.team_id,
        iat: now / 1000,
    };
    let jwt = jsonwebtoken::encode(&inner.header, &claims, &inner.key).map_err(AuthError::Sign)?;
    let authorization = HeaderValue::try_from(format!("bearer {jwt}"))
        // Infallible: a JWT is base64url and dots, all valid header bytes.
        .unwrap_or_else(|_| HeaderValue::from_static("bearer invalid"));
    let token = ProviderToken {
        authorization: Some(authorization),
        minted_at: now,
    };
    *newest = Some(token.clone());
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use std::collections::HashSet;

    const T0: UnixMillis = 1_800_000_000_000;
    const MINUTE: u64 = 60_000;

    fn key() -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    }

    fn cache(key: &rcgen::KeyPair) -> ProviderTokenCache {
        ProviderTokenCache::new(
            "TEAM123456",
            "KEY1234567",
            key.serialize_pem().as_bytes(),
            Duration::from_secs(50 * 60),
        )
        .unwrap()
    }

    fn jwt(token: &ProviderToken) -> String {
        let text = token.authorization.as_ref().unwrap().to_str().unwrap();
        text.strip_prefix("bearer ").unwrap().to_owned()
    }

    #[test]
    fn the_token_verifies_with_the_public_key_and_carries_team_and_key() {
        let key = key();
        let token = cache(&key).token(T0 + 999).unwrap();
        let jwt = jwt(&token);
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        assert_eq!(header.typ, None, "Apple's token header is alg and kid only");
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        let decoding = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(
            claims,
            serde_json::json!({"iss": "TEAM123456", "iat": 1_800_000_000})
        );
        // Never printed.
        let jwt = token
            .authorization
            .as_ref()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("bearer ");
        assert!(!format!("{token:?}").contains(jwt));
    }

    #[test]
    fn one_token_is_shared_until_it_is_too_old_for_a_new_connection() {
        let key = key();
        let cache = cache(&key);
        let other_connection = cache.clone();
        let first = cache.token(T0).unwrap();
        let shared = other_connection.token(T0 + 34 * MINUTE).unwrap();
        assert_eq!(first.authorization, shared.authorization);
        assert_eq!(shared.minted_at, T0);
        // At 35 minutes a connection starting on it could not keep it 20 minutes and stay
        // under 55: a new one.
        let refreshed = other_connection.token(T0 + 35 * MINUTE).unwrap();
        assert_eq!(refreshed.minted_at, T0 + 35 * MINUTE);
        assert_ne!(refreshed.authorization, first.authorization);
        assert_eq!(
            cache.token(T0 + 36 * MINUTE).unwrap().authorization,
            refreshed.authorization
        );
        // A shorter refresh age shortens it too: 20 minutes at the shortest.
        let quick = ProviderTokenCache::new(
            "TEAM123456",
            "KEY1234567",
            key.serialize_pem().as_bytes(),
            MIN_JWT_REFRESH,
        )
        .unwrap();
        let first = quick.token(T0).unwrap();
        assert_eq!(quick.token(T0 + 19 * MINUTE).unwrap().minted_at, T0);
        assert_ne!(
            quick.token(T0 + 20 * MINUTE).unwrap().authorization,
            first.authorization
        );
    }

    #[test]
    fn an_expired_provider_token_refreshes_once_then_not_within_20_minutes() {
        let key = key();
        let cache = cache(&key);
        let first = cache.token(T0).unwrap();
        // Too young to replace: Apple would answer TooManyProviderTokenUpdates.
        let same = cache
            .refresh_expired(first.minted_at, T0 + 19 * MINUTE)
            .unwrap();
        assert_eq!(same.minted_at, T0);
        // Old enough: one refresh...
        let second = cache
            .refresh_expired(first.minted_at, T0 + 21 * MINUTE)
            .unwrap();
        assert_eq!(second.minted_at, T0 + 21 * MINUTE);
        // ...and every other connection that saw the old token fail gets the new one.
        let again = cache
            .refresh_expired(first.minted_at, T0 + 22 * MINUTE)
            .unwrap();
        assert_eq!(again.authorization, second.authorization);
        // The new one failing too is not refreshed within 20 minutes of its mint.
        let held = cache
            .refresh_expired(second.minted_at, T0 + 40 * MINUTE)
            .unwrap();
        assert_eq!(held.minted_at, second.minted_at);
        let later = cache
            .refresh_expired(second.minted_at, T0 + 41 * MINUTE)
            .unwrap();
        assert_eq!(later.minted_at, T0 + 41 * MINUTE);
    }

    #[test]
    fn a_clock_step_back_keeps_the_token() {
        let key = key();
        let cache = cache(&key);
        let first = cache.token(T0).unwrap();
        assert_eq!(
            cache.token(T0 - 5 * MINUTE).unwrap().minted_at,
            first.minted_at
        );
    }

    #[test]
    fn bad_keys_and_ages_are_refused_without_printing_the_key() {
        let key = key();
        let pem = key.serialize_pem();
        let short = ProviderTokenCache::new("T", "K", pem.as_bytes(), Duration::from_secs(600));
        assert!(matches!(short, Err(AuthError::RefreshAge(_))));
        let long = ProviderTokenCache::new("T", "K", pem.as_bytes(), Duration::from_secs(3601));
        assert!(matches!(long, Err(AuthError::RefreshAge(_))));
        let garbage = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
        let error =
            ProviderTokenCache::new("T", "K", garbage, Duration::from_secs(3000)).unwrap_err();
        assert!(matches!(error, AuthError::BadKey(_)));
        assert!(!error.to_string().contains("c2VjcmV0"));
        let debug = format!("{:?}", cache(&key));
        assert!(debug.contains("TEAM123456") && !debug.contains("PRIVATE"));
    }
}
