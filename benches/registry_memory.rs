//! Redis memory per registration, and registrations/s, at carrier scale.
//!
//! Starts a private `redis-server` on a free loopback port (no persistence,
//! `hash-max-listpack-value 128` as the README recommends), registers N registrations through
//! [`RedisSingleStore`] with 64 in flight, and prints the `used_memory` delta ÷ registrations,
//! the registration rate, and the CPU time per registration of Redis (`used_cpu_user` +
//! `used_cpu_sys`) and of the store's side (this process): the rate depends on the machine and
//! on how busy it is, the work per registration much less. The server is killed at the end; the shared Redis is untouched.
//!
//! ```text
//! cargo bench --bench registry_memory -- --mix apns          # 1 M identities × 1 APNs device
//! cargo bench --bench registry_memory -- --mix apns-both     # the same, with alert tokens
//! cargo bench --bench registry_memory -- --mix e2e           # benches/e2e.sh's mix, 1 M devices
//! cargo bench --bench registry_memory -- --registrations 200000 --owner-buckets 4096
//! ```
//!
//! The e2e mix is `benches/e2e.sh`'s scenario scaled up: identities with 1 and 5 devices
//! alternately, platforms apns:fcm:wns:webpush = 2:1:1:1 drawn by [`Scenario::platform_of`],
//! token shapes and app names as `registration_body` in `src/loadgen/registration.rs` sends them.

#[path = "support/cpu.rs"]
mod cpu;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, ValueEnum};
use ringcast::loadgen::Scenario;
use ringcast::loadgen::registration::device_token_digits;
use ringcast::registry::redis::{RedisOptions, RedisSingleStore};
use ringcast::registry::{Environment, IdentityKey, PushAddress, Registration, Store};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What to register.
#[derive(Parser)]
struct Args {
    /// Which registrations: one APNs device per identity, or the end-to-end bench's mix.
    #[arg(long, value_enum, default_value = "apns")]
    mix: Mix,
    /// How many registrations (devices) to register.
    #[arg(long, default_value_t = 1_000_000)]
    registrations: usize,
    /// Registrations in flight at once, over the store's one multiplexed connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Owner-index buckets per tenant (`[registry.redis] owner_buckets`).
    #[arg(long, default_value_t = RedisOptions::default().owner_buckets)]
    owner_buckets: u32,
    /// `cargo bench` passes `--bench` to every bench binary; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mix {
    /// One APNs device (`d0`, app `ios`) per identity.
    Apns,
    /// The same with the app's regular token too (`alert_token`), as the load generator
    /// registers them: what an alert token costs (a record tail and an owner entry).
    ApnsBoth,
    /// Identities with 1 and 5 devices alternately, apns:fcm:wns:webpush = 2:1:1:1.
    E2e,
}

/// The tenant every registration goes to (the e2e bench's demo tenant).
const TENANT: &str = "demo";
/// The API's default TTL: one day.
const TTL_MS: u64 = 86_400_000;

fn main() {
    let args = Args::parse();
    let scenario = scenario(args.mix);
    let devices = devices(&scenario, args.registrations);
    let server = PrivateRedis::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let store = connect(&server.url(), args.owner_buckets).await;
        let before = used_memory(&server.url()).await;
        let cpu_before = cpu::redis_seconds(&server.url()).await;
        let own_before = cpu::process_seconds();
        let started = Instant::now();
        register_all(
            &store,
            &scenario,
            Arc::new(devices.clone()),
            args.concurrency,
            matches!(args.mix, Mix::ApnsBoth),
        )
        .await;
        let elapsed = started.elapsed();
        let own = cpu::process_seconds() - own_before;
        let cpu = cpu::redis_seconds(&server.url()).await - cpu_before;
        let after = used_memory(&server.url()).await;
        let keys = dbsize(&server.url()).await;
        let count = devices.len();
        println!(
            "registry_memory: mix {mix}, {count} registrations ({identities} identities), \
             {keys} keys: used_memory {before} -> {after} B = {per:.1} B per registration; \
             {buckets} owner buckets; {rate:.0} registrations/s ({secs:.1} s, \
             {concurrency} in flight), \
             Redis CPU {cpu_us:.1} µs and the store's (this process) {own_us:.1} µs \
             per registration",
            mix = args.mix.name(),
            identities = devices.last().map_or(0, |&(identity, _)| identity + 1),
            per = (after.saturating_sub(before)) as f64 / count as f64,
            rate = count as f64 / elapsed.as_secs_f64(),
            secs = elapsed.as_secs_f64(),
            concurrency = args.concurrency,
            cpu_us = cpu * 1e6 / count as f64,
            own_us = own * 1e6 / count as f64,
            buckets = args.owner_buckets,
        );
    });
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Apns => "apns",
            Mix::ApnsBoth => "apns-both",
            Mix::E2e => "e2e",
        }
    }
}

