//! The embedded store: registrations in one redb file, for a node that runs alone.
//!
//! Three tables, one concept each:
//!
//! - `REGISTRATIONS`: `tenant \0 identity \0 device_id` → the [`codec`] record. Keys of one
//!   identity are contiguous, so listing or revoking it is one range scan, already ordered by
//!   device id.
//! - `OWNERS`: `tenant \0 platform \0 token` → `identity \0 device_id`, the device that holds
//!   a token ("one token, one owner" within a tenant, DESIGN.md).
//! - `EXPIRY`: `expires_at (u64 big-endian) ++ registration key` → `()`, so the sweep walks
//!   only what has expired instead of scanning every registration.
//!
//! Tenants, identities and device ids never contain NUL (the API validates them), which is what
//! makes `\0` a safe separator. Expired rows stay in the file until the sweep, but every method
//! treats them as absent; a write that meets one on its way deletes it.
//!
//! redb is synchronous and each commit is an fsync, so every operation runs on tokio's blocking
//! pool: the actix arbiter that awaits it keeps serving its other identities meanwhile. Each
//! `Store` method is exactly one redb transaction, hence atomic.

use super::codec::{self, ADDRESS_OFFSET, CREATED_AT_OFFSET, DecodeError};
use super::registration::{IdentityKey, Platform, PushAddress, Registration, UnixMillis};
use super::store::{Registered, Store, StoreError};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::task::JoinHandle;

/// Registrations: `tenant \0 identity \0 device_id` → [`codec::encode`] record. The key order
/// groups an identity's devices together, sorted by device id.
const REGISTRATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("registrations");

/// Token owners: `tenant \0 platform byte \0 token bytes` → `identity \0 device_id`. Lets a
/// registration find, in one lookup, the device that held its token before, so that a token
/// rings one device of one identity only.
const OWNERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("owners");

/// Expiry index: `expires_at as big-endian u64 ++ registration key` → `()`. Big-endian makes
/// byte order time order, so the sweep is a range scan over the past only.
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");

