//! How a node owns a call event while it delivers it (docs/architecture.md, "Cluster semantics"; the
//! rule itself is [`crate::registry::lease`]).
//!
//! [`claim`] asks the store for the event. Once the node owns it and its pushes are queued,
//! [`hold`] keeps the claim alive in a task of its own: it relays each push's outcome to the
//! caller's ticket, and every `renew_every` while pushes are in flight renews the lease and
//! records the devices answered since (so a node that takes the event over does not push to
//! them again); once every device has an outcome it marks the event finished, recording the
//! rest in the same call. A node that dies
//! stops renewing; its lease lapses and a duplicate sent to another node takes the event over.
//!
//! Every way out of an owned event gives the claim back or finishes it: a failed lookup or a
//! refused ring releases it (`503`, the retry must ring), a claim whose answer was lost is
//! released at once, and if even that fails, the lease lapses within `lease_ms`.

use super::drain::{EventsInFlight, InFlight};
use super::outages::StoreOutages;
use super::ringing::RingHeld;
use super::{DeviceOutcome, DevicePush};
use crate::clock::Clock;
use crate::metrics::{self, LeaseOutcome};
use crate::registry::lease::{Claim, LeaseTerms, Progress};
use crate::registry::{AnyStore, Store, StoreError};
use crate::vocab::UnixMillis;
use awaited::AwaitedSet;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// This node's terms for owning events; one per node, cloned into every router.
#[derive(Clone)]
pub struct Ownership {
    /// The node's id in leases (`[cluster] node_id`).
    pub node: Arc<str>,
    /// How long a lease runs unless renewed.
    pub lease: Duration,
    /// How often an owner renews it.
    pub renew_every: Duration,
    /// The node's count of events in flight, which a drain waits for.
    pub in_flight: EventsInFlight,
    /// The events the node's routers are routing now.
    pub routing: RoutingSet,
    /// When the node last saw a lease operation fail: no takeovers for a while after
    /// ([`super::outages`]).
    pub outages: StoreOutages,
    /// Where this node tells the others that a call ended (`None` with the embedded store:
    /// a node alone has no others).
    pub ends: Option<super::ends::EndChannel>,
    /// The durable intake (`[intake] durable`; `None`: events are taken in directly).
    pub intake: Option<super::intake::DurableIntake>,
    /// The outcome stream (`[outcomes] stream`; `None`: outcomes are not published).
    pub outcomes: Option<super::outcomes::OutcomeStream>,
    /// Where the routers read "now" for claims, renewals and finishes: the wall clock in
    /// production, tokio's paused time in tests, so a lease can lapse without waiting for it.
    pub clock: Clock,
}

/// Where an event's outcomes are published, and what they are outcomes of.
pub struct Report {
    /// The router's outcome stream.
    pub stream: super::outcomes::RouterOutcomes,
    /// The event's call.
    pub call_id: String,
    /// What the event sends.
    pub kind: crate::vocab::PushKind,
}

impl Report {
    /// Publishes one device's outcome of `event`, stamped by `clock`.
    async fn publish(
        &self,
        clock: Clock,
        event: &EventRef,
        device_id: &str,
        platform: Option<crate::vocab::Platform>,
        outcome: &crate::vocab::Outcome,
    ) {
        let report = super::outcomes::DeviceReport {
            event_id: &event.event_id,
            call_id: &self.call_id,
            kind: self.kind,
            device_id,
            platform,
            outcome,
            at: clock.now(),
        };
        self.stream.append(&event.tenant, &report).await;
    }
}

/// One event of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventRef {
    /// The tenant (event ids are the tenant's).
    pub tenant: String,
    /// The caller's event id.
    pub event_id: String,
}

/// What a claim gave.
pub enum Taken {
    /// The node owns the event: push to every device not in `done`. The guards keep the event
    /// counted as routed here until [`hold`] lets go.
    Owned {
        /// Devices that already have an outcome (after a takeover).
        done: HashSet<String>,
        /// Keeps the event in this router's set and in the node's drain count.
        guards: Guards,
    },
    /// A duplicate: another node owns the event, this router is routing it already, or it
    /// finished.
    Duplicate(Option<Progress>),
}

