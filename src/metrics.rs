//! Metrics: the Prometheus instruments of a node, and the one place their names and label
//! values are spelled.
//!
//! Code where the work happens calls the typed functions below ([`push_finished`],
//! [`queue_depth`], [`registry_op`], ...); they take enums or the crate's own types, so a
//! label can only ever take a value from the bounded vocabulary listed here. No identity,
//! token, call id, event id or URL is ever a label value: those would make series grow without
//! bound (one per user) and leak who called whom into the monitoring system.
//!
//! The recorder is process-global (the `metrics` crate's facade) and installed once by
//! [`install`]; several nodes in one process (tests) share it. `GET /metrics` renders it
//! ([`render`]) together with the process metrics read from `/proc` at scrape time
//! ([`process`]). Every series of a bounded label set is registered at zero when the recorder
//! is installed, so dashboards and alerts see it before the first push.
//!
//! # Names and labels (docs/architecture.md, "Observability"; the names are part of the contract)
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `ringcast_pushes_total` | counter | `provider`, `priority`, `outcome` |
//! | `ringcast_push_latency_seconds` | histogram, 0.5 ms .. 30 s | `provider`, `priority` |
//! | `ringcast_queue_depth` | gauge | `provider`, `priority` |
//! | `ringcast_queue_capacity` | gauge | `provider`, `priority` |
//! | `ringcast_inflight` | gauge | `provider` |
//! | `ringcast_connections` | gauge | `provider`, `state` |
//! | `ringcast_retries_total` | counter | `provider`, `reason` |
//! | `ringcast_expired_total` | counter | `provider`, `priority` |
//! | `ringcast_shed_total` | counter | `priority` |
//! | `ringcast_token_invalidations_total` | counter | `provider`, `reason` |
//! | `ringcast_registrations_total` | counter | `op`, `outcome` (`op="list"` counts the routers' lookups too) |
//! | `ringcast_registry_op_seconds` | histogram, 50 µs .. 5 s | `op`, `store` |
//! | `ringcast_embedded_write_seconds` | histogram, 50 µs .. 5 s (embedded store only) | `durability` |
//! | `ringcast_embedded_claims_unwritten` | gauge (embedded store only) | — |
//! | `ringcast_redis_commands_waiting` | gauge (own Redis connection only) | — |
//! | `ringcast_redis_commands_refused_total` | counter (own Redis connection only) | — |
//! | `ringcast_redis_connections_ended_total` | counter (own Redis connection only) | `reason` |
//! | `ringcast_redis_cluster_redirections_total` | counter (own cluster connection only) | `kind` |
//! | `ringcast_redis_cluster_map_reads_total` | counter (own cluster connection only) | `outcome` |
//! | `ringcast_events_total` | counter | `kind`, `outcome` |
//! | `ringcast_credential_refresh_total` | counter | `provider`, `outcome` |
//! | `ringcast_push_config_errors_total` | counter | `provider`, `tenant`, `app`, `reason` |
//! | `ringcast_token_environment_corrections_total` | counter | `provider` |
//! | `ringcast_provider_pauses_total` | counter | `provider` |
//! | `ringcast_credential_expiry_seconds` | gauge, UNIX seconds | `provider`, `tenant`, `app` |
//! | `ringcast_credential_topics_uncovered` | gauge | `provider`, `tenant`, `app` |
//! | `ringcast_config_reloads_total` | counter | `outcome` |
//! | `ringcast_build_info` | gauge, always 1 | `version`, `git_sha` |
//! | `ringcast_uptime_seconds` | gauge | |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | Prometheus' standard process metrics (Linux) | |
//!
//! Label values:
//!
//! - `provider`: `apns`, `fcm`, `wns`, `webpush` ([`Platform::as_str`]).
//! - `priority`: `p0`, `p1`, `p2` ([`Priority::label`]).
//! - `outcome` of `pushes_total`: `delivered`, `expired`, `shed`, `withdrawn`, `dead_token`,
//!   `misconfigured`, `no_alert_token`, `credential_problem`, `rejected` ([`Outcome::label`]).
//! - `state` of `connections`: `open`, `connecting`, `draining` ([`ConnectionState`]).
//! - `reason` of `retries_total`: `status_5xx`, `too_many_requests`, `connection_lost`,
//!   `refused_stream`, `timeout`, `idle_timeout`, `expired_provider_token` ([`RetryReason`]).
//! - `reason` of `token_invalidations_total`: the push service's documented reason — APNs
//!   `BadDeviceToken` (after the other environment refused it too), `ExpiredToken`,
//!   `Unregistered`; FCM `UNREGISTERED`, `INVALID_ARGUMENT` (naming the token); WNS and Web
//!   Push the HTTP status `404` or `410` — and `unknown` for anything else
//!   ([`token_invalidated`] maps it).
//! - `tenant` and `app` of `push_config_errors_total`: the configured tenant and app names
//!   (bounded by the config, never a user's input); `reason`: the push service's reason that
//!   blames the sender (APNs `DeviceTokenNotForTopic`, `BadTopic`, `TopicDisallowed` and the
//!   403 reasons; FCM `SENDER_ID_MISMATCH`, ...), `other` for anything else
//!   ([`config_error_reason`]).
//! - `op` of the registry: `register`, `refresh`, `list`, `unregister`, `revoke`,
//!   `remove_dead_token` ([`RegistryOp`]); `outcome`: `ok`, `not_found`, `too_many_devices`,
//!   `unavailable`, `corrupt`, `bug`, `invalid`, `busy` ([`RegistryOutcome`]); `store`:
//!   `embedded`, `redis`, `redis-cluster` (`Store::name`).
//! - `durability` of `embedded_write_seconds`: `lazy`, `fsync` ([`embedded::WriteDurability`]).
//! - `reason` of `redis_connections_ended_total`: `closed`, `io`, `protocol`, `stalled`
//!   ([`redis::ConnectionEnd`]).
//! - `kind` of `redis_cluster_redirections_total`: `moved`, `ask` ([`redis::Redirection`]);
//!   `outcome` of `redis_cluster_map_reads_total`: `read`, `failed` ([`redis::MapRead`]).
//! - `kind` of `events_total`: `incoming_call`, `call_ended`, `missed_call` ([`PushKind`]);
//!   `outcome`: `accepted`, `duplicate`, `no_devices`, `invalid`, `busy`, `unavailable`
//!   ([`EventOutcome`]).
//! - `outcome` of `credential_refresh_total`: `ok`, `error` ([`RefreshOutcome`]).
//! - `tenant` of `rate_limited_total`: a configured tenant id (registered at zero at start,
//!   so bounded by the configuration); `kind`: `registration`, `call`
//!   ([`crate::limits::LimitKind`]).
//! - `outcome` of `config_reloads_total`: `applied`, `refused` ([`ReloadOutcome`]).

