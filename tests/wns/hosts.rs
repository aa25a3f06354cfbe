//! The WNS provider alone against the simulator over real TLS, one dispatcher per channel
//! host: a host that accepts connections and never answers does not hold up a push to
//! another host, and every host of an app shares the app's one access token.

use crate::support::black_hole::{assert_not_held_up, black_hole};
use actix::{Actor, Addr};
use futures_util::future::join_all;
use ringcast::clock::{now_millis, rfc3339};
use ringcast::config::Secret;
use ringcast::providers::dispatcher::{Status, Submit};
use ringcast::providers::live::Live;
use ringcast::providers::oauth::{AccessTokenCache, DEFAULT_REFRESH_STALE_AFTER};
use ringcast::providers::origins::{OriginService, OriginSettings, OriginsProvider};
use ringcast::providers::pause::SharedPause;
use ringcast::providers::pool::OriginError;
use ringcast::providers::pool::tls::client_config;
use ringcast::providers::wns::auth::WnsCredential;
use ringcast::providers::wns::client::{WnsAccount, WnsClient};
use ringcast::providers::wns::config::{LEGACY_SCOPE, WnsConfig};
use ringcast::providers::wns::origins::WnsHosts;
use ringcast::push::{CallPayload, Outcome, Push, PushKind};
use ringcast::registry::{Environment, IdentityKey, PushAddress};
use ringcast::simulator::profile::Throttle;
use ringcast::simulator::wns::WnsApp;
use ringcast::simulator::{Profile, RunningSimulator, Simulator, SimulatorConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const PACKAGE_SID: &str = "ms-app://s-1-15-2-hosts";
const SECRET: &str = "hosts-secret";

/// WNS's channel hosts placed as a resolver would place them: each named host at the
/// address this test gives it (a test cannot make Microsoft's names resolve here, and
/// `channel_base_url` sends every host to one origin). Everything else is the real
/// provider's.
struct Placed {
    hosts: WnsHosts,
    /// Channel origin (`https://<host>.notify.windows.com`) → where it is.
    places: HashMap<String, String>,
}

impl OriginService for Placed {
    type Client = WnsClient;
    const UNUSABLE: &'static str = WnsHosts::UNUSABLE;

    fn settings(&self) -> OriginSettings {
        self.hosts.settings()
    }

    fn origin_of(&self, push: &Push) -> Result<String, &'static str> {
        let host = self.hosts.origin_of(push)?;
        self.places.get(&host).cloned().ok_or("unplaced_host")
    }

    fn start(&self, origin: &str) -> Result<WnsClient, OriginError> {
        self.hosts.start(origin)
    }
}

/// The channel of device `token` on `host` (`db5p`, ...).
fn channel(host: &str, token: &str) -> String {
    format!("https://{host}.notify.windows.com/w/?token={token}")
}

fn push(call: &str, channel: String) -> Push {
    let now = now_millis();
    let deadline = now + 30_000;
    Push {
        event_id: Arc::from(format!("{call}:ring")),
        kind: PushKind::IncomingCall,
        accepted_at: now,
        deadline,
        who: IdentityKey::new("demo", "alice").into(),
        device_id: call.into(),
        app: "windows".into(),
        address: PushAddress::Wns { channel },
        environment: Environment::Production,
        payload: Arc::new(CallPayload {
            v: 1,
            kind: PushKind::IncomingCall,
            call_id: call.into(),
            caller_id: "bob".into(),
            caller_name: "Bob".into(),
            video: false,
            reason: None,
            expires_at: rfc3339(deadline),
        }),
    }
}

