//! The delivery loop's decisions, without the network and without a clock: one push's
//! [`Delivery`] moves from state to state on the events the driver reports, each at a time
//! the driver passes in, and answers the one [`Action`] the driver performs next. Every rule
//! of the loop (module docs of `delivery`) is decided here, so each is unit-tested with a
//! scripted service and a fake clock (`tests.rs`).

use crate::providers::delivery::DeliveryReport;
use crate::providers::pool::AcquireError;
use crate::providers::retry::{GiveUp, RetryDecision};
use crate::providers::service::Verdict;
use crate::vocab::{Environment, Outcome, UnixMillis};
use std::time::Duration;

/// How often one push may be re-sent because the service never processed it: such a
/// re-send cannot duplicate the push, but a flapping service must not loop it forever.
pub const MAX_UNPROCESSED_RESENDS: u32 = 5;

/// Where one push stands between two actions of the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// About to try: the deadline and the service's pause are checked next (first attempt,
    /// and again after a wait, a re-send, a refresh or the move to the other environment).
    Ready,
    /// The request is being built with the current credential.
    Preparing,
    /// The request is built; a stream is being leased for it.
    Acquiring,
    /// The request is out; its answer is awaited.
    Sending,
    /// The service refused the credential; it is being refreshed (once per push).
    Refreshing {
        /// The outcome if the refresh fails.
        otherwise: Outcome,
    },
    /// The service asked for a pause of every push; the pause is being set.
    Pausing {
        /// How long nothing may be sent: the re-send's floor too.
        for_: Duration,
        /// The retry's metric label.
        reason: &'static str,
        /// The outcome if the re-send is not allowed.
        otherwise: Outcome,
    },
    /// A transient failure; the shared retry policy is being asked.
    Deciding {
        /// The retry's metric label.
        reason: &'static str,
        /// The outcome if no retry is allowed.
        otherwise: Outcome,
    },
    /// Waiting (a backoff or the service's pause) with no stream held.
    Waiting,
    /// The push has its outcome ([`DeliveryReport::outcome`]).
    Done,
}

/// What the driver reports back, each with the time it happened at.
#[derive(Debug)]
pub enum Event {
    /// The answer to [`Action::CheckPause`]: until when the service holds every push back.
    Ready {
        /// [`PushService::paused_until`](crate::providers::service::PushService::paused_until).
        paused_until: Option<UnixMillis>,
    },
    /// The wait of [`Action::WaitUntil`] is over.
    Woke,
    /// The request was built, or the push's outcome is known without sending.
    Prepared(Result<(), Outcome>),
    /// A stream was leased, or none could be.
    Acquired(Result<(), AcquireError>),
    /// The service answered; the provider judged the answer.
    Answered(Verdict),
    /// The service never processed the request (refused stream, above a GOAWAY).
    NotSent(&'static str),
    /// The request went out and its answer was lost.
    Lost(&'static str),
    /// No answer within [`Action::Send`]'s timeout (its stream was reset: a lost answer).
    TimedOut,
    /// The credential refresh of [`Action::Refresh`] succeeded (`true`) or failed.
    Refreshed(bool),
    /// The pause of [`Action::Pause`] is set.
    Paused,
    /// The retry policy's answer to [`Action::Decide`].
    Decided(RetryDecision),
}

/// What the driver does next; each action but [`Action::Finish`] ends in one [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the service's pause, answer [`Event::Ready`].
    CheckPause,
    /// Give back any stream held, wait until then, answer [`Event::Woke`].
    WaitUntil(UnixMillis),
    /// Build the request, for the other environment than the registered one if
    /// `other_environment` (after APNs `BadDeviceToken`); answer [`Event::Prepared`].
    Prepare {
        /// Whether the push goes to its registration's other environment.
        other_environment: bool,
    },
    /// Lease a stream (or keep the one held) waiting no later than `until`; answer
    /// [`Event::Acquired`].
    Acquire {
        /// The push's deadline.
        until: UnixMillis,
    },
    /// Send the request on the stream, awaiting the answer at most `timeout`; count it in
    /// the retry budget first if `first`. Answer [`Event::Answered`], [`Event::NotSent`],
    /// [`Event::Lost`] or [`Event::TimedOut`].
    Send {
        /// The request timeout, or less when the deadline is nearer.
        timeout: Duration,
        /// Whether this is the push's first send (the budget is a share of those).
        first: bool,
    },
    /// Refresh the credential the last request carried; answer [`Event::Refreshed`].
    Refresh,
    /// Hold back every push of the service until then; answer [`Event::Paused`].
    Pause {
        /// UNIX milliseconds.
        until: UnixMillis,
    },
    /// Ask the shared retry policy about retry number `retry`, answered at `at`, not before
    /// `after`; answer [`Event::Decided`].
    Decide {
        /// 1 for the push's first retry.
        retry: u32,
        /// When the failure was seen.
        at: UnixMillis,
        /// The service's `Retry-After` (or pause), a floor on the delay.
        after: Option<Duration>,
    },
    /// Stop: the report holds the outcome.
    Finish,
}

/// One push's delivery: its state, what it has spent, and its report so far.
#[derive(Debug)]
pub struct Delivery {
    /// Where it stands.
    state: State,
    /// Nothing is sent at or after it, and no answer awaited past it.
    deadline: UnixMillis,
    /// How long one answer may take.
    request_timeout: Duration,
    /// The environment the push is registered in.
    registered: Environment,
    /// Whether the push now goes to the other environment (taken once, after APNs
    /// `BadDeviceToken`; a second refusal there proves the token dead).
    other_environment: bool,
    /// Whether the one credential refresh per push is spent.
    refreshed: bool,
    /// Whether the last send's answer was lost, so the next send may duplicate the push.
    lost: bool,
    /// What happened so far.
    report: DeliveryReport,
}

impl Delivery {
    /// A delivery of a push registered in `registered`, due by `deadline`, whose requests
    /// may take `request_timeout`. The driver starts it with [`Action::CheckPause`].
    pub fn new(registered: Environment, deadline: UnixMillis, request_timeout: Duration) -> Self {
        Delivery {
            state: State::Ready,
            deadline,
            request_timeout,
            registered,
            other_environment: false,
            refreshed: false,
            lost: false,
            report: DeliveryReport {
                outcome: Outcome::Expired,
                sends: 0,
                retries: Vec::new(),
                resent_unprocessed: 0,
                resent_after_loss: 0,
                gave_up: None,
                moved_to: None,
            },
        }
    }

