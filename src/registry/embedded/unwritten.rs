//! Claims answered from memory and written to the file behind them.
//!
//! A ring makes three or four claim steps (acquire, renew, finish, release). Each used to
//! wait for redb's single writer, so whatever held the writer held the rings: the claims'
//! flush once a second (an fsync: 5–25 ms on this project's machines, 100–300 ms when the
//! disk stalled, which had the routers refuse hundreds of rings with `503`), a
//! registration's commit, a sweep slice. A claim was never durable when answered (its
//! commit is lazy, made durable within a second), so it need not wait for the file at all.
//!
//! Each step now runs under this table's lock: it reads the event's record (the one waiting
//! here if there is one, else the file's: redb reads run beside the writer), applies the
//! lease rule, keeps the new record here with a version, and answers; the write goes to the
//! claims' group, which commits it with the next batch. Once committed the record leaves
//! the table, unless a newer step replaced it meanwhile. A crash loses what it lost before:
//! the claims not yet made durable.
//!
//! Bounded: if the file stops taking writes, the table stops growing at [`MAX_UNWRITTEN`]
//! records and further claims are refused (the ring gets `503` and call control retries)
//! rather than held in memory without bound. Records whose event has ended are let go by the
//! claims' sweep, which deletes them from the file anyway.

use super::claims;
use super::error::EmbeddedError;
use crate::vocab::UnixMillis;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The most claim records waiting for the file; beyond it claims are refused.
pub(super) const MAX_UNWRITTEN: usize = 100_000;

/// What a claim step does to its event's record.
pub(super) enum Change {
    /// Leaves it as it is.
    Keep,
    /// Writes this record.
    Put(Vec<u8>),
    /// Deletes the record.
    Delete,
}

/// A record to write to the file (`None`: delete it), as the table holds it.
#[derive(Debug)]
pub(super) struct Write {
    pub(super) key: Vec<u8>,
    pub(super) record: Option<Vec<u8>>,
    version: u64,
}

/// A record waiting for the file.
struct Slot {
    record: Option<Vec<u8>>,
    /// The event's deadline, for the sweep (a deleted record keeps the one it had).
    deadline: UnixMillis,
    version: u64,
}

#[derive(Default)]
struct Records {
    by_key: HashMap<Vec<u8>, Slot>,
    next_version: u64,
}

/// The claim records answered but not yet committed to the file.
#[derive(Default)]
pub(super) struct Unwritten {
    records: Mutex<Records>,
}

impl Unwritten {
    /// Runs one claim step on `key`, atomically with every other step: `rule` sees the
    /// event's current record (from here, else `from_file`) and says what becomes of it;
    /// a change is kept here and handed to `queue` for the file. `queue` runs under the
    /// table's lock, so the writes of one event are queued in the order they were made (the
    /// file must end with the newest). Returns the step's answer and whether it queued a write.
    pub(super) fn step<T>(
        &self,
        key: Vec<u8>,
        from_file: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, EmbeddedError>,
        rule: impl FnOnce(Option<&[u8]>) -> Result<(T, Change), EmbeddedError>,
        queue: impl FnOnce(Write),
    ) -> Result<(T, bool), EmbeddedError> {
        let mut records = self.lock();
        let waiting = records.by_key.get(&key);
        if waiting.is_none() && records.by_key.len() >= MAX_UNWRITTEN {
            return Err(EmbeddedError::Backlog("claims are not reaching the file"));
        }
        let (answer, change, deadline) = match waiting {
            Some(slot) => {
                let (answer, change) = rule(slot.record.as_deref())?;
                (answer, change, slot.deadline)
            }
            None => {
                let current = from_file(&key)?;
                let deadline = current.as_deref().map_or(0, claims::deadline);
                let (answer, change) = rule(current.as_deref())?;
                (answer, change, deadline)
            }
        };
        let record = match change {
            Change::Keep => return Ok((answer, false)),
            Change::Put(record) => Some(record),
            Change::Delete => None,
        };
        let deadline = record.as_deref().map_or(deadline, claims::deadline);
        records.next_version += 1;
        let version = records.next_version;
        records.by_key.insert(
            key.clone(),
            Slot {
                record: record.clone(),
                deadline,
                version,
            },
        );
        queue(Write {
            key,
            record,
            version,
        });
        Ok((answer, true))
    }

    /// `write` is committed: its record leaves the table unless a newer step replaced it.
    pub(super) fn written(&self, write: &Write) {
        let mut records = self.lock();
        if records
            .by_key
            .get(&write.key)
            .is_some_and(|slot| slot.version == write.version)
        {
            records.by_key.remove(&write.key);
        }
    }

