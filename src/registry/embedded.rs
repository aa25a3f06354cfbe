//! The embedded store: registrations in one redb file, for a node that runs alone.
//!
//! Its tables, one concept each (call-event leases are `claims`'s):
//!
//! - `REGISTRATIONS`: `tenant \0 identity \0 device_id` → the [`codec`] record. Keys of one
//!   identity are contiguous, so listing or revoking it is one range scan, already ordered by
//!   device id.
//! - `OWNERS`: `tenant \0 platform \0 token` → `identity \0 device_id`, the device that holds
//!   a token ("one token, one owner" within a tenant, docs/architecture.md).
//! - `EXPIRY`: `expires_at (u64 big-endian) ++ registration key` → `()`, so the sweep walks
//!   only what has expired instead of scanning every registration.
//! - `REVOCATIONS`: `tenant \0 identity` → forget-at ++ revoked-at (two big-endian u64), when
//!   an identity was last revoked ([`super::revocation`]); swept once forgotten.
//!
//! Tenants, identities and device ids never contain NUL (the API validates them), which is what
//! makes `\0` a safe separator. Expired rows stay in the file until the sweep, but every method
//! treats them as absent; a write that meets one on its way deletes it.
//!
//! redb is synchronous and a durable commit is an fsync, so every write that may fsync runs on
//! tokio's blocking pool: the actix arbiter that awaits it keeps serving its other identities
//! meanwhile. `lanes` gives out the turns at redb's single writer (one pool thread at a time),
//! and `group` commits the durable writes waiting at one moment together (one fsync), with one
//! leader waiting for the writer on the group's behalf. Call-event claims never wait for the
//! writer: each step is answered from memory and its write reaches the file behind it, in a
//! group of its own committed without the fsync (`claims`, `unwritten`); such a commit runs
//! on its leader's thread. Reads run on the caller's thread: they take microseconds, less
//! than the hop to a pool thread and back. Each registration `Store` method is atomic: one
//! redb transaction, or its part of a group's, which commits or rolls back whole and is rerun
//! alone when anything in it failed; each claim step is atomic under the unwritten claims'
//! lock.
//!
//! Layout: `keys` holds the key layouts and table definitions, `transactions` the body of each
//! operation (one redb transaction each), `error` the failures and their mapping to
//! [`StoreError`]; this file opens the database and decides where each operation runs (here or
//! on the blocking pool).

mod claims;
mod error;
mod group;
mod keys;
mod lanes;
mod revocations;
#[cfg(test)]
mod tests;
mod transactions;
mod unwritten;

use self::error::EmbeddedError;
use self::group::{Group, Persistence};
use self::keys::{REGISTRATIONS, RegistrationKey, owner_key};
use self::lanes::Lanes;
use self::transactions::Tables;
use self::unwritten::Unwritten;
use super::codec;
use super::lease::{Claim, LeaseTerms};
use super::registration::{Environment, IdentityKey, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};
use crate::metrics::embedded as metrics;
use redb::{Database, ReadableDatabase};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The most expired rows one sweep transaction deletes. redb has one writer at a time, so a
/// sweep after a long outage works in slices that registrations can slip between.
const SWEEP_BATCH: usize = 10_000;

/// The most claim records one sweep transaction visits (see `sweep_claims`).
const CLAIMS_SWEEP_BATCH: usize = 1_000;

/// The longest claims stay in memory only (`Persistence::Lazy`): after a crash, at most this
/// much of the claims' progress is lost, and redb's pending non-durable state stays small.
const CLAIMS_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The store's name in metric labels and logs.
const NAME: &str = "embedded";

