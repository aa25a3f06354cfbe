//! The set of registry shards: one per core, each on its own arbiter thread.
//!
//! Every request for an identity goes to the shard its stable hash picks, so all of one
//! identity's work happens on one thread, in order. A full shard mailbox is backpressure: the
//! caller waits a bounded time for room, then gets [`ShardError::Busy`] (the API answers `503`
//! with `Retry-After`), never an unbounded queue.

use super::registration::IdentityKey;
use super::shard::RegistryShard;
use super::store::{Store, StoreError};
use actix::dev::ToEnvelope;
use actix::{Addr, Arbiter, Handler, Message, Supervisor};
use std::sync::Arc;
use std::time::Duration;

/// Why a shard call failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The shard's mailbox stayed full, or its answer did not come, within the wait bound.
    #[error("registry shard busy")]
    Busy,
    /// The shard is gone (shutting down).
    #[error("registry shard stopped")]
    Stopped,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sizing of the shard set.
#[derive(Clone, Copy, Debug)]
pub struct ShardSettings {
    /// How many shards (arbiter threads).
    pub count: usize,
    /// Each shard's mailbox capacity.
    pub mailbox_capacity: usize,
    /// How long a caller waits for room in a full mailbox.
    pub mailbox_wait: Duration,
    /// The most one store operation may take.
    pub store_timeout: Duration,
}

/// Handles to every shard; cheap to clone into each HTTP worker.
pub struct Shards<S: Store> {
    addresses: Arc<[Addr<RegistryShard<S>>]>,
    /// The whole-call bound: waiting for room plus the store's own bound, so a call can never
    /// hang even if a shard stops answering.
    call_timeout: Duration,
}

impl<S: Store> Clone for Shards<S> {
    fn clone(&self) -> Self {
        Shards {
            addresses: self.addresses.clone(),
            call_timeout: self.call_timeout,
        }
    }
}

/// The arbiters the shards run on; stopping them stops the shards.
pub struct ShardThreads(Vec<Arbiter>);

impl ShardThreads {
    /// `count` shard threads (at least one), each an arbiter with its own runtime.
    pub fn new(count: usize) -> ShardThreads {
        ShardThreads((0..count.max(1)).map(|_| Arbiter::new()).collect())
    }

    /// Each shard's arbiter, in shard order: the router and the providers of a shard start
    /// on its arbiter, so a call's whole pipeline runs on one thread.
    pub fn handles(&self) -> Vec<actix::ArbiterHandle> {
        self.0.iter().map(Arbiter::handle).collect()
    }

    /// Stops every shard's arbiter and waits for its thread to finish.
    pub fn stop(self) {
        for arbiter in self.0 {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("a registry shard thread panicked while stopping");
            }
        }
    }
}

impl<S: Store> Shards<S> {
    /// Starts `settings.count` shards over `store`, each supervised on its own arbiter. Must
    /// run inside an actix `System`.
    pub fn start(store: S, settings: ShardSettings) -> (Shards<S>, ShardThreads) {
        let threads = ShardThreads::new(settings.count);
        let stores = vec![store; threads.0.len()];
        Self::start_on(threads, stores, settings)
    }

    /// Starts one shard on each of `threads` over the store handle at the same index: a
    /// store whose connection belongs to one thread (a Redis connection opened on that
    /// shard's arbiter) keeps each shard's store traffic on the shard's own thread.
    pub fn start_on(
        threads: ShardThreads,
        stores: Vec<S>,
        settings: ShardSettings,
    ) -> (Shards<S>, ShardThreads) {
        let mut addresses = Vec::with_capacity(stores.len());
        for (index, (arbiter, store)) in threads.0.iter().zip(stores).enumerate() {
            let address = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                RegistryShard::new(
                    index,
                    store,
                    settings.store_timeout,
                    settings.mailbox_capacity,
                )
            });
            addresses.push(address);
        }
        let arbiters = threads.0;
        let call_timeout =
            settings.mailbox_wait + settings.store_timeout + Duration::from_millis(50);
        (
            Shards {
                addresses: addresses.into(),
                call_timeout,
            },
            ShardThreads(arbiters),
        )
    }

    /// The shard that owns `who`.
    pub fn shard_of(&self, who: &IdentityKey) -> &Addr<RegistryShard<S>> {
        &self.addresses[who.shard(self.addresses.len())]
    }

    /// Sends `message` to the shard owning `who` and waits, boundedly, for its answer.
    pub async fn call<M, T>(&self, who: &IdentityKey, message: M) -> Result<T, ShardError>
    where
        M: Message<Result = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
        RegistryShard<S>: Handler<M>,
        <RegistryShard<S> as actix::Actor>::Context: ToEnvelope<RegistryShard<S>, M>,
    {
        Self::send(self.shard_of(who), message, self.call_timeout).await
    }

    /// Sends `message` to the first shard (for node-wide checks such as readiness).
    pub async fn call_any<M, T>(&self, message: M) -> Result<T, ShardError>
    where
        M: Message<Result = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
        RegistryShard<S>: Handler<M>,
        <RegistryShard<S> as actix::Actor>::Context: ToEnvelope<RegistryShard<S>, M>,
    {
        Self::send(&self.addresses[0], message, self.call_timeout).await
    }

    async fn send<M, T>(
        address: &Addr<RegistryShard<S>>,
        message: M,
        limit: Duration,
    ) -> Result<T, ShardError>
    where
        M: Message<Result = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
        RegistryShard<S>: Handler<M>,
        <RegistryShard<S> as actix::Actor>::Context: ToEnvelope<RegistryShard<S>, M>,
    {
        // `send` waits for mailbox room (bounded channel) and then for the answer.
        match tokio::time::timeout(limit, address.send(message)).await {
            Err(_) => Err(ShardError::Busy),
            Ok(Err(actix::MailboxError::Timeout)) => Err(ShardError::Busy),
            Ok(Err(actix::MailboxError::Closed)) => Err(ShardError::Stopped),
            Ok(Ok(result)) => result.map_err(ShardError::Store),
        }
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Always false: a shard set has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}
