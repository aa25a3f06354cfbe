//! The provider with many origins as the router sees it: one actor per app and router that
//! hands each push to the dispatcher of its origin (a Web Push service, a WNS channel host),
//! starting that dispatcher (and its pool) on first use and stopping it after a while unused.
//!
//! Why a dispatcher per origin, not one for every origin: a dispatcher takes a stream from
//! its service's one pool before it picks the push, so pushes wait in priority order rather
//! than inside a pool, and that pool must lead to the push's origin. Each origin also gets
//! its own priority queues, `max_in_flight`, backoff and pause, so a black-holed host only
//! fills its own slots (docs/architecture.md, "Providers"). The map ([`OriginMap`]) is
//! bounded: when full, the least recently used origin is let go; its dispatcher finishes
//! what it holds (an actix actor lives on while its deliveries run) and then stops, closing
//! its connections.
//!
//! What differs per provider is the small [`OriginService`]: how a push names its origin,
//! whether a new origin is vetted by the SSRF guard first, how one origin's client starts.

use super::OriginMap;
use crate::providers::dispatcher::{
    Dispatcher, DispatcherSettings, DispatcherStatus, Status, Submit, Ticket, Withdraw,
};
use crate::providers::pool::OriginError;
use crate::providers::pool::guard::{AddressGuard, GuardError};
use crate::providers::service::PushService;
use crate::push::Push;
use crate::vocab::{Outcome, Platform, Priority, UnixMillis};
use actix::prelude::*;
use futures_util::future::join_all;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The outcome reason of a push whose origin resolves to an address the SSRF guard refuses.
pub const ADDRESS_REFUSED: &str = "endpoint_address_refused";

/// A push service whose pushes go to many origins: what the [`OriginsProvider`] needs to
/// know of it. Implemented by Web Push (`webpush::origins`) and WNS (`wns::origins`).
pub trait OriginService: Unpin + 'static {
    /// One origin's client: a single-origin [`PushService`] whose `pool()` leads there.
    type Client: PushService;

    /// The reason given to a push whose origin's client cannot be started (an origin that
    /// is no `https://host[:port]`).
    const UNUSABLE: &'static str;

    /// The bounds, the dispatchers' settings and the vetting, read once when the actor is
    /// made.
    fn settings(&self) -> OriginSettings;

    /// The origin (`https://host[:port]`) `push` goes to, or the reason it is refused
    /// before any queue, pool or lookup (an address of another service, an endpoint off the
    /// allowlist, a channel off Microsoft's hosts).
    fn origin_of(&self, push: &Push) -> Result<String, &'static str>;

    /// Starts `origin`'s client (and its pool) on the current runtime.
    fn start(&self, origin: &str) -> Result<Self::Client, OriginError>;
}

/// The settings of one app's origins.
#[derive(Clone)]
pub struct OriginSettings {
    /// Origins open at once; when full, the least recently used is let go.
    pub max_origins: usize,
    /// An origin unused this long is let go.
    pub idle: Duration,
    /// Every origin's dispatcher (queues, `max_in_flight`, retries, cleanup, and the
    /// platform label that refusals before a queue are counted with too).
    pub dispatcher: DispatcherSettings,
    /// The SSRF guard that vets an origin before its dispatcher starts, and how long the
    /// lookup may take; `None` where the origins are not client-supplied addresses.
    pub vetting: Option<(AddressGuard, Duration)>,
}

/// The per-app, per-router provider of a push service with many origins.
pub struct OriginsProvider<O: OriginService> {
    service: O,
    settings: OriginSettings,
    /// Each origin's dispatcher, and the origins the SSRF guard refused.
    origins: OriginMap<Addr<Dispatcher<O::Client>>>,
}

impl<O: OriginService> OriginsProvider<O> {
    /// A provider for `service`; start it on the router's thread.
    pub fn new(service: O) -> Self {
        let settings = service.settings();
        let origins = OriginMap::new(settings.max_origins, settings.idle);
        OriginsProvider {
            service,
            settings,
            origins,
        }
    }

    /// The platform label of every count this provider makes.
    fn platform(&self) -> Platform {
        self.settings.dispatcher.platform
    }

    /// The dispatcher of `origin`, started if needed (evicting the least recently used
    /// origin when the map is full).
    fn dispatcher(&mut self, origin: &str) -> Result<Addr<Dispatcher<O::Client>>, OriginError> {
        let now = Instant::now();
        if let Some(dispatcher) = self.origins.get(origin, now) {
            return Ok(dispatcher);
        }
        let client = self.service.start(origin)?;
        let dispatcher = Dispatcher::new(client, self.settings.dispatcher.clone()).start();
        if let Some(evicted) = self
            .origins
            .insert(origin.to_owned(), dispatcher.clone(), now)
        {
            tracing::debug!(provider = %self.platform(), origin = %evicted, "origin evicted");
        }
        Ok(dispatcher)
    }

