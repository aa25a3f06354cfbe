use super::*;
use http::HeaderValue;
use jsonwebtoken::{EncodingKey, Header};

const NOW: u64 = 1_800_000_000;
const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

struct Fixture {
    keys: Vec<ApnsKey>,
    signing: EncodingKey,
    other_signing: EncodingKey,
}

fn fixture() -> Fixture {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    Fixture {
        keys: vec![ApnsKey::from_pem("TEAM123456", "KEY1234567", &pair.public_key_pem()).unwrap()],
        signing: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        other_signing: EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    }
}

fn jwt(key: &EncodingKey, kid: &str, iss: &str, iat: u64) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &serde_json::json!({"iss": iss, "iat": iat}), key).unwrap()
}

fn voip_headers(bearer: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    };
    set("authorization", &format!("bearer {bearer}"));
    set("apns-topic", "com.example.app.voip");
    set("apns-push-type", "voip");
    set("apns-priority", "10");
    headers
}

fn run(f: &Fixture, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Verdict {
    run_with(f, method, None, &[], path, headers, body)
}

/// A POST to the host `authority`, by a simulator whose phones belong to `bundle_ids`.
fn run_at(
    f: &Fixture,
    authority: Option<&str>,
    bundle_ids: &[String],
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Verdict {
    run_with(f, &Method::POST, authority, bundle_ids, path, headers, body)
}

fn run_with(
    f: &Fixture,
    method: &Method,
    authority: Option<&str>,
    bundle_ids: &[String],
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Verdict {
    let mut token = ConnectionToken::default();
    judge(
        ApnsRequest {
            method,
            path,
            headers,
            body,
            authority,
            bundle_ids,
            key_environments: &BTreeMap::new(),
        },
        &f.keys,
        NOW,
        &mut token,
    )
}

fn reason(verdict: Verdict) -> (u16, &'static str) {
    match verdict {
        Verdict::Reject { status, reason } => (status, reason),
        Verdict::Accept(push) => panic!("accepted {push:?}"),
    }
}

fn path() -> String {
    format!("/3/device/{TOKEN}")
}

#[test]
fn accepts_a_valid_voip_push() {
    let f = fixture();
    let headers = voip_headers(&jwt(&f.signing, "KEY1234567", "TEAM123456", NOW - 10));
    let Verdict::Accept(push) = run(&f, &Method::POST, &path(), &headers, br#"{"call":"1"}"#)
    else {
        panic!("rejected")
    };
    assert_eq!(push.device_token, TOKEN);
    assert_eq!(push.push_type, "voip");
    assert_eq!(push.priority, 10);
    assert_eq!(push.payload["call"], "1");
}

#[test]
fn refuses_wrong_method_and_path() {
    let f = fixture();
    let headers = voip_headers(&jwt(&f.signing, "KEY1234567", "TEAM123456", NOW));
    let body = b"{}";
    assert_eq!(
        reason(run(&f, &Method::GET, &path(), &headers, body)),
        (405, "MethodNotAllowed")
    );
    assert_eq!(
        reason(run(&f, &Method::POST, "/3/devices/x", &headers, body)),
        (404, "BadPath")
    );
    assert_eq!(
        reason(run(&f, &Method::POST, "/3/device/", &headers, body)),
        (400, "MissingDeviceToken")
    );
}

#[test]
fn refuses_malformed_device_tokens() {
    let f = fixture();
    let headers = voip_headers(&jwt(&f.signing, "KEY1234567", "TEAM123456", NOW));
    for bad in ["abc", &TOKEN[1..], &format!("{}zz", &TOKEN[2..])] {
        let path = format!("/3/device/{bad}");
        assert_eq!(
            reason(run(&f, &Method::POST, &path, &headers, b"{}")),
            (400, "BadDeviceToken")
        );
    }
}

#[test]
fn refuses_bad_provider_tokens() {
    let f = fixture();
    let cases = [
        (
            jwt(&f.other_signing, "KEY1234567", "TEAM123456", NOW),
            "InvalidProviderToken",
        ),
        (
            jwt(&f.signing, "OTHERKEY00", "TEAM123456", NOW),
            "InvalidProviderToken",
        ),
        (
            jwt(&f.signing, "KEY1234567", "OTHERTEAM0", NOW),
            "InvalidProviderToken",
        ),
        (
            jwt(&f.signing, "KEY1234567", "TEAM123456", NOW + 600),
            "InvalidProviderToken",
        ),
        ("not.a.jwt".to_owned(), "InvalidProviderToken"),
        (
            jwt(&f.signing, "KEY1234567", "TEAM123456", NOW - 3600),
            "ExpiredProviderToken",
        ),
    ];
    for (bearer, expected) in cases {
        let headers = voip_headers(&bearer);
        assert_eq!(
            reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
            (403, expected)
        );
    }
    let mut headers = voip_headers("x");
    headers.remove("authorization");
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
        (403, "MissingProviderToken")
    );
}

#[test]
fn a_new_token_within_twenty_minutes_on_one_connection_is_too_many_updates() {
    let f = fixture();
    let mut token = ConnectionToken::default();
    let mut send = |bearer: &str, now: u64| {
        let headers = voip_headers(bearer);
        let request = ApnsRequest {
            method: &Method::POST,
            path: &path(),
            headers: &headers,
            body: b"{}",
            authority: None,
            bundle_ids: &[],
            key_environments: &BTreeMap::new(),
        };
        judge(request, &f.keys, now, &mut token)
    };
    let first = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW);
    let second = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW + 60);
    assert!(matches!(send(&first, NOW), Verdict::Accept(_)));
    assert!(matches!(send(&first, NOW + 60), Verdict::Accept(_)));
    assert_eq!(
        reason(send(&second, NOW + 60)),
        (429, "TooManyProviderTokenUpdates")
    );
    // After twenty minutes the connection takes the newer token.
    let third = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW + 1200);
    assert!(matches!(send(&third, NOW + 1200), Verdict::Accept(_)));
    // The old token has aged out an hour later.
    assert_eq!(
        reason(send(&third, NOW + 1200 + 3600)),
        (403, "ExpiredProviderToken")
    );
}

