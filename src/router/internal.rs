//! Channel first (docs/architecture.md, "The internal push channel"): the router's one hook into the
//! internal push channel ([`crate::channel`]).
//!
//! A ring's devices are split in two: those connected to this node's channel that have not
//! disabled internal push for incoming calls (by their connection's
//! `disable_internal_push_for_incoming_call` or their registration's
//! `disable_internal_push`) are offered the ring over the channel; every other device's
//! platform push goes to the providers at once, exactly as without a channel (no ack wait).
//! An offered device that acks within `[channel] ack_timeout_ms` ends as
//! [`Outcome::DeliveredInternal`] and its platform push is never sent; otherwise its platform
//! push follows, and its outcome is that push's. A connected device without a registration
//! still rings over the channel; without an ack it ends `rejected` (`channel_no_ack`): there
//! is no platform push to fall back to.
//!
//! Call-ended and missed-call notices go over the channel to every connected device (but, for
//! "call ended", the device that answered or declined), next to the platform pushes.
//!
//! Across nodes (Redis stores): a device connected to another node, as presence tells
//! ([`crate::channel::presence`]), is offered the ring through that node
//! ([`crate::channel::relay`]), with the same ack wait and fallback; a device connected here
//! is always offered here.

use super::{DeviceOutcome, DevicePush};
use crate::channel::frame::ServerFrame;
use crate::channel::presence::Present;
use crate::channel::relay::Relay;
use crate::channel::{ChannelHub, Connection, NotQueued, Outbound};
use crate::clock::rfc3339;
use crate::metrics::channel::{self as metrics, FallbackReason};
use crate::providers::wiring::ProviderSet;
use crate::push::{CallPayload, Push};
use crate::registry::Registration;
use crate::router::fanout::{CallEvent, EndEvent};
use crate::vocab::{IdentityKey, Outcome, Platform, PushKind, UnixMillis};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The channel as a router uses it.
#[derive(Clone)]
pub struct ChannelFirst {
    /// The node's connected devices.
    pub hub: ChannelHub,
    /// How long an offered ring waits for its ack (`[channel] ack_timeout_ms`).
    pub ack_timeout: Duration,
    /// The other nodes' devices, with a Redis store; `None` with the embedded one.
    pub relay: Option<Relay>,
}

/// Where an offered device is connected.
enum Target {
    /// To this node.
    Here(Connection),
    /// To another node.
    Elsewhere(Present),
}

impl Target {
    fn device_id(&self) -> &str {
        match self {
            Target::Here(connection) => &connection.device_id,
            Target::Elsewhere(device) => &device.device_id,
        }
    }
}

/// One device a ring is offered to over the channel.
pub struct Offer {
    /// Where it is connected.
    target: Target,
    /// Its platform, when it is registered.
    platform: Option<Platform>,
    /// Its platform push, sent if no ack comes.
    fallback: Option<Push>,
}

/// The devices a ring is offered to over the channel (none without a channel).
#[derive(Default)]
pub struct Offers(Vec<Offer>);

/// The callee's devices connected to other nodes, as presence said when the event was taken
/// ([`ChannelFirst::elsewhere`]).
#[derive(Default)]
pub struct Elsewhere(Vec<Present>);

impl ChannelFirst {
    /// The callee's devices connected to other nodes: one presence read with a relay, none
    /// without. Its own step, so the router can read it together with the event's claim and
    /// the callee's registrations (one round trip's wait instead of three in a row).
    pub async fn elsewhere(&self, callee: &IdentityKey, now: UnixMillis) -> Elsewhere {
        match &self.relay {
            Some(relay) => Elsewhere(relay.elsewhere(callee, now).await),
            None => Elsewhere(Vec::new()),
        }
    }

    /// Splits a ring's `pushes` into those to send now and the devices to offer it to over
    /// the channel first; devices in `done` (an event taken over) are not offered again, nor
    /// those `opted_out` ([`opted_out`]).
    pub fn split(
        &self,
        call: &CallEvent,
        opted_out: &[String],
        pushes: Vec<Push>,
        done: &HashSet<String>,
        Elsewhere(elsewhere): Elsewhere,
    ) -> (Vec<Push>, Offers) {
        let here = self.hub.connections(&call.callee);
        plan(here, elsewhere, opted_out, pushes, done)
    }

