//! The APNs rules, as a pure function: a request in, a [`Verdict`] out.
//!
//! No sockets and no clock here: the server passes `now` and the connection's provider-token
//! state, so every rule Apple enforces (docs/protocols.md, APNs) is unit-tested offline. Checks run
//! in roughly the order Apple reports them: method and path, device token, provider token,
//! then headers, then payload.
//!
//! # Which token is which
//!
//! Apple knows, for every device token, whether PushKit made it (a VoIP token) or the app's
//! regular registration did, and which environment issued it. The simulator reads both off
//! the token's bytes, so tests and the load generator can make tokens of each kind without
//! asking it first ([`device_token`] makes them):
//!
//! - **environment**: a token whose first byte is `0x5b` ("5b", sandbox) was issued by the
//!   sandbox; every other token by production;
//! - **kind**: a token whose second byte is `0xa1` ("a1", alert) is an app's regular token;
//!   every other token is a PushKit (VoIP) token.
//!
//! So a made-up token (`"ab".repeat(32)`) is a production VoIP token, as the tokens of the
//! tests and the load generator were before this rule. And as Apple does:
//!
//! - a token sent to the other environment's host is `400 BadDeviceToken`, exactly like a
//!   malformed one. The host is the request's `:authority`: `localhost` or any host with
//!   `sandbox` in its name is the sandbox ([`RunningSimulator::apns_sandbox_url`]
//!   (crate::simulator::RunningSimulator::apns_sandbox_url) is `https://localhost:PORT`),
//!   every other host production;
//! - a VoIP token takes only `voip` pushes on `<bundle>.voip`, a regular token only the other
//!   push types on the bare `<bundle>`: the wrong one is `400 DeviceTokenNotForTopic`;
//! - a topic naming a bundle id outside the profile's `apns_bundle_ids` (when it lists any)
//!   is `400 DeviceTokenNotForTopic`: the token belongs to another app;
//! - on a certificate-auth connection (a trusted client certificate, no JWT), a topic the
//!   certificate does not cover (its subject UID and Apple's topics extension, see
//!   [`crate::providers::apns::auth::topics`]) is `400 TopicDisallowed`.

use crate::vocab::Environment;
use http::{HeaderMap, Method};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

/// A provider-token age Apple refuses: one hour (403 `ExpiredProviderToken`).
pub const MAX_TOKEN_AGE_SECS: u64 = 3600;
/// The shortest time Apple lets a connection keep a provider token before taking a new one
/// (429 `TooManyProviderTokenUpdates`).
pub const MIN_TOKEN_REFRESH_SECS: u64 = 20 * 60;
/// Payload limit of a `voip` push.
pub const VOIP_PAYLOAD_LIMIT: usize = 5120;
/// Payload limit of every other push type.
pub const PAYLOAD_LIMIT: usize = 4096;
/// Longest `apns-collapse-id`, in bytes.
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;

/// The push types Apple accepts in `apns-push-type`; anything else is `InvalidPushType`.
const PUSH_TYPES: &[&str] = &[
    "alert",
    "background",
    "location",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "pushtotalk",
    "widgets",
    "controls",
];

/// The first byte of every sandbox token (see the module doc).
pub const SANDBOX_MARK: u8 = 0x5b;
/// The second byte of every regular (alert) token (see the module doc).
pub const REGULAR_MARK: u8 = 0xa1;

/// Which of an app's two APNs tokens a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Made by PushKit: takes only `voip` pushes on `<bundle>.voip`.
    Voip,
    /// The app's regular token: takes alerts and background pushes on `<bundle>`.
    Regular,
}

/// What the simulated APNs knows of a token (see the module doc): its kind and environment.
pub fn token_facts(token: &[u8]) -> (TokenKind, Environment) {
    let environment = if token.first() == Some(&SANDBOX_MARK) {
        Environment::Sandbox
    } else {
        Environment::Production
    };
    let kind = if token.get(1) == Some(&REGULAR_MARK) {
        TokenKind::Regular
    } else {
        TokenKind::Voip
    };
    (kind, environment)
}

/// A 32-byte token of `kind` from `environment`, unique per `seed`: what the simulated phone
/// `seed` gets from PushKit or from its app's registration.
pub fn device_token(kind: TokenKind, environment: Environment, seed: u64) -> Vec<u8> {
    let mut token = vec![0x0c; 32];
    token[0] = match environment {
        Environment::Sandbox => SANDBOX_MARK,
        Environment::Production => 0x0e,
    };
    token[1] = match kind {
        TokenKind::Regular => REGULAR_MARK,
        TokenKind::Voip => 0x0f,
    };
    token[2..10].copy_from_slice(&seed.to_be_bytes());
    token
}

