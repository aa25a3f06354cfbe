//! Every FCM answer `(status, headers, body)` → an [`FcmErrorCode`] → the delivery loop's
//! [`Verdict`] ([`judge`]): pure, so every documented code is tested offline.
//!
//! FCM puts its own code in `error.details[]`, in the entry whose `@type` ends in `FcmError`
//! (`errorCode`); `error.status` holds the gRPC canonical status instead (`UNREGISTERED`
//! arrives with `NOT_FOUND`, `QUOTA_EXCEEDED` with `RESOURCE_EXHAUSTED`). So the code is read
//! from the details first, then from `error.status`, then from the HTTP status alone.
//!
//! Answers from Google's front end carry no FCM code: a 401 `UNAUTHENTICATED` (the access
//! token expired or was revoked: refresh once), a 403 `PERMISSION_DENIED` (the account may not
//! send to that project: alert), a 404 `NOT_FOUND` for a wrong path. Only an FCM
//! `UNREGISTERED` deletes a registration: a bare `NOT_FOUND` is a ringcast or configuration
//! bug, and treating it as a dead token would empty the registry.

use crate::providers::pool::AnswerFields;
use crate::providers::retry_after;
use crate::providers::service::Verdict;
use crate::vocab::{Outcome, UnixMillis};
use http::HeaderMap;
use http::header::RETRY_AFTER;
use serde::Deserialize;
use std::time::Duration;

/// Generates [`FcmErrorCode`] with its parsing and naming from one list, so the enum, the
/// strings and the tests cannot drift apart.
macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $text:literal,)*) => {
        /// An error code FCM gives for refusing a message (docs/protocols.md, "FCM HTTP v1").
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum FcmErrorCode {
            $($(#[$doc])* $name,)*
            /// A code not in FCM's documented list, or a gRPC status / HTTP status when the
            /// answer carried no FCM code (`UNAUTHENTICATED`, `HTTP 502`). Never lost: it is
            /// logged and counted as is.
            Unknown(String),
        }

        impl FcmErrorCode {
            /// Every documented code (for tests and metric pre-registration).
            pub const DOCUMENTED: &'static [FcmErrorCode] = &[$(FcmErrorCode::$name,)*];

            /// The code named by `text` (exact, as FCM spells it).
            pub fn parse(text: &str) -> FcmErrorCode {
                match text {
                    $($text => FcmErrorCode::$name,)*
                    other => FcmErrorCode::Unknown(other.to_owned()),
                }
            }

            /// The code as FCM spells it (the metric label).
            pub fn as_str(&self) -> &str {
                match self {
                    $(FcmErrorCode::$name => $text,)*
                    FcmErrorCode::Unknown(text) => text,
                }
            }
        }
    };
}

codes! {
    /// No more information is available about the error; the HTTP status decides.
    UnspecifiedError = "UNSPECIFIED_ERROR",
    /// 400: the message is malformed, or the registration token is not a valid one (then the
    /// registration is dead).
    InvalidArgument = "INVALID_ARGUMENT",
    /// 404: the app instance was unregistered (uninstalled, token expired): the registration
    /// is dead.
    Unregistered = "UNREGISTERED",
    /// 403: the token belongs to another sender (Firebase project).
    SenderIdMismatch = "SENDER_ID_MISMATCH",
    /// 429: a sending quota was exceeded (project, device or topic rate).
    QuotaExceeded = "QUOTA_EXCEEDED",
    /// 503: FCM is overloaded.
    Unavailable = "UNAVAILABLE",
    /// 500: FCM had an internal error.
    Internal = "INTERNAL",
    /// 401: the APNs certificate or web push key behind FCM is invalid or missing.
    ThirdPartyAuthError = "THIRD_PARTY_AUTH_ERROR",
}

/// The `retries_total{reason}` label of a retried or paused answer.
fn retry_label(status: u16, code: &FcmErrorCode) -> &'static str {
    match code {
        FcmErrorCode::QuotaExceeded => "quota_exceeded",
        FcmErrorCode::Unavailable => "unavailable",
        FcmErrorCode::Internal => "internal",
        _ if status == 429 => "quota_exceeded",
        _ => "status_5xx",
    }
}

/// `{"error": {...}}`.
#[derive(Deserialize)]
struct ErrorBody {
    /// Everything is in here.
    error: ErrorObject,
}