/// The load generator's scenario for the mix: only its identity names, device counts and
/// platform draw are used.
fn scenario(mix: Mix) -> Scenario {
    let (devices, platforms) = match mix {
        Mix::Apns | Mix::ApnsBoth => (vec![1], BTreeMap::from([("apns".to_owned(), 1)])),
        Mix::E2e => (
            vec![1, 5],
            BTreeMap::from([
                ("apns".to_owned(), 2),
                ("fcm".to_owned(), 1),
                ("wns".to_owned(), 1),
                ("webpush".to_owned(), 1),
            ]),
        ),
    };
    Scenario {
        devices_per_identity: devices,
        platforms,
        ..Scenario::default()
    }
}

/// `(identity, device)` pairs, identity by identity, until `count` devices.
fn devices(scenario: &Scenario, count: usize) -> Vec<(usize, usize)> {
    (0..)
        .flat_map(|identity| (0..scenario.devices_of(identity)).map(move |d| (identity, d)))
        .take(count)
        .collect()
}

/// Device `device` of identity `identity` as the API would store it from the load
/// generator's request (`registration_body` in `src/loadgen/registration.rs`: same token, app
/// and device id).
fn registration(
    scenario: &Scenario,
    identity: usize,
    device: usize,
    alert_tokens: bool,
    now: u64,
) -> Registration {
    let unique = device_token_digits(scenario, identity, device);
    let (app, address) = match scenario.platform_of(identity, device) {
        "fcm" => (
            "android",
            PushAddress::Fcm {
                token: format!("loadgen:{unique}"),
            },
        ),
        "wns" => (
            "windows",
            PushAddress::Wns {
                channel: format!("https://db5p.notify.windows.com/w/?token={unique}"),
            },
        ),
        "webpush" => (
            "web",
            PushAddress::WebPush {
                endpoint: format!("https://fcm.googleapis.com/fcm/send/{unique}"),
                p256dh: key(
                    "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                ),
                auth: key("tBHItJI5svbpez7KI4CCXg"),
            },
        ),
        _ => (
            "ios",
            PushAddress::Apns {
                token: hex::decode(format!("{unique:0>64}")).expect("hex digits"),
                alert_token: alert_tokens
                    .then(|| hex::decode(format!("00a1{unique:0>60}")).expect("hex digits")),
            },
        ),
    };
    Registration {
        device_id: format!("d{device}"),
        app: app.to_owned(),
        address,
        environment: Environment::Production,
        disable_internal_push: false,
        created_at: now,
        updated_at: now,
        expires_at: now + TTL_MS,
    }
}

fn key<const N: usize>(base64url: &str) -> [u8; N] {
    let bytes = URL_SAFE_NO_PAD.decode(base64url).expect("base64url");
    bytes.try_into().expect("the key's length")
}

/// Registers every device, `concurrency` tasks pulling from one shared cursor.
async fn register_all(
    store: &RedisSingleStore,
    scenario: &Scenario,
    devices: Arc<Vec<(usize, usize)>>,
    concurrency: usize,
    alert_tokens: bool,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, scenario, devices, next) = (
                store.clone(),
                scenario.clone(),
                devices.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                while let Some(&(identity, device)) =
                    devices.get(next.fetch_add(1, Ordering::Relaxed))
                {
                    let who = IdentityKey::new(TENANT, scenario.identity(identity));
                    let registration =
                        registration(&scenario, identity, device, alert_tokens, now());
                    store.register(&who, &registration).await.expect("register");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a registering task");
    }
}

async fn connect(url: &str, owner_buckets: u32) -> RedisSingleStore {
    let options = RedisOptions {
        // Long enough for a busy 2-core machine; the bench measures memory, not timeouts.
        command_timeout: Duration::from_secs(10),
        owner_buckets,
        ..RedisOptions::default()
    };
    RedisSingleStore::connect(url, &options)
        .await
        .expect("connect to the private redis-server")
}

/// `used_memory` from `INFO memory`: what Redis's allocator holds for data and overhead.
async fn used_memory(url: &str) -> u64 {
    let info: String = query(url, redis::cmd("INFO").arg("memory")).await;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

async fn dbsize(url: &str) -> u64 {
    query(url, &redis::cmd("DBSIZE")).await
}

async fn query<T: redis::FromRedisValue>(url: &str, command: &redis::Cmd) -> T {
    let client = redis::Client::open(url).expect("a redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    command.query_async(&mut connection).await.expect("query")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A `redis-server` of this bench's own, killed on drop.
struct PrivateRedis {
    port: u16,
    process: Child,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> Self {
        // Bind port 0 to learn a free port, then hand it to redis-server.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let process = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--hash-max-listpack-value", "128"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        let server = PrivateRedis {
            port,
            process,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
