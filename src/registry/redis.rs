//! The Redis store: one server ([`RedisSingleStore`]) or a Redis Cluster ([`RedisClusterStore`]).
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
//!   top-level key (~100 B in Redis) per registration; DESIGN.md's target is ≤ 300 B each.
//! - **One owner key per token** ("one token, one owner" within a tenant):
//!   `o:<tenant>:<base64url(SHA-256(platform ++ token)[..16])>` = `<identity>\0<device_id>`,
//!   `PX` = that registration's TTL. No hash tag: owner keys spread over the cluster, and an
//!   identity's owner keys are usually on other slots than its hash.
//!
//! # Memory
//!
//! Measured on Redis 7.0.15 (1 M identities with one APNs device each, through this store,
//! `used_memory` per registration including its owner key): 521 B with the default
//! `hash-max-listpack-value 64`, 401 B with `hash-max-listpack-value 128`. An APNs record is
//! 79 bytes, over the default 64, so every identity hash falls back to a real hash table;
//! deployments should raise that setting. Even then two top-level keys with TTLs per
//! registration cost ~110 B of dict entries alone, so the ≤ 300 B target needs an owner index
//! with fewer top-level keys (a DESIGN.md change), not a tighter record.
//!
//! # Registering, step by step
//!
//! The identity hash and the owner key live on different slots, so a registration is three
//! atomic steps, not one:
//!
//! 1. [`scripts::REGISTER`] on the identity: write or refresh the device (keeping `created_at`),
//!    prune expired devices, enforce the device limit for new devices, delete another device
//!    of the same identity that holds the same token, set the TTL; return the old record. If
//!    the device's token changed, the old token's owner key is released (compare-and-delete).
//! 2. `SET <owner key> <identity\0device> PX <ttl> GET` claims the token, returning the
//!    previous owner.
//! 3. If the previous owner is another device, [`scripts::DELETE_IF_HOLDS`] on *its* identity
//!    deletes that device only if its record still holds this exact token and is live; only
//!    then is `moved_from` reported (an expired or re-tokened owner is no owner).
//!
//! Why this stays correct: the owner key is the arbiter, and the last writer of it wins. Two
//! identities registering one token concurrently both write their hash (step 1); whichever
//! `SET` runs second sees the first as previous owner and deletes its device (step 3), so the
//! survivor is the owner key's value. Step 3 checks the token inside its script, so it never
//! deletes a device that meanwhile moved to another token. A crash (or timeout) between steps
//! leaves at worst the token on two identities until it is next registered, which repeats
//! steps 2-3; it never loses the registration that was written. Releases (token change,
//! unregister, revoke, dead token) compare the owner value before deleting, so they never free
//! a token another identity holds meanwhile.
//!
//! # Failures
//!
//! Every command runs under `command_timeout`; the connection manager reconnects on its own
//! with bounded retries, so while Redis is down calls fail fast with
//! [`StoreError::Unavailable`] and work again once it is back, without restarting the node.

mod keys;
mod scripts;

use super::codec;
use super::registration::{IdentityKey, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};
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
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            max_devices_per_identity: 64,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
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
pub type RedisSingleStore = RedisStore<ConnectionManager>;
/// The store over a Redis Cluster.
pub type RedisClusterStore = RedisStore<redis::cluster_async::ClusterConnection>;

/// How many times a lost connection is retried before pending calls fail: small, so that calls
/// fail fast while Redis is down; the next call starts a new round, so the store recovers.
const RECONNECT_RETRIES: usize = 2;

impl RedisSingleStore {
    /// Connects to one Redis server, e.g. `redis://127.0.0.1:6379/`.
    pub async fn connect(url: &str, options: &RedisOptions) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        // The initial connection is bounded too: a black-holed address must not stall start-up.
        let connecting = ConnectionManager::new_with_config(client, config);
        let connection = bounded(options.connect_timeout * 2, connecting).await?;
        let store = RedisStore {
            connection,
            options: *options,
            name: "redis",
        };
        store.check_listpack_setting().await;
        Ok(store)
    }
}

