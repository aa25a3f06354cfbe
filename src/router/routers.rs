//! The node's routers, and which one routes an event.
//!
//! Every HTTP worker thread runs a router of its own, started as the worker builds its
//! services (`crate::app`), and an event that arrives through the API is routed by the router
//! of the worker that received it ([`Routers::join_here`]): the request, the claim, the lookup,
//! the pushes and the answer all stay on one thread. Handing each event to its callee's shard
//! instead cost every ring two thread crossings (worker → shard → worker), and a crossing is a
//! wake-up that queues for a core behind every other thread of the box (`benches/e2e.sh`,
//! "node context switches per call").
//!
//! Nothing needs one callee's events on one router: an event is owned by the node through its
//! claim in the store (the same rule that lets its ring and its end arrive on two nodes), the
//! node's [`super::ownership::RoutingSet`] makes a second copy of an event arriving on another
//! worker meanwhile a duplicate, and an end withdraws the call's queued rings on every router
//! ([`Routers::withdraw_elsewhere`]). Events read from the durable intake's streams, which
//! arrive on the main thread, go to a router picked by their callee's stable hash.

use super::fanout::{CallEvent, EndEvent};
use super::intake::Arrival;
use super::ringing::Ringing;
use super::{End, Ring, RouteError, RouteReply, Routed, Router, WithdrawRings};
use crate::vocab::IdentityKey;
use actix::{Addr, MailboxError};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

thread_local! {
    /// The router started on this thread, if it is an HTTP worker's. Behind an `Rc`: each
    /// event takes it by reference count, where a clone of an actix address allocates twice.
    static HERE: RefCell<Option<Rc<Addr<Router>>>> = const { RefCell::new(None) };
}

/// The address of the router an event goes to, held without cloning it.
enum RouterOf {
    /// This thread's router.
    Here(Rc<Addr<Router>>),
    /// One of the node's routers, by its place among them.
    Joined(Arc<[Addr<Router>]>, usize),
}

impl std::ops::Deref for RouterOf {
    type Target = Addr<Router>;

    fn deref(&self) -> &Addr<Router> {
        match self {
            RouterOf::Here(router) => router,
            RouterOf::Joined(routers, at) => &routers[*at],
        }
    }
}

/// The node's routers: one per HTTP worker, joined as each worker starts.
#[derive(Clone)]
pub struct Routers {
    /// The routers joined so far. Read per event that arrives off a worker and per end; written
    /// once per worker start.
    joined: Arc<RwLock<Arc<[Addr<Router>]>>>,
    /// How long a caller waits for mailbox room and the router's answer.
    call_timeout: Duration,
    /// The calls whose rings the routers still hold: an end asks them to withdraw only
    /// those.
    ringing: Ringing,
}

/// Why the router could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RoutersError {
    /// The router answered with an error.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Its mailbox stayed full, or it did not answer in time.
    #[error("the router is overloaded")]
    Busy,
    /// It stopped (the node is stopping), or none has started yet.
    #[error("the router stopped")]
    Stopped,
}

impl Routers {
    /// No router yet; callers wait at most `call_timeout` for one's answer.
    pub fn new(call_timeout: Duration) -> Routers {
        Routers {
            joined: Arc::new(RwLock::new(Arc::from([]))),
            call_timeout,
            ringing: Ringing::default(),
        }
    }

    /// The calls whose rings the node's routers still hold.
    pub fn ringing(&self) -> &Ringing {
        &self.ringing
    }

    /// Makes `router`, started on the current thread, the router of the events that arrive
    /// on this thread, and one of the node's. A router whose thread stopped (a worker that
    /// died and was replaced) is let go.
    pub fn join_here(&self, router: Addr<Router>) {
        HERE.with(|here| *here.borrow_mut() = Some(Rc::new(router.clone())));
        let mut joined = self.joined.write().unwrap_or_else(PoisonError::into_inner);
        let mut routers: Vec<_> = joined
            .iter()
            .filter(|joined| joined.connected())
            .cloned()
            .collect();
        routers.push(router);
        *joined = routers.into();
    }

    /// How many routers the node has.
    pub fn len(&self) -> usize {
        self.all().len()
    }

