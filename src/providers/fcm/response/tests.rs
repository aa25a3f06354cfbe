use super::*;
use serde_json::json;

const NOW: UnixMillis = 1_800_000_000_000;
const QUOTA_DEFAULT: Duration = Duration::from_secs(60);
const FCM_ERROR: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

/// FCM's error body for `code` under `grpc`, as the simulator and FCM send it.
fn fcm_body(status: u16, grpc: &str, code: &str, message: &str) -> Vec<u8> {
    json!({"error": {"code": status, "message": message, "status": grpc,
        "details": [{"@type": FCM_ERROR, "errorCode": code}]}})
    .to_string()
    .into_bytes()
}

/// The verdict on `body` with `status` and an optional `Retry-After`.
fn judged(status: u16, body: &[u8], retry_after: Option<&str>) -> Verdict {
    let mut headers = HeaderMap::new();
    if let Some(value) = retry_after {
        headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
    }
    judge(status, &headers, body, NOW, QUOTA_DEFAULT)
}

fn answer(status: u16, grpc: &str, code: &str) -> Verdict {
    judged(status, &fcm_body(status, grpc, code, "x"), None)
}

fn dead(reason: &str) -> Verdict {
    Verdict::Final(Outcome::DeadToken {
        verdict_at: NOW,
        reason: reason.into(),
    })
}

fn rejected(reason: &str) -> Verdict {
    Verdict::Final(Outcome::Rejected {
        reason: reason.into(),
    })
}

fn credential(reason: &str) -> Verdict {
    Verdict::Final(Outcome::CredentialProblem {
        reason: reason.into(),
    })
}

fn retry(after: Option<u64>, label: &'static str, reason: &str) -> Verdict {
    Verdict::Retry {
        after: after.map(Duration::from_secs),
        reason: label,
        otherwise: Outcome::Rejected {
            reason: reason.into(),
        },
    }
}

fn pause(seconds: u64, reason: &str) -> Verdict {
    Verdict::Pause {
        for_: Duration::from_secs(seconds),
        reason: "quota_exceeded",
        otherwise: Outcome::Rejected {
            reason: reason.into(),
        },
    }
}

#[test]
fn every_documented_code_round_trips_and_none_is_unknown() {
    assert_eq!(FcmErrorCode::DOCUMENTED.len(), 8);
    for code in FcmErrorCode::DOCUMENTED {
        assert_eq!(&FcmErrorCode::parse(code.as_str()), code);
    }
    assert_eq!(
        FcmErrorCode::parse("NEW_CODE_2027"),
        FcmErrorCode::Unknown("NEW_CODE_2027".into())
    );
}

#[test]
fn a_2xx_is_delivered() {
    let verdict = judged(200, br#"{"name":"projects/p/messages/0:1"}"#, None);
    assert_eq!(verdict, Verdict::Final(Outcome::Delivered));
}

#[test]
fn unregistered_deletes_the_registration() {
    assert_eq!(
        read_error(404, &fcm_body(404, "NOT_FOUND", "UNREGISTERED", "x")).0,
        FcmErrorCode::Unregistered
    );
    assert_eq!(
        answer(404, "NOT_FOUND", "UNREGISTERED"),
        dead("UNREGISTERED")
    );
}

#[test]
fn invalid_argument_naming_the_token_deletes_otherwise_rejects() {
    let by_message = judged(
        400,
        &fcm_body(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        ),
        None,
    );
    assert_eq!(by_message, dead("INVALID_ARGUMENT"));
    let by_field = json!({"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT",
        "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "message.token", "description": "bad"}]}]}});
    assert_eq!(
        judged(400, by_field.to_string().as_bytes(), None),
        dead("INVALID_ARGUMENT")
    );
    // A message that only mentions the token (a missing target, say) is not a verdict on it.
    for message in [
        "Exactly one of message.token, message.topic or message.condition is required, not a registration token",
        "registration token",
    ] {
        let verdict = judged(
            400,
            &fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", message),
            None,
        );
        assert_eq!(verdict, rejected("INVALID_ARGUMENT"), "{message}");
    }
    // A field violation counts only in a BadRequest detail.
    let untyped = json!({"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.example/Other",
             "fieldViolations": [{"field": "message.token"}]}]}});
    assert_eq!(
        judged(400, untyped.to_string().as_bytes(), None),
        rejected("INVALID_ARGUMENT")
    );
    // A bad payload field is the message's fault, not the token's.
    let payload = json!({"error": {"code": 400, "message": "Invalid value at 'message.data[0].value'",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "message.data[0].value"}]}]}});
    let body = payload.to_string();
    assert_eq!(
        read_error(400, body.as_bytes()),
        (FcmErrorCode::InvalidArgument, false)
    );
    assert_eq!(
        judged(400, body.as_bytes(), None),
        rejected("INVALID_ARGUMENT")
    );
}

