//! The Redis store: one server ([`RedisSingleStore`]), a Redis Cluster ([`RedisClusterStore`]),
//! or the master Redis Sentinel names ([`RedisSentinelStore`]); each over TLS with `rediss://`
//! ([`tls`]).
//!
//! # Key layout
//!
//! - **One hash per identity**, key `{<tenant>:<identity>}`: field = device id, value =
//!   [`codec::encode`] of the registration. The whole key is its hash tag, so an identity lives
//!   on one cluster slot and every operation on it is one atomic Lua script. The key's TTL is
//!   the latest `expires_at` among its live devices, set as a relative `PEXPIRE`
//!   (`latest - now`, `now` being the caller's time), so Redis reclaims an identity by itself
//!   once its last device expires: no sweeper. Each record carries its own `expires_at`: reads
//!   skip expired fields (at the caller's `now`), and every write prunes them in its script.
//!   One key per identity rather than one key per registration plus a device-set key saves a
//!   top-level key (~100 B in Redis) per registration; docs/architecture.md's target is ≤ 300 B each.
//! - **An owner index in hash buckets** ("one token, one owner" within a tenant), see
//!   [`owners`]: the token's digest `SHA-256(platform ++ token)` picks one of `owner_buckets`
//!   bucket hashes per tenant, key `o:<tenant>:<bucket in hex>`; the entry's field is 12 raw
//!   digest bytes, its value `expires_at` (4 bytes, whole seconds rounded up) ++
//!   `identity \0 device`.
//!   No hash tag: buckets spread over the cluster, and a token's bucket is usually on another
//!   slot than its identity. Redis 7.0 has no per-field TTL (`HEXPIRE` is 7.4), so every
//!   script that writes a bucket prunes its expired entries and sets the bucket's TTL to the
//!   latest expiry among the rest. A bucket whose entries all expired thus disappears by itself,
//!   and **a stale entry lives at most until its bucket is next written** (any registration,
//!   refresh or release of any token in that bucket), and never past its bucket's TTL. A stale
//!   entry never misdirects: claims skip expired entries, and step 3 below checks the holder's
//!   record itself before it deletes anything.
//!
//! - **A revocation per revoked identity**, key `{<tenant>:<identity>}:revoked` (the identity's
//!   hash tag, so its slot): a string `<revoked at> <forget at>` in UNIX ms, set with
//!   `PX keep_ms` so Redis drops it once every token it could refuse has expired anyway
//!   ([`super::revocation`]). Reads compare the forget time with the caller's `now` too, so a
//!   record that Redis has not yet dropped behaves as in the other stores.
//!
//! # Memory
//!
//! A top-level key costs ~100 B before its value (dict entry, expires entry, key string,
//! object header), so keys are what the ≤ 300 B target is about: one per identity, and the
//! owner index shares one bucket key among ~16 tokens, where one owner key per token cost
//! ~165 B alone. Measured on Redis 7.0.15 with `hash-max-listpack-value 128`, through this
//! store (`cargo bench --bench registry_memory`, `used_memory` delta ÷ registrations):
//!
//! | 1 M registrations | owner key per token | owner buckets (65,536) |
//! |---|---|---|
//! | one APNs device per identity (`--mix apns`) | 369.7 B | 289.8 B |
//! | 1 or 5 devices per identity, apns:fcm:wns:webpush 2:1:1:1 (`--mix e2e`) | 377.1 B | 255.1 B |
//!
//! An owner entry costs ~46 B (12-byte field, 4 + 17-byte value, listpack headers, and a
//! sixteenth of its bucket's key and of allocator rounding). Redis's key tables grow by
//! doubling: 1,065,536 keys (1 M identities + 65,536 buckets) just passed 2²⁰, so the main and
//! the expires table hold 2²¹ slots and ~32 B of the 289.8 B are empty slots; with
//! `--owner-buckets 32768` (1,032,768 keys) the same run gives 253.0 B. Between two doublings
//! that share is somewhere between 16 and 32 B per key, whatever the layout. An 8-byte
//! millisecond expiry in the entries measured 294.1 B and 259.5 B. Redis CPU per registration
//! (same runs, busy 2-core machine) rose from ~33-36 µs to ~46-50 µs: the claim is a script
//! that reads its whole bucket (~16 entries) instead of a `SET ... GET`.
//!
//! Two Redis settings decide whether hashes stay compact listpacks (a few bytes per field)
//! rather than hash tables (~50-100 B more per field):
//!
//! - `hash-max-listpack-value` (default 64) must exceed the largest field or value: an APNs
//!   record is ~66-79 bytes, so deployments set it to 128 (the node warns at start-up when it
//!   is lower). An owner entry's value is 5 + identity + device id bytes.
//! - `hash-max-listpack-entries` (default 128) bounds the entries of a bucket. **Sizing rule:**
//!   `owner_buckets` ≈ the largest tenant's registrations ÷ 16 to ÷ 32 (the default 65,536
//!   suits 1-2 M per tenant). A bucket's count is near Poisson around the mean, so a mean up
//!   to ~64 keeps every bucket below 128; from a mean of ~100 a few percent of the buckets
//!   pass 128 and become hash tables, and at ~128 × `owner_buckets` registrations most do.
//!   Each claim reads its whole bucket, so Redis CPU per registration also grows with the
//!   mean. A tenant with few registrations has about one bucket per token, the cost of an
//!   owner key, until its buckets fill.
//!
//! One more setting bounds the latency of every command: `hz` (default 10). Each call event's
//! hash expires at the event's deadline, so a node ringing N calls/s has Redis expire N keys
//! a second in the background, in cycles of up to a quarter of `1 / hz` (25 ms at 10) that
//! every command waits behind: `benches/e2e.sh` at ~7,000 calls/s recorded `expire-cycle`
//! latency events of 23 and 25 ms at hz 10 and none over 6 ms at hz 100. Deployments set
//! `hz 100`; the node warns at start-up below 50.
//!
//! Changing `owner_buckets` on live data moves every token to another bucket: the old buckets
//! are no longer written and expire with their entries, and until a device registers again
//! (at most its TTL), its token is unknown to the index, so moving it to another identity
//! would leave it on the old one too. Change it on an empty store, or accept that window.
//! Upgrading from the former one owner key per token (`o:<tenant>:<22 base64url characters>`,
//! strings) opens the same window: those keys are no longer read and expire with their
//! registrations, and their names never collide with a bucket's (at most 8 hex digits).
//! Both parts of an entry's slot come from the 16 digest bytes such a key names, so a
//! converter could carry them over without the tokens; none exists yet.
//!
//! # Registering, step by step
//!
//! The identity hash and the token's bucket live on different slots, so a registration is
//! three atomic steps, not one:
//!
//! 1. [`scripts::REGISTER`] on the identity: write or refresh the device (keeping `created_at`),
//!    prune expired devices, enforce the device limit for new devices, delete another device
//!    of the same identity that holds the same token, set the TTL; return the old record. If
//!    the device's token changed, the old token's owner entry is released
//!    ([`scripts::RELEASE_OWNER`], compare-and-delete).
//! 2. [`scripts::CLAIM_OWNER`] on the token's bucket claims the token: it sets the entry to
//!    this device and returns the previous holder, atomically (an expired entry is none).
//! 3. If the previous holder is another device, [`scripts::DELETE_IF_HOLDS`] on *its* identity
//!    deletes that device only if its record still holds this exact token and is live; only
//!    then is `moved_from` reported (an expired or re-tokened owner is no owner).
//!
//! Why this stays correct: the owner entry is the arbiter, and the last writer of it wins. Two
//! identities registering one token concurrently both write their hash (step 1); whichever
//! claim runs second sees the first as previous holder and deletes its device (step 3), so the
//! survivor is the entry's holder. Step 3 checks the token inside its script, so it never
//! deletes a device that meanwhile moved to another token. A crash (or timeout) between steps
//! leaves at worst the token on two identities until it is next registered, which repeats
//! steps 2-3; it never loses the registration that was written. Releases (token change,
//! unregister, revoke, dead token) compare the holder before deleting, so they never free a
//! token another identity holds meanwhile. Other tokens' entries in the same bucket play no
//! part: each script changes one field, besides pruning entries that have expired.
//!
//! # Failures
//!
//! Every command runs under `command_timeout`; each store's connection reconnects on its own
//! (one server: ringcast's own [`pipelined`] connection, or the crate's `ConnectionManager`
//! with bounded retries; see [`SingleConnection`]; a cluster: one own connection per master,
//! found again from the slot map, see [`cluster`], or the crate's cluster client), so while
//! Redis is down calls fail fast with [`StoreError::Unavailable`] and work again once it is
//! back, without restarting the node.