/// The most expired rows one sweep transaction deletes. redb has one writer at a time, so a
/// sweep after a long outage works in slices that registrations can slip between.
const SWEEP_BATCH: usize = 10_000;

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
                txn.commit()?;
                Ok(db)
            });
        let db = opened.map_err(|error| error.into_store_error(&format!("{}", path.display())))?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            max_devices_per_identity,
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
            }
        })
    }

    /// Runs `op` in one write transaction on the blocking pool; commits when it succeeded and
    /// changed something, rolls back otherwise (an error leaves the file as it was).
    async fn write<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&mut Tables<'_>) -> Result<T, EmbeddedError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        let task = tokio::task::spawn_blocking(move || {
            let txn = db.begin_write()?;
            let (result, changed) = {
                let mut tables = Tables::open(&txn)?;
                let result = op(&mut tables)?;
                (result, tables.changed)
            };
            if changed {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(result)
        });
        flatten(task.await, what)
    }

    /// Runs `op` in one read transaction on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T, EmbeddedError>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        let task = tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            op(&txn.open_table(REGISTRATIONS)?)
        });
        flatten(task.await, what)
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
            platform_tag(registration.address.platform()),
            registration.address.token_bytes(),
        );
        let (now, max) = (registration.updated_at, self.max_devices_per_identity);
        let (created, created_at, moved_from) = self
            .write("register", move |tables| {
                tables.register(&key, record, &owner, now, max)
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
            let mut listed = Vec::new();
            let end = identity_end(&prefix);
            for entry in registrations.range::<&[u8]>(prefix.as_slice()..end.as_slice())? {
                let (key, record) = entry?;
                let record = record.value();
                if codec::expires_at(record)? > now {
                    let device_id = std::str::from_utf8(&key.value()[prefix.len()..])
                        .map_err(|_| EmbeddedError::MalformedKey("device id is not UTF-8"))?;
                    listed.push(codec::decode(device_id, record)?);
                }
            }
            Ok(listed)
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
        self.write("unregister", move |tables| {
            let Some(record) = tables.registration(&key)? else {
                return Ok(false);
            };
            let live = codec::expires_at(&record)? > now;
            tables.remove_registration(&key, &record)?;
            Ok(live)
        })
        .await
    }

    async fn revoke(&self, who: &IdentityKey, now: UnixMillis) -> Result<u64, StoreError> {
        let prefix = RegistrationKey::new(who, "").bytes;
        self.write("revoke", move |tables| tables.revoke(&prefix, now))
            .await
    }

    async fn remove_dead_token(
        &self,
        who: &IdentityKey,
        device_id: &str,
        address: &PushAddress,
        verdict_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let key = RegistrationKey::new(who, device_id).bytes;
        let platform = platform_tag(address.platform());
        let field = codec::address_field(address);
        self.write("remove_dead_token", move |tables| {
            let Some(record) = tables.registration(&key)? else {
                return Ok(false);
            };
            // An expired registration is no registration: nothing to delete on its account.
            let live = codec::expires_at(&record)? > verdict_at;
            let holds_it = address_of(&record)? == (platform, field.as_slice());
            let updated_at = read_u64(&record, codec::UPDATED_AT_OFFSET)?;
            if live && holds_it && updated_at <= verdict_at {
                tables.remove_registration(&key, &record)?;
                return Ok(true);
            }
            Ok(false)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("ping", |_| Ok(())).await
    }
}

/// A registration's key, `tenant \0 identity \0 device_id`, and where its parts start.
struct RegistrationKey {
    /// The key as stored.
    bytes: Vec<u8>,
    /// Where `identity \0 device_id` starts: the owner index's value for this device.
    identity_at: usize,
    /// Where the device id starts: everything before it is the identity's range prefix.
    device_at: usize,
}

impl RegistrationKey {
    /// The key of `device_id` (empty: the identity's prefix, `tenant \0 identity \0`).
    fn new(who: &IdentityKey, device_id: &str) -> RegistrationKey {
        let (tenant, identity) = (who.tenant.as_bytes(), who.identity.as_bytes());
        let mut bytes = Vec::with_capacity(tenant.len() + identity.len() + device_id.len() + 2);
        bytes.extend_from_slice(tenant);
        bytes.push(0);
        bytes.extend_from_slice(identity);
        bytes.push(0);
        bytes.extend_from_slice(device_id.as_bytes());
        RegistrationKey {
            identity_at: tenant.len() + 1,
            device_at: tenant.len() + identity.len() + 2,
            bytes,
        }
    }
}

/// The exclusive end of one identity's key range, given its prefix `tenant \0 identity \0`:
/// the same bytes ending in `\x01`, which sorts after every device of that identity and before
/// any other identity.
fn identity_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    end
}

/// Splits a stored registration key into its tenant and its `identity \0 device_id` part.
fn split_key(key: &[u8]) -> Result<(&[u8], &[u8]), EmbeddedError> {
    let at = key
        .iter()
        .position(|&byte| byte == 0)
        .ok_or(EmbeddedError::MalformedKey(
            "registration key without tenant separator",
        ))?;
    Ok((&key[..at], &key[at + 1..]))
}

/// The owner index key of a token.
fn owner_key(tenant: &[u8], platform: u8, token: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + token.len() + 3);
    write_owner_key(&mut key, tenant, platform, token);
    key
}

/// Writes an owner index key into `buf`, reusing its allocation in loops.
fn write_owner_key(buf: &mut Vec<u8>, tenant: &[u8], platform: u8, token: &[u8]) {
    buf.clear();
    buf.extend_from_slice(tenant);
    buf.push(0);
    buf.push(platform);
    buf.push(0);
    buf.extend_from_slice(token);
}

/// Writes an expiry index key into `buf`, reusing its allocation in loops.
fn write_expiry_key(buf: &mut Vec<u8>, expires_at: UnixMillis, key: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&expires_at.to_be_bytes());
    buf.extend_from_slice(key);
}

/// The platform's byte in owner keys; the same as the codec's (checked by a test), so a record's
/// byte 1 can be used as is.
fn platform_tag(platform: Platform) -> u8 {
    match platform {
        Platform::Apns => 0,
        Platform::Fcm => 1,
        Platform::Wns => 2,
        Platform::Webpush => 3,
    }
}

/// A record's platform byte and address field (token length + token): together, the token a
/// device holds. Two platforms may share token bytes without sharing a device.
fn address_of(record: &[u8]) -> Result<(u8, &[u8]), EmbeddedError> {
    let truncated = || EmbeddedError::MalformedRecord("truncated address");
    let platform = *record.get(1).ok_or_else(truncated)?;
    let len = record
        .get(ADDRESS_OFFSET..ADDRESS_OFFSET + 2)
        .ok_or_else(truncated)?;
    let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
    let field = record
        .get(ADDRESS_OFFSET..ADDRESS_OFFSET + 2 + len)
        .ok_or_else(truncated)?;
    Ok((platform, field))
}

