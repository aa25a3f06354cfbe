//! A node started from a config file written by the test, so it can reload it.

use ringcast::app::BackgroundNode;
use ringcast::config::Config;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `[tenants.t]` with `key` as its only server key and an APNs app, on an embedded store in
/// `dir`, the API and the admin listener on free ports, plus `extra` TOML (e.g. `[server.tls]`).
pub fn node_toml(dir: &Path, key: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
workers = 1
shutdown_timeout_seconds = 5
{extra}
[admin]
listen = "127.0.0.1:0"

[registry]
shards = 1
[registry.embedded]
path = "{store}"

[log]
level = "warn"

[tenants.t]
server_keys = [{{ sha256 = "{digest}" }}]
[tenants.t.apps.ios]
platform = "apns"
bundle_id = "com.example.phone"
"#,
        store = dir.join("registry.redb").display(),
        digest = hex::encode(Sha256::digest(key)),
    )
}

/// Writes `toml` to `dir/node.toml` and starts a node that reloads from it.
pub async fn start_reloadable(dir: &Path, toml: &str) -> (BackgroundNode, PathBuf) {
    let file = dir.join("node.toml");
    std::fs::write(&file, toml).unwrap();
    let config = Config::load(Some(&file)).expect("the test config loads");
    let reload_from = file.clone();
    let node =
        tokio::task::spawn_blocking(move || BackgroundNode::spawn_reloadable(config, reload_from))
            .await
            .unwrap()
            .expect("node starts");
    (node, file)
}

/// The value of the series `name{labels}` in a Prometheus text page (0 when absent).
pub fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// An HTTP client that gives up after 10 s, so a listener that does not answer fails the
/// test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}
