//! Every APNs answer `(status, headers, body)` → an [`ApnsReason`] → the delivery loop's
//! [`Verdict`] ([`judge`]): pure, so every documented reason is tested offline.
//!
//! Every reason of docs/protocols.md's table is mirrored, plus `Unknown(String)` so a reason Apple
//! adds tomorrow (or a body that is not JSON at all) is never lost: it keeps the status, and
//! the status class decides the action.

use crate::providers::pool::AnswerFields;
use crate::providers::retry_after;
use crate::providers::service::Verdict;
use crate::vocab::{Outcome, UnixMillis};
use http::HeaderMap;
use http::header::RETRY_AFTER;
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
    /// 403: the provider JWT's key is restricted to the other environment (Apple lets a key
    /// be limited to sandbox or production): a credential that cannot reach this host.
    BadEnvironmentKeyInToken,
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

/// The error body: `{"reason": "...", "timestamp": <ms>}`.
#[derive(Deserialize)]
struct ErrorBody {
    /// The reason.
    reason: Option<String>,
    /// For 410: when Apple learnt the token was invalid, in milliseconds since the epoch.
    timestamp: Option<u64>,
}

/// The answer's header fields [`judge`] reads: `Retry-After` alone. Every answer's `apns-id`
/// (and `apns-unique-id`) goes unread, so the pool drops them.
pub const ANSWER_FIELDS: AnswerFields = AnswerFields::Only(&[RETRY_AFTER]);

/// What APNs' answer (`status`, `headers`, `body`), received at `now`, means for the push.
/// Never panics; a malformed or empty body becomes `Unknown("HTTP <status>")` and the status
/// decides.
pub fn judge(status: u16, headers: &HeaderMap, body: &[u8], now: UnixMillis) -> Verdict {
    if status == 200 {
        return Verdict::Final(Outcome::Delivered);
    }
    let (reason, timestamp) = read_error(status, body);
    let after = retry_after::from_headers(headers, now);
    verdict(status, &reason, timestamp, after, now)
}

/// The reason of a refusal's body, and its `timestamp` (410 only).
pub fn read_error(status: u16, body: &[u8]) -> (ApnsReason, Option<UnixMillis>) {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let timestamp = parsed.as_ref().and_then(|body| body.timestamp);
    let reason = match parsed.and_then(|body| body.reason) {
        Some(text) if !text.is_empty() => ApnsReason::parse(&text),
        _ => ApnsReason::Unknown(format!("HTTP {status}")),
    };
    (reason, timestamp)
}

/// The `retries_total{reason}` label of a retried answer.
fn retry_label(status: u16, reason: &ApnsReason) -> &'static str {
    match reason {
        ApnsReason::TooManyRequests => "too_many_requests",
        ApnsReason::TooManyProviderTokenUpdates => "too_many_provider_token_updates",
        ApnsReason::IdleTimeout => "idle_timeout",
        ApnsReason::Shutdown => "shutdown",
        _ if status == 429 => "too_many_requests",
        _ => "status_5xx",
    }
}

