//! Tenants at run time: who a credential belongs to, and what that tenant allows.
//!
//! Built once from the configuration ([`Tenants::build`]), which is also where every tenant
//! setting is checked, so `check-config` and `serve` refuse exactly the same files.

use crate::config::tenant::{MAX_RING_TIMEOUT_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS};
use crate::config::{
    AppConfig, Config, SecretSource, ServerKeySource, TenantConfig, TokenAlgorithm,
};
use crate::registry::Platform;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
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
    /// The tenant's apps by app id.
    pub apps: BTreeMap<String, AppConfig>,
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
            apps,
            verifier: None,
        }
    }
}

/// Checks a tenant's identity tokens.
struct IdentityVerifier {
    key: DecodingKey,
    validation: Validation,
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
    by_key_digest: HashMap<[u8; 32], Arc<Tenant>>,
    by_issuer: HashMap<String, Arc<Tenant>>,
}

/// The claims ringcast reads from an identity token.
#[derive(Deserialize)]
struct IdentityClaims {
    sub: String,
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
                if let Some(other) = tenants.by_key_digest.insert(digest, tenant.clone()) {
                    problems.push(format!(
                        "{at}.server_keys: a key is also a key of tenant {}",
                        other.id
                    ));
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
        if problems.is_empty() {
            Ok(tenants)
        } else {
            Err(problems)
        }
    }

    /// The tenant a server key belongs to. Keys are compared by SHA-256 digest, so the table
    /// never holds a usable key.
    pub fn by_server_key(&self, key: &str) -> Option<&Arc<Tenant>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_key_digest.get(&digest)
    }

    /// Verifies an identity token and returns its tenant and identity (`sub`). The tenant is
    /// the one whose issuer the token names; its key must verify the signature.
    pub fn verify_identity_token(&self, token: &str) -> Result<(&Arc<Tenant>, String), TokenError> {
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
        Ok((tenant, data.claims.sub))
    }

    /// Whether any tenant is configured (a node without tenants can serve nobody).
    pub fn is_empty(&self) -> bool {
        self.by_key_digest.is_empty() && self.by_issuer.is_empty()
    }
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
        match identity_verifier(
            tokens.algorithm,
            &tokens.key,
            &iss,
            tokens.audience.as_deref(),
            tokens.leeway_seconds,
        ) {
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
        apps: config.apps.clone(),
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
    Ok(Sha256::digest(key.expose()).into())
}

