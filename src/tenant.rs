//! Tenants at run time: who a credential belongs to, and what that tenant allows.
//!
//! Built from the configuration ([`Tenants::build`], called by the start-up plan,
//! `crate::plan`), which is also where every tenant setting is checked — each app's keys by
//! its platform's own check — so `check-config` and `serve` refuse exactly the same files.

use crate::config::tenant::{
    LimitsConfig, MAX_RATE_PER_SECOND, MAX_RING_TIMEOUT_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS,
};
use crate::config::{
    AppConfig, Config, IdentityTokenConfig, SecretSource, ServerKeySource, TenantConfig,
    TokenAlgorithm,
};
use crate::limits::TenantLimits;
use crate::registry::validate::validate_identity;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One tenant, ready to authorise requests.
#[derive(Debug)]
pub struct Tenant {
    /// The tenant id; it scopes every key in the store.
    pub id: String,
    /// The longest registration TTL this tenant allows, in seconds.
    pub max_ttl_seconds: u64,
    /// How long a phone rings when the call event does not say, in seconds.
    pub ring_timeout_seconds: u64,
    /// Shorter TTL caps for classes of identities (`ttl_caps`).
    pub ttl_caps: Vec<crate::config::ttl_cap::TtlCap>,
    /// The tenant's apps by app id.
    pub apps: BTreeMap<String, AppConfig>,
    /// The tenant's request buckets on this node.
    pub limits: TenantLimits,
    verifier: Option<IdentityVerifier>,
}

impl Tenant {
    /// A tenant that accepts no identity tokens (server keys only): for tests and tools.
    pub fn new(
        id: impl Into<String>,
        max_ttl_seconds: u64,
        apps: BTreeMap<String, AppConfig>,
    ) -> Tenant {
        Tenant {
            id: id.into(),
            max_ttl_seconds,
            ring_timeout_seconds: 45,
            ttl_caps: Vec::new(),
            apps,
            limits: TenantLimits::new(&LimitsConfig::default()),
            verifier: None,
        }
    }
}

impl Tenant {
    /// How long a revocation of one of this tenant's identities must be kept, in ms
    /// ([`crate::registry::revocation::keep_ms`]); `None` when the tenant takes no identity
    /// tokens (server keys are never revoked by it).
    pub fn revocation_keep_ms(&self) -> Option<u64> {
        self.verifier.as_ref().map(|verifier| {
            crate::registry::revocation::keep_ms(verifier.max_lifetime, verifier.leeway)
        })
    }
}

/// Checks a tenant's identity tokens.
struct IdentityVerifier {
    key: DecodingKey,
    /// Pinned to the one configured algorithm: a token naming any other (`none`, HS256 signed
    /// with an ES256 public key, ...) is refused before its signature is looked at.
    validation: Validation,
    /// Skew tolerated on `iat`, in seconds (the same as on `exp` and `nbf`).
    leeway: u64,
    /// The longest `exp` − `iat` accepted, in seconds.
    max_lifetime: u64,
}

impl std::fmt::Debug for IdentityVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityVerifier([redacted])")
    }
}

/// Why an identity token was refused. Deliberately coarse in the API answer (`401`), precise
/// in the server's debug log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts with a JSON payload naming an issuer.
    #[error("malformed token")]
    Malformed,
    /// No tenant accepts tokens from this issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// Signature, algorithm, expiry, audience or subject check failed.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Every tenant, indexed by the credentials that name them.
#[derive(Debug, Default)]
pub struct Tenants {
    /// Every server key's SHA-256 with its tenant, searched in full for every request (see
    /// [`Tenants::by_server_key`]).
    key_digests: Vec<([u8; 32], Arc<Tenant>)>,
    by_issuer: HashMap<String, Arc<Tenant>>,
}

/// The claims ringcast reads from an identity token (`exp`, `iss` and `aud` are checked by
/// the JWT library).
#[derive(Deserialize)]
struct IdentityClaims {
    sub: String,
    exp: u64,
    iat: Option<u64>,
}

