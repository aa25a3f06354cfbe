//! Revoke means revoke: the rule that refuses an identity token issued before its identity
//! was revoked (README, "Internal push channel" → "Revoking an identity").
//!
//! `DELETE /v1/identities/{identity}` records when it ran ([`super::Store::record_revocation`]);
//! every request that comes with an identity token of that identity then compares the
//! token's `iat` with that time. The record is kept for as long as a token may live
//! ([`keep_ms`]): a token issued before it is expired by then, so the record has nothing
//! left to refuse.

use super::registration::UnixMillis;

/// Whether a token issued at `issued_at` (its `iat`, whole UNIX seconds) was issued before
/// the revocation recorded at `revoked_at` (UNIX milliseconds), and so must be refused.
///
/// `iat` has whole seconds only, so a token of the revocation's own second cannot be told
/// apart from one issued a moment before it: it is refused too. An app that signs a user in
/// again right after revoking gets a token that works from the next second on; refusing a
/// fresh token for under a second is the safe side of that ambiguity, accepting a stolen
/// one would not be.
pub fn refuses(revoked_at: UnixMillis, issued_at: u64) -> bool {
    issued_at <= revoked_at / 1000
}

/// How long a revocation is worth keeping, in milliseconds: the longest an identity token
/// can be accepted after its `iat`, its lifetime cap plus the clock-skew leeway on `exp`.
/// Any token issued before the revocation is refused for its age after that.
pub fn keep_ms(max_lifetime_seconds: u64, leeway_seconds: u64) -> u64 {
    max_lifetime_seconds
        .saturating_add(leeway_seconds)
        .saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_of_an_earlier_second_is_refused_and_of_a_later_one_accepted() {
        let revoked_at = 1_700_000_000_400;
        assert!(refuses(revoked_at, 1_699_999_990));
        assert!(refuses(revoked_at, 1_699_999_999));
        assert!(!refuses(revoked_at, 1_700_000_001));
    }

    #[test]
    fn a_token_of_the_revocations_own_second_is_refused() {
        assert!(refuses(1_700_000_000_000, 1_700_000_000));
        assert!(refuses(1_700_000_000_999, 1_700_000_000));
    }

    #[test]
    fn a_revocation_is_kept_as_long_as_a_token_lives() {
        assert_eq!(keep_ms(86_400, 30), 86_430_000);
        assert_eq!(keep_ms(u64::MAX, 30), u64::MAX);
    }
}