mod claims;
pub mod cluster;
pub mod command;
mod keys;
mod owners;
pub mod pipelined;
pub mod resp;
mod scripts;
pub mod sentinel;
mod settings;
mod single;
pub mod tls;

pub use pipelined::Bookkeeping;
pub use single::{EitherClient, RedisClient, SingleConnection};

use super::codec;
use super::lease::{Claim, LeaseTerms};
use super::registration::{Environment, IdentityKey, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};
use command::ScriptCall;
use owners::OwnerSlot;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{ErrorKind, RedisError, RedisResult};
use std::future::Future;
use std::time::Duration;

/// How the Redis store connects and what it enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Most live devices one identity may register; it bounds the size of an identity's hash
    /// (and the work of its scripts), and stops a runaway client from filling memory.
    pub max_devices_per_identity: u32,
    /// Longest wait for a TCP connection to a Redis node; short, so that a dead node is
    /// reported as unavailable quickly instead of piling up requests.
    pub connect_timeout: Duration,
    /// Longest wait for one command's answer; every call is bounded by it so a stalled Redis
    /// turns into `503 Retry-After` at the API, never a hung request.
    pub command_timeout: Duration,
    /// Owner-index buckets per tenant (module doc, "Memory"): about the largest tenant's
    /// registrations ÷ 16 to ÷ 32, so each bucket stays a small listpack. Changing it on a live
    /// deployment moves every token's entry to another bucket; see the module doc first.
    pub owner_buckets: u32,
    /// Which client the store speaks with: ringcast's own (the default) or the crate's.
    pub client: RedisClient,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            max_devices_per_identity: 64,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
            owner_buckets: owners::DEFAULT_BUCKETS,
            client: RedisClient::default(),
        }
    }
}

