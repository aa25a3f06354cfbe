//! How a tenant is configured: its credentials, limits and apps.

use super::secret::SecretSource;
use crate::registry::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The longest registration lifetime docs/architecture.md allows (180 days).
pub const MAX_TTL_SECONDS: u64 = 15_552_000;
/// The shortest registration lifetime (5 minutes): shorter would churn the store for nothing.
pub const MIN_TTL_SECONDS: u64 = 300;
/// The lifetime of a registration that does not ask for one (24 hours).
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;

/// One tenant: a carrier or an app vendor whose users and apps are isolated from every other
/// tenant's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Server keys that may do anything within the tenant. Each is a SHA-256 digest (so the
    /// config file never holds a usable key) or a key read from a file or the environment.
    #[serde(default)]
    pub server_keys: Vec<ServerKeySource>,
    /// How identity tokens (JWTs minted by the tenant's auth service for its users) are
    /// verified. Without it, only server keys are accepted.
    #[serde(default)]
    pub identity_tokens: Option<IdentityTokenConfig>,
    /// The longest TTL a registration of this tenant may have; longer requests are capped
    /// (and the response says so). At most 180 days.
    #[serde(default = "default_max_ttl")]
    pub max_ttl_seconds: u64,
    /// Shorter caps for classes of identities, by prefix (README, "TTL caps by identity
    /// class"): e.g. Teams users' registrations last at most 24 h.
    #[serde(default)]
    pub ttl_caps: Vec<super::ttl_cap::TtlCap>,
    /// How long a phone rings when the call event names no `ring_timeout_seconds`: the
    /// incoming-call push's deadline (docs/architecture.md: 45 s). 1..=300.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_seconds: u64,
    /// The tenant's apps by app id: a registration names one, and it decides the platform
    /// and, later, the push credential.
    #[serde(default)]
    pub apps: BTreeMap<String, AppConfig>,
    /// How many requests a second this tenant may make of each node (src/limits.rs).
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// A tenant's request rates on one node: a token bucket per kind, refilled at `*_per_second`
/// and holding at most `*_burst`. Beyond it a request gets `429` with `Retry-After`, so one
/// tenant cannot use up the node's intake (src/api/intake.rs) that every tenant shares.
///
/// Per node, not per cluster: behind a load balancer over N nodes a tenant gets up to N times
/// these rates. The defaults sit well below what one 2-core node serves (README
/// "Performance": ~5,000-8,000 calls/s), so one tenant cannot fill a small node alone, and
/// well above what an app vendor's normal traffic needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Registry operations (register, refresh, list, unregister, revoke) a second.
    pub registrations_per_second: u32,
    /// Registry operations allowed at once after a quiet spell (app updates re-register
    /// in bursts).
    pub registrations_burst: u32,
    /// Call events (rings and call ends) a second.
    pub calls_per_second: u32,
    /// Call events allowed at once after a quiet spell.
    pub calls_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            registrations_per_second: 500,
            registrations_burst: 2_000,
            calls_per_second: 1_000,
            calls_burst: 2_000,
        }
    }
}

/// The highest rate a limit may be set to: 1 ns between requests is the bucket's resolution.
pub const MAX_RATE_PER_SECOND: u32 = 1_000_000;

fn default_max_ttl() -> u64 {
    MAX_TTL_SECONDS
}

/// The longest ring a call event may ask for, in seconds.
pub const MAX_RING_TIMEOUT_SECONDS: u64 = 300;

fn default_ring_timeout() -> u64 {
    45
}

/// A server key, in one of three forms.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ServerKeySource {
    /// The hex SHA-256 digest of the key (`printf %s KEY | sha256sum`).
    Sha256(String),
    /// The key itself, read from a file.
    File(PathBuf),
    /// The key itself, read from an environment variable.
    Env(String),
}

