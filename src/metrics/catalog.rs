//! Every metric's name, help text, unit and histogram buckets, and the zero-valued series
//! registered up front for each bounded label set.

use super::vocabulary::{
    ConnectionRefusal, ConnectionState, EndBroadcast, EventOutcome, IntakeRoute, LeaseOutcome,
    PUSH_KINDS, RefreshOutcome, RegistryOp, RegistryOutcome, ReloadOutcome, RetryReason,
    dead_token_reasons, event_kind,
};
use crate::vocab::{Outcome, Platform, Priority};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Pushes that reached a final outcome.
pub const PUSHES_TOTAL: &str = "ringcast_pushes_total";
/// Event accepted → push service's answer.
pub const PUSH_LATENCY_SECONDS: &str = "ringcast_push_latency_seconds";
/// Pushes waiting in a provider's priority queue.
pub const QUEUE_DEPTH: &str = "ringcast_queue_depth";
/// The most a provider's priority queue holds.
pub const QUEUE_CAPACITY: &str = "ringcast_queue_capacity";
/// Pushes sent and not yet answered.
pub const INFLIGHT: &str = "ringcast_inflight";
/// HTTP/2 connections to a push service, by state.
pub const CONNECTIONS: &str = "ringcast_connections";
/// Pushes sent again.
pub const RETRIES_TOTAL: &str = "ringcast_retries_total";
/// Pushes whose deadline passed before delivery.
pub const EXPIRED_TOTAL: &str = "ringcast_expired_total";
/// Pushes dropped under overload.
pub const SHED_TOTAL: &str = "ringcast_shed_total";
/// Dead-token verdicts from the push services.
pub const TOKEN_INVALIDATIONS_TOTAL: &str = "ringcast_token_invalidations_total";
/// Registry operations by outcome.
pub const REGISTRATIONS_TOTAL: &str = "ringcast_registrations_total";
/// Registry operations' time in the store.
pub const REGISTRY_OP_SECONDS: &str = "ringcast_registry_op_seconds";
/// Call events by kind and outcome.
pub const EVENTS_TOTAL: &str = "ringcast_events_total";
/// Steps in the life of call events' leases (cluster ownership).
pub const EVENT_LEASES_TOTAL: &str = "ringcast_event_leases_total";
/// Call-end notices between nodes.
pub const END_BROADCASTS_TOTAL: &str = "ringcast_end_broadcasts_total";
/// Call events admitted by the routers and not yet routed.
pub const EVENTS_IN_FLIGHT: &str = "ringcast_events_in_flight";
/// Calls whose rings the node still holds (src/router/ringing.rs).
pub const CALLS_RINGING: &str = "ringcast_calls_ringing";
/// The most call events the routers admit at once (rings only at the limit; see
/// src/router/admission.rs).
pub const EVENTS_IN_FLIGHT_LIMIT: &str = "ringcast_events_in_flight_limit";
/// API requests being served.
pub const REQUESTS_IN_FLIGHT: &str = "ringcast_requests_in_flight";
/// The most API requests the node serves at once (src/api/intake.rs).
pub const REQUESTS_IN_FLIGHT_LIMIT: &str = "ringcast_requests_in_flight_limit";
/// API requests refused at once because the node had too many in progress.
pub const REQUESTS_REFUSED_TOTAL: &str = "ringcast_requests_refused_total";
/// Clients the API's connection limits refused, by reason (src/api/connection.rs).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "ringcast_connections_refused_total";
/// Pushes a push service refused because of the sender's configuration, per app.
pub const PUSH_CONFIG_ERRORS_TOTAL: &str = "ringcast_push_config_errors_total";
/// APNs registrations whose environment was corrected after the other environment took the
/// token.
pub const TOKEN_ENVIRONMENT_CORRECTIONS_TOTAL: &str =
    "ringcast_token_environment_corrections_total";
/// Pauses of every push of a credential after its push service refused them all for a while
/// (FCM project over quota, WNS app throttled or out of quota).
pub const PROVIDER_PAUSES_TOTAL: &str = "ringcast_provider_pauses_total";
/// API requests refused with `429` because their tenant was over its limit (src/limits.rs).
pub const RATE_LIMITED_TOTAL: &str = "ringcast_rate_limited_total";
/// Provider credential refreshes.
pub const CREDENTIAL_REFRESH_TOTAL: &str = "ringcast_credential_refresh_total";
/// When a provider credential with an end date (an APNs client certificate) expires.
pub const CREDENTIAL_EXPIRY_SECONDS: &str = "ringcast_credential_expiry_seconds";
/// How many of an app's APNs topics (`<bundle>`, `<bundle>.voip`) its client certificate does
/// not cover: APNs refuses those pushes with `TopicDisallowed`.
pub const CREDENTIAL_TOPICS_UNCOVERED: &str = "ringcast_credential_topics_uncovered";
/// Configuration reloads (SIGHUP, `POST /admin/reload`), by outcome.
pub const CONFIG_RELOADS_TOTAL: &str = "ringcast_config_reloads_total";
/// The build: version and git commit, value 1.
pub const BUILD_INFO: &str = "ringcast_build_info";
/// Seconds since the metrics were installed (the node started).
pub const UPTIME_SECONDS: &str = "ringcast_uptime_seconds";

