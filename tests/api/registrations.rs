//! Register, refresh, list, unregister, revoke — the happy paths, on every platform.

use crate::support::app::{
    APNS_TOKEN, KEY_A, KEY_B, TestStore, apns_body, spawn_app, spawn_with, test_config,
};
use reqwest::Method;
use serde_json::json;

const P256DH: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

#[tokio::test]
async fn register_refresh_list_unregister_revoke() {
    let app = spawn_app().await;
    let (status, first) = app
        .register(KEY_A, "alice", "iphone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["platform"], "apns");
    assert_eq!(first["ttl_seconds"], 86_400);
    assert_eq!(first["ttl_capped"], false);
    assert_eq!(first["token_fingerprint"].as_str().unwrap().len(), 8);

    let (status, refreshed) = app
        .register(
            KEY_A,
            "alice",
            "iphone",
            &json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(status, 200, "a second PUT refreshes: {refreshed}");
    assert_eq!(refreshed["created_at"], first["created_at"]);
    assert_eq!(refreshed["ttl_seconds"], 600);

    let (status, listed) = app.list(KEY_A, "alice").await;
    assert_eq!(status, 200);
    assert_eq!(listed["identity"], "alice");
    let text = listed.to_string();
    assert!(
        !text.contains(APNS_TOKEN),
        "the list shows fingerprints, never tokens: {text}"
    );
    assert_eq!(
        listed["registrations"][0]["expires_at"],
        refreshed["expires_at"]
    );

    app.register(
        KEY_A,
        "alice",
        "pixel",
        &json!({"platform": "fcm", "app": "android", "token": "fcm-token-1"}),
    )
    .await;
    assert_eq!(app.devices(KEY_A, "alice").await, ["iphone", "pixel"]);

    let (status, _) = app
        .send(
            Method::DELETE,
            "/v1/identities/alice/registrations/iphone",
            Some(KEY_A),
        )
        .await;
    assert_eq!(status, 204);
    let (status, problem) = app
        .send(
            Method::DELETE,
            "/v1/identities/alice/registrations/iphone",
            Some(KEY_A),
        )
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (404, Some("urn:ringcast:problem:not-found"))
    );

    let (status, revoked) = app
        .send(Method::DELETE, "/v1/identities/alice", Some(KEY_A))
        .await;
    assert_eq!((status, revoked), (200, json!({"deleted": 1})));
    assert!(app.devices(KEY_A, "alice").await.is_empty());
    let (_, again) = app
        .send(Method::DELETE, "/v1/identities/alice", Some(KEY_A))
        .await;
    assert_eq!(again, json!({"deleted": 0}));
    app.stop().await;
}

#[tokio::test]
async fn every_platform_and_the_rfc8599_form_register() {
    let app = spawn_app().await;
    let bodies = [
        ("ios", apns_body(APNS_TOKEN)),
        (
            "android",
            json!({"platform": "fcm", "app": "android", "token": "dGVzdA:APA91bH-x_y"}),
        ),
        (
            "windows",
            json!({"platform": "wns", "app": "windows", "token": "https://db5p.notify.windows.com/w/?token=AwYAAAB"}),
        ),
        (
            "browser",
            json!({"platform": "webpush", "app": "web", "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
            "keys": {"p256dh": P256DH, "auth": AUTH}, "environment": "sandbox", "disable_internal_push": true}),
        ),
        (
            "sip-phone",
            json!({"pn_provider": "apns", "pn_prid": "b".repeat(64), "pn_param": "TEAMID1234.com.example.phone.voip"}),
        ),
    ];
    for (device, body) in &bodies {
        let (status, answer) = app.register(KEY_A, "bob", device, body).await;
        assert_eq!(status, 201, "{device}: {answer}");
    }
    let (_, listed) = app.list(KEY_A, "bob").await;
    let platforms: Vec<_> = listed["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["device_id"].clone(), r["platform"].clone()))
        .collect();
    assert_eq!(
        platforms,
        [
            ("android", "fcm"),
            ("browser", "webpush"),
            ("ios", "apns"),
            ("sip-phone", "apns"),
            ("windows", "wns")
        ]
        .map(|(d, p)| (json!(d), json!(p)))
    );
    let browser = &listed["registrations"][1];
    assert_eq!(
        (
            browser["environment"].as_str(),
            browser["disable_internal_push"].as_bool()
        ),
        (Some("sandbox"), Some(true))
    );
    app.stop().await;
}

#[tokio::test]
async fn the_tenant_cap_shortens_and_says_so() {
    let app = spawn_app().await;
    let body =
        json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "ttl_seconds": 15_552_000});
    let (status, answer) = app.register(KEY_B, "carol", "phone", &body).await;
    assert_eq!(status, 201);
    assert_eq!(
        (
            answer["ttl_seconds"].as_u64(),
            answer["ttl_capped"].as_bool()
        ),
        (Some(86_400), Some(true))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_token_registered_to_a_new_identity_leaves_the_old_one() {
    let app = spawn_app().await;
    app.register(KEY_A, "dave", "phone", &apns_body(APNS_TOKEN))
        .await;
    let (status, _) = app
        .register(KEY_A, "erin", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201);
    assert!(
        app.devices(KEY_A, "dave").await.is_empty(),
        "a signed-out user must not get erin's calls"
    );
    assert_eq!(app.devices(KEY_A, "erin").await, ["phone"]);
    app.stop().await;
}

#[tokio::test]
async fn registrations_survive_a_restart_of_the_embedded_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let config = test_config(TestStore::Embedded(path.clone()), dir.path());
    let keep = tempfile::tempdir().unwrap();
    let app = spawn_with(config.clone(), keep).await;
    app.register(KEY_A, "frank", "phone", &apns_body(APNS_TOKEN))
        .await;
    app.stop().await;

    let app = spawn_with(config, tempfile::tempdir().unwrap()).await;
    assert_eq!(app.devices(KEY_A, "frank").await, ["phone"]);
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn an_iphone_registers_both_its_tokens_and_lists_them_as_fingerprints() {
    let app = spawn_app().await;
    let alert = "e0a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1";
    let (status, native) = app
        .register(
            KEY_A,
            "gina",
            "iphone",
            &json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN, "alert_token": alert}),
        )
        .await;
    assert_eq!(status, 201, "{native}");
    assert_eq!(native["alert_token_fingerprint"].as_str().unwrap().len(), 8);
    assert_ne!(
        native["alert_token_fingerprint"],
        native["token_fingerprint"]
    );

    // The RFC 8599 form with both tokens is the same registration.
    let (status, sip) = app
        .register(
            KEY_A,
            "gina",
            "iphone",
            &json!({"pn_provider": "apns", "pn_prid": format!("{APNS_TOKEN}:voip&{alert}:remote"),
                    "pn_param": "TEAMID1234.com.example.phone.voip&remote"}),
        )
        .await;
    assert_eq!(status, 200, "{sip}");
    assert_eq!(sip["token_fingerprint"], native["token_fingerprint"]);
    assert_eq!(
        sip["alert_token_fingerprint"],
        native["alert_token_fingerprint"]
    );

    let (_, listed) = app.list(KEY_A, "gina").await;
    let text = listed.to_string();
    assert!(
        !text.contains(APNS_TOKEN) && !text.contains(alert),
        "{text}"
    );
    assert_eq!(
        listed["registrations"][0]["alert_token_fingerprint"],
        native["alert_token_fingerprint"]
    );

    // The alert token is one token, one owner too: the phone signed in as henk.
    let (status, _) = app
        .register(
            KEY_A,
            "henk",
            "iphone",
            &json!({"platform": "apns", "app": "ios",
                    "token": "b".repeat(64), "alert_token": alert}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(app.devices(KEY_A, "gina").await.is_empty());

    // Without one, the field is absent.
    let (_, plain) = app
        .register(KEY_A, "ivo", "iphone", &apns_body(&"c".repeat(64)))
        .await;
    assert!(plain.get("alert_token_fingerprint").is_none(), "{plain}");
    app.stop().await;
}
