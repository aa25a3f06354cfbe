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
