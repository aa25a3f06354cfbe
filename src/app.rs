//! Wiring: opens the store, starts the shards and the HTTP servers (the public API and the
//! admin listener), and shuts them down in order (stop accepting, finish in-flight requests,
//! stop the shards, close the store).

mod copied_writes;
mod listener;
pub mod tls;
mod worker_router;

use crate::admin::reload::{LiveTenants, Reloader};
use crate::admin::{self, ReloaderData};
use crate::api::{self, ApiState};
use crate::channel::ChannelHub;
use crate::channel::presence::Presence;
use crate::channel::relay::Relay;
use crate::config::{Config, StoreKind};
use crate::metrics;
use crate::registry::embedded::EmbeddedStore;
use crate::registry::redis::sentinel::SentinelTarget;
use crate::registry::redis::{
    RedisClusterStore, RedisOptions, RedisSentinelStore, RedisSingleStore,
};
use crate::registry::shards::{ShardSettings, ShardThreads, Shards};
use crate::registry::{AnyStore, Store};
use crate::router::Routers;
use crate::router::drain::EventsInFlight;
use crate::router::ends::{self, EndChannel};
use crate::router::intake::DurableIntake;
use crate::router::intake::reader::Readers;
use crate::router::internal::ChannelFirst;
use crate::router::outages::StoreOutages;
use crate::router::ownership::{Ownership, RoutingSet};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, web};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use worker_router::WorkerRouter;

/// A started node: its HTTP server and shards, running on the current actix `System`.
pub struct Node {
    /// Where the API listens (the real port when the config asked for port 0).
    pub address: SocketAddr,
    /// Where the admin listener listens; `None` when the admin routes share the API's
    /// listener (`admin.on_api_listener`).
    pub admin_address: Option<SocketAddr>,
    server: Server,
    /// The admin listener: its handle, and the task that drives it (an actix `Server` serves
    /// only while polled).
    admin: Option<(ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>)>,
    /// The SIGHUP → reload loop, when the node reloads and handles signals.
    reload_on_hangup: Option<tokio::task::JoinHandle<()>>,
    shards: ShardThreads,
    sweeper: Option<tokio::task::JoinHandle<()>>,
    /// Listens for calls ended on other nodes (Redis stores only).
    end_listener: Option<tokio::task::JoinHandle<()>>,
    /// Listens for channel rings, notices and acks from other nodes (Redis stores only).
    relay_listener: Option<tokio::task::JoinHandle<()>>,
    /// Claims and reads the durable intake's streams (`[intake] durable`).
    intake_readers: Option<Readers>,
    /// The metrics exporter's upkeep loop.
    metrics_upkeep: tokio::task::JoinHandle<()>,
    /// The embedded store, kept so that the node closes its file itself when it stops
    /// ([`Node::run_until_stopped`]).
    embedded: Option<EmbeddedStore>,
}

/// How often the metrics exporter's upkeep runs (drains histogram samples between scrapes).
const METRICS_UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// Starts a node inside the current actix `System`. With `handle_signals`, SIGINT and
/// SIGTERM stop it gracefully. It cannot reload its configuration (see [`start_reloadable`]).
pub async fn start(config: &Config, handle_signals: bool) -> anyhow::Result<Node> {
    start_with(config, handle_signals, None).await
}

/// [`start`] for a node whose configuration came from `file` (`None`: the development
/// default): `POST /admin/reload`, and SIGHUP with `handle_signals`, read it again
/// ([`crate::admin::reload`]).
pub async fn start_reloadable(
    config: &Config,
    handle_signals: bool,
    file: Option<PathBuf>,
) -> anyhow::Result<Node> {
    start_with(config, handle_signals, Some(file)).await
}

