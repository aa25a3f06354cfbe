//! The FCM provider end to end: the dispatcher, the delivery loop, the connection pools (to
//! FCM over HTTP/2, and to the OAuth token endpoint, which speaks only HTTP/1.1 as Google's
//! `token_uri` may) against the simulator over real TLS, as a ring to an Android phone would
//! travel.

use actix::{Actor, Addr};
use ringcast::clock::{now_millis, rfc3339};
use ringcast::providers::dispatcher::{Dispatcher, DispatcherSettings, Submit};
use ringcast::providers::fcm::auth::{
    AccessTokenCache, AssertionSigner, DEFAULT_REFRESH_STALE_AFTER, ServiceAccount,
};
use ringcast::providers::fcm::client::FcmClient;
use ringcast::providers::fcm::config::FcmConfig;
use ringcast::providers::pause::SharedPause;
use ringcast::providers::pool::tls::client_config;
use ringcast::providers::retry::RetrySettings;
use ringcast::push::{CallPayload, EndReason, Outcome, Push, PushKind};
use ringcast::registry::embedded::EmbeddedStore;
use ringcast::registry::{
    AnyStore, Environment, IdentityKey, Platform, PushAddress, Registration, Store, UnixMillis,
};
use ringcast::simulator::profile::{InjectedError, Service};
use ringcast::simulator::{
    FcmServiceAccount, Profile, RunningSimulator, Simulator, SimulatorConfig,
};
use std::sync::Arc;
use std::time::Duration;

/// The development service account (a throwaway key the simulator knows).
const ACCOUNT_JSON: &[u8] = include_bytes!("../config/dev/fcm-service-account.json");
/// Its Firebase project.
const PROJECT: &str = "ringcast-demo";
/// A registration token the simulator's profile lists as unregistered.
const GONE: &str = "gone:APA91b-unregistered";

struct Harness {
    sim: RunningSimulator,
    provider: Addr<Dispatcher<FcmClient>>,
    store: AnyStore,
    /// The project's quota pause, as the client sees it.
    pause: SharedPause,
    _dir: tempfile::TempDir,
}

