//! `ttl_caps`: a tenant caps one class of identities shorter (the service's Teams users: 24 h).

use super::support::app::{APNS_TOKEN, KEY_A, TestStore, spawn_with, test_config};
use ringcast::config::ttl_cap::TtlCap;
use serde_json::json;

#[tokio::test]
async fn a_teams_user_registration_is_capped_at_a_day_and_others_keep_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(
        TestStore::Embedded(dir.path().join("registry.redb")),
        dir.path(),
    );
    config.tenants.get_mut("a").unwrap().ttl_caps = vec![TtlCap {
        identity_prefix: "8:orgid:".into(),
        max_ttl_seconds: 86_400,
    }];
    let app = spawn_with(config, dir).await;
    let week = json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN,
        "ttl_seconds": 604_800});
    let (status, teams) = app.register(KEY_A, "8:orgid:1234", "pc", &week).await;
    assert_eq!(status, 201, "{teams}");
    assert_eq!(teams["ttl_seconds"], 86_400);
    assert_eq!(teams["ttl_capped"], true);
    // Another token: one token belongs to one registration.
    let mut week_elsewhere = week.clone();
    week_elsewhere["token"] = json!("b1".repeat(32));
    let (status, other) = app
        .register(KEY_A, "8:acs:1234", "pc", &week_elsewhere)
        .await;
    assert_eq!(status, 201, "{other}");
    assert_eq!(other["ttl_seconds"], 604_800);
    assert_eq!(other["ttl_capped"], false);
    // Asking for less than the cap is not capped.
    let hour = json!({"platform": "apns", "app": "ios", "token": APNS_TOKEN,
        "ttl_seconds": 3_600});
    let (status, short) = app.register(KEY_A, "8:orgid:1234", "pc", &hour).await;
    assert_eq!(status, 200, "{short}");
    assert_eq!(short["ttl_seconds"], 3_600);
    assert_eq!(short["ttl_capped"], false);
    app.stop().await;
}
