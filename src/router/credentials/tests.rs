use super::*;
use crate::config::{ApnsAppConfig, FcmAppConfig, SecretSource, TenantConfig};
use crate::config::{WebPushAppConfig, WnsAppConfig};
use crate::providers::wiring::ProviderSpecs;
use crate::vocab::Platform;
use std::path::Path;

/// A P-256 PKCS#8 PEM key, the shape of an APNs `.p8` and of a VAPID key.
fn p256_pem() -> String {
    rcgen::KeyPair::generate().unwrap().serialize_pem()
}

fn write(dir: &Path, name: &str, text: &str) -> SecretSource {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    SecretSource::File(path)
}

fn ios(key_id: &str, key: SecretSource) -> AppConfig {
    AppConfig::Apns(ApnsAppConfig {
        bundle_id: Some("com.example.voip".into()),
        team_id: Some("TEAM123456".into()),
        key_id: Some(key_id.into()),
        key: Some(key),
        ..Default::default()
    })
}

fn web(key: SecretSource) -> AppConfig {
    AppConfig::Webpush(WebPushAppConfig {
        vapid_key: Some(key),
        vapid_subject: Some("mailto:ops@example.com".into()),
    })
}

fn config(apps: [(&str, AppConfig); 2]) -> Config {
    let mut config = Config::default();
    let tenant = TenantConfig {
        server_keys: Vec::new(),
        identity_tokens: None,
        max_ttl_seconds: 86_400,
        ttl_caps: Vec::new(),
        ring_timeout_seconds: 45,
        apps: apps.map(|(id, app)| (id.to_owned(), app)).into(),
        limits: Default::default(),
    };
    config.tenants.insert("t".into(), tenant);
    config
}

fn plan(config: &Config) -> ProviderSpecs {
    ProviderSpecs::build(config).unwrap()
}

/// The `kid` of the JWT the app's cache signs now.
fn signing_key_id(plan: &ProviderSpecs) -> Option<String> {
    let token = plan.apns[0]
        .credential
        .load()
        .tokens
        .token(1_000_000)
        .unwrap();
    let header = token.authorization.unwrap();
    let jwt = header.to_str().unwrap().trim_start_matches("bearer ");
    jsonwebtoken::decode_header(jwt).unwrap().kid
}

#[test]
fn a_rotated_apns_key_signs_the_next_token_and_an_unchanged_app_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let vapid = write(dir.path(), "vapid.pem", &p256_pem());
    let running = config([
        (
            "ios",
            ios("OLDKEY0001", write(dir.path(), "old.p8", &p256_pem())),
        ),
        ("web", web(vapid.clone())),
    ]);
    let plan = plan(&running);
    assert_eq!(signing_key_id(&plan).as_deref(), Some("OLDKEY0001"));
    let signer_before = plan.webpush[0].2.signer.load_full();

    let new = config([
        (
            "ios",
            ios("NEWKEY0002", write(dir.path(), "new.p8", &p256_pem())),
        ),
        ("web", web(vapid)),
    ]);
    let reload = plan.credentials.prepare(&running, &new).unwrap();
    assert_eq!(reload.swapped(), ["tenants.t.apps.ios"]);
    assert!(reload.restart_needed.is_empty());
    assert_eq!(
        signing_key_id(&plan).as_deref(),
        Some("OLDKEY0001"),
        "nothing changes before apply"
    );
    plan.credentials.apply(reload);
    assert_eq!(signing_key_id(&plan).as_deref(), Some("NEWKEY0002"));
    assert!(
        Arc::ptr_eq(&signer_before, &plan.webpush[0].2.signer.load_full()),
        "the unchanged Web Push app keeps its signer (and its cached tokens)"
    );

    // Reloading the same files again changes nothing.
    let again = plan.credentials.prepare(&new, &new).unwrap();
    assert!(again.swapped().is_empty() && again.restart_needed.is_empty());
}

#[test]
fn a_key_replaced_under_the_same_file_name_is_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "apns.p8", &p256_pem());
    let web_key = write(dir.path(), "vapid.pem", &p256_pem());
    let running = config([
        ("ios", ios("KEY0000001", key.clone())),
        ("web", web(web_key)),
    ]);
    let plan = plan(&running);
    write(dir.path(), "vapid.pem", &p256_pem());
    let reload = plan.credentials.prepare(&running, &running).unwrap();
    assert_eq!(reload.swapped(), ["tenants.t.apps.web"]);
}

#[test]
fn bad_credentials_refuse_the_reload_all_listed_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let running = config([
        (
            "ios",
            ios("OLDKEY0001", write(dir.path(), "old.p8", &p256_pem())),
        ),
        ("web", web(write(dir.path(), "vapid.pem", &p256_pem()))),
    ]);
    let plan = plan(&running);
    let new = config([
        (
            "ios",
            ios("NEWKEY0002", write(dir.path(), "bad.p8", "not a key")),
        ),
        (
            "web",
            web(SecretSource::File(dir.path().join("missing.pem"))),
        ),
    ]);
    let problems = plan.credentials.prepare(&running, &new).err().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("tenants.t.apps.ios.key: "),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("tenants.t.apps.web.vapid_key: cannot read"),
        "{problems:?}"
    );
    assert_eq!(signing_key_id(&plan).as_deref(), Some("OLDKEY0001"));
}

