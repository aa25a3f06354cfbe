//! The admin listener apart from the API, and live reload through it.

use crate::node::{node_toml, sample, start_reloadable};
use crate::support::app::{APNS_TOKEN, apns_body};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEY_A: &str = "operators-key-a-0001";
const KEY_B: &str = "operators-key-b-0002";

#[tokio::test]
async fn the_admin_routes_are_only_on_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = start_reloadable(dir.path(), &node_toml(dir.path(), KEY_A, "")).await;
    let admin = node.admin_address.expect("an admin listener of its own");
    assert_ne!(admin, node.address);
    let client = crate::node::client();
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    for path in ["/metrics", "/healthz", "/readyz", "/openapi.json"] {
        let on_admin = get(format!("{}{path}", node.admin_url())).await;
        assert_eq!(on_admin.status(), 200, "{path} on the admin listener");
        let on_api = get(format!("{}{path}", node.url())).await;
        assert_eq!(
            on_api.status(),
            404,
            "{path} must not be on the public listener"
        );
    }
    let ready: Value = get(format!("{}/readyz", node.admin_url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let metrics = get(format!("{}/metrics", node.admin_url()))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ringcast_config_reloads_total{outcome=\"refused\"}"),
        "{metrics}"
    );

    // The API is on the public listener only.
    let register = |base: String| {
        let client = client.clone();
        async move {
            client
                .put(format!("{base}/v1/identities/alice/registrations/phone"))
                .bearer_auth(KEY_A)
                .json(&apns_body(APNS_TOKEN))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(register(node.url()).await, 201);
    assert_eq!(register(node.admin_url()).await, 404);
    node.stop().await.unwrap();
}

/// Registers (or refreshes) one device with `key` until `stop`, counting answers that are
/// not 200/201.
fn keep_registering(
    url: String,
    key: Arc<std::sync::Mutex<&'static str>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client = crate::node::client();
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let credential = *key.lock().unwrap();
            let response = client
                .put(format!("{url}/v1/identities/bob/registrations/phone"))
                .bearer_auth(credential)
                .json(&apns_body(APNS_TOKEN))
                .send()
                .await
                .unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
            if !matches!(response.status().as_u16(), 200 | 201) {
                failed.fetch_add(1, Ordering::Relaxed);
                failures.push(format!("{credential}: {}", response.status()));
            }
        }
        failures
    })
}

async fn reload(client: &reqwest::Client, admin: &str) -> (u16, Value) {
    let response = client
        .post(format!("{admin}/admin/reload"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    if status != 200 {
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    }
    (status, body)
}

/// Waits (with a deadline) until the loop has sent `more` requests beyond `from`.
async fn wait_for_sent(sent: &AtomicU64, from: u64, more: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent.load(Ordering::Relaxed) < from + more {
        assert!(Instant::now() < deadline, "the registration loop stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_server_key_rotates_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let (node, file) = start_reloadable(dir.path(), &node_toml(dir.path(), KEY_A, "")).await;
    let client = crate::node::client();
    let admin = node.admin_url();
    let metrics_before = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let key = Arc::new(std::sync::Mutex::new(KEY_A));
    let (stop, sent, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = keep_registering(
        node.url(),
        key.clone(),
        stop.clone(),
        sent.clone(),
        failed.clone(),
    );
    wait_for_sent(&sent, 0, 20).await;

    // Step 1: both keys. Step 2: clients move to B. Step 3: A is withdrawn.
    let both = node_toml(dir.path(), KEY_A, "").replace(
        "server_keys = [",
        &format!(
            "server_keys = [{{ sha256 = \"{}\" }}, ",
            hex::encode(Sha256::digest(KEY_B))
        ),
    );
    std::fs::write(&file, &both).unwrap();
    let (status, report) = reload(&client, &admin).await;
    assert_eq!(
        (status, report["outcome"].as_str()),
        (200, Some("applied")),
        "{report}"
    );
    assert_eq!(report["restart_needed"], serde_json::json!([]));
    wait_for_sent(&sent, sent.load(Ordering::Relaxed), 20).await;
    *key.lock().unwrap() = KEY_B;
    wait_for_sent(&sent, sent.load(Ordering::Relaxed), 20).await;
    std::fs::write(&file, node_toml(dir.path(), KEY_B, "")).unwrap();
    let (status, _) = reload(&client, &admin).await;
    assert_eq!(status, 200);
    wait_for_sent(&sent, sent.load(Ordering::Relaxed), 20).await;

    // A bad file is refused whole, with every problem, and B keeps working.
    std::fs::write(
        &file,
        node_toml(dir.path(), "operators-key-c-0003", "max_body_bytes = 10")
            .replace("[tenants.t]", "[tenants.t]\nmax_ttl_seconds = 1"),
    )
    .unwrap();
    let (status, problem) = reload(&client, &admin).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "urn:ringcast:problem:config-invalid");
    let errors = problem["errors"].to_string();
    for named in ["server.max_body_bytes", "tenants.t.max_ttl_seconds"] {
        assert!(errors.contains(named), "{named} missing from {errors}");
    }
    wait_for_sent(&sent, sent.load(Ordering::Relaxed), 20).await;

    stop.store(true, Ordering::Relaxed);
    let failures = load.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} failed: {failures:?}",
        failures.len(),
        sent.load(Ordering::Relaxed)
    );
    let with = |credential: &'static str| {
        let client = client.clone();
        let url = node.url();
        async move {
            client
                .get(format!("{url}/v1/identities/bob/registrations"))
                .bearer_auth(credential)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with(KEY_A).await, 401, "the withdrawn key");
    assert_eq!(with(KEY_B).await, 200);
    assert_eq!(
        with("operators-key-c-0003").await,
        401,
        "the refused file's key"
    );

    let metrics = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let applied = "ringcast_config_reloads_total{outcome=\"applied\"}";
    let refused = "ringcast_config_reloads_total{outcome=\"refused\"}";
    // Other tests in this binary reload too: at least this test's own count.
    assert!(
        sample(&metrics, applied) >= sample(&metrics_before, applied) + 2.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, refused) >= sample(&metrics_before, refused) + 1.0,
        "{metrics}"
    );
    node.stop().await.unwrap();
}
