//! Call-event leases in the embedded store: each operation reads the event's record, applies
//! the pure rule of [`crate::registry::lease`] and writes the result, within one redb write
//! transaction (redb has one writer at a time, so the step is atomic). The claims waiting at
//! one moment share that transaction, in the order they came (`group`, `Persistence::Lazy`).
//!
//! A record is the event's deadline (8 bytes, big-endian, so the sweeper reads it without
//! decoding the rest) followed by the [`EventLease`] as JSON.

use super::EmbeddedStore;
use super::error::EmbeddedError;
use super::keys;
use crate::registry::lease::{self, Claim, EventLease, LeaseTerms};
use crate::registry::store::StoreError;
use crate::vocab::UnixMillis;
use redb::ReadableTable;

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

/// The event's record, if there is one.
fn read(events: &Leases<'_>, key: &[u8]) -> Result<Option<EventLease>, EmbeddedError> {
    match events.get(key)? {
        Some(record) => decode(record.value()).map(Some),
        None => Ok(None),
    }
}

/// Writes (or, for `None`, leaves) the event's record.
fn write(
    events: &mut Leases<'_>,
    key: &[u8],
    lease: Option<EventLease>,
) -> Result<(), EmbeddedError> {
    if let Some(lease) = lease {
        events.insert(key, encode(&lease)?.as_slice())?;
    }
    Ok(())
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
        let key = keys::event_key(tenant, event_id);
        let terms = terms.clone();
        self.claims("acquire_event", move |events| {
            let (claim, record) = lease::acquire(read(events, &key)?, &terms, now);
            write(events, &key, record)?;
            Ok(claim)
        })
        .await
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
        let key = keys::event_key(tenant, event_id);
        let (node, outcomes) = (node.to_owned(), outcomes.to_vec());
        self.claims("renew_event", move |events| {
            let (owned, record) =
                lease::renew(read(events, &key)?, &node, &outcomes, lease_ms, now);
            write(events, &key, record)?;
            Ok(owned)
        })
        .await
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
        let key = keys::event_key(tenant, event_id);
        let (node, outcomes) = (node.to_owned(), outcomes.to_vec());
        self.claims("finish_event", move |events| {
            let record = lease::finish(read(events, &key)?, &node, &outcomes, now);
            write(events, &key, record)
        })
        .await
    }

    /// See [`crate::registry::Store::release_event`].
    pub(super) async fn release_lease(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        let key = keys::event_key(tenant, event_id);
        let node = node.to_owned();
        self.claims("release_event", move |events| {
            if lease::may_release(read(events, &key)?.as_ref(), &node) {
                events.remove(key.as_slice())?;
            }
            Ok(())
        })
        .await
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
