use super::*;
use crate::simulator::oauth::FcmAccount;
use http::HeaderValue;
use serde_json::json;
use std::time::Duration;

const NOW: UnixMillis = 1_800_000_000_000;
const PROJECT: &str = "ringcast-demo";
const PATH: &str = "/v1/projects/ringcast-demo/messages:send";
const TOKEN: &str = "dGVzdA:APA91bH-example_token.1";
const PUBLIC_PEM: &str = include_str!("../../../config/dev/fcm-service-account.pub.pem");

struct Fixture {
    tokens: AccessTokens,
    bearer: String,
}

fn fixture() -> Fixture {
    let account = FcmAccount::from_pem("sa@ringcast-demo.iam", PROJECT, PUBLIC_PEM).unwrap();
    let tokens = AccessTokens::default();
    let (bearer, _) = tokens.issue(&account, NOW, Duration::from_secs(3600));
    Fixture { tokens, bearer }
}

fn headers(bearer: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {bearer}")).unwrap(),
    );
    headers
}

/// A call's data message, as the provider sends it; tests break one thing at a time.
fn call() -> Value {
    json!({"message": {
        "token": TOKEN,
        "data": {"v": "1", "type": "incoming_call", "call_id": "c1", "video": "false"},
        "android": {"priority": "HIGH", "ttl": "45s", "collapse_key": "c1"},
    }})
}

fn run_at(f: &Fixture, path: &str, bearer: &str, body: &[u8], now: UnixMillis) -> Verdict {
    judge(
        FcmRequest {
            method: &Method::POST,
            path,
            headers: &headers(bearer),
            body,
        },
        &f.tokens,
        now,
    )
}

fn run(f: &Fixture, body: &Value) -> Verdict {
    run_at(f, PATH, &f.bearer, body.to_string().as_bytes(), NOW)
}

fn rejection(verdict: Verdict) -> Rejection {
    match verdict {
        Verdict::Reject(rejection) => rejection,
        Verdict::Accept(message) => panic!("accepted {message:?}"),
    }
}

/// Status, gRPC status and FCM code of a refusal's body.
fn summary(verdict: Verdict) -> (u16, String, Option<String>) {
    let body = rejection(verdict).body();
    let error = &body["error"];
    let code = error["details"].as_array().and_then(|details| {
        details
            .iter()
            .find(|detail| detail["@type"] == FCM_ERROR_TYPE)
            .map(|detail| detail["errorCode"].as_str().unwrap().to_owned())
    });
    (
        error["code"].as_u64().unwrap() as u16,
        error["status"].as_str().unwrap().to_owned(),
        code,
    )
}

fn invalid() -> (u16, String, Option<String>) {
    (
        400,
        "INVALID_ARGUMENT".into(),
        Some("INVALID_ARGUMENT".into()),
    )
}

#[test]
fn accepts_a_call_data_message() {
    let f = fixture();
    let Verdict::Accept(message) = run(&f, &call()) else {
        panic!("refused")
    };
    assert_eq!(message.project_id, PROJECT);
    assert_eq!(message.client_email, "sa@ringcast-demo.iam");
    assert_eq!(message.target, Target::Token(TOKEN.into()));
    assert_eq!(message.data["type"], "incoming_call");
    assert_eq!(message.android_priority.as_deref(), Some("HIGH"));
    assert_eq!(
        (message.ttl.as_deref(), message.ttl_seconds),
        (Some("45s"), Some(45))
    );
    assert_eq!(message.collapse_key.as_deref(), Some("c1"));
    assert!(!message.validate_only);
    // Topics and conditions are targets too; data and android are optional.
    for target in [
        json!({"topic": "news"}),
        json!({"condition": "'a' in topics"}),
    ] {
        assert!(matches!(
            run(&f, &json!({ "message": target })),
            Verdict::Accept(_)
        ));
    }
}