/// Keeps an event counted while it is routed here.
pub struct Guards {
    _routing: Routing,
    _in_flight: InFlight,
    /// A ring's call, counted as ringing here until every outcome is known (`None` for other
    /// events).
    ringing: Option<RingHeld>,
    /// The event's deadline: how long its finish may be tried again.
    deadline: UnixMillis,
}

impl Guards {
    /// Keeps the ring's call counted as ringing on this node until every push of the event
    /// has its outcome ([`hold`] lets it go then, before the event's finish is written).
    pub fn keep_ringing(&mut self, held: RingHeld) {
        self.ringing = Some(held);
    }
}

/// The events the node is routing now, on any of its routers: a second copy of an event this
/// node is still routing is a duplicate without asking the store, which is also what lets the
/// store hand a node its own claim back after a lost answer (see `lease::acquire`). One set
/// for the node, not one per router: each HTTP worker routes the events it receives, so two
/// copies of one event can arrive on two routers at once, and the store would give both the
/// node's claim. Held for an insert or a remove only, never across an await.
#[derive(Clone, Default)]
pub struct RoutingSet(Arc<Mutex<HashSet<EventRef>>>);

/// One event in a [`RoutingSet`], until dropped.
struct Routing {
    set: RoutingSet,
    event: EventRef,
}

impl RoutingSet {
    fn enter(&self, event: &EventRef) -> Option<Routing> {
        let mut routing = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        routing.insert(event.clone()).then(|| Routing {
            set: self.clone(),
            event: event.clone(),
        })
    }
}

impl Drop for Routing {
    fn drop(&mut self) {
        let mut routing = self.set.0.lock().unwrap_or_else(PoisonError::into_inner);
        routing.remove(&self.event);
    }
}

/// Claims `event` for this node until `deadline`.
pub async fn claim(
    store: &AnyStore,
    ownership: &Ownership,
    event: &EventRef,
    deadline: UnixMillis,
    now: UnixMillis,
) -> Result<Taken, StoreError> {
    let Some(routing) = ownership.routing.enter(event) else {
        metrics::event_lease(LeaseOutcome::Duplicate);
        return Ok(Taken::Duplicate(None));
    };
    let in_flight = ownership.in_flight.enter();
    let lease_ms = ownership.lease.as_millis() as u64;
    let terms = LeaseTerms {
        node: Arc::clone(&ownership.node),
        lease_ms,
        deadline,
        may_take_over: ownership.outages.may_take_over(now, lease_ms),
    };
    let claim = match store
        .acquire_event(&event.tenant, &event.event_id, &terms, now)
        .await
    {
        Ok(claim) => claim,
        Err(error) => {
            // The claim may have been written and only its answer lost: give it back, so
            // that the caller's retry rings at once rather than after the lease. In the
            // background: the caller's `503` does not wait for a store that just failed.
            metrics::event_lease(LeaseOutcome::StoreError);
            ownership.outages.failed(&error, now);
            let (store, ownership, event) = (store.clone(), ownership.clone(), event.clone());
            actix::spawn(async move { release(&store, &ownership, &event).await });
            return Err(error);
        }
    };
    Ok(match claim {
        Claim::Owned {
            taken_over_from,
            done,
        } => {
            if let Some(previous) = taken_over_from {
                metrics::event_lease(LeaseOutcome::TakenOver);
                tracing::info!(previous_owner = %previous, done = done.len(),
                    "event taken over after its owner's lease lapsed");
            } else {
                metrics::event_lease(LeaseOutcome::Owned);
            }
            Taken::Owned {
                done: done.into_iter().collect(),
                guards: Guards {
                    _routing: routing,
                    _in_flight: in_flight,
                    ringing: None,
                    deadline,
                },
            }
        }
        Claim::Lapsed { owner } => {
            // Its owner may be alive and cut off only by the store failing here: ask again
            // later (a `503` for the API, a pending entry for the readers).
            metrics::event_lease(LeaseOutcome::TakeoverWithheld);
            tracing::info!(owner = %owner,
                "lapsed event lease not taken over: the store failed here recently");
            return Err(StoreError::Unavailable(
                "the event's owner stopped renewing while the store was failing; not taken over yet"
                    .into(),
            ));
        }
        Claim::Held { owner, progress } => {
            metrics::event_lease(LeaseOutcome::Duplicate);
            tracing::debug!(owner = %owner, done = progress.done.len(),
                finished = progress.finished, "duplicate event");
            Taken::Duplicate(Some(progress))
        }
    })
}

