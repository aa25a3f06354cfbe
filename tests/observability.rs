//! Observability, checked the way an SRE would: scrape a live node after real traffic and let
//! `promtool` judge the exposition, the alert rules and their unit tests; check that the
//! dashboard and the alerts only query metrics the node exports; and read the JSON logs of a
//! real `ringcast serve` process for tokens and secrets.
//!
//! `promtool` comes with Debian's `prometheus` package (`scripts/test.sh` installs it). Where it
//! is missing, the promtool steps are skipped with a message on stderr; everything else runs.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::app::{
    APNS_TOKEN, KEY_A, TOKEN_SECRET_A, TestApp, TestStore, apns_body, identity_token, spawn_app,
    spawn_with, test_config,
};
use support::redis_server::RedisServer;

/// Every metric family DESIGN.md names, plus build info and uptime.
const CONTRACT: [&str; 16] = [
    "ringcast_pushes_total",
    "ringcast_push_latency_seconds",
    "ringcast_queue_depth",
    "ringcast_queue_capacity",
    "ringcast_inflight",
    "ringcast_connections",
    "ringcast_retries_total",
    "ringcast_expired_total",
    "ringcast_shed_total",
    "ringcast_token_invalidations_total",
    "ringcast_registrations_total",
    "ringcast_registry_op_seconds",
    "ringcast_events_total",
    "ringcast_credential_refresh_total",
    "ringcast_build_info",
    "ringcast_uptime_seconds",
];

const PROCESS: [&str; 4] = [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `promtool`, if installed; otherwise says on stderr what is skipped.
fn promtool(skipping: &str) -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        eprintln!(
            "SKIPPED: {skipping}: promtool is not installed (Debian package `prometheus`; \
             scripts/test.sh installs it)"
        );
    }
    found.then_some("promtool")
}