/// A simulator with `profile` that knows the development service account and hands out
/// tokens living `token_lifetime`, and a dispatcher for one Android app pointed at it (FCM
/// and the token endpoint both).
async fn harness(profile: Profile, token_lifetime: Duration, config: FcmConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let cert_out = dir.path().join("simulator.pem");
    let sim = Simulator::start(SimulatorConfig {
        fcm_accounts: vec![FcmServiceAccount::from_service_account_json(ACCOUNT_JSON).unwrap()],
        fcm_token_lifetime: token_lifetime,
        profile,
        cert_out: Some(cert_out.clone()),
        record_in_memory: true,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let config = FcmConfig {
        base_url: sim.base_url(),
        trusted_roots: Some(cert_out),
        ..config
    };
    let mut account = ServiceAccount::from_json(ACCOUNT_JSON).unwrap();
    account.token_uri = sim.token_url();
    let signer = AssertionSigner::new(&account).unwrap();
    let tokens = AccessTokenCache::new(config.token_refresh_ahead(), DEFAULT_REFRESH_STALE_AFTER);
    let tls = client_config(config.trusted_roots.as_deref()).unwrap();
    let pause = SharedPause::default();
    let client = FcmClient::start(&config, PROJECT, signer, tokens, pause.clone(), tls).unwrap();
    let store = AnyStore::Embedded(EmbeddedStore::open(dir.path().join("r.redb"), 32).unwrap());
    let provider = Dispatcher::new(
        client,
        DispatcherSettings {
            queues: config.queues.clone(),
            max_in_flight: config.max_in_flight,
            retry: config.retry.clone(),
            cleanup: Some(store.clone()),
            platform: Platform::Fcm,
        },
    )
    .start();
    Harness {
        sim,
        provider,
        store,
        pause,
        _dir: dir,
    }
}

/// A harness with Google's hour-long tokens and default settings but `profile`.
async fn simple(profile: Profile) -> Harness {
    harness(profile, Duration::from_secs(3600), FcmConfig::default()).await
}

/// A harness with `profile` whose pushes are retried twice, quickly.
async fn retrying_twice(profile: Profile) -> Harness {
    let config = FcmConfig {
        retry: quick_retries(2),
        ..FcmConfig::default()
    };
    harness(profile, Duration::from_secs(3600), config).await
}

fn token(n: usize) -> String {
    format!("dGVzdA{n}:APA91bH-example")
}

fn push(kind: PushKind, call: &str, device: &str, token: &str, deadline_ms: u64) -> Push {
    let now = now_millis();
    let deadline = now + deadline_ms;
    Push {
        event_id: Arc::from(format!("{call}:{kind:?}")),
        kind,
        accepted_at: now,
        deadline,
        who: IdentityKey::new("demo", "alice").into(),
        device_id: device.into(),
        app: "android".into(),
        address: PushAddress::Fcm {
            token: token.into(),
        },
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
        &token(n),
        45_000,
    )
}

/// Submits every push and waits for every outcome.
async fn outcomes(provider: &Addr<Dispatcher<FcmClient>>, pushes: Vec<Push>) -> Vec<Outcome> {
    let tickets = provider.send(Submit(pushes)).await.unwrap();
    let mut outcomes = Vec::new();
    for ticket in tickets {
        let ticket = ticket.unwrap_or_else(|_| panic!("the queue refused a push"));
        outcomes.push(ticket.await.unwrap());
    }
    outcomes
}

/// An FCM error the simulator answers with probability `rate`.
fn fcm_error(status: u16, code: &str, rate: f64, retry_after: Option<u64>) -> InjectedError {
    InjectedError {
        service: Service::Fcm,
        status,
        reason: code.into(),
        rate,
        retry_after_seconds: retry_after,
    }
}

/// Retries that come fast, so tests do not wait on backoff, and that the budget never
/// refuses, so each test sees the attempts limit alone.
fn quick_retries(max_retries: u32) -> RetrySettings {
    RetrySettings {
        base_delay_ms: 5,
        max_delay_ms: 20,
        max_retries,
        budget_percent: 100,
        budget_min_retries: 1000,
        ..RetrySettings::default()
    }
}

#[actix_rt::test]
async fn each_push_kind_arrives_as_a_non_collapsible_data_message_with_its_priority_and_ttl() {
    let h = simple(Profile::default()).await;
    let pushes = vec![
        push(PushKind::IncomingCall, "c1", "p1", &token(1), 45_000),
        push(PushKind::CallEnded, "c1", "p1", &token(1), 60_000),
        push(PushKind::MissedCall, "c1", "p1", &token(1), 86_400_000),
    ];
    let deadlines: Vec<UnixMillis> = pushes.iter().map(|p| p.deadline).collect();
    assert_eq!(
        outcomes(&h.provider, pushes).await,
        vec![Outcome::Delivered; 3]
    );
    let records = h.sim.records();
    assert_eq!(records.len(), 3);
    for (kind, priority, deadline) in [
        ("incoming_call", "HIGH", deadlines[0]),
        ("call_ended", "HIGH", deadlines[1]),
        ("missed_call", "NORMAL", deadlines[2]),
    ] {
        let record = records
            .iter()
            .find(|r| r.payload["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} message"));
        assert_eq!(record.service, "fcm");
        assert_eq!(
            record.push_type, "data",
            "data-only: the app decides what to show"
        );
        assert_eq!(record.topic, PROJECT);
        assert_eq!(record.device_token, token(1));
        assert_eq!(record.android_priority.as_deref(), Some(priority), "{kind}");
        // No collapse key: FCM throttles collapsible messages per device (payload.rs).
        assert_eq!(record.collapse_id, None, "{kind}");
        // ttl is the time left to the deadline, whole seconds rounded down.
        let ttl: u64 = record
            .ttl
            .as_deref()
            .and_then(|ttl| ttl.strip_suffix('s'))
            .and_then(|ttl| ttl.parse().ok())
            .unwrap_or_else(|| panic!("{kind}: ttl {:?}", record.ttl));
        let left = (deadline - record.received_at_ms) / 1000;
        assert!(
            ttl <= left + 1 && ttl + 2 >= left,
            "{kind}: ttl {ttl}, left {left}"
        );
        // The payload (docs/architecture.md, "What devices receive"), every value a string, as FCM requires.
        let data = record.payload.as_object().unwrap();
        assert!(
            data.values().all(serde_json::value::Value::is_string),
            "{data:?}"
        );
        assert_eq!(data["v"], "1");
        assert_eq!(data["call_id"], "c1");
        assert_eq!(data["caller_id"], "bob");
        assert_eq!(data["caller_name"], "Bob");
        assert_eq!(data["video"], "false");
        assert_eq!(data["expires_at"], rfc3339(deadline).as_str());
        assert_eq!(data.contains_key("reason"), kind != "incoming_call");
    }
    // Three pushes, one access token.
    assert_eq!(h.sim.stats().oauth_tokens_issued, 1);
    // The token came over HTTP/1.1 (the simulator's token endpoint refuses HTTP/2), the
    // pushes over HTTP/2: only the token request reached the HTTP/1.1 listener.
    let transport = h.sim.transport_stats();
    assert_eq!(
        (transport.http1_requests, transport.misdirected),
        (1, 0),
        "{transport:?}"
    );
}

#[actix_rt::test]
async fn a_short_lived_token_is_refreshed_ahead_while_pushes_keep_going() {
    // Two-second tokens: the cache refreshes each at half its life, in the background.
    let h = harness(
        Profile::default(),
        Duration::from_secs(2),
        FcmConfig::default(),
    )
    .await;
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(3500) {
        let batch = (n..n + 5).map(ring).collect();
        let all = outcomes(&h.provider, batch).await;
        assert!(all.iter().all(|o| *o == Outcome::Delivered), "{all:?}");
        n += 5;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = h.sim.stats();
    // Every push had a valid token: not one 401.
    assert_eq!(stats.accepted, n as u64, "{stats:?}");
    assert!(
        stats.by_status.keys().all(|status| status == "200"),
        "{stats:?}"
    );
    // One refresh per half-life (about 1 s), not one per push nor one per connection.
    assert!(
        (3..=5).contains(&stats.oauth_tokens_issued),
        "{} tokens for {n} pushes",
        stats.oauth_tokens_issued
    );
}

#[actix_rt::test]
async fn a_burst_of_401s_for_one_token_refreshes_it_once_and_then_no_more() {
    // FCM refuses every token here, with some latency so that much of a burst is in flight
    // with the first token before its first 401 comes back.
    let h = simple(Profile {
        errors: vec![fcm_error(401, "UNAUTHENTICATED", 1.0, None)],
        latency_min_ms: 20,
        latency_max_ms: 20,
        ..Profile::default()
    })
    .await;
    let refused = Outcome::CredentialProblem {
        reason: "UNAUTHENTICATED".into(),
    };
    let all = outcomes(&h.provider, (0..20).map(ring).collect()).await;
    assert!(all.iter().all(|outcome| *outcome == refused), "{all:?}");
    let stats = h.sim.stats();
    // The first token, then one refresh for the burst of 401s, not one per push.
    assert_eq!(stats.oauth_tokens_issued, 2, "{stats:?}");
    // A push refused with the first token is re-sent once with the new one; a push refused
    // with the new one (sent after the refresh) is not re-sent at all.
    assert!((21..=40).contains(&stats.requests), "{stats:?}");

    // The new token is refused too, seconds after it was fetched: that is no expiry, so a
    // second burst refreshes nothing and re-sends nothing.
    let all = outcomes(&h.provider, (20..40).map(ring).collect()).await;
    assert!(all.iter().all(|outcome| *outcome == refused), "{all:?}");
    let after = h.sim.stats();
    assert_eq!(after.oauth_tokens_issued, 2, "{after:?}");
    assert_eq!(after.requests, stats.requests + 20, "{after:?}");
}

#[actix_rt::test]
async fn a_failing_token_endpoint_is_asked_once_a_second_not_once_per_push() {
    let h = simple(Profile {
        errors: vec![InjectedError {
            service: Service::Oauth,
            status: 503,
            reason: "temporarily_unavailable".into(),
            rate: 1.0,
            retry_after_seconds: None,
        }],
        ..Profile::default()
    })
    .await;
    let all = outcomes(&h.provider, (0..20).map(ring).collect()).await;
    assert!(
        all.iter().all(|o| o.label() == "credential_problem"),
        "{all:?}"
    );
    let stats = h.sim.stats();
    assert_eq!((stats.oauth_refusals, stats.requests), (1, 0), "{stats:?}");
    // A second later the next push that needs a token asks again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let outcome = outcomes(&h.provider, vec![ring(20)]).await.remove(0);
    assert_eq!(outcome.label(), "credential_problem");
    assert_eq!(h.sim.stats().oauth_refusals, 2);
}

#[actix_rt::test]
async fn each_fcm_error_code_becomes_its_outcome() {
    let cases = [
        (404, "UNREGISTERED", "dead_token", 1),
        (400, "INVALID_ARGUMENT", "rejected", 1),
        (403, "SENDER_ID_MISMATCH", "misconfigured", 1),
        (401, "THIRD_PARTY_AUTH_ERROR", "credential_problem", 1),
        // Transient: retried (two retries allowed here), then given up.
        (503, "UNAVAILABLE", "rejected", 3),
        (500, "INTERNAL", "rejected", 3),
    ];
    for (status, code, label, requests) in cases {
        let h = retrying_twice(Profile {
            errors: vec![fcm_error(status, code, 1.0, None)],
            ..Profile::default()
        })
        .await;
        let outcome = outcomes(&h.provider, vec![ring(1)]).await.remove(0);
        assert_eq!(outcome.label(), label, "{status} {code}: {outcome:?}");
        match &outcome {
            Outcome::Rejected { reason } if requests > 1 => {
                assert_eq!(reason, &format!("attempts_exhausted: {code}"));
            }
            Outcome::Rejected { reason }
            | Outcome::Misconfigured { reason }
            | Outcome::CredentialProblem { reason }
            | Outcome::DeadToken { reason, .. } => assert_eq!(reason, code),
            other => panic!("{other:?}"),
        }
        assert_eq!(h.sim.stats().requests, requests, "{code}");
    }
}

/// The first seed whose draws give, request after request, an error exactly where
/// `pattern` says (the simulator draws every request's script from one seeded generator).
fn seed_for(profile: &Profile, pattern: &[(Service, bool)]) -> u64 {
    (0..100_000)
        .find(|seed| {
            let mut rng = fastrand::Rng::with_seed(*seed);
            pattern.iter().all(|(service, error)| {
                profile.script(*service, &mut rng).error.is_some() == *error
            })
        })
        .expect("a seed with that pattern")
}

#[actix_rt::test]
async fn one_devices_rate_limit_holds_back_only_that_device() {
    // FCM's per-device limit, scaled down: one message a minute per token.
    let h = retrying_twice(Profile {
        fcm_device_messages_per_minute: 1,
        ..Profile::default()
    })
    .await;
    let busy =
        |call: &str, deadline_ms| push(PushKind::IncomingCall, call, "p1", &token(1), deadline_ms);
    assert_eq!(
        outcomes(&h.provider, vec![busy("c1", 45_000)]).await,
        [Outcome::Delivered]
    );
    // The same phone again within the minute: refused for its rate, retried, never sent.
    let refused = outcomes(&h.provider, vec![busy("c2", 2_000)]).await;
    assert_eq!(
        refused,
        [Outcome::Rejected {
            reason: "attempts_exhausted: QUOTA_EXCEEDED".into()
        }]
    );
    // Another phone of the project rings at once: the project was never paused.
    assert_eq!(h.pause.until(), None);
    assert_eq!(
        outcomes(&h.provider, vec![ring(2)]).await,
        [Outcome::Delivered]
    );
    assert!(h.sim.stats().by_status["429 QUOTA_EXCEEDED"] >= 2);
}

#[actix_rt::test]
async fn quota_exceeded_pauses_every_push_of_the_project_then_sending_resumes() {
    let mut profile = Profile {
        errors: vec![fcm_error(429, "QUOTA_EXCEEDED", 0.5, Some(1))],
        ..Profile::default()
    };
    // The token request, then the first push refused for quota, then the next ones accepted.
    profile.seed = seed_for(
        &profile,
        &[
            (Service::Oauth, false),
            (Service::Fcm, true),
            (Service::Fcm, false),
            (Service::Fcm, false),
            (Service::Fcm, false),
            (Service::Fcm, false),
        ],
    );
    let h = harness(
        profile,
        Duration::from_secs(3600),
        FcmConfig {
            quota_backoff_default_seconds: 1,
            retry: quick_retries(3),
            ..FcmConfig::default()
        },
    )
    .await;
    let first = h.provider.send(Submit(vec![ring(1)])).await.unwrap();
    // Wait for the client to take the 429 in: from then on the project is paused.
    let mut paused_until = None;
    for _ in 0..500 {
        paused_until = h.pause.until();
        if paused_until.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let paused_until = paused_until.expect("the first push was never refused");
    assert_eq!(h.sim.stats().by_status["429 QUOTA_EXCEEDED"], 1);
    // At least Retry-After (1 s) from the refusal.
    assert!(paused_until >= now_millis() + 900);
    // Another push of the project, and one whose deadline falls inside the pause.
    let second = h.provider.send(Submit(vec![ring(2)])).await.unwrap();
    let doomed = push(PushKind::IncomingCall, "c3", "p3", &token(3), 400);
    let third = h.provider.send(Submit(vec![doomed])).await.unwrap();
    // Watched for the whole pause rather than sampled after a fixed sleep: until shortly
    // before it ends, the refused request stays the only one.
    while now_millis() + 50 < paused_until {
        assert_eq!(
            h.sim.stats().requests,
            1,
            "nothing is sent during the pause"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut all = Vec::new();
    for ticket in first.into_iter().chain(second).chain(third) {
        all.push(ticket.unwrap_or_else(|_| panic!("refused")).await.unwrap());
    }
    assert_eq!(
        all,
        vec![Outcome::Delivered, Outcome::Delivered, Outcome::Expired]
    );
    let records = h.sim.records();
    assert_eq!(records.len(), 2);
    // Both went out only once the pause was over.
    for record in &records {
        assert!(
            record.received_at_ms >= paused_until,
            "sent {} ms before the pause ended",
            paused_until - record.received_at_ms
        );
    }
    // The expired push was never sent: the refused push's re-send and the second push only.
    assert_eq!(h.sim.stats().requests, 3);
}

#[actix_rt::test]
async fn unregistered_deletes_the_registration_unless_it_was_registered_after_the_verdict() {
    let h = simple(Profile {
        unregistered_tokens: vec![GONE.into()],
        ..Profile::default()
    })
    .await;
    let who = IdentityKey::new("demo", "alice");
    let now = now_millis();
    let registration = |device: &str, updated_at: UnixMillis| Registration {
        device_id: device.into(),
        app: "android".into(),
        address: PushAddress::Fcm { token: GONE.into() },
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: updated_at,
        updated_at,
        expires_at: updated_at + 86_400_000,
    };
    // Registered before the verdict: FCM's word stands.
    h.store
        .register(&who, &registration("old-phone", now - 60_000))
        .await
        .unwrap();
    let gone = push(PushKind::IncomingCall, "c1", "old-phone", GONE, 45_000);
    let outcome = outcomes(&h.provider, vec![gone]).await.remove(0);
    assert!(
        matches!(&outcome, Outcome::DeadToken { reason, .. } if reason == "UNREGISTERED"),
        "{outcome:?}"
    );
    wait_for_devices(&h.store, &who, 0).await;

    // Registered again after the verdict (the app reinstalled): the registration stays.
    h.store
        .register(&who, &registration("old-phone", now_millis() + 60_000))
        .await
        .unwrap();
    let again = push(PushKind::IncomingCall, "c2", "old-phone", GONE, 45_000);
    let outcome = outcomes(&h.provider, vec![again]).await.remove(0);
    assert_eq!(outcome.label(), "dead_token");
    // The cleanup runs after the outcome and a kept registration leaves no trace to wait
    // for, so this is a grace window: on a slow machine it can only miss a late wrong
    // delete (the first half of this test catches a cleanup that never runs), never fail
    // by chance.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.store.list(&who, now_millis()).await.unwrap().len(), 1);
}

/// The identity's devices once there are `count` (cleanup runs after the outcome).
async fn wait_for_devices(store: &AnyStore, who: &IdentityKey, count: usize) {
    for _ in 0..200 {
        if store.list(who, now_millis()).await.unwrap().len() == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the registration count never became {count}");
}

#[actix_rt::test]
async fn an_oversized_push_is_refused_locally_without_a_token_or_a_send() {
    let h = simple(Profile::default()).await;
    let mut big = ring(1);
    let mut payload = (*big.payload).clone();
    payload.caller_name = "x".repeat(5000);
    big.payload = Arc::new(payload);
    let outcome = outcomes(&h.provider, vec![big]).await.remove(0);
    assert_eq!(
        outcome,
        Outcome::Rejected {
            reason: "payload_too_large".into()
        }
    );
    let stats = h.sim.stats();
    assert_eq!((stats.requests, stats.oauth_tokens_issued), (0, 0));
}
