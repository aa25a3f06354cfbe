//! The WNS provider alone, one dispatcher per channel host: a host that accepts connections
//! and never answers does not hold up a push to another host.

use crate::support::black_hole::black_hole;
use actix::Actor;
use ringcast::clock::{now_millis, rfc3339};
use ringcast::config::Secret;
use ringcast::providers::dispatcher::Submit;
use ringcast::providers::live::Live;
use ringcast::providers::oauth::{AccessTokenCache, DEFAULT_REFRESH_STALE_AFTER};
use ringcast::providers::origins::{OriginService, OriginSettings, OriginsProvider};
use ringcast::providers::pool::OriginError;
use ringcast::providers::pool::tls::client_config;
use ringcast::providers::wns::auth::WnsCredential;
use ringcast::providers::wns::client::{WnsAccount, WnsClient};
use ringcast::providers::wns::config::{LEGACY_SCOPE, WnsConfig};
use ringcast::providers::wns::origins::WnsHosts;
use ringcast::push::{CallPayload, Outcome, Push, PushKind};
use ringcast::registry::{Environment, IdentityKey, PushAddress};
use ringcast::simulator::wns::WnsApp;
use ringcast::simulator::{Simulator, SimulatorConfig};
use std::sync::Arc;
use std::time::Duration;

const PACKAGE_SID: &str = "ms-app://s-1-15-2-hosts";
const SECRET: &str = "hosts-secret";

/// The channel host this test sends to the black hole.
const DEAD_HOST: &str = "https://dead.notify.windows.com";

/// WNS's channel hosts placed as a resolver would place them: [`DEAD_HOST`] at a black
/// hole, every other host at the simulator (a test cannot make Microsoft's names resolve
/// here, and `channel_base_url` sends every host to one origin). Everything else is the
/// real provider's.
struct Placed {
    hosts: WnsHosts,
    dead: String,
    alive: String,
}

impl OriginService for Placed {
    type Client = WnsClient;
    const UNUSABLE: &'static str = WnsHosts::UNUSABLE;

    fn settings(&self) -> OriginSettings {
        self.hosts.settings()
    }

    fn origin_of(&self, push: &Push) -> Result<String, &'static str> {
        let host = self.hosts.origin_of(push)?;
        Ok(if host == DEAD_HOST {
            self.dead.clone()
        } else {
            self.alive.clone()
        })
    }

    fn start(&self, origin: &str) -> Result<WnsClient, OriginError> {
        self.hosts.start(origin)
    }
}

fn push(call: &str, device: &str, channel: &str) -> Push {
    let now = now_millis();
    let deadline = now + 30_000;
    Push {
        event_id: Arc::from(format!("{call}:ring")),
        kind: PushKind::IncomingCall,
        accepted_at: now,
        deadline,
        who: IdentityKey::new("demo", "alice"),
        device_id: device.into(),
        app: "windows".into(),
        address: PushAddress::Wns {
            channel: channel.into(),
        },
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

#[actix_rt::test]
async fn a_black_holed_channel_host_does_not_hold_up_a_push_to_a_healthy_one() {
    let sim = Simulator::start(SimulatorConfig {
        wns_apps: vec![WnsApp {
            package_sid: PACKAGE_SID.into(),
            client_secret: SECRET.into(),
        }],
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    // One delivery at a time per host: were the hosts sharing one dispatcher, the push
    // waiting on the black hole would hold the only slot.
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
    let hosts = WnsHosts::start(&config, account, client_config(Some(&ca)).unwrap(), None).unwrap();
    let provider = OriginsProvider::new(Placed {
        hosts,
        dead: format!("https://{}", black_hole().await),
        alive: sim.push_base_url(),
    })
    .start();
    let stuck = push("c1", "d1", &format!("{DEAD_HOST}/w/?token=AwYAAAB1"));
    let healthy = push(
        "c2",
        "d2",
        "https://db5p.notify.windows.com/w/?token=AwYAAAB2",
    );

    let mut tickets = provider.send(Submit(vec![stuck, healthy])).await.unwrap();
    let healthy = tickets
        .pop()
        .unwrap()
        .unwrap_or_else(|_| panic!("queue refused"));
    let mut stuck = tickets
        .pop()
        .unwrap()
        .unwrap_or_else(|_| panic!("queue refused"));

    assert_eq!(healthy.await.unwrap(), Outcome::Delivered);
    assert_eq!(sim.records()[0].device_token, "/w/?token=AwYAAAB2");
    assert!(
        matches!(
            stuck.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ),
        "the black-holed push is still waiting: the healthy one did not wait for it"
    );
}