    /// Whether no router has joined yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn all(&self) -> Arc<[Addr<Router>]> {
        self.joined
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The router of an event for `who` that arrives on this thread: this thread's own, or
    /// (off the HTTP workers) the one `who`'s stable hash picks.
    fn of(&self, who: &IdentityKey) -> Option<RouterOf> {
        let here = HERE.with(|here| here.borrow().clone());
        match here {
            Some(router) if router.connected() => Some(RouterOf::Here(router)),
            _ => {
                let all = self.all();
                let at = (!all.is_empty()).then(|| who.shard(all.len()))?;
                Some(RouterOf::Joined(all, at))
            }
        }
    }

    /// Routes an incoming call from the API.
    pub async fn ring(&self, call: CallEvent) -> Result<Routed, RoutersError> {
        self.ring_arriving(call, Arrival::Api).await
    }

    /// Routes an incoming call that came by `arrival`.
    pub async fn ring_arriving(
        &self,
        call: CallEvent,
        arrival: Arrival,
    ) -> Result<Routed, RoutersError> {
        let router = self.of(&call.callee).ok_or(RoutersError::Stopped)?;
        self.ask(router.send(Ring(call, arrival))).await
    }

    /// Routes the end of a call from the API.
    pub async fn end(&self, end: EndEvent) -> Result<Routed, RoutersError> {
        self.end_arriving(end, Arrival::Api).await
    }

    /// Routes the end of a call that came by `arrival`.
    pub async fn end_arriving(
        &self,
        end: EndEvent,
        arrival: Arrival,
    ) -> Result<Routed, RoutersError> {
        let router = self.of(&end.callee).ok_or(RoutersError::Stopped)?;
        self.ask(router.send(End(end, arrival))).await
    }

    /// Withdraws the callee's queued rings of `call_id` on every router but `me`; answers the
    /// devices whose ring was withdrawn. A router that does not answer within the call
    /// timeout (its mailbox full) keeps its rings: they go out, as they would have had the
    /// end come a moment later.
    pub async fn withdraw_elsewhere(
        &self,
        me: Option<&Addr<Router>>,
        callee: &Arc<IdentityKey>,
        call_id: &Arc<str>,
    ) -> Vec<String> {
        let routers = self.all();
        let asked = routers
            .iter()
            .filter(|router| Some(*router) != me)
            .map(|router| {
                let withdraw = router.send(WithdrawRings {
                    callee: Arc::clone(callee),
                    call_id: Arc::clone(call_id),
                    ended_on_another_node: false,
                });
                tokio::time::timeout(self.call_timeout, withdraw)
            });
        let answers = futures_util::future::join_all(asked).await;
        let answered = answers.iter().filter(|answer| matches!(answer, Ok(Ok(_))));
        if answered.count() < answers.len() {
            tracing::warn!("router busy: a call ended, its rings queued there still go out");
        }
        answers.into_iter().flatten().flatten().flatten().collect()
    }

    /// Withdraws the callee's queued rings of `call_id`, which ended on another node, on
    /// every router, without waiting: a full mailbox drops the request (nothing queues up
    /// behind a busy router), and those rings go out, as they would had the end come a moment
    /// later.
    pub fn withdraw_ended_elsewhere(&self, callee: IdentityKey, call_id: &str) {
        // Most notices are of calls that never rang here, or whose rings left long ago.
        if !self.ringing.may_hold(&callee, call_id) {
            return;
        }
        let (callee, call_id): (_, Arc<str>) = (Arc::new(callee), Arc::from(call_id));
        for router in self.all().iter() {
            let withdraw = WithdrawRings {
                callee: Arc::clone(&callee),
                call_id: Arc::clone(&call_id),
                ended_on_another_node: true,
            };
            if router.try_send(withdraw).is_err() {
                tracing::warn!("router busy: a call ended elsewhere, its rings here still go out");
            }
        }
    }

    /// Waits, boundedly, for a router's answer: first for mailbox room, then for the work.
    async fn ask(
        &self,
        queued: impl std::future::Future<Output = Result<RouteReply, MailboxError>>,
    ) -> Result<Routed, RoutersError> {
        let answer = async {
            match queued.await {
                Err(MailboxError::Timeout) => Err(RoutersError::Busy),
                Err(MailboxError::Closed) => Err(RoutersError::Stopped),
                // The router stopped before the work could answer.
                Ok(reply) => reply
                    .await
                    .map_err(|_| RoutersError::Stopped)?
                    .map_err(Into::into),
            }
        };
        match tokio::time::timeout(self.call_timeout, answer).await {
            Err(_) => Err(RoutersError::Busy),
            Ok(answer) => answer,
        }
    }
}