#[test]
fn sender_id_mismatch_is_permanent_but_keeps_the_registration() {
    assert_eq!(
        answer(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
        Verdict::Final(Outcome::Misconfigured {
            reason: "SENDER_ID_MISMATCH".into()
        })
    );
}

#[test]
fn third_party_auth_error_is_a_credential_alert() {
    assert_eq!(
        answer(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
        credential("THIRD_PARTY_AUTH_ERROR")
    );
}

#[test]
fn a_bare_401_refreshes_the_access_token_once() {
    let body = json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
        "status": "UNAUTHENTICATED"}});
    let body = body.to_string();
    assert_eq!(
        read_error(401, body.as_bytes()).0,
        FcmErrorCode::Unknown("UNAUTHENTICATED".into())
    );
    assert_eq!(
        judged(401, body.as_bytes(), None),
        Verdict::RefreshCredential {
            otherwise: Outcome::CredentialProblem {
                reason: "UNAUTHENTICATED".into()
            }
        }
    );
    assert!(matches!(
        judged(401, b"", None),
        Verdict::RefreshCredential { .. }
    ));
}

#[test]
fn quota_exceeded_pauses_the_project_for_at_least_retry_after_and_the_default() {
    let body = fcm_body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota");
    assert_eq!(
        judged(429, &body, Some("120")),
        pause(120, "QUOTA_EXCEEDED")
    );
    // An HTTP-date counts as well, relative to the answer's time.
    assert_eq!(
        judged(429, &body, Some("Fri, 15 Jan 2027 08:02:00 GMT")),
        pause(120, "QUOTA_EXCEEDED")
    );
    // No Retry-After, a shorter one, or a date already past: the default minute (FCM's
    // minimum).
    for retry_after in [None, Some("10"), Some("Wed, 21 Oct 2026 07:28:00 GMT")] {
        assert_eq!(
            judged(429, &body, retry_after),
            pause(60, "QUOTA_EXCEEDED"),
            "{retry_after:?}"
        );
    }
    // The configured default applies.
    assert_eq!(
        judge(429, &HeaderMap::new(), &body, NOW, Duration::from_secs(90)),
        pause(90, "QUOTA_EXCEEDED")
    );
}

/// A `QUOTA_EXCEEDED` body with a `QuotaFailure` detail whose one violation says `description`.
fn quota_failure(description: &str) -> Vec<u8> {
    json!({"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
    "details": [
        {"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"},
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"subject": "", "description": description}]}
    ]}})
    .to_string()
    .into_bytes()
}

#[test]
fn one_devices_rate_backs_off_that_push_alone_not_the_project() {
    assert_eq!(
        judged(
            429,
            &quota_failure("Device message rate exceeded."),
            Some("30")
        ),
        retry(Some(30), "quota_exceeded", "QUOTA_EXCEEDED")
    );
    // The project's rate, or a violation that names nobody: the whole project waits.
    for description in ["Message rate exceeded.", ""] {
        assert_eq!(
            judged(429, &quota_failure(description), None),
            pause(60, "QUOTA_EXCEEDED"),
            "{description:?}"
        );
    }
}