/// The environment of the host a request was sent to, from its `:authority`: `localhost`
/// or a host with `sandbox` in its name is the sandbox, every other host production.
pub fn host_environment(authority: Option<&str>) -> Environment {
    let host = authority
        .map(|authority| {
            authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host)
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host == "localhost" || host.contains("sandbox") {
        Environment::Sandbox
    } else {
        Environment::Production
    }
}

/// One signing key the simulator accepts, as Apple knows a developer's `.p8` key: the team it
/// belongs to, its key id, and the public half to verify ES256 signatures with.
#[derive(Clone)]
pub struct ApnsKey {
    /// Apple team id; the JWT's `iss` must name it.
    pub team_id: String,
    /// Key id; the JWT header's `kid` must name it.
    pub key_id: String,
    /// The verifying key, parsed once at start so a bad PEM fails start-up, not a request.
    pub decoding_key: DecodingKey,
}

impl std::fmt::Debug for ApnsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // DecodingKey has no Debug; the public key is not secret but adds nothing to a log.
        f.debug_struct("ApnsKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ApnsKey {
    /// Parses a PEM public key (`SubjectPublicKeyInfo`, P-256), as `rcgen`'s
    /// `public_key_pem()` or `openssl ec -pubout` print it.
    pub fn from_pem(
        team_id: &str,
        key_id: &str,
        public_key_pem: &str,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            team_id: team_id.to_owned(),
            key_id: key_id.to_owned(),
            decoding_key: DecodingKey::from_ec_pem(public_key_pem.as_bytes())?,
        })
    }
}

/// The provider token a connection is using, kept per connection because that is how Apple
/// counts token updates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionToken {
    /// The JWT last accepted on this connection and when (UNIX seconds) it was first seen.
    pub current: Option<(String, u64)>,
    /// The current JWT's `iat`, so a token already verified on this connection is only
    /// aged, not verified again: one ES256 check per token and connection, as Apple does,
    /// keeps the simulator from being the bottleneck of a load test.
    pub iat: u64,
    /// The key id (`kid`) the current JWT was signed with.
    pub key_id: String,
    /// The client certificate the connection presented (certificate auth), judged by
    /// [`super::tls::ClientCertificates`].
    pub client_certificate: super::tls::ClientCertificate,
}

impl ConnectionToken {
    /// Whether the connection has shown a valid credential: a provider token accepted, or a
    /// trusted client certificate.
    pub fn holds_credential(&self) -> bool {
        self.current.is_some()
            || matches!(
                self.client_certificate,
                super::tls::ClientCertificate::Trusted { .. }
            )
    }
}

/// What APNs answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200: Apple took the push.
    Accept(AcceptedPush),
    /// An error status with Apple's `reason` string.
    Reject {
        /// HTTP status code.
        status: u16,
        /// Apple's reason, e.g. `BadDeviceToken`.
        reason: &'static str,
    },
}

/// What a valid request carried, kept so the recorder can prove delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedPush {
    /// The hex device token from the path.
    pub device_token: String,
    /// `apns-topic`.
    pub topic: String,
    /// `apns-push-type` (`alert` when absent, as Apple assumes).
    pub push_type: String,
    /// `apns-priority` (10 when absent, as Apple assumes).
    pub priority: u8,
    /// `apns-id` when the client sent one; the server invents one otherwise.
    pub apns_id: Option<String>,
    /// `apns-collapse-id`.
    pub collapse_id: Option<String>,
    /// `apns-expiration` (UNIX seconds; 0 = now or never).
    pub expiration: Option<u64>,
    /// The JSON payload.
    pub payload: serde_json::Value,
}

/// Everything of a request the rules look at.
#[derive(Clone, Copy, Debug)]
pub struct ApnsRequest<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Request path (no query).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Request body.
    pub body: &'a [u8],
    /// The `:authority` the request was sent to: which environment's host it reached.
    pub authority: Option<&'a str>,
    /// The bundle ids the phones' tokens belong to (the profile's `apns_bundle_ids`); empty
    /// for any.
    pub bundle_ids: &'a [String],
    /// Keys restricted to one environment, by key id (the profile's
    /// `apns_key_environments`); a key not named serves both.
    pub key_environments: &'a BTreeMap<String, Environment>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    iat: u64,
}

