//! `ringcast demo` as a new user runs it: the lines it prints, pasted into a shell, register
//! a phone, ring it and show what the simulator accepted.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_demo_prints_lines_that_ring_a_phone() {
    let have_curl = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have_curl,
        "the demo's lines use curl: install it (Debian: curl)"
    );
    let dir = tempfile::tempdir().unwrap();
    // From the repository's root, as the README says; free ports, a store of its own.
    let mut demo = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--simulator-listen",
            "127.0.0.1:0",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env(
            "RINGCAST__REGISTRY__EMBEDDED__PATH",
            dir.path().join("demo.redb"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut printed = Vec::new();
    while !printed
        .last()
        .is_some_and(|line: &String| line.contains("ringcast_pushes_total"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => {
                let _ = demo.kill();
                let stderr = demo
                    .wait_with_output()
                    .map(|o| o.stderr)
                    .unwrap_or_default();
                panic!(
                    "the demo did not print its lines within 60 s: {printed:#?}\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
        }
    }
    let script_start = printed
        .iter()
        .position(|line| line.starts_with("KEY="))
        .unwrap();
    let script = printed[script_start..].join("\n");
    assert!(
        !script.contains(":8443"),
        "the lines name the real simulator port: {script}"
    );

    let output = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said: Vec<&str> = said.lines().collect();
    let json = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap_or_default();
    assert_eq!(
        json(said[0])["device_id"],
        "iphone",
        "registered: {said:#?}"
    );
    let ring = json(said[1]);
    assert_eq!(
        ring["outcomes"][0]["outcome"], "delivered",
        "rang: {said:#?}"
    );
    let stats = json(said[3]);
    let accepted = stats["accepted_by_service"]["apns"].as_u64().unwrap_or(0);
    assert!(accepted >= 1, "the simulator accepted the ring: {said:#?}");
    assert!(
        said[4..]
            .iter()
            .any(|line| line.starts_with("ringcast_pushes_total")
                && line.contains("outcome=\"delivered\"")
                && !line.ends_with(" 0")),
        "the node counted the delivery: {said:#?}"
    );

    // Ctrl-C stops both, cleanly.
    let interrupted = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop within 20 s of Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit {status}");
}
