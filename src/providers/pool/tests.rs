//! The pool against the simulator over real TLS + HTTP/2.

use super::*;
use crate::simulator::{Profile, RunningSimulator, Simulator, SimulatorConfig};
use std::net::SocketAddr;

mod ringcast;

/// A simulator with `profile`, and the TLS config that trusts it.
async fn simulator(profile: Profile) -> (RunningSimulator, Arc<ClientConfig>, tempfile::TempDir) {
    simulator_with(SimulatorConfig {
        profile,
        ..SimulatorConfig::default()
    })
    .await
}

async fn simulator_with(
    config: SimulatorConfig,
) -> (RunningSimulator, Arc<ClientConfig>, tempfile::TempDir) {
    let sim = Simulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).unwrap();
    let tls = tls::client_config(Some(&ca)).unwrap();
    (sim, tls, dir)
}

fn pool(
    sim: &RunningSimulator,
    tls: Arc<ClientConfig>,
    connections: usize,
    client: Http2Client,
) -> Pool {
    let origin = Origin::parse(&sim.base_url(), tls).unwrap();
    Pool::start(
        origin,
        PoolSettings {
            connections,
            http2_client: client,
            ..PoolSettings::default()
        },
    )
}

/// A push without a provider token: the simulator answers 403, which is all these tests need
/// (an answer, and a stream counted by the simulator).
fn request(pool: &Pool) -> http::Request<Bytes> {
    http::Request::post(format!("{}/3/device/{}", pool.base(), "ab".repeat(32)))
        .body(Bytes::from_static(b"{}"))
        .unwrap()
}

/// A simulator that knows one APNs signing key, and an `authorization` signed with it.
async fn simulator_with_key(
    profile: Profile,
) -> (
    RunningSimulator,
    Arc<ClientConfig>,
    tempfile::TempDir,
    http::HeaderValue,
) {
    let (team, key_id) = ("TEAM123456", "KEY1234567");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let (sim, tls, dir) = simulator_with(SimulatorConfig {
        profile,
        apns_keys: vec![crate::simulator::ApnsCredential {
            team_id: team.into(),
            key_id: key_id.into(),
            public_key_pem: key.public_key_pem(),
        }],
        ..SimulatorConfig::default()
    })
    .await;
    let tokens = crate::providers::apns::auth::ProviderTokenCache::new(
        team,
        key_id,
        key.serialize_pem().as_bytes(),
        Duration::from_secs(30 * 60),
    )
    .unwrap();
    let token = tokens.token(crate::clock::now_millis()).unwrap();
    (sim, tls, dir, token.authorization.unwrap())
}

/// [`request`] with a provider token: it passes the credential check and, naming no topic,
/// is answered 400 `MissingTopic`.
fn authenticated_request(pool: &Pool, authorization: &http::HeaderValue) -> http::Request<Bytes> {
    let mut request = request(pool);
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, authorization.clone());
    request
}

