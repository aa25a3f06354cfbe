//! The cluster connection against scripted nodes on loopback: how it follows `ASK` and
//! `MOVED`, gives up on nodes that redirect in circles, and finds a master's successor. The
//! store's contract, a live resharding and failovers under load run against a real Redis
//! Cluster (tests/store_contract.rs, tests/cluster/failover.rs).

use super::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What a scripted node answers to a command (its arguments), and whether it saw `ASKING`
/// just before.
type Script = Arc<dyn Fn(&[String], bool) -> String + Send + Sync>;

/// A scripted node: it records every command it reads and answers as its script says.
struct Node {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
    /// Its accepting task and each connection's.
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Node {
    /// Starts a node whose script `script(port)` makes, knowing the node's own port.
    async fn start(script: impl FnOnce(u16) -> Script) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = script(port);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let serving = Arc::clone(&tasks);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        let accepting = tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let (script, recorded) = (Arc::clone(&script), Arc::clone(&recorded));
                let task = tokio::spawn(serve(socket, script, recorded));
                serving.lock().unwrap().push(task);
            }
        });
        tasks.lock().unwrap().push(accepting);
        Node {
            port,
            seen,
            accepted,
            tasks,
        }
    }

    /// Stops listening and closes every connection, as a killed server does.
    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The commands it read, each as its arguments joined by spaces.
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, command: &str) -> usize {
        self.seen().iter().filter(|seen| *seen == command).count()
    }
}

/// Answers one client's commands until it leaves.
async fn serve(socket: tokio::net::TcpStream, script: Script, recorded: Arc<Mutex<Vec<String>>>) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut asking = false;
    while let Some(args) = read_command(&mut read).await {
        recorded.lock().unwrap().push(args.join(" "));
        if args[0] == "ASKING" {
            asking = true;
            write.write_all(b"+OK\r\n").await.unwrap();
            continue;
        }
        let reply = script(&args, std::mem::take(&mut asking));
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One RESP request (`*<n>` then `n` bulk strings), or `None` once the client left.
async fn read_command(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<String>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0; len + 2];
        read.read_exact(&mut arg).await.ok()?;
        arg.truncate(len);
        args.push(String::from_utf8(arg).ok()?);
    }
    Some(args)
}

/// A `CLUSTER SLOTS` reply: every slot on the master at `port`.
fn all_slots_on(port: u16) -> String {
    format!("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:{port}\r\n")
}

fn bulk(text: &str) -> String {
    format!("${}\r\n{text}\r\n", text.len())
}

fn get(key: &str) -> Cmd {
    redis::cmd("GET").arg(key).clone()
}

async fn connect(nodes: &[&Node]) -> OwnCluster {
    let urls: Vec<String> = nodes.iter().map(|node| node.url()).collect();
    let second = Duration::from_secs(1);
    OwnCluster::connect(&urls, None, second, second)
        .await
        .unwrap()
}

const KEY: &str = "{acme:alice}";

fn slot() -> u16 {
    key_slot(KEY.as_bytes())
}

#[tokio::test]
async fn an_ask_sends_asking_and_the_command_to_the_node_named_once_and_keeps_the_map() {
    // B serves the key only when asked with `ASKING` first, as a node importing a slot does.
    let b = Node::start(|_| {
        Arc::new(|args: &[String], asking| match args[0].as_str() {
            "GET" if asking => bulk("moved-here"),
            "GET" => format!("-MOVED {} 127.0.0.1:1\r\n", slot()),
            _ => "-ERR unexpected\r\n".into(),
        })
    })
    .await;
    let to = b.port;
    let a = Node::start(|me| {
        Arc::new(move |args: &[String], _| match args[0].as_str() {
            "CLUSTER" => all_slots_on(me),
            "GET" => format!("-ASK {} 127.0.0.1:{to}\r\n", slot()),
            _ => "-ERR unexpected\r\n".into(),
        })
    })
    .await;
    let cluster = connect(&[&a]).await;

    for _ in 0..2 {
        let value = cluster.command(&get(KEY)).await.unwrap();
        assert_eq!(value, Value::BulkString(b"moved-here".to_vec()));
    }
    assert_eq!(a.count(&format!("GET {KEY}")), 2, "the map still names A");
    assert_eq!(
        b.seen(),
        ["ASKING", &format!("GET {KEY}")].repeat(2),
        "ASKING right before each command"
    );
    assert_eq!(a.count("CLUSTER SLOTS"), 1, "an ASK reads no map");
    assert_eq!(
        b.accepted.load(Ordering::SeqCst),
        1,
        "one connection to a node the map does not name, kept for every ASK there"
    );
}

