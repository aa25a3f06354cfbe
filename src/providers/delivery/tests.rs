//! The delivery state machine against a scripted push service on a fake clock: every verdict,
//! the deadline, the retry budget, GOAWAY and a lost answer, with no network and no sleeping.

use super::DeliveryReport;
use super::machine::{Action, Delivery, Event, MAX_UNPROCESSED_RESENDS, State};
use crate::providers::pool::AcquireError;
use crate::providers::retry::{GiveUp, RetryPolicy, RetrySettings};
use crate::providers::service::Verdict;
use crate::vocab::{Environment, Outcome, UnixMillis};
use std::collections::VecDeque;
use std::time::Duration;

const T0: UnixMillis = 1_800_000_000_000;
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the scripted service does with one request.
enum Reply {
    /// Answers after so many milliseconds; the provider judged the answer so.
    Answer(u64, Verdict),
    /// Never processes it (refused stream, above a GOAWAY's last stream id).
    NotSent,
    /// Takes it, then the connection resets after so many milliseconds: the answer is lost.
    Lost(u64),
    /// Never answers.
    Silent,
}

/// A push service that answers from a script and writes down what it was asked.
#[derive(Default)]
struct FakeService {
    /// The answers to the requests, in order.
    replies: VecDeque<Reply>,
    /// Whether each prepared request went to the other environment.
    prepared: Vec<bool>,
    /// When each request went out.
    sends: Vec<UnixMillis>,
    /// Until when every push is held back.
    paused_until: Option<UnixMillis>,
    /// The outcome `prepare` gives instead of a request (payload too large...).
    unpreparable: Option<Outcome>,
    /// Why no stream can be leased, if none can.
    no_stream: Option<AcquireError>,
    /// Whether a credential refresh fails.
    refresh_fails: bool,
    /// Credential refreshes asked for.
    refreshes: u32,
}

impl FakeService {
    fn answering(replies: impl IntoIterator<Item = Reply>) -> Self {
        FakeService {
            replies: replies.into_iter().collect(),
            ..FakeService::default()
        }
    }
}

/// A policy that only the rule under test limits (the budget floor is generous).
fn policy(settings: RetrySettings) -> RetryPolicy {
    RetryPolicy::new(&settings, fastrand::Rng::with_seed(7))
}

fn lenient() -> RetrySettings {
    RetrySettings {
        budget_min_retries: 100,
        ..RetrySettings::default()
    }
}

/// Drives one push due `deadline_in` ms after `start` through the machine, performing its
/// actions on `service` and `policy` the way `deliver` does, on a fake clock: waits jump the
/// clock, answers take their scripted time. Answers the report and the clock at the end.
fn run(
    service: &mut FakeService,
    policy: &mut RetryPolicy,
    start: UnixMillis,
    deadline_in: u64,
) -> (DeliveryReport, UnixMillis) {
    let deadline = T0 + deadline_in;
    let mut now = start;
    let mut delivery = Delivery::new(Environment::Production, deadline, TIMEOUT);
    let mut action = Action::CheckPause;
    for _ in 0..1_000 {
        let event = match action {
            Action::Finish => {
                assert_eq!(delivery.state(), &State::Done);
                return (delivery.into_report(), now);
            }
            Action::CheckPause => Event::Ready {
                paused_until: service.paused_until,
            },
            Action::WaitUntil(until) => {
                assert!(until < deadline, "never waits past the deadline");
                now = now.max(until);
                Event::Woke
            }
            Action::Prepare { other_environment } => {
                assert_eq!(other_environment, delivery.other_environment());
                service.prepared.push(other_environment);
                match service.unpreparable.clone() {
                    Some(outcome) => Event::Prepared(Err(outcome)),
                    None => Event::Prepared(Ok(())),
                }
            }
            Action::Acquire { until } => match service.no_stream {
                Some(error) => {
                    now = now.max(until);
                    Event::Acquired(Err(error))
                }
                None => Event::Acquired(Ok(())),
            },
            Action::Send { timeout, first } => {
                assert!(now < deadline, "nothing is sent at or after the deadline");
                assert!(timeout <= Duration::from_millis(deadline - now));
                assert_eq!(first, service.sends.is_empty());
                if first {
                    policy.record_send(now);
                }
                service.sends.push(now);
                let limit = u64::try_from(timeout.as_millis()).unwrap();
                match service.replies.pop_front().expect("a reply for every send") {
                    Reply::Answer(took, verdict) if took < limit => {
                        now += took;
                        Event::Answered(verdict)
                    }
                    Reply::Answer(..) | Reply::Silent => {
                        now += limit;
                        Event::TimedOut
                    }
                    Reply::NotSent => Event::NotSent("refused_stream"),
                    Reply::Lost(took) => {
                        now += took.min(limit);
                        Event::Lost("connection_reset")
                    }
                }
            }
            Action::Refresh => {
                service.refreshes += 1;
                Event::Refreshed(!service.refresh_fails)
            }
            Action::Pause { until } => {
                service.paused_until = service.paused_until.max(Some(until));
                Event::Paused
            }
            Action::Decide { retry, at, after } => {
                Event::Decided(policy.decide(retry, at, deadline, after))
            }
        };
        action = delivery.next(event, now);
    }
    panic!("the delivery did not finish in 1000 steps");
}