async fn start_with(
    config: &Config,
    handle_signals: bool,
    reload_from: Option<Option<PathBuf>>,
) -> anyhow::Result<Node> {
    // Before the plan: building it registers series (each app's configuration errors at zero,
    // certificate expiry and topics), which a recorder installed later would never see.
    metrics::install();
    let plan = crate::plan::Plan::build(config)?;
    let tenants = LiveTenants::new(plan.tenants);
    if tenants.is_empty() {
        tracing::warn!("no tenants configured: every API request will get 401");
    }
    metrics::tenants_configured(tenants.ids().iter().map(String::as_str));
    let store = open_store(config).await?;
    let embedded = match &store {
        AnyStore::Embedded(embedded) => Some(embedded.clone()),
        _ => None,
    };
    let sweeper = match &store {
        AnyStore::Embedded(embedded) => Some(embedded.spawn_sweeper(Duration::from_secs(
            config.registry.embedded.sweep_interval_seconds,
        ))),
        _ => None,
    };
    let settings = ShardSettings {
        count: config.shard_count(),
        mailbox_capacity: config.registry.mailbox_capacity,
        mailbox_wait: Duration::from_millis(config.registry.mailbox_wait_ms),
        store_timeout: config.store_timeout(),
    };
    let store_name = store.name();
    metrics::store_in_use(store_name);
    let plan = plan.providers;
    let threads = ShardThreads::new(settings.count);
    let shard_stores = match shard_stores(&store, &threads, config).await {
        Ok(stores) => stores,
        Err(error) => {
            threads.stop();
            return Err(error);
        }
    };
    let (shards, shard_threads) = Shards::start_on(threads, shard_stores.clone(), settings);
    let mut ownership = ownership(config);
    ownership.ends = match EndChannel::connect(&config.registry).await {
        Ok(ends) => ends,
        Err(error) => {
            shard_threads.stop();
            return Err(error.context("connecting the call-end channel (registry.redis)"));
        }
    };
    let in_flight = ownership.in_flight.clone();
    let channel = channel_first(config, &ownership);
    let routers = Routers::new(call_timeout(config));
    let worker_router = Arc::new(WorkerRouter::new(
        config, &plan, &ownership, &channel, &routers, &store,
    ));
    // Read by EndChannel::connect just before: an error here is a file changed since.
    let pubsub_source = ownership
        .ends
        .is_some()
        .then(|| {
            ends::EndSource::from_config(&config.registry)
                .ok()
                .flatten()
        })
        .flatten();
    let end_listener = pubsub_source
        .clone()
        .map(|source| ends::spawn_listener(source, ownership.node.clone(), routers.clone()));
    let relay_listener = channel
        .relay
        .as_ref()
        .zip(pubsub_source)
        .map(|(relay, source)| relay.spawn_listener(source));
    let intake_readers = match &ownership.intake {
        Some(intake) => {
            match Readers::start(intake, &config.registry, routers.clone(), ownership.clock).await {
                Ok(readers) => Some(readers),
                Err(error) => {
                    shard_threads.stop();
                    return Err(error.context("starting the durable intake's readers"));
                }
            }
        }
        None => None,
    };
    let stop_reading = intake_readers.as_ref().map(Readers::stopper);
    let state = web::Data::new(ApiState {
        shards,
        routers,
        tenants: tenants.clone(),
        webpush_hosts: config.webpush.allowed_hosts.clone().into(),
        webpush_guard: config.webpush.address_guard(),
        webpush_resolve_timeout: config.webpush.resolve_timeout(),
        store_name,
        channel: channel.hub,
        channel_config: config.channel.clone(),
        channel_relay: channel.relay,
    });
    let intake = api::intake::Intake::new(config.server.max_requests_in_flight);
    let intake_handle = intake.clone();
    let certificate = match &config.server.tls {
        Some(tls) => Some(Arc::new(tls::CertificateCell::new(
            tls::load_certified_key(&tls.cert, &tls.key).map_err(anyhow::Error::msg)?,
        ))),
        None => None,
    };
    let reloader = reload_from.map(|file| {
        Arc::new(
            Reloader::new(file, config.clone(), tenants.clone(), certificate.clone())
                .with_credentials(plan.credentials.clone()),
        )
    });
    let reloader_data: ReloaderData = web::Data::new(reloader.clone());
    let (admin, admin_address) = if config.admin.on_api_listener {
        (None, None)
    } else {
        let (server, address) =
            admin::bind(config, state.clone(), intake.clone(), reloader_data.clone())?;
        (
            Some((server.handle(), actix_rt::spawn(server))),
            Some(address),
        )
    };
    let shared_admin = config.admin.on_api_listener.then_some(reloader_data);
    let (server, address) = public_listener(
        config,
        state,
        intake,
        shared_admin,
        certificate,
        worker_router,
    )?;
    tracing::info!(%address, admin = ?admin_address, tls = config.server.tls.is_some(), store = store_name, shards = settings.count, "ringcast node started");
    let reload_on_hangup = match (&reloader, handle_signals) {
        (Some(reloader), true) => Some(spawn_reload_on_hangup(reloader.clone())),
        _ => None,
    };
    if handle_signals {
        let handle = server.handle();
        let limit = Duration::from_secs(config.server.shutdown_timeout_seconds);
        actix_rt::spawn(async move {
            shutdown_signal().await;
            // Unfinished durable entries stay pending for the other nodes to claim.
            if let Some(readers) = &stop_reading {
                readers.stop();
            }
            drain(&intake_handle, &in_flight, limit).await;
            handle.stop(true).await;
        });
    }
    let metrics_upkeep = metrics::spawn_upkeep(METRICS_UPKEEP_PERIOD);
    Ok(Node {
        address,
        admin_address,
        server,
        admin,
        reload_on_hangup,
        shards: shard_threads,
        sweeper,
        end_listener,
        relay_listener,
        intake_readers,
        metrics_upkeep,
        embedded,
    })
}

