//! Failures under a steady ring load over a Redis Cluster with replicas (issue 15, part 6):
//! 3 masters with a replica each, started by the test, and ringcast nodes taking events in
//! durably. A master fails over (`CLUSTER FAILOVER` on its replica, or `kill -9` of the
//! master and its replica takes over after the node timeout), or every ringcast node restarts
//! in turn (SIGTERM, exit 0, started again). Asserted: every event answered `202` rings, the
//! answers while slots move are `503` with `Retry-After` and never `500`, and duplicate pushes
//! stay within the bound.
//!
//! Call control trusts a `202` (the event is on a stream) and sends again, to any node, every
//! event that got another answer or none, until a node owns it or reports it finished. The
//! `scenario_*` tests are the load scenarios of benches/cluster.sh; the others are short
//! versions of each that run with the suite.

use super::scenarios::{Count, Sent, now_ms};
use super::{Backend, KEY_A, Node, PushService, unique};
use crate::support::redis_cluster::RedisCluster;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The simulator's answer time: pushes stay in flight while the failure happens.
const LATENCY_MS: u64 = 300;
/// `cluster-node-timeout`: a killed master's replica takes over about this long after.
const NODE_TIMEOUT_MS: u64 = 1_000;

/// What fails while the events are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// `CLUSTER FAILOVER` on a master's replica: the planned switch-over.
    Switchover,
    /// `kill -9` of a master: its replica takes over once the others agree it failed; the
    /// old master then comes back as a replica.
    MasterKilled,
    /// Every ringcast node in turn: SIGTERM, exit 0, started again.
    RollingRestart,
}

/// How much load, and when the failure starts.
#[derive(Clone, Copy)]
struct Load {
    /// Ringcast nodes the events are spread over.
    nodes: usize,
    events: usize,
    per_second: u64,
    /// The failure starts when this many events were sent.
    fail_at: usize,
}

