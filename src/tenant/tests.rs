//! Credentials: server keys, identity tokens pinned to their configuration, secret files'
//! permissions.

use super::*;
use crate::config::{IdentityTokenConfig, TenantConfig};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;

const SECRET: &str = "identity-token-secret-of-tenant-t-0123456789";
const SERVER_KEY: &str = "server-key-of-tenant-t-0001";

fn now() -> i64 {
    (crate::clock::now_millis() / 1000) as i64
}

fn tenant_config(tokens: IdentityTokenConfig) -> TenantConfig {
    TenantConfig {
        server_keys: vec![ServerKeySource::Sha256(hex::encode(Sha256::digest(
            SERVER_KEY,
        )))],
        identity_tokens: Some(tokens),
        max_ttl_seconds: MAX_TTL_SECONDS,
        ring_timeout_seconds: 45,
        apps: BTreeMap::new(),
        limits: LimitsConfig::default(),
        ttl_caps: Vec::new(),
    }
}

fn tokens(algorithm: TokenAlgorithm, key: &Path) -> IdentityTokenConfig {
    IdentityTokenConfig {
        algorithm,
        key: SecretSource::File(key.to_owned()),
        issuer: None,
        audience: None,
        leeway_seconds: 30,
        max_lifetime_seconds: 3_600,
    }
}

/// Tenant `t` with HS256 tokens, its secret in `dir`.
fn hs256_tenants(dir: &Path) -> Tenants {
    let key = dir.join("hs256.secret");
    std::fs::write(&key, SECRET).unwrap();
    let mut config = Config::default();
    config.tenants.insert(
        "t".into(),
        tenant_config(tokens(TokenAlgorithm::HS256, &key)),
    );
    Tenants::build(&config).unwrap()
}

fn hs256(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims(iat: i64, exp: i64) -> serde_json::Value {
    json!({"iss": "t", "sub": "+15551234567", "iat": iat, "exp": exp})
}

fn refused(tenants: &Tenants, token: &str) -> TokenError {
    match tenants.verify_identity_token(token) {
        Ok((_, identity, _)) => panic!("accepted for {identity}: {token}"),
        Err(error) => error,
    }
}

#[test]
fn a_token_within_every_bound_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    let issued = now() - 10;
    let (tenant, identity, issued_at) = tenants
        .verify_identity_token(&hs256(claims(issued, issued + 600), SECRET))
        .unwrap();
    assert_eq!(
        (tenant.id.as_str(), identity.as_str(), issued_at as i64),
        ("t", "+15551234567", issued)
    );
    // `iat` a little ahead (within the 30 s leeway): clocks disagree by that much.
    let skewed = hs256(claims(now() + 20, now() + 600), SECRET);
    assert!(tenants.verify_identity_token(&skewed).is_ok());
}

#[test]
fn alg_none_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    for header in [json!({"alg": "none", "typ": "JWT"}), json!({"alg": "None"})] {
        let unsigned = format!("{}.{}.", part(header), part(claims(now(), now() + 600)));
        assert!(matches!(
            refused(&tenants, &unsigned),
            TokenError::Invalid(_)
        ));
        // With a signature part that is the real HMAC, still refused: the header decides.
        let signed = hs256(claims(now(), now() + 600), SECRET);
        let signature = signed.rsplit('.').next().unwrap();
        let forged = format!("{unsigned}{signature}");
        assert!(matches!(refused(&tenants, &forged), TokenError::Invalid(_)));
    }
}

