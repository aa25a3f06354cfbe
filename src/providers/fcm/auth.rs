//! The FCM credential: a Google service account, the RS256 assertion it signs, and the OAuth2
//! access token the token endpoint trades for it.
//!
//! Google's rules (docs/protocols.md): the assertion names the account (`iss`), the Firebase scope,
//! the token URI (`aud`) and lives at most an hour; the access token it buys lives about an
//! hour. A sender caches the token, refreshes it a few minutes before expiry while sends keep
//! using it, refreshes one at a time, and answers a 401 with one refresh, not one per failed
//! push.
//!
//! That policy is the shared [`crate::providers::oauth`] cache (WNS uses the same one); this
//! module supplies only FCM's [`Grant`]: [`ServiceAccount`] and [`AssertionSigner`] build the
//! token request's body, [`parse_token_response`] reads its answer.

use crate::config::Secret;
use crate::providers::oauth::Grant;
use crate::vocab::{Platform, UnixMillis};
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

pub use crate::providers::oauth::{
    AccessToken, AccessTokenCache, DEFAULT_REFRESH_STALE_AFTER, TokenState, TokenWait,
};

/// The scope an FCM sender needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of a service-account assertion (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `content-type` of the token request.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// How long an assertion lives: Google's maximum, an hour.
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// The form-encoded grant type (`:` escaped), the fixed first half of every token request.
const GRANT_FIELD: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// Why the service account cannot be used, or an assertion cannot be made. Never contains
/// the private key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file is not a service-account JSON with the fields FCM needs.
    #[error("not a usable service-account JSON: {0}")]
    BadServiceAccount(String),
    /// `private_key` is not an RSA PEM key. The error never includes the key.
    #[error("the service account's private_key is not an RSA PEM key: {0}")]
    BadKey(jsonwebtoken::errors::Error),
    /// Signing failed.
    #[error("cannot sign the OAuth assertion: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// A Google service account, as its JSON key file describes it (only what FCM needs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `client_email`: the assertion's `iss`.
    pub client_email: String,
    /// `private_key` (PKCS#8 PEM), wrapped so `Debug` and logs print `[redacted]`.
    pub private_key: Secret,
    /// `private_key_id`: sent as the assertion's `kid` so Google picks the key at once.
    pub private_key_id: Option<String>,
    /// `token_uri`: where assertions are traded for access tokens. Honoured (not hard-coded
    /// to Google's), so the simulator can stand in for Google.
    pub token_uri: String,
    /// `project_id`: the Firebase project the account belongs to.
    pub project_id: String,
}

/// The service-account file's fields, as read.
#[derive(Deserialize)]
struct ServiceAccountFile {
    /// `service_account` (other Google credential files have other types).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// See [`ServiceAccount::client_email`].
    client_email: String,
    /// See [`ServiceAccount::private_key`]; wrapped as soon as it is read.
    private_key: String,
    /// See [`ServiceAccount::private_key_id`].
    private_key_id: Option<String>,
    /// See [`ServiceAccount::token_uri`].
    token_uri: String,
    /// See [`ServiceAccount::project_id`].
    project_id: String,
}

impl ServiceAccount {
    /// Parses a service-account JSON key file. The error names what is wrong, never the key.
    pub fn from_json(json: &[u8]) -> Result<Self, AuthError> {
        // serde_json's error can quote input near the failure; say only where it is.
        let file: ServiceAccountFile = serde_json::from_slice(json).map_err(|error| {
            AuthError::BadServiceAccount(format!(
                "invalid JSON or missing field (line {}, column {})",
                error.line(),
                error.column()
            ))
        })?;
        // The union of what every reader once checked on its own: a service account (not
        // another kind of Google credential), an e-mail, and a token endpoint reached over
        // TLS (the assertion it receives is good for an hour of sends).
        if file.kind.as_deref() != Some("service_account") {
            return Err(AuthError::BadServiceAccount(
                "type is not \"service_account\"".into(),
            ));
        }
        if !file.client_email.contains('@') {
            return Err(AuthError::BadServiceAccount(
                "client_email is not an e-mail address".into(),
            ));
        }
        if !file.token_uri.starts_with("https://") {
            return Err(AuthError::BadServiceAccount(
                "token_uri is not an https:// URL".into(),
            ));
        }
        if file.project_id.is_empty() {
            return Err(AuthError::BadServiceAccount("project_id is empty".into()));
        }
        Ok(ServiceAccount {
            client_email: file.client_email,
            private_key: Secret::new(file.private_key),
            private_key_id: file.private_key_id,
            token_uri: file.token_uri,
            project_id: file.project_id,
        })
    }
}

/// Reads a service-account JSON key file the one way every reader does (start-up checks,
/// the providers, reloads): parsed by [`ServiceAccount::from_json`] and its key made into a
/// signer, so a file either passes everywhere or fails everywhere with the same message.
pub fn read_service_account(json: &[u8]) -> Result<(ServiceAccount, AssertionSigner), AuthError> {
    let account = ServiceAccount::from_json(json)?;
    let signer = AssertionSigner::new(&account)?;
    Ok((account, signer))
}

