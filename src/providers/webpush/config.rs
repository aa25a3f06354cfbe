//! Typed Web Push provider settings. The hosts and the SSRF allowance live in the top-level
//! `[webpush]` section (the registry reads them too); these are the connection settings.

mod app;

pub use app::WebPushAppConfig;

use crate::providers::config_keys::deprecated;
use crate::providers::queue::QueueLimits;
use crate::providers::retry::RetrySettings;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How ringcast talks to the browsers' push services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebPushProviderConfig {
    /// HTTP/2 connections per push-service origin (K). Web Push traffic spreads over several
    /// origins (FCM, Mozilla, Apple, WNS), each seeing a small share: one is enough.
    /// Read it with [`connections()`](Self::connections).
    pub connections: usize,
    /// The deprecated name of `connections`, still read (with a start-up warning); when a
    /// file gives it, it wins, since the defaults always fill `connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_origin: Option<usize>,
    /// Send an HTTP/2 PING after this many idle seconds, so a connection a middlebox dropped
    /// silently is found before a ring needs it.
    pub ping_interval_seconds: u64,
    /// The most connections per origin that answers HTTP/1.1 instead (ALPN offers `h2` and
    /// `http/1.1`): one request each at a time, kept alive between requests, dialled only
    /// when a push finds them all busy (README, "Web Push").
    pub http1_connections: usize,
    /// The deprecated name of `http1_connections`, still read (with a start-up warning); when
    /// a file gives it, it wins. Read both with
    /// [`http1_connections()`](Self::http1_connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_connections_per_origin: Option<usize>,
    /// Origins kept open at once per app and router; the least recently used idle one is
    /// closed to make room. Bounds the connections a flood of odd endpoints can make us open.
    pub max_origins: usize,
    /// An origin unused this long (seconds) has its connection closed.
    pub idle_origin_seconds: u64,
    /// How long one request may take before it is abandoned (and retried if the deadline
    /// allows), in milliseconds.
    pub request_timeout_ms: u64,
    /// How long a connection (DNS + TCP + TLS + HTTP/2) may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How long a VAPID JWT is valid, in seconds (RFC 8292 caps it at 24 h; push services
    /// refuse longer). Minted per origin and re-minted 5 minutes before it expires.
    pub vapid_validity_seconds: u64,
    /// How failed pushes are retried (backoff, deadline, budget).
    pub retry: RetrySettings,
    /// A PEM file of the only certificates to trust; unset = the public web PKI. Tests set it
    /// to the simulator's certificate.
    pub trusted_roots: Option<PathBuf>,
    /// The provider's queue bounds (per priority, and in total), per app and router.
    pub queues: QueueLimits,
    /// Deliveries running at once per origin.
    pub max_in_flight: usize,
}

impl Default for WebPushProviderConfig {
    fn default() -> Self {
        WebPushProviderConfig {
            connections: 1,
            connections_per_origin: None,
            ping_interval_seconds: 30,
            http1_connections: 4,
            http1_connections_per_origin: None,
            max_origins: 16,
            idle_origin_seconds: 300,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            vapid_validity_seconds: 12 * 60 * 60,
            retry: RetrySettings::default(),
            trusted_roots: None,
            queues: QueueLimits::default(),
            max_in_flight: 512,
        }
    }
}

/// RFC 8292 §2: `exp` no more than 24 hours ahead.
pub const MAX_VAPID_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

impl WebPushProviderConfig {
    /// The connections per push-service origin (K): the deprecated `connections_per_origin`
    /// when a file still gives it, else `connections`.
    pub fn connections(&self) -> usize {
        self.connections_per_origin.unwrap_or(self.connections)
    }

    /// The HTTP/1.1 connections per origin: the deprecated `http1_connections_per_origin`
    /// when a file still gives it, else `http1_connections`.
    pub fn http1_connections(&self) -> usize {
        self.http1_connections_per_origin
            .unwrap_or(self.http1_connections)
    }

    /// The deprecated keys these settings still use, each as a warning under `prefix`.
    pub fn deprecations(&self, prefix: &str) -> Vec<String> {
        [
            (
                "connections_per_origin",
                "connections",
                self.connections_per_origin,
            ),
            (
                "http1_connections_per_origin",
                "http1_connections",
                self.http1_connections_per_origin,
            ),
        ]
        .into_iter()
        .filter_map(|(old, new, given)| deprecated(prefix, old, new, given.is_some()))
        .collect()
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The VAPID JWT's validity.
    pub fn vapid_validity(&self) -> Duration {
        Duration::from_secs(self.vapid_validity_seconds)
    }

    /// Every problem with these settings, each naming its key under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        for (key, value) in [
            ("connections", self.connections()),
            ("http1_connections", self.http1_connections()),
            ("max_origins", self.max_origins),
            ("max_in_flight", self.max_in_flight),
        ] {
            if value == 0 {
                errors.push(format!("{prefix}.{key} must be at least 1"));
            }
        }
        for (key, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("idle_origin_seconds", self.idle_origin_seconds),
            ("ping_interval_seconds", self.ping_interval_seconds),
        ] {
            if value == 0 {
                errors.push(format!("{prefix}.{key} must be at least 1"));
            }
        }
        // At least 10 minutes, so the 5-minute re-mint margin leaves a useful token.
        if !(600..=MAX_VAPID_VALIDITY.as_secs()).contains(&self.vapid_validity_seconds) {
            errors.push(format!(
                "{prefix}.vapid_validity_seconds must be 600..=86400 (RFC 8292: exp at most \
                 24 h ahead), got {}",
                self.vapid_validity_seconds
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_all_named() {
        assert!(WebPushProviderConfig::default().validate("p").is_empty());
        let bad = WebPushProviderConfig {
            connections: 0,
            vapid_validity_seconds: 25 * 3600,
            request_timeout_ms: 0,
            ..WebPushProviderConfig::default()
        };
        let errors = bad.validate("providers.webpush");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("vapid_validity_seconds")));
    }
}
