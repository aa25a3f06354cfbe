//! End-to-end APNs throughput: pushes/s from ringcast's provider (dispatcher, delivery loop,
//! pool) to the simulator, next to `h2load` sending the same request to the same simulator
//! in the same run — the ceiling of what this machine can push over HTTP/2 + TLS.
//!
//! `cargo bench --bench apns_throughput` (h2load from Debian's `nghttp2-client`; without it
//! only the provider's figure is printed). `PUSHES=200000` changes the run length, `ROUNDS=5`
//! the number of provider and h2load runs alternated (3); the figure is the median ratio.
//!
//! Both clients get the same budget: 2 connections, at most 1000 streams in flight per
//! connection, one sending thread (h2load `-t 1`, the provider on one actix arbiter), and the
//! simulator on its own runtime thread.

#[path = "support/throughput.rs"]
mod throughput;
use throughput::{CONNECTIONS, STREAMS};

use actix::Actor;
use ringcast::clock::{now_millis, rfc3339};
use ringcast::providers::apns::auth::ProviderTokenCache;
use ringcast::providers::apns::client::ApnsClient;
use ringcast::providers::apns::config::ApnsConfig;
use ringcast::providers::apns::payload::build_request;
use ringcast::providers::dispatcher::{Dispatcher, DispatcherSettings};
use ringcast::providers::pool::tls::client_config;
use ringcast::providers::queue::QueueLimits;
use ringcast::push::{CallPayload, Push, PushKind};
use ringcast::registry::{Environment, IdentityKey, Platform, PushAddress};
use ringcast::simulator::{ApnsCredential, Simulator, SimulatorConfig};
use std::sync::Arc;

const TEAM: &str = "TEAM123456";
const KID: &str = "KEY1234567";
const BUNDLE: &str = "com.example.ringcast";

fn push(n: u64, payload: &Arc<CallPayload>, deadline: u64) -> Push {
    let mut token = vec![0x5a; 32];
    token[..8].copy_from_slice(&n.to_be_bytes());
    Push {
        event_id: Arc::from(format!("bench-{n}")),
        kind: PushKind::IncomingCall,
        accepted_at: now_millis(),
        deadline,
        who: IdentityKey::new("bench", format!("user-{n}")).into(),
        device_id: "phone".into(),
        app: "ios".into(),
        address: PushAddress::Apns {
            token,
            alert_token: None,
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
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = dir.path().join("simulator.pem");

    // The simulator on its own runtime thread, shared by both clients.
    let sim_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = sim_runtime
        .block_on(Simulator::start(SimulatorConfig {
            apns_keys: vec![ApnsCredential {
                team_id: TEAM.into(),
                key_id: KID.into(),
                public_key_pem: pair.public_key_pem(),
            }],
            cert_out: Some(cert.clone()),
            ..SimulatorConfig::default()
        }))
        .expect("simulator");
    let base_url = sim.base_url();

    let config = ApnsConfig {
        production_url: base_url.clone(),
        sandbox_url: sim.apns_sandbox_url(),
        trusted_roots: Some(cert.clone()),
        connections: CONNECTIONS,
        max_in_flight: CONNECTIONS * STREAMS,
        queues: QueueLimits {
            total: pushes as usize,
            p0: pushes as usize,
            ..QueueLimits::default()
        },
        ..ApnsConfig::default()
    };
    let tokens = ProviderTokenCache::new(
        TEAM,
        KID,
        pair.serialize_pem().as_bytes(),
        config.jwt_refresh_age(),
    )
    .expect("token cache");
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
        actix::System::new().block_on(async move {
            let tls = client_config(config.trusted_roots.as_deref()).expect("tls");
            let client = ApnsClient::start(&config, Environment::Production, BUNDLE, tokens, tls)
                .expect("client");
            let provider = Dispatcher::new(
                client,
                DispatcherSettings {
                    queues: config.queues.clone(),
                    max_in_flight: config.max_in_flight,
                    retry: config.retry.clone(),
                    cleanup: None,
                    platform: Platform::Apns,
                },
            )
            .start();
            throughput::provider_rate(provider, pushes, |n| push(n, &payload, deadline)).await
        })
    };

    // h2load: the same request (headers, body, provider token) to the same simulator.
    let ceiling = || {
        let sample = push(0, &payload, deadline);
        let request = build_request(&sample, BUNDLE, &base_url, now_millis()).expect("request");
        let body = dir.path().join("body.json");
        std::fs::write(&body, request.body()).expect("body");
        let token = tokens.token(now_millis()).expect("token");
        let mut headers = vec![format!(
            "authorization: {}",
            token
                .authorization
                .as_ref()
                .expect("a JWT")
                .to_str()
                .expect("ascii")
        )];
        for (name, value) in request.headers() {
            // h2load sets it from `-d`; a second one would make the request malformed.
            if name != http::header::CONTENT_LENGTH {
                headers.push(format!("{name}: {}", value.to_str().expect("ascii")));
            }
        }
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
