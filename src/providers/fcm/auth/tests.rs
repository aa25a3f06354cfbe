use super::*;
use jsonwebtoken::{DecodingKey, Validation};
use std::collections::HashSet;

const T0: UnixMillis = 1_800_000_000_000;
const MINUTE: u64 = 60_000;
const ACCOUNT_JSON: &str = include_str!("../../../../config/dev/fcm-service-account.json");
const PUBLIC_PEM: &str = include_str!("../../../../config/dev/fcm-service-account.pub.pem");

fn account() -> ServiceAccount {
    ServiceAccount::from_json(ACCOUNT_JSON.as_bytes()).unwrap()
}

/// A token obtained at `at`, living `life_ms`, named `name`.
fn token(name: &str, at: UnixMillis, life_ms: u64) -> AccessToken {
    let body = format!(
        r#"{{"access_token":"{name}","expires_in":{},"token_type":"Bearer"}}"#,
        life_ms / 1000
    );
    parse_token_response(200, body.as_bytes(), at).unwrap()
}

fn cache() -> AccessTokenCache {
    AccessTokenCache::new(Duration::from_secs(300), DEFAULT_REFRESH_STALE_AFTER)
}

fn bearer(state: &TokenState) -> Option<&str> {
    match state {
        TokenState::Fresh(token) | TokenState::RefreshAhead(token) => {
            Some(token.authorization.to_str().unwrap())
        }
        TokenState::MustRefresh | TokenState::AwaitRefresh(_) => None,
    }
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

#[test]
fn the_first_caller_fetches_and_the_others_wait_for_it() {
    let cache = cache();
    let other_connection = cache.clone();
    assert!(matches!(cache.current(T0), TokenState::MustRefresh));
    assert!(matches!(
        other_connection.current(T0 + 10),
        TokenState::AwaitRefresh(_)
    ));
    cache.store(token("first", T0 + 100, 60 * MINUTE));
    assert_eq!(
        bearer(&other_connection.current(T0 + 200)),
        Some("Bearer first")
    );
    assert!(matches!(
        other_connection.current(T0 + 200),
        TokenState::Fresh(_)
    ));
}

#[test]
fn within_the_window_one_caller_refreshes_while_everyone_keeps_sending() {
    let cache = cache();
    assert!(matches!(cache.current(T0), TokenState::MustRefresh));
    cache.store(token("first", T0, 60 * MINUTE));
    // Before the window (55 minutes in): fresh for everyone.
    assert!(matches!(
        cache.current(T0 + 54 * MINUTE),
        TokenState::Fresh(_)
    ));
    // In the window: the first caller sends and refreshes, the rest just send.
    let first = cache.current(T0 + 56 * MINUTE);
    assert!(matches!(first, TokenState::RefreshAhead(_)));
    assert_eq!(bearer(&first), Some("Bearer first"));
    for later in 1..5 {
        let state = cache.current(T0 + 56 * MINUTE + later);
        assert!(matches!(state, TokenState::Fresh(_)), "{state:?}");
        assert_eq!(bearer(&state), Some("Bearer first"));
    }
    cache.store(token("second", T0 + 57 * MINUTE, 60 * MINUTE));
    assert_eq!(
        bearer(&cache.current(T0 + 58 * MINUTE)),
        Some("Bearer second")
    );
    assert!(matches!(
        cache.current(T0 + 58 * MINUTE),
        TokenState::Fresh(_)
    ));
}

#[test]
fn a_refresher_that_never_reports_back_is_replaced_after_the_stale_time() {
    let cache = cache();
    cache.store(token("first", T0, 60 * MINUTE));
    let window = T0 + 56 * MINUTE;
    assert!(matches!(cache.current(window), TokenState::RefreshAhead(_)));
    assert!(matches!(
        cache.current(window + 29_999),
        TokenState::Fresh(_)
    ));
    assert!(matches!(
        cache.current(window + 30_000),
        TokenState::RefreshAhead(_)
    ));
    // Expired with the claim fresh: wait; with it stale: take over.
    let expired = T0 + 60 * MINUTE;
    assert!(matches!(cache.current(expired), TokenState::MustRefresh));
    assert!(matches!(
        cache.current(expired + 1),
        TokenState::AwaitRefresh(_)
    ));
    assert!(matches!(
        cache.current(expired + 30_000),
        TokenState::MustRefresh
    ));
}

#[test]
fn a_failed_refresh_hands_the_claim_on_and_keeps_the_valid_token() {
    let cache = cache();
    cache.store(token("first", T0, 60 * MINUTE));
    let window = T0 + 56 * MINUTE;
    assert!(matches!(cache.current(window), TokenState::RefreshAhead(_)));
    cache.refresh_failed();
    let next = cache.current(window + 1);
    assert!(matches!(next, TokenState::RefreshAhead(_)));
    assert_eq!(bearer(&next), Some("Bearer first"));
}

#[test]
fn a_burst_of_401s_for_one_token_causes_one_refresh() {
    let cache = cache();
    cache.store(token("first", T0, 60 * MINUTE));
    let TokenState::Fresh(failed) = cache.current(T0 + MINUTE) else {
        panic!("no token")
    };
    // Fifty in-flight pushes come back 401: the token is dropped once.
    let dropped = (0..50)
        .filter(|_| cache.invalidate_after_401(&failed))
        .count();
    assert_eq!(dropped, 1);
    // One caller refreshes, the other 49 wait.
    let states: Vec<TokenState> = (0..50).map(|i| cache.current(T0 + MINUTE + i)).collect();
    let refreshers = states
        .iter()
        .filter(|state| matches!(state, TokenState::MustRefresh))
        .count();
    let waiters = states
        .iter()
        .filter(|state| matches!(state, TokenState::AwaitRefresh(_)))
        .count();
    assert_eq!((refreshers, waiters), (1, 49));
    cache.store(token("second", T0 + MINUTE + 500, 60 * MINUTE));
    // A late 401 for the old token does not drop the new one, nor does its stamp find it.
    assert!(!cache.invalidate_after_401(&failed));
    assert!(cache.obtained_at(failed.obtained_at).is_none());
    assert!(cache.obtained_at(T0 + MINUTE + 500).is_some());
    assert_eq!(
        bearer(&cache.current(T0 + 2 * MINUTE)),
        Some("Bearer second")
    );
}

#[test]
fn a_short_lived_token_refreshes_at_half_life_and_an_older_one_never_wins() {
    // A simulator's 10-second token under a 300-second window: refresh at 5 s, not at once.
    let cache = cache();
    cache.store(token("short", T0, 10_000));
    assert!(matches!(cache.current(T0 + 4_999), TokenState::Fresh(_)));
    assert!(matches!(
        cache.current(T0 + 5_000),
        TokenState::RefreshAhead(_)
    ));
    // Two refreshers (one took over a stale claim) store out of order: the longer-lived wins.
    cache.store(token("newer", T0 + 6_000, 10_000));
    cache.store(token("older", T0 + 5_500, 10_000));
    assert_eq!(bearer(&cache.current(T0 + 6_100)), Some("Bearer newer"));
}

#[tokio::test]
async fn waiters_wake_when_the_token_is_stored() {
    let cache = cache();
    assert!(matches!(cache.current(T0), TokenState::MustRefresh));
    let TokenState::AwaitRefresh(wait) = cache.current(T0 + 1) else {
        panic!("should wait")
    };
    let waiter = tokio::spawn(wait.until_refreshed());
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    cache.store(token("first", T0 + 100, 60 * MINUTE));
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    // A failed refresh wakes them too.
    assert!(cache.invalidate_after_401(&token("first", T0 + 100, 60 * MINUTE)));
    assert!(matches!(cache.current(T0 + 200), TokenState::MustRefresh));
    let TokenState::AwaitRefresh(wait) = cache.current(T0 + 201) else {
        panic!("should wait")
    };
    cache.refresh_failed();
    tokio::time::timeout(Duration::from_secs(5), wait.until_refreshed())
        .await
        .unwrap();
}