    /// Where the delivery stands.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether the push now goes to the other environment than its registration's.
    pub fn other_environment(&self) -> bool {
        self.other_environment
    }

    /// The report, once the state is [`State::Done`] (the outcome is `Expired` before).
    pub fn into_report(self) -> DeliveryReport {
        self.report
    }

    /// The transition: `event`, reported at `now`, moves the delivery on and says what the
    /// driver does next. An event the state does not expect (a driver bug) ends the push as
    /// rejected rather than looping or panicking.
    pub fn next(&mut self, event: Event, now: UnixMillis) -> Action {
        let state = std::mem::replace(&mut self.state, State::Done);
        match (state, event) {
            (State::Ready, Event::Ready { paused_until }) => self.ready(paused_until, now),
            (State::Waiting, Event::Woke) => self.go(State::Ready, Action::CheckPause),
            (State::Preparing, Event::Prepared(Ok(()))) => self.go(
                State::Acquiring,
                Action::Acquire {
                    until: self.deadline,
                },
            ),
            (State::Preparing, Event::Prepared(Err(outcome))) => self.finish(outcome),
            (State::Acquiring, Event::Acquired(Ok(()))) => self.send(now),
            (State::Acquiring, Event::Acquired(Err(AcquireError::NoStream))) => {
                self.finish(Outcome::Expired)
            }
            (State::Acquiring, Event::Acquired(Err(AcquireError::Closed))) => {
                self.finish(Outcome::Rejected {
                    reason: "shutting_down".into(),
                })
            }
            (State::Sending, Event::Answered(verdict)) => self.judged(verdict, now),
            (State::Sending, Event::NotSent(reason)) => {
                self.report.resent_unprocessed += 1;
                if self.report.resent_unprocessed <= MAX_UNPROCESSED_RESENDS {
                    return self.go(State::Ready, Action::CheckPause);
                }
                self.decide(reason, rejected(reason), None, now)
            }
            (State::Sending, Event::Lost(reason)) => {
                self.lost = true;
                self.decide(reason, rejected(reason), None, now)
            }
            (State::Sending, Event::TimedOut) if now >= self.deadline => {
                self.finish(Outcome::Expired)
            }
            (State::Sending, Event::TimedOut) => {
                // The stream was reset at the timeout: the service may still have delivered.
                self.lost = true;
                self.decide("timeout", rejected("timeout"), None, now)
            }
            (State::Refreshing { .. }, Event::Refreshed(true)) => {
                self.go(State::Ready, Action::CheckPause)
            }
            (State::Refreshing { otherwise }, Event::Refreshed(false)) => self.finish(otherwise),
            (
                State::Pausing {
                    for_,
                    reason,
                    otherwise,
                },
                Event::Paused,
            ) => self.decide(reason, otherwise, Some(for_), now),
            (State::Deciding { reason, otherwise }, Event::Decided(decision)) => {
                self.decided(decision, reason, otherwise)
            }
            (state, event) => {
                tracing::error!(?state, ?event, "delivery: unexpected event");
                self.finish(rejected("internal"))
            }
        }
    }

