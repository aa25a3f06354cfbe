//! What ringcast's own client does beyond the pool's HTTP/2 contract (run with both clients
//! in `pool/tests.rs`): a push that gives up, a pool that closes or retires its connections,
//! all against the simulator's `h2` server over TLS.

use super::*;

async fn ringcast_pool(profile: Profile) -> (RunningSimulator, Pool, tempfile::TempDir) {
    let (sim, tls, dir) = simulator(profile).await;
    let pool = pool(&sim, tls, 1, Http2Client::Ringcast);
    (sim, pool, dir)
}

/// With a stream limit of 1, the next push can only open if the abandoned one's stream was
/// reset: otherwise the session would still count it against the limit.
#[tokio::test]
async fn a_push_that_gives_up_resets_its_stream_and_the_connection_carries_on() {
    let (sim, pool, _dir) = answering_late(Http2Client::Ringcast, 1).await;
    let stream = pool.acquire(soon()).await.unwrap();
    let given_up = tokio::time::timeout(Duration::from_millis(50), stream.send(request(&pool)));
    assert!(given_up.await.is_err(), "answered before the timeout");
    let stream = pool.acquire(soon()).await.unwrap();
    assert_eq!(stream.send(request(&pool)).await.unwrap().status, 403);
    assert_eq!(sim.stats().connections, 1);
}

#[tokio::test]
async fn closing_the_pool_answers_a_waiting_push_at_once() {
    let (sim, pool, _dir) = ringcast_pool(Profile {
        latency_min_ms: 30_000,
        latency_max_ms: 30_000,
        ..Profile::default()
    })
    .await;
    let stream = pool.acquire(soon()).await.unwrap();
    let waiting = tokio::spawn(stream.send(request(&pool)));
    wait_until("the push reached the server", || sim.stats().received == 1).await;
    pool.close();
    let ended = tokio::time::timeout(Duration::from_secs(10), waiting).await;
    match ended.expect("still waiting for the 30 s answer").unwrap() {
        Err(SendError::Lost(_)) => {}
        other => panic!("the push must be lost with its connection: {other:?}"),
    }
}

/// A retired connection takes no new stream, finishes the one in flight, then closes (the
/// slot leaves `draining`); its replacement carries the next push.
#[tokio::test]
async fn a_retired_connection_finishes_its_streams_then_closes() {
    let (sim, pool, _dir) = ringcast_pool(Profile {
        latency_min_ms: 200,
        latency_max_ms: 200,
        ..Profile::default()
    })
    .await;
    let stream = pool.acquire(soon()).await.unwrap();
    let in_flight = tokio::spawn(stream.send(request(&pool)));
    wait_until("the push reached the server", || sim.stats().received == 1).await;
    pool.retire(None);
    assert_eq!(pool.snapshot().draining, 1);
    assert_eq!(in_flight.await.unwrap().unwrap().status, 403);
    wait_until("the old connection closed, a new one opened", || {
        let PoolSnapshot { open, draining, .. } = pool.snapshot();
        (open, draining) == (1, 0)
    })
    .await;
    let stream = pool.acquire(soon()).await.unwrap();
    assert_eq!(stream.send(request(&pool)).await.unwrap().status, 403);
    assert_eq!(sim.stats().connections, 2);
}

/// A graceful GOAWAY refuses none of our streams (its first last-stream id is 2^31-1), so no
/// push learns of it: the connection still shows as draining while its stream finishes, and
/// a fresh one takes over once it closes.
#[tokio::test]
async fn a_goaway_that_refuses_nothing_still_drains_the_connection() {
    let (sim, pool, _dir) = ringcast_pool(Profile {
        goaway_after_streams: Some(1),
        latency_min_ms: 300,
        latency_max_ms: 300,
        ..Profile::default()
    })
    .await;
    let stream = pool.acquire(soon()).await.unwrap();
    let in_flight = tokio::spawn(stream.send(request(&pool)));
    wait_until("the GOAWAY marked the connection draining", || {
        pool.snapshot().draining == 1
    })
    .await;
    assert_eq!(pool.snapshot().free_streams, 0);
    assert_eq!(in_flight.await.unwrap().unwrap().status, 403);
    wait_until("a fresh connection took over", || {
        let PoolSnapshot { open, draining, .. } = pool.snapshot();
        (open, draining) == (1, 0)
    })
    .await;
    assert!(sim.stats().goaways >= 1);
}