/// A handle on the registry kept in Redis; cheap to clone (it clones a multiplexed connection).
#[derive(Clone)]
pub struct RedisStore<C> {
    /// The connection: a reconnecting manager for one server, a cluster connection otherwise.
    /// Both multiplex every clone over the same socket(s), so no pool is needed.
    connection: C,
    /// Limits and timeouts, copied from the configuration at connect time.
    options: RedisOptions,
    /// `redis` or `redis-cluster`: the store's label in metrics and logs.
    name: &'static str,
}

/// The store over one Redis server.
pub type RedisSingleStore = RedisStore<SingleConnection>;
/// The store over a Redis Cluster.
pub type RedisClusterStore = RedisStore<ClusterConnection>;
/// A Redis Cluster's connection: the crate's cluster client, or ringcast's own
/// ([`cluster`]).
pub type ClusterConnection =
    EitherClient<redis::cluster_async::ClusterConnection, cluster::OwnCluster>;
/// The store over the master Redis Sentinel names, followed across failovers.
pub type RedisSentinelStore = RedisStore<sentinel::SentinelConnection>;

/// How many times a lost connection is retried before pending calls fail: small, so that calls
/// fail fast while Redis is down; the next call starts a new round, so the store recovers.
const RECONNECT_RETRIES: usize = 2;

impl RedisSingleStore {
    /// Connects to one Redis server, e.g. `redis://127.0.0.1:6379/`.
    pub async fn connect(url: &str, options: &RedisOptions) -> Result<Self, StoreError> {
        Self::connect_with_tls(url, None, options).await
    }

