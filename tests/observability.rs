//! Observability, checked the way an SRE would: scrape a live node after real traffic and let
//! `promtool` judge the exposition, the alert rules and their unit tests; check that the
//! dashboard and the alerts only query metrics the node exports; and read the JSON logs of a
//! real `ringcast serve` process for tokens and secrets.
//!
//! `promtool` comes with Debian's `prometheus` package (`scripts/test.sh` installs it). Where it
//! is missing, the promtool steps are skipped with a message on stderr; everything else runs.

mod support;

#[path = "observability/certificate.rs"]
mod certificate;
#[path = "observability/dashboard.rs"]
mod dashboard;
#[path = "observability/logs.rs"]
mod logs;
#[path = "observability/rules.rs"]
mod rules;
#[path = "observability/scrape.rs"]
mod scrape;

use reqwest::Method;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::app::{APNS_TOKEN, KEY_A, TestApp, apns_body};

/// Every metric family docs/architecture.md names, plus build info, uptime, the node's intake and routers'
/// admission, the limits per tenant, the internal push channel's, and the embedded store's
/// writer and unwritten claims (the scrapes checked against this list come from nodes on the embedded store).
pub const CONTRACT: &[&str] = &[
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
    "ringcast_embedded_write_seconds",
    "ringcast_embedded_claims_unwritten",
    "ringcast_events_total",
    "ringcast_event_leases_total",
    "ringcast_end_broadcasts_total",
    "ringcast_events_in_flight",
    "ringcast_events_in_flight_limit",
    "ringcast_requests_in_flight",
    "ringcast_requests_in_flight_limit",
    "ringcast_requests_refused_total",
    "ringcast_rate_limited_total",
    "ringcast_credential_refresh_total",
    "ringcast_push_config_errors_total",
    "ringcast_token_environment_corrections_total",
    "ringcast_credential_expiry_seconds",
    "ringcast_credential_topics_uncovered",
    "ringcast_config_reloads_total",
    "ringcast_build_info",
    "ringcast_uptime_seconds",
    "ringcast_channel_connections",
    "ringcast_channel_messages_total",
    "ringcast_channel_acks_total",
    "ringcast_channel_ack_seconds",
    "ringcast_channel_fallbacks_total",
    "ringcast_channel_closes_total",
    "ringcast_channel_relays_total",
];

/// The standard process metrics.
pub const PROCESS: [&str; 4] = [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
];

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `promtool`, if installed; otherwise says on stderr what is skipped.
pub fn promtool(skipping: &str) -> Option<&'static str> {
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
pub fn run_promtool(promtool: &str, args: &[&str], stdin: Option<&str>) {
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
pub async fn scrape(app: &TestApp) -> String {
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
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
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

/// Registration traffic with every registry outcome the API can cause without a store
/// outage: created, refreshed, listed, not found, invalid, revoked.
pub async fn registration_traffic(app: &TestApp) {
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