#[test]
fn what_a_credential_cell_cannot_carry_is_named_per_app() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "apns.p8", &p256_pem());
    let vapid = write(dir.path(), "vapid.pem", &p256_pem());
    let running = config([("ios", ios("KEY0000001", key.clone())), ("web", web(vapid))]);
    let plan = plan(&running);
    let mut new = running.clone();
    let apps = &mut new.tenants.get_mut("t").unwrap().apps;
    apps.insert(
        "ios".into(),
        AppConfig::Apns(ApnsAppConfig {
            bundle_id: Some("com.example.other".into()),
            ..running.tenants["t"].apps["ios"].as_apns().unwrap().clone()
        }),
    );
    apps.remove("web");
    apps.insert("android".into(), AppConfig::new(Platform::Fcm));
    let reload = plan.credentials.prepare(&running, &new).unwrap();
    assert_eq!(
        reload.restart_needed,
        [
            "tenants.t.apps.android",
            "tenants.t.apps.ios",
            "tenants.t.apps.web"
        ]
    );
    assert!(reload.swapped().is_empty());
}

#[test]
fn a_renewed_apns_client_certificate_is_swapped_with_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = |name: &str, days: i64| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["push".to_owned()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let cert = params.self_signed(&key).unwrap();
        (
            write(dir.path(), &format!("{name}.pem"), &cert.pem()),
            write(dir.path(), &format!("{name}.key"), &key.serialize_pem()),
        )
    };
    let app = |(cert, key): (SecretSource, SecretSource)| {
        AppConfig::Apns(ApnsAppConfig {
            bundle_id: Some("com.example.voip".into()),
            certificate: Some(cert),
            certificate_key: Some(key),
            ..Default::default()
        })
    };
    let web_key = write(dir.path(), "vapid.pem", &p256_pem());
    let running = config([
        ("ios", app(certificate("old", 10))),
        ("web", web(web_key.clone())),
    ]);
    let plan = plan(&running);
    let before = plan.apns[0].credential.load_full();

    let new = config([("ios", app(certificate("new", 400))), ("web", web(web_key))]);
    let reload = plan.credentials.prepare(&running, &new).unwrap();
    assert_eq!(reload.swapped(), ["tenants.t.apps.ios"]);
    plan.credentials.apply(reload);
    let after = plan.apns[0].credential.load_full();
    assert_eq!(
        after.generation,
        before.generation + 1,
        "the clients renew their connections"
    );
    assert!(
        !Arc::ptr_eq(&after.tls, &before.tls),
        "new connections carry the new certificate"
    );

    // An expired certificate refuses the reload.
    let expired = config([
        ("ios", app(certificate("expired", -1))),
        ("web", web(write(dir.path(), "v2.pem", &p256_pem()))),
    ]);
    let problems = plan.credentials.prepare(&new, &expired).err().unwrap();
    assert!(
        problems[0].starts_with("tenants.t.apps.ios.certificate"),
        "{problems:?}"
    );
}

#[test]
fn fcm_and_wns_credentials_swap_and_a_moved_token_endpoint_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev");
    let account: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dev.join("fcm-service-account.json")).unwrap())
            .unwrap();
    let account_file = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut account = account.clone();
        edit(&mut account);
        write(dir.path(), name, &account.to_string())
    };
    let android = |source: SecretSource| {
        AppConfig::Fcm(FcmAppConfig {
            project_id: Some("ringcast-demo".into()),
            service_account: Some(source),
        })
    };
    let windows = |secret: SecretSource| {
        AppConfig::Wns(WnsAppConfig {
            package_sid: Some("ms-app://s-1-15-2-example".into()),
            client_secret: Some(secret),
            ..Default::default()
        })
    };
    let running = config([
        ("android", android(account_file("old.json", &|_| {}))),
        (
            "windows",
            windows(write(dir.path(), "wns.secret", "old-secret")),
        ),
    ]);
    let plan = plan(&running);
    let fcm_before = plan.fcm[0].account.load_full();
    let wns_before = plan.wns[0].account.load_full();

    // Another account of the same project and token endpoint; a new WNS secret in place.
    let rotated = account_file("new.json", &|account| {
        account["client_email"] = "rotated@ringcast-demo.iam.gserviceaccount.com".into();
    });
    let new = config([
        ("android", android(rotated)),
        (
            "windows",
            windows(write(dir.path(), "wns.secret", "new-secret")),
        ),
    ]);
    let reload = plan.credentials.prepare(&running, &new).unwrap();
    assert_eq!(
        reload.swapped(),
        ["tenants.t.apps.android", "tenants.t.apps.windows"]
    );
    plan.credentials.apply(reload);
    let fcm_after = plan.fcm[0].account.load_full();
    assert!(!Arc::ptr_eq(&fcm_before, &fcm_after));
    assert!(
        fcm_after.cache.obtained_at(1).is_none(),
        "the new account starts without an access token"
    );
    let wns_after = plan.wns[0].account.load_full();
    assert_eq!(wns_after.grant.client_secret.expose(), b"new-secret");
    assert!(!wns_before.cache.same_as(&wns_after.cache));

    // A token endpoint elsewhere is another connection pool's origin: restart.
    let moved = account_file("moved.json", &|account| {
        account["token_uri"] = "https://oauth2.example.net/token".into();
    });
    let mut elsewhere = new.clone();
    let apps = &mut elsewhere.tenants.get_mut("t").unwrap().apps;
    apps.insert("android".into(), android(moved));
    if let Some(AppConfig::Wns(windows)) = apps.get_mut("windows") {
        windows.token_url = Some("https://login.example.net/token".into());
    }
    let reload = plan.credentials.prepare(&new, &elsewhere).unwrap();
    assert!(reload.swapped().is_empty());
    assert_eq!(
        reload.restart_needed,
        ["tenants.t.apps.android", "tenants.t.apps.windows"]
    );
}
