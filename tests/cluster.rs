//! Several real `ringcast serve` processes over one Redis and the simulator, on loopback
//! ports (docs/architecture.md, "Cluster semantics"): an event whose node is killed still rings, the same
//! event on two living nodes rings once, and SIGTERM drains a node.
//!
//! The simulator answers every push after a scripted latency, so a ring stays in flight long
//! enough to kill its node (`kill -9`) while the push service still holds it; a killed
//! sender's request is never answered, so the phone did not ring.

mod support;
// Load scenarios with a summary line each, run by benches/cluster.sh (ignored by default).
#[path = "cluster/scenarios.rs"]
mod scenarios;
// The internal push channel across nodes: presence and the relay over pub/sub.
#[path = "cluster/channel.rs"]
mod channel;
// Durable intake on Redis Streams: a killed node's accepted events are delivered by another.
#[path = "cluster/durable.rs"]
mod durable;
// The outcome stream: every device's outcome on the tenant's Redis Stream.
#[path = "cluster/outcomes.rs"]
mod outcomes;
// Redis Cluster failovers and rolling restarts under load, over a cluster with replicas.
#[path = "cluster/failover.rs"]
mod failover;

use ringcast::simulator::{
    ApnsCredential, HeldAnswers, Profile, RunningSimulator, Simulator, SimulatorConfig,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::app::{KEY_A, status_and_json};

const TEAM: &str = "TEAMID1234";
const KID: &str = "KEYID12345";
/// The leases of these nodes: short, so a takeover is quick to see.
const LEASE_MS: u64 = 1_000;
const RENEW_MS: u64 = 250;

/// The simulator (slow by `latency_ms`) and what a node needs to reach it.
struct PushService {
    sim: RunningSimulator,
    dir: tempfile::TempDir,
}

impl PushService {
    async fn start(latency_ms: u64) -> PushService {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join("apns.p8"), pair.serialize_pem()).unwrap();
        let sim = Simulator::start(SimulatorConfig {
            apns_keys: vec![ApnsCredential {
                team_id: TEAM.into(),
                key_id: KID.into(),
                public_key_pem: pair.public_key_pem(),
            }],
            profile: Profile {
                latency_min_ms: latency_ms,
                latency_max_ms: latency_ms,
                ..Profile::default()
            },
            cert_out: Some(dir.path().join("simulator.pem")),
            record_in_memory: true,
            ..SimulatorConfig::default()
        })
        .await
        .unwrap();
        PushService { sim, dir }
    }

    /// The rings (`apns-push-type: voip`) the simulator accepted for APNs token `token`; a
    /// "call ended" notice to the same device is not one.
    fn pushes_to(&self, token: &str) -> usize {
        self.sim
            .records()
            .iter()
            .filter(|record| record.device_token == token && record.push_type == "voip")
            .count()
    }

    /// Waits until the simulator accepted a push for `token`; returns how many it has.
    async fn rung(&self, token: &str, within: Duration) -> usize {
        self.rung_times(token, 1, within).await
    }

    /// Waits until the simulator accepted `times` pushes for `token`; returns how many it has.
    async fn rung_times(&self, token: &str, times: usize, within: Duration) -> usize {
        let until = Instant::now() + within;
        loop {
            let pushes = self.pushes_to(token);
            if pushes >= times {
                return pushes;
            }
            assert!(
                Instant::now() < until,
                "{token:.8}… rang {pushes} times, not {times}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Holds every answer to a push until the guard is dropped: a push the test needs
    /// unanswered while its node is killed or drained stays so however slow the machine is.
    fn hold_answers(&self) -> HeldAnswers {
        self.sim.hold_answers()
    }

    /// Waits until some push request reached the simulator (it is now holding it).
    async fn holding_a_push(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        while self.sim.stats().max_streams_in_flight == 0 {
            assert!(Instant::now() < until, "no push reached the simulator");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One `ringcast serve` process.
struct Node {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Node {
    /// Starts a node named `name` over `redis` and `push`, and waits until it listens.
    fn start(name: &str, redis: &Backend, push: &PushService, shutdown_timeout: u64) -> Node {
        Node::start_with(name, redis, push, shutdown_timeout, 1)
    }

    /// Starts a node sending at most `max_in_flight` APNs pushes at once.
    fn start_with(
        name: &str,
        redis: &Backend,
        push: &PushService,
        shutdown_timeout: u64,
        max_in_flight: usize,
    ) -> Node {
        Node::start_configured(name, redis, push, shutdown_timeout, max_in_flight, "")
    }

    /// Starts a node whose config file also has `extra` (TOML sections) at its end.
    fn start_configured(
        name: &str,
        redis: &Backend,
        push: &PushService,
        shutdown_timeout: u64,
        max_in_flight: usize,
        extra: &str,
    ) -> Node {
        let mut config = node_config(name, redis, push, shutdown_timeout, max_in_flight);
        if !extra.is_empty() {
            let mut toml = std::fs::read_to_string(&config).unwrap();
            toml.push_str(extra);
            config = config.with_extension("extra.toml");
            std::fs::write(&config, toml).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let address = std::iter::from_fn(|| lines_rx.recv_timeout(Duration::from_secs(30)).ok())
            .find_map(|line| {
                let rest = line.split("address=").nth(1)?;
                Some(rest.split_whitespace().next().unwrap_or("").to_owned())
            });
        let Some(address) = address else {
            let _ = child.kill();
            panic!("node {name} did not log its address within 30 s");
        };
        // Keep reading the log so the node never blocks on a full pipe.
        std::thread::spawn(move || while lines_rx.recv().is_ok() {});
        Node {
            child,
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
        }
    }

    async fn register(&self, identity: &str, device: &str, token: &str) {
        let response = self
            .client
            .put(format!(
                "{}/v1/identities/{identity}/registrations/{device}",
                self.base
            ))
            .bearer_auth(KEY_A)
            .json(&json!({"platform": "apns", "app": "ios", "token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    /// Rings `callee` for `call_id`; the status, the `Retry-After` header and the body.
    async fn ring(&self, callee: &str, call_id: &str, wait: bool) -> (u16, Option<String>, Value) {
        let query = if wait { "?wait=true" } else { "" };
        let response = self
            .client
            .post(format!("{}/v1/calls{query}", self.base))
            .bearer_auth(KEY_A)
            .json(&json!({"call_id": call_id, "callee": callee,
                "caller": {"id": "+15550100", "display_name": "Bob"}}))
            .send()
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let (status, body) = status_and_json(response).await;
        (status, retry_after, body)
    }

    async fn end(&self, callee: &str, call_id: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/calls/{call_id}/end", self.base))
            .bearer_auth(KEY_A)
            .json(&json!({"callee": callee, "reason": "cancelled"}))
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// This node's `/metrics`.
    async fn scrape(&self) -> String {
        let metrics = self.client.get(format!("{}/metrics", self.base));
        metrics.send().await.unwrap().text().await.unwrap()
    }

    /// The sum of `metric`'s series on this node whose labels include every one of
    /// `labels` (`name="value"`).
    async fn metric_sum(&self, metric: &str, labels: &[String]) -> f64 {
        let text = self.scrape().await;
        let series = format!("{metric}{{");
        text.lines()
            .filter(|line| {
                line.starts_with(&series) && labels.iter().all(|label| line.contains(label))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// `ringcast_event_leases_total{outcome}` on this node.
    async fn leases_counted(&self, outcome: &str) -> f64 {
        let outcome = format!(r#"outcome="{outcome}""#);
        self.metric_sum("ringcast_event_leases_total", &[outcome])
            .await
    }

    /// `ringcast_calls_ringing` on this node: the calls whose rings it still holds.
    async fn calls_ringing(&self) -> f64 {
        let text = self.scrape().await;
        text.lines()
            .find_map(|line| line.strip_prefix("ringcast_calls_ringing "))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no ringcast_calls_ringing in {text}"))
    }

    /// `ringcast_pushes_total{provider="apns",priority="p0",outcome}` on this node.
    async fn rings_counted(&self, outcome: &str) -> f64 {
        let labels = [
            r#"provider="apns""#.to_owned(),
            r#"priority="p0""#.to_owned(),
            format!(r#"outcome="{outcome}""#),
        ];
        self.metric_sum("ringcast_pushes_total", &labels).await
    }

    async fn ready(&self) -> u16 {
        self.client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .map_or(0, |response| response.status().as_u16())
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to end; its exit status.
    async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "the node did not exit in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node's config file: tenant `a` (server key [`KEY_A`]) with an iOS app whose APNs
/// provider is the simulator, the store `redis`, and short cluster leases.
fn node_config(
    name: &str,
    redis: &Backend,
    push: &PushService,
    shutdown_timeout: u64,
    max_in_flight: usize,
) -> PathBuf {
    let dir = push.dir.path();
    let path = dir.join(format!("{name}.toml"));
    let toml = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        workers = 1
        shutdown_timeout_seconds = {shutdown_timeout}
        # /readyz and /metrics on the API's port: every node of a test on its own port, none
        # on the admin listener's fixed default.
        [admin]
        on_api_listener = true
        [registry]
        shards = 1
        {store}
        [providers.apns]
        production_url = "{url}"
        sandbox_url = "{sandbox_url}"
        trusted_roots = "{roots}"
        connections = 1
        # With 1, one push at a time: a second ring waits in the queue while the first is held.
        max_in_flight = {max_in_flight}
        [cluster]
        node_id = "{name}"
        lease_ms = {LEASE_MS}
        renew_ms = {RENEW_MS}
        [tenants.a]
        server_keys = [{{ sha256 = "{digest}" }}]
        [tenants.a.apps.ios]
        platform = "apns"
        bundle_id = "com.example.phone"
        team_id = "{TEAM}"
        key_id = "{KID}"
        key = {{ file = "{key}" }}
        "#,
        url = push.sim.base_url(),
        sandbox_url = push.sim.apns_sandbox_url(),
        store = redis.toml(),
        roots = dir.join("simulator.pem").display(),
        digest = hex::encode(Sha256::digest(KEY_A)),
        key = dir.join("apns.p8").display(),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

/// The Redis the nodes share.
enum Backend {
    /// One server, by URL.
    Redis(String),
    /// A Redis Cluster, by its nodes' URLs.
    Cluster(Vec<String>),
    /// A master behind Redis Sentinel: the Sentinels' URLs and the master's name.
    Sentinel(Vec<String>, String),
}

impl Backend {
    /// The `[registry]` store keys for it.
    fn toml(&self) -> String {
        match self {
            Backend::Redis(url) => format!("store = \"redis\"\n[registry.redis]\nurl = \"{url}\""),
            Backend::Cluster(urls) => {
                format!("store = \"redis-cluster\"\n[registry.redis]\nnodes = {urls:?}")
            }
            Backend::Sentinel(sentinels, master) => format!(
                "store = \"redis-sentinel\"\n[registry.redis]\nsentinels = {sentinels:?}\n\
                 sentinel_master = \"{master}\""
            ),
        }
    }
}

/// The shared Redis (tests/support/redis_server.rs).
async fn shared_redis() -> Backend {
    Backend::Redis(support::redis_server::shared().await.url())
}

/// Names no other run and no other test uses, so they can share one Redis: the process id
/// and the time tell runs apart, a counter the tests of this run (they run in parallel, and
/// two of them once named their calls in the same millisecond: the second test saw the
/// first one's event, finished, as its own).
fn unique(what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{what}-{}-{now}-{n}", std::process::id())
}

/// A production PushKit token made of byte `n`: the simulator reads a first byte `0x5b` as a
/// sandbox token and a second byte `0xa1` as a regular one, so `n` is never either.
fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_whose_node_is_killed_rings_through_another_node() {
    let redis = shared_redis().await;
    let push = PushService::start(50).await;
    let mut a = Node::start("node-a", &redis, &push, 5);
    let b = Node::start("node-b", &redis, &push, 5);
    let (callee, call) = (unique("killed-owner"), unique("call"));
    let phone = token(0x3a);
    a.register(&callee, "phone", &phone).await;

    // The push service holds a's push until a is dead, however slow the machine.
    let held = push.hold_answers();
    let (status, _, accepted) = a.ring(&callee, &call, false).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["devices"], 1);
    push.holding_a_push().await;
    a.signal("-KILL");
    a.exited(Duration::from_secs(5)).await;
    // Apple has a's push and delivers it though a never hears the answer.
    held.release();

    // Call control lost a's answer and sends the call to b, again until b takes it: while
    // a's lease runs b answers as a duplicate; once it lapsed, b owns the event.
    let until = Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let (status, _, answer) = b.ring(&callee, &call, false).await;
        assert_eq!(status, 202, "{answer}");
        if answer["duplicate"] == false {
            break answer;
        }
        assert_eq!(answer["progress"]["finished"], false, "{answer}");
        assert!(
            Instant::now() < until,
            "b never took the event over: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(taken["devices"], 1, "{taken}");
    let pushes = push.rung(&phone, Duration::from_secs(10)).await;
    assert!(
        pushes <= 2,
        "at most one duplicate push per device, got {pushes}"
    );

    // Once b finished, the event never rings again.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, answer) = b.ring(&callee, &call, false).await;
        assert_eq!(answer["duplicate"], true, "{answer}");
        if answer["progress"]["finished"] == true {
            assert_eq!(answer["progress"]["done"], json!(["phone"]));
            break;
        }
        assert!(Instant::now() < until, "b never finished: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The push service had a's push before a died and delivers it anyway (a never learned
    // it): that one duplicate is the most a takeover may cost.
    assert!(
        push.pushes_to(&phone) <= 2,
        "{} rings",
        push.pushes_to(&phone)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_sent_to_two_living_nodes_rings_once() {
    let redis = shared_redis().await;
    let push = PushService::start(50).await;
    let a = Node::start("node-a", &redis, &push, 5);
    let b = Node::start("node-b", &redis, &push, 5);
    let (callee, call) = (unique("twice"), unique("call"));
    let phone = token(0x5c);
    a.register(&callee, "phone", &phone).await;

    // a waits for the outcome, held for longer than a lease (a renews it meanwhile); b gets
    // the same event meanwhile, and again after a finished.
    let held = push.hold_answers();
    let on_a = a.ring(&callee, &call, true);
    let on_b = async {
        push.holding_a_push().await;
        tokio::time::sleep(Duration::from_millis(LEASE_MS + 200)).await;
        let answer = b.ring(&callee, &call, false).await;
        drop(held);
        answer
    };
    let ((status, _, delivered), (_, _, duplicate)) = tokio::join!(on_a, on_b);
    assert_eq!(status, 200, "{delivered}");
    assert_eq!(
        delivered["outcomes"][0]["outcome"], "delivered",
        "{delivered}"
    );
    assert_eq!(
        duplicate["duplicate"], true,
        "a renewed its lease: {duplicate}"
    );
    assert_eq!(duplicate["devices"], 0);
    assert_eq!(push.pushes_to(&phone), 1);

    let (_, _, later) = b.ring(&callee, &call, false).await;
    assert_eq!(later["duplicate"], true, "{later}");
    assert_eq!(push.pushes_to(&phone), 1, "rang once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_node_before_it_exits() {
    let redis = shared_redis().await;
    let push = PushService::start(50).await;
    let mut a = Node::start("node-a", &redis, &push, 10);
    let (callee, call) = (unique("drained"), unique("call"));
    let phone = token(0x7c);
    a.register(&callee, "phone", &phone).await;
    assert_eq!(a.ready().await, 200);

    // The push is held until the checks below were made.
    let held = push.hold_answers();
    let (status, _, accepted) = a.ring(&callee, &call, false).await;
    assert_eq!(status, 202, "{accepted}");
    push.holding_a_push().await;
    a.signal("-TERM");

    // At once: not ready, and new events are refused with Retry-After, while the push in
    // flight still finishes.
    let until = Instant::now() + Duration::from_secs(2);
    while a.ready().await != 503 {
        assert!(Instant::now() < until, "/readyz did not turn 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, retry_after, refused) = a.ring(&callee, &unique("call"), false).await;
    assert_eq!(status, 503, "{refused}");
    assert!(retry_after.is_some(), "503 without Retry-After");
    assert_eq!(
        push.pushes_to(&phone),
        0,
        "still in flight when the node was told to stop"
    );
    held.release();

    // The drain (the push), then up to the shutdown timeout (10 s) for the HTTP connections
    // to close: a loaded machine may need most of both.
    let exit = a.exited(Duration::from_secs(25)).await;
    assert!(exit.success(), "exit {exit}");
    assert_eq!(
        push.pushes_to(&phone),
        1,
        "the push in flight finished before the exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_node_withdraws_the_ring_queued_on_another() {
    let redis = shared_redis().await;
    let push = PushService::start(50).await;
    let a = Node::start("node-a", &redis, &push, 5);
    let b = Node::start("node-b", &redis, &push, 5);
    let (first, second) = (unique("busy-callee"), unique("queued-callee"));
    let (first_phone, second_phone) = (token(0x11), token(0x22));
    a.register(&first, "phone", &first_phone).await;
    a.register(&second, "phone", &second_phone).await;

    // a sends one push at a time: the first ring is held by the push service until the end
    // below was withdrawn, the second waits in a's queue.
    let held = push.hold_answers();
    let (status, _, answer) = a.ring(&first, &unique("call"), false).await;
    assert_eq!(status, 202, "{answer}");
    push.holding_a_push().await;
    let queued_call = unique("call");
    let (status, _, answer) = a.ring(&second, &queued_call, false).await;
    assert_eq!((status, &answer["devices"]), (202, &json!(1)), "{answer}");

    // Both calls ring on a, none on b: b's routers hold no ring to withdraw, so the end
    // routed there asks none of them, and a, told through pub/sub, must find its own.
    assert_eq!(a.calls_ringing().await, 2.0);
    assert_eq!(b.calls_ringing().await, 0.0);

    // The caller hangs up; call control tells b.
    let (status, answer) = b.end(&second, &queued_call).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["duplicate"], false);

    // a withdraws the queued ring: it never leaves.
    let until = Instant::now() + Duration::from_secs(5);
    while a.rings_counted("withdrawn").await < 1.0 {
        assert!(Instant::now() < until, "a never withdrew the queued ring");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.release();
    push.rung(&first_phone, Duration::from_secs(10)).await;
    assert_eq!(push.pushes_to(&second_phone), 0, "the cancelled call rang");
    // Every ring has its outcome: a lets both calls go (or the count would only grow).
    let until = Instant::now() + Duration::from_secs(5);
    while a.calls_ringing().await > 0.0 {
        assert!(Instant::now() < until, "a still counts a call as ringing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The end fans out once: the same end on a is a duplicate.
    let (_, again) = a.end(&second, &queued_call).await;
    assert_eq!(again["duplicate"], true, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_redis_cluster_ends_reach_every_node_and_a_killed_owners_ring_rings() {
    let cluster = support::redis_cluster::RedisCluster::start(3).await;
    let redis = Backend::Cluster(cluster.urls());
    let push = PushService::start(50).await;
    let mut a = Node::start("node-a", &redis, &push, 5);
    let b = Node::start("node-b", &redis, &push, 5);
    let (held, queued) = (unique("held-callee"), unique("queued-callee"));
    let (held_phone, queued_phone) = (token(0x33), token(0x44));
    a.register(&held, "phone", &held_phone).await;
    a.register(&queued, "phone", &queued_phone).await;

    // The first ring is held by the push service until its node was killed below.
    let held_answers = push.hold_answers();
    let held_call = unique("call");
    let (status, _, answer) = a.ring(&held, &held_call, false).await;
    assert_eq!(status, 202, "{answer}");
    push.holding_a_push().await;
    let queued_call = unique("call");
    let (status, _, answer) = a.ring(&queued, &queued_call, false).await;
    assert_eq!(status, 202, "{answer}");

    // A cancel on b reaches a through the cluster's pub/sub.
    let (status, answer) = b.end(&queued, &queued_call).await;
    assert_eq!(status, 202, "{answer}");
    let until = Instant::now() + Duration::from_secs(5);
    while a.rings_counted("withdrawn").await < 1.0 {
        assert!(Instant::now() < until, "a never withdrew the queued ring");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // a dies holding the first ring; b takes it over once a's lease lapsed.
    a.signal("-KILL");
    a.exited(Duration::from_secs(5)).await;
    held_answers.release();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, answer) = b.ring(&held, &held_call, false).await;
        assert_eq!(status, 202, "{answer}");
        if answer["duplicate"] == false {
            assert_eq!(answer["devices"], 1, "{answer}");
            break;
        }
        assert_eq!(answer["progress"]["finished"], false, "{answer}");
        assert!(
            Instant::now() < until,
            "b never took the event over: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pushes = push.rung(&held_phone, Duration::from_secs(10)).await;
    assert!(pushes <= 2, "at most one duplicate push, got {pushes}");
    assert_eq!(push.pushes_to(&queued_phone), 0, "the cancelled call rang");
}