/// Only the issuer, read before verification to pick the tenant's key.
#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

impl Tenants {
    /// Builds the tenant table from the configuration, reading every secret, or returns every
    /// problem found.
    pub fn build(config: &Config) -> Result<Tenants, Vec<String>> {
        let mut problems = Vec::new();
        let mut tenants = Tenants::default();
        for (id, tenant_config) in &config.tenants {
            let at = format!("tenants.{id}");
            if !is_tenant_id(id) {
                problems.push(format!("{at}: tenant id must be 1-32 of a-z 0-9 _ -"));
            }
            let (tenant, digests, issuer) = build_tenant(id, tenant_config, &at, &mut problems);
            let tenant = Arc::new(tenant);
            for digest in digests {
                if let Some((_, other)) = tenants.key_digests.iter().find(|(d, _)| *d == digest) {
                    problems.push(format!(
                        "{at}.server_keys: a key is also a key of tenant {}",
                        other.id
                    ));
                } else {
                    tenants.key_digests.push((digest, tenant.clone()));
                }
            }
            if let Some(issuer) = issuer
                && let Some(other) = tenants.by_issuer.insert(issuer.clone(), tenant.clone())
            {
                problems.push(format!(
                    "{at}.identity_tokens: issuer {issuer:?} is also tenant {}'s",
                    other.id
                ));
            }
        }
        for path in world_readable_secrets(config) {
            tracing::warn!(
                file = %path.display(),
                "a secret file is readable by every user of this machine; chmod o-r it"
            );
        }
        if problems.is_empty() {
            Ok(tenants)
        } else {
            Err(problems)
        }
    }

    /// The tenant a server key belongs to. Keys are compared by SHA-256 digest, so the table
    /// never holds a usable key, and in constant time against every digest, so how long the
    /// answer takes says nothing about how close a guess came (nor which tenant it matched).
    pub fn by_server_key(&self, key: &str) -> Option<&Arc<Tenant>> {
        let digest = crate::sha256::of(key.as_bytes());
        let mut found = None;
        for (candidate, tenant) in &self.key_digests {
            // No early exit: every digest is compared whatever matched before.
            if constant_time_eq(candidate, &digest) {
                found = Some(tenant);
            }
        }
        found
    }

    /// Verifies an identity token and returns its tenant, identity (`sub`) and when it was
    /// issued (`iat`, UNIX seconds: the API refuses a token issued before its identity was
    /// revoked, [`crate::registry::revocation`]). The tenant is the one whose issuer the
    /// token names; its key must verify the signature. Pure: the revocation lives in the
    /// store, and the API's auth path checks it.
    pub fn verify_identity_token(
        &self,
        token: &str,
    ) -> Result<(&Arc<Tenant>, String, u64), TokenError> {
        let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let issuer = serde_json::from_slice::<UnverifiedIssuer>(&payload)
            .map_err(|_| TokenError::Malformed)?
            .iss
            .ok_or(TokenError::Malformed)?;
        let tenant = self
            .by_issuer
            .get(&issuer)
            .ok_or(TokenError::UnknownIssuer)?;
        let verifier = tenant.verifier.as_ref().ok_or(TokenError::UnknownIssuer)?;
        let data =
            jsonwebtoken::decode::<IdentityClaims>(token, &verifier.key, &verifier.validation)
                .map_err(|error| TokenError::Invalid(error.to_string()))?;
        let issued_at = verifier.check_times(&data.claims, crate::clock::now_millis() / 1000)?;
        // `sub` names the identity the token may act for: the channel connects it as is, so
        // it obeys the same rules as an identity in a URL.
        validate_identity(&data.claims.sub)
            .map_err(|error| TokenError::Invalid(format!("sub: {}", error.message)))?;
        Ok((tenant, data.claims.sub, issued_at))
    }

    /// Whether any tenant is configured (a node without tenants can serve nobody).
    pub fn is_empty(&self) -> bool {
        self.key_digests.is_empty() && self.by_issuer.is_empty()
    }

