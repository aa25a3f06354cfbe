//! Typed FCM provider settings, with defaults that talk to Google and validation that reports
//! every problem at once.

mod app;

pub use app::FcmAppConfig;

use crate::providers::config_keys::deprecated;
use crate::providers::pool::PoolSettings;
use crate::providers::queue::QueueLimits;
use crate::providers::retry::RetrySettings;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Google's FCM host.
pub const FCM_URL: &str = "https://fcm.googleapis.com";
/// The largest refresh-ahead window: half of Google's one-hour access-token lifetime.
pub const MAX_TOKEN_REFRESH_AHEAD_SECONDS: u64 = 1800;
/// The longest project-wide pause without a `Retry-After`.
pub const MAX_QUOTA_BACKOFF_SECONDS: u64 = 3600;

/// How ringcast talks to FCM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FcmConfig {
    /// The base URL of `POST /v1/projects/{project}/messages:send`. Overridable so tests and
    /// load tests point at the simulator (the token endpoint comes from the service account's
    /// `token_uri`, so both can be pointed away from Google).
    pub base_url: String,
    /// HTTP/2 connections kept per credential (K). FCM advertises roughly 100 streams per
    /// connection (docs/protocols.md; read from SETTINGS), so K bounds throughput; 2 keeps a
    /// spare ready while one drains after a `GOAWAY`.
    /// Read it with [`connections()`](Self::connections).
    pub connections: usize,
    /// The deprecated name of `connections`, still read (with a start-up warning); when a
    /// file gives it, it wins, since the defaults always fill `connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_credential: Option<usize>,
    /// How long before the access token expires it is refreshed, in seconds (0..=1800).
    /// Sends keep using the current token while one caller refreshes, so no push ever waits
    /// for a refresh unless the token is missing or expired. 5 minutes absorbs a slow token
    /// endpoint and clock skew.
    pub token_refresh_ahead_seconds: u64,
    /// How long one request may take before it is abandoned (and retried if the deadline
    /// allows), in milliseconds. Short, because a ring that arrives late is worthless.
    pub request_timeout_ms: u64,
    /// How long the whole project pauses after `QUOTA_EXCEEDED`, in seconds, when FCM sends
    /// no longer `Retry-After`. FCM asks for at least a minute: senders that hammer it on
    /// quota errors risk being denylisted.
    pub quota_backoff_default_seconds: u64,
    /// How failed pushes are retried (backoff, deadline, budget): the policy shared with
    /// every provider.
    pub retry: RetrySettings,
    /// A PEM file of the only certificates to trust for FCM and the token endpoint; unset =
    /// the public web PKI. Set it to the simulator's certificate (or a carrier's egress
    /// proxy).
    pub trusted_roots: Option<PathBuf>,
    /// Send an HTTP/2 PING after this many idle seconds, so a connection that died silently
    /// is found before a ring needs it.
    pub ping_interval_seconds: u64,
    /// The provider's queue bounds (per priority, and in total).
    pub queues: QueueLimits,
    /// Deliveries running at once per provider and router (sending, awaiting an answer,
    /// backing off, or waiting out a quota pause).
    pub max_in_flight: usize,
}

impl Default for FcmConfig {
    fn default() -> Self {
        FcmConfig {
            base_url: FCM_URL.to_owned(),
            connections: 2,
            connections_per_credential: None,
            token_refresh_ahead_seconds: 300,
            request_timeout_ms: 10_000,
            quota_backoff_default_seconds: 60,
            retry: RetrySettings::default(),
            trusted_roots: None,
            ping_interval_seconds: 30,
            queues: QueueLimits::default(),
            max_in_flight: 2048,
        }
    }
}

impl FcmConfig {
    /// The refresh-ahead window of the access token.
    pub fn token_refresh_ahead(&self) -> Duration {
        Duration::from_secs(self.token_refresh_ahead_seconds)
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The project-wide pause after `QUOTA_EXCEEDED` when FCM names none longer.
    pub fn quota_backoff_default(&self) -> Duration {
        Duration::from_secs(self.quota_backoff_default_seconds)
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

    /// The settings of the connection pool to FCM: K connections, PINGed when idle.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            connections: self.connections(),
            keep_alive_interval: Duration::from_secs(self.ping_interval_seconds),
            provider: Some(crate::vocab::Platform::Fcm),
            // The token endpoint's answers are read for their status and body alone.
            answer_fields: super::response::ANSWER_FIELDS,
            ..PoolSettings::default()
        }
    }

