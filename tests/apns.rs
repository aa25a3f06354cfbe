//! The APNs provider end to end: the dispatcher, the delivery loop and the connection pool
//! against the simulator over real TLS + HTTP/2, as a ring would travel.

#[allow(dead_code)] // the harness module is shared; this binary uses only `eventually`
#[path = "support/eventually.rs"]
mod eventually;

use actix::{Actor, Addr};
use eventually::{eventually, until};
use ringcast::clock::{now_millis, rfc3339};
use ringcast::providers::apns::auth::ProviderTokenCache;
use ringcast::providers::apns::client::ApnsClient;
use ringcast::providers::apns::config::ApnsConfig;
use ringcast::providers::dispatcher::{
    Dispatcher, DispatcherSettings, DispatcherStatus, Status, Submit,
};
use ringcast::providers::pool::Http2Client;
use ringcast::providers::pool::tls::client_config;
use ringcast::providers::retry::RetrySettings;
use ringcast::push::{CallPayload, EndReason, Outcome, Push, PushKind};
use ringcast::registry::embedded::EmbeddedStore;
use ringcast::registry::{
    AnyStore, Environment, IdentityKey, Platform, PushAddress, Registration, Store, UnixMillis,
};
use ringcast::simulator::apns::{TokenKind, device_token};
use ringcast::simulator::profile::InjectedError;
use ringcast::simulator::{ApnsCredential, Profile, RunningSimulator, Simulator, SimulatorConfig};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const TEAM: &str = "TEAM123456";
const KID: &str = "KEY1234567";
const BUNDLE: &str = "com.example.ringcast";
/// A token the simulator's profile lists as unregistered (410).
const GONE: [u8; 32] = [0xff; 32];

struct Harness {
    sim: RunningSimulator,
    provider: Addr<Dispatcher<ApnsClient>>,
    store: AnyStore,
    _dir: tempfile::TempDir,
}

/// A simulator with `profile` that knows the team key, and a dispatcher for one app's
/// production pushes pointed at it.
async fn harness(profile: Profile, config: ApnsConfig) -> Harness {
    harness_for(profile, config, BUNDLE).await
}