    /// Lets go of origins unused for the idle time.
    fn sweep(&mut self) {
        for origin in self.origins.sweep(Instant::now()) {
            tracing::debug!(provider = %self.platform(), %origin, "idle origin closed");
        }
    }

    /// Every open origin's dispatcher.
    fn dispatchers(&self) -> Vec<Addr<Dispatcher<O::Client>>> {
        self.origins.values().cloned().collect()
    }
}

impl<O: OriginService> Actor for OriginsProvider<O> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = self
            .settings
            .idle
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        ctx.run_interval(every, |act, _| act.sweep());
    }
}

/// One origin's share of a submitted batch: its dispatcher, the pushes' places in the batch,
/// and the pushes.
type OriginBatch<C> = (Addr<Dispatcher<C>>, Vec<usize>, Vec<Push>);

/// A ticket that already holds its outcome: a push known by its priority and acceptance
/// time, refused before any queue. Counted here, as a dispatcher counts the pushes it
/// finishes, so every outcome reaches `ringcast_pushes_total` whether or not the push got
/// as far as an origin's queue.
fn refused_as(
    platform: Platform,
    priority: Priority,
    accepted_at: UnixMillis,
    reason: &str,
) -> Ticket {
    let outcome = Outcome::Rejected {
        reason: reason.to_owned(),
    };
    let latency = crate::clock::now_millis().saturating_sub(accepted_at);
    crate::metrics::push_finished(platform, priority, &outcome, Duration::from_millis(latency));
    let (sender, ticket) = oneshot::channel();
    let _ = sender.send(outcome);
    ticket
}

/// [`refused_as`] for `push`.
fn refused(platform: Platform, push: &Push, reason: &str) -> Ticket {
    refused_as(platform, push.priority(), push.accepted_at, reason)
}

/// Each origin's batch handed to its dispatcher: the places in the submitted batch, and
/// what the dispatcher answered for them (empty if it had stopped).
async fn forward<C: PushService>(
    batches: HashMap<String, OriginBatch<C>>,
) -> Vec<(Vec<usize>, Vec<Result<Ticket, Push>>)> {
    let sent = batches
        .into_values()
        .map(|(dispatcher, places, batch)| async move {
            // A stopped dispatcher (the node stopping) queued nothing; its places stay
            // empty and are answered `shutting_down`.
            let results = dispatcher.send(Submit(batch)).await.unwrap_or_default();
            (places, results)
        });
    join_all(sent).await
}

/// Adds `push` at `place` to its origin's batch.
fn add<C: PushService>(
    batches: &mut HashMap<String, OriginBatch<C>>,
    origin: String,
    dispatcher: Addr<Dispatcher<C>>,
    place: usize,
    push: Push,
) {
    let batch = batches
        .entry(origin)
        .or_insert_with(|| (dispatcher, Vec::new(), Vec::new()));
    batch.1.push(place);
    batch.2.push(push);
}

/// The SSRF guard's verdict on each of `origins` (all at once); none without a guard.
async fn vet(
    vetting: Option<(AddressGuard, Duration)>,
    origins: Vec<String>,
) -> Vec<(String, Result<(), GuardError>)> {
    let Some((guard, timeout)) = vetting else {
        return Vec::new();
    };
    let checks = origins.into_iter().map(|origin| {
        let guard = guard.clone();
        async move {
            let verdict = guard.vet_url(&origin, timeout).await;
            (origin, verdict)
        }
    });
    join_all(checks).await
}

impl<O: OriginService> Handler<Submit> for OriginsProvider<O> {
    type Result = ResponseActFuture<Self, Vec<Result<Ticket, Push>>>;

