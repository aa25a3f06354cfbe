//! A node over Redis: per-key TTL in Redis, and a Redis outage answered with 503, recovered
//! from without restarting the node.

use crate::support::app::{APNS_TOKEN, KEY_A, TestStore, apns_body, spawn_with, test_config};
use crate::support::redis_server::RedisServer;
use std::time::{Duration, Instant};

#[tokio::test]
async fn registrations_carry_their_ttl_in_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(test_config(TestStore::Redis(redis.url()), dir.path()), dir).await;
    let body = serde_json::json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 3600});
    assert_eq!(app.register(KEY_A, "alice", "phone", &body).await.0, 201);

    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg("{a:alice}")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((3_590_000..=3_600_000).contains(&pttl), "PTTL {pttl}");
    app.stop().await;
}

#[tokio::test]
async fn a_redis_outage_gives_503_and_the_node_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(test_config(TestStore::Redis(redis.url()), dir.path()), dir).await;
    assert_eq!(
        app.register(KEY_A, "alice", "phone", &apns_body(APNS_TOKEN))
            .await
            .0,
        201
    );

    redis.stop();
    let started = Instant::now();
    let response = app
        .client
        .get(app.url("/v1/identities/alice/registrations"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead store must not hang requests"
    );
    let (status, problem) = app
        .register(KEY_A, "alice", "tablet", &apns_body(&"d".repeat(64)))
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (503, Some("urn:ringcast:problem:unavailable"))
    );
    assert_eq!(app.send(reqwest::Method::GET, "/readyz", None).await.0, 503);
    assert_eq!(
        app.send(reqwest::Method::GET, "/healthz", None).await.0,
        200,
        "alive while the store is down"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = app
            .register(KEY_A, "alice", "tablet", &apns_body(&"d".repeat(64)))
            .await;
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery within 20 s (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.send(reqwest::Method::GET, "/readyz", None).await.0, 200);
    app.stop().await;
}
