//! The development defaults in one place: the files under `config/dev/` and the values the
//! development configuration (config/ringcast.toml), `ringcast simulate` and `ringcast demo`
//! agree on. Every one of them is public and for development only: none is a secret, and a
//! production configuration names its own.

/// Where the development default expects the simulator.
pub const SIMULATOR_ADDRESS: &str = "127.0.0.1:8443";
/// The development default's APNs sandbox host: the simulator again, named `localhost`, which
/// it answers as Apple's sandbox (it tells the environments apart by host, as Apple does).
pub const SIMULATOR_SANDBOX_ADDRESS: &str = "localhost:8443";
/// Where the development default (and the development service account's `token_uri`) expect
/// the simulator's HTTP/1.1-only listener: the OAuth token endpoints.
pub const SIMULATOR_HTTP1_ADDRESS: &str = "127.0.0.1:8444";
/// The demo tenant's well-known server key (its digest is in config/ringcast.toml).
pub const DEMO_SERVER_KEY: &str = "ringcast-dev-server-key";
/// The development service account `ringcast simulate` accepts when given none.
pub const FCM_SERVICE_ACCOUNT: &str = "config/dev/fcm-service-account.json";
/// The development certificate `ringcast simulate` serves when given none: the one
/// config/ringcast.toml trusts (`providers.apns.trusted_roots`), so a bare `ringcast simulate` and a
/// bare `serve` work together. Development only; its key is public.
pub const SIMULATOR_CERT: &str = "config/dev/simulator-cert.pem";
/// The private key of [`SIMULATOR_CERT`].
pub const SIMULATOR_KEY: &str = "config/dev/simulator-key.pem";
/// The public half of the development APNs signing key (config/dev/apns-dev-key.p8, which
/// the demo tenant's `ios` app signs with); `ringcast simulate` always accepts it when present.
pub const APNS_PUBLIC_KEY: &str = "config/dev/apns-dev-key.pub.pem";
/// The development APNs key's team id (the demo app's `team_id`).
pub const APNS_TEAM: &str = "DEVTEAM123";
/// The development APNs key's key id (the demo app's `key_id`).
pub const APNS_KEY_ID: &str = "DEVKEY1234";
/// The development WNS client secret (the demo `windows` app's `client_secret`); `ringcast simulate`
/// always accepts it for [`WNS_PACKAGE_SID`] when present. Microsoft never issued it.
pub const WNS_CLIENT_SECRET: &str = "config/dev/wns-dev-client.secret";
/// The demo `windows` app's package SID.
pub const WNS_PACKAGE_SID: &str = "ms-app://s-1-15-2-ringcast-demo";
