//! The internal push channel across two real nodes over one Redis (docs/architecture.md, "The
//! internal push channel" → "Across nodes"): a WebSocket client connected to node A hears a
//! ring routed on node B, its ack spares the platform push, a call-ended notice from B
//! reaches it too, and so does a revocation through B (the client is closed with 4003); once
//! A is killed, its presence lapses and B's rings go to the platform push.

use super::{Backend, KEY_A, Node, PushService, shared_redis, support, token, unique};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Presence short enough that a killed node's lapses within the test.
const PRESENCE_TTL_MS: u64 = 1_000;

/// The channel settings of these nodes: heartbeats every 200 ms renew presence; a generous
/// ack wait, for a loaded test machine.
fn channel_toml() -> String {
    format!(
        "\n[channel]\nping_interval_ms = 200\nidle_timeout_ms = 5000\n\
         presence_ttl_ms = {PRESENCE_TTL_MS}\nack_timeout_ms = 2000\n"
    )
}

/// A channel client of `identity`'s `device` on `node` (server key + `identity=`) that acks
/// every ring; every frame it reads comes out of the receiver.
async fn acking_client(
    node: &Node,
    identity: &str,
    device: &str,
) -> mpsc::UnboundedReceiver<Value> {
    let url = format!(
        "{}/v1/channel?device_id={device}&identity={identity}",
        node.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {KEY_A}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (frames, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(close) = &message {
                let code = close.as_ref().map(|close| u16::from(close.code));
                let _ = frames.send(json!({"type": "closed", "code": code}));
                break;
            }
            let Message::Text(text) = message else {
                continue; // pings are answered by tungstenite itself
            };
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["type"] == "incoming_call" {
                let ack = json!({"type": "ack", "event_id": frame["event_id"]});
                if socket
                    .send(Message::Text(ack.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            if frames.send(frame).is_err() {
                break;
            }
        }
    });
    received
}

/// The next frame of type `kind` the client read, within 10 s.
async fn frame_of(frames: &mut mpsc::UnboundedReceiver<Value>, kind: &str) -> Value {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(until, frames.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame within 10 s"))
            .expect("the client is connected");
        if frame["type"] == kind {
            return frame;
        }
    }
}

/// The devices presence shows for `identity` of tenant `a` now.
async fn present(redis: &Backend, identity: &str) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut command = redis::cmd("ZRANGEBYSCORE");
    command
        .arg(format!("{{a:{identity}}}:channel"))
        .arg(format!("({now}"))
        .arg("+inf");
    match redis {
        Backend::Redis(url) => {
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            command.query_async(&mut connection).await.unwrap()
        }
        Backend::Cluster(urls) => {
            let client = redis::cluster::ClusterClient::new(urls.clone()).unwrap();
            let mut connection = client.get_async_connection().await.unwrap();
            command.query_async(&mut connection).await.unwrap()
        }
        Backend::Sentinel(..) => unreachable!("the channel tests run on one server or a cluster"),
    }
}

/// Waits until presence for `identity` satisfies `done`.
async fn wait_presence(
    redis: &Backend,
    identity: &str,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let members = present(redis, identity).await;
        if done(&members) {
            return;
        }
        assert!(Instant::now() < until, "presence never {what}: {members:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(outcome, platform)` of `device` in a `?wait=true` answer.
fn outcome_of(answer: &Value, device: &str) -> (String, Value) {
    let found = answer["outcomes"]
        .as_array()
        .unwrap_or_else(|| panic!("no outcomes in {answer}"))
        .iter()
        .find(|outcome| outcome["device_id"] == device)
        .unwrap_or_else(|| panic!("no outcome for {device} in {answer}"));
    (
        found["outcome"].as_str().unwrap().to_owned(),
        found["platform"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_on_one_node_reaches_a_client_on_another_until_that_node_dies() {
    across_two_nodes(&shared_redis().await).await;
}

/// The same over a Redis Cluster: presence on the identity's slot, the relay's publishes
/// reaching the other node's subscription through any cluster node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_redis_cluster_a_ring_reaches_a_client_on_another_node() {
    let cluster = support::redis_cluster::RedisCluster::start(3).await;
    across_two_nodes(&Backend::Cluster(cluster.urls())).await;
}

async fn across_two_nodes(redis: &Backend) {
    let push = PushService::start(0).await;
    // Node ids name the pub/sub channels: unique, so concurrent runs never hear each other.
    let (name_a, name_b) = (unique("chan-a"), unique("chan-b"));
    let mut a = Node::start_configured(&name_a, redis, &push, 5, 16, &channel_toml());
    let b = Node::start_configured(&name_b, redis, &push, 5, 16, &channel_toml());
    let callee = unique("roaming");
    let phone = token(0x4c);
    b.register(&callee, "phone", &phone).await;

    let mut frames = acking_client(&a, &callee, "phone").await;
    let member = format!("{name_a} phone 0");
    wait_presence(redis, &callee, "showed the device on a", |members| {
        members.contains(&member)
    })
    .await;

    // Routed on b, the ring reaches the client on a; its ack spares the platform push.
    let call = unique("call");
    let (status, _, answer) = b.ring(&callee, &call, true).await;
    assert_eq!(status, 200, "{answer}");
    let ring = frame_of(&mut frames, "incoming_call").await;
    assert_eq!(ring["call_id"], call.as_str(), "{ring}");
    assert_eq!(
        outcome_of(&answer, "phone").0,
        "delivered_internal",
        "{answer}"
    );
    assert_eq!(
        push.pushes_to(&phone),
        0,
        "no platform push for an acked ring"
    );
    assert_eq!(push.sim.stats().requests, 0, "the push service saw nothing");

    // The end of the call, routed on b, reaches the client on a too.
    let (status, answer) = b.end(&callee, &call).await;
    assert_eq!(status, 202, "{answer}");
    let ended = frame_of(&mut frames, "call_ended").await;
    assert_eq!(ended["call_id"], call.as_str(), "{ended}");

    // Revoked through b: the client on a is closed too (4003), and its presence goes.
    let revoked = b
        .client
        .delete(format!("{}/v1/identities/{callee}", b.base))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let closed = frame_of(&mut frames, "closed").await;
    assert_eq!(closed["code"], 4003, "{closed}");
    wait_presence(redis, &callee, "went with the connection", |members| {
        members.is_empty()
    })
    .await;

    // Registered and connected to a again, then a dies: nothing renews its presence, which
    // lapses; b's rings then go to the platform push at once.
    b.register(&callee, "phone", &phone).await;
    let _frames = acking_client(&a, &callee, "phone").await;
    wait_presence(redis, &callee, "showed the device on a again", |members| {
        members.contains(&member)
    })
    .await;
    a.signal("-KILL");
    a.exited(Duration::from_secs(5)).await;
    wait_presence(redis, &callee, "lapsed", <[std::string::String]>::is_empty).await;
    let (status, _, answer) = b.ring(&callee, &unique("call"), true).await;
    assert_eq!(status, 200, "{answer}");
    let (outcome, platform) = outcome_of(&answer, "phone");
    assert_eq!(
        (outcome.as_str(), platform),
        ("delivered", json!("apns")),
        "{answer}"
    );
    assert_eq!(push.rung(&phone, Duration::from_secs(5)).await, 1);
}