/// The verdict on a refusal for `reason`; an unknown reason falls back to its status class.
fn verdict(
    status: u16,
    reason: &ApnsReason,
    timestamp: Option<UnixMillis>,
    after: Option<Duration>,
    now: UnixMillis,
) -> Verdict {
    use ApnsReason::*;
    let text = || reason.as_str().to_owned();
    let dead = |verdict_at| Outcome::DeadToken {
        verdict_at,
        reason: text(),
    };
    let rejected = || Verdict::Final(Outcome::Rejected { reason: text() });
    let credential = || Verdict::Final(Outcome::CredentialProblem { reason: text() });
    let retry = || Verdict::Retry {
        after,
        reason: retry_label(status, reason),
        otherwise: Outcome::Rejected { reason: text() },
    };
    match reason {
        // A token belongs to the environment of the build that made it; the other host
        // answers BadDeviceToken exactly as for a dead one (docs/protocols.md, "APNs"): dead
        // only when the other environment refuses it too.
        BadDeviceToken => Verdict::OtherEnvironment {
            otherwise: dead(now),
        },
        // These blame the sender's topic or bundle id, not the device: a configuration
        // mistake must never wipe an app's registrations (docs/architecture.md, "The registry
        // and its stores").
        DeviceTokenNotForTopic | BadTopic | TopicDisallowed => {
            Verdict::Final(Outcome::Misconfigured { reason: text() })
        }
        ExpiredToken | Unregistered => Verdict::Final(dead(timestamp.unwrap_or(now))),
        // IdleTimeout is listed under 400 but says nothing about the push: the connection
        // sat idle. Another connection will take it, so it is retried (bounded by the retry
        // policy), unlike the other 400s.
        IdleTimeout => retry(),
        BadCollapseId | BadExpirationDate | BadMessageId | BadPriority | DuplicateHeaders
        | InvalidPushType | MissingDeviceToken | MissingTopic | PayloadEmpty | PayloadTooLarge => {
            rejected()
        }
        ExpiredProviderToken => Verdict::RefreshCredential {
            otherwise: Outcome::CredentialProblem { reason: text() },
        },
        BadCertificate
        | BadCertificateEnvironment
        | BadEnvironmentKeyInToken
        | Forbidden
        | InvalidProviderToken
        | MissingProviderToken => credential(),
        // A ringcast bug or a wrong base URL: alerted on, never retried.
        BadPath | MethodNotAllowed => rejected(),
        TooManyProviderTokenUpdates
        | TooManyRequests
        | InternalServerError
        | ServiceUnavailable
        | Shutdown => retry(),
        Unknown(_) => match status {
            410 => Verdict::Final(dead(timestamp.unwrap_or(now))),
            403 | 401 => credential(),
            429 | 500..=599 => retry(),
            _ => rejected(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_800_000_000_000;

    /// The verdict on `body` with `status` and an optional `Retry-After`.
    fn judged(status: u16, body: &[u8], retry_after: Option<&str>) -> Verdict {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
        }
        judge(status, &headers, body, NOW)
    }

    fn answer(status: u16, reason: &str) -> Verdict {
        let body = format!(r#"{{"reason":"{reason}"}}"#);
        judged(status, body.as_bytes(), None)
    }

    fn rejected(reason: &str) -> Verdict {
        Verdict::Final(Outcome::Rejected {
            reason: reason.into(),
        })
    }

    fn dead(verdict_at: UnixMillis, reason: &str) -> Outcome {
        Outcome::DeadToken {
            verdict_at,
            reason: reason.into(),
        }
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

    #[test]
    fn every_documented_reason_round_trips_and_none_is_unknown() {
        assert_eq!(ApnsReason::DOCUMENTED.len(), 31);
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
        assert_eq!(judged(200, b"", None), Verdict::Final(Outcome::Delivered));
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
            assert_eq!(answer(400, reason), rejected(reason), "{reason}");
        }
        assert_eq!(answer(413, "PayloadTooLarge"), rejected("PayloadTooLarge"));
    }

    #[test]
    fn an_idle_timeout_is_retried_on_another_connection() {
        assert_eq!(
            answer(400, "IdleTimeout"),
            retry(None, "idle_timeout", "IdleTimeout")
        );
    }

    #[test]
    fn topic_and_bundle_mistakes_are_config_alerts_that_never_delete() {
        for reason in ["DeviceTokenNotForTopic", "BadTopic", "TopicDisallowed"] {
            assert_eq!(
                answer(400, reason),
                Verdict::Final(Outcome::Misconfigured {
                    reason: reason.into()
                }),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_bad_device_token_tries_the_other_environment_before_it_is_dead() {
        // What it ends as when the other environment refused it too.
        assert_eq!(
            answer(400, "BadDeviceToken"),
            Verdict::OtherEnvironment {
                otherwise: dead(NOW, "BadDeviceToken")
            }
        );
    }

    #[test]
    fn dead_tokens_delete_the_registration_as_of_the_verdict() {
        for reason in ["Unregistered", "ExpiredToken"] {
            let body = format!(r#"{{"reason":"{reason}","timestamp":1700000000123}}"#);
            assert_eq!(
                judged(410, body.as_bytes(), None),
                Verdict::Final(dead(1_700_000_000_123, reason))
            );
        }
        // A 410 without a timestamp takes the answer's time.
        assert_eq!(
            answer(410, "Unregistered"),
            Verdict::Final(dead(NOW, "Unregistered"))
        );
    }

    #[test]
    fn credential_problems_refresh_once_or_alert() {
        assert_eq!(
            answer(403, "ExpiredProviderToken"),
            Verdict::RefreshCredential {
                otherwise: Outcome::CredentialProblem {
                    reason: "ExpiredProviderToken".into()
                }
            }
        );
        for reason in [
            "BadCertificate",
            "BadCertificateEnvironment",
            "BadEnvironmentKeyInToken",
            "Forbidden",
            "InvalidProviderToken",
            "MissingProviderToken",
        ] {
            assert_eq!(
                answer(403, reason),
                Verdict::Final(Outcome::CredentialProblem {
                    reason: reason.into()
                }),
                "{reason}"
            );
        }
    }

    #[test]
    fn bad_paths_and_methods_are_bugs_never_retried() {
        assert_eq!(answer(404, "BadPath"), rejected("BadPath"));
        assert_eq!(
            answer(405, "MethodNotAllowed"),
            rejected("MethodNotAllowed")
        );
        assert_eq!(judged(404, b"", None), rejected("HTTP 404"));
    }

    #[test]
    fn throttling_and_server_errors_back_off_honouring_retry_after() {
        for (status, reason, label) in [
            (
                429,
                "TooManyProviderTokenUpdates",
                "too_many_provider_token_updates",
            ),
            (429, "TooManyRequests", "too_many_requests"),
            (500, "InternalServerError", "status_5xx"),
            (503, "ServiceUnavailable", "status_5xx"),
            (503, "Shutdown", "shutdown"),
        ] {
            let body = format!(r#"{{"reason":"{reason}"}}"#);
            // Retries that run out end as a rejection that keeps Apple's reason.
            assert_eq!(
                judged(status, body.as_bytes(), Some(" 30 ")),
                retry(Some(30), label, reason),
                "{reason}"
            );
        }
        // An HTTP-date is read relative to the answer's time (NOW is 08:00:00 that day).
        assert_eq!(
            judged(
                503,
                br#"{"reason":"Shutdown"}"#,
                Some("Fri, 15 Jan 2027 08:00:45 GMT")
            ),
            retry(Some(45), "shutdown", "Shutdown")
        );
        // One already past asks for no wait at all.
        assert_eq!(
            judged(
                503,
                br#"{"reason":"Shutdown"}"#,
                Some("Wed, 21 Oct 2026 07:28:00 GMT")
            ),
            retry(Some(0), "shutdown", "Shutdown")
        );
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
            assert_eq!(
                read_error(503, body).0,
                ApnsReason::Unknown("HTTP 503".into())
            );
            assert_eq!(
                judged(503, body, None),
                retry(None, "status_5xx", "HTTP 503")
            );
        }
        assert_eq!(
            judged(410, b"", None),
            Verdict::Final(dead(NOW, "HTTP 410"))
        );
        assert_eq!(
            judged(403, b"<html>", None),
            Verdict::Final(Outcome::CredentialProblem {
                reason: "HTTP 403".into()
            })
        );
        assert_eq!(judged(400, b"", None), rejected("HTTP 400"));
    }

    #[test]
    fn an_unknown_reason_is_kept_and_acted_on_by_status() {
        assert_eq!(
            read_error(500, br#"{"reason":"BrandNewFailure"}"#).0,
            ApnsReason::Unknown("BrandNewFailure".into())
        );
        assert_eq!(
            answer(500, "BrandNewFailure"),
            retry(None, "status_5xx", "BrandNewFailure")
        );
        assert_eq!(answer(418, "Teapot"), rejected("Teapot"));
    }
}
