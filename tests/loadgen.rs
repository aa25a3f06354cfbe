//! The load generator end to end: a real node (in-process, embedded store) whose APNs
//! provider points at the simulator, driven by `loadgen::run` over HTTP/1.1 and h2c; every
//! call must be answered, every APNs device rung, and the report's numbers must add up with
//! the simulator's own record. And the development default (a bare `serve` and a bare
//! `simulate`), which rings all four platforms, Web Push devices subscribing on the simulator.

mod support;

use clap::Parser;
use ringcast::cli::{Cli, Command};
use ringcast::config::{Config, DEFAULT_CONFIG_FILE, SecretSource};
use ringcast::loadgen::{self, HttpVersion, Rate, Scenario};
use ringcast::simulator::{ApnsCredential, Simulator, SimulatorConfig};
use std::collections::BTreeMap;
use std::path::Path;
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
    config.providers.apns.sandbox_url = sim.apns_sandbox_url();
    config.providers.apns.trusted_roots = Some(cert);
    let ios = config
        .tenants
        .get_mut("a")
        .and_then(|tenant| tenant.apps.get_mut("ios"));
    let Some(ringcast::config::AppConfig::Apns(ios)) = ios else {
        panic!("ios is an APNs app");
    };
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

/// A node that never answers the WebSocket upgrade (its listener full, the connection left in
/// the backlog) costs the run a counted `timeout` per client, not a run that never ends.
#[tokio::test]
async fn channel_clients_that_get_no_answer_are_counted_as_timeouts() {
    // Bound, never accepted: the kernel completes the handshake, nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}", silent.local_addr().unwrap());
    let run = loadgen::run(
        Scenario {
            targets: vec![target],
            server_key: KEY_A.into(),
            identities: 2,
            identity_prefix: "lg-silent".into(),
            rate: Rate::Fixed { per_second: 50.0 },
            duration_seconds: None,
            calls: Some(1),
            channel_clients: 2,
            request_timeout_ms: 200,
            reuse_registrations: true,
            ..Scenario::default()
        },
        false,
    );
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the run ends")
        .unwrap();
    let channel = report.channel.as_ref().expect("a channel report");
    assert_eq!(channel.connected, 0);
    assert_eq!(
        channel.connect_errors.get("timeout"),
        Some(&2),
        "{:?}",
        channel.connect_errors
    );
    drop(silent);
}