#[test]
fn another_algorithm_than_the_configured_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims(now(), now() + 600),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert!(matches!(refused(&tenants, &hs384), TokenError::Invalid(_)));

    // ES256 configured: an HS256 token "signed" with the public key (the classic algorithm
    // confusion) is refused, a real ES256 token accepted.
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = dir.path().join("es256.pub.pem");
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    let mut config = Config::default();
    config.tenants.insert(
        "t".into(),
        tenant_config(tokens(TokenAlgorithm::ES256, &public)),
    );
    let tenants = Tenants::build(&config).unwrap();
    let confused = hs256(claims(now(), now() + 600), &pair.public_key_pem());
    assert!(matches!(
        refused(&tenants, &confused),
        TokenError::Invalid(_)
    ));
    let es256 = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims(now(), now() + 600),
        &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(tenants.verify_identity_token(&es256).is_ok());
}

#[test]
fn a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    let token = hs256(
        claims(now(), now() + 600),
        "another-secret-altogether-0123456789abcdef",
    );
    assert!(matches!(refused(&tenants, &token), TokenError::Invalid(_)));
}

#[test]
fn an_expired_token_is_refused_past_the_leeway() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    let expired = hs256(claims(now() - 600, now() - 31), SECRET);
    assert!(matches!(
        refused(&tenants, &expired),
        TokenError::Invalid(_)
    ));
}

#[test]
fn iat_in_the_future_beyond_the_skew_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    let token = hs256(claims(now() + 120, now() + 600), SECRET);
    match refused(&tenants, &token) {
        TokenError::Invalid(reason) => assert!(reason.contains("future"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lifetime_above_the_maximum_is_refused_and_iat_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    // Configured maximum: 3,600 s.
    let long = hs256(claims(now(), now() + 3_601), SECRET);
    match refused(&tenants, &long) {
        TokenError::Invalid(reason) => assert!(reason.contains("lifetime"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        tenants
            .verify_identity_token(&hs256(claims(now(), now() + 3_600), SECRET))
            .is_ok()
    );
    let no_iat = hs256(
        json!({"iss": "t", "sub": "alice", "exp": now() + 60}),
        SECRET,
    );
    assert!(matches!(refused(&tenants, &no_iat), TokenError::Invalid(_)));
}

#[test]
fn server_keys_find_their_tenant_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    assert_eq!(tenants.by_server_key(SERVER_KEY).unwrap().id, "t");
    for wrong in [
        "",
        "server-key-of-tenant-t-000",
        "server-key-of-tenant-t-00012",
    ] {
        assert!(tenants.by_server_key(wrong).is_none(), "{wrong:?}");
    }
    let a = [7u8; 32];
    let mut b = a;
    assert!(constant_time_eq(&a, &b));
    b[31] ^= 1;
    assert!(!constant_time_eq(&a, &b));
}

#[test]
fn secret_files_readable_by_everyone_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hs256.secret");
    std::fs::write(&key, SECRET).unwrap();
    let mut config = Config::default();
    config.tenants.insert(
        "t".into(),
        tenant_config(tokens(TokenAlgorithm::HS256, &key)),
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(world_readable_secrets(&config), vec![key.clone()]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(world_readable_secrets(&config).is_empty());
}

#[test]
fn limits_outside_their_range_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hs256.secret");
    std::fs::write(&key, SECRET).unwrap();
    let mut tenant = tenant_config(tokens(TokenAlgorithm::HS256, &key));
    tenant.limits.calls_per_second = 0;
    tenant.limits.registrations_burst = MAX_RATE_PER_SECOND + 1;
    let mut config = Config::default();
    config.tenants.insert("t".into(), tenant);
    let problems = Tenants::build(&config).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("limits.calls_per_second"))
            && problems
                .iter()
                .any(|p| p.contains("limits.registrations_burst")),
        "{problems:?}"
    );
}

#[test]
fn a_subject_that_is_no_valid_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = hs256_tenants(dir.path());
    for sub in ["", "alice bob", "a\nb", &"x".repeat(129)] {
        let token = hs256(
            json!({"iss": "t", "sub": sub, "iat": now(), "exp": now() + 60}),
            SECRET,
        );
        match refused(&tenants, &token) {
            TokenError::Invalid(reason) => assert!(reason.starts_with("sub:"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
