//! The connection's driver against a scripted server over an in-memory pipe: what it writes,
//! which caller each reply reaches, and how it ends. The store's contract and outage tests
//! run it against a real Redis (tests/store_contract.rs).

use super::driver::{self, Ended, Expect, Limits, Link, NotSent, Reply, WITH_NEXT_AT_MOST, Write};
use redis::{ErrorKind, RedisResult, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LIMITS: Limits = Limits {
    max_waiting: 8,
    stall_after: Duration::from_secs(1),
};

/// A link whose driver is not running yet, and the server's end of the pipe.
fn pipe(limits: Limits) -> (Link, driver::Driver<DuplexStream>, DuplexStream) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (link, driver) = driver::start(client, limits);
    (link, driver, server)
}

fn run(driver: driver::Driver<DuplexStream>) -> JoinHandle<Result<(), Ended>> {
    tokio::spawn(driver)
}

/// Queues `GET key`.
fn get(link: &Link, key: &str) -> oneshot::Receiver<RedisResult<Reply>> {
    let cmd = redis::cmd("GET").arg(key).clone();
    link.send(|out| cmd.write_packed_command(out), Expect::ONE)
        .unwrap()
}

/// Reads from the server's end until `expected` bytes came.
async fn read_exactly(server: &mut DuplexStream, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

fn one(reply: RedisResult<Reply>) -> Value {
    match reply.unwrap() {
        Reply::One(value) => value,
        Reply::Many(values) => panic!("one reply expected, got {values:?}"),
    }
}

fn packed(args: &[&str]) -> Vec<u8> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.get_packed_command()
}

#[tokio::test]
async fn commands_queued_before_a_write_leave_together_and_replies_go_in_order() {
    let (link, driver, mut server) = pipe(LIMITS);
    let first = get(&link, "a");
    let second = get(&link, "b");
    let third = get(&link, "c");
    let _task = run(driver);
    let all = [
        packed(&["GET", "a"]),
        packed(&["GET", "b"]),
        packed(&["GET", "c"]),
    ]
    .concat();
    // One read of exactly the three: they went out in one write.
    let mut got = vec![0; 1024];
    let n = server.read(&mut got).await.unwrap();
    assert_eq!(&got[..n], &all[..]);
    server.write_all(b"$1\r\nA\r\n$-1\r\n:3\r\n").await.unwrap();
    assert_eq!(one(first.await.unwrap()), Value::BulkString(b"A".to_vec()));
    assert_eq!(one(second.await.unwrap()), Value::Nil);
    assert_eq!(one(third.await.unwrap()), Value::Int(3));
}

