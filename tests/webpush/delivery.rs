//! The Web Push provider end to end: the router-facing provider, one dispatcher per origin,
//! the delivery loop and the guarded pool against the simulator over TLS + HTTP/2, with the
//! simulator decrypting every body as the browser would.

use crate::support::black_hole::{assert_not_held_up, black_hole};
use crate::support::eventually::until;
use actix::{Actor, Addr};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ringcast::clock::{now_millis, rfc3339};
use ringcast::providers::dispatcher::{DispatcherStatus, Status, Submit};
use ringcast::providers::pool::guard::AddressGuard;
use ringcast::providers::pool::tls::client_config;
use ringcast::providers::retry::RetrySettings;
use ringcast::providers::webpush::auth::VapidSigner;
use ringcast::providers::webpush::client::EndpointPolicy;
use ringcast::providers::webpush::config::WebPushProviderConfig;
use ringcast::providers::webpush::origins::{ADDRESS_REFUSED, WebPushApp, WebPushProvider};
use ringcast::providers::webpush::payload::topic;
use ringcast::push::{CallPayload, EndReason, Outcome, Push, PushKind};
use ringcast::registry::embedded::EmbeddedStore;
use ringcast::registry::{AnyStore, Environment, IdentityKey, PushAddress, Registration, Store};
use ringcast::simulator::profile::Throttle;
use ringcast::simulator::webpush::NewSubscription;
use ringcast::simulator::{Profile, RunningSimulator, Simulator, SimulatorConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Harness {
    sim: RunningSimulator,
    provider: Addr<WebPushProvider>,
    signer: VapidSigner,
    store: AnyStore,
    _dir: tempfile::TempDir,
}

fn vapid_signer() -> VapidSigner {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    VapidSigner::new(
        pair.serialize_pem().as_bytes(),
        "mailto:ops@example.com",
        Duration::from_secs(12 * 3600),
    )
    .unwrap()
}

/// A simulator with `profile`, and a Web Push provider for one app pointed at it.
/// `extra_hosts` extend the host allowlist (`{port}` stands for the simulator's port; its
/// `127.0.0.1:<port>` is always on it); `allow_sim` gives the test allowance for the
/// simulator's exact address.
async fn harness(profile: Profile, extra_hosts: &[&str], allow_sim: bool) -> Harness {
    harness_with(profile, extra_hosts, allow_sim, |_| {}).await
}

/// [`harness`] with the provider settings tuned by `tune`.
async fn harness_with(
    profile: Profile,
    extra_hosts: &[&str],
    allow_sim: bool,
    tune: impl FnOnce(&mut WebPushProviderConfig),
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let cert_out = dir.path().join("simulator.pem");
    let sim = Simulator::start(SimulatorConfig {
        profile,
        cert_out: Some(cert_out.clone()),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let address = sim.address();
    let mut config = WebPushProviderConfig {
        trusted_roots: Some(cert_out),
        connect_timeout_ms: 1_000,
        retry: RetrySettings {
            base_delay_ms: 5,
            max_delay_ms: 20,
            ..RetrySettings::default()
        },
        ..WebPushProviderConfig::default()
    };
    tune(&mut config);
    let mut hosts = vec![address.to_string()];
    let port = address.port().to_string();
    hosts.extend(extra_hosts.iter().map(|h| h.replace("{port}", &port)));
    // The simulator's address, any port: a test's other listeners (a black hole) share it.
    let allowed: Vec<String> = if allow_sim {
        vec![address.ip().to_string()]
    } else {
        Vec::new()
    };
    let store = AnyStore::Embedded(EmbeddedStore::open(dir.path().join("r.redb"), 32).unwrap());
    let signer = vapid_signer();
    let provider = WebPushProvider::new(WebPushApp {
        tls: client_config(config.trusted_roots.as_deref()).unwrap(),
        config,
        policy: EndpointPolicy {
            allowed_hosts: hosts.into(),
            guard: AddressGuard::new(&allowed).unwrap(),
        },
        signer: signer.clone().into(),
        cleanup: Some(store.clone()),
    })
    .start();
    Harness {
        sim,
        provider,
        signer,
        store,
        _dir: dir,
    }
}

fn decode<const N: usize>(text: &str) -> [u8; N] {
    URL_SAFE_NO_PAD.decode(text).unwrap().try_into().unwrap()
}

fn address(subscription: &NewSubscription) -> PushAddress {
    PushAddress::WebPush {
        endpoint: subscription.endpoint.clone(),
        p256dh: decode(&subscription.p256dh),
        auth: decode(&subscription.auth),
    }
}

fn push(kind: PushKind, call: &str, device: &str, address: PushAddress, deadline_ms: u64) -> Push {
    let now = now_millis();
    let deadline = now + deadline_ms;
    Push {
        event_id: Arc::from(format!("{call}:{kind:?}")),
        kind,
        accepted_at: now,
        deadline,
        who: IdentityKey::new("demo", "alice").into(),
        device_id: device.into(),
        app: "web".into(),
        address,
        environment: Environment::Production,
        payload: Arc::new(CallPayload {
            v: 1,
            kind,
            call_id: call.into(),
            caller_id: "bob".into(),
            caller_name: "Bob".into(),
            video: true,
            reason: (kind != PushKind::IncomingCall).then_some(EndReason::Cancelled),
            expires_at: rfc3339(deadline),
        }),
    }
}

/// Submits every push and waits for every outcome.
async fn outcomes(provider: &Addr<WebPushProvider>, pushes: Vec<Push>) -> Vec<Outcome> {
    let tickets = provider.send(Submit(pushes)).await.unwrap();
    let mut outcomes = Vec::new();
    for ticket in tickets {
        let ticket = ticket.unwrap_or_else(|_| panic!("the queue refused a push"));
        outcomes.push(ticket.await.unwrap());
    }
    outcomes
}

async fn status(provider: &Addr<WebPushProvider>) -> DispatcherStatus {
    provider.send(Status).await.unwrap()
}

#[actix_rt::test]
async fn a_ring_reaches_a_browser_encrypted_signed_and_with_ring_headers() {
    let h = harness(Profile::default(), &[], true).await;
    let subscription = h
        .sim
        .webpush_subscribe(Some(h.signer.public_key()))
        .unwrap();
    let ring = push(
        PushKind::IncomingCall,
        "call-7",
        "browser",
        address(&subscription),
        45_000,
    );
    let ended = push(
        PushKind::CallEnded,
        "call-7",
        "browser",
        address(&subscription),
        60_000,
    );
    let missed = push(
        PushKind::MissedCall,
        "call-7",
        "browser",
        address(&subscription),
        86_400_000,
    );
    let expected = ring.payload.clone();
    let all = outcomes(&h.provider, vec![ring]).await;
    assert_eq!(all, vec![Outcome::Delivered]);
    let all = outcomes(&h.provider, vec![ended, missed]).await;
    assert_eq!(all, vec![Outcome::Delivered, Outcome::Delivered]);

    let records = h.sim.records();
    assert_eq!(records.len(), 3, "{records:?}");
    let by_type = |t: &str| {
        records
            .iter()
            .find(|r| r.payload["type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {records:?}"))
    };
    let rung = by_type("incoming_call");
    assert_eq!(rung.service, "webpush");
    assert_eq!(rung.device_token, subscription.id);
    // What the browser decrypted is exactly the payload (docs/architecture.md, "What devices receive").
    assert_eq!(rung.payload, serde_json::to_value(&*expected).unwrap());
    assert_eq!(
        rung.payload,
        serde_json::json!({"v": 1, "type": "incoming_call", "call_id": "call-7",
            "caller_id": "bob", "caller_name": "Bob", "video": true,
            "expires_at": expected.expires_at})
    );
    assert_eq!(rung.push_type, "high", "Urgency");
    let ttl: u64 = rung.ttl.as_deref().unwrap().parse().unwrap();
    assert!((44..=45).contains(&ttl), "TTL from the deadline: {ttl}");
    // One topic per call: "call ended" replaces a ring still waiting in the push service.
    let ended = by_type("call_ended");
    assert_eq!(ended.payload["reason"], "cancelled");
    assert_eq!(ended.push_type, "high");
    assert_eq!(ended.collapse_id, rung.collapse_id);
    assert_eq!(rung.collapse_id.as_deref(), Some(topic("call-7").as_str()));
    assert_eq!(by_type("missed_call").push_type, "normal");
    let stats = h.sim.stats();
    assert_eq!((stats.connections, stats.requests), (1, 3), "{stats:?}");
}

#[actix_rt::test]
async fn a_subscription_made_for_another_vapid_key_refuses_ours() {
    let h = harness(Profile::default(), &[], true).await;
    let other = vapid_signer();
    let subscription = h.sim.webpush_subscribe(Some(other.public_key())).unwrap();
    let outcome = outcomes(
        &h.provider,
        vec![push(
            PushKind::IncomingCall,
            "c1",
            "browser",
            address(&subscription),
            45_000,
        )],
    )
    .await
    .remove(0);
    assert!(
        matches!(&outcome, Outcome::CredentialProblem { reason } if reason == "vapid_refused_403"),
        "{outcome:?}"
    );
    let stats = h.sim.stats();
    assert_eq!(
        stats.by_status.get("403 VapidKeyMismatch"),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.accepted, 0);
}

fn registration(device_id: &str, address: PushAddress) -> Registration {
    let now = now_millis();
    Registration {
        device_id: device_id.into(),
        app: "web".into(),
        address,
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: now,
        updated_at: now,
        expires_at: now + 3_600_000,
    }
}

#[actix_rt::test]
async fn gone_and_unknown_subscriptions_are_deleted_from_the_registry() {
    let profile = Profile {
        unregistered_tokens: vec!["unsubscribed".into()],
        ..Profile::default()
    };
    let h = harness(profile, &[], true).await;
    let who = IdentityKey::new("demo", "alice");
    // 410: the user unsubscribed; 404: a subscription the push service never heard of.
    let gone = address(&h.sim.webpush_subscribe_as("unsubscribed", None).unwrap());
    let kept = address(&h.sim.webpush_subscribe(None).unwrap());
    let mut unknown = kept.clone();
    if let PushAddress::WebPush { endpoint, .. } = &mut unknown {
        *endpoint = format!("{}/wp/never-subscribed", h.sim.base_url());
    }
    for (device, address) in [("gone", &gone), ("unknown", &unknown), ("kept", &kept)] {
        h.store
            .register(&who, &registration(device, address.clone()))
            .await
            .unwrap();
    }
    let all = outcomes(
        &h.provider,
        vec![
            push(PushKind::IncomingCall, "c1", "gone", gone, 45_000),
            push(PushKind::IncomingCall, "c1", "unknown", unknown, 45_000),
            push(PushKind::IncomingCall, "c1", "kept", kept, 45_000),
        ],
    )
    .await;
    assert!(
        matches!(&all[0], Outcome::DeadToken { reason, .. } if reason == "410"),
        "{all:?}"
    );
    assert!(
        matches!(&all[1], Outcome::DeadToken { reason, .. } if reason == "404"),
        "{all:?}"
    );
    assert_eq!(all[2], Outcome::Delivered);
    let left = wait_for_devices(&h.store, &who, 1).await;
    assert_eq!(left[0].device_id, "kept");
}

/// The identity's registrations once they number `count` (cleanup runs after the outcome).
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
async fn a_throttled_push_waits_for_retry_after_then_arrives() {
    let profile = Profile {
        throttle: Some(Throttle {
            every: 1_000,
            length: 1,
            retry_after_seconds: Some(1),
        }),
        ..Profile::default()
    };
    let h = harness(profile, &[], true).await;
    let subscription = h.sim.webpush_subscribe(None).unwrap();
    let started = Instant::now();
    let outcome = outcomes(
        &h.provider,
        vec![push(
            PushKind::IncomingCall,
            "c1",
            "browser",
            address(&subscription),
            45_000,
        )],
    )
    .await
    .remove(0);
    assert_eq!(outcome, Outcome::Delivered);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After is a floor: {:?}",
        started.elapsed()
    );
    let stats = h.sim.stats();
    assert_eq!(
        stats.by_status.get("429 TooManyRequests"),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.accepted, 1);
    assert_eq!(status(&h.provider).await.retries, 1);
}

#[actix_rt::test]
async fn ssrf_endpoints_never_get_a_request() {
    // Every internal host is on the *host* allowlist, so what stops them is the address
    // check (and, for http:// and off-allowlist hosts, the provider's own check before any
    // lookup). No test allowance: the simulator's own address too is refused. (The pool's
    // own connect-time check is tested in `pool::tests`.)
    let hosts = [
        "localhost:{port}",
        "[::1]:{port}",
        "10.0.0.1",
        "169.254.169.254",
        "[::ffff:127.0.0.1]:{port}",
    ];
    let h = harness(Profile::default(), &hosts, false).await;
    ringcast::metrics::install();
    let refused_before = refused_pushes_counted();
    let port = h.sim.address().port();
    let subscription = h.sim.webpush_subscribe(None).unwrap();
    let endpoints = [
        subscription.endpoint.clone(),
        format!("https://localhost:{port}/wp/{}", subscription.id),
        format!("https://[::1]:{port}/wp/{}", subscription.id),
        format!("https://[::ffff:127.0.0.1]:{port}/wp/{}", subscription.id),
        "https://10.0.0.1/wp/x".to_owned(),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://127.0.0.1:{port}/wp/{}", subscription.id),
        "https://push.evil.example/wp/x".to_owned(),
    ];
    let pushes = endpoints
        .iter()
        .enumerate()
        .map(|(n, endpoint)| {
            let mut address = address(&subscription);
            if let PushAddress::WebPush { endpoint: e, .. } = &mut address {
                *e = endpoint.clone();
            }
            push(
                PushKind::IncomingCall,
                &format!("c{n}"),
                &format!("d{n}"),
                address,
                1_500,
            )
        })
        .collect();
    let all = outcomes(&h.provider, pushes).await;
    for (endpoint, outcome) in endpoints.iter().zip(&all) {
        assert_ne!(outcome, &Outcome::Delivered, "{endpoint}");
        if endpoint.starts_with("http://") || endpoint.contains("evil") {
            assert!(
                matches!(outcome, Outcome::Rejected { reason } if reason == "endpoint_not_allowed"),
                "{endpoint}: {outcome:?}"
            );
        } else {
            // Resolved and refused before any pool existed: a clear outcome at once, not a
            // ring left to expire before a connection that is never allowed.
            assert!(
                matches!(outcome, Outcome::Rejected { reason } if reason == ADDRESS_REFUSED),
                "{endpoint}: {outcome:?}"
            );
        }
    }
    let stats = h.sim.stats();
    assert_eq!((stats.connections, stats.requests), (0, 0), "{stats:?}");
    // Refused before any origin's queue, and still counted like every other outcome (other
    // tests of this binary may count more meanwhile, never fewer).
    assert!(
        refused_pushes_counted() - refused_before >= endpoints.len() as f64,
        "every refusal in ringcast_pushes_total"
    );
}

/// `ringcast_pushes_total{provider="webpush",priority="p0",outcome="rejected"}` so far.
fn refused_pushes_counted() -> f64 {
    let series = r#"ringcast_pushes_total{provider="webpush",priority="p0",outcome="rejected"}"#;
    ringcast::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_rt::test]
async fn an_idle_origin_is_let_go_and_comes_back_on_the_next_push() {
    let h = harness_with(Profile::default(), &[], true, |config| {
        config.idle_origin_seconds = 1;
    })
    .await;
    let subscription = h.sim.webpush_subscribe(None).unwrap();
    let ring = |call: &str| {
        push(
            PushKind::IncomingCall,
            call,
            "browser",
            address(&subscription),
            45_000,
        )
    };
    assert_eq!(
        outcomes(&h.provider, vec![ring("c1")]).await,
        vec![Outcome::Delivered]
    );
    assert_eq!(status(&h.provider).await.pool.open, 1);
    // Swept within two sweep periods: no origin, no connection counted any more.
    let mut waited = Duration::ZERO;
    while status(&h.provider).await.pool.open != 0 {
        assert!(
            waited < Duration::from_secs(5),
            "the idle origin was never let go"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    assert_eq!(status(&h.provider).await, DispatcherStatus::default());
    assert_eq!(
        outcomes(&h.provider, vec![ring("c2")]).await,
        vec![Outcome::Delivered]
    );
    let stats = h.sim.stats();
    assert_eq!(
        (stats.connections, stats.accepted),
        (2, 2),
        "a fresh pool: {stats:?}"
    );
}

#[actix_rt::test]
async fn a_queued_ring_is_withdrawn_when_the_call_ends() {
    // Held answers and one stream per connection: the second ring waits in the queue.
    let profile = Profile {
        max_concurrent_streams: 1,
        ..Profile::default()
    };
    let h = harness(profile, &[], true).await;
    let held = h.sim.hold_answers();
    let first = h.sim.webpush_subscribe(None).unwrap();
    let second = h.sim.webpush_subscribe(None).unwrap();
    let tickets = h
        .provider
        .send(Submit(vec![
            push(PushKind::IncomingCall, "c1", "one", address(&first), 45_000),
            push(
                PushKind::IncomingCall,
                "c1",
                "two",
                address(&second),
                45_000,
            ),
        ]))
        .await
        .unwrap();
    // The withdrawal must find the first push on the wire and the second still queued: wait
    // for the first to arrive rather than guess how long that takes.
    until("the first push on the wire", || h.sim.stats().received >= 1).await;
    let withdrawn = h
        .provider
        .send(ringcast::providers::dispatcher::Withdraw {
            callee: IdentityKey::new("demo", "alice").into(),
            call_id: "c1".into(),
        })
        .await
        .unwrap();
    assert_eq!(withdrawn, vec!["two".to_owned()]);
    held.release();
    let mut all = Vec::new();
    for ticket in tickets {
        all.push(ticket.unwrap_or_else(|_| panic!("refused")).await.unwrap());
    }
    assert_eq!(all, vec![Outcome::Delivered, Outcome::Withdrawn]);
    assert_eq!(h.sim.stats().accepted, 1);
}

#[actix_rt::test]
async fn a_black_holed_origin_does_not_hold_up_a_push_to_a_healthy_one() {
    let hole = black_hole().await.to_string();
    // One delivery at a time per origin: were the origins sharing one dispatcher, the push
    // waiting on the black hole would hold the only slot.
    let h = harness_with(Profile::default(), &[hole.as_str()], true, |config| {
        config.max_in_flight = 1;
    })
    .await;
    let subscription = h.sim.webpush_subscribe(None).unwrap();
    let mut stuck_address = address(&subscription);
    if let PushAddress::WebPush { endpoint, .. } = &mut stuck_address {
        *endpoint = format!("https://{hole}/wp/{}", subscription.id);
    }
    let stuck = push(PushKind::IncomingCall, "c1", "d1", stuck_address, 30_000);
    let healthy = push(
        PushKind::IncomingCall,
        "c2",
        "d2",
        address(&subscription),
        30_000,
    );

    assert_not_held_up(&h.provider.clone().recipient(), stuck, healthy).await;
}
