use super::*;
use jsonwebtoken::{DecodingKey, Validation};
use std::collections::HashSet;

const T0: UnixMillis = 1_800_000_000_000;
const ACCOUNT_JSON: &str = include_str!("../../../../config/dev/fcm-service-account.json");
const PUBLIC_PEM: &str = include_str!("../../../../config/dev/fcm-service-account.pub.pem");

fn account() -> ServiceAccount {
    ServiceAccount::from_json(ACCOUNT_JSON.as_bytes()).unwrap()
}

#[test]
fn the_development_service_account_parses_and_hides_its_key() {
    let account = account();
    assert_eq!(
        account.client_email,
        "ringcast-demo@ringcast-demo.iam.gserviceaccount.com"
    );
    assert_eq!(account.project_id, "ringcast-demo");
    assert_eq!(account.token_uri, "https://127.0.0.1:8444/token");
    assert!(account.private_key_id.is_some());
    let debug = format!("{account:?}");
    assert!(!debug.contains("PRIVATE KEY") && debug.contains("[redacted]"));
}

#[test]
fn broken_service_accounts_are_refused_without_printing_the_key() {
    let mut json: serde_json::Value = serde_json::from_str(ACCOUNT_JSON).unwrap();
    let with = |json: &serde_json::Value, key: &str, value: serde_json::Value| {
        let mut copy = json.clone();
        if value.is_null() {
            copy.as_object_mut().unwrap().remove(key);
        } else {
            copy[key] = value;
        }
        ServiceAccount::from_json(copy.to_string().as_bytes())
    };
    for (key, value) in [
        ("client_email", serde_json::Value::Null),
        ("client_email", "nobody".into()),
        ("token_uri", "oauth2.googleapis.com/token".into()),
        ("type", "authorized_user".into()),
        ("project_id", "".into()),
    ] {
        let error = with(&json, key, value).unwrap_err();
        assert!(matches!(error, AuthError::BadServiceAccount(_)), "{key}");
        assert!(!error.to_string().contains("BEGIN"), "{error}");
    }
    // A JSON error near the key does not quote it.
    let broken = ACCOUNT_JSON.replacen("\"private_key\":", "\"private_key\" ", 1);
    let error = ServiceAccount::from_json(broken.as_bytes()).unwrap_err();
    assert!(!error.to_string().contains("MII"), "{error}");
    json["private_key"] =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n".into();
    let account = ServiceAccount::from_json(json.to_string().as_bytes()).unwrap();
    let error = AssertionSigner::new(&account).unwrap_err();
    assert!(matches!(error, AuthError::BadKey(_)));
    assert!(!error.to_string().contains("c2VjcmV0"));
}

#[test]
fn the_assertion_is_what_google_checks_and_verifies_with_the_public_key() {
    let account = account();
    let signer = AssertionSigner::new(&account).unwrap();
    assert_eq!(signer.token_uri(), "https://127.0.0.1:8444/token");
    let body = String::from_utf8(signer.token_request_body(T0 + 999).unwrap()).unwrap();
    let assertion = body
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .unwrap();
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid, account.private_key_id);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let key = DecodingKey::from_rsa_pem(PUBLIC_PEM.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(
        claims,
        serde_json::json!({
            "iss": "ringcast-demo@ringcast-demo.iam.gserviceaccount.com",
            "scope": FCM_SCOPE,
            "aud": "https://127.0.0.1:8444/token",
            "iat": 1_800_000_000,
            "exp": 1_800_003_600,
        })
    );
}

#[test]
fn the_token_answer_becomes_a_bearer_header_that_debug_hides() {
    let token = parse_token_response(
        200,
        br#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"}"#,
        T0,
    )
    .unwrap();
    assert_eq!(token.authorization, "Bearer ya29.abc");
    // Indexable by HPACK (sent once per connection and refresh), yet never printed.
    assert!(!token.authorization.is_sensitive());
    assert_eq!(token.obtained_at, T0);
    assert_eq!(token.expires_at, T0 + 3_599_000);
    assert!(!format!("{token:?}").contains("ya29"));
}

#[test]
fn refusals_and_malformed_answers_say_whether_to_retry() {
    let refused = parse_token_response(
        400,
        br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        refused,
        TokenError::Refused {
            status: 400,
            error: "invalid_grant".into(),
            description: "Invalid JWT Signature.".into()
        }
    );
    assert!(!refused.is_transient());
    let unavailable = parse_token_response(503, b"<html>", T0).unwrap_err();
    assert!(matches!(
        &unavailable,
        TokenError::Refused { error, .. } if error == "HTTP 503"
    ));
    assert!(unavailable.is_transient());
    assert!(
        parse_token_response(429, b"", T0)
            .unwrap_err()
            .is_transient()
    );
    for body in [
        &b"not json"[..],
        br#"{"access_token":"x","expires_in":3600,"token_type":"MAC"}"#,
        br#"{"access_token":"x","expires_in":0,"token_type":"Bearer"}"#,
        br#"{"access_token":"","expires_in":60,"token_type":"Bearer"}"#,
        br#"{"access_token":"bad\nheader","expires_in":60,"token_type":"Bearer"}"#,
        br#"{"expires_in":60,"token_type":"Bearer"}"#,
    ] {
        let error = parse_token_response(200, body, T0).unwrap_err();
        assert!(matches!(error, TokenError::Malformed(_)), "{error}");
        assert!(!error.to_string().contains("bad\nheader"));
    }
}
