//! The load generator end to end: a real node (in-process, embedded store) whose APNs
//! provider points at the simulator, driven by `loadgen::run` over HTTP/1.1 and h2c; every
//! call must be answered, every APNs device rung, and the report's numbers must add up with
//! the simulator's own record.

mod support;

use ringcast::config::SecretSource;
use ringcast::loadgen::{self, HttpVersion, Rate, Scenario};
use ringcast::simulator::{ApnsCredential, Simulator, SimulatorConfig};
use std::collections::BTreeMap;
use support::app::{KEY_A, TestStore, spawn_with, test_config};

const TEAM: &str = "TEAMID1234";
const KID: &str = "KEYID12345";

#[tokio::test]
async fn a_small_scenario_is_delivered_and_its_report_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key_file = dir.path().join("apns.p8");
    std::fs::write(&key_file, pair.serialize_pem()).unwrap();
    let (cert, record) = (dir.path().join("sim.pem"), dir.path().join("pushes.jsonl"));
    let sim = Simulator::start(SimulatorConfig {
        apns_keys: vec![ApnsCredential {
            team_id: TEAM.into(),
            key_id: KID.into(),
            public_key_pem: pair.public_key_pem(),
        }],
        cert_out: Some(cert.clone()),
        record_path: Some(record.clone()),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();

    let node_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(
        TestStore::Embedded(node_dir.path().join("registry.redb")),
        node_dir.path(),
    );
    config.providers.apns.production_url = sim.base_url();
    config.providers.apns.sandbox_url = sim.base_url();
    config.providers.apns.trusted_roots = Some(cert);
    let ios = config
        .tenants
        .get_mut("a")
        .and_then(|tenant| tenant.apps.get_mut("ios"))
        .unwrap();
    ios.team_id = Some(TEAM.into());
    ios.key_id = Some(KID.into());
    ios.key = Some(SecretSource::File(key_file));
    let app = spawn_with(config, node_dir).await;

    // Mixed platforms, 1 and 3 devices per callee; FCM has no provider in this node, so its
    // devices must come back as `provider_not_configured`, counted apart.
    let scenario = Scenario {
        targets: vec![app.node.url()],
        server_key: KEY_A.into(),
        http: HttpVersion::Http1,
        connections: 4,
        identities: 6,
        devices_per_identity: vec![1, 3],
        platforms: BTreeMap::from([("apns".to_owned(), 3), ("fcm".to_owned(), 1)]),
        identity_prefix: "lg-test".into(),
        rate: Rate::Fixed { per_second: 50.0 },
        duration_seconds: None,
        calls: Some(20),
        simulator_record: Some(record.to_string_lossy().into_owned()),
        drain_ms: 300,
        ..Scenario::default()
    };
    let first = loadgen::run(scenario.clone(), false).await.unwrap();
    assert_eq!(first.registration.devices, 12);
    assert!(
        first.registration.errors.is_empty(),
        "{:?}",
        first.registration
    );
    assert_adds_up(&first, 20);

    // The same registrations again over h2c, half the calls ended early: the call-ended
    // pushes are joined too.
    let second = loadgen::run(
        Scenario {
            http: HttpVersion::H2c,
            connections: 1,
            reuse_registrations: true,
            end_early: 0.5,
            answered_elsewhere: 0.5,
            ..scenario
        },
        false,
    )
    .await
    .unwrap();
    assert!(!second.registration.registered);
    assert_adds_up(&second, 20);
    let ends: u64 = second.ends_ok.values().sum();
    assert_eq!(ends, 20, "every call ended: {:?}", second.end_errors);
    assert!(second.end_delivery_latency.is_some());

    let dir = tempfile::tempdir().unwrap();
    let files = loadgen::write(&second, dir.path()).unwrap();
    assert_eq!(files.len(), 3);
    let svg = std::fs::read_to_string(dir.path().join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("latency by percentile"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["calls_ok"], 20);

    // The simulator saw exactly what the report says was delivered, over both runs.
    let accepted = sim.stats().accepted_by_service.get("apns").copied();
    let reported: u64 = [&first, &second]
        .iter()
        .map(|r| r.pushes_by_service.get("apns").copied().unwrap_or(0))
        .sum();
    assert_eq!(accepted, Some(reported));
    app.stop().await;
    sim.shutdown().await;
}

/// Every call answered, no error, and the outcomes, the simulator's record and the
/// histograms all agree.
fn assert_adds_up(report: &ringcast::loadgen::report::Report, calls: u64) {
    let summary = report.summary_text();
    assert_eq!(report.calls_offered, calls, "{summary}");
    assert_eq!(report.calls_ok, calls, "{summary}");
    assert!(report.errors.is_empty(), "{summary}");
    let classes = &report.outcome_classes;
    assert_eq!(classes.other, 0, "{summary}");
    assert_eq!(
        classes.delivered + classes.provider_not_configured,
        report.devices_reached,
        "{summary}"
    );
    assert!(classes.delivered > 0, "{summary}");
    // Every delivered ring is in the simulator's record, with its latency.
    assert_eq!(
        report.pushes_by_type.get("incoming_call").copied(),
        Some(classes.delivered),
        "{summary}"
    );
    let delivery = report.delivery_latency.as_ref().expect("delivery latency");
    assert_eq!(delivery.count, classes.delivered);
    assert_eq!(report.api_latency.as_ref().map(|l| l.count), Some(calls));
    let timeline: u64 = report.timeline.iter().map(|p| p.offered).sum();
    assert_eq!(timeline, calls);
}
