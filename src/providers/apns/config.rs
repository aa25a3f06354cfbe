//! Typed APNs provider settings, with defaults that talk to Apple and validation that reports
//! every problem at once.

mod app;

pub use app::ApnsAppConfig;

use super::auth::certificate::ApnsCertificate;
use crate::config::SecretSource;
use crate::providers::config_keys::deprecated;
use crate::providers::pool::Http2Client;
use crate::providers::queue::QueueLimits;
use crate::providers::retry::RetrySettings;
use crate::vocab::Environment;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Apple's production host (store and TestFlight builds).
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's sandbox host (development builds; their tokens are refused by production).
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// The youngest a provider token may be replaced: Apple answers 429
/// `TooManyProviderTokenUpdates` to senders that refresh more often than every 20 minutes.
pub const MIN_JWT_REFRESH: Duration = Duration::from_secs(20 * 60);
/// The oldest a provider token may get before it is replaced. Apple answers 403
/// `ExpiredProviderToken` to a token whose `iat` (whole seconds, rounded down) is an hour old
/// by *Apple's* clock; an hour here would lose that race on every connection once an hour, so
/// five minutes are kept for the clocks' skew and the time between minting and use.
pub const MAX_JWT_REFRESH: Duration = Duration::from_secs(55 * 60);

/// How ringcast talks to APNs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApnsConfig {
    /// The production base URL. Overridable so tests and load tests point at the simulator
    /// (the reason ringcast has its own client rather than the a2 crate).
    pub production_url: String,
    /// The sandbox base URL, overridable for the same reason.
    pub sandbox_url: String,
    /// HTTP/2 connections kept per credential (K). Apple allows several, and more
    /// connections raise throughput beyond one connection's stream limit; 2 keeps a spare
    /// ready while one drains after a `GOAWAY`. Read it with
    /// [`connections()`](Self::connections).
    pub connections: usize,
    /// The deprecated name of `connections`, still read (with a start-up warning); when a
    /// file gives it, it wins, since the defaults always fill `connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_credential: Option<usize>,
    /// How old a connection's provider JWT may get before the connection takes a newer one,
    /// in seconds (1200..=3300); it also keeps each token at least 20 minutes, as Apple asks
    /// (`auth::connection`). 50 minutes leaves 10 minutes of margin before Apple's one-hour
    /// expiry while staying far above the 20-minute minimum.
    pub jwt_refresh_seconds: u64,
    /// How long one request may take before it is abandoned (and retried if the deadline
    /// allows), in milliseconds. Short, because a ring that arrives late is worthless.
    pub request_timeout_ms: u64,
    /// How failed pushes are retried (backoff, deadline, budget).
    pub retry: RetrySettings,
    /// A PEM file of the only certificates to trust for the APNs hosts; unset = the public
    /// web PKI. Set it to the simulator's certificate (or a carrier's egress proxy).
    pub trusted_roots: Option<PathBuf>,
    /// Send an HTTP/2 PING after this many idle seconds: APNs drops idle connections
    /// silently, and a PING finds a dead one before a ring needs it.
    pub ping_interval_seconds: u64,
    /// The provider's queue bounds (per priority, and in total).
    pub queues: QueueLimits,
    /// Deliveries running at once per provider and router (sending, awaiting an answer, or
    /// backing off).
    pub max_in_flight: usize,
    /// Which HTTP/2 client speaks to APNs: `ringcast` (its own: a header block copied rather
    /// than compressed per push, and one write for the pushes queued at one moment) or `h2`
    /// (the crate every other provider uses), kept as the fallback should Apple's servers
    /// ever disagree with the own client.
    pub http2_client: Http2Client,
    /// An app's client certificate that expires within this many days is logged at start-up
    /// (an expired one is a configuration error); Apple's push certificates live a year.
    pub certificate_expiry_warning_days: u64,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        ApnsConfig {
            production_url: PRODUCTION_URL.to_owned(),
            sandbox_url: SANDBOX_URL.to_owned(),
            connections: 2,
            connections_per_credential: None,
            jwt_refresh_seconds: 50 * 60,
            request_timeout_ms: 10_000,
            retry: RetrySettings::default(),
            trusted_roots: None,
            ping_interval_seconds: 30,
            queues: QueueLimits::default(),
            max_in_flight: 2048,
            http2_client: Http2Client::Ringcast,
            certificate_expiry_warning_days: 30,
        }
    }
}

