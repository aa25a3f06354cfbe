//! SHA-256 through ring, the one cryptography library the node links for TLS already.
//!
//! Why not the `sha2` crate: both are correct, but on the hot path (every push's `apns-id`,
//! every event's lease key) the instruction counts that `benches/e2e.sh CALLGRIND=1` reports
//! must mean what the hardware does. Valgrind hides the CPU's SHA extensions, so `sha2` falls
//! back to its portable code under it (~3,500 instructions a block) while ring keeps its
//! assembly; on the hardware both use the SHA extensions. One library for every digest also
//! keeps what the node trusts for cryptography in one place.

use ring::digest::{Context, SHA256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn of(bytes: &[u8]) -> Digest {
    let mut hasher = Hasher::new();
    hasher.update(bytes);
    hasher.finish()
}

/// A digest fed in parts: the same as [`of`] over their concatenation.
pub struct Hasher(Context);

impl Hasher {
    /// An empty digest.
    pub fn new() -> Hasher {
        Hasher(Context::new(&SHA256))
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let mut digest = [0; 32];
        digest.copy_from_slice(self.0.finish().as_ref());
        digest
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
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