pub mod catalog;
pub mod channel;
pub mod embedded;
mod hot;
pub mod intake;
pub mod process;
pub mod redis;
mod vocabulary;

pub use vocabulary::{
    ConnectionRefusal, ConnectionState, EndBroadcast, EventOutcome, IntakeRoute, LeaseOutcome,
    RefreshOutcome, RegistryOp, RegistryOutcome, ReloadOutcome, RetryReason, config_error_reason,
    dead_token_reason, event_kind,
};

use crate::vocab::{Outcome, Platform, Priority, PushKind};
use hot::Handles;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The content type of the text exposition format `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The installed recorder's handle and when it was installed (for the uptime gauge).
struct Installed {
    handle: PrometheusHandle,
    started: Instant,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the process-global recorder, describes every metric and registers the bounded
/// series at zero. Idempotent: the second and later calls (more nodes in one process) do
/// nothing. When another recorder was installed first (an embedding program's), ringcast's
/// instruments go to that one and `/metrics` shows only what ringcast's own recorder holds.
pub fn install() {
    INSTALLED.get_or_init(|| {
        let recorder = catalog::builder().build_recorder();
        let handle = recorder.handle();
        // Into this recorder, named: the first caller may be a thread that counts into a
        // recorder of its own meanwhile (`metrics::with_local_recorder`, the unit tests), where
        // the bare macros would register the series.
        metrics::with_local_recorder(&recorder, || {
            catalog::describe_all();
            catalog::preregister();
        });
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "a metrics recorder was already installed; /metrics will be empty");
        }
        Installed {
            handle,
            started: Instant::now(),
        }
    });
}

/// Renders every metric in the Prometheus text format (version 0.0.4): the recorder's series,
/// uptime, and the process metrics read now. Installs the recorder if nobody did.
pub fn render() -> String {
    install();
    // `install` above leaves it set.
    let Some(installed) = INSTALLED.get() else {
        return String::new();
    };
    gauge!(catalog::UPTIME_SECONDS).set(installed.started.elapsed().as_secs_f64());
    let mut text = installed.handle.render();
    process::render_into(&mut text);
    text
}

/// Runs the exporter's upkeep every `period` (drains histogram samples so their memory stays
/// bounded between scrapes) on the current actix/tokio runtime, until the returned task is
/// aborted. Each node starts one; a second one in the same process is harmless.
pub fn spawn_upkeep(period: Duration) -> tokio::task::JoinHandle<()> {
    install();
    actix_rt::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some(installed) = INSTALLED.get() {
                installed.handle.run_upkeep();
            }
        }
    })
}

/// Registers the store-latency series of the store this node uses (`Store::name`), so they
/// are there before the first registry operation.
pub fn store_in_use(store: &'static str) {
    install();
    catalog::store_in_use(store);
}

/// A push ended with `outcome`, `latency` after its event was accepted. Counts it once in
/// every series its outcome belongs to: `pushes_total`, the latency histogram (only for an
/// answer from the push service: `expired` and `shed` pushes got none), `expired_total` or
/// `shed_total`. Call exactly once per push, with its final outcome.
pub fn push_finished(provider: Platform, priority: Priority, outcome: &Outcome, latency: Duration) {
    static PUSHES: Handles<Counter, { PROVIDERS * PRIORITIES * OUTCOMES }> = Handles::new();
    static LATENCY: Handles<Histogram, { PROVIDERS * PRIORITIES }> = Handles::new();
    let series = provider_index(provider) * PRIORITIES + priority as usize;
    let (provider, priority) = (provider.as_str(), priority.label());
    PUSHES.with(
        series * OUTCOMES + outcome_index(outcome),
        || counter!(catalog::PUSHES_TOTAL, "provider" => provider, "priority" => priority, "outcome" => outcome.label()),
        |pushes| pushes.increment(1),
    );
    match outcome {
        Outcome::Expired => {
            counter!(catalog::EXPIRED_TOTAL, "provider" => provider, "priority" => priority)
                .increment(1);
        }
        Outcome::Shed => {
            counter!(catalog::SHED_TOTAL, "priority" => priority).increment(1);
        }
        // Dropped from the queue because the call ended, or nothing to send it to: never
        // sent, so no latency.
        Outcome::Withdrawn | Outcome::NoAlertToken => {}
        // Counted by `channel_push_finished`, with its own latency (the ack's).
        Outcome::DeliveredInternal => {}
        Outcome::Delivered
        | Outcome::DeadToken { .. }
        | Outcome::Misconfigured { .. }
        | Outcome::CredentialProblem { .. }
        | Outcome::Rejected { .. } => {
            LATENCY.with(
                series,
                || histogram!(catalog::PUSH_LATENCY_SECONDS, "provider" => provider, "priority" => priority),
                |histogram| histogram.record(latency.as_secs_f64()),
            );
        }
    }
}

/// Pushes waiting in a provider's queue of one priority changed by `delta`. A node runs one
/// dispatcher per router, app and environment, and they all add into the same series, so
/// gauges here move by deltas: a `set` from one dispatcher would hide the others.
pub fn queue_depth(provider: Platform, priority: Priority, delta: i64) {
    gauge!(catalog::QUEUE_DEPTH, "provider" => provider.as_str(), "priority" => priority.label())
        .increment(delta as f64);
}

/// A queue of `capacity` pushes was made (or, with a negative value, removed): the alert on a
/// queue near full compares the summed `queue_depth` with the summed capacity.
pub fn queue_capacity(provider: Platform, priority: Priority, capacity: i64) {
    gauge!(catalog::QUEUE_CAPACITY, "provider" => provider.as_str(), "priority" => priority.label())
        .increment(capacity as f64);
}

/// Deliveries of a provider under way (sent and unanswered, or backing off) changed by `delta`.
pub fn inflight(provider: Platform, delta: i64) {
    static INFLIGHT: Handles<Gauge, PROVIDERS> = Handles::new();
    INFLIGHT.with(
        provider_index(provider),
        || gauge!(catalog::INFLIGHT, "provider" => provider.as_str()),
        |gauge| gauge.increment(delta as f64),
    );
}

/// Call events being routed changed by `delta` (summed over the node's routers).
pub fn events_in_flight(delta: i64) {
    static EVENTS: Handles<Gauge, 1> = Handles::new();
    EVENTS.with(
        0,
        || gauge!(catalog::EVENTS_IN_FLIGHT),
        |gauge| gauge.increment(delta as f64),
    );
}

/// Calls whose rings the node holds changed by `delta`.
pub fn calls_ringing(delta: i64) {
    static CALLS: Handles<Gauge, 1> = Handles::new();
    CALLS.with(
        0,
        || gauge!(catalog::CALLS_RINGING),
        |gauge| gauge.increment(delta as f64),
    );
}

/// A router admitting at most `limit` events in flight started (or, negative, stopped).
pub fn events_in_flight_limit(limit: i64) {
    gauge!(catalog::EVENTS_IN_FLIGHT_LIMIT).increment(limit as f64);
}

/// API requests being served changed by `delta`.
pub fn requests_in_flight(delta: i64) {
    static REQUESTS: Handles<Gauge, 1> = Handles::new();
    REQUESTS.with(
        0,
        || gauge!(catalog::REQUESTS_IN_FLIGHT),
        |gauge| gauge.increment(delta as f64),
    );
}

/// The node serves at most `limit` API requests at once.
pub fn requests_in_flight_limit(limit: i64) {
    gauge!(catalog::REQUESTS_IN_FLIGHT_LIMIT).set(limit as f64);
}

/// An API request of `route` was refused on arrival: too many in progress.
pub fn request_refused(route: IntakeRoute) {
    counter!(catalog::REQUESTS_REFUSED_TOTAL, "route" => route.label()).increment(1);
}

/// The API's connection limits refused a client for `reason`.
pub fn connection_refused(reason: ConnectionRefusal) {
    counter!(catalog::CONNECTIONS_REFUSED_TOTAL, "reason" => reason.label()).increment(1);
}

/// Registers `ringcast_rate_limited_total` at zero for each configured tenant id.
pub fn tenants_configured<'a>(tenants: impl IntoIterator<Item = &'a str>) {
    install();
    catalog::tenants_configured(tenants);
}

/// A request of `tenant` was refused with `429`: over its `kind` limit.
pub fn rate_limited(tenant: &str, kind: crate::limits::LimitKind) {
    counter!(catalog::RATE_LIMITED_TOTAL, "tenant" => tenant.to_owned(), "kind" => kind.label())
        .increment(1);
}

/// A provider's HTTP/2 connections in `state` changed by `delta`.
pub fn connections(provider: Platform, state: ConnectionState, delta: i64) {
    gauge!(catalog::CONNECTIONS, "provider" => provider.as_str(), "state" => state.label())
        .increment(delta as f64);
}

/// A push is sent again, because of `reason`.
pub fn retry(provider: Platform, reason: RetryReason) {
    counter!(catalog::RETRIES_TOTAL, "provider" => provider.as_str(), "reason" => reason.label())
        .increment(1);
}

/// A push service said a token is dead, giving `reason` (as the service spells it; a reason
/// outside the documented set is counted as `unknown`, so a new one cannot add series).
pub fn token_invalidated(provider: Platform, reason: &str) {
    counter!(
        catalog::TOKEN_INVALIDATIONS_TOTAL,
        "provider" => provider.as_str(),
        "reason" => dead_token_reason(provider, reason)
    )
    .increment(1);
}

/// A push service blamed `app`'s configuration or credential, giving `reason`: nothing was
/// deleted, and an operator must fix the app (alert `RingcastAppMisconfigured`).
pub fn config_error(provider: Platform, tenant: &str, app: &str, reason: &str) {
    counter!(
        catalog::PUSH_CONFIG_ERRORS_TOTAL,
        "provider" => provider.as_str(),
        "tenant" => tenant.to_owned(),
        "app" => app.to_owned(),
        "reason" => config_error_reason(provider, reason)
    )
    .increment(1);
}

/// Registers `app`'s configuration-error series at zero, so the alert sees the first error
/// as an increase. Called once per configured app at start-up.
pub fn app_configured(provider: Platform, tenant: &str, app: &str) {
    install();
    for reason in vocabulary::config_error_reasons(provider)
        .iter()
        .chain(&["other"])
    {
        counter!(
            catalog::PUSH_CONFIG_ERRORS_TOTAL,
            "provider" => provider.as_str(),
            "tenant" => tenant.to_owned(),
            "app" => app.to_owned(),
            "reason" => *reason
        )
        .absolute(0);
    }
}

/// An APNs token refused as `BadDeviceToken` was accepted by the other environment: the
/// registration's environment was corrected (docs/architecture.md, "The registry and its stores").
pub fn environment_corrected(provider: Platform) {
    counter!(catalog::TOKEN_ENVIRONMENT_CORRECTIONS_TOTAL, "provider" => provider.as_str())
        .increment(1);
}

/// A push service refuses every push of a credential for a while, and ringcast paused them
/// all (`src/providers/pause.rs`): counted once per pause, not per refused push.
pub fn provider_paused(provider: Platform) {
    counter!(catalog::PROVIDER_PAUSES_TOTAL, "provider" => provider.as_str()).increment(1);
}

/// A provider credential (APNs JWT, FCM OAuth token, WNS token) was refreshed, or failed to.
pub fn credential_refresh(provider: Platform, outcome: RefreshOutcome) {
    counter!(catalog::CREDENTIAL_REFRESH_TOTAL, "provider" => provider.as_str(), "outcome" => outcome.label())
        .increment(1);
}

/// `tenant`'s `app` authenticates to `provider` with a credential that expires at
/// `not_after` (UNIX seconds): an APNs client certificate, read at start-up. Tenants and apps
/// come from the configuration, so the label set is bounded.
pub fn credential_expiry(provider: Platform, tenant: &str, app: &str, not_after: i64) {
    install();
    gauge!(
        catalog::CREDENTIAL_EXPIRY_SECONDS,
        "provider" => provider.as_str(),
        "tenant" => tenant.to_owned(),
        "app" => app.to_owned()
    )
    .set(not_after as f64);
}

/// `tenant`'s `app` holds a client certificate for `provider` that leaves `uncovered` of the
/// app's topics uncovered (0 when it covers them all). Read at start-up and at each reload;
/// the label set is the configuration's, so bounded.
pub fn credential_topics_uncovered(provider: Platform, tenant: &str, app: &str, uncovered: usize) {
    install();
    gauge!(
        catalog::CREDENTIAL_TOPICS_UNCOVERED,
        "provider" => provider.as_str(),
        "tenant" => tenant.to_owned(),
        "app" => app.to_owned()
    )
    .set(uncovered as f64);
}

/// A configuration reload was applied or refused.
pub fn config_reload(outcome: ReloadOutcome) {
    counter!(catalog::CONFIG_RELOADS_TOTAL, "outcome" => outcome.label()).increment(1);
}

/// A call event arrived (HTTP or stream) and was `outcome`.
pub fn event(kind: PushKind, outcome: EventOutcome) {
    static EVENTS: Handles<Counter, { 3 * EventOutcome::ALL.len() }> = Handles::new();
    EVENTS.with(
        kind as usize * EventOutcome::ALL.len() + outcome as usize,
        || counter!(catalog::EVENTS_TOTAL, "kind" => event_kind(kind), "outcome" => outcome.label()),
        |events| events.increment(1),
    );
}

/// A call-end notice between nodes was published, received or acted on
/// (src/router/ends.rs).
pub fn end_broadcast(outcome: EndBroadcast) {
    counter!(catalog::END_BROADCASTS_TOTAL, "outcome" => outcome.label()).increment(1);
}

/// A call event's lease took a step (src/router/ownership.rs).
pub fn event_lease(outcome: LeaseOutcome) {
    static LEASES: Handles<Counter, { LeaseOutcome::ALL.len() }> = Handles::new();
    LEASES.with(
        outcome as usize,
        || counter!(catalog::EVENT_LEASES_TOTAL, "outcome" => outcome.label()),
        |leases| leases.increment(1),
    );
}

/// A registry operation ran in the store `store` (its `Store::name`) and took `elapsed`.
pub fn registry_op(
    op: RegistryOp,
    store: &'static str,
    outcome: RegistryOutcome,
    elapsed: Duration,
) {
    static OPS: Handles<Histogram, { RegistryOp::ALL.len() * catalog::STORES.len() }> =
        Handles::new();
    registration(op, outcome);
    let record = |histogram: &Histogram| histogram.record(elapsed.as_secs_f64());
    let look_up = || histogram!(catalog::REGISTRY_OP_SECONDS, "op" => op.label(), "store" => store);
    match catalog::STORES.iter().position(|known| *known == store) {
        Some(index) => OPS.with(op as usize * catalog::STORES.len() + index, look_up, record),
        // A store the catalog does not name (none today): looked up every time.
        None => record(&look_up()),
    }
}

/// A registry operation ended with `outcome` without reaching the store (refused as `invalid`
/// by the API, or `busy` at a full shard mailbox): counted, but not timed.
pub fn registration(op: RegistryOp, outcome: RegistryOutcome) {
    static REGISTRATIONS: Handles<Counter, { RegistryOp::ALL.len() * RegistryOutcome::ALL.len() }> =
        Handles::new();
    REGISTRATIONS.with(
        op as usize * RegistryOutcome::ALL.len() + outcome as usize,
        || counter!(catalog::REGISTRATIONS_TOTAL, "op" => op.label(), "outcome" => outcome.label()),
        |registrations| registrations.increment(1),
    );
}

/// How many providers, priorities and push outcomes the per-push series are indexed by.
const PROVIDERS: usize = catalog::PROVIDERS.len();
const PRIORITIES: usize = Priority::ALL.len();
const OUTCOMES: usize = 10;

/// `provider`'s place in [`catalog::PROVIDERS`].
fn provider_index(provider: Platform) -> usize {
    match provider {
        Platform::Apns => 0,
        Platform::Fcm => 1,
        Platform::Wns => 2,
        Platform::Webpush => 3,
    }
}

/// A distinct index below [`OUTCOMES`] per outcome label.
fn outcome_index(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Delivered => 0,
        Outcome::Expired => 1,
        Outcome::Shed => 2,
        Outcome::Withdrawn => 3,
        Outcome::DeliveredInternal => 4,
        Outcome::DeadToken { .. } => 5,
        Outcome::Misconfigured { .. } => 6,
        Outcome::NoAlertToken => 7,
        Outcome::CredentialProblem { .. } => 8,
        Outcome::Rejected { .. } => 9,
    }
}

#[cfg(test)]
mod tests;