/// Reads a little-endian time field of a record.
fn read_u64(record: &[u8], offset: usize) -> Result<u64, EmbeddedError> {
    let bytes = record
        .get(offset..offset + 8)
        .ok_or(EmbeddedError::MalformedRecord("truncated header"))?;
    let mut array = [0; 8];
    array.copy_from_slice(bytes);
    Ok(u64::from_le_bytes(array))
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

/// The three tables, open in one write transaction.
struct Tables<'txn> {
    /// See `REGISTRATIONS`.
    registrations: Table<'txn, &'static [u8], &'static [u8]>,
    /// See `OWNERS`.
    owners: Table<'txn, &'static [u8], &'static [u8]>,
    /// See `EXPIRY`.
    expiry: Table<'txn, &'static [u8], ()>,
    /// A key buffer reused by every index update, so loops do not allocate per row.
    scratch: Vec<u8>,
    /// Whether anything was written: an unchanged transaction is rolled back, which spares an
    /// fsync.
    changed: bool,
}

impl<'txn> Tables<'txn> {
    /// Opens the three tables in `txn` (creating them in a new file).
    fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, EmbeddedError> {
        Ok(Tables {
            registrations: txn.open_table(REGISTRATIONS)?,
            owners: txn.open_table(OWNERS)?,
            expiry: txn.open_table(EXPIRY)?,
            scratch: Vec::with_capacity(128),
            changed: false,
        })
    }

