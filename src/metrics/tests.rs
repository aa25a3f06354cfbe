use super::*;
use crate::registry::StoreError;
use metrics_exporter_prometheus::PrometheusRecorder;

/// Runs `body` against a fresh recorder configured as the node's (described and
/// pre-registered), and returns the rendered text. Tests do not share state with the global
/// recorder or with each other.
fn rendered(body: impl FnOnce()) -> String {
    let recorder: PrometheusRecorder = catalog::builder().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        catalog::describe_all();
        catalog::preregister();
        body();
    });
    recorder.handle().render()
}

/// The value of the series written exactly as `series` (name and labels in rendered order).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

/// The value of the series of `name` whose labels include every `key="value"` of `labels`,
/// whatever their order.
fn find(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = if let Some(rest) = rest.strip_prefix('{') {
            rest.split_once("} ")?
        } else {
            ("", rest.strip_prefix(' ')?)
        };
        let present = |(key, val): &(&str, &str)| {
            label_text
                .split(',')
                .any(|pair| pair == format!("{key}=\"{val}\""))
        };
        (labels.iter().all(present)
            && label_text.split(',').filter(|p| !p.is_empty()).count() == labels.len())
        .then(|| value.parse().unwrap())
    })
}

#[test]
fn every_contract_metric_is_described_and_present_before_any_work() {
    let text = rendered(|| catalog::store_in_use("redis"));
    for (name, kind) in [
        (catalog::PUSHES_TOTAL, "counter"),
        (catalog::PUSH_LATENCY_SECONDS, "histogram"),
        (catalog::QUEUE_DEPTH, "gauge"),
        (catalog::QUEUE_CAPACITY, "gauge"),
        (catalog::INFLIGHT, "gauge"),
        (catalog::CONNECTIONS, "gauge"),
        (catalog::RETRIES_TOTAL, "counter"),
        (catalog::EXPIRED_TOTAL, "counter"),
        (catalog::SHED_TOTAL, "counter"),
        (catalog::TOKEN_INVALIDATIONS_TOTAL, "counter"),
        (catalog::REGISTRATIONS_TOTAL, "counter"),
        (catalog::REGISTRY_OP_SECONDS, "histogram"),
        (catalog::EVENTS_TOTAL, "counter"),
        (catalog::EVENT_LEASES_TOTAL, "counter"),
        (catalog::END_BROADCASTS_TOTAL, "counter"),
        (catalog::EVENTS_IN_FLIGHT, "gauge"),
        (catalog::CALLS_RINGING, "gauge"),
        (catalog::EVENTS_IN_FLIGHT_LIMIT, "gauge"),
        (catalog::REQUESTS_IN_FLIGHT, "gauge"),
        (catalog::REQUESTS_IN_FLIGHT_LIMIT, "gauge"),
        (catalog::REQUESTS_REFUSED_TOTAL, "counter"),
        (catalog::CREDENTIAL_REFRESH_TOTAL, "counter"),
        (catalog::BUILD_INFO, "gauge"),
        (catalog::UPTIME_SECONDS, "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is not a {kind}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help"
        );
    }
    // Zero-valued series of every bounded label combination.
    for provider in ["apns", "fcm", "wns", "webpush"] {
        for priority in ["p0", "p1", "p2"] {
            for outcome in [
                "delivered",
                "expired",
                "shed",
                "withdrawn",
                "dead_token",
                "misconfigured",
                "no_alert_token",
                "credential_problem",
                "rejected",
            ] {
                let labels = [
                    ("provider", provider),
                    ("priority", priority),
                    ("outcome", outcome),
                ];
                assert_eq!(find(&text, catalog::PUSHES_TOTAL, &labels), Some(0.0));
            }
            let labels = [("provider", provider), ("priority", priority)];
            assert_eq!(
                find(&text, "ringcast_push_latency_seconds_count", &labels),
                Some(0.0)
            );
            assert_eq!(find(&text, catalog::QUEUE_DEPTH, &labels), Some(0.0));
            assert_eq!(find(&text, catalog::QUEUE_CAPACITY, &labels), Some(0.0));
        }
        for state in ["open", "connecting", "draining"] {
            let labels = [("provider", provider), ("state", state)];
            assert_eq!(find(&text, catalog::CONNECTIONS, &labels), Some(0.0));
        }
    }
    assert_eq!(
        find(&text, catalog::SHED_TOTAL, &[("priority", "p0")]),
        Some(0.0)
    );
    assert_eq!(
        find(
            &text,
            "ringcast_registry_op_seconds_count",
            &[("op", "remove_dead_token"), ("store", "redis")]
        ),
        Some(0.0)
    );
    // Only the store in use gets store series.
    assert!(!text.contains("store=\"embedded\""));
    let build = find(
        &text,
        catalog::BUILD_INFO,
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("git_sha", env!("RINGCAST_GIT_SHA")),
        ],
    );
    assert_eq!(build, Some(1.0));
}