/// Runs promtool with `args` (and `stdin`), failing the test with its output if it fails.
fn run_promtool(promtool: &str, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET /metrics`: checks the content type and returns the text.
async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the sample of `name` carrying every label of `labels`; 0 when there is none.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels
                .iter()
                .all(|(key, val)| {
                    label_text
                        .split(',')
                        .any(|pair| pair == format!("{key}=\"{val}\""))
                })
                .then(|| value.parse::<f64>().unwrap())
        })
        .next()
        .unwrap_or(0.0)
}

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
                        out.push(text.clone())
                    }
                    _ => dashboard_queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| dashboard_queries(item, out)),
        _ => {}
    }
}

/// Registration traffic with every registry outcome the API can cause without a store
/// outage: created, refreshed, listed, not found, invalid, revoked.
async fn registration_traffic(app: &TestApp) {
    let (status, body) = app
        .register(KEY_A, "obs-alice", "iphone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app
        .register(KEY_A, "obs-alice", "iphone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.list(KEY_A, "obs-alice").await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(
            Method::DELETE,
            "/v1/identities/obs-alice/registrations/nothing",
            Some(KEY_A),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .register(KEY_A, "obs-alice", "ipad", &apns_body("not-hex"))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .send(Method::DELETE, "/v1/identities/obs-alice", Some(KEY_A))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_scrape_after_registration_traffic_counts_it_and_passes_promtool() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    registration_traffic(&app).await;
    let after = scrape(&app).await;

    for name in CONTRACT {
        assert!(
            after.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{after}"
        );
    }
    for name in PROCESS {
        assert!(
            after.contains(&format!("\n{name} ")),
            "{name} missing:\n{after}"
        );
    }
    // Other tests of this binary share the process-global recorder: compare at least.
    let grew = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    let counted = |op, outcome| {
        grew(
            "ringcast_registrations_total",
            &[("op", op), ("outcome", outcome)],
        )
    };
    assert!(counted("register", "ok") >= 1.0, "{after}");
    assert!(counted("refresh", "ok") >= 1.0);
    assert!(counted("list", "ok") >= 1.0);
    assert!(counted("unregister", "not_found") >= 1.0);
    assert!(counted("register", "invalid") >= 1.0);
    assert!(counted("revoke", "ok") >= 1.0);
    assert!(
        grew(
            "ringcast_registry_op_seconds_count",
            &[("op", "register"), ("store", "embedded")]
        ) >= 1.0
    );
    // P0 pushes are visible at zero before the first one, for alerts and dashboards.
    let p0 = [
        ("provider", "apns"),
        ("priority", "p0"),
        ("outcome", "delivered"),
    ];
    assert!(after.lines().any(|line| {
        line.starts_with("ringcast_pushes_total{")
            && p0
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
    }));
    // No unbounded label: neither the identity nor the token shows up.
    assert!(!after.contains("obs-alice") && !after.contains(APNS_TOKEN));

    if let Some(promtool) = promtool("promtool check metrics on a live scrape") {
        run_promtool(promtool, &["check", "metrics"], Some(&after));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_store_outage_is_counted_as_unavailable_for_the_alert() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(test_config(TestStore::Redis(redis.url()), dir.path()), dir).await;
    let (status, _) = app
        .register(KEY_A, "obs-carol", "phone", &apns_body(APNS_TOKEN))
        .await;
    assert_eq!(status, 201);
    let before = scrape(&app).await;
    redis.stop();
    let (status, _) = app.list(KEY_A, "obs-carol").await;
    assert_eq!(status, 503);
    let after = scrape(&app).await;
    app.stop().await;

    // What RingcastStoreUnreachable divides: unavailable operations among all of them.
    let grew = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert!(
        grew(
            "ringcast_registrations_total",
            &[("op", "list"), ("outcome", "unavailable")]
        ) >= 1.0,
        "{after}"
    );
    // The failed operation is timed too, against the store it failed on.
    assert!(
        grew(
            "ringcast_registry_op_seconds_count",
            &[("op", "list"), ("store", "redis")]
        ) >= 1.0
    );
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests_and_each_has_a_runbook_section() {
    let rules = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    let runbook = std::fs::read_to_string(repo("deploy/RUNBOOK.md")).unwrap();
    let tests = std::fs::read_to_string(repo("deploy/prometheus/alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 9, "{alerts:?}");
    // GitHub's anchor of a `## Heading` is the heading in lower case.
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(|heading| heading.trim().to_lowercase())
        .collect();
    let runbook_urls: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("runbook_url: "))
        .map(|url| url.trim_matches('"'))
        .collect();
    assert_eq!(
        runbook_urls.len(),
        alerts.len(),
        "every alert has a runbook_url"
    );
    for (alert, url) in alerts.iter().zip(&runbook_urls) {
        let anchor = url.strip_prefix("deploy/RUNBOOK.md#").unwrap_or_default();
        assert_eq!(anchor, alert.to_lowercase(), "{alert} points at {url}");
        assert!(
            anchors.contains(anchor),
            "RUNBOOK.md has no section {alert}"
        );
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "{alert} has no unit test"
        );
    }
    assert_eq!(
        rules.matches("summary: ").count(),
        alerts.len(),
        "every alert has a summary"
    );

    if let Some(promtool) = promtool("promtool check/test rules") {
        run_promtool(
            promtool,
            &["check", "rules", "deploy/prometheus/alerts.yml"],
            None,
        );
        run_promtool(
            promtool,
            &["test", "rules", "deploy/prometheus/alerts.test.yml"],
            None,
        );
    }
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_query_only_metrics_the_node_exports() {
    let app = spawn_app().await;
    registration_traffic(&app).await;
    let scraped = scrape(&app).await;
    app.stop().await;
    let exported = exported_names(&scraped);

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

/// A node config with tenant `a`: server key [`KEY_A`], identity tokens signed with
/// [`TOKEN_SECRET_A`] (from a file), and an iOS and a web app.
fn node_config(dir: &Path) -> PathBuf {
    let secret = dir.join("identity.secret");
    std::fs::write(&secret, TOKEN_SECRET_A).unwrap();
    let path = dir.join("node.toml");
    let toml = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        workers = 1
        [registry]
        shards = 2
        [registry.embedded]
        path = "{}"
        [tenants.a]
        server_keys = [{{ sha256 = "{}" }}]
        [tenants.a.identity_tokens]
        algorithm = "HS256"
        key = {{ file = "{}" }}
        [tenants.a.apps.ios]
        platform = "apns"
        bundle_id = "com.example.phone"
        [tenants.a.apps.web]
        platform = "webpush"
        "#,
        dir.join("registry.redb").display(),
        hex::encode(Sha256::digest(KEY_A)),
        secret.display(),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test]
async fn json_logs_of_registrations_show_no_token_and_no_secret() {
    const P256DH: &str =
        "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM";
    const AUTH: &str = "tBHItJI5svbpez7KI4CCXg";
    const ENDPOINT: &str = "https://fcm.googleapis.com/fcm/send/obs-endpoint-secret-part";
    let dir = tempfile::tempdir().unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(node_config(dir.path()))
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = node.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let mut address = None;
    while address.is_none() {
        let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(30)) else {
            node.kill().unwrap();
            panic!("the node did not log its address within 30 s: {log:#?}");
        };
        if let Ok(event) = serde_json::from_str::<Value>(&line) {
            address = event["address"].as_str().map(str::to_owned);
        }
        log.push(line);
    }
    let base = format!("http://{}", address.unwrap());
    let client = reqwest::Client::new();
    let jwt = identity_token("obs-bob", 300, TOKEN_SECRET_A);

    let put = |device: &str, credential: &str, body: Value| {
        client
            .put(format!(
                "{base}/v1/identities/obs-bob/registrations/{device}"
            ))
            .bearer_auth(credential)
            .json(&body)
            .send()
    };
    assert_eq!(
        put("iphone", KEY_A, apns_body(APNS_TOKEN))
            .await
            .unwrap()
            .status(),
        201
    );
    let web = json!({"platform": "webpush", "app": "web", "endpoint": ENDPOINT,
        "keys": {"p256dh": P256DH, "auth": AUTH}});
    assert_eq!(put("browser", &jwt, web).await.unwrap().status(), 201);
    // A refused credential is logged (at debug) without the credential.
    let forged = identity_token("obs-bob", 300, "not-the-tenant-secret-0123456789abcdef");
    assert_eq!(
        put("iphone", &forged, apns_body(APNS_TOKEN))
            .await
            .unwrap()
            .status(),
        401
    );
    let listed = client
        .get(format!("{base}/v1/identities/obs-bob/registrations"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    let fingerprint = listed["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|registration| registration["device_id"] == "iphone")
        .unwrap()["token_fingerprint"]
        .clone();
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ringcast_registrations_total{"));

    let killed = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the node did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log.extend(std::iter::from_fn(|| {
        lines_rx.recv_timeout(Duration::from_secs(2)).ok()
    }));

    let events: Vec<Value> = log
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
        })
        .collect();
    // The log names the device's token the way the API lists it: by fingerprint.
    assert!(
        events.iter().any(|event| event["message"] == "registered"
            && event["token"] == fingerprint
            && event["level"] == "INFO"),
        "no `registered` line with the token's fingerprint {fingerprint}: {log:#?}"
    );
    let text = log.join("\n");
    for secret in [
        APNS_TOKEN,
        P256DH,
        AUTH,
        "obs-endpoint-secret-part",
        KEY_A,
        TOKEN_SECRET_A,
        jwt.as_str(),
        forged.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "the log shows a secret ({secret}):\n{text}"
        );
    }
}
