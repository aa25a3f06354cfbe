//! Every APNs answer → an [`ApnsReason`] → an [`Action`] → finally one [`Outcome`].
//!
//! Every reason of docs/protocols.md's table is mirrored, plus `Unknown(String)` so a reason Apple
//! adds tomorrow (or a body that is not JSON at all) is never lost: it keeps the status, and
//! the status class decides the action.

use crate::push::Outcome;
use crate::registry::UnixMillis;
use serde::Deserialize;
use std::time::Duration;

/// Generates [`ApnsReason`] with its parsing and naming from one list, so the enum, the
/// strings and the tests cannot drift apart.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A reason APNs gives for refusing a push (docs/protocols.md, "APNs").
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum ApnsReason {
            $($(#[$doc])* $name,)*
            /// A reason not in Apple's documented list, or a body without one (then the text
            /// names the status). Never lost: it is logged and counted as is.
            Unknown(String),
        }

        impl ApnsReason {
            /// Every documented reason (for tests and metric pre-registration).
            pub const DOCUMENTED: &'static [ApnsReason] = &[$(ApnsReason::$name,)*];

            /// The reason named by `text` (exact, as Apple spells it).
            pub fn parse(text: &str) -> ApnsReason {
                match text {
                    $(stringify!($name) => ApnsReason::$name,)*
                    other => ApnsReason::Unknown(other.to_owned()),
                }
            }

            /// The reason as Apple spells it (the metric label).
            pub fn as_str(&self) -> &str {
                match self {
                    $(ApnsReason::$name => stringify!($name),)*
                    ApnsReason::Unknown(text) => text,
                }
            }
        }
    };
}

reasons! {
    /// 400: the collapse id is over 64 bytes.
    BadCollapseId,
    /// 400: the token is not valid for this host: malformed, dead, or of the other
    /// environment (try that once before judging it dead).
    BadDeviceToken,
    /// 400: `apns-expiration` is malformed.
    BadExpirationDate,
    /// 400: `apns-id` is not a canonical UUID.
    BadMessageId,
    /// 400: `apns-priority` is not 1, 5 or 10.
    BadPriority,
    /// 400: `apns-topic` is invalid: a configuration error.
    BadTopic,
    /// 400: the token does not take this topic: a VoIP token sent an alert (or the reverse),
    /// or a wrong bundle id. The sender's mistake, never a reason to delete.
    DeviceTokenNotForTopic,
    /// 400: a header was repeated.
    DuplicateHeaders,
    /// 400: the connection sat idle too long.
    IdleTimeout,
    /// 400: `apns-push-type` is invalid.
    InvalidPushType,
    /// 400: no device token in the path.
    MissingDeviceToken,
    /// 400: no `apns-topic` where one is needed.
    MissingTopic,
    /// 400: the body is empty.
    PayloadEmpty,
    /// 400: pushing to this topic is not allowed: a configuration error.
    TopicDisallowed,
    /// 403: the client certificate is invalid.
    BadCertificate,
    /// 403: the certificate is for the other environment.
    BadCertificateEnvironment,
    /// 403: the provider JWT is older than an hour: refresh it once.
    ExpiredProviderToken,
    /// 403: the action is not allowed.
    Forbidden,
    /// 403: the provider JWT does not verify (wrong key, team or key id).
    InvalidProviderToken,
    /// 403: no provider token and no certificate.
    MissingProviderToken,
    /// 404: the path is wrong.
    BadPath,
    /// 405: only POST is allowed.
    MethodNotAllowed,
    /// 410: the token expired.
    ExpiredToken,
    /// 410: the app was uninstalled or the token is no longer active.
    Unregistered,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 429: the provider token was replaced too often (more often than every 20 minutes).
    TooManyProviderTokenUpdates,
    /// 429: too many pushes to the same device.
    TooManyRequests,
    /// 500: Apple had a failure.
    InternalServerError,
    /// 503: Apple is unavailable.
    ServiceUnavailable,
    /// 503: the APNs server is shutting down (this connection: use another).
    Shutdown,
}

