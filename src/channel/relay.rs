//! Across nodes (docs/architecture.md, "The internal push channel" → "Across nodes"): a ring
//! routed on one node for a device connected to another reaches it through Redis pub/sub.
//!
//! Every node listens on its own channel, `ringcast:node:<node id>`. The ring's node (B) finds
//! the device's node (A) in [`super::presence`], registers a pending ack under a request id of
//! its own and publishes a [`RelayMessage::Ring`] (the frame's JSON, ready to write) on A's
//! channel. A offers it to the device's connection as if the ring had been routed there; when
//! the device acks within the wait B gave, A publishes [`RelayMessage::Acked`] on B's channel
//! and B ends the device as `delivered_internal`, its platform push never sent. When A no
//! longer has the device (it disconnected, or opted out of rings since), A answers
//! [`RelayMessage::Gone`] and B sends the platform push at once instead of waiting. Call-ended
//! and missed-call notices travel the same way ([`RelayMessage::Notice`]), without an answer,
//! and so does a revocation ([`RelayMessage::Revoke`]): the identity's connections to every
//! node close.
//!
//! Why pub/sub, as for call ends (`router::ends`): one `PUBLISH` per relayed frame and
//! nothing per ring to devices connected where the ring is routed; no node needs another's
//! address. Pub/sub is at-most-once: a lost ring or ack costs the ack wait, then the platform
//! push rings the phone, as for a device that does not answer. A dead node answers nothing:
//! B falls back after the wait until the dead node's presence lapses.

use super::presence::{Presence, Present};
use super::{ChannelHub, Connection, Outbound};
use crate::metrics::channel::{self as metrics, CloseCause, RelayOutcome};
use crate::router::ends::{EndChannel, EndSource};
use crate::vocab::{IdentityKey, PushKind, UnixMillis};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a listener waits before reconnecting.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// The pub/sub channel node `node` listens on.
pub fn node_channel(node: &str) -> String {
    format!("ringcast:node:{node}")
}

/// What nodes tell each other about channel devices (JSON on the node channels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayMessage {
    /// Offer a ring to a device connected to the receiving node.
    Ring {
        /// The ring's node: where the answer goes.
        from: String,
        /// The sender's id for this offer, echoed in the answer.
        request: u64,
        /// The callee's tenant.
        tenant: String,
        /// The callee.
        identity: String,
        /// The device.
        device_id: String,
        /// The event id the device acks.
        event_id: String,
        /// The frame, as the device reads it.
        text: String,
        /// How long the sender waits for the ack, in ms: no use answering later.
        wait_ms: u64,
    },
    /// Give a call-ended or missed-call frame to devices connected to the receiving node.
    Notice {
        /// The callee's tenant.
        tenant: String,
        /// The callee.
        identity: String,
        /// The devices.
        device_ids: Vec<String>,
        /// `call_ended` or `missed_call`.
        kind: PushKind,
        /// The frame, as the device reads it.
        text: String,
    },
    /// The device acked ring `request` in time.
    Acked {
        /// The ring's request id.
        request: u64,
    },
    /// The device of ring `request` is not connected to the answering node (any more), or
    /// opted out of rings: no ack will come.
    Gone {
        /// The ring's request id.
        request: u64,
    },
    /// The identity was revoked: close its connections to the receiving node (4003).
    Revoke {
        /// The identity's tenant.
        tenant: String,
        /// The identity.
        identity: String,
    },
}

/// This node's end of the relay. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    presence: Presence,
    hub: ChannelHub,
    pending: Arc<PendingAcks>,
}

/// Rings relayed to other nodes waiting for their answer, by request id. An entry leaves
/// when its answer comes or its [`PendingAck`] is dropped (the wait ended), so the map holds
/// only the rings being waited for.
#[derive(Default)]
pub struct PendingAcks {
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_request: AtomicU64,
}