/// A simulator that knows the app, and the app's WNS provider with its channel hosts
/// (`host` → address, each `https://host:port`) placed by `places`, one delivery at a time
/// per host.
async fn rig(
    places: impl FnOnce(&RunningSimulator) -> Vec<(&'static str, String)>,
) -> (RunningSimulator, Addr<OriginsProvider<Placed>>) {
    let (sim, provider, _) = rig_with(Profile::default(), places).await;
    (sim, provider)
}

/// [`rig`] with the simulator scripted by `profile`, and the app's throttle pause.
async fn rig_with(
    profile: Profile,
    places: impl FnOnce(&RunningSimulator) -> Vec<(&'static str, String)>,
) -> (RunningSimulator, Addr<OriginsProvider<Placed>>, SharedPause) {
    let sim = Simulator::start(SimulatorConfig {
        wns_apps: vec![WnsApp {
            package_sid: PACKAGE_SID.into(),
            client_secret: SECRET.into(),
        }],
        profile,
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let config = WnsConfig {
        token_url: sim.wns_token_url(),
        max_in_flight: 1,
        ..WnsConfig::default()
    };
    let account = Live::new(WnsAccount {
        grant: WnsCredential {
            client_id: PACKAGE_SID.into(),
            client_secret: Secret::new(SECRET),
            token_url: sim.wns_token_url(),
            scope: LEGACY_SCOPE.into(),
        },
        cache: AccessTokenCache::new(Duration::from_secs(300), DEFAULT_REFRESH_STALE_AFTER),
    });
    let tls = client_config(Some(&ca)).unwrap();
    let pause = SharedPause::default();
    let hosts = WnsHosts::start(&config, account, pause.clone(), tls, None).unwrap();
    let places = places(&sim)
        .into_iter()
        .map(|(host, address)| (format!("https://{host}.notify.windows.com"), address))
        .collect();
    let provider = OriginsProvider::new(Placed { hosts, places }).start();
    (sim, provider, pause)
}

/// Both of the simulator's names, as two channel hosts.
fn two_hosts(sim: &RunningSimulator) -> Vec<(&'static str, String)> {
    let port = sim.address().port();
    vec![
        ("db5p", sim.base_url()),
        ("bn3p", format!("https://localhost:{port}")),
    ]
}

#[actix_rt::test]
async fn a_throttle_pauses_every_channel_host_of_the_app_then_both_ring() {
    // Only the first notification is throttled (406, Retry-After 1 s).
    let throttle: Throttle = serde_json::from_value(serde_json::json!({"every": 1000, "length": 1,
            "retry_after_seconds": 1}))
    .unwrap();
    let profile = Profile {
        throttle: Some(throttle),
        ..Profile::default()
    };
    let (sim, provider, pause) = rig_with(profile, two_hosts).await;
    let first = provider
        .send(Submit(vec![push("c1", channel("db5p", "AwYAAAB1"))]))
        .await
        .unwrap();
    let mut paused_until = None;
    for _ in 0..500 {
        paused_until = pause.until();
        if paused_until.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let paused_until = paused_until.expect("the first notification was never throttled");
    // A ring to a channel on the other host, during the app's pause.
    let second = provider
        .send(Submit(vec![push("c2", channel("bn3p", "AwYAAAB2"))]))
        .await
        .unwrap();
    // Watched for the whole pause: the throttled request stays the only one.
    while now_millis() + 50 < paused_until {
        assert_eq!(sim.stats().requests, 1, "nothing is sent during the pause");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut outcomes = Vec::new();
    for ticket in first.into_iter().chain(second) {
        outcomes.push(
            ticket
                .unwrap_or_else(|_| panic!("queue refused"))
                .await
                .unwrap(),
        );
    }
    assert_eq!(outcomes, vec![Outcome::Delivered; 2]);
    assert_eq!(sim.stats().requests, 3);
}

#[actix_rt::test]
async fn a_black_holed_channel_host_does_not_hold_up_a_push_to_a_healthy_one() {
    let hole = format!("https://{}", black_hole().await);
    // One delivery at a time per host: were the hosts sharing one dispatcher, the push
    // waiting on the black hole would hold the only slot.
    let (sim, provider) = rig(|sim| vec![("dead", hole), ("db5p", sim.push_base_url())]).await;
    let stuck = push("c1", channel("dead", "AwYAAAB1"));
    let healthy = push("c2", channel("db5p", "AwYAAAB2"));

    assert_not_held_up(&provider.recipient(), stuck, healthy).await;

    assert_eq!(sim.records()[0].device_token, "/w/?token=AwYAAAB2");
}

#[actix_rt::test]
async fn every_channel_host_of_an_app_shares_one_access_token() {
    // Two hosts, two origins: the simulator under both names its certificate has.
    let (sim, provider) = rig(two_hosts).await;
    let pushes = ["db5p", "bn3p", "db5p", "bn3p"]
        .iter()
        .enumerate()
        .map(|(n, host)| push(&format!("c{n}"), channel(host, &format!("AwYAAAB{n}"))))
        .collect();

    // Every host asks for the token at once, before any has one.
    let tickets = provider.send(Submit(pushes)).await.unwrap();
    let outcomes = join_all(tickets.into_iter().map(|ticket| async {
        let ticket = ticket.unwrap_or_else(|_| panic!("queue refused"));
        ticket.await.unwrap()
    }))
    .await;

    assert_eq!(outcomes, vec![Outcome::Delivered; 4]);
    assert_eq!(
        sim.stats().oauth_tokens_issued,
        1,
        "one token request for the app, not one per host"
    );
    let status = provider.send(Status).await.unwrap();
    assert_eq!(status.finished.get("delivered"), Some(&4));
    assert!(
        status.pool.open >= 2,
        "the status sums both hosts' pools: {:?}",
        status.pool
    );
}