/// A handle to the embedded store. Cloning it is cheap (an `Arc`), so every registry shard and
/// the sweeper share one open database.
#[derive(Clone)]
pub struct EmbeddedStore {
    /// The open redb file; redb allows one open handle per file, hence shared.
    db: Arc<Database>,
    /// The most live devices one identity may register (`StoreError::TooManyDevices` beyond),
    /// so that one client cannot fill the store.
    max_devices_per_identity: u32,
    /// Its turns on the blocking pool (one write at a time).
    lanes: Lanes,
    /// Durable writes waiting for the write lane, committed together.
    group: Arc<Group>,
    /// Claim writes waiting for the write lane, committed together without an fsync.
    claims: Arc<Group>,
    /// Claims answered and not yet committed: the claim steps read them before the file.
    unwritten: Arc<Unwritten>,
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating the parent directories, the file and the tables
    /// when missing. Reopening an existing file keeps its registrations (a node restart must
    /// not sign every device out).
    pub fn open(
        path: impl AsRef<Path>,
        max_devices_per_identity: u32,
    ) -> Result<EmbeddedStore, StoreError> {
        let path = path.as_ref();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let opened = Database::create(path)
            .map_err(EmbeddedError::from)
            .and_then(|db| {
                // Creating the tables up front lets read transactions open them unconditionally.
                let txn = db.begin_write()?;
                Tables::open(&txn)?;
                txn.open_table(keys::REVOCATIONS)?;
                txn.open_table(keys::EVENTS)?;
                txn.commit()?;
                Ok(db)
            });
        let db = opened.map_err(|error| error.into_store_error(&format!("{}", path.display())))?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            max_devices_per_identity,
            lanes: Lanes::new(),
            group: Arc::new(Group::new(Persistence::Durable)),
            claims: Arc::new(Group::new(Persistence::lazy(CLAIMS_FLUSH_EVERY))),
            unwritten: Arc::new(Unwritten::default()),
        })
    }

    /// Deletes every registration that expired at or before `now`, with its index entries;
    /// returns how many. Only expired rows are read (the expiry index is time-ordered), so a
    /// frequent sweep stays cheap however many live registrations there are. It commits every
    /// `SWEEP_BATCH` rows rather than holding redb's single writer for one long transaction.
    pub async fn sweep(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.sweep_in_batches(now, SWEEP_BATCH).await
    }

    /// [`sweep`](Self::sweep), one transaction per `batch` expired rows.
    async fn sweep_in_batches(&self, now: UnixMillis, batch: usize) -> Result<u64, StoreError> {
        // An empty batch would never finish.
        let batch = batch.max(1);
        let mut deleted = 0;
        loop {
            let (visited, swept) = self
                .write("sweep", move |tables| tables.sweep(now, batch))
                .await?;
            deleted += swept;
            if visited < batch {
                return Ok(deleted);
            }
        }
    }

    /// How many other handles share this one's database (shards, routers, tasks): a node
    /// that stops waits for none to be left, then closes the file itself ([`Drop`] of the
    /// last handle).
    pub fn other_handles(&self) -> usize {
        Arc::strong_count(&self.db) - 1
    }

    /// Runs [`sweep`](Self::sweep) at wall-clock time every `every`, on the current tokio
    /// runtime, until the returned handle is aborted. Expired rows are already invisible; this
    /// only gives their space back.
    pub fn spawn_sweeper(&self, every: Duration) -> JoinHandle<()> {
        let store = self.clone();
        // `interval` panics on a zero period; a millisecond is the finest sweep that makes sense.
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.sweep(wall_clock()).await {
                    Ok(deleted) => tracing::debug!(deleted, "swept expired registrations"),
                    Err(error) => tracing::warn!(%error, "sweep of expired registrations failed"),
                }
                if let Err(error) = store.sweep_claims(wall_clock()).await {
                    tracing::warn!(%error, "sweep of ended event claims failed");
                }
                if let Err(error) = store.sweep_revocations(wall_clock()).await {
                    tracing::warn!(%error, "sweep of forgotten revocations failed");
                }
            }
        })
    }

    /// Runs `op` in a durable write transaction, grouped with the writes waiting beside it
    /// (`group`: one fsync for all of them); commits when it succeeded and changed something,
    /// rolls back otherwise (an error leaves the file as it was). `op` may run twice.
    async fn write<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnMut(&mut Tables<'_>) -> Result<T, EmbeddedError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let answer = self.group.push(op);
        if self.group.become_leader() {
            self.lead(&self.group, None);
        }
        finished(answer.await, what)
    }

    /// Starts `group`'s leader: it waits for the write lane, runs what is queued then, and
    /// stays leader while writes are left over (a batch takes at most `MAX_BATCH`) and no
    /// newer leader took over. A batch without an fsync runs on the leader's own thread (a
    /// few microseconds of redb per write, less than a hop to the blocking pool); one with an
    /// fsync runs on the blocking pool. The leader runs in a task of its own: a caller that
    /// stops waiting must not leave writes queued with nobody to run them. It holds the
    /// database weakly while it waits, so the file closes when the store's handles are gone,
    /// not when the last leader has noticed that its writes already ran. The claims' leader
    /// is given their `unwritten` records, whose count it publishes after each batch.
    fn lead(&self, group: &Arc<Group>, unwritten: Option<Arc<Unwritten>>) {
        let (lanes, group, db) = (
            self.lanes.clone(),
            Arc::clone(group),
            Arc::downgrade(&self.db),
        );
        tokio::spawn(async move {
            loop {
                let turn = lanes.write_turn().await;
                group.leader_has_turn();
                // An earlier leader, still running when this one was started, may have
                // taken these writes with its batch.
                if group.is_empty() {
                    return;
                }
                let Some(db) = db.upgrade() else {
                    group.refuse_all("the store was closed before the write ran");
                    return;
                };
                let durability = group.next_durability();
                if matches!(durability, redb::Durability::None) {
                    turn.run_here(|| group.run_as(db, durability));
                } else {
                    let batch = Arc::clone(&group);
                    drop(turn.run(move || batch.run_as(db, durability)).await);
                }
                if let Some(unwritten) = &unwritten {
                    metrics::claims_unwritten(unwritten.len());
                }
                if group.is_empty() || !group.become_leader() {
                    return;
                }
            }
        });
    }

    /// Runs `op` on `table` alone in one write transaction committed with `durability`.
    async fn write_table<T: Send + 'static>(
        &self,
        what: &'static str,
        table: ByteTableDefinition,
        durability: redb::Durability,
        op: impl FnOnce(&mut ByteTable<'_>) -> Result<T, EmbeddedError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        let task = self.lanes.write(move || {
            let started = Instant::now();
            let mut txn = db.begin_write()?;
            txn.set_durability(durability)?;
            let result = op(&mut txn.open_table(table)?)?;
            txn.commit()?;
            metrics::write_held(durability.into(), started.elapsed());
            Ok(result)
        });
        flatten(task.await, what)
    }

    /// Deletes the claims that ended at or before `now`; returns how many. The table is walked
    /// in key order, [`CLAIMS_SWEEP_BATCH`] records per transaction on the blocking pool, so
    /// the rings' claims get redb's single writer between slices: one transaction over the
    /// whole table (a claim per call event of the last minutes, 165,000 after a 15 s burst)
    /// held it for long enough that the shards' mailboxes filled and calls got `503`.
    pub async fn sweep_claims(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.sweep_claims_in_batches(now, CLAIMS_SWEEP_BATCH).await
    }

    /// [`sweep_claims`](Self::sweep_claims), visiting at most `batch` records per transaction.
    async fn sweep_claims_in_batches(
        &self,
        now: UnixMillis,
        batch: usize,
    ) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let mut deleted = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let from = after.take();
            // Lazy like every claim: the claims' group makes it durable within a second.
            let (next, swept) = self
                .write_table(
                    "sweep_claims",
                    keys::EVENTS,
                    redb::Durability::None,
                    move |events| claims::sweep_slice(events, from.as_deref(), now, batch),
                )
                .await?;
            deleted += swept;
            match next {
                Some(key) => after = Some(key),
                None => {
                    // The records still waiting for the file of events that ended are let go
                    // too: those that did reach it were just deleted, and a step on an ended
                    // event reads the file (or nothing) as it would after the sweep.
                    self.unwritten.forget_ended(now);
                    return Ok(deleted);
                }
            }
        }
    }

    /// Runs `op` on the registrations table in one read transaction.
    async fn read<T>(
        &self,
        what: &'static str,
        op: impl FnOnce(&ReadOnlyByteTable) -> Result<T, EmbeddedError>,
    ) -> Result<T, StoreError> {
        self.read_table(what, REGISTRATIONS, op).await
    }

    /// Runs `op` on `table` in one read transaction, on the caller's thread: every read is
    /// one identity's few rows (or one key) from redb's cache, and redb neither waits for a
    /// writer nor for a commit's fsync to start one, so it takes microseconds, less than a
    /// hop to a blocking-pool thread and back.
    async fn read_table<T>(
        &self,
        what: &'static str,
        table: ByteTableDefinition,
        op: impl FnOnce(&ReadOnlyByteTable) -> Result<T, EmbeddedError>,
    ) -> Result<T, StoreError> {
        let read = || {
            let txn = self.db.begin_read()?;
            op(&txn.open_table(table)?)
        };
        read().map_err(|error| error.into_store_error(what))
    }
}

