//! The body of each embedded store operation, one redb transaction each: register, list,
//! unregister, revoke, remove a dead token, and one batch of the sweep. Everything here is
//! synchronous; the parent module runs it on tokio's blocking pool and commits or rolls back.
//!
//! Every write keeps the three tables in step: a registration row, its owner entry and its
//! expiry entry are added and removed together.

use super::error::EmbeddedError;
use super::keys::{
    EVENTS, EXPIRY, OWNERS, REGISTRATIONS, RegistrationKey, identity_end, split_key,
    write_expiry_key, write_owner_key,
};
use crate::registry::codec::{self, ADDRESS_OFFSET, CREATED_AT_OFFSET};
use crate::registry::registration::Registration;
use crate::vocab::UnixMillis;
use redb::{ReadOnlyTable, ReadableTable, Table, WriteTransaction};
use std::ops::Bound;

/// The live registrations under an identity prefix (`tenant \0 identity \0`) at `now`, in key
/// order, which is device id order.
pub(super) fn list(
    registrations: &ReadOnlyTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
    now: UnixMillis,
) -> Result<Vec<Registration>, EmbeddedError> {
    let mut listed = Vec::new();
    let end = identity_end(prefix);
    for entry in registrations.range::<&[u8]>(prefix..end.as_slice())? {
        let (key, record) = entry?;
        let record = record.value();
        if codec::expires_at(record)? > now {
            let device_id = std::str::from_utf8(&key.value()[prefix.len()..])
                .map_err(|_| EmbeddedError::MalformedKey("device id is not UTF-8"))?;
            listed.push(codec::decode(device_id, record)?);
        }
    }
    Ok(listed)
}

/// The three registration tables, open in one write transaction, and the call-event leases'
/// table, opened when first asked for.
pub(super) struct Tables<'txn> {
    /// The transaction, to open `EVENTS` in: a registration never touches it, so its
    /// transactions do not open it.
    txn: &'txn WriteTransaction,
    /// See `REGISTRATIONS`.
    registrations: Table<'txn, &'static [u8], &'static [u8]>,
    /// See `OWNERS`.
    owners: Table<'txn, &'static [u8], &'static [u8]>,
    /// See `EXPIRY`.
    expiry: Table<'txn, &'static [u8], ()>,
    /// See `EVENTS` (`claims`), once opened.
    events: Option<Table<'txn, &'static [u8], &'static [u8]>>,
    /// A key buffer reused by every index update, so loops do not allocate per row.
    scratch: Vec<u8>,
    /// Whether anything was written: an unchanged transaction is rolled back, which spares an
    /// fsync.
    pub(super) changed: bool,
}

impl<'txn> Tables<'txn> {
    /// Opens the three tables in `txn` (creating them in a new file).
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, EmbeddedError> {
        Ok(Tables {
            txn,
            registrations: txn.open_table(REGISTRATIONS)?,
            owners: txn.open_table(OWNERS)?,
            expiry: txn.open_table(EXPIRY)?,
            events: None,
            scratch: Vec::with_capacity(128),
            changed: false,
        })
    }

