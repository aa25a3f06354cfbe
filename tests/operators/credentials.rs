//! Push credentials reloaded under load: an APNs key, an FCM service account and a server key
//! rotate while a loop rings an iPhone and an Android phone through a real node and the
//! simulator, and no push fails.

use crate::node::start_reloadable;
use ringcast::simulator::{
    ApnsCredential, FcmServiceAccount, RunningSimulator, Simulator, SimulatorConfig,
};
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

/// The development FCM service account, and one of the same project with another key.
const DEV_ACCOUNT: &str = ringcast::config::dev::FCM_SERVICE_ACCOUNT;
const OTHER_KEY: &str = include_str!("../fixtures/fcm-unknown-key.pem");

/// The node's file: tenant `t` with `server_keys`, an APNs app signing with `key_id`'s `.p8`
/// in `dir` and an FCM app with the service account `dir/<account>.json`, both at `sim`.
fn node_toml(
    dir: &Path,
    sim: &RunningSimulator,
    server_keys: &[&str],
    key_id: &str,
    account: &str,
) -> String {
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
connections = 1
[providers.fcm]
base_url = "{production}"
trusted_roots = "simulator.pem"

[tenants.t]
server_keys = [{keys}]
[tenants.t.apps.ios]
platform = "apns"
bundle_id = "com.example.phone"
team_id = "{TEAM}"
key_id = "{key_id}"
key = {{ file = "{key_id}.p8" }}
[tenants.t.apps.android]
platform = "fcm"
project_id = "ringcast-demo"
service_account = {{ file = "{account}.json" }}
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

/// The development service account, and another account of the same project (another key
/// and e-mail), as JSON.
fn fcm_accounts() -> [Value; 2] {
    let dev: Value = serde_json::from_slice(&std::fs::read(DEV_ACCOUNT).unwrap()).unwrap();
    let mut rotated = dev.clone();
    rotated["private_key"] = OTHER_KEY.into();
    rotated["private_key_id"] = "rotated-key-0002".into();
    rotated["client_email"] = "rotated@ringcast-demo.iam.gserviceaccount.com".into();
    [dev, rotated]
}

/// Writes `account` as `dir/<name>.json` with its token endpoint at `sim`, as the node reads it.
fn write_account(dir: &Path, name: &str, account: &Value, sim: &RunningSimulator) {
    let mut account = account.clone();
    account["token_uri"] = sim.token_url().into();
    std::fs::write(dir.join(format!("{name}.json")), account.to_string()).unwrap();
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
            let outcomes = answer["outcomes"].as_array().cloned().unwrap_or_default();
            let delivered =
                outcomes.len() == 2 && outcomes.iter().all(|o| o["outcome"] == "delivered");
            if status != 200 || !delivered {
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
    let accounts = fcm_accounts();
    let sim = Simulator::start(SimulatorConfig {
        apns_keys: keys,
        fcm_accounts: accounts
            .iter()
            .map(|json| FcmServiceAccount::from_service_account_json(json.to_string().as_bytes()))
            .collect::<Result<_, _>>()
            .unwrap(),
        cert_out: Some(dir.path().join("simulator.pem")),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    write_account(dir.path(), "dev", &accounts[0], &sim);
    write_account(dir.path(), "rotated", &accounts[1], &sim);
    let toml = node_toml(dir.path(), &sim, &[KEY_A], OLD_KID, "dev");
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
    let registered = client
        .put(format!(
            "{}/v1/identities/alice/registrations/pixel",
            node.url()
        ))
        .bearer_auth(KEY_A)
        .json(&json!({"platform": "fcm", "app": "android", "token": "fcm-token-rotation"}))
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

    // The new APNs key, the other FCM account, and server key B beside A.
    let tokens_before = sim.stats().oauth_tokens_issued;
    let rotated = node_toml(dir.path(), &sim, &[KEY_A, KEY_B], NEW_KID, "rotated");
    std::fs::write(&file, &rotated).unwrap();
    let (status, report) = reload(&client, &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["credentials_reloaded"],
        json!(["tenants.t.apps.android", "tenants.t.apps.ios"])
    );
    assert_eq!(report["restart_needed"], json!([]));
    wait_for_rings(&rung, 20).await;
    assert_eq!(
        sim.stats().oauth_tokens_issued,
        tokens_before + 1,
        "the new account fetched its own access token, once"
    );
    *key.lock().unwrap() = KEY_B;
    wait_for_rings(&rung, 20).await;

    // A is withdrawn; the APNs key stays: nothing to swap.
    std::fs::write(
        &file,
        node_toml(dir.path(), &sim, &[KEY_B], NEW_KID, "rotated"),
    )
    .unwrap();
    let (status, report) = reload(&client, &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["credentials_reloaded"], json!([]));
    wait_for_rings(&rung, 20).await;

    // A broken key file refuses the whole reload; the running key keeps ringing.
    std::fs::write(dir.path().join("BROKEN0003.p8"), "not a key").unwrap();
    let broken = node_toml(dir.path(), &sim, &[KEY_B], "BROKEN0003", "rotated");
    std::fs::write(&file, broken).unwrap();
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
        stats.accepted,
        2 * total,
        "every ring was two accepted pushes: {stats:?}"
    );

    // The node really signs with what it reloads: a key Apple never saw is refused.
    apns_key(dir.path(), "UNKNOWN004");
    let unknown = node_toml(dir.path(), &sim, &[KEY_B], "UNKNOWN004", "rotated");
    std::fs::write(&file, unknown).unwrap();
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
    let iphone = answer["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["device_id"] == "phone")
        .cloned();
    assert_ne!(iphone.unwrap()["outcome"], "delivered", "{answer}");
    assert!(
        sim.stats()
            .by_status
            .contains_key("403 InvalidProviderToken"),
        "{:?}",
        sim.stats()
    );
    node.stop().await.unwrap();
}
