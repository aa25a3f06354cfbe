use super::*;
use crate::config::{ApnsAppConfig, FcmAppConfig};
use crate::registry::validate::{RegistrationRequest, WebPushKeys, validate_registration};
use crate::tenant::Tenant;
use regex::Regex;
use std::collections::BTreeMap;

const HEX: &str = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1";
const P256DH_OK: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH_OK: &str = "tBHItJI5svbpez7KI4CCXg";

fn apps() -> BTreeMap<String, AppConfig> {
    let mut apps = BTreeMap::new();
    let ios = ApnsAppConfig {
        bundle_id: Some("com.acme.phone".into()),
        team_id: Some("ABCDE12345".into()),
        ..Default::default()
    };
    apps.insert("ios".to_owned(), AppConfig::Apns(ios));
    let android = FcmAppConfig {
        project_id: Some("acme-phone".into()),
        ..Default::default()
    };
    apps.insert("android".to_owned(), AppConfig::Fcm(android));
    apps.insert("desktop".to_owned(), AppConfig::new(Platform::Wns));
    apps.insert("web".to_owned(), AppConfig::new(Platform::Webpush));
    apps
}

fn accepted(request: RegistrationRequest) -> bool {
    let tenant = Tenant::new("acme", 86_400, apps());
    validate_registration(&request, &tenant, &["127.0.0.1:8443".to_owned()]).is_ok()
}

/// Checks that `pattern` matches exactly the `samples` the validator accepts in `request`.
fn agree(pattern: &str, samples: &[String], request: impl Fn(&str) -> RegistrationRequest) {
    let pattern = Regex::new(pattern).unwrap();
    for sample in samples {
        assert_eq!(
            pattern.is_match(sample),
            accepted(request(sample)),
            "{pattern} on {sample:?}"
        );
    }
}

fn native(platform: Platform, app: &str, token: &str) -> RegistrationRequest {
    RegistrationRequest {
        platform: Some(platform),
        app: Some(app.into()),
        token: Some(token.into()),
        ..Default::default()
    }
}

#[test]
fn apns_tokens_match_exactly_what_the_validator_takes() {
    let samples: Vec<String> = vec![
        HEX.into(),
        HEX.to_uppercase(),
        HEX[..63].into(),
        HEX[..62].into(),
        format!("{HEX}ab"),
        "ab".repeat(100),
        "ab".repeat(101),
        format!("{}g", &HEX[..63]),
        String::new(),
    ];
    agree(&format!("^{APNS_TOKEN}$"), &samples, |token| {
        native(Platform::Apns, "ios", token)
    });
    let other = "b".repeat(64);
    let prids: Vec<String> = vec![
        HEX.into(),
        format!("{HEX}:voip"),
        format!("{HEX}:voip&{other}:remote"),
        format!("{other}:remote&{HEX}:voip"),
        format!("{HEX}:remote"),
        format!("{HEX}:voip&{other}:voip"),
        format!("{HEX}:voip&{other}"),
        format!("{HEX}:alert"),
    ];
    agree(&apns_prid(), &prids, |prid| RegistrationRequest {
        pn_provider: Some("apns".into()),
        pn_prid: Some(prid.into()),
        ..Default::default()
    });
}

#[test]
fn fcm_tokens_and_wns_channels_match_exactly_what_the_validator_takes() {
    let tokens: Vec<String> = vec![
        "a".into(),
        "dGVzdA:APA91b_x-y.z+w/v=".into(),
        String::new(),
        "a b".into(),
        "tök".into(),
        "x".repeat(1024),
        "x".repeat(1025),
    ];
    agree(&fcm_token(), &tokens, |token| {
        native(Platform::Fcm, "android", token)
    });
    let channels: Vec<String> = [
        "https://db5.notify.windows.com/?token=AwYAAAB%2Fx",
        "https://x.notify.windows.com",
        "https://a-b.c.NOTIFY.windows.COM/p/q",
        "http://x.notify.windows.com/",
        "https://notify.windows.com/",
        "https://x.notify.windows.com:443/",
        "https://evil.example/x.notify.windows.com",
        "https://user@x.notify.windows.com/",
        "https://x.notify.windows.com.evil.example/",
    ]
    .map(String::from)
    .to_vec();
    agree(&wns_channel(), &channels, |channel| {
        native(Platform::Wns, "desktop", channel)
    });
}

#[test]
fn subscription_keys_match_exactly_what_the_validator_takes() {
    let web = |p256dh: &str, auth: &str| RegistrationRequest {
        platform: Some(Platform::Webpush),
        app: Some("web".into()),
        endpoint: Some("https://127.0.0.1:8443/wp/1".into()),
        keys: Some(WebPushKeys {
            p256dh: p256dh.into(),
            auth: auth.into(),
        }),
        ..Default::default()
    };
    let p256dh: Vec<String> = vec![
        P256DH_OK.into(),
        format!("{P256DH_OK}="),
        format!("{}B", &P256DH_OK[..86]),
        format!("C{}", &P256DH_OK[1..]),
        P256DH_OK[..86].into(),
    ];
    agree(P256DH, &p256dh, |key| web(key, AUTH_OK));
    let auth: Vec<String> = vec![
        AUTH_OK.into(),
        format!("{AUTH_OK}=="),
        format!("{AUTH_OK}="),
        format!("{}h", &AUTH_OK[..21]),
        AUTH_OK[..21].into(),
    ];
    agree(AUTH, &auth, |key| web(P256DH_OK, key));
}

