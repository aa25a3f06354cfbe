//! The Web Push provider as the router sees it: one actor per app and shard that hands each
//! push to the dispatcher of its endpoint's origin, starting that dispatcher (and its pool)
//! on first use and stopping it after a while unused.
//!
//! Why not one dispatcher for every origin: the shared dispatcher takes a stream from its
//! service's one pool before it picks the push, so a pool must lead to the push's origin. A
//! dispatcher per origin keeps that machinery unchanged, and each origin gets its own
//! priority queues, stream limits and backoff (one slow push service does not hold up the
//! others). The map ([`OriginMap`]) is bounded (`max_origins`): when full, the least recently used origin is
//! let go; its dispatcher finishes what it holds (an actix actor lives on while its
//! deliveries run) and then stops, closing its connections.

use super::auth::VapidSigner;
use super::client::{EndpointPolicy, WebPushClient};
use super::config::WebPushProviderConfig;
use crate::providers::dispatcher::{
    Dispatcher, DispatcherSettings, DispatcherStatus, Status, Submit, Ticket, Withdraw,
};
use crate::providers::live::Live;
use crate::providers::origins::OriginMap;
use crate::providers::pool::guard::GuardError;
use crate::push::Push;
use crate::registry::{AnyStore, PushAddress};
use crate::vocab::{Outcome, Platform, Priority, UnixMillis};
use actix::prelude::*;
use futures_util::future::join_all;
use rustls::ClientConfig;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What every origin's dispatcher of one app is made from.
#[derive(Clone)]
pub struct WebPushApp {
    /// Connection, queue and retry settings.
    pub config: WebPushProviderConfig,
    /// The allowlist and the SSRF guard.
    pub policy: EndpointPolicy,
    /// The app's VAPID key (shared by every shard), swapped by a reload that changes it.
    pub signer: Live<VapidSigner>,
    /// Whom to trust.
    pub tls: Arc<ClientConfig>,
    /// Where dead subscriptions are deleted.
    pub cleanup: Option<AnyStore>,
}

/// The per-app, per-shard Web Push provider.
pub struct WebPushProvider {
    app: WebPushApp,
    /// Each origin's dispatcher, and the origins the SSRF guard refused.
    origins: OriginMap<Addr<Dispatcher<WebPushClient>>>,
}

impl WebPushProvider {
    /// A provider for `app`; start it on the shard's arbiter.
    pub fn new(app: WebPushApp) -> Self {
        let idle = Duration::from_secs(app.config.idle_origin_seconds);
        let origins = OriginMap::new(app.config.max_origins, idle);
        WebPushProvider { app, origins }
    }

    /// The dispatcher of `origin`, started if needed (evicting the least recently used
    /// origin when the map is full).
    fn dispatcher(&mut self, origin: &str) -> Result<Addr<Dispatcher<WebPushClient>>, String> {
        let now = Instant::now();
        if let Some(dispatcher) = self.origins.get(origin, now) {
            return Ok(dispatcher);
        }
        let config = &self.app.config;
        let client = WebPushClient::start(
            origin,
            config,
            self.app.policy.clone(),
            self.app.signer.clone(),
            Arc::clone(&self.app.tls),
        )
        .map_err(|error| error.to_string())?;
        let dispatcher = Dispatcher::new(
            client,
            DispatcherSettings {
                queues: config.queues.clone(),
                max_in_flight: config.max_in_flight,
                retry: config.retry.clone(),
                cleanup: self.app.cleanup.clone(),
                platform: Platform::Webpush,
            },
        )
        .start();
        if let Some(evicted) = self
            .origins
            .insert(origin.to_owned(), dispatcher.clone(), now)
        {
            tracing::debug!(origin = %evicted, "web push origin evicted");
        }
        Ok(dispatcher)
    }

    /// Lets go of origins unused for `idle_origin_seconds`.
    fn sweep(&mut self) {
        for origin in self.origins.sweep(Instant::now()) {
            tracing::debug!(%origin, "idle web push origin closed");
        }
    }
}

impl Actor for WebPushProvider {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_secs(self.app.config.idle_origin_seconds.clamp(1, 60));
        ctx.run_interval(every, |act, _| act.sweep());
    }
}

/// One origin's share of a submitted batch: its dispatcher, the pushes' places in the batch,
/// and the pushes.
type OriginBatch = (Addr<Dispatcher<WebPushClient>>, Vec<usize>, Vec<Push>);

/// The outcome reason of a push whose endpoint resolves to a refused address.
pub const ADDRESS_REFUSED: &str = "endpoint_address_refused";

fn rejected(reason: &str) -> Outcome {
    Outcome::Rejected {
        reason: reason.to_owned(),
    }
}

/// A ticket that already holds its outcome: `push`, refused before any queue. Counted here,
/// as a dispatcher counts the pushes it finishes, so every Web Push outcome reaches
/// `ringcast_pushes_total` whether or not it got as far as an origin's queue.
fn refused(push: &Push, reason: &str) -> Ticket {
    refused_as(push.priority(), push.accepted_at, reason)
}

/// [`refused`] for a push known only by its priority and acceptance time.
fn refused_as(priority: Priority, accepted_at: UnixMillis, reason: &str) -> Ticket {
    let outcome = rejected(reason);
    let latency = crate::clock::now_millis().saturating_sub(accepted_at);
    crate::metrics::push_finished(
        Platform::Webpush,
        priority,
        &outcome,
        Duration::from_millis(latency),
    );
    let (sender, ticket) = oneshot::channel();
    let _ = sender.send(outcome);
    ticket
}

