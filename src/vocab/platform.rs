//! Which push service, and which of its environments.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

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
