//! Google's OAuth token endpoint, as FCM senders use it: a service-account JWT assertion in,
//! a short-lived opaque access token out.
//!
//! The rules are a pure function ([`judge_assertion`]): the form body, the accepted service
//! accounts, the URL the client reached and `now` in, the account or Google's refusal out.
//! [`AccessTokens`] keeps the tokens handed out (account, project, expiry) so the FCM side can
//! check a bearer token; the server passes the clock, so expiry is tested without sleeping.
//!
//! What is checked is what Google checks (docs/protocols.md, "FCM HTTP v1"): `grant_type` is the JWT-bearer
//! grant; the assertion is RS256, signed by the key of the account named in `iss`; `aud` is
//! the token URL (or Google's own, which Google's libraries send whatever the `token_uri`);
//! `scope` includes Firebase messaging; `iat` and `exp` are present, at most an hour apart
//! and not past.

use crate::vocab::UnixMillis;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Where the simulator serves the token endpoint.
pub const PATH: &str = "/token";
/// Google's token URI: accepted as `aud` too, since Google's own libraries put it there
/// whatever the service account's `token_uri` says.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scope an FCM sender needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of a service-account assertion (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest an assertion may live (`exp - iat`): Google refuses more than an hour.
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 3600;
/// Clock skew tolerated on `iat` in the future, in seconds.
const SKEW_SECS: u64 = 60;

/// One service account the simulator accepts, as Google knows it: its e-mail, its project
/// and the public half of its key.
#[derive(Clone)]
pub struct FcmAccount {
    /// `client_email`: the assertion's `iss` must name it.
    pub client_email: String,
    /// The Firebase project its access tokens may send to.
    pub project_id: String,
    /// The verifying key, parsed once at start so a bad PEM fails start-up, not a request.
    pub decoding_key: DecodingKey,
}

impl std::fmt::Debug for FcmAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // DecodingKey has no Debug; the public key is not secret but adds nothing to a log.
        f.debug_struct("FcmAccount")
            .field("client_email", &self.client_email)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl FcmAccount {
    /// Parses a PEM RSA public key (`PUBLIC KEY`, as `openssl pkey -pubout` prints it).
    pub fn from_pem(
        client_email: &str,
        project_id: &str,
        public_key_pem: &str,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            client_email: client_email.to_owned(),
            project_id: project_id.to_owned(),
            decoding_key: DecodingKey::from_rsa_pem(public_key_pem.as_bytes())?,
        })
    }
}

/// The public half of an RSA private key PEM (PKCS#8 `PRIVATE KEY`, as in a service-account
/// JSON, or PKCS#1 `RSA PRIVATE KEY`), as a `PUBLIC KEY` PEM: so the simulator can be given
/// the very service-account file the node uses. The error never contains the key.
pub fn public_key_pem_of(private_key_pem: &str) -> Result<String, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(private_key_pem))
        .map_err(|_| "private_key is not an RSA PEM private key".to_owned())?;
    key.to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|error| format!("cannot encode the public key: {error}"))
}

/// Google's refusal: a status and the OAuth error body
/// `{"error": ..., "error_description": ...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status (400 for everything Google refuses about a grant).
    pub status: u16,
    /// The OAuth error code: `invalid_grant`, `invalid_scope`, `unsupported_grant_type`,
    /// `invalid_request`.
    pub error: String,
    /// Google's human-readable explanation.
    pub description: String,
}

impl Refusal {
    /// A refusal with `status`, the OAuth `error` code and Google's description.
    pub fn new(status: u16, error: &str, description: impl Into<String>) -> Self {
        Self {
            status,
            error: error.to_owned(),
            description: description.into(),
        }
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", description)
    }

    /// The JSON body, as Google sends it.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.error, "error_description": self.description})
    }
}

/// The successful answer's body, as Google sends it.
pub fn grant_body(access_token: &str, expires_in_secs: u64) -> serde_json::Value {
    serde_json::json!({
        "access_token": access_token,
        "expires_in": expires_in_secs,
        "token_type": "Bearer",
    })
}

/// The assertion claims Google reads. `aud` may be a string or a list in JWTs; Google wants
/// the one string.
#[derive(Deserialize)]
struct Claims {
    /// The service account's e-mail: which key must have signed it.
    iss: Option<String>,
    /// Space-separated scopes; Firebase messaging must be one.
    scope: Option<String>,
    /// The token URL.
    aud: Option<serde_json::Value>,
    /// Issued at, UNIX seconds.
    iat: Option<u64>,
    /// Expires at, UNIX seconds: at most an hour after `iat`.
    exp: Option<u64>,
}

