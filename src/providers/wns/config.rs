//! Typed WNS provider settings, with defaults that talk to Microsoft and validation that
//! reports every problem at once.

mod app;

pub use app::WnsAppConfig;

use crate::providers::config_keys::deprecated;
use crate::providers::queue::QueueLimits;
use crate::providers::retry::RetrySettings;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Microsoft's legacy token endpoint for WNS client credentials (package SID + secret).
pub const TOKEN_URL: &str = "https://login.live.com/accesstoken.srf";
/// The scope the legacy endpoint grants WNS tokens for.
pub const LEGACY_SCOPE: &str = "notify.windows.com";
/// The host of Microsoft Entra ID's token endpoints
/// (`https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`).
pub const ENTRA_HOST: &str = "login.microsoftonline.com";
/// The scope Entra ID grants WNS tokens for.
pub const ENTRA_SCOPE: &str = "https://wns.windows.com/.default";

/// How one Windows app gets its access token: the per-app keys `token_url`, `scope` and
/// `client_id` of `[tenants.<t>.apps.<app>]`, with their defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WnsAppAuth {
    /// The token endpoint: the app's `token_url`, else `[providers.wns] token_url` (the
    /// legacy endpoint unless changed).
    pub token_url: String,
    /// The app's `scope`, else the one its endpoint grants: `https://wns.windows.com/.default`
    /// at Entra ID, `notify.windows.com` anywhere else.
    pub scope: String,
    /// The app's `client_id` (its Entra application id), else its package SID.
    pub client_id: String,
}

impl WnsAppAuth {
    /// The app's token settings, defaults filled in from `provider`.
    pub fn of(
        package_sid: &str,
        token_url: Option<&str>,
        scope: Option<&str>,
        client_id: Option<&str>,
        provider: &WnsConfig,
    ) -> WnsAppAuth {
        let token_url = token_url.unwrap_or(&provider.token_url).to_owned();
        let scope = scope.map_or_else(
            || {
                if is_entra(&token_url) {
                    ENTRA_SCOPE
                } else {
                    LEGACY_SCOPE
                }
                .to_owned()
            },
            str::to_owned,
        );
        WnsAppAuth {
            token_url,
            scope,
            client_id: client_id.unwrap_or(package_sid).to_owned(),
        }
    }
}

/// The path every Entra ID (v2.0) token endpoint ends with.
const ENTRA_TOKEN_PATH_SUFFIX: &str = "/oauth2/v2.0/token";

/// Whether `url` is a Microsoft Entra ID token endpoint: on Entra ID's host, or of its shape
/// (a stand-in such as the simulator, or an egress proxy, keeps the path).
fn is_entra(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    host.eq_ignore_ascii_case(ENTRA_HOST)
        || format!("/{}", path.split('?').next().unwrap_or_default())
            .ends_with(ENTRA_TOKEN_PATH_SUFFIX)
}

/// Every problem with one app's per-app token keys, each naming its key under `at`
/// (`tenants.<t>.apps.<app>`): an HTTPS `token_url` (at Entra ID, of the form
/// `/<tenant>/oauth2/v2.0/token`, and with a `client_id`, since Entra ID knows the app by its
/// application id, not its package SID), a `scope` that the endpoint grants.
pub fn check_app_auth(
    token_url: Option<&str>,
    scope: Option<&str>,
    client_id: Option<&str>,
    at: &str,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(url) = token_url {
        if url.parse::<http::Uri>().is_err() || !url.starts_with("https://") {
            errors.push(format!(
                "{at}.token_url must be an https:// URL, got {url:?}"
            ));
        } else if is_entra(url) {
            let path = url
                .trim_start_matches("https://")
                .split_once('/')
                .map_or("", |(_, path)| path);
            let tenant = path.strip_suffix(ENTRA_TOKEN_PATH_SUFFIX);
            if tenant.is_none_or(|tenant| tenant.is_empty() || tenant.contains('/')) {
                errors.push(format!(
                    "{at}.token_url: an Entra ID token endpoint is \
                     https://{ENTRA_HOST}/<tenant>/oauth2/v2.0/token, got {url:?}"
                ));
            }
            if client_id.is_none() {
                errors.push(format!(
                    "{at}.client_id is required with an Entra ID token_url (the app's \
                     application id; Entra ID does not know package SIDs)"
                ));
            }
            if scope.is_some_and(|scope| scope != ENTRA_SCOPE) {
                errors.push(format!(
                    "{at}.scope: Entra ID grants WNS tokens for {ENTRA_SCOPE:?} only"
                ));
            }
        } else if url.eq_ignore_ascii_case(TOKEN_URL)
            && scope.is_some_and(|scope| scope != LEGACY_SCOPE)
        {
            errors.push(format!(
                "{at}.scope: {TOKEN_URL} grants WNS tokens for {LEGACY_SCOPE:?} only"
            ));
        }
    }
    if let Some(scope) = scope
        && (scope.is_empty() || !scope.bytes().all(|b| b.is_ascii_graphic()))
    {
        errors.push(format!(
            "{at}.scope must be one scope without spaces, e.g. {ENTRA_SCOPE:?}"
        ));
    }
    if client_id.is_some_and(|id| id.is_empty() || id.len() > 256) {
        errors.push(format!("{at}.client_id must be 1-256 characters"));
    }
    errors
}

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
    /// HTTP/2 connections per channel host and router. Read it with
    /// [`connections()`](Self::connections).
    pub connections: usize,
    /// The deprecated name of `connections`, still read (with a start-up warning); when a
    /// file gives it, it wins, since the defaults always fill `connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_host: Option<usize>,
    /// Send an HTTP/2 PING after this many idle seconds, so a connection a middlebox dropped
    /// silently is found before a ring needs it.
    pub ping_interval_seconds: u64,
    /// The most connections per channel host (and to the token endpoint) that answers
    /// HTTP/1.1 instead: one request each at a time, kept alive between requests, dialled
    /// only when a push finds them all busy.
    pub http1_connections: usize,
    /// The deprecated name of `http1_connections`, still read (with a start-up warning); when
    /// a file gives it, it wins. Read both with
    /// [`http1_connections()`](Self::http1_connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_connections_per_host: Option<usize>,
    /// The most channel hosts one provider (per app and router) keeps a dispatcher and
    /// connections for; when full, the least recently used host is let go to make room (its
    /// dispatcher finishes what it holds). WNS uses a handful of regional hosts, so this only
    /// bounds a runaway. (A push to a host past the bound used to be rejected as
    /// `too_many_push_hosts`; it is now sent, as a Web Push origin's is.)
    pub max_hosts: usize,
    /// A channel host unused this long (seconds) has its dispatcher stopped and its
    /// connections closed.
    pub idle_host_seconds: u64,
    /// How long one request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Refresh the access token this long before it expires, in seconds.
    pub token_refresh_ahead_seconds: u64,
    /// How failed pushes are retried (backoff, deadline, budget).
    pub retry: RetrySettings,
    /// The provider's queue bounds.
    pub queues: QueueLimits,
    /// Deliveries running at once per channel host (per app and router): each host has its
    /// own, so one that never answers holds only its own slots.
    pub max_in_flight: usize,
}