    /// Offers the ring over the channel and answers one device per offer; each device's
    /// outcome arrives on its ticket once it acked, or once its platform push has one.
    pub fn offer(
        &self,
        call: &CallEvent,
        now: UnixMillis,
        deadline: UnixMillis,
        Offers(offers): Offers,
        providers: &ProviderSet,
    ) -> Vec<DevicePush> {
        if offers.is_empty() {
            return Vec::new();
        }
        let payload = super::fanout::ring_payload(call, deadline);
        let text: Arc<str> = ServerFrame::of(&call.event_id, &payload).to_text().into();
        let event_id: Arc<str> = Arc::from(call.event_id.as_str());
        // An ack after the ring's deadline means nothing: the phone stopped ringing.
        let wait = self
            .ack_timeout
            .min(Duration::from_millis(deadline.saturating_sub(now)));
        offers
            .into_iter()
            .map(|offer| {
                let device_id = offer.target.device_id().to_owned();
                let delivery = match offer.target {
                    Target::Here(connection) => {
                        let (ack, acked) = oneshot::channel();
                        let queued = connection.offer(Outbound {
                            text: Arc::clone(&text),
                            kind: PushKind::IncomingCall,
                            ack: Some((Arc::clone(&event_id), ack)),
                        });
                        Delivery::Here(queued.map(|()| acked))
                    }
                    Target::Elsewhere(device) => Delivery::Elsewhere(device),
                };
                let (relay, ticket) = oneshot::channel();
                let offered = std::time::Instant::now();
                let providers = providers.clone();
                let fallback = offer.fallback;
                let relayed = self.relay.clone();
                let (callee, text, event_id) = (
                    call.callee.clone(),
                    Arc::clone(&text),
                    Arc::clone(&event_id),
                );
                actix::spawn(async move {
                    let answer = match delivery {
                        Delivery::Here(Err(NotQueued::SlowClient)) => {
                            Err(FallbackReason::SlowClient)
                        }
                        Delivery::Here(Err(NotQueued::Closed)) => Err(FallbackReason::Closed),
                        Delivery::Here(Ok(acked)) => {
                            acked_within(wait, acked, FallbackReason::Closed).await
                        }
                        Delivery::Elsewhere(device) => match &relayed {
                            Some(relayed) => match relayed
                                .ring(&device, &callee, &event_id, &text, wait)
                                .await
                            {
                                Ok(mut pending) => {
                                    acked_within(wait, &mut pending.acked, FallbackReason::Relay)
                                        .await
                                }
                                Err(()) => Err(FallbackReason::Relay),
                            },
                            None => Err(FallbackReason::Relay),
                        },
                    };
                    let reason = match answer {
                        Ok(()) => {
                            metrics::acked_after(offered.elapsed());
                            metrics::push_finished(&Outcome::DeliveredInternal);
                            let _ = relay.send(Outcome::DeliveredInternal);
                            return;
                        }
                        Err(reason) => reason,
                    };
                    let Some(push) = fallback else {
                        let outcome = Outcome::Rejected {
                            reason: "channel_no_ack".into(),
                        };
                        metrics::push_finished(&outcome);
                        let _ = relay.send(outcome);
                        return;
                    };
                    metrics::fallback(reason);
                    let outcome = match super::submit(&providers, vec![push]).await.pop() {
                        Some(DevicePush {
                            outcome: DeviceOutcome::Known(outcome),
                            ..
                        }) => outcome,
                        Some(DevicePush {
                            outcome: DeviceOutcome::Pending(ticket),
                            ..
                        }) => match ticket.await {
                            Ok(outcome) => outcome,
                            // The provider stopped (the node is stopping): no outcome, so the
                            // event's owner hands the device over (see `ownership::hold`).
                            Err(_) => return,
                        },
                        None => return,
                    };
                    let _ = relay.send(outcome);
                });
                DevicePush {
                    device_id,
                    platform: offer.platform,
                    outcome: DeviceOutcome::Pending(ticket),
                }
            })
            .collect()
    }