pub use crate::providers::action::Action;

/// One parsed APNs answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApnsAnswer {
    /// The HTTP status, kept so an unknown reason still says what class it was.
    pub status: u16,
    /// Apple's reason; `None` only for 200.
    pub reason: Option<ApnsReason>,
    /// What to do about it.
    pub action: Action,
}

/// The error body: `{"reason": "...", "timestamp": <ms>}`.
#[derive(Deserialize)]
struct ErrorBody {
    /// The reason.
    reason: Option<String>,
    /// For 410: when Apple learnt the token was invalid, in milliseconds since the epoch.
    timestamp: Option<u64>,
}

/// Parses an answer: its status, body and `Retry-After` header, received at `now`. Never
/// panics; a malformed or empty body becomes `Unknown("HTTP <status>")` and the status
/// decides the action.
pub fn parse(status: u16, body: &[u8], retry_after: Option<&str>, now: UnixMillis) -> ApnsAnswer {
    if status == 200 {
        return ApnsAnswer {
            status,
            reason: None,
            action: Action::Delivered,
        };
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let timestamp = parsed.as_ref().and_then(|body| body.timestamp);
    let reason = match parsed.and_then(|body| body.reason) {
        Some(text) if !text.is_empty() => ApnsReason::parse(&text),
        _ => ApnsReason::Unknown(format!("HTTP {status}")),
    };
    let after = retry_after.and_then(parse_retry_after);
    let action = action(status, &reason, timestamp, after, now);
    ApnsAnswer {
        status,
        reason: Some(reason),
        action,
    }
}

/// `Retry-After` in seconds. The HTTP-date form is not used by APNs and is ignored (the
/// backoff still applies).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The action for a reason; an unknown reason falls back to its status class.
fn action(
    status: u16,
    reason: &ApnsReason,
    timestamp: Option<u64>,
    after: Option<Duration>,
    now: UnixMillis,
) -> Action {
    use ApnsReason::*;
    match reason {
        // A token belongs to the environment of the build that made it; the other host
        // answers BadDeviceToken exactly as for a dead one (docs/protocols.md, "APNs").
        BadDeviceToken => Action::TryOtherEnvironment { verdict_at_ms: now },
        // These blame the sender's topic or bundle id, not the device: a configuration
        // mistake must never wipe an app's registrations (docs/architecture.md, "The registry and its stores").
        DeviceTokenNotForTopic | BadTopic | TopicDisallowed => Action::ConfigAlert,
        ExpiredToken | Unregistered => Action::DeleteRegistration {
            verdict_at_ms: timestamp.unwrap_or(now),
        },
        // IdleTimeout is listed under 400 but says nothing about the push: the connection
        // sat idle. Another connection will take it, so it is retried (bounded by the retry
        // policy), unlike the other 400s.
        IdleTimeout => Action::Retry { after },
        BadCollapseId | BadExpirationDate | BadMessageId | BadPriority | DuplicateHeaders
        | InvalidPushType | MissingDeviceToken | MissingTopic | PayloadEmpty | PayloadTooLarge => {
            Action::Reject
        }
        ExpiredProviderToken => Action::RefreshCredentialOnce,
        BadCertificate
        | BadCertificateEnvironment
        | Forbidden
        | InvalidProviderToken
        | MissingProviderToken => Action::CredentialAlert,
        BadPath | MethodNotAllowed => Action::BugAlert,
        TooManyProviderTokenUpdates
        | TooManyRequests
        | InternalServerError
        | ServiceUnavailable
        | Shutdown => Action::Retry { after },
        Unknown(_) => match status {
            410 => Action::DeleteRegistration {
                verdict_at_ms: timestamp.unwrap_or(now),
            },
            403 | 401 => Action::CredentialAlert,
            404 | 405 => Action::BugAlert,
            429 | 500..=599 => Action::Retry { after },
            _ => Action::Reject,
        },
    }
}

impl ApnsAnswer {
    /// The push's outcome when this answer is final: delivered, or no retry is left (a
    /// `Retry` whose retries ran out is `Rejected`, a `RefreshCredentialOnce` that was already
    /// spent is a `CredentialProblem`, a `TryOtherEnvironment` whose other environment refused
    /// the token too is a `DeadToken`).
    pub fn final_outcome(&self) -> Outcome {
        let reason = || {
            self.reason.as_ref().map_or_else(
                || format!("HTTP {}", self.status),
                |r| r.as_str().to_owned(),
            )
        };
        match self.action {
            Action::Delivered => Outcome::Delivered,
            Action::DeleteRegistration { verdict_at_ms }
            | Action::TryOtherEnvironment { verdict_at_ms } => Outcome::DeadToken {
                verdict_at: verdict_at_ms,
                reason: reason(),
            },
            Action::ConfigAlert => Outcome::Misconfigured { reason: reason() },
            Action::RefreshCredentialOnce | Action::CredentialAlert => {
                Outcome::CredentialProblem { reason: reason() }
            }
            Action::Retry { .. } | Action::Pause { .. } | Action::Reject | Action::BugAlert => {
                Outcome::Rejected { reason: reason() }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_800_000_000_000;

    fn answer(status: u16, reason: &str) -> ApnsAnswer {
        let body = format!(r#"{{"reason":"{reason}"}}"#);
        parse(status, body.as_bytes(), None, NOW)
    }

    #[test]
    fn every_documented_reason_round_trips_and_none_is_unknown() {
        assert_eq!(ApnsReason::DOCUMENTED.len(), 30);
        for reason in ApnsReason::DOCUMENTED {
            assert_eq!(&ApnsReason::parse(reason.as_str()), reason);
        }
        assert_eq!(
            ApnsReason::parse("NewReason2027"),
            ApnsReason::Unknown("NewReason2027".into())
        );
    }

    #[test]
    fn a_200_is_delivered() {
        let answer = parse(200, b"", None, NOW);
        assert_eq!(answer.action, Action::Delivered);
        assert_eq!(answer.final_outcome(), Outcome::Delivered);
    }

    #[test]
    fn permanent_400s_are_rejected() {
        for reason in [
            "BadCollapseId",
            "BadExpirationDate",
            "BadMessageId",
            "BadPriority",
            "DuplicateHeaders",
            "InvalidPushType",
            "MissingDeviceToken",
            "MissingTopic",
            "PayloadEmpty",
        ] {
            let answer = answer(400, reason);
            assert_eq!(answer.action, Action::Reject, "{reason}");
            assert_eq!(
                answer.final_outcome(),
                Outcome::Rejected {
                    reason: reason.into()
                }
            );
        }
        assert_eq!(answer(413, "PayloadTooLarge").action, Action::Reject);
    }

    #[test]
    fn an_idle_timeout_is_retried_on_another_connection() {
        assert_eq!(
            answer(400, "IdleTimeout").action,
            Action::Retry { after: None }
        );
    }

    #[test]
    fn topic_and_bundle_mistakes_are_config_alerts_that_never_delete() {
        for reason in ["DeviceTokenNotForTopic", "BadTopic", "TopicDisallowed"] {
            let answer = answer(400, reason);
            assert_eq!(answer.action, Action::ConfigAlert, "{reason}");
            assert_eq!(
                answer.final_outcome(),
                Outcome::Misconfigured {
                    reason: reason.into()
                }
            );
        }
    }

    #[test]
    fn a_bad_device_token_tries_the_other_environment_before_it_is_dead() {
        let answer = answer(400, "BadDeviceToken");
        assert_eq!(
            answer.action,
            Action::TryOtherEnvironment { verdict_at_ms: NOW }
        );
        // What it ends as when the other environment refused it too.
        assert_eq!(
            answer.final_outcome(),
            Outcome::DeadToken {
                verdict_at: NOW,
                reason: "BadDeviceToken".into()
            }
        );
    }

    #[test]
    fn dead_tokens_delete_the_registration_as_of_the_verdict() {
        for reason in ["Unregistered", "ExpiredToken"] {
            let body = format!(r#"{{"reason":"{reason}","timestamp":1700000000123}}"#);
            let answer = parse(410, body.as_bytes(), None, NOW);
            assert_eq!(
                answer.action,
                Action::DeleteRegistration {
                    verdict_at_ms: 1_700_000_000_123
                }
            );
        }
        // A 410 without a timestamp takes the answer's time.
        assert_eq!(
            answer(410, "Unregistered").action,
            Action::DeleteRegistration { verdict_at_ms: NOW }
        );
    }

    #[test]
    fn credential_problems_refresh_once_or_alert() {
        let expired = answer(403, "ExpiredProviderToken");
        assert_eq!(expired.action, Action::RefreshCredentialOnce);
        assert_eq!(
            expired.final_outcome(),
            Outcome::CredentialProblem {
                reason: "ExpiredProviderToken".into()
            }
        );
        for reason in [
            "BadCertificate",
            "BadCertificateEnvironment",
            "Forbidden",
            "InvalidProviderToken",
            "MissingProviderToken",
        ] {
            assert_eq!(
                answer(403, reason).action,
                Action::CredentialAlert,
                "{reason}"
            );
        }
    }

    #[test]
    fn bad_paths_and_methods_are_bugs() {
        assert_eq!(answer(404, "BadPath").action, Action::BugAlert);
        assert_eq!(answer(405, "MethodNotAllowed").action, Action::BugAlert);
        assert_eq!(parse(404, b"", None, NOW).action, Action::BugAlert);
    }

    #[test]
    fn throttling_and_server_errors_back_off_honouring_retry_after() {
        for (status, reason) in [
            (429, "TooManyProviderTokenUpdates"),
            (429, "TooManyRequests"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (503, "Shutdown"),
        ] {
            let body = format!(r#"{{"reason":"{reason}"}}"#);
            let answer = parse(status, body.as_bytes(), Some(" 30 "), NOW);
            assert_eq!(
                answer.action,
                Action::Retry {
                    after: Some(Duration::from_secs(30))
                },
                "{reason}"
            );
            // Retries that ran out end as a rejection that keeps Apple's reason.
            assert_eq!(
                answer.final_outcome(),
                Outcome::Rejected {
                    reason: reason.into()
                }
            );
        }
        // An HTTP-date Retry-After is ignored rather than misread.
        let answer = parse(
            503,
            br#"{"reason":"Shutdown"}"#,
            Some("Wed, 21 Oct 2026 07:28:00 GMT"),
            NOW,
        );
        assert_eq!(answer.action, Action::Retry { after: None });
    }

    #[test]
    fn malformed_or_empty_bodies_keep_the_status_and_never_panic() {
        for body in [
            &b""[..],
            b"not json",
            b"{",
            b"{\"reason\": 7}",
            b"{\"reason\":\"\"}",
            &[0xff, 0xfe],
        ] {
            let answer = parse(503, body, None, NOW);
            assert_eq!(answer.status, 503);
            assert_eq!(answer.reason, Some(ApnsReason::Unknown("HTTP 503".into())));
            assert_eq!(answer.action, Action::Retry { after: None });
        }
        let gone = parse(410, b"", None, NOW);
        assert_eq!(
            gone.action,
            Action::DeleteRegistration { verdict_at_ms: NOW }
        );
        assert_eq!(
            parse(403, b"<html>", None, NOW).action,
            Action::CredentialAlert
        );
        assert_eq!(
            parse(400, b"", None, NOW).final_outcome(),
            Outcome::Rejected {
                reason: "HTTP 400".into()
            }
        );
    }

    #[test]
    fn an_unknown_reason_is_kept_and_acted_on_by_status() {
        let answer = answer(500, "BrandNewFailure");
        assert_eq!(
            answer.reason,
            Some(ApnsReason::Unknown("BrandNewFailure".into()))
        );
        assert_eq!(answer.action, Action::Retry { after: None });
        assert_eq!(
            answer.final_outcome(),
            Outcome::Rejected {
                reason: "BrandNewFailure".into()
            }
        );
        assert_eq!(self::answer(418, "Teapot").action, Action::Reject);
    }
}