    /// [`RedisSingleStore::connect`] with a CA and client certificate for a `rediss://` URL
    /// (without them, `rediss://` trusts the system's store).
    pub async fn connect_with_tls(
        url: &str,
        certificates: Option<&redis::TlsCertificates>,
        options: &RedisOptions,
    ) -> Result<Self, StoreError> {
        // The initial connection is bounded too: a black-holed address must not stall start-up.
        let connection = match options.client {
            RedisClient::RedisRs => {
                let client = tls::client(url, certificates).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.command_timeout))
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                let connecting = ConnectionManager::new_with_config(client, config);
                SingleConnection::Crate(bounded(options.connect_timeout * 2, connecting).await?)
            }
            RedisClient::Ringcast => {
                let connecting = pipelined::PipelinedConnection::connect(
                    url,
                    certificates,
                    options.connect_timeout,
                    options.command_timeout,
                );
                SingleConnection::Own(bounded(options.connect_timeout * 2, connecting).await?)
            }
        };
        let store = RedisStore {
            connection,
            options: *options,
            name: "redis",
        };
        settings::check(store.connection(), options.command_timeout).await;
        Ok(store)
    }
}

impl RedisClusterStore {
    /// Connects to a Redis Cluster through any of its nodes (`redis://host:port/` each); the
    /// client discovers the rest and follows slot moves by itself.
    pub async fn connect(nodes: &[String], options: &RedisOptions) -> Result<Self, StoreError> {
        Self::connect_with_tls(nodes, None, options).await
    }

    /// [`RedisClusterStore::connect`] with a CA and client certificate for `rediss://` nodes.
    pub async fn connect_with_tls(
        nodes: &[String],
        certificates: Option<&redis::TlsCertificates>,
        options: &RedisOptions,
    ) -> Result<Self, StoreError> {
        let connection = match options.client {
            RedisClient::RedisRs => {
                let client = cluster_client(nodes, certificates)?
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.command_timeout)
                    .retries(RECONNECT_RETRIES as u32)
                    .build()
                    .map_err(unavailable)?;
                let connecting = client.get_async_connection();
                EitherClient::Crate(bounded(options.connect_timeout * 2, connecting).await?)
            }
            RedisClient::Ringcast => {
                let connecting = cluster::OwnCluster::connect(
                    nodes,
                    certificates,
                    options.connect_timeout,
                    options.command_timeout,
                );
                EitherClient::Own(bounded(options.connect_timeout * 2, connecting).await?)
            }
        };
        let store = RedisStore {
            connection,
            options: *options,
            name: "redis-cluster",
        };
        settings::check(store.connection(), options.command_timeout).await;
        Ok(store)
    }
}

/// A cluster client builder for `nodes`, with TLS when they are `rediss://`.
pub fn cluster_client(
    nodes: &[String],
    certificates: Option<&redis::TlsCertificates>,
) -> Result<ClusterClientBuilder, StoreError> {
    let builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str));
    if !nodes.iter().any(|node| node.starts_with("rediss://")) {
        return Ok(builder);
    }
    tls::install_ring();
    Ok(match certificates {
        // Setting certificates also turns TLS on for the nodes the cluster reports.
        Some(certificates) => builder.certs(certificates.clone()),
        None => builder.tls(redis::TlsMode::Secure),
    })
}

impl RedisSentinelStore {
    /// Asks the Sentinels for the master and connects to it; the connection asks again when
    /// the master fails over ([`sentinel`]).
    pub async fn connect(
        target: &sentinel::SentinelTarget<'_>,
        options: &RedisOptions,
    ) -> Result<Self, StoreError> {
        let connecting = async {
            sentinel::SentinelConnection::connect(
                target,
                options.client,
                options.connect_timeout,
                options.command_timeout,
            )
            .await
        };
        let connection = bounded(options.connect_timeout * 2, connecting).await?;
        let store = RedisStore {
            connection,
            options: *options,
            name: "redis-sentinel",
        };
        settings::check(store.connection(), options.command_timeout).await;
        Ok(store)
    }
}

impl<C: Clone> RedisStore<C> {
    /// The store's multiplexed connection, for what else lives on the same Redis (the
    /// durable intake's streams, src/router/intake.rs): a shard's traffic stays on its own
    /// connection and thread.
    pub fn connection(&self) -> C {
        self.connection.clone()
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Runs one Redis call under the command timeout, mapping its failure to a `StoreError`.
    async fn run<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        bounded(self.options.command_timeout, call).await
    }

