//! Real Redis servers for tests: the shared one at 127.0.0.1:6379 (or a private stand-in), and
//! private `redis-server` processes on free loopback ports for tests that kill and restart
//! Redis.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the usual shared Redis answers (CI starts one; other test runs use it too, so tests
/// must keep to their own keys and never flush it).
const SHARED_ADDR: &str = "127.0.0.1:6379";
/// How long a freshly started `redis-server` may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis server a test may use: only its address is needed.
#[derive(Clone, Debug)]
pub struct RedisHandle {
    url: String,
}

impl RedisHandle {
    /// The connection URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

/// The Redis at 127.0.0.1:6379 if it answers PING and takes a write; otherwise a private
/// server started once for this test process (and stopped by its watchdog when the process
/// ends). A shared Redis that answers but refuses writes (`MISCONF`: snapshots configured into
/// a folder it cannot write) would fail every test that registers a device, for a reason that
/// is the machine's, not the code's.
pub async fn shared() -> RedisHandle {
    static SHARED: OnceLock<RedisHandle> = OnceLock::new();
    // The probe and the start are blocking but short, and happen once per process.
    SHARED
        .get_or_init(|| {
            let addr: SocketAddr = SHARED_ADDR.parse().expect("a literal socket address");
            if ping(addr, Duration::from_millis(500)) && takes_writes(addr) {
                return RedisHandle {
                    url: format!("redis://{SHARED_ADDR}/"),
                };
            }
            // Kept for the life of the process: statics are never dropped, which is why every
            // server has a watchdog that stops it when the test process exits.
            static PRIVATE: OnceLock<RedisServer> = OnceLock::new();
            let server = PRIVATE.get_or_init(RedisServer::start);
            RedisHandle { url: server.url() }
        })
        .clone()
}

/// A private `redis-server` child process on a free loopback port, with persistence off and
/// its own temporary directory. Killed on drop.
pub struct RedisServer {
    port: u16,
    /// Extra arguments it was started with, kept for `restart`.
    extra: Vec<String>,
    /// A config file to start from (a Sentinel's), before the arguments.
    config_file: Option<PathBuf>,
    dir: tempfile::TempDir,
    process: Option<Supervised>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Self {
        Self::start_with(free_port(), &[])
    }