/// The error half of the internal checks: just status and reason, so `?` moves two words
/// rather than a whole `Verdict`.
#[derive(Clone, Copy, Debug)]
struct Rejection(u16, &'static str);

const fn reject(status: u16, reason: &'static str) -> Rejection {
    Rejection(status, reason)
}

/// Judges one request as APNs would. `now` is UNIX seconds; `token` is the connection's
/// provider-token state and is updated when a new token is accepted.
pub fn judge(
    request: ApnsRequest<'_>,
    keys: &[ApnsKey],
    now: u64,
    token: &mut ConnectionToken,
) -> Verdict {
    match check(request, keys, now, token) {
        Ok(accepted) => Verdict::Accept(accepted),
        Err(Rejection(status, reason)) => Verdict::Reject { status, reason },
    }
}

fn check(
    request: ApnsRequest<'_>,
    keys: &[ApnsKey],
    now: u64,
    token: &mut ConnectionToken,
) -> Result<AcceptedPush, Rejection> {
    let Some(device_token) = request.path.strip_prefix("/3/device/") else {
        return Err(reject(404, "BadPath"));
    };
    if request.method != Method::POST {
        return Err(reject(405, "MethodNotAllowed"));
    }
    if device_token.is_empty() {
        return Err(reject(400, "MissingDeviceToken"));
    }
    // Real tokens are 32 bytes (64 hex digits) today; Apple warns they may grow, so accept
    // any even-length hex of at least that size rather than exactly 64.
    if device_token.len() < 64
        || device_token.len() % 2 != 0
        || !device_token.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(reject(400, "BadDeviceToken"));
    }
    let headers = request.headers;
    if [
        "authorization",
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-collapse-id",
        "apns-id",
    ]
    .iter()
    .any(|name| headers.get_all(*name).iter().count() > 1)
    {
        return Err(reject(400, "DuplicateHeaders"));
    }
    let signed_with = check_provider_token(header(headers, "authorization"), keys, now, token)?;
    // Apple lets a key be restricted to one environment; the other host refuses it.
    if let Some(only) = signed_with.and_then(|kid| request.key_environments.get(kid))
        && *only != host_environment(request.authority)
    {
        return Err(reject(403, "BadEnvironmentKeyInToken"));
    }
    // Checked above: even-length hex digits.
    let token_bytes = hex::decode(device_token).map_err(|_| reject(400, "BadDeviceToken"))?;
    let (kind, issued_by) = token_facts(&token_bytes);
    if issued_by != host_environment(request.authority) {
        return Err(reject(400, "BadDeviceToken"));
    }

    let topic = header(headers, "apns-topic").ok_or(reject(400, "MissingTopic"))?;
    // Certificate auth binds the sender to its certificate's topics (a JWT names a team,
    // which may push to any of its apps' topics).
    if let super::tls::ClientCertificate::Trusted { topics } = &token.client_certificate
        && header(headers, "authorization").is_none()
        && !topics.iter().any(|covered| covered == topic)
    {
        return Err(reject(400, "TopicDisallowed"));
    }
    let push_type = header(headers, "apns-push-type").unwrap_or("alert");
    if !PUSH_TYPES.contains(&push_type) {
        return Err(reject(400, "InvalidPushType"));
    }
    // PushKit topics are the bundle id plus `.voip`; a voip push to the bare bundle id (or
    // an alert to the `.voip` topic) names the wrong topic.
    if topic.is_empty() || (push_type == "voip") != topic.ends_with(".voip") {
        return Err(reject(400, "BadTopic"));
    }
    // A PushKit token takes only VoIP pushes, a regular token everything but VoIP.
    if (kind == TokenKind::Voip) != (push_type == "voip") {
        return Err(reject(400, "DeviceTokenNotForTopic"));
    }
    let bundle = topic.strip_suffix(".voip").unwrap_or(topic);
    if !request.bundle_ids.is_empty() && !request.bundle_ids.iter().any(|id| id == bundle) {
        return Err(reject(400, "DeviceTokenNotForTopic"));
    }
    let priority = match header(headers, "apns-priority") {
        None => 10,
        Some("10") => 10,
        Some("5") if push_type != "voip" => 5,
        Some("1") if push_type != "voip" => 1,
        Some(_) => return Err(reject(400, "BadPriority")),
    };
    let expiration = header(headers, "apns-expiration")
        .map(str::parse::<u64>)
        .transpose()
        .map_err(|_| reject(400, "BadExpirationDate"))?;
    let collapse_id = header(headers, "apns-collapse-id");
    if collapse_id.is_some_and(|id| id.len() > MAX_COLLAPSE_ID_BYTES) {
        return Err(reject(400, "BadCollapseId"));
    }
    let apns_id = header(headers, "apns-id");
    if apns_id.is_some_and(|id| !is_canonical_uuid(id)) {
        return Err(reject(400, "BadMessageId"));
    }

    if request.body.is_empty() {
        return Err(reject(400, "PayloadEmpty"));
    }
    let limit = if push_type == "voip" {
        VOIP_PAYLOAD_LIMIT
    } else {
        PAYLOAD_LIMIT
    };
    if request.body.len() > limit {
        return Err(reject(413, "PayloadTooLarge"));
    }
    // Apple documents no reason for a body that is not a JSON dictionary; it answers 400
    // `BadPayload` in practice, and senders map unknown reasons to "permanent" anyway.
    let payload: serde_json::Value =
        serde_json::from_slice(request.body).map_err(|_| reject(400, "BadPayload"))?;
    if !payload.is_object() {
        return Err(reject(400, "BadPayload"));
    }
    Ok(AcceptedPush {
        device_token: device_token.to_owned(),
        topic: topic.to_owned(),
        push_type: push_type.to_owned(),
        priority,
        apns_id: apns_id.map(str::to_owned),
        collapse_id: collapse_id.map(str::to_owned),
        expiration,
        payload,
    })
}