impl Default for WnsConfig {
    fn default() -> Self {
        WnsConfig {
            token_url: TOKEN_URL.to_owned(),
            channel_base_url: None,
            trusted_roots: None,
            connections: 1,
            connections_per_host: None,
            ping_interval_seconds: 30,
            http1_connections: 4,
            http1_connections_per_host: None,
            max_hosts: 64,
            idle_host_seconds: 300,
            request_timeout_ms: 10_000,
            token_refresh_ahead_seconds: 300,
            retry: RetrySettings::default(),
            queues: QueueLimits::default(),
            max_in_flight: 1024,
        }
    }
}

impl WnsConfig {
    /// The connections per channel host (K): the deprecated `connections_per_host` when a
    /// file still gives it, else `connections`.
    pub fn connections(&self) -> usize {
        self.connections_per_host.unwrap_or(self.connections)
    }

    /// The HTTP/1.1 connections per channel host: the deprecated
    /// `http1_connections_per_host` when a file still gives it, else `http1_connections`.
    pub fn http1_connections(&self) -> usize {
        self.http1_connections_per_host
            .unwrap_or(self.http1_connections)
    }

    /// The deprecated keys these settings still use, each as a warning under `prefix`.
    pub fn deprecations(&self, prefix: &str) -> Vec<String> {
        [
            (
                "connections_per_host",
                "connections",
                self.connections_per_host,
            ),
            (
                "http1_connections_per_host",
                "http1_connections",
                self.http1_connections_per_host,
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
            ("connections", self.connections()),
            ("http1_connections", self.http1_connections()),
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
        if self.ping_interval_seconds == 0 {
            errors.push(format!("{prefix}.ping_interval_seconds must be at least 1"));
        }
        if self.idle_host_seconds == 0 {
            errors.push(format!("{prefix}.idle_host_seconds must be at least 1"));
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
    fn an_app_takes_the_legacy_endpoint_unless_it_names_entra_id() {
        let provider = WnsConfig::default();
        let sid = "ms-app://s-1-15-2-1";
        assert_eq!(
            WnsAppAuth::of(sid, None, None, None, &provider),
            WnsAppAuth {
                token_url: TOKEN_URL.into(),
                scope: LEGACY_SCOPE.into(),
                client_id: sid.into(),
            }
        );
        let entra = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
        let app_id = "8a7b6c5d-0000-4000-8000-000000000001";
        let auth = WnsAppAuth::of(sid, Some(entra), None, Some(app_id), &provider);
        assert_eq!(
            (auth.scope.as_str(), auth.client_id.as_str()),
            (ENTRA_SCOPE, app_id)
        );
        assert!(check_app_auth(Some(entra), None, Some(app_id), "a").is_empty());
        assert!(check_app_auth(Some(entra), Some(ENTRA_SCOPE), Some(app_id), "a").is_empty());
        assert!(check_app_auth(None, None, None, "a").is_empty());
    }

    #[test]
    fn a_mismatched_endpoint_scope_or_client_is_refused_with_every_reason() {
        let entra = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token";
        let errors = check_app_auth(Some(entra), Some(LEGACY_SCOPE), None, "tenants.t.apps.w");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("tenants.t.apps.w.client_id"),
            "{errors:?}"
        );
        assert!(errors[1].contains("Entra ID grants"), "{errors:?}");
        let legacy = check_app_auth(Some(TOKEN_URL), Some(ENTRA_SCOPE), None, "a");
        assert_eq!(legacy.len(), 1, "{legacy:?}");
        let bare = "https://login.microsoftonline.com/oauth2/v2.0/token";
        assert!(check_app_auth(Some(bare), None, Some("id"), "a")[0].contains("<tenant>"));
        assert_eq!(
            check_app_auth(Some("http://x"), Some("a b"), Some(""), "a").len(),
            3
        );
    }

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
