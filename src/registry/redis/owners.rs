//! The owner index of the Redis store: where a token's owner entry lives and what it holds.
//! Pure functions, tested offline; the scripts that read and write entries are in `scripts`.
//!
//! A token's digest is `SHA-256(platform byte ++ token bytes)`. Its first 4 bytes, read as a
//! big-endian integer modulo the bucket count, pick the bucket key `o:<tenant>:<bucket in
//! hex>`; bytes 4..16 (12 raw bytes) are the entry's field inside that hash. The field alone
//! has 96 bits, so two tokens of one tenant share a field with probability about n²/2⁹⁷ for n
//! tokens (below 10⁻¹³ at a billion): out of reach whatever the bucket count. Both parts come
//! from the first 16 bytes of the digest, which is what the former one-key-per-token layout
//! (`o:<tenant>:<base64url(digest[..16])>`) kept, so an old owner key can be converted into
//! an entry without knowing its token.
//!
//! An entry's value is the registration's `expires_at` in whole seconds, rounded up (4 bytes,
//! little-endian), followed by the holder, `identity \0 device_id`. The expiry lets every
//! script that writes a bucket prune the bucket's expired entries and set the bucket's TTL to
//! the latest expiry left. Seconds rather than the record's milliseconds save 4 of an entry's
//! ~40 bytes (measured ~4 B per registration at a million); rounding up keeps an entry at most
//! a second past its registration, which is harmless: an entry is only ever taken for an owner
//! after the owner's record is checked (module doc of the store, step 3). 32 bits of seconds
//! last until 2106.

use crate::registry::codec;
use crate::registry::registration::PushAddress;
use crate::vocab::UnixMillis;

/// The bucket count used when the configuration sets none: 1 M registrations of one tenant
/// average ~15 entries a bucket, well inside `hash-max-listpack-entries` (128), so buckets
/// stay compact listpacks and a claim reads few entries. See the store's module doc for the
/// sizing rule.
pub const DEFAULT_BUCKETS: u32 = 65_536;

/// Length of an entry's field: digest bytes 4..16.
pub const FIELD_LEN: usize = 12;

/// Length of the expiry prefix of an entry's value (Lua: `struct.unpack('<I4', v, 1)` seconds,
/// the holder is `string.sub(v, 5)`).
pub const EXPIRES_LEN: usize = 4;

/// Where one token's owner entry lives: its bucket's key and its field in that hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerSlot {
    /// `o:<tenant>:<bucket in lower-case hex>`. No hash tag: buckets spread over the cluster,
    /// and every script touches one bucket only.
    pub bucket_key: String,
    /// Digest bytes 4..16, raw: short, fixed-size, and never spells the token out.
    pub field: [u8; FIELD_LEN],
}

impl OwnerSlot {
    /// The slot of `address` within `tenant`, for a store with `buckets` buckets per tenant
    /// (0 counts as 1: the configuration refuses 0, and a store must not divide by it).
    pub fn of(tenant: &str, address: &PushAddress, buckets: u32) -> OwnerSlot {
        let mut hasher = crate::sha256::Hasher::new();
        hasher.update(&[codec::platform_byte(address.platform())]);
        hasher.update(address.token_bytes());
        let digest = hasher.finish();
        let prefix = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let bucket = prefix % buckets.max(1);
        let mut field = [0; FIELD_LEN];
        field.copy_from_slice(&digest[4..4 + FIELD_LEN]);
        OwnerSlot {
            bucket_key: format!("o:{tenant}:{bucket:x}"),
            field,
        }
    }
}

/// Who holds a token: `identity \0 device_id`. Release scripts compare it byte for byte, so a
/// release never frees a token that another device holds meanwhile.
pub fn holder(identity: &str, device_id: &str) -> Vec<u8> {
    let mut holder = Vec::with_capacity(identity.len() + 1 + device_id.len());
    holder.extend_from_slice(identity.as_bytes());
    holder.push(0);
    holder.extend_from_slice(device_id.as_bytes());
    holder
}

/// Splits a holder back into `(identity, device_id)`; `None` for a foreign value.
pub fn parse_holder(holder: &[u8]) -> Option<(&str, &str)> {
    let split = holder.iter().position(|&byte| byte == 0)?;
    let identity = std::str::from_utf8(&holder[..split]).ok()?;
    let device_id = std::str::from_utf8(&holder[split + 1..]).ok()?;
    Some((identity, device_id))
}

