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
//! - A refused credential is refreshed once per push, then the push is sent again. A
//!   credential bound to the connection (APNs provider tokens) is stamped only once the
//!   stream is leased ([`PushService::bind`]).
//! - A token the service does not know on this host (APNs `BadDeviceToken`) is sent once to
//!   the other environment: accepted there, the report says so
//!   ([`DeliveryReport::moved_to`]) and the registration is corrected; refused there too, the
//!   token is dead (docs/architecture.md, "The registry and its stores").
//! - A pause (FCM's `QUOTA_EXCEEDED`: the project is over quota) holds back every push of the
//!   service, not only the refused one: no request goes out before it ends, and a push whose
//!   deadline comes first expires unsent. The refused push is re-sent after the pause
//!   through the retry policy.
//! - Nothing is sent at or after the push's deadline, and no answer is awaited past it: the
//!   push becomes [`Outcome::Expired`].
//!
//! The rules are decided by a pure state machine ([`machine::Delivery`], tested against a
//! scripted service in `delivery/tests.rs`); [`deliver`] only performs its actions: read the
//! pause, prepare, lease a stream, send, refresh, pause, ask the retry policy, sleep. Time
//! comes from the [`Clock`] it is given.

use crate::clock::Clock;
use crate::providers::pool::{SendError, Stream};
use crate::providers::retry::{GiveUp, RetryPolicy};
use crate::providers::service::PushService;
use crate::push::Push;
use crate::vocab::{Environment, Outcome};
use machine::{Action, Delivery, Event};
use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};

pub mod machine;

#[cfg(test)]
mod tests;

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
/// stream for it, retrying under `policy` (shared by every push of the provider), reading
/// time from `clock`.
pub async fn deliver<S: PushService>(
    service: &S,
    push: &Push,
    first: Option<Stream>,
    policy: &Mutex<RetryPolicy>,
    clock: Clock,
) -> DeliveryReport {
    let mut delivery = Delivery::new(push.environment, push.deadline, service.request_timeout());
    // The push as sent: the registered one, or a copy for the other environment (made once).
    let mut sending: Cow<'_, Push> = Cow::Borrowed(push);
    let lock = || policy.lock().unwrap_or_else(PoisonError::into_inner);
    let mut stream = first;
    let mut request = None;
    let mut credential = 0;
    let mut action = Action::CheckPause;
    // The clock read once after each wait, not at every step: a push's steps between two
    // waits take microseconds, and each reading cost ~90 instructions (8 per push before).
    let mut now = clock.now();
    loop {
        let event = match action {
            Action::Finish => return delivery.into_report(),
            Action::CheckPause => Event::Ready {
                paused_until: service.paused_until(),
            },
            Action::WaitUntil(until) => {
                stream = None;
                clock.sleep_until(until).await;
                now = clock.now();
                Event::Woke
            }
            Action::Prepare { other_environment } => {
                if other_environment && matches!(sending, Cow::Borrowed(_)) {
                    let mut other = push.clone();
                    other.environment = machine::other(push.environment);
                    sending = Cow::Owned(other);
                }
                let prepared = service.prepare(&sending, now).await;
                now = clock.now();
                match prepared {
                    Ok(prepared) => {
                        credential = prepared.credential;
                        request = Some(prepared.request);
                        Event::Prepared(Ok(()))
                    }
                    Err(outcome) => Event::Prepared(Err(outcome)),
                }
            }
            Action::Acquire { until } => match stream {
                Some(_) => Event::Acquired(Ok(())),
                None => {
                    let acquired = service
                        .pool_for(&sending)
                        .acquire(clock.instant_at(until))
                        .await;
                    now = clock.now();
                    match acquired {
                        Ok(leased) => {
                            stream = Some(leased);
                            Event::Acquired(Ok(()))
                        }
                        Err(error) => Event::Acquired(Err(error)),
                    }
                }
            },
            Action::Send { timeout, first } => {
                if first {
                    // The budget is a share of first sends; re-sends and retries are not.
                    lock().record_send(now);
                }
                match (stream.take(), request.take()) {
                    (Some(leased), Some(mut request)) => {
                        if let Some(bound) =
                            service.bind(&mut request, leased.bound_credential(), now)
                        {
                            credential = bound;
                        }
                        let sent = leased.send_within(request, timeout).await;
                        now = clock.now();
                        match sent {
                            Ok(answer) => Event::Answered(service.judge(&answer, now)),
                            Err(SendError::NotSent(reason)) => Event::NotSent(reason),
                            Err(SendError::Lost(reason)) => Event::Lost(reason),
                            Err(SendError::TimedOut) => Event::TimedOut,
                        }
                    }
                    // The machine sends only after a request was prepared and a stream
                    // leased; were that broken, nothing went out, so saying so is safe.
                    _ => Event::NotSent("no_stream"),
                }
            }
            Action::Refresh => {
                let refreshed = service.refresh_credential(credential, now).await;
                now = clock.now();
                match refreshed {
                    Ok(()) => Event::Refreshed(true),
                    Err(error) => {
                        tracing::error!(provider = service.name(), %error,
                            "credential refresh failed");
                        Event::Refreshed(false)
                    }
                }
            }
            Action::Pause { until } => {
                service.pause(until);
                Event::Paused
            }
            Action::Decide { retry, at, after } => {
                Event::Decided(lock().decide(retry, at, push.deadline, after))
            }
        };
        action = delivery.next(event, now);
    }
}
