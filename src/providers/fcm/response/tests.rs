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

fn answer(status: u16, grpc: &str, code: &str) -> FcmAnswer {
    parse(
        status,
        &fcm_body(status, grpc, code, "x"),
        None,
        NOW,
        QUOTA_DEFAULT,
    )
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
    let answer = parse(
        200,
        br#"{"name":"projects/p/messages/0:1"}"#,
        None,
        NOW,
        QUOTA_DEFAULT,
    );
    assert_eq!(answer.action, Action::Delivered);
    assert_eq!(answer.code, None);
    assert_eq!(answer.final_outcome(), Outcome::Delivered);
}

#[test]
fn unregistered_deletes_the_registration() {
    let answer = answer(404, "NOT_FOUND", "UNREGISTERED");
    assert_eq!(answer.code, Some(FcmErrorCode::Unregistered));
    assert_eq!(
        answer.action,
        Action::DeleteRegistration { verdict_at_ms: NOW }
    );
    assert_eq!(
        answer.final_outcome(),
        Outcome::DeadToken {
            verdict_at: NOW,
            reason: "UNREGISTERED".into()
        }
    );
}

#[test]
fn invalid_argument_naming_the_token_deletes_otherwise_rejects() {
    let by_message = parse(
        400,
        &fcm_body(
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        ),
        None,
        NOW,
        QUOTA_DEFAULT,
    );
    assert_eq!(
        by_message.action,
        Action::DeleteRegistration { verdict_at_ms: NOW }
    );
    let by_field = json!({"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT",
        "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "message.token", "description": "bad"}]}]}});
    let answer = parse(
        400,
        by_field.to_string().as_bytes(),
        None,
        NOW,
        QUOTA_DEFAULT,
    );
    assert_eq!(
        answer.action,
        Action::DeleteRegistration { verdict_at_ms: NOW }
    );
    assert_eq!(
        answer.final_outcome(),
        Outcome::DeadToken {
            verdict_at: NOW,
            reason: "INVALID_ARGUMENT".into()
        }
    );
    // A message that only mentions the token (a missing target, say) is not a verdict on it.
    for message in [
        "Exactly one of message.token, message.topic or message.condition is required, not a registration token",
        "registration token",
    ] {
        let answer = parse(
            400,
            &fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", message),
            None,
            NOW,
            QUOTA_DEFAULT,
        );
        assert_eq!(answer.action, Action::Reject, "{message}");
    }
    // A field violation counts only in a BadRequest detail.
    let untyped = json!({"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.example/Other",
             "fieldViolations": [{"field": "message.token"}]}]}});
    assert_eq!(
        parse(
            400,
            untyped.to_string().as_bytes(),
            None,
            NOW,
            QUOTA_DEFAULT
        )
        .action,
        Action::Reject
    );
    // A bad payload field is the message's fault, not the token's.
    let payload = json!({"error": {"code": 400, "message": "Invalid value at 'message.data[0].value'",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "message.data[0].value"}]}]}});
    let answer = parse(
        400,
        payload.to_string().as_bytes(),
        None,
        NOW,
        QUOTA_DEFAULT,
    );
    assert_eq!(answer.code, Some(FcmErrorCode::InvalidArgument));
    assert_eq!(answer.action, Action::Reject);
    assert_eq!(
        answer.final_outcome(),
        Outcome::Rejected {
            reason: "INVALID_ARGUMENT".into()
        }
    );
}

#[test]
fn sender_id_mismatch_is_permanent_but_keeps_the_registration() {
    let answer = answer(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH");
    assert_eq!(answer.action, Action::ConfigAlert);
    assert_eq!(
        answer.final_outcome(),
        Outcome::Misconfigured {
            reason: "SENDER_ID_MISMATCH".into()
        }
    );
}

#[test]
fn third_party_auth_error_is_a_credential_alert() {
    let answer = answer(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR");
    assert_eq!(answer.action, Action::CredentialAlert);
    assert_eq!(
        answer.final_outcome(),
        Outcome::CredentialProblem {
            reason: "THIRD_PARTY_AUTH_ERROR".into()
        }
    );
}

#[test]
fn a_bare_401_refreshes_the_access_token_once() {
    let body = json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
        "status": "UNAUTHENTICATED"}});
    let answer = parse(401, body.to_string().as_bytes(), None, NOW, QUOTA_DEFAULT);
    assert_eq!(
        answer.code,
        Some(FcmErrorCode::Unknown("UNAUTHENTICATED".into()))
    );
    assert_eq!(answer.action, Action::RefreshCredentialOnce);
    assert_eq!(
        answer.final_outcome(),
        Outcome::CredentialProblem {
            reason: "UNAUTHENTICATED".into()
        }
    );
    assert_eq!(
        parse(401, b"", None, NOW, QUOTA_DEFAULT).action,
        Action::RefreshCredentialOnce
    );
}