impl PendingAcks {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        // Each holder does one map operation, which cannot panic half-way.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for the answer to a new request.
    pub fn open(self: &Arc<Self>) -> PendingAck {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (answer, acked) = oneshot::channel();
        self.waiting().insert(request, answer);
        PendingAck {
            pending: Arc::clone(self),
            request,
            acked,
        }
    }

    /// The answer to `request` came: `acked`, or the device is gone (dropping the sender
    /// tells the waiting ring "no ack will come"). An answer nobody waits for is ignored.
    pub fn answer(&self, request: u64, acked: bool) {
        if let Some(answer) = self.waiting().remove(&request)
            && acked
        {
            let _ = answer.send(());
        }
    }

    /// How many rings are waiting.
    pub fn len(&self) -> usize {
        self.waiting().len()
    }

    /// Whether no ring is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A ring relayed to another node: `acked` resolves `Ok` when the device acked, `Err` when
/// its node said it no longer has the device. Dropping it forgets the ring.
pub struct PendingAck {
    pending: Arc<PendingAcks>,
    /// The request id the answer names.
    pub request: u64,
    /// The answer.
    pub acked: oneshot::Receiver<()>,
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        self.pending.waiting().remove(&self.request);
    }
}

impl Relay {
    /// The relay of the node whose devices `hub` holds and `presence` publishes.
    pub fn new(presence: Presence, hub: ChannelHub) -> Relay {
        Relay {
            inner: Arc::new(Inner {
                presence,
                hub,
                pending: Arc::default(),
            }),
        }
    }

    /// This relay with its presence reads and its publishes over `redis`, another connection to
    /// the same Redis (one driven by the thread that uses it: a router). The devices
    /// and the pending acks stay shared, so the one listener still resolves every ring this
    /// node relayed.
    pub fn over(&self, redis: EndChannel) -> Relay {
        Relay {
            inner: Arc::new(Inner {
                presence: self.inner.presence.over(redis),
                hub: self.inner.hub.clone(),
                pending: Arc::clone(&self.inner.pending),
            }),
        }
    }