    /// A copy of the stored record of `key`, live or not.
    fn registration(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EmbeddedError> {
        Ok(self
            .registrations
            .get(key)?
            .map(|record| record.value().to_vec()))
    }

    /// Registers or refreshes; returns (created, the stored created_at, moved_from).
    fn register(
        &mut self,
        key: &RegistrationKey,
        mut record: Vec<u8>,
        owner: &[u8],
        now: UnixMillis,
        max_devices: u32,
    ) -> Result<(bool, UnixMillis, Option<String>), EmbeddedError> {
        let mut kept_created_at = None;
        if let Some(old) = self.registration(&key.bytes)? {
            if codec::expires_at(&old)? > now {
                kept_created_at = Some(read_u64(&old, CREATED_AT_OFFSET)?);
                // A device that changed token frees the old one for whoever registers it next.
                if address_of(&old)? != address_of(&record)? {
                    release_owner_of(&mut self.owners, &mut self.scratch, &key.bytes, &old)?;
                }
                remove_expiry(&mut self.expiry, &mut self.scratch, &key.bytes, &old)?;
            } else {
                self.remove_registration(&key.bytes, &old)?;
            }
        }
        let moved_from = self.take_token(key, &record, owner, now)?;
        if kept_created_at.is_none() {
            // After take_token: a token moving between devices of this identity frees a slot.
            let live = self.count_live(&key.bytes[..key.device_at], now, max_devices)?;
            if live >= u64::from(max_devices) {
                // Returning an error rolls the whole transaction back, moves included.
                return Err(EmbeddedError::TooManyDevices { max: max_devices });
            }
        }
        let created_at = match kept_created_at {
            Some(created_at) => {
                record[CREATED_AT_OFFSET..CREATED_AT_OFFSET + 8]
                    .copy_from_slice(&created_at.to_le_bytes());
                created_at
            }
            None => read_u64(&record, CREATED_AT_OFFSET)?,
        };
        let expires_at = codec::expires_at(&record)?;
        self.registrations
            .insert(key.bytes.as_slice(), record.as_slice())?;
        write_expiry_key(&mut self.scratch, expires_at, &key.bytes);
        self.expiry.insert(self.scratch.as_slice(), ())?;
        self.owners.insert(owner, &key.bytes[key.identity_at..])?;
        self.changed = true;
        Ok((kept_created_at.is_none(), created_at, moved_from))
    }

    /// Takes the token of `record` from the device that holds it, if another; returns that
    /// device's identity when it is not the registering one and it was live.
    fn take_token(
        &mut self,
        key: &RegistrationKey,
        record: &[u8],
        owner: &[u8],
        now: UnixMillis,
    ) -> Result<Option<String>, EmbeddedError> {
        let holder = match self.owners.get(owner)? {
            Some(holder) if holder.value() != &key.bytes[key.identity_at..] => {
                holder.value().to_vec()
            }
            _ => return Ok(None),
        };
        let mut holder_key = Vec::with_capacity(key.identity_at + holder.len());
        holder_key.extend_from_slice(&key.bytes[..key.identity_at]);
        holder_key.extend_from_slice(&holder);
        let Some(held) = self.registration(&holder_key)? else {
            return Ok(None);
        };
        // An owner entry is dropped whenever its device lets the token go, so this check only
        // guards against an index that disagrees with the registrations.
        if address_of(&held)? != address_of(record)? {
            return Ok(None);
        }
        let live = codec::expires_at(&held)? > now;
        self.remove_registration(&holder_key, &held)?;
        let holder_identity = holder.split(|&byte| byte == 0).next().unwrap_or_default();
        if !live || holder_identity == &key.bytes[key.identity_at..key.device_at - 1] {
            return Ok(None);
        }
        let identity = String::from_utf8(holder_identity.to_vec())
            .map_err(|_| EmbeddedError::MalformedKey("identity is not UTF-8"))?;
        Ok(Some(identity))
    }

    /// Counts the live registrations under an identity prefix, stopping at `enough`.
    fn count_live(
        &self,
        prefix: &[u8],
        now: UnixMillis,
        enough: u32,
    ) -> Result<u64, EmbeddedError> {
        let mut live = 0;
        let end = identity_end(prefix);
        for entry in self.registrations.range::<&[u8]>(prefix..end.as_slice())? {
            let (_, record) = entry?;
            if codec::expires_at(record.value())? > now {
                live += 1;
                if live >= u64::from(enough) {
                    break;
                }
            }
        }
        Ok(live)
    }

    /// Deletes a registration whose stored record is `record`, with its index entries.
    fn remove_registration(&mut self, key: &[u8], record: &[u8]) -> Result<(), EmbeddedError> {
        self.registrations.remove(key)?;
        remove_expiry(&mut self.expiry, &mut self.scratch, key, record)?;
        release_owner_of(&mut self.owners, &mut self.scratch, key, record)?;
        self.changed = true;
        Ok(())
    }

    /// Deletes every registration under an identity prefix; returns how many were live.
    fn revoke(&mut self, prefix: &[u8], now: UnixMillis) -> Result<u64, EmbeddedError> {
        let mut live = 0;
        let end = identity_end(prefix);
        let mut removed = self
            .registrations
            .extract_from_if::<&[u8], _>(prefix..end.as_slice(), |_, _| true)?;
        for entry in &mut removed {
            let (key, record) = entry?;
            let (key, record) = (key.value(), record.value());
            if codec::expires_at(record)? > now {
                live += 1;
            }
            remove_expiry(&mut self.expiry, &mut self.scratch, key, record)?;
            release_owner_of(&mut self.owners, &mut self.scratch, key, record)?;
            self.changed = true;
        }
        Ok(live)
    }

    /// Deletes up to `batch` of the registrations that expired at or before `now`; see
    /// [`EmbeddedStore::sweep`]. Returns (expiry entries visited, registrations deleted).
    fn sweep(&mut self, now: UnixMillis, batch: usize) -> Result<(usize, u64), EmbeddedError> {
        // Expiry keys of time t sort before the bare 8 bytes of t + 1 and after those of t.
        let end = now.checked_add(1).map(u64::to_be_bytes);
        let upper = end
            .as_ref()
            .map_or(Bound::Unbounded, |end| Bound::Excluded(end.as_slice()));
        let (mut visited, mut deleted) = (0, 0);
        // Only the entries the iterator yields are removed, so `take` bounds the batch.
        let expired = self
            .expiry
            .extract_from_if::<&[u8], _>((Bound::Unbounded, upper), |_, _| true)?;
        for entry in expired.take(batch) {
            let (entry, _) = entry?;
            visited += 1;
            self.changed = true;
            let (time, key) = entry
                .value()
                .split_at_checked(8)
                .ok_or(EmbeddedError::MalformedKey("short expiry key"))?;
            let holder = match self.registrations.get(key)? {
                // A refresh moves the entry; one left behind must not delete the renewed row.
                Some(record) if codec::expires_at(record.value())?.to_be_bytes() == time => {
                    owner_entry(&mut self.scratch, key, record.value())?
                }
                _ => continue,
            };
            self.registrations.remove(key)?;
            release_owner(&mut self.owners, &self.scratch, holder)?;
            deleted += 1;
        }
        Ok((visited, deleted))
    }
}

/// Removes a registration's expiry index entry.
fn remove_expiry(
    expiry: &mut Table<'_, &'static [u8], ()>,
    scratch: &mut Vec<u8>,
    key: &[u8],
    record: &[u8],
) -> Result<(), EmbeddedError> {
    write_expiry_key(scratch, codec::expires_at(record)?, key);
    expiry.remove(scratch.as_slice())?;
    Ok(())
}

/// Writes into `scratch` the owner index key of the token that `record`, stored under `key`,
/// holds; returns the owner value (`identity \0 device_id`) that points at this registration.
fn owner_entry<'k>(
    scratch: &mut Vec<u8>,
    key: &'k [u8],
    record: &[u8],
) -> Result<&'k [u8], EmbeddedError> {
    let (tenant, holder) = split_key(key)?;
    let (platform, field) = address_of(record)?;
    // address_of returned at least the two length bytes.
    write_owner_key(scratch, tenant, platform, &field[2..]);
    Ok(holder)
}