#[test]
fn quota_exceeded_pauses_the_project_for_at_least_retry_after_and_the_default() {
    let body = fcm_body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota");
    let pause = |retry_after| parse(429, &body, retry_after, NOW, QUOTA_DEFAULT).action;
    assert_eq!(
        pause(Some("120")),
        Action::Pause {
            for_: Duration::from_secs(120)
        }
    );
    // No Retry-After, a shorter one, or an HTTP-date: the default minute (FCM's minimum).
    for retry_after in [None, Some("10"), Some("Wed, 21 Oct 2026 07:28:00 GMT")] {
        assert_eq!(
            pause(retry_after),
            Action::Pause {
                for_: Duration::from_secs(60)
            }
        );
    }
    let answer = parse(429, &body, None, NOW, QUOTA_DEFAULT);
    assert_eq!(
        answer.final_outcome(),
        Outcome::Rejected {
            reason: "QUOTA_EXCEEDED".into()
        }
    );
    // The configured default applies.
    assert_eq!(
        parse(429, &body, None, NOW, Duration::from_secs(90)).action,
        Action::Pause {
            for_: Duration::from_secs(90)
        }
    );
}

#[test]
fn unavailable_and_internal_retry_honouring_retry_after() {
    for (status, grpc, code) in [
        (503, "UNAVAILABLE", "UNAVAILABLE"),
        (500, "INTERNAL", "INTERNAL"),
    ] {
        let body = fcm_body(status, grpc, code, "busy");
        let answer = parse(status, &body, Some(" 30 "), NOW, QUOTA_DEFAULT);
        assert_eq!(
            answer.action,
            Action::Retry {
                after: Some(Duration::from_secs(30))
            },
            "{code}"
        );
        assert_eq!(answer.message.as_deref(), Some("busy"));
        // Retries that ran out end as a rejection that keeps FCM's code.
        assert_eq!(
            answer.final_outcome(),
            Outcome::Rejected {
                reason: code.into()
            }
        );
        assert_eq!(
            parse(status, &body, None, NOW, QUOTA_DEFAULT).action,
            Action::Retry { after: None }
        );
    }
}

#[test]
fn unspecified_error_is_acted_on_by_status() {
    assert_eq!(
        answer(500, "UNKNOWN", "UNSPECIFIED_ERROR").action,
        Action::Retry { after: None }
    );
    assert_eq!(
        answer(400, "INVALID_ARGUMENT", "UNSPECIFIED_ERROR").action,
        Action::Reject
    );
}

#[test]
fn without_fcm_details_the_grpc_status_decides_but_never_deletes() {
    let bare = |status: u16, grpc: &str| {
        let body = json!({"error": {"code": status, "message": "m", "status": grpc}});
        parse(
            status,
            body.to_string().as_bytes(),
            None,
            NOW,
            QUOTA_DEFAULT,
        )
    };
    assert_eq!(
        bare(400, "INVALID_ARGUMENT").code,
        Some(FcmErrorCode::InvalidArgument)
    );
    assert_eq!(bare(400, "INVALID_ARGUMENT").action, Action::Reject);
    assert_eq!(
        bare(429, "RESOURCE_EXHAUSTED").action,
        Action::Pause {
            for_: Duration::from_secs(60)
        }
    );
    assert_eq!(
        bare(503, "UNAVAILABLE").action,
        Action::Retry { after: None }
    );
    assert_eq!(bare(500, "INTERNAL").action, Action::Retry { after: None });
    // A wrong path or project: never a dead token.
    let not_found = bare(404, "NOT_FOUND");
    assert_eq!(
        not_found.code,
        Some(FcmErrorCode::Unknown("NOT_FOUND".into()))
    );
    assert_eq!(not_found.action, Action::BugAlert);
    assert_eq!(
        bare(403, "PERMISSION_DENIED").action,
        Action::CredentialAlert
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
        let answer = parse(502, body, None, NOW, QUOTA_DEFAULT);
        assert_eq!(answer.status, 502);
        assert_eq!(answer.code, Some(FcmErrorCode::Unknown("HTTP 502".into())));
        assert_eq!(answer.action, Action::Retry { after: None });
    }
    assert_eq!(
        parse(404, b"", None, NOW, QUOTA_DEFAULT).action,
        Action::BugAlert
    );
    assert_eq!(
        parse(403, b"<html>", None, NOW, QUOTA_DEFAULT).action,
        Action::CredentialAlert
    );
    assert_eq!(
        parse(418, b"", None, NOW, QUOTA_DEFAULT).final_outcome(),
        Outcome::Rejected {
            reason: "HTTP 418".into()
        }
    );
    // A details entry of another type naming an errorCode is not FCM's.
    let foreign = json!({"error": {"code": 404, "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "errorCode": "UNREGISTERED"}]}});
    assert_eq!(
        parse(
            404,
            foreign.to_string().as_bytes(),
            None,
            NOW,
            QUOTA_DEFAULT
        )
        .action,
        Action::BugAlert
    );
}

#[test]
fn an_unknown_code_is_kept_and_acted_on_by_status() {
    let answer = answer(503, "UNAVAILABLE", "BRAND_NEW_FAILURE");
    assert_eq!(
        answer.code,
        Some(FcmErrorCode::Unknown("BRAND_NEW_FAILURE".into()))
    );
    assert_eq!(answer.action, Action::Retry { after: None });
    assert_eq!(
        answer.final_outcome(),
        Outcome::Rejected {
            reason: "BRAND_NEW_FAILURE".into()
        }
    );
    assert_eq!(self::answer(400, "X", "TEAPOT").action, Action::Reject);
}