    /// The devices of `who` connected to other nodes at `now`. A presence read that fails
    /// is logged and reads as none: the platform push carries the ring, as without a channel.
    pub async fn elsewhere(&self, who: &IdentityKey, now: UnixMillis) -> Vec<Present> {
        match self.inner.presence.of(who, now).await {
            Ok(present) => present
                .into_iter()
                .filter(|device| device.node != self.inner.presence.node())
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "channel presence unreadable; platform pushes only");
                Vec::new()
            }
        }
    }

    /// Offers a ring to `device` on its node; `Err` when it could not be published.
    pub async fn ring(
        &self,
        device: &Present,
        who: &IdentityKey,
        event_id: &str,
        text: &str,
        wait: Duration,
    ) -> Result<PendingAck, ()> {
        let pending = self.inner.pending.open();
        let message = RelayMessage::Ring {
            from: self.inner.presence.node().to_owned(),
            request: pending.request,
            tenant: who.tenant.clone(),
            identity: who.identity.clone(),
            device_id: device.device_id.clone(),
            event_id: event_id.to_owned(),
            text: text.to_owned(),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        self.publish(&device.node, &message).await.map(|()| pending)
    }

    /// Gives a notice frame to `device_ids` of `who` on `node`; no answer.
    pub async fn notice(
        &self,
        node: &str,
        who: &IdentityKey,
        device_ids: Vec<String>,
        kind: PushKind,
        text: &str,
    ) {
        let message = RelayMessage::Notice {
            tenant: who.tenant.clone(),
            identity: who.identity.clone(),
            device_ids,
            kind,
            text: text.to_owned(),
        };
        let _ = self.publish(node, &message).await;
    }

    /// Tells every other node holding a connection of `who` (as presence says at `now`) to
    /// close it: revoke means revoke on every node. Returns how many nodes were told.
    pub async fn revoke_elsewhere(&self, who: &IdentityKey, now: UnixMillis) -> usize {
        let mut nodes: Vec<String> = self
            .elsewhere(who, now)
            .await
            .into_iter()
            .map(|device| device.node)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let message = RelayMessage::Revoke {
            tenant: who.tenant.clone(),
            identity: who.identity.clone(),
        };
        for node in &nodes {
            let _ = self.publish(node, &message).await;
        }
        nodes.len()
    }

    /// Publishes `message` on `node`'s channel; counted, and logged when it fails.
    async fn publish(&self, node: &str, message: &RelayMessage) -> Result<(), ()> {
        let Ok(payload) = serde_json::to_string(message) else {
            return Err(());
        };
        let mut command = redis::cmd("PUBLISH");
        command.arg(node_channel(node)).arg(payload);
        match self.inner.presence.redis().send(&command).await {
            Ok(()) => {
                metrics::relay(RelayOutcome::Sent);
                Ok(())
            }
            Err(error) => {
                metrics::relay(RelayOutcome::Failed);
                tracing::warn!(%error, "could not relay a channel frame to another node");
                Err(())
            }
        }
    }

    /// Acts on a message from another node.
    async fn receive(&self, message: RelayMessage) {
        match message {
            RelayMessage::Acked { request } => self.inner.pending.answer(request, true),
            RelayMessage::Gone { request } => self.inner.pending.answer(request, false),
            RelayMessage::Revoke { tenant, identity } => {
                metrics::relay(RelayOutcome::Received);
                let who = IdentityKey::new(tenant, identity);
                self.inner.hub.close_all(&who, CloseCause::Revoked);
            }
            RelayMessage::Notice {
                tenant,
                identity,
                device_ids,
                kind,
                text,
            } => {
                metrics::relay(RelayOutcome::Received);
                let who = IdentityKey::new(tenant, identity);
                let text: Arc<str> = text.into();
                for connection in self.inner.hub.connections(&who) {
                    if device_ids.contains(&connection.device_id) {
                        let _ = connection.offer(Outbound {
                            text: Arc::clone(&text),
                            kind,
                            ack: None,
                        });
                    }
                }
            }
            RelayMessage::Ring {
                from,
                request,
                tenant,
                identity,
                device_id,
                event_id,
                text,
                wait_ms,
            } => {
                metrics::relay(RelayOutcome::Received);
                let who = IdentityKey::new(tenant, identity);
                let connection = self
                    .inner
                    .hub
                    .connections(&who)
                    .into_iter()
                    .find(|connection| connection.device_id == device_id);
                match offer_ring(connection, event_id, text) {
                    Some(acked) => {
                        let relay = self.clone();
                        actix_rt::spawn(async move {
                            let wait = Duration::from_millis(wait_ms);
                            if let Ok(Ok(())) = tokio::time::timeout(wait, acked).await {
                                metrics::relay(RelayOutcome::Acked);
                                let _ =
                                    relay.publish(&from, &RelayMessage::Acked { request }).await;
                            }
                        });
                    }
                    None => {
                        metrics::relay(RelayOutcome::Gone);
                        let _ = self.publish(&from, &RelayMessage::Gone { request }).await;
                    }
                }
            }
        }
    }

    /// Listens on this node's channel through `source` (the store's servers, one at a time;
    /// the next when one fails) until the task is aborted.
    pub fn spawn_listener(&self, source: EndSource) -> tokio::task::JoinHandle<()> {
        let relay = self.clone();
        actix_rt::spawn(async move {
            let mut attempt = 0;
            loop {
                let listened = match source.client(attempt).await {
                    Ok(client) => relay.listen(client).await,
                    Err(error) => Err(error),
                };
                attempt += 1;
                if let Err(error) = listened {
                    tracing::warn!(%error, "channel relay listener lost its Redis connection; reconnecting");
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        })
    }

    /// Listens on one server until its connection fails.
    async fn listen(&self, client: redis::Client) -> redis::RedisResult<()> {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub
            .subscribe(node_channel(self.inner.presence.node()))
            .await?;
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<RelayMessage>(&payload) {
                Ok(message) => self.receive(message).await,
                Err(_) => tracing::warn!("ignored a malformed channel relay message"),
            }
        }
        Ok(())
    }
}

/// Queues a relayed ring for `connection` if it takes rings; the receiver resolves on its ack.
fn offer_ring(
    connection: Option<Connection>,
    event_id: String,
    text: String,
) -> Option<oneshot::Receiver<()>> {
    let connection = connection.filter(|connection| !connection.rings_disabled)?;
    let (ack, acked) = oneshot::channel();
    connection
        .offer(Outbound {
            text: text.into(),
            kind: PushKind::IncomingCall,
            ack: Some((event_id.into(), ack)),
        })
        .ok()?;
    Some(acked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json() {
        let ring = RelayMessage::Ring {
            from: "node-b".into(),
            request: 7,
            tenant: "acme".into(),
            identity: "alice".into(),
            device_id: "phone".into(),
            event_id: "e-1".into(),
            text: "{}".into(),
            wait_ms: 500,
        };
        let text = serde_json::to_string(&ring).unwrap();
        assert!(
            text.starts_with(r#"{"type":"ring","from":"node-b","request":7"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<RelayMessage>(&text).unwrap(), ring);
        let acked = serde_json::to_string(&RelayMessage::Acked { request: 7 }).unwrap();
        assert_eq!(acked, r#"{"type":"acked","request":7}"#);
        let notice = RelayMessage::Notice {
            tenant: "acme".into(),
            identity: "alice".into(),
            device_ids: vec!["phone".into()],
            kind: PushKind::MissedCall,
            text: "{}".into(),
        };
        let text = serde_json::to_string(&notice).unwrap();
        assert!(text.contains(r#""kind":"missed_call""#), "{text}");
        assert_eq!(serde_json::from_str::<RelayMessage>(&text).unwrap(), notice);
        let revoke = RelayMessage::Revoke {
            tenant: "acme".into(),
            identity: "alice".into(),
        };
        let text = serde_json::to_string(&revoke).unwrap();
        assert_eq!(
            text,
            r#"{"type":"revoke","tenant":"acme","identity":"alice"}"#
        );
        assert_eq!(serde_json::from_str::<RelayMessage>(&text).unwrap(), revoke);
    }

    #[tokio::test]
    async fn answers_reach_their_ring_and_a_finished_wait_leaves_nothing_behind() {
        let pending = Arc::new(PendingAcks::default());
        let mut acked = pending.open();
        let mut gone = pending.open();
        let forgotten = pending.open();
        assert_ne!(acked.request, gone.request);
        assert_eq!(pending.len(), 3);
        pending.answer(acked.request, true);
        pending.answer(gone.request, false);
        pending.answer(999, true); // nobody waits for it: ignored
        let (acked_request, gone_request) = (acked.request, gone.request);
        assert_eq!((&mut acked.acked).await, Ok(()));
        assert!((&mut gone.acked).await.is_err(), "gone: no ack will come");
        assert_eq!(pending.len(), 1);
        drop((acked, gone));
        drop(forgotten); // its wait ended
        assert!(pending.is_empty());
        pending.answer(acked_request, true); // a late duplicate changes nothing
        pending.answer(gone_request, true);
        assert!(pending.is_empty());
    }

    #[test]
    fn node_channels_are_per_node() {
        assert_eq!(node_channel("node-a"), "ringcast:node:node-a");
    }

    #[test]
    fn a_relayed_ring_is_offered_only_to_a_device_that_takes_rings() {
        let hub = ChannelHub::new(4);
        let alice = IdentityKey::new("t", "alice");
        let _phone = hub.attach(alice.clone(), "phone".into(), false);
        let _watch = hub.attach(alice.clone(), "watch".into(), true);
        let find = |device: &str| {
            hub.connections(&alice)
                .into_iter()
                .find(|connection| connection.device_id == device)
        };
        assert!(offer_ring(find("phone"), "e".into(), "{}".into()).is_some());
        assert!(offer_ring(find("watch"), "e".into(), "{}".into()).is_none());
        assert!(offer_ring(find("tablet"), "e".into(), "{}".into()).is_none());
    }
}
