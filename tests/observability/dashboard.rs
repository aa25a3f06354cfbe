//! The dashboard and the alerts query only metrics a live node exports, and the dashboard
//! shows every contract metric.

use crate::support::app::{TestStore, spawn_with, test_config};
use crate::support::redis_cluster::RedisCluster;
use crate::{CONTRACT, PROCESS, registration_traffic, repo, scrape};
use ringcast::config::{RedisConfig, StoreKind};
use serde_json::Value;
use std::collections::BTreeSet;

/// The sample names in a scrape (`name` of every `name{...} value` line).
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// The metric names a PromQL expression (or any text of them) uses: identifiers starting with
/// `ringcast_` or `process_`, outside quoted strings.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = promql.chars().peekable();
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if word.starts_with("ringcast_") || word.starts_with("process_") {
            names.insert(std::mem::take(word));
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                flush(&mut word);
                // Skip the quoted string (label values, regexes), honouring backslash escapes.
                while let Some(inner) = chars.next() {
                    if inner == '\\' {
                        chars.next();
                    } else if inner == c {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => word.push(c),
            _ => flush(&mut word),
        }
    }
    flush(&mut word);
    names
}

/// The family a sample name belongs to (`_bucket`, `_sum`, `_count` of histograms stripped).
fn family(name: &str, exported: &BTreeSet<String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && exported.contains(&format!("{base}_bucket"))
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

/// Every string under an `expr`, `query` or `definition` key of a Grafana dashboard.
fn dashboard_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", Value::String(text)) => {
                        out.push(text.clone());
                    }
                    _ => dashboard_queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| dashboard_queries(item, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_query_only_metrics_the_node_exports() {
    let _turn = crate::certificate::EXPIRY_SERIES.lock().await;
    // Tenant A's iOS app holds a client certificate (for another app's topics), so the
    // certificate's series exist (nothing listens at the APNs address: no push is sent).
    // The other tests of this binary share the recorder, so this test must not rely on them.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(TestStore::Embedded(dir.path().join("r.redb")), dir.path());
    let issued = crate::certificate::issue("com.example.other", 365);
    crate::certificate::with_certificate(&mut config, dir.path(), &issued, "https://127.0.0.1:9");
    let app = spawn_with(config, dir).await;
    registration_traffic(&app).await;
    let scraped = scrape(&app).await;
    app.stop().await;
    let mut exported = exported_names(&scraped);
    // The durable intake's series (its pending gauge per stream) exist on a node with
    // durable intake only, the own Redis connection's on a node over Redis, the cluster's
    // redirections and map reads on one over a cluster: one node over a cluster adds them all.
    exported.extend(exported_names(&durable_node_scrape().await));

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/grafana/ringcast.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().unwrap().len() > 10);
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let dashboard_names: BTreeSet<String> = queries
        .iter()
        .flat_map(|query| metric_names(query))
        .collect();

    let mut used = dashboard_names.clone();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/alerts.test.yml",
    ] {
        used.extend(metric_names(&std::fs::read_to_string(repo(file)).unwrap()));
    }
    assert!(used.len() > 10, "{used:?}");
    let unknown: Vec<&String> = used
        .iter()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        unknown.is_empty(),
        "queried but not exported: {unknown:?}\nexported: {exported:?}"
    );

    // And the dashboard shows the whole pipeline: every contract metric is on it.
    let shown: BTreeSet<String> = dashboard_names
        .iter()
        .map(|name| family(name, &exported))
        .collect();
    for name in CONTRACT.iter().chain(&PROCESS) {
        assert!(shown.contains(*name), "{name} is not on the dashboard");
    }
}

/// A scrape of a node with `[intake] durable = true` over a Redis Cluster, once its readers
/// reported their streams' pending entries.
async fn durable_node_scrape() -> String {
    let dir = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(3).await;
    let mut config = test_config(TestStore::Redis(String::new()), dir.path());
    config.registry.store = StoreKind::RedisCluster;
    config.registry.redis.url = RedisConfig::default().url;
    config.registry.redis.nodes = cluster.urls();
    config.intake.durable = true;
    config.intake.name = format!("dashboard-{}", std::process::id());
    let app = spawn_with(config, dir).await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let scraped = loop {
        let scraped = scrape(&app).await;
        if scraped.contains("\nringcast_intake_pending{") {
            break scraped;
        }
        assert!(
            std::time::Instant::now() < until,
            "no ringcast_intake_pending series on a durable node"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    app.stop().await;
    scraped
}

#[test]
fn the_metric_name_tokenizer_skips_label_values_and_keeps_histogram_series() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(ringcast_push_latency_seconds_bucket{job="ringcast_x",le=~"ringcast_y|\"z"}[5m]))) / process_open_fds"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["process_open_fds", "ringcast_push_latency_seconds_bucket"]
    );
}
