//! A device's push registration: which push service reaches it, at which address, until when.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use utoipa::ToSchema;

/// Milliseconds since the UNIX epoch. Every time in the registry is one of these, passed in
/// by the caller, so that expiry and refresh logic runs on a fake clock in tests.
pub type UnixMillis = u64;

/// The push service that carries pushes to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple Push Notification service (PushKit VoIP and alerts).
    Apns,
    /// Firebase Cloud Messaging, HTTP v1.
    Fcm,
    /// Windows Push Notification Services.
    Wns,
    /// Web Push (RFC 8030) to a browser's push service.
    Webpush,
}

impl Platform {
    /// The name used in the API, the config and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::Fcm => "fcm",
            Platform::Wns => "wns",
            Platform::Webpush => "webpush",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the push service's environments issued the token. Only APNs distinguishes them
/// (a sandbox token is rejected by the production host), but it is kept for every platform so
/// that a test build of any app can be told apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Store builds; the default.
    #[default]
    Production,
    /// Development builds (APNs sandbox).
    Sandbox,
}

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
    let digest = Sha256::digest(bytes);
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