/// Every push service, as the `provider` label.
pub const PROVIDERS: [Platform; 4] = [
    Platform::Apns,
    Platform::Fcm,
    Platform::Wns,
    Platform::Webpush,
];

/// Every store, as the `store` label (`Store::name`).
pub const STORES: [&str; 4] = ["embedded", "redis", "redis-cluster", "redis-sentinel"];

/// Push latency buckets: from a fast local answer (0.5 ms, the simulator) through the normal
/// range of APNs and FCM (10-500 ms) to a ring that comes too late (10-30 s; the P0 deadline is
/// 45 s, and a push is never sent after it).
pub const PUSH_LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Store operation buckets: 50 µs (embedded, cached) to 5 s (well past the store timeout,
/// so a timed-out operation lands in the last bucket rather than `+Inf` only).
pub const REGISTRY_OP_BUCKETS: [f64; 15] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0,
];

/// The exporter as ringcast configures it: the histograms with their buckets (the channel's
/// ack wait shares the push latency's, the embedded store's writer the store operations'),
/// rendered as Prometheus histograms so that `histogram_quantile` aggregates across nodes;
/// names as given (every counter already ends in `_total`); no idle timeout (a series never
/// disappears).
pub fn builder() -> PrometheusBuilder {
    // The bucket lists are non-empty constants: `set_buckets_for_metric` fails only on empty.
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(PUSH_LATENCY_SECONDS.into()),
            &PUSH_LATENCY_BUCKETS,
        )
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(REGISTRY_OP_SECONDS.into()),
                &REGISTRY_OP_BUCKETS,
            )
        })
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(super::channel::ACK_SECONDS.into()),
                &PUSH_LATENCY_BUCKETS,
            )
        })
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(super::embedded::WRITE_SECONDS.into()),
                &REGISTRY_OP_BUCKETS,
            )
        })
        .unwrap_or_else(|_| unreachable!("bucket lists are non-empty constants"))
}

