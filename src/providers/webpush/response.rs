//! What a Web Push service's answer means (RFC 8030 §5, RFC 8292 §4). Push services answer
//! with a status and, at best, a free-text body, so the status is the reason: each one is
//! mirrored here with an `Other(u16)` catch-all, and judged into a verdict ([`judge`]).

use crate::providers::pool::AnswerFields;
use crate::providers::retry_after;
use crate::providers::service::Verdict;
use crate::vocab::{Outcome, UnixMillis};
use http::HeaderMap;
use http::header::RETRY_AFTER;

/// A push service's answer, by status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebPushStatus {
    /// 201 Created (some services say 200 or 202): the message is queued for the browser.
    Created,
    /// 400: malformed request (headers, encryption): a bug on our side, never retried.
    BadRequest,
    /// 401/403: the VAPID JWT was refused, or the subscription was made for another
    /// application server key. Retrying with the same key cannot help.
    VapidRefused(u16),
    /// 404: the subscription does not exist (expired or never valid): delete it.
    NotFound,
    /// 410: the subscription was removed (the user unsubscribed): delete it.
    Gone,
    /// 413: the body is too large (over 4096 bytes).
    TooLarge,
    /// 429: too many requests; honour `Retry-After`. Also 406, which Microsoft Edge's
    /// endpoints (Web Push over WNS, `*.notify.windows.com`) answer for WNS' "throttle limit
    /// exceeded", as senders' trackers report (web-push-php#335, microsoft-ui-xaml#8091).
    TooManyRequests,
    /// 5xx: the service is in trouble; retry with backoff.
    ServerError(u16),
    /// Anything else.
    Other(u16),
}

impl WebPushStatus {
    /// The status's meaning.
    pub fn of(status: u16) -> WebPushStatus {
        match status {
            200..=202 => WebPushStatus::Created,
            400 => WebPushStatus::BadRequest,
            401 | 403 => WebPushStatus::VapidRefused(status),
            404 => WebPushStatus::NotFound,
            410 => WebPushStatus::Gone,
            413 => WebPushStatus::TooLarge,
            406 | 429 => WebPushStatus::TooManyRequests,
            500..=599 => WebPushStatus::ServerError(status),
            _ => WebPushStatus::Other(status),
        }
    }
}

/// The answer's header fields [`judge`] reads: `Retry-After` alone.
pub const ANSWER_FIELDS: AnswerFields = AnswerFields::Only(&[RETRY_AFTER]);

/// The verdict on an answer (`status`, `headers`, `body`) received at `now`. Push services
/// say what they mean in the status (and `Retry-After`); the body, free text at best, is not
/// read.
pub fn judge(status: u16, headers: &HeaderMap, _body: &[u8], now: UnixMillis) -> Verdict {
    let after = retry_after::from_headers(headers, now);
    let rejected = |reason: &str| Outcome::Rejected {
        reason: reason.to_owned(),
    };
    match WebPushStatus::of(status) {
        WebPushStatus::Created => Verdict::Final(Outcome::Delivered),
        WebPushStatus::NotFound | WebPushStatus::Gone => Verdict::Final(Outcome::DeadToken {
            verdict_at: now,
            reason: status.to_string(),
        }),
        WebPushStatus::VapidRefused(status) => Verdict::Final(Outcome::CredentialProblem {
            reason: format!("vapid_refused_{status}"),
        }),
        WebPushStatus::TooLarge => Verdict::Final(rejected("payload_too_large")),
        WebPushStatus::BadRequest => Verdict::Final(rejected("bad_request")),
        WebPushStatus::TooManyRequests => Verdict::Retry {
            after,
            reason: "too_many_requests",
            otherwise: rejected("too_many_requests"),
        },
        WebPushStatus::ServerError(status) => Verdict::Retry {
            after,
            reason: "status_5xx",
            otherwise: rejected(&format!("status_{status}")),
        },
        WebPushStatus::Other(status) => Verdict::Final(rejected(&format!("status_{status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The verdict on `status` with an optional `Retry-After`, at `now`.
    fn verdict(status: u16, retry_after: Option<&str>, now: UnixMillis) -> Verdict {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
        }
        judge(status, &headers, b"", now)
    }

    #[test]
    fn created_is_delivered() {
        assert_eq!(verdict(201, None, 5), Verdict::Final(Outcome::Delivered));
    }

    #[test]
    fn gone_subscriptions_are_dead_tokens_as_of_the_answer() {
        for status in [404, 410] {
            assert_eq!(
                verdict(status, None, 77),
                Verdict::Final(Outcome::DeadToken {
                    verdict_at: 77,
                    reason: status.to_string()
                })
            );
        }
    }

    #[test]
    fn throttling_and_server_errors_retry_honouring_retry_after() {
        // 406: Edge's WNS-backed endpoints saying "throttled".
        for status in [429, 406] {
            match verdict(status, Some("7"), 0) {
                Verdict::Retry { after, reason, .. } => {
                    assert_eq!(after, Some(Duration::from_secs(7)));
                    assert_eq!(reason, "too_many_requests");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        assert!(matches!(
            verdict(503, None, 0),
            Verdict::Retry {
                after: None,
                reason: "status_5xx",
                ..
            }
        ));
    }

    #[test]
    fn refusals_are_final() {
        assert!(matches!(
            verdict(413, None, 0),
            Verdict::Final(Outcome::Rejected { reason }) if reason == "payload_too_large"
        ));
        assert!(matches!(
            verdict(403, None, 0),
            Verdict::Final(Outcome::CredentialProblem { .. })
        ));
        assert!(matches!(
            verdict(400, None, 0),
            Verdict::Final(Outcome::Rejected { .. })
        ));
        assert!(matches!(
            verdict(302, None, 0),
            Verdict::Final(Outcome::Rejected { .. })
        ));
    }
}
