//! Each HTTP worker's router ([`crate::router::routers`]): started on the worker's thread while
//! the worker builds its services, before it accepts a connection, together with what the
//! router talks through — its store connection, which with a Redis store also carries its
//! call-end broadcasts, presence reads and relayed rings — so that the connection's driver
//! task runs on the worker's thread too and a ring never leaves it.

use super::open_store;
use crate::config::Config;
use crate::providers::wiring::{ProviderSet, ProviderSpecs};
use crate::registry::AnyStore;
use crate::router::Router;
use crate::router::ends::EndChannel;
use crate::router::internal::ChannelFirst;
use crate::router::ownership::Ownership;
use crate::router::routers::Routers;
use actix::Actor;
use anyhow::Context;
use std::rc::Rc;
use std::sync::Arc;

thread_local! {
    /// This thread's router start: the API and the WebSocket upgrade service each build the
    /// app, and a worker must start one router, not one per app.
    static STARTED: Rc<tokio::sync::OnceCell<()>> = Rc::new(tokio::sync::OnceCell::new());
}

/// What a worker needs to start its router.
pub struct WorkerRouter {
    config: Config,
    providers: ProviderSpecs,
    ownership: Ownership,
    channel: ChannelFirst,
    routers: Routers,
    /// The embedded store, one file every router shares; `None`: each opens its own Redis
    /// connection.
    shared_store: Option<AnyStore>,
}

/// A worker's router is running (what the app's data factory gives).
pub struct RouterStarted;

impl WorkerRouter {
    /// Routers that join `routers`, routing with the node's `ownership` and `channel`.
    pub fn new(
        config: &Config,
        providers: &ProviderSpecs,
        ownership: &Ownership,
        channel: &ChannelFirst,
        routers: &Routers,
        store: &AnyStore,
    ) -> WorkerRouter {
        WorkerRouter {
            config: config.clone(),
            providers: providers.clone(),
            ownership: ownership.clone(),
            channel: channel.clone(),
            routers: routers.clone(),
            shared_store: matches!(store, AnyStore::Embedded(_)).then(|| store.clone()),
        }
    }

    /// Starts the current thread's router unless it has one. An error fails the worker's
    /// start, and with it the node's.
    pub async fn start_here(self: Arc<Self>) -> anyhow::Result<RouterStarted> {
        let started = STARTED.with(Rc::clone);
        started
            .get_or_try_init(|| async {
                self.start().await.inspect_err(|error| {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "an HTTP worker's router did not start"
                    );
                })
            })
            .await?;
        Ok(RouterStarted)
    }

    async fn start(&self) -> anyhow::Result<()> {
        let store = match &self.shared_store {
            Some(store) => store.clone(),
            None => open_store(&self.config)
                .await
                .context("an HTTP worker opening its store connection")?,
        };
        let (mut ownership, mut channel) = (self.ownership.clone(), self.channel.clone());
        // The router's broadcasts and presence reads share its store connection rather than
        // open one of their own: a ring's claim, registrations and presence then leave in one
        // write and return in one read (docs/performance.md, "One connection per router").
        if ownership.ends.is_some()
            && let Some(ends) = EndChannel::of_store(&store)
        {
            channel.relay = channel.relay.map(|relay| relay.over(ends.clone()));
            ownership.ends = Some(ends);
        }
        let providers = ProviderSet::start(&self.providers, &store)
            .map_err(anyhow::Error::msg)
            .context("an HTTP worker starting its providers")?;
        tracing::debug!(providers = providers.len(), "router started");
        let router = Router::new(
            store,
            Arc::new(providers),
            self.config.registry.mailbox_capacity,
            self.config.router.max_events_in_flight,
            ownership,
            self.routers.clone(),
        )
        .with_channel(channel)
        .start();
        self.routers.join_here(router);
        Ok(())
    }
}