/// Gives an event's claim back (it could not be routed); a failure only means a retry may
/// be a duplicate until the lease lapses, so it is logged, not returned.
pub async fn release(store: &AnyStore, ownership: &Ownership, event: &EventRef) {
    match store
        .release_event(&event.tenant, &event.event_id, &ownership.node)
        .await
    {
        Ok(()) => metrics::event_lease(LeaseOutcome::Released),
        Err(error) => {
            metrics::event_lease(LeaseOutcome::StoreError);
            ownership.outages.failed(&error, ownership.clock.now());
            tracing::warn!(tenant = %event.tenant, %error,
                "could not release an event claim; it lapses with its lease");
        }
    }
}

/// Holds an owned event until each of `devices` has an outcome (see the module doc), in a
/// task of its own on the current arbiter; returns the devices with tickets that carry the
/// same outcomes. The event's durable intake entry, if any, is acknowledged once every
/// device has an outcome, and left pending for another node if the node stops first.
pub fn hold(
    store: AnyStore,
    ownership: &Ownership,
    event: EventRef,
    devices: Vec<DevicePush>,
    guards: Guards,
    entry: Option<super::intake::Pending>,
    report: Option<Report>,
) -> Vec<DevicePush> {
    let mut done = Vec::new();
    let mut waiting = AwaitedSet::with_capacity(devices.len());
    let mut relayed = Vec::with_capacity(devices.len());
    // Outcomes known at once, published first by the task below.
    let mut known = Vec::new();
    for device in devices {
        let outcome = match device.outcome {
            DeviceOutcome::Known(outcome) => {
                done.push(device.device_id.clone());
                if report.is_some() {
                    known.push((device.device_id.clone(), device.platform, outcome.clone()));
                }
                DeviceOutcome::Known(outcome)
            }
            DeviceOutcome::Pending(ticket) => {
                let (relay, relayed_ticket) = oneshot::channel();
                waiting.push(device.device_id.clone(), device.platform, ticket, relay);
                DeviceOutcome::Pending(relayed_ticket)
            }
        };
        relayed.push(DevicePush {
            device_id: device.device_id,
            platform: device.platform,
            outcome,
        });
    }
    let deadline = guards.deadline;
    let (node, lease_ms, renew_every, outages, clock) = (
        Arc::clone(&ownership.node),
        ownership.lease.as_millis() as u64,
        ownership.renew_every,
        ownership.outages.clone(),
        ownership.clock,
    );
    actix::spawn(async move {
        let mut guards = guards;
        if let Some(report) = &report {
            for (device_id, platform, outcome) in &known {
                report
                    .publish(clock, &event, device_id, *platform, outcome)
                    .await;
            }
        }
        let mut owned = true;
        let mut unfinished = 0;
        let mut renewals =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !waiting.is_empty() {
            tokio::select! {
                Some((device, outcome)) = waiting.next() => {
                    match outcome {
                        Ok(outcome) => {
                            // The waiting caller first; the stream after.
                            let published = report.as_ref().map(|_| outcome.clone());
                            let _ = device.relay.send(outcome);
                            if let (Some(report), Some(outcome)) = (&report, published) {
                                report.publish(clock, &event, &device.device_id, device.platform, &outcome).await;
                            }
                            done.push(device.device_id);
                        }
                        // The dispatcher stopped (the node is stopping) without an outcome:
                        // the device is not done; whoever takes the event over pushes to it.
                        Err(_) => {
                            unfinished += 1;
                            continue;
                        }
                    }
                    if waiting.is_empty() {
                        break;
                    }
                    // Recorded with the next renewal, not now: one store round trip per
                    // outcome cost an event of five devices four extra scripts on the hot
                    // path, while most events finish before their first renewal, so their
                    // outcomes ride on `finish_event` alone.
                    continue;
                }
                _ = renewals.tick() => {}
            }
            // Every `renew_every`: renew the lease and record the outcomes that came since. A
            // node that takes over after a crash re-sends the pushes that were in flight and
            // those answered since the last renewal (at most `renew_ms` of them).
            let now = clock.now();
            match store
                .renew_event(&event.tenant, &event.event_id, &node, &done, lease_ms, now)
                .await
            {
                Ok(still_owned) => {
                    done.clear();
                    if owned && !still_owned {
                        owned = false;
                        metrics::event_lease(LeaseOutcome::Lost);
                        tracing::warn!(tenant = %event.tenant,
                            "event taken over by another node while still in flight here");
                    }
                }
                Err(error) => {
                    metrics::event_lease(LeaseOutcome::StoreError);
                    outages.failed(&error, now);
                    tracing::warn!(tenant = %event.tenant, %error, "could not renew an event lease");
                }
            }
        }
        // Every push has its outcome: no provider holds a ring of the call any more, so an
        // end from now on need not ask them (src/router/ringing.rs).
        guards.ringing = None;
        if unfinished > 0 {
            let now = clock.now();
            // Hand the event over: record what is done and end the lease now, so that a
            // retry on another node pushes to the rest at once.
            let handed = store
                .renew_event(&event.tenant, &event.event_id, &node, &done, 0, now)
                .await;
            metrics::event_lease(match handed {
                Ok(_) => LeaseOutcome::HandedOver,
                Err(error) => {
                    outages.failed(&error, now);
                    LeaseOutcome::StoreError
                }
            });
            return;
        }
        let finishing = Finishing {
            store: &store,
            event: &event,
            node: &node,
            deadline,
            most_between: renew_every,
            outages: &outages,
            clock,
        };
        match finishing.until_written(&done).await {
            Ok(()) => metrics::event_lease(LeaseOutcome::Finished),
            Err(error) => {
                metrics::event_lease(LeaseOutcome::StoreError);
                tracing::warn!(tenant = %event.tenant, %error,
                    "could not mark an event finished; its lease lapses instead");
            }
        }
        // Every device has an outcome, whether or not the store heard it: acknowledged, so
        // no node pushes to those devices again from the stream.
        if let Some(entry) = entry {
            entry.delivered().await;
        }
    });
    relayed
}