/// Binds the public API: `/v1/*` (plus the admin routes when `shared_admin` is given, the
/// development default), plain HTTP/1.1 and h2c, or TLS with ALPN `h2` and `http/1.1` when
/// `certificate` is (`[server.tls]`).
fn public_listener(
    config: &Config,
    state: web::Data<ApiState>,
    intake: api::intake::Intake,
    shared_admin: Option<ReloaderData>,
    certificate: Option<Arc<tls::CertificateCell>>,
    worker_router: Arc<WorkerRouter>,
) -> anyhow::Result<(Server, SocketAddr)> {
    let max_body = config.server.max_body_bytes;
    let call_control_needs_certificate = config
        .server
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_ca.is_some());
    let limits = api::connection::ConnectionLimits::of(&config.server);
    let limits_data = web::Data::new(limits);
    let app = move || {
        let worker_router = worker_router.clone();
        let app = App::new()
            // Before the worker accepts a connection: its router, on its thread.
            .data_factory(move || worker_router.clone().start_here())
            .app_data(state.clone())
            .app_data(intake.clone())
            .app_data(limits_data.clone())
            .wrap(actix_web::middleware::from_fn(api::intake::limit))
            // Outside the intake: a request its connection may not make takes no place there.
            .wrap(actix_web::middleware::from_fn(api::connection::limit))
            .wrap(actix_web::middleware::Condition::new(
                call_control_needs_certificate,
                actix_web::middleware::from_fn(tls::require_client_certificate),
            ));
        let app = match &shared_admin {
            Some(reloader) => app.app_data(reloader.clone()).configure(admin::configure),
            None => app,
        };
        app.configure(|routes| api::configure(routes, max_body))
    };
    let (rustls_config, on_connect): (_, listener::OnConnect) =
        match (&config.server.tls, certificate) {
            (Some(settings), Some(certificate)) => (
                Some(tls::server_config(settings, certificate).map_err(anyhow::Error::msg)?),
                Arc::new(move |connection, extensions| {
                    limits.watch(extensions);
                    tls::note_client_certificate(connection, extensions);
                }),
            ),
            _ => (
                None,
                Arc::new(move |_, extensions| limits.watch(extensions)),
            ),
        };
    listener::serve(&config.server, rustls_config, on_connect, app)
        .with_context(|| format!("binding the API to {}", config.server.listen))
}

