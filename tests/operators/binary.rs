//! The binary from another working directory: config paths follow the file, and `health`
//! answers for a running node.

use crate::node::{node_toml, start_reloadable};
use std::path::Path;
use std::process::Command;

fn ringcast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringcast"))
}

#[test]
fn check_config_finds_the_files_of_a_config_named_from_elsewhere() {
    let elsewhere = tempfile::tempdir().unwrap();
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ringcast.toml");
    let checked = ringcast()
        .arg("check-config")
        .arg(&default)
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "the development default from another folder: {}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // A missing file is named as it was looked for: under the config file's folder.
    let etc = elsewhere.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("node.toml"),
        "[tenants.t]\nserver_keys = [{ file = \"keys/server.key\" }]\n",
    )
    .unwrap();
    let refused = ringcast()
        .args(["check-config", "etc/node.toml"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let report = String::from_utf8_lossy(&refused.stderr);
    let resolved = std::path::absolute(etc.join("keys/server.key")).unwrap();
    assert!(
        report.contains(&resolved.display().to_string()),
        "{} missing from: {report}",
        resolved.display()
    );
}

#[tokio::test]
async fn health_is_zero_for_a_ready_node_and_one_for_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) =
        start_reloadable(dir.path(), &node_toml(dir.path(), "health-key-0001", "")).await;
    let admin = node.admin_address.unwrap().to_string();
    let health = |address: String, path: &'static str| {
        tokio::task::spawn_blocking(move || {
            ringcast()
                .args(["health", "--address", &address, "--path", path])
                .output()
                .unwrap()
        })
    };
    let ready = health(admin.clone(), "/readyz").await.unwrap();
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    // The public listener has no /readyz: not healthy.
    let api = health(node.address.to_string(), "/readyz").await.unwrap();
    assert_eq!(api.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&api.stderr).contains("404"));
    node.stop().await.unwrap();
    let stopped = health(admin, "/healthz").await.unwrap();
    assert_eq!(
        stopped.status.code(),
        Some(1),
        "nothing listens after the stop"
    );
}
