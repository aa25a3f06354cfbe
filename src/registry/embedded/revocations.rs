//! Revocations in the embedded store (the `REVOCATIONS` table): when each identity was last
//! revoked, kept until a token issued before it can no longer be valid.
//!
//! A record is the time to forget it (8 bytes, big-endian, first so the sweeper reads it
//! without decoding the rest) followed by the revocation time (8 bytes, big-endian). Written
//! durably: a revocation lost in a crash would let a revoked token back in.

use super::EmbeddedStore;
use super::error::EmbeddedError;
use super::keys::{self, REVOCATIONS};
use crate::registry::store::StoreError;
use crate::vocab::{IdentityKey, UnixMillis};
use redb::ReadableTableMetadata;

/// The record of a revocation at `at`, forgotten at `forget_at`.
fn encode(at: UnixMillis, forget_at: UnixMillis) -> [u8; 16] {
    let mut record = [0; 16];
    record[..8].copy_from_slice(&forget_at.to_be_bytes());
    record[8..].copy_from_slice(&at.to_be_bytes());
    record
}

/// The first and second u64 of a record: (forget at, revoked at).
fn decode(record: &[u8]) -> Result<(UnixMillis, UnixMillis), EmbeddedError> {
    let half = |range: std::ops::Range<usize>| {
        record
            .get(range)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_be_bytes)
            .ok_or(EmbeddedError::MalformedRecord("revocation"))
    };
    Ok((half(0..8)?, half(8..16)?))
}

/// The time to forget a record at the head of it; a record too short to hold one reads as
/// forgotten, so the sweeper drops it.
fn forget_at(record: &[u8]) -> UnixMillis {
    decode(record).map_or(0, |(forget_at, _)| forget_at)
}

impl EmbeddedStore {
    /// See [`crate::registry::Store::record_revocation`].
    pub(super) async fn record_revoked(
        &self,
        who: &IdentityKey,
        at: UnixMillis,
        keep_ms: u64,
    ) -> Result<(), StoreError> {
        let key = keys::revocation_key(who);
        let record = encode(at, at.saturating_add(keep_ms));
        self.revocations("record_revocation", move |revocations| {
            revocations.insert(key.as_slice(), record.as_slice())?;
            Ok(())
        })
        .await
    }

    /// See [`crate::registry::Store::revoked_at`].
    pub(super) async fn read_revoked(
        &self,
        who: &IdentityKey,
        now: UnixMillis,
    ) -> Result<Option<UnixMillis>, StoreError> {
        let key = keys::revocation_key(who);
        self.read_table("revoked_at", REVOCATIONS, move |revocations| {
            let Some(record) = revocations.get(key.as_slice())? else {
                return Ok(None);
            };
            let (forget_at, at) = decode(record.value())?;
            Ok((forget_at > now).then_some(at))
        })
        .await
    }

    /// Deletes the revocations forgotten at or before `now`; returns how many.
    pub async fn sweep_revocations(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.revocations("sweep_revocations", move |revocations| {
            let before = revocations.len()?;
            revocations.retain(|_, record| forget_at(record) > now)?;
            Ok(before - revocations.len()?)
        })
        .await
    }

    /// Runs `op` on the revocations table in one durable write transaction.
    async fn revocations<T: Send + 'static>(
        &self,
        what: &'static str,
        op: impl FnOnce(&mut super::ByteTable<'_>) -> Result<T, EmbeddedError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_table(what, REVOCATIONS, redb::Durability::Immediate, op)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_its_forget_time_up_front() {
        let record = encode(1_000, 5_000);
        assert_eq!(forget_at(&record), 5_000);
        assert_eq!(decode(&record).unwrap(), (5_000, 1_000));
        assert_eq!(forget_at(&record[..3]), 0, "a short record is swept");
    }

    #[tokio::test]
    async fn forgotten_revocations_are_swept_and_kept_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("r.redb"), 8).unwrap();
        let (old, kept) = (
            IdentityKey::new("acme", "old"),
            IdentityKey::new("acme", "kept"),
        );
        store.record_revoked(&old, 1_000, 1_000).await.unwrap();
        store.record_revoked(&kept, 1_000, 10_000).await.unwrap();
        assert_eq!(store.sweep_revocations(5_000).await.unwrap(), 1);
        assert_eq!(store.read_revoked(&old, 0).await.unwrap(), None);
        assert_eq!(store.read_revoked(&kept, 5_000).await.unwrap(), Some(1_000));
    }
}
