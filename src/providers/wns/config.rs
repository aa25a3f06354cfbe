//! Typed WNS provider settings, with defaults that talk to Microsoft and validation that
//! reports every problem at once.

use crate::providers::queue::QueueLimits;
use crate::providers::retry::RetrySettings;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Microsoft's token endpoint for WNS client credentials (package SID + secret).
pub const TOKEN_URL: &str = "https://login.live.com/accesstoken.srf";

/// How ringcast talks to WNS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WnsConfig {
    /// Where access tokens come from (overridable so the simulator can stand in).
    pub token_url: String,
    /// Send every channel's path and query to this origin instead of the channel's own host
    /// (`https://*.notify.windows.com`). Only for the simulator and load tests: channel
    /// URIs are Microsoft's, and a test cannot make them resolve to the simulator.
    pub channel_base_url: Option<String>,
    /// A PEM file of the only certificates to trust (the simulator's); unset = web PKI.
    pub trusted_roots: Option<PathBuf>,
    /// HTTP/2 connections per channel host and shard.
    pub connections_per_host: usize,
    /// The most channel hosts one provider keeps connections to; pushes to further hosts are
    /// rejected (WNS uses a handful of regional hosts, so this only stops a runaway).
    pub max_hosts: usize,
    /// How long one request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Refresh the access token this long before it expires, in seconds.
    pub token_refresh_ahead_seconds: u64,
    /// How failed pushes are retried (backoff, deadline, budget).
    pub retry: RetrySettings,
    /// The provider's queue bounds.
    pub queues: QueueLimits,
    /// Deliveries running at once per provider and shard.
    pub max_in_flight: usize,
}

impl Default for WnsConfig {
    fn default() -> Self {
        WnsConfig {
            token_url: TOKEN_URL.to_owned(),
            channel_base_url: None,
            trusted_roots: None,
            connections_per_host: 1,
            max_hosts: 64,
            request_timeout_ms: 10_000,
            token_refresh_ahead_seconds: 300,
            retry: RetrySettings::default(),
            queues: QueueLimits::default(),
            max_in_flight: 1024,
        }
    }
}

impl WnsConfig {
    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Every problem with these settings, each naming its key under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut errors = Vec::new();
        if !self.token_url.starts_with("https://") {
            errors.push(format!("{prefix}.token_url must be an https:// URL"));
        }
        if let Some(base) = &self.channel_base_url
            && !base.starts_with("https://")
        {
            errors.push(format!("{prefix}.channel_base_url must be an https:// URL"));
        }
        for (key, value) in [
            ("connections_per_host", self.connections_per_host),
            ("max_hosts", self.max_hosts),
            ("max_in_flight", self.max_in_flight),
        ] {
            if value == 0 {
                errors.push(format!("{prefix}.{key} must be at least 1"));
            }
        }
        if self.request_timeout_ms == 0 {
            errors.push(format!("{prefix}.request_timeout_ms must be at least 1"));
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
    fn defaults_talk_to_microsoft_and_errors_come_all_at_once() {
        assert!(WnsConfig::default().validate("p").is_empty());
        let bad = WnsConfig {
            token_url: "http://login.live.com".into(),
            channel_base_url: Some("127.0.0.1:1".into()),
            max_hosts: 0,
            ..WnsConfig::default()
        };
        assert_eq!(bad.validate("providers.wns").len(), 3);
    }
}