    /// The settings of the connection to the token endpoint: one connection is plenty for a
    /// request an hour (one refresh runs at a time), and keeping it open saves a TLS
    /// handshake on the refresh a 401 needs at once. Google's `token_uri` may answer
    /// HTTP/1.1 only (docs/protocols.md, "Transport"), so `http/1.1` is offered beside `h2`;
    /// FCM's send endpoint stays `h2` only.
    pub fn token_pool_settings(&self) -> PoolSettings {
        PoolSettings {
            connections: 1,
            protocols: crate::providers::pool::Protocols::Http2OrHttp1,
            http1_connections: 1,
            ..self.pool_settings()
        }
    }

    /// Every problem with these settings, each naming its key under `prefix` (e.g.
    /// `providers.fcm`), so start-up can report them all at once.
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        let url = &self.base_url;
        // HTTP/2 over TLS only: FCM (and the simulator) speak nothing else.
        if !url.starts_with("https://") {
            errors.push(format!(
                "{prefix}.base_url must be an https:// URL, got {url:?}"
            ));
        }
        if url.ends_with('/') {
            errors.push(format!(
                "{prefix}.base_url must not end with '/' (paths start with one), got {url:?}"
            ));
        }
        if self.connections() == 0 {
            errors.push(format!("{prefix}.connections must be at least 1"));
        }
        if self.token_refresh_ahead_seconds > MAX_TOKEN_REFRESH_AHEAD_SECONDS {
            errors.push(format!(
                "{prefix}.token_refresh_ahead_seconds must be 0..={MAX_TOKEN_REFRESH_AHEAD_SECONDS} \
                 (access tokens live an hour), got {}",
                self.token_refresh_ahead_seconds
            ));
        }
        if self.request_timeout_ms == 0 {
            errors.push(format!("{prefix}.request_timeout_ms must be at least 1"));
        }
        if !(1..=MAX_QUOTA_BACKOFF_SECONDS).contains(&self.quota_backoff_default_seconds) {
            errors.push(format!(
                "{prefix}.quota_backoff_default_seconds must be 1..={MAX_QUOTA_BACKOFF_SECONDS} \
                 (FCM asks for at least 60), got {}",
                self.quota_backoff_default_seconds
            ));
        }
        if self.ping_interval_seconds == 0 {
            errors.push(format!("{prefix}.ping_interval_seconds must be at least 1"));
        }
        if self.max_in_flight == 0 {
            errors.push(format!("{prefix}.max_in_flight must be at least 1"));
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
    fn defaults_talk_to_google_and_are_valid() {
        let config = FcmConfig::default();
        assert_eq!(config.base_url, "https://fcm.googleapis.com");
        assert_eq!(config.connections(), 2);
        assert_eq!(config.token_refresh_ahead(), Duration::from_secs(300));
        assert_eq!(config.quota_backoff_default(), Duration::from_secs(60));
        assert_eq!(config.request_timeout(), Duration::from_secs(10));
        assert!(config.validate("providers.fcm").is_empty());
    }

    #[test]
    fn the_base_url_is_overridable_and_missing_keys_take_defaults() {
        let config: FcmConfig =
            serde_json::from_str(r#"{"base_url": "https://127.0.0.1:8443"}"#).unwrap();
        assert_eq!(config.base_url, "https://127.0.0.1:8443");
        assert_eq!(config.token_refresh_ahead_seconds, 300);
        assert!(serde_json::from_str::<FcmConfig>(r#"{"server_key": "x"}"#).is_err());
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let config = FcmConfig {
            base_url: "fcm.googleapis.com/".into(),
            connections: 0,
            token_refresh_ahead_seconds: 1801,
            request_timeout_ms: 0,
            quota_backoff_default_seconds: 0,
            retry: RetrySettings {
                budget_percent: 200,
                ..RetrySettings::default()
            },
            ping_interval_seconds: 0,
            max_in_flight: 0,
            ..FcmConfig::default()
        };
        let errors = config.validate("providers.fcm");
        assert_eq!(errors.len(), 9, "{errors:?}");
        assert!(errors.iter().all(|e| e.starts_with("providers.fcm.")));
        assert!(errors.iter().any(|e| e.contains("retry.budget_percent")));
        let at = |ahead, quota| FcmConfig {
            token_refresh_ahead_seconds: ahead,
            quota_backoff_default_seconds: quota,
            ..FcmConfig::default()
        };
        assert!(at(0, 1).validate("p").is_empty());
        assert!(at(1800, 3600).validate("p").is_empty());
        assert!(!at(0, 3601).validate("p").is_empty());
    }
}
