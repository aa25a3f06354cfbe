//! FCM's error answers: the documented codes with their HTTP and gRPC statuses, and the
//! error JSON Google sends.
//!
//! `{"error": {"code", "message", "status", "details"}}`, with the FCM `errorCode` in the
//! `details` entry typed `...fcm.v1.FcmError`, and for bad fields a `google.rpc.BadRequest`
//! entry naming the field, as FCM sends them. Failures of Google's front end
//! (authentication, permissions, unknown paths) carry no FCM code, as with Google; a sender
//! must not mistake their `NOT_FOUND` for `UNREGISTERED`.

use serde_json::Value;

/// `Retry-After` of a scripted `QUOTA_EXCEEDED` that names none: FCM asks quota offenders to
/// wait at least a minute.
pub const DEFAULT_QUOTA_RETRY_AFTER_SECS: u64 = 60;
/// The `@type` of the details entry carrying the FCM error code.
pub const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
/// The `@type` of the details entry naming a bad field.
pub const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";
/// The `@type` of the details entry naming the quota a `QUOTA_EXCEEDED` hit.
pub const QUOTA_FAILURE_TYPE: &str = "type.googleapis.com/google.rpc.QuotaFailure";
/// The violation a device's rate gets. Google documents the detail, not its wording; this is
/// the name its `ErrorCode` reference gives the case, which ringcast's judge reads "device" in.
pub const DEVICE_RATE_VIOLATION: &str = "Device message rate exceeded.";

/// The documented FCM error codes with their HTTP status and gRPC status (docs/protocols.md).
pub const DOCUMENTED: &[(&str, u16, &str)] = &[
    ("INVALID_ARGUMENT", 400, "INVALID_ARGUMENT"),
    ("THIRD_PARTY_AUTH_ERROR", 401, "UNAUTHENTICATED"),
    ("SENDER_ID_MISMATCH", 403, "PERMISSION_DENIED"),
    ("UNREGISTERED", 404, "NOT_FOUND"),
    ("QUOTA_EXCEEDED", 429, "RESOURCE_EXHAUSTED"),
    ("INTERNAL", 500, "INTERNAL"),
    ("UNAVAILABLE", 503, "UNAVAILABLE"),
];

/// The HTTP status and gRPC status FCM answers a documented error code with.
pub fn documented_status(code: &str) -> Option<(u16, &'static str)> {
    DOCUMENTED
        .iter()
        .find(|(name, _, _)| *name == code)
        .map(|&(_, status, grpc)| (status, grpc))
}

/// The gRPC canonical status Google's front end puts in `error.status` for an HTTP status.
pub fn grpc_status(http: u16) -> &'static str {
    match http {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// An FCM (or Google front-end) error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// The FCM `errorCode` for the `FcmError` details entry; `None` for front-end errors
    /// (authentication, permission, path), which carry no FCM code.
    pub error_code: Option<String>,
    /// Google's message.
    pub message: String,
    /// The request field at fault, for a `BadRequest` details entry.
    pub field: Option<String>,
    /// `Retry-After` to send, in seconds.
    pub retry_after_secs: Option<u64>,
    /// The quota violated, for a `QuotaFailure` details entry.
    pub quota_violation: Option<&'static str>,
}

impl Rejection {
    /// An error with an FCM code whose HTTP status is FCM's for that code (500 for a code not
    /// in the table).
    pub fn fcm(code: &str, message: impl Into<String>) -> Self {
        let status = documented_status(code).map_or(500, |(status, _)| status);
        Self {
            status,
            error_code: Some(code.to_owned()),
            message: message.into(),
            field: None,
            retry_after_secs: None,
            quota_violation: None,
        }
    }

    /// A front-end error: a status and message, no FCM code.
    pub fn plain(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code: None,
            message: message.into(),
            field: None,
            retry_after_secs: None,
            quota_violation: None,
        }
    }

    /// `INVALID_ARGUMENT` naming the bad field, as FCM reports a malformed message.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::fcm("INVALID_ARGUMENT", message)
        }
    }

    /// A scripted error: `reason` is an FCM code (`details` carry it) or a bare gRPC status
    /// name matching `status` (no `details`, as Google's front end answers).
    /// `QUOTA_EXCEEDED` always gets a `Retry-After`.
    pub fn scripted(status: u16, reason: &str, retry_after_secs: Option<u64>) -> Self {
        let error_code = (reason != grpc_status(status) || documented_status(reason).is_some())
            .then(|| reason.to_owned());
        let retry_after_secs = retry_after_secs
            .or((reason == "QUOTA_EXCEEDED").then_some(DEFAULT_QUOTA_RETRY_AFTER_SECS));
        Self {
            status,
            error_code,
            message: format!("Scripted failure: {reason}"),
            field: None,
            retry_after_secs,
            quota_violation: None,
        }
    }

    /// `QUOTA_EXCEEDED` for one device's rate ([`super::device_rate`]), with the
    /// `QuotaFailure` detail that tells it from the project's quota.
    pub fn device_rate() -> Self {
        Self {
            quota_violation: Some(DEVICE_RATE_VIOLATION),
            ..Self::fcm("QUOTA_EXCEEDED", "Quota exceeded for the message target.")
        }
    }

    /// What the stats count it as: the FCM code, else the gRPC status.
    pub fn label(&self) -> &str {
        self.error_code
            .as_deref()
            .unwrap_or_else(|| grpc_status(self.status))
    }

    /// The body, as Google sends it.
    pub fn body(&self) -> Value {
        let mut details = Vec::new();
        if let Some(code) = &self.error_code {
            details.push(serde_json::json!({"@type": FCM_ERROR_TYPE, "errorCode": code}));
        }
        if let Some(field) = &self.field {
            details.push(serde_json::json!({
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": field, "description": self.message}],
            }));
        }
        if let Some(violation) = self.quota_violation {
            details.push(serde_json::json!({
                "@type": QUOTA_FAILURE_TYPE,
                "violations": [{"description": violation}],
            }));
        }
        let mut error = serde_json::json!({
            "code": self.status,
            "message": self.message,
            "status": grpc_status(self.status),
        });
        if !details.is_empty() {
            error["details"] = Value::Array(details);
        }
        serde_json::json!({ "error": error })
    }
}