/// Google's error object.
#[derive(Deserialize)]
struct ErrorObject {
    /// The gRPC canonical status (`NOT_FOUND`, ...).
    status: Option<String>,
    /// Human-readable explanation.
    message: Option<String>,
    /// Typed details: `FcmError` (the code), `BadRequest` (the fields at fault), ...
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl ErrorObject {
    /// The details whose `@type` ends in `kind` (`FcmError`, `google.rpc.BadRequest`, ...).
    fn typed<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a serde_json::Value> {
        self.details
            .iter()
            .filter(move |detail| text(detail, "@type").is_some_and(|typed| typed.ends_with(kind)))
    }

    /// The elements of the list `list` of every detail of `kind` (a `BadRequest`'s
    /// `fieldViolations`, a `QuotaFailure`'s `violations`).
    fn entries<'a>(
        &'a self,
        kind: &'a str,
        list: &'a str,
    ) -> impl Iterator<Item = &'a serde_json::Value> {
        self.typed(kind).flat_map(move |detail| {
            detail
                .get(list)
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
        })
    }
}

/// The string `field` of a JSON object, if it has one.
fn text<'a>(object: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    object.get(field).and_then(serde_json::Value::as_str)
}

/// The answer's header fields [`judge`] reads: `Retry-After` alone.
pub const ANSWER_FIELDS: AnswerFields = AnswerFields::Only(&[RETRY_AFTER]);

/// What FCM's answer (`status`, `headers`, `body`), received at `now`, means for the push.
/// `quota_pause_default` is the project pause after `QUOTA_EXCEEDED` (the config's
/// `quota_backoff_default_seconds`). Never panics; a malformed or empty body becomes
/// `Unknown("HTTP <status>")` and the status decides.
pub fn judge(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: UnixMillis,
    quota_pause_default: Duration,
) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Final(Outcome::Delivered);
    }
    let error = error_object(body);
    let (code, names_token) = read_error_object(status, error.as_ref());
    let quota = QuotaScope::of(error.as_ref());
    let after = retry_after::from_headers(headers, now);
    verdict(
        status,
        &code,
        names_token,
        quota,
        after,
        now,
        quota_pause_default,
    )
}

/// Whose limit a `QUOTA_EXCEEDED` says was reached. FCM gives one code for the project's rate,
/// one device's (240 messages a minute, 5,000 an hour on Android) and a topic's, and names
/// which in a `google.rpc.QuotaFailure` detail (the `ErrorCode` reference); firebase-admin-go
/// issue 736 and rails/action_push_native pull request 129 read it the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuotaScope {
    /// The project's, or not said: every push of the project waits.
    Project,
    /// One device's: only pushes to it wait; the project's other devices still ring.
    Device,
}

impl QuotaScope {
    /// A violation whose subject or description speaks of a device scopes the quota to that
    /// device; anything else (Google documents no wording) is read as the project's, the
    /// reading that cannot make ringcast hammer an over-quota project.
    fn of(error: Option<&ErrorObject>) -> QuotaScope {
        let names_device = |text: &str| {
            let text = text.to_ascii_lowercase();
            text.contains("device")
        };
        let device = error.is_some_and(|error| {
            error
                .entries("google.rpc.QuotaFailure", "violations")
                .any(|violation| {
                    ["subject", "description"]
                        .iter()
                        .any(|field| text(violation, field).is_some_and(names_device))
                })
        });
        if device {
            QuotaScope::Device
        } else {
            QuotaScope::Project
        }
    }
}

/// The error code of a refusal's body, and whether the error names the registration token.
pub fn read_error(status: u16, body: &[u8]) -> (FcmErrorCode, bool) {
    read_error_object(status, error_object(body).as_ref())
}

/// The `error` object of a refusal's body, if the body is one.
fn error_object(body: &[u8]) -> Option<ErrorObject> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|body| body.error)
}

/// [`read_error`] of a parsed error object.
fn read_error_object(status: u16, error: Option<&ErrorObject>) -> (FcmErrorCode, bool) {
    let fcm_code = error.and_then(|error| {
        error
            .typed("FcmError")
            .find_map(|detail| text(detail, "errorCode"))
    });
    let code = match (fcm_code, error.and_then(|e| e.status.as_deref())) {
        (Some(code), _) => FcmErrorCode::parse(code),
        (None, Some(grpc)) => from_grpc_status(grpc),
        (None, None) => FcmErrorCode::Unknown(format!("HTTP {status}")),
    };
    let names_token = error.is_some_and(names_the_token);
    (code, names_token)
}

