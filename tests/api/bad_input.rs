//! Every class of bad input gets a clear problem+json answer and changes nothing.

use crate::support::app::{APNS_TOKEN, KEY_A, apns_body, spawn_app, status_and_json};
use serde_json::{Value, json};

const P256DH: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

fn webpush(endpoint: &str) -> Value {
    json!({"platform": "webpush", "app": "web", "endpoint": endpoint, "keys": {"p256dh": P256DH, "auth": AUTH}})
}

#[tokio::test]
async fn invalid_fields_are_named_and_nothing_is_stored() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown field",
            json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "colour": "red"}),
            "malformed-body",
        ),
        (
            "wrong type",
            json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": "long"}),
            "malformed-body",
        ),
        (
            "unknown platform",
            json!({"platform": "sms", "app": "ios", "token": APNS_TOKEN}),
            "malformed-body",
        ),
        (
            "missing platform",
            json!({"app": "ios", "token": APNS_TOKEN}),
            "platform",
        ),
        (
            "missing app",
            json!({"platform": "apns", "token": APNS_TOKEN}),
            "app",
        ),
        (
            "missing token",
            json!({"platform": "apns", "app": "ios"}),
            "token",
        ),
        ("apns token not hex", apns_body(&"z".repeat(64)), "token"),
        ("apns token too short", apns_body("abcd"), "token"),
        (
            "fcm token empty",
            json!({"platform": "fcm", "app": "android", "token": ""}),
            "token",
        ),
        (
            "fcm token too long",
            json!({"platform": "fcm", "app": "android", "token": "a".repeat(1025)}),
            "token",
        ),
        (
            "wns channel elsewhere",
            json!({"platform": "wns", "app": "windows", "token": "https://evil.example/w"}),
            "token",
        ),
        (
            "wns channel not https",
            json!({"platform": "wns", "app": "windows", "token": "http://x.notify.windows.com/w"}),
            "token",
        ),
        (
            "webpush not https",
            webpush("http://fcm.googleapis.com/fcm/send/x"),
            "endpoint",
        ),
        (
            "webpush off the allowlist",
            webpush("https://push.evil.example/x"),
            "endpoint",
        ),
        (
            "webpush to loopback",
            webpush("https://127.0.0.1/x"),
            "endpoint",
        ),
        (
            "webpush to metadata",
            webpush("https://169.254.169.254/latest/meta-data"),
            "endpoint",
        ),
        (
            "p256dh wrong size",
            json!({"platform": "webpush", "app": "web", "endpoint": "https://fcm.googleapis.com/x",
            "keys": {"p256dh": "AAAA", "auth": AUTH}}),
            "keys.p256dh",
        ),
        (
            "auth wrong size",
            json!({"platform": "webpush", "app": "web", "endpoint": "https://fcm.googleapis.com/x",
            "keys": {"p256dh": P256DH, "auth": "AAAAAAAA"}}),
            "keys.auth",
        ),
        (
            "ttl too short",
            json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 299}),
            "ttl_seconds",
        ),
        (
            "ttl too long",
            json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 15_552_001}),
            "ttl_seconds",
        ),
        (
            "ttl not whole",
            json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 86_400.5}),
            "ttl_seconds",
        ),
        (
            "ttl negative",
            json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": -1}),
            "ttl_seconds",
        ),
        (
            "webpush by token, not endpoint",
            json!({"platform": "webpush", "app": "web", "token": "https://fcm.googleapis.com/x",
            "keys": {"p256dh": P256DH, "auth": AUTH}}),
            "token",
        ),
        (
            "app of another tenant",
            json!({"platform": "apns", "app": "their-app", "token": APNS_TOKEN}),
            "app",
        ),
        (
            "app of another platform",
            json!({"platform": "apns", "app": "android", "token": APNS_TOKEN}),
            "app",
        ),
    ];
    for (case, body, expected) in cases {
        let (status, problem) = app.register(KEY_A, "alice", "phone", &body).await;
        if expected == "malformed-body" {
            assert_eq!(status, 400, "{case}: {problem}");
            assert_eq!(
                problem["type"], "urn:ringcast:problem:malformed-body",
                "{case}"
            );
        } else {
            assert_eq!(status, 422, "{case}: {problem}");
            assert_eq!(
                problem["type"], "urn:ringcast:problem:invalid-fields",
                "{case}"
            );
            let fields: Vec<_> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(
                fields.contains(&expected),
                "{case}: expected {expected} in {fields:?}"
            );
        }
        assert_eq!(
            problem["status"].as_u64(),
            Some(u64::from(status)),
            "{case}"
        );
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{case}");
    }
    let ttl_problem = app
        .register(
            KEY_A,
            "alice",
            "phone",
            &json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 1}),
        )
        .await
        .1;
    let message = ttl_problem["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("300") && message.contains("15552000"),
        "the range is stated: {message}"
    );
    assert!(
        app.devices(KEY_A, "alice").await.is_empty(),
        "no bad request stored anything"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_identities_and_device_ids_are_refused() {
    let app = spawn_app().await;
    let long_identity = "x".repeat(129);
    for (identity, device) in [
        ("a%20b", "phone"),
        ("%7Btag%7D", "phone"),
        (long_identity.as_str(), "phone"),
        ("alice", "a%40b"),
        ("alice", "a%00b"),
    ] {
        let (status, problem) = app
            .register(KEY_A, identity, device, &apns_body(APNS_TOKEN))
            .await;
        assert_eq!(status, 422, "{identity}/{device}: {problem}");
        let field = problem["errors"][0]["field"].as_str().unwrap();
        assert!(field == "identity" || field == "device_id", "{field}");
    }
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_wrong_media_types_are_refused() {
    let app = spawn_app().await;
    let url = app.url("/v1/identities/alice/registrations/phone");
    let big = json!({"platform": "fcm", "app": "android", "token": "a".repeat(20_000)});
    let response = app
        .client
        .put(&url)
        .bearer_auth(KEY_A)
        .json(&big)
        .send()
        .await
        .unwrap();
    let (status, problem) = status_and_json(response).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (413, Some("urn:ringcast:problem:body-too-large"))
    );

    let response = app
        .client
        .put(&url)
        .bearer_auth(KEY_A)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, problem) = status_and_json(response).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (415, Some("urn:ringcast:problem:unsupported-media-type"))
    );

    let response = app
        .client
        .put(&url)
        .bearer_auth(KEY_A)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(response).await.0, 400);
    assert!(app.devices(KEY_A, "alice").await.is_empty());
    app.stop().await;
}

