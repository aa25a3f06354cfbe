//! The router: call events become prioritised pushes (docs/architecture.md, "Threads, actors and mailboxes").
//!
//! One [`Router`] actor per HTTP worker, on the worker's thread, with its own providers and
//! store connection; an event is routed by the router of the worker that received it
//! ([`routers`]). For an incoming call it claims the event (so the same event rings once
//! on any node) while it looks up the callee's live registrations, builds one P0 push per device
//! ([`fanout`]) and hands them to the providers in one batch per provider. For the end of a
//! call it first withdraws the call's rings still waiting in the queues — those phones never
//! rang, so they get no "call ended" either — then sends P1 "call ended" (or the P2 missed-call
//! notice) to the other devices but the one that answered.
//!
//! A ring that cannot be queued is never dropped silently: the event is given back (its
//! claim released, its queued rings withdrawn) and the caller gets [`RouteError::Overloaded`]
//! (`503` with `Retry-After`), so call control can retry. Lower priorities are shed instead.

pub mod admission;
pub mod credentials;
pub mod drain;
pub mod ends;
mod event;
pub mod fanout;
pub mod intake;
pub mod internal;
pub mod outages;
pub mod outcomes;
pub mod ownership;
pub mod ringing;
pub mod routers;

use crate::providers::dispatcher::{Submit, Ticket, Withdraw};
use crate::providers::wiring::{ProviderHandle, ProviderKey, ProviderSet};
use crate::push::Push;
use crate::registry::lease::Progress;
use crate::registry::{AnyStore, StoreError};
use crate::vocab::{IdentityKey, Outcome, Platform, Priority};
use actix::prelude::*;
use admission::Admission;
use event::EventContext;
use fanout::{CallEvent, EndEvent};
use intake::{Arrival, RouterIntake};
use ownership::Ownership;
use std::sync::Arc;
use tracing::Instrument;

pub use routers::{Routers, RoutersError};

/// Why an event was not taken.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The store failed (lookup or claim).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A ring could not be queued: the providers' queues are full of rings. Retry later.
    #[error("the push queues are full")]
    Overloaded,
    /// The router has too many events in flight for this event's priority (see
    /// [`admission`]): it was refused before any of its work. Retry later.
    #[error("the router is shedding {} events", .0.label())]
    Shed(Priority),
}

/// What will become of one device's push.
pub enum DeviceOutcome {
    /// Queued: the ticket carries the outcome.
    Pending(Ticket),
    /// Already known (no provider configured, or shed on arrival).
    Known(Outcome),
}

/// One device the event reached.
pub struct DevicePush {
    /// The device.
    pub device_id: String,
    /// Its platform (`None`: a device connected to the internal push channel without a
    /// registration).
    pub platform: Option<Platform>,
    /// Its push's outcome, or the ticket for it.
    pub outcome: DeviceOutcome,
}

/// What the router did with an event.
pub struct Routed {
    /// The event id as claimed.
    pub event_id: String,
    /// The event was seen before (on this or another node): nothing was sent again.
    pub duplicate: bool,
    /// For a duplicate: how far the event's owner got, when the store said.
    pub progress: Option<Progress>,
    /// One entry per device pushed to.
    pub devices: Vec<DevicePush>,
}

/// Where the router's answer to one event arrives. The event's work runs as a task of its own
/// on the router's thread, not inside the actor's context: actix polls every future spawned
/// into a context on each wake, so a router with n events in flight would do O(n) work per
/// Redis reply (the same profile finding that made the dispatcher poll its deliveries as
/// one set).
pub type RouteReply = tokio::sync::oneshot::Receiver<Result<Routed, RouteError>>;

/// An incoming call to route, and how it came.
#[derive(Message)]
#[rtype(result = "RouteReply")]
pub struct Ring(pub CallEvent, pub Arrival);

/// The end of a call to route, and how it came.
#[derive(Message)]
#[rtype(result = "RouteReply")]
pub struct End(pub EndEvent, pub Arrival);

