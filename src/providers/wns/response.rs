//! Every documented WNS answer mapped to what the sender does (docs/protocols.md, "WNS"):
//!
//! | status | meaning | action |
//! |---|---|---|
//! | 200, `X-WNS-Status: received` (or no such field) | accepted | delivered |
//! | 200, `X-WNS-Status: channelthrottled` | dropped: this channel's rate limit | back off (retry) |
//! | 200, `X-WNS-Status: dropped` | dropped: an error, the client refused it, or (uncached) the device is offline | reject, naming `X-WNS-DeviceConnectionStatus` |
//! | 200, any other `X-WNS-Status` | not documented as delivered | reject, naming the value |
//! | 400 | bad request (headers) | reject |
//! | 401 | access token refused or expired | refresh it once, send again |
//! | 403 | token not for this channel's app | credential problem (alert) |
//! | 404, 410 | channel invalid / expired | dead token: delete the registration |
//! | 406 | the app over its throttle limit | pause the app ≥ `Retry-After` (1 s at least), then re-send |
//! | 413 | over 5000 bytes | reject |
//! | 429 | the app over its quota | pause the app ≥ `Retry-After` (1 s at least), then re-send |
//! | 5xx | WNS failure | retry with backoff |
//!
//! A `200` alone is not a delivery: WNS answers `200` for a notification it accepted *or*
//! dropped, and says which in `X-WNS-Status`. A ring is sent `no-cache`, so a ring to a
//! device that is offline is dropped with a `200`. Neither field proves the channel dead (an
//! offline device comes back; `X-WNS-DeviceConnectionStatus`, which every request asks for,
//! says which it was), so a drop is a rejection that names the device's state, never a dead
//! token.
//!
//! The `X-WNS-Error-Description` header, when present, is kept in the reason of a rejection
//! so an operator sees Microsoft's words; dead-token reasons are the bare status (`404`,
//! `410`), which is what the metrics count.

use crate::providers::pool::AnswerFields;
use crate::providers::retry_after;
use crate::providers::service::Verdict;
use crate::vocab::{Outcome, UnixMillis};
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// `X-WNS-Error-Description`: WNS' words on a refusal, put into the outcome's reason.
pub const X_WNS_ERROR_DESCRIPTION: HeaderName = HeaderName::from_static("x-wns-error-description");

/// The shortest pause of the app after a throttle (`406`, `429`) that names no `Retry-After`.
pub const MIN_THROTTLE_PAUSE: Duration = Duration::from_secs(1);

/// `X-WNS-Status`: what WNS did with a notification it answered `200` for.
pub const X_WNS_STATUS: HeaderName = HeaderName::from_static("x-wns-status");

/// `X-WNS-DeviceConnectionStatus` (`connected`, `disconnected`, `tempdisconnected`): the
/// device's state, answered because every request asks for it (`X-WNS-RequestForStatus`).
/// It tells a drop for an offline device from one the client refused.
pub const X_WNS_DEVICE_CONNECTION_STATUS: HeaderName =
    HeaderName::from_static("x-wns-deviceconnectionstatus");

/// The answer's header fields [`judge`] reads.
pub const ANSWER_FIELDS: AnswerFields = AnswerFields::Only(&READ);

/// A static, not a constant: a custom name holds `Bytes`, which a constant cannot lend out.
static READ: [HeaderName; 4] = [
    RETRY_AFTER,
    X_WNS_ERROR_DESCRIPTION,
    X_WNS_STATUS,
    X_WNS_DEVICE_CONNECTION_STATUS,
];

