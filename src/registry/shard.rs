//! The registry shard actor: owns a store handle and runs one identity's operations.
//!
//! One shard per core (DESIGN.md); identities are assigned by [`IdentityKey::stable_hash`]
//! in [`super::shards::Shards`]. The logic lives in the `Store`; the actor only bounds the
//! queue (its mailbox), bounds each operation's time, and is restarted by its supervisor.

use super::registration::{IdentityKey, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};
use actix::{Actor, Context, Handler, Message, ResponseFuture, Supervised};
use std::time::Duration;

/// A registry shard.
pub struct RegistryShard<S: Store> {
    /// Which shard this is, for logs.
    index: usize,
    store: S,
    /// The most a store operation may take; past it the caller gets `Unavailable` instead of
    /// waiting on a dead store.
    store_timeout: Duration,
    mailbox_capacity: usize,
}

impl<S: Store> RegistryShard<S> {
    /// A shard over `store`; `mailbox_capacity` bounds its queue.
    pub fn new(index: usize, store: S, store_timeout: Duration, mailbox_capacity: usize) -> Self {
        RegistryShard {
            index,
            store,
            store_timeout,
            mailbox_capacity,
        }
    }
}

impl<S: Store> Actor for RegistryShard<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        tracing::debug!(
            shard = self.index,
            store = self.store.name(),
            "registry shard started"
        );
    }
}

impl<S: Store> Supervised for RegistryShard<S> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(shard = self.index, "registry shard restarting");
    }
}

/// Runs a store operation within the shard's time bound.
async fn bounded<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, operation)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                limit.as_millis()
            )))
        })
}

/// Declares a message, its result and the shard's handler, which runs `$body` with a clone of
/// the store (`$store`) and the message (`$msg`) off the actor, so the shard keeps taking
/// messages while the store works.
macro_rules! store_message {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? } -> $out:ty,
     |$store:ident, $msg:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }

        impl Message for $name {
            type Result = Result<$out, StoreError>;
        }

        impl<S: Store> Handler<$name> for RegistryShard<S> {
            type Result = ResponseFuture<Result<$out, StoreError>>;

            fn handle(&mut self, $msg: $name, _: &mut Context<Self>) -> Self::Result {
                let $store = self.store.clone();
                let limit = self.store_timeout;
                Box::pin(async move { bounded(limit, async move { $body }).await })
            }
        }
    };
}

store_message!(
    /// Register or refresh a device.
    Register {
        /// Whose device.
        who: IdentityKey,
        /// The registration, `updated_at` = now.
        registration: Registration,
    } -> Registered,
    |store, msg| store.register(&msg.who, &msg.registration).await
);

store_message!(
    /// List an identity's live registrations.
    List {
        /// Whose devices.
        who: IdentityKey,
        /// The current time.
        now: UnixMillis,
    } -> Vec<Registration>,
    |store, msg| store.list(&msg.who, msg.now).await
);

store_message!(
    /// Unregister one device.
    Unregister {
        /// Whose device.
        who: IdentityKey,
        /// Which device.
        device_id: String,
        /// The current time.
        now: UnixMillis,
    } -> bool,
    |store, msg| store.unregister(&msg.who, &msg.device_id, msg.now).await
);

store_message!(
    /// Revoke an identity: delete all its registrations.
    Revoke {
        /// Whose devices.
        who: IdentityKey,
        /// The current time.
        now: UnixMillis,
    } -> u64,
    |store, msg| store.revoke(&msg.who, msg.now).await
);

store_message!(
    /// Check that the store answers, through the same path requests take.
    Ping {} -> (),
    |store, _msg| store.ping().await
);
