//! One push's way to its outcome, the same for every push service: prepare the request, get
//! a stream, send, judge the answer, and try again only where it is worth it.
//!
//! - A request the service never processed (stream refused, above a GOAWAY's last stream id)
//!   is re-sent at once on another connection: no duplicate is possible, so it is not a
//!   retry and takes nothing from the budget (bounded, so a flapping service cannot loop).
//! - A request whose answer was lost (connection reset, timeout) or a transient answer (5xx,
//!   429) goes through the shared [`RetryPolicy`]: backoff with full jitter, never past the
//!   deadline, within the retry budget. A re-send after a lost answer may deliver twice, so
//!   it is counted ([`DeliveryReport::resent_after_loss`]).
//! - A refused credential is refreshed once per push, then the push is sent again.
//! - A token the service does not know on this host (APNs `BadDeviceToken`) is sent once to
//!   the other environment: accepted there, the report says so
//!   ([`DeliveryReport::moved_to`]) and the registration is corrected; refused there too, the
//!   token is dead (DESIGN.md, "Registry").
//! - A pause (FCM's `QUOTA_EXCEEDED`: the project is over quota) holds back every push of the
//!   service, not only the refused one: no request goes out before it ends, and a push whose
//!   deadline comes first expires unsent. The refused push is re-sent after the pause
//!   through the retry policy.
//! - Nothing is sent at or after the push's deadline, and no answer is awaited past it: the
//!   push becomes [`Outcome::Expired`].

use crate::clock::now_millis;
use crate::providers::pool::{AcquireError, SendError, Stream};
use crate::providers::retry::{GiveUp, RetryDecision, RetryPolicy};
use crate::providers::service::{PushService, Verdict};
use crate::push::{Outcome, Push};
use crate::registry::Environment;
use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How often one push may be re-sent because the service never processed it.
const MAX_UNPROCESSED_RESENDS: u32 = 5;

/// What happened to one push, for the caller's outcome and the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The push's one outcome.
    pub outcome: Outcome,
    /// Requests handed to a connection (including refused ones and lost answers).
    pub sends: u32,
    /// Retries scheduled by the retry policy, with their reasons (metric labels).
    pub retries: Vec<&'static str>,
    /// Re-sends of requests the service never processed (GOAWAY, refused stream).
    pub resent_unprocessed: u32,
    /// Re-sends after a lost answer: the device may get this push twice.
    pub resent_after_loss: u32,
    /// Why the retry policy gave up, if it did.
    pub gave_up: Option<GiveUp>,
    /// The environment the push was delivered in when it is not the registered one: the
    /// registered environment refused the token and the other took it, so the registration
    /// must move there.
    pub moved_to: Option<Environment>,
}

