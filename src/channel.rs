//! The internal push channel (docs/architecture.md, "The internal push channel"; README, "Internal push
//! channel"): apps in the foreground hold a WebSocket, `GET /v1/channel`, and a ring reaches
//! them over it before (and, when they ack in time, instead of) the platform push.
//!
//! - [`ChannelHub`] (this file) is the node's registry of connected devices.
//! - [`frame`] is what travels on a connection: JSON text frames, parsed and built offline.
//! - [`session`] runs one connection: writes frames, reads acks, pings, closes.
//! - [`socket`] is the WebSocket itself (RFC 6455 framing over the connection's socket).
//! - [`presence`] tells the other nodes sharing a Redis store which devices are connected
//!   here, and [`relay`] carries rings and notices between nodes over Redis pub/sub (with the
//!   embedded store there are no other nodes: neither exists).
//!
//! Who owns the registry: a connection's session runs on the HTTP worker that accepted it,
//! and a ring is routed on the worker that received the call, most often another one. The
//! registry is therefore shared, not owned by one actor: a fixed set of stripes,
//! each a `std::sync::Mutex` over a small map, held only for one map operation and never
//! across an `await` (mini-redis's reasoning for a std mutex). A ring locks one stripe once to
//! copy its callee's connections; the frames then go through each connection's own bounded
//! queue without any lock.

pub mod frame;
pub mod presence;
pub mod relay;
pub mod session;
pub mod socket;

use crate::metrics::channel::{self as metrics, CloseCause, MessageOutcome};
use crate::vocab::{IdentityKey, PushKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot, watch};

/// How many stripes the registry has: enough that the HTTP workers (one per core, sessions
/// and routers alike) rarely meet on one.
const STRIPES: usize = 64;

/// One frame for one client.
pub struct Outbound {
    /// The JSON text (shared by every device of the event).
    pub text: Arc<str>,
    /// What kind of event it tells (for the counts).
    pub kind: PushKind,
    /// For a ring: the event id the client acks, and where the ack goes.
    pub ack: Option<(Arc<str>, oneshot::Sender<()>)>,
}

/// One connected device, as a ring sees it.
#[derive(Clone)]
pub struct Connection {
    /// Which connection this is (a replaced one keeps its own id).
    id: u64,
    /// The device.
    pub device_id: String,
    /// The client said `disable_internal_push_for_incoming_call=true`: no rings over the
    /// channel for it, only call-ended and missed-call notices.
    pub rings_disabled: bool,
    /// Its bounded queue of frames.
    outbox: mpsc::Sender<Outbound>,
    /// Tells its session to close, and why.
    close: Arc<watch::Sender<Option<CloseCause>>>,
}

/// Why a frame was not queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The client let its queue fill up: it is being closed.
    SlowClient,
    /// The connection is closing.
    Closed,
}

impl Connection {
    /// Queues `frame` for the client without waiting. A full queue closes the client (a slow
    /// client must not hold rings back or memory up) and is counted.
    pub fn offer(&self, frame: Outbound) -> Result<(), NotQueued> {
        let kind = frame.kind;
        match self.outbox.try_send(frame) {
            Ok(()) => {
                metrics::message(kind, MessageOutcome::Queued);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::message(kind, MessageOutcome::Dropped);
                self.close_for(CloseCause::SlowClient);
                Err(NotQueued::SlowClient)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::message(kind, MessageOutcome::Dropped);
                Err(NotQueued::Closed)
            }
        }
    }

    /// Asks the session to close with `cause` (the first cause wins).
    fn close_for(&self, cause: CloseCause) {
        self.close.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(cause);
            }
            first
        });
    }
}

/// What a session holds while its device is connected: its queue's receiving end, the close
/// signal, and the registry entry, removed when this is dropped.
pub struct Attached {
    /// Frames to write to the client.
    pub outbox: mpsc::Receiver<Outbound>,
    /// Set when the node wants the connection closed.
    pub close: watch::Receiver<Option<CloseCause>>,
    hub: ChannelHub,
    key: IdentityKey,
    id: u64,
    device_id: String,
    rings_disabled: bool,
}

