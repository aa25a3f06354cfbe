//! Call-event leases in the embedded store: each operation reads the event's record, applies
//! the pure rule of [`crate::registry::lease`] and keeps the result, atomically with every
//! other step, in memory ([`super::unwritten`]); the write reaches the file behind the
//! answer, in the claims' group's next batch (`group`, `Persistence::Lazy`).
//!
//! A record is the event's deadline (8 bytes, big-endian, so the sweeper reads it without
//! decoding the rest) followed by the [`EventLease`] as JSON.

use super::EmbeddedStore;
use super::error::EmbeddedError;
use super::group::Job;
use super::keys;
use super::transactions::Tables;
use super::unwritten::{Change, Unwritten, Write};
use crate::registry::lease::{self, Claim, EventLease, LeaseTerms};
use crate::registry::store::StoreError;
use crate::vocab::UnixMillis;
use redb::{ReadableDatabase, ReadableTable};
use std::sync::Arc;

/// The deadline at the head of a record; a record too short to hold one reads as ended, so
/// the sweeper drops it.
pub(super) fn deadline(record: &[u8]) -> UnixMillis {
    record
        .get(..8)
        .and_then(|head| <[u8; 8]>::try_from(head).ok())
        .map_or(0, u64::from_be_bytes)
}

fn encode(lease: &EventLease) -> Result<Vec<u8>, EmbeddedError> {
    let mut record = lease.deadline.to_be_bytes().to_vec();
    // Writing JSON into a Vec fails only for maps with non-string keys, which this has none of.
    serde_json::to_writer(&mut record, lease)
        .map_err(|_| EmbeddedError::MalformedRecord("event lease"))?;
    Ok(record)
}

fn decode(record: &[u8]) -> Result<EventLease, EmbeddedError> {
    serde_json::from_slice(record.get(8..).unwrap_or_default())
        .map_err(|_| EmbeddedError::MalformedRecord("event lease"))
}

type Leases<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

/// What becomes of the record when the rule returned `record` (`None`: leave it).
fn put(record: Option<EventLease>) -> Result<Change, EmbeddedError> {
    Ok(match record {
        Some(lease) => Change::Put(encode(&lease)?),
        None => Change::Keep,
    })
}

impl EmbeddedStore {
    /// See [`crate::registry::Store::acquire_event`].
    pub(super) async fn acquire_lease(
        &self,
        tenant: &str,
        event_id: &str,
        terms: &LeaseTerms,
        now: UnixMillis,
    ) -> Result<Claim, StoreError> {
        self.claim_step("acquire_event", tenant, event_id, |current| {
            let (claim, record) = lease::acquire(current, terms, now);
            Ok((claim, put(record)?))
        })
    }

    /// See [`crate::registry::Store::renew_event`].
    pub(super) async fn renew_lease(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        lease_ms: u64,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.claim_step("renew_event", tenant, event_id, |current| {
            let (owned, record) = lease::renew(current, node, outcomes, lease_ms, now);
            Ok((owned, put(record)?))
        })
    }

    /// See [`crate::registry::Store::finish_event`].
    pub(super) async fn finish_lease(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.claim_step("finish_event", tenant, event_id, |current| {
            Ok(((), put(lease::finish(current, node, outcomes, now))?))
        })
    }

    /// See [`crate::registry::Store::release_event`].
    pub(super) async fn release_lease(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        self.claim_step("release_event", tenant, event_id, |current| {
            let change = if lease::may_release(current.as_ref(), node) {
                Change::Delete
            } else {
                Change::Keep
            };
            Ok(((), change))
        })
    }

    /// Runs one claim step on the event's record without waiting for the write lane
    /// ([`unwritten`](super::unwritten)): `rule` sees the current lease and says what becomes
    /// of it; the write it makes goes to the file behind the answer.
    fn claim_step<T>(
        &self,
        what: &'static str,
        tenant: &str,
        event_id: &str,
        rule: impl FnOnce(Option<EventLease>) -> Result<(T, Change), EmbeddedError>,
    ) -> Result<T, StoreError> {
        let key = keys::event_key(tenant, event_id);
        let queue = |write| {
            self.claims.push_job(Box::new(ClaimWrite {
                write,
                unwritten: Arc::clone(&self.unwritten),
            }));
        };
        let stepped = self.unwritten.step(
            key,
            |key| self.claim_in_file(key),
            |current| rule(current.map(decode).transpose()?),
            queue,
        );
        let (answer, queued) = stepped.map_err(|error| error.into_store_error(what))?;
        if queued && self.claims.become_leader() {
            self.lead(&self.claims, Some(Arc::clone(&self.unwritten)));
        }
        Ok(answer)
    }

    /// The event's record as the file has it (redb reads run beside the writer).
    fn claim_in_file(&self, key: &[u8]) -> Result<Option<Vec<u8>>, EmbeddedError> {
        let txn = self.db.begin_read()?;
        let events = txn.open_table(keys::EVENTS)?;
        Ok(events.get(key)?.map(|record| record.value().to_vec()))
    }
}

/// A claim step's write, queued in the claims' group: once committed, its record leaves the
/// unwritten table.
struct ClaimWrite {
    write: Write,
    unwritten: Arc<Unwritten>,
}

impl Job for ClaimWrite {
    fn run(&mut self, tables: &mut Tables<'_>) -> Result<(), EmbeddedError> {
        let events = tables.events()?;
        let key = self.write.key.as_slice();
        match &self.write.record {
            Some(record) => drop(events.insert(key, record.as_slice())?),
            None => drop(events.remove(key)?),
        }
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<(), EmbeddedError>) {
        match outcome {
            Ok(()) => self.unwritten.written(&self.write),
            // It stays in memory, where the claim steps read it, until its event ends.
            Err(error) => tracing::warn!(%error, "a call-event claim was not written to the file"),
        }
    }
}

/// One slice of the claims' sweep: visits up to `batch` records after the key `after` (from
/// the first when `None`), deletes those that ended at or before `now`, and returns the last
/// key visited when there may be more (`None` once the table's end was reached) and how many
/// it deleted.
pub(super) fn sweep_slice(
    events: &mut Leases<'_>,
    after: Option<&[u8]>,
    now: UnixMillis,
    batch: usize,
) -> Result<(Option<Vec<u8>>, u64), EmbeddedError> {
    use std::ops::Bound;
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut ended = Vec::new();
    let mut last = None;
    let mut visited = 0;
    for entry in events
        .range::<&[u8]>((start, Bound::Unbounded))?
        .take(batch)
    {
        let (key, record) = entry?;
        if deadline(record.value()) <= now {
            ended.push(key.value().to_vec());
        }
        last = Some(key.value().to_vec());
        visited += 1;
    }
    for key in &ended {
        events.remove(key.as_slice())?;
    }
    let next = if visited == batch { last } else { None };
    Ok((next, ended.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_its_deadline_up_front() {
        let lease = EventLease {
            owner: "node-a".into(),
            lease_until: 3_000,
            deadline: 45_000,
            finished: false,
            done: ["phone".to_owned()].into(),
        };
        let record = encode(&lease).unwrap();
        assert_eq!(deadline(&record), 45_000);
        assert_eq!(decode(&record).unwrap(), lease);
        assert_eq!(deadline(b"short"), 0, "unreadable records are swept");
    }
}
