//! Load scenarios over two real nodes, each ending in one summary line — events accepted,
//! rung, lost, duplicate pushes, p99 from the first send to the push service's record — and
//! asserting the targets: no accepted event lost, at most one duplicate push per
//! device, and (but after a `kill -9`, see `run`) duplicate pushes at most 0.1 % of devices.
//! Ignored by default (seconds each); run them with `benches/cluster.sh`.
//!
//! Call control is modelled as the issue describes it: an event sent to a node that died or
//! refused it (`503` while draining) is sent again to the other node until that node owns
//! it or reports it finished.

use super::{Node, PushService, unique};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Events per scenario, and how fast they are sent.
const EVENTS: usize = 400;
const RATE_PER_SECOND: u64 = 100;
/// The simulator's answer time: events stay in flight long enough to be caught by a kill.
const LATENCY_MS: u64 = 300;

/// How a scenario stops node `a` half-way through the events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Both nodes live throughout.
    None,
    /// `kill -9` of `a`.
    Kill,
    /// SIGTERM to `a`: it drains and exits.
    Drain,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_steady() {
    run("steady", Stop::None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_kill_9_of_a_node() {
    run("kill-9", Stop::Kill, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_sigterm_drain_of_a_node() {
    run("sigterm-drain", Stop::Drain, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_durable_steady() {
    run("durable-steady", Stop::None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load scenario: run by benches/cluster.sh"]
async fn scenario_durable_kill_9_of_a_node() {
    run("durable-kill-9", Stop::Kill, true).await;
}

/// One event as call control sees it.
pub(super) struct Sent {
    pub(super) callee: String,
    pub(super) call_id: String,
    pub(super) token: String,
    pub(super) first_sent_ms: u64,
    pub(super) accepted: bool,
}

/// What came of a scenario's events, from the push service's record.
pub(super) struct Count {
    /// Events some node answered `202` (at first or on a retry).
    pub(super) accepted: usize,
    /// Accepted events whose device got no push.
    pub(super) lost: usize,
    /// Pushes beyond the first to each device.
    pub(super) duplicates: usize,
    /// The most pushes one device got.
    pub(super) most_to_one_device: usize,
    /// By token: how many pushes the device got, and when the push service got the first
    /// (UNIX ms).
    pub(super) by_token: HashMap<String, (usize, u64)>,
}

impl Count {
    /// Waits (boundedly) until every accepted event rang, then counts and prints the
    /// scenario's summary line.
    pub(super) async fn of(name: &str, events: &[Sent], push: &PushService) -> Count {
        let until = Instant::now() + Duration::from_secs(20);
        let accepted = events.iter().filter(|event| event.accepted).count();
        let (rung, by_token) = loop {
            let mut by_token: HashMap<String, (usize, u64)> = HashMap::new();
            for record in push.sim.records() {
                let entry = by_token.entry(record.device_token).or_insert((0, u64::MAX));
                entry.0 += 1;
                entry.1 = entry.1.min(record.received_at_ms);
            }
            let rung = events
                .iter()
                .filter(|event| event.accepted && by_token.contains_key(&event.token))
                .count();
            if rung == accepted || Instant::now() >= until {
                break (rung, by_token);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let pushes = by_token.values().map(|v| v.0).sum::<usize>();
        let duplicates = pushes - by_token.len();
        let mut latencies: Vec<u64> = events
            .iter()
            .filter_map(|event| {
                let (_, first) = by_token.get(&event.token)?;
                Some(first.saturating_sub(event.first_sent_ms))
            })
            .collect();
        latencies.sort_unstable();
        let p99 = latencies
            .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0);
        println!(
            "scenario={name} events={} accepted={accepted} rung={rung} lost={} \
             duplicate_pushes={duplicates} p99_ms={p99}",
            events.len(),
            accepted - rung
        );
        Count {
            accepted,
            lost: accepted - rung,
            duplicates,
            most_to_one_device: by_token.values().map(|v| v.0).max().unwrap_or(0),
            by_token,
        }
    }
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Runs scenario `name`. With `durable`, both nodes take events in durably (`[intake]`), and
/// call control trusts a `202`: it sends again only the events a node refused or never
/// answered, so every event the killed node accepted must come out of its stream entry.
async fn run(name: &str, stop: Stop, durable: bool) {
    let redis = super::shared_redis().await;
    let push = PushService::start(LATENCY_MS).await;
    let intake = if durable {
        format!("\n[intake]\ndurable = true\nname = \"{}\"\n", unique(name))
    } else {
        String::new()
    };
    let mut a = Node::start_configured("node-a", &redis, &push, 10, 2048, &intake);
    let b = Node::start_configured("node-b", &redis, &push, 10, 2048, &intake);
    let prefix = unique(name);
    let mut events = Vec::with_capacity(EVENTS);
    for n in 0..EVENTS {
        let callee = format!("{prefix}-{n}");
        // A token per event, distinct across runs of one Redis (prefix digits vary).
        let token = format!("{:0>64}", format!("{:x}{n:04x}", now_ms()));
        b.register(&callee, "phone", &token).await;
        events.push(Sent {
            call_id: format!("{callee}-call"),
            callee,
            token,
            first_sent_ms: 0,
            accepted: false,
        });
    }

    // Send every event once, alternating nodes, at the set rate; stop `a` half-way.
    let gap = Duration::from_micros(1_000_000 / RATE_PER_SECOND);
    let mut answers = Vec::with_capacity(EVENTS);
    let started = Instant::now();
    let mut killed_at_ms = 0;
    for (n, event) in events.iter_mut().enumerate() {
        if n == EVENTS / 2 {
            match stop {
                Stop::None => {}
                Stop::Kill => {
                    killed_at_ms = now_ms();
                    a.signal("-KILL");
                }
                Stop::Drain => a.signal("-TERM"),
            }
        }
        tokio::time::sleep_until((started + gap * n as u32).into()).await;
        event.first_sent_ms = now_ms();
        let node = if n % 2 == 0 { &a } else { &b };
        let request = node.client.post(format!("{}/v1/calls", node.base));
        answers.push(tokio::spawn(
            request
                .bearer_auth(super::KEY_A)
                .json(
                    &serde_json::json!({"call_id": event.call_id, "callee": event.callee,
                    "caller": {"id": "+15550100"}}),
                )
                .timeout(Duration::from_secs(5))
                .send(),
        ));
    }
    let mut to_resend = Vec::new();
    for (n, answer) in answers.into_iter().enumerate() {
        let status = match answer.await.unwrap() {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        events[n].accepted = status == 202;
        // A node stopped: call control does not know what became of its events, unless
        // they are durable and it answered 202.
        let on_stopped_node = n % 2 == 0 && stop != Stop::None && !durable;
        if status != 202 || on_stopped_node {
            to_resend.push(n);
        }
    }
    if stop == Stop::Kill {
        a.exited(Duration::from_secs(5)).await;
    }
    for n in to_resend {
        let event = &events[n];
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, _, answer) = b.ring(&event.callee, &event.call_id, false).await;
            let settled = status == 202
                && (answer["duplicate"] == false || answer["progress"]["finished"] == true);
            if settled {
                events[n].accepted = true;
                break;
            }
            assert!(
                Instant::now() < until,
                "{}: never settled: {answer}",
                event.call_id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if stop == Stop::Drain {
        let exit = a.exited(Duration::from_secs(15)).await;
        assert!(exit.success(), "a drained node exits 0: {exit}");
    }

    let count = Count::of(name, &events, &push).await;
    let Count {
        accepted,
        lost,
        duplicates,
        most_to_one_device,
        ..
    } = count;
    if stop == Stop::Kill {
        duplicates_by_cause(name, &count, killed_at_ms);
    }
    assert_eq!(lost, 0, "accepted events lost");
    assert_eq!(
        accepted, EVENTS,
        "call control's retries got every event accepted"
    );
    assert!(
        most_to_one_device <= 2,
        "a device got {most_to_one_device} pushes"
    );
    // A kill -9 costs one duplicate for each push the push service held when its sender
    // died (the service delivers it; the sender never learned, so the new owner sends it
    // again): about the killed node's share of the rate × the service's answer time. Every
    // other scenario meets the bound of 0.1 % of devices.
    if stop != Stop::Kill {
        assert!(
            duplicates * 1000 <= EVENTS || duplicates <= 1,
            "{duplicates} duplicate pushes"
        );
    }
}

/// Prints where a kill's duplicate pushes come from, by when the push service answered the
/// first push of each device that got two (it records a push when it answers, the answer time
/// after it arrived): `in_flight` if within the answer time after the kill (the service held
/// the push when its sender died: the sender never learned, so the new owner must send again
/// — at-least-once), `answered` if before the kill (the sender had the answer and died before
/// recording it), `later` after that (two living senders: a bug).
fn duplicates_by_cause(name: &str, count: &Count, killed_at_ms: u64) {
    let (mut in_flight, mut answered, mut later) = (0, 0, 0);
    for (pushes, first_ms) in count.by_token.values() {
        if *pushes < 2 {
            continue;
        }
        let extra = pushes - 1;
        if *first_ms < killed_at_ms {
            answered += extra;
        } else if *first_ms <= killed_at_ms + LATENCY_MS {
            in_flight += extra;
        } else {
            later += extra;
        }
    }
    println!(
        "scenario={name} duplicates: in_flight_at_kill={in_flight} \
         answered_before_kill={answered} after_kill={later}"
    );
}
