//! The provider actor: one per push service, credential and environment on each router. It
//! owns the provider's priority queues and decides what goes out next; the deliveries
//! themselves run concurrently on its arbiter, each through [`deliver`].
//!
//! A push leaves its queue only when the pool has a free stream for it, so pushes wait here,
//! in strict priority order, rather than in h2's FIFO; at most `max_in_flight` deliveries
//! (sends, answers, retry backoffs) run at once. Every push gets exactly one
//! [`Outcome`] through its ticket. A dead-token outcome deletes the registration (unless
//! the device registered again after the verdict).

use crate::clock::Clock;
use crate::metrics::{self, RetryReason};
use crate::providers::delivery::{DeliveryReport, deliver};
use crate::providers::pool::{AcquireError, PoolSnapshot, Stream};
use crate::providers::queue::{Offer, PriorityQueues, QueueLimits};
use crate::providers::retry::{RetryPolicy, RetrySettings};
use crate::providers::service::PushService;
use crate::push::Push;
use crate::registry::{AnyStore, Store};
use crate::vocab::{Environment, IdentityKey, Outcome, Platform, Priority, PushKind};
use actix::prelude::*;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long the dispatcher waits for a stream before it sweeps expired pushes out of its
/// queues and waits again: a push whose deadline passes while no connection is up ends as
/// `Expired` within this, not whenever a connection returns.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// A dispatcher's settings.
#[derive(Clone)]
pub struct DispatcherSettings {
    /// The queue bounds.
    pub queues: QueueLimits,
    /// Deliveries running at once (sending, awaiting an answer, or backing off to retry).
    pub max_in_flight: usize,
    /// How failed pushes are retried.
    pub retry: RetrySettings,
    /// Where a dead-token verdict deletes the registration; `None` only in tests that do not
    /// care.
    pub cleanup: Option<AnyStore>,
    /// The push service, for the metrics' `provider` label.
    pub platform: Platform,
}

impl DispatcherSettings {
    /// The settings every provider's config gives (the same keys in each, see
    /// `providers::config_keys`), with where dead tokens are deleted.
    pub fn new(
        queues: &QueueLimits,
        max_in_flight: usize,
        retry: &RetrySettings,
        cleanup: Option<&AnyStore>,
        platform: Platform,
    ) -> DispatcherSettings {
        DispatcherSettings {
            queues: queues.clone(),
            max_in_flight,
            retry: retry.clone(),
            cleanup: cleanup.cloned(),
            platform,
        }
    }
}

/// The answer to a push, delivered once its outcome is known.
pub type Ticket = oneshot::Receiver<Outcome>;

/// Hands pushes to the provider. Each is queued (its ticket will carry the outcome) or
/// refused at once because the queues are full (the caller must not count on it).
#[derive(Message)]
#[rtype(result = "Vec<Result<Ticket, Push>>")]
pub struct Submit(pub Vec<Push>);

/// Drops the queued rings of a call that ended before they left (they end as
/// [`Outcome::Withdrawn`]); answers the device ids whose ring was withdrawn. Rings already
/// sent or in flight are not touched: those devices get the "call ended" push. One end asks
/// every provider of the tenant on every router, so the message shares its callee and call id
/// rather than copying them for each.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Withdraw {
    /// Whose rings (a group call rings several callees under one call id).
    pub callee: Arc<IdentityKey>,
    /// The call.
    pub call_id: Arc<str>,
}

/// Asks for the provider's queues, deliveries and connections.
#[derive(Message)]
#[rtype(result = "DispatcherStatus")]
pub struct Status;

/// What a dispatcher is doing, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatcherStatus {
    /// Pushes waiting, per priority.
    pub queued: [usize; 3],
    /// Deliveries running.
    pub in_flight: usize,
    /// The connections.
    pub pool: PoolSnapshot,
    /// Pushes finished, by outcome label.
    pub finished: std::collections::BTreeMap<&'static str, u64>,
    /// Pushes re-sent after a lost answer (possible duplicates).
    pub resent_after_loss: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Retries the budget refused.
    pub budget_refusals: u64,
}

/// One queued push and where its outcome goes.
struct Job {
    push: Push,
    reply: oneshot::Sender<Outcome>,
}

/// A delivery running: the push's way to its report ([`deliver`]), its job handed back with it.
type Running = Pin<Box<dyn Future<Output = (Job, DeliveryReport)>>>;

