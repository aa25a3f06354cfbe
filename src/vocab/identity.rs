//! Whose devices: an identity within its tenant.

/// The identity a registration belongs to, scoped by its tenant. Tenants never see each
/// other's identities: every store key starts with the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    /// The tenant, taken from the caller's credential, never from a request body.
    pub tenant: String,
    /// The user identity within the tenant.
    pub identity: String,
}

impl IdentityKey {
    /// Builds a key from its two parts.
    pub fn new(tenant: impl Into<String>, identity: impl Into<String>) -> Self {
        IdentityKey {
            tenant: tenant.into(),
            identity: identity.into(),
        }
    }

    /// The index, below `count`, of the shard that owns this identity: its registry shard and
    /// its router are the same one (docs/architecture.md, "one shard per core"), so both
    /// maps are this function. `count` must not be zero.
    pub fn shard(&self, count: usize) -> usize {
        // The modulo keeps the index below `count`, which fits usize.
        (self.stable_hash() % count as u64) as usize
    }

    /// A stable 64-bit hash (FNV-1a) of the key. It picks the identity's shard, so it must
    /// not change between runs or builds, which rules out std's `DefaultHasher`.
    pub fn stable_hash(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let bytes = self
            .tenant
            .bytes()
            .chain(std::iter::once(0))
            .chain(self.identity.bytes());
        bytes.fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_keeps_its_shard_and_identities_spread_over_all_of_them() {
        let alice = IdentityKey::new("acme", "alice");
        // Pinned: the hash is (stable_hash_is_fixed_across_builds), so the shard is too.
        assert_eq!(alice.shard(4), (0xd765_60e7_a2b8_0eaf_u64 % 4) as usize);
        let mut used = [0usize; 3];
        for n in 0..300 {
            used[IdentityKey::new("acme", format!("user-{n}")).shard(3)] += 1;
        }
        assert!(
            used.iter().all(|&n| n > 50),
            "every shard gets its share: {used:?}"
        );
    }
}