/// Removes the owner entry at `owner_key` if it still points at `holder` (the token may have
/// moved on to another device, which keeps it).
fn release_owner(
    owners: &mut Table<'_, &'static [u8], &'static [u8]>,
    owner_key: &[u8],
    holder: &[u8],
) -> Result<(), EmbeddedError> {
    let points_here = owners
        .get(owner_key)?
        .is_some_and(|owner| owner.value() == holder);
    if points_here {
        owners.remove(owner_key)?;
    }
    Ok(())
}

/// Removes the owner entry of the token `record` holds if it points at `key`'s registration.
fn release_owner_of(
    owners: &mut Table<'_, &'static [u8], &'static [u8]>,
    scratch: &mut Vec<u8>,
    key: &[u8],
    record: &[u8],
) -> Result<(), EmbeddedError> {
    let holder = owner_entry(scratch, key, record)?;
    release_owner(owners, scratch, holder)
}

/// Why an embedded operation failed, before it is reported as a [`StoreError`].
#[derive(Debug, Error)]
enum EmbeddedError {
    /// redb failed: I/O, a lock, or a file it cannot read.
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// A stored record does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A stored key does not have the layout this module writes.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A stored record is too short for the field this module reads directly.
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    /// A new device would exceed the identity's limit.
    #[error("too many devices")]
    TooManyDevices {
        /// The configured limit.
        max: u32,
    },
}

