//! Why a push never became a request, in the words every provider shares, and the one
//! mapping from that to the push's [`Outcome`].
//!
//! Each provider's `payload.rs` has its own `PayloadError` (what can go wrong differs: APNs
//! has token kinds, Web Push encryption), but what the push *becomes* must not depend on the
//! service: a payload over the service's limit is `Rejected { "payload_too_large" }` whether
//! it was for APNs, FCM, WNS or Web Push, a passed deadline is `Expired`, and so on. So every
//! `PayloadError` names its [`PayloadFault`], and [`PayloadFault::outcome`] is the only place
//! that turns one into an outcome.

use crate::vocab::Outcome;

/// The reason of every payload refused for its size, whatever the service.
pub const TOO_LARGE: &str = "payload_too_large";
/// The reason of a push whose deadline passed before its request was built.
pub const EXPIRED: &str = "expired";
/// The reason of an APNs notice to a registration without a regular token.
pub const NO_ALERT_TOKEN: &str = "no_alert_token";

/// The kind of a payload error, as far as the push's outcome goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFault {
    /// The deadline passed: a push is never sent after it.
    Expired,
    /// An APNs notice to a registration with only a PushKit token: nothing to send to, and
    /// not a failure.
    NoAlertToken,
    /// Over the service's size limit: the service would refuse it, so it is not sent.
    TooLarge,
    /// Not a request the service would take (wrong address kind, empty token, a key or
    /// topic that cannot be used, a serialisation failure): the provider's label says which.
    Malformed(&'static str),
}

impl PayloadFault {
    /// The outcome's reason and the metric label.
    pub fn reason(self) -> &'static str {
        match self {
            PayloadFault::Expired => EXPIRED,
            PayloadFault::NoAlertToken => NO_ALERT_TOKEN,
            PayloadFault::TooLarge => TOO_LARGE,
            PayloadFault::Malformed(label) => label,
        }
    }

    /// The push's final outcome: it is never sent.
    pub fn outcome(self) -> Outcome {
        match self {
            PayloadFault::Expired => Outcome::Expired,
            PayloadFault::NoAlertToken => Outcome::NoAlertToken,
            PayloadFault::TooLarge | PayloadFault::Malformed(_) => Outcome::Rejected {
                reason: self.reason().to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_has_one_outcome() {
        assert_eq!(PayloadFault::Expired.outcome(), Outcome::Expired);
        assert_eq!(PayloadFault::NoAlertToken.outcome(), Outcome::NoAlertToken);
        assert_eq!(
            PayloadFault::TooLarge.outcome(),
            Outcome::Rejected {
                reason: "payload_too_large".into()
            }
        );
        assert_eq!(
            PayloadFault::Malformed("empty_token").outcome(),
            Outcome::Rejected {
                reason: "empty_token".into()
            }
        );
    }

    /// Every provider's too-large payload ends the same way (the point of this module).
    #[test]
    fn a_payload_too_large_is_the_same_rejection_in_every_provider() {
        let faults = [
            crate::providers::apns::payload::PayloadError::TooLarge {
                size: 5000,
                limit: 4096,
                push_type: "alert",
            }
            .fault(),
            crate::providers::fcm::payload::PayloadError::TooLarge {
                size: 5000,
                limit: 4096,
            }
            .fault(),
            crate::providers::wns::payload::PayloadError::TooLarge(6000).fault(),
            crate::providers::webpush::payload::PayloadError::TooLarge(5000).fault(),
        ];
        for fault in faults {
            assert_eq!(
                fault.outcome(),
                Outcome::Rejected {
                    reason: TOO_LARGE.into()
                }
            );
        }
        let expired = [
            crate::providers::apns::payload::PayloadError::Expired.fault(),
            crate::providers::fcm::payload::PayloadError::Expired.fault(),
            crate::providers::wns::payload::PayloadError::Expired.fault(),
        ];
        assert!(
            expired
                .iter()
                .all(|fault| fault.outcome() == Outcome::Expired)
        );
    }
}