    /// Sorts the pushes by origin. Pushes to an origin with a dispatcher go to it at once;
    /// an origin seen for the first time is vetted meanwhile where the service asks for it
    /// (a refused one answers its pushes `endpoint_address_refused` and is remembered a
    /// while, rather than leaving them to expire before a pool that may never connect), then
    /// gets its dispatcher. A guarded pool vets again at every connect, so a name that later
    /// resolves elsewhere is still caught.
    fn handle(&mut self, Submit(pushes): Submit, _: &mut Context<Self>) -> Self::Result {
        let platform = self.platform();
        let count = pushes.len();
        // What a push left to a dispatcher that stopped is counted with.
        let counted_as: Vec<(Priority, UnixMillis)> = pushes
            .iter()
            .map(|push| (push.priority(), push.accepted_at))
            .collect();
        let mut answers: Vec<Option<Result<Ticket, Push>>> = (0..count).map(|_| None).collect();
        let mut known: HashMap<String, OriginBatch<O::Client>> = HashMap::new();
        let mut waiting: Vec<(String, usize, Push)> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let now = Instant::now();
        for (index, push) in pushes.into_iter().enumerate() {
            // Before anything is started for it: a push without a usable origin never gets a
            // pool, a lookup or a request.
            let origin = match self.service.origin_of(&push) {
                Ok(origin) => origin,
                Err(reason) => {
                    answers[index] = Some(Ok(refused(platform, &push, reason)));
                    continue;
                }
            };
            if self.origins.is_refused(&origin, now) {
                answers[index] = Some(Ok(refused(platform, &push, ADDRESS_REFUSED)));
            } else if let Some(dispatcher) = self.origins.get(&origin, now) {
                add(&mut known, origin, dispatcher, index, push);
            } else {
                if !unknown.contains(&origin) {
                    unknown.push(origin.clone());
                }
                waiting.push((origin, index, push));
            }
        }
        // Known origins are queued while the new ones are looked up.
        let vetting = vet(self.settings.vetting.clone(), unknown);
        let first = futures_util::future::join(forward(known), vetting);
        let sorted = fut::wrap_future::<_, Self>(first).map(move |(sent, verdicts), act, _| {
            for (origin, verdict) in verdicts {
                // A failed lookup is not a verdict: the pool resolves (and vets) again when
                // it dials.
                if let Err(error @ GuardError::Forbidden { .. }) = verdict {
                    tracing::warn!(provider = %platform, %origin, %error,
                        "origin refused (SSRF guard)");
                    act.origins.refuse(origin, Instant::now());
                }
            }
            let now = Instant::now();
            let mut fresh: HashMap<String, OriginBatch<O::Client>> = HashMap::new();
            for (origin, index, push) in waiting {
                if act.origins.is_refused(&origin, now) {
                    answers[index] = Some(Ok(refused(platform, &push, ADDRESS_REFUSED)));
                    continue;
                }
                match act.dispatcher(&origin) {
                    Ok(dispatcher) => add(&mut fresh, origin, dispatcher, index, push),
                    Err(error) => {
                        tracing::warn!(provider = %platform, %origin, %error, "origin unusable");
                        answers[index] = Some(Ok(refused(platform, &push, O::UNUSABLE)));
                    }
                }
            }
            (answers, sent, fresh)
        });
        Box::pin(sorted.then(move |(mut answers, sent, fresh), _, _| {
            fut::wrap_future(async move {
                for (places, results) in sent.into_iter().chain(forward(fresh).await) {
                    for (place, result) in places.into_iter().zip(results) {
                        answers[place] = Some(result);
                    }
                }
                let mut results = Vec::with_capacity(answers.len());
                for (answer, (priority, accepted_at)) in answers.into_iter().zip(counted_as) {
                    results.push(match answer {
                        Some(result) => result,
                        None => Ok(refused_as(platform, priority, accepted_at, "shutting_down")),
                    });
                }
                results
            })
        }))
    }
}

impl<O: OriginService> Handler<Withdraw> for OriginsProvider<O> {
    type Result = ResponseFuture<Vec<String>>;

    fn handle(&mut self, message: Withdraw, _: &mut Context<Self>) -> Self::Result {
        let dispatchers = self.dispatchers();
        Box::pin(async move {
            let asks = dispatchers.iter().map(|dispatcher| {
                dispatcher.send(Withdraw {
                    callee: Arc::clone(&message.callee),
                    call_id: Arc::clone(&message.call_id),
                })
            });
            join_all(asks)
                .await
                .into_iter()
                .flat_map(std::result::Result::unwrap_or_default)
                .collect()
        })
    }
}

impl<O: OriginService> Handler<Status> for OriginsProvider<O> {
    type Result = ResponseFuture<DispatcherStatus>;

    /// The sum over every origin (queues, deliveries, outcomes, pools), for tests and
    /// metrics.
    fn handle(&mut self, _: Status, _: &mut Context<Self>) -> Self::Result {
        let dispatchers = self.dispatchers();
        Box::pin(async move {
            let mut total = DispatcherStatus::default();
            for status in join_all(dispatchers.iter().map(|d| d.send(Status))).await {
                let Ok(status) = status else { continue };
                for (queued, more) in total.queued.iter_mut().zip(status.queued) {
                    *queued += more;
                }
                total.in_flight += status.in_flight;
                for (outcome, count) in status.finished {
                    *total.finished.entry(outcome).or_default() += count;
                }
                total.resent_after_loss += status.resent_after_loss;
                total.retries += status.retries;
                total.budget_refusals += status.budget_refusals;
                total.pool += status.pool;
            }
            total
        })
    }
}