/// The keep-alive of `[server]`, for the public listener and the admin listener alike (with
/// the client timeouts): a slow or idle client must not hold either open.
pub(crate) fn keep_alive(settings: &crate::config::ServerConfig) -> actix_web::http::KeepAlive {
    match settings.keep_alive_seconds {
        0 => actix_web::http::KeepAlive::Disabled,
        seconds => actix_web::http::KeepAlive::Timeout(Duration::from_secs(seconds)),
    }
}

/// Reloads the configuration on every SIGHUP (what `systemctl reload` and `kill -HUP` send).
fn spawn_reload_on_hangup(reloader: Arc<Reloader>) -> tokio::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /admin/reload");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration");
            let reloader = reloader.clone();
            // The outcome is logged and counted by the reloader itself.
            let _ = actix_web::web::block(move || reloader.reload()).await;
        }
    })
}

/// One store handle per shard. A Redis connection is multiplexed and driven by a task on the
/// runtime that opened it: opened on each shard's own arbiter, every shard's store traffic
/// runs on its own thread instead of all of it queueing through one connection driven by the
/// main thread (measured by the end-to-end benchmark as ~60 % of a core there). The embedded
/// store is one file; its handle is shared.
async fn shard_stores(
    store: &AnyStore,
    threads: &ShardThreads,
    config: &Config,
) -> anyhow::Result<Vec<AnyStore>> {
    let handles = threads.handles();
    if matches!(store, AnyStore::Embedded(_)) {
        return Ok(vec![store.clone(); handles.len()]);
    }
    on_each_shard(threads, "its store", || {
        let config = config.clone();
        async move { open_store(&config).await }
    })
    .await
}

/// What `open` opens, once on each shard's arbiter, so that what it starts there (a Redis
/// connection's driver task) runs on that shard's thread; `what` names it in an error.
async fn on_each_shard<T, Opening>(
    threads: &ShardThreads,
    what: &str,
    open: impl Fn() -> Opening,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    Opening: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let handles = threads.handles();
    let mut opened = Vec::with_capacity(handles.len());
    for (shard, handle) in handles.iter().enumerate() {
        let (done, receive) = tokio::sync::oneshot::channel();
        let opening = open();
        handle.spawn(async move {
            let _ = done.send(opening.await);
        });
        let one = receive
            .await
            .with_context(|| format!("shard {shard} stopped while opening {what}"))?
            .with_context(|| format!("shard {shard} opening {what}"))?;
        opened.push(one);
    }
    Ok(opened)
}

/// How long an API caller waits for its event's router: for mailbox room, a claim and a
/// lookup, and its pushes being queued.
fn call_timeout(config: &Config) -> Duration {
    Duration::from_millis(config.registry.mailbox_wait_ms)
        + config.store_timeout() * 2
        + Duration::from_millis(100)
}

/// The internal push channel as the routers use it; with a Redis store, its devices'
/// presence and the relay to the other nodes ride on the call-end broadcasts' connection.
fn channel_first(config: &Config, ownership: &Ownership) -> ChannelFirst {
    let presence = ownership
        .ends
        .clone()
        .map(|redis| Presence::new(ownership.node.clone(), redis, config.channel.presence_ttl()));
    let hub = ChannelHub::with_presence(config.channel.send_queue, presence.clone());
    ChannelFirst {
        relay: presence.map(|presence| Relay::new(presence, hub.clone())),
        hub,
        ack_timeout: config.channel.ack_timeout(),
    }
}

