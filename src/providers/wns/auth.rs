//! The WNS access token: OAuth2 client credentials, cached for its lifetime and shared by
//! every push of the app. Two token endpoints grant it (docs/protocols.md, "Transport, for every
//! service"): the legacy `login.live.com/accesstoken.srf` (client id = the package SID,
//! scope `notify.windows.com`), and Microsoft Entra ID's
//! `login.microsoftonline.com/<tenant>/oauth2/v2.0/token` for apps registered there (client
//! id = the Entra application id, scope `https://wns.windows.com/.default`); each app names
//! its own ([`super::config::WnsAppAuth`]).
//!
//! One refresh at a time: the cache is an async mutex held across the exchange, so a burst of
//! pushes that find the token expired waits for one exchange instead of starting a storm of
//! them, and a burst of 401s answered to the same token invalidates it once (the stamp
//! names which token failed). The exchange itself (an HTTP request) is the client's; this
//! module stays pure apart from the lock.

use crate::config::Secret;
use crate::registry::UnixMillis;
use http::HeaderValue;
use serde::Deserialize;
use std::future::Future;
use tokio::sync::Mutex;

/// The app's credential, and where it is exchanged for an access token.
#[derive(Clone, Debug)]
pub struct WnsCredential {
    /// The OAuth `client_id`: the package SID (`ms-app://s-1-15-2-...`) at the legacy
    /// endpoint, the Entra application (client) id at Entra ID.
    pub client_id: String,
    /// The client secret; never logged (`Secret`).
    pub client_secret: Secret,
    /// The token endpoint.
    pub token_url: String,
    /// The scope asked for: `notify.windows.com` (legacy) or
    /// `https://wns.windows.com/.default` (Entra ID).
    pub scope: String,
}

/// A token ready to send.
#[derive(Clone)]
pub struct AccessToken {
    /// `authorization: Bearer <token>`.
    pub authorization: HeaderValue,
    /// When it was obtained: the stamp a 401 names.
    pub obtained_at: UnixMillis,
    /// When WNS stops accepting it.
    pub expires_at: UnixMillis,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("authorization", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The form body of the client-credentials request.
pub fn token_request_body(credential: &WnsCredential) -> String {
    format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        percent_encode(credential.client_id.as_bytes()),
        percent_encode(credential.client_secret.expose()),
        percent_encode(credential.scope.as_bytes()),
    )
}

/// `application/x-www-form-urlencoded` escaping: unreserved characters stay, the rest are
/// `%XX` (a package SID has `:` and `/`, a secret anything).
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: Option<u64>,
}