/// A header as text; a value that is not visible ASCII reads as absent-but-wrong further on.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

/// Checks the request's credential against the connection's; the key id a JWT was signed
/// with (`None` for certificate auth).
fn check_provider_token<'t>(
    authorization: Option<&str>,
    keys: &[ApnsKey],
    now: u64,
    token: &'t mut ConnectionToken,
) -> Result<Option<&'t str>, Rejection> {
    // Certificate auth: a trusted client certificate stands in for the JWT; an untrusted
    // one fails every push of the connection.
    match token.client_certificate {
        super::tls::ClientCertificate::Untrusted => return Err(reject(403, "BadCertificate")),
        super::tls::ClientCertificate::Trusted { .. } if authorization.is_none() => {
            return Ok(None);
        }
        _ => {}
    }
    let jwt = authorization
        .and_then(|value| {
            value
                .strip_prefix("bearer ")
                .or(value.strip_prefix("Bearer "))
        })
        .map(str::trim)
        .filter(|jwt| !jwt.is_empty())
        .ok_or(reject(403, "MissingProviderToken"))?;
    // Same token as this connection already holds: it was verified when first seen; only
    // its age can have changed.
    if let Some((current, _)) = &token.current
        && current == jwt
    {
        if now.saturating_sub(token.iat) >= MAX_TOKEN_AGE_SECS {
            return Err(reject(403, "ExpiredProviderToken"));
        }
        return Ok(Some(&token.key_id));
    }
    let (iat, key_id) = verify(jwt, keys, now)?;
    if let Some((_, adopted_at)) = token.current
        && now.saturating_sub(adopted_at) < MIN_TOKEN_REFRESH_SECS
    {
        return Err(reject(429, "TooManyProviderTokenUpdates"));
    }
    token.current = Some((jwt.to_owned(), now));
    token.iat = iat;
    token.key_id = key_id;
    Ok(Some(&token.key_id))
}

/// Checks signature, `kid`/`iss` and age. Returns the `iat` and the key id.
fn verify(jwt: &str, keys: &[ApnsKey], now: u64) -> Result<(u64, String), Rejection> {
    let invalid = reject(403, "InvalidProviderToken");
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| invalid)?;
    if header.alg != Algorithm::ES256 {
        return Err(invalid);
    }
    let kid = header.kid.ok_or(invalid)?;
    let key = keys.iter().find(|key| key.key_id == kid).ok_or(invalid)?;
    let mut validation = Validation::new(Algorithm::ES256);
    // APNs tokens carry no `exp`: Apple judges age from `iat` alone.
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key.decoding_key, &validation)
        .map_err(|_| invalid)?
        .claims;
    if claims.iss != key.team_id {
        return Err(invalid);
    }
    // A token from the future is a broken clock on the provider's side; a minute of skew
    // is tolerated.
    if claims.iat > now + 60 {
        return Err(invalid);
    }
    if now.saturating_sub(claims.iat) >= MAX_TOKEN_AGE_SECS {
        return Err(reject(403, "ExpiredProviderToken"));
    }
    Ok((claims.iat, kid))
}

/// `8-4-4-4-12` hex digits, as Apple requires of `apns-id`.
fn is_canonical_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests;