fn delivered(took: u64) -> Reply {
    Reply::Answer(took, Verdict::Final(Outcome::Delivered))
}

fn unavailable(took: u64, after: Option<Duration>) -> Reply {
    Reply::Answer(
        took,
        Verdict::Retry {
            after,
            reason: "unavailable",
            otherwise: Outcome::Rejected {
                reason: "ServiceUnavailable".into(),
            },
        },
    )
}

fn dead() -> Outcome {
    Outcome::DeadToken {
        verdict_at: T0,
        reason: "BadDeviceToken".into(),
    }
}

#[test]
fn a_delivered_push_is_sent_once() {
    let mut service = FakeService::answering([delivered(20)]);
    let (report, end) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!((report.sends, report.retries.len()), (1, 0));
    assert_eq!((report.moved_to, report.gave_up), (None, None));
    assert_eq!(end, T0 + 20);
}

#[test]
fn a_dead_token_is_final_and_not_retried() {
    let mut service = FakeService::answering([Reply::Answer(5, Verdict::Final(dead()))]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, dead());
    assert_eq!(report.sends, 1);
    assert!(report.retries.is_empty());
}

#[test]
fn a_transient_answer_is_retried_with_backoff_and_then_delivered() {
    let mut service = FakeService::answering([unavailable(10, None), unavailable(10, None)]);
    service.replies.push_back(delivered(10));
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.sends, 3);
    assert_eq!(report.retries, vec!["unavailable", "unavailable"]);
    assert_eq!(
        report.resent_after_loss, 0,
        "a judged answer is no lost answer"
    );
    // Full jitter within the default windows (100 ms, then 200 ms) after each answer.
    let gaps: Vec<u64> = service.sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= 10 && gaps[0] <= 110, "{gaps:?}");
    assert!(gaps[1] >= 10 && gaps[1] <= 210, "{gaps:?}");
}

#[test]
fn retry_after_is_honoured_as_a_floor() {
    let after = Some(Duration::from_secs(2));
    let mut service = FakeService::answering([unavailable(10, after), delivered(10)]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(service.sends, vec![T0, T0 + 10 + 2_000]);
}

#[test]
fn the_retry_budget_exhausted_fails_fast_with_the_reason() {
    let mut service = FakeService::answering([unavailable(10, None)]);
    let settings = RetrySettings {
        budget_percent: 0,
        budget_min_retries: 0,
        ..RetrySettings::default()
    };
    let (report, end) = run(&mut service, &mut policy(settings), T0, 45_000);
    assert_eq!(report.gave_up, Some(GiveUp::BudgetExhausted));
    assert_eq!(
        report.outcome,
        Outcome::Rejected {
            reason: "retry_budget_exhausted: ServiceUnavailable".into()
        }
    );
    assert_eq!((report.sends, end), (1, T0 + 10), "no wait before failing");
}

#[test]
fn the_attempts_run_out_after_max_retries() {
    let mut service = FakeService::answering((0..3).map(|_| unavailable(10, None)));
    let settings = RetrySettings {
        max_retries: 2,
        ..lenient()
    };
    let (report, _) = run(&mut service, &mut policy(settings), T0, 45_000);
    assert_eq!(report.gave_up, Some(GiveUp::AttemptsExhausted));
    assert_eq!(report.sends, 3);
    assert_eq!(report.retries.len(), 2);
    assert_eq!(
        report.outcome,
        Outcome::Rejected {
            reason: "attempts_exhausted: ServiceUnavailable".into()
        }
    );
}

#[test]
fn a_give_up_keeps_an_outcome_that_is_not_a_rejection() {
    let otherwise = Outcome::CredentialProblem {
        reason: "TooManyProviderTokenUpdates".into(),
    };
    let verdict = Verdict::Retry {
        after: None,
        reason: "too_many_token_updates",
        otherwise: otherwise.clone(),
    };
    let mut service = FakeService::answering([Reply::Answer(10, verdict)]);
    let settings = RetrySettings {
        max_retries: 0,
        ..lenient()
    };
    let (report, _) = run(&mut service, &mut policy(settings), T0, 45_000);
    assert_eq!(report.outcome, otherwise);
}

#[test]
fn an_already_expired_push_is_never_sent() {
    let mut service = FakeService::answering([]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0 + 1_000, 1_000);
    assert_eq!(report.outcome, Outcome::Expired);
    assert_eq!(report.sends, 0);
    assert!(service.prepared.is_empty());
}

#[test]
fn a_retry_that_would_pass_the_deadline_expires_the_push_at_once() {
    let after = Some(Duration::from_secs(60));
    let mut service = FakeService::answering([unavailable(10, after)]);
    let (report, end) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Expired);
    assert_eq!(report.gave_up, Some(GiveUp::WouldPassDeadline));
    assert_eq!((report.sends, end), (1, T0 + 10));
}