/// The router of one HTTP worker.
pub struct Router {
    /// Registrations and event claims.
    store: AnyStore,
    /// The router's providers, shared with every event in flight (an `Arc`: each event's
    /// task holds it, which must not copy the map of handles).
    providers: Arc<ProviderSet>,
    /// The mailbox bound (backpressure to the API).
    mailbox_capacity: usize,
    /// Events in flight, and which priorities it still admits.
    admission: Admission,
    /// The node's terms for owning events.
    ownership: Ownership,
    /// The node's routers, for what an event does on all of them (an end withdraws the call's
    /// rings wherever they wait).
    peers: Routers,
    /// This router's own address, once started: the one of `peers` not to ask.
    me: Option<Addr<Router>>,
    /// The internal push channel, when the node has one.
    channel: Option<internal::ChannelFirst>,
    /// The durable intake over this router's store connection (`[intake] durable`).
    intake: Option<RouterIntake>,
    /// The outcome stream over this router's store connection (`[outcomes] stream`).
    outcomes: Option<outcomes::RouterOutcomes>,
}

impl Router {
    /// A router over `store` handing pushes to `providers`, with at most `max_in_flight`
    /// events being routed at once (lower priorities are refused earlier, see [`admission`]);
    /// `peers` are the node's routers, this one among them once it joins.
    pub fn new(
        store: AnyStore,
        providers: Arc<ProviderSet>,
        mailbox_capacity: usize,
        max_in_flight: usize,
        ownership: Ownership,
        peers: Routers,
    ) -> Router {
        let intake = ownership
            .intake
            .as_ref()
            .and_then(|intake| intake.on(&store));
        let outcomes = ownership
            .outcomes
            .as_ref()
            .and_then(|outcomes| outcomes.on(&store));
        Router {
            outcomes,
            store,
            providers,
            mailbox_capacity,
            admission: Admission::new(max_in_flight),
            ownership,
            peers,
            me: None,
            channel: None,
            intake,
        }
    }

    /// Rings the devices connected to the internal push channel over it first (see
    /// [`internal`]).
    pub fn with_channel(mut self, channel: internal::ChannelFirst) -> Router {
        self.channel = Some(channel);
        self
    }

    /// What an event's task takes from this router.
    fn event_context(&self) -> EventContext {
        EventContext {
            store: self.store.clone(),
            providers: Arc::clone(&self.providers),
            channel: self.channel.clone(),
            ownership: self.ownership.clone(),
            intake: self.intake.clone(),
            outcomes: self.outcomes.clone(),
        }
    }

    /// Routes one event as a task of its own if its priority is admitted, else refuses it at
    /// once.
    fn admitted(&self, priority: Priority, work: EventWork) -> RouteReply {
        match self.admission.admit(priority) {
            Some(pass) => run(work, pass),
            None => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let _ = reply.send(Err(RouteError::Shed(priority)));
                answer
            }
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        self.me = Some(ctx.address());
    }
}

impl Handler<Ring> for Router {
    type Result = MessageResult<Ring>;

    fn handle(&mut self, Ring(call, arrival): Ring, _: &mut Context<Self>) -> Self::Result {
        let context = self.event_context();
        let ringing = self.peers.ringing().clone();
        let span = crate::logging::call_event_span(&call.event_id);
        MessageResult(
            self.admitted(
                Priority::P0,
                Box::pin(
                    async move {
                        let entry = |accepted_at| intake::entry::encode_ring(&call, accepted_at);
                        let taken = context
                            .take(
                                &arrival,
                                &call.callee,
                                &call.event_id,
                                call.ring_timeout,
                                entry,
                            )
                            .await?;
                        let mut held = match taken {
                            Ok(held) => held,
                            Err(duplicate) => return Ok(duplicate),
                        };
                        // Counted before any push reaches a provider: an end from now on
                        // finds the call and withdraws what is still queued.
                        held.claim
                            .keep_ringing(ringing.hold(&call.callee, &call.call_id));
                        let opted_out = internal::opted_out(&held.registrations);
                        let rings = fanout::rings(&call, held.registrations, held.accepted_at);
                        let pushes = not_done(rings, &held.done);
                        let (pushes, offers) = match &context.channel {
                            Some(channel) => {
                                channel.split(&call, &opted_out, pushes, &held.done, held.elsewhere)
                            }
                            None => (pushes, internal::Offers::default()),
                        };
                        let mut devices = submit(&context.providers, pushes).await;
                        let refused_ring = devices.iter().any(|device| {
                            matches!(&device.outcome, DeviceOutcome::Known(Outcome::Shed))
                        });
                        if refused_ring {
                            // Give the whole event back: withdraw what was queued, release the claim.
                            let call_id = Arc::from(&*call.call_id);
                            withdraw(&context.providers, &call.callee, &call_id).await;
                            context.give_back(held.claim).await;
                            return Err(RouteError::Overloaded);
                        }
                        if let Some(channel) = &context.channel {
                            devices.extend(channel.offer(
                                &call,
                                held.now,
                                held.deadline,
                                offers,
                                &context.providers,
                            ));
                        }
                        tracing::debug!(devices = devices.len(), "rings queued");
                        Ok(context.routed(
                            held.claim,
                            call.event_id,
                            devices,
                            &call.call_id,
                            crate::vocab::PushKind::IncomingCall,
                        ))
                    }
                    .instrument(span),
                ),
            ),
        )
    }
}