/// `--channel-clients`: every callee's registered device holds a channel connection and acks,
/// so every ring is delivered over the channel, no platform push leaves, and the report says
/// so, with the ring latency over the channel and the node's memory per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_clients_ack_every_ring_and_the_platform_pushes_are_avoided() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key_file = dir.path().join("apns.p8");
    std::fs::write(&key_file, pair.serialize_pem()).unwrap();
    let cert = dir.path().join("sim.pem");
    let sim = Simulator::start(SimulatorConfig {
        apns_keys: vec![ApnsCredential {
            team_id: TEAM.into(),
            key_id: KID.into(),
            public_key_pem: pair.public_key_pem(),
        }],
        cert_out: Some(cert.clone()),
        record_in_memory: true,
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
    config.providers.apns.sandbox_url = sim.apns_sandbox_url();
    config.providers.apns.trusted_roots = Some(cert);
    let ios = config
        .tenants
        .get_mut("a")
        .and_then(|tenant| tenant.apps.get_mut("ios"));
    let Some(ringcast::config::AppConfig::Apns(ios)) = ios else {
        panic!("ios is an APNs app");
    };
    ios.team_id = Some(TEAM.into());
    ios.key_id = Some(KID.into());
    ios.key = Some(SecretSource::File(key_file));
    let app = spawn_with(config, node_dir).await;

    let report = loadgen::run(
        Scenario {
            targets: vec![app.node.url()],
            server_key: KEY_A.into(),
            identities: 5,
            identity_prefix: "lg-channel".into(),
            rate: Rate::Fixed { per_second: 50.0 },
            duration_seconds: None,
            calls: Some(20),
            channel_clients: 5,
            ..Scenario::default()
        },
        false,
    )
    .await
    .unwrap();
    assert_eq!(report.calls_ok, 20, "{:?}", report.errors);
    let channel = report.channel.as_ref().expect("a channel report");
    assert_eq!(channel.connected, 5, "{:?}", channel.connect_errors);
    assert_eq!(channel.rings_received, 20);
    assert_eq!(channel.acks_sent, 20);
    assert_eq!(channel.pushes_avoided, 20, "{:?}", report.outcomes);
    assert_eq!(channel.ring_latency.as_ref().map(|l| l.count), Some(20));
    assert!(channel.rss_per_connection_bytes.is_some(), "{channel:?}");
    assert_eq!(sim.stats().accepted, 0, "no platform push left the node");
    assert!(
        report
            .summary_text()
            .contains("platform pushes avoided (delivered_internal) 20")
    );
    app.stop().await;
    sim.shutdown().await;
}

/// `config/ringcast.toml` and a flagless `ringcast simulate`, moved from 127.0.0.1:8443 (and
/// its HTTP/1.1-only token endpoints from 127.0.0.1:8444) to free ports (the only change, so tests never collide with a simulator someone is running),
/// driven by the load generator with one device per platform and more: every device of
/// every platform is delivered, and the simulator's record has all four services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_default_rings_every_platform() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("pushes.jsonl");
    let Command::Simulate(args) = Cli::try_parse_from([
        "ringcast",
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--http1-listen",
        "127.0.0.1:0",
    ])
    .unwrap()
    .command
    else {
        unreachable!("parsed a simulate command line");
    };
    let mut sim_config = args.simulator_config().unwrap();
    sim_config.record_path = Some(record.clone());
    let sim = Simulator::start(sim_config).await.unwrap();
    let address = sim.address().to_string();
    let http1_address = sim.http1_address().to_string();

    let node_dir = tempfile::tempdir().unwrap();
    let config = Config::load(Some(Path::new(DEFAULT_CONFIG_FILE))).unwrap();
    // Every place the default names the simulator, moved to its port.
    let json = serde_json::to_string(&config).unwrap();
    let json = json
        .replace("127.0.0.1:8443", &address)
        .replace("127.0.0.1:8444", &http1_address)
        .replace(
            "localhost:8443",
            &format!("localhost:{}", sim.address().port()),
        );
    let mut config: Config = serde_json::from_str(&json).unwrap();
    let account = std::fs::read_to_string("config/dev/fcm-service-account.json").unwrap();
    let account_file = node_dir.path().join("fcm-service-account.json");
    let account = account
        .replace("127.0.0.1:8443", &address)
        .replace("127.0.0.1:8444", &http1_address);
    std::fs::write(&account_file, account).unwrap();
    let demo = config.tenants.get_mut("demo").unwrap();
    let Some(ringcast::config::AppConfig::Fcm(android)) = demo.apps.get_mut("android") else {
        panic!("the demo's android app is an FCM app");
    };
    android.service_account = Some(SecretSource::File(account_file));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.workers = 2;
    config.registry.shards = 2;
    config.registry.embedded.path = node_dir.path().join("registry.redb");
    config.log.level = "warn".into();
    let app = spawn_with(config, node_dir).await;

    let scenario = Scenario {
        targets: vec![app.node.url()],
        http: HttpVersion::H2c,
        connections: 1,
        identities: 8,
        devices_per_identity: vec![2, 5],
        platforms: ["apns", "fcm", "wns", "webpush"]
            .map(|platform| (platform.to_owned(), 1))
            .into(),
        identity_prefix: "dev-default".into(),
        webpush_subscribe_url: Some(format!("{}/wp/subscribe", sim.base_url())),
        rate: Rate::Fixed { per_second: 50.0 },
        duration_seconds: None,
        calls: Some(16),
        end_early: 0.25,
        simulator_record: Some(record.to_string_lossy().into_owned()),
        drain_ms: 300,
        ..Scenario::default()
    };
    let report = loadgen::run(scenario.clone(), false).await.unwrap();
    let summary = report.summary_text();
    assert!(
        report.registration.errors.is_empty(),
        "{:?}",
        report.registration
    );
    assert_adds_up(&report, 16);
    assert_eq!(
        report.outcome_classes.provider_not_configured, 0,
        "{summary}"
    );
    for platform in ["apns", "fcm", "wns", "webpush"] {
        let delivered = report.outcomes_by_platform.get(platform);
        assert!(
            delivered.is_some_and(|outcomes| outcomes.get("delivered") > Some(&0)),
            "{platform} was not delivered: {summary}"
        );
        assert!(
            report.pushes_by_service.get(platform) > Some(&0),
            "{platform} is missing from the simulator's record: {summary}"
        );
    }

    // A rerun reusing the registrations needs no subscription: the same simulator process
    // still holds the ones made above.
    let rerun = loadgen::run(
        Scenario {
            reuse_registrations: true,
            ..scenario
        },
        false,
    )
    .await
    .unwrap();
    assert_adds_up(&rerun, 16);
    assert_eq!(rerun.outcome_classes.provider_not_configured, 0);
    assert!(rerun.pushes_by_service.get("webpush") > Some(&0));
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