    /// Tells every connected device of the callee that the call ended (or was missed), but
    /// the one that answered or declined; no ack is awaited.
    /// Devices connected to other nodes get it through their node (one message per node).
    pub async fn notify_end(
        &self,
        end: &EndEvent,
        deadline: UnixMillis,
        Elsewhere(present): Elsewhere,
    ) {
        let connected = self.hub.connections(&end.callee);
        let kind = end.kind();
        let skip = match kind {
            PushKind::MissedCall => None,
            _ => end.device_id.as_deref(),
        };
        let targets: Vec<&Connection> = connected
            .iter()
            .filter(|connection| Some(connection.device_id.as_str()) != skip)
            .collect();
        let mut elsewhere: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for device in present {
            let here = connected
                .iter()
                .any(|connection| connection.device_id == device.device_id);
            if !here && Some(device.device_id.as_str()) != skip {
                elsewhere
                    .entry(device.node)
                    .or_default()
                    .push(device.device_id);
            }
        }
        if targets.is_empty() && elsewhere.is_empty() {
            return;
        }
        let payload = CallPayload {
            v: 1,
            kind,
            call_id: end.call_id.clone(),
            caller_id: end.caller.id.clone(),
            caller_name: end.caller.display_name.clone(),
            video: end.video,
            reason: Some(end.reason),
            expires_at: rfc3339(deadline),
        };
        let text: Arc<str> = ServerFrame::of(&end.event_id, &payload).to_text().into();
        for connection in targets {
            // A full or closed connection is counted by `offer`; the platform push still goes.
            let _ = connection.offer(Outbound {
                text: Arc::clone(&text),
                kind,
                ack: None,
            });
        }
        if let Some(relay) = &self.relay {
            for (node, device_ids) in elsewhere {
                relay
                    .notice(&node, &end.callee, device_ids, kind, &text)
                    .await;
            }
        }
    }
}

/// How an offered ring reaches its device.
enum Delivery {
    /// Queued on this node's connection (or not, and why); the receiver resolves on the ack.
    Here(Result<oneshot::Receiver<()>, NotQueued>),
    /// Through the device's node.
    Elsewhere(Present),
}

/// Waits `wait` for an ack: `Ok` when it came, else why the platform push follows
/// (`gone`: the ack's sender went away, the connection or its node no longer has it).
async fn acked_within(
    wait: Duration,
    acked: impl std::future::Future<Output = Result<(), oneshot::error::RecvError>>,
    gone: FallbackReason,
) -> Result<(), FallbackReason> {
    match tokio::time::timeout(wait, acked).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(gone),
        Err(_) => Err(FallbackReason::NoAck),
    }
}

/// The devices whose registration keeps rings off the channel (`disable_internal_push`),
/// read before the registrations become pushes. Empty, and allocating nothing, unless one
/// does.
pub fn opted_out(registrations: &[Registration]) -> Vec<String> {
    registrations
        .iter()
        .filter(|registration| registration.disable_internal_push)
        .map(|registration| registration.device_id.clone())
        .collect()
}

