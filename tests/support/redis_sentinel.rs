//! Driving a Redis Sentinel in tests: a master that asks for a password, and a forced
//! failover, waited for until it is complete.

use super::redis_server::{RedisServer, free_port};
use std::time::{Duration, Instant};

/// How long Sentinel may take to see the replica, promote it and demote the old master.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two looks at the topology.
const POLL: Duration = Duration::from_millis(100);

/// A master, a replica of it, and a Sentinel watching the master as `name`: what a
/// failover needs.
pub struct Replicated {
    /// The master.
    pub master: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    /// The Sentinel watching the master.
    pub sentinel: RedisServer,
}

impl Replicated {
    /// Starts all three.
    pub fn start(name: &str) -> Self {
        let master = RedisServer::start();
        let replica_of = [
            "--replicaof".to_owned(),
            "127.0.0.1".into(),
            master.port().to_string(),
        ];
        let replica = RedisServer::start_with(free_port(), &replica_of);
        let sentinel = RedisServer::start_sentinel(name, master.port());
        Replicated {
            master,
            replica,
            sentinel,
        }
    }
}

/// A master that asks for a password (`requirepass`) and also has an ACL user of its own, and
/// a Sentinel watching it that knows the `requirepass` one (`sentinel auth-pass`): operators
/// give the node an ACL user and Sentinel its own login.
pub struct ProtectedMaster {
    /// The master.
    pub master: RedisServer,
    /// The Sentinel watching it.
    pub sentinel: RedisServer,
}

impl ProtectedMaster {
    /// Starts both: the master as `name`, with `requirepass` (the Sentinel's login) and the
    /// ACL user `user` with `user_password` allowed everything.
    pub fn start(name: &str, requirepass: &str, user: &str, user_password: &str) -> Self {
        let master = RedisServer::start_with(
            free_port(),
            &[
                "--requirepass".to_owned(),
                requirepass.into(),
                "--user".into(),
                user.into(),
                "on".into(),
                format!(">{user_password}"),
                "~*".into(),
                "&*".into(),
                "+@all".into(),
            ],
        );
        let sentinel = RedisServer::start_sentinel_with(
            name,
            master.port(),
            &[format!("sentinel auth-pass {name} {requirepass}")],
            &[],
        );
        ProtectedMaster { master, sentinel }
    }

    /// Whether `key` exists in database `db` of the master, asked as `user`.
    pub async fn key_exists(&self, user: &str, password: &str, db: u32, key: &str) -> bool {
        let url = format!(
            "redis://{user}:{password}@127.0.0.1:{}/{db}",
            self.master.port()
        );
        let mut connection = redis::Client::open(url)
            .expect("a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("log in to the protected master");
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut connection)
            .await
            .expect("EXISTS")
            == 1
    }
}

/// Runs `SENTINEL FAILOVER name` (once Sentinel knows a replica it may promote) and waits
/// until Sentinel names `replica` as the master and `old_master` has become a replica, so
/// that no write can land on the old master afterwards.
pub async fn fail_over(
    sentinel: &RedisServer,
    name: &str,
    old_master: &RedisServer,
    replica: &RedisServer,
) {
    let mut sentinel_connection = connect(sentinel).await;
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    // Refused with NOGOODSLAVE until Sentinel has discovered the replica and it is in sync.
    loop {
        let answer: redis::RedisResult<String> = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(name)
            .query_async(&mut sentinel_connection)
            .await;
        match answer {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(POLL).await;
            }
            Err(error) => panic!("SENTINEL FAILOVER {name} kept failing: {error}"),
        }
    }
    let promoted = replica.port().to_string();
    loop {
        let address: Vec<String> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(name)
            .query_async(&mut sentinel_connection)
            .await
            .expect("ask Sentinel for the master");
        let demoted = role(old_master).await.as_deref() == Some("slave");
        if address.get(1) == Some(&promoted) && demoted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the failover did not complete within {FAILOVER_TIMEOUT:?} (master now {address:?}, \
             old master demoted: {demoted})"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Makes `new_master` the master that Sentinel names `name` and turns `old_master` into its
/// replica with `REPLICAOF`, which, unlike Sentinel's own failover, keeps the old master's
/// clients connected: their writes are answered `READONLY` from then on.
pub async fn demote_keeping_clients(
    sentinel: &RedisServer,
    name: &str,
    old_master: &RedisServer,
    new_master: &RedisServer,
) {
    let mut sentinel_connection = connect(sentinel).await;
    let port = new_master.port().to_string();
    for command in [
        redis::cmd("SENTINEL").arg("REMOVE").arg(name).clone(),
        redis::cmd("SENTINEL")
            .arg("MONITOR")
            .arg(name)
            .arg("127.0.0.1")
            .arg(&port)
            .arg(1)
            .clone(),
    ] {
        let _: () = command
            .query_async(&mut sentinel_connection)
            .await
            .expect("reconfigure Sentinel");
    }
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut connect(new_master).await)
        .await
        .expect("promote the new master");
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&port)
        .query_async(&mut connect(old_master).await)
        .await
        .expect("demote the old master");
    assert_eq!(role(old_master).await.as_deref(), Some("slave"));
}

/// Whether `key` exists on `server`.
pub async fn key_exists(server: &RedisServer, key: &str) -> bool {
    let mut connection = connect(server).await;
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(&mut connection)
        .await
        .expect("EXISTS")
        == 1
}

/// `role:` from `INFO replication` (`master` or `slave`), if the server answers.
async fn role(server: &RedisServer) -> Option<String> {
    let mut connection = connect(server).await;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("role:"))
        .map(|role| role.trim().to_owned())
}

async fn connect(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to a test Redis")
}
