//! The registry shard actor: owns a store handle and runs one identity's operations.
//!
//! One shard per core (docs/architecture.md); identities are assigned by [`IdentityKey::stable_hash`]
//! in [`super::shards::Shards`]. The logic lives in the `Store`; the actor only bounds the
//! queue (its mailbox), bounds each operation's time, and lets it crash: an operation that
//! panics (a bug) is answered with `StoreError::Bug`, and the shard stops so that its
//! supervisor restarts it with fresh state, instead of the panic taking its thread down.
//!
//! Every operation is counted and timed here, where it runs (`ringcast_registrations_total`,
//! `ringcast_registry_op_seconds`): the time covers the store work and its timeout, not the
//! wait in the mailbox. The router, which runs on the same shard and reads the store directly
//! (a ring's lookup needs no second hop), times its lookups with the same call, [`metered`]
//! (through [`list_metered`]).

use super::registration::{IdentityKey, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};
use crate::metrics::{self, RegistryOp, RegistryOutcome};
use actix::{
    Actor, ActorContext, ActorFutureExt, Context, Handler, Message, ResponseActFuture, Supervised,
    WrapFuture,
};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

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

/// Runs a store operation within the shard's time bound, turning a panic into
/// `StoreError::Bug`, so the caller gets an answer either way.
async fn bounded<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match AssertUnwindSafe(tokio::time::timeout(limit, operation))
        .catch_unwind()
        .await
    {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(StoreError::Unavailable(format!(
            "no answer within {} ms",
            limit.as_millis()
        ))),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(StoreError::Bug(what))
        }
    }
}

/// Names an operation and its outcome from its result, for the metrics (`None`: not a registry
/// operation, not counted).
pub type Meter<T> = fn(&Result<T, StoreError>) -> Option<(RegistryOp, RegistryOutcome)>;

/// Runs `operation` on a store named `store_name`, and counts and times it as `meter` names
/// it from its result.
pub async fn metered<T>(
    store_name: &'static str,
    meter: Meter<T>,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = operation.await;
    if let Some((op, outcome)) = meter(&result) {
        metrics::registry_op(op, store_name, outcome, started.elapsed());
    }
    result
}

/// A lookup of `who`'s live registrations at `now`, counted and timed as `op="list"`, as the
/// shard's [`List`] is: what the router reads for every call event.
pub async fn list_metered<S: Store>(
    store: &S,
    who: &IdentityKey,
    now: UnixMillis,
) -> Result<Vec<Registration>, StoreError> {
    metered(store.name(), listed, store.list(who, now)).await
}

/// The metrics of a lookup.
fn listed(result: &Result<Vec<Registration>, StoreError>) -> Option<(RegistryOp, RegistryOutcome)> {
    Some((RegistryOp::List, ended(result, |_| true)))
}

/// How an operation ended, for the metrics: a store error's kind, `not_found` when `found`
/// says the operation found nothing to act on, `ok` otherwise.
fn ended<T>(result: &Result<T, StoreError>, found: impl FnOnce(&T) -> bool) -> RegistryOutcome {
    match result {
        Ok(value) if found(value) => RegistryOutcome::Ok,
        Ok(_) => RegistryOutcome::NotFound,
        Err(error) => RegistryOutcome::of_error(error),
    }
}

/// Declares a message, its result and the shard's handler, which runs `$body` with a clone of
/// the store (`$store`) and the message (`$msg`) beside the actor's other work, so the shard
/// keeps taking messages while the store works. After a `Bug`, the shard stops (and restarts).
/// `$metered` names the operation and its outcome from the result, for the metrics (`None`:
/// not a registry operation, not counted).
macro_rules! store_message {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)? } -> $out:ty,
     metered: $metered:expr,
     |$store:ident, $msg:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }

        impl Message for $name {
            type Result = Result<$out, StoreError>;
        }

        impl<S: Store> Handler<$name> for RegistryShard<S> {
            type Result = ResponseActFuture<Self, Result<$out, StoreError>>;

            fn handle(&mut self, $msg: $name, _: &mut Context<Self>) -> Self::Result {
                let $store = self.store.clone();
                let store_name = self.store.name();
                let limit = self.store_timeout;
                let operation =
                    metered::<$out>(store_name, $metered, bounded(limit, async move { $body }));
                Box::pin(operation.into_actor(self).map(|result, shard, ctx| {
                    if let Err(StoreError::Bug(what)) = &result {
                        tracing::error!(shard = shard.index, %what, "registry operation panicked; restarting the shard");
                        ctx.stop();
                    }
                    result
                }))
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
    metered: |result| {
        let op = match result {
            Ok(registered) if !registered.created => RegistryOp::Refresh,
            // A failed register cannot tell a new device from a refresh: counted as register.
            _ => RegistryOp::Register,
        };
        Some((op, ended(result, |_| true)))
    },
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
    metered: listed,
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
    metered: |result| Some((RegistryOp::Unregister, ended(result, |found| *found))),
    |store, msg| store.unregister(&msg.who, &msg.device_id, msg.now).await
);

store_message!(
    /// Revoke an identity: record when (so its older identity tokens are refused), then
    /// delete all its registrations. Recorded first: should the deletion fail, the caller's
    /// retry finds the old tokens already refused, never the other way round.
    Revoke {
        /// Whose devices.
        who: IdentityKey,
        /// The current time.
        now: UnixMillis,
        /// How long to keep the revocation ([`crate::registry::revocation::keep_ms`]);
        /// `None` when the tenant takes no identity tokens, so there is nothing to refuse.
        keep_ms: Option<u64>,
    } -> u64,
    metered: |result| Some((RegistryOp::Revoke, ended(result, |_| true))),
    |store, msg| {
        if let Some(keep_ms) = msg.keep_ms {
            store.record_revocation(&msg.who, msg.now, keep_ms).await?;
        }
        store.revoke(&msg.who, msg.now).await
    }
);

store_message!(
    /// When an identity was last revoked, if that is still remembered: read for every request
    /// that comes with an identity token (`api::auth`).
    RevokedAt {
        /// Whose revocation.
        who: IdentityKey,
        /// The current time.
        now: UnixMillis,
    } -> Option<UnixMillis>,
    metered: |_| None,
    |store, msg| store.revoked_at(&msg.who, msg.now).await
);

store_message!(
    /// Act on a push service's verdict that a device's address is dead: delete the
    /// registration unless it changed address or was registered again after the verdict.
    RemoveDeadToken {
        /// Whose device.
        who: IdentityKey,
        /// Which device.
        device_id: String,
        /// The address the push service refused.
        address: PushAddress,
        /// When the push service gave the verdict.
        verdict_at: UnixMillis,
    } -> bool,
    metered: |result| Some((RegistryOp::RemoveDeadToken, ended(result, |deleted| *deleted))),
    |store, msg| store.remove_dead_token(&msg.who, &msg.device_id, &msg.address, msg.verdict_at).await
);

store_message!(
    /// Check that the store answers, through the same path requests take.
    Ping {} -> (),
    metered: |_| None,
    |store, _msg| store.ping().await
);

#[cfg(test)]
mod tests;