/// What the answer (`status`, `headers`, `body`), received at `now`, means. WNS says
/// everything in the status and its `X-WNS-*` headers; the body is taken, like every
/// provider's judge takes it, and not read.
pub fn judge(status: u16, headers: &HeaderMap, _body: &[u8], now: UnixMillis) -> Verdict {
    let description = headers
        .get(X_WNS_ERROR_DESCRIPTION)
        .and_then(|value| value.to_str().ok())
        .filter(|text| !text.is_empty());
    let reason = |name: &str| match description {
        Some(text) => format!("{status} {name}: {text}"),
        None => format!("{status} {name}"),
    };
    let after = retry_after::from_headers(headers, now);
    match status {
        200 => accepted(headers, after, reason),
        401 => Verdict::RefreshCredential {
            otherwise: Outcome::CredentialProblem {
                reason: reason("Unauthorized"),
            },
        },
        403 => Verdict::Final(Outcome::CredentialProblem {
            reason: reason("Forbidden"),
        }),
        404 | 410 => Verdict::Final(Outcome::DeadToken {
            verdict_at: now,
            reason: status.to_string(),
        }),
        // WNS throttles the app, not a channel (it has answered `Retry-After: 900`): every
        // push of the app waits, so a throttle does not meet one request per ring.
        406 | 429 => Verdict::Pause {
            for_: after.unwrap_or_default().max(MIN_THROTTLE_PAUSE),
            reason: "too_many_requests",
            otherwise: Outcome::Rejected {
                reason: reason("Throttled"),
            },
        },
        500..=599 => Verdict::Retry {
            after,
            reason: "status_5xx",
            otherwise: Outcome::Rejected {
                reason: reason("ServerError"),
            },
        },
        413 => Verdict::Final(Outcome::Rejected {
            reason: reason("RequestEntityTooLarge"),
        }),
        _ => Verdict::Final(Outcome::Rejected {
            reason: reason("Rejected"),
        }),
    }
}