#[test]
fn the_access_token_must_be_known_unexpired_and_for_the_project() {
    let f = fixture();
    let body = call().to_string();
    let unauthenticated = (401, "UNAUTHENTICATED".to_owned(), None);
    assert_eq!(
        summary(run_at(&f, PATH, "ya29.forged", body.as_bytes(), NOW)),
        unauthenticated
    );
    assert_eq!(
        summary(run_at(
            &f,
            PATH,
            &f.bearer,
            body.as_bytes(),
            NOW + 3_600_000
        )),
        unauthenticated
    );
    let no_header = judge(
        FcmRequest {
            method: &Method::POST,
            path: PATH,
            headers: &HeaderMap::new(),
            body: body.as_bytes(),
        },
        &f.tokens,
        NOW,
    );
    assert_eq!(summary(no_header), unauthenticated);
    let other_project = "/v1/projects/someone-else/messages:send";
    assert_eq!(
        summary(run_at(&f, other_project, &f.bearer, body.as_bytes(), NOW)),
        (403, "PERMISSION_DENIED".into(), None)
    );
}

#[test]
fn wrong_paths_and_methods_are_not_found_without_an_fcm_code() {
    let f = fixture();
    let body = call().to_string();
    for path in [
        "/v1/projects//messages:send",
        "/v1/projects/ringcast-demo/messages",
        "/fcm/send",
        "/v1/projects/a/b/messages:send",
    ] {
        assert_eq!(
            summary(run_at(&f, path, &f.bearer, body.as_bytes(), NOW)),
            (404, "NOT_FOUND".into(), None),
            "{path}"
        );
    }
    let get = judge(
        FcmRequest {
            method: &Method::GET,
            path: PATH,
            headers: &headers(&f.bearer),
            body: b"",
        },
        &f.tokens,
        NOW,
    );
    assert_eq!(summary(get).0, 404);
}

#[test]
fn exactly_one_valid_target() {
    let f = fixture();
    let mut two = call();
    two["message"]["topic"] = "news".into();
    let mut none = call();
    none["message"].as_object_mut().unwrap().remove("token");
    let mut empty = call();
    empty["message"]["token"] = "".into();
    let mut garbage = call();
    garbage["message"]["token"] = "not a token!".into();
    for body in [two, none, empty, garbage] {
        assert_eq!(summary(run(&f, &body)), invalid(), "{body}");
    }
    // A token FCM does not know as one: its own message, no field violation.
    let mut garbage = call();
    garbage["message"]["token"] = "not a token!".into();
    let refused = rejection(run(&f, &garbage));
    assert_eq!(refused.field, None);
    assert_eq!(
        refused.message,
        crate::providers::fcm::response::INVALID_TOKEN_MESSAGE
    );
    assert_eq!(refused.error_code.as_deref(), Some("INVALID_ARGUMENT"));
    let mut numeric = call();
    numeric["message"]["token"] = 7.into();
    let refused = rejection(run(&f, &numeric));
    assert_eq!(refused.field.as_deref(), Some("message.token"));
}

#[test]
fn data_values_must_all_be_strings_and_keys_not_reserved() {
    let f = fixture();
    for bad in [json!(1), json!(true), json!(null), json!({"a": "b"})] {
        let mut body = call();
        body["message"]["data"]["video"] = bad.clone();
        let refused = rejection(run(&f, &body));
        assert_eq!(refused.status, 400, "{bad}");
        assert!(refused.field.unwrap().starts_with("message.data["));
    }
    for key in ["from", "google.x", "gcm.y", "message_type"] {
        let mut body = call();
        body["message"]["data"][key] = "x".into();
        assert_eq!(summary(run(&f, &body)), invalid(), "{key}");
    }
    let mut list = call();
    list["message"]["data"] = json!(["a"]);
    assert_eq!(summary(run(&f, &list)), invalid());
}

