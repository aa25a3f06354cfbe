//! The registration-time SSRF guard, through the real API: endpoints that are, or resolve to,
//! internal addresses are refused with a clear 422, even when their host is on the allowlist.

use crate::support::app::{KEY_A, TestStore, spawn_with, test_config};
use serde_json::{Value, json};

const P256DH: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

fn webpush(endpoint: &str) -> Value {
    json!({"platform": "webpush", "app": "web", "endpoint": endpoint,
        "keys": {"p256dh": P256DH, "auth": AUTH}})
}

/// A node whose host allowlist names every internal host below, so what refuses them is the
/// address check, not the allowlist; `allowed_private` is the test allowance.
async fn app_allowing(allowed_private: &[&str]) -> crate::support::app::TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    config.webpush.allowed_hosts.extend(
        [
            "127.0.0.1:8443",
            "10.0.0.1",
            "169.254.169.254",
            "[::1]:8443",
            "localhost:8443",
            "[::ffff:127.0.0.1]:8443",
        ]
        .map(String::from),
    );
    config.webpush.allowed_private_addresses = allowed_private
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    spawn_with(config, dir).await
}

#[tokio::test]
async fn internal_endpoints_are_refused_at_registration() {
    let app = app_allowing(&[]).await;
    let cases = [
        ("https://127.0.0.1:8443/wp/x", "loopback"),
        ("https://10.0.0.1/wp/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[::1]:8443/wp/x", "loopback"),
        ("https://[::ffff:127.0.0.1]:8443/wp/x", "IPv4-mapped"),
        ("https://localhost:8443/wp/x", "loopback"),
        ("http://127.0.0.1:8443/wp/x", "https://"),
        (
            "https://push.evil.example/wp/x",
            "not an allowed push service",
        ),
    ];
    for (endpoint, says) in cases {
        let (status, body) = app
            .register(KEY_A, "alice", "browser", &webpush(endpoint))
            .await;
        assert_eq!(status, 422, "{endpoint}: {body}");
        let errors = body["errors"].as_array().expect("field errors");
        assert_eq!(errors[0]["field"], "endpoint", "{endpoint}: {body}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{endpoint}: {message}");
    }
    assert!(
        app.devices(KEY_A, "alice").await.is_empty(),
        "nothing stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_test_allowance_is_exact() {
    let app = app_allowing(&["127.0.0.1:8443"]).await;
    let (status, body) = app
        .register(
            KEY_A,
            "alice",
            "browser",
            &webpush("https://127.0.0.1:8443/wp/x"),
        )
        .await;
    assert_eq!(status, 201, "the allowed simulator address: {body}");
    // localhost also resolves to ::1 (on most hosts) or stays loopback: not all allowed, or
    // allowed only as 127.0.0.1:8443 — either way [::1] and 10.0.0.1 are still refused.
    for endpoint in ["https://[::1]:8443/wp/x", "https://10.0.0.1/wp/x"] {
        let (status, body) = app
            .register(KEY_A, "alice", "other", &webpush(endpoint))
            .await;
        assert_eq!(status, 422, "{endpoint}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unresolvable_public_host_is_accepted_and_vetted_at_connect_time() {
    // The sandbox has no DNS for the public push services: registration must not depend on
    // it (the provider resolves and vets again before connecting).
    let app = app_allowing(&[]).await;
    let (status, body) = app
        .register(
            KEY_A,
            "alice",
            "browser",
            &webpush("https://fcm.googleapis.com/fcm/send/abc"),
        )
        .await;
    assert!(status == 201, "{body}");
    app.stop().await;
}