/// Loads an app's client certificate (`certificate`, `certificate_key` under `at`) for
/// start-up: parsed, and refused if expired at `now` (UNIX seconds).
pub fn load_certificate(
    certificate: &SecretSource,
    certificate_key: &SecretSource,
    at: &str,
    now: u64,
) -> Result<ApnsCertificate, String> {
    let cert_pem = certificate
        .load()
        .map_err(|error| format!("{at}.certificate: {error}"))?;
    let key_pem = certificate_key
        .load()
        .map_err(|error| format!("{at}.certificate_key: {error}"))?;
    let parsed = ApnsCertificate::from_pem(cert_pem.expose(), key_pem.expose())
        .map_err(|error| format!("{at}.certificate: {error}"))?;
    parsed
        .check_not_expired(i64::try_from(now).unwrap_or(i64::MAX))
        .map_err(|error| format!("{at}.certificate: {error}"))?;
    Ok(parsed)
}

/// Every problem with an app's certificate auth keys, under `at`: both or neither of
/// `certificate` and `certificate_key`, not beside token auth (`has_token_key`), a chain and
/// key that parse, and a certificate not expired at `now` (UNIX seconds).
pub fn check_certificate_auth(
    certificate: Option<&SecretSource>,
    certificate_key: Option<&SecretSource>,
    has_token_key: bool,
    at: &str,
    now: u64,
) -> Vec<String> {
    match (certificate, certificate_key) {
        (None, None) => Vec::new(),
        (Some(_), None) | (None, Some(_)) => vec![format!(
            "{at}: APNs certificate auth needs certificate and certificate_key together"
        )],
        (Some(_), Some(_)) if has_token_key => vec![format!(
            "{at}: an APNs app uses token auth (team_id, key_id, key) or certificate auth \
             (certificate, certificate_key), not both"
        )],
        (Some(cert), Some(key)) => load_certificate(cert, key, at, now)
            .err()
            .into_iter()
            .collect(),
    }
}

impl ApnsConfig {
    /// The base URL for a registration's environment.
    pub fn base_url(&self, environment: Environment) -> &str {
        match environment {
            Environment::Production => &self.production_url,
            Environment::Sandbox => &self.sandbox_url,
        }
    }