#[tokio::test]
async fn the_connection_kept_for_asks_serves_the_node_once_the_map_names_it() {
    let b = Node::start(|_| {
        Arc::new(|args: &[String], _| match args[0].as_str() {
            "GET" => bulk("from-b"),
            _ => "-ERR unexpected\r\n".into(),
        })
    })
    .await;
    // A's slot moves to B: first each key is ASKed there, then the slot is B's.
    let finished = Arc::new(AtomicBool::new(false));
    let (to, flag) = (b.port, Arc::clone(&finished));
    let a = Node::start(|me| {
        Arc::new(
            move |args: &[String], _| match (args[0].as_str(), flag.load(Ordering::SeqCst)) {
                ("CLUSTER", false) => all_slots_on(me),
                ("CLUSTER", true) => all_slots_on(to),
                ("GET", false) => format!("-ASK {} 127.0.0.1:{to}\r\n", slot()),
                ("GET", true) => format!("-MOVED {} 127.0.0.1:{to}\r\n", slot()),
                _ => "-ERR unexpected\r\n".into(),
            },
        )
    })
    .await;
    let cluster = connect(&[&a]).await;
    for finish in [false, false, true, true] {
        finished.store(finish, Ordering::SeqCst);
        let value = cluster.command(&get(KEY)).await.unwrap();
        assert_eq!(value, Value::BulkString(b"from-b".to_vec()));
    }
    assert_eq!(b.seen().iter().filter(|seen| *seen == "ASKING").count(), 2);
    assert_eq!(
        b.accepted.load(Ordering::SeqCst),
        1,
        "the map's reading took over the connection the ASKs opened"
    );
}

#[tokio::test]
async fn a_moved_reads_the_map_again_and_later_commands_go_straight_to_the_new_master() {
    let moved = Arc::new(AtomicBool::new(false));
    let b = Node::start(|_| {
        Arc::new(|args: &[String], _| match args[0].as_str() {
            "GET" => bulk("from-b"),
            _ => "-ERR unexpected\r\n".into(),
        })
    })
    .await;
    let (to, flag) = (b.port, Arc::clone(&moved));
    let a = Node::start(|me| {
        Arc::new(
            move |args: &[String], _| match (args[0].as_str(), flag.load(Ordering::SeqCst)) {
                ("CLUSTER", false) => all_slots_on(me),
                ("CLUSTER", true) => all_slots_on(to),
                ("GET", false) => bulk("from-a"),
                ("GET", true) => format!("-MOVED {} 127.0.0.1:{to}\r\n", slot()),
                _ => "-ERR unexpected\r\n".into(),
            },
        )
    })
    .await;
    let cluster = connect(&[&a]).await;
    let value = cluster.command(&get(KEY)).await.unwrap();
    assert_eq!(value, Value::BulkString(b"from-a".to_vec()));

    // The slot moves to B: A answers MOVED, and its map names B.
    moved.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let value = cluster.command(&get(KEY)).await.unwrap();
        assert_eq!(value, Value::BulkString(b"from-b".to_vec()));
    }
    assert_eq!(
        a.count(&format!("GET {KEY}")),
        2,
        "one MOVED, then straight to B"
    );
    assert_eq!(
        a.count("CLUSTER SLOTS"),
        2,
        "read at the start and after the MOVED"
    );
    assert_eq!(b.count(&format!("GET {KEY}")), 3);
    assert!(
        !b.seen().contains(&"ASKING".to_owned()),
        "MOVED needs no ASKING"
    );
}

