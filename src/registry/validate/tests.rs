use super::*;
use crate::config::{ApnsAppConfig, AppConfig, FcmAppConfig};
use std::collections::BTreeMap;

fn tenant() -> Tenant {
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
    Tenant::new("acme", 86_400, apps)
}

fn hosts() -> Vec<String> {
    crate::config::WebPushConfig::default().allowed_hosts
}

fn apns_request(token: &str) -> RegistrationRequest {
    RegistrationRequest {
        platform: Some(Platform::Apns),
        app: Some("ios".into()),
        token: Some(token.into()),
        ..Default::default()
    }
}

const HEX_TOKEN: &str = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1";
const P256DH: &str =
    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";

fn fields(errors: Vec<FieldError>) -> Vec<String> {
    errors.into_iter().map(|e| e.field).collect()
}

#[test]
fn a_valid_apns_registration_with_defaults() {
    let valid = validate_registration(&apns_request(HEX_TOKEN), &tenant(), &hosts()).unwrap();
    assert_eq!(valid.app, "ios");
    assert_eq!(
        valid.address,
        PushAddress::Apns {
            token: hex::decode(HEX_TOKEN).unwrap(),
            alert_token: None,
        }
    );
    assert_eq!(valid.environment, Environment::Production);
    assert_eq!((valid.ttl_seconds, valid.ttl_capped), (86_400, false));
}

#[test]
fn apns_tokens_must_be_hex_of_a_sane_length() {
    for bad in [
        "",
        "abc",
        &"g".repeat(64),
        &"a".repeat(63),
        &"a".repeat(202),
    ] {
        let errors = validate_registration(&apns_request(bad), &tenant(), &hosts()).unwrap_err();
        assert_eq!(fields(errors), ["token"], "{bad:?}");
    }
    let mut missing = apns_request("");
    missing.token = None;
    assert_eq!(
        fields(validate_registration(&missing, &tenant(), &hosts()).unwrap_err()),
        ["token"]
    );
}

#[test]
fn ttl_outside_the_range_is_refused_and_the_tenant_cap_is_reported() {
    let mut request = apns_request(HEX_TOKEN);
    for bad in [0, 299, 15_552_001] {
        request.ttl_seconds = Some(bad.into());
        let errors = validate_registration(&request, &tenant(), &hosts()).unwrap_err();
        assert_eq!(errors[0].field, "ttl_seconds");
        assert!(errors[0].message.contains("300") && errors[0].message.contains("15552000"));
    }
    request.ttl_seconds = Some(15_552_000.into());
    let capped = validate_registration(&request, &tenant(), &hosts()).unwrap();
    assert_eq!((capped.ttl_seconds, capped.ttl_capped), (86_400, true));
}

