//! The WNS access token: OAuth2 client credentials, cached for its lifetime and shared by
//! every push of the app. Two token endpoints grant it (docs/protocols.md, "Transport, for every
//! service"): the legacy `login.live.com/accesstoken.srf` (client id = the package SID,
//! scope `notify.windows.com`), and Microsoft Entra ID's
//! `login.microsoftonline.com/<tenant>/oauth2/v2.0/token` for apps registered there (client
//! id = the Entra application id, scope `https://wns.windows.com/.default`); each app names
//! its own ([`super::config::WnsAppAuth`]).
//!
//! The token's cache (one exchange for every waiting push, refreshed ahead of expiry, backed
//! off after a failure, dropped once for a burst of 401s) is the shared
//! [`crate::providers::oauth`] one; this module supplies only WNS's [`Grant`]: the
//! client-credentials form and the reading of the endpoint's answer.

use crate::config::Secret;
use crate::providers::oauth::{AccessToken, Grant};
use crate::vocab::{Platform, UnixMillis};
use http::HeaderValue;
use serde::Deserialize;

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

impl Grant for WnsCredential {
    const PROVIDER: Platform = Platform::Wns;

    fn request_body(&self, _now: UnixMillis) -> Result<Vec<u8>, String> {
        Ok(token_request_body(self).into_bytes())
    }

    fn read_answer(
        &self,
        status: u16,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<AccessToken, String> {
        parse_token_response(status, body, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