/// The claims Google reads in an assertion.
#[derive(Serialize)]
struct Claims<'a> {
    /// The service account's e-mail.
    iss: &'a str,
    /// Space-separated scopes: Firebase messaging.
    scope: &'a str,
    /// The token URI.
    aud: &'a str,
    /// Issued at, UNIX seconds.
    iat: u64,
    /// Expires at, UNIX seconds: `iat` + one hour.
    exp: u64,
}

/// Signs assertions for one service account; the key is parsed once.
#[derive(Clone)]
pub struct AssertionSigner {
    /// The account's RSA key.
    key: EncodingKey,
    /// `alg: RS256`, `kid`: the private key id.
    header: Header,
    /// `iss`.
    client_email: String,
    /// `aud`, and where the request goes.
    token_uri: String,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// A signer for `account`, failing at start-up (not at the first push) on a bad key.
    pub fn new(account: &ServiceAccount) -> Result<Self, AuthError> {
        let key =
            EncodingKey::from_rsa_pem(account.private_key.expose()).map_err(AuthError::BadKey)?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = account.private_key_id.clone();
        Ok(AssertionSigner {
            key,
            header,
            client_email: account.client_email.clone(),
            token_uri: account.token_uri.clone(),
        })
    }

    /// Where to `POST` the token request (the account's `token_uri`).
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The assertion at `now`: RS256, `iss` the account, `scope` Firebase messaging, `aud`
    /// the token URI, `exp` an hour after `iat`.
    pub fn assertion(&self, now: UnixMillis) -> Result<String, AuthError> {
        let iat = now / 1000;
        let claims = Claims {
            iss: &self.client_email,
            scope: FCM_SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(AuthError::Sign)
    }

    /// The token request's form body at `now` (`content-type`: [`FORM_CONTENT_TYPE`]). A JWT
    /// is base64url and dots, none of which need escaping in a form.
    pub fn token_request_body(&self, now: UnixMillis) -> Result<Vec<u8>, AuthError> {
        let assertion = self.assertion(now)?;
        let mut body = Vec::with_capacity(GRANT_FIELD.len() + 11 + assertion.len());
        body.extend_from_slice(GRANT_FIELD.as_bytes());
        body.extend_from_slice(b"&assertion=");
        body.extend_from_slice(assertion.as_bytes());
        Ok(body)
    }
}

/// Why the token endpoint gave no token.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// An error answer, with Google's OAuth `error` and description when the body had them.
    #[error("the token endpoint answered {status}: {error} ({description})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The OAuth error code (`invalid_grant`, ...), or `HTTP <status>` without one.
        error: String,
        /// Google's explanation, possibly empty.
        description: String,
    },
    /// A 200 whose body is not a usable token answer.
    #[error("the token endpoint's answer is not a usable access token: {0}")]
    Malformed(String),
}

impl TokenError {
    /// Whether trying again later may work (the endpoint was unavailable or throttling), as
    /// opposed to a refused credential (`invalid_grant`, `invalid_scope`: alert an operator).
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Refused { status, .. } => *status == 429 || *status >= 500,
            TokenError::Malformed(_) => true,
        }
    }
}

/// The token endpoint's success body.
#[derive(Deserialize)]
struct GrantAnswer {
    /// The opaque token.
    access_token: String,
    /// Its lifetime from now, in seconds.
    expires_in: u64,
    /// `Bearer`.
    token_type: String,
}

/// The token endpoint's error body.
#[derive(Deserialize)]
struct Refusal {
    /// The OAuth error code.
    error: Option<String>,
    /// Google's explanation.
    error_description: Option<String>,
}

/// Reads the token endpoint's answer, received at `now`: the access token, or why there is
/// none. Never panics; never puts the token into an error.
pub fn parse_token_response(
    status: u16,
    body: &[u8],
    now: UnixMillis,
) -> Result<AccessToken, TokenError> {
    if status != 200 {
        let refusal = serde_json::from_slice::<Refusal>(body).ok();
        let (error, description) = refusal.map_or((None, None), |refusal| {
            (refusal.error, refusal.error_description)
        });
        return Err(TokenError::Refused {
            status,
            error: error.unwrap_or_else(|| format!("HTTP {status}")),
            description: description.unwrap_or_default(),
        });
    }
    let grant: GrantAnswer = serde_json::from_slice(body)
        .map_err(|_| TokenError::Malformed("not a JSON token answer".into()))?;
    if !grant.token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Malformed(format!(
            "token_type {:?} is not Bearer",
            grant.token_type
        )));
    }
    if grant.expires_in == 0 || grant.access_token.is_empty() {
        return Err(TokenError::Malformed("empty token or zero lifetime".into()));
    }
    let authorization = HeaderValue::try_from(format!("Bearer {}", grant.access_token))
        .map_err(|_| TokenError::Malformed("the token is not a valid header value".into()))?;
    Ok(AccessToken {
        authorization,
        obtained_at: now,
        expires_at: now.saturating_add(grant.expires_in.saturating_mul(1000)),
    })
}

impl Grant for AssertionSigner {
    const PROVIDER: Platform = Platform::Fcm;

    fn request_body(&self, now: UnixMillis) -> Result<Vec<u8>, String> {
        self.token_request_body(now)
            .map_err(|error| error.to_string())
    }

    fn read_answer(
        &self,
        status: u16,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<AccessToken, String> {
        parse_token_response(status, body, now).map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests;
