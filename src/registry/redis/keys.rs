//! Key naming of the Redis store (identities and call events; the owner index is `owners`):
//! pure functions, tested offline. Each key is copied into one string of its size: every call
//! names two to four of them, and `format!` costs several times the copy.

use crate::vocab::IdentityKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The identity's hash key: `{<tenant>:<identity>}`.
///
/// The whole key is its own hash tag, so should the store ever add a second key per identity
/// (`{t:i}:something`), it lands on the same cluster slot and stays usable from one script.
pub fn identity_key(who: &IdentityKey) -> String {
    identity_key_of(&who.tenant, &who.identity)
}

/// The identity key of another identity of the same tenant (a token's previous owner).
pub fn identity_key_of(tenant: &str, identity: &str) -> String {
    ["{", tenant, ":", identity, "}"].concat()
}

/// The revocation key of an identity: `{<tenant>:<identity>}:revoked`, a string
/// `<revoked at> <forget at>` (UNIX ms, decimal) with a `PEXPIRE` to its forget time. It
/// shares the identity hash's hash tag, so both live on one cluster slot.
pub fn revocation_key(who: &IdentityKey) -> String {
    ["{", &who.tenant, ":", &who.identity, "}:revoked"].concat()
}

/// The lease key of a call event: `e:{<base64url-no-pad(SHA-256(event id)[..16])>}:<tenant>`.
/// Hashed because the event id comes from the caller: a fixed size, and no `{...}` in it can
/// pick a cluster slot; 128 bits keep collisions out of reach. The digest is the hash tag
/// (the first `{...}` of the key, so not even a tenant id can move it): events spread over
/// the cluster like owner buckets, and any later key of one event lands on its lease's slot.
pub fn event_key(tenant: &str, event_id: &str) -> String {
    let digest = crate::sha256::of(event_id.as_bytes());
    let mut key = String::with_capacity("e:{}:".len() + 22 + tenant.len());
    key.push_str("e:{");
    URL_SAFE_NO_PAD.encode_string(&digest[..16], &mut key);
    key.push_str("}:");
    key.push_str(tenant);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_key_is_its_own_hash_tag() {
        assert_eq!(
            identity_key(&IdentityKey::new("acme", "alice")),
            "{acme:alice}"
        );
        assert_eq!(identity_key_of("acme", "alice"), "{acme:alice}");
    }

    #[test]
    fn a_revocation_lives_on_its_identitys_slot() {
        assert_eq!(
            revocation_key(&IdentityKey::new("acme", "alice")),
            "{acme:alice}:revoked"
        );
    }

    #[test]
    fn event_key_is_fixed_size_and_its_digest_picks_the_slot() {
        let key = event_key("acme", "{x}call-1");
        assert!(key.starts_with("e:{") && key.ends_with("}:acme"), "{key}");
        assert_eq!(key.len(), "e:{}:acme".len() + 22, "{key}");
        assert_eq!(
            key.matches('{').count(),
            1,
            "a caller's id cannot pick a cluster slot"
        );
        assert_ne!(event_key("acme", "call-1"), event_key("other", "call-1"));
        assert_ne!(event_key("acme", "call-1"), event_key("acme", "call-2"));
    }
}