/// Delivers `push` through `service`, starting on `first` if the dispatcher already holds a
/// stream for it, retrying under `policy` (shared by every push of the provider).
pub async fn deliver<S: PushService>(
    service: &S,
    push: &Push,
    first: Option<Stream>,
    policy: &Mutex<RetryPolicy>,
) -> DeliveryReport {
    let mut report = DeliveryReport {
        outcome: Outcome::Expired,
        sends: 0,
        retries: Vec::new(),
        resent_unprocessed: 0,
        resent_after_loss: 0,
        gave_up: None,
        moved_to: None,
    };
    // The push as sent: the registered one, or a copy for the other environment.
    let mut push: Cow<'_, Push> = Cow::Borrowed(push);
    let lock = || policy.lock().unwrap_or_else(PoisonError::into_inner);
    let mut stream = first;
    let mut refreshed = false;
    let mut retry: u32 = 0;
    let mut lost = false;
    let mut counted = false;
    loop {
        let now = now_millis();
        if push.is_expired(now) {
            report.outcome = Outcome::Expired;
            return report;
        }
        if let Some(until) = service.paused_until().filter(|until| *until > now) {
            if until >= push.deadline {
                report.outcome = Outcome::Expired;
                return report;
            }
            // Give the stream back: nothing may be sent meanwhile, and the lease would only
            // keep other pushes from queueing for the pool.
            stream = None;
            tokio::time::sleep(Duration::from_millis(until - now)).await;
            continue;
        }
        let prepared = match service.prepare(&push, now).await {
            Ok(prepared) => prepared,
            Err(outcome) => {
                report.outcome = outcome;
                return report;
            }
        };
        let until = Instant::now() + Duration::from_millis(push.deadline.saturating_sub(now));
        let leased = match stream.take() {
            Some(stream) => stream,
            None => match service.pool_for(&push).acquire(until).await {
                Ok(stream) => stream,
                Err(AcquireError::NoStream) => {
                    report.outcome = Outcome::Expired;
                    return report;
                }
                Err(AcquireError::Closed) => {
                    report.outcome = Outcome::Rejected {
                        reason: "shutting_down".into(),
                    };
                    return report;
                }
            },
        };
        if push.is_expired(now_millis()) {
            report.outcome = Outcome::Expired;
            return report;
        }
        if !counted {
            // The budget is a share of first sends; re-sends and retries are not counted.
            lock().record_send(now);
            counted = true;
        } else if lost {
            report.resent_after_loss += 1;
        }
        report.sends += 1;
        lost = false;
        // An answer after the deadline is worthless (the phone stopped ringing): wait for
        // it no longer than the deadline, nor than the request timeout.
        let to_deadline = Duration::from_millis(push.deadline.saturating_sub(now_millis()));
        let limit = service.request_timeout().min(to_deadline);
        let sent = tokio::time::timeout(limit, leased.send(prepared.request)).await;
        let answered_at = now_millis();
        let (after, reason, otherwise) = match sent {
            Ok(Ok(answer)) => match service.judge(&answer, answered_at) {
                Verdict::Final(outcome) => {
                    if outcome == Outcome::Delivered && matches!(push, Cow::Owned(_)) {
                        report.moved_to = Some(push.environment);
                    }
                    report.outcome = outcome;
                    return report;
                }
                Verdict::OtherEnvironment { otherwise } => {
                    if matches!(push, Cow::Owned(_)) {
                        // Both environments refused the token: it is dead.
                        report.outcome = otherwise;
                        return report;
                    }
                    let mut other = push.clone().into_owned();
                    other.environment = match other.environment {
                        Environment::Production => Environment::Sandbox,
                        Environment::Sandbox => Environment::Production,
                    };
                    push = Cow::Owned(other);
                    continue;
                }
                Verdict::RefreshCredential { otherwise } => {
                    if refreshed {
                        report.outcome = otherwise;
                        return report;
                    }
                    refreshed = true;
                    if let Err(error) = service
                        .refresh_credential(prepared.credential, answered_at)
                        .await
                    {
                        tracing::error!(provider = service.name(), %error,
                            "credential refresh failed");
                        report.outcome = otherwise;
                        return report;
                    }
                    continue;
                }
                Verdict::Retry {
                    after,
                    reason,
                    otherwise,
                } => (after, reason, otherwise),
                Verdict::Pause {
                    for_,
                    reason,
                    otherwise,
                } => {
                    let for_ms = u64::try_from(for_.as_millis()).unwrap_or(u64::MAX);
                    service.pause(answered_at.saturating_add(for_ms));
                    (Some(for_), reason, otherwise)
                }
            },
            Ok(Err(SendError::NotSent(reason))) => {
                report.resent_unprocessed += 1;
                if report.resent_unprocessed <= MAX_UNPROCESSED_RESENDS {
                    continue;
                }
                let otherwise = Outcome::Rejected {
                    reason: reason.into(),
                };
                (None, reason, otherwise)
            }
            Ok(Err(SendError::Lost(reason))) => {
                lost = true;
                let otherwise = Outcome::Rejected {
                    reason: reason.into(),
                };
                (None, reason, otherwise)
            }
            Err(_elapsed) if push.is_expired(now_millis()) => {
                report.outcome = Outcome::Expired;
                return report;
            }
            Err(_elapsed) => {
                // Dropping the send resets the stream: the service may still have delivered.
                lost = true;
                let otherwise = Outcome::Rejected {
                    reason: "timeout".into(),
                };
                (None, "timeout", otherwise)
            }
        };
        retry += 1;
        let decision = lock().decide(retry, answered_at, push.deadline, after);
        match decision {
            RetryDecision::RetryAt { delay, .. } => {
                report.retries.push(reason);
                tokio::time::sleep(delay).await;
            }
            RetryDecision::GiveUp(give_up) => {
                report.gave_up = Some(give_up);
                report.outcome = match (give_up, otherwise) {
                    (GiveUp::WouldPassDeadline, _) => Outcome::Expired,
                    (_, Outcome::Rejected { reason }) => Outcome::Rejected {
                        reason: format!("{}: {reason}", give_up.label()),
                    },
                    (_, otherwise) => otherwise,
                };
                return report;
            }
        }
    }
}