#[test]
fn endpoints_name_an_allowed_service_at_a_port_the_guard_lets_through() {
    let guard = AddressGuard::new(&["127.0.0.1:8443".to_owned()]).unwrap();
    let hosts = ["127.0.0.1:8443", "*.push.example", "fcm.googleapis.com"].map(String::from);
    let pattern = Regex::new(&webpush_endpoint(&hosts, &guard)).unwrap();
    for (endpoint, allowed) in [
        ("https://127.0.0.1:8443/wp/1", true),
        // Allowed by the list, but the guard refuses loopback at 443.
        ("https://127.0.0.1/wp/1", false),
        ("https://127.0.0.1:443/wp/1", false),
        ("https://a.b.PUSH.example/x?y=1", true),
        ("https://push.example/x", false),
        ("https://fcm.googleapis.com:443/fcm/send/abc", true),
        ("https://fcm.googleapis.com:8443/fcm/send/abc", false),
        ("http://fcm.googleapis.com/fcm/send/abc", false),
        ("https://evil.example/fcm.googleapis.com", false),
    ] {
        assert_eq!(pattern.is_match(endpoint), allowed, "{endpoint}");
    }
}

#[test]
fn every_form_is_one_branch_and_the_branches_exclude_each_other() {
    let apps = apps();
    let registrable = Registrable {
        apps: apps.iter().map(|(id, app)| (id.as_str(), app)).collect(),
        webpush_hosts: &["127.0.0.1:8443".to_owned()],
        guard: &AddressGuard::default(),
    };
    let schema = request_schema(&registrable);
    let titles: Vec<&str> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|branch| branch["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "apns",
            "fcm",
            "wns",
            "webpush",
            "fcm (RFC 8599), app android",
            "apns (RFC 8599), app ios",
            "webpush (RFC 8599), app web",
        ]
    );
    for branch in schema["oneOf"].as_array().unwrap() {
        let properties = branch["properties"].as_object().unwrap();
        assert_eq!(properties.len(), FIELDS.len(), "{branch}");
        assert_eq!(branch["additionalProperties"], false);
    }
    let ios = &schema["oneOf"][5]["properties"];
    assert_eq!(ios["app"]["enum"], json!(["ios", null]));
    let param = Regex::new(ios["pn_param"]["pattern"].as_str().unwrap()).unwrap();
    for (text, matches) in [
        ("ABCDE12345.com.acme.phone.voip", true),
        ("ABCDE12345.com.acme.phone", true),
        ("ABCDE12345.com.acme.phone.voip&remote", true),
        ("OTHERTEAM0.com.acme.phone.voip", false),
        ("ABCDE12345.com.acme.phoneXvoip", false),
    ] {
        assert_eq!(param.is_match(text), matches, "{text}");
    }
}

#[test]
fn an_app_with_rivals_of_its_platform_must_be_named_unless_pn_param_picks_it() {
    let mut apps = apps();
    let beta = FcmAppConfig {
        project_id: Some("acme-beta".into()),
        ..Default::default()
    };
    apps.insert("android-beta".to_owned(), AppConfig::Fcm(beta));
    let registrable = Registrable {
        apps: apps.iter().map(|(id, app)| (id.as_str(), app)).collect(),
        webpush_hosts: &[],
        guard: &AddressGuard::default(),
    };
    let schema = request_schema(&registrable);
    let fcm: Vec<&Value> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|branch| branch["title"].as_str().unwrap().starts_with("fcm (RFC"))
        .collect();
    assert_eq!(fcm.len(), 4, "named and by pn_param, for each app");
    let named = fcm
        .iter()
        .find(|b| b["title"] == "fcm (RFC 8599), app android named");
    assert_eq!(
        named.unwrap()["required"],
        json!(["pn_provider", "pn_prid", "app"])
    );
    let by_param = fcm
        .iter()
        .find(|b| b["title"] == "fcm (RFC 8599), app android by pn_param");
    let by_param = by_param.unwrap();
    assert_eq!(by_param["properties"]["pn_param"]["const"], "acme-phone");
    assert_eq!(by_param["properties"]["app"], json!({"type": "null"}));
}

#[test]
fn each_native_example_is_registered_by_the_validator() {
    let guard = AddressGuard::new(&["127.0.0.1:8443".to_owned()]).unwrap();
    let hosts = ["127.0.0.1:8443".to_owned()];
    let endpoint = webpush_example(&hosts, &guard).unwrap();
    assert!(
        Regex::new(&webpush_endpoint(&hosts, &guard))
            .unwrap()
            .is_match(&endpoint)
    );
    for (platform, app) in [
        (Platform::Apns, "ios"),
        (Platform::Fcm, "android"),
        (Platform::Wns, "desktop"),
        (Platform::Webpush, "web"),
    ] {
        let body = example(platform, app, Some(&endpoint)).unwrap();
        let request: RegistrationRequest = serde_json::from_value(body.clone()).unwrap();
        assert!(accepted(request), "{body}");
    }
    assert_eq!(example(Platform::Webpush, "web", None), None);
}
