//! A live node's scrape: every contract metric, counters that move with real traffic, no
//! unbounded label, and `promtool check metrics`.

use crate::certificate::{issue, with_certificate};
use crate::support::app::{APNS_TOKEN, KEY_A, TestStore, apns_body, spawn_with, test_config};
use crate::support::redis_server::RedisServer;
use crate::{CONTRACT, PROCESS, promtool, registration_traffic, run_promtool, sample, scrape};

#[tokio::test]
async fn a_scrape_after_registration_traffic_counts_it_and_passes_promtool() {
    let _turn = crate::certificate::EXPIRY_SERIES.lock().await;
    // Tenant A's iOS app authenticates with a client certificate, so the node exports its
    // expiry (nothing listens at the APNs address: no push is sent here).
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    let issued = issue("com.example.phone", 365);
    with_certificate(&mut config, dir.path(), &issued, "https://127.0.0.1:9");
    let app = spawn_with(config, dir).await;
    let before = scrape(&app).await;
    registration_traffic(&app).await;
    let after = scrape(&app).await;

    for name in CONTRACT {
        assert!(
            after.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{after}"
        );
    }
    for name in PROCESS {
        assert!(
            after.contains(&format!("\n{name} ")),
            "{name} missing:\n{after}"
        );
    }
    // Other tests of this binary share the process-global recorder: compare at least.
    let grew = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let counted = |op, outcome| {
        grew(
            "ringcast_registrations_total",
            &[("op", op), ("outcome", outcome)],
        )
    };
    assert!(counted("register", "ok") >= 1.0, "{after}");
    assert!(counted("refresh", "ok") >= 1.0);
    assert!(counted("list", "ok") >= 1.0);
    assert!(counted("unregister", "not_found") >= 1.0);
    assert!(counted("register", "invalid") >= 1.0);
    assert!(counted("revoke", "ok") >= 1.0);
    assert!(
        grew(
            "ringcast_registry_op_seconds_count",
            &[("op", "register"), ("store", "embedded")]
        ) >= 1.0
    );
    // A registration is a durable write: it held the embedded store's writer with an fsync.
    assert!(
        grew(
            "ringcast_embedded_write_seconds_count",
            &[("durability", "fsync")]
        ) >= 1.0,
        "{after}"
    );
    // P0 pushes are visible at zero before the first one, for alerts and dashboards.
    let p0 = [
        ("provider", "apns"),
        ("priority", "p0"),
        ("outcome", "delivered"),
    ];
    assert!(after.lines().any(|line| {
        line.starts_with("ringcast_pushes_total{")
            && p0
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
    }));
    // No unbounded label: neither the identity nor the token shows up.
    assert!(!after.contains("obs-alice") && !after.contains(APNS_TOKEN));

    if let Some(promtool) = promtool("promtool check metrics on a live scrape") {
        run_promtool(promtool, &["check", "metrics"], Some(&after));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_store_outage_is_counted_as_unavailable_for_the_alert() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(test_config(TestStore::Redis(redis.url()), dir.path()), dir).await;
    let (status, _) = app
        .register(KEY_A, "obs-carol", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201);
    let before = scrape(&app).await;
    redis.stop();
    let (status, _) = app.list(KEY_A, "obs-carol").await;
    assert_eq!(status, 503);
    let after = scrape(&app).await;
    app.stop().await;

    // What RingcastStoreUnreachable divides: unavailable operations among all of them.
    let grew = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert!(
        grew(
            "ringcast_registrations_total",
            &[("op", "list"), ("outcome", "unavailable")]
        ) >= 1.0,
        "{after}"
    );
    // The failed operation is timed too, against the store it failed on.
    assert!(
        grew(
            "ringcast_registry_op_seconds_count",
            &[("op", "list"), ("store", "redis")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn the_routers_lookups_are_timed_with_the_registrys_operations() {
    // A private Redis: the `store="redis"` series then moves only with this node's work (the
    // other Redis test here makes one lookup), so 20 rings must show up as 20 lookups.
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(test_config(TestStore::Redis(redis.url()), dir.path()), dir).await;
    let (status, _) = app
        .register(KEY_A, "obs-dave", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201);
    let before = scrape(&app).await;
    for n in 0..20 {
        let response = app
            .client
            .post(app.url("/v1/calls"))
            .bearer_auth(KEY_A)
            .json(&serde_json::json!({
                "call_id": format!("lookup-{n}"), "callee": "obs-dave", "caller": {"id": "bob"}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
    let after = scrape(&app).await;
    app.stop().await;
    let grew = |name: &str| {
        sample(&after, name, &[("op", "list"), ("store", "redis")])
            - sample(&before, name, &[("op", "list"), ("store", "redis")])
    };
    assert!(
        grew("ringcast_registry_op_seconds_count") >= 20.0,
        "{after}"
    );
}