/// The verifier of a tenant's identity tokens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityTokenConfig {
    /// `HS256` (shared secret) or `ES256` (the auth service's P-256 public key, PEM).
    pub algorithm: TokenAlgorithm,
    /// The HS256 secret or the ES256 public key PEM.
    pub key: SecretSource,
    /// The `iss` claim that marks a token as this tenant's; defaults to the tenant id. It is
    /// how a token names its tenant, so two tenants may not share one.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The `aud` claim required, if any.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds: a token issued further in
    /// the future than this is refused.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The longest lifetime (`exp` − `iat`) a token may have, in seconds. A stolen token is
    /// good until it expires; an auth service that mints long-lived tokens by mistake is
    /// refused rather than trusted. Tokens must carry `iat`.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_seconds: u64,
}

fn default_leeway() -> u64 {
    30
}

fn default_max_lifetime() -> u64 {
    86_400
}

/// The JWT algorithms an identity token may use. Asymmetric ES256 is preferred: ringcast then
/// holds no key that could mint tokens.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum TokenAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    HS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

/// One app of a tenant. The platform decides which fields are required; credentials are
/// optional until the providers use them, but when given they are checked at start-up.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The push service this app's devices use.
    pub platform: Platform,
    /// APNs: the app's bundle id (VoIP pushes go to `<bundle_id>.voip`).
    #[serde(default)]
    pub bundle_id: Option<String>,
    /// APNs: the Apple developer team id (10 characters); the JWT's `iss`.
    #[serde(default)]
    pub team_id: Option<String>,
    /// APNs: the id of the `.p8` signing key (10 characters); the JWT's `kid`.
    #[serde(default)]
    pub key_id: Option<String>,
    /// APNs: the `.p8` signing key (PKCS#8 PEM).
    #[serde(default)]
    pub key: Option<SecretSource>,
    /// APNs: the app's client certificate (PEM chain, leaf first), instead of token auth
    /// (team_id, key_id, key): pushes then carry no JWT (`providers::apns::auth::certificate`).
    #[serde(default)]
    pub certificate: Option<SecretSource>,
    /// APNs: the private key of `certificate` (PEM).
    #[serde(default)]
    pub certificate_key: Option<SecretSource>,
    /// FCM: the Firebase project id.
    #[serde(default)]
    pub project_id: Option<String>,
    /// FCM: the service-account JSON (its `token_uri` is honoured).
    #[serde(default)]
    pub service_account: Option<SecretSource>,
    /// WNS: the package SID (`ms-app://...`).
    #[serde(default)]
    pub package_sid: Option<String>,
    /// WNS: the client secret.
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// WNS: where the app's access token comes from; default `[providers.wns] token_url`
    /// (the legacy `https://login.live.com/accesstoken.srf`). Apps registered in Microsoft
    /// Entra ID use `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`
    /// (`providers::wns::config::check_app_auth`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// WNS: the OAuth scope asked for; default what the endpoint grants
    /// (`notify.windows.com`, or `https://wns.windows.com/.default` at Entra ID).
    #[serde(default)]
    pub scope: Option<String>,
    /// WNS: the OAuth client id; default the package SID. At Entra ID, the app's
    /// application (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Web Push: the VAPID signing key (P-256 PKCS#8 PEM).
    #[serde(default)]
    pub vapid_key: Option<SecretSource>,
    /// Web Push: the VAPID contact (`mailto:` or `https:` URI) push services may write to.
    #[serde(default)]
    pub vapid_subject: Option<String>,
}

impl AppConfig {
    /// An app of `platform` with every optional field empty.
    pub fn new(platform: Platform) -> Self {
        AppConfig {
            platform,
            bundle_id: None,
            team_id: None,
            key_id: None,
            key: None,
            certificate: None,
            certificate_key: None,
            project_id: None,
            service_account: None,
            package_sid: None,
            client_secret: None,
            token_url: None,
            scope: None,
            client_id: None,
            vapid_key: None,
            vapid_subject: None,
        }
    }
}
