//! The outcomes a held event still waits for, polled as one set.
//!
//! An event waits for a handful of tickets (one per device; an identity has at most
//! `[registry] max_devices_per_identity`, 32 by default), so polling them all on each wake
//! costs a few checks, where a `FuturesUnordered` of one future
//! per device made a task node (an allocation) per push and a ready queue per event.

use crate::providers::dispatcher::Ticket;
use crate::vocab::{Outcome, Platform};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// One device whose push has no outcome yet.
pub struct Awaited {
    /// The device.
    pub device_id: String,
    /// Its platform, for the outcome stream.
    pub platform: Option<Platform>,
    /// Where its outcome comes from.
    ticket: Ticket,
    /// Where the outcome goes on to: the caller's ticket (`?wait=true`).
    pub relay: oneshot::Sender<Outcome>,
}

/// The devices an event waits for.
#[derive(Default)]
pub struct AwaitedSet {
    waiting: Vec<Awaited>,
}

impl AwaitedSet {
    /// A set with room for `devices`.
    pub fn with_capacity(devices: usize) -> AwaitedSet {
        AwaitedSet {
            waiting: Vec::with_capacity(devices),
        }
    }

    /// Waits for `ticket` of `device_id`; its outcome is handed back with `relay`.
    pub fn push(
        &mut self,
        device_id: String,
        platform: Option<Platform>,
        ticket: Ticket,
        relay: oneshot::Sender<Outcome>,
    ) {
        self.waiting.push(Awaited {
            device_id,
            platform,
            ticket,
            relay,
        });
    }

    /// Whether every device has its outcome.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The next device whose ticket is answered, with its outcome (`Err`: the dispatcher
    /// stopped without one); `None` once none is left. The device leaves the set.
    pub fn next(&mut self) -> Next<'_> {
        Next { set: self }
    }
}

/// The future of [`AwaitedSet::next`].
pub struct Next<'a> {
    set: &'a mut AwaitedSet,
}

impl Future for Next<'_> {
    type Output = Option<(Awaited, Result<Outcome, oneshot::error::RecvError>)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let waiting = &mut self.get_mut().set.waiting;
        if waiting.is_empty() {
            return Poll::Ready(None);
        }
        // Every ticket not ready keeps this task's waker, so any answer wakes it.
        for index in 0..waiting.len() {
            if let Poll::Ready(outcome) = Pin::new(&mut waiting[index].ticket).poll(cx) {
                return Poll::Ready(Some((waiting.swap_remove(index), outcome)));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn ticket() -> (oneshot::Sender<Outcome>, Ticket) {
        oneshot::channel()
    }

    #[tokio::test]
    async fn answers_come_out_in_the_order_they_arrive_and_each_once() {
        let mut set = AwaitedSet::with_capacity(3);
        let mut answers = Vec::new();
        for device in ["a", "b", "c"] {
            let (answer, ticket) = ticket();
            let (relay, _) = oneshot::channel();
            set.push(device.into(), Some(Platform::Apns), ticket, relay);
            answers.push(answer);
        }
        assert!(set.next().now_or_never().is_none(), "nothing answered yet");

        let c = answers.pop().unwrap();
        c.send(Outcome::Delivered).unwrap();
        let (device, outcome) = set.next().await.unwrap();
        assert_eq!(
            (device.device_id.as_str(), outcome),
            ("c", Ok(Outcome::Delivered))
        );

        let b = answers.pop().unwrap();
        drop(b);
        let (device, outcome) = set.next().await.unwrap();
        assert_eq!(device.device_id, "b");
        assert!(outcome.is_err(), "a dropped ticket is no outcome");

        answers.pop().unwrap().send(Outcome::Expired).unwrap();
        let (device, outcome) = set.next().await.unwrap();
        assert_eq!(
            (device.device_id.as_str(), outcome),
            ("a", Ok(Outcome::Expired))
        );
        assert!(set.is_empty());
        assert!(set.next().await.is_none());
    }

    #[tokio::test]
    async fn an_answer_to_a_ticket_polled_before_wakes_the_waiting_task() {
        let mut set = AwaitedSet::default();
        let (answer, ticket) = ticket();
        let (relay, relayed) = oneshot::channel();
        set.push("phone".into(), None, ticket, relay);
        let waiting = tokio::spawn(async move {
            let (device, outcome) = set.next().await.unwrap();
            device.relay.send(outcome.unwrap()).unwrap();
        });
        tokio::task::yield_now().await;
        answer.send(Outcome::Delivered).unwrap();
        assert_eq!(relayed.await, Ok(Outcome::Delivered));
        waiting.await.unwrap();
    }
}
