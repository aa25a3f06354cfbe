//! `ttl_caps` of a tenant: a shorter registration lifetime for one class of identities
//! (README, "TTL caps by identity class"). The service ringcast reproduces gives its Teams
//! users' registrations a fixed maximum TTL of 24 hours; a tenant says so with
//! `ttl_caps = [{ identity_prefix = "8:orgid:", max_ttl_seconds = 86400 }]`.

use super::tenant::{MAX_TTL_SECONDS, MIN_TTL_SECONDS};
use serde::{Deserialize, Serialize};

/// One class of identities and its cap.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TtlCap {
    /// Identities that start with this belong to the class (e.g. `8:orgid:`, Teams users).
    pub identity_prefix: String,
    /// The longest TTL their registrations get; longer requests are capped and the answer
    /// says `ttl_capped: true`.
    pub max_ttl_seconds: u64,
}

/// The cap for `identity`: the smallest of the classes it belongs to, if any.
pub fn max_ttl_for(caps: &[TtlCap], identity: &str) -> Option<u64> {
    caps.iter()
        .filter(|cap| identity.starts_with(cap.identity_prefix.as_str()))
        .map(|cap| cap.max_ttl_seconds)
        .min()
}

/// Everything wrong with a tenant's `ttl_caps` (`at` names the tenant in the messages).
pub fn problems(caps: &[TtlCap], at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (n, cap) in caps.iter().enumerate() {
        if cap.identity_prefix.is_empty() || cap.identity_prefix.len() > 128 {
            problems.push(format!(
                "{at}.ttl_caps[{n}].identity_prefix must be 1-128 characters"
            ));
        }
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&cap.max_ttl_seconds) {
            problems.push(format!(
                "{at}.ttl_caps[{n}].max_ttl_seconds: {} is outside {MIN_TTL_SECONDS}..={MAX_TTL_SECONDS}",
                cap.max_ttl_seconds
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(prefix: &str, max: u64) -> TtlCap {
        TtlCap {
            identity_prefix: prefix.into(),
            max_ttl_seconds: max,
        }
    }

    #[test]
    fn a_teams_user_is_capped_and_others_are_not() {
        let caps = [cap("8:orgid:", 86_400), cap("8:orgid:guest", 3_600)];
        assert_eq!(max_ttl_for(&caps, "8:orgid:1234"), Some(86_400));
        assert_eq!(max_ttl_for(&caps, "8:orgid:guest-1"), Some(3_600));
        assert_eq!(max_ttl_for(&caps, "8:acs:1234"), None);
        assert_eq!(max_ttl_for(&[], "8:orgid:1234"), None);
    }

    #[test]
    fn bad_caps_are_all_reported() {
        let caps = [cap("", 86_400), cap("8:orgid:", 10)];
        assert_eq!(problems(&caps, "tenants.a").len(), 2);
        assert!(problems(&[cap("8:orgid:", 86_400)], "tenants.a").is_empty());
    }
}