#[test]
fn the_project_rate_limit_from_googles_front_end_pauses_the_project_too() {
    // Over the project's sends per minute, Google's front end answers with no FcmError
    // detail, only an ErrorInfo naming the quota (the body firebase-admin-go issue 719
    // reports; consumer and value elided there too).
    let body = json!({"error": {"code": 429,
    "message": "Quota exceeded for quota metric 'Send requests' and limit 'Send requests \
                per minute' of service 'fcm.googleapis.com' for consumer 'project_number:1'.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
         "domain": "googleapis.com", "metadata": {"quota_limit": "SendsPerMinutePerProject",
         "quota_metric": "fcm.googleapis.com/send_requests", "quota_unit": "1/min/{project}",
         "service": "fcm.googleapis.com", "consumer": "projects/1"}},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description":
         "Request a higher quota limit.", "url": "https://cloud.google.com/docs/quotas"}]}
    ]}})
    .to_string();
    assert_eq!(
        judged(429, body.as_bytes(), None),
        pause(60, "QUOTA_EXCEEDED")
    );
}

#[test]
fn unavailable_and_internal_retry_honouring_retry_after() {
    for (status, grpc, code, label) in [
        (503, "UNAVAILABLE", "UNAVAILABLE", "unavailable"),
        (500, "INTERNAL", "INTERNAL", "internal"),
    ] {
        let body = fcm_body(status, grpc, code, "busy");
        // Retries that run out end as a rejection that keeps FCM's code.
        assert_eq!(
            judged(status, &body, Some(" 30 ")),
            retry(Some(30), label, code)
        );
        assert_eq!(judged(status, &body, None), retry(None, label, code));
    }
}

#[test]
fn unspecified_error_is_acted_on_by_status() {
    assert_eq!(
        answer(500, "UNKNOWN", "UNSPECIFIED_ERROR"),
        retry(None, "status_5xx", "UNSPECIFIED_ERROR")
    );
    assert_eq!(
        answer(400, "INVALID_ARGUMENT", "UNSPECIFIED_ERROR"),
        rejected("UNSPECIFIED_ERROR")
    );
}

#[test]
fn without_fcm_details_the_grpc_status_decides_but_never_deletes() {
    let bare = |status: u16, grpc: &str| {
        let body = json!({"error": {"code": status, "message": "m", "status": grpc}});
        judged(status, body.to_string().as_bytes(), None)
    };
    assert_eq!(bare(400, "INVALID_ARGUMENT"), rejected("INVALID_ARGUMENT"));
    assert_eq!(bare(429, "RESOURCE_EXHAUSTED"), pause(60, "QUOTA_EXCEEDED"));
    assert_eq!(
        bare(503, "UNAVAILABLE"),
        retry(None, "unavailable", "UNAVAILABLE")
    );
    assert_eq!(bare(500, "INTERNAL"), retry(None, "internal", "INTERNAL"));
    // A wrong path or project: never a dead token.
    assert_eq!(bare(404, "NOT_FOUND"), rejected("NOT_FOUND"));
    assert_eq!(
        bare(403, "PERMISSION_DENIED"),
        credential("PERMISSION_DENIED")
    );
}

#[test]
fn malformed_or_empty_bodies_keep_the_status_and_never_panic() {
    for body in [
        &b""[..],
        b"not json",
        b"{",
        b"{\"error\": 7}",
        b"<html><body>502 Bad Gateway</body></html>",
        &[0xff, 0xfe],
    ] {
        assert_eq!(
            read_error(502, body).0,
            FcmErrorCode::Unknown("HTTP 502".into())
        );
        assert_eq!(
            judged(502, body, None),
            retry(None, "status_5xx", "HTTP 502")
        );
    }
    assert_eq!(judged(404, b"", None), rejected("HTTP 404"));
    assert_eq!(judged(403, b"<html>", None), credential("HTTP 403"));
    assert_eq!(judged(418, b"", None), rejected("HTTP 418"));
    // A details entry of another type naming an errorCode is not FCM's.
    let foreign = json!({"error": {"code": 404, "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "errorCode": "UNREGISTERED"}]}});
    assert_eq!(
        judged(404, foreign.to_string().as_bytes(), None),
        rejected("NOT_FOUND")
    );
}

#[test]
fn an_unknown_code_is_kept_and_acted_on_by_status() {
    assert_eq!(
        answer(503, "UNAVAILABLE", "BRAND_NEW_FAILURE"),
        retry(None, "status_5xx", "BRAND_NEW_FAILURE")
    );
    assert_eq!(answer(400, "X", "TEAPOT"), rejected("TEAPOT"));
}