/// Describes every metric (the `# HELP` lines).
pub fn describe_all() {
    describe_counter!(
        PUSHES_TOTAL,
        Unit::Count,
        "Pushes that reached their final outcome, by provider, priority and outcome."
    );
    describe_histogram!(
        PUSH_LATENCY_SECONDS,
        Unit::Seconds,
        "Time from the call event's acceptance to the push service's answer."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Pushes waiting in a provider's queue of one priority."
    );
    describe_gauge!(
        QUEUE_CAPACITY,
        Unit::Count,
        "The most pushes a provider's queue of one priority holds."
    );
    describe_gauge!(
        INFLIGHT,
        Unit::Count,
        "Pushes sent to a push service and not yet answered."
    );
    describe_gauge!(
        CONNECTIONS,
        Unit::Count,
        "HTTP/2 connections to a push service, by state."
    );
    describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Pushes sent again, by provider and reason."
    );
    describe_counter!(
        EXPIRED_TOTAL,
        Unit::Count,
        "Pushes not sent because their deadline passed."
    );
    describe_counter!(
        SHED_TOTAL,
        Unit::Count,
        "Pushes dropped under overload to make room for more urgent ones."
    );
    describe_counter!(
        TOKEN_INVALIDATIONS_TOTAL,
        Unit::Count,
        "Dead-token verdicts from the push services, by documented reason."
    );
    describe_counter!(
        REGISTRATIONS_TOTAL,
        Unit::Count,
        "Registry operations, by operation and outcome."
    );
    describe_histogram!(
        REGISTRY_OP_SECONDS,
        Unit::Seconds,
        "Time a registry operation spent in the store."
    );
    describe_counter!(
        EVENTS_TOTAL,
        Unit::Count,
        "Call events received, by kind and outcome."
    );
    describe_counter!(
        EVENT_LEASES_TOTAL,
        Unit::Count,
        "Call event leases by step: owned, taken over after the owner's lease lapsed, duplicate, released, finished, lost to another node, handed over at shutdown, store error, takeover withheld after a store failure."
    );
    describe_counter!(
        END_BROADCASTS_TOTAL,
        Unit::Count,
        "Call-end notices between nodes: published, failed to publish, received from another node, and received notices that withdrew queued rings."
    );
    describe_gauge!(
        EVENTS_IN_FLIGHT,
        Unit::Count,
        "Call events admitted by the node's routers and still being routed."
    );
    describe_gauge!(
        CALLS_RINGING,
        Unit::Count,
        "Calls whose rings this node still holds, queued or sent and unanswered. A call's end withdraws rings only while its call is counted here."
    );
    describe_gauge!(
        EVENTS_IN_FLIGHT_LIMIT,
        Unit::Count,
        "Call events the node's routers admit at once; missed calls are refused from half of it, call-ended from three quarters."
    );
    describe_gauge!(
        REQUESTS_IN_FLIGHT,
        Unit::Count,
        "API requests the node is serving (health, readiness and metrics not counted)."
    );
    describe_gauge!(
        REQUESTS_IN_FLIGHT_LIMIT,
        Unit::Count,
        "API requests the node serves at once; others are refused from half of it, call ends from three quarters, rings at the limit."
    );
    describe_counter!(
        REQUESTS_REFUSED_TOTAL,
        Unit::Count,
        "API requests refused with 503 on arrival because the node had too many in progress, by route."
    );
    describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        Unit::Count,
        "Clients refused by the API's connection limits: request_timeout (a connection closed before its first request arrived in time: slowloris), streams (a request over its connection's stream limit, 503), header_size (a request head over max_header_bytes, 431)."
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        Unit::Count,
        "API requests refused with 429 because their tenant was over its rate, by tenant and kind (registration, call)."
    );
    describe_counter!(
        CREDENTIAL_REFRESH_TOTAL,
        Unit::Count,
        "Provider credential refreshes, by outcome."
    );
    describe_counter!(
        PUSH_CONFIG_ERRORS_TOTAL,
        Unit::Count,
        "Pushes refused because of the sender's configuration (wrong bundle id, topic, project or credential), by provider, tenant, app and reason; nothing is deleted on them."
    );
    describe_counter!(
        TOKEN_ENVIRONMENT_CORRECTIONS_TOTAL,
        Unit::Count,
        "APNs registrations moved to the other environment after it accepted a token the registered one refused as BadDeviceToken."
    );
    describe_counter!(
        PROVIDER_PAUSES_TOTAL,
        Unit::Count,
        "Pauses of every push of a credential (FCM project over quota, WNS app throttled or out of quota): its pushes wait for the service's Retry-After, and those whose deadline comes first expire."
    );
    describe_gauge!(
        CREDENTIAL_EXPIRY_SECONDS,
        Unit::Seconds,
        "UNIX time at which an app's provider credential expires (APNs client certificates), by provider, tenant and app."
    );
    describe_gauge!(
        CREDENTIAL_TOPICS_UNCOVERED,
        "Topics of an app (<bundle>, <bundle>.voip) its APNs client certificate does not cover, read at start-up and at each reload, by provider, tenant and app: above 0, APNs refuses those pushes as TopicDisallowed."
    );
    describe_counter!(
        CONFIG_RELOADS_TOTAL,
        Unit::Count,
        "Configuration reloads (SIGHUP or POST /admin/reload): applied, or refused with the old configuration kept."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the labels say which build runs.");
    describe_gauge!(
        UPTIME_SECONDS,
        Unit::Seconds,
        "Seconds since the node's metrics were installed."
    );
    super::channel::describe();
    super::embedded::describe();
    super::intake::describe();
    super::redis::describe();
}

/// The final outcomes, for pre-registration (the reasons inside do not reach any label).
fn outcomes() -> [Outcome; 9] {
    let reason = String::new;
    [
        Outcome::Delivered,
        Outcome::Expired,
        Outcome::Shed,
        Outcome::Withdrawn,
        Outcome::DeadToken {
            verdict_at: 0,
            reason: reason(),
        },
        Outcome::Misconfigured { reason: reason() },
        Outcome::NoAlertToken,
        Outcome::CredentialProblem { reason: reason() },
        Outcome::Rejected { reason: reason() },
    ]
}