#[tokio::test]
async fn nodes_that_redirect_in_circles_are_given_up_on() {
    let circle = Node::start(|me| {
        Arc::new(move |args: &[String], _| match args[0].as_str() {
            "CLUSTER" => all_slots_on(me),
            _ => format!("-ASK {} 127.0.0.1:{me}\r\n", slot()),
        })
    })
    .await;
    let cluster = connect(&[&circle]).await;
    let error = cluster.command(&get(KEY)).await.unwrap_err();
    assert!(error.to_string().contains("too many times"), "{error}");
    assert_eq!(circle.count(&format!("GET {KEY}")), MAX_HOPS);

    // A node an `ASK` names that cannot be reached: an error at once, no loop.
    let astray = Node::start(|me| {
        Arc::new(move |args: &[String], _| match args[0].as_str() {
            "CLUSTER" => all_slots_on(me),
            _ => format!("-ASK {} 127.0.0.1:1\r\n", slot()),
        })
    })
    .await;
    let cluster = connect(&[&astray]).await;
    let error = cluster.command(&get(KEY)).await.unwrap_err();
    assert!(error.is_io_error(), "{error}");
}

#[tokio::test]
async fn a_master_out_of_reach_fails_fast_and_its_successor_is_found() {
    let b = Node::start(|_| {
        Arc::new(|args: &[String], _| match args[0].as_str() {
            "GET" => bulk("from-b"),
            _ => "-ERR unexpected\r\n".into(),
        })
    })
    .await;
    let a = Node::start(|_| {
        Arc::new(|args: &[String], _| match args[0].as_str() {
            "GET" => bulk("from-a"),
            _ => "-ERR unexpected\r\n".into(),
        })
    })
    .await;
    // The map every node gives: every slot on A until A is gone, then on B (its replica,
    // which took over).
    let a_gone = Arc::new(AtomicBool::new(false));
    let (a_port, b_port, gone) = (a.port, b.port, Arc::clone(&a_gone));
    let map = Node::start(|_| {
        Arc::new(move |args: &[String], _| match args[0].as_str() {
            "CLUSTER" if gone.load(Ordering::SeqCst) => all_slots_on(b_port),
            "CLUSTER" => all_slots_on(a_port),
            _ => "-ERR only the map here\r\n".into(),
        })
    })
    .await;
    let cluster = connect(&[&map]).await;
    let value = cluster.command(&get(KEY)).await.unwrap();
    assert_eq!(value, Value::BulkString(b"from-a".to_vec()));

    // A dies: its listener and its connections close.
    a.stop();
    a_gone.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let value = loop {
        match cluster.command(&get(KEY)).await {
            Ok(value) => break value,
            Err(error) => assert!(error.is_io_error(), "{error}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "B never found");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(value, Value::BulkString(b"from-b".to_vec()));
}

#[test]
fn a_redirection_names_its_node() {
    let error = |text: &str| match redis::parse_redis_value(text.as_bytes()).unwrap() {
        Value::ServerError(error) => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        redirection(&error("-MOVED 3999 127.0.0.1:6381\r\n")),
        Some(("127.0.0.1".to_owned(), 6381))
    );
    assert_eq!(
        redirection(&error("-ASK 3999 redis-2.example:7000\r\n")),
        Some(("redis-2.example".to_owned(), 7000))
    );
    assert_eq!(redirection(&error("-MOVED 3999\r\n")), None);
    assert_eq!(redirection(&error("-MOVED 3999 nohost\r\n")), None);
}
