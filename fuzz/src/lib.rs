//! What the fuzz targets share: the development tenant (read once from the repository's
//! `config/ringcast.toml`, with its real credentials), a fixed clock, and HTTP headers made
//! from fuzz input.
//!
//! Every target asserts only what the code promises: parsers never panic, and an accepted
//! input obeys the limits the API documents. A panic or a broken promise is a crash.

use ringcast::config::Config;
use ringcast::registry::UnixMillis;
use ringcast::tenant::{Tenant, Tenants};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

/// The fixed "now" every target judges at (2026-01-01T00:00:00Z), so a crash replays.
pub const NOW: UnixMillis = 1_767_225_600_000;

/// The development server key (config/ringcast.toml names its SHA-256).
pub const DEV_SERVER_KEY: &str = "ringcast-dev-server-key";

/// The development configuration, its tenant table and the `demo` tenant.
pub struct Dev {
    pub config: Config,
    pub tenants: Tenants,
    pub tenant: Arc<Tenant>,
}

/// Loaded once per fuzzing process: loading reads key files, far slower than one input.
pub static DEV: LazyLock<Dev> = LazyLock::new(|| {
    let config = Config::load(Some(&repository().join("config/ringcast.toml")))
        .expect("config/ringcast.toml loads");
    let tenants = Tenants::build(&config).expect("the development tenants build");
    let tenant = tenants
        .by_server_key(DEV_SERVER_KEY)
        .expect("the development server key belongs to a tenant")
        .clone();
    Dev {
        config,
        tenants,
        tenant,
    }
});

/// The repository's root (this crate lives in its `fuzz/` folder).
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_path_buf()
}

/// The pairs that make valid HTTP headers; the rest are dropped, as an HTTP stack would
/// refuse them before any parser of ours saw them.
pub fn headers(pairs: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    map
}