/// What a `200` means, by its `X-WNS-Status` (matched without regard to case). `reason`
/// words a rejection as the other statuses' are; a drop names the device's state when WNS
/// gave it.
fn accepted(
    headers: &HeaderMap,
    after: Option<Duration>,
    reason: impl Fn(&str) -> String,
) -> Verdict {
    let Some(status) = headers.get(X_WNS_STATUS).map(HeaderValue::as_bytes) else {
        return Verdict::Final(Outcome::Delivered);
    };
    if status.eq_ignore_ascii_case(b"received") {
        Verdict::Final(Outcome::Delivered)
    } else if status.eq_ignore_ascii_case(b"channelthrottled") {
        Verdict::Retry {
            after,
            reason: "too_many_requests",
            otherwise: Outcome::Rejected {
                reason: reason("ChannelThrottled"),
            },
        }
    } else if status.eq_ignore_ascii_case(b"dropped") {
        let device = headers
            .get(X_WNS_DEVICE_CONNECTION_STATUS)
            .and_then(|value| value.to_str().ok())
            .filter(|state| !state.is_empty());
        Verdict::Final(Outcome::Rejected {
            reason: match device {
                Some(state) => reason(&format!("Dropped (device {state})")),
                None => reason("Dropped"),
            },
        })
    } else {
        Verdict::Final(Outcome::Rejected {
            reason: reason(&format!(
                "X-WNS-Status {}",
                String::from_utf8_lossy(status).escape_debug()
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_800_000_000_000;

    fn answer(status: u16) -> Verdict {
        judge(status, &HeaderMap::new(), b"", NOW)
    }

    #[test]
    fn every_documented_status_has_its_action() {
        assert_eq!(answer(200), Verdict::Final(Outcome::Delivered));
        assert!(matches!(answer(401), Verdict::RefreshCredential { .. }));
        assert!(matches!(
            answer(403),
            Verdict::Final(Outcome::CredentialProblem { .. })
        ));
        for status in [404, 410] {
            assert_eq!(
                answer(status),
                Verdict::Final(Outcome::DeadToken {
                    verdict_at: NOW,
                    reason: status.to_string()
                })
            );
        }
        for status in [500, 503] {
            assert!(matches!(answer(status), Verdict::Retry { .. }), "{status}");
        }
        for status in [406, 429] {
            assert!(matches!(answer(status), Verdict::Pause { .. }), "{status}");
        }
        for status in [400, 413, 418] {
            assert!(
                matches!(answer(status), Verdict::Final(Outcome::Rejected { .. })),
                "{status}"
            );
        }
    }

    fn answer_200(wns_status: &str) -> Verdict {
        let mut headers = HeaderMap::new();
        headers.insert(X_WNS_STATUS, wns_status.parse().unwrap());
        judge(200, &headers, b"", NOW)
    }

    #[test]
    fn a_200_is_a_delivery_only_when_wns_received_the_notification() {
        assert_eq!(answer_200("received"), Verdict::Final(Outcome::Delivered));
        assert_eq!(answer_200("Received"), Verdict::Final(Outcome::Delivered));
        assert_eq!(
            answer_200("dropped"),
            Verdict::Final(Outcome::Rejected {
                reason: "200 Dropped".into()
            })
        );
        let Verdict::Retry {
            reason, otherwise, ..
        } = answer_200("channelthrottled")
        else {
            panic!("a throttled channel is retried");
        };
        assert_eq!(reason, "too_many_requests");
        assert_eq!(
            otherwise,
            Outcome::Rejected {
                reason: "200 ChannelThrottled".into()
            }
        );
        assert_eq!(
            answer_200("queued"),
            Verdict::Final(Outcome::Rejected {
                reason: "200 X-WNS-Status queued".into()
            })
        );
    }

    #[test]
    fn a_drop_names_the_devices_state_when_wns_gives_it() {
        let mut headers = HeaderMap::new();
        headers.insert(X_WNS_STATUS, "dropped".parse().unwrap());
        headers.insert(
            X_WNS_DEVICE_CONNECTION_STATUS,
            "disconnected".parse().unwrap(),
        );
        assert_eq!(
            judge(200, &headers, b"", NOW),
            Verdict::Final(Outcome::Rejected {
                reason: "200 Dropped (device disconnected)".into()
            })
        );
        let AnswerFields::Only(read) = ANSWER_FIELDS else {
            panic!("WNS keeps only the fields it reads");
        };
        assert!(read.contains(&X_WNS_DEVICE_CONNECTION_STATUS));
    }

    #[test]
    fn a_drop_is_never_a_dead_token() {
        for wns_status in ["dropped", "channelthrottled", "queued", ""] {
            let verdict = answer_200(wns_status);
            assert!(
                !matches!(verdict, Verdict::Final(Outcome::DeadToken { .. })),
                "{wns_status}: {verdict:?}"
            );
        }
    }

    #[test]
    fn the_status_field_is_read_from_the_answer() {
        let AnswerFields::Only(read) = ANSWER_FIELDS else {
            panic!("WNS keeps only the fields it reads");
        };
        assert!(read.contains(&X_WNS_STATUS));
    }

    #[test]
    fn a_throttle_pauses_the_app_for_its_retry_after_or_a_second() {
        let paused_for = |verdict| match verdict {
            Verdict::Pause { for_, reason, .. } => (for_, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            paused_for(answer(406)),
            (MIN_THROTTLE_PAUSE, "too_many_requests")
        );
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "900".parse().unwrap());
        assert_eq!(
            paused_for(judge(406, &headers, b"", NOW)).0,
            Duration::from_secs(900)
        );
    }

    #[test]
    fn retry_after_and_microsofts_description_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        headers.insert("x-wns-error-description", "Throttle limit".parse().unwrap());
        let Verdict::Pause {
            for_, otherwise, ..
        } = judge(429, &headers, b"", NOW)
        else {
            panic!("not a pause");
        };
        assert_eq!(for_, Duration::from_secs(7));
        assert_eq!(
            otherwise,
            Outcome::Rejected {
                reason: "429 Throttled: Throttle limit".into()
            }
        );
    }
}
