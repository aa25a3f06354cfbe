//! The JSON logs of a real `ringcast serve --log-format json` process through a full run
//! (register, list, ring, end, revoke, and refused requests): parseable, naming tokens and, at
//! `info` and above, identities by fingerprint, never showing a token, key or credential.

use crate::support::app::{APNS_TOKEN, KEY_A, TOKEN_SECRET_A, apns_body, identity_token};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A node config with tenant `a`: server key [`KEY_A`], identity tokens signed with
/// [`TOKEN_SECRET_A`] (from a file), and an iOS and a web app.
fn node_config(dir: &Path) -> PathBuf {
    let secret = dir.join("identity.secret");
    std::fs::write(&secret, TOKEN_SECRET_A).unwrap();
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
        [tenants.a]
        server_keys = [{{ sha256 = "{}" }}]
        [tenants.a.identity_tokens]
        algorithm = "HS256"
        key = {{ file = "{}" }}
        [tenants.a.apps.ios]
        platform = "apns"
        bundle_id = "com.example.phone"
        [tenants.a.apps.web]
        platform = "webpush"
        "#,
        dir.join("registry.redb").display(),
        hex::encode(Sha256::digest(KEY_A)),
        secret.display(),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test]
async fn json_logs_of_a_full_run_show_no_identity_token_or_secret() {
    /// The identity: a phone number, as a carrier's are.
    const IDENTITY: &str = "+15557654321";
    const P256DH: &str =
        "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
    const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";
    const ENDPOINT: &str = "https://fcm.googleapis.com/fcm/send/obs-endpoint-secret-part";
    let dir = tempfile::tempdir().unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(node_config(dir.path()))
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = node.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let mut address = None;
    while address.is_none() {
        let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(30)) else {
            node.kill().unwrap();
            panic!("the node did not log its address within 30 s: {log:#?}");
        };
        if let Ok(event) = serde_json::from_str::<Value>(&line) {
            address = event["address"].as_str().map(str::to_owned);
        }
        log.push(line);
    }
    let base = format!("http://{}", address.unwrap());
    let client = reqwest::Client::new();
    let jwt = identity_token(IDENTITY, 300, TOKEN_SECRET_A);

    let put = |device: &str, credential: &str, body: Value| {
        client
            .put(format!(
                "{base}/v1/identities/{IDENTITY}/registrations/{device}"
            ))
            .bearer_auth(credential)
            .json(&body)
            .send()
    };
    assert_eq!(
        put("iphone", KEY_A, apns_body(APNS_TOKEN))
            .await
            .unwrap()
            .status(),
        201
    );
    let web = json!({"platform": "webpush", "app": "web", "endpoint": ENDPOINT,
        "keys": {"p256dh": P256DH, "auth": AUTH}});
    assert_eq!(put("browser", &jwt, web).await.unwrap().status(), 201);
    // A refused credential is logged (at debug) without the credential.
    let forged = identity_token(IDENTITY, 300, "not-the-tenant-secret-0123456789abcdef");
    assert_eq!(
        put("iphone", &forged, apns_body(APNS_TOKEN))
            .await
            .unwrap()
            .status(),
        401
    );
    let listed = client
        .get(format!("{base}/v1/identities/{IDENTITY}/registrations"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    let fingerprint = listed["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|registration| registration["device_id"] == "iphone")
        .unwrap()["token_fingerprint"]
        .clone();
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ringcast_registrations_total{"));
    // Invalid fields (422) and a malformed body (400) for the identity.
    let bad = put(
        "tv",
        KEY_A,
        json!({"platform": "apns", "app": "ios", "token": "zz"}),
    );
    assert_eq!(bad.await.unwrap().status(), 422);
    let malformed = put("tv", KEY_A, json!({"platform": "apns", "nonsense": true}));
    assert_eq!(malformed.await.unwrap().status(), 400);
    // A ring and its end (the node has no APNs credential: the outcome is not `delivered`,
    // and that path logs too), then sign out everywhere.
    let call = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(KEY_A)
            .json(&body)
            .send()
    };
    let ring = json!({"call_id": "obs-call-1", "callee": IDENTITY,
        "caller": {"id": "+15550001111", "display_name": "Obs Caller"}});
    assert_eq!(
        call("/v1/calls?wait=true", ring).await.unwrap().status(),
        200
    );
    let end = json!({"callee": IDENTITY, "reason": "missed"});
    assert_eq!(
        call("/v1/calls/obs-call-1/end", end)
            .await
            .unwrap()
            .status(),
        202
    );
    let revoked = client
        .delete(format!("{base}/v1/identities/{IDENTITY}"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    let killed = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the node did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log.extend(std::iter::from_fn(|| {
        lines_rx.recv_timeout(Duration::from_secs(2)).ok()
    }));

    let events: Vec<Value> = log
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
        })
        .collect();
    // The log names the device's token the way the API lists it: by fingerprint.
    assert!(
        events.iter().any(|event| event["message"] == "registered"
            && event["token"] == fingerprint
            && event["level"] == "INFO"),
        "no `registered` line with the token's fingerprint {fingerprint}: {log:#?}"
    );
    // Identities: only their fingerprint at info and above.
    let print = hex::encode(&Sha256::digest(IDENTITY)[..4]);
    assert!(
        events
            .iter()
            .any(|event| event["message"] == "registered" && event["identity"] == print.as_str()),
        "no `registered` line with the identity's fingerprint {print}: {log:#?}"
    );
    assert!(
        events
            .iter()
            .any(|event| event["message"] == "identity revoked"
                && event["identity"] == print.as_str()),
        "no `identity revoked` line with the identity's fingerprint {print}: {log:#?}"
    );
    for (line, event) in log.iter().zip(&events) {
        if event["level"] != "DEBUG" && event["level"] != "TRACE" {
            for identity in [IDENTITY, "15557654321", "+15550001111"] {
                assert!(
                    !line.contains(identity),
                    "an identity in clear at {}: {line}",
                    event["level"]
                );
            }
        }
    }
    let text = log.join("\n");
    for secret in [
        APNS_TOKEN,
        P256DH,
        AUTH,
        "obs-endpoint-secret-part",
        KEY_A,
        TOKEN_SECRET_A,
        jwt.as_str(),
        forged.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "the log shows a secret ({secret}):\n{text}"
        );
    }
}