fn identity_verifier(
    algorithm: TokenAlgorithm,
    source: &SecretSource,
    issuer: &str,
    audience: Option<&str>,
    leeway: u64,
) -> Result<IdentityVerifier, String> {
    let secret = source.load()?;
    let (key, algorithm) = match algorithm {
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
    let mut validation = Validation::new(algorithm);
    validation.leeway = leeway;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    match audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    Ok(IdentityVerifier { key, validation })
}

/// Checks an app's fields for its platform, and that its credentials (when given) load.
fn check_app(app_id: &str, app: &AppConfig, at: &str, problems: &mut Vec<String>) {
    if !(1..=64).contains(&app_id.len())
        || !app_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        problems.push(format!("{at}: app id must be 1-64 of A-Z a-z 0-9 . _ -"));
    }
    let fields: [(&str, bool, Platform); 15] = [
        ("bundle_id", app.bundle_id.is_some(), Platform::Apns),
        ("team_id", app.team_id.is_some(), Platform::Apns),
        ("key_id", app.key_id.is_some(), Platform::Apns),
        ("key", app.key.is_some(), Platform::Apns),
        ("certificate", app.certificate.is_some(), Platform::Apns),
        (
            "certificate_key",
            app.certificate_key.is_some(),
            Platform::Apns,
        ),
        ("project_id", app.project_id.is_some(), Platform::Fcm),
        (
            "service_account",
            app.service_account.is_some(),
            Platform::Fcm,
        ),
        ("package_sid", app.package_sid.is_some(), Platform::Wns),
        ("client_secret", app.client_secret.is_some(), Platform::Wns),
        ("token_url", app.token_url.is_some(), Platform::Wns),
        ("scope", app.scope.is_some(), Platform::Wns),
        ("client_id", app.client_id.is_some(), Platform::Wns),
        ("vapid_key", app.vapid_key.is_some(), Platform::Webpush),
        (
            "vapid_subject",
            app.vapid_subject.is_some(),
            Platform::Webpush,
        ),
    ];
    for (field, present, platform) in fields {
        if present && platform != app.platform {
            problems.push(format!(
                "{at}.{field}: only {platform} apps take it; this app is {}",
                app.platform
            ));
        }
    }
    let mut require = |field: &str, present: bool| {
        if !present {
            problems.push(format!(
                "{at}.{field} is required for a {} app",
                app.platform
            ));
        }
    };
    match app.platform {
        Platform::Apns => {
            require("bundle_id", app.bundle_id.is_some());
            // Token auth needs all three; team_id alone is fine (RFC 8599 pn_param names it).
            let half_key = app.key_id.is_some() != app.key.is_some();
            if half_key || (app.key.is_some() && app.team_id.is_none()) {
                problems.push(format!(
                    "{at}: APNs token auth needs team_id, key_id and key together"
                ));
            }
            for (field, value) in [("team_id", &app.team_id), ("key_id", &app.key_id)] {
                if value
                    .as_ref()
                    .is_some_and(|v| v.len() != 10 || !v.bytes().all(|b| b.is_ascii_alphanumeric()))
                {
                    problems.push(format!(
                        "{at}.{field}: must be 10 letters or digits, as Apple issues it"
                    ));
                }
            }
            if let Some(source) = &app.key {
                check_secret(source, &format!("{at}.key"), problems, |pem| {
                    EncodingKey::from_ec_pem(pem)
                        .map(drop)
                        .map_err(|e| format!("not a P-256 .p8 key: {e}"))
                });
            }
            problems.extend(crate::providers::apns::config::check_certificate_auth(
                app.certificate.as_ref(),
                app.certificate_key.as_ref(),
                app.key.is_some(),
                at,
                crate::clock::now_millis() / 1000,
            ));
        }
        Platform::Fcm => {
            require("project_id", app.project_id.is_some());
            // It becomes a path segment of every send: refused here rather than when the
            // shard's providers start.
            if let Some(project) = &app.project_id
                && let Err(error) = crate::providers::fcm::payload::path(project)
            {
                problems.push(format!("{at}.project_id: {error}"));
            }
            if let Some(source) = &app.service_account {
                check_secret(
                    source,
                    &format!("{at}.service_account"),
                    problems,
                    check_service_account,
                );
            }
        }
        Platform::Wns => {
            require("package_sid", app.package_sid.is_some());
            if let Some(source) = &app.client_secret {
                check_secret(source, &format!("{at}.client_secret"), problems, |_| Ok(()));
            }
            problems.extend(crate::providers::wns::config::check_app_auth(
                app.token_url.as_deref(),
                app.scope.as_deref(),
                app.client_id.as_deref(),
                at,
            ));
        }
        Platform::Webpush => {
            if let Some(subject) = &app.vapid_subject
                && !subject.starts_with("mailto:")
                && !subject.starts_with("https://")
            {
                problems.push(format!(
                    "{at}.vapid_subject: must be a mailto: or https: URI (RFC 8292)"
                ));
            }
            if let Some(source) = &app.vapid_key {
                check_secret(source, &format!("{at}.vapid_key"), problems, |pem| {
                    EncodingKey::from_ec_pem(pem)
                        .map(drop)
                        .map_err(|e| format!("not a P-256 PEM key: {e}"))
                });
            }
        }
    }
}

fn check_secret(
    source: &SecretSource,
    at: &str,
    problems: &mut Vec<String>,
    check: impl FnOnce(&[u8]) -> Result<(), String>,
) {
    match source.load() {
        Ok(secret) => {
            if let Err(problem) = check(secret.expose()) {
                problems.push(format!("{at}: {problem}"));
            }
        }
        Err(problem) => problems.push(format!("{at}: {problem}")),
    }
}

/// The service-account fields the FCM provider needs.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
}

fn check_service_account(json: &[u8]) -> Result<(), String> {
    let account: ServiceAccount =
        serde_json::from_slice(json).map_err(|e| format!("not a service-account JSON: {e}"))?;
    if !account.client_email.contains('@') {
        return Err("client_email is not an e-mail address".into());
    }
    if !account.token_uri.starts_with("https://") {
        return Err("token_uri must be an https:// URL".into());
    }
    EncodingKey::from_rsa_pem(account.private_key.as_bytes())
        .map(drop)
        .map_err(|e| format!("private_key is not an RSA PEM key: {e}"))
}