#[test]
fn checks_topic_against_push_type() {
    let f = fixture();
    let bearer = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW);
    let mut headers = voip_headers(&bearer);
    headers.remove("apns-topic");
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
        (400, "MissingTopic")
    );
    headers.insert("apns-topic", HeaderValue::from_static("com.example.app"));
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
        (400, "BadTopic")
    );
    headers.insert("apns-push-type", HeaderValue::from_static("alert"));
    // An alert on the bare topic is well-formed, but not for a PushKit token.
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
        (400, "DeviceTokenNotForTopic")
    );
    assert!(matches!(
        run(&f, &Method::POST, &regular_path(), &headers, b"{}"),
        Verdict::Accept(_)
    ));
    headers.insert("apns-push-type", HeaderValue::from_static("ring"));
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
        (400, "InvalidPushType")
    );
}

#[test]
fn checks_priority_expiration_collapse_id_and_message_id() {
    let f = fixture();
    let bearer = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW);
    let cases: [(&str, String, &str); 5] = [
        ("apns-priority", "5".into(), "BadPriority"),
        ("apns-priority", "7".into(), "BadPriority"),
        ("apns-expiration", "tomorrow".into(), "BadExpirationDate"),
        ("apns-collapse-id", "c".repeat(65), "BadCollapseId"),
        ("apns-id", "not-a-uuid".into(), "BadMessageId"),
    ];
    for (name, value, expected) in cases {
        let mut headers = voip_headers(&bearer);
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
        assert_eq!(
            reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
            (400, expected),
            "{name}"
        );
    }
    let mut headers = voip_headers(&bearer);
    headers.insert(
        "apns-collapse-id",
        HeaderValue::from_str(&"c".repeat(64)).unwrap(),
    );
    headers.insert(
        "apns-id",
        HeaderValue::from_static("123e4567-e89b-12d3-a456-4266141740AB"),
    );
    headers.insert("apns-expiration", HeaderValue::from_static("0"));
    assert!(matches!(
        run(&f, &Method::POST, &path(), &headers, b"{}"),
        Verdict::Accept(_)
    ));
    headers.append(
        "apns-topic",
        HeaderValue::from_static("com.example.app.voip"),
    );
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
        (400, "DuplicateHeaders")
    );
}