    /// Every configured tenant, each once, by id.
    pub fn all(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<Arc<Tenant>> = self
            .key_digests
            .iter()
            .map(|(_, tenant)| tenant)
            .chain(self.by_issuer.values())
            .cloned()
            .collect();
        all.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        all.dedup_by(|a, b| a.id == b.id);
        all
    }

    /// Every configured tenant id: the only values the `tenant` label of a metric takes.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .key_digests
            .iter()
            .map(|(_, tenant)| tenant.id.as_str())
            .chain(self.by_issuer.values().map(|tenant| tenant.id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

impl IdentityVerifier {
    /// What the JWT library does not check: `iat` is present, not in the future beyond the
    /// leeway, and `exp` − `iat` is within the configured maximum. `now` in UNIX seconds.
    /// Returns the `iat`.
    fn check_times(&self, claims: &IdentityClaims, now: u64) -> Result<u64, TokenError> {
        let issued = claims
            .iat
            .ok_or_else(|| TokenError::Invalid("the token has no iat".into()))?;
        if issued > now + self.leeway {
            return Err(TokenError::Invalid(format!(
                "iat is {} s in the future",
                issued - now
            )));
        }
        let lifetime = claims.exp.saturating_sub(issued);
        if lifetime > self.max_lifetime {
            return Err(TokenError::Invalid(format!(
                "lifetime {lifetime} s is above the allowed {} s",
                self.max_lifetime
            )));
        }
        Ok(issued)
    }
}

/// Whether two digests are equal, in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold back into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

/// The secret files of `config` that every user of the machine may read (mode `o+r`): a
/// key anyone can copy. `serve` and `check-config` warn about each.
pub fn world_readable_secrets(config: &Config) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for tenant in config.tenants.values() {
        for source in &tenant.server_keys {
            if let ServerKeySource::File(path) = source {
                files.push(path.clone());
            }
        }
        if let Some(tokens) = &tenant.identity_tokens
            && let SecretSource::File(path) = &tokens.key
        {
            files.push(path.clone());
        }
        for app in tenant.apps.values() {
            for (_, source) in app.secrets() {
                if let Some(SecretSource::File(path)) = source {
                    files.push(path.clone());
                }
            }
        }
    }
    files.sort();
    files.dedup();
    files.retain(|path| is_world_readable(path));
    files
}

/// Whether others (not the owner, not the group) may read `path`.
fn is_world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o004 != 0)
}

/// Builds one tenant; returns it with its server-key digests and token issuer.
fn build_tenant(
    id: &str,
    config: &TenantConfig,
    at: &str,
    problems: &mut Vec<String>,
) -> (Tenant, Vec<[u8; 32]>, Option<String>) {
    if !(1..=MAX_RING_TIMEOUT_SECONDS).contains(&config.ring_timeout_seconds) {
        problems.push(format!(
            "{at}.ring_timeout_seconds: {} is outside 1..={MAX_RING_TIMEOUT_SECONDS}",
            config.ring_timeout_seconds
        ));
    }
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&config.max_ttl_seconds) {
        problems.push(format!(
            "{at}.max_ttl_seconds: {} is outside {MIN_TTL_SECONDS}..={MAX_TTL_SECONDS}",
            config.max_ttl_seconds
        ));
    }
    problems.extend(crate::config::ttl_cap::problems(&config.ttl_caps, at));
    check_limits(&config.limits, at, problems);
    if config.server_keys.is_empty() && config.identity_tokens.is_none() {
        problems.push(format!(
            "{at}: no server_keys and no identity_tokens: nobody could use this tenant"
        ));
    }
    let mut digests = Vec::new();
    for (n, source) in config.server_keys.iter().enumerate() {
        match server_key_digest(source) {
            Ok(digest) => digests.push(digest),
            Err(problem) => problems.push(format!("{at}.server_keys[{n}]: {problem}")),
        }
    }
    let mut verifier = None;
    let mut issuer = None;
    if let Some(tokens) = &config.identity_tokens {
        let iss = tokens.issuer.clone().unwrap_or_else(|| id.to_owned());
        match identity_verifier(tokens, &iss) {
            Ok(built) => verifier = Some(built),
            Err(problem) => problems.push(format!("{at}.identity_tokens: {problem}")),
        }
        issuer = Some(iss);
    }
    for (app_id, app) in &config.apps {
        check_app(app_id, app, &format!("{at}.apps.{app_id}"), problems);
    }
    let tenant = Tenant {
        id: id.to_owned(),
        max_ttl_seconds: config.max_ttl_seconds,
        ring_timeout_seconds: config.ring_timeout_seconds,
        ttl_caps: config.ttl_caps.clone(),
        apps: config.apps.clone(),
        limits: TenantLimits::new(&config.limits),
        verifier,
    };
    (tenant, digests, issuer)
}

