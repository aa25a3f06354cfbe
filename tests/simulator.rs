//! The APNs simulator over real TLS + HTTP/2: every rule it enforces, as a sender sees it.
//!
//! The client is hyper's raw HTTP/2 connection over tokio-rustls, one connection per
//! `connect()`, because several rules (token updates, GOAWAY, stream limits) are per
//! connection; token endpoints are reached over HTTP/1.1 (`post_http1`), the only protocol
//! they speak.

#[allow(dead_code)] // the harness module is shared; this binary uses only `until`
#[path = "support/eventually.rs"]
mod eventually;

use bytes::Bytes;
use eventually::until;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ringcast::providers::pool::tls::client_config_trusting;
use ringcast::simulator::profile::InjectedError;
use ringcast::simulator::{
    ApnsCredential, Profile, RunningSimulator, Service, Simulator, SimulatorConfig, Stats,
};
use rustls::pki_types::ServerName;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

const TEAM: &str = "TEAM123456";
const KID: &str = "KEY1234567";
const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const GONE: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

struct Harness {
    sim: RunningSimulator,
    signing: EncodingKey,
}

async fn spawn_simulator(profile: Profile) -> Harness {
    spawn_with(SimulatorConfig {
        profile,
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
}

async fn spawn_with(mut config: SimulatorConfig) -> Harness {
    // An Apple .p8 is a PKCS#8 P-256 key; Apple keeps the public half.
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    config.apns_keys.push(ApnsCredential {
        team_id: TEAM.into(),
        key_id: KID.into(),
        public_key_pem: pair.public_key_pem(),
    });
    let sim = Simulator::start(config).await.unwrap();
    Harness {
        sim,
        signing: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Harness {
    fn jwt_at(&self, iat: u64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({"iss": TEAM, "iat": iat}),
            &self.signing,
        )
        .unwrap()
    }

    /// One TLS + HTTP/2 connection trusting the simulator's certificate; the handle is the
    /// connection task, which ends when the server closes the connection.
    async fn connect(&self) -> (SendRequest<Full<Bytes>>, JoinHandle<()>) {
        let config = client_config_trusting(self.sim.ca_pem().as_bytes()).unwrap();
        let tcp = tokio::net::TcpStream::connect(self.sim.address())
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        (sender, task)
    }
}

impl Harness {
    /// Posts `body` to `url` (on the HTTP/1.1-only listener) over a fresh TLS connection
    /// offering only ALPN `http/1.1`, as a token client does; the status and JSON body.
    async fn post_http1(&self, url: &str, content_type: &str, body: String) -> (u16, Value) {
        let mut config = (*client_config_trusting(self.sim.ca_pem().as_bytes()).unwrap()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(self.sim.http1_address())
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let uri: hyper::Uri = url.parse().unwrap();
        let request = hyper::Request::post(uri.path())
            .header("host", uri.authority().unwrap().as_str())
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// A valid VoIP push request; tests break one thing at a time.
fn voip(jwt: &str, token: &str) -> hyper::http::request::Builder {
    hyper::Request::post(format!("https://127.0.0.1/3/device/{token}"))
        .header("authorization", format!("bearer {jwt}"))
        .header("apns-topic", "com.example.app.voip")
        .header("apns-push-type", "voip")
        .header("apns-priority", "10")
}

/// Replaces a header (the builder's `header` appends, which would be `DuplicateHeaders`).
fn set(
    mut request: hyper::http::request::Builder,
    name: &'static str,
    value: &str,
) -> hyper::http::request::Builder {
    if let Some(headers) = request.headers_mut() {
        headers.insert(name, value.parse().unwrap());
    }
    request
}

struct Answer {
    status: u16,
    body: Value,
    apns_id: Option<String>,
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: hyper::http::request::Builder,
    body: &str,
) -> Result<Answer, hyper::Error> {
    sender.ready().await?;
    let response = sender
        .send_request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await?;
    let status = response.status().as_u16();
    let apns_id = response
        .headers()
        .get("apns-id")
        .map(|value| value.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await?.to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Ok(Answer {
        status,
        body,
        apns_id,
    })
}

async fn reason_of(
    h: &Harness,
    request: hyper::http::request::Builder,
    body: &str,
) -> (u16, String) {
    let (mut sender, _task) = h.connect().await;
    let answer = send(&mut sender, request, body).await.unwrap();
    (
        answer.status,
        answer.body["reason"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn a_valid_voip_push_is_accepted_and_recorded() {
    let h = spawn_simulator(Profile::default()).await;
    let (mut sender, _task) = h.connect().await;
    let id = "123E4567-E89B-12D3-A456-426614174000";
    let answer = send(
        &mut sender,
        voip(&h.jwt_at(now()), TOKEN).header("apns-id", id),
        r#"{"call_id":"c1"}"#,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.apns_id.as_deref(), Some(id));
    let records = h.sim.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].device_token, TOKEN);
    assert_eq!(records[0].payload["call_id"], "c1");
    assert_eq!(records[0].apns_id, id);
    let stats = h.sim.stats();
    assert_eq!((stats.accepted, stats.connections), (1, 1));
    // No apns-id sent: the simulator invents a canonical one, as APNs does.
    let answer = send(&mut sender, voip(&h.jwt_at(now()), TOKEN), "{}")
        .await
        .unwrap();
    assert_eq!(answer.apns_id.unwrap().len(), 36);
}

#[tokio::test]
async fn each_rule_is_refused_with_apples_status_and_reason() {
    let h = spawn_simulator(Profile::default()).await;
    let jwt = h.jwt_at(now());
    let cases: Vec<(hyper::http::request::Builder, String, (u16, &str))> = vec![
        (voip(&jwt, "xyz"), "{}".into(), (400, "BadDeviceToken")),
        (
            hyper::Request::post(format!("https://127.0.0.1/3/device/{TOKEN}"))
                .header("authorization", format!("bearer {jwt}"))
                .header("apns-push-type", "voip"),
            "{}".into(),
            (400, "MissingTopic"),
        ),
        (
            set(voip(&jwt, TOKEN), "apns-topic", "com.example.app"),
            "{}".into(),
            (400, "BadTopic"),
        ),
        (
            set(voip(&jwt, TOKEN), "apns-priority", "5"),
            "{}".into(),
            (400, "BadPriority"),
        ),
        (
            voip(&jwt, TOKEN),
            format!("{{\"p\":\"{}\"}}", "x".repeat(5200)),
            (413, "PayloadTooLarge"),
        ),
        (
            voip(&jwt, TOKEN).header("apns-collapse-id", "c".repeat(65)),
            "{}".into(),
            (400, "BadCollapseId"),
        ),
        (
            voip(&jwt, TOKEN).header("apns-id", "42"),
            "{}".into(),
            (400, "BadMessageId"),
        ),
        (
            voip(&jwt, TOKEN).header("apns-expiration", "soon"),
            "{}".into(),
            (400, "BadExpirationDate"),
        ),
        (
            voip("e30.e30.AAAA", TOKEN),
            "{}".into(),
            (403, "InvalidProviderToken"),
        ),
        (
            voip(&h.jwt_at(now() - 3700), TOKEN),
            "{}".into(),
            (403, "ExpiredProviderToken"),
        ),
        (
            voip(&jwt, TOKEN).method("GET"),
            String::new(),
            (405, "MethodNotAllowed"),
        ),
        (
            hyper::Request::post("https://127.0.0.1/3/push/x"),
            "{}".into(),
            (404, "BadPath"),
        ),
    ];
    for (request, body, (status, reason)) in cases {
        let got = reason_of(&h, request, &body).await;
        assert_eq!(got, (status, reason.to_owned()));
    }
    let stats = h.sim.stats();
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.by_status["403 InvalidProviderToken"], 1);
}

#[tokio::test]
async fn a_new_jwt_on_the_same_connection_within_twenty_minutes_is_429() {
    let h = spawn_simulator(Profile::default()).await;
    let (mut sender, _task) = h.connect().await;
    let first = h.jwt_at(now() - 60);
    let second = h.jwt_at(now());
    assert_eq!(
        send(&mut sender, voip(&first, TOKEN), "{}")
            .await
            .unwrap()
            .status,
        200
    );
    let answer = send(&mut sender, voip(&second, TOKEN), "{}").await.unwrap();
    assert_eq!(
        (answer.status, answer.body["reason"].as_str()),
        (429, Some("TooManyProviderTokenUpdates"))
    );
    // Another connection may start with the newer token.
    let (mut other, _task) = h.connect().await;
    assert_eq!(
        send(&mut other, voip(&second, TOKEN), "{}")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn an_unregistered_token_is_410_with_a_timestamp() {
    let h = spawn_simulator(Profile {
        unregistered_tokens: vec![GONE.into()],
        ..Profile::default()
    })
    .await;
    let (mut sender, _task) = h.connect().await;
    let before = now() * 1000;
    let answer = send(&mut sender, voip(&h.jwt_at(now()), GONE), "{}")
        .await
        .unwrap();
    assert_eq!(answer.status, 410);
    assert_eq!(answer.body["reason"], "Unregistered");
    assert!(answer.body["timestamp"].as_u64().unwrap() >= before);
    assert!(h.sim.records().is_empty());
}

#[tokio::test]
async fn injected_errors_and_the_record_file_follow_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("accepted.jsonl");
    let cert = dir.path().join("cert.pem");
    let h = spawn_with(SimulatorConfig {
        profile: Profile {
            errors: vec![InjectedError {
                service: Service::Apns,
                status: 503,
                reason: "ServiceUnavailable".into(),
                rate: 0.5,
                retry_after_seconds: None,
            }],
            ..Profile::default()
        },
        record_path: Some(record.clone()),
        cert_out: Some(cert.clone()),
        ..SimulatorConfig::default()
    })
    .await;
    assert_eq!(h.sim.cert_path(), Some(&cert));
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), h.sim.ca_pem());
    let (mut sender, _task) = h.connect().await;
    let jwt = h.jwt_at(now());
    let mut accepted = 0;
    for _ in 0..40 {
        let answer = send(&mut sender, voip(&jwt, TOKEN), "{}").await.unwrap();
        match answer.status {
            200 => accepted += 1,
            503 => assert_eq!(answer.body["reason"], "ServiceUnavailable"),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (5..=35).contains(&accepted),
        "{accepted} of 40 accepted at rate 0.5"
    );
    // Lines are written through within RECORD_FLUSH_EVERY (10 ms) of the answer.
    let mut lines = String::new();
    for _ in 0..200 {
        lines = std::fs::read_to_string(&record).unwrap();
        if lines.lines().count() >= accepted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(lines.lines().count(), accepted);
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["device_token"], TOKEN);
    assert!(first["received_at_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn the_stats_endpoint_serves_the_counters() {
    let h = spawn_simulator(Profile::default()).await;
    let (mut sender, _task) = h.connect().await;
    send(&mut sender, voip(&h.jwt_at(now()), TOKEN), "{}")
        .await
        .unwrap();
    let answer = send(
        &mut sender,
        hyper::Request::get("https://127.0.0.1/stats"),
        "",
    )
    .await
    .unwrap();
    let stats: Stats = serde_json::from_value(answer.body).unwrap();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.by_status["200"], 1);
}

#[tokio::test]
async fn a_push_counts_as_received_on_arrival_and_as_a_request_once_answered() {
    // Answers held: "received, not yet answered" is a state that lasts until the release, not
    // a moment to catch.
    let h = spawn_simulator(Profile::default()).await;
    let held = h.sim.hold_answers();
    let (mut sender, _task) = h.connect().await;
    let jwt = h.jwt_at(now());
    let answered = tokio::spawn(async move { send(&mut sender, voip(&jwt, TOKEN), "{}").await });
    until("the push to arrive", || h.sim.stats().received == 1).await;
    let stats = h.sim.stats();
    assert_eq!((stats.received, stats.requests), (1, 0), "{stats:?}");
    assert!(
        h.sim.records().is_empty(),
        "judged and recorded only once released"
    );
    held.release();
    assert_eq!(answered.await.unwrap().unwrap().status, 200);
    let stats = h.sim.stats();
    assert_eq!((stats.received, stats.requests), (1, 1), "{stats:?}");
    assert_eq!(h.sim.records().len(), 1);
}

async fn limited_simulator() -> Harness {
    spawn_simulator(Profile {
        max_concurrent_streams: 4,
        latency_min_ms: 150,
        latency_max_ms: 150,
        ..Profile::default()
    })
    .await
}

/// Sends `count` pushes at once on one connection with one JWT (re-minting one with a later
/// `iat` would be a token update); each answer is a status or the error.
async fn burst(
    jwt: &str,
    sender: &SendRequest<Full<Bytes>>,
    count: usize,
) -> Vec<Result<u16, String>> {
    let requests: Vec<_> = (0..count)
        .map(|_| {
            let (mut sender, jwt) = (sender.clone(), jwt.to_owned());
            tokio::spawn(async move {
                send(&mut sender, voip(&jwt, TOKEN), "{}")
                    .await
                    .map(|answer| answer.status)
                    .map_err(|error| format!("{error:?}"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn a_client_that_has_the_settings_keeps_to_the_advertised_stream_limit() {
    let h = limited_simulator().await;
    let (mut sender, _task) = h.connect().await;
    // One round trip first, so the client has the server's SETTINGS frame.
    let jwt = h.jwt_at(now());
    assert_eq!(
        send(&mut sender, voip(&jwt, TOKEN), "{}")
            .await
            .unwrap()
            .status,
        200
    );
    let started = std::time::Instant::now();
    let answers = burst(&jwt, &sender, 16).await;
    assert!(
        answers.iter().all(|answer| answer == &Ok(200)),
        "{answers:?}"
    );
    // 16 pushes through 4 slots of 150 ms take four rounds: the client saw the advertised
    // limit (4) and queued the rest itself.
    assert!(started.elapsed() >= Duration::from_millis(4 * 150 - 20));
    let stats = h.sim.stats();
    assert_eq!(stats.max_streams_in_flight, 4);
    assert_eq!(stats.stream_limit_violations, 0);
    assert_eq!(stats.accepted, 17);
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_never_served() {
    let h = limited_simulator().await;
    let (sender, _task) = h.connect().await;
    // Straight after the handshake the client has not read the SETTINGS frame yet and opens
    // all 16 streams, as a sender that assumes a stream count would. The connection
    // announced 1 (no valid token seen yet), hyper's layer allows 4: hyper refuses the
    // excess over 4, the simulator the excess over the announced limit, both with
    // REFUSED_STREAM, so no stream beyond the limit is ever served.
    let answers = burst(&h.jwt_at(now()), &sender, 16).await;
    for answer in &answers {
        match answer {
            Ok(status) => assert_eq!(*status, 200),
            Err(error) => assert!(error.contains("REFUSED_STREAM"), "{error}"),
        }
    }
    let served = answers.iter().filter(|answer| answer.is_ok()).count();
    assert!(served >= 1, "{answers:?}");
    let stats = h.sim.stats();
    assert_eq!(stats.accepted as usize, served, "{stats:?}");
    assert!(stats.max_streams_in_flight <= 4);
}

/// Only APNs makes a connection earn its stream limit: a burst for another service straight
/// after the handshake (before the client read any SETTINGS) is served whole, not refused.
#[tokio::test]
async fn other_services_are_never_held_to_the_first_stream_limit() {
    let h = limited_simulator().await;
    let (sender, _task) = h.connect().await;
    let url = format!("{}/v1/projects/p/messages:send", h.sim.base_url());
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let (mut sender, url) = (sender.clone(), url.clone());
            tokio::spawn(async move {
                let request = hyper::Request::post(url).header("authorization", "Bearer nope");
                send(&mut sender, request, "{}").await.map(|a| a.status)
            })
        })
        .collect();
    for request in requests {
        let status = request.await.unwrap().map_err(|error| format!("{error:?}"));
        assert_eq!(status, Ok(401));
    }
    assert_eq!(h.sim.stats().stream_limit_violations, 0);
}

/// APNs "allows only one stream until you post a request with a valid authentication
/// token": one stream while the pushes carry no valid token, then the profile's limit, which
/// an `h2` client reads from the second SETTINGS frame.
#[tokio::test]
async fn the_stream_limit_is_one_until_a_request_shows_a_valid_token() {
    let h = limited_simulator().await;
    let (mut sender, _task) = h.connect().await;
    // One round trip first, so the client has the server's SETTINGS frame.
    let refused = send(&mut sender, voip("not-a-jwt", TOKEN), "{}").await;
    assert_eq!(refused.unwrap().status, 403);
    let unsigned = burst("not-a-jwt", &sender, 6).await;
    assert!(
        unsigned.iter().all(|answer| answer == &Ok(403)),
        "{unsigned:?}"
    );
    assert_eq!(h.sim.stats().max_streams_in_flight, 1);
    let jwt = h.jwt_at(now());
    let first = send(&mut sender, voip(&jwt, TOKEN), "{}").await.unwrap();
    assert_eq!(first.status, 200);
    let answers = burst(&jwt, &sender, 8).await;
    assert!(
        answers.iter().all(|answer| answer == &Ok(200)),
        "{answers:?}"
    );
    let stats = h.sim.stats();
    assert_eq!(stats.max_streams_in_flight, 4, "{stats:?}");
    assert_eq!(stats.stream_limit_violations, 0, "{stats:?}");
}

#[tokio::test]
async fn goaway_after_n_streams_closes_the_connection_gracefully() {
    let h = spawn_simulator(Profile {
        goaway_after_streams: Some(3),
        ..Profile::default()
    })
    .await;
    let (mut sender, task) = h.connect().await;
    let jwt = h.jwt_at(now());
    for _ in 0..3 {
        assert_eq!(
            send(&mut sender, voip(&jwt, TOKEN), "{}")
                .await
                .unwrap()
                .status,
            200
        );
    }
    // The server drained and closed: the connection task ends and the sender is dead.
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(send(&mut sender, voip(&jwt, TOKEN), "{}").await.is_err());
    assert_eq!(h.sim.stats().goaways, 1);
    // A new connection works (and may reuse the JWT: it is the same token, not an update).
    let (mut fresh, _task) = h.connect().await;
    assert_eq!(
        send(&mut fresh, voip(&jwt, TOKEN), "{}")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(h.sim.stats().connections, 2);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn a_scripted_reset_drops_the_connection_without_an_answer() {
    let h = spawn_simulator(Profile {
        reset_rate: 1.0,
        ..Profile::default()
    })
    .await;
    let (mut sender, task) = h.connect().await;
    let jwt = h.jwt_at(now());
    assert!(send(&mut sender, voip(&jwt, TOKEN), "{}").await.is_err());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let stats = h.sim.stats();
    assert_eq!((stats.resets, stats.requests, stats.accepted), (1, 0, 0));
    assert!(h.sim.records().is_empty());
}

#[tokio::test]
async fn a_scripted_stall_freezes_the_connection_then_resumes() {
    let h = spawn_simulator(Profile {
        stall_after_streams: Some(2),
        stall_ms: 400,
        ..Profile::default()
    })
    .await;
    let (mut sender, _task) = h.connect().await;
    let jwt = h.jwt_at(now());
    // Times one accepted push. Only the stall itself is asserted in absolute time (a lower
    // bound); the unstalled pushes are compared with the stalled one, not with a fixed budget,
    // so a loaded machine cannot fail the test.
    let mut timed_push = async || {
        let started = std::time::Instant::now();
        let answer = send(&mut sender, voip(&jwt, TOKEN), "{}").await.unwrap();
        assert_eq!(answer.status, 200);
        started.elapsed()
    };
    let before = timed_push().await;
    let stalled = timed_push().await;
    let after = timed_push().await;
    assert!(
        stalled >= Duration::from_millis(380),
        "the second push stalls: {stalled:?}"
    );
    assert!(
        before < stalled && after < stalled,
        "only the stalled stream waits: {before:?} {stalled:?} {after:?}"
    );
}

// ---- FCM HTTP v1 and its OAuth token endpoint ----

const FCM_ACCOUNT: &str = include_str!("../config/dev/fcm-service-account.json");
const FCM_UNKNOWN_KEY: &str = include_str!("fixtures/fcm-unknown-key.pem");
const FCM_EMAIL: &str = "ringcast-demo@ringcast-demo.iam.gserviceaccount.com";
const FCM_PROJECT: &str = "ringcast-demo";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const FCM_TOKEN: &str = "dGVzdA:APA91bH-registration_token";
const FCM_GONE: &str = "gone:APA91bH-uninstalled";

/// A simulator that knows the development service account (and the usual APNs key).
async fn spawn_fcm(mut config: SimulatorConfig) -> Harness {
    config.fcm_accounts.push(
        ringcast::simulator::FcmServiceAccount::from_service_account_json(FCM_ACCOUNT.as_bytes())
            .unwrap(),
    );
    config.record_in_memory = true;
    spawn_with(config).await
}

fn fcm_private_key() -> String {
    let account: Value = serde_json::from_str(FCM_ACCOUNT).unwrap();
    account["private_key"].as_str().unwrap().to_owned()
}

/// An RS256 assertion as a service account signs it, with `claims` patched over the valid
/// ones (a null removes a claim).
fn assertion(h: &Harness, key_pem: &str, patch: Value) -> String {
    let mut claims = serde_json::json!({
        "iss": FCM_EMAIL,
        "scope": FCM_SCOPE,
        "aud": h.sim.token_url(),
        "iat": now(),
        "exp": now() + 3600,
    });
    for (name, value) in patch.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

/// One request; the status, headers and JSON body of the answer.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: hyper::http::request::Builder,
    body: String,
) -> (u16, hyper::HeaderMap, Value) {
    sender.ready().await.unwrap();
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status.as_u16(), parts.headers, json)
}

/// Posts `assertion` to the token endpoint (HTTP/1.1), as a service-account client does.
async fn token_request(h: &Harness, assertion: &str) -> (u16, Value) {
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    );
    h.post_http1(
        &h.sim.token_url(),
        "application/x-www-form-urlencoded",
        form,
    )
    .await
}

/// A fresh access token for the development account.
async fn access_token(h: &Harness) -> String {
    let jwt = assertion(h, &fcm_private_key(), serde_json::json!({}));
    let (status, body) = token_request(h, &jwt).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// An incoming-call data message, as the provider builds it.
fn fcm_call(token: &str) -> Value {
    serde_json::json!({"message": {
        "token": token,
        "data": {"v": "1", "type": "incoming_call", "call_id": "c1", "caller_id": "bob",
            "caller_name": "Bob", "video": "true", "expires_at": "2027-01-01T00:00:00.000Z"},
        "android": {"priority": "HIGH", "ttl": "45s", "collapse_key": "c1"},
    }})
}

/// Sends `message` to `project` with `bearer`; status, headers and body.
async fn fcm_send(
    h: &Harness,
    sender: &mut SendRequest<Full<Bytes>>,
    bearer: &str,
    project: &str,
    message: &Value,
) -> (u16, hyper::HeaderMap, Value) {
    let request = hyper::Request::post(format!(
        "{}/v1/projects/{project}/messages:send",
        h.sim.base_url()
    ))
    .header("authorization", format!("Bearer {bearer}"))
    .header("content-type", "application/json");
    exchange(sender, request, message.to_string()).await
}

/// `(HTTP status, error.status, the FcmError errorCode)` of an FCM error body.
fn fcm_error(status: u16, body: &Value) -> (u16, String, Option<String>) {
    let error = &body["error"];
    assert_eq!(error["code"], status, "{body}");
    let code = error["details"].as_array().and_then(|details| {
        details
            .iter()
            .find(|detail| {
                detail["@type"]
                    .as_str()
                    .is_some_and(|kind| kind.ends_with("FcmError"))
            })
            .and_then(|detail| detail["errorCode"].as_str().map(str::to_owned))
    });
    (status, error["status"].as_str().unwrap().to_owned(), code)
}

#[tokio::test]
async fn fcm_token_exchange_works_and_bad_assertions_are_refused() {
    let h = spawn_fcm(SimulatorConfig::default()).await;
    let key = fcm_private_key();
    let jwt = assertion(&h, &key, serde_json::json!({}));
    let (status, body) = token_request(&h, &jwt).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "Bearer");
    // Google's own URI as the audience, as Google's libraries send it, works too.
    let google = assertion(
        &h,
        &key,
        serde_json::json!({"aud": "https://oauth2.googleapis.com/token"}),
    );
    assert_eq!(token_request(&h, &google).await.0, 200);

    let refused = [
        (
            assertion(&h, FCM_UNKNOWN_KEY, serde_json::json!({})),
            "invalid_grant",
        ),
        (
            assertion(
                &h,
                &key,
                serde_json::json!({"iss": "intruder@elsewhere.iam.gserviceaccount.com"}),
            ),
            "invalid_grant",
        ),
        (
            assertion(
                &h,
                &key,
                serde_json::json!({"scope": "https://www.googleapis.com/auth/cloud-platform.read-only"}),
            ),
            "invalid_scope",
        ),
        (
            assertion(
                &h,
                &key,
                serde_json::json!({"iat": now() - 7200, "exp": now() - 3600}),
            ),
            "invalid_grant",
        ),
        (
            assertion(&h, &key, serde_json::json!({"exp": now() + 7200})),
            "invalid_grant",
        ),
        (
            assertion(
                &h,
                &key,
                serde_json::json!({"aud": "https://fcm.googleapis.com/"}),
            ),
            "invalid_grant",
        ),
    ];
    for (jwt, error) in &refused {
        let (status, body) = token_request(&h, jwt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(*error)),
            "{body}"
        );
        assert!(body["error_description"].as_str().is_some());
    }
    let stats = h.sim.stats();
    assert_eq!((stats.oauth_tokens_issued, stats.oauth_refusals), (2, 6));
    // Token requests are not pushes.
    assert_eq!(stats.requests, 0);
}

#[tokio::test]
async fn fcm_a_valid_message_is_accepted_and_recorded() {
    let h = spawn_fcm(SimulatorConfig::default()).await;
    let (mut sender, _task) = h.connect().await;
    let bearer = access_token(&h).await;
    let (status, _, body) =
        fcm_send(&h, &mut sender, &bearer, FCM_PROJECT, &fcm_call(FCM_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let name = body["name"].as_str().unwrap();
    assert!(
        name.starts_with("projects/ringcast-demo/messages/"),
        "{name}"
    );
    let records = h.sim.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.service, "fcm");
    assert_eq!(record.device_token, FCM_TOKEN);
    assert_eq!(record.topic, FCM_PROJECT);
    assert_eq!(record.payload["type"], "incoming_call");
    assert_eq!(record.payload["video"], "true");
    assert_eq!(record.android_priority.as_deref(), Some("HIGH"));
    assert_eq!(record.priority, 10);
    assert_eq!(record.ttl.as_deref(), Some("45s"));
    assert_eq!(record.collapse_id.as_deref(), Some("c1"));
    assert!(name.ends_with(&record.apns_id));
    // The same counters over the wire, as a load test reads them.
    let (_, _, body) = exchange(
        &mut sender,
        hyper::Request::get(format!("{}/stats", h.sim.base_url())),
        String::new(),
    )
    .await;
    let stats: Stats = serde_json::from_value(body).unwrap();
    assert_eq!(stats.accepted_by_service["fcm"], 1);
    assert_eq!(stats.by_status["200"], 1);
    assert_eq!(stats.oauth_tokens_issued, 1);
}

#[tokio::test]
async fn held_answers_hold_pushes_but_never_token_requests() {
    let h = spawn_fcm(SimulatorConfig::default()).await;
    let held = h.sim.hold_answers();
    // A sender waiting for its access token has sent no push yet: never held (a hang here
    // would be the test's failure, bounded so it says so).
    let bearer = tokio::time::timeout(Duration::from_secs(30), access_token(&h))
        .await
        .expect("a token request was held");
    let (mut sender, _task) = h.connect().await;
    let h = Arc::new(h);
    let sent = tokio::spawn({
        let h = Arc::clone(&h);
        async move { fcm_send(&h, &mut sender, &bearer, FCM_PROJECT, &fcm_call(FCM_TOKEN)).await }
    });
    until("the FCM push to arrive", || h.sim.stats().received == 1).await;
    assert!(h.sim.records().is_empty(), "the push waits for the release");
    drop(held);
    let (status, _, body) = sent.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.sim.records().len(), 1);
}

#[tokio::test]
async fn fcm_each_rule_is_refused_with_fcms_error_json() {
    let h = spawn_fcm(SimulatorConfig::default()).await;
    let (mut sender, _task) = h.connect().await;
    let bearer = access_token(&h).await;
    let invalid = (
        400,
        "INVALID_ARGUMENT".to_owned(),
        Some("INVALID_ARGUMENT".to_owned()),
    );
    let patched = |path: &[&str], value: Value| {
        let mut message = fcm_call(FCM_TOKEN);
        let mut at = &mut message["message"];
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        let last = path[path.len() - 1];
        if value.is_null() {
            at.as_object_mut().unwrap().remove(last);
        } else {
            at[last] = value;
        }
        message
    };
    let cases = [
        ("two targets", patched(&["topic"], "news".into())),
        ("no target", patched(&["token"], Value::Null)),
        ("bad token", patched(&["token"], "not a token!".into())),
        ("number in data", patched(&["data", "v"], 1.into())),
        ("boolean in data", patched(&["data", "video"], true.into())),
        ("reserved data key", patched(&["data", "from"], "x".into())),
        (
            "lower-case priority",
            patched(&["android", "priority"], "high".into()),
        ),
        (
            "ttl without unit",
            patched(&["android", "ttl"], "45".into()),
        ),
        (
            "ttl over four weeks",
            patched(&["android", "ttl"], "2419201s".into()),
        ),
        (
            "ttl with ten decimals",
            patched(&["android", "ttl"], "1.0000000001s".into()),
        ),
        (
            "unknown field",
            patched(&["android", "urgency"], "high".into()),
        ),
        (
            "too big",
            patched(&["data", "caller_name"], "B".repeat(4000).into()),
        ),
    ];
    for (what, message) in &cases {
        let (status, _, body) = fcm_send(&h, &mut sender, &bearer, FCM_PROJECT, message).await;
        assert_eq!(fcm_error(status, &body), invalid, "{what}: {body}");
        assert!(body["error"]["message"].as_str().is_some());
    }
    let message = fcm_call(FCM_TOKEN);
    let (status, _, body) = fcm_send(&h, &mut sender, &bearer, "someone-else", &message).await;
    assert_eq!(
        fcm_error(status, &body),
        (403, "PERMISSION_DENIED".into(), None)
    );
    let (status, _, body) = fcm_send(&h, &mut sender, "ya29.forged", FCM_PROJECT, &message).await;
    assert_eq!(
        fcm_error(status, &body),
        (401, "UNAUTHENTICATED".into(), None)
    );
    let stats = h.sim.stats();
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.by_status["400 INVALID_ARGUMENT"], cases.len() as u64);
}

#[tokio::test]
async fn fcm_an_expired_access_token_is_401_and_a_new_one_works() {
    let h = spawn_fcm(SimulatorConfig {
        fcm_token_lifetime: Duration::from_secs(1),
        ..SimulatorConfig::default()
    })
    .await;
    let (mut sender, _task) = h.connect().await;
    let bearer = access_token(&h).await;
    let message = fcm_call(FCM_TOKEN);
    let (status, _, _) = fcm_send(&h, &mut sender, &bearer, FCM_PROJECT, &message).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = fcm_send(&h, &mut sender, &bearer, FCM_PROJECT, &message).await;
    assert_eq!(
        fcm_error(status, &body),
        (401, "UNAUTHENTICATED".into(), None)
    );
    let fresh = access_token(&h).await;
    assert_ne!(fresh, bearer);
    let (status, _, _) = fcm_send(&h, &mut sender, &fresh, FCM_PROJECT, &message).await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.stats().oauth_tokens_issued, 2);
}

#[tokio::test]
async fn fcm_a_scripted_unregistered_token_is_404_unregistered() {
    let h = spawn_fcm(SimulatorConfig {
        profile: Profile {
            unregistered_tokens: vec![FCM_GONE.into()],
            ..Profile::default()
        },
        ..SimulatorConfig::default()
    })
    .await;
    let (mut sender, _task) = h.connect().await;
    let bearer = access_token(&h).await;
    let (status, _, body) =
        fcm_send(&h, &mut sender, &bearer, FCM_PROJECT, &fcm_call(FCM_GONE)).await;
    assert_eq!(
        fcm_error(status, &body),
        (404, "NOT_FOUND".into(), Some("UNREGISTERED".into()))
    );
    assert!(h.sim.records().is_empty());
    // Other tokens are still delivered.
    let (status, _, _) =
        fcm_send(&h, &mut sender, &bearer, FCM_PROJECT, &fcm_call(FCM_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(h.sim.stats().by_status["404 UNREGISTERED"], 1);
}

#[tokio::test]
async fn fcm_scripted_quota_exceeded_carries_retry_after_and_spares_apns() {
    let scripted = |service, status, reason: &str| InjectedError {
        service,
        status,
        reason: reason.into(),
        rate: 1.0,
        retry_after_seconds: None,
    };
    let h = spawn_fcm(SimulatorConfig {
        profile: Profile {
            errors: vec![
                scripted(Service::Fcm, 429, "QUOTA_EXCEEDED"),
                scripted(Service::Oauth, 503, "internal_failure"),
            ],
            ..Profile::default()
        },
        ..SimulatorConfig::default()
    })
    .await;
    let (mut sender, _task) = h.connect().await;
    let (status, headers, body) = fcm_send(
        &h,
        &mut sender,
        "ya29.any",
        FCM_PROJECT,
        &fcm_call(FCM_TOKEN),
    )
    .await;
    assert_eq!(
        fcm_error(status, &body),
        (
            429,
            "RESOURCE_EXHAUSTED".into(),
            Some("QUOTA_EXCEEDED".into())
        )
    );
    assert_eq!(headers["retry-after"], "60");
    let jwt = assertion(&h, &fcm_private_key(), serde_json::json!({}));
    let (status, body) = token_request(&h, &jwt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("internal_failure"))
    );
    // APNs has no scripted errors in this profile.
    let answer = send(&mut sender, voip(&h.jwt_at(now()), TOKEN), "{}")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

/// The provider's pure parts (assertion, token answer, request building, answer parsing)
/// against the simulator: both halves of issue 4 agree on the protocol.
#[tokio::test]
async fn fcm_the_providers_pure_parts_agree_with_the_simulator() {
    use ringcast::providers::fcm::{auth, payload, response};
    use ringcast::providers::service::Verdict;
    use ringcast::push::{CallPayload, Outcome, Push, PushKind};
    use ringcast::registry::{Environment, IdentityKey, PushAddress};

    let h = spawn_fcm(SimulatorConfig {
        profile: Profile {
            unregistered_tokens: vec![FCM_GONE.into()],
            ..Profile::default()
        },
        ..SimulatorConfig::default()
    })
    .await;
    let (mut sender, _task) = h.connect().await;
    let mut account = auth::ServiceAccount::from_json(FCM_ACCOUNT.as_bytes()).unwrap();
    account.token_uri = h.sim.token_url();
    let signer = auth::AssertionSigner::new(&account).unwrap();
    let now_ms = now() * 1000;
    let form = String::from_utf8(signer.token_request_body(now_ms).unwrap()).unwrap();
    let (status, body) = h
        .post_http1(signer.token_uri(), auth::FORM_CONTENT_TYPE, form)
        .await;
    let token = auth::parse_token_response(status, body.to_string().as_bytes(), now_ms).unwrap();

    let push = |kind, token: &str| Push {
        event_id: "evt-1".into(),
        kind,
        accepted_at: now_ms,
        deadline: now_ms + 45_000,
        who: IdentityKey::new("demo", "alice").into(),
        device_id: "pixel".into(),
        app: "android".into(),
        address: PushAddress::Fcm {
            token: token.into(),
        },
        environment: Environment::Production,
        payload: Arc::new(CallPayload {
            v: 1,
            kind,
            call_id: "call-7".into(),
            caller_id: "bob".into(),
            caller_name: "Bob".into(),
            video: false,
            reason: None,
            expires_at: "2027-01-01T00:00:45.000Z".into(),
        }),
    };
    let mut deliver = async |push: &Push| {
        let built =
            payload::build_request(push, &account.project_id, &h.sim.base_url(), now_ms).unwrap();
        let request = hyper::Request::post(built.uri())
            .header("authorization", token.authorization.clone())
            .header("content-type", "application/json");
        let body = String::from_utf8(built.body().to_vec()).unwrap();
        let (status, headers, body) = exchange(&mut sender, request, body).await;
        response::judge(
            status,
            &headers,
            body.to_string().as_bytes(),
            now_ms,
            Duration::from_secs(60),
        )
    };
    for kind in [
        PushKind::IncomingCall,
        PushKind::CallEnded,
        PushKind::MissedCall,
    ] {
        let verdict = deliver(&push(kind, FCM_TOKEN)).await;
        assert_eq!(verdict, Verdict::Final(Outcome::Delivered), "{kind:?}");
    }
    let gone = deliver(&push(PushKind::IncomingCall, FCM_GONE)).await;
    assert!(matches!(
        gone,
        Verdict::Final(Outcome::DeadToken { reason, .. }) if reason == "UNREGISTERED"
    ));
    let bad = deliver(&push(PushKind::IncomingCall, "not a token")).await;
    assert!(matches!(bad, Verdict::Final(Outcome::DeadToken { .. })));
    let records = h.sim.records();
    let priorities: Vec<_> = records
        .iter()
        .map(|record| {
            (
                record.payload["type"].clone(),
                record.android_priority.clone(),
            )
        })
        .collect();
    assert_eq!(
        priorities,
        [
            ("incoming_call".into(), Some("HIGH".into())),
            ("call_ended".into(), Some("HIGH".into())),
            ("missed_call".into(), Some("NORMAL".into())),
        ]
    );
    assert!(
        records
            .iter()
            .all(|record| record.ttl.as_deref() == Some("45s") && record.collapse_id.is_none())
    );
}

/// The token endpoints speak only HTTP/1.1, APNs and FCM only HTTP/2 (docs/protocols.md,
/// "Transport, for every service"): a request on the other listener is `421`, and a client
/// that offers only `h2` to the HTTP/1.1 listener fails its TLS handshake on ALPN.
#[tokio::test]
async fn token_endpoints_speak_only_http1_and_push_endpoints_only_http2() {
    let h = spawn_fcm(SimulatorConfig::default()).await;
    let (mut sender, _task) = h.connect().await;
    for path in ["/token", "/wns/token", "/contoso/oauth2/v2.0/token"] {
        let request = hyper::Request::post(format!("{}{path}", h.sim.base_url()))
            .header("content-type", "application/x-www-form-urlencoded");
        let (status, _, _) = exchange(&mut sender, request, "grant_type=x".into()).await;
        assert_eq!(status, 421, "{path} over HTTP/2");
    }
    let (status, _) = h
        .post_http1(
            &format!("{}/3/device/{TOKEN}", h.sim.http1_base_url()),
            "application/json",
            "{}".into(),
        )
        .await;
    assert_eq!(status, 421, "APNs over HTTP/1.1");
    assert_eq!(h.sim.transport_stats().misdirected, 4);
    // The real token endpoint over HTTP/1.1 judges the request (here: no assertion).
    let (status, body) = h
        .post_http1(
            &h.sim.token_url(),
            "application/x-www-form-urlencoded",
            "grant_type=x".into(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    // A client that offers only h2 is refused at the handshake, as an HTTP/1.1-only host does.
    let tcp = tokio::net::TcpStream::connect(h.sim.http1_address())
        .await
        .unwrap();
    let h2_only = client_config_trusting(h.sim.ca_pem().as_bytes()).unwrap();
    let refused = tokio_rustls::TlsConnector::from(h2_only)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await;
    assert!(
        refused.is_err(),
        "the HTTP/1.1-only listener accepted ALPN h2"
    );
}

/// The profile's `http1_only` turns WNS and Web Push into HTTP/1.1-only hosts: refused with
/// `421` over HTTP/2, served over HTTP/1.1; APNs stays on HTTP/2.
#[tokio::test]
async fn the_http1_only_profile_serves_wns_and_web_push_only_over_http1() {
    let h = spawn_simulator(Profile {
        http1_only: true,
        ..Profile::default()
    })
    .await;
    let (mut sender, _task) = h.connect().await;
    for path in ["/w/?token=AwYAAAB", "/wp/no-such-subscription"] {
        let request = hyper::Request::post(format!("{}{path}", h.sim.base_url()))
            .header("content-type", "application/octet-stream");
        let (status, _, _) = exchange(&mut sender, request, "{}".into()).await;
        assert_eq!(status, 421, "{path} over HTTP/2");
    }
    // Over HTTP/1.1 WNS judges the request: no access token, 401.
    let (status, _) = h
        .post_http1(
            &format!("{}/w/?token=AwYAAAB", h.sim.http1_base_url()),
            "application/octet-stream",
            "{}".into(),
        )
        .await;
    assert_eq!(status, 401);
    // Subscriptions point at the HTTP/1.1 listener.
    let subscription = h.sim.webpush_subscribe(None).unwrap();
    assert!(
        subscription
            .endpoint
            .starts_with(&format!("{}/wp/", h.sim.http1_base_url())),
        "{}",
        subscription.endpoint
    );
    let answer = send(&mut sender, voip(&h.jwt_at(now()), TOKEN), "{}")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "APNs is untouched");
}

/// A TLS + HTTP/2 connection to the simulator presenting `identity` (a client certificate
/// chain and key PEM), or none.
async fn connect_as(
    h: &Harness,
    identity: Option<(&str, &str)>,
) -> (SendRequest<Full<Bytes>>, JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("simulator.pem");
    std::fs::write(&roots, h.sim.ca_pem()).unwrap();
    let config = match identity {
        None => client_config_trusting(h.sim.ca_pem().as_bytes()).unwrap(),
        Some((cert, key)) => ringcast::providers::pool::tls::client_config_with_certificate(
            Some(&roots),
            CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(h.sim.address())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, task)
}

/// APNs certificate auth: a connection presenting a client certificate from the configured
/// CA needs no JWT; one presenting a certificate from elsewhere gets `403 BadCertificate` on
/// every push; one presenting neither a certificate nor a JWT gets `403
/// MissingProviderToken`; one whose certificate covers other topics gets `400
/// TopicDisallowed`, as APNs answers.
#[tokio::test]
async fn apns_a_trusted_client_certificate_stands_in_for_the_provider_token() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let subject = ringcast::providers::apns::auth::topics::push_certificate_params;
    let key = rcgen::KeyPair::generate().unwrap();
    let issued = subject("com.example.app").signed_by(&key, &issuer).unwrap();
    let stranger_key = rcgen::KeyPair::generate().unwrap();
    let stranger = subject("com.example.app")
        .self_signed(&stranger_key)
        .unwrap();
    // Trusted, but for another app: its pushes name topics it does not cover.
    let other_app_key = rcgen::KeyPair::generate().unwrap();
    let other_app = subject("com.example.other")
        .signed_by(&other_app_key, &issuer)
        .unwrap();
    let h = spawn_with(SimulatorConfig {
        apns_client_ca: Some(ca.pem()),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await;
    let without_jwt_to = |topic: &str| {
        hyper::Request::post(format!("https://127.0.0.1/3/device/{TOKEN}"))
            .header("apns-topic", topic)
            .header("apns-push-type", "voip")
            .header("apns-priority", "10")
    };
    let without_jwt = || without_jwt_to("com.example.app.voip");

    let (key_pem, stranger_key_pem) = (key.serialize_pem(), stranger_key.serialize_pem());
    let (mut certified, _task) = connect_as(&h, Some((&issued.pem(), &key_pem))).await;
    let answer = send(&mut certified, without_jwt(), "{}").await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(h.sim.records().len(), 1);

    let (mut bare, _task) = connect_as(&h, None).await;
    let answer = send(&mut bare, without_jwt(), "{}").await.unwrap();
    assert_eq!(
        (answer.status, answer.body["reason"].as_str()),
        (403, Some("MissingProviderToken"))
    );
    // A JWT sender presents no certificate and is unaffected.
    let answer = send(&mut bare, voip(&h.jwt_at(now()), TOKEN), "{}")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);

    let (mut untrusted, _task) = connect_as(&h, Some((&stranger.pem(), &stranger_key_pem))).await;
    for request in [without_jwt(), voip(&h.jwt_at(now()), TOKEN)] {
        let answer = send(&mut untrusted, request, "{}").await.unwrap();
        assert_eq!(
            (answer.status, answer.body["reason"].as_str()),
            (403, Some("BadCertificate"))
        );
    }
    assert_eq!(h.sim.records().len(), 2);

    let other_app_key_pem = other_app_key.serialize_pem();
    let (mut other, _task) = connect_as(&h, Some((&other_app.pem(), &other_app_key_pem))).await;
    let answer = send(&mut other, without_jwt(), "{}").await.unwrap();
    assert_eq!(
        (answer.status, answer.body["reason"].as_str()),
        (400, Some("TopicDisallowed"))
    );
    let answer = send(&mut other, without_jwt_to("com.example.other.voip"), "{}")
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(h.sim.records().len(), 3);
}
