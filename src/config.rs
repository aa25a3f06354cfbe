//! Configuration: typed, layered, validated all at once.
//!
//! Layers, later ones winning: the built-in defaults; then `config/ringcast.toml` — or, when
//! `--config FILE` is given, that file *instead* (a production file must not inherit the
//! demo tenant and its well-known key from the development default); then environment
//! variables `RINGCAST__SECTION__KEY` (e.g. `RINGCAST__REGISTRY__STORE=redis`).

pub mod admin;
pub mod channel;
pub mod cluster;
pub mod dev;
pub mod intake;
pub mod outcomes;
mod paths;
mod redis;
pub mod secret;
pub mod tenant;
pub mod tls;
pub mod ttl_cap;

use crate::registry::redis::RedisClient;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use admin::AdminConfig;
pub use secret::{Secret, SecretSource};
pub use tenant::{
    ApnsAppConfig, AppConfig, FcmAppConfig, IdentityTokenConfig, ServerKeySource, TenantConfig,
    TokenAlgorithm, WebPushAppConfig, WnsAppConfig,
};
pub use tls::TlsConfig;

/// The push services' connection settings (`[providers.*]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// Apple Push Notification service.
    pub apns: crate::providers::apns::config::ApnsConfig,
    /// Windows Push Notification Services.
    pub wns: crate::providers::wns::config::WnsConfig,
    /// Firebase Cloud Messaging (HTTP v1).
    pub fcm: crate::providers::fcm::config::FcmConfig,
    /// Web Push (the browsers' push services; which hosts is `[webpush]`).
    pub webpush: crate::providers::webpush::config::WebPushProviderConfig,
}

/// The file a bare `ringcast serve` reads.
pub const DEFAULT_CONFIG_FILE: &str = "config/ringcast.toml";

/// The whole configuration of a node.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP API.
    pub server: ServerConfig,
    /// The operators' listener: metrics, probes, reload.
    pub admin: AdminConfig,
    /// The registry: its shards and its store.
    pub registry: RegistryConfig,
    /// The routers: how much call-event work each router takes on at once.
    pub router: RouterConfig,
    /// How each push service is reached (hosts, connections, retries, queues); the
    /// credentials are per app, under `tenants`.
    pub providers: ProvidersConfig,
    /// Which Web Push services a subscription may point at.
    pub webpush: WebPushConfig,
    /// Log output.
    pub log: LogConfig,
    /// The tenants, by tenant id.
    pub tenants: BTreeMap<String, TenantConfig>,
    /// How call events are owned among the nodes sharing a store.
    pub cluster: cluster::ClusterConfig,
    /// The internal push channel (`GET /v1/channel`).
    pub channel: channel::ChannelConfig,
    /// How call events are taken in: durably on Redis Streams, or not.
    pub intake: intake::IntakeConfig,
    /// Whether devices' outcomes are published on a Redis Stream per tenant.
    pub outcomes: outcomes::OutcomesConfig,
}