fn is_tenant_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn server_key_digest(source: &ServerKeySource) -> Result<[u8; 32], String> {
    let key = match source {
        ServerKeySource::Sha256(hex_digest) => {
            let mut digest = [0; 32];
            return hex::decode_to_slice(hex_digest, &mut digest)
                .map(|()| digest)
                .map_err(|_| "sha256 must be 64 hex characters".to_owned());
        }
        ServerKeySource::File(path) => SecretSource::File(path.clone()).load()?,
        ServerKeySource::Env(name) => SecretSource::Env(name.clone()).load()?,
    };
    if key.expose().len() < 16 {
        return Err("a server key must be at least 16 characters".into());
    }
    Ok(crate::sha256::of(key.expose()))
}

/// Checks that every rate and burst is usable by a bucket.
fn check_limits(limits: &LimitsConfig, at: &str, problems: &mut Vec<String>) {
    for (field, value) in [
        ("registrations_per_second", limits.registrations_per_second),
        ("registrations_burst", limits.registrations_burst),
        ("calls_per_second", limits.calls_per_second),
        ("calls_burst", limits.calls_burst),
    ] {
        if !(1..=MAX_RATE_PER_SECOND).contains(&value) {
            problems.push(format!(
                "{at}.limits.{field}: {value} is outside 1..={MAX_RATE_PER_SECOND}"
            ));
        }
    }
}

fn identity_verifier(
    tokens: &IdentityTokenConfig,
    issuer: &str,
) -> Result<IdentityVerifier, String> {
    if tokens.max_lifetime_seconds == 0 {
        return Err("max_lifetime_seconds must be at least 1".into());
    }
    let secret = tokens.key.load()?;
    let (key, algorithm) = match tokens.algorithm {
        TokenAlgorithm::HS256 if secret.expose().len() < 32 => {
            return Err("an HS256 secret must be at least 32 bytes".into());
        }
        TokenAlgorithm::HS256 => (DecodingKey::from_secret(secret.expose()), Algorithm::HS256),
        TokenAlgorithm::ES256 => (
            DecodingKey::from_ec_pem(secret.expose())
                .map_err(|e| format!("ES256 public key is not a P-256 PEM: {e}"))?,
            Algorithm::ES256,
        ),
    };
    // `Validation::new` accepts exactly this one algorithm.
    let mut validation = Validation::new(algorithm);
    validation.leeway = tokens.leeway_seconds;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    match tokens.audience.as_deref() {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    Ok(IdentityVerifier {
        key,
        validation,
        leeway: tokens.leeway_seconds,
        max_lifetime: tokens.max_lifetime_seconds,
    })
}

/// Checks an app's id, then its keys (each platform checks its own).
fn check_app(app_id: &str, app: &AppConfig, at: &str, problems: &mut Vec<String>) {
    if !(1..=64).contains(&app_id.len())
        || !app_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        problems.push(format!("{at}: app id must be 1-64 of A-Z a-z 0-9 . _ -"));
    }
    problems.extend(app.problems(at));
}

#[cfg(test)]
mod tests;