/// Sends `requests` at once, each on a stream it waits for; their statuses, in order.
async fn send_at_once(
    pool: &Pool,
    requests: impl IntoIterator<Item = http::Request<Bytes>>,
) -> Vec<Result<u16, SendError>> {
    let sends: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let stream = pool.acquire(soon()).await.unwrap();
                stream.send(request).await.map(|answer| answer.status)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

async fn wait_for(pool: &Pool, what: impl Fn(&PoolSnapshot) -> bool) -> PoolSnapshot {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = pool.snapshot();
        if what(&snapshot) {
            return snapshot;
        }
        assert!(Instant::now() < until, "pool never got there: {snapshot:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[test]
fn origins_are_https_host_and_port() {
    let tls = tls::client_config(None).unwrap();
    let apple = Origin::parse("https://api.push.apple.com", tls.clone()).unwrap();
    assert_eq!(
        (apple.address.as_str(), apple.base.as_str()),
        ("api.push.apple.com:443", "https://api.push.apple.com")
    );
    let local = Origin::parse("https://127.0.0.1:8443/", tls.clone()).unwrap();
    assert_eq!(local.address, "127.0.0.1:8443");
    let v6 = Origin::parse("https://[::1]:2197", tls.clone()).unwrap();
    assert_eq!(v6.address, "[::1]:2197");
    assert!(matches!(
        Origin::parse("http://api.push.apple.com", tls.clone()),
        Err(OriginError::NotHttps(_))
    ));
    assert!(Origin::parse("api.push.apple.com", tls).is_err());
}

async fn opens_k_connections_and_learns_the_peer_stream_limit(client: Http2Client) {
    let (sim, tls, _dir) = simulator(Profile {
        max_concurrent_streams: 4,
        // Announced at once (the pushes carry no provider token, so APNs would never raise
        // it): the raise has its own test.
        initial_max_concurrent_streams: 4,
        latency_min_ms: 10,
        latency_max_ms: 20,
        ..Profile::default()
    })
    .await;
    let pool = pool(&sim, tls, 2, client);
    wait_for(&pool, |s| s.open == 2).await;
    // Overlapping round trips until each connection has read the server's SETTINGS: more
    // requests at once than one connection may carry, so both get some.
    let until = Instant::now() + Duration::from_secs(10);
    while pool.snapshot().free_streams < 8 {
        assert!(
            Instant::now() < until,
            "never learned: {:?}",
            pool.snapshot()
        );
        let answers = send_at_once(&pool, (0..6).map(|_| request(&pool))).await;
        assert!(answers.iter().all(|a| a == &Ok(403)), "{answers:?}");
    }
    // Least-loaded connection first: with one stream taken, the next goes to the other.
    let first = pool.acquire(soon()).await.unwrap();
    let second = pool.acquire(soon()).await.unwrap();
    assert_ne!(first.slot, second.slot, "least-loaded connection first");
    drop((first, second));
    let snapshot = wait_for(&pool, |s| s.free_streams == 8).await;
    assert_eq!((snapshot.open, snapshot.in_flight), (2, 0));
    assert_eq!(sim.stats().connections, 2);
}

async fn a_burst_never_exceeds_the_advertised_stream_limit(client: Http2Client) {
    let (sim, tls, _dir) = simulator(Profile {
        max_concurrent_streams: 3,
        initial_max_concurrent_streams: 3,
        latency_min_ms: 20,
        latency_max_ms: 40,
        ..Profile::default()
    })
    .await;
    let pool = pool(&sim, tls, 2, client);
    wait_for(&pool, |s| s.open == 2).await;
    let answers = send_at_once(&pool, (0..60).map(|_| request(&pool))).await;
    assert!(answers.iter().all(|a| a == &Ok(403)), "{answers:?}");
    let stats = sim.stats();
    assert!(stats.max_streams_in_flight <= 3, "{stats:?}");
    assert_eq!(stats.stream_limit_violations, 0);
    assert_eq!(pool.snapshot().in_flight, 0);
}

/// APNs allows one stream until a request shows a valid provider token, then raises its
/// limit with a second SETTINGS frame: the pushes that queued for the one stream must all go
/// then, not one per freed stream (a freed stream wakes one waiter).
async fn a_raised_stream_limit_sends_every_waiting_push_at_once(client: Http2Client) {
    let (sim, tls, _dir, authorization) = simulator_with_key(Profile {
        max_concurrent_streams: 50,
        initial_max_concurrent_streams: 1,
        latency_min_ms: 200,
        latency_max_ms: 200,
        ..Profile::default()
    })
    .await;
    let pool = pool(&sim, tls, 1, client);
    wait_for(&pool, |s| s.open == 1).await;
    let requests = (0..20).map(|_| authenticated_request(&pool, &authorization));
    let answers = send_at_once(&pool, requests).await;
    assert!(answers.iter().all(|a| a == &Ok(400)), "{answers:?}");
    let stats = sim.stats();
    // One alone, then the other 19 together (one at a time without the wake-up).
    assert!(stats.max_streams_in_flight >= 10, "{stats:?}");
    assert_eq!(stats.stream_limit_violations, 0, "{stats:?}");
    assert_eq!(stats.connections, 1);
}

async fn goaway_drains_the_connection_and_a_fresh_one_takes_over(client: Http2Client) {
    let (sim, tls, _dir) = simulator(Profile {
        goaway_after_streams: Some(3),
        ..Profile::default()
    })
    .await;
    let pool = pool(&sim, tls, 1, client);
    let mut answered = 0;
    let mut not_sent = 0;
    // Streams that found their connection's credential cell empty: one per connection.
    let mut fresh_cells = 0;
    while answered < 10 {
        let stream = pool.acquire(soon()).await.unwrap();
        {
            let mut cell = stream.bound_credential().lock();
            if cell.is_none() {
                fresh_cells += 1;
                *cell = Some(crate::providers::pool::Bound {
                    authorization: None,
                    credential: fresh_cells,
                    issuer: 0,
                    since: 0,
                });
            }
        }
        match stream.send(request(&pool)).await {
            Ok(answer) => {
                assert_eq!(answer.status, 403);
                answered += 1;
            }
            // Refused by the GOAWAY: never processed, so sending it again is safe.
            Err(SendError::NotSent(_)) => not_sent += 1,
            Err(error) => panic!("an answer was lost: {error}"),
        }
    }
    let stats = sim.stats();
    // The last GOAWAY may still be on its way to the counter when it is read.
    assert!(stats.goaways >= 2, "{stats:?}");
    assert!(stats.connections >= 3, "{stats:?}");
    assert!(not_sent <= stats.goaways, "{not_sent} re-sends");
    // Each new connection starts without a credential; its streams share one.
    assert!(fresh_cells >= 3, "{fresh_cells} cells");
    assert!(
        fresh_cells <= stats.connections,
        "{fresh_cells} cells, {stats:?}"
    );
}

/// A wedged front end (the simulator stops reading and writing, PINGs included, for far
/// longer than the test) is found by the PING watchdog: the stream on it fails as lost
/// instead of waiting out the stall, and a fresh connection answers the next push.
async fn an_unanswered_ping_ends_the_connection_and_a_fresh_one_takes_over(client: Http2Client) {
    let (sim, tls, _dir) = simulator(Profile {
        stall_after_streams: Some(2),
        stall_ms: 60_000,
        ..Profile::default()
    })
    .await;
    let origin = Origin::parse(&sim.base_url(), tls).unwrap();
    let pool = Pool::start(
        origin,
        PoolSettings {
            connections: 1,
            keep_alive_interval: Duration::from_millis(100),
            keep_alive_timeout: Duration::from_millis(300),
            http2_client: client,
            ..PoolSettings::default()
        },
    );
    let first = pool.acquire(soon()).await.unwrap();
    assert_eq!(first.send(request(&pool)).await.unwrap().status, 403);
    let stalled = pool.acquire(soon()).await.unwrap();
    match stalled.send(request(&pool)).await {
        Err(SendError::Lost(_)) => {}
        other => panic!("the stalled push must be lost with its connection: {other:?}"),
    }
    let fresh = pool.acquire(soon()).await.unwrap();
    assert_eq!(fresh.send(request(&pool)).await.unwrap().status, 403);
    assert_eq!(sim.stats().connections, 2);
}

/// A push not answered within its time is answered `TimedOut`, and its stream is reset: with
/// a stream limit of 1 the next push can only open on the same connection if it was (the
/// session, like the server, would still count it).
async fn a_push_not_answered_in_time_times_out_and_its_stream_is_reset(client: Http2Client) {
    let (sim, pool, _dir) = answering_late(client, 1).await;
    let stream = pool.acquire(soon()).await.unwrap();
    let sent = stream.send_within(request(&pool), Duration::from_millis(50));
    assert_eq!(sent.await.unwrap_err(), SendError::TimedOut);
    let stream = pool.acquire(soon()).await.unwrap();
    assert_eq!(stream.send(request(&pool)).await.unwrap().status, 403);
    assert_eq!(sim.stats().connections, 1);
}

/// A deadline sooner than every other on the connection is kept though a later one came
/// first, and the later one is not cut short by it (ringcast's own client keeps one timer
/// per connection, at the soonest deadline).
async fn a_sooner_deadline_is_kept_though_a_later_one_came_first(client: Http2Client) {
    let (sim, pool, _dir) = answering_late(client, 100).await;
    let patient = pool.acquire(soon()).await.unwrap();
    let patient = tokio::spawn(patient.send_within(request(&pool), Duration::from_secs(10)));
    wait_until("the push reached the server", || sim.stats().received == 1).await;
    let hasty = pool.acquire(soon()).await.unwrap();
    let sent = hasty.send_within(request(&pool), Duration::from_millis(50));
    assert_eq!(sent.await.unwrap_err(), SendError::TimedOut);
    assert_eq!(patient.await.unwrap().unwrap().status, 403);
    assert_eq!(sim.stats().connections, 1);
}

/// A pool of one connection to a simulator that answers every push after 300 ms and allows
/// `streams` at once.
async fn answering_late(
    client: Http2Client,
    streams: u32,
) -> (RunningSimulator, Pool, tempfile::TempDir) {
    let (sim, tls, dir) = simulator(late(streams)).await;
    let pool = pool(&sim, tls, 1, client);
    (sim, pool, dir)
}

/// A simulator's profile that answers every push after 300 ms and allows `streams` at once.
fn late(streams: u32) -> Profile {
    Profile {
        max_concurrent_streams: streams,
        latency_min_ms: 300,
        latency_max_ms: 300,
        ..Profile::default()
    }
}

/// Waits until `done`, polling.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = soon();
    while !done() {
        assert!(Instant::now() < until, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The HTTP/2 contract, run with each client the pool can speak with.
macro_rules! with_each_http2_client {
    ($($test:ident),* $(,)?) => {
        mod h2_client {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Http2Client::H2).await;
            })*
        }
        mod ringcast_client {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Http2Client::Ringcast).await;
            })*
        }
    };
}

