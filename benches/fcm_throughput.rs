//! End-to-end FCM throughput: pushes/s from ringcast's provider (dispatcher, delivery loop,
//! pool, shared access token) to the simulator, next to `h2load` sending the same request to
//! the same simulator in the same run — the ceiling of what this machine can push over
//! HTTP/2 + TLS.
//!
//! `cargo bench --bench fcm_throughput` (h2load from Debian's `nghttp2-client`; without it
//! only the provider's figure is printed). `PUSHES=200000` changes the run length, `ROUNDS=5`
//! the number of provider and h2load runs alternated (3); the figure is the median ratio.
//!
//! Both clients get the same budget: 2 connections, at most 1000 streams in flight per
//! connection, one sending thread (h2load `-t 1`, the provider on one actix arbiter), and the
//! simulator on its own runtime thread. h2load sends the bearer token the provider got from
//! the simulator's token endpoint.

#[path = "support/throughput.rs"]
mod throughput;
use throughput::{CONNECTIONS, STREAMS};

use actix::Actor;
use ringcast::clock::{now_millis, rfc3339};
use ringcast::providers::dispatcher::{Dispatcher, DispatcherSettings};
use ringcast::providers::fcm::auth::{
    AccessTokenCache, AssertionSigner, DEFAULT_REFRESH_STALE_AFTER, ServiceAccount, TokenState,
};
use ringcast::providers::fcm::client::FcmClient;
use ringcast::providers::fcm::config::FcmConfig;
use ringcast::providers::fcm::payload::build_request;
use ringcast::providers::pause::SharedPause;
use ringcast::providers::pool::tls::client_config;
use ringcast::providers::queue::QueueLimits;
use ringcast::push::{CallPayload, Push, PushKind};
use ringcast::registry::{Environment, IdentityKey, Platform, PushAddress};
use ringcast::simulator::{FcmServiceAccount, Profile, Simulator, SimulatorConfig};
use std::sync::Arc;

/// The development service account, which the simulator is told to accept.
const ACCOUNT_JSON: &[u8] = include_bytes!("../config/dev/fcm-service-account.json");
const PROJECT: &str = "ringcast-demo";

fn push(n: u64, payload: &Arc<CallPayload>, deadline: u64) -> Push {
    Push {
        event_id: Arc::from(format!("bench-{n}")),
        kind: PushKind::IncomingCall,
        accepted_at: now_millis(),
        deadline,
        who: IdentityKey::new("bench", format!("user-{n}")).into(),
        device_id: "phone".into(),
        app: "android".into(),
        address: PushAddress::Fcm {
            token: format!("bench{n:08}:APA91bH-benchmark-registration-token"),
        },
        environment: Environment::Production,
        payload: Arc::clone(payload),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this bench has no filters.
    let pushes: u64 = std::env::var("PUSHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = dir.path().join("simulator.pem");

    // The simulator on its own runtime thread, shared by both clients.
    let sim_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = sim_runtime
        .block_on(Simulator::start(SimulatorConfig {
            fcm_accounts: vec![
                FcmServiceAccount::from_service_account_json(ACCOUNT_JSON).expect("account"),
            ],
            cert_out: Some(cert.clone()),
            // h2load repeats one registration token, which FCM's per-device limit (240 a
            // minute) would refuse after its first second: lifted, for both phases alike.
            profile: Profile {
                fcm_device_messages_per_minute: 0,
                fcm_device_messages_per_hour: 0,
                ..Profile::default()
            },
            ..SimulatorConfig::default()
        }))
        .expect("simulator");
    let base_url = sim.base_url();

    let config = FcmConfig {
        base_url: base_url.clone(),
        trusted_roots: Some(cert.clone()),
        connections: CONNECTIONS,
        max_in_flight: CONNECTIONS * STREAMS,
        queues: QueueLimits {
            total: pushes as usize,
            p0: pushes as usize,
            ..QueueLimits::default()
        },
        ..FcmConfig::default()
    };
    let mut account = ServiceAccount::from_json(ACCOUNT_JSON).expect("service account");
    account.token_uri = sim.token_url();
    let signer = AssertionSigner::new(&account).expect("signer");
    let tokens = AccessTokenCache::new(config.token_refresh_ahead(), DEFAULT_REFRESH_STALE_AFTER);
    let deadline = now_millis() + 3_600_000;
    let payload = Arc::new(CallPayload {
        v: 1,
        kind: PushKind::IncomingCall,
        call_id: "call-7f3c2b1e-9a4d".into(),
        caller_id: "bob@acme".into(),
        caller_name: "Bob Example".into(),
        video: true,
        reason: None,
        expires_at: rfc3339(deadline),
    });

    // ringcast: every push through the dispatcher, all submitted at once as a router would
    // hand over batches, timed until the last outcome; each round on a new provider.
    let provider_round = || {
        let (tokens, config, payload) = (tokens.clone(), config.clone(), payload.clone());
        let signer = signer.clone();
        actix::System::new().block_on(async move {
            let tls = client_config(config.trusted_roots.as_deref()).expect("tls");
            let client = FcmClient::start(
                &config,
                PROJECT,
                signer,
                tokens,
                SharedPause::default(),
                tls,
            )
            .expect("client");
            let provider = Dispatcher::new(
                client,
                DispatcherSettings {
                    queues: config.queues.clone(),
                    max_in_flight: config.max_in_flight,
                    retry: config.retry.clone(),
                    cleanup: None,
                    platform: Platform::Fcm,
                },
            )
            .start();
            throughput::provider_rate(provider, pushes, |n| push(n, &payload, deadline)).await
        })
    };

    // h2load: the same request (path, body, the bearer token the simulator's token endpoint
    // issued to the provider in its first round) to the same simulator.
    let ceiling = || {
        let sample = push(0, &payload, deadline);
        let request = build_request(&sample, PROJECT, &base_url, now_millis()).expect("request");
        let body = dir.path().join("body.json");
        std::fs::write(&body, request.body()).expect("body");
        let TokenState::Fresh(token) = tokens.current(now_millis()) else {
            panic!("the provider left no fresh access token")
        };
        let headers = vec![
            format!(
                "authorization: {}",
                token.authorization.to_str().expect("ascii")
            ),
            "content-type: application/json".to_owned(),
        ];
        throughput::Ceiling {
            body,
            headers,
            url: request.uri().to_string(),
        }
    };
    throughput::alternate(pushes, provider_round, ceiling);
    sim_runtime.block_on(sim.shutdown());
    drop(sim_runtime);
}
