//! Key naming of the Redis store: pure functions, tested offline.

use crate::registry::registration::{IdentityKey, PushAddress};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The identity's hash key: `{<tenant>:<identity>}`.
///
/// The whole key is its own hash tag, so should the store ever add a second key per identity
/// (`{t:i}:something`), it lands on the same cluster slot and stays usable from one script.
pub fn identity_key(who: &IdentityKey) -> String {
    format!("{{{}:{}}}", who.tenant, who.identity)
}

/// The identity key of another identity of the same tenant (a token's previous owner).
pub fn identity_key_of(tenant: &str, identity: &str) -> String {
    format!("{{{tenant}:{identity}}}")
}

/// The owner key of a token within a tenant:
/// `o:<tenant>:<base64url-no-pad(SHA-256(platform ++ token)[..16])>`.
///
/// Hashed so the key has a fixed, small size (22 characters for the digest) whatever the token
/// (a Web Push endpoint can be hundreds of bytes) and never spells the token out; 128 bits keep
/// collisions out of reach. No hash tag: owner keys must spread over the whole cluster.
pub fn owner_key(tenant: &str, address: &PushAddress) -> String {
    let mut hasher = Sha256::new();
    hasher.update([platform_code(address)]);
    hasher.update(address.token_bytes());
    let digest = hasher.finalize();
    format!("o:{tenant}:{}", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// The claim key of a call event: `e:<tenant>:<base64url-no-pad(SHA-256(event id)[..16])>`.
/// Hashed because the event id comes from the caller: a fixed size, and no `{...}` in it can
/// pick a cluster slot. No hash tag: claims spread over the cluster like owner keys.
pub fn event_key(tenant: &str, event_id: &str) -> String {
    let digest = Sha256::digest(event_id.as_bytes());
    format!("e:{tenant}:{}", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// The value of an owner key: which device of which identity holds the token.
pub fn owner_value(identity: &str, device_id: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(identity.len() + 1 + device_id.len());
    value.extend_from_slice(identity.as_bytes());
    value.push(0);
    value.extend_from_slice(device_id.as_bytes());
    value
}

/// Splits an owner value back into `(identity, device_id)`; `None` for a foreign value.
pub fn parse_owner_value(value: &[u8]) -> Option<(&str, &str)> {
    let split = value.iter().position(|&byte| byte == 0)?;
    let identity = std::str::from_utf8(&value[..split]).ok()?;
    let device_id = std::str::from_utf8(&value[split + 1..]).ok()?;
    Some((identity, device_id))
}

/// The platform byte, the same numbering as the record's byte 1 (`codec`), so that equal token
/// bytes on two platforms are two tokens.
fn platform_code(address: &PushAddress) -> u8 {
    match address {
        PushAddress::Apns { .. } => 0,
        PushAddress::Fcm { .. } => 1,
        PushAddress::Wns { .. } => 2,
        PushAddress::WebPush { .. } => 3,
    }
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
    fn owner_key_is_short_fixed_and_hides_the_token() {
        let endpoint = format!("https://push.example/{}", "x".repeat(300));
        let key = owner_key(
            "acme",
            &PushAddress::Wns {
                channel: endpoint.clone(),
            },
        );
        assert!(key.starts_with("o:acme:"));
        assert_eq!(key.len(), "o:acme:".len() + 22, "{key}");
        assert!(!key.contains("push.example"));
        assert!(!key.contains('{'), "owner keys carry no hash tag");
    }

    #[test]
    fn owner_key_depends_on_tenant_platform_and_token() {
        let apns = PushAddress::Apns {
            token: b"abc".to_vec(),
        };
        let fcm = PushAddress::Fcm {
            token: "abc".into(),
        };
        assert_eq!(owner_key("t", &apns), owner_key("t", &apns.clone()));
        assert_ne!(
            owner_key("t", &apns),
            owner_key("t", &fcm),
            "platform is part of the key"
        );
        assert_ne!(
            owner_key("t", &apns),
            owner_key("u", &apns),
            "tenant is part of the key"
        );
        assert_ne!(
            owner_key("t", &apns),
            owner_key(
                "t",
                &PushAddress::Apns {
                    token: b"abd".to_vec()
                }
            )
        );
    }

    #[test]
    fn owner_key_derivation_is_pinned() {
        // base64url(SHA-256(0x00 ++ "abc")[..16]), computed independently (Python hashlib):
        // a change here would orphan every stored owner key.
        assert_eq!(
            owner_key(
                "t",
                &PushAddress::Apns {
                    token: b"abc".to_vec()
                }
            ),
            "o:t:YJ9uNtJAVYUYjVz9dh9AfA"
        );
    }

    #[test]
    fn owner_value_round_trips() {
        let value = owner_value("alice", "phone-1");
        assert_eq!(value, b"alice\0phone-1");
        assert_eq!(parse_owner_value(&value), Some(("alice", "phone-1")));
        assert_eq!(parse_owner_value(b"no separator"), None);
    }
}
