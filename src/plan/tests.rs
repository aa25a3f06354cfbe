use super::*;
use crate::config::{AppConfig, FcmAppConfig, SecretSource, ServerKeySource, TenantConfig};

/// A config with one tenant whose Android app's service account is the development one
/// with `edit` applied, written to `dir`.
fn config_with_account(dir: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) -> Config {
    let dev = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/dev/fcm-service-account.json"
    );
    let mut account: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dev).unwrap()).unwrap();
    edit(&mut account);
    let file = dir.join("account.json");
    std::fs::write(&file, account.to_string()).unwrap();
    let android = AppConfig::Fcm(FcmAppConfig {
        project_id: Some("ringcast-demo".into()),
        service_account: Some(SecretSource::File(file)),
    });
    let tenant = TenantConfig {
        server_keys: vec![ServerKeySource::Sha256("ab".repeat(32))],
        identity_tokens: None,
        max_ttl_seconds: 86_400,
        ttl_caps: Vec::new(),
        ring_timeout_seconds: 45,
        apps: [("android".to_owned(), android)].into(),
        limits: Default::default(),
    };
    let mut config = Config::default();
    config.registry.embedded.path = dir.join("r.redb");
    config.tenants.insert("t".into(), tenant);
    config
}

fn problems(config: &Config) -> Vec<String> {
    match Plan::build(config) {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(problems)) => problems,
    }
}

#[test]
fn a_service_account_the_provider_would_refuse_fails_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(problems(&config_with_account(dir.path(), |_| {})), [""; 0]);
    // Each once passed one reader and failed the other: the tenant check ignored `type` and
    // `project_id`, the provider took an http:// token endpoint.
    for (key, value, message) in [
        ("type", "authorized_user", "type is not \"service_account\""),
        ("project_id", "", "project_id is empty"),
        (
            "token_uri",
            "http://127.0.0.1:8444/token",
            "token_uri is not an https:// URL",
        ),
    ] {
        let config = config_with_account(dir.path(), |account| account[key] = value.into());
        assert_eq!(
            problems(&config),
            [format!(
                "tenants.t.apps.android.service_account: not a usable service-account JSON: \
                 {message}"
            )],
            "{key}"
        );
    }
}

#[test]
fn the_plan_lists_config_and_tenant_problems_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_account(dir.path(), |account| {
        account["type"] = "authorized_user".into();
    });
    config.registry.mailbox_capacity = 0;
    let problems = problems(&config);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("registry.mailbox_capacity"));
    assert!(problems[1].starts_with("tenants.t.apps.android.service_account"));
}

#[test]
fn the_summary_names_tenants_apps_and_providers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_account(dir.path(), |_| {});
    let apps = &mut config.tenants.get_mut("t").unwrap().apps;
    apps.insert(
        "web".into(),
        AppConfig::new(crate::vocab::Platform::Webpush),
    );
    let plan = Plan::build(&config).map_err(|e| e.to_string()).unwrap();
    let summary = plan.summary(&config);
    assert!(summary.contains("  store: embedded ("), "{summary}");
    assert!(
        summary.contains("  tenant t: android (fcm), web (webpush)\n"),
        "{summary}"
    );
    assert!(summary.contains("  apps: fcm 1, webpush 1\n"), "{summary}");
    assert!(
        summary.contains("  providers (apps with a credential): fcm 1\n"),
        "{summary}"
    );
}
