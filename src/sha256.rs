//! SHA-256, for every digest the node takes: the `apns-id` of every push, every event's lease
//! key, the owner index's buckets, fingerprints in logs, server-key and credential digests,
//! the Web Push topic. One module, so that which implementation the node uses is one choice.
//!
//! The `sha2` crate, not ring (the node's TLS cryptography): on the CPU, where both use the
//! SHA extensions, `sha2` takes ~60 ns for an `apns-id` and ring 84–98 ns (`cargo bench --bench
//! apns -- apns_id_sha256`; ring's digest context costs more than the block for inputs this
//! short). Under callgrind the ranking flips: valgrind hides the SHA extensions, so `sha2`
//! runs its portable code there (~3,500 instructions a block) where ring keeps its AVX code
//! (~2,100), and `benches/e2e.sh CALLGRIND=1` counts ~5.7k instructions per push of SHA-256
//! that the hardware spends in ~0.1 µs; it prints that share apart.

use sha2::Digest as _;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn of(bytes: &[u8]) -> Digest {
    sha2::Sha256::digest(bytes).into()
}

/// A digest fed in parts: the same as [`of`] over their concatenation.
#[derive(Default)]
pub struct Hasher(sha2::Sha256);

impl Hasher {
    /// An empty digest.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_vectors() {
        // FIPS 180-2 appendix B.1 and B.2.
        assert_eq!(
            hex::encode(of(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(of(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn parts_hash_as_their_concatenation() {
        let mut hasher = Hasher::new();
        hasher.update(b"ab");
        hasher.update(b"");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), of(b"abc"));
    }
}
