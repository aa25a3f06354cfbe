//! The one OAuth2 access-token cache, shared by the providers that need one (FCM, WNS).
//!
//! Both services authenticate pushes with a bearer token bought at a token endpoint
//! (Google's `token_uri` with a signed assertion; Microsoft's `accesstoken.srf` or Entra ID
//! with client credentials), and both want the same care from a sender: cache the token,
//! refresh it a few minutes before it expires while pushes keep using it, send one token
//! request however many pushes wait for it, back off when the endpoint fails instead of
//! asking once per push, and answer a 401 with one refresh, not one per refused push. That
//! policy is written once here:
//!
//! - [`cache`]: [`AccessTokenCache`], the state machine (who sends, who refreshes, who waits),
//!   on a passed-in time, no I/O;
//! - [`source`]: [`TokenSource`], which performs what the cache decides: the token request
//!   over the token endpoint's own pool, the background refresh ahead of expiry, the backoff
//!   after a failure, the 401 rule, the `credential_refresh_total` metric.
//!
//! A provider supplies only its [`Grant`]: how to build the token request's form body, and
//! how to read the endpoint's answer. An account's grant and its cache travel together in an
//! [`OAuthAccount`], behind a [`Live`](crate::providers::live::Live) cell, so a credential
//! reload swaps both at once and the next push fetches a token with the new credential.

use crate::vocab::{Platform, UnixMillis};

pub mod cache;
pub mod source;

#[cfg(test)]
mod tests;

pub use cache::{
    AccessToken, AccessTokenCache, DEFAULT_REFRESH_STALE_AFTER, TokenState, TokenWait,
};
pub use source::{
    MIN_401_REFRESH_INTERVAL, TOKEN_RETRY_AFTER_FAILURE, TokenEndpoint, TokenExchange, TokenSource,
};

/// `content-type` of every token request: both grants are form-encoded (RFC 6749 §4.4, RFC
/// 7523 §2.1).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// What one provider's token endpoint needs: the request it takes and the answer it gives.
/// Implemented by FCM's service-account signer and WNS's client credential.
pub trait Grant: Send + Sync + 'static {
    /// The provider whose `credential_refresh_total{provider}` counts the requests.
    const PROVIDER: Platform;

    /// The token request's form body at `now` (a fresh assertion for FCM). The error never
    /// contains the secret.
    fn request_body(&self, now: UnixMillis) -> Result<Vec<u8>, String>;

    /// The endpoint's answer (`status`, `body`), received at `now`: the token, or why there
    /// is none. The error never contains the token.
    fn read_answer(&self, status: u16, body: &[u8], now: UnixMillis)
    -> Result<AccessToken, String>;
}

/// One account's grant and its one token, replaced together by a reload (so a token is always
/// stored in the cache of the credential that bought it). Cheap to clone: the cache is shared.
#[derive(Clone, Debug)]
pub struct OAuthAccount<G> {
    /// How to ask for a token.
    pub grant: G,
    /// The token every client of the account shares, and who refreshes it.
    pub cache: AccessTokenCache,
}