/// Queues the command `args`, written as `write` says.
fn queue(link: &Link, args: &[&str], write: Write) -> oneshot::Receiver<RedisResult<Reply>> {
    let command = packed(args);
    link.send_with(|out| out.extend_from_slice(&command), Expect::ONE, write)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn bookkeeping_waits_for_the_next_command_and_the_replies_stay_in_order() {
    let (link, driver, mut server) = pipe(LIMITS);
    let _task = run(driver);
    let finish = queue(&link, &["EVALSHA", "finish"], Write::WithNext);
    // Nothing is written while no other command comes, within the wait.
    let mut got = vec![0; 1024];
    let early = tokio::time::timeout(WITH_NEXT_AT_MOST / 2, server.read(&mut got)).await;
    assert!(
        early.is_err(),
        "a bookkeeping command alone was written at once"
    );

    let claim = get(&link, "claim");
    let both = [packed(&["EVALSHA", "finish"]), packed(&["GET", "claim"])].concat();
    let n = server.read(&mut got).await.unwrap();
    assert_eq!(
        &got[..n],
        &both[..],
        "written together, in the order queued"
    );
    server.write_all(b":1\r\n$1\r\nC\r\n").await.unwrap();
    assert_eq!(one(finish.await.unwrap()), Value::Int(1));
    assert_eq!(one(claim.await.unwrap()), Value::BulkString(b"C".to_vec()));
}

#[tokio::test(start_paused = true)]
async fn bookkeeping_alone_is_written_once_its_own_wait_is_over() {
    let (link, driver, mut server) = pipe(LIMITS);
    let _task = run(driver);
    // Each held command waits its own full time, whatever came of the one before: the second
    // is released early by a command that writes now, the third waits in full again.
    for round in 1..=3 {
        let queued = tokio::time::Instant::now();
        let name = format!("finish-{round}");
        let finish = queue(&link, &["EVALSHA", &name], Write::WithNext);
        let mut expected = packed(&["EVALSHA", &name]);
        let released_early = round == 2;
        let claim = released_early.then(|| {
            expected.extend(packed(&["GET", "claim"]));
            get(&link, "claim")
        });
        let written = read_exactly(&mut server, &expected);
        tokio::time::timeout(WITH_NEXT_AT_MOST * 10, written)
            .await
            .expect("a held command is written once its wait is over");
        let waited = queued.elapsed();
        if released_early {
            assert_eq!(waited, Duration::ZERO, "round {round}");
        } else {
            assert!(waited >= WITH_NEXT_AT_MOST, "round {round}: {waited:?}");
        }
        let replies: &[u8] = if released_early {
            b":1\r\n$1\r\nC\r\n"
        } else {
            b":1\r\n"
        };
        server.write_all(replies).await.unwrap();
        assert_eq!(one(finish.await.unwrap()), Value::Int(1));
        if let Some(claim) = claim {
            assert_eq!(one(claim.await.unwrap()), Value::BulkString(b"C".to_vec()));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn bookkeeping_behind_a_command_not_yet_written_leaves_with_it() {
    let (link, driver, mut server) = pipe(LIMITS);
    let claim = get(&link, "claim");
    let finish = queue(&link, &["EVALSHA", "finish"], Write::WithNext);
    let queued = tokio::time::Instant::now();
    let _task = run(driver);
    let both = [packed(&["GET", "claim"]), packed(&["EVALSHA", "finish"])].concat();
    read_exactly(&mut server, &both).await;
    assert_eq!(
        queued.elapsed(),
        Duration::ZERO,
        "held back with a command that is not"
    );
    server.write_all(b"$1\r\nC\r\n:1\r\n").await.unwrap();
    assert_eq!(one(claim.await.unwrap()), Value::BulkString(b"C".to_vec()));
    assert_eq!(one(finish.await.unwrap()), Value::Int(1));
}

#[tokio::test]
async fn a_reply_cut_over_two_reads_reaches_its_caller_whole() {
    let (link, driver, mut server) = pipe(LIMITS);
    let _task = run(driver);
    let first = get(&link, "a");
    let second = get(&link, "b");
    read_exactly(
        &mut server,
        &[packed(&["GET", "a"]), packed(&["GET", "b"])].concat(),
    )
    .await;
    server.write_all(b"$5\r\nhel").await.unwrap();
    tokio::task::yield_now().await;
    server.write_all(b"lo\r\n*2\r\n:1\r").await.unwrap();
    tokio::task::yield_now().await;
    server.write_all(b"\n:2\r\n").await.unwrap();
    assert_eq!(
        one(first.await.unwrap()),
        Value::BulkString(b"hello".to_vec())
    );
    assert_eq!(
        one(second.await.unwrap()),
        Value::Array(vec![Value::Int(1), Value::Int(2)])
    );
}

#[tokio::test]
async fn a_caller_that_gave_up_leaves_the_next_reply_to_the_next_caller() {
    let (link, driver, mut server) = pipe(LIMITS);
    let _task = run(driver);
    drop(get(&link, "gone"));
    let second = get(&link, "b");
    read_exactly(
        &mut server,
        &[packed(&["GET", "gone"]), packed(&["GET", "b"])].concat(),
    )
    .await;
    server
        .write_all(b"+for the one who left\r\n:2\r\n")
        .await
        .unwrap();
    assert_eq!(one(second.await.unwrap()), Value::Int(2));
}

#[tokio::test]
async fn an_error_reply_is_the_callers_and_the_connection_goes_on() {
    let (link, driver, mut server) = pipe(LIMITS);
    let _task = run(driver);
    let first = get(&link, "a");
    let second = get(&link, "b");
    read_exactly(
        &mut server,
        &[packed(&["GET", "a"]), packed(&["GET", "b"])].concat(),
    )
    .await;
    server
        .write_all(b"-NOSCRIPT No matching script\r\n:7\r\n")
        .await
        .unwrap();
    let Value::ServerError(error) = one(first.await.unwrap()) else {
        panic!("an error reply expected");
    };
    assert_eq!(error.code(), "NOSCRIPT");
    assert_eq!(one(second.await.unwrap()), Value::Int(7));
    assert!(link.is_open());
}

#[tokio::test]
async fn a_pipeline_keeps_the_replies_after_its_offset() {
    let (link, driver, mut server) = pipe(LIMITS);
    let _task = run(driver);
    let expect = Expect {
        skip: 1,
        keep: 2,
        transaction: false,
    };
    let answered = link
        .send(|out| out.extend_from_slice(b"x"), expect)
        .unwrap();
    let after = get(&link, "after");
    read_exactly(&mut server, b"x").await;
    read_exactly(&mut server, &packed(&["GET", "after"])).await;
    server
        .write_all(b"+OK\r\n:1\r\n:2\r\n:3\r\n")
        .await
        .unwrap();
    match answered.await.unwrap().unwrap() {
        Reply::Many(values) => assert_eq!(values, vec![Value::Int(1), Value::Int(2)]),
        Reply::One(value) => panic!("a pipeline's replies expected, got {value:?}"),
    }
    assert_eq!(one(after.await.unwrap()), Value::Int(3));
}

#[tokio::test]
async fn a_transaction_with_an_error_among_its_queued_replies_is_aborted() {
    let (link, driver, mut server) = pipe(LIMITS);
    let _task = run(driver);
    let expect = Expect {
        skip: 3,
        keep: 1,
        transaction: true,
    };
    let answered = link
        .send(|out| out.extend_from_slice(b"x"), expect)
        .unwrap();
    read_exactly(&mut server, b"x").await;
    server
        .write_all(b"+OK\r\n+QUEUED\r\n-ERR wrong number of arguments\r\n-EXECABORT Transaction discarded\r\n")
        .await
        .unwrap();
    let error = answered.await.unwrap().unwrap_err();
    assert!(error.to_string().contains("wrong number"), "{error}");
}

#[tokio::test]
async fn the_server_closing_answers_every_waiting_caller_at_once() {
    let (link, driver, mut server) = pipe(LIMITS);
    let task = run(driver);
    let first = get(&link, "a");
    let second = get(&link, "b");
    read_exactly(
        &mut server,
        &[packed(&["GET", "a"]), packed(&["GET", "b"])].concat(),
    )
    .await;
    server.write_all(b":1\r\n").await.unwrap();
    drop(server);
    assert_eq!(one(first.await.unwrap()), Value::Int(1));
    let lost = second.await.unwrap().unwrap_err();
    assert_eq!(lost.kind(), ErrorKind::Io);
    assert!(matches!(task.await.unwrap(), Err(Ended::Closed)));
    assert!(!link.is_open());
    let refused = link.send(|out| out.push(b'x'), Expect::ONE).unwrap_err();
    assert_eq!(refused, NotSent::Closed);
}

#[tokio::test]
async fn bytes_that_are_not_resp2_end_the_connection() {
    for garbage in [&b"%1\r\n"[..], b"?\r\n", b":1\r\n:2\r\n"] {
        let (link, driver, mut server) = pipe(LIMITS);
        let task = run(driver);
        let waiting = get(&link, "a");
        read_exactly(&mut server, &packed(&["GET", "a"])).await;
        server.write_all(garbage).await.unwrap();
        let ended = task.await.unwrap();
        assert!(
            matches!(ended, Err(Ended::Protocol(_) | Ended::Unasked)),
            "{garbage:?}: {ended:?}"
        );
        // The third case answered its one caller, then a reply nobody asked for came.
        let answered = waiting.await.unwrap();
        assert_eq!(answered.is_ok(), garbage == b":1\r\n:2\r\n", "{garbage:?}");
        assert!(!link.is_open());
    }
}

#[tokio::test(start_paused = true)]
async fn commands_unanswered_for_a_whole_stall_limit_end_the_connection() {
    let (link, driver, mut server) = pipe(LIMITS);
    let task = run(driver);
    // Idle for long: no command waits, so no stall.
    tokio::time::sleep(LIMITS.stall_after * 5).await;
    assert!(link.is_open());
    let waiting = get(&link, "a");
    read_exactly(&mut server, &packed(&["GET", "a"])).await;
    let started = tokio::time::Instant::now();
    assert!(matches!(task.await.unwrap(), Err(Ended::Stalled(_))));
    let waited = started.elapsed();
    assert!(
        waited >= LIMITS.stall_after && waited <= LIMITS.stall_after * 2,
        "ended after {waited:?}"
    );
    assert_eq!(waiting.await.unwrap().unwrap_err().kind(), ErrorKind::Io);
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_answering_server_is_not_a_stall() {
    let (link, driver, mut server) = pipe(LIMITS);
    let task = run(driver);
    for key in ["a", "b", "c", "d"] {
        let waiting = get(&link, key);
        read_exactly(&mut server, &packed(&["GET", key])).await;
        tokio::time::sleep(LIMITS.stall_after * 3 / 4).await;
        server.write_all(b":1\r\n").await.unwrap();
        assert_eq!(one(waiting.await.unwrap()), Value::Int(1));
    }
    assert!(!task.is_finished());
}

#[tokio::test]
async fn past_the_waiting_limit_a_command_is_refused_unsent() {
    let limits = Limits {
        max_waiting: 2,
        ..LIMITS
    };
    let (link, driver, mut server) = pipe(limits);
    let _task = run(driver);
    let first = get(&link, "a");
    let _second = get(&link, "b");
    let refused = link.send(|out| out.push(b'x'), Expect::ONE).unwrap_err();
    assert_eq!(refused, NotSent::Full);
    read_exactly(
        &mut server,
        &[packed(&["GET", "a"]), packed(&["GET", "b"])].concat(),
    )
    .await;
    server.write_all(b":1\r\n").await.unwrap();
    assert_eq!(one(first.await.unwrap()), Value::Int(1));
    // A place is free again.
    let _third = get(&link, "c");
}

#[tokio::test]
async fn the_last_link_dropped_ends_the_connection_once_its_replies_came() {
    let (link, driver, mut server) = pipe(LIMITS);
    let task = run(driver);
    let waiting = get(&link, "a");
    drop(link);
    read_exactly(&mut server, &packed(&["GET", "a"])).await;
    tokio::task::yield_now().await;
    assert!(!task.is_finished(), "a reply is still awaited");
    server.write_all(b":1\r\n").await.unwrap();
    assert_eq!(one(waiting.await.unwrap()), Value::Int(1));
    assert!(matches!(task.await.unwrap(), Ok(())));
}

/// A server that answers `AUTH` (after `auth_delay` from its second connection on) and every
/// `PING`, and closes its first connection after one `PING`. Returns its port and how many
/// connections it accepted.
async fn flaky_server(
    auth_delay: Duration,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let nth = counted.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut pings = 0;
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let read = &buf[..n];
                    if read.windows(4).any(|w| w == b"AUTH") {
                        if nth > 1 {
                            tokio::time::sleep(auth_delay).await;
                        }
                        socket.write_all(b"+OK\r\n").await.unwrap();
                    }
                    for _ in 0..read.windows(4).filter(|w| w == b"PING").count() {
                        socket.write_all(b"+PONG\r\n").await.unwrap();
                        pings += 1;
                    }
                    if nth == 1 && pings >= 1 {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

async fn ping(connection: &mut super::PipelinedConnection) -> redis::RedisResult<String> {
    redis::cmd("PING").query_async(connection).await
}

/// A connection to [`flaky_server`] that answered one `PING` and whose link has since seen
/// the server close it, so that the next caller dials; and the server's count of accepted
/// connections.
async fn answered_then_closed(
    auth_delay: Duration,
    redial: super::Redial,
) -> (
    super::PipelinedConnection,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let (port, accepted) = flaky_server(auth_delay).await;
    let url = format!("redis://:pw@127.0.0.1:{port}/");
    let info = redis::IntoConnectionInfo::into_connection_info(url.as_str()).unwrap();
    let timeouts = (Duration::from_secs(2), Duration::from_secs(1));
    let mut connection = super::PipelinedConnection::connect_to(&info, None, timeouts, redial)
        .await
        .unwrap();
    assert_eq!(ping(&mut connection).await.unwrap(), "PONG");
    // Polls a condition: the link learns of the close when its task reads the end.
    while connection.shared.current.load().link.is_open() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (connection, accepted)
}

#[tokio::test]
async fn a_dial_outlasting_the_caller_that_started_it_still_lands() {
    let auth_delay = Duration::from_millis(300);
    let (mut connection, accepted) = answered_then_closed(auth_delay, super::Redial::Yes).await;
    // This caller starts the dial and gives up long before its login is answered.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), ping(&mut connection)).await;
    assert!(gave_up.is_err(), "the dial takes {auth_delay:?}");
    tokio::time::sleep(auth_delay * 2).await;
    assert_eq!(ping(&mut connection).await.unwrap(), "PONG");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the abandoned dial was used, not a third"
    );
}

#[tokio::test]
async fn callers_during_a_dial_wait_for_it_and_share_it() {
    let (connection, accepted) =
        answered_then_closed(Duration::from_millis(100), super::Redial::Yes).await;
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let mut connection = connection.clone();
            tokio::spawn(async move { ping(&mut connection).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "PONG");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_redial_an_ended_connection_says_so_and_dials_nothing() {
    let (mut connection, accepted) = answered_then_closed(Duration::ZERO, super::Redial::No).await;
    let error = ping(&mut connection).await.unwrap_err();
    assert!(error.is_connection_dropped(), "{error}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no second dial: the owner (Sentinel) finds the server anew"
    );
}

/// `ringcast_redis_commands_waiting`, `…_commands_refused_total` and
/// `…_connections_ended_total`, counted into a recorder of the test's own.
#[test]
fn the_queue_its_refusals_and_the_end_are_counted() {
    let recorder = crate::metrics::catalog::builder().build_recorder();
    let handle = recorder.handle();
    let series = |name: &str| -> f64 {
        let text = handle.render();
        let line = text.lines().find(|line| line.starts_with(name));
        line.and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in:\n{text}"))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let limits = Limits {
                max_waiting: 2,
                ..LIMITS
            };
            let (link, driver, mut server) = pipe(limits);
            let task = run(driver);
            let first = get(&link, "a");
            let second = get(&link, "b");
            let refused = link.send(|out| out.push(b'x'), Expect::ONE);
            assert_eq!(refused.unwrap_err(), NotSent::Full);
            read_exactly(
                &mut server,
                &[packed(&["GET", "a"]), packed(&["GET", "b"])].concat(),
            )
            .await;
            assert_eq!(series("ringcast_redis_commands_waiting "), 2.0);
            server.write_all(b":1\r\n").await.unwrap();
            assert_eq!(one(first.await.unwrap()), Value::Int(1));
            assert_eq!(series("ringcast_redis_commands_waiting "), 1.0);
            drop(server);
            assert!(second.await.unwrap().is_err());
            assert!(matches!(task.await.unwrap(), Err(Ended::Closed)));
        });
    });
    assert_eq!(series("ringcast_redis_commands_waiting "), 0.0);
    assert_eq!(series("ringcast_redis_commands_refused_total "), 1.0);
    assert_eq!(
        series("ringcast_redis_connections_ended_total{reason=\"closed\"} "),
        1.0
    );
}