/// redb's per-step error types all convert into `redb::Error`; this lets `?` do it.
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for EmbeddedError {
            fn from(error: $error) -> Self {
                EmbeddedError::Redb(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl EmbeddedError {
    /// Sorts the failure into what the API can tell a client: retry later, or a bug / foreign
    /// data that retrying will not fix.
    fn into_store_error(self, what: &str) -> StoreError {
        let message = format!("embedded {what}: {self}");
        match self {
            EmbeddedError::TooManyDevices { max } => StoreError::TooManyDevices { max },
            EmbeddedError::Decode(_)
            | EmbeddedError::MalformedKey(_)
            | EmbeddedError::MalformedRecord(_) => StoreError::Corrupt(message),
            EmbeddedError::Redb(error) => match error {
                redb::Error::Corrupted(_)
                | redb::Error::UpgradeRequired(_)
                | redb::Error::TableTypeMismatch { .. }
                | redb::Error::TypeDefinitionChanged { .. }
                | redb::Error::TableIsMultimap(_)
                | redb::Error::TableIsNotMultimap(_) => StoreError::Corrupt(message),
                // redb reports a file that is not a database as invalid data.
                redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                    StoreError::Corrupt(message)
                }
                _ => StoreError::Unavailable(message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Environment;
    use redb::ReadableTableMetadata;

    const DAY: u64 = 86_400_000;
    const NOW: UnixMillis = 1_700_000_000_000;

    fn store(dir: &tempfile::TempDir, max_devices: u32) -> EmbeddedStore {
        EmbeddedStore::open(dir.path().join("registry.redb"), max_devices).unwrap()
    }

    fn registration(
        device_id: &str,
        address: PushAddress,
        now: UnixMillis,
        ttl: u64,
    ) -> Registration {
        Registration {
            device_id: device_id.into(),
            app: "voip".into(),
            address,
            environment: Environment::Production,
            disable_internal_push: false,
            created_at: now,
            updated_at: now,
            expires_at: now + ttl,
        }
    }

    fn apns(byte: u8) -> PushAddress {
        PushAddress::Apns {
            token: vec![byte; 32],
        }
    }

    /// Rows in (registrations, owners, expiry): what a user of the file pays for.
    fn rows(store: &EmbeddedStore) -> (u64, u64, u64) {
        let txn = store.db.begin_read().unwrap();
        (
            txn.open_table(REGISTRATIONS).unwrap().len().unwrap(),
            txn.open_table(OWNERS).unwrap().len().unwrap(),
            txn.open_table(EXPIRY).unwrap().len().unwrap(),
        )
    }

    #[test]
    fn platform_tags_match_the_codec() {
        for address in [
            apns(1),
            PushAddress::Fcm { token: "f".into() },
            PushAddress::Wns {
                channel: "w".into(),
            },
            PushAddress::WebPush {
                endpoint: "e".into(),
                p256dh: [4; 65],
                auth: [7; 16],
            },
        ] {
            let record = codec::encode(&registration("d", address.clone(), NOW, DAY));
            assert_eq!(record[1], platform_tag(address.platform()), "{address:?}");
            let field = codec::address_field(&address);
            assert_eq!(address_of(&record).unwrap(), (record[1], field.as_slice()));
        }
    }

    #[tokio::test]
    async fn sweep_deletes_only_expired_rows_and_their_index_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, 8);
        let who = IdentityKey::new("acme", "alice");
        store
            .register(&who, &registration("short", apns(1), NOW, 1_000))
            .await
            .unwrap();
        store
            .register(&who, &registration("long", apns(2), NOW, DAY))
            .await
            .unwrap();
        // Refreshed from short to long: its first expiry entry must not delete it.
        store
            .register(&who, &registration("renewed", apns(3), NOW, 1_000))
            .await
            .unwrap();
        store
            .register(&who, &registration("renewed", apns(3), NOW + 500, DAY))
            .await
            .unwrap();
        assert_eq!(rows(&store), (3, 3, 3));

        assert_eq!(
            store.sweep(NOW + 999).await.unwrap(),
            0,
            "nothing expired yet"
        );
        assert_eq!(
            store.sweep(NOW + 1_000).await.unwrap(),
            1,
            "expiry time is inclusive"
        );
        assert_eq!(rows(&store), (2, 2, 2));
        let left: Vec<_> = store
            .list(&who, NOW + 1_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.device_id)
            .collect();
        assert_eq!(left, ["long", "renewed"]);
        assert_eq!(
            store.sweep(NOW + 1_000).await.unwrap(),
            0,
            "a second sweep finds nothing"
        );
        assert_eq!(store.sweep(u64::MAX).await.unwrap(), 2);
        assert_eq!(rows(&store), (0, 0, 0));
    }

    #[tokio::test]
    async fn a_sweep_in_small_batches_deletes_everything_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, 8);
        let who = IdentityKey::new("acme", "alice");
        for n in 0..5 {
            store
                .register(
                    &who,
                    &registration(&format!("old-{n}"), apns(n), NOW, 1_000),
                )
                .await
                .unwrap();
        }
        store
            .register(&who, &registration("live", apns(9), NOW, DAY))
            .await
            .unwrap();
        assert_eq!(store.sweep_in_batches(NOW + 1_000, 2).await.unwrap(), 5);
        assert_eq!(rows(&store), (1, 1, 1));
    }

    #[tokio::test]
    async fn registrations_survive_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dirs/registry.redb");
        let who = IdentityKey::new("acme", "alice");
        let stored = {
            let store = EmbeddedStore::open(&path, 8).unwrap();
            let stored = store
                .register(&who, &registration("phone", apns(1), NOW, DAY))
                .await
                .unwrap();
            stored.registration
        };
        // The handle above is gone, so the file is closed and may be opened again.
        let store = EmbeddedStore::open(&path, 8).unwrap();
        assert_eq!(store.list(&who, NOW).await.unwrap(), vec![stored]);
        let other = IdentityKey::new("acme", "bob");
        let moved = store
            .register(&other, &registration("p", apns(1), NOW, DAY))
            .await
            .unwrap();
        assert_eq!(
            moved.moved_from.as_deref(),
            Some("alice"),
            "the owner index survived too"
        );
    }

    #[tokio::test]
    async fn a_file_open_elsewhere_is_unavailable_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let _first = store(&dir, 8);
        match EmbeddedStore::open(dir.path().join("registry.redb"), 8) {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("registry.redb"), "{message}")
            }
            other => panic!("expected Unavailable, got {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn same_token_bytes_on_two_platforms_are_two_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, 8);
        let alice = IdentityKey::new("acme", "alice");
        let bob = IdentityKey::new("acme", "bob");
        store
            .register(
                &alice,
                &registration(
                    "p",
                    PushAddress::Fcm {
                        token: "same".into(),
                    },
                    NOW,
                    DAY,
                ),
            )
            .await
            .unwrap();
        let r = store
            .register(
                &bob,
                &registration(
                    "p",
                    PushAddress::Wns {
                        channel: "same".into(),
                    },
                    NOW,
                    DAY,
                ),
            )
            .await
            .unwrap();
        assert_eq!(r.moved_from, None);
        assert_eq!(store.list(&alice, NOW).await.unwrap().len(), 1);
        let wns = PushAddress::Wns {
            channel: "same".into(),
        };
        assert!(
            !store
                .remove_dead_token(&alice, "p", &wns, NOW + 1)
                .await
                .unwrap(),
            "not alice's platform"
        );
        assert_eq!(rows(&store), (2, 2, 2));
    }

    #[tokio::test]
    async fn a_token_moving_between_devices_at_the_limit_is_not_a_new_device() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, 2);
        let who = IdentityKey::new("acme", "alice");
        store
            .register(&who, &registration("a", apns(1), NOW, DAY))
            .await
            .unwrap();
        store
            .register(&who, &registration("b", apns(2), NOW, DAY))
            .await
            .unwrap();
        let reinstall = store
            .register(&who, &registration("a2", apns(1), NOW + 1, DAY))
            .await
            .unwrap();
        assert!(reinstall.created);
        match store
            .register(&who, &registration("c", apns(3), NOW + 1, DAY))
            .await
        {
            Err(StoreError::TooManyDevices { max: 2 }) => {}
            other => panic!("expected TooManyDevices, got {other:?}"),
        }
        assert_eq!(
            rows(&store),
            (2, 2, 2),
            "the refused registration left nothing behind"
        );
    }

    #[tokio::test]
    async fn deletions_leave_no_index_entries_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, 8);
        let who = IdentityKey::new("acme", "alice");
        for (device, byte) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
            store
                .register(&who, &registration(device, apns(byte), NOW, DAY))
                .await
                .unwrap();
        }
        store
            .register(&who, &registration("a", apns(9), NOW + 1, DAY))
            .await
            .unwrap();
        assert_eq!(
            rows(&store),
            (4, 4, 4),
            "a changed token replaces its owner entry"
        );
        assert!(store.unregister(&who, "a", NOW + 2).await.unwrap());
        assert!(
            store
                .remove_dead_token(&who, "b", &apns(2), NOW + 2)
                .await
                .unwrap()
        );
        assert_eq!(rows(&store), (2, 2, 2));
        assert_eq!(store.revoke(&who, NOW + 2).await.unwrap(), 2);
        assert_eq!(rows(&store), (0, 0, 0));
    }

    #[tokio::test]
    async fn an_undecodable_record_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, 8);
        let who = IdentityKey::new("acme", "alice");
        let txn = store.db.begin_write().unwrap();
        txn.open_table(REGISTRATIONS)
            .unwrap()
            .insert(b"acme\0alice\0phone".as_slice(), b"\x01".as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert!(matches!(
            store.list(&who, NOW).await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.unregister(&who, "phone", NOW).await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(store.ping().await.is_ok(), "the file itself is fine");
    }

    #[tokio::test]
    async fn the_sweeper_runs_until_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir, 8);
        let who = IdentityKey::new("acme", "alice");
        // Already expired by the wall clock the sweeper reads.
        let past = wall_clock() - DAY;
        store
            .register(&who, &registration("old", apns(1), past, 1_000))
            .await
            .unwrap();
        let sweeper = store.spawn_sweeper(Duration::from_millis(10));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while rows(&store) != (0, 0, 0) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sweeper never swept"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sweeper.abort();
        assert!(sweeper.await.unwrap_err().is_cancelled());
    }
}
