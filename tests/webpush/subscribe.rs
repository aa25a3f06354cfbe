//! `POST /wp/subscribe` over TLS + HTTP/2: a process other than the simulator's subscribes
//! as a browser would, and the subscription it gets takes pushes (encrypted and signed by
//! ringcast's own provider code) exactly like one made in-process.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ringcast::clock::now_millis;
use ringcast::providers::pool::tls::client_config_trusting;
use ringcast::providers::webpush::auth::VapidSigner;
use ringcast::providers::webpush::payload::encrypt;
use ringcast::simulator::{RunningSimulator, Simulator, SimulatorConfig};
use rustls::pki_types::ServerName;
use serde_json::Value;
use std::time::Duration;

/// One TLS + HTTP/2 connection to the simulator, trusting its certificate.
async fn connect(sim: &RunningSimulator) -> SendRequest<Full<Bytes>> {
    let config = client_config_trusting(sim.ca_pem().as_bytes()).unwrap();
    let tcp = tokio::net::TcpStream::connect(sim.address()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// Status, `Location` and body of one request.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> (u16, Option<String>, Bytes) {
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, location, body)
}

fn subscribe_request(sim: &RunningSimulator, body: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("{}/wp/subscribe", sim.base_url()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// A ring for `subscription` (its `toJSON()`), encrypted to its keys and signed by `signer`.
fn push_request(subscription: &Value, signer: &VapidSigner) -> http::Request<Full<Bytes>> {
    let key = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(subscription["keys"][name].as_str().unwrap())
            .unwrap()
    };
    let plaintext = br#"{"v":1,"type":"incoming_call","call_id":"over-http"}"#;
    let body = encrypt(
        plaintext,
        &key("p256dh").try_into().unwrap(),
        &key("auth").try_into().unwrap(),
    )
    .unwrap();
    let endpoint = subscription["endpoint"].as_str().unwrap();
    let origin = endpoint.split("/wp/").next().unwrap();
    let token = signer.token(origin, now_millis()).unwrap();
    http::Request::post(endpoint)
        .header("authorization", &*token.header)
        .header("ttl", "45")
        .header("urgency", "high")
        .header("content-encoding", "aes128gcm")
        .body(Full::new(body))
        .unwrap()
}

fn vapid_signer() -> VapidSigner {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    VapidSigner::new(
        pair.serialize_pem().as_bytes(),
        "mailto:ops@example.com",
        Duration::from_secs(3600),
    )
    .unwrap()
}

#[tokio::test]
async fn a_subscription_made_over_http_takes_pushes_and_binds_its_key() {
    let sim = Simulator::start(SimulatorConfig {
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let mut sender = connect(&sim).await;
    let signer = vapid_signer();

    // Unbound, as a page that passes no applicationServerKey: any valid VAPID key pushes.
    let (status, location, body) = send(&mut sender, subscribe_request(&sim, "")).await;
    assert_eq!(status, 201, "{body:?}");
    let subscription: Value = serde_json::from_slice(&body).unwrap();
    let endpoint = subscription["endpoint"].as_str().unwrap();
    assert!(
        endpoint.starts_with(&format!("{}/wp/", sim.base_url())),
        "{subscription}"
    );
    assert_eq!(location.as_deref(), Some(endpoint));
    let (status, _, body) = send(&mut sender, push_request(&subscription, &signer)).await;
    assert_eq!(status, 201, "{body:?}");
    let records = sim.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].service, "webpush");
    assert_eq!(records[0].payload["call_id"], "over-http");
    assert_eq!(
        endpoint.rsplit('/').next(),
        Some(records[0].device_token.as_str())
    );

    // Bound to the page's key, as pushManager.subscribe({applicationServerKey}).
    let options = serde_json::json!({"userVisibleOnly": true,
        "applicationServerKey": signer.public_key()});
    let (status, _, body) = send(&mut sender, subscribe_request(&sim, &options.to_string())).await;
    assert_eq!(status, 201, "{body:?}");
    let bound: Value = serde_json::from_slice(&body).unwrap();
    let (status, _, _) = send(&mut sender, push_request(&bound, &vapid_signer())).await;
    assert_eq!(status, 403, "another application server's key");
    let (status, _, _) = send(&mut sender, push_request(&bound, &signer)).await;
    assert_eq!(status, 201);

    // What a browser would refuse is refused, with the reason.
    for bad in [
        r#"{"applicationServerKey": "AAAA"}"#,
        r#"{"application_server_key": "x"}"#,
        "not json",
    ] {
        let (status, _, body) = send(&mut sender, subscribe_request(&sim, bad)).await;
        assert_eq!(status, 400, "{bad}");
        assert!(!body.is_empty(), "{bad}: a reason");
    }

    // Subscribing is the browser's side: only the three pushes count as push requests.
    let stats = sim.stats();
    assert_eq!(stats.requests, 3, "{stats:?}");
    assert_eq!(stats.accepted_by_service.get("webpush"), Some(&2));
    sim.shutdown().await;
}
