//! A browser rung through the whole node: registered through the API, rung by `POST
//! /v1/calls`, the simulator decrypting the push as the browser would; and the same node
//! refusing internal endpoints at registration.

use crate::support::app::{KEY_A, TestStore, spawn_with, status_and_json, test_config};
use ringcast::config::{AppConfig, SecretSource};
use ringcast::simulator::{Profile, Simulator, SimulatorConfig};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_a_browser_through_the_node() {
    let sim = ring_a_browser_through_the_node(false).await;
    // The push service spoke HTTP/2: nothing reached the HTTP/1.1 listener.
    assert_eq!(sim.transport_stats().http1_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_a_browser_whose_push_service_speaks_only_http1() {
    let sim = ring_a_browser_through_the_node(true).await;
    let transport = sim.transport_stats();
    // The ring and the call-ended push, over HTTP/1.1; nothing sent where it is refused.
    assert_eq!(transport.http1_requests, 2, "{transport:?}");
    assert_eq!(transport.misdirected, 0, "{transport:?}");
    assert!(transport.http1_connections >= 1, "{transport:?}");
}

/// Registers a browser subscribed on the simulator (whose Web Push side speaks only HTTP/1.1
/// when `http1_only`), rings it and ends the call: both pushes arrive, decrypted.
async fn ring_a_browser_through_the_node(
    http1_only: bool,
) -> ringcast::simulator::RunningSimulator {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("simulator.pem");
    let sim = Simulator::start(SimulatorConfig {
        profile: Profile {
            http1_only,
            ..Profile::default()
        },
        cert_out: Some(cert.clone()),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let vapid = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let vapid_file = dir.path().join("vapid.pem");
    std::fs::write(&vapid_file, vapid.serialize_pem()).unwrap();
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    let web = config
        .tenants
        .get_mut("a")
        .unwrap()
        .apps
        .get_mut("web")
        .unwrap();
    let AppConfig::Webpush(web) = web else {
        panic!("web is a Web Push app");
    };
    web.vapid_key = Some(SecretSource::File(vapid_file));
    web.vapid_subject = Some("mailto:ops@example.com".into());
    let sim_address = if http1_only {
        sim.http1_address()
    } else {
        sim.address()
    }
    .to_string();
    config.webpush.allowed_hosts.push(sim_address.clone());
    config.webpush.allowed_private_addresses = vec![sim_address];
    config.providers.webpush.trusted_roots = Some(cert);
    let app = spawn_with(config, dir).await;

    // The browser subscribes with the app's VAPID key, as a page's pushManager.subscribe().
    let k = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        vapid.public_key_raw(),
    );
    let subscription = sim.webpush_subscribe(Some(&k)).unwrap();
    let body = json!({"platform": "webpush", "app": "web", "endpoint": subscription.endpoint,
        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}});
    let (status, answer) = app.register(KEY_A, "alice", "browser", &body).await;
    assert_eq!(status, 201, "{answer}");

    let post = |path: &str, body: Value| {
        let request = app
            .client
            .post(app.url(path))
            .bearer_auth(KEY_A)
            .json(&body);
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    let (status, answer) = post(
        "/v1/calls?wait=true",
        json!({"call_id": "call-1", "callee": "alice",
               "caller": {"id": "+15550100", "display_name": "Bob"}, "video": false}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcomes"][0]["outcome"], "delivered", "{answer}");
    let (status, answer) = post(
        "/v1/calls/call-1/end?wait=true",
        json!({"callee": "alice", "reason": "cancelled"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let records = sim.records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].payload["type"], "incoming_call");
    assert_eq!(records[0].payload["caller_name"], "Bob");
    assert_eq!(records[0].payload["call_id"], "call-1");
    assert_eq!(records[1].payload["type"], "call_ended");
    assert_eq!(records[1].payload["reason"], "cancelled");
    assert_eq!(
        records[0].collapse_id, records[1].collapse_id,
        "one topic per call"
    );
    app.stop().await;
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_test_allowance_the_simulator_itself_is_refused_and_never_reached() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("simulator.pem");
    let sim = Simulator::start(SimulatorConfig {
        cert_out: Some(cert.clone()),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let vapid = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let vapid_file = dir.path().join("vapid.pem");
    std::fs::write(&vapid_file, vapid.serialize_pem()).unwrap();
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    let web = config
        .tenants
        .get_mut("a")
        .unwrap()
        .apps
        .get_mut("web")
        .unwrap();
    let AppConfig::Webpush(web) = web else {
        panic!("web is a Web Push app");
    };
    web.vapid_key = Some(SecretSource::File(vapid_file));
    web.vapid_subject = Some("mailto:ops@example.com".into());
    let port = sim.address().port();
    // On the host allowlist, but no address allowance: loopback stays refused.
    config.webpush.allowed_hosts.extend([
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]);
    config.providers.webpush.trusted_roots = Some(cert);
    let app = spawn_with(config, dir).await;
    let subscription = sim.webpush_subscribe(None).unwrap();
    let path = format!("/wp/{}", subscription.id);
    for endpoint in [
        subscription.endpoint.clone(),
        format!("https://localhost:{port}{path}"),
        format!("https://[::1]:{port}{path}"),
        format!("http://127.0.0.1:{port}{path}"),
    ] {
        let body = json!({"platform": "webpush", "app": "web", "endpoint": endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}});
        let (status, answer) = app.register(KEY_A, "alice", "browser", &body).await;
        assert_eq!(status, 422, "{endpoint}: {answer}");
        assert_eq!(answer["errors"][0]["field"], "endpoint", "{answer}");
    }
    let request = app
        .client
        .post(app.url("/v1/calls?wait=true"))
        .bearer_auth(KEY_A)
        .json(&json!({"call_id": "c", "callee": "alice",
            "caller": {"id": "+15550100", "display_name": "Bob"}, "video": false}));
    let (_, answer) = status_and_json(request.send().await.unwrap()).await;
    assert!(
        answer["outcomes"].as_array().is_none_or(Vec::is_empty),
        "{answer}"
    );
    let stats = sim.stats();
    assert_eq!((stats.connections, stats.requests), (0, 0), "{stats:?}");
    app.stop().await;
}
