//! Push credentials reloaded under load: an APNs key and a server key rotate while a loop
//! rings a device through a real node and the simulator, and no push fails.

use crate::node::start_reloadable;
use ringcast::simulator::{ApnsCredential, RunningSimulator, Simulator, SimulatorConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TEAM: &str = "TEAMID1234";
const OLD_KID: &str = "OLDKEY0001";
const NEW_KID: &str = "NEWKEY0002";
const KEY_A: &str = "operators-ring-key-a-0001";
const KEY_B: &str = "operators-ring-key-b-0002";
/// A production PushKit token by the simulator's rule (first byte not 0x5b).
const TOKEN: &str = "0707070707070707070707070707070707070707070707070707070707070707";

/// The node's file: tenant `t` with `server_keys` and an APNs app signing with `key_id`'s
/// `.p8` in `dir`, APNs pointed at `sim`.
fn node_toml(dir: &Path, sim: &RunningSimulator, server_keys: &[&str], key_id: &str) -> String {
    let keys: Vec<String> = server_keys
        .iter()
        .map(|key| format!("{{ sha256 = \"{}\" }}", hex::encode(Sha256::digest(key))))
        .collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
workers = 1
shutdown_timeout_seconds = 5
[admin]
listen = "127.0.0.1:0"
[registry]
shards = 1
[registry.embedded]
path = "{store}"
[log]
level = "warn"
[providers.apns]
production_url = "{production}"
sandbox_url = "{sandbox}"
trusted_roots = "simulator.pem"
connections_per_credential = 1

[tenants.t]
server_keys = [{keys}]
[tenants.t.apps.ios]
platform = "apns"
bundle_id = "com.example.phone"
team_id = "{TEAM}"
key_id = "{key_id}"
key = {{ file = "{key_id}.p8" }}
"#,
        store = dir.join("registry.redb").display(),
        production = sim.base_url(),
        sandbox = sim.apns_sandbox_url(),
        keys = keys.join(", "),
    )
}

/// A P-256 key written as `dir/<kid>.p8`, and the simulator's record of its public half.
fn apns_key(dir: &Path, kid: &str) -> ApnsCredential {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.join(format!("{kid}.p8")), pair.serialize_pem()).unwrap();
    ApnsCredential {
        team_id: TEAM.into(),
        key_id: kid.into(),
        public_key_pem: pair.public_key_pem(),
    }
}

/// Rings `alice` with `?wait=true` until `stop`, with the server key in `key`; every answer
/// that is not 200 with the device `delivered` is a failure.
fn keep_ringing(
    url: String,
    key: Arc<Mutex<&'static str>>,
    stop: Arc<AtomicBool>,
    rung: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client = crate::node::client();
        let mut failures = Vec::new();
        let mut call = 0u64;
        while !stop.load(Ordering::Relaxed) {
            call += 1;
            let credential = *key.lock().unwrap();
            let response = client
                .post(format!("{url}/v1/calls?wait=true"))
                .bearer_auth(credential)
                .json(
                    &json!({"call_id": format!("rotation-{call}"), "callee": "alice",
                              "caller": {"id": "+15550100"}}),
                )
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            let outcome = &answer["outcomes"][0]["outcome"];
            if status != 200 || outcome != "delivered" {
                failures.push(format!("call {call} with {credential}: {status} {answer}"));
            }
            rung.fetch_add(1, Ordering::Relaxed);
        }
        failures
    })
}

/// Waits (with a deadline) until `more` rings beyond the current count were answered.
async fn wait_for_rings(rung: &AtomicU64, more: u64) {
    let from = rung.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rung.load(Ordering::Relaxed) < from + more {
        assert!(Instant::now() < deadline, "the ring loop stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn reload(client: &reqwest::Client, admin: &str) -> (u16, Value) {
    let response = client
        .post(format!("{admin}/admin/reload"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apns_key_and_a_server_key_rotate_under_load_without_a_failed_push() {
    let dir = tempfile::tempdir().unwrap();
    // Apple accepts both keys of the team during the rotation, as it does until the old one
    // is revoked; a third key it never saw is refused (the last step).
    let keys = vec![apns_key(dir.path(), OLD_KID), apns_key(dir.path(), NEW_KID)];
    let sim = Simulator::start(SimulatorConfig {
        apns_keys: keys,
        cert_out: Some(dir.path().join("simulator.pem")),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let toml = node_toml(dir.path(), &sim, &[KEY_A], OLD_KID);
    let (node, file) = start_reloadable(dir.path(), &toml).await;
    let client = crate::node::client();
    let admin = node.admin_url();
    let registered = client
        .put(format!(
            "{}/v1/identities/alice/registrations/phone",
            node.url()
        ))
        .bearer_auth(KEY_A)
        .json(&json!({"platform": "apns", "app": "ios", "token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    let key = Arc::new(Mutex::new(KEY_A));
    let (stop, rung) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = keep_ringing(node.url(), key.clone(), stop.clone(), rung.clone());
    wait_for_rings(&rung, 20).await;

    // The new APNs key, and server key B beside A.
    std::fs::write(&file, node_toml(dir.path(), &sim, &[KEY_A, KEY_B], NEW_KID)).unwrap();
    let (status, report) = reload(&client, &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["credentials_reloaded"],
        json!(["tenants.t.apps.ios"])
    );
    assert_eq!(report["restart_needed"], json!([]));
    wait_for_rings(&rung, 20).await;
    *key.lock().unwrap() = KEY_B;
    wait_for_rings(&rung, 20).await;

    // A is withdrawn; the APNs key stays: nothing to swap.
    std::fs::write(&file, node_toml(dir.path(), &sim, &[KEY_B], NEW_KID)).unwrap();
    let (status, report) = reload(&client, &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["credentials_reloaded"], json!([]));
    wait_for_rings(&rung, 20).await;

    // A broken key file refuses the whole reload; the running key keeps ringing.
    std::fs::write(dir.path().join("BROKEN0003.p8"), "not a key").unwrap();
    std::fs::write(&file, node_toml(dir.path(), &sim, &[KEY_B], "BROKEN0003")).unwrap();
    let (status, problem) = reload(&client, &admin).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["errors"]
            .to_string()
            .contains("tenants.t.apps.ios.key"),
        "{problem}"
    );
    wait_for_rings(&rung, 20).await;

    stop.store(true, Ordering::Relaxed);
    let failures = load.await.unwrap();
    let total = rung.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {total} rings failed, the first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let stats = sim.stats();
    assert_eq!(
        stats.accepted, total,
        "every ring was one accepted push: {stats:?}"
    );

    // The node really signs with what it reloads: a key Apple never saw is refused.
    apns_key(dir.path(), "UNKNOWN004");
    std::fs::write(&file, node_toml(dir.path(), &sim, &[KEY_B], "UNKNOWN004")).unwrap();
    let (status, report) = reload(&client, &admin).await;
    assert_eq!(status, 200, "{report}");
    let answer: Value = client
        .post(format!("{}/v1/calls?wait=true", node.url()))
        .bearer_auth(KEY_B)
        .json(&json!({"call_id": "after-unknown-key", "callee": "alice",
                      "caller": {"id": "+15550100"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(answer["outcomes"][0]["outcome"], "delivered", "{answer}");
    assert!(
        sim.stats()
            .by_status
            .contains_key("403 InvalidProviderToken"),
        "{:?}",
        sim.stats()
    );
    node.stop().await.unwrap();
}
