//! `[cluster] replica_acks` with a real node over a Redis master and its replica
//! (src/registry/redis/replicas.rs): an accepted durable ring is answered only once the
//! replica holds its entry, and a replica that is gone slows rings by the wait's timeout but
//! never stops them.

use super::{Backend, Node, PushService, token, unique};
use crate::support::eventually::{eventually, until};
use crate::support::redis_server::{RedisServer, free_port};
use std::time::{Duration, Instant};

/// A master and one replica that has finished its first sync.
async fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(
        free_port(),
        &[
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port().to_string(),
        ],
    );
    let client = redis::Client::open(replica.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let started = Instant::now();
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await
            .unwrap();
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replica never synced: {info}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (master, replica)
}

/// A durable node over `master` waiting for one replica at most `timeout_ms` per write.
fn waiting_node(name: &str, master: &RedisServer, push: &PushService, timeout_ms: &str) -> Node {
    let intake = format!(
        "\n[intake]\ndurable = true\nname = \"{}\"\nblock_ms = 200\n",
        unique("replicas")
    );
    Node::start_with_env(
        name,
        &Backend::Redis(master.url()),
        push,
        5,
        16,
        &intake,
        &[
            ("RINGCAST__CLUSTER__REPLICA_ACKS", "1"),
            ("RINGCAST__CLUSTER__REPLICA_ACK_TIMEOUT_MS", timeout_ms),
            ("RINGCAST__REGISTRY__REDIS__COMMAND_TIMEOUT_MS", "10000"),
        ],
    )
}

impl Node {
    /// `ringcast_replica_acks_total{write,outcome}` on this node.
    async fn replica_acks(&self, write: &str, outcome: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (write, outcome) = (
            format!(r#"write="{write}""#),
            format!(r#"outcome="{outcome}""#),
        );
        text.lines()
            .filter(|line| {
                line.starts_with("ringcast_replica_acks_total{")
                    && line.contains(&write)
                    && line.contains(&outcome)
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_ring_is_accepted_only_once_a_replica_holds_it() {
    let (master, replica) = master_and_replica().await;
    let push = PushService::start(0).await;
    let node = waiting_node("node-waits", &master, &push, "8000");
    let (callee, phone) = (unique("replicated-callee"), token(0x71));
    node.register(&callee, "phone", &phone).await;

    // A healthy replica: the ring is delivered, and every event write was confirmed.
    let (status, _, body) = node.ring(&callee, &unique("call"), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(push.rung(&phone, Duration::from_secs(10)).await, 1);
    for write in ["intake", "claim", "finish"] {
        // The finish is written after the outcomes are answered: wait for it.
        eventually(&format!("the {write} confirmed"), || async {
            (node.replica_acks(write, "confirmed").await >= 1.0).then_some(())
        })
        .await;
        assert_eq!(node.replica_acks(write, "short").await, 0.0, "{write}");
    }

    // A frozen replica cannot confirm: the node must not answer 202 until it can. Without the
    // wait the answer comes at once, long before the replica is thawed.
    replica.freeze();
    let ringing = {
        let (base, callee, call) = (node.base.clone(), callee.clone(), unique("call"));
        tokio::spawn(async move {
            let answer = reqwest::Client::new()
                .post(format!("{base}/v1/calls"))
                .bearer_auth(super::KEY_A)
                .json(&serde_json::json!({"call_id": call, "callee": callee,
                    "caller": {"id": "+15550100", "display_name": "Bob"}}))
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), Instant::now())
        })
    };
    let frozen_since = Instant::now();
    until(
        "the ring answered or a second passed with the replica frozen",
        || ringing.is_finished() || frozen_since.elapsed() > Duration::from_secs(1),
    )
    .await;
    let thawed_at = Instant::now();
    replica.thaw();
    let (status, answered_at) = ringing.await.unwrap();
    assert_eq!(status, 202);
    assert!(
        answered_at > thawed_at,
        "202 before the replica held the entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_still_rings_when_no_replica_confirms_and_the_wait_is_counted_short() {
    let (master, mut replica) = master_and_replica().await;
    let push = PushService::start(0).await;
    let node = waiting_node("node-short", &master, &push, "100");
    let (callee, phone) = (unique("unreplicated-callee"), token(0x72));
    node.register(&callee, "phone", &phone).await;
    replica.stop();

    let (status, _, body) = node.ring(&callee, &unique("call"), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(push.rung(&phone, Duration::from_secs(10)).await, 1);
    for write in ["intake", "claim", "finish"] {
        eventually(&format!("the {write} counted short"), || async {
            (node.replica_acks(write, "short").await >= 1.0).then_some(())
        })
        .await;
    }
}