    /// Before each attempt: expired, paused, or on to building the request.
    fn ready(&mut self, paused_until: Option<UnixMillis>, now: UnixMillis) -> Action {
        if now >= self.deadline {
            return self.finish(Outcome::Expired);
        }
        if let Some(until) = paused_until.filter(|until| *until > now) {
            if until >= self.deadline {
                return self.finish(Outcome::Expired);
            }
            // The stream goes back meanwhile: nothing may be sent, and the lease would only
            // keep other pushes from queueing for the pool.
            return self.go(State::Waiting, Action::WaitUntil(until));
        }
        let other_environment = self.other_environment;
        self.go(State::Preparing, Action::Prepare { other_environment })
    }

    /// A stream is leased: send, unless the deadline passed meanwhile.
    fn send(&mut self, now: UnixMillis) -> Action {
        if now >= self.deadline {
            return self.finish(Outcome::Expired);
        }
        let first = self.report.sends == 0;
        if !first && self.lost {
            self.report.resent_after_loss += 1;
        }
        self.report.sends += 1;
        self.lost = false;
        // An answer after the deadline is worthless (the phone stopped ringing): wait for it
        // no longer than the deadline, nor than the request timeout.
        let to_deadline = Duration::from_millis(self.deadline - now);
        let timeout = self.request_timeout.min(to_deadline);
        self.go(State::Sending, Action::Send { timeout, first })
    }

    /// What the judged answer means for the push.
    fn judged(&mut self, verdict: Verdict, now: UnixMillis) -> Action {
        match verdict {
            Verdict::Final(outcome) => {
                if outcome == Outcome::Delivered && self.other_environment {
                    self.report.moved_to = Some(other(self.registered));
                }
                self.finish(outcome)
            }
            Verdict::OtherEnvironment { otherwise } if self.other_environment => {
                // Both environments refused the token: it is dead.
                self.finish(otherwise)
            }
            Verdict::OtherEnvironment { .. } => {
                self.other_environment = true;
                self.go(State::Ready, Action::CheckPause)
            }
            Verdict::RefreshCredential { otherwise } if self.refreshed => self.finish(otherwise),
            Verdict::RefreshCredential { otherwise } => {
                self.refreshed = true;
                self.go(State::Refreshing { otherwise }, Action::Refresh)
            }
            Verdict::Retry {
                after,
                reason,
                otherwise,
            } => self.decide(reason, otherwise, after, now),
            Verdict::Pause {
                for_,
                reason,
                otherwise,
            } => {
                let for_ms = u64::try_from(for_.as_millis()).unwrap_or(u64::MAX);
                let until = now.saturating_add(for_ms);
                let pausing = State::Pausing {
                    for_,
                    reason,
                    otherwise,
                };
                self.go(pausing, Action::Pause { until })
            }
        }
    }

    /// A transient failure at `now`: ask the retry policy.
    fn decide(
        &mut self,
        reason: &'static str,
        otherwise: Outcome,
        after: Option<Duration>,
        now: UnixMillis,
    ) -> Action {
        // Every scheduled retry is in the report, and a refused one ends the push: this is
        // retry number `scheduled + 1`.
        let retry = u32::try_from(self.report.retries.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let action = Action::Decide {
            retry,
            at: now,
            after,
        };
        self.go(State::Deciding { reason, otherwise }, action)
    }

    /// The retry policy's answer: wait and try again, or give up with the right outcome.
    fn decided(
        &mut self,
        decision: RetryDecision,
        reason: &'static str,
        otherwise: Outcome,
    ) -> Action {
        match decision {
            RetryDecision::RetryAt { at, .. } => {
                self.report.retries.push(reason);
                self.go(State::Waiting, Action::WaitUntil(at))
            }
            RetryDecision::GiveUp(give_up) => {
                self.report.gave_up = Some(give_up);
                let outcome = match (give_up, otherwise) {
                    (GiveUp::WouldPassDeadline, _) => Outcome::Expired,
                    (_, Outcome::Rejected { reason }) => Outcome::Rejected {
                        reason: format!("{}: {reason}", give_up.label()),
                    },
                    (_, otherwise) => otherwise,
                };
                self.finish(outcome)
            }
        }
    }

    /// Moves to `state` and asks for `action`.
    fn go(&mut self, state: State, action: Action) -> Action {
        self.state = state;
        action
    }

    /// Ends the push with `outcome`.
    fn finish(&mut self, outcome: Outcome) -> Action {
        self.report.outcome = outcome;
        self.state = State::Done;
        Action::Finish
    }
}

/// The outcome of a push the service never took: rejected, for `reason`.
fn rejected(reason: &'static str) -> Outcome {
    Outcome::Rejected {
        reason: reason.into(),
    }
}

/// The environment a token refused by `environment` may belong to.
pub fn other(environment: Environment) -> Environment {
    match environment {
        Environment::Production => Environment::Sandbox,
        Environment::Sandbox => Environment::Production,
    }
}