/// Each origin's batch handed to its dispatcher: the places in the submitted batch, and
/// what the dispatcher answered for them (empty if it had stopped).
async fn forward(
    batches: HashMap<String, OriginBatch>,
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
fn add(
    batches: &mut HashMap<String, OriginBatch>,
    origin: String,
    dispatcher: Addr<Dispatcher<WebPushClient>>,
    place: usize,
    push: Push,
) {
    let batch = batches
        .entry(origin)
        .or_insert_with(|| (dispatcher, Vec::new(), Vec::new()));
    batch.1.push(place);
    batch.2.push(push);
}

impl Handler<Submit> for WebPushProvider {
    type Result = ResponseActFuture<Self, Vec<Result<Ticket, Push>>>;

    /// Sorts the pushes by origin. Pushes to an origin with a dispatcher go to it at once;
    /// an origin seen for the first time is resolved and vetted meanwhile (a refused one
    /// answers its pushes `endpoint_address_refused` and is remembered a while, rather than
    /// leaving them to expire before a pool that may never connect), then gets its
    /// dispatcher. The pool vets again at every connect, so a name that later resolves
    /// elsewhere is still caught.
    fn handle(&mut self, Submit(pushes): Submit, _: &mut Context<Self>) -> Self::Result {
        let count = pushes.len();
        // What a push left to a dispatcher that stopped is counted with.
        let counted_as: Vec<(Priority, UnixMillis)> = pushes
            .iter()
            .map(|push| (push.priority(), push.accepted_at))
            .collect();
        let mut answers: Vec<Option<Result<Ticket, Push>>> = (0..count).map(|_| None).collect();
        let mut known: HashMap<String, OriginBatch> = HashMap::new();
        let mut waiting: Vec<(String, usize, Push)> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let now = Instant::now();
        for (index, push) in pushes.into_iter().enumerate() {
            let PushAddress::WebPush { endpoint, .. } = &push.address else {
                answers[index] = Some(Ok(refused(&push, "not_webpush")));
                continue;
            };
            // Before anything is started for it: an endpoint off the allowlist or not HTTPS
            // never gets a pool, a lookup or a request.
            let origin = match self.app.policy.origin_of(endpoint) {
                Ok(origin) => origin,
                Err(error) => {
                    tracing::warn!(event_id = %push.event_id, %error, "web push endpoint refused");
                    answers[index] = Some(Ok(refused(&push, "endpoint_not_allowed")));
                    continue;
                }
            };
            if self.origins.is_refused(&origin, now) {
                answers[index] = Some(Ok(refused(&push, ADDRESS_REFUSED)));
            } else if let Some(dispatcher) = self.origins.get(&origin, now) {
                add(&mut known, origin, dispatcher, index, push);
            } else {
                if !unknown.contains(&origin) {
                    unknown.push(origin.clone());
                }
                waiting.push((origin, index, push));
            }
        }
        let guard = self.app.policy.guard.clone();
        let timeout = Duration::from_millis(self.app.config.connect_timeout_ms);
        let vetting = async move {
            let checks = unknown.into_iter().map(|origin| {
                let guard = guard.clone();
                async move {
                    let verdict = guard.vet_url(&origin, timeout).await;
                    (origin, verdict)
                }
            });
            join_all(checks).await
        };
        // Known origins are queued while the new ones are looked up.
        let first = futures_util::future::join(forward(known), vetting);
        let sorted = fut::wrap_future::<_, Self>(first).map(move |(sent, verdicts), act, _| {
            for (origin, verdict) in verdicts {
                // A failed lookup is not a verdict: the pool resolves (and vets) again when
                // it dials.
                if let Err(error @ GuardError::Forbidden { .. }) = verdict {
                    tracing::warn!(%origin, %error, "web push origin refused (SSRF guard)");
                    act.origins.refuse(origin, Instant::now());
                }
            }
            let now = Instant::now();
            let mut fresh: HashMap<String, OriginBatch> = HashMap::new();
            for (origin, index, push) in waiting {
                if act.origins.is_refused(&origin, now) {
                    answers[index] = Some(Ok(refused(&push, ADDRESS_REFUSED)));
                    continue;
                }
                match act.dispatcher(&origin) {
                    Ok(dispatcher) => add(&mut fresh, origin, dispatcher, index, push),
                    Err(error) => {
                        tracing::warn!(%origin, %error, "web push origin unusable");
                        answers[index] = Some(Ok(refused(&push, "endpoint_not_allowed")));
                    }
                }
            }
            (answers, sent, fresh)
        });
        Box::pin(sorted.then(|(mut answers, sent, fresh), _, _| {
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
                        None => Ok(refused_as(priority, accepted_at, "shutting_down")),
                    });
                }
                results
            })
        }))
    }
}

impl Handler<Withdraw> for WebPushProvider {
    type Result = ResponseFuture<Vec<String>>;

    fn handle(&mut self, message: Withdraw, _: &mut Context<Self>) -> Self::Result {
        let dispatchers: Vec<_> = self.origins.values().cloned().collect();
        Box::pin(async move {
            let asks = dispatchers.iter().map(|dispatcher| {
                dispatcher.send(Withdraw {
                    callee: message.callee.clone(),
                    call_id: message.call_id.clone(),
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

impl Handler<Status> for WebPushProvider {
    type Result = ResponseFuture<DispatcherStatus>;

    /// The sum over every origin (queues, deliveries, outcomes), for tests and metrics.
    fn handle(&mut self, _: Status, _: &mut Context<Self>) -> Self::Result {
        let dispatchers: Vec<_> = self.origins.values().cloned().collect();
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