#[test]
fn an_answer_not_come_by_the_deadline_expires_the_push_without_a_resend() {
    let mut service = FakeService::answering([Reply::Silent]);
    let (report, end) = run(&mut service, &mut policy(lenient()), T0, 1_000);
    assert_eq!(report.outcome, Outcome::Expired);
    assert_eq!(report.sends, 1);
    assert_eq!(
        end,
        T0 + 1_000,
        "waited for the answer until the deadline only"
    );
}

#[test]
fn no_stream_before_the_deadline_expires_and_a_closed_pool_rejects() {
    let mut service = FakeService {
        no_stream: Some(AcquireError::NoStream),
        ..FakeService::default()
    };
    let (report, end) = run(&mut service, &mut policy(lenient()), T0, 2_000);
    assert_eq!(
        (report.outcome, report.sends, end),
        (Outcome::Expired, 0, T0 + 2_000)
    );
    let mut service = FakeService {
        no_stream: Some(AcquireError::Closed),
        ..FakeService::default()
    };
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 2_000);
    assert_eq!(
        report.outcome,
        Outcome::Rejected {
            reason: "shutting_down".into()
        }
    );
}

#[test]
fn a_push_the_service_cannot_take_ends_with_prepares_outcome() {
    let too_large = Outcome::Rejected {
        reason: "payload_too_large".into(),
    };
    let mut service = FakeService {
        unpreparable: Some(too_large.clone()),
        ..FakeService::default()
    };
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!((report.outcome, report.sends), (too_large, 0));
}

fn expired_credential() -> Reply {
    Reply::Answer(
        10,
        Verdict::RefreshCredential {
            otherwise: Outcome::CredentialProblem {
                reason: "ExpiredProviderToken".into(),
            },
        },
    )
}