/// JSON has one number type: `86400.0` is `86400` (JavaScript clients send either).
#[tokio::test]
async fn whole_number_floats_are_whole_numbers_and_fractions_are_named() {
    let app = spawn_app().await;
    let body =
        json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 3600.0});
    let (status, registered) = app.register(KEY_A, "alice", "phone", &body).await;
    assert_eq!(
        (status, registered["ttl_seconds"].as_u64()),
        (201, Some(3600)),
        "{registered}"
    );

    let ring = |timeout: Value| {
        app.client
            .post(app.url("/v1/calls"))
            .bearer_auth(KEY_A)
            .json(
                &json!({"call_id": "c-float", "callee": "alice", "caller": {"id": "bob"},
                "ring_timeout_seconds": timeout, "event_id": format!("e-{timeout}")}),
            )
            .send()
    };
    let (status, accepted) = status_and_json(ring(json!(30.0)).await.unwrap()).await;
    assert_eq!(
        (status, accepted["devices"].as_u64()),
        (202, Some(1)),
        "{accepted}"
    );
    for refused in [json!(0.5), json!(30.25), json!(-30)] {
        let (status, problem) = status_and_json(ring(refused.clone()).await.unwrap()).await;
        assert_eq!(status, 422, "{refused}: {problem}");
        assert_eq!(
            problem["errors"][0]["field"], "ring_timeout_seconds",
            "{problem}"
        );
    }
    app.stop().await;
}
