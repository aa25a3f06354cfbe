use super::*;
use crate::config::{FcmAppConfig, SecretSource, TenantConfig};
use crate::registry::embedded::EmbeddedStore;
use crate::vocab::Platform;

/// A config with one tenant whose two Android apps share the development service
/// account, and an iOS app without a credential.
fn config() -> Config {
    let android = |project: &str| {
        AppConfig::Fcm(FcmAppConfig {
            project_id: Some(project.into()),
            // Absolute: other tests in this binary change the working directory (figment's
            // `Jail`), so a relative path would be read from wherever they left it.
            service_account: Some(SecretSource::File(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/config/dev/fcm-service-account.json"
                )
                .into(),
            )),
        })
    };
    let mut config = Config::default();
    // Nothing listens there: the pools' connection attempts fail quietly in the background.
    config.providers.fcm.base_url = "https://127.0.0.1:9".into();
    let tenant = TenantConfig {
        server_keys: Vec::new(),
        identity_tokens: None,
        max_ttl_seconds: 86_400,
        ttl_caps: Vec::new(),
        ring_timeout_seconds: 45,
        apps: [
            ("android".to_owned(), android("ringcast-demo")),
            ("android-beta".to_owned(), android("ringcast-demo")),
            ("ios".to_owned(), AppConfig::new(Platform::Apns)),
        ]
        .into(),
        limits: Default::default(),
    };
    config.tenants.insert("demo".into(), tenant);
    config
}

#[actix_rt::test]
async fn an_fcm_app_gets_one_provider_found_under_either_environment() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnyStore::Embedded(EmbeddedStore::open(dir.path().join("r.redb"), 32).unwrap());
    let plan = ProviderSpecs::build(&config()).unwrap();
    assert_eq!(plan.fcm.len(), 2);
    assert!(plan.apns.is_empty(), "the iOS app has no credential");
    // One quota pause per project, shared by both apps (and every router's clients).
    plan.fcm[0].pause.extend_to(42);
    assert_eq!(plan.fcm[1].pause.until(), Some(42));

    let set = ProviderSet::start(&plan, &store).unwrap();
    let key = |app: &str, environment| ProviderKey {
        tenant: "demo".into(),
        app: app.into(),
        environment,
    };
    for app in ["android", "android-beta"] {
        assert!(set.get(&key(app, Environment::Production)).is_some());
        assert!(set.get(&key(app, Environment::Sandbox)).is_some());
    }
    assert!(set.get(&key("ios", Environment::Production)).is_none());
    // Two providers, each visited once when a call's rings are withdrawn.
    assert_eq!(set.len(), 2);
    assert_eq!(set.of_tenant("demo").count(), 2);
}