/// Registers every series of the bounded label sets at zero, and sets `ringcast_build_info`.
/// The store-dependent histogram is registered per store in use by [`store_in_use`].
pub fn preregister() {
    super::channel::preregister();
    super::intake::preregister();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "git_sha" => env!("RINGCAST_GIT_SHA"))
        .set(1.0);
    gauge!(UPTIME_SECONDS).set(0.0);
    gauge!(EVENTS_IN_FLIGHT).increment(0.0);
    gauge!(CALLS_RINGING).increment(0.0);
    gauge!(EVENTS_IN_FLIGHT_LIMIT).increment(0.0);
    gauge!(REQUESTS_IN_FLIGHT).increment(0.0);
    gauge!(REQUESTS_IN_FLIGHT_LIMIT).increment(0.0);
    for route in IntakeRoute::ALL {
        counter!(REQUESTS_REFUSED_TOTAL, "route" => route.label()).absolute(0);
    }
    for reason in ConnectionRefusal::ALL {
        counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => reason.label()).absolute(0);
    }
    for outcome in ReloadOutcome::ALL {
        counter!(CONFIG_RELOADS_TOTAL, "outcome" => outcome.label()).absolute(0);
    }
    for provider in PROVIDERS {
        let provider_label = provider.as_str();
        for priority in Priority::ALL {
            let priority = priority.label();
            for outcome in outcomes() {
                counter!(PUSHES_TOTAL, "provider" => provider_label, "priority" => priority, "outcome" => outcome.label())
                    .absolute(0);
            }
            // Registering a histogram creates its series with empty buckets.
            let _ = histogram!(PUSH_LATENCY_SECONDS, "provider" => provider_label, "priority" => priority);
            gauge!(QUEUE_DEPTH, "provider" => provider_label, "priority" => priority).set(0.0);
            gauge!(QUEUE_CAPACITY, "provider" => provider_label, "priority" => priority).set(0.0);
            counter!(EXPIRED_TOTAL, "provider" => provider_label, "priority" => priority)
                .absolute(0);
        }
        gauge!(INFLIGHT, "provider" => provider_label).set(0.0);
        for state in ConnectionState::ALL {
            gauge!(CONNECTIONS, "provider" => provider_label, "state" => state.label()).set(0.0);
        }
        for reason in RetryReason::ALL {
            counter!(RETRIES_TOTAL, "provider" => provider_label, "reason" => reason.label())
                .absolute(0);
        }
        for reason in dead_token_reasons(provider).iter().chain(&["unknown"]) {
            counter!(TOKEN_INVALIDATIONS_TOTAL, "provider" => provider_label, "reason" => *reason)
                .absolute(0);
        }
        counter!(TOKEN_ENVIRONMENT_CORRECTIONS_TOTAL, "provider" => provider_label).absolute(0);
        counter!(PROVIDER_PAUSES_TOTAL, "provider" => provider_label).absolute(0);
        for outcome in RefreshOutcome::ALL {
            counter!(CREDENTIAL_REFRESH_TOTAL, "provider" => provider_label, "outcome" => outcome.label())
                .absolute(0);
        }
    }
    for priority in Priority::ALL {
        counter!(SHED_TOTAL, "priority" => priority.label()).absolute(0);
    }
    for op in RegistryOp::ALL {
        for outcome in RegistryOutcome::ALL {
            counter!(REGISTRATIONS_TOTAL, "op" => op.label(), "outcome" => outcome.label())
                .absolute(0);
        }
    }
    for outcome in EndBroadcast::ALL {
        counter!(END_BROADCASTS_TOTAL, "outcome" => outcome.label()).absolute(0);
    }
    for outcome in LeaseOutcome::ALL {
        counter!(EVENT_LEASES_TOTAL, "outcome" => outcome.label()).absolute(0);
    }
    for kind in PUSH_KINDS {
        for outcome in EventOutcome::ALL {
            counter!(EVENTS_TOTAL, "kind" => event_kind(kind), "outcome" => outcome.label())
                .absolute(0);
        }
    }
}

/// Registers the store-latency series of the store a node uses (`Store::name`), so they exist
/// before the first operation; with the embedded store, its writer's too. Series of stores not
/// in use are not created.
pub fn store_in_use(store: &'static str) {
    for op in RegistryOp::ALL {
        let _ = histogram!(REGISTRY_OP_SECONDS, "op" => op.label(), "store" => store);
    }
    if store == "embedded" {
        super::embedded::preregister();
    }
}

/// Registers `ringcast_rate_limited_total` at zero for every configured tenant: the `tenant`
/// label only ever takes these values (a request is limited only once its credential named a
/// tenant), so the series are bounded by the configuration.
pub fn tenants_configured<'a>(tenants: impl IntoIterator<Item = &'a str>) {
    for tenant in tenants {
        for kind in crate::limits::LimitKind::ALL {
            counter!(RATE_LIMITED_TOTAL, "tenant" => tenant.to_owned(), "kind" => kind.label())
                .absolute(0);
        }
    }
}