#[test]
fn android_priority_ttl_and_unknown_fields() {
    let f = fixture();
    let with = |key: &str, value: Value| {
        let mut body = call();
        body["message"]["android"][key] = value;
        body
    };
    assert!(matches!(
        run(&f, &with("priority", "NORMAL".into())),
        Verdict::Accept(_)
    ));
    for bad in [json!("high"), json!("URGENT"), json!(10)] {
        let refused = rejection(run(&f, &with("priority", bad)));
        assert_eq!(refused.field.as_deref(), Some("message.android.priority"));
    }
    for good in [
        "0s",
        "2419200s",
        "1.5s",
        "2419200.000000000s",
        "0.123456789s",
    ] {
        assert!(
            matches!(run(&f, &with("ttl", good.into())), Verdict::Accept(_)),
            "{good}"
        );
    }
    for bad in [
        json!("45"),
        json!("2419201s"),
        json!("2419200.1s"),
        json!("-1s"),
        json!("1.s"),
        json!("1.1234567890s"),
        json!("s"),
        json!(45),
    ] {
        let refused = rejection(run(&f, &with("ttl", bad.clone())));
        assert_eq!(
            refused.field.as_deref(),
            Some("message.android.ttl"),
            "{bad}"
        );
    }
    let refused = rejection(run(&f, &with("colapse_key", "c".into())));
    assert_eq!(
        refused.field.as_deref(),
        Some("message.android.colapse_key")
    );
    let mut top = call();
    top["message"]["priority"] = "high".into();
    assert_eq!(summary(run(&f, &top)), invalid());
    let mut outer = call();
    outer["dry_run"] = true.into();
    assert_eq!(summary(run(&f, &outer)), invalid());
}

#[test]
fn size_and_json_are_checked() {
    let f = fixture();
    let mut big = call();
    big["message"]["data"]["caller_name"] = "B".repeat(4000).into();
    let refused = rejection(run(&f, &big));
    assert_eq!(refused.status, 400);
    assert!(refused.message.contains("too big"), "{}", refused.message);
    // Exactly at the limit is fine.
    let mut exact = call();
    exact["message"]["data"]["caller_name"] = "".into();
    let base = exact.to_string().len();
    exact["message"]["data"]["caller_name"] = "B".repeat(MESSAGE_LIMIT - base).into();
    assert_eq!(exact.to_string().len(), MESSAGE_LIMIT);
    assert!(matches!(run(&f, &exact), Verdict::Accept(_)));
    for body in [&b"not json"[..], b"[]", b"{}", b"{\"message\": 1}"] {
        let verdict = run_at(&f, PATH, &f.bearer, body, NOW);
        assert_eq!(summary(verdict), invalid());
    }
}

#[test]
fn validate_only_is_accepted_and_flagged() {
    let f = fixture();
    let mut body = call();
    body["validate_only"] = true.into();
    let Verdict::Accept(message) = run(&f, &body) else {
        panic!("refused")
    };
    assert!(message.validate_only);
}

#[test]
fn bodies_look_like_fcms() {
    assert_eq!(
        Rejection::fcm("UNREGISTERED", "Requested entity was not found.").body(),
        json!({"error": {"code": 404, "message": "Requested entity was not found.",
            "status": "NOT_FOUND", "details": [{"@type": FCM_ERROR_TYPE,
            "errorCode": "UNREGISTERED"}]}})
    );
    let invalid = Rejection::invalid("message.token", "bad").body();
    assert_eq!(invalid["error"]["details"][1]["@type"], BAD_REQUEST_TYPE);
    assert_eq!(
        invalid["error"]["details"][1]["fieldViolations"][0]["field"],
        "message.token"
    );
    assert_eq!(
        Rejection::plain(401, "x").body(),
        json!({"error": {"code": 401, "message": "x", "status": "UNAUTHENTICATED"}})
    );
}

#[test]
fn scripted_errors_follow_fcms_table() {
    for (code, status, grpc) in DOCUMENTED {
        let scripted = Rejection::scripted(*status, code, None);
        assert_eq!(scripted.label(), *code);
        let body = scripted.body();
        assert_eq!(body["error"]["status"], *grpc);
        assert_eq!(body["error"]["details"][0]["errorCode"], *code);
    }
    assert_eq!(
        Rejection::scripted(429, "QUOTA_EXCEEDED", None).retry_after_secs,
        Some(60)
    );
    assert_eq!(
        Rejection::scripted(429, "QUOTA_EXCEEDED", Some(5)).retry_after_secs,
        Some(5)
    );
    assert_eq!(
        Rejection::scripted(503, "UNAVAILABLE", None).retry_after_secs,
        None
    );
    // A bare gRPC status is a front-end error: no FCM details.
    let bare = Rejection::scripted(401, "UNAUTHENTICATED", None);
    assert_eq!(bare.error_code, None);
    assert_eq!(bare.label(), "UNAUTHENTICATED");
}