#[test]
fn checks_payload_shape_and_size_per_push_type() {
    let f = fixture();
    let bearer = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW);
    let headers = voip_headers(&bearer);
    let sized = |len: usize| format!("{{\"p\":\"{}\"}}", "x".repeat(len - 8)).into_bytes();
    assert!(matches!(
        run(&f, &Method::POST, &path(), &headers, &sized(5120)),
        Verdict::Accept(_)
    ));
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, &sized(5121))),
        (413, "PayloadTooLarge")
    );
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"")),
        (400, "PayloadEmpty")
    );
    assert_eq!(
        reason(run(&f, &Method::POST, &path(), &headers, b"[1]")),
        (400, "BadPayload")
    );
    let mut alert = headers.clone();
    alert.insert("apns-topic", HeaderValue::from_static("com.example.app"));
    alert.insert("apns-push-type", HeaderValue::from_static("alert"));
    assert!(matches!(
        run(&f, &Method::POST, &regular_path(), &alert, &sized(4096)),
        Verdict::Accept(_)
    ));
    assert_eq!(
        reason(run(
            &f,
            &Method::POST,
            &regular_path(),
            &alert,
            &sized(4097)
        )),
        (413, "PayloadTooLarge")
    );
}

fn regular_path() -> String {
    let token = device_token(TokenKind::Regular, Environment::Production, 7);
    format!("/3/device/{}", hex::encode(token))
}

fn alert_headers(bearer: &str) -> HeaderMap {
    let mut headers = voip_headers(bearer);
    headers.insert("apns-topic", HeaderValue::from_static("com.example.app"));
    headers.insert("apns-push-type", HeaderValue::from_static("alert"));
    headers.insert("apns-priority", HeaderValue::from_static("10"));
    headers
}

#[test]
fn the_token_rule_reads_kind_and_environment_off_the_bytes() {
    for (kind, environment) in [
        (TokenKind::Voip, Environment::Production),
        (TokenKind::Voip, Environment::Sandbox),
        (TokenKind::Regular, Environment::Production),
        (TokenKind::Regular, Environment::Sandbox),
    ] {
        let token = device_token(kind, environment, 42);
        assert_eq!(token.len(), 32);
        assert_eq!(token_facts(&token), (kind, environment));
        assert_ne!(token, device_token(kind, environment, 43));
    }
    // Made-up tokens are production VoIP tokens, as the tests' and load generator's are.
    for token in [[0xab; 32], [0; 32], [0xff; 32]] {
        assert_eq!(
            token_facts(&token),
            (TokenKind::Voip, Environment::Production)
        );
    }
    assert_eq!(
        host_environment(Some("localhost:8443")),
        Environment::Sandbox
    );
    assert_eq!(
        host_environment(Some("api.sandbox.push.apple.com")),
        Environment::Sandbox
    );
    assert_eq!(
        host_environment(Some("127.0.0.1:8443")),
        Environment::Production
    );
    assert_eq!(
        host_environment(Some("api.push.apple.com:443")),
        Environment::Production
    );
    assert_eq!(host_environment(None), Environment::Production);
}

#[test]
fn a_token_sent_to_the_other_environments_host_is_a_bad_device_token() {
    let f = fixture();
    let bearer = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW);
    let voip = voip_headers(&bearer);
    let sandbox = device_token(TokenKind::Voip, Environment::Sandbox, 1);
    let sandbox_path = format!("/3/device/{}", hex::encode(&sandbox));
    let production_path = path();
    for (authority, path, accepted) in [
        (Some("localhost:443"), &sandbox_path, true),
        (Some("127.0.0.1:443"), &sandbox_path, false),
        (Some("127.0.0.1:443"), &production_path, true),
        (Some("localhost:443"), &production_path, false),
    ] {
        let verdict = run_at(&f, authority, &[], path, &voip, b"{}");
        if accepted {
            assert!(
                matches!(verdict, Verdict::Accept(_)),
                "{authority:?} {path}"
            );
        } else {
            assert_eq!(
                reason(verdict),
                (400, "BadDeviceToken"),
                "{authority:?} {path}"
            );
        }
    }
}

