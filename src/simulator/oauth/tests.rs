use super::*;
use jsonwebtoken::{EncodingKey, Header};

const NOW: u64 = 1_800_000_000;
const EMAIL: &str = "ringcast-demo@ringcast-demo.iam.gserviceaccount.com";
const URL: &str = "https://127.0.0.1:8443/token";
const ACCOUNT_JSON: &str = include_str!("../../../config/dev/fcm-service-account.json");
const PUBLIC_PEM: &str = include_str!("../../../config/dev/fcm-service-account.pub.pem");
const UNKNOWN_KEY: &str = include_str!("../../../tests/fixtures/fcm-unknown-key.pem");

fn private_pem() -> String {
    let json: serde_json::Value = serde_json::from_str(ACCOUNT_JSON).unwrap();
    json["private_key"].as_str().unwrap().to_owned()
}

fn accounts() -> Vec<FcmAccount> {
    vec![FcmAccount::from_pem(EMAIL, "ringcast-demo", PUBLIC_PEM).unwrap()]
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": EMAIL,
        "scope": FCM_SCOPE,
        "aud": URL,
        "iat": NOW,
        "exp": NOW + 3600,
    })
}

fn sign(pem: &str, claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
}

fn form(assertion: &str) -> Vec<u8> {
    format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    )
    .into_bytes()
}

fn judge(body: &[u8]) -> Result<String, (u16, String, String)> {
    judge_assertion(body, &accounts(), URL, NOW)
        .map(|account| account.client_email.clone())
        .map_err(|refusal| (refusal.status, refusal.error, refusal.description))
}

fn error_of(claims: &serde_json::Value) -> String {
    judge(&form(&sign(&private_pem(), claims))).unwrap_err().1
}

#[test]
fn a_valid_assertion_is_granted_with_either_audience() {
    assert_eq!(
        judge(&form(&sign(&private_pem(), &claims()))),
        Ok(EMAIL.into())
    );
    let mut google = claims();
    google["aud"] = GOOGLE_TOKEN_URI.into();
    google["scope"] = format!("openid {FCM_SCOPE}").into();
    assert_eq!(
        judge(&form(&sign(&private_pem(), &google))),
        Ok(EMAIL.into())
    );
    // The grant type unencoded is fine too: only the decoded value counts.
    let plain = format!(
        "assertion={}&grant_type={JWT_BEARER_GRANT}",
        sign(&private_pem(), &claims())
    );
    assert_eq!(judge(plain.as_bytes()), Ok(EMAIL.into()));
}

#[test]
fn a_foreign_signature_or_unknown_account_is_invalid_grant() {
    let foreign = judge(&form(&sign(UNKNOWN_KEY, &claims()))).unwrap_err();
    assert_eq!(
        foreign,
        (400, "invalid_grant".into(), "Invalid JWT Signature.".into())
    );
    let mut stranger = claims();
    stranger["iss"] = "someone@else.iam.gserviceaccount.com".into();
    let refused = judge(&form(&sign(&private_pem(), &stranger))).unwrap_err();
    assert_eq!(refused.2, "Invalid grant: account not found");
    // An HS256 token "signed" with the public key is the classic confusion attack.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(PUBLIC_PEM.as_bytes()),
    )
    .unwrap();
    assert_eq!(judge(&form(&hs)).unwrap_err().2, "Invalid JWT Signature.");
    assert_eq!(judge(&form("not.a.jwt")).unwrap_err().1, "invalid_grant");
}

#[test]
fn audience_scope_and_times_are_checked() {
    let with = |key: &str, value: serde_json::Value| {
        let mut claims = claims();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value;
        }
        claims
    };
    let audience = error_of(&with("aud", "https://fcm.googleapis.com/".into()));
    assert_eq!(audience, "invalid_grant");
    assert_eq!(
        error_of(&with("aud", serde_json::Value::Null)),
        "invalid_grant"
    );
    assert_eq!(
        error_of(&with(
            "scope",
            "https://www.googleapis.com/auth/cloud-platform.read-only".into()
        )),
        "invalid_scope"
    );
    assert_eq!(
        error_of(&with("scope", serde_json::Value::Null)),
        "invalid_scope"
    );
    for broken in [
        with("exp", serde_json::Value::Null),
        with("iat", serde_json::Value::Null),
        // Expired: exp is past.
        with("exp", (NOW - 1).into()),
        // Longer than an hour.
        with("exp", (NOW + 3601).into()),
        // Issued in the future beyond a minute of skew.
        {
            let mut future = with("iat", (NOW + 120).into());
            future["exp"] = (NOW + 600).into();
            future
        },
    ] {
        let (status, error, description) =
            judge(&form(&sign(&private_pem(), &broken))).unwrap_err();
        assert_eq!((status, error.as_str()), (400, "invalid_grant"), "{broken}");
        assert!(description.contains("short-lived"), "{description}");
    }
}

#[test]
fn the_grant_type_and_assertion_must_be_there() {
    let assertion = sign(&private_pem(), &claims());
    let wrong = format!("grant_type=client_credentials&assertion={assertion}");
    assert_eq!(
        judge(wrong.as_bytes()).unwrap_err().1,
        "unsupported_grant_type"
    );
    assert_eq!(
        judge(format!("assertion={assertion}").as_bytes())
            .unwrap_err()
            .1,
        "unsupported_grant_type"
    );
    let missing = format!("grant_type={JWT_BEARER_GRANT}");
    assert_eq!(judge(missing.as_bytes()).unwrap_err().1, "invalid_request");
    assert_eq!(judge(b"").unwrap_err().0, 400);
}

#[test]
fn bodies_look_like_googles() {
    assert_eq!(
        grant_body("ya29.x", 3599),
        serde_json::json!({"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"})
    );
    let refusal = Refusal::invalid_grant("Invalid JWT Signature.");
    assert_eq!(
        refusal.body(),
        serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    );
}

#[test]
fn the_public_key_is_derived_from_the_service_account() {
    let derived = public_key_pem_of(&private_pem()).unwrap();
    assert_eq!(derived.trim(), PUBLIC_PEM.trim());
    let error =
        public_key_pem_of("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
    assert!(!error.contains("c2VjcmV0"));
}

#[test]
fn issued_tokens_are_random_found_and_forgotten_once_expired() {
    let tokens = AccessTokens::default();
    let account = &accounts()[0];
    let now = NOW * 1000;
    let (first, issued) = tokens.issue(account, now, Duration::from_secs(60));
    let (second, _) = tokens.issue(account, now, Duration::from_secs(60));
    assert_ne!(first, second);
    assert!(first.starts_with("ya29."));
    assert_eq!(issued.expires_at, now + 60_000);
    assert_eq!(issued.project_id, "ringcast-demo");
    assert_eq!(tokens.lookup(&first), Some(issued));
    assert_eq!(tokens.lookup("ya29.never-issued"), None);
    // Issuing after both expired forgets them.
    let (third, _) = tokens.issue(account, now + 60_000, Duration::from_secs(60));
    assert_eq!(tokens.lookup(&first), None);
    assert!(tokens.lookup(&third).is_some());
}
