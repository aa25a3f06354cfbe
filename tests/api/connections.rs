//! Connection abuse (issue 17, part 4): a client dribbling its request head is cut off and
//! counted, an HTTP/2 connection opening more streams than allowed has the extra ones refused
//! while other clients are served, and an oversized request head gets `431`.

use crate::support::app::{APNS_TOKEN, TestStore};
use crate::support::app::{KEY_A, TestApp, apns_body, spawn_with, status_and_json, test_config};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

async fn spawn_limited(change: impl FnOnce(&mut ringcast::config::ServerConfig)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    change(&mut config.server);
    spawn_with(config, dir).await
}

/// `ringcast_connections_refused_total{reason}` as the node exports it.
async fn refused(app: &TestApp, reason: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("ringcast_connections_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `reason`'s count passes `before`, or fails at `deadline`.
async fn wait_counted(app: &TestApp, reason: &str, before: f64, deadline: Instant) -> f64 {
    loop {
        let now = refused(app, reason).await;
        if now > before {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{reason} never counted (still {now})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_dribbling_its_request_head_is_cut_off_and_counted() {
    let app = spawn_limited(|server| server.client_request_timeout_ms = 1_000).await;
    let before = refused(&app, "request_timeout").await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let mut socket = TcpStream::connect(app.node.address).await.unwrap();
    let (mut reader, mut writer) = socket.split();
    let dribble = async {
        writer
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: ringcast\r\n")
            .await?;
        // One header byte every 50 ms, never the blank line that ends the head.
        for byte in b"X-Slow: ".iter().chain([b'a'; 1000].iter()).cycle() {
            writer.write_all(&[*byte]).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<(), std::io::Error>(())
    };
    let mut answer = Vec::new();
    let closed = async {
        // The node answers (408) and closes: read until the end of the stream.
        let _ = reader.read_to_end(&mut answer).await;
    };
    let outcome = timeout_at(deadline, async {
        tokio::select! {
            _ = closed => {}
            _ = dribble => {}
        }
    })
    .await;
    assert!(outcome.is_ok(), "the slow client was never cut off");
    let lived = started.elapsed();
    // actix-http's clock is up to 500 ms stale: the cut comes within [500 ms, 1 s].
    assert!(
        lived >= Duration::from_millis(500),
        "cut off at {lived:?}, long before the configured 1 s"
    );
    let head = String::from_utf8_lossy(&answer);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 408"),
        "answered {head:?}"
    );
    wait_counted(&app, "request_timeout", before, deadline).await;
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let app = spawn_limited(|server| server.max_header_bytes = 4_096).await;
    let before = refused(&app, "header_size").await;
    let response = app
        .client
        .get(app.url("/v1/identities/alice/registrations"))
        .bearer_auth(KEY_A)
        .header("x-filler", "f".repeat(5_000))
        .send()
        .await
        .unwrap();
    let (status, problem) = status_and_json(response).await;
    assert_eq!(status, 431, "{problem}");
    assert_eq!(problem["type"], "urn:ringcast:problem:headers-too-large");
    let deadline = Instant::now() + Duration::from_secs(5);
    wait_counted(&app, "header_size", before, deadline).await;
    // An ordinary request on the same node is served.
    let (status, _) = app.list(KEY_A, "alice").await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// A `POST /v1/calls` stream over `h2` whose body is sent later (or never).
fn ring_request(address: std::net::SocketAddr) -> http::Request<()> {
    http::Request::post(format!("http://{address}/v1/calls"))
        .header("authorization", format!("Bearer {KEY_A}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn streams_beyond_a_connections_limit_are_refused_while_others_are_served() {
    let app = spawn_limited(|server| server.max_streams_per_connection = 3).await;
    let (status, _) = app
        .register(KEY_A, "alice", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201);
    let before = refused(&app, "streams").await;

    let tcp = TcpStream::connect(app.node.address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    // Three streams whose bodies do not come yet: each holds its handler waiting.
    let mut held = Vec::new();
    for _ in 0..3 {
        let (response, body) = client
            .send_request(ring_request(app.node.address), false)
            .unwrap();
        held.push((response, body));
        client = client.ready().await.unwrap();
    }
    // The fourth, complete, is refused at once.
    let (extra, mut body) = client
        .send_request(ring_request(app.node.address), false)
        .unwrap();
    body.send_data(
        bytes::Bytes::from_static(br#"{"call_id":"x-4","callee":"alice","caller":{"id":"bob"}}"#),
        true,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let extra = timeout_at(deadline, extra).await.unwrap().unwrap();
    assert_eq!(extra.status(), 503);
    assert!(extra.headers().contains_key("retry-after"));
    wait_counted(&app, "streams", before, deadline).await;

    // Meanwhile another client is served as usual.
    let (status, listed) = app.list(KEY_A, "alice").await;
    assert_eq!(status, 200, "{listed}");

    // A held stream that finishes frees its place for the next.
    let (response, mut body) = held.pop().unwrap();
    body.send_data(
        bytes::Bytes::from_static(br#"{"call_id":"x-3","callee":"nobody","caller":{"id":"bob"}}"#),
        true,
    )
    .unwrap();
    let finished = timeout_at(deadline, response).await.unwrap().unwrap();
    assert_eq!(finished.status(), 202);
    let mut client = client.ready().await.unwrap();
    let (next, mut body) = client
        .send_request(ring_request(app.node.address), false)
        .unwrap();
    body.send_data(
        bytes::Bytes::from_static(br#"{"call_id":"x-5","callee":"nobody","caller":{"id":"bob"}}"#),
        true,
    )
    .unwrap();
    let next = timeout_at(deadline, next).await.unwrap().unwrap();
    assert_eq!(next.status(), 202);
    drop(held);
    app.stop().await;
}
