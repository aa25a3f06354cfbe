//! The app's channel hosts against the simulator over real TLS: one access token for every
//! host, however many hosts ask for it at once.

use super::*;
use crate::config::Secret;
use crate::providers::oauth::{AccessTokenCache, DEFAULT_REFRESH_STALE_AFTER};
use crate::providers::pool::tls::client_config;
use crate::providers::service::PushService;
use crate::providers::wns::auth::WnsCredential;
use crate::providers::wns::config::LEGACY_SCOPE;
use crate::push::CallPayload;
use crate::registry::PushAddress;
use crate::simulator::{Simulator, SimulatorConfig, wns::WnsApp};
use crate::vocab::{Environment, IdentityKey, PushKind};
use futures_util::future::join_all;

const PACKAGE_SID: &str = "ms-app://s-1-15-2-hosts";
const SECRET: &str = "hosts-secret";

fn push(channel: &str) -> Push {
    let now = crate::clock::now_millis();
    Push {
        event_id: Arc::from("e1"),
        kind: PushKind::IncomingCall,
        accepted_at: now,
        deadline: now + 10_000,
        who: IdentityKey::new("t", "alice"),
        device_id: "desktop".into(),
        app: "windows".into(),
        address: PushAddress::Wns {
            channel: channel.into(),
        },
        environment: Environment::Production,
        payload: Arc::new(CallPayload {
            v: 1,
            kind: PushKind::IncomingCall,
            call_id: "c1".into(),
            caller_id: "bob".into(),
            caller_name: "Bob".into(),
            video: false,
            reason: None,
            expires_at: "2027-01-15T08:00:45.000Z".into(),
        }),
    }
}

#[tokio::test]
async fn every_channel_host_of_an_app_shares_one_access_token_fetch() {
    let sim = Simulator::start(SimulatorConfig {
        wns_apps: vec![WnsApp {
            package_sid: PACKAGE_SID.into(),
            client_secret: SECRET.into(),
        }],
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let tls = client_config(Some(&ca)).unwrap();
    let config = WnsConfig {
        token_url: sim.wns_token_url(),
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
    let hosts = WnsHosts::start(&config, account, tls, None).unwrap();
    // Three origins, as three channel hosts would be: the simulator under two names and its
    // HTTP/1.1 listener.
    let port = sim.address().port();
    let origins = [
        sim.base_url(),
        format!("https://localhost:{port}"),
        sim.http1_base_url(),
    ];
    let clients: Vec<WnsClient> = origins
        .iter()
        .map(|origin| hosts.start(origin).unwrap())
        .collect();

    // Every host asks for the token at once, before any has one.
    let channel = "https://db5p.notify.windows.com/w/?token=AwYAAAB1";
    let pushes: Vec<Push> = clients.iter().map(|_| push(channel)).collect();
    let now = crate::clock::now_millis();
    let prepared = join_all(
        clients
            .iter()
            .zip(&pushes)
            .map(|(client, push)| client.prepare(push, now)),
    )
    .await;

    let mut authorizations = Vec::new();
    for (prepared, origin) in prepared.into_iter().zip(&origins) {
        let Ok(prepared) = prepared else {
            panic!("no request for {origin}");
        };
        assert_eq!(
            prepared.request.uri().to_string(),
            format!("{origin}/w/?token=AwYAAAB1"),
            "each host's client posts to its own origin"
        );
        authorizations.push(prepared.request.headers()["authorization"].clone());
    }
    assert!(
        authorizations.iter().all(|a| *a == authorizations[0]),
        "one token for every host"
    );
    assert_eq!(
        sim.stats().oauth_tokens_issued,
        1,
        "one token request for the app, not one per host"
    );
}