impl RedisClusterStore {
    /// Connects to a Redis Cluster through any of its nodes (`redis://host:port/` each); the
    /// client discovers the rest and follows slot moves by itself.
    pub async fn connect(nodes: &[String], options: &RedisOptions) -> Result<Self, StoreError> {
        let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.command_timeout)
            .retries(RECONNECT_RETRIES as u32)
            .build()
            .map_err(unavailable)?;
        let connection =
            bounded(options.connect_timeout * 2, client.get_async_connection()).await?;
        let store = RedisStore {
            connection,
            options: *options,
            name: "redis-cluster",
        };
        store.check_listpack_setting().await;
        Ok(store)
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Warns when `hash-max-listpack-value` is below a typical record's size: every identity
    /// hash then falls back to a hash table, which measured ~120 B more per registration (see
    /// the module doc). Managed Redis services often disable `CONFIG`; then this stays silent.
    async fn check_listpack_setting(&self) {
        /// An APNs record with a 16-byte app id (see `codec`); FCM and Web Push ones are longer.
        const TYPICAL_RECORD: i64 = 79;
        let mut connection = self.connection.clone();
        let mut query = redis::cmd("CONFIG");
        query.arg("GET").arg("hash-max-listpack-value");
        let answer: Result<Vec<String>, StoreError> =
            self.run(query.query_async(&mut connection)).await;
        if let Ok(pair) = answer
            && let Some(value) = pair.get(1).and_then(|v| v.parse::<i64>().ok())
            && value < TYPICAL_RECORD
        {
            tracing::warn!(
                hash_max_listpack_value = value,
                recommended = 128,
                "Redis stores registrations in hash tables at this setting (~120 B more each); \
                 set hash-max-listpack-value 128"
            );
        }
    }