/// The provider actor.
pub struct Dispatcher<S: PushService> {
    service: Arc<S>,
    queues: PriorityQueues<Job>,
    policy: Arc<Mutex<RetryPolicy>>,
    max_in_flight: usize,
    in_flight: usize,
    /// Whether a wait for a stream is pending (at most one at a time).
    waiting: bool,
    cleanup: Option<AnyStore>,
    status: DispatcherStatus,
    /// The metrics' `provider` label.
    platform: Platform,
    /// Where deadlines, latencies and verdict times are read from (tokio's paused time in
    /// tests, [`Dispatcher::with_clock`]).
    clock: Clock,
    /// The queue depths last added to `ringcast_queue_depth`, so only changes are sent.
    reported_depth: [usize; 3],
    /// The deliveries running, polled by the actor's own task ([`PollDeliveries`]): a set
    /// that polls only the deliveries woken, so an answer costs one poll however many are in
    /// flight. Not futures spawned into the actor's context (actix polls each of those
    /// every time the context wakes: with a thousand in flight, a thousand polls per answer,
    /// once the top of the profile), nor a task each (a task's allocation, its future
    /// copied in, and a channel hop back to the actor per push: 1.1k instructions more per
    /// push under callgrind, docs/performance.md).
    running: FuturesUnordered<Running>,
    /// The actor's waker, from the last poll of `running`: a delivery started outside that
    /// poll wakes the actor so the new delivery gets its first poll.
    waker: Option<Waker>,
}

impl<S: PushService> Dispatcher<S> {
    /// A dispatcher for `service`; start it on the arbiter that owns the service's pool.
    pub fn new(service: S, settings: DispatcherSettings) -> Self {
        Dispatcher {
            running: FuturesUnordered::new(),
            waker: None,
            service: Arc::new(service),
            queues: PriorityQueues::new(settings.queues),
            policy: Arc::new(Mutex::new(RetryPolicy::new(
                &settings.retry,
                fastrand::Rng::new(),
            ))),
            max_in_flight: settings.max_in_flight.max(1),
            in_flight: 0,
            waiting: false,
            cleanup: settings.cleanup,
            status: DispatcherStatus::default(),
            platform: settings.platform,
            clock: Clock::System,
            reported_depth: [0; 3],
        }
    }

    /// The same dispatcher reading time from `clock` rather than the wall clock, so a test
    /// can run it, and every delivery it starts, on tokio's paused time.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds the change in queue depth since the last report to the node's gauges.
    fn report_depth(&mut self) {
        for priority in Priority::ALL {
            let index = priority as usize;
            let depth = self.queues.depth(priority);
            if depth != self.reported_depth[index] {
                let delta = depth as i64 - self.reported_depth[index] as i64;
                metrics::queue_depth(self.platform, priority, delta);
                self.reported_depth[index] = depth;
            }
        }
    }

