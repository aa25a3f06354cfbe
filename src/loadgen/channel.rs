//! `loadgen --channel-clients N`: N WebSocket clients of the internal push channel
//! (`GET /v1/channel`) held open across the identities for the whole run, each acking every
//! ring it hears, as a foreground app does (README, "Internal push channel").
//!
//! Client `k` is device `d<k ÷ identities>` of identity `k mod identities`: the first
//! `identities` clients are the registered device `d0` of each identity, so an acked ring is
//! a platform push avoided (outcome `delivered_internal`); clients beyond a registered
//! device count ring over the channel only. They authenticate with the server key and
//! `identity=`, as a backend bridge would, so no identity tokens are needed.
//!
//! Ring latency over the channel is "ring sent by the generator → `incoming_call` frame read
//! by the client": the generator notes each call's send time ([`ChannelClients::sent`]), the
//! first client to read the call's frame takes it.
//!
//! Memory per connection: with one target, the node's `process_resident_memory_bytes` is
//! read from its `/metrics` before the clients connect and after they all did and sat idle
//! for a moment; the delta ÷ connected clients is the RSS one idle connection costs.

use super::client::ApiClient;
use super::report::{Latencies, LatencySummary};
use crate::clock::now_micros;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Method;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Connection attempts in flight at once while the clients connect: fast, without a burst
/// of thousands of handshakes the node's accept queue would drop.
const CONNECT_CONCURRENCY: usize = 128;
/// How long the connected clients sit idle before the node's memory is read again: the
/// node's sessions settle (first ping not yet due) and freed buffers return.
const SETTLE: Duration = Duration::from_secs(2);

/// What the channel clients measured (`report.json` → `channel`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChannelReport {
    /// Clients asked for.
    pub clients: usize,
    /// Clients whose upgrade succeeded.
    pub connected: u64,
    /// Clients whose upgrade failed, by reason.
    pub connect_errors: HashMap<String, u64>,
    /// How long connecting them all took, in seconds.
    pub connect_seconds: f64,
    /// `incoming_call` frames read (a call with several connected devices counts each).
    pub rings_received: u64,
    /// Acks sent.
    pub acks_sent: u64,
    /// Clients that were disconnected during the run (not by the generator).
    pub dropped: u64,
    /// Ring latency over the channel: ring sent → frame read.
    pub ring_latency: Option<LatencySummary>,
    /// Platform pushes the node did not send because a client acked (`delivered_internal`
    /// outcomes; needs `wait_for_outcomes`).
    pub pushes_avoided: u64,
    /// The node's resident memory before the clients connected, in bytes (one target only).
    pub rss_before_bytes: Option<u64>,
    /// The same, once they were all connected and idle.
    pub rss_connected_bytes: Option<u64>,
    /// (connected − before) ÷ connected clients, in bytes.
    pub rss_per_connection_bytes: Option<f64>,
}

/// The clients, while they run.
pub struct ChannelClients {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    report: ChannelReport,
}

/// What every client and the generator share.
#[derive(Default)]
struct Shared {
    /// Ring send times by call id (UNIX µs), until a client reads the call's frame.
    sent: Mutex<HashMap<String, u64>>,
    latency: Mutex<Latencies>,
    rings: AtomicU64,
    acks: AtomicU64,
    dropped: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The WebSocket URL of client `k`: identity `k mod identities`, device `d<k ÷ identities>`.
pub fn client_url(target: &str, identity: &str, k: usize, identities: usize) -> String {
    let base = target.trim_end_matches('/').replacen("http://", "ws://", 1);
    let device = k / identities.max(1);
    format!("{base}/v1/channel?device_id=d{device}&identity={identity}")
}

impl ChannelClients {
    /// Connects `count` clients over the scenario's identities and targets (round-robin), and
    /// measures the node's memory around it (one target).
    pub async fn connect(
        scenario: &super::Scenario,
        client: &ApiClient,
        count: usize,
    ) -> ChannelClients {
        let one_target = scenario.targets.len() == 1;
        let rss_before = if one_target {
            resident_memory(client).await
        } else {
            None
        };
        let shared = Arc::new(Shared::default());
        let started = std::time::Instant::now();
        let key: Arc<str> = Arc::from(format!("Bearer {}", scenario.server_key));
        // A node whose listener is full (`server.max_connections_per_worker`) leaves the
        // connection in its backlog, unanswered: without a bound the run would wait forever.
        let timeout = Duration::from_millis(scenario.request_timeout_ms);
        let attempts = futures_util::stream::iter(0..count)
            .map(|k| {
                let target = &scenario.targets[k % scenario.targets.len()];
                let identity = scenario.identity(k % scenario.identities);
                let url = client_url(target, &identity, k, scenario.identities);
                let (key, shared) = (key.clone(), shared.clone());
                async move { connect_one(url, &key, shared, timeout).await }
            })
            .buffer_unordered(CONNECT_CONCURRENCY);
        let outcomes: Vec<Result<tokio::task::JoinHandle<()>, String>> = attempts.collect().await;
        let mut report = ChannelReport {
            clients: count,
            connect_seconds: started.elapsed().as_secs_f64(),
            rss_before_bytes: rss_before,
            ..ChannelReport::default()
        };
        let mut tasks = Vec::with_capacity(count);
        for outcome in outcomes {
            match outcome {
                Ok(task) => tasks.push(task),
                Err(kind) => *report.connect_errors.entry(kind).or_default() += 1,
            }
        }
        report.connected = tasks.len() as u64;
        if one_target && report.connected > 0 {
            tokio::time::sleep(SETTLE).await;
            report.rss_connected_bytes = resident_memory(client).await;
            if let (Some(before), Some(after)) =
                (report.rss_before_bytes, report.rss_connected_bytes)
            {
                report.rss_per_connection_bytes =
                    Some((after as f64 - before as f64) / report.connected as f64);
            }
        }
        ChannelClients {
            shared,
            tasks,
            report,
        }
    }