/// Reads the token endpoint's answer, received at `now`. The error never contains the
/// token; it names the status and, for an OAuth error, Microsoft's `error` code.
pub fn parse_token_response(
    status: u16,
    body: &[u8],
    now: UnixMillis,
) -> Result<AccessToken, String> {
    if status != 200 {
        let error = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|json| json["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(format!("WNS token endpoint answered {status} {error}"));
    }
    let parsed: TokenBody = serde_json::from_slice(body)
        .map_err(|_| "WNS token endpoint answered 200 without an access_token".to_owned())?;
    let authorization = HeaderValue::try_from(format!("Bearer {}", parsed.access_token))
        .map_err(|_| "WNS access token is not a valid header value".to_owned())?;
    // Microsoft issues 24 h tokens; an answer without `expires_in` is taken as 1 h.
    let lifetime = parsed.expires_in.unwrap_or(3600).max(1) * 1000;
    Ok(AccessToken {
        authorization,
        obtained_at: now,
        expires_at: now + lifetime,
    })
}

/// The app's cached token.
pub struct TokenCache {
    /// The current token; the lock is held across an exchange (one at a time).
    current: Mutex<Option<AccessToken>>,
    /// Refresh this long before expiry.
    refresh_ahead_ms: u64,
}

impl TokenCache {
    /// An empty cache refreshing `refresh_ahead_ms` before expiry.
    pub fn new(refresh_ahead_ms: u64) -> TokenCache {
        TokenCache {
            current: Mutex::new(None),
            refresh_ahead_ms,
        }
    }

    /// The token to send at `now`: the cached one while it is fresh, else a new one from
    /// `fetch` (only one caller fetches; the others wait for its result).
    pub async fn get<F, Fut>(&self, now: UnixMillis, fetch: F) -> Result<AccessToken, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, String>>,
    {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && now
                + self
                    .refresh_ahead_ms
                    .min((token.expires_at - token.obtained_at) / 2)
                < token.expires_at
        {
            return Ok(token.clone());
        }
        let token = fetch().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// WNS answered 401 to the token obtained at `obtained_at`: drop it, unless a newer one
    /// already replaced it. Returns whether it was dropped.
    pub async fn invalidate(&self, obtained_at: UnixMillis) -> bool {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|token| token.obtained_at == obtained_at)
        {
            *current = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW: UnixMillis = 1_800_000_000_000;

    fn token(at: UnixMillis, lifetime_s: u64) -> AccessToken {
        parse_token_response(
            200,
            format!(
                r#"{{"access_token":"tok-{at}","token_type":"bearer","expires_in":{lifetime_s}}}"#
            )
            .as_bytes(),
            at,
        )
        .unwrap()
    }

    #[test]
    fn the_request_is_form_encoded_and_the_answer_parsed() {
        let body = token_request_body(&WnsCredential {
            client_id: "ms-app://s-1-15-2-1".into(),
            client_secret: Secret::new("a+b/c=d"),
            token_url: super::super::config::TOKEN_URL.into(),
            scope: super::super::config::LEGACY_SCOPE.into(),
        });
        assert_eq!(
            body,
            "grant_type=client_credentials&client_id=ms-app%3A%2F%2Fs-1-15-2-1\
             &client_secret=a%2Bb%2Fc%3Dd&scope=notify.windows.com"
        );
        let entra = token_request_body(&WnsCredential {
            client_id: "8a7b6c5d-0000-4000-8000-000000000001".into(),
            client_secret: Secret::new("s"),
            token_url: "https://login.microsoftonline.com/contoso/oauth2/v2.0/token".into(),
            scope: super::super::config::ENTRA_SCOPE.into(),
        });
        assert!(
            entra.ends_with("&scope=https%3A%2F%2Fwns.windows.com%2F.default"),
            "{entra}"
        );
        let parsed = token(NOW, 86_400);
        assert_eq!(parsed.authorization, "Bearer tok-1800000000000");
        assert_eq!(parsed.expires_at, NOW + 86_400_000);
        assert!(!format!("{parsed:?}").contains("tok-"));
        let refused = parse_token_response(400, br#"{"error":"invalid_client"}"#, NOW);
        assert_eq!(
            refused.unwrap_err(),
            "WNS token endpoint answered 400 invalid_client"
        );
        assert!(parse_token_response(200, b"{}", NOW).is_err());
    }

    #[tokio::test]
    async fn one_exchange_serves_until_near_expiry_and_a_401_drops_only_that_token() {
        let cache = TokenCache::new(300_000);
        let fetches = AtomicUsize::new(0);
        let fetch_at = |at: UnixMillis| {
            fetches.fetch_add(1, Ordering::SeqCst);
            async move { Ok(token(at, 3600)) }
        };
        let first = cache.get(NOW, || fetch_at(NOW)).await.unwrap();
        let again = cache
            .get(NOW + 1_000, || fetch_at(NOW + 1_000))
            .await
            .unwrap();
        assert_eq!(again.obtained_at, first.obtained_at);
        // Within five minutes of expiry: refreshed.
        let later = NOW + 3_400_000;
        let fresh = cache.get(later, || fetch_at(later)).await.unwrap();
        assert_eq!(fresh.obtained_at, later);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // A 401 to the old token changes nothing; to the current one, drops it once.
        assert!(!cache.invalidate(first.obtained_at).await);
        assert!(cache.invalidate(fresh.obtained_at).await);
        assert!(!cache.invalidate(fresh.obtained_at).await);
        let failed = cache.get(later, || async { Err("down".to_owned()) }).await;
        assert!(failed.is_err());
    }
}