    /// Starts deliveries while streams and delivery slots are free.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < self.max_in_flight && !self.queues.is_empty() {
            match self.service.pool().try_acquire() {
                Ok(Some(stream)) => {
                    if let Some(job) = self.pop_live() {
                        self.start(job, Some(stream));
                    }
                }
                Ok(None) => {
                    self.wait_for_stream(ctx);
                    return;
                }
                Err(AcquireError::Closed | AcquireError::NoStream) => {
                    while let Some(job) = self.queues.pop() {
                        self.finish(
                            job,
                            Outcome::Rejected {
                                reason: "shutting_down".into(),
                            },
                        );
                    }
                    return;
                }
            }
        }
    }

    /// The next queued push whose deadline has not passed; expired ones end on the way.
    fn pop_live(&mut self) -> Option<Job> {
        let now = self.clock.now();
        while let Some(job) = self.queues.pop() {
            if !job.push.is_expired(now) {
                return Some(job);
            }
            self.finish(job, Outcome::Expired);
        }
        None
    }

    /// Waits (once at a time) for a stream to free up or a connection to come up; sweeps
    /// expired pushes meanwhile.
    fn wait_for_stream(&mut self, ctx: &mut Context<Self>) {
        if self.waiting {
            return;
        }
        self.waiting = true;
        let service = Arc::clone(&self.service);
        let wait = async move { service.pool().acquire(Instant::now() + SWEEP_EVERY).await };
        ctx.spawn(wait.into_actor(self).map(|acquired, act, ctx| {
            act.waiting = false;
            match acquired {
                Ok(stream) => {
                    if let Some(job) = act.pop_live() {
                        act.start(job, Some(stream));
                    }
                }
                Err(_) => {
                    let now = act.clock.now();
                    for job in act.queues.remove_where(|job| job.push.is_expired(now)) {
                        act.finish(job, Outcome::Expired);
                    }
                }
            }
            act.pump(ctx);
            act.report_depth();
            // The queues may be empty now: let `PollDeliveries` see whether the dispatcher is
            // done, which it may have looked at already in this poll.
            act.wake_deliveries();
        }));
    }

    /// Starts one delivery among the running ones; its report comes back through
    /// [`Dispatcher::delivered`], which frees the slot and pumps again.
    fn start(&mut self, job: Job, stream: Option<Stream>) {
        self.in_flight += 1;
        metrics::inflight(self.platform, 1);
        let (service, policy) = (Arc::clone(&self.service), Arc::clone(&self.policy));
        let clock = self.clock;
        self.running.push(Box::pin(async move {
            let report = deliver(&*service, &job.push, stream, &policy, clock).await;
            (job, report)
        }));
        self.wake_deliveries();
    }

    /// Has [`PollDeliveries`] polled again soon: a delivery started, or the queues changed,
    /// outside its poll.
    fn wake_deliveries(&self) {
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }

    /// A delivery finished: its slot is free, its outcome given.
    fn delivered(&mut self, job: Job, report: DeliveryReport, ctx: &mut Context<Self>) {
        self.in_flight -= 1;
        metrics::inflight(self.platform, -1);
        self.account(&report);
        if let Some(environment) = report.moved_to {
            self.correct_environment(&job.push, environment);
        }
        self.finish(job, report.outcome);
        self.pump(ctx);
        self.report_depth();
    }

    /// Counts what a delivery did.
    fn account(&mut self, report: &DeliveryReport) {
        self.status.resent_after_loss += u64::from(report.resent_after_loss);
        self.status.retries += report.retries.len() as u64;
        for reason in &report.retries {
            metrics::retry(self.platform, RetryReason::of(reason));
        }
        for _ in 0..report.resent_unprocessed {
            metrics::retry(self.platform, RetryReason::RefusedStream);
        }
    }

    /// The push's token was refused by its registered environment and taken by the other:
    /// moves the registration there (unless the device registered again since), counted.
    fn correct_environment(&self, push: &Push, environment: Environment) {
        metrics::environment_corrected(self.platform);
        let Some(store) = &self.cleanup else { return };
        let (store, push) = (store.clone(), push.clone());
        let refused_at = self.clock.now();
        actix::spawn(async move {
            let corrected = store
                .correct_environment(
                    &push.who,
                    &push.device_id,
                    &push.address,
                    environment,
                    refused_at,
                )
                .await;
            match corrected {
                Ok(moved) => tracing::info!(event_id = %push.event_id, token = ?push.address,
                    ?environment, moved, "APNs token belongs to the other environment"),
                Err(error) => tracing::warn!(event_id = %push.event_id, %error,
                    "could not correct a registration's environment"),
            }
        });
    }

    /// Gives a push its outcome: counted, a dead token cleaned up, the ticket answered.
    fn finish(&mut self, job: Job, outcome: Outcome) {
        *self.status.finished.entry(outcome.label()).or_default() += 1;
        let latency = self.clock.now().saturating_sub(job.push.accepted_at);
        metrics::push_finished(
            self.platform,
            job.push.priority(),
            &outcome,
            Duration::from_millis(latency),
        );
        match &outcome {
            Outcome::DeadToken { reason, .. } => metrics::token_invalidated(self.platform, reason),
            Outcome::Misconfigured { reason } | Outcome::CredentialProblem { reason } => {
                metrics::config_error(self.platform, &job.push.who.tenant, &job.push.app, reason);
            }
            _ => {}
        }
        if let (Outcome::DeadToken { verdict_at, .. }, Some(store)) = (&outcome, &self.cleanup) {
            let (store, push, verdict_at) = (store.clone(), job.push.clone(), *verdict_at);
            actix::spawn(async move {
                let removed = store
                    .remove_dead_token(&push.who, &push.device_id, &push.address, verdict_at)
                    .await;
                if let Err(error) = removed {
                    tracing::warn!(event_id = %push.event_id, %error,
                        "could not delete a dead token's registration");
                }
            });
        }
        // The caller may have stopped waiting; the outcome is counted either way.
        let _ = job.reply.send(outcome);
    }
}