#[test]
fn a_refused_credential_is_refreshed_once_then_the_push_is_sent_again() {
    let mut service = FakeService::answering([expired_credential(), delivered(10)]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!((service.refreshes, report.sends), (1, 2));
    assert!(report.retries.is_empty(), "a refresh is not a retry");
    assert_eq!(service.sends, vec![T0, T0 + 10], "sent again at once");
}

#[test]
fn a_second_refusal_of_the_credential_is_a_credential_problem() {
    let mut service = FakeService::answering([expired_credential(), expired_credential()]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert!(matches!(report.outcome, Outcome::CredentialProblem { .. }));
    assert_eq!((service.refreshes, report.sends), (1, 2));
}

#[test]
fn a_failed_refresh_is_a_credential_problem_without_a_resend() {
    let mut service = FakeService::answering([expired_credential()]);
    service.refresh_fails = true;
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert!(matches!(report.outcome, Outcome::CredentialProblem { .. }));
    assert_eq!((service.refreshes, report.sends), (1, 1));
}

fn quota_exceeded(for_ms: u64) -> Reply {
    Reply::Answer(
        10,
        Verdict::Pause {
            for_: Duration::from_millis(for_ms),
            reason: "quota_exceeded",
            otherwise: Outcome::Rejected {
                reason: "QUOTA_EXCEEDED".into(),
            },
        },
    )
}

#[test]
fn a_pause_holds_back_the_refused_push_and_every_other_one() {
    let mut service = FakeService::answering([quota_exceeded(3_000), delivered(10)]);
    let mut policy = policy(lenient());
    let (report, _) = run(&mut service, &mut policy, T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.retries, vec!["quota_exceeded"]);
    assert_eq!(service.paused_until, Some(T0 + 10 + 3_000));
    assert!(service.sends[1] >= T0 + 3_010, "{:?}", service.sends);
    // Another push started during the pause waits for its end before it is sent.
    service.sends.clear();
    service.replies.push_back(delivered(10));
    let (report, _) = run(&mut service, &mut policy, T0 + 1_000, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(service.sends, vec![T0 + 3_010]);
}

#[test]
fn a_pause_that_outlasts_the_deadline_expires_the_push_unsent() {
    let mut service = FakeService {
        paused_until: Some(T0 + 60_000),
        ..FakeService::default()
    };
    let (report, end) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(
        (report.outcome, report.sends, end),
        (Outcome::Expired, 0, T0)
    );
    // The refused push itself: its re-send would come after its deadline.
    let mut service = FakeService::answering([quota_exceeded(60_000)]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Expired);
    assert_eq!(report.gave_up, Some(GiveUp::WouldPassDeadline));
}

#[test]
fn an_unprocessed_request_is_resent_at_once_outside_the_retry_budget() {
    let mut service = FakeService::answering([Reply::NotSent, Reply::NotSent, delivered(10)]);
    let settings = RetrySettings {
        budget_percent: 0,
        budget_min_retries: 0,
        ..RetrySettings::default()
    };
    let (report, _) = run(&mut service, &mut policy(settings), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!((report.sends, report.resent_unprocessed), (3, 2));
    assert!(report.retries.is_empty());
    assert_eq!(report.resent_after_loss, 0, "no duplicate is possible");
    assert_eq!(service.sends, vec![T0, T0, T0]);
}

#[test]
fn unprocessed_resends_are_bounded_then_go_through_the_retry_policy() {
    let refusals = MAX_UNPROCESSED_RESENDS as usize + 1;
    let mut service = FakeService::answering((0..refusals).map(|_| Reply::NotSent));
    let settings = RetrySettings {
        max_retries: 0,
        ..lenient()
    };
    let (report, _) = run(&mut service, &mut policy(settings), T0, 45_000);
    assert_eq!(report.sends as usize, refusals);
    assert_eq!(report.gave_up, Some(GiveUp::AttemptsExhausted));
    assert_eq!(
        report.outcome,
        Outcome::Rejected {
            reason: "attempts_exhausted: refused_stream".into()
        }
    );
    // With retries left, the sixth refusal waits a backoff and is counted as a retry.
    let mut service = FakeService::answering((0..refusals).map(|_| Reply::NotSent));
    service.replies.push_back(delivered(10));
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.retries, vec!["refused_stream"]);
}

#[test]
fn a_lost_answer_is_retried_and_counted_as_a_possible_duplicate() {
    let mut service = FakeService::answering([Reply::Lost(30), delivered(10)]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.retries, vec!["connection_reset"]);
    assert_eq!((report.sends, report.resent_after_loss), (2, 1));
}

#[test]
fn a_timed_out_answer_is_a_lost_one() {
    let mut service = FakeService::answering([Reply::Silent, delivered(10)]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.retries, vec!["timeout"]);
    assert_eq!(report.resent_after_loss, 1);
    assert!(service.sends[1] >= T0 + 5_000, "after the request timeout");
}

fn bad_device_token() -> Reply {
    Reply::Answer(10, Verdict::OtherEnvironment { otherwise: dead() })
}

#[test]
fn a_token_of_the_other_environment_is_delivered_there_and_the_move_reported() {
    let mut service = FakeService::answering([bad_device_token(), delivered(10)]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.moved_to, Some(Environment::Sandbox));
    assert_eq!(service.prepared, vec![false, true]);
    assert!(report.retries.is_empty(), "the fallback is not a retry");
}

#[test]
fn a_token_refused_by_both_environments_is_dead() {
    let mut service = FakeService::answering([bad_device_token(), bad_device_token()]);
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, dead());
    assert_eq!(report.moved_to, None);
    assert_eq!(
        service.prepared,
        vec![false, true],
        "the other environment once"
    );
}

#[test]
fn a_fallback_that_is_not_delivered_reports_no_move() {
    let mut service = FakeService::answering([bad_device_token(), unavailable(10, None)]);
    service
        .replies
        .push_back(Reply::Answer(10, Verdict::Final(dead())));
    let (report, _) = run(&mut service, &mut policy(lenient()), T0, 45_000);
    assert_eq!(report.outcome, dead());
    assert_eq!(report.moved_to, None);
    assert_eq!(
        service.prepared,
        vec![false, true, true],
        "stays there for the retry"
    );
}

#[test]
fn an_unexpected_event_ends_the_push_instead_of_looping() {
    let mut delivery = Delivery::new(Environment::Production, T0 + 1_000, TIMEOUT);
    assert_eq!(delivery.next(Event::Woke, T0), Action::Finish);
    assert_eq!(
        delivery.into_report().outcome,
        Outcome::Rejected {
            reason: "internal".into()
        }
    );
}