/// This node's terms for owning call events (`[cluster]`).
fn ownership(config: &Config) -> Ownership {
    let node = config.cluster.resolved_node_id();
    tracing::info!(node_id = %node, lease_ms = config.cluster.lease_ms, "cluster node id");
    Ownership {
        intake: DurableIntake::from_config(config, &node),
        outcomes: crate::router::outcomes::OutcomeStream::from_config(config),
        node: node.into(),
        lease: config.cluster.lease(),
        renew_every: config.cluster.renew_every(),
        in_flight: EventsInFlight::default(),
        routing: RoutingSet::default(),
        outages: StoreOutages::default(),
        ends: None,
        clock: crate::clock::Clock::System,
    }
}

/// Drains the node before it stops (docs/architecture.md, "Cluster semantics"): `/readyz` fails and new
/// call events get `503` with `Retry-After` from now on, while the events already taken keep
/// going until every push has an outcome (delivered, retried, or expired at its deadline) or
/// `limit` passed. Unfinished events are handed over by their leases.
async fn drain(intake: &api::intake::Intake, in_flight: &EventsInFlight, limit: Duration) {
    intake.start_draining();
    let events = in_flight.count();
    tracing::info!(
        events,
        "shutdown signal received: draining events, then finishing in-flight requests"
    );
    let started = std::time::Instant::now();
    if in_flight.drained_within(limit).await {
        tracing::info!(
            events,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "drained"
        );
    } else {
        tracing::warn!(
            left = in_flight.count(),
            "shutdown timeout: stopping with events in flight; their leases lapse for the other nodes"
        );
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (what orchestrators send to stop).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = tokio::signal::ctrl_c();
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = interrupt => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the node");
            // An error here means no SIGINT handler either; the node then runs until killed.
            let _ = interrupt.await;
        }
    }
}

impl Node {
    /// A handle that stops the node (gracefully with `stop(true)`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then stops the shards and the sweeper, which releases the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        // The admin listener outlives the API's drain, so probes and scrapes see it through.
        if let Some((handle, task)) = self.admin {
            handle.stop(true).await;
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the admin listener stopped with an error");
                }
                Err(error) => tracing::warn!(%error, "the admin listener's task failed"),
            }
        }
        if let Some(reload) = self.reload_on_hangup {
            reload.abort();
        }
        if let Some(sweeper) = self.sweeper {
            sweeper.abort();
        }
        if let Some(listener) = self.end_listener {
            listener.abort();
        }
        if let Some(listener) = self.relay_listener {
            listener.abort();
        }
        if let Some(readers) = self.intake_readers {
            readers.abort();
        }
        self.metrics_upkeep.abort();
        self.shards.stop();
        if let Some(store) = self.embedded {
            close_embedded(store).await;
        }
        tracing::info!("ringcast node stopped");
        served
    }
}

/// How long a stopping node waits for the other handles of its embedded store to go.
const STORE_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Closes the embedded store's file on the node's own thread once every other handle is gone:
/// the HTTP workers drop theirs on their own threads as they wind down, and redb's close
/// (which marks the file cleanly shut, so the next open needs no repair) would otherwise run
/// there, after the node's thread has ended, while a node started next on the same file finds
/// it still locked.
async fn close_embedded(store: EmbeddedStore) {
    let deadline = tokio::time::Instant::now() + STORE_CLOSE_TIMEOUT;
    while store.other_handles() > 0 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                handles = store.other_handles(),
                "the embedded store is still shared after the node stopped; it closes with its last handle"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(store);
}