#[test]
fn the_app_must_be_the_tenants_and_of_the_platform() {
    let mut request = apns_request(HEX_TOKEN);
    request.app = Some("android".into());
    let errors = validate_registration(&request, &tenant(), &hosts()).unwrap_err();
    assert_eq!(fields(errors.clone()), ["app"]);
    assert!(errors[0].message.contains("fcm app"));
    request.app = Some("nope".into());
    assert_eq!(
        fields(validate_registration(&request, &tenant(), &hosts()).unwrap_err()),
        ["app"]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut request = apns_request("xyz");
    request.ttl_seconds = Some(1.into());
    request.keys = Some(WebPushKeys {
        p256dh: P256DH.into(),
        auth: AUTH.into(),
    });
    let found = fields(validate_registration(&request, &tenant(), &hosts()).unwrap_err());
    assert_eq!(found, ["token", "keys", "ttl_seconds"]);
}

#[test]
fn fcm_tokens_are_bounded_and_plain() {
    let request = |token: &str| RegistrationRequest {
        platform: Some(Platform::Fcm),
        app: Some("android".into()),
        token: Some(token.into()),
        ..Default::default()
    };
    assert!(validate_registration(&request("dGVzdA:APA91bH-x_y.z"), &tenant(), &hosts()).is_ok());
    for bad in ["", "has space", "quote\"", &"a".repeat(1025)] {
        assert_eq!(
            fields(validate_registration(&request(bad), &tenant(), &hosts()).unwrap_err()),
            ["token"],
            "{bad:?}"
        );
    }
}

#[test]
fn wns_channels_must_be_https_on_notify_windows_com() {
    let request = |token: &str| RegistrationRequest {
        platform: Some(Platform::Wns),
        app: Some("desktop".into()),
        token: Some(token.into()),
        ..Default::default()
    };
    assert!(
        validate_registration(
            &request("https://db5p.notify.windows.com/w/?token=AwYAAA"),
            &tenant(),
            &hosts()
        )
        .is_ok()
    );
    for bad in [
        "http://db5p.notify.windows.com/w/",
        "https://notify.windows.com.evil.example/w/",
        "https://evil.example/?x=.notify.windows.com",
        "https://user@db5p.notify.windows.com/w/",
        "https://db5p.notify.windows.com:8443/w/",
        "https://127.0.0.1/w/",
        "not a uri",
    ] {
        assert_eq!(
            fields(validate_registration(&request(bad), &tenant(), &hosts()).unwrap_err()),
            ["token"],
            "{bad}"
        );
    }
}

#[test]
fn webpush_needs_an_allowed_https_endpoint_and_right_sized_keys() {
    let request = |endpoint: &str, p256dh: &str, auth: &str| RegistrationRequest {
        platform: Some(Platform::Webpush),
        app: Some("web".into()),
        endpoint: Some(endpoint.into()),
        keys: Some(WebPushKeys {
            p256dh: p256dh.into(),
            auth: auth.into(),
        }),
        ..Default::default()
    };
    let good = "https://fcm.googleapis.com/fcm/send/abc:def";
    let valid = validate_registration(&request(good, P256DH, AUTH), &tenant(), &hosts()).unwrap();
    assert!(matches!(valid.address, PushAddress::WebPush { .. }));
    for bad in [
        "http://fcm.googleapis.com/x",
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://evil.example/x",
        "https://fcm.googleapis.com.evil.example/x",
    ] {
        assert_eq!(
            fields(
                validate_registration(&request(bad, P256DH, AUTH), &tenant(), &hosts())
                    .unwrap_err()
            ),
            ["endpoint"],
            "{bad}"
        );
    }
    let short_key = &P256DH[..40];
    let found = fields(
        validate_registration(&request(good, short_key, "AAAA"), &tenant(), &hosts()).unwrap_err(),
    );
    assert_eq!(found, ["keys.p256dh", "keys.auth"]);
    let mut no_keys = request(good, P256DH, AUTH);
    no_keys.keys = None;
    assert_eq!(
        fields(validate_registration(&no_keys, &tenant(), &hosts()).unwrap_err()),
        ["keys"]
    );
}

#[test]
fn allowlist_patterns() {
    let allowed = vec![
        "*.notify.windows.com".to_owned(),
        "push.example:8443".to_owned(),
    ];
    assert!(host_allowed("wns2-by3p.notify.windows.com", None, &allowed));
    assert!(
        !host_allowed("notify.windows.com", None, &allowed),
        "the wildcard needs a subdomain"
    );
    assert!(!host_allowed("evilnotify.windows.com", None, &allowed));
    assert!(host_allowed("push.example", Some(8443), &allowed));
    assert!(!host_allowed("push.example", Some(9000), &allowed));
}

#[test]
fn rfc8599_form_resolves_the_app() {
    let request = RegistrationRequest {
        pn_provider: Some("apns".into()),
        pn_prid: Some(HEX_TOKEN.into()),
        pn_param: Some("ABCDE12345.com.acme.phone.voip".into()),
        ..Default::default()
    };
    assert_eq!(
        validate_registration(&request, &tenant(), &hosts())
            .unwrap()
            .app,
        "ios"
    );

    let fcm = RegistrationRequest {
        pn_provider: Some("fcm".into()),
        pn_prid: Some("token-1".into()),
        pn_param: Some("acme-phone".into()),
        ..Default::default()
    };
    assert_eq!(
        validate_registration(&fcm, &tenant(), &hosts())
            .unwrap()
            .app,
        "android"
    );

    let wrong_team = RegistrationRequest {
        pn_param: Some("ZZZZZ99999.com.acme.phone.voip".into()),
        ..request
    };
    assert_eq!(
        fields(validate_registration(&wrong_team, &tenant(), &hosts()).unwrap_err()),
        ["pn_param"]
    );

    let mixed = RegistrationRequest {
        platform: Some(Platform::Fcm),
        pn_provider: Some("fcm".into()),
        ..Default::default()
    };
    assert_eq!(
        fields(validate_registration(&mixed, &tenant(), &hosts()).unwrap_err()),
        ["pn_provider"]
    );
    let unknown = RegistrationRequest {
        pn_provider: Some("sip".into()),
        pn_prid: Some("x".into()),
        ..Default::default()
    };
    assert_eq!(
        fields(validate_registration(&unknown, &tenant(), &hosts()).unwrap_err()),
        ["pn_provider"]
    );
}

const ALERT_TOKEN: &str = "e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00";

#[test]
fn an_apns_registration_may_carry_the_regular_token_validated_alike() {
    let request = RegistrationRequest {
        alert_token: Some(ALERT_TOKEN.into()),
        ..apns_request(HEX_TOKEN)
    };
    let valid = validate_registration(&request, &tenant(), &hosts()).unwrap();
    assert_eq!(
        valid.address,
        PushAddress::Apns {
            token: hex::decode(HEX_TOKEN).unwrap(),
            alert_token: Some(hex::decode(ALERT_TOKEN).unwrap()),
        }
    );
    for bad in ["abc", &"g".repeat(64), HEX_TOKEN] {
        let request = RegistrationRequest {
            alert_token: Some(bad.into()),
            ..apns_request(HEX_TOKEN)
        };
        assert_eq!(
            fields(validate_registration(&request, &tenant(), &hosts()).unwrap_err()),
            ["alert_token"],
            "{bad}"
        );
    }
    let fcm = RegistrationRequest {
        platform: Some(Platform::Fcm),
        app: Some("android".into()),
        token: Some("token-1".into()),
        alert_token: Some(ALERT_TOKEN.into()),
        ..Default::default()
    };
    assert_eq!(
        fields(validate_registration(&fcm, &tenant(), &hosts()).unwrap_err()),
        ["alert_token"]
    );
}

#[test]
fn rfc8599_apns_takes_both_tokens_or_the_single_forms() {
    let both = RegistrationRequest {
        pn_provider: Some("apns".into()),
        pn_prid: Some(format!("{HEX_TOKEN}:voip&{ALERT_TOKEN}:remote")),
        pn_param: Some("ABCDE12345.com.acme.phone.voip&remote".into()),
        ..Default::default()
    };
    let valid = validate_registration(&both, &tenant(), &hosts()).unwrap();
    assert_eq!(valid.app, "ios");
    assert_eq!(
        valid.address,
        PushAddress::Apns {
            token: hex::decode(HEX_TOKEN).unwrap(),
            alert_token: Some(hex::decode(ALERT_TOKEN).unwrap()),
        }
    );
    // The order of the parts does not matter.
    let reversed = RegistrationRequest {
        pn_prid: Some(format!("{ALERT_TOKEN}:remote&{HEX_TOKEN}:voip")),
        ..both
    };
    let valid = validate_registration(&reversed, &tenant(), &hosts()).unwrap();
    assert_eq!(
        valid.address.alert_token(),
        hex::decode(ALERT_TOKEN).ok().as_deref()
    );
    for single in [HEX_TOKEN.to_owned(), format!("{HEX_TOKEN}:voip")] {
        let request = RegistrationRequest {
            pn_provider: Some("apns".into()),
            pn_prid: Some(single.clone()),
            pn_param: Some("ABCDE12345.com.acme.phone.voip".into()),
            ..Default::default()
        };
        let valid = validate_registration(&request, &tenant(), &hosts()).unwrap();
        assert_eq!(
            valid.address,
            PushAddress::Apns {
                token: hex::decode(HEX_TOKEN).unwrap(),
                alert_token: None,
            },
            "{single}"
        );
    }
    for bad in [
        format!("{ALERT_TOKEN}:remote"),
        format!("{HEX_TOKEN}:voip&{ALERT_TOKEN}:video"),
        format!("{HEX_TOKEN}:voip&{ALERT_TOKEN}:voip"),
        format!("{HEX_TOKEN}&{ALERT_TOKEN}"),
        format!("{HEX_TOKEN}:voip&zz:remote"),
    ] {
        let request = RegistrationRequest {
            pn_provider: Some("apns".into()),
            pn_prid: Some(bad.clone()),
            pn_param: Some("ABCDE12345.com.acme.phone.voip&remote".into()),
            ..Default::default()
        };
        assert_eq!(
            fields(validate_registration(&request, &tenant(), &hosts()).unwrap_err()),
            ["pn_prid"],
            "{bad}"
        );
    }
}

#[test]
fn identities_and_device_ids() {
    for good in [
        "alice",
        "+15551234567",
        "user@example.com",
        "a.b_c~d:e=f-g",
        &"x".repeat(128),
    ] {
        assert!(validate_identity(good).is_ok(), "{good}");
    }
    for bad in ["", "{tag}", "a b", "a/b", "a\0b", &"x".repeat(129), "ü"] {
        assert!(validate_identity(bad).is_err(), "{bad:?}");
    }
    assert!(validate_device_id("iphone-15.2:x").is_ok());
    for bad in ["", "a@b", &"d".repeat(65)] {
        assert!(validate_device_id(bad).is_err(), "{bad:?}");
    }
}