/// The FCM code a bare gRPC status stands for. Only statuses FCM itself documents as the
/// carrier of one code are mapped; `NOT_FOUND` and `PERMISSION_DENIED` stay unknown, since
/// without FCM's detail they come from Google's front end, not from the token's fate.
fn from_grpc_status(grpc: &str) -> FcmErrorCode {
    match grpc {
        "INVALID_ARGUMENT" => FcmErrorCode::InvalidArgument,
        "RESOURCE_EXHAUSTED" => FcmErrorCode::QuotaExceeded,
        "UNAVAILABLE" => FcmErrorCode::Unavailable,
        "INTERNAL" => FcmErrorCode::Internal,
        other => FcmErrorCode::Unknown(other.to_owned()),
    }
}

/// FCM's message for a registration token it does not know as one. Real answers carry it
/// with only the `FcmError` detail, no `BadRequest` field violation (firebase-admin-java
/// issue 1064 shows one), so the message is the only thing that names the token there.
pub const INVALID_TOKEN_MESSAGE: &str =
    "The registration token is not a valid FCM registration token";

/// Whether an `INVALID_ARGUMENT` is about the registration token (the registration is dead)
/// rather than the message: a `BadRequest` field violation on `message.token`, or FCM's own
/// invalid-token message, exactly. Any other `INVALID_ARGUMENT` (a bad payload, a missing
/// target) is a permanent rejection of that push only: a message that merely mentions
/// "registration token" is not enough, or a ringcast payload bug would empty the registry.
fn names_the_token(error: &ErrorObject) -> bool {
    let field_is_token = error
        .entries("google.rpc.BadRequest", "fieldViolations")
        .any(|violation| text(violation, "field") == Some("message.token"));
    let message_is_token = error
        .message
        .as_deref()
        .is_some_and(|message| message.trim_end_matches('.') == INVALID_TOKEN_MESSAGE);
    field_is_token || message_is_token
}

/// The verdict on a refusal with `code`; an unknown code falls back to its HTTP status class.
fn verdict(
    status: u16,
    code: &FcmErrorCode,
    names_token: bool,
    quota: QuotaScope,
    after: Option<Duration>,
    now: UnixMillis,
    quota_pause_default: Duration,
) -> Verdict {
    use FcmErrorCode::*;
    let reason = || code.as_str().to_owned();
    let dead = || {
        Verdict::Final(Outcome::DeadToken {
            verdict_at: now,
            reason: reason(),
        })
    };
    let rejected = || Verdict::Final(Outcome::Rejected { reason: reason() });
    let credential = || Verdict::Final(Outcome::CredentialProblem { reason: reason() });
    let pause = || Verdict::Pause {
        for_: after.unwrap_or_default().max(quota_pause_default),
        reason: retry_label(status, code),
        otherwise: Outcome::Rejected { reason: reason() },
    };
    let retry = || Verdict::Retry {
        after,
        reason: retry_label(status, code),
        otherwise: Outcome::Rejected { reason: reason() },
    };
    match code {
        Unregistered => dead(),
        InvalidArgument if names_token => dead(),
        InvalidArgument => rejected(),
        // The token is another project's: permanent for this push, but not deleted, since a
        // misconfigured project id would otherwise empty the registry of that app.
        SenderIdMismatch => Verdict::Final(Outcome::Misconfigured { reason: reason() }),
        ThirdPartyAuthError => credential(),
        // One over-called device must not silence the project's other devices: only its
        // push waits, at least as long as FCM asks.
        QuotaExceeded if quota == QuotaScope::Device => retry(),
        QuotaExceeded => pause(),
        Unavailable | Internal => retry(),
        UnspecifiedError | Unknown(_) => match status {
            // Google's front end: the access token expired or was revoked.
            401 => Verdict::RefreshCredential {
                otherwise: Outcome::CredentialProblem { reason: reason() },
            },
            403 => credential(),
            // A wrong path or project: a bug (alerted on), never a dead token.
            404 | 405 => rejected(),
            429 => pause(),
            500..=599 => retry(),
            _ => rejected(),
        },
    }
}

#[cfg(test)]
mod tests;
