//! The internal push channel end to end: a real node, real WebSocket clients
//! (tokio-tungstenite) and the simulator standing in for APNs. What a client developer
//! checks: the ring arrives over the socket, an ack spares the platform push, no ack lets it
//! follow, notices arrive, and bad clients are told why they were closed.

mod support;

use futures_util::{SinkExt, StreamExt};
use ringcast::config::{AppConfig, Config, SecretSource};
use ringcast::simulator::{ApnsCredential, Profile, RunningSimulator, Simulator, SimulatorConfig};
use serde_json::{Value, json};
use std::time::Duration;
use support::app::{
    KEY_A, TOKEN_SECRET_A, TestApp, TestStore, identity_token, identity_token_issued, next_second,
    spawn_with, unix_seconds,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const TEAM: &str = "TEAMID1234";
const KID: &str = "KEYID12345";
/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(5);

struct Rig {
    sim: RunningSimulator,
    app: TestApp,
}

/// A node whose tenant A rings APNs on the simulator, tuned by `tune`.
async fn rig(tune: impl FnOnce(&mut Config)) -> Rig {
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
        profile: Profile::default(),
        cert_out: Some(cert.clone()),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let store = TestStore::Embedded(dir.path().join("registry.redb"));
    let mut config = support::app::test_config(store, dir.path());
    let ios = config.tenants.get_mut("a").unwrap();
    let Some(AppConfig::Apns(ios)) = ios.apps.get_mut("ios") else {
        panic!("ios is an APNs app");
    };
    ios.key_id = Some(KID.into());
    ios.key = Some(SecretSource::File(key_file));
    let apns = &mut config.providers.apns;
    apns.production_url = sim.base_url();
    apns.sandbox_url = sim.base_url();
    apns.trusted_roots = Some(cert);
    apns.connections = 1;
    tune(&mut config);
    let app = spawn_with(config, dir).await;
    Rig { sim, app }
}

fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

impl Rig {
    fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/v1/channel?{query}", self.app.node.address)
    }

    /// Connects with an identity token of `identity` in `Authorization`.
    async fn connect(&self, identity: &str, query: &str) -> Socket {
        let token = identity_token(identity, 300, TOKEN_SECRET_A);
        self.connect_with(query, Some(&token)).await.unwrap()
    }

    async fn connect_with(&self, query: &str, bearer: Option<&str>) -> Result<Socket, WsError> {
        let mut request = self.ws_url(query).into_client_request().unwrap();
        if let Some(bearer) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        // The hub knows the device once the upgrade answered; the ring below may come at once.
        Ok(socket)
    }

    async fn register(&self, identity: &str, device: &str, n: u8, disable_internal_push: bool) {
        let body = json!({"platform": "apns", "app": "ios", "token": token(n),
            "disable_internal_push": disable_internal_push});
        let (status, answer) = self.app.register(KEY_A, identity, device, &body).await;
        assert!(status == 201 || status == 200, "{status}: {answer}");
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.app.post(&self.app.client, KEY_A, path, &body).await
    }

    async fn ring(&self, callee: &str, call_id: &str) -> Value {
        let (status, answer) = self
            .post(
                "/v1/calls?wait=true",
                json!({"call_id": call_id, "callee": callee,
                       "caller": {"id": "+15550100", "display_name": "Bob"}, "video": true}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    fn pushes_to(&self, n: u8) -> usize {
        self.sim
            .records()
            .into_iter()
            .filter(|r| r.device_token == token(n))
            .count()
    }

    async fn metric(&self, name: &str, labels: &str) -> f64 {
        let scrape = self
            .app
            .client
            .get(self.app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!("{name}{labels} ");
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }

    /// Waits until the metric reaches `at_least`, or fails.
    async fn wait_metric(&self, name: &str, labels: &str, at_least: f64) {
        let until = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.metric(name, labels).await;
            if value >= at_least {
                return;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "{name}{labels} stayed at {value}, expected at least {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `{device_id: (outcome, platform)}` of a `?wait=true` answer.
fn outcomes(answer: &Value) -> std::collections::BTreeMap<String, (String, Value)> {
    answer["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("no outcomes in {answer}"))
        .iter()
        .map(|o| {
            (
                o["device_id"].as_str().unwrap().to_owned(),
                (
                    o["outcome"].as_str().unwrap().to_owned(),
                    o["platform"].clone(),
                ),
            )
        })
        .collect()
}

/// The next JSON text frame (answering pings on the way), or fails after [`PATIENCE`].
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame in time")
            .expect("the connection stays open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads until the server closes; answers its close code.
async fn close_code(socket: &mut Socket) -> u16 {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("closed in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("connection failed before the close frame: {error}"),
        }
    }
}

/// A client that acks every ring it gets; returns the frames it saw when dropped.
fn acking(mut socket: Socket) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(2), socket.next()).await
        {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["type"] == "incoming_call" {
                    let ack = json!({"type": "ack", "event_id": frame["event_id"]});
                    socket
                        .send(Message::Text(ack.to_string().into()))
                        .await
                        .unwrap();
                }
                seen.push(frame);
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acked_ring_sends_no_platform_push_and_other_devices_ring_as_before() {
    let rig = rig(|_| {}).await;
    rig.register("alice", "iphone", 1, false).await;
    rig.register("alice", "ipad", 2, false).await;
    let client = acking(rig.connect("alice", "device_id=iphone").await);
    let answer = rig.ring("alice", "call-acked").await;
    let outcomes = outcomes(&answer);
    assert_eq!(outcomes["iphone"].0, "delivered_internal", "{answer}");
    assert_eq!(outcomes["iphone"].1, "apns");
    assert_eq!(outcomes["ipad"].0, "delivered", "{answer}");
    assert_eq!(rig.pushes_to(2), 1, "the unconnected iPad rings by APNs");
    assert_eq!(rig.pushes_to(1), 0, "the acked iPhone gets no APNs push");
    let frames = client.await.unwrap();
    assert_eq!(frames.len(), 1, "{frames:?}");
    let ring = &frames[0];
    assert_eq!(ring["type"], "incoming_call");
    assert_eq!(ring["event_id"], "call-acked");
    assert_eq!(ring["call_id"], "call-acked");
    assert_eq!(
        ring["caller"],
        json!({"id": "+15550100", "display_name": "Bob"})
    );
    assert_eq!(ring["video"], true);
    assert!(ring["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(ring.get("reason").is_none());
    assert!(
        rig.metric(
            "ringcast_pushes_total",
            r#"{provider="channel",priority="p0",outcome="delivered_internal"}"#
        )
        .await
            >= 1.0
    );
    assert!(
        rig.metric("ringcast_channel_acks_total", r#"{outcome="in_time"}"#)
            .await
            >= 1.0
    );
    // The ack's wait is timed, inside the ack timeout it came within.
    assert!(rig.metric("ringcast_channel_ack_seconds_count", "").await >= 1.0);
    let waited = rig.metric("ringcast_channel_ack_seconds_sum", "").await;
    assert!(waited > 0.0 && waited < 60.0, "{waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_ack_the_platform_push_follows_and_opted_out_devices_are_not_offered() {
    let rig = rig(|config| config.channel.ack_timeout_ms = 150).await;
    rig.register("bob", "silent", 3, false).await;
    rig.register("bob", "by-registration", 4, true).await;
    rig.register("bob", "by-connection", 5, false).await;
    let mut silent = rig.connect("bob", "device_id=silent").await;
    let mut by_registration = rig.connect("bob", "device_id=by-registration").await;
    let mut by_connection = rig
        .connect(
            "bob",
            "device_id=by-connection&disable_internal_push_for_incoming_call=true",
        )
        .await;
    let started = std::time::Instant::now();
    let answer = rig.ring("bob", "call-silent").await;
    let outcomes = outcomes(&answer);
    for device in ["silent", "by-registration", "by-connection"] {
        assert_eq!(outcomes[device].0, "delivered", "{device}: {answer}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the silent device's push waited for the ack timeout"
    );
    for n in [3, 4, 5] {
        assert_eq!(rig.pushes_to(n), 1, "token {n} rang by APNs");
    }
    // The silent client got the ring (it just never acked); the opted-out ones did not.
    assert_eq!(next_json(&mut silent).await["type"], "incoming_call");
    rig.wait_metric(
        "ringcast_channel_fallbacks_total",
        r#"{reason="no_ack"}"#,
        1.0,
    )
    .await;
    // An end reaches every connected device, opted out of rings or not.
    let (status, _) = rig
        .post(
            "/v1/calls/call-silent/end",
            json!({"callee": "bob", "reason": "cancelled"}),
        )
        .await;
    assert_eq!(status, 202);
    for socket in [&mut silent, &mut by_registration, &mut by_connection] {
        let frame = next_json(socket).await;
        assert_eq!(frame["type"], "call_ended", "{frame}");
        assert_eq!(frame["reason"], "cancelled");
        assert_eq!(frame["call_id"], "call-silent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_browser_without_a_registration_still_rings_and_hears_of_missed_calls() {
    let rig = rig(|_| {}).await;
    let token = identity_token("carol", 300, TOKEN_SECRET_A);
    // A browser cannot set Authorization on a WebSocket: the token rides in the query.
    let browser = rig
        .connect_with(&format!("device_id=browser&access_token={token}"), None)
        .await
        .unwrap();
    // Call control's own client may connect for an identity with the server key.
    let mut desk = rig
        .connect_with("device_id=desk&identity=carol", Some(KEY_A))
        .await
        .unwrap();
    let browser = acking(browser);
    // The desk client never acks: with no registration there is nothing to fall back to.
    let answer = rig.ring("carol", "call-browser").await;
    let outcomes = outcomes(&answer);
    assert_eq!(outcomes["browser"].0, "delivered_internal", "{answer}");
    assert_eq!(
        outcomes["browser"].1,
        Value::Null,
        "no platform: not registered"
    );
    assert_eq!(outcomes["desk"].0, "rejected", "{answer}");
    assert_eq!(answer["outcomes"][0].get("platform"), None);
    assert_eq!(next_json(&mut desk).await["type"], "incoming_call");
    let (status, _) = rig
        .post(
            "/v1/calls/call-browser/end",
            json!({"callee": "carol", "reason": "missed",
                   "caller": {"id": "+15550100", "display_name": "Bob"}}),
        )
        .await;
    assert_eq!(status, 202);
    let missed = next_json(&mut desk).await;
    assert_eq!(missed["type"], "missed_call");
    assert_eq!(missed["reason"], "missed");
    assert_eq!(missed["caller"]["display_name"], "Bob");
    let frames = browser.await.unwrap();
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["incoming_call", "missed_call"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_without_a_valid_credential_or_device_is_refused_with_a_status() {
    let rig = rig(|_| {}).await;
    let alice = identity_token("alice", 300, TOKEN_SECRET_A);
    let expired = identity_token("alice", -60, TOKEN_SECRET_A);
    for (query, bearer, status) in [
        ("device_id=phone", None, 401),
        ("device_id=phone", Some(expired.as_str()), 401),
        ("device_id=phone", Some("not-a-key"), 401),
        ("", Some(alice.as_str()), 422),
        ("device_id=bad%20id", Some(alice.as_str()), 422),
        ("device_id=phone", Some(KEY_A), 422),
        ("device_id=phone&identity=bob", Some(alice.as_str()), 403),
        ("device_id=phone&colour=red", Some(alice.as_str()), 400),
    ] {
        match rig.connect_with(query, bearer).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{query}");
            }
            Err(other) => panic!("{query}: {other}"),
            Ok(_) => panic!("{query}: the upgrade was accepted"),
        }
    }
    // A plain GET (no upgrade) is told what the endpoint is.
    let plain = rig
        .app
        .client
        .get(rig.app.url("/v1/channel?device_id=phone"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 400);
}

/// Sends `head` (an HTTP/1.1 request head) on a fresh connection and reads until the node
/// closes it.
async fn raw_exchange(rig: &Rig, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(rig.app.node.address)
        .await
        .unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut answer))
        .await
        .expect("the node closed the connection in time")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_request_elsewhere_gets_the_api_answer_and_the_connection_closes() {
    // Every `Upgrade: websocket` request reaches the node's upgrade service, not only
    // /v1/channel: the API answers it as it would any request, then the connection closes.
    let rig = rig(|_| {}).await;
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let answer = raw_exchange(
        &rig,
        &format!("GET /v1/identities/alice/registrations HTTP/1.1\r\nHost: x\r\n{upgrade}\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        answer.contains("unauthorized"),
        "the problem body: {answer}"
    );

    // A handshake with a body is not one (RFC 6455 §4.1).
    let alice = identity_token("alice", 300, TOKEN_SECRET_A);
    let answer = raw_exchange(
        &rig,
        &format!(
            "GET /v1/channel?device_id=phone HTTP/1.1\r\nHost: x\r\n{upgrade}\
             Authorization: Bearer {alice}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    rig.wait_metric("ringcast_channel_connections", "", 0.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_replaced_or_idle_clients_are_closed_with_a_code_that_says_why() {
    let rig = rig(|config| {
        config.channel.ping_interval_ms = 100;
        config.channel.idle_timeout_ms = 400;
        config.channel.max_frame_bytes = 512;
    })
    .await;
    let cases: [(&str, Message, u16); 4] = [
        ("binary", Message::Binary(vec![1, 2, 3].into()), 1003),
        ("json", Message::Text("{\"type\":\"nack\"}".into()), 1008),
        ("text", Message::Text("hello".into()), 1008),
        ("large", Message::Text("x".repeat(2048).into()), 1009),
    ];
    for (device, frame, code) in cases {
        let mut socket = rig.connect("dave", &format!("device_id={device}")).await;
        socket.send(frame).await.unwrap();
        assert_eq!(close_code(&mut socket).await, code, "{device}");
    }
    rig.wait_metric(
        "ringcast_channel_closes_total",
        r#"{reason="bad_message"}"#,
        2.0,
    )
    .await;
    // The same device connecting again replaces its first connection.
    let mut first = rig.connect("dave", "device_id=phone").await;
    let second = rig.connect("dave", "device_id=phone").await;
    assert_eq!(close_code(&mut first).await, 4001);
    // The replaced session must not take the new one with it: it still rings.
    let client = acking(second);
    let answer = rig.ring("dave", "call-replaced").await;
    assert_eq!(
        outcomes(&answer)["phone"].0,
        "delivered_internal",
        "{answer}"
    );
    drop(client);
    // A client that stops answering (not even pongs) is closed as idle.
    let idle = r#"{reason="idle"}"#;
    let idle_before = rig.metric("ringcast_channel_closes_total", idle).await;
    let mut mute = rig.connect("erin", "device_id=phone").await;
    let started = std::time::Instant::now();
    // Not reading (reading would send pongs back) until the node counts the idle close: a
    // fixed sleep could end before a busy node got to it, and the read would revive it.
    rig.wait_metric("ringcast_channel_closes_total", idle, idle_before + 1.0)
        .await;
    assert_eq!(close_code(&mut mute).await, 4000);
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A client that answers pings stays.
    let mut live = rig.connect("frank", "device_id=phone").await;
    let until = tokio::time::Instant::now() + Duration::from_millis(900);
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout_at(until, live.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Ping(_)))) => {} // tungstenite queues the pong itself
            Ok(other) => panic!("the live client was closed: {other:?}"),
        }
    }
    rig.wait_metric("ringcast_channel_connections", "", 1.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_identity_closes_its_channel_connections() {
    let rig = rig(|_| {}).await;
    let mut phone = rig.connect("grace", "device_id=phone").await;
    let mut laptop = rig.connect("grace", "device_id=laptop").await;
    let other = rig.connect("heidi", "device_id=phone").await;
    let revoked = rig
        .app
        .client
        .delete(rig.app.url("/v1/identities/grace"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    assert_eq!(close_code(&mut phone).await, 4003);
    assert_eq!(close_code(&mut laptop).await, 4003);
    // Another identity's client still rings.
    let client = acking(other);
    let answer = rig.ring("heidi", "call-after-revoke").await;
    assert_eq!(
        outcomes(&answer)["phone"].0,
        "delivered_internal",
        "{answer}"
    );
    drop(client);
    rig.wait_metric(
        "ringcast_channel_closes_total",
        r#"{reason="revoked"}"#,
        2.0,
    )
    .await;
}

/// Revoke means revoke, for the channel too: the token the app held before the revocation
/// no longer connects (401 `token-revoked`), a token issued after it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_before_a_revocation_no_longer_connects() {
    let rig = rig(|_| {}).await;
    let issued = unix_seconds() - 10;
    let old = identity_token_issued("ivan", issued, issued + 300, TOKEN_SECRET_A);
    let mut before = rig
        .connect_with("device_id=phone", Some(&old))
        .await
        .unwrap();
    let revoked = rig
        .app
        .client
        .delete(rig.app.url("/v1/identities/ivan"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    assert_eq!(close_code(&mut before).await, 4003);

    match rig.connect_with("device_id=phone", Some(&old)).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
            let body = response.body().as_deref().unwrap_or_default();
            let problem: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(problem["type"], "urn:ringcast:problem:token-revoked");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a revoked token connected"),
    }
    // Browsers give the token as access_token: refused the same way.
    match rig
        .connect_with(&format!("device_id=phone&access_token={old}"), None)
        .await
    {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        other => panic!("{:?}", other.map(|_| "connected")),
    }

    let next_second = next_second().await;
    let fresh = identity_token_issued("ivan", next_second, next_second + 300, TOKEN_SECRET_A);
    let client = acking(
        rig.connect_with("device_id=phone", Some(&fresh))
            .await
            .unwrap(),
    );
    let answer = rig.ring("ivan", "call-after-new-token").await;
    assert_eq!(
        outcomes(&answer)["phone"].0,
        "delivered_internal",
        "{answer}"
    );
    drop(client);
}
