//! What became of a push.

use super::UnixMillis;

/// What became of a push: every push ends in exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The push service accepted it.
    Delivered,
    /// The device acked the ring over the internal push channel in time, so its platform
    /// push was not sent (docs/architecture.md, "The internal push channel"). Counted with
    /// `provider="channel"`.
    DeliveredInternal,
    /// Its deadline passed before it could be delivered; it was not sent after that.
    Expired,
    /// Dropped under overload to make room for more urgent pushes.
    Shed,
    /// The call ended before this ring left the queue: dropped instead of sent (and no
    /// "call ended" push follows it to that device).
    Withdrawn,
    /// The push service proved the token dead (APNs 410, or BadDeviceToken from both
    /// environments; FCM UNREGISTERED or an INVALID_ARGUMENT naming the token; WNS 404/410; Web
    /// Push 404/410), as of `verdict_at`: the registration is deleted unless the device
    /// registered again after that (docs/architecture.md, "The registry and its stores").
    DeadToken {
        /// The verdict's time (APNs `timestamp`, otherwise when the answer came).
        verdict_at: UnixMillis,
        /// The push service's reason.
        reason: String,
    },
    /// The push service blames the sender's configuration, not the device (APNs
    /// DeviceTokenNotForTopic, BadTopic, TopicDisallowed; FCM SENDER_ID_MISMATCH): a wrong
    /// bundle id or project id. Nothing is deleted, since a configuration mistake must never
    /// wipe a tenant's registrations; it is counted per app and alerted on.
    Misconfigured {
        /// The push service's reason.
        reason: String,
    },
    /// A call-ended or missed-call notice to an APNs registration that holds only a PushKit
    /// (VoIP) token: APNs takes only rings on that token, so nothing was sent over APNs (the
    /// app learns of the end over its own connection). Not a failure.
    NoAlertToken,
    /// The provider's credential was refused: alert, do not retry blindly.
    CredentialProblem {
        /// The push service's reason.
        reason: String,
    },
    /// Refused for good (bad payload, topic, size...), or retries ran out.
    Rejected {
        /// The push service's reason, or why ringcast gave up.
        reason: String,
    },
}

impl Outcome {
    /// Every outcome label, for metrics that list their series up front.
    pub const LABELS: [&'static str; 10] = [
        "delivered",
        "delivered_internal",
        "expired",
        "shed",
        "withdrawn",
        "dead_token",
        "misconfigured",
        "no_alert_token",
        "credential_problem",
        "rejected",
    ];

    /// The outcome's reason, where it has one (the push service's, or ringcast's).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::DeadToken { reason, .. }
            | Outcome::Misconfigured { reason }
            | Outcome::CredentialProblem { reason }
            | Outcome::Rejected { reason } => Some(reason),
            _ => None,
        }
    }

    /// The metric label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Expired => "expired",
            Outcome::Shed => "shed",
            Outcome::Withdrawn => "withdrawn",
            Outcome::DeliveredInternal => "delivered_internal",
            Outcome::DeadToken { .. } => "dead_token",
            Outcome::Misconfigured { .. } => "misconfigured",
            Outcome::NoAlertToken => "no_alert_token",
            Outcome::CredentialProblem { .. } => "credential_problem",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}
