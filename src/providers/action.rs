//! What a provider does with a push service's answer, the same vocabulary for every service:
//! each provider's `response.rs` maps its documented reasons onto these, and its client turns
//! them into the delivery loop's [`Verdict`](crate::providers::service::Verdict).

use crate::registry::UnixMillis;
use std::time::Duration;

/// What the provider does with an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Accepted.
    Delivered,
    /// Transient: retry through the shared retry policy, on another connection, not before
    /// `after` when the server said so (`Retry-After`).
    Retry {
        /// The server's `Retry-After`, a floor on the delay.
        after: Option<Duration>,
    },
    /// The token is dead as of `verdict_at_ms`: delete the registration unless it was
    /// registered again after that.
    DeleteRegistration {
        /// The service's timestamp of the verdict (APNs 410), else when the answer came.
        verdict_at_ms: UnixMillis,
    },
    /// The service says the token is not valid *on this host*, which may only mean it
    /// belongs to the other environment (APNs `BadDeviceToken`: a debug build's token sent to
    /// production, or the reverse). Send once to the other environment; accepted there, the
    /// registration's environment is corrected; refused there too, the token is dead as of
    /// `verdict_at_ms`.
    TryOtherEnvironment {
        /// When the answer came.
        verdict_at_ms: UnixMillis,
    },
    /// The service blames the sender's configuration (a topic or bundle id that does not
    /// match the token, a project the token is not of): permanent for this push, never a
    /// deletion, counted per app and alerted on.
    ConfigAlert,
    /// The credential expired or was refused as stale: refresh it once and send again; a
    /// second refusal is a credential alert.
    RefreshCredentialOnce,
    /// The credential is refused: alert an operator, do not retry blindly.
    CredentialAlert,
    /// Refused for good: retrying the same request cannot succeed.
    Reject,
    /// The request itself is malformed in a way only a ringcast bug (or a wrong base URL)
    /// produces: alert.
    BugAlert,
    /// The sender's quota is exceeded (FCM `QUOTA_EXCEEDED`): stop sending anything to this
    /// service and project for `for_`, then retry this push if its deadline allows.
    /// Service-wide, because FCM denylists senders that keep sending into a quota error.
    Pause {
        /// How long sending pauses.
        for_: Duration,
    },
}
