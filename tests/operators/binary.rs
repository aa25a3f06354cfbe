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

#[test]
fn check_config_and_serve_refuse_the_same_service_account_with_the_same_message() {
    // `type` other than "service_account": the tenant check once ignored it, so
    // check-config passed a file that serve then refused.
    let dir = tempfile::tempdir().unwrap();
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev/fcm-service-account.json");
    let mut account: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dev).unwrap()).unwrap();
    account["type"] = "authorized_user".into();
    std::fs::write(dir.path().join("account.json"), account.to_string()).unwrap();
    std::fs::write(dir.path().join("server.key"), "a-server-key-of-the-tenant").unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "[registry.embedded]\npath = \"r.redb\"\n\
         [tenants.t]\nserver_keys = [{ file = \"server.key\" }]\n\
         [tenants.t.apps.android]\nplatform = \"fcm\"\nproject_id = \"ringcast-demo\"\n\
         service_account = { file = \"account.json\" }\n",
    )
    .unwrap();
    let expected = "tenants.t.apps.android.service_account: not a usable service-account JSON: \
                    type is not \"service_account\"";
    let checked = ringcast().arg("check-config").arg(&file).output().unwrap();
    let served = ringcast()
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    for (command, output) in [("check-config", checked), ("serve", served)] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        assert!(stderr.contains(expected), "{command}: {stderr}");
    }
    assert!(
        !dir.path().join("r.redb").exists(),
        "serve refused before opening its store"
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

/// Starts `ringcast serve --config file` as a process; the API's base URL once it listens.
fn spawn_node(file: &Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = ringcast()
        .args(["serve", "--config"])
        .arg(file)
        .env("RINGCAST__LOG__LEVEL", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let address = lines
        .find_map(|line| {
            let started = line.contains("ringcast node started").then_some(line)?;
            let rest = started.split("address=").nth(1)?;
            Some(rest.split_whitespace().next()?.to_owned())
        })
        .expect("the node logs its address when it starts");
    // Keep reading the log so the node never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, format!("http://{address}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_answered_201_survive_a_kill_9_of_the_node() {
    const KEY: &str = "kill-nine-key-0001";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, node_toml(dir.path(), KEY, "")).unwrap();
    let (mut node, base) = tokio::task::spawn_blocking({
        let file = file.clone();
        move || spawn_node(&file)
    })
    .await
    .unwrap();
    let client = crate::node::client();
    // Many at once, so the embedded store commits them in groups.
    let url = |n: u8| format!("{base}/v1/identities/user-{n}/registrations");
    let registrations = (0..64u8).map(|n| {
        let request = client
            .put(format!("{}/phone", url(n)))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"platform": "apns", "app": "ios",
                "token": format!("{:02x}", n + 1).repeat(32)}));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(registrations).await;
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    node.kill().unwrap(); // SIGKILL: no shutdown, no flush
    node.wait().unwrap();

    let (mut node, base) = tokio::task::spawn_blocking(move || spawn_node(&file))
        .await
        .unwrap();
    for n in 0..64u8 {
        let listed: serde_json::Value = client
            .get(format!("{base}/v1/identities/user-{n}/registrations"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            listed["registrations"][0]["device_id"], "phone",
            "user-{n} after the restart: {listed}"
        );
    }
    node.kill().unwrap();
    node.wait().unwrap();
}