/// [`harness`] for an app configured with `bundle_id` (a wrong one, in a test).
async fn harness_for(profile: Profile, config: ApnsConfig, bundle_id: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert_out = dir.path().join("simulator.pem");
    let sim = Simulator::start(SimulatorConfig {
        apns_keys: vec![ApnsCredential {
            team_id: TEAM.into(),
            key_id: KID.into(),
            public_key_pem: pair.public_key_pem(),
        }],
        profile,
        cert_out: Some(cert_out.clone()),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let config = ApnsConfig {
        production_url: sim.base_url(),
        sandbox_url: sim.apns_sandbox_url(),
        trusted_roots: Some(cert_out.clone()),
        ..config
    };
    let tokens = ProviderTokenCache::new(
        TEAM,
        KID,
        pair.serialize_pem().as_bytes(),
        config.jwt_refresh_age(),
    )
    .unwrap();
    let tls = client_config(config.trusted_roots.as_deref()).unwrap();
    let client =
        ApnsClient::start(&config, Environment::Production, bundle_id, tokens, tls).unwrap();
    let store = AnyStore::Embedded(EmbeddedStore::open(dir.path().join("r.redb"), 32).unwrap());
    let provider = Dispatcher::new(
        client,
        DispatcherSettings {
            queues: config.queues.clone(),
            max_in_flight: config.max_in_flight,
            retry: config.retry.clone(),
            cleanup: Some(store.clone()),
            platform: Platform::Apns,
        },
    )
    .start();
    Harness {
        sim,
        provider,
        store,
        _dir: dir,
    }
}

fn token(n: usize) -> Vec<u8> {
    let mut token = vec![0xa0; 32];
    token[..8].copy_from_slice(&(n as u64).to_be_bytes());
    token
}

/// The regular (alert) token of the phone whose PushKit token is `token`: by the
/// simulator's rule (`ringcast::simulator::apns`), a token whose second byte is 0xa1.
fn alert_of(token: &[u8]) -> Vec<u8> {
    let mut alert = token.to_vec();
    alert[1] = 0xa1;
    alert
}

/// A push to the phone whose PushKit token is `token` and which registered its regular
/// token too.
fn push(kind: PushKind, call: &str, device: &str, token: Vec<u8>, deadline_ms: u64) -> Push {
    let alert_token = Some(alert_of(&token));
    push_to(
        kind,
        call,
        device,
        PushAddress::Apns { token, alert_token },
        deadline_ms,
    )
}

fn push_to(
    kind: PushKind,
    call: &str,
    device: &str,
    address: PushAddress,
    deadline_ms: u64,
) -> Push {
    let now = now_millis();
    let deadline = now + deadline_ms;
    Push {
        event_id: Arc::from(format!("{call}:{kind:?}")),
        kind,
        accepted_at: now,
        deadline,
        who: IdentityKey::new("demo", "alice").into(),
        device_id: device.into(),
        app: "ios".into(),
        address,
        environment: Environment::Production,
        payload: Arc::new(CallPayload {
            v: 1,
            kind,
            call_id: call.into(),
            caller_id: "bob".into(),
            caller_name: "Bob".into(),
            video: false,
            reason: (kind != PushKind::IncomingCall).then_some(EndReason::Cancelled),
            expires_at: rfc3339(deadline),
        }),
    }
}

fn ring(n: usize) -> Push {
    push(
        PushKind::IncomingCall,
        &format!("call-{n}"),
        &format!("phone-{n}"),
        token(n),
        45_000,
    )
}

/// Submits every push and waits for every outcome.
async fn outcomes(provider: &Addr<Dispatcher<ApnsClient>>, pushes: Vec<Push>) -> Vec<Outcome> {
    let tickets = provider.send(Submit(pushes)).await.unwrap();
    let mut outcomes = Vec::new();
    for ticket in tickets {
        let ticket = ticket.unwrap_or_else(|_| panic!("the queue refused a push"));
        outcomes.push(ticket.await.unwrap());
    }
    outcomes
}

async fn status(provider: &Addr<Dispatcher<ApnsClient>>) -> DispatcherStatus {
    provider.send(Status).await.unwrap()
}

fn errors(status: u16, reason: &str, rate: f64) -> Vec<InjectedError> {
    vec![
        serde_json::from_value(
            serde_json::json!({"status": status, "reason": reason, "rate": rate}),
        )
        .unwrap(),
    ]
}

/// Retries that come fast, so tests do not wait on backoff.
fn quick_retries() -> RetrySettings {
    RetrySettings {
        base_delay_ms: 5,
        max_delay_ms: 20,
        ..RetrySettings::default()
    }
}

#[actix_rt::test]
async fn each_push_kind_arrives_with_apples_headers_and_the_design_payload() {
    each_push_kind_arrives(Http2Client::Ringcast).await;
}

/// The request the provider lays out reaches the `h2` client as an `http::Request`: the same
/// headers arrive.
#[actix_rt::test]
async fn each_push_kind_arrives_the_same_over_the_h2_client() {
    each_push_kind_arrives(Http2Client::H2).await;
}

async fn each_push_kind_arrives(http2_client: Http2Client) {
    let config = ApnsConfig {
        http2_client,
        ..ApnsConfig::default()
    };
    let h = harness(Profile::default(), config).await;
    let pushes = vec![
        push(PushKind::IncomingCall, "c1", "p1", token(1), 45_000),
        push(PushKind::CallEnded, "c1", "p1", token(1), 60_000),
        push(PushKind::MissedCall, "c1", "p1", token(1), 86_400_000),
    ];
    let deadlines: Vec<UnixMillis> = pushes.iter().map(|p| p.deadline).collect();
    assert_eq!(
        outcomes(&h.provider, pushes).await,
        vec![Outcome::Delivered; 3]
    );
    let records = h.sim.records();
    let by_type: Vec<_> = records
        .iter()
        .map(|r| (r.push_type.as_str(), r.topic.as_str(), r.priority))
        .collect();
    assert!(by_type.contains(&("voip", "com.example.ringcast.voip", 10)));
    assert!(by_type.contains(&("alert", "com.example.ringcast", 10)));
    assert!(by_type.contains(&("alert", "com.example.ringcast", 5)));
    for record in &records {
        // Rings to the PushKit token, notices to the regular one.
        let to = if record.push_type == "voip" {
            token(1)
        } else {
            alert_of(&token(1))
        };
        assert_eq!(record.device_token, hex::encode(to));
        assert_eq!(record.collapse_id.as_deref(), Some("c1"));
        // apns-expiration is the push's own deadline, in seconds.
        let deadline = match (record.push_type.as_str(), record.priority) {
            ("voip", _) => deadlines[0],
            (_, 10) => deadlines[1],
            _ => deadlines[2],
        };
        assert_eq!(record.expiration, Some(deadline / 1000));
        let payload = &record.payload["ringcast"];
        assert_eq!(payload["v"], 1);
        assert_eq!(payload["call_id"], "c1");
        assert_eq!(payload["caller_name"], "Bob");
    }
    let voip = records.iter().find(|r| r.push_type == "voip").unwrap();
    assert_eq!(voip.payload["ringcast"]["type"], "incoming_call");
    assert!(
        voip.payload["aps"]
            .as_object()
            .is_some_and(serde_json::Map::is_empty)
    );
}

#[actix_rt::test]
async fn a_dispatcher_nobody_holds_answers_its_pushes_and_then_stops() {
    let Harness {
        provider,
        sim: _sim,
        store: _store,
        _dir,
    } = harness(Profile::default(), ApnsConfig::default()).await;
    assert_eq!(
        outcomes(&provider, vec![ring(1)]).await,
        [Outcome::Delivered]
    );
    // Its provider lets it go with a push in flight (a Web Push origin evicted or idle).
    let tickets = provider.send(Submit(vec![ring(2)])).await.unwrap();
    let stopped = provider.downgrade();
    drop(provider);
    for ticket in tickets {
        let ticket = ticket.unwrap_or_else(|_| panic!("the queue refused a push"));
        assert_eq!(ticket.await.unwrap(), Outcome::Delivered, "still answered");
    }
    // Then it stops, and its connections close with it: a never-ending task inside it
    // would keep it, and every origin it ever served, alive.
    until("the dispatcher to stop", || stopped.upgrade().is_none()).await;
}

#[actix_rt::test]
async fn each_reason_class_becomes_its_outcome() {
    // (status, reason, outcome, requests): BadDeviceToken is tried on the other environment
    // once, which (scripted here) refuses it too.
    let cases = [
        (400, "BadTopic", "misconfigured", 1),
        (400, "DeviceTokenNotForTopic", "misconfigured", 1),
        (400, "TopicDisallowed", "misconfigured", 1),
        (400, "BadDeviceToken", "dead_token", 2),
        (403, "InvalidProviderToken", "credential_problem", 1),
        (413, "PayloadTooLarge", "rejected", 1),
        (404, "BadPath", "rejected", 1),
    ];
    for (status, reason, label, requests) in cases {
        let h = harness(
            Profile {
                errors: errors(status, reason, 1.0),
                ..Profile::default()
            },
            ApnsConfig::default(),
        )
        .await;
        let outcome = outcomes(&h.provider, vec![ring(1)]).await.remove(0);
        assert_eq!(outcome.label(), label, "{status} {reason}: {outcome:?}");
        assert_eq!(outcome.reason(), Some(reason));
        // Permanent answers are never retried.
        assert_eq!(h.sim.stats().requests, requests, "{reason}");
    }
}

/// A registration of `device` for alice holding `address`, registered at `updated_at`.
fn registration_of(device: &str, address: PushAddress, updated_at: UnixMillis) -> Registration {
    Registration {
        device_id: device.into(),
        app: "ios".into(),
        address,
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: updated_at,
        updated_at,
        expires_at: updated_at + 86_400_000,
    }
}

#[actix_rt::test]
async fn a_sandbox_token_registered_as_production_is_delivered_and_its_registration_moved() {
    let h = harness(Profile::default(), ApnsConfig::default()).await;
    let who = IdentityKey::new("demo", "alice");
    let debug_build = device_token(TokenKind::Voip, Environment::Sandbox, 1);
    let address = PushAddress::Apns {
        token: debug_build.clone(),
        alert_token: None,
    };
    h.store
        .register(
            &who,
            &registration_of("debug-phone", address.clone(), now_millis() - 1000),
        )
        .await
        .unwrap();
    let ring = push_to(PushKind::IncomingCall, "c1", "debug-phone", address, 45_000);
    let outcome = outcomes(&h.provider, vec![ring]).await.remove(0);
    assert_eq!(outcome, Outcome::Delivered);
    // Production refused it (BadDeviceToken), the sandbox took it.
    let stats = h.sim.stats();
    assert_eq!((stats.requests, stats.accepted), (2, 1), "{stats:?}");
    assert_eq!(h.sim.records()[0].device_token, hex::encode(&debug_build));
    // The registration now says sandbox, so the next push goes there first.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let listed = h.store.list(&who, now_millis()).await.unwrap();
        assert_eq!(listed.len(), 1, "never deleted");
        if listed[0].environment == Environment::Sandbox {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never moved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_key_restricted_to_production_cannot_reach_a_sandbox_token_and_is_a_credential_problem() {
    let h = harness(
        Profile {
            apns_key_environments: [(KID.to_owned(), Environment::Production)].into(),
            ..Profile::default()
        },
        ApnsConfig::default(),
    )
    .await;
    let who = IdentityKey::new("demo", "alice");
    let address = PushAddress::Apns {
        token: device_token(TokenKind::Voip, Environment::Sandbox, 1),
        alert_token: None,
    };
    let registration = registration_of("debug-phone", address.clone(), now_millis() - 1000);
    h.store.register(&who, &registration).await.unwrap();
    let ring = push_to(PushKind::IncomingCall, "c1", "debug-phone", address, 45_000);
    // Production: BadDeviceToken; the sandbox, which might take the token, refuses the key.
    let outcome = outcomes(&h.provider, vec![ring]).await.remove(0);
    assert_eq!(
        outcome,
        Outcome::CredentialProblem {
            reason: "BadEnvironmentKeyInToken".into()
        }
    );
    // A credential problem, alerted on, never a dead token: nothing is deleted.
    assert_eq!(h.sim.stats().requests, 2, "once per environment");
}

#[actix_rt::test]
async fn a_token_both_environments_refuse_is_dead_and_deleted() {
    let h = harness(
        Profile {
            errors: errors(400, "BadDeviceToken", 1.0),
            ..Profile::default()
        },
        ApnsConfig::default(),
    )
    .await;
    let who = IdentityKey::new("demo", "alice");
    let address = PushAddress::Apns {
        token: token(5),
        alert_token: None,
    };
    h.store
        .register(
            &who,
            &registration_of("phone-5", address, now_millis() - 1000),
        )
        .await
        .unwrap();
    let outcome = outcomes(&h.provider, vec![ring(5)]).await.remove(0);
    assert!(
        matches!(&outcome, Outcome::DeadToken { reason, .. } if reason == "BadDeviceToken"),
        "{outcome:?}"
    );
    assert_eq!(h.sim.stats().requests, 2, "once per environment");
    wait_for_devices(&h.store, &who, 0).await;
}

#[actix_rt::test]
async fn a_wrong_bundle_id_is_misconfigured_and_deletes_nothing() {
    let h = harness_for(
        Profile {
            apns_bundle_ids: vec![BUNDLE.into()],
            ..Profile::default()
        },
        ApnsConfig::default(),
        "com.example.wrong",
    )
    .await;
    let who = IdentityKey::new("demo", "alice");
    for n in 1..=3 {
        let address = PushAddress::Apns {
            token: token(n),
            alert_token: Some(alert_of(&token(n))),
        };
        let device = format!("phone-{n}");
        h.store
            .register(
                &who,
                &registration_of(&device, address, now_millis() - 1000),
            )
            .await
            .unwrap();
    }
    let pushes = (1..=3)
        .flat_map(|n| {
            [
                ring(n),
                push(
                    PushKind::CallEnded,
                    &format!("call-{n}"),
                    &format!("phone-{n}"),
                    token(n),
                    60_000,
                ),
            ]
        })
        .collect();
    for outcome in outcomes(&h.provider, pushes).await {
        assert_eq!(
            outcome,
            Outcome::Misconfigured {
                reason: "DeviceTokenNotForTopic".into()
            }
        );
    }
    // A second round: the first round's outcomes were all given (and would have been
    // cleaned up) before it.
    let again = outcomes(&h.provider, vec![ring(1)]).await;
    assert_eq!(again[0].label(), "misconfigured");
    assert_eq!(h.store.list(&who, now_millis()).await.unwrap().len(), 3);
}

#[actix_rt::test]
async fn a_notice_to_a_voip_only_registration_is_not_sent_and_says_so() {
    let h = harness(Profile::default(), ApnsConfig::default()).await;
    let voip_only = PushAddress::Apns {
        token: token(7),
        alert_token: None,
    };
    let pushes = vec![
        push_to(PushKind::CallEnded, "c7", "p7", voip_only.clone(), 60_000),
        push_to(PushKind::MissedCall, "c7", "p7", voip_only, 86_400_000),
    ];
    assert_eq!(
        outcomes(&h.provider, pushes).await,
        vec![Outcome::NoAlertToken; 2]
    );
    assert_eq!(h.sim.stats().requests, 0, "nothing went to the VoIP token");
}

#[actix_rt::test]
async fn a_410_deletes_the_registration_unless_it_was_registered_after_the_verdict() {
    let h = harness(
        Profile {
            unregistered_tokens: vec![hex::encode(GONE)],
            ..Profile::default()
        },
        ApnsConfig::default(),
    )
    .await;
    let who = IdentityKey::new("demo", "alice");
    let now = now_millis();
    let registration = |device: &str, updated_at: UnixMillis| Registration {
        device_id: device.into(),
        app: "ios".into(),
        address: PushAddress::Apns {
            token: GONE.to_vec(),
            alert_token: None,
        },
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: updated_at,
        updated_at,
        expires_at: updated_at + 86_400_000,
    };
    // Registered before the verdict: Apple's word stands.
    h.store
        .register(&who, &registration("old-phone", now - 60_000))
        .await
        .unwrap();
    let outcome = outcomes(
        &h.provider,
        vec![push(
            PushKind::IncomingCall,
            "c1",
            "old-phone",
            GONE.to_vec(),
            45_000,
        )],
    )
    .await
    .remove(0);
    assert!(
        matches!(&outcome, Outcome::DeadToken { reason, .. } if reason == "Unregistered"),
        "{outcome:?}"
    );
    let gone = wait_for_devices(&h.store, &who, 0).await;
    assert!(gone.is_empty());

    // Registered again after the verdict (the app reinstalled): the registration stays.
    h.store
        .register(&who, &registration("old-phone", now_millis() + 60_000))
        .await
        .unwrap();
    let outcome = outcomes(
        &h.provider,
        vec![push(
            PushKind::IncomingCall,
            "c2",
            "old-phone",
            GONE.to_vec(),
            45_000,
        )],
    )
    .await
    .remove(0);
    assert_eq!(outcome.label(), "dead_token");
    // The cleanup runs after the outcome and a kept registration leaves no trace to wait
    // for, so this is a grace window: on a slow machine it can only miss a late wrong
    // delete (the first half of this test catches a cleanup that never runs), never fail
    // by chance.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kept = h.store.list(&who, now_millis()).await.unwrap();
    assert_eq!(kept.len(), 1);
}

/// The identity's device count once it reaches `count` (cleanup runs after the outcome).
async fn wait_for_devices(store: &AnyStore, who: &IdentityKey, count: usize) -> Vec<Registration> {
    for _ in 0..200 {
        let devices = store.list(who, now_millis()).await.unwrap();
        if devices.len() == count {
            return devices;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the registration count never became {count}");
}

#[actix_rt::test]
async fn one_provider_token_serves_every_connection_and_is_refreshed_once_when_expired() {
    let config = ApnsConfig {
        connections: 3,
        ..ApnsConfig::default()
    };
    let h = harness(Profile::default(), config.clone()).await;
    let all = outcomes(&h.provider, (0..60).map(ring).collect()).await;
    assert!(all.iter().all(|o| o == &Outcome::Delivered), "{all:?}");
    let stats = h.sim.stats();
    // Three connections, one token: no connection ever saw a token update (that would be
    // 429 TooManyProviderTokenUpdates) and nothing was refused.
    assert!(stats.connections >= 2, "{stats:?}");
    assert_eq!(stats.accepted, 60, "{stats:?}");

    // APNs says the token expired: one refresh, one re-send, then a credential problem
    // (the cache will not re-mint within 20 minutes, and a push refreshes at most once).
    let h = harness(
        Profile {
            errors: errors(403, "ExpiredProviderToken", 1.0),
            ..Profile::default()
        },
        config,
    )
    .await;
    let outcome = outcomes(&h.provider, vec![ring(1)]).await.remove(0);
    assert_eq!(
        outcome,
        Outcome::CredentialProblem {
            reason: "ExpiredProviderToken".into()
        }
    );
    assert_eq!(h.sim.stats().requests, 2);
}

#[actix_rt::test]
async fn goaway_and_resets_mid_burst_lose_no_push_and_duplicate_only_lost_answers() {
    let h = harness(
        Profile {
            goaway_after_streams: Some(25),
            reset_rate: 0.01,
            latency_min_ms: 1,
            latency_max_ms: 5,
            ..Profile::default()
        },
        ApnsConfig {
            retry: RetrySettings {
                budget_percent: 100,
                ..quick_retries()
            },
            // A reset loses every stream of its connection; keep that to a handful.
            max_in_flight: 16,
            ..ApnsConfig::default()
        },
    )
    .await;
    let all = outcomes(&h.provider, (0..300).map(ring).collect()).await;
    assert_eq!(all.len(), 300, "every push has an outcome");
    // A reset drops every stream of its connection at once; a push whose answer was lost is
    // retried, and is reported as rejected only when the retry budget says no.
    for outcome in &all {
        match outcome {
            Outcome::Delivered => {}
            Outcome::Rejected { reason } => assert!(
                reason.contains("connection_lost") || reason.contains("stream_reset"),
                "{reason}"
            ),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let delivered = all.iter().filter(|o| **o == Outcome::Delivered).count();
    assert!(delivered >= 200, "only {delivered} delivered");
    let status = status(&h.provider).await;
    let stats = h.sim.stats();
    assert!(stats.goaways >= 2, "{stats:?}");
    assert!(stats.resets >= 1, "{stats:?}");
    // A push reached the device twice only where its first answer was truly lost, and every
    // such re-send was counted.
    let records = h.sim.records();
    let unique: HashSet<_> = records.iter().map(|r| r.apns_id.clone()).collect();
    let duplicates = records.len() - unique.len();
    assert!(
        duplicates as u64 <= status.resent_after_loss,
        "{duplicates} duplicates, {} counted re-sends",
        status.resent_after_loss
    );
    // Every delivered push reached the simulator (some rejected ones did too: their answer
    // was lost and the budget refused a retry).
    assert!(unique.len() >= delivered);
}

#[actix_rt::test]
async fn the_advertised_stream_limit_is_never_exceeded() {
    let h = harness(
        Profile {
            max_concurrent_streams: 5,
            latency_min_ms: 5,
            latency_max_ms: 15,
            ..Profile::default()
        },
        ApnsConfig::default(),
    )
    .await;
    let all = outcomes(&h.provider, (0..150).map(ring).collect()).await;
    assert!(all.iter().all(|o| o == &Outcome::Delivered));
    let stats = h.sim.stats();
    assert!(stats.max_streams_in_flight <= 5, "{stats:?}");
    assert_eq!(stats.stream_limit_violations, 0);
}

#[actix_rt::test]
async fn a_503_storm_stays_within_the_retry_budget() {
    let retry = RetrySettings {
        max_retries: 5,
        budget_percent: 10,
        budget_min_retries: 10,
        budget_window_seconds: 60,
        ..quick_retries()
    };
    let h = harness(
        Profile {
            errors: errors(503, "ServiceUnavailable", 1.0),
            ..Profile::default()
        },
        ApnsConfig {
            retry,
            ..ApnsConfig::default()
        },
    )
    .await;
    let all = outcomes(&h.provider, (0..100).map(ring).collect()).await;
    assert!(all.iter().all(|o| o.label() == "rejected"), "{all:?}");
    let stats = h.sim.stats();
    // 100 first sends may bring at most 10 + 10 % of 100 = 20 retries within the window.
    assert!(stats.requests <= 120, "{stats:?}");
    let status = status(&h.provider).await;
    assert!(status.budget_refusals >= 80, "{status:?}");
    assert!(all.iter().any(
        |o| matches!(o, Outcome::Rejected { reason } if reason.starts_with("retry_budget_exhausted"))
    ));
}

#[actix_rt::test]
async fn a_deadline_that_passes_during_backoff_expires_the_push_unsent() {
    let h = harness(
        Profile {
            errors: errors(503, "ServiceUnavailable", 1.0),
            ..Profile::default()
        },
        ApnsConfig {
            retry: RetrySettings {
                base_delay_ms: 200,
                max_delay_ms: 200,
                max_retries: 1000,
                budget_percent: 100,
                budget_min_retries: 100_000,
                ..RetrySettings::default()
            },
            ..ApnsConfig::default()
        },
    )
    .await;
    let short = push(PushKind::IncomingCall, "c1", "p1", token(1), 600);
    let deadline = short.deadline;
    let outcome = outcomes(&h.provider, vec![short]).await.remove(0);
    assert_eq!(outcome, Outcome::Expired);
    // The node stops waiting at the deadline, so a try sent just before it may still be
    // answered after the outcome: count what arrived, once every arrival is answered, rather
    // than answers read at once (which such a late answer would change).
    let sent = eventually("every try that arrived answered", || {
        let stats = h.sim.stats();
        std::future::ready((stats.requests == stats.received).then_some(stats.received))
    })
    .await;
    assert!(sent >= 1);
    // Nothing goes out after the deadline: absence after a proven end, so a grace window
    // (one backoff and more) rather than a condition to wait for.
    let wait = deadline.saturating_sub(now_millis()) + 300;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(h.sim.stats().received, sent);
}

#[actix_rt::test]
async fn an_oversized_push_is_refused_locally_and_never_sent() {
    let h = harness(Profile::default(), ApnsConfig::default()).await;
    let mut big = ring(1);
    let mut payload = (*big.payload).clone();
    payload.caller_name = "x".repeat(6000);
    big.payload = Arc::new(payload);
    let outcome = outcomes(&h.provider, vec![big]).await.remove(0);
    assert_eq!(
        outcome,
        Outcome::Rejected {
            reason: "payload_too_large".into()
        }
    );
    assert_eq!(h.sim.stats().requests, 0);
}

#[actix_rt::test]
async fn a_429_burst_is_backed_off_and_every_push_still_delivered() {
    let throttle: ringcast::simulator::profile::Throttle =
        serde_json::from_value(serde_json::json!({"every": 10, "length": 3})).unwrap();
    let h = harness(
        Profile {
            throttle: Some(throttle),
            ..Profile::default()
        },
        ApnsConfig {
            retry: RetrySettings {
                budget_percent: 100,
                max_retries: 10,
                ..quick_retries()
            },
            ..ApnsConfig::default()
        },
    )
    .await;
    let all = outcomes(&h.provider, (0..40).map(ring).collect()).await;
    assert!(all.iter().all(|o| o == &Outcome::Delivered), "{all:?}");
    let stats = h.sim.stats();
    assert!(stats.by_status["429 TooManyRequests"] >= 3, "{stats:?}");
    assert_eq!(stats.accepted, 40);
    let status = status(&h.provider).await;
    assert!(status.retries >= 3, "{status:?}");
}