    /// Lets go of the records whose event ended at or before `now` (the sweep deletes them
    /// from the file too); returns how many.
    pub(super) fn forget_ended(&self, now: UnixMillis) -> usize {
        let mut records = self.lock();
        let before = records.by_key.len();
        records.by_key.retain(|_, slot| slot.deadline > now);
        before - records.by_key.len()
    }

    /// How many records wait for the file.
    pub(super) fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // Every change under the lock is whole (one insert or remove), so a poisoned table
        // is still a good one.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(deadline: UnixMillis, tag: u8) -> Vec<u8> {
        let mut record = deadline.to_be_bytes().to_vec();
        record.push(tag);
        record
    }

    fn no_file(_: &[u8]) -> Result<Option<Vec<u8>>, EmbeddedError> {
        Ok(None)
    }

    /// Runs a step that puts `put` (or deletes, for `None`), returning the write it queued.
    fn put(table: &Unwritten, key: &[u8], put: Option<Vec<u8>>) -> Option<Write> {
        let mut queued = None;
        let change = match put {
            Some(record) => Change::Put(record),
            None => Change::Delete,
        };
        let from_file = |_: &[u8]| Ok(Some(record(40, 0)));
        table
            .step(
                key.to_vec(),
                from_file,
                |_| Ok(((), change)),
                |write| {
                    queued = Some(write);
                },
            )
            .unwrap();
        queued
    }

    #[test]
    fn a_step_sees_the_record_waiting_here_before_the_file() {
        let table = Unwritten::default();
        let first = put(&table, b"e1", Some(record(50, 1))).unwrap();
        let file = |_: &[u8]| -> Result<Option<Vec<u8>>, EmbeddedError> {
            panic!("the file is not read while a newer record waits here")
        };
        let mut second = None;
        let (seen, queued) = table
            .step(
                b"e1".to_vec(),
                file,
                |current| Ok((current.map(<[u8]>::to_vec), Change::Put(record(50, 2)))),
                |write| second = Some(write),
            )
            .unwrap();
        assert_eq!(seen, Some(record(50, 1)));
        assert!(queued);
        // The first write lands after the second step: the newer record stays.
        table.written(&first);
        assert_eq!(table.len(), 1);
        table.written(&second.unwrap());
        assert_eq!(table.len(), 0, "the newest write landed: the file has it");
    }

    /// Two steps on one event, on two threads: were the second's write queued before the
    /// first's, the file would end with the older record. Queuing under the table's lock
    /// rules that out.
    #[test]
    fn a_write_is_queued_under_the_lock() {
        let table = Unwritten::default();
        let mut queued = false;
        table
            .step(
                b"e1".to_vec(),
                no_file,
                |_| Ok(((), Change::Put(record(50, 1)))),
                |_| {
                    queued = true;
                    assert!(
                        table.records.try_lock().is_err(),
                        "no other step runs until this write is queued"
                    );
                },
            )
            .unwrap();
        assert!(queued);
    }

    #[test]
    fn a_step_that_changes_nothing_queues_nothing() {
        let table = Unwritten::default();
        let from_file = |_: &[u8]| Ok(Some(record(50, 1)));
        let (answer, queued) = table
            .step(
                b"e1".to_vec(),
                from_file,
                |current| Ok((current.is_some(), Change::Keep)),
                |_| panic!("nothing to write"),
            )
            .unwrap();
        assert!(answer);
        assert!(!queued);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn ended_records_are_forgotten_deleted_ones_by_their_old_deadline() {
        let table = Unwritten::default();
        put(&table, b"gone", None).unwrap();
        put(&table, b"live", Some(record(90, 1))).unwrap();
        assert_eq!(table.forget_ended(40), 1);
        assert_eq!(table.len(), 1);
        assert_eq!(table.forget_ended(90), 1);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_full_table_refuses_new_events_but_not_the_ones_it_holds() {
        let table = Unwritten::default();
        for n in 0..MAX_UNWRITTEN {
            put(&table, &n.to_be_bytes(), Some(record(90, 0)));
        }
        let refused = table.step(
            b"one more".to_vec(),
            no_file,
            |_| Ok(((), Change::Put(record(90, 0)))),
            |_| {},
        );
        assert!(matches!(refused, Err(EmbeddedError::Backlog(_))));
        assert!(
            put(&table, &0usize.to_be_bytes(), Some(record(90, 1))).is_some(),
            "an event already waiting may still step"
        );
    }
}
