//! APNs certificate auth through a live node: an app with a client certificate instead of
//! team / key id / `.p8` rings its iPhones with no JWT at all, and its certificate's expiry
//! is on `/metrics` as `ringcast_credential_expiry_seconds`; another app's certificate is
//! refused with `400 TopicDisallowed` and deletes nothing.

use crate::support::app::{APNS_TOKEN, KEY_A, TestStore, apns_body, spawn_with, test_config};
use crate::{sample, scrape};
use ringcast::config::{AppConfig, Config, ConfigErrors, SecretSource};
use ringcast::simulator::{RunningSimulator, Simulator, SimulatorConfig};
use std::path::Path;

/// A CA (PEM) and a client certificate it issued for `subject`, valid `days` more days: the
/// certificate PEM, its key PEM and its `notAfter` (UNIX seconds).
pub struct IssuedCertificate {
    /// The issuing CA's certificate.
    pub ca_pem: String,
    /// The client certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
    /// When it expires, UNIX seconds.
    pub not_after: i64,
}

/// `ringcast_credential_expiry_seconds{provider="apns",tenant="a",app="ios"}` is one series of
/// this test binary's one metrics recorder, and every test that starts a node with
/// [`with_certificate`] sets it to its own certificate's expiry as the node starts. They take
/// turns on this lock, held until their node stops, or a test reading the series could read
/// another's certificate (CI saw it: the expiry of a certificate issued a second later).
pub static EXPIRY_SERIES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Issues a push certificate for the app `bundle` from a fresh CA, as Apple issues them: the
/// bundle id as subject UID, and `<bundle>` and `<bundle>.voip` in Apple's topics extension.
pub fn issue(bundle: &str, days: i64) -> IssuedCertificate {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Push CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = ringcast::providers::apns::auth::topics::push_certificate_params(bundle);
    let now = time::OffsetDateTime::now_utc();
    // Whole seconds: a certificate's validity has no fraction.
    let not_after = time::OffsetDateTime::from_unix_timestamp(
        (now + time::Duration::days(days)).unix_timestamp(),
    )
    .unwrap();
    params.not_before = now - time::Duration::days(1);
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer).unwrap();
    IssuedCertificate {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after: not_after.unix_timestamp(),
    }
}

/// Tenant A's `ios` app switched from token auth to `certificate`, its files in `dir`, and
/// APNs pointed at `apns_url`. A test that starts a node from it takes [`EXPIRY_SERIES`] first.
pub fn with_certificate(
    config: &mut Config,
    dir: &Path,
    issued: &IssuedCertificate,
    apns_url: &str,
) {
    let (cert, key) = (dir.join("apns-cert.pem"), dir.join("apns-cert-key.pem"));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
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
    ios.team_id = None;
    ios.certificate = Some(SecretSource::File(cert));
    ios.certificate_key = Some(SecretSource::File(key));
    config.providers.apns.production_url = apns_url.to_owned();
    config.providers.apns.sandbox_url = apns_url.to_owned();
}

async fn simulator(ca_pem: &str, dir: &Path) -> RunningSimulator {
    let cert = dir.join("simulator.pem");
    Simulator::start(SimulatorConfig {
        // No APNs signing key at all: a push that carried a JWT would be refused.
        apns_client_ca: Some(ca_pem.to_owned()),
        cert_out: Some(cert),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_app_rings_without_a_jwt_and_exports_its_expiry() {
    let _turn = EXPIRY_SERIES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let issued = issue("com.example.phone", 90);
    let sim = simulator(&issued.ca_pem, dir.path()).await;
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    with_certificate(&mut config, dir.path(), &issued, &sim.base_url());
    config.providers.apns.trusted_roots = Some(dir.path().join("simulator.pem"));
    let app = spawn_with(config, dir).await;

    let (status, answer) = app
        .register(KEY_A, "cert-alice", "iphone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{answer}");
    let response = app
        .client
        .post(app.url("/v1/calls?wait=true"))
        .bearer_auth(KEY_A)
        .json(
            &serde_json::json!({"call_id": "cert-1", "callee": "cert-alice",
            "caller": {"id": "+15550100", "display_name": "Bob"}}),
        )
        .send()
        .await
        .unwrap();
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["outcomes"][0]["outcome"], "delivered", "{answer}");
    let records = sim.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].topic, "com.example.phone.voip");

    let text = scrape(&app).await;
    let labels = [("provider", "apns"), ("tenant", "a"), ("app", "ios")];
    assert_eq!(
        sample(&text, "ringcast_credential_expiry_seconds", &labels),
        issued.not_after as f64
    );
    app.stop().await;
}

#[test]
fn an_expired_certificate_stops_start_up_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let issued = issue("com.example.phone", -1);
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    with_certificate(&mut config, dir.path(), &issued, "https://127.0.0.1:9");
    let Err(ConfigErrors(problems)) = ringcast::plan::Plan::build(&config) else {
        panic!("an expired certificate passed the start-up plan");
    };
    let problems = problems.join("\n");
    assert!(
        problems.contains("tenants.a.apps.ios.certificate") && problems.contains("expired"),
        "{problems}"
    );
}

/// Rings `callee` once with `call_id` and waits for the verdict; returns the first outcome
/// and its reason.
async fn ring_once(
    app: &crate::support::app::TestApp,
    callee: &str,
    call_id: &str,
) -> (String, String) {
    let response = app
        .client
        .post(app.url("/v1/calls?wait=true"))
        .bearer_auth(KEY_A)
        .json(&serde_json::json!({"call_id": call_id, "callee": callee,
            "caller": {"id": "+15550100", "display_name": "Bob"}}))
        .send()
        .await
        .unwrap();
    let answer: serde_json::Value = response.json().await.unwrap();
    let outcome = &answer["outcomes"][0];
    (
        outcome["outcome"].as_str().unwrap_or_default().to_owned(),
        outcome["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

/// APNs binds a push certificate to its app's topics: an app configured with another app's
/// certificate gets `400 TopicDisallowed` on every push. That blames the sender's
/// configuration, not the phone, so the call is `misconfigured` and the registration stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_apps_certificate_is_topic_disallowed_and_the_registration_stays() {
    let _turn = EXPIRY_SERIES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let issued = issue("com.example.other", 90);
    let sim = simulator(&issued.ca_pem, dir.path()).await;
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    with_certificate(&mut config, dir.path(), &issued, &sim.base_url());
    config.providers.apns.trusted_roots = Some(dir.path().join("simulator.pem"));
    let app = spawn_with(config, dir).await;

    let (status, answer) = app
        .register(KEY_A, "cert-carol", "iphone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{answer}");
    // Twice: each verdict's cleanup has run before the next answer, so a deletion after the
    // first would show in the second.
    for call in ["other-1", "other-2"] {
        assert_eq!(
            ring_once(&app, "cert-carol", call).await,
            ("misconfigured".to_owned(), "TopicDisallowed".to_owned())
        );
    }
    assert_eq!(app.devices(KEY_A, "cert-carol").await, ["iphone"]);
    assert!(sim.records().is_empty(), "nothing was accepted");
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.accepted), (2, 0), "{stats:?}");
    app.stop().await;
}
