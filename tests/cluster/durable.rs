//! Durable intake on Redis Streams (`[intake] durable = true`; README "Durable intake"), with
//! real processes: an accepted ring whose node is killed before it delivers is delivered by
//! another node without call control sending it again; an entry past its deadline is never
//! rung; the same event twice rings once and leaves nothing pending. Each test names its own
//! streams (`[intake] name`), so tests sharing one Redis never read each other's entries.

use super::{Backend, KEY_A, Node, PushService, shared_redis, token, unique};
use ringcast::config::Config;
use ringcast::metrics::intake::EntryOutcome;
use ringcast::registry::AnyStore;
use ringcast::registry::IdentityKey;
use ringcast::registry::redis::{RedisOptions, RedisSingleStore};
use ringcast::router::fanout::{CallEvent, Caller};
use ringcast::router::intake::entry::encode_ring;
use ringcast::router::intake::{DurableIntake, GROUP};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The `[intake]` section of a durable node whose streams are `name`'s.
fn durable(name: &str) -> String {
    format!("\n[intake]\ndurable = true\nname = \"{name}\"\nblock_ms = 200\n")
}

impl Node {
    /// `ringcast_intake_entries_total{outcome}` on this node.
    async fn entries(&self, outcome: EntryOutcome) -> f64 {
        let label = format!(r#"outcome="{}""#, outcome.label());
        self.metric_sum("ringcast_intake_entries_total", &[label])
            .await
    }

    /// Waits until this node counted at least one entry with `outcome`.
    async fn counted(&self, outcome: EntryOutcome, within: Duration) {
        let until = Instant::now() + within;
        while self.entries(outcome).await < 1.0 {
            assert!(
                Instant::now() < until,
                "no {} entry counted",
                outcome.label()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Rings with a ring timeout of `seconds`.
    async fn ring_for(&self, callee: &str, call_id: &str, seconds: u64) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/calls", self.base))
            .bearer_auth(KEY_A)
            .json(
                &json!({"call_id": call_id, "callee": callee, "ring_timeout_seconds": seconds,
                "caller": {"id": "+15550100", "display_name": "Bob"}}),
            )
            .send()
            .await
            .unwrap();
        super::status_and_json(response).await
    }
}

/// Entries of stream `{<name>:intake:0}` delivered and not acknowledged (one server: one
/// stream).
async fn pending(name: &str) -> i64 {
    let client = redis::Client::open(shared_redis_url().await).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{{{name}:intake:0}}"))
        .arg(GROUP)
        .query_async(&mut connection)
        .await
        .unwrap();
    match summary {
        redis::Value::Array(parts) => match parts.first() {
            Some(redis::Value::Int(count)) => *count,
            _ => 0,
        },
        _ => 0,
    }
}

async fn shared_redis_url() -> String {
    match shared_redis().await {
        Backend::Redis(url) => url,
        Backend::Cluster(_) | Backend::Sentinel(..) => {
            unreachable!("the shared Redis is one server")
        }
    }
}

/// A ring accepted by `a` (durable), whose push the push service holds when `a` is killed:
/// `b` claims the entry once it has been idle for a lease and rings, with no retry from call
/// control.
async fn killed_node_is_delivered_by_another(redis: Backend) {
    let name = unique("intake-killed");
    let push = PushService::start(50).await;
    let mut a = Node::start_configured("node-a", &redis, &push, 5, 1, &durable(&name));
    let b = Node::start_configured("node-b", &redis, &push, 5, 1, &durable(&name));
    let (callee, call) = (unique("durable-callee"), unique("call"));
    let phone = token(0x6d);
    a.register(&callee, "phone", &phone).await;

    let started = Instant::now();
    let held = push.hold_answers();
    let (status, _, accepted) = a.ring(&callee, &call, false).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["devices"], 1, "{accepted}");
    push.holding_a_push().await;
    a.signal("-KILL");
    a.exited(Duration::from_secs(5)).await;
    assert_eq!(
        push.pushes_to(&phone),
        0,
        "a died before the push service answered"
    );
    // Apple has a's push and delivers it though a never hears the answer.
    held.release();

    // Nobody sends the call again: b finds a's entry idle and delivers it.
    b.counted(EntryOutcome::Claimed, Duration::from_secs(20))
        .await;
    b.counted(EntryOutcome::Acked, Duration::from_secs(10))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "after the ring's deadline"
    );
    assert!(b.rings_counted("delivered").await >= 1.0);
    let pushes = push.rung_times(&phone, 2, Duration::from_secs(10)).await;
    assert_eq!(
        pushes, 2,
        "a's push (answered after a died) and b's: one duplicate, no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_ring_whose_node_is_killed_is_delivered_by_another_node() {
    killed_node_is_delivered_by_another(shared_redis().await).await;
}

/// Durable intake behind Redis Sentinel: the nodes find the master through the Sentinel, and
/// the stream, its consumer group and the claim of a dead node's entry work the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_redis_sentinel_a_killed_nodes_durable_ring_is_delivered() {
    let master = crate::support::redis_server::RedisServer::start();
    let name = unique("durable-master");
    let sentinel = crate::support::redis_server::RedisServer::start_sentinel(&name, master.port());
    killed_node_is_delivered_by_another(Backend::Sentinel(vec![sentinel.url()], name)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_redis_cluster_a_killed_nodes_durable_ring_is_delivered() {
    let cluster = crate::support::redis_cluster::RedisCluster::start(3).await;
    killed_node_is_delivered_by_another(Backend::Cluster(cluster.urls())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_past_its_deadline_is_acknowledged_as_expired_and_never_rung() {
    let redis = shared_redis().await;
    let name = unique("intake-expired");
    // The push service holds a's push past the ring's 1 s deadline, to the test's end.
    let push = PushService::start(50).await;
    let _held = push.hold_answers();
    let mut a = Node::start_configured("node-a", &redis, &push, 5, 1, &durable(&name));
    let (callee, call) = (unique("expired-callee"), unique("call"));
    let phone = token(0x6e);
    a.register(&callee, "phone", &phone).await;
    let (status, accepted) = a.ring_for(&callee, &call, 1).await;
    assert_eq!(status, 202, "{accepted}");
    let deadline = Instant::now() + Duration::from_secs(1);
    push.holding_a_push().await;
    a.signal("-KILL");
    a.exited(Duration::from_secs(5)).await;
    assert_eq!(pending(&name).await, 1, "a's entry stays pending");

    // b starts after the ring's deadline: it claims the entry and acknowledges it unrung.
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = Node::start_configured("node-b", &redis, &push, 5, 1, &durable(&name));
    b.counted(EntryOutcome::Expired, Duration::from_secs(10))
        .await;
    assert_eq!(pending(&name).await, 0, "acknowledged");
    assert_eq!(b.rings_counted("delivered").await, 0.0);
    assert_eq!(b.entries(EntryOutcome::Acked).await, 0.0);
    assert_eq!(push.pushes_to(&phone), 0, "an expired ring never rings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_durable_event_on_two_nodes_rings_once_and_leaves_nothing_pending() {
    let redis = shared_redis().await;
    let name = unique("intake-twice");
    let push = PushService::start(500).await;
    let a = Node::start_configured("node-a", &redis, &push, 5, 1, &durable(&name));
    let b = Node::start_configured("node-b", &redis, &push, 5, 1, &durable(&name));
    let (callee, call) = (unique("twice-callee"), unique("call"));
    let phone = token(0x6f);
    a.register(&callee, "phone", &phone).await;

    // `?wait=true` still answers with the outcomes: the node that accepted delivers.
    let on_a = a.ring(&callee, &call, true);
    let on_b = async {
        push.holding_a_push().await;
        b.ring(&callee, &call, false).await
    };
    let ((status, _, delivered), (_, _, duplicate)) = tokio::join!(on_a, on_b);
    assert_eq!(status, 200, "{delivered}");
    assert_eq!(
        delivered["outcomes"][0]["outcome"], "delivered",
        "{delivered}"
    );
    assert_eq!(duplicate["duplicate"], true, "{duplicate}");
    a.counted(EntryOutcome::Acked, Duration::from_secs(5)).await;
    b.counted(EntryOutcome::Duplicate, Duration::from_secs(5))
        .await;
    assert_eq!(pending(&name).await, 0, "both entries acknowledged");
    for node in [&a, &b] {
        assert_eq!(
            node.entries(EntryOutcome::Read).await,
            0.0,
            "each entry went to the node that appended it, new to nobody else"
        );
    }
    // Nothing is left to claim, and the event is finished: it never rings again.
    let (_, _, later) = b.ring(&callee, &call, false).await;
    assert_eq!(later["duplicate"], true, "{later}");
    assert_eq!(push.pushes_to(&phone), 1, "rang once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_leaves_its_unfinished_durable_entries_to_another_node() {
    let redis = shared_redis().await;
    let name = unique("intake-drained");
    let push = PushService::start(50).await;
    let mut a = Node::start_configured("node-a", &redis, &push, 1, 1, &durable(&name));
    let b = Node::start_configured("node-b", &redis, &push, 5, 1, &durable(&name));
    let (callee, call) = (unique("drained-callee"), unique("call"));
    let phone = token(0x70);
    a.register(&callee, "phone", &phone).await;
    // The push service holds a's push past a's shutdown timeout (1 s).
    let held = push.hold_answers();
    let (status, _, accepted) = a.ring(&callee, &call, false).await;
    assert_eq!(status, 202, "{accepted}");
    push.holding_a_push().await;

    // SIGTERM: a stops reading, waits for its push up to the shutdown timeout, exits 0 with
    // the event unfinished; its entry stays pending and b delivers it.
    a.signal("-TERM");
    let exit = a.exited(Duration::from_secs(20)).await;
    assert!(exit.success(), "exit {exit}");
    assert_eq!(
        push.pushes_to(&phone),
        0,
        "a stopped before the push service answered"
    );
    held.release();
    b.counted(EntryOutcome::Claimed, Duration::from_secs(20))
        .await;
    b.counted(EntryOutcome::Acked, Duration::from_secs(10))
        .await;
    assert!(b.rings_counted("delivered").await >= 1.0);
    let pushes = push.rung_times(&phone, 2, Duration::from_secs(10)).await;
    assert_eq!(
        pushes, 2,
        "a's push (answered after a stopped) and b's: one duplicate, no more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_another_producer_appends_is_read_and_rung() {
    let redis = shared_redis().await;
    let name = unique("intake-producer");
    let push = PushService::start(50).await;
    let a = Node::start_configured("node-a", &redis, &push, 5, 1, &durable(&name));
    let (callee, call) = (unique("producer-callee"), unique("call"));
    let phone = token(0x74);
    a.register(&callee, "phone", &phone).await;

    // Call control writes the event to the stream itself, in the README's schema.
    let accepted_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let entry = json!({"v": 1, "kind": "ring", "tenant": "a", "event_id": call, "call_id": call,
        "callee": callee, "caller_id": "+15550100", "caller_name": "Bob", "video": false,
        "accepted_at": accepted_at, "ring_timeout_ms": 45_000});
    let client = redis::Client::open(shared_redis_url().await).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{{{name}:intake:0}}"))
        .arg("*")
        .arg("e")
        .arg(entry.to_string())
        .query_async(&mut connection)
        .await
        .unwrap();

    assert_eq!(push.rung(&phone, Duration::from_secs(10)).await, 1);
    a.counted(EntryOutcome::Read, Duration::from_secs(5)).await;
    a.counted(EntryOutcome::Acked, Duration::from_secs(5)).await;
    assert_eq!(pending(&name).await, 0);
}

/// The append script against a real Redis: the entry is pending on the appending node at
/// once, so another node's read of new entries does not see it, and it can be acknowledged.
#[tokio::test]
async fn an_appended_entry_is_pending_on_its_node_and_new_to_nobody() {
    let url = shared_redis_url().await;
    let name = unique("intake-append");
    let mut config = Config::default();
    config.registry.store = ringcast::config::StoreKind::Redis;
    config.registry.redis.url = url.clone();
    config.intake.durable = true;
    config.intake.name = name.clone();
    let intake = DurableIntake::from_config(&config, "node-a").unwrap();
    let store = RedisSingleStore::connect(&url, &RedisOptions::default())
        .await
        .unwrap();
    let shard = intake.on(&AnyStore::Redis(store)).unwrap();
    let call = CallEvent {
        event_id: "e-1".into(),
        call_id: "c-1".into(),
        callee: IdentityKey::new("a", "alice").into(),
        caller: Caller {
            id: "bob".into(),
            display_name: String::new(),
        },
        video: false,
        ring_timeout: Duration::from_secs(45),
    };
    // The first append makes the group (the stream is new).
    let entry = shard
        .append("a", "e-1", encode_ring(&call, 1))
        .await
        .unwrap();
    assert_eq!(entry.stream, 0);
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{{{name}:intake:0}}");
    let unread: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("node-b")
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(unread, redis::Value::Nil, "nothing new for another node");
    let owners: Vec<Vec<redis::Value>> = redis::cmd("XPENDING")
        .arg(&key)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        owners[0][1],
        redis::Value::BulkString(b"node-a".to_vec()),
        "pending on the node that appended"
    );
    shard.ack(&entry, EntryOutcome::Acked).await;
    assert_eq!(pending(&name).await, 0);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
}