/// A table of byte keys and byte values, as most of the store's are.
type ByteTableDefinition = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
/// One of those tables, open for writing.
type ByteTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;
/// One of those tables, open for reading.
type ReadOnlyByteTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A grouped write's answer, or why it never came (the store closed before it ran).
fn finished<T>(
    answer: Result<Result<T, EmbeddedError>, tokio::sync::oneshot::error::RecvError>,
    what: &str,
) -> Result<T, StoreError> {
    match answer {
        Ok(result) => result.map_err(|error| error.into_store_error(what)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "embedded {what} did not finish"
        ))),
    }
}

/// Turns a blocking task's outcome into the store's answer, naming the operation that failed.
fn flatten<T>(
    joined: Result<Result<T, EmbeddedError>, tokio::task::JoinError>,
    what: &str,
) -> Result<T, StoreError> {
    match joined {
        Ok(result) => result.map_err(|error| error.into_store_error(what)),
        Err(error) => Err(StoreError::Unavailable(format!(
            "embedded {what} did not finish: {error}"
        ))),
    }
}

impl Store for EmbeddedStore {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn register(
        &self,
        who: &IdentityKey,
        registration: &Registration,
    ) -> Result<Registered, StoreError> {
        let key = RegistrationKey::new(who, &registration.device_id);
        let record = codec::encode(registration);
        let owner = owner_key(
            who.tenant.as_bytes(),
            codec::platform_byte(registration.address.platform()),
            registration.address.token_bytes(),
        );
        let alert_owner = registration.address.alert_token().map(|alert_token| {
            owner_key(
                who.tenant.as_bytes(),
                codec::platform_byte(registration.address.platform()),
                alert_token,
            )
        });
        let (now, max) = (registration.updated_at, self.max_devices_per_identity);
        let (created, created_at, moved_from) = self
            .write("register", move |tables| {
                tables.register(
                    &key,
                    record.clone(),
                    &owner,
                    alert_owner.as_deref(),
                    now,
                    max,
                )
            })
            .await?;
        let mut stored = registration.clone();
        stored.created_at = created_at;
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
        let prefix = RegistrationKey::new(who, "").bytes;
        self.read("list", move |registrations| {
            transactions::list(registrations, &prefix, now)
        })
        .await
    }