impl Attached {
    /// Renews the device's presence for the other nodes (a heartbeat: the session calls it
    /// at every ping). Nothing without presence (the embedded store).
    pub fn renew_presence(&self) {
        self.hub
            .put_presence(&self.key, &self.device_id, self.rings_disabled);
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let still_connected = self.hub.detach(&self.key, self.id, &self.device_id);
        // A connection replaced by a newer one of the same device leaves its entry to it.
        if !still_connected && let Some(presence) = self.hub.inner.presence.clone() {
            let (key, device_id) = (self.key.clone(), std::mem::take(&mut self.device_id));
            actix_rt::spawn(async move {
                if let Err(error) = presence.remove(&key, &device_id).await {
                    tracing::debug!(%error, "channel presence not removed; it lapses by itself");
                }
            });
        }
    }
}

/// The node's connected devices, by identity (see the module doc for the locking).
#[derive(Clone)]
pub struct ChannelHub {
    inner: Arc<HubInner>,
}

/// One stripe of the registry: the connected devices of the identities that hash to it.
type Stripe = HashMap<IdentityKey, Vec<Connection>>;

struct HubInner {
    stripes: Box<[Mutex<Stripe>]>,
    next_id: AtomicU64,
    send_queue: usize,
    /// Where the other nodes learn which devices are connected here (Redis stores only).
    presence: Option<presence::Presence>,
}

impl ChannelHub {
    /// An empty registry whose connections queue at most `send_queue` frames each.
    pub fn new(send_queue: usize) -> ChannelHub {
        ChannelHub::with_presence(send_queue, None)
    }

    /// [`ChannelHub::new`] that also publishes its devices' presence for the other nodes.
    pub fn with_presence(send_queue: usize, presence: Option<presence::Presence>) -> ChannelHub {
        ChannelHub {
            inner: Arc::new(HubInner {
                stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
                next_id: AtomicU64::new(1),
                send_queue: send_queue.max(1),
                presence,
            }),
        }
    }

    /// Writes (or renews) a device's presence, in the background: a failure is made good at
    /// the next heartbeat, and meanwhile the other nodes send the platform push.
    fn put_presence(&self, key: &IdentityKey, device_id: &str, rings_disabled: bool) {
        let Some(presence) = self.inner.presence.clone() else {
            return;
        };
        let (key, device_id) = (key.clone(), device_id.to_owned());
        actix_rt::spawn(async move {
            let now = crate::clock::now_millis();
            if let Err(error) = presence.put(&key, &device_id, rings_disabled, now).await {
                tracing::warn!(%error, "channel presence not written; other nodes push instead");
            }
        });
    }