    /// The call-event leases table, for a claim to read and write. Counts as a change: a claim
    /// that leaves the table as it was is rare, and committing it costs no fsync.
    pub(super) fn events(
        &mut self,
    ) -> Result<&mut Table<'txn, &'static [u8], &'static [u8]>, EmbeddedError> {
        self.changed = true;
        let events = match self.events.take() {
            Some(events) => events,
            None => self.txn.open_table(EVENTS)?,
        };
        Ok(self.events.insert(events))
    }

    /// A copy of the stored record of `key`, live or not.
    fn registration(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EmbeddedError> {
        Ok(self
            .registrations
            .get(key)?
            .map(|record| record.value().to_vec()))
    }

    /// Registers or refreshes; returns (created, the stored created_at, moved_from).
    /// `owner` is the owner index key of the record's token, `alert_owner` that of its APNs
    /// alert token: both are one token, one owner.
    pub(super) fn register(
        &mut self,
        key: &RegistrationKey,
        mut record: Vec<u8>,
        owner: &[u8],
        alert_owner: Option<&[u8]>,
        now: UnixMillis,
        max_devices: u32,
    ) -> Result<(bool, UnixMillis, Option<String>), EmbeddedError> {
        let mut kept_created_at = None;
        if let Some(old) = self.registration(&key.bytes)? {
            if codec::expires_at(&old)? > now {
                kept_created_at = Some(read_u64(&old, CREATED_AT_OFFSET)?);
                // A device that changed a token frees the old one for whoever registers it
                // next (the ones it keeps are written again below).
                if address_of(&old)? != address_of(&record)?
                    || codec::alert_token(&old)? != codec::alert_token(&record)?
                {
                    release_owner_of(&mut self.owners, &mut self.scratch, &key.bytes, &old)?;
                }
                remove_expiry(&mut self.expiry, &mut self.scratch, &key.bytes, &old)?;
            } else {
                self.remove_registration(&key.bytes, &old)?;
            }
        }
        let (platform, field) = address_of(&record)?;
        let token = field[2..].to_vec();
        let mut moved_from = self.take_token(key, platform, &token, owner, now)?;
        if let (Some(alert_owner), Some(alert_token)) = (alert_owner, codec::alert_token(&record)?)
        {
            let alert_token = alert_token.to_vec();
            let taken = self.take_token(key, platform, &alert_token, alert_owner, now)?;
            moved_from = moved_from.or(taken);
        }
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
        if let Some(alert_owner) = alert_owner {
            self.owners
                .insert(alert_owner, &key.bytes[key.identity_at..])?;
        }
        self.changed = true;
        Ok((kept_created_at.is_none(), created_at, moved_from))
    }

    /// Takes `token` (of the `platform` byte; owner index key `owner`) from the device that
    /// holds it, if another: that registration is deleted. Returns that device's identity
    /// when it is not the registering one and it was live.
    fn take_token(
        &mut self,
        key: &RegistrationKey,
        platform: u8,
        token: &[u8],
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
        if !holds(&held, platform, token)? {
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

    /// Deletes the registration at `key`, live or expired; returns whether it was live at
    /// `now` (an expired one was already absent to the caller).
    pub(super) fn unregister(
        &mut self,
        key: &[u8],
        now: UnixMillis,
    ) -> Result<bool, EmbeddedError> {
        let Some(record) = self.registration(key)? else {
            return Ok(false);
        };
        let live = codec::expires_at(&record)? > now;
        self.remove_registration(key, &record)?;
        Ok(live)
    }

    /// Deletes the registration at `key` if, at `verdict_at`, it is live, still holds the token
    /// a push service declared dead (`platform` byte and address `field`) and was not
    /// registered again since; returns whether it deleted.
    pub(super) fn remove_dead_token(
        &mut self,
        key: &[u8],
        platform: u8,
        field: &[u8],
        verdict_at: UnixMillis,
    ) -> Result<bool, EmbeddedError> {
        let Some(record) = self.registration(key)? else {
            return Ok(false);
        };
        // An expired registration is no registration: nothing to delete on its account.
        let live = codec::expires_at(&record)? > verdict_at;
        let holds_it = address_of(&record)? == (platform, field);
        let updated_at = read_u64(&record, codec::UPDATED_AT_OFFSET)?;
        if live && holds_it && updated_at <= verdict_at {
            self.remove_registration(key, &record)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Sets the environment byte of the registration at `key` to `environment` if, at
    /// `found_at`, it is live, still holds the token (`platform` byte and address `field`) and
    /// was not registered again since; returns whether it changed the record. The owner and
    /// expiry entries do not depend on the environment, so only the row is rewritten.
    pub(super) fn correct_environment(
        &mut self,
        key: &[u8],
        platform: u8,
        field: &[u8],
        environment: u8,
        found_at: UnixMillis,
    ) -> Result<bool, EmbeddedError> {
        let Some(mut record) = self.registration(key)? else {
            return Ok(false);
        };
        let live = codec::expires_at(&record)? > found_at;
        let holds_it = address_of(&record)? == (platform, field);
        let updated_at = read_u64(&record, codec::UPDATED_AT_OFFSET)?;
        if !(live && holds_it && updated_at <= found_at)
            || record[codec::ENVIRONMENT_OFFSET] == environment
        {
            return Ok(false);
        }
        record[codec::ENVIRONMENT_OFFSET] = environment;
        self.registrations.insert(key, record.as_slice())?;
        self.changed = true;
        Ok(true)
    }

    /// Deletes every registration under an identity prefix; returns how many were live.
    pub(super) fn revoke(&mut self, prefix: &[u8], now: UnixMillis) -> Result<u64, EmbeddedError> {
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
    /// [`EmbeddedStore::sweep`](super::EmbeddedStore::sweep). Returns (expiry entries visited,
    /// registrations deleted).
    pub(super) fn sweep(
        &mut self,
        now: UnixMillis,
        batch: usize,
    ) -> Result<(usize, u64), EmbeddedError> {
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
            let record = match self.registrations.get(key)? {
                // A refresh moves the entry; one left behind must not delete the renewed row.
                Some(record) if codec::expires_at(record.value())?.to_be_bytes() == time => {
                    record.value().to_vec()
                }
                _ => continue,
            };
            self.registrations.remove(key)?;
            release_owner_of(&mut self.owners, &mut self.scratch, key, &record)?;
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

/// Removes the owner entries of the tokens `record` holds (its token, and its APNs alert
/// token) where they point at `key`'s registration.
fn release_owner_of(
    owners: &mut Table<'_, &'static [u8], &'static [u8]>,
    scratch: &mut Vec<u8>,
    key: &[u8],
    record: &[u8],
) -> Result<(), EmbeddedError> {
    let holder = owner_entry(scratch, key, record)?;
    release_owner(owners, scratch, holder)?;
    if let Some(alert_token) = codec::alert_token(record)? {
        let (tenant, holder) = split_key(key)?;
        let (platform, _) = address_of(record)?;
        write_owner_key(scratch, tenant, platform, alert_token);
        release_owner(owners, scratch, holder)?;
    }
    Ok(())
}

/// Whether `record` holds `token` of the `platform` byte, as its token or its alert token.
fn holds(record: &[u8], platform: u8, token: &[u8]) -> Result<bool, EmbeddedError> {
    let (held_platform, field) = address_of(record)?;
    Ok(held_platform == platform
        && (&field[2..] == token || codec::alert_token(record)? == Some(token)))
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