async fn open_store(config: &Config) -> anyhow::Result<AnyStore> {
    let registry = &config.registry;
    let redis_options = RedisOptions {
        max_devices_per_identity: registry.max_devices_per_identity,
        connect_timeout: Duration::from_millis(registry.redis.connect_timeout_ms),
        command_timeout: Duration::from_millis(registry.redis.command_timeout_ms),
        owner_buckets: registry.redis.owner_buckets,
        client: registry.redis.client,
    };
    Ok(match registry.store {
        StoreKind::Embedded => {
            let path = &registry.embedded.path;
            let store = EmbeddedStore::open(path, registry.max_devices_per_identity)
                .with_context(|| format!("opening the embedded store at {}", path.display()))?;
            AnyStore::Embedded(store)
        }
        StoreKind::Redis => AnyStore::Redis(
            RedisSingleStore::connect_with_tls(
                &registry.redis.url,
                redis_certificates(config)?.as_ref(),
                &redis_options,
            )
            .await
            .context("connecting to Redis (registry.redis.url)")?,
        ),
        StoreKind::RedisCluster => AnyStore::RedisCluster(
            RedisClusterStore::connect_with_tls(
                &registry.redis.nodes,
                redis_certificates(config)?.as_ref(),
                &redis_options,
            )
            .await
            .context("connecting to the Redis Cluster (registry.redis.nodes)")?,
        ),
        StoreKind::RedisSentinel => {
            let certificates = redis_certificates(config)?;
            // Validation read the password already; it may have changed since.
            let login = registry.redis.master_login().map_err(anyhow::Error::msg)?;
            let target = SentinelTarget {
                sentinels: &registry.redis.sentinels,
                master: &registry.redis.sentinel_master,
                certificates: certificates.as_ref(),
                login: &login,
            };
            AnyStore::RedisSentinel(
                RedisSentinelStore::connect(&target, &redis_options)
                    .await
                    // A refused login may be either side's: name where each is set.
                    .context(
                        "connecting to the master Redis Sentinel names (registry.redis.sentinels, \
                         with the Sentinels' login in their URLs and the master's in \
                         master_username/master_password)",
                    )?,
            )
        }
    })
}

/// The TLS files of `[registry.redis]`, read (validation checked them already; they may have
/// changed since).
pub(crate) fn redis_certificates(
    config: &Config,
) -> anyhow::Result<Option<redis::TlsCertificates>> {
    crate::registry::redis::tls::certificates(&config.registry.redis)
        .map_err(|problems| anyhow::anyhow!(problems.join("; ")))
}

/// A node running on a thread of its own with its own actix `System`: what tests and
/// embedding programs use to run a node next to other work.
pub struct BackgroundNode {
    /// Where the API listens.
    pub address: SocketAddr,
    /// Where the admin listener listens (`None`: on the API's listener).
    pub admin_address: Option<SocketAddr>,
    handle: ServerHandle,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl BackgroundNode {
    /// Starts a node on a new thread and waits until it listens.
    pub fn spawn(config: Config) -> anyhow::Result<BackgroundNode> {
        Self::spawn_with(config, None)
    }

    /// [`BackgroundNode::spawn`] for a node that reloads from `file` on `POST /admin/reload`.
    pub fn spawn_reloadable(config: Config, file: PathBuf) -> anyhow::Result<BackgroundNode> {
        Self::spawn_with(config, Some(Some(file)))
    }

    fn spawn_with(
        config: Config,
        reload_from: Option<Option<PathBuf>>,
    ) -> anyhow::Result<BackgroundNode> {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ringcast-node".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    match start_with(&config, false, reload_from).await {
                        Ok(node) => {
                            // The receiver waits for exactly this message; if it is gone, the
                            // spawner gave up and the node just serves until stopped.
                            let addresses = (node.address, node.admin_address);
                            let _ = started_tx.send(Ok((addresses, node.handle())));
                            node.run_until_stopped().await
                        }
                        Err(error) => {
                            let _ = started_tx.send(Err(error));
                            Ok(())
                        }
                    }
                })
            })?;
        let ((address, admin_address), handle) = started_rx
            .recv()
            .context("the node thread died while starting")??;
        Ok(BackgroundNode {
            address,
            admin_address,
            handle,
            thread,
        })
    }

    /// The API's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The admin listener's base URL (the API's when they share one).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_address.unwrap_or(self.address))
    }

    /// Stops the node gracefully and waits until its store is released.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .context("joining the node thread")?
            .map_err(|_| anyhow::anyhow!("the node thread panicked"))??;
        Ok(())
    }
}