    /// Starts a server on `port` with extra `redis-server` arguments (the cluster harness adds
    /// its cluster options) and waits until it answers PING.
    pub fn start_with(port: u16, extra: &[String]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ringcast-redis-")
            .tempdir()
            .expect("create a temporary directory for redis-server");
        let mut server = RedisServer {
            port,
            extra: extra.to_vec(),
            config_file: None,
            dir,
            process: None,
        };
        server.launch();
        server
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's private directory (its cluster config file and log live there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether it runs (it was not stopped).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the server and waits for it to exit: for "Redis is down" tests.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same port (after `stop`, or kills it first), with an
    /// empty dataset: for "Redis killed mid-test and back again" tests.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freezes the server (SIGSTOP): it keeps its connections open but answers nothing, the
    /// way a stalled or black-holed Redis looks to a client. For "never hangs" tests.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Bytes clients have sent that the server has not read yet, from the kernel's socket
    /// table (Linux). While the server is frozen nothing is read, so this grows exactly when
    /// a client sends a command: a test can wait until a request has reached the store
    /// instead of sleeping and hoping it has.
    pub fn unread_bytes(&self) -> u64 {
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .filter_map(|line| unread_on_port(line, self.port))
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Waits until clients have sent the frozen server more than `before` unread bytes, and
    /// returns the new amount: the next request's command has arrived.
    pub async fn command_arrived(&self, before: u64) -> u64 {
        super::eventually::eventually("a command to reach the frozen Redis", || {
            let now = self.unread_bytes();
            std::future::ready((now > before).then_some(now))
        })
        .await
    }

    fn signal(&self, signal: &str) {
        let process = self.process.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .args([signal, &process.server.id().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill {signal} redis-server failed: {status}"
        );
    }

    /// Starts a Redis Sentinel on a free port watching the master `name` at
    /// `127.0.0.1:master_port` (quorum 1: it alone may declare the master down and fail it
    /// over, quickly: 1 s without an answer).
    pub fn start_sentinel(name: &str, master_port: u16) -> Self {
        Self::start_sentinel_with(name, master_port, &[], &[])
    }

    /// [`RedisServer::start_sentinel`] with more `sentinel.conf` lines (`sentinel auth-pass
    /// ...`) and more `redis-server` arguments (its TLS options).
    pub fn start_sentinel_with(
        name: &str,
        master_port: u16,
        config_lines: &[String],
        extra: &[String],
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ringcast-sentinel-")
            .tempdir()
            .expect("create a temporary directory for the sentinel");
        // Sentinel rewrites its config file as it learns the topology, so it gets its own.
        let config = dir.path().join("sentinel.conf");
        let mut text = format!(
            "sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 10000\n"
        );
        for line in config_lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&config, text).expect("write sentinel.conf");
        let mut server = RedisServer {
            port: free_port(),
            extra: ["--sentinel".to_owned()]
                .into_iter()
                .chain(extra.iter().cloned())
                .collect(),
            config_file: Some(config),
            dir,
            process: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = self.dir.path().join("redis.log");
        let mut command = Command::new(redis_server_binary());
        // A config file must come first on the command line (Sentinel needs one).
        command.args(&self.config_file);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_file(&self.dir.path().join("stderr.log")));
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start redis-server on port {}: {error}", self.port)
        });
        let mut process = Supervised::new(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        while !ping(addr, Duration::from_millis(200)) {
            if let Some(status) = process.exited() {
                panic!(
                    "redis-server on port {} exited with {status} before answering:\n{}\n{}",
                    self.port,
                    read_tail(&self.dir.path().join("stderr.log")),
                    read_tail(&log)
                );
            }
            if Instant::now() > deadline {
                process.kill();
                panic!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}:\n{}",
                    self.port,
                    read_tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(process);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `redis-server` child plus a watchdog shell that kills it if this test process dies
/// without dropping it (a static, an abort, a killed test run): no stray servers.
struct Supervised {
    server: Child,
    watchdog: Option<Child>,
}

impl Supervised {
    fn new(server: Child) -> Self {
        let script = format!(
            "while kill -0 {parent} 2>/dev/null && kill -0 {child} 2>/dev/null; do sleep 1; done; kill -9 {child} 2>/dev/null",
            parent = std::process::id(),
            child = server.id()
        );
        // Without a shell there is no watchdog; the server is then only killed on drop.
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Supervised { server, watchdog }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.server.try_wait().ok().flatten()
    }

    fn kill(mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// The `redis-server` binary, or a panic saying how to get one.
pub fn redis_server_binary() -> PathBuf {
    find_binary("redis-server")
}

/// The `redis-cli` binary, or a panic saying how to get one.
pub fn redis_cli_binary() -> PathBuf {
    find_binary("redis-cli")
}

fn find_binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "`{name}` not found on PATH: these tests need a real Redis. Install Debian's \
             `redis-server` package (`apt-get install redis-server`; the CI script does)."
        )
    })
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral loopback port")
}

/// Whether a Redis at `addr` answers PING within `timeout` (a raw RESP exchange, so it needs no
/// runtime and no client). A server with a password answers `-NOAUTH ...`: up all the same.
pub fn ping(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err() || stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && (&answer == b"+PONG\r\n" || &answer == b"-NOAUTH")
}

/// Whether the Redis at `addr` accepts a write (a key that expires in a second).
fn takes_writes(addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(500);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let probe = b"SET ringcast:test:write-probe 1 PX 1000\r\n";
    if stream.set_read_timeout(Some(timeout)).is_err() || stream.write_all(probe).is_err() {
        return false;
    }
    let mut answer = [0u8; 5];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+OK\r\n"
}

/// A file for a server's stderr (start-up errors come before its log file opens).
fn stderr_file(path: &Path) -> Stdio {
    std::fs::File::create(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// The end of a server log, for panic messages.
fn read_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_else(|error| format!("(no log: {error})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The receive queue of one `/proc/net/tcp` line if it is an established connection
/// accepted on `port`: `sl local_address rem_address st tx_queue:rx_queue ...`, addresses,
/// state and queues in hex (state `01` is ESTABLISHED; a listening socket's queue counts
/// connections, not bytes).
fn unread_on_port(line: &str, port: u16) -> Option<u64> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, state, queues) = (fields.get(1)?, fields.get(3)?, fields.get(4)?);
    let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
    if local_port != port || *state != "01" {
        return None;
    }
    u64::from_str_radix(queues.split(':').nth(1)?, 16).ok()
}