/// An entry's value: the registration's `expires_at` in seconds, rounded up (little-endian
/// u32), then its holder.
pub fn entry(expires_at: UnixMillis, holder: &[u8]) -> Vec<u8> {
    // Saturates in 2106; registrations live at most 180 days, so only a bad clock gets there.
    let seconds = u32::try_from(expires_at.div_ceil(1000)).unwrap_or(u32::MAX);
    let mut entry = Vec::with_capacity(EXPIRES_LEN + holder.len());
    entry.extend_from_slice(&seconds.to_le_bytes());
    entry.extend_from_slice(holder);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apns(token: &[u8]) -> PushAddress {
        PushAddress::Apns {
            token: token.to_vec(),
            alert_token: None,
        }
    }

    #[test]
    fn derivation_is_pinned() {
        // SHA-256(0x00 ++ "abc") = 609f6e36 d2405585188d5cfd761f407c ..., computed
        // independently (Python hashlib); 0x609f6e36 % 65536 = 0x6e36, % 1000 = 174 = 0xae.
        // A change here would orphan every stored owner entry.
        let field: [u8; FIELD_LEN] = hex::decode("d2405585188d5cfd761f407c")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            OwnerSlot::of("t", &apns(b"abc"), DEFAULT_BUCKETS),
            OwnerSlot {
                bucket_key: "o:t:6e36".into(),
                field
            }
        );
        assert_eq!(OwnerSlot::of("t", &apns(b"abc"), 1000).bucket_key, "o:t:ae");
        assert_eq!(
            OwnerSlot::of("t", &apns(b"abc"), 1000).field,
            field,
            "the field does not depend on the bucket count"
        );
    }

    #[test]
    fn the_slot_is_fixed_size_and_hides_the_token() {
        let endpoint = format!("https://push.example/{}", "x".repeat(300));
        let slot = OwnerSlot::of(
            "acme",
            &PushAddress::Wns {
                channel: endpoint.clone(),
            },
            DEFAULT_BUCKETS,
        );
        assert!(slot.bucket_key.starts_with("o:acme:"));
        assert!(slot.bucket_key.len() <= "o:acme:ffff".len(), "{slot:?}");
        assert!(!slot.bucket_key.contains('{'), "buckets carry no hash tag");
        assert!(
            !slot
                .field
                .windows(4)
                .any(|window| endpoint.as_bytes().windows(4).any(|token| token == window)),
            "the field is a digest, not a piece of the token"
        );
    }

    #[test]
    fn the_slot_depends_on_tenant_platform_and_token() {
        let apple = apns(b"abc");
        let fcm = PushAddress::Fcm {
            token: "abc".into(),
        };
        let slot = |tenant, address: &PushAddress| OwnerSlot::of(tenant, address, 1);
        assert_eq!(slot("t", &apple), slot("t", &apple.clone()));
        assert_ne!(
            slot("t", &apple).field,
            slot("t", &fcm).field,
            "platform is part of the digest"
        );
        assert_ne!(
            slot("t", &apple).bucket_key,
            slot("u", &apple).bucket_key,
            "tenant is part of the key"
        );
        assert_ne!(slot("t", &apple).field, slot("t", &apns(b"abd")).field);
    }

    #[test]
    fn tokens_spread_over_every_bucket_and_stay_inside_the_count() {
        let mut seen = std::collections::BTreeSet::new();
        for n in 0u32..4096 {
            let slot = OwnerSlot::of("t", &apns(&n.to_le_bytes()), 16);
            let bucket = u32::from_str_radix(slot.bucket_key.trim_start_matches("o:t:"), 16)
                .expect("a hex bucket");
            assert!(bucket < 16);
            seen.insert(bucket);
        }
        assert_eq!(seen.len(), 16);
        assert_eq!(
            OwnerSlot::of("t", &apns(b"x"), 0),
            OwnerSlot::of("t", &apns(b"x"), 1),
            "0 buckets counts as one"
        );
        assert_eq!(OwnerSlot::of("t", &apns(b"x"), 1).bucket_key, "o:t:0");
    }

    #[test]
    fn holders_and_entries_round_trip() {
        let holder = holder("alice", "phone-1");
        assert_eq!(holder, b"alice\0phone-1");
        assert_eq!(parse_holder(&holder), Some(("alice", "phone-1")));
        assert_eq!(parse_holder(b"no separator"), None);

        let entry = entry(0x0102_0304 * 1000, &holder);
        assert_eq!(
            &entry[..EXPIRES_LEN],
            &[4, 3, 2, 1],
            "seconds, little-endian"
        );
        assert_eq!(&entry[EXPIRES_LEN..], holder.as_slice());
    }

    #[test]
    fn entry_expiry_rounds_up_to_the_second() {
        let seconds = |expires_at| {
            let entry = entry(expires_at, b"a\0d");
            u32::from_le_bytes(entry[..EXPIRES_LEN].try_into().unwrap())
        };
        assert_eq!(seconds(1_700_000_000_000), 1_700_000_000);
        assert_eq!(
            seconds(1_700_000_000_001),
            1_700_000_001,
            "never before its registration expires"
        );
        assert_eq!(seconds(u64::MAX), u32::MAX, "saturates instead of wrapping");
    }
}
