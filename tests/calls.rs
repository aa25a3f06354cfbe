//! Call events end to end: a real node (router, providers, store) ringing devices on the
//! simulator over real TLS + HTTP/2, as call control would drive it.

mod support;

use ringcast::config::{AppConfig, Config, SecretSource};
use ringcast::simulator::{
    ApnsCredential, FcmServiceAccount, HeldAnswers, Profile, RunningSimulator, Simulator,
    SimulatorConfig,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use support::app::{KEY_A, TOKEN_SECRET_A, TestApp, TestStore, identity_token, spawn_with};
use support::eventually::{eventually, until};

/// Tenant A's APNs team (tests/support/app.rs) and the key id these tests add.
const TEAM: &str = "TEAMID1234";
const KID: &str = "KEYID12345";

struct Rig {
    sim: RunningSimulator,
    app: TestApp,
}

/// A simulator with `profile` that knows tenant A's APNs key, and a node whose APNs provider
/// points at it, tuned by `tune`.
async fn rig(
    profile: Profile,
    store: Option<String>,
    tune: impl FnOnce(&mut Config, &RunningSimulator),
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key_file = dir.path().join("apns.p8");
    std::fs::write(&key_file, pair.serialize_pem()).unwrap();
    let cert = dir.path().join("simulator.pem");
    let sim = Simulator::start(SimulatorConfig {
        apns_keys: vec![ApnsCredential {
            team_id: TEAM.into(),
            key_id: KID.into(),
            public_key_pem: pair.public_key_pem(),
        }],
        // The development service account: only a test that gives tenant A's android app
        // a credential ([`with_fcm`]) sends to FCM.
        fcm_accounts: vec![
            FcmServiceAccount::from_service_account_json(&std::fs::read(DEV_ACCOUNT).unwrap())
                .unwrap(),
        ],
        profile,
        cert_out: Some(cert.clone()),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let store = match store {
        Some(url) => TestStore::Redis(url),
        None => TestStore::Embedded(dir.path().join("registry.redb")),
    };
    let mut config = support::app::test_config(store, dir.path());
    point_at(&mut config, &sim, cert, key_file);
    tune(&mut config, &sim);
    let app = spawn_with(config, dir).await;
    Rig { sim, app }
}

/// The development FCM service account (its `token_uri` names 127.0.0.1:8444).
const DEV_ACCOUNT: &str = ringcast::config::dev::FCM_SERVICE_ACCOUNT;

/// Gives tenant A's `android` app the development service account and points FCM at `sim`
/// (its token URI at the simulator's HTTP/1.1-only token endpoint, as Google's speaks); the
/// account file is written into `dir`.
fn with_fcm(config: &mut Config, sim: &RunningSimulator, dir: &std::path::Path) {
    let simulator = sim.base_url();
    let mut account: Value = serde_json::from_slice(&std::fs::read(DEV_ACCOUNT).unwrap()).unwrap();
    account["token_uri"] = sim.token_url().into();
    let account_file = dir.join("fcm-service-account.json");
    std::fs::write(&account_file, account.to_string()).unwrap();
    config.providers.fcm.base_url = simulator;
    config.providers.fcm.trusted_roots = config.providers.apns.trusted_roots.clone();
    let android = config
        .tenants
        .get_mut("a")
        .unwrap()
        .apps
        .get_mut("android")
        .unwrap();
    let AppConfig::Fcm(android) = android else {
        panic!("android is an FCM app");
    };
    android.project_id = account["project_id"].as_str().map(str::to_owned);
    android.service_account = Some(SecretSource::File(account_file));
}

/// Points tenant A's `ios` app and the APNs provider at `sim`.
fn point_at(config: &mut Config, sim: &RunningSimulator, cert: PathBuf, key: PathBuf) {
    let ios = config
        .tenants
        .get_mut("a")
        .unwrap()
        .apps
        .get_mut("ios")
        .unwrap();
    let AppConfig::Apns(ios) = ios else {
        panic!("ios is an APNs app");
    };
    ios.key_id = Some(KID.into());
    ios.key = Some(SecretSource::File(key));
    let apns = &mut config.providers.apns;
    apns.production_url = sim.base_url();
    apns.sandbox_url = sim.apns_sandbox_url();
    apns.trusted_roots = Some(cert);
    apns.connections = 1;
}

/// A simulator that answers one stream at a time per connection: a ring whose answer is held
/// ([`RunningSimulator::hold_answers`]) holds the stream while the others wait in the queue.
fn one_stream() -> Profile {
    Profile {
        max_concurrent_streams: 1,
        ..Profile::default()
    }
}

/// Which of devices 1, 2 and 3 got a ring.
fn rung_of_devices_1_to_3(rig: &Rig) -> Vec<u8> {
    [1, 2, 3]
        .into_iter()
        .filter(|n| {
            rig.pushes_to(*n)
                .iter()
                .any(|p| p.payload["ringcast"]["type"] == "incoming_call")
        })
        .collect()
}

/// Device `n`'s PushKit (VoIP) token, a production token by the simulator's rule
/// (`ringcast::simulator::apns`).
fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// Device `n`'s regular (alert) token: its second byte is 0xa1.
fn alert_token(n: u8) -> String {
    format!("{n:02x}a1{}", format!("{n:02x}").repeat(30))
}

/// Device `n`'s PushKit token from a debug build: a sandbox token (first byte 0x5b).
fn sandbox_token(n: u8) -> String {
    format!("5b{}", format!("{n:02x}").repeat(31))
}

impl Rig {
    async fn register(&self, identity: &str, device: &str, body: Value) {
        let (status, answer) = self.app.register(KEY_A, identity, device, &body).await;
        assert!(status == 201 || status == 200, "{status}: {answer}");
    }

    /// Registers device `n` with both its tokens, as an app that asked PushKit and the
    /// notification center registers.
    async fn register_apns(&self, identity: &str, device: &str, n: u8) {
        self.register(
            identity,
            device,
            json!({"platform": "apns", "app": "ios", "token": token(n),
                   "alert_token": alert_token(n)}),
        )
        .await;
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(KEY_A, path, body).await
    }

    /// [`Rig::post`] over a connection of its own, which the node gives the next worker.
    async fn post_on_new_connection(&self, path: &str, body: Value) -> (u16, Value) {
        let client = reqwest::Client::new();
        self.app.post(&client, KEY_A, path, &body).await
    }

    async fn post_as(&self, credential: &str, path: &str, body: Value) -> (u16, Value) {
        self.app
            .post(&self.app.client, credential, path, &body)
            .await
    }

    async fn ring(&self, callee: &str, call_id: &str, wait: bool) -> (u16, Value) {
        let path = if wait {
            "/v1/calls?wait=true"
        } else {
            "/v1/calls"
        };
        self.post(
            path,
            json!({"call_id": call_id, "callee": callee,
                   "caller": {"id": "+15550100", "display_name": "Bob"}, "video": true}),
        )
        .await
    }

    async fn end(&self, call_id: &str, body: Value, wait: bool) -> (u16, Value) {
        let suffix = if wait { "?wait=true" } else { "" };
        self.post(&format!("/v1/calls/{call_id}/end{suffix}"), body)
            .await
    }

    /// Waits until the node counted `rings` rings withdrawn from its queues, then releases
    /// the answers `held` back.
    async fn release_once_withdrawn(&self, held: HeldAnswers, rings: f64) {
        let withdrawn = [
            ("provider", "apns"),
            ("priority", "p0"),
            ("outcome", "withdrawn"),
        ];
        eventually("the queued rings withdrawn", || async {
            let scrape = self.scrape().await;
            (sample(&scrape, "ringcast_pushes_total", &withdrawn)? >= rings).then_some(())
        })
        .await;
        held.release();
    }

    /// The node's `/metrics`.
    async fn scrape(&self) -> String {
        let response = self
            .app
            .client
            .get(self.app.url("/metrics"))
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }

    /// The simulator's records for device `n`'s tokens (PushKit and regular).
    fn pushes_to(&self, n: u8) -> Vec<ringcast::simulator::RecordedPush> {
        self.sim
            .records()
            .into_iter()
            .filter(|r| r.device_token == token(n) || r.device_token == alert_token(n))
            .collect()
    }

    /// The simulator's records for one device token (hex).
    fn pushes_to_token(&self, token: &str) -> Vec<ringcast::simulator::RecordedPush> {
        self.sim
            .records()
            .into_iter()
            .filter(|r| r.device_token == token)
            .collect()
    }

    /// `identity`'s registrations as the API lists them, by device id.
    async fn listed(&self, identity: &str) -> std::collections::BTreeMap<String, Value> {
        let (status, body) = self.app.list(KEY_A, identity).await;
        assert_eq!(status, 200, "{body}");
        body["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["device_id"].as_str().unwrap().to_owned(), r.clone()))
            .collect()
    }
}

/// `{device_id: outcome}` of a `?wait=true` answer.
fn outcomes(answer: &Value) -> std::collections::BTreeMap<String, String> {
    outcomes_with_reasons(answer)
        .into_iter()
        .map(|(device, (outcome, _))| (device, outcome))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_every_device_with_the_right_push_and_reports_each_outcome() {
    let rig = rig(Profile::default(), None, |_, _| {}).await;
    rig.register_apns("alice", "iphone", 1).await;
    rig.register(
        "alice",
        "ipad",
        json!({"platform": "apns", "app": "ios", "token": sandbox_token(2), "environment": "sandbox"}),
    )
    .await;
    rig.register(
        "alice",
        "pixel",
        json!({"platform": "fcm", "app": "android", "token": "fcm-token-1"}),
    )
    .await;

    let (status, answer) = rig.ring("alice", "call-1", true).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["event_id"], "call-1");
    assert_eq!(answer["devices"], 3);
    assert_eq!(answer["duplicate"], false);
    let by_device = outcomes(&answer);
    assert_eq!(by_device["iphone"], "delivered");
    assert_eq!(by_device["ipad"], "delivered");
    // No FCM credential in this tenant: reported, not silently dropped.
    assert_eq!(by_device["pixel"], "rejected");
    let pixel = answer["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["device_id"] == "pixel")
        .unwrap();
    assert_eq!(pixel["reason"], "provider_not_configured");

    // What the simulator received is what ?wait=true said.
    for token in [token(1), sandbox_token(2)] {
        let pushes = rig.pushes_to_token(&token);
        assert_eq!(pushes.len(), 1, "token {token}");
        let push = &pushes[0];
        assert_eq!(push.push_type, "voip");
        assert_eq!(push.topic, "com.example.phone.voip");
        assert_eq!(push.priority, 10);
        assert_eq!(push.collapse_id.as_deref(), Some("call-1"));
        let payload = &push.payload["ringcast"];
        assert_eq!(payload["type"], "incoming_call");
        assert_eq!(payload["call_id"], "call-1");
        assert_eq!(payload["caller_id"], "+15550100");
        assert_eq!(payload["caller_name"], "Bob");
        assert_eq!(payload["video"], true);
    }
}

/// `{device_id: (outcome, reason)}` of a `?wait=true` answer.
fn outcomes_with_reasons(
    answer: &Value,
) -> std::collections::BTreeMap<String, (String, Option<String>)> {
    answer["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("no outcomes in {answer}"))
        .iter()
        .map(|o| {
            (
                o["device_id"].as_str().unwrap().to_owned(),
                (
                    o["outcome"].as_str().unwrap().to_owned(),
                    o["reason"].as_str().map(str::to_owned),
                ),
            )
        })
        .collect()
}

/// Waits (up to 5 s) until `identity`'s listing satisfies `done`; returns it.
async fn listed_when(
    rig: &Rig,
    identity: &str,
    done: impl Fn(&std::collections::BTreeMap<String, Value>) -> bool,
) -> std::collections::BTreeMap<String, Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let listed = rig.listed(identity).await;
        if done(&listed) {
            return listed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "listing never settled: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The "done when": an identity with a live iPhone (both tokens), a dead one (the
/// app uninstalled: Apple answers 410 for its tokens), one with only a PushKit token, a
/// debug build registered as production, and a live and a dead Android phone (FCM
/// UNREGISTERED). A ring, a cancel, a missed call: the live ones keep their registrations,
/// the dead ones are deleted, the debug one moves to the sandbox, the VoIP-only one gets no
/// notice over APNs (and says so), and no VoIP token ever gets anything but a VoIP push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_cancel_and_missed_keep_live_devices_and_delete_only_the_dead_ones() {
    let profile = Profile {
        unregistered_tokens: vec![token(20), alert_token(20), "fcm-gone-1".into()],
        apns_bundle_ids: vec!["com.example.phone".into()],
        ..Profile::default()
    };
    let accounts = tempfile::tempdir().unwrap();
    let rig = rig(profile, None, |config, sim| {
        with_fcm(config, sim, accounts.path());
    })
    .await;
    for (device, token) in [("pixel", "fcm-live-1"), ("old-pixel", "fcm-gone-1")] {
        rig.register(
            "carol",
            device,
            json!({"platform": "fcm", "app": "android", "token": token}),
        )
        .await;
    }
    rig.register_apns("carol", "live", 21).await;
    rig.register_apns("carol", "dead", 20).await;
    rig.register(
        "carol",
        "voip-only",
        json!({"platform": "apns", "app": "ios", "token": token(22)}),
    )
    .await;
    // RFC 8599 form with both tokens, from a debug build wrongly registered as production.
    let debug_alert = format!("5ba1{}", "17".repeat(30));
    rig.register(
        "carol",
        "debug",
        json!({"pn_provider": "apns", "pn_prid": format!("{}:voip&{debug_alert}:remote", sandbox_token(23)),
               "pn_param": "TEAMID1234.com.example.phone.voip&remote"}),
    )
    .await;
    let listed = rig.listed("carol").await;
    assert_eq!(listed["debug"]["environment"], "production");
    assert!(listed["live"]["alert_token_fingerprint"].is_string());
    assert!(listed["voip-only"].get("alert_token_fingerprint").is_none());

    // The ring: every device gets a VoIP push; the dead one's verdict deletes it.
    let (status, answer) = rig.ring("carol", "call-7", true).await;
    assert_eq!(status, 200, "{answer}");
    let rung = outcomes_with_reasons(&answer);
    assert_eq!(rung["live"].0, "delivered");
    assert_eq!(rung["voip-only"].0, "delivered");
    assert_eq!(rung["debug"].0, "delivered", "taken by the sandbox host");
    assert_eq!(
        rung["dead"],
        ("dead_token".to_owned(), Some("Unregistered".to_owned()))
    );
    assert_eq!(rung["pixel"].0, "delivered");
    assert_eq!(
        rung["old-pixel"],
        ("dead_token".to_owned(), Some("UNREGISTERED".to_owned()))
    );
    let live = ["debug", "live", "pixel", "voip-only"];
    let listed = listed_when(&rig, "carol", |listed| {
        listed.len() == live.len() && listed["debug"]["environment"] == "sandbox"
    })
    .await;
    assert_eq!(listed.keys().collect::<Vec<_>>(), live);

    // The cancel, then the missed-call notice: alerts to the regular tokens only.
    let cancel = json!({"callee": "carol", "reason": "cancelled"});
    let missed = json!({"callee": "carol", "reason": "missed", "caller": {"id": "+15550100"}});
    for (body, kind) in [(cancel, "call_ended"), (missed, "missed_call")] {
        let (status, answer) = rig.end("call-7", body, true).await;
        assert_eq!(status, 200, "{answer}");
        let ended = outcomes_with_reasons(&answer);
        assert_eq!(ended.len(), 4, "{kind}: {ended:?}");
        assert_eq!(ended["live"].0, "delivered", "{kind}");
        assert_eq!(ended["pixel"].0, "delivered", "{kind}");
        assert_eq!(ended["debug"].0, "delivered", "{kind}");
        assert_eq!(ended["voip-only"].0, "no_alert_token", "{kind}");
        let to_live = rig.pushes_to_token(&alert_token(21));
        assert!(
            to_live.iter().any(|p| p.payload["ringcast"]["type"] == kind
                && p.push_type == "alert"
                && p.topic == "com.example.phone"),
            "{kind}: {to_live:?}"
        );
        assert!(
            rig.pushes_to_token(&debug_alert)
                .iter()
                .any(|p| p.payload["ringcast"]["type"] == kind),
            "{kind}"
        );
    }
    // Never a non-VoIP push to a VoIP token.
    for voip in [token(21), token(22), sandbox_token(23)] {
        let pushes = rig.pushes_to_token(&voip);
        assert_eq!(pushes.len(), 1, "{voip}: only its ring");
        assert_eq!(pushes[0].push_type, "voip");
    }
    let pixel: Vec<_> = rig
        .pushes_to_token("fcm-live-1")
        .into_iter()
        .map(|p| p.payload["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(pixel, ["incoming_call", "call_ended", "missed_call"]);
    let listed = rig.listed("carol").await;
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        live,
        "every live device kept its registration"
    );
}

/// A tenant's app configured with the wrong bundle id: APNs answers DeviceTokenNotForTopic
/// for every push, which blames the configuration, so none of the app's registrations is
/// deleted; the outcome names the reason and the per-app counter shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_bundle_id_deletes_none_of_the_apps_registrations() {
    let profile = Profile {
        apns_bundle_ids: vec!["com.example.phone".into()],
        ..Profile::default()
    };
    let rig = rig(profile, None, |config, _| {
        let ios = config
            .tenants
            .get_mut("a")
            .unwrap()
            .apps
            .get_mut("ios")
            .unwrap();
        let AppConfig::Apns(ios) = ios else {
            panic!("ios is an APNs app");
        };
        ios.bundle_id = Some("com.example.typo".into());
    })
    .await;
    for (device, n) in [("iphone", 31), ("ipad", 32), ("mini", 33)] {
        rig.register_apns("dave", device, n).await;
    }
    for call in ["call-8", "call-9"] {
        let (status, answer) = rig.ring("dave", call, true).await;
        assert_eq!(status, 200, "{answer}");
        for (device, outcome) in outcomes_with_reasons(&answer) {
            assert_eq!(
                outcome,
                (
                    "misconfigured".to_owned(),
                    Some("DeviceTokenNotForTopic".to_owned())
                ),
                "{device}"
            );
        }
        let (status, answer) = rig
            .end(call, json!({"callee": "dave", "reason": "cancelled"}), true)
            .await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            outcomes(&answer).values().all(|o| o == "misconfigured"),
            "{answer}"
        );
    }
    // Two rings and two cancels later (each verdict's cleanup ran before the next answer),
    // every registration is still there.
    assert_eq!(rig.listed("dave").await.len(), 3);
    assert!(rig.sim.records().is_empty(), "nothing was accepted");
    let scrape = rig
        .app
        .client
        .get(rig.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = scrape
        .lines()
        .find(|line| {
            line.starts_with("ringcast_push_config_errors_total{")
                && line.contains("tenant=\"a\"")
                && line.contains("app=\"ios\"")
                && line.contains("reason=\"DeviceTokenNotForTopic\"")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<f64>().ok());
    assert!(counted.is_some_and(|n| n >= 12.0), "{counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_elsewhere_stops_the_other_devices_only() {
    let rig = rig(Profile::default(), None, |_, _| {}).await;
    rig.register_apns("alice", "iphone", 1).await;
    rig.register_apns("alice", "ipad", 2).await;
    let (status, _) = rig.ring("alice", "call-2", true).await;
    assert_eq!(status, 200);

    let (status, answer) = rig
        .end(
            "call-2",
            json!({"callee": "alice", "reason": "answered_elsewhere", "device_id": "iphone"}),
            true,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["event_id"], "call-2:answered_elsewhere");
    let by_device = outcomes(&answer);
    assert_eq!(by_device.len(), 1, "{by_device:?}");
    assert_eq!(by_device["ipad"], "delivered");
    let ended = rig
        .pushes_to(2)
        .into_iter()
        .find(|p| p.payload["ringcast"]["type"] == "call_ended")
        .expect("the iPad got call_ended");
    // Never a VoIP push for anything but a ring (iOS 13+).
    assert_eq!(ended.push_type, "alert");
    assert_eq!(ended.payload["ringcast"]["reason"], "answered_elsewhere");
    assert_eq!(
        rig.pushes_to(1).len(),
        1,
        "the answering iPhone got only its ring"
    );

    // A missed call is a P2 notice to every device.
    let (status, answer) = rig
        .end(
            "call-3",
            json!({"callee": "alice", "reason": "missed", "caller": {"id": "+15550100"}}),
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(outcomes(&answer).len(), 2);
    assert!(
        rig.pushes_to(1)
            .iter()
            .any(|p| p.priority == 5 && p.payload["ringcast"]["type"] == "missed_call")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_before_the_rings_leave_withdraws_them_and_stops_only_what_rang() {
    // One connection, one stream, slow answers: the first ring holds the stream while the
    // others wait in the queue, where the cancel finds them.
    let rig = rig(one_stream(), None, |config, _| {
        // One HTTP worker: one router, one provider, one connection.
        config.server.workers = 1;
        config.registry.shards = 1;
    })
    .await;
    for (device, n) in [("a", 1), ("b", 2), ("c", 3)] {
        rig.register_apns("alice", device, n).await;
    }
    // Warm the connection so the simulator's stream limit is known before the burst.
    rig.register_apns("warm", "w", 9).await;
    let (status, _) = rig.ring("warm", "warm-call", true).await;
    assert_eq!(status, 200);

    let held = rig.sim.hold_answers();
    let (status, rung) = rig.ring("alice", "call-4", false).await;
    assert_eq!((status, rung["devices"].as_u64()), (202, Some(3)));
    // The cancel must find the first ring on the wire (held) and the others queued: wait for
    // that ring to arrive (the warm-up was the first), and answer it once the others were
    // withdrawn.
    until("the first ring on the wire", || {
        rig.sim.stats().received >= 2
    })
    .await;
    let ending = rig.end(
        "call-4",
        json!({"callee": "alice", "reason": "cancelled"}),
        true,
    );
    let ((status, answer), ()) = tokio::join!(ending, rig.release_once_withdrawn(held, 2.0));
    assert_eq!(status, 200, "{answer}");
    // Two rings never left: withdrawn, so only the device that rang gets "call ended".
    let ended = outcomes(&answer);
    assert_eq!(ended.len(), 1, "{ended:?}");
    let rang = rung_of_devices_1_to_3(&rig);
    assert_eq!(rang.len(), 1, "exactly one ring left the queue");
    for n in [1, 2, 3] {
        let got_end = rig
            .pushes_to(n)
            .iter()
            .any(|p| p.payload["ringcast"]["type"] == "call_ended");
        assert_eq!(got_end, rang.contains(&n), "token {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_arriving_on_another_worker_withdraws_the_rings_queued_on_the_first() {
    // Each HTTP worker routes the calls it receives with its own router and providers. The
    // ring and its cancel come on two new connections, which the node's accept loop hands to
    // its two workers in turn: the rings wait in one router's queue, the cancel arrives at
    // the other's, and must still find them.
    let rig = rig(one_stream(), None, |config, _| {
        config.server.workers = 2;
    })
    .await;
    for (device, n) in [("a", 1), ("b", 2), ("c", 3)] {
        rig.register_apns("alice", device, n).await;
    }
    let held = rig.sim.hold_answers();
    let call = json!({"call_id": "call-5", "callee": "alice", "caller": {"id": "bob"}});
    let (status, rung) = rig.post_on_new_connection("/v1/calls", call).await;
    assert_eq!((status, rung["devices"].as_u64()), (202, Some(3)));
    until("the first ring on the wire", || {
        rig.sim.stats().received >= 1
    })
    .await;
    let cancel = json!({"callee": "alice", "reason": "cancelled"});
    let ending = rig.post_on_new_connection("/v1/calls/call-5/end?wait=true", cancel);
    let ((status, answer), ()) = tokio::join!(ending, rig.release_once_withdrawn(held, 2.0));
    assert_eq!(status, 200, "{answer}");
    // Two rings never left, wherever they waited: only the device that rang is told.
    let rang = rung_of_devices_1_to_3(&rig);
    assert_eq!(rang.len(), 1, "exactly one ring left the queue");
    assert_eq!(outcomes(&answer).len(), 1, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_sent_on_two_connections_at_once_rings_once() {
    // Both copies reach the node while the other is routed, each on its own worker's router.
    // The store gives a node its own claim back (a retry after a lost answer), so only the
    // node's one set of events being routed can tell the second copy it is a duplicate.
    let redis = support::redis_server::shared().await;
    let rig = rig(Profile::default(), Some(redis.url()), |config, _| {
        config.server.workers = 2;
    })
    .await;
    let identity = format!("twice-{}", std::process::id());
    rig.register_apns(&identity, "iphone", 11).await;
    let call_id = format!("call-twice-{}", ringcast::clock::now_millis());
    let call = json!({"call_id": call_id, "callee": identity, "caller": {"id": "bob"}});
    let (first, second) = tokio::join!(
        rig.post_on_new_connection("/v1/calls?wait=true", call.clone()),
        rig.post_on_new_connection("/v1/calls?wait=true", call.clone())
    );
    let duplicates: Vec<_> = [&first, &second]
        .iter()
        .map(|(status, answer)| {
            assert!(*status == 200 || *status == 202, "{status}: {answer}");
            answer["duplicate"].as_bool()
        })
        .collect();
    assert_eq!(
        duplicates.iter().filter(|d| **d == Some(false)).count(),
        1,
        "{first:?} {second:?}"
    );
    let rings = rig
        .pushes_to(11)
        .iter()
        .filter(|p| p.payload["ringcast"]["type"] == "incoming_call")
        .count();
    assert_eq!(rings, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_rings_once_even_through_two_nodes_sharing_redis() {
    let redis = support::redis_server::shared().await;
    let first = rig(Profile::default(), Some(redis.url()), |_, _| {}).await;
    let identity = format!("dup-{}", std::process::id());
    first.register_apns(&identity, "iphone", 7).await;
    let call_id = format!("call-dup-{}", ringcast::clock::now_millis());
    let (status, answer) = first.ring(&identity, &call_id, true).await;
    assert_eq!((status, answer["duplicate"].as_bool()), (200, Some(false)));

    // The same event again, to the same node and to a second node on the same Redis.
    let (status, again) = first.ring(&identity, &call_id, false).await;
    assert_eq!(status, 202);
    assert_eq!(
        (again["duplicate"].as_bool(), again["devices"].as_u64()),
        (Some(true), Some(0))
    );
    let second = rig(Profile::default(), Some(redis.url()), |_, _| {}).await;
    let (status, again) = second.ring(&identity, &call_id, false).await;
    assert_eq!(status, 202);
    assert_eq!(again["duplicate"], true);
    // A barrier, not a fixed sleep: a marker call rung on each node with `wait=true` has its
    // outcome only once that node's router and APNs dispatcher are past the duplicates, so a
    // push they had made would be recorded by then.
    let marker = format!("{identity}-marker");
    first.register_apns(&marker, "iphone", 8).await;
    for (n, node) in [&first, &second].into_iter().enumerate() {
        let (status, answer) = node.ring(&marker, &format!("{call_id}-{n}"), true).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(outcomes(&answer)["iphone"], "delivered");
    }
    assert_eq!(first.pushes_to(7).len() + second.pushes_to(7).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_after_the_deadline_is_expired_and_nothing_is_sent_after_it() {
    let rig = rig(Profile::default(), None, |_, _| {}).await;
    rig.register_apns("alice", "iphone", 1).await;
    // The push service holds the answer past the ring's 1 s deadline.
    let held = rig.sim.hold_answers();
    let (status, answer) = rig
        .post(
            "/v1/calls?wait=true",
            json!({"call_id": "call-5", "callee": "alice", "caller": {"id": "bob"},
                   "ring_timeout_seconds": 1}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer)["iphone"], "expired");
    // The push service still answers the request the node stopped waiting for at the
    // deadline (it had received it whole); after that answer, nothing more may come.
    held.release();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while rig.sim.stats().requests == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the request was never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Counted on arrival, not on answer: a request sent after the deadline arrives inside the
    // window below whatever its answer does.
    let sent = rig.sim.stats().received;
    // Absence after a proven end (the expired request answered): a retry would follow within
    // the backoff, well inside this window, so it is a grace period, not a guess at progress.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        rig.sim.stats().received,
        sent,
        "nothing sent after the deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_sheds_missed_calls_before_call_ended_and_refuses_rings_with_503() {
    let rig = rig(one_stream(), None, |config, _| {
        // One HTTP worker: one router, so one dispatcher whose queues fill.
        config.server.workers = 1;
        config.registry.shards = 1;
        let apns = &mut config.providers.apns;
        apns.max_in_flight = 1;
        apns.queues.total = 4;
        apns.queues.p0 = 4;
        apns.queues.p1 = 4;
        apns.queues.p2 = 4;
    })
    .await;
    for n in 1..=10u8 {
        rig.register_apns(&format!("u{n}"), "phone", n).await;
    }
    // u1's ring takes the one delivery slot (its answer held until the refusal below); the
    // queue of 4 fills with 2 notices, 2 ends.
    let held = rig.sim.hold_answers();
    assert_eq!(rig.ring("u1", "c1", false).await.0, 202);
    until("u1's ring on the wire", || rig.sim.stats().received >= 1).await;
    for n in [2, 3] {
        let (status, _) = rig
            .end(
                &format!("c{n}"),
                json!({"callee": format!("u{n}"), "reason": "missed"}),
                false,
            )
            .await;
        assert_eq!(status, 202);
    }
    for n in [4, 5] {
        let (status, _) = rig
            .end(
                &format!("c{n}"),
                json!({"callee": format!("u{n}"), "reason": "cancelled"}),
                false,
            )
            .await;
        assert_eq!(status, 202);
    }
    // Rings push out the notices first, then the call-ended pushes...
    for n in 6..=9 {
        let (status, answer) = rig.ring(&format!("u{n}"), &format!("c{n}"), false).await;
        assert_eq!(status, 202, "ring {n}: {answer}");
    }
    // ...and a ring that finds only rings ahead of it is refused: 503, never dropped.
    let response = rig
        .app
        .client
        .post(rig.app.url("/v1/calls"))
        .bearer_auth(KEY_A)
        .json(&json!({"call_id": "c10", "callee": "u10", "caller": {"id": "bob"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    held.release();

    // Once the queue drains (the last admitted ring answered), the refused event was given
    // back: its retry rings.
    until("the admitted rings delivered", || {
        (6..=9).all(|n| !rig.pushes_to(n).is_empty())
    })
    .await;
    let (status, answer) = rig.ring("u10", "c10", true).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], false);
    assert_eq!(outcomes(&answer)["phone"], "delivered");

    let kinds = |n: u8| -> Vec<String> {
        rig.pushes_to(n)
            .iter()
            .map(|p| p.payload["ringcast"]["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        kinds(2).is_empty() && kinds(3).is_empty(),
        "missed-call notices shed"
    );
    assert!(
        kinds(4).is_empty() && kinds(5).is_empty(),
        "call-ended pushes shed"
    );
    for n in [1, 6, 7, 8, 9, 10] {
        assert_eq!(kinds(n), ["incoming_call"], "ring {n}");
    }
}

/// A request that answers at once: `(status, problem detail)`.
/// A ring `call` is refused with `503` and `Retry-After` (call control's cue to retry).
async fn assert_refused_with_retry_after(rig: &Rig, call: Value) {
    let response = rig
        .app
        .client
        .post(rig.app.url("/v1/calls"))
        .bearer_auth(KEY_A)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

async fn refused(rig: &Rig, path: &str, body: Value) -> (u16, String) {
    let (status, answer) = rig.post(path, body).await;
    (
        status,
        answer["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_router_refuses_missed_calls_first_then_call_ended_then_rings() {
    // A private Redis, frozen mid-test: every event's claim then waits on it, so the events
    // sent meanwhile stay in flight and fill the router's admission (4 per router; one HTTP
    // worker, so one router routes them all).
    let redis = support::redis_server::RedisServer::start();
    let rig = rig(Profile::default(), Some(redis.url()), |config, _| {
        config.server.workers = 1;
        config.registry.shards = 1;
        config.registry.store_timeout_ms = 30_000;
        config.registry.redis.command_timeout_ms = 30_000;
        config.router.max_events_in_flight = 4;
    })
    .await;
    for n in 1..=8u8 {
        rig.register_apns(&format!("u{n}"), "phone", n).await;
    }
    redis.freeze();
    let rig = std::sync::Arc::new(rig);
    let mut stuck = tokio::task::JoinSet::new();
    let mut hang = |path: String, body: Value| {
        let rig = rig.clone();
        stuck.spawn(async move { rig.post(&path, body).await });
    };
    // An admitted event's claim is its first Redis command, so "its bytes reached the frozen
    // Redis" proves the router admitted it: waited for one event at a time, not slept on.
    let mut unread = redis.unread_bytes();
    let ring = |n: u8| json!({"call_id": format!("c{n}"), "callee": format!("u{n}"), "caller": {"id": "bob"}});
    let end = |n: u8, reason: &str| json!({"callee": format!("u{n}"), "reason": reason});

    // Two rings in flight: half the limit, so missed-call events are refused at once.
    hang("/v1/calls".into(), ring(1));
    unread = redis.command_arrived(unread).await;
    hang("/v1/calls".into(), ring(2));
    unread = redis.command_arrived(unread).await;
    let (status, detail) = refused(&rig, "/v1/calls/c3/end", end(3, "missed")).await;
    assert_eq!(
        (status, detail.contains("overloaded")),
        (503, true),
        "{detail}"
    );
    // A "call ended" still gets in (3 of 4), the next one no longer does.
    hang("/v1/calls/c4/end".into(), end(4, "cancelled"));
    unread = redis.command_arrived(unread).await;
    let (status, detail) = refused(&rig, "/v1/calls/c5/end", end(5, "cancelled")).await;
    assert_eq!(
        (status, detail.contains("overloaded")),
        (503, true),
        "{detail}"
    );
    // A ring still gets in (4 of 4); the next ring is refused with Retry-After.
    hang("/v1/calls".into(), ring(6));
    redis.command_arrived(unread).await;
    assert_refused_with_retry_after(&rig, ring(7)).await;

    // Redis answers again: every admitted event completes, and the refused ones were never
    // claimed, so their retries go through.
    redis.thaw();
    while let Some(answer) = stuck.join_next().await {
        let (status, answer) = answer.unwrap();
        assert_eq!(status, 202, "{answer}");
    }
    let (status, answer) = rig.post("/v1/calls?wait=true", ring(7)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer)["phone"], "delivered");
    let (status, answer) = rig.post("/v1/calls/c3/end", end(3, "missed")).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (202, &json!(false)),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_too_many_requests_refuses_registrations_then_call_ends_then_rings() {
    // Requests that wait on a frozen Redis stay in progress and fill the node's intake
    // (4 requests); the routers' own admission (128) is never reached.
    let redis = support::redis_server::RedisServer::start();
    let rig = rig(Profile::default(), Some(redis.url()), |config, _| {
        config.registry.store_timeout_ms = 30_000;
        config.registry.redis.command_timeout_ms = 30_000;
        config.server.max_requests_in_flight = 4;
    })
    .await;
    rig.register_apns("u1", "phone", 1).await;
    redis.freeze();
    let rig = std::sync::Arc::new(rig);
    let mut stuck = tokio::task::JoinSet::new();
    let register = |rig: std::sync::Arc<Rig>, n: u8| async move {
        let body = json!({"platform": "apns", "app": "ios", "token": token(n)});
        rig.app
            .register(KEY_A, &format!("u{n}"), "phone", &body)
            .await
    };
    // A request in progress sends its first Redis command once the intake let it in, so
    // "its bytes reached the frozen Redis" proves it holds a place: waited for, not slept on.
    let mut unread = redis.unread_bytes();
    let ring = |n: u8| json!({"call_id": format!("c{n}"), "callee": "u1", "caller": {"id": "bob"}});
    let end = json!({"callee": "u1", "reason": "cancelled"});

    // Two registrations in progress: half the limit, so the next registration is refused.
    for n in [2, 3] {
        stuck.spawn(register(rig.clone(), n));
        unread = redis.command_arrived(unread).await;
    }
    let (status, problem) = register(rig.clone(), 4).await;
    assert_eq!(status, 503, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("too many requests")
    );
    // A call end still gets in (3 of 4), the next one does not.
    let (rig2, end2) = (rig.clone(), end.clone());
    stuck.spawn(async move { rig2.post("/v1/calls/c9/end", end2).await });
    unread = redis.command_arrived(unread).await;
    let (status, _) = rig.post("/v1/calls/c8/end", end.clone()).await;
    assert_eq!(status, 503);
    // A ring still gets in (4 of 4); the next ring is refused at once, with Retry-After.
    let rig2 = rig.clone();
    stuck.spawn(async move { rig2.post("/v1/calls", ring(1)).await });
    redis.command_arrived(unread).await;
    assert_refused_with_retry_after(&rig, ring(2)).await;
    // The node stays observable: health and metrics are never refused, and show the intake.
    let health = rig.app.client.get(rig.app.url("/healthz")).send().await;
    assert_eq!(health.unwrap().status().as_u16(), 200);
    let metrics = rig.app.client.get(rig.app.url("/metrics")).send().await;
    let metrics = metrics.unwrap().text().await.unwrap();
    let sample = |series: &str| -> f64 {
        let line = metrics.lines().find(|line| line.starts_with(series));
        line.and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    // Other tests of this binary share the process-wide recorder: at least.
    assert!(sample("ringcast_requests_in_flight ") >= 4.0);
    assert!(sample("ringcast_requests_refused_total{route=\"ring\"}") >= 1.0);
    assert!(sample("ringcast_requests_refused_total{route=\"other\"}") >= 1.0);

    // Redis answers again: everything in progress completes, and the refused ring, retried,
    // rings.
    redis.thaw();
    while let Some(answer) = stuck.join_next().await {
        let (status, answer) = answer.unwrap();
        assert!([200, 201, 202].contains(&status), "{status}: {answer}");
    }
    let (status, answer) = rig.post("/v1/calls?wait=true", ring(2)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer)["phone"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_events_are_validated_and_need_a_server_key() {
    let rig = rig(Profile::default(), None, |_, _| {}).await;
    let good = json!({"call_id": "c1", "callee": "alice", "caller": {"id": "bob"}});

    // An identity token may manage its own registrations, never ring people.
    let token = identity_token("alice", 300, TOKEN_SECRET_A);
    let (status, problem) = rig.post_as(&token, "/v1/calls", good.clone()).await;
    assert_eq!(status, 403, "{problem}");
    let (status, _) = rig.post_as("wrong-key", "/v1/calls", good.clone()).await;
    assert_eq!(status, 401);

    let (status, problem) = rig
        .post(
            "/v1/calls",
            json!({"call_id": "has space", "callee": "bad/identity", "caller": {"id": ""},
                   "ring_timeout_seconds": 0, "event_id": ""}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in [
        "call_id",
        "callee",
        "caller.id",
        "ring_timeout_seconds",
        "event_id",
    ] {
        assert!(fields.contains(&field), "{field} missing in {fields:?}");
    }
    let (status, _) = rig
        .post("/v1/calls", json!({"call_id": "c1", "callee": "alice"}))
        .await;
    assert_eq!(
        status, 400,
        "a missing caller is malformed JSON for this endpoint"
    );
    let (status, _) = rig
        .post(
            "/v1/calls/c1/end",
            json!({"callee": "alice", "reason": "hung_up"}),
        )
        .await;
    assert_eq!(status, 400);

    // Nobody registered: accepted, zero devices, not an error.
    let (status, answer) = rig.post("/v1/calls", good).await;
    assert_eq!(status, 202);
    assert_eq!(answer["devices"], 0);
}

/// The value of the series of `name` whose labels include every `label=value` pair.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_and_event_is_counted_and_the_scrape_passes_promtool() {
    let rig = rig(Profile::default(), None, |_, _| {}).await;
    rig.register_apns("alice", "iphone", 1).await;
    rig.register(
        "alice",
        "pixel",
        json!({"platform": "fcm", "app": "android", "token": "fcm-token-1"}),
    )
    .await;
    assert_eq!(rig.ring("alice", "call-m", true).await.0, 200);
    assert_eq!(rig.ring("alice", "call-m", false).await.0, 202);

    let scrape = rig.scrape().await;
    let apns_p0 = [("provider", "apns"), ("priority", "p0")];
    let delivered = [apns_p0[0], apns_p0[1], ("outcome", "delivered")];
    assert!(sample(&scrape, "ringcast_pushes_total", &delivered).unwrap() >= 1.0);
    let rejected = [
        ("provider", "fcm"),
        ("priority", "p0"),
        ("outcome", "rejected"),
    ];
    assert!(sample(&scrape, "ringcast_pushes_total", &rejected).unwrap() >= 1.0);
    assert!(sample(&scrape, "ringcast_push_latency_seconds_count", &apns_p0).unwrap() >= 1.0);
    let accepted = [("kind", "incoming_call"), ("outcome", "accepted")];
    assert!(sample(&scrape, "ringcast_events_total", &accepted).unwrap() >= 1.0);
    let duplicate = [("kind", "incoming_call"), ("outcome", "duplicate")];
    assert!(sample(&scrape, "ringcast_events_total", &duplicate).unwrap() >= 1.0);
    let open = [("provider", "apns"), ("state", "open")];
    assert!(sample(&scrape, "ringcast_connections", &open).unwrap() >= 1.0);
    assert!(sample(&scrape, "ringcast_queue_capacity", &apns_p0).unwrap() >= 1.0);
    // No token and no call id in any label.
    assert!(!scrape.contains(&token(1)) && !scrape.contains("call-m"));

    // promtool judges the exposition after real traffic.
    let found = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        eprintln!(
            "SKIPPED: promtool check metrics: promtool is not installed (Debian `prometheus`)"
        );
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
