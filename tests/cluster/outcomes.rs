//! The outcome stream (`[outcomes] stream = true`; README "Outcome stream"), with a real
//! node: every device's outcome lands on the tenant's stream, named by fingerprint, never by
//! token.

use super::{Node, PushService, shared_redis, token, unique};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_devices_outcome_is_on_the_tenants_stream_without_its_token() {
    let redis = shared_redis().await;
    let name = unique("outcomes");
    let push = PushService::start(50).await;
    let extra = format!("\n[outcomes]\nstream = true\nname = \"{name}\"\n");
    let a = Node::start_configured("node-a", &redis, &push, 5, 1, &extra);
    let (callee, call) = (unique("outcome-callee"), unique("call"));
    let (phone, tablet) = (token(0x71), token(0x72));
    a.register(&callee, "phone", &phone).await;
    a.register(&callee, "tablet", &tablet).await;
    let (status, _, answer) = a.ring(&callee, &call, true).await;
    assert_eq!(status, 200, "{answer}");

    let url = match super::shared_redis().await {
        super::Backend::Redis(url) => url,
        super::Backend::Cluster(_) | super::Backend::Sentinel(..) => unreachable!("one server"),
    };
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{{{name}:outcomes:a}}");
    let until = Instant::now() + Duration::from_secs(5);
    let entries = loop {
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut connection)
            .await
            .unwrap();
        if entries.len() >= 2 {
            break entries;
        }
        assert!(
            Instant::now() < until,
            "{} outcomes on the stream",
            entries.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(entries.len(), 2, "one per device");
    let mut devices: Vec<&str> = entries
        .iter()
        .map(|(_, fields)| fields["device"].as_str())
        .collect();
    devices.sort_unstable();
    let mut expected = [
        ringcast::logging::fingerprint("phone"),
        ringcast::logging::fingerprint("tablet"),
    ];
    expected.sort_unstable();
    assert_eq!(devices, expected);
    for (_, fields) in &entries {
        assert_eq!(fields["event_id"], call);
        assert_eq!(fields["call_id"], call);
        assert_eq!(fields["kind"], "incoming_call");
        assert_eq!(fields["platform"], "apns");
        assert_eq!(fields["outcome"], "delivered");
        assert!(fields["at"].parse::<u64>().is_ok());
        for value in fields.values() {
            assert!(
                !value.contains(&phone) && !value.contains(&tablet),
                "a token leaked"
            );
        }
    }
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
}