with_each_http2_client!(
    opens_k_connections_and_learns_the_peer_stream_limit,
    a_burst_never_exceeds_the_advertised_stream_limit,
    a_raised_stream_limit_sends_every_waiting_push_at_once,
    goaway_drains_the_connection_and_a_fresh_one_takes_over,
    an_unanswered_ping_ends_the_connection_and_a_fresh_one_takes_over,
    a_server_that_goes_away_is_redialled_when_it_returns,
    a_push_not_answered_in_time_times_out_and_its_stream_is_reset,
    a_sooner_deadline_is_kept_though_a_later_one_came_first,
);

#[tokio::test]
async fn without_a_server_no_stream_is_handed_out_and_the_slots_keep_redialling() {
    let tls = tls::client_config(None).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let origin = Origin::parse(&format!("https://127.0.0.1:{port}"), tls).unwrap();
    let pool = Pool::start(origin, PoolSettings::default());
    let waited = pool
        .acquire(Instant::now() + Duration::from_millis(200))
        .await;
    assert_eq!(waited.err(), Some(AcquireError::NoStream));
    assert_eq!(pool.snapshot().connecting, 2);
    pool.close();
    assert_eq!(pool.try_acquire().err(), Some(AcquireError::Closed));
}

async fn a_server_that_goes_away_is_redialled_when_it_returns(client: Http2Client) {
    // One certificate for both lives of the server, as a real push service keeps its own.
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let config = |listen| SimulatorConfig {
        listen,
        cert_and_key: Some((cert.clone(), key.clone())),
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .unwrap();
    let address = sim.address();
    let pool = pool(&sim, tls::client_config(Some(&cert)).unwrap(), 1, client);
    wait_for(&pool, |s| s.open == 1).await;
    sim.shutdown().await;
    wait_for(&pool, |s| s.open == 0).await;

    let back = Simulator::start(config(address)).await.unwrap();
    let stream = pool.acquire(soon()).await.unwrap();
    assert_eq!(stream.send(request(&pool)).await.unwrap().status, 403);
    assert_eq!(back.stats().requests, 1);
}

/// The connect-time SSRF guard: a guarded pool resolves the host and refuses loopback before
/// any TCP connection, unless the exact address is allowed (the simulator in tests).
#[tokio::test]
async fn a_guarded_pool_never_dials_an_internal_address() {
    let (sim, tls, _dir) = simulator(Profile::default()).await;
    let port = sim.address().port();
    for base in [
        format!("https://127.0.0.1:{port}"),
        format!("https://localhost:{port}"),
        format!("https://[::ffff:127.0.0.1]:{port}"),
    ] {
        let origin = Origin::parse(&base, tls.clone()).unwrap();
        let guarded = Pool::start(
            origin,
            PoolSettings {
                connections: 1,
                guard: Some(guard::AddressGuard::default()),
                ..PoolSettings::default()
            },
        );
        let refused = guarded
            .acquire(Instant::now() + Duration::from_millis(300))
            .await;
        assert!(matches!(refused, Err(AcquireError::NoStream)), "{base}");
        guarded.close();
    }
    assert_eq!(sim.stats().connections, 0, "no TCP connection was made");

    let allowed = guard::AddressGuard::new(&[format!("127.0.0.1:{port}")]).unwrap();
    let origin = Origin::parse(&format!("https://127.0.0.1:{port}"), tls).unwrap();
    let pool = Pool::start(
        origin,
        PoolSettings {
            connections: 1,
            guard: Some(allowed),
            ..PoolSettings::default()
        },
    );
    wait_for(&pool, |s| s.open == 1).await;
    assert_eq!(sim.stats().connections, 1);
    pool.close();
}

/// A pool offering `h2` and `http/1.1` to `base`, growing to `http1` connections.
fn dual_pool(base: &str, tls: Arc<ClientConfig>, http1: usize) -> Pool {
    Pool::start(
        Origin::parse(base, tls).unwrap(),
        PoolSettings {
            connections: 1,
            protocols: Protocols::Http2OrHttp1,
            http1_connections: http1,
            ..PoolSettings::default()
        },
    )
}

/// A token request without a form: the simulator's token endpoint answers 400, which is all
/// these tests need.
fn token_request(pool: &Pool) -> http::Request<Bytes> {
    http::Request::post(format!("{}/token", pool.base()))
        .body(Bytes::from_static(b"grant_type=nothing"))
        .unwrap()
}

/// An HTTP/1.1 request not answered in time times out; its connection, an answer still owed
/// on it, carries nothing more: a fresh one takes the next request.
#[tokio::test]
async fn an_http1_request_not_answered_in_time_times_out_and_its_connection_is_not_reused() {
    let (sim, tls, _dir) = simulator(late(100)).await;
    let pool = dual_pool(&sim.http1_base_url(), tls, 1);
    wait_for(&pool, |s| s.open == 1 && s.http1 == 1).await;
    let stream = pool.acquire(soon()).await.unwrap();
    let sent = stream.send_within(token_request(&pool), Duration::from_millis(50));
    assert_eq!(sent.await.unwrap_err(), SendError::TimedOut);
    let stream = pool.acquire(soon()).await.unwrap();
    assert_eq!(stream.send(token_request(&pool)).await.unwrap().status, 400);
    assert_eq!(sim.stats().connections, 2);
}

#[tokio::test]
async fn an_http1_server_gets_one_request_per_connection_and_the_pool_grows_to_its_bound() {
    let (sim, tls, _dir) = simulator(Profile {
        latency_min_ms: 20,
        latency_max_ms: 30,
        ..Profile::default()
    })
    .await;
    let pool = dual_pool(&sim.http1_base_url(), tls, 3);
    let snapshot = wait_for(&pool, |s| s.open == 1).await;
    assert_eq!(
        snapshot.http1, 1,
        "the server picked HTTP/1.1: {snapshot:?}"
    );
    let sends = (0..24).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let stream = pool.acquire(soon()).await.unwrap();
            assert_eq!(stream.protocol(), Some(Protocol::Http1));
            stream.send(token_request(&pool)).await.map(|a| a.status)
        })
    });
    for send in sends.collect::<Vec<_>>() {
        assert_eq!(send.await.unwrap(), Ok(400));
    }
    let transport = sim.transport_stats();
    assert_eq!(transport.http1_requests, 24, "{transport:?}");
    // Kept alive and bounded: 24 requests over at most 3 connections, never more.
    assert!(
        (2..=3).contains(&transport.http1_connections),
        "{transport:?}"
    );
    let snapshot = pool.snapshot();
    assert_eq!(snapshot.open + snapshot.idle + snapshot.connecting, 3);
    assert_eq!(snapshot.in_flight, 0, "{snapshot:?}");
}