/// The HTTP API server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on; port 0 picks a free one (tests).
    pub listen: SocketAddr,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// The largest request body accepted, in bytes. Registrations are well under 4 KiB.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests, in seconds.
    pub shutdown_timeout_seconds: u64,
    /// The most API requests the node serves at once. Beyond it a request gets `503` with
    /// `Retry-After` on arrival instead of waiting for CPU (HTTP/2 clients may open any
    /// number of streams): registrations are refused from half of it, call ends from three
    /// quarters, rings only at the limit (src/api/intake.rs). By Little's law it bounds a
    /// ring's wait in the node to about limit ÷ the node's request rate.
    pub max_requests_in_flight: usize,
    /// TLS on `listen` (cert, key, optional client CA); absent = plain HTTP and h2c.
    pub tls: Option<TlsConfig>,
    /// How long an idle HTTP/1.1 connection stays open for its next request, in seconds;
    /// 0 turns keep-alive off. Idle connections cost a socket and a little memory each.
    pub keep_alive_seconds: u64,
    /// How long a client has to send a request's head (request line and headers), in
    /// milliseconds; a client that dribbles it (slowloris) gets `408` and is disconnected, and
    /// is counted (`ringcast_connections_refused_total{reason="request_timeout"}`). Also
    /// bounds the HTTP/2 and TLS handshakes.
    pub client_request_timeout_ms: u64,
    /// How long the node waits for a client to close its side after the node closed the
    /// connection, in milliseconds, before dropping it.
    pub client_disconnect_timeout_ms: u64,
    /// With `[server.tls]`: how long a TLS handshake may take, in milliseconds.
    pub tls_handshake_timeout_ms: u64,
    /// The most connections each HTTP worker holds open; beyond it the worker stops accepting
    /// until one closes (the kernel's backlog holds the rest).
    pub max_connections_per_worker: usize,
    /// With `[server.tls]`: the most TLS handshakes each worker runs at once (handshakes cost
    /// CPU: a flood of them must not starve requests on established connections).
    pub max_tls_handshakes_per_worker: usize,
    /// The most requests one connection may have in progress at once (HTTP/2 streams; an
    /// HTTP/1.1 connection has one). Beyond it a request gets `503` with `Retry-After`, so one
    /// connection cannot take the node's whole intake (`max_requests_in_flight`).
    pub max_streams_per_connection: usize,
    /// The largest request head accepted (method, path and headers), in bytes; larger gets
    /// `431`. HTTP/1.1 heads beyond 128 KiB are refused by actix-http itself.
    pub max_header_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            max_body_bytes: 16 * 1024,
            shutdown_timeout_seconds: 30,
            max_requests_in_flight: 1024,
            tls: None,
            keep_alive_seconds: 5,
            client_request_timeout_ms: 5_000,
            client_disconnect_timeout_ms: 1_000,
            tls_handshake_timeout_ms: 3_000,
            max_connections_per_worker: 10_000,
            max_tls_handshakes_per_worker: 256,
            max_streams_per_connection: 256,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl ServerConfig {
    /// The connection limits' range checks (README, "Connection limits").
    pub fn connection_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut within = |name: &str, value: u64, min: u64, max: u64| {
            if !(min..=max).contains(&value) {
                problems.push(format!("server.{name} is {value}: must be {min}..={max}"));
            }
        };
        within("keep_alive_seconds", self.keep_alive_seconds, 0, 3_600);
        // From 1 s: actix-http's clock is 500 ms coarse (src/api/connection.rs).
        within(
            "client_request_timeout_ms",
            self.client_request_timeout_ms,
            1_000,
            60_000,
        );
        within(
            "client_disconnect_timeout_ms",
            self.client_disconnect_timeout_ms,
            100,
            60_000,
        );
        within(
            "tls_handshake_timeout_ms",
            self.tls_handshake_timeout_ms,
            100,
            60_000,
        );
        within(
            "max_connections_per_worker",
            self.max_connections_per_worker as u64,
            1,
            1 << 20,
        );
        within(
            "max_tls_handshakes_per_worker",
            self.max_tls_handshakes_per_worker as u64,
            1,
            1 << 16,
        );
        within(
            "max_streams_per_connection",
            self.max_streams_per_connection as u64,
            1,
            1 << 16,
        );
        // Below 1 KiB an ordinary request with a bearer token does not fit; above 128 KiB
        // actix-http refuses an HTTP/1.1 head anyway.
        within(
            "max_header_bytes",
            self.max_header_bytes as u64,
            1_024,
            128 * 1_024,
        );
        problems
    }

    /// [`ServerConfig::client_request_timeout_ms`] as a `Duration`.
    pub fn client_request_timeout(&self) -> Duration {
        Duration::from_millis(self.client_request_timeout_ms)
    }
}