/// The load scenarios: the load goes on for 6 s after the failure starts, longer than a
/// killed master's takeover (node timeout, election, the clients' slot refresh) or a rolling
/// restart of three nodes.
const SCENARIO: Load = Load {
    nodes: 2,
    events: 800,
    per_second: 100,
    fail_at: 200,
};
const SCENARIO_ROLLING: Load = Load {
    nodes: 3,
    ..SCENARIO
};
/// The short versions, for the suite: 5 s of load after the failure starts.
const SHORT: Load = Load {
    nodes: 2,
    events: 180,
    per_second: 30,
    fail_at: 30,
};
const SHORT_ROLLING: Load = SHORT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_redis_cluster_switchover() {
    run("redis-switchover", Failure::Switchover, SCENARIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_redis_cluster_master_kill_9() {
    run("redis-master-kill-9", Failure::MasterKilled, SCENARIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_rolling_restart_over_a_redis_cluster() {
    run("rolling-restart", Failure::RollingRestart, SCENARIO_ROLLING).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_master_switchover_under_load_loses_no_accepted_event() {
    run("short-redis-switchover", Failure::Switchover, SHORT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_master_under_load_loses_no_accepted_event() {
    run("short-redis-master-kill-9", Failure::MasterKilled, SHORT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_accepted_event() {
    run(
        "short-rolling-restart",
        Failure::RollingRestart,
        SHORT_ROLLING,
    )
    .await;
}

/// Every answer the API gave, first sends and retries alike.
#[derive(Debug, Default)]
struct Answers {
    accepted: usize,
    unavailable: usize,
    /// `503`s without `Retry-After`.
    without_retry_after: usize,
    /// Any other status, e.g. `500`.
    other: Vec<u16>,
    /// Connections refused: a node between its exit and its restart.
    refused: usize,
    /// No answer: the request timed out, or its connection closed before the answer.
    unanswered: usize,
    /// Why, for each of them (the first few), so a failure says which it was.
    unanswered_errors: Vec<String>,
}

impl Answers {
    fn note<T>(&mut self, answer: &Result<(u16, bool, T), reqwest::Error>) {
        match answer {
            Ok((202, _, _)) => self.accepted += 1,
            Ok((503, retry_after, _)) => {
                self.unavailable += 1;
                if !retry_after {
                    self.without_retry_after += 1;
                }
            }
            Ok((status, _, _)) => self.other.push(*status),
            Err(error) if error.is_connect() => self.refused += 1,
            Err(error) => {
                self.unanswered += 1;
                if self.unanswered_errors.len() < 5 {
                    let source = std::error::Error::source(error).map(ToString::to_string);
                    self.unanswered_errors.push(format!(
                        "{error} (timeout: {}, source: {source:?})",
                        error.is_timeout()
                    ));
                }
            }
        }
    }
}

/// One send of `event` to the node at `base`: its status, whether a `Retry-After` came with
/// it, and the body.
async fn send(
    client: &reqwest::Client,
    base: &str,
    event: &Call,
) -> Result<(u16, bool, serde_json::Value), reqwest::Error> {
    let response = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth(KEY_A)
        .json(
            &serde_json::json!({"call_id": event.call_id, "callee": event.callee,
            "caller": {"id": "+15550100"}}),
        )
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    Ok((
        status,
        retry_after,
        response.json().await.unwrap_or_default(),
    ))
}

/// What call control sends for one event.
#[derive(Clone)]
struct Call {
    callee: String,
    call_id: String,
}

/// What came of one event at call control.
struct Delivery {
    first_sent_ms: u64,
    /// The first send was answered `202`.
    accepted_at_once: bool,
    /// Some send was answered `202` by a node that owns the event or saw it finished.
    accepted: bool,
}

/// Call control for event `n`: sends it to the next node in `bases`, and, unless that node
/// answers `202`, sends it again every 100 ms to the nodes in turn until one owns it or
/// reports it finished. Every answer is noted in `answers`.
async fn call_control(
    client: reqwest::Client,
    bases: Arc<Mutex<Vec<String>>>,
    event: Call,
    n: usize,
    answers: Arc<Mutex<Answers>>,
) -> Delivery {
    let first_sent_ms = now_ms();
    let until = Instant::now() + Duration::from_secs(30);
    let mut delivery = Delivery {
        first_sent_ms,
        accepted_at_once: false,
        accepted: false,
    };
    for turn in n.. {
        let base = {
            let bases = bases.lock().unwrap();
            bases[turn % bases.len()].clone()
        };
        let answer = send(&client, &base, &event).await;
        answers.lock().unwrap().note(&answer);
        let first = turn == n;
        match &answer {
            // A durable 202 is trusted at once: the event is on a stream.
            Ok((202, _, _)) if first => {
                delivery.accepted_at_once = true;
                delivery.accepted = true;
                return delivery;
            }
            Ok((202, _, body))
                if body["duplicate"] == false || body["progress"]["finished"] == true =>
            {
                delivery.accepted = true;
                return delivery;
            }
            _ => {}
        }
        assert!(
            Instant::now() < until,
            "{}: never settled: {answer:?}",
            event.call_id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delivery
}

async fn run(name: &str, failure: Failure, load: Load) {
    let mut cluster = RedisCluster::start_replicated(3, NODE_TIMEOUT_MS).await;
    let redis = Backend::Cluster(cluster.urls());
    let push = PushService::start(LATENCY_MS).await;
    let intake = format!(
        "\n[intake]\ndurable = true\nname = \"{}\"\nblock_ms = 200\n",
        unique(name)
    );
    let node_names: Vec<String> = (0..load.nodes).map(|n| format!("node-{n}")).collect();
    let mut nodes: Vec<Node> = node_names
        .iter()
        .map(|node| Node::start_configured(node, &redis, &push, 10, 2048, &intake))
        .collect();
    let prefix = unique(name);
    let mut events = Vec::with_capacity(load.events);
    for n in 0..load.events {
        let callee = format!("{prefix}-{n}");
        let token = format!("{:0>64}", format!("{:x}{n:04x}", now_ms()));
        nodes[n % load.nodes]
            .register(&callee, "phone", &token)
            .await;
        events.push(Sent {
            call_id: format!("{callee}-call"),
            callee,
            token,
            first_sent_ms: 0,
            accepted: false,
        });
    }

    // The sender starts call control for each event at the set rate, spreading them over the
    // nodes listed in `bases`, and says when the failure is due; a restarted node's new
    // address replaces its old one.
    let bases = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|node| node.base.clone())
            .collect::<Vec<_>>(),
    ));
    let answers = Arc::new(Mutex::new(Answers::default()));
    let (due_tx, due_rx) = tokio::sync::oneshot::channel();
    let sender = {
        let (bases, answers) = (bases.clone(), answers.clone());
        let client = reqwest::Client::new();
        let calls: Vec<Call> = events
            .iter()
            .map(|event| Call {
                callee: event.callee.clone(),
                call_id: event.call_id.clone(),
            })
            .collect();
        tokio::spawn(async move {
            let gap = Duration::from_micros(1_000_000 / load.per_second);
            let started = Instant::now();
            let mut due_tx = Some(due_tx);
            let mut controls = Vec::with_capacity(calls.len());
            for (n, call) in calls.into_iter().enumerate() {
                if n == load.fail_at {
                    let _ = due_tx.take().map(|due| due.send(()));
                }
                tokio::time::sleep_until((started + gap * n as u32).into()).await;
                controls.push(tokio::spawn(call_control(
                    client.clone(),
                    bases.clone(),
                    call,
                    n,
                    answers.clone(),
                )));
            }
            controls
        })
    };

    due_rx.await.expect("the sender reaches the failure");
    let failed_at = Instant::now();
    match failure {
        Failure::Switchover => {
            let (_, replica) = cluster.a_master_and_its_replica().await;
            cluster.failover(replica).await;
        }
        Failure::MasterKilled => {
            let (master, replica) = cluster.a_master_and_its_replica().await;
            cluster.kill(master);
            cluster.wait_until_master(replica).await;
            cluster.restart(master);
            cluster.wait_until_replicas_synced().await;
        }
        Failure::RollingRestart => {
            for (index, node_name) in node_names.iter().enumerate() {
                nodes[index].signal("-TERM");
                let exit = nodes[index].exited(Duration::from_secs(20)).await;
                assert!(
                    exit.success(),
                    "{node_name} exits 0 after its drain: {exit}"
                );
                // Starting a node blocks until it logs its address.
                let started = tokio::task::block_in_place(|| {
                    Node::start_configured(node_name, &redis, &push, 10, 2048, &intake)
                });
                bases.lock().unwrap()[index] = started.base.clone();
                nodes[index] = started;
            }
        }
    }
    let failure_took = failed_at.elapsed();
    let mut accepted_at_once = 0;
    for (n, control) in sender.await.unwrap().into_iter().enumerate() {
        let delivery = control.await.unwrap();
        events[n].first_sent_ms = delivery.first_sent_ms;
        events[n].accepted = delivery.accepted;
        accepted_at_once += usize::from(delivery.accepted_at_once);
    }
    let answers = std::mem::take(&mut *answers.lock().unwrap());

    let count = Count::of(name, &events, &push).await;
    println!(
        "scenario={name} failure_took_ms={} accepted_at_once={accepted_at_once} answers={answers:?}",
        failure_took.as_millis()
    );
    // Whose leases changed hands: a takeover of an event whose owner was alive but could not
    // renew while the slots moved re-rings the devices it had not recorded yet.
    let mut leases = Vec::new();
    for outcome in ["taken_over", "takeover_withheld", "lost", "store_error"] {
        let mut total = 0.0;
        for node in &nodes {
            total += node.leases_counted(outcome).await;
        }
        leases.push(format!("{outcome}={total}"));
    }
    println!("scenario={name} leases {}", leases.join(" "));
    assert_eq!(count.lost, 0, "accepted events lost");
    assert_eq!(
        count.accepted, load.events,
        "call control's retries got every event accepted"
    );
    assert!(
        answers.other.is_empty(),
        "answers other than 202 and 503: {:?}",
        answers.other
    );
    assert_eq!(answers.without_retry_after, 0, "503 without Retry-After");
    assert_eq!(
        answers.unanswered, 0,
        "requests left unanswered: {:?}",
        answers.unanswered_errors
    );
    if failure != Failure::RollingRestart {
        assert_eq!(answers.refused, 0, "every ringcast node stays up");
    }
    assert!(
        count.most_to_one_device <= 2,
        "a device got {} pushes",
        count.most_to_one_device
    );
    assert!(
        count.duplicates * 1000 <= load.events || count.duplicates <= 1,
        "{} duplicate pushes",
        count.duplicates
    );
}