impl<S: PushService> Actor for Dispatcher<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.spawn(PollDeliveries);
        for priority in Priority::ALL {
            let capacity = self.queues.limits().of(priority) as i64;
            metrics::queue_capacity(self.platform, priority, capacity);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Take this dispatcher's share out of the node's gauges.
        for priority in Priority::ALL {
            let capacity = self.queues.limits().of(priority) as i64;
            metrics::queue_capacity(self.platform, priority, -capacity);
            let depth = self.reported_depth[priority as usize] as i64;
            metrics::queue_depth(self.platform, priority, -depth);
        }
        metrics::inflight(self.platform, -(self.in_flight as i64));
    }
}

/// Polls the dispatcher's running deliveries (spawned into its context once, at start) until
/// nobody holds the dispatcher and no push is left: the actor's task is woken by any
/// delivery's progress, and this polls the ones woken and hands each finished report to
/// [`Dispatcher::delivered`].
struct PollDeliveries;

impl<S: PushService> ActorFuture<Dispatcher<S>> for PollDeliveries {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Dispatcher<S>,
        ctx: &mut Context<Dispatcher<S>>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        if !act
            .waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(task.waker()))
        {
            act.waker = Some(task.waker().clone());
        }
        // Ready(None) when none runs: `start` wakes the actor for the next one.
        while let Poll::Ready(Some((job, report))) = act.running.poll_next_unpin(task) {
            act.delivered(job, report, ctx);
        }
        // Nobody holds the dispatcher any more (its provider let it go: a Web Push or WNS
        // origin evicted or idle) and every push it took has its outcome: done, so the actor
        // stops and its connections close. Pending forever, this future alone would keep
        // the actor alive (actix stops an actor only once nothing is spawned in it). The last
        // address dropped wakes the actor, and so does each delivery finishing.
        if !ctx.connected() && act.running.is_empty() && act.queues.is_empty() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<S: PushService> Handler<Submit> for Dispatcher<S> {
    type Result = Vec<Result<Ticket, Push>>;

    fn handle(&mut self, Submit(pushes): Submit, ctx: &mut Context<Self>) -> Self::Result {
        let mut answers = Vec::with_capacity(pushes.len());
        for push in pushes {
            let priority: Priority = push.priority();
            let (reply, ticket) = oneshot::channel();
            if let Some(outcome) = self.service.unsendable(&push) {
                // Known at once: it takes no queue slot, and overload cannot shed it.
                self.finish(Job { push, reply }, outcome);
                answers.push(Ok(ticket));
                continue;
            }
            match self.queues.offer(priority, Job { push, reply }) {
                Offer::Queued => answers.push(Ok(ticket)),
                Offer::Evicted(shed) => {
                    answers.push(Ok(ticket));
                    self.finish(shed, Outcome::Shed);
                }
                Offer::Refused(job) => answers.push(Err(job.push)),
            }
        }
        self.pump(ctx);
        self.report_depth();
        answers
    }
}

impl<S: PushService> Handler<Withdraw> for Dispatcher<S> {
    type Result = Vec<String>;

    fn handle(&mut self, withdraw: Withdraw, _: &mut Context<Self>) -> Self::Result {
        let rings = self.queues.remove_where(|job| {
            job.push.kind == PushKind::IncomingCall
                && *job.push.payload.call_id == *withdraw.call_id
                && *job.push.who == *withdraw.callee
        });
        let mut devices = Vec::with_capacity(rings.len());
        for job in rings {
            devices.push(job.push.device_id.clone());
            self.finish(job, Outcome::Withdrawn);
        }
        self.report_depth();
        devices
    }
}

impl<S: PushService> Handler<Status> for Dispatcher<S> {
    type Result = MessageResult<Status>;

    fn handle(&mut self, _: Status, _: &mut Context<Self>) -> Self::Result {
        let mut status = self.status.clone();
        for priority in Priority::ALL {
            status.queued[priority as usize] = self.queues.depth(priority);
        }
        status.in_flight = self.in_flight;
        status.pool = self.service.pool().snapshot();
        status.budget_refusals = self
            .policy
            .lock()
            .map_or(0, |policy| policy.budget_refusals());
        MessageResult(status)
    }
}