/// The registry and where it keeps registrations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Which store holds the registrations.
    pub store: StoreKind,
    /// Registry shards (one arbiter thread each); 0 = one per core.
    pub shards: usize,
    /// Each shard's mailbox capacity. A full mailbox is backpressure: requests wait up to
    /// `mailbox_wait_ms`, then get `503` with `Retry-After`.
    pub mailbox_capacity: usize,
    /// How long a request may wait for room in a full shard mailbox, in milliseconds.
    pub mailbox_wait_ms: u64,
    /// How long a store operation may take before the request gets `503`, in milliseconds.
    pub store_timeout_ms: u64,
    /// The most devices one identity may register; stops one user from filling the store.
    pub max_devices_per_identity: u32,
    /// The embedded store (used when `store = "embedded"`).
    pub embedded: EmbeddedConfig,
    /// Redis (used when `store = "redis"`, `"redis-cluster"` or `"redis-sentinel"`).
    pub redis: RedisConfig,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            store: StoreKind::Embedded,
            shards: 0,
            mailbox_capacity: 1024,
            mailbox_wait_ms: 250,
            store_timeout_ms: 2_000,
            max_devices_per_identity: 32,
            embedded: EmbeddedConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

/// The routers (one per HTTP worker), which turn call events into pushes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// The most call events one shard routes at once (claim, lookup, fan-out, queueing).
    /// Above half of it missed-call events are refused, above three quarters "call ended"
    /// events too, and at the limit rings: `503` with `Retry-After` at once instead of a
    /// queue that grows (src/router/admission.rs). By Little's law it bounds how long an
    /// admitted event waits: 128 at 5,000 events/s per router is at most ~25 ms.
    pub max_events_in_flight: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_events_in_flight: 128,
        }
    }
}

/// The stores.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// A redb file, for a single node.
    #[default]
    Embedded,
    /// One Redis server, shared by any number of nodes.
    Redis,
    /// A Redis Cluster.
    RedisCluster,
    /// One Redis master found through Redis Sentinel, followed across failovers.
    RedisSentinel,
}

/// The embedded store.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// The database file; created with its directory if missing.
    pub path: PathBuf,
    /// How often expired registrations are swept from the file, in seconds. Expired ones are
    /// invisible at once; the sweep only reclaims their space.
    pub sweep_interval_seconds: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            path: PathBuf::from("data/ringcast.redb"),
            sweep_interval_seconds: 60,
        }
    }
}

/// Redis and Redis Cluster.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db` of the single server.
    pub url: String,
    /// Seed nodes of the cluster (`redis://host:port`); any reachable subset will do.
    pub nodes: Vec<String>,
    /// The Sentinels (`redis://host:26379`) that name the master, for
    /// `store = "redis-sentinel"`; any reachable one will do. With `rediss://` the master is
    /// reached over TLS too.
    pub sentinels: Vec<String>,
    /// The master's name as the Sentinels know it (`sentinel monitor <name> ...`).
    pub sentinel_master: String,
    /// The ACL user the node logs in to the master as, for `store = "redis-sentinel"`
    /// (absent = the `default` user). Credentials in a Sentinel URL are the Sentinels' own,
    /// so the master's need keys of their own.
    pub master_username: Option<String>,
    /// The master's password (`requirepass`, or the ACL user's), for
    /// `store = "redis-sentinel"`: `{ file = "..." }` or `{ env = "..." }`, never inline,
    /// like every secret here. Read and checked at validation.
    pub master_password: Option<SecretSource>,
    /// The master's database number (`SELECT`), for `store = "redis-sentinel"`; the single
    /// server's is in its `url`.
    pub master_db: u32,
    /// PEM file of the CA(s) that signed the Redis servers' certificates, for `rediss://`;
    /// absent = the system's trust store. Relative to the config file's folder.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for Redis servers that ask for one (`tls-auth-clients`);
    /// needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Connection timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Per-command timeout, in milliseconds: a dead Redis must give a fast `503`, not a hang.
    pub command_timeout_ms: u64,
    /// Buckets of the token-owner index, per tenant: about the largest tenant's registrations
    /// ÷ 16 to ÷ 32 (65,536 suits 1-2 M), so each bucket stays a small listpack in Redis. Set it
    /// before the first registration: changing it later re-homes every owner entry (see
    /// `registry::redis`, "Memory").
    pub owner_buckets: u32,
    /// Which client the Redis stores speak with: `"ringcast"` (its own pipelined connection,
    /// `registry::redis::pipelined`, and over a cluster one per master,
    /// `registry::redis::cluster`; the default; RESP2 over `redis://` or `rediss://`) or
    /// `"redis-rs"` (the redis crate's reconnecting manager, its multiplexed connection to
    /// Sentinel's master, or its cluster client).
    pub client: RedisClient,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/".into(),
            nodes: Vec::new(),
            sentinels: Vec::new(),
            sentinel_master: String::new(),
            master_username: None,
            master_password: None,
            master_db: 0,
            ca_file: None,
            client_cert: None,
            client_key: None,
            connect_timeout_ms: 2_000,
            command_timeout_ms: 1_000,
            owner_buckets: 65_536,
            client: RedisClient::Ringcast,
        }
    }
}

