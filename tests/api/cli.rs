//! The binary itself: `check-config` exit codes, and a graceful stop on SIGTERM.

use crate::support::app::{APNS_TOKEN, apns_body};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "cli-test-server-key-0001";

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("node.toml");
    let toml = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        workers = 1
        [admin]
        on_api_listener = true
        [registry]
        shards = 2
        [registry.embedded]
        path = "{}"
        [tenants.t]
        server_keys = [{{ sha256 = "{}" }}]
        [tenants.t.apps.ios]
        platform = "apns"
        bundle_id = "com.example.phone"
        "#,
        dir.join("registry.redb").display(),
        hex::encode(Sha256::digest(KEY))
    );
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn check_config_accepts_good_files_and_lists_every_problem_of_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .arg("check-config")
        .arg(config_file(dir.path()))
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("OK"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[registry]\nmailbox_capacity = 0\n[tenants.t]\nmax_ttl_seconds = 1\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "registry.mailbox_capacity",
        "tenants.t.max_ttl_seconds",
        "tenants.t: no server_keys",
    ] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
}

#[tokio::test]
async fn sigterm_stops_the_node_gracefully() {
    stops_gracefully_on("-TERM").await;
}

#[tokio::test]
async fn sigint_stops_the_node_gracefully_too() {
    stops_gracefully_on("-INT").await;
}

async fn stops_gracefully_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["serve", "--config"])
        .arg(config_file(dir.path()))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log on a thread, so a node that never logs its address fails the test instead
    // of hanging it.
    let stderr = node.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |wait: Duration| lines_rx.recv_timeout(wait).ok();
    let address = std::iter::from_fn(|| next_line(Duration::from_secs(30))).find_map(|line| {
        let rest = line.split("address=").nth(1)?;
        Some(rest.split_whitespace().next().unwrap_or("").to_owned())
    });
    let Some(address) = address else {
        node.kill().unwrap();
        panic!("the node did not log its address within 30 s");
    };

    let response = reqwest::Client::new()
        .put(format!(
            "http://{address}/v1/identities/alice/registrations/phone"
        ))
        .bearer_auth(KEY)
        .json(&apns_body(APNS_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let killed = Command::new("kill")
        .args([signal, &node.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not stop within 15 s of {signal}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rest: Vec<String> = std::iter::from_fn(|| next_line(Duration::from_secs(2))).collect();
    assert!(status.success(), "exit {status}: {rest:#?}");
    assert!(
        rest.iter()
            .any(|line| line.contains("finishing in-flight requests")),
        "graceful: {rest:#?}"
    );
    assert!(
        !rest.iter().any(|line| line.contains("forced shutdown")),
        "not forced: {rest:#?}"
    );
    assert!(
        rest.iter()
            .any(|line| line.contains("ringcast node stopped")),
        "{rest:#?}"
    );
}