    /// The provider JWT's refresh age.
    pub fn jwt_refresh_age(&self) -> Duration {
        Duration::from_secs(self.jwt_refresh_seconds)
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The connections kept per credential (K): the deprecated `connections_per_credential`
    /// when a file still gives it, else `connections`.
    pub fn connections(&self) -> usize {
        self.connections_per_credential.unwrap_or(self.connections)
    }

    /// The deprecated keys these settings still use, each as a warning under `prefix`.
    pub fn deprecations(&self, prefix: &str) -> Vec<String> {
        let old = self.connections_per_credential.is_some();
        deprecated(prefix, "connections_per_credential", "connections", old)
            .into_iter()
            .collect()
    }

    /// Every problem with these settings, each naming its key under `prefix` (e.g.
    /// `providers.apns`), so start-up can report them all at once.
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, url) in [
            ("production_url", &self.production_url),
            ("sandbox_url", &self.sandbox_url),
        ] {
            // HTTP/2 over TLS only: APNs (and the simulator) speak nothing else.
            if !url.starts_with("https://") {
                errors.push(format!(
                    "{prefix}.{key} must be an https:// URL, got {url:?}"
                ));
            }
        }
        if self.connections() == 0 {
            errors.push(format!("{prefix}.connections must be at least 1"));
        }
        let (min, max) = (MIN_JWT_REFRESH.as_secs(), MAX_JWT_REFRESH.as_secs());
        if !(min..=max).contains(&self.jwt_refresh_seconds) {
            errors.push(format!(
                "{prefix}.jwt_refresh_seconds must be {min}..={max} (Apple: refresh no more often \
                 than every 20 minutes, and a token an hour old is refused: 5 minutes are kept \
                 for clock skew), got {}",
                self.jwt_refresh_seconds
            ));
        }
        if self.request_timeout_ms == 0 {
            errors.push(format!("{prefix}.request_timeout_ms must be at least 1"));
        }
        if self.ping_interval_seconds == 0 {
            errors.push(format!("{prefix}.ping_interval_seconds must be at least 1"));
        }
        if self.max_in_flight == 0 {
            errors.push(format!("{prefix}.max_in_flight must be at least 1"));
        }
        if self.certificate_expiry_warning_days > 365 {
            errors.push(format!(
                "{prefix}.certificate_expiry_warning_days must be 0..=365 (Apple's \
                 certificates live a year), got {}",
                self.certificate_expiry_warning_days
            ));
        }
        errors.extend(self.retry.validate(&format!("{prefix}.retry")));
        errors.extend(self.queues.validate(&format!("{prefix}.queues")));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_talk_to_apple_and_are_valid() {
        let config = ApnsConfig::default();
        assert_eq!(
            config.base_url(Environment::Production),
            "https://api.push.apple.com"
        );
        assert_eq!(
            config.base_url(Environment::Sandbox),
            "https://api.sandbox.push.apple.com"
        );
        assert_eq!(config.connections(), 2);
        assert_eq!(config.jwt_refresh_age(), Duration::from_secs(3000));
        assert!(config.validate("providers.apns").is_empty());
    }

    #[test]
    fn the_http2_client_is_ringcasts_own_unless_h2_is_named() {
        assert_eq!(ApnsConfig::default().http2_client, Http2Client::Ringcast);
        assert_eq!(
            ApnsConfig::default().pool_settings().http2_client,
            Http2Client::Ringcast
        );
        let h2: ApnsConfig = serde_json::from_str(r#"{"http2_client": "h2"}"#).unwrap();
        assert_eq!(h2.pool_settings().http2_client, Http2Client::H2);
        let error = serde_json::from_str::<ApnsConfig>(r#"{"http2_client": "hyper"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`h2`") && error.contains("`ringcast`"),
            "{error}"
        );
    }

    #[test]
    fn hosts_are_overridable_and_missing_keys_take_defaults() {
        let config: ApnsConfig =
            serde_json::from_str(r#"{"production_url": "https://127.0.0.1:8443"}"#).unwrap();
        assert_eq!(
            config.base_url(Environment::Production),
            "https://127.0.0.1:8443"
        );
        assert_eq!(config.sandbox_url, SANDBOX_URL);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let config = ApnsConfig {
            production_url: "api.push.apple.com".into(),
            connections: 0,
            jwt_refresh_seconds: 19 * 60,
            request_timeout_ms: 0,
            retry: RetrySettings {
                budget_percent: 200,
                ..RetrySettings::default()
            },
            ..ApnsConfig::default()
        };
        let errors = config.validate("providers.apns");
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("jwt_refresh_seconds")));
        assert!(errors.iter().any(|e| e.contains("retry.budget_percent")));
        let at_bounds = |seconds| ApnsConfig {
            jwt_refresh_seconds: seconds,
            ..ApnsConfig::default()
        };
        assert!(at_bounds(1200).validate("p").is_empty());
        assert!(at_bounds(3300).validate("p").is_empty());
        // An hour is Apple's limit itself: refused, or it expires in flight once an hour.
        assert!(!at_bounds(3301).validate("p").is_empty());
        assert!(!at_bounds(3600).validate("p").is_empty());
    }
}