/// Web Push subscription endpoints come from clients, so only known push services are allowed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebPushConfig {
    /// Hosts a subscription endpoint may name; `*.example.com` allows every subdomain. The
    /// default is the major browsers' push services.
    pub allowed_hosts: Vec<String>,
    /// Addresses an endpoint may resolve to although they are loopback, private or
    /// link-local (`ip` or `ip:port`). Empty in production: every such address is refused,
    /// at registration and again at connect time (SSRF guard). Tests list the simulator's
    /// `127.0.0.1:<port>` here.
    pub allowed_private_addresses: Vec<String>,
    /// How long the registration API waits for the endpoint's DNS answer, in milliseconds.
    pub resolve_timeout_ms: u64,
}

impl WebPushConfig {
    /// The connect-time address check built from `allowed_private_addresses`; its entries are
    /// checked by [`Config::validate`], so a bad one falls back to allowing nothing.
    pub fn address_guard(&self) -> crate::providers::pool::guard::AddressGuard {
        crate::providers::pool::guard::AddressGuard::new(&self.allowed_private_addresses)
            .unwrap_or_default()
    }

    /// [`WebPushConfig::resolve_timeout_ms`] as a `Duration`.
    pub fn resolve_timeout(&self) -> Duration {
        Duration::from_millis(self.resolve_timeout_ms)
    }
}

impl Default for WebPushConfig {
    fn default() -> Self {
        WebPushConfig {
            allowed_hosts: [
                "fcm.googleapis.com",
                "updates.push.services.mozilla.com",
                "web.push.apple.com",
                "*.notify.windows.com",
            ]
            .map(String::from)
            .to_vec(),
            allowed_private_addresses: Vec::new(),
            resolve_timeout_ms: 2_000,
        }
    }
}