impl Handler<End> for Router {
    type Result = MessageResult<End>;

    fn handle(&mut self, End(end, arrival): End, _: &mut Context<Self>) -> Self::Result {
        let context = self.event_context();
        let (peers, me) = (self.peers.clone(), self.me.clone());
        let span = crate::logging::call_event_span(&end.event_id);
        MessageResult(
            self.admitted(
                end.kind().priority(),
                Box::pin(
                    async move {
                        let entry = |accepted_at| intake::entry::encode_end(&end, accepted_at);
                        let lasts = end.deadline_after();
                        let taken = context
                            .take(&arrival, &end.callee, &end.event_id, lasts, entry)
                            .await?;
                        let held = match taken {
                            Ok(held) => held,
                            Err(duplicate) => return Ok(duplicate),
                        };
                        // The call is over: rings still queued never leave, on this router, on the
                        // node's others (a ring is routed where it arrived) or on other nodes.
                        // Only a call still ringing on this node can have one queued here.
                        let not_rung = if peers.ringing().may_hold(&end.callee, &end.call_id) {
                            let call_id = Arc::from(&*end.call_id);
                            let (mut here, on_peers) = tokio::join!(
                                withdraw(&context.providers, &end.callee, &call_id),
                                peers.withdraw_elsewhere(me.as_ref(), &end.callee, &call_id)
                            );
                            here.extend(on_peers);
                            here
                        } else {
                            Vec::new()
                        };
                        if let Some(ends) = &context.ownership.ends {
                            ends.publish(&ends::EndNotice {
                                node: context.ownership.node.to_string(),
                                tenant: end.callee.tenant.clone(),
                                identity: end.callee.identity.clone(),
                                call_id: end.call_id.clone(),
                            })
                            .await;
                        }
                        if let Some(channel) = &context.channel {
                            channel
                                .notify_end(&end, held.deadline, held.elsewhere)
                                .await;
                        }
                        let ends =
                            fanout::ends(&end, held.registrations, &not_rung, held.accepted_at);
                        let pushes = not_done(ends, &held.done);
                        tracing::debug!(
                            withdrawn = not_rung.len(),
                            pushes = pushes.len(),
                            "call ended"
                        );
                        let devices = submit(&context.providers, pushes).await;
                        let kind = end.kind();
                        Ok(context.routed(held.claim, end.event_id, devices, &end.call_id, kind))
                    }
                    .instrument(span),
                ),
            ),
        )
    }
}

/// Withdraws the callee's queued rings of a call that ended on another router of this node or
/// on another node ([`ends`]); answers the devices whose ring was withdrawn.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct WithdrawRings {
    /// Whose rings.
    pub callee: Arc<IdentityKey>,
    /// The call.
    pub call_id: Arc<str>,
    /// The call ended on another node (counted as `ringcast_end_broadcasts_total{outcome=
    /// "withdrew"}` when it withdraws something), not on another router of this one.
    pub ended_on_another_node: bool,
}

impl Handler<WithdrawRings> for Router {
    type Result = ResponseFuture<Vec<String>>;

    fn handle(&mut self, message: WithdrawRings, _: &mut Context<Self>) -> Self::Result {
        let providers = self.providers.clone();
        Box::pin(async move {
            let withdrawn = withdraw(&providers, &message.callee, &message.call_id).await;
            if message.ended_on_another_node && !withdrawn.is_empty() {
                crate::metrics::end_broadcast(crate::metrics::EndBroadcast::Withdrew);
                tracing::debug!(
                    withdrawn = withdrawn.len(),
                    "rings withdrawn: the call ended on another node"
                );
            }
            withdrawn
        })
    }
}

/// The pushes to devices that have no outcome yet (all of them, unless the event was taken
/// over from a node that died part-way).
fn not_done(pushes: Vec<Push>, done: &std::collections::HashSet<String>) -> Vec<Push> {
    if done.is_empty() {
        return pushes;
    }
    pushes
        .into_iter()
        .filter(|push| !done.contains(&push.device_id))
        .collect()
}