    /// Where `address`'s owner entry lives within `tenant`.
    fn owner_slot(&self, tenant: &str, address: &PushAddress) -> OwnerSlot {
        OwnerSlot::of(tenant, address, self.options.owner_buckets)
    }

    /// Releases the owner entries of `address`'s tokens (its token, and its APNs alert
    /// token) that still name this device.
    async fn release_owners(
        &self,
        tenant: &str,
        holder: (&str, &str),
        address: &PushAddress,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.release_owner(tenant, holder, address, now).await?;
        if let Some(alert) = alert_address(address) {
            self.release_owner(tenant, holder, &alert, now).await?;
        }
        Ok(())
    }

    /// Step 2 and 3 of a registration, for one token: claims its owner entry and takes it
    /// from its previous holder if that holder still has it. Returns the previous holder's
    /// identity when it was another identity and lost the token.
    async fn claim_token(
        &self,
        who: &IdentityKey,
        registration: &Registration,
        token: &PushAddress,
        now: UnixMillis,
    ) -> Result<Option<String>, StoreError> {
        let mut connection = self.connection.clone();
        let holder = owners::holder(&who.identity, &registration.device_id);
        let slot = self.owner_slot(&who.tenant, token);
        let mut claim = ScriptCall::new(&scripts::CLAIM_OWNER, slot.bucket_key);
        claim
            .arg(&slot.field[..])
            .arg(owners::entry(registration.expires_at, &holder))
            .arg(now);
        let previous: Option<Vec<u8>> = self.run(claim.run(&mut connection)).await?;
        let Some(previous) = previous.filter(|previous| *previous != holder) else {
            return Ok(None);
        };
        let Some(previous) = owners::parse_holder(&previous) else {
            tracing::warn!(
                tenant = %who.tenant,
                token = %token.fingerprint(),
                "ignoring an unreadable owner entry"
            );
            return Ok(None);
        };
        let field = codec::address_field(token);
        let taken = self.take_token(&who.tenant, previous, &field, now).await?;
        if !taken || previous.0 == who.identity {
            return Ok(None);
        }
        tracing::info!(
            tenant = %who.tenant,
            from = %crate::logging::fingerprint(previous.0),
            to = %crate::logging::fingerprint(&who.identity),
            token = %token.fingerprint(),
            "token moved to another identity"
        );
        Ok(Some(previous.0.to_owned()))
    }

    /// Releases a token's owner entry if it still names this device (see the module doc).
    async fn release_owner(
        &self,
        tenant: &str,
        holder: (&str, &str),
        address: &PushAddress,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let (identity, device_id) = holder;
        let slot = self.owner_slot(tenant, address);
        let mut connection = self.connection.clone();
        let mut invocation = ScriptCall::new(&scripts::RELEASE_OWNER, slot.bucket_key);
        invocation
            .arg(&slot.field[..])
            .arg(owners::holder(identity, device_id))
            .arg(now);
        let _released: i64 = self.run(invocation.run(&mut connection)).await?;
        Ok(())
    }