    /// Runs one Redis call under the command timeout, mapping its failure to a `StoreError`.
    async fn run<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        bounded(self.options.command_timeout, call).await
    }

    /// Releases a token's owner key if it still names this device (see the module doc).
    async fn release_owner(
        &self,
        tenant: &str,
        identity: &str,
        registration: &Registration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = scripts::RELEASE_OWNER.prepare_invoke();
        invocation
            .key(keys::owner_key(tenant, &registration.address))
            .arg(keys::owner_value(identity, &registration.device_id));
        let _released: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
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
        let mut invocation = scripts::DELETE_IF_HOLDS.prepare_invoke();
        invocation
            .key(keys::identity_key_of(tenant, identity))
            .arg(device_id)
            .arg(address)
            .arg(now)
            .arg("");
        let deleted: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(deleted == 1)
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + Unpin + 'static,
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
        let mut invocation = scripts::REGISTER.prepare_invoke();
        invocation
            .key(keys::identity_key(who))
            .arg(&registration.device_id)
            .arg(codec::encode(registration))
            .arg(&address)
            .arg(now)
            .arg(self.options.max_devices_per_identity);
        let (outcome, old): (i64, Option<Vec<u8>>) =
            self.run(invocation.invoke_async(&mut connection)).await?;
        let mut stored = registration.clone();
        let created = match (outcome, old) {
            (1, None) => true,
            (0, Some(old)) => {
                let old = codec::decode(&registration.device_id, &old).map_err(corrupt)?;
                stored.created_at = old.created_at;
                if old.address != registration.address {
                    self.release_owner(&who.tenant, &who.identity, &old).await?;
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

        // Step 2: claim the token.
        let owner = keys::owner_value(&who.identity, &registration.device_id);
        let ttl = registration.expires_at.saturating_sub(now).max(1);
        let claim = redis::cmd("SET")
            .arg(keys::owner_key(&who.tenant, &registration.address))
            .arg(&owner)
            .arg("PX")
            .arg(ttl)
            .arg("GET")
            .to_owned();
        let previous: Option<Vec<u8>> = self.run(claim.query_async(&mut connection)).await?;

        // Step 3: take it from its previous holder.
        let mut moved_from = None;
        if let Some(previous) = previous.filter(|previous| *previous != owner) {
            match keys::parse_owner_value(&previous) {
                Some(holder) => {
                    let taken = self.take_token(&who.tenant, holder, &address, now).await?;
                    if taken && holder.0 != who.identity {
                        tracing::info!(
                            tenant = %who.tenant,
                            from = holder.0,
                            to = %who.identity,
                            token = %registration.address.fingerprint(),
                            "token moved to another identity"
                        );
                        moved_from = Some(holder.0.to_owned());
                    }
                }
                None => tracing::warn!(
                    tenant = %who.tenant,
                    token = %registration.address.fingerprint(),
                    "ignoring an unreadable owner key value"
                ),
            }
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
            .run(
                redis::cmd("HGETALL")
                    .arg(keys::identity_key(who))
                    .query_async(&mut connection),
            )
            .await?;
        let mut live = Vec::with_capacity(fields.len());
        for (device_id, record) in fields {
            if codec::expires_at(&record).map_err(corrupt)? > now {
                live.push(codec::decode(&device_id, &record).map_err(corrupt)?);
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
        let mut invocation = scripts::UNREGISTER.prepare_invoke();
        invocation
            .key(keys::identity_key(who))
            .arg(device_id)
            .arg(now);
        let deleted: Option<Vec<u8>> = self.run(invocation.invoke_async(&mut connection)).await?;
        let Some(record) = deleted else {
            return Ok(false);
        };
        let registration = codec::decode(device_id, &record).map_err(corrupt)?;
        self.release_owner(&who.tenant, &who.identity, &registration)
            .await?;
        Ok(true)
    }

    async fn revoke(&self, who: &IdentityKey, now: UnixMillis) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = scripts::REVOKE.prepare_invoke();
        invocation.key(keys::identity_key(who));
        let fields: Vec<(String, Vec<u8>)> =
            self.run(invocation.invoke_async(&mut connection)).await?;
        let mut live = 0;
        for (device_id, record) in fields {
            // The hash is already gone: a record we cannot read only loses its owner key's
            // early release (the key expires with its TTL), so it must not fail the revoke.
            match codec::decode(&device_id, &record) {
                Ok(registration) => {
                    if registration.is_live(now) {
                        live += 1;
                    }
                    self.release_owner(&who.tenant, &who.identity, &registration)
                        .await?;
                }
                Err(error) => {
                    tracing::warn!(tenant = %who.tenant, %error, "revoked an unreadable record")
                }
            }
        }
        Ok(live)
    }

    async fn remove_dead_token(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        verdict_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = scripts::DELETE_IF_HOLDS.prepare_invoke();
        invocation
            .key(keys::identity_key(who))
            .arg(device_id)
            .arg(codec::address_field(address))
            .arg(verdict_at)
            .arg(verdict_at);
        let deleted: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        if deleted != 1 {
            return Ok(false);
        }
        let owner_value = keys::owner_value(&who.identity, device_id);
        let mut release = scripts::RELEASE_OWNER.prepare_invoke();
        release
            .key(keys::owner_key(&who.tenant, address))
            .arg(owner_value);
        let _released: i64 = self.run(release.invoke_async(&mut connection)).await?;
        tracing::info!(tenant = %who.tenant, token = %address.fingerprint(), "dead token removed");
        Ok(true)
    }

    async fn claim_event(
        &self,
        tenant: &str,
        event_id: &str,
        until: UnixMillis,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        // SET NX PX: one atomic command, on whichever cluster slot the key falls; the key
        // expires with the event, so claims need no sweeper.
        let ttl = until.saturating_sub(now).max(1);
        let set: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(keys::event_key(tenant, event_id))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut connection),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn release_event(&self, tenant: &str, event_id: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _deleted: i64 = self
            .run(
                redis::cmd("DEL")
                    .arg(keys::event_key(tenant, event_id))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _pong: String = self
            .run(redis::cmd("PING").query_async(&mut connection))
            .await?;
        Ok(())
    }
}

/// Awaits a Redis call for at most `limit`.
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