/// Judges one token request: its form body, the accounts Google knows, `token_url` (the URL
/// the client posted to, which `aud` may name) and `now` in UNIX seconds. The account the
/// assertion proves, or Google's refusal.
pub fn judge_assertion<'a>(
    body: &[u8],
    accounts: &'a [FcmAccount],
    token_url: &str,
    now: u64,
) -> Result<&'a FcmAccount, Refusal> {
    let fields = form_fields(body);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    match field("grant_type") {
        Some(JWT_BEARER_GRANT) => {}
        Some(other) => {
            return Err(Refusal::new(
                400,
                "unsupported_grant_type",
                format!("Invalid grant_type: {other}"),
            ));
        }
        None => {
            return Err(Refusal::new(
                400,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            ));
        }
    }
    let assertion = field("assertion")
        .filter(|assertion| !assertion.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                400,
                "invalid_request",
                "Missing required parameter: assertion",
            )
        })?;
    let bad_signature = || Refusal::invalid_grant("Invalid JWT Signature.");
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| bad_signature())?;
    if header.alg != Algorithm::RS256 {
        return Err(bad_signature());
    }
    // Which account signed it is only known from the (not yet verified) `iss`; the
    // signature is then checked with that account's key.
    let claimed = unverified_claims(assertion).ok_or_else(bad_signature)?;
    let account = accounts
        .iter()
        .find(|account| claimed.iss.as_deref() == Some(account.client_email.as_str()))
        .ok_or_else(|| Refusal::invalid_grant("Invalid grant: account not found"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    // Every claim is checked below, with Google's own messages.
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(assertion, &account.decoding_key, &validation)
        .map_err(|_| bad_signature())?
        .claims;
    let audience = claims.aud.as_ref().and_then(serde_json::Value::as_str);
    if !audience.is_some_and(|aud| aud == token_url || aud == GOOGLE_TOKEN_URI) {
        return Err(Refusal::invalid_grant(format!(
            "Invalid JWT: Failed audience check. The expected audience is {token_url}."
        )));
    }
    let timely = match (claims.iat, claims.exp) {
        (Some(iat), Some(exp)) => {
            iat <= now + SKEW_SECS
                && exp > now
                && exp > iat
                && exp - iat <= MAX_ASSERTION_LIFETIME_SECS
        }
        _ => false,
    };
    if !timely {
        return Err(Refusal::invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let scoped = claims
        .scope
        .as_deref()
        .is_some_and(|scope| scope.split(' ').any(|one| one == FCM_SCOPE));
    if !scoped {
        return Err(Refusal::new(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    Ok(account)
}

/// The claims part of a JWT, decoded without checking the signature.
fn unverified_claims(jwt: &str) -> Option<Claims> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `application/x-www-form-urlencoded` pairs, percent- and `+`-decoded. Malformed escapes
/// are kept as they are, which then fails the checks that read them.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&byte| byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut halves = pair.splitn(2, |&byte| byte == b'=');
            let key = percent_decode(halves.next().unwrap_or_default());
            let value = percent_decode(halves.next().unwrap_or_default());
            (key, value)
        })
        .collect()
}

fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        match text[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(index + 1..index + 3)
                    .and_then(|digits| std::str::from_utf8(digits).ok())
                    .and_then(|digits| u8::from_str_radix(digits, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    index += 2;
                } else {
                    out.push(b'%');
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An access token the simulator handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The account it was issued to.
    pub client_email: String,
    /// The project that account belongs to: the only one the token may send to.
    pub project_id: String,
    /// When it stops working (UNIX milliseconds).
    pub expires_at: UnixMillis,
}

/// The access tokens handed out and not yet expired, shared by every connection (a sender
/// fetches a token on one connection and uses it on all of them).
#[derive(Debug, Default)]
pub struct AccessTokens {
    /// A std Mutex: held for one map operation, never across an await.
    issued: Mutex<HashMap<String, IssuedToken>>,
}

impl AccessTokens {
    /// Hands `account` a new random opaque token valid for `lifetime` from `now`, and forgets
    /// tokens that have expired (so a long load test does not grow the map). Returns the
    /// token and what it was issued as.
    pub fn issue(
        &self,
        account: &FcmAccount,
        now: UnixMillis,
        lifetime: Duration,
    ) -> (String, IssuedToken) {
        // Not from the profile's seeded generator: tokens must not shift the scripted
        // sequence. `ya29.` is how Google's access tokens start.
        let token = format!(
            "ya29.sim-{}",
            std::iter::repeat_with(fastrand::alphanumeric)
                .take(48)
                .collect::<String>()
        );
        let issued = IssuedToken {
            client_email: account.client_email.clone(),
            project_id: account.project_id.clone(),
            expires_at: now.saturating_add(lifetime.as_millis() as u64),
        };
        let mut map = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, old| old.expires_at > now);
        map.insert(token.clone(), issued.clone());
        (token, issued)
    }

    /// What `token` was issued as, if the simulator issued it and has not forgotten it.
    /// Expiry is the caller's check (an expired token may still be found).
    pub fn lookup(&self, token: &str) -> Option<IssuedToken> {
        self.issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }
}

#[cfg(test)]
mod tests;