    /// Step 3 of a registration: takes the token from its previous holder if that holder
    /// still has it. Returns whether it did.
    async fn take_token(
        &self,
        tenant: &str,
        previous: (&str, &str),
        address: &[u8],
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let (identity, device_id) = previous;
        let mut connection = self.connection.clone();
        let mut invocation = ScriptCall::new(
            &scripts::DELETE_IF_HOLDS,
            keys::identity_key_of(tenant, identity),
        );
        invocation.arg(device_id).arg(address).arg(now).arg("");
        let deleted: i64 = self.run(invocation.run(&mut connection)).await?;
        Ok(deleted == 1)
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Bookkeeping + Clone + Send + Sync + Unpin + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    async fn register(
        &self,
        who: &IdentityKey,
        registration: &Registration,
    ) -> Result<Registered, StoreError> {
        let now = registration.updated_at;
        let address = codec::address_field(&registration.address);
        let mut connection = self.connection.clone();

        // Step 1: the identity's hash.
        let mut invocation = ScriptCall::new(&scripts::REGISTER, keys::identity_key(who));
        invocation
            .arg(&registration.device_id)
            .arg(codec::encode(registration))
            .arg(&address)
            .arg(now)
            .arg(self.options.max_devices_per_identity);
        let (outcome, old): (i64, Option<Vec<u8>>) =
            self.run(invocation.run(&mut connection)).await?;
        let mut stored = registration.clone();
        let created = match (outcome, old) {
            (1, None) => true,
            (0, Some(old)) => {
                let old = codec::decode(&registration.device_id, &old).map_err(corrupt)?;
                stored.created_at = old.created_at;
                if old.address != registration.address {
                    // The tokens kept are claimed again below.
                    let holder = (who.identity.as_str(), old.device_id.as_str());
                    self.release_owners(&who.tenant, holder, &old.address, now)
                        .await?;
                }
                false
            }
            (-1, None) => {
                return Err(StoreError::TooManyDevices {
                    max: self.options.max_devices_per_identity,
                });
            }
            (outcome, _) => {
                return Err(StoreError::Corrupt(format!(
                    "register script answered {outcome}"
                )));
            }
        };

        // Steps 2 and 3: claim each token, taking it from its previous holder.
        let mut moved_from = self
            .claim_token(who, registration, &registration.address, now)
            .await?;
        if let Some(alert) = alert_address(&registration.address) {
            let taken = self.claim_token(who, registration, &alert, now).await?;
            moved_from = moved_from.or(taken);
        }
        Ok(Registered {
            created,
            registration: stored,
            moved_from,
        })
    }

    async fn list(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> Result<Vec<Registration>, StoreError> {
        let mut connection = self.connection.clone();
        let fields: Vec<(String, Vec<u8>)> = self
            .run(command::query(
                &mut connection,
                redis::cmd("HGETALL").arg(keys::identity_key(who)),
            ))
            .await?;
        let mut live = Vec::with_capacity(fields.len());
        for (device_id, record) in fields {
            if codec::expires_at(&record).map_err(corrupt)? > now {
                live.push(codec::decode(device_id, &record).map_err(corrupt)?);
            }
        }
        live.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(live)
    }

    async fn unregister(
        &self,
        who: &IdentityKey,
        device_id: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ScriptCall::new(&scripts::UNREGISTER, keys::identity_key(who));
        invocation.arg(device_id).arg(now);
        let deleted: Option<Vec<u8>> = self.run(invocation.run(&mut connection)).await?;
        let Some(record) = deleted else {
            return Ok(false);
        };
        let registration = codec::decode(device_id, &record).map_err(corrupt)?;
        let holder = (who.identity.as_str(), device_id);
        self.release_owners(&who.tenant, holder, &registration.address, now)
            .await?;
        Ok(true)
    }

    async fn revoke(&self, who: &IdentityKey, now: UnixMillis) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let invocation = ScriptCall::new(&scripts::REVOKE, keys::identity_key(who));
        let fields: Vec<(String, Vec<u8>)> = self.run(invocation.run(&mut connection)).await?;
        let mut live = 0;
        for (device_id, record) in fields {
            // The hash is already gone: a record we cannot read only loses its owner entry's
            // early release (the entry expires with its registration), so it must not fail
            // the revoke.
            match codec::decode(&device_id, &record) {
                Ok(registration) => {
                    if registration.is_live(now) {
                        live += 1;
                    }
                    let holder = (who.identity.as_str(), device_id.as_str());
                    self.release_owners(&who.tenant, holder, &registration.address, now)
                        .await?;
                }
                Err(error) => {
                    tracing::warn!(tenant = %who.tenant, %error, "revoked an unreadable record");
                }
            }
        }
        Ok(live)
    }

    async fn record_revocation(
        &self,
        who: &IdentityKey,
        at: UnixMillis,
        keep_ms: u64,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let forget_at = at.saturating_add(keep_ms);
        let _ok: () = self
            .run(command::query(
                &mut connection,
                redis::cmd("SET")
                    .arg(keys::revocation_key(who))
                    .arg(format!("{at} {forget_at}"))
                    // PX takes no 0: a record kept for no time still lives a millisecond.
                    .arg("PX")
                    .arg(keep_ms.max(1)),
            ))
            .await?;
        Ok(())
    }

    async fn revoked_at(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        let mut connection = self.connection.clone();
        let record: Option<String> = self
            .run(command::query(
                &mut connection,
                redis::cmd("GET").arg(keys::revocation_key(who)),
            ))
            .await?;
        let Some(record) = record else {
            return Ok(None);
        };
        let parsed = record.split_once(' ').and_then(|(at, forget_at)| {
            Some((at.parse::<u64>().ok()?, forget_at.parse::<u64>().ok()?))
        });
        let Some((at, forget_at)) = parsed else {
            return Err(StoreError::Corrupt(format!(
                "unreadable revocation record {record:?}"
            )));
        };
        Ok((forget_at > now).then_some(at))
    }

    async fn remove_dead_token(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        verdict_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ScriptCall::new(&scripts::DELETE_IF_HOLDS, keys::identity_key(who));
        invocation
            .arg(device_id)
            .arg(codec::address_field(address))
            .arg(verdict_at)
            .arg(verdict_at);
        let deleted: i64 = self.run(invocation.run(&mut connection)).await?;
        if deleted != 1 {
            return Ok(false);
        }
        // The verdict's time stands in for "now": at worst a little older, which only prunes
        // fewer of the bucket's expired entries and leaves it a slightly longer TTL.
        let holder = (who.identity.as_str(), device_id);
        self.release_owners(&who.tenant, holder, address, verdict_at)
            .await?;
        tracing::info!(tenant = %who.tenant, token = %address.fingerprint(), "dead token removed");
        Ok(true)
    }

    async fn correct_environment(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        environment: Environment,
        found_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation =
            ScriptCall::new(&scripts::SET_ENVIRONMENT_IF_HOLDS, keys::identity_key(who));
        invocation
            .arg(device_id)
            .arg(codec::address_field(address))
            .arg(found_at)
            .arg(codec::environment_byte(environment));
        let changed: i64 = self.run(invocation.run(&mut connection)).await?;
        if changed == 1 {
            tracing::info!(tenant = %who.tenant, token = %address.fingerprint(), ?environment,
                "registration moved to the environment that took its token");
        }
        Ok(changed == 1)
    }

    async fn acquire_event(
        &self,
        tenant: &str,
        event_id: &str,
        terms: &LeaseTerms,
        now: UnixMillis,
    ) -> Result<Claim, StoreError> {
        self.acquire_lease(tenant, event_id, terms, now).await
    }

    async fn renew_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        lease_ms: u64,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.renew_lease(tenant, event_id, node, outcomes, lease_ms, now)
            .await
    }