    /// Notes that the ring of `call_id` is being sent now.
    pub fn sent(&self, call_id: &str) {
        lock(&self.shared.sent).insert(call_id.to_owned(), now_micros());
    }

    /// Closes the clients and reports; `pushes_avoided` comes from the ring answers.
    pub fn finish(&self, pushes_avoided: u64) -> ChannelReport {
        for task in &self.tasks {
            task.abort();
        }
        let mut report = self.report.clone();
        report.rings_received = self.shared.rings.load(Ordering::Relaxed);
        report.acks_sent = self.shared.acks.load(Ordering::Relaxed);
        report.dropped = self.shared.dropped.load(Ordering::Relaxed);
        report.ring_latency = lock(&self.shared.latency).summary();
        report.pushes_avoided = pushes_avoided;
        report
    }
}

/// Opens one client within `timeout` (else the error `timeout`) and starts its task: ack
/// every ring, note its latency.
async fn connect_one(
    url: String,
    key: &str,
    shared: Arc<Shared>,
    timeout: Duration,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut request = url
        .into_client_request()
        .map_err(|_| "bad_url".to_owned())?;
    let authorization = key.parse().map_err(|_| "bad_key".to_owned())?;
    request.headers_mut().insert("authorization", authorization);
    // No Nagle: an ack is a small write the node waits on (for `ack_timeout_ms`) before it
    // pushes to the platform instead; as an app's WebSocket stack would, it goes out at once.
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (mut socket, _) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|error| match error {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                format!("http_{}", response.status().as_u16())
            }
            tokio_tungstenite::tungstenite::Error::Io(error) => format!("io {}", error.kind()),
            other => format!("websocket {other}"),
        })?;
    Ok(tokio::spawn(async move {
        // Reading also answers the node's pings (tungstenite queues the pong itself).
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let read_at = now_micros();
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                continue;
            };
            if frame["type"] != "incoming_call" {
                continue;
            }
            shared.rings.fetch_add(1, Ordering::Relaxed);
            let ack = serde_json::json!({"type": "ack", "event_id": frame["event_id"]});
            if socket
                .send(Message::Text(ack.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
            shared.acks.fetch_add(1, Ordering::Relaxed);
            let sent = frame["call_id"]
                .as_str()
                .and_then(|call_id| lock(&shared.sent).remove(call_id));
            if let Some(sent) = sent {
                lock(&shared.latency).record_us(read_at.saturating_sub(sent));
            }
        }
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }))
}

/// The node's `process_resident_memory_bytes`, from its `/metrics` (the admin routes on the
/// API's listener); `None` when it cannot be read.
async fn resident_memory(client: &ApiClient) -> Option<u64> {
    let answer = client
        .send(Method::GET, "/metrics", Bytes::new())
        .await
        .ok()?;
    let text = std::str::from_utf8(&answer.body).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|bytes| bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_spread_over_identities_then_devices() {
        assert_eq!(
            client_url("http://127.0.0.1:8080/", "lg-0", 0, 3),
            "ws://127.0.0.1:8080/v1/channel?device_id=d0&identity=lg-0"
        );
        assert!(client_url("http://h:1", "lg-1", 4, 3).ends_with("device_id=d1&identity=lg-1"));
    }
}