    fn stripe(&self, key: &IdentityKey) -> MutexGuard<'_, Stripe> {
        let index = (key.stable_hash() % STRIPES as u64) as usize;
        // A panic while holding a stripe (none of the code under it can panic) would leave a
        // map that is still consistent: each operation is one insert, retain or clone.
        self.inner.stripes[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connects `device_id` of `key`. One connection per device: an older one of the same
    /// device is closed as replaced.
    pub fn attach(&self, key: IdentityKey, device_id: String, rings_disabled: bool) -> Attached {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (outbox, outbox_rx) = mpsc::channel(self.inner.send_queue);
        let (close, close_rx) = watch::channel(None);
        let connection = Connection {
            id,
            device_id: device_id.clone(),
            rings_disabled,
            outbox,
            close: Arc::new(close),
        };
        let replaced = {
            let mut stripe = self.stripe(&key);
            let devices = stripe.entry(key.clone()).or_default();
            let old = devices
                .iter()
                .position(|old| old.device_id == connection.device_id)
                .map(|index| devices.swap_remove(index));
            devices.push(connection);
            old
        };
        metrics::connections(1);
        if let Some(old) = replaced {
            old.close_for(CloseCause::Replaced);
        }
        self.put_presence(&key, &device_id, rings_disabled);
        Attached {
            outbox: outbox_rx,
            close: close_rx,
            hub: self.clone(),
            key,
            id,
            device_id,
            rings_disabled,
        }
    }

    /// Removes connection `id` of `key` (not a newer one of the same device); returns whether
    /// `device_id` is still connected (by a newer connection).
    fn detach(&self, key: &IdentityKey, id: u64, device_id: &str) -> bool {
        let mut stripe = self.stripe(key);
        let mut still_connected = false;
        if let Some(devices) = stripe.get_mut(key) {
            devices.retain(|connection| connection.id != id);
            still_connected = devices
                .iter()
                .any(|connection| connection.device_id == device_id);
            if devices.is_empty() {
                stripe.remove(key);
            }
        }
        metrics::connections(-1);
        still_connected
    }

    /// The devices of `key` connected now.
    pub fn connections(&self, key: &IdentityKey) -> Vec<Connection> {
        self.stripe(key).get(key).cloned().unwrap_or_default()
    }

    /// Closes every connection of `key` with `cause` (a revoked identity); returns how many.
    pub fn close_all(&self, key: &IdentityKey, cause: CloseCause) -> usize {
        let connections = self.connections(key);
        for connection in &connections {
            connection.close_for(cause);
        }
        connections.len()
    }

    /// How many devices are connected to this node.
    pub fn len(&self) -> usize {
        self.inner
            .stripes
            .iter()
            .map(|stripe| {
                stripe
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }

    /// Whether no device is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> Outbound {
        Outbound {
            text: Arc::from(text),
            kind: PushKind::IncomingCall,
            ack: None,
        }
    }

    #[test]
    fn a_device_connecting_again_replaces_its_old_connection() {
        let hub = ChannelHub::new(4);
        let alice = IdentityKey::new("t", "alice");
        let old = hub.attach(alice.clone(), "phone".into(), false);
        let _laptop = hub.attach(alice.clone(), "laptop".into(), true);
        let new = hub.attach(alice.clone(), "phone".into(), false);
        assert_eq!(*old.close.borrow(), Some(CloseCause::Replaced));
        assert_eq!(*new.close.borrow(), None);
        assert_eq!(hub.connections(&alice).len(), 2);
        // The old session ending must not take the new connection with it.
        drop(old);
        let devices: Vec<String> = hub
            .connections(&alice)
            .into_iter()
            .map(|connection| connection.device_id)
            .collect();
        assert_eq!(devices.len(), 2);
        assert!(devices.contains(&"phone".to_string()));
        drop(new);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn a_client_that_lets_its_queue_fill_is_closed() {
        let hub = ChannelHub::new(2);
        let bob = IdentityKey::new("t", "bob");
        let attached = hub.attach(bob.clone(), "phone".into(), false);
        let connection = hub.connections(&bob).remove(0);
        assert_eq!(connection.offer(ring("1")), Ok(()));
        assert_eq!(connection.offer(ring("2")), Ok(()));
        assert_eq!(connection.offer(ring("3")), Err(NotQueued::SlowClient));
        assert_eq!(*attached.close.borrow(), Some(CloseCause::SlowClient));
        drop(attached);
        assert_eq!(connection.offer(ring("4")), Err(NotQueued::Closed));
        assert!(hub.is_empty());
    }

    #[test]
    fn revoking_closes_every_device_of_the_identity_only() {
        let hub = ChannelHub::new(2);
        let carol = IdentityKey::new("t", "carol");
        let phone = hub.attach(carol.clone(), "phone".into(), false);
        let laptop = hub.attach(carol.clone(), "laptop".into(), false);
        let other = hub.attach(IdentityKey::new("u", "carol"), "phone".into(), false);
        assert_eq!(hub.close_all(&carol, CloseCause::Revoked), 2);
        assert_eq!(*phone.close.borrow(), Some(CloseCause::Revoked));
        assert_eq!(*laptop.close.borrow(), Some(CloseCause::Revoked));
        assert_eq!(*other.close.borrow(), None);
    }
}