#[tokio::test]
async fn an_http2_only_pool_never_speaks_to_an_http1_only_server() {
    let (sim, tls, _dir) = simulator(Profile::default()).await;
    let origin = Origin::parse(&sim.http1_base_url(), tls).unwrap();
    let pool = Pool::start(
        origin,
        PoolSettings {
            connections: 1,
            ..PoolSettings::default()
        },
    );
    let waited = pool
        .acquire(Instant::now() + Duration::from_millis(300))
        .await;
    assert_eq!(waited.err(), Some(AcquireError::NoStream));
    // The TLS handshake failed on ALPN: no HTTP/1.1 connection was ever served.
    assert_eq!(sim.transport_stats().http1_connections, 0);
    pool.close();
}

#[tokio::test]
async fn a_pool_offering_both_speaks_http2_where_the_server_picks_it() {
    let (sim, tls, _dir) = simulator(Profile::default()).await;
    let pool = dual_pool(&sim.base_url(), tls, 3);
    let snapshot = wait_for(&pool, |s| s.open == 1).await;
    assert_eq!((snapshot.http1, snapshot.idle), (0, 0), "{snapshot:?}");
    let stream = pool.acquire(soon()).await.unwrap();
    assert_eq!(stream.protocol(), Some(Protocol::Http2));
    assert_eq!(stream.send(request(&pool)).await.unwrap().status, 403);
    assert_eq!(sim.transport_stats().http1_connections, 0);
}

#[tokio::test]
async fn an_http1_connection_the_server_closed_is_redialled_when_a_request_needs_it() {
    let (sim, tls, _dir) = simulator(Profile {
        // The server closes each connection after its first request (HTTP/1.1: GOAWAY
        // becomes `Connection: close`).
        goaway_after_streams: Some(1),
        ..Profile::default()
    })
    .await;
    let pool = dual_pool(&sim.http1_base_url(), tls, 1);
    for _ in 0..3 {
        let stream = pool.acquire(soon()).await.unwrap();
        match stream.send(token_request(&pool)).await {
            Ok(answer) => assert_eq!(answer.status, 400),
            Err(error) => panic!("closed after answering, never before: {error}"),
        }
        // Closed by the server, the slot rests until the next request.
        wait_for(&pool, |s| s.idle == 1).await;
    }
    assert_eq!(sim.transport_stats().http1_connections, 3);
}
