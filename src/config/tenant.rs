//! How a tenant is configured: its credentials, limits and apps.

use super::secret::SecretSource;
use crate::vocab::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::providers::apns::config::ApnsAppConfig;
pub use crate::providers::fcm::config::FcmAppConfig;
pub use crate::providers::webpush::config::WebPushAppConfig;
pub use crate::providers::wns::config::WnsAppConfig;

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
/// these rates. The defaults sit well below what one 2-core node serves (4,000-9,000 calls/s
/// at the knee, depending on the box: README, "Performance"), so one tenant cannot fill a
/// small node alone, and well above what an app vendor's normal traffic needs.
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

/// One app of a tenant, tagged by the push service its devices use (`platform = "apns"`,
/// `"fcm"`, `"wns"` or `"webpush"`). Each platform's keys, and their checks, live with its
/// provider (`providers::<p>::config`); a key of another platform is refused as unknown.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum AppConfig {
    /// An iOS app (APNs).
    Apns(ApnsAppConfig),
    /// An Android app (FCM).
    Fcm(FcmAppConfig),
    /// A Windows app (WNS).
    Wns(WnsAppConfig),
    /// A web app (Web Push).
    Webpush(WebPushAppConfig),
}

impl AppConfig {
    /// An app of `platform` with every optional key empty.
    pub fn new(platform: Platform) -> Self {
        match platform {
            Platform::Apns => AppConfig::Apns(ApnsAppConfig::default()),
            Platform::Fcm => AppConfig::Fcm(FcmAppConfig::default()),
            Platform::Wns => AppConfig::Wns(WnsAppConfig::default()),
            Platform::Webpush => AppConfig::Webpush(WebPushAppConfig::default()),
        }
    }

    /// The push service this app's devices use.
    pub fn platform(&self) -> Platform {
        match self {
            AppConfig::Apns(_) => Platform::Apns,
            AppConfig::Fcm(_) => Platform::Fcm,
            AppConfig::Wns(_) => Platform::Wns,
            AppConfig::Webpush(_) => Platform::Webpush,
        }
    }

    /// The APNs keys, for an APNs app.
    pub fn as_apns(&self) -> Option<&ApnsAppConfig> {
        match self {
            AppConfig::Apns(app) => Some(app),
            _ => None,
        }
    }

    /// The FCM keys, for an FCM app.
    pub fn as_fcm(&self) -> Option<&FcmAppConfig> {
        match self {
            AppConfig::Fcm(app) => Some(app),
            _ => None,
        }
    }

    /// Every problem with the app's keys under `at` (`tenants.<t>.apps.<app>`), its
    /// credentials read and parsed as its provider will.
    pub fn problems(&self, at: &str) -> Vec<String> {
        match self {
            AppConfig::Apns(app) => app.problems(at),
            AppConfig::Fcm(app) => app.problems(at),
            AppConfig::Wns(app) => app.problems(at),
            AppConfig::Webpush(app) => app.problems(at),
        }
    }

    /// The app's secrets by key name (absent ones too).
    pub fn secrets(&self) -> Vec<(&'static str, Option<&SecretSource>)> {
        match self {
            AppConfig::Apns(app) => app.secrets().to_vec(),
            AppConfig::Fcm(app) => app.secrets().to_vec(),
            AppConfig::Wns(app) => app.secrets().to_vec(),
            AppConfig::Webpush(app) => app.secrets().to_vec(),
        }
    }

    /// The app's secrets by key name, to rewrite (relative paths, the demo's copies).
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Option<SecretSource>)> {
        match self {
            AppConfig::Apns(app) => app.secrets_mut().into_iter().collect(),
            AppConfig::Fcm(app) => app.secrets_mut().into_iter().collect(),
            AppConfig::Wns(app) => app.secrets_mut().into_iter().collect(),
            AppConfig::Webpush(app) => app.secrets_mut().into_iter().collect(),
        }
    }
}
