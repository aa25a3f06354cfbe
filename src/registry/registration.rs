//! A device's push registration: which push service reaches it, at which address, until when.

pub use crate::vocab::{Environment, IdentityKey, Platform, UnixMillis};
use std::fmt;

/// Where the push service delivers: the platform-specific device address. Its `Debug` prints
/// only a fingerprint, so a registration can be logged without leaking the token.
#[derive(Clone, PartialEq, Eq)]
pub enum PushAddress {
    /// An app's APNs tokens on one phone, as raw bytes (the API takes them as hex; raw halves
    /// their size). They are two different tokens (docs/protocols.md, "APNs"): `token` is the
    /// PushKit (VoIP) token, which takes only rings on `<bundle>.voip`; `alert_token` is the
    /// app's regular token, the only one that takes the call-ended and missed-call alerts on
    /// `<bundle>`. Without it those notices are not sent over APNs at all.
    Apns {
        /// The PushKit (VoIP) token: rings.
        token: Vec<u8>,
        /// The app's regular device token: alerts. Optional; absent costs nothing stored.
        alert_token: Option<Vec<u8>>,
    },
    /// An FCM registration token.
    Fcm {
        /// The token, as the app got it from Firebase.
        token: String,
    },
    /// A WNS channel URI (`https://*.notify.windows.com/...`).
    Wns {
        /// The channel URI the app got from Windows.
        channel: String,
    },
    /// A Web Push subscription: the endpoint and the keys the payload is encrypted for.
    WebPush {
        /// The push service's URL for this subscription.
        endpoint: String,
        /// The subscription's P-256 public key, uncompressed (65 bytes, RFC 8291).
        p256dh: [u8; 65],
        /// The subscription's authentication secret (16 bytes, RFC 8291).
        auth: [u8; 16],
    },
}

impl PushAddress {
    /// The push service this address belongs to.
    pub fn platform(&self) -> Platform {
        match self {
            PushAddress::Apns { .. } => Platform::Apns,
            PushAddress::Fcm { .. } => Platform::Fcm,
            PushAddress::Wns { .. } => Platform::Wns,
            PushAddress::WebPush { .. } => Platform::Webpush,
        }
    }

    /// The bytes that name the device to its push service. This is what "one token, one
    /// owner" is about, and what a push service's dead-token verdict names.
    pub fn token_bytes(&self) -> &[u8] {
        match self {
            PushAddress::Apns { token, .. } => token,
            PushAddress::Fcm { token } => token.as_bytes(),
            PushAddress::Wns { channel } => channel.as_bytes(),
            PushAddress::WebPush { endpoint, .. } => endpoint.as_bytes(),
        }
    }

    /// The token's fingerprint: the first 8 hex characters of its SHA-256. The only form in
    /// which a token appears in logs and API listings.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.token_bytes())
    }

    /// The APNs regular (alert) token, if this is an APNs address that has one.
    pub fn alert_token(&self) -> Option<&[u8]> {
        match self {
            PushAddress::Apns { alert_token, .. } => alert_token.as_deref(),
            _ => None,
        }
    }
}

/// The first 8 hex characters of the SHA-256 of `bytes` (STYLE.md: how secrets and tokens
/// appear in logs).
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = crate::sha256::of(bytes);
    hex::encode(&digest[..4])
}

impl fmt::Debug for PushAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform(), self.fingerprint())?;
        if let Some(alert_token) = self.alert_token() {
            write!(f, "+alert:{}", fingerprint(alert_token))?;
        }
        Ok(())
    }
}

/// One device's registration for an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The app's own name for the device, unique within the identity.
    pub device_id: String,
    /// The tenant's app id; it selects the push credential.
    pub app: String,
    /// Where the push service delivers.
    pub address: PushAddress,
    /// Which environment of the push service issued the token.
    pub environment: Environment,
    /// The device asked not to be woken for pushes the app does not show (kept for the
    /// router; it does not affect incoming calls).
    pub disable_internal_push: bool,
    /// When the device first registered; a refresh keeps it.
    pub created_at: UnixMillis,
    /// When the device last registered or refreshed. A dead-token verdict older than this
    /// does not delete the registration (the device came back after the verdict).
    pub updated_at: UnixMillis,
    /// When the registration stops existing unless refreshed.
    pub expires_at: UnixMillis,
}

impl Registration {
    /// Whether the registration still exists at `now`.
    pub fn is_live(&self, now: UnixMillis) -> bool {
        self.expires_at > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_fixed_across_builds() {
        // Pinned value: a change here would move identities between shards.
        assert_eq!(
            IdentityKey::new("acme", "alice").stable_hash(),
            0xd765_60e7_a2b8_0eaf
        );
        assert_ne!(
            IdentityKey::new("acme", "alice").stable_hash(),
            IdentityKey::new("acmea", "lice").stable_hash()
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let address = PushAddress::Fcm {
            token: "secret-token-value".into(),
        };
        let shown = format!("{address:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.starts_with("fcm:"));
        assert_eq!(shown.len(), "fcm:".len() + 8);
        let apns = PushAddress::Apns {
            token: vec![0xab; 32],
            alert_token: Some(vec![0xcd; 32]),
        };
        let shown = format!("{apns:?}");
        assert!(
            !shown.contains("abab") && !shown.contains("cdcd"),
            "{shown}"
        );
        assert_eq!(
            shown,
            format!(
                "apns:{}+alert:{}",
                fingerprint(&[0xab; 32]),
                fingerprint(&[0xcd; 32])
            )
        );
    }
}