    async fn finish_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.finish_lease(tenant, event_id, node, outcomes, now)
            .await
    }

    async fn release_event(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        self.release_lease(tenant, event_id, node).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _pong: String = self
            .run(command::query(&mut connection, &redis::cmd("PING")))
            .await?;
        Ok(())
    }
}

/// Awaits a Redis call for at most `limit`.
/// The APNs alert token of `address` as an address of its own: how the owner index names
/// it (the same namespace as the tokens, so one token has one owner whatever its role).
fn alert_address(address: &PushAddress) -> Option<PushAddress> {
    address.alert_token().map(|alert_token| PushAddress::Apns {
        token: alert_token.to_vec(),
        alert_token: None,
    })
}

async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(StoreError::Unavailable(format!(
            "redis did not answer within {limit:?}"
        ))),
    }
}

/// Sorts a Redis error: an answer of the wrong shape is corrupt data (or a bug), anything else
/// (I/O, timeouts, cluster down, loading, out of memory) may pass, so it is `Unavailable`.
fn classify(error: RedisError) -> StoreError {
    match error.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::Corrupt(error.to_string())
        }
        _ => StoreError::Unavailable(error.to_string()),
    }
}

fn unavailable(error: RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn corrupt(error: codec::DecodeError) -> StoreError {
    StoreError::Corrupt(error.to_string())
}