/// The first pause before a failed finish is tried again; it doubles up to the renewal
/// rhythm.
const FINISH_RETRY_FIRST: Duration = Duration::from_millis(50);

/// Marks an event finished once every device has an outcome, through a store that may be
/// failing over.
struct Finishing<'a, S: Store> {
    store: &'a S,
    event: &'a EventRef,
    node: &'a str,
    /// Past it the record is gone and nobody rings the event: no point trying.
    deadline: UnixMillis,
    /// The longest pause between tries: the owner's renewal rhythm.
    most_between: Duration,
    /// Where each failed try is noted.
    outages: &'a StoreOutages,
    /// What the deadline and the pauses are measured by.
    clock: Clock,
}

impl<S: Store> Finishing<'_, S> {
    /// Writes the finish, trying again while the store is unavailable, until the event's
    /// deadline. Why: the pushes are done, and if the record never says so, a node that later
    /// claims the event's stream entry (or gets it again from call control) takes it over
    /// and pushes to every device again. A Redis Cluster master killed under load lost the
    /// finish of the events whose answers came while its slots moved: 1-4 duplicate pushes
    /// per 180 events in tests/cluster/failover.rs before this, from pushes that had been
    /// answered. Once the store answers, the late finish still records the devices done even
    /// if the lease lapsed meanwhile (`lease::finish`), so a takeover skips them.
    async fn until_written(&self, done: &[String]) -> Result<(), StoreError> {
        let mut pause = FINISH_RETRY_FIRST;
        loop {
            let now = self.clock.now();
            let written = self
                .store
                .finish_event(
                    &self.event.tenant,
                    &self.event.event_id,
                    self.node,
                    done,
                    now,
                )
                .await;
            if let Err(error) = &written {
                self.outages.failed(error, now);
            }
            match written {
                Err(StoreError::Unavailable(_))
                    if now + (pause.as_millis() as u64) < self.deadline =>
                {
                    self.clock.sleep_until(now + pause.as_millis() as u64).await;
                    pause = (pause * 2).min(self.most_between.max(FINISH_RETRY_FIRST));
                }
                other => return other,
            }
        }
    }
}

mod awaited;

#[cfg(test)]
mod tests;
