//! The embedded store's key layouts, their encoding and decoding, and the tables they
//! index (the parent module's doc describes each table and why it exists).

use super::error::EmbeddedError;
use crate::vocab::{IdentityKey, UnixMillis};
use redb::TableDefinition;

/// Registrations: `tenant \0 identity \0 device_id` → the
/// [`codec::encode`](crate::registry::codec::encode) record. The key order groups an identity's
/// devices together, sorted by device id.
pub(super) const REGISTRATIONS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("registrations");

/// Token owners: `tenant \0 platform byte \0 token bytes` → `identity \0 device_id`. Lets a
/// registration find, in one lookup, the device that held its token before, so that a token
/// rings one device of one identity only.
pub(super) const OWNERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("owners");

/// Expiry index: `expires_at as big-endian u64 ++ registration key` → `()`. Big-endian makes
/// byte order time order, so the sweep is a range scan over the past only.
pub(super) const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");

/// Call-event leases: `tenant \0 event id` → the event's deadline (UNIX ms, big-endian) ++
/// its [`EventLease`](crate::registry::lease::EventLease) as JSON (see `claims`). Written
/// without fsync (a claim lost in a crash can at worst let one retried event ring twice),
/// swept with the registrations once the deadline passed.
pub(super) const EVENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("event_leases");

/// Revocations: `tenant \0 identity` → when to forget the record (UNIX ms, big-endian) ++
/// when the identity was revoked (UNIX ms, big-endian). The forget time comes first so the
/// sweeper reads it without decoding the rest (see `revocations`).
pub(super) const REVOCATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("revocations");

/// The revocation key of an identity, `tenant \0 identity`.
pub(super) fn revocation_key(who: &IdentityKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(who.tenant.len() + 1 + who.identity.len());
    key.extend_from_slice(who.tenant.as_bytes());
    key.push(0);
    key.extend_from_slice(who.identity.as_bytes());
    key
}

/// The claim key of an event.
pub(super) fn event_key(tenant: &str, event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + 1 + event_id.len());
    key.extend_from_slice(tenant.as_bytes());
    key.push(0);
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// A registration's key, `tenant \0 identity \0 device_id`, and where its parts start.
pub(super) struct RegistrationKey {
    /// The key as stored.
    pub(super) bytes: Vec<u8>,
    /// Where `identity \0 device_id` starts: the owner index's value for this device.
    pub(super) identity_at: usize,
    /// Where the device id starts: everything before it is the identity's range prefix.
    pub(super) device_at: usize,
}

impl RegistrationKey {
    /// The key of `device_id` (empty: the identity's prefix, `tenant \0 identity \0`).
    pub(super) fn new(who: &IdentityKey, device_id: &str) -> RegistrationKey {
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
pub(super) fn identity_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    end
}

/// Splits a stored registration key into its tenant and its `identity \0 device_id` part.
pub(super) fn split_key(key: &[u8]) -> Result<(&[u8], &[u8]), EmbeddedError> {
    let at = key
        .iter()
        .position(|&byte| byte == 0)
        .ok_or(EmbeddedError::MalformedKey(
            "registration key without tenant separator",
        ))?;
    Ok((&key[..at], &key[at + 1..]))
}

/// The owner index key of a token.
pub(super) fn owner_key(tenant: &[u8], platform: u8, token: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + token.len() + 3);
    write_owner_key(&mut key, tenant, platform, token);
    key
}

/// Writes an owner index key into `buf`, reusing its allocation in loops.
pub(super) fn write_owner_key(buf: &mut Vec<u8>, tenant: &[u8], platform: u8, token: &[u8]) {
    buf.clear();
    buf.extend_from_slice(tenant);
    buf.push(0);
    buf.push(platform);
    buf.push(0);
    buf.extend_from_slice(token);
}

/// Writes an expiry index key into `buf`, reusing its allocation in loops.
pub(super) fn write_expiry_key(buf: &mut Vec<u8>, expires_at: UnixMillis, key: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&expires_at.to_be_bytes());
    buf.extend_from_slice(key);
}