/// The pure split (see the module doc): `here` are the callee's connections to this node,
/// `elsewhere` its devices connected to other nodes (a device connected here is offered
/// here, whatever presence says). A registered device not `done` has its push among
/// `pushes` (one per registration), which gives its platform.
fn plan(
    here: Vec<Connection>,
    elsewhere: Vec<Present>,
    opted_out: &[String],
    mut pushes: Vec<Push>,
    done: &HashSet<String>,
) -> (Vec<Push>, Offers) {
    let mut offers = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let here = here.into_iter().map(|connection| {
        let disabled = connection.rings_disabled;
        (Target::Here(connection), disabled)
    });
    let elsewhere = elsewhere.into_iter().map(|device| {
        let disabled = device.rings_disabled;
        (Target::Elsewhere(device), disabled)
    });
    for (target, rings_disabled) in here.chain(elsewhere) {
        let device_id = target.device_id().to_owned();
        if !seen.insert(device_id.clone())
            || rings_disabled
            || done.contains(&device_id)
            || opted_out.contains(&device_id)
        {
            continue;
        }
        let fallback = pushes
            .iter()
            .position(|push| push.device_id == device_id)
            .map(|index| pushes.swap_remove(index));
        offers.push(Offer {
            platform: fallback.as_ref().map(|push| push.address.platform()),
            target,
            fallback,
        });
    }
    (pushes, Offers(offers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PushAddress;
    use crate::router::fanout::{self, Caller};
    use crate::vocab::{Environment, IdentityKey};

    const NOW: UnixMillis = 1_800_000_000_000;

    fn registration(device: &str, disable_internal_push: bool) -> Registration {
        Registration {
            device_id: device.into(),
            app: "ios".into(),
            address: PushAddress::Apns {
                token: vec![1; 32],
                alert_token: None,
            },
            environment: Environment::Sandbox,
            disable_internal_push,
            created_at: NOW,
            updated_at: NOW,
            expires_at: NOW + 86_400_000,
        }
    }

    fn call() -> CallEvent {
        CallEvent {
            event_id: "e-1".into(),
            call_id: "c-1".into(),
            callee: IdentityKey::new("t", "alice").into(),
            caller: Caller {
                id: "bob".into(),
                display_name: "Bob".into(),
            },
            video: false,
            ring_timeout: Duration::from_secs(45),
        }
    }

    #[test]
    fn only_connected_devices_that_allow_it_are_offered_the_ring_first() {
        let hub = ChannelHub::new(4);
        let alice = IdentityKey::new("t", "alice");
        let registrations = [
            registration("phone", false),      // connected: offered, push held back
            registration("tablet", true),      // connected, registration opts out: push now
            registration("watch", false),      // connected, connection opts out: push now
            registration("desktop", false),    // not connected: push now
            registration("taken-over", false), // connected but done already: nothing
        ];
        let _phone = hub.attach(alice.clone(), "phone".into(), false);
        let _tablet = hub.attach(alice.clone(), "tablet".into(), false);
        let _watch = hub.attach(alice.clone(), "watch".into(), true);
        let _browser = hub.attach(alice.clone(), "browser".into(), false);
        let _done = hub.attach(alice.clone(), "taken-over".into(), false);
        let done: HashSet<String> = ["taken-over".to_string()].into();
        let opted_out = opted_out(&registrations);
        let pushes: Vec<Push> = fanout::rings(&call(), registrations.to_vec(), NOW)
            .into_iter()
            .filter(|push| !done.contains(&push.device_id))
            .collect();
        let (now, Offers(offers)) = plan(
            hub.connections(&alice),
            Vec::new(),
            &opted_out,
            pushes,
            &done,
        );
        let mut now: Vec<String> = now.into_iter().map(|push| push.device_id).collect();
        now.sort();
        assert_eq!(now, ["desktop", "tablet", "watch"]);
        let mut offered: Vec<(String, bool)> = offers
            .iter()
            .map(|offer| {
                (
                    offer.target.device_id().to_owned(),
                    offer.fallback.is_some(),
                )
            })
            .collect();
        offered.sort();
        assert_eq!(
            offered,
            [("browser".to_string(), false), ("phone".to_string(), true)]
        );
    }

    fn present(node: &str, device: &str, rings_disabled: bool) -> Present {
        Present {
            node: node.into(),
            device_id: device.into(),
            rings_disabled,
        }
    }

    #[test]
    fn devices_on_other_nodes_are_offered_through_them_and_here_wins() {
        let hub = ChannelHub::new(4);
        let alice = IdentityKey::new("t", "alice");
        let registrations = [
            registration("phone", false), // on node-a: offered there, push held back
            registration("tablet", false), // here and (stale) on node-a: offered here
            registration("watch", false), // on node-a, opted out there: push now
            registration("desktop", true), // on node-a, registration opts out: push now
        ];
        let _tablet = hub.attach(alice.clone(), "tablet".into(), false);
        let elsewhere = vec![
            present("node-a", "phone", false),
            present("node-a", "tablet", false),
            present("node-a", "watch", true),
            present("node-a", "desktop", false),
            present("node-a", "browser", false), // no registration: still offered
        ];
        let opted_out = opted_out(&registrations);
        let pushes = fanout::rings(&call(), registrations.to_vec(), NOW);
        let (now, Offers(offers)) = plan(
            hub.connections(&alice),
            elsewhere,
            &opted_out,
            pushes,
            &HashSet::new(),
        );
        let mut now: Vec<String> = now.into_iter().map(|push| push.device_id).collect();
        now.sort();
        assert_eq!(now, ["desktop", "watch"]);
        let mut offered: Vec<(String, &str, bool)> = offers
            .iter()
            .map(|offer| {
                let place = match &offer.target {
                    Target::Here(_) => "here",
                    Target::Elsewhere(device) => device.node.as_str(),
                };
                (
                    offer.target.device_id().to_owned(),
                    place,
                    offer.fallback.is_some(),
                )
            })
            .collect();
        offered.sort();
        assert_eq!(
            offered,
            [
                ("browser".to_string(), "node-a", false),
                ("phone".to_string(), "node-a", true),
                ("tablet".to_string(), "here", true),
            ]
        );
    }
}