    async fn unregister(
        &self,
        who: &IdentityKey,
        device_id: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let key = RegistrationKey::new(who, device_id).bytes;
        self.write("unregister", move |tables| tables.unregister(&key, now))
            .await
    }

    async fn revoke(&self, who: &IdentityKey, now: UnixMillis) -> Result<u64, StoreError> {
        let prefix = RegistrationKey::new(who, "").bytes;
        self.write("revoke", move |tables| tables.revoke(&prefix, now))
            .await
    }

    async fn record_revocation(
        &self,
        who: &IdentityKey,
        at: UnixMillis,
        keep_ms: u64,
    ) -> Result<(), StoreError> {
        self.record_revoked(who, at, keep_ms).await
    }

    async fn revoked_at(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        self.read_revoked(who, now).await
    }

    async fn remove_dead_token(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        verdict_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let key = RegistrationKey::new(who, device_id).bytes;
        let platform = codec::platform_byte(address.platform());
        let field = codec::address_field(address);
        self.write("remove_dead_token", move |tables| {
            tables.remove_dead_token(&key, platform, &field, verdict_at)
        })
        .await
    }

    async fn correct_environment(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        environment: Environment,
        found_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let key = RegistrationKey::new(who, device_id).bytes;
        let platform = codec::platform_byte(address.platform());
        let field = codec::address_field(address);
        let environment = codec::environment_byte(environment);
        self.write("correct_environment", move |tables| {
            tables.correct_environment(&key, platform, &field, environment, found_at)
        })
        .await
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
        self.read("ping", |_| Ok(())).await
    }
}

/// Milliseconds since the UNIX epoch by the system clock, for the sweeper.
fn wall_clock() -> UnixMillis {
    // A clock set before 1970 sweeps nothing rather than failing the sweeper.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