/// Log output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `ringcast=debug,actix_web=info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line formats.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Why a configuration was refused: every problem found, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{} configuration error(s):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    /// Loads the layers (see the module doc). `file = None` means the default file, which may
    /// be missing (then the built-in defaults apply); a named file must exist. Relative paths
    /// in a file are relative to that file's folder ([`paths`]).
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigErrors> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigErrors(vec![format!(
                    "config file {} does not exist",
                    path.display()
                )]));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => tracing::warn!(
                "{DEFAULT_CONFIG_FILE} not found: using built-in defaults (no tenants)"
            ),
        }
        figment = figment.merge(Env::prefixed("RINGCAST__").split("__"));
        let mut config = figment
            .extract::<Config>()
            .map_err(|error| ConfigErrors(error.into_iter().map(|e| e.to_string()).collect()))?;
        paths::resolve(&mut config, &figment);
        Ok(config)
    }

    /// Checks everything that types cannot outside the tenants: ranges, cross-references,
    /// files. Returns all problems at once. The tenants are checked as they are built
    /// (`tenant::Tenants::build`); `plan::Plan::build` runs both.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        let registry = &self.registry;
        if registry.mailbox_capacity == 0 {
            problems.push("registry.mailbox_capacity must be at least 1".into());
        }
        if registry.store_timeout_ms == 0 {
            problems.push("registry.store_timeout_ms must be at least 1".into());
        }
        if registry.max_devices_per_identity == 0 {
            problems.push("registry.max_devices_per_identity must be at least 1".into());
        }
        if self.server.max_requests_in_flight < 4 {
            // Fewer cannot stagger the three routes.
            problems.push("server.max_requests_in_flight must be at least 4".into());
        }
        if self.router.max_events_in_flight < 4 {
            // Fewer cannot stagger three priorities.
            problems.push("router.max_events_in_flight must be at least 4".into());
        }
        problems.extend(self.cluster.problems());
        problems.extend(self.intake.problems(registry.store));
        problems.extend(self.outcomes.problems(registry.store));
        problems.extend(self.channel.problems());
        if self.server.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".into());
        }
        problems.extend(self.server.connection_problems());
        if registry.store == StoreKind::Embedded && registry.embedded.sweep_interval_seconds == 0 {
            problems.push("registry.embedded.sweep_interval_seconds must be at least 1".into());
        }
        problems.extend(registry.redis.problems(registry.store));
        for host in &self.webpush.allowed_hosts {
            let (name, port) = host
                .rsplit_once(':')
                .map_or((host.as_str(), None), |(name, port)| (name, Some(port)));
            let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0));
            if name.is_empty()
                || name.contains(['/', ' ', '@'])
                || name.trim_start_matches("*.").contains('*')
                || !port_ok
            {
                problems.push(format!(
                    "webpush.allowed_hosts: {host:?} is not host, host:port or *.domain"
                ));
            }
        }
        if let Err(errors) = crate::providers::pool::guard::AddressGuard::new(
            &self.webpush.allowed_private_addresses,
        ) {
            for error in errors {
                problems.push(format!("webpush.allowed_private_addresses: {error}"));
            }
        }
        problems.extend(self.providers.apns.validate("providers.apns"));
        problems.extend(self.providers.wns.validate("providers.wns"));
        if let Some(roots) = &self.providers.wns.trusted_roots
            && let Err(error) = crate::providers::pool::tls::client_config(Some(roots))
        {
            problems.push(format!("providers.wns.trusted_roots: {error}"));
        }
        problems.extend(self.providers.webpush.validate("providers.webpush"));
        if let Some(roots) = &self.providers.webpush.trusted_roots
            && let Err(error) = crate::providers::pool::tls::client_config(Some(roots))
        {
            problems.push(format!("providers.webpush.trusted_roots: {error}"));
        }
        if let Some(roots) = &self.providers.apns.trusted_roots
            && let Err(error) = crate::providers::pool::tls::client_config(Some(roots))
        {
            problems.push(format!("providers.apns.trusted_roots: {error}"));
        }
        problems.extend(self.providers.fcm.validate("providers.fcm"));
        if let Some(roots) = &self.providers.fcm.trusted_roots
            && let Err(error) = crate::providers::pool::tls::client_config(Some(roots))
        {
            problems.push(format!("providers.fcm.trusted_roots: {error}"));
        }
        problems.extend(self.listener_problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// The listeners: the admin listener apart from the API's, and the API's certificate.
    fn listener_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let (api, admin) = (self.server.listen, self.admin.listen);
        if !self.admin.on_api_listener && admin.port() != 0 && admin == api {
            problems.push(format!(
                "admin.listen {admin} is server.listen too: give the admin listener its own \
                 address, or set admin.on_api_listener = true"
            ));
        }
        if let Some(tls) = &self.server.tls {
            problems.extend(crate::app::tls::validate(tls));
        }
        problems
    }

    /// The shard count in effect (0 = one per core).
    pub fn shard_count(&self) -> usize {
        match self.registry.shards {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }

    /// The store timeout as a `Duration`.
    pub fn store_timeout(&self) -> Duration {
        Duration::from_millis(self.registry.store_timeout_ms)
    }
}

#[cfg(test)]
mod tests;