#[test]
fn a_key_restricted_to_production_is_refused_by_the_sandbox() {
    let f = fixture();
    let voip = voip_headers(&jwt(&f.signing, "KEY1234567", "TEAM123456", NOW));
    let production_only = BTreeMap::from([("KEY1234567".to_owned(), Environment::Production)]);
    let sandbox = device_token(TokenKind::Voip, Environment::Sandbox, 1);
    let sandbox_path = format!("/3/device/{}", hex::encode(&sandbox));
    let send = |authority, path: &str| {
        let request = ApnsRequest {
            method: &Method::POST,
            path,
            headers: &voip,
            body: b"{}",
            authority: Some(authority),
            bundle_ids: &[],
            key_environments: &production_only,
        };
        judge(request, &f.keys, NOW, &mut ConnectionToken::default())
    };
    assert!(matches!(send("127.0.0.1:443", &path()), Verdict::Accept(_)));
    // The sandbox host refuses the key before it looks at the token.
    assert_eq!(
        reason(send("localhost:443", &sandbox_path)),
        (403, "BadEnvironmentKeyInToken")
    );
}

#[test]
fn each_token_kind_takes_only_its_own_topic() {
    let f = fixture();
    let bearer = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW);
    // An alert (or a background push) to a PushKit token: the production bug's answer.
    for push_type in ["alert", "background"] {
        let mut headers = alert_headers(&bearer);
        headers.insert("apns-push-type", HeaderValue::from_str(push_type).unwrap());
        headers.insert("apns-priority", HeaderValue::from_static("5"));
        assert_eq!(
            reason(run(&f, &Method::POST, &path(), &headers, b"{}")),
            (400, "DeviceTokenNotForTopic"),
            "{push_type}"
        );
    }
    // A VoIP push on `<bundle>.voip` to a regular token.
    assert_eq!(
        reason(run(
            &f,
            &Method::POST,
            &regular_path(),
            &voip_headers(&bearer),
            b"{}"
        )),
        (400, "DeviceTokenNotForTopic")
    );
    assert!(matches!(
        run(
            &f,
            &Method::POST,
            &regular_path(),
            &alert_headers(&bearer),
            b"{}"
        ),
        Verdict::Accept(_)
    ));
}

#[test]
fn a_topic_of_another_bundle_is_not_for_the_token() {
    let f = fixture();
    let bearer = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW);
    let ours = ["com.example.app".to_owned()];
    let voip = voip_headers(&bearer);
    assert!(matches!(
        run_at(&f, None, &ours, &path(), &voip, b"{}"),
        Verdict::Accept(_)
    ));
    let wrong = ["com.example.other".to_owned()];
    assert_eq!(
        reason(run_at(&f, None, &wrong, &path(), &voip, b"{}")),
        (400, "DeviceTokenNotForTopic")
    );
    assert_eq!(
        reason(run_at(
            &f,
            None,
            &wrong,
            &regular_path(),
            &alert_headers(&bearer),
            b"{}"
        )),
        (400, "DeviceTokenNotForTopic")
    );
}

#[test]
fn canonical_uuid_shape() {
    assert!(is_canonical_uuid("00000000-0000-0000-0000-000000000000"));
    assert!(!is_canonical_uuid("00000000-0000-0000-0000-00000000000"));
    assert!(!is_canonical_uuid("00000000000000000000000000000000"));
    assert!(!is_canonical_uuid("0000000g-0000-0000-0000-000000000000"));
}

#[test]
fn a_certificate_sender_may_push_only_to_its_certificates_topics() {
    let f = fixture();
    let mut token = ConnectionToken {
        client_certificate: super::super::tls::ClientCertificate::Trusted {
            topics: vec!["com.example.app".into(), "com.example.app.voip".into()],
        },
        ..ConnectionToken::default()
    };
    let mut send = |topic: &str, bearer: Option<&str>| {
        let mut headers = voip_headers(bearer.unwrap_or("unused"));
        if bearer.is_none() {
            headers.remove("authorization");
        }
        headers.insert("apns-topic", HeaderValue::from_str(topic).unwrap());
        let request = ApnsRequest {
            method: &Method::POST,
            path: &path(),
            headers: &headers,
            body: b"{}",
            authority: None,
            bundle_ids: &[],
            key_environments: &BTreeMap::new(),
        };
        judge(request, &f.keys, NOW, &mut token)
    };
    assert!(matches!(
        send("com.example.app.voip", None),
        Verdict::Accept(_)
    ));
    assert_eq!(
        reason(send("com.other.app.voip", None)),
        (400, "TopicDisallowed")
    );
    // A JWT on the same connection speaks for its team, not the certificate's app.
    let bearer = jwt(&f.signing, "KEY1234567", "TEAM123456", NOW - 10);
    assert!(matches!(
        send("com.other.app.voip", Some(&bearer)),
        Verdict::Accept(_)
    ));
}