/// An event's routing, boxed where its handler writes it: the future holds every step's
/// state (kilobytes), and each move of it (instrumenting it, handing it to [`run`], into its
/// task) copied all of it; behind a box each move is one pointer.
type EventWork = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Routed, RouteError>>>>;

/// Runs `work` as a task of its own on the current (the router's) thread, holding its
/// admission `pass` until it is routed; its answer arrives through the returned receiver. A
/// caller that gave up drops the receiver; the work still finishes, so a claimed event is
/// never left half-routed.
fn run(work: EventWork, pass: admission::Pass) -> RouteReply {
    let (reply, answer) = tokio::sync::oneshot::channel();
    actix::spawn(async move {
        let routed = work.await;
        drop(pass);
        let _ = reply.send(routed);
    });
    answer
}

/// Hands `pushes` to their providers, one batch per provider. A push without a provider is
/// rejected as `provider_not_configured`; one the queues refuse is `Shed` (for a ring, the
/// caller turns that into `503`).
async fn submit(providers: &ProviderSet, pushes: Vec<Push>) -> Vec<DevicePush> {
    let mut devices = Vec::with_capacity(pushes.len());
    // An event's pushes go to a handful of providers (one per app and environment), most
    // often one: each push is matched against the batches so far by comparing its fields,
    // and only the first push of a provider builds a key and looks it up.
    let mut batches: Vec<(ProviderKey, &ProviderHandle, Vec<Push>)> = Vec::new();
    let count = pushes.len();
    for push in pushes {
        if let Some((_, _, batch)) = batches.iter_mut().find(|(key, ..)| key.is_of(&push)) {
            batch.push(push);
            continue;
        }
        let key = ProviderKey::of(&push);
        if let Some(provider) = providers.get(&key) {
            // Sized for the whole event: most events have one provider, and a batch grown
            // push by push reallocated twice for five devices.
            let mut batch = Vec::with_capacity(count);
            batch.push(push);
            batches.push((key, provider, batch));
        } else {
            let outcome = Outcome::Rejected {
                reason: "provider_not_configured".into(),
            };
            counted(&push, &outcome);
            devices.push(DevicePush {
                platform: Some(push.address.platform()),
                device_id: push.device_id,
                outcome: DeviceOutcome::Known(outcome),
            });
        }
    }
    for (_, provider, batch) in batches {
        let names: Vec<(String, Platform)> = batch
            .iter()
            .map(|push| (push.device_id.clone(), push.address.platform()))
            .collect();
        // A stopped provider (the node is stopping) queued nothing: every push is shed.
        let answers = provider
            .submit
            .send(Submit(batch))
            .await
            .unwrap_or_default();
        let mut answers = answers.into_iter();
        for (device_id, platform) in names {
            let outcome = match answers.next() {
                Some(Ok(ticket)) => DeviceOutcome::Pending(ticket),
                Some(Err(refused)) => {
                    counted(&refused, &Outcome::Shed);
                    DeviceOutcome::Known(Outcome::Shed)
                }
                None => DeviceOutcome::Known(Outcome::Shed),
            };
            devices.push(DevicePush {
                device_id,
                platform: Some(platform),
                outcome,
            });
        }
    }
    devices
}

/// Counts a push that ended here, without reaching a provider's queue (the providers count
/// every other push).
fn counted(push: &Push, outcome: &Outcome) {
    crate::metrics::push_finished(
        push.address.platform(),
        push.priority(),
        outcome,
        std::time::Duration::ZERO,
    );
}

/// Withdraws the callee's queued rings of `call_id` from every provider of its tenant;
/// returns the devices whose ring was withdrawn. Matched by callee too: a group call rings
/// several callees under one call id, and one callee's end must not silence the others.
async fn withdraw(
    providers: &ProviderSet,
    callee: &Arc<IdentityKey>,
    call_id: &Arc<str>,
) -> Vec<String> {
    let mut withdrawn = Vec::new();
    for provider in providers.of_tenant(&callee.tenant) {
        let message = Withdraw {
            callee: Arc::clone(callee),
            call_id: Arc::clone(call_id),
        };
        if let Ok(devices) = provider.withdraw.send(message).await {
            withdrawn.extend(devices);
        }
    }
    withdrawn
}