#[test]
fn push_latency_uses_the_push_buckets_from_half_a_millisecond_to_thirty_seconds() {
    let text = rendered(|| {
        let outcome = Outcome::Delivered;
        push_finished(
            Platform::Apns,
            Priority::P0,
            &outcome,
            Duration::from_millis(40),
        );
        push_finished(
            Platform::Apns,
            Priority::P0,
            &outcome,
            Duration::from_secs(60),
        );
    });
    let bucket = |le: &str| {
        find(
            &text,
            "ringcast_push_latency_seconds_bucket",
            &[("provider", "apns"), ("priority", "p0"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.0005"), Some(0.0));
    assert_eq!(bucket("0.025"), Some(0.0));
    assert_eq!(bucket("0.05"), Some(1.0));
    assert_eq!(bucket("30"), Some(1.0));
    assert_eq!(bucket("+Inf"), Some(2.0));
    let buckets = text
        .lines()
        .filter(|line| {
            line.starts_with("ringcast_push_latency_seconds_bucket{")
                && line.contains("provider=\"apns\",priority=\"p0\"")
        })
        .count();
    assert_eq!(buckets, PUSH_LATENCY_BUCKETS_WITH_INF);
    assert_eq!(
        find(
            &text,
            catalog::PUSHES_TOTAL,
            &[
                ("provider", "apns"),
                ("priority", "p0"),
                ("outcome", "delivered")
            ]
        ),
        Some(2.0)
    );
}

/// 15 bounds plus `+Inf`.
const PUSH_LATENCY_BUCKETS_WITH_INF: usize = catalog::PUSH_LATENCY_BUCKETS.len() + 1;

#[test]
fn an_outcome_counts_in_every_series_it_belongs_to_and_only_answers_are_timed() {
    let text = rendered(|| {
        let late = Duration::from_secs(50);
        push_finished(Platform::Fcm, Priority::P2, &Outcome::Expired, late);
        push_finished(Platform::Fcm, Priority::P0, &Outcome::Shed, late);
        let dead = Outcome::DeadToken {
            verdict_at: 1,
            reason: "UNREGISTERED".into(),
        };
        push_finished(Platform::Fcm, Priority::P0, &dead, Duration::from_millis(3));
    });
    let fcm = |priority| [("provider", "fcm"), ("priority", priority)];
    assert_eq!(find(&text, catalog::EXPIRED_TOTAL, &fcm("p2")), Some(1.0));
    assert_eq!(
        find(&text, catalog::SHED_TOTAL, &[("priority", "p0")]),
        Some(1.0)
    );
    assert_eq!(
        find(&text, "ringcast_push_latency_seconds_count", &fcm("p2")),
        Some(0.0)
    );
    assert_eq!(
        find(&text, "ringcast_push_latency_seconds_count", &fcm("p0")),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "ringcast_pushes_total{provider=\"fcm\",priority=\"p0\",outcome=\"dead_token\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn gauges_and_counters_take_their_typed_labels() {
    let text = rendered(|| {
        queue_depth(Platform::Wns, Priority::P1, 17);
        queue_capacity(Platform::Wns, Priority::P1, 1000);
        inflight(Platform::Webpush, 5);
        connections(Platform::Apns, ConnectionState::Draining, 2);
        retry(Platform::Apns, RetryReason::ExpiredProviderToken);
        credential_refresh(Platform::Fcm, RefreshOutcome::Error);
        event(PushKind::MissedCall, EventOutcome::NoDevices);
    });
    let wns_p1 = [("provider", "wns"), ("priority", "p1")];
    assert_eq!(find(&text, catalog::QUEUE_DEPTH, &wns_p1), Some(17.0));
    assert_eq!(find(&text, catalog::QUEUE_CAPACITY, &wns_p1), Some(1000.0));
    assert_eq!(
        find(&text, catalog::INFLIGHT, &[("provider", "webpush")]),
        Some(5.0)
    );
    assert_eq!(
        find(
            &text,
            catalog::CONNECTIONS,
            &[("provider", "apns"), ("state", "draining")]
        ),
        Some(2.0)
    );
    assert_eq!(
        find(
            &text,
            catalog::RETRIES_TOTAL,
            &[("provider", "apns"), ("reason", "expired_provider_token")]
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &text,
            catalog::CREDENTIAL_REFRESH_TOTAL,
            &[("provider", "fcm"), ("outcome", "error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        find(
            &text,
            catalog::EVENTS_TOTAL,
            &[("kind", "missed_call"), ("outcome", "no_devices")]
        ),
        Some(1.0)
    );
}

#[test]
fn a_dead_token_reason_outside_the_documented_set_becomes_unknown() {
    let token = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1";
    let text = rendered(|| {
        token_invalidated(Platform::Apns, "Unregistered");
        token_invalidated(Platform::Apns, token);
        token_invalidated(Platform::Apns, "UNREGISTERED"); // FCM's spelling, not APNs'
        token_invalidated(Platform::Webpush, "410");
    });
    let apns = |reason| [("provider", "apns"), ("reason", reason)];
    assert_eq!(
        find(
            &text,
            catalog::TOKEN_INVALIDATIONS_TOTAL,
            &apns("Unregistered")
        ),
        Some(1.0)
    );
    assert_eq!(
        find(&text, catalog::TOKEN_INVALIDATIONS_TOTAL, &apns("unknown")),
        Some(2.0)
    );
    assert_eq!(
        find(
            &text,
            catalog::TOKEN_INVALIDATIONS_TOTAL,
            &[("provider", "webpush"), ("reason", "410")]
        ),
        Some(1.0)
    );
    assert!(!text.contains(token));
}

#[test]
fn registry_operations_are_counted_and_timed_by_op_and_store() {
    let text = rendered(|| {
        catalog::store_in_use("embedded");
        registry_op(
            RegistryOp::Refresh,
            "embedded",
            RegistryOutcome::Ok,
            Duration::from_micros(70),
        );
        let error = StoreError::Unavailable("down".into());
        registry_op(
            RegistryOp::List,
            "embedded",
            RegistryOutcome::of_error(&error),
            Duration::from_secs(1),
        );
        registration(RegistryOp::Register, RegistryOutcome::Invalid);
    });
    let counted = |op, outcome| {
        find(
            &text,
            catalog::REGISTRATIONS_TOTAL,
            &[("op", op), ("outcome", outcome)],
        )
    };
    assert_eq!(counted("refresh", "ok"), Some(1.0));
    assert_eq!(counted("list", "unavailable"), Some(1.0));
    assert_eq!(counted("register", "invalid"), Some(1.0));
    assert_eq!(counted("revoke", "bug"), Some(0.0));
    let bucket = |op, le| {
        find(
            &text,
            "ringcast_registry_op_seconds_bucket",
            &[("op", op), ("store", "embedded"), ("le", le)],
        )
    };
    assert_eq!(bucket("refresh", "0.00005"), Some(0.0));
    assert_eq!(bucket("refresh", "0.0001"), Some(1.0));
    assert_eq!(bucket("list", "0.5"), Some(0.0));
    assert_eq!(bucket("list", "1"), Some(1.0));
    assert_eq!(bucket("list", "5"), Some(1.0));
    // `invalid` never reached the store, so it is not timed.
    assert_eq!(
        find(
            &text,
            "ringcast_registry_op_seconds_count",
            &[("op", "register"), ("store", "embedded")]
        ),
        Some(0.0)
    );
}

#[test]
fn the_global_render_carries_uptime_build_info_and_process_metrics() {
    // Installing twice (two nodes in one process) is harmless.
    install();
    install();
    let text = render();
    assert!(text.contains("# TYPE ringcast_uptime_seconds gauge\n"));
    assert!(text.contains("ringcast_build_info{"));
    if cfg!(target_os = "linux") {
        assert!(text.contains("\nprocess_open_fds "), "{text}");
    }
}

#[test]
fn every_label_value_is_a_prometheus_friendly_word() {
    let words = ConnectionState::ALL
        .iter()
        .map(|v| v.label())
        .chain(RetryReason::ALL.iter().map(|v| v.label()))
        .chain(RefreshOutcome::ALL.iter().map(|v| v.label()))
        .chain(EventOutcome::ALL.iter().map(|v| v.label()))
        .chain(RegistryOp::ALL.iter().map(|v| v.label()))
        .chain(RegistryOutcome::ALL.iter().map(|v| v.label()))
        .chain(catalog::STORES);
    for word in words {
        assert!(
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c)),
            "{word}"
        );
    }
}

#[test]
fn the_routers_admission_shows_events_in_flight_against_the_node_limit() {
    use crate::router::admission::Admission;
    let text = rendered(|| {
        // Two routers of 8: the node admits 16; three events in flight, one of them done.
        let (a, b) = (Admission::new(8), Admission::new(8));
        let passes = [
            a.admit(Priority::P0),
            a.admit(Priority::P2),
            b.admit(Priority::P1),
        ];
        let done = b.admit(Priority::P0);
        drop(done);
        let stopped = Admission::new(100);
        drop(stopped);
        // Rendered while the passes and routers live.
        std::mem::forget((passes, a, b));
    });
    assert_eq!(value(&text, "ringcast_events_in_flight"), Some(3.0));
    assert_eq!(value(&text, "ringcast_events_in_flight_limit"), Some(16.0));
}

#[test]
fn a_config_error_is_counted_per_app_with_a_bounded_reason() {
    let text = rendered(|| {
        app_configured(Platform::Apns, "acme", "ios");
        config_error(Platform::Apns, "acme", "ios", "DeviceTokenNotForTopic");
        config_error(
            Platform::Apns,
            "acme",
            "ios",
            "key file unreadable: /secret/path",
        );
        environment_corrected(Platform::Apns);
    });
    let labels = |reason| {
        [
            ("provider", "apns"),
            ("tenant", "acme"),
            ("app", "ios"),
            ("reason", reason),
        ]
    };
    assert_eq!(
        find(
            &text,
            catalog::PUSH_CONFIG_ERRORS_TOTAL,
            &labels("DeviceTokenNotForTopic")
        ),
        Some(1.0)
    );
    assert_eq!(
        find(&text, catalog::PUSH_CONFIG_ERRORS_TOTAL, &labels("other")),
        Some(1.0)
    );
    assert_eq!(
        find(
            &text,
            catalog::PUSH_CONFIG_ERRORS_TOTAL,
            &labels("BadTopic")
        ),
        Some(0.0),
        "registered at zero for the alert"
    );
    assert!(!text.contains("/secret/path"));
    assert_eq!(
        find(
            &text,
            catalog::TOKEN_ENVIRONMENT_CORRECTIONS_TOTAL,
            &[("provider", "apns")]
        ),
        Some(1.0)
    );
}

#[test]
fn the_embedded_stores_writer_is_timed_by_durability_only_where_it_is_in_use() {
    let embedded = rendered(|| {
        catalog::store_in_use("embedded");
        embedded::write_held(embedded::WriteDurability::Fsync, Duration::from_millis(12));
    });
    let name = embedded::WRITE_SECONDS;
    assert!(
        embedded.contains(&format!("# TYPE {name} histogram\n")),
        "{embedded}"
    );
    assert!(embedded.contains(&format!("# HELP {name} ")), "{embedded}");
    let count = |durability| {
        find(
            &embedded,
            &format!("{name}_count"),
            &[("durability", durability)],
        )
    };
    assert_eq!(count("fsync"), Some(1.0));
    assert_eq!(
        count("lazy"),
        Some(0.0),
        "registered at zero before the first write"
    );
    // 12 ms falls in the 25 ms bucket of the store operations' bounds, not the 10 ms one.
    let bucket = |le| {
        find(
            &embedded,
            &format!("{name}_bucket"),
            &[("durability", "fsync"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.01"), Some(0.0));
    assert_eq!(bucket("0.025"), Some(1.0));

    let redis = rendered(|| catalog::store_in_use("redis"));
    assert!(!redis.contains(&format!("{name}_count")), "{redis}");
}

#[test]
fn the_own_redis_connections_series_appear_with_their_first_connection_and_at_zero() {
    let before = rendered(|| {});
    assert!(!before.contains(redis::COMMANDS_WAITING), "{before}");
    let text = rendered(|| {
        redis::preregister();
        redis::preregister();
    });
    for (name, kind) in [
        (redis::COMMANDS_WAITING, "gauge"),
        (redis::COMMANDS_REFUSED_TOTAL, "counter"),
        (redis::CONNECTIONS_ENDED_TOTAL, "counter"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "{text}");
    }
    assert_eq!(find(&text, redis::COMMANDS_WAITING, &[]), Some(0.0));
    assert_eq!(find(&text, redis::COMMANDS_REFUSED_TOTAL, &[]), Some(0.0));
    for reason in redis::ConnectionEnd::ALL {
        let labels = [("reason", reason.label())];
        assert_eq!(
            find(&text, redis::CONNECTIONS_ENDED_TOTAL, &labels),
            Some(0.0)
        );
    }
}

#[test]
fn a_pause_is_counted_once_however_many_refusals_extend_it() {
    let text = rendered(|| {
        let pause = crate::providers::pause::SharedPause::default();
        let now = crate::clock::now_millis();
        // A burst of refusals: one pause, extended.
        pause.hold(now + 60_000, Platform::Fcm, "project-1");
        pause.hold(now + 61_000, Platform::Fcm, "project-1");
        // A pause that ended long ago does not hide a new one.
        let wns = crate::providers::pause::SharedPause::default();
        wns.hold(1, Platform::Wns, "app");
        wns.hold(now + 1_000, Platform::Wns, "app");
    });
    let pauses = |provider| {
        find(
            &text,
            catalog::PROVIDER_PAUSES_TOTAL,
            &[("provider", provider)],
        )
    };
    assert_eq!(pauses("fcm"), Some(1.0));
    assert_eq!(pauses("wns"), Some(2.0));
    assert_eq!(
        pauses("apns"),
        Some(0.0),
        "registered at zero for the alert"
    );
}
