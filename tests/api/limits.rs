//! Limits per tenant: a tenant over its rate gets `429` with `Retry-After`, counted by tenant,
//! and another tenant is not slowed by it.

use crate::support::app::TestStore;
use crate::support::app::{APNS_TOKEN, KEY_A, KEY_B, apns_body, spawn_with, test_config};
use reqwest::Method;
use serde_json::json;

/// A node where tenant `a` may make 3 registry operations and 2 call events at once, then 1 a
/// second; tenant `b` keeps the defaults.
async fn spawn_limited() -> crate::support::app::TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(
        TestStore::Embedded(dir.path().join("registry.redb")),
        dir.path(),
    );
    let limits = &mut config.tenants.get_mut("a").unwrap().limits;
    limits.registrations_per_second = 1;
    limits.registrations_burst = 3;
    limits.calls_per_second = 1;
    limits.calls_burst = 2;
    spawn_with(config, dir).await
}

/// `ringcast_rate_limited_total{tenant,kind}` as the node exports it.
async fn limited(app: &crate::support::app::TestApp, tenant: &str, kind: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("ringcast_rate_limited_total{{tenant=\"{tenant}\",kind=\"{kind}\"}} ");
    let alternative =
        format!("ringcast_rate_limited_total{{kind=\"{kind}\",tenant=\"{tenant}\"}} ");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(&series)
                .or_else(|| line.strip_prefix(&alternative))
        })
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn registrations_beyond_the_tenants_burst_get_429_with_retry_after() {
    let app = spawn_limited().await;
    let before = limited(&app, "a", "registration").await;
    for device in ["d1", "d2", "d3"] {
        let (status, body) = app
            .register(KEY_A, "rl-alice", device, &apns_body(APNS_TOKEN))
            .await;
        assert!(status == 201 || status == 200, "{device}: {status} {body}");
    }
    let response = app
        .client
        .put(app.url("/v1/identities/rl-alice/registrations/d4"))
        .bearer_auth(KEY_A)
        .json(&apns_body(APNS_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 1, "one token a second");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:ringcast:problem:rate-limited");
    assert_eq!(problem["status"], 429);
    assert_eq!(limited(&app, "a", "registration").await, before + 1.0);

    // Tenant b is not affected by a's empty bucket.
    for device in ["d1", "d2", "d3", "d4", "d5"] {
        let (status, _) = app
            .register(KEY_B, "rl-bob", device, &apns_body(APNS_TOKEN))
            .await;
        assert_eq!(status, 201, "{device}");
    }
    assert_eq!(limited(&app, "b", "registration").await, 0.0);

    // After Retry-After, a token is back; 201 shows the refused request stored nothing.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    let (status, body) = app
        .register(KEY_A, "rl-alice", "d4", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn call_events_have_their_own_bucket() {
    let app = spawn_limited().await;
    let ring = |call: &str| {
        app.client
            .post(app.url("/v1/calls"))
            .bearer_auth(KEY_A)
            .json(&json!({"call_id": call, "callee": "rl-carol", "caller": {"id": "+15550001"}}))
            .send()
    };
    assert_eq!(ring("rl-c1").await.unwrap().status(), 202);
    let end = app
        .client
        .post(app.url("/v1/calls/rl-c1/end"))
        .bearer_auth(KEY_A)
        .json(&json!({"callee": "rl-carol", "reason": "cancelled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 202, "an end spends a call token too");
    let refused = ring("rl-c2").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:ringcast:problem:rate-limited");
    assert!(limited(&app, "a", "call").await >= 1.0);
    // Registry operations still have their tokens.
    let (status, _) = app
        .send(
            Method::GET,
            "/v1/identities/rl-carol/registrations",
            Some(KEY_A),
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}
