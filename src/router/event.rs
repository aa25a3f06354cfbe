//! The steps every event takes, ring or end, before and after its own: what its task takes
//! from the router ([`EventContext`]), taking the event (its intake entry, its claim, and the
//! callee's registrations and presence read meanwhile: [`EventContext::take`]), and the
//! answer that keeps it owned until its pushes' outcomes are known
//! ([`EventContext::routed`]). What an event sends in between is its handler's (src/router.rs).

use super::intake::{Arrival, Pending, RouterIntake};
use super::ownership::{self, EventRef, Ownership, Taken};
use super::ringing::RingHeld;
use super::{DevicePush, RouteError, Routed, internal, outcomes};
use crate::providers::wiring::ProviderSet;
use crate::registry::lease::Progress;
use crate::registry::{AnyStore, Registration, StoreError};
use crate::vocab::{IdentityKey, PushKind, UnixMillis};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The router's handles an event's task holds (each a cheap clone: `Arc`s and connection
/// handles).
pub(super) struct EventContext {
    pub store: AnyStore,
    pub providers: Arc<ProviderSet>,
    pub channel: Option<internal::ChannelFirst>,
    pub ownership: Ownership,
    pub intake: Option<RouterIntake>,
    pub outcomes: Option<outcomes::RouterOutcomes>,
}

/// An event this router took: when it was accepted and until when it may push, the devices
/// already done (after a takeover), what it read with its claim, and the claim itself.
pub(super) struct Held {
    pub now: UnixMillis,
    pub accepted_at: UnixMillis,
    pub deadline: UnixMillis,
    pub done: HashSet<String>,
    pub registrations: Vec<Registration>,
    pub elsewhere: internal::Elsewhere,
    pub claim: Claim,
}

/// What keeps a taken event this router's: the event, the guards that keep it counted here
/// and its intake entry.
pub(super) struct Claim {
    pub event: EventRef,
    guards: ownership::Guards,
    pub pending: Option<Pending>,
}

impl Claim {
    /// Keeps a ring's call counted as ringing on this node until the event has every outcome
    /// (src/router/ringing.rs).
    pub fn keep_ringing(&mut self, held: RingHeld) {
        self.guards.keep_ringing(held);
    }
}

impl EventContext {
    /// Takes the event `event_id` for `callee`, which may push for `lasts` after it was
    /// accepted: its intake entry (appended for an API request; `entry` builds it from the
    /// time it was accepted), then its claim, while the callee's registrations and presence
    /// are read ([`lookups`]). `Ok(Err(answer))` is a duplicate's answer, its entry settled;
    /// an error (of the claim, or of the lookup once the event is owned: its claim is
    /// released) settles the entry as refused.
    pub async fn take(
        &self,
        arrival: &Arrival,
        callee: &IdentityKey,
        event_id: &str,
        lasts: Duration,
        entry: impl FnOnce(UnixMillis) -> String,
    ) -> Result<Result<Held, Routed>, RouteError> {
        let now = self.ownership.clock.now();
        // An event read from a stream keeps the time it was accepted at, and so its deadline.
        let accepted_at = accepted_at(arrival, now);
        let deadline = accepted_at + lasts.as_millis() as u64;
        let event = EventRef {
            tenant: callee.tenant.clone(),
            event_id: event_id.to_owned(),
        };
        let claimed = async {
            let entry = || entry(accepted_at);
            let pending = Pending::of(
                self.intake.as_ref(),
                arrival,
                &event.tenant,
                &event.event_id,
                entry,
            )
            .await?;
            let claimed =
                ownership::claim(&self.store, &self.ownership, &event, deadline, now).await;
            Ok::<_, RouteError>((pending, claimed))
        };
        let (taken, (listed, elsewhere)) = tokio::join!(
            claimed,
            lookups(&self.store, self.channel.as_ref(), callee, now)
        );
        let (pending, claimed) = taken?;
        match claimed {
            Ok(Taken::Owned { done, guards }) => match listed {
                Ok(registrations) => Ok(Ok(Held {
                    now,
                    accepted_at,
                    deadline,
                    done,
                    registrations,
                    elsewhere,
                    claim: Claim {
                        event,
                        guards,
                        pending,
                    },
                })),
                Err(error) => {
                    ownership::release(&self.store, &self.ownership, &event).await;
                    refused(pending).await;
                    Err(error.into())
                }
            },
            Ok(Taken::Duplicate(progress)) => {
                if let Some(pending) = pending {
                    pending.duplicate(progress.as_ref()).await;
                }
                Ok(Err(duplicate(event.event_id, progress)))
            }
            Err(error) => {
                refused(pending).await;
                Err(error.into())
            }
        }
    }

    /// Gives a taken event back (its pushes could not be queued): releases its claim and
    /// settles its entry as refused.
    pub async fn give_back(&self, claim: Claim) {
        ownership::release(&self.store, &self.ownership, &claim.event).await;
        refused(claim.pending).await;
    }

    /// The answer for an event taken under `claim` that sent `devices` ([`ownership::hold`]
    /// keeps it owned until their outcomes are known, and reports them on the outcome stream
    /// as `kind` pushes of `call_id`).
    pub fn routed(
        self,
        claim: Claim,
        event_id: String,
        devices: Vec<DevicePush>,
        call_id: &str,
        kind: PushKind,
    ) -> Routed {
        let report = self.outcomes.map(|stream| ownership::Report {
            stream,
            call_id: call_id.to_owned(),
            kind,
        });
        let Claim {
            event,
            guards,
            pending,
        } = claim;
        Routed {
            event_id,
            duplicate: false,
            progress: None,
            devices: ownership::hold(
                self.store,
                &self.ownership,
                event,
                devices,
                guards,
                pending,
                report,
            ),
        }
    }
}

/// When the event was accepted: now, unless it was read from a stream.
fn accepted_at(arrival: &Arrival, now: UnixMillis) -> UnixMillis {
    match arrival {
        Arrival::Api => now,
        Arrival::Stream { accepted_at, .. } => (*accepted_at).min(now),
    }
}

/// What an event reads besides its claim: the callee's live registrations and, with a
/// channel, its devices connected to other nodes. The router reads them while it claims the
/// event, not after: three store round trips in a row were the larger part of a ring's wait
/// at light load, and each was a wake-up more on a busy box. For a duplicate (rare: a
/// retry) the reads are wasted; a failed lookup is only acted on once the event is owned.
async fn lookups(
    store: &AnyStore,
    channel: Option<&internal::ChannelFirst>,
    callee: &IdentityKey,
    now: UnixMillis,
) -> (Result<Vec<Registration>, StoreError>, internal::Elsewhere) {
    let presence = async {
        match channel {
            Some(channel) => channel.elsewhere(callee, now).await,
            None => internal::Elsewhere::default(),
        }
    };
    tokio::join!(
        crate::registry::shard::list_metered(store, callee, now),
        presence
    )
}

/// Settles the entry of an event that could not be routed now (see [`Pending::refused`]).
async fn refused(pending: Option<Pending>) {
    if let Some(pending) = pending {
        pending.refused().await;
    }
}

/// The answer to an event seen before.
fn duplicate(event_id: String, progress: Option<Progress>) -> Routed {
    Routed {
        event_id,
        duplicate: true,
        progress,
        devices: Vec::new(),
    }
}
