//! The WNS rule book: what Microsoft checks of a token request and of a raw notification,
//! as pure functions (request in, verdict out), so every rule is tested without a network.
//!
//! - `POST /wns/token` (form; the legacy `login.live.com/accesstoken.srf`):
//!   `grant_type=client_credentials`, `scope=notify.windows.com`, `client_id` = a configured
//!   package SID, `client_secret` its secret → an access token
//!   (`{"access_token","token_type":"bearer","expires_in"}`), else 400 `invalid_client` /
//!   `invalid_request` / `unsupported_grant_type` / `invalid_scope`.
//! - `POST /<tenant>/oauth2/v2.0/token` (form; Microsoft Entra ID's
//!   `login.microsoftonline.com`): the same grant with `scope=https://wns.windows.com/.default`
//!   and the app's Entra client id; the legacy scope is `invalid_scope` there, as the Entra
//!   scope is on the legacy endpoint (docs/protocols.md, "Transport, for every service").
//!   Both token endpoints speak HTTP/1.1 only (the server's `route`).
//! - `POST <channel path>` (`/w/?token=...`, the path of a real channel URI, which the
//!   provider's `channel_base_url` points here): `Authorization: Bearer` a live token (else
//!   401), `X-WNS-Type` one of `wns/raw`, `wns/toast`, `wns/badge`, `wns/tile` (else 400), a
//!   raw notification as `application/octet-stream` (else 400), `X-WNS-TTL` a whole number of
//!   seconds if present (else 400), `X-WNS-Cache-Policy` `cache` or `no-cache` if present,
//!   a body of at most 5000 bytes (else 413).

use std::collections::HashMap;

/// The legacy token endpoint's path.
pub const TOKEN_PATH: &str = "/wns/token";
/// What follows the tenant (a GUID or a domain) in an Entra ID token endpoint's path.
pub const ENTRA_TOKEN_SUFFIX: &str = "/oauth2/v2.0/token";
/// The scope the legacy endpoint grants WNS tokens for.
pub const LEGACY_SCOPE: &str = "notify.windows.com";
/// The scope Entra ID grants WNS tokens for.
pub const ENTRA_SCOPE: &str = "https://wns.windows.com/.default";

/// Which of the two token endpoints `path` is, if any: `Some(scope)` it grants.
fn token_endpoint_scope(path: &str) -> Option<&'static str> {
    if path == TOKEN_PATH {
        return Some(LEGACY_SCOPE);
    }
    let tenant = path.strip_prefix('/')?.strip_suffix(ENTRA_TOKEN_SUFFIX)?;
    let valid = !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    valid.then_some(ENTRA_SCOPE)
}

/// Whether `path` is one of WNS's token endpoints (legacy or Entra ID).
pub fn is_token_path(path: &str) -> bool {
    token_endpoint_scope(path).is_some()
}
/// The largest notification body WNS takes.
pub const BODY_LIMIT: usize = 5000;

/// A Windows app the simulator issues tokens to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WnsApp {
    /// The OAuth `client_id`: the package SID (legacy endpoint) or the app's Entra ID
    /// application (client) id.
    pub package_sid: String,
    /// Its client secret.
    pub client_secret: String,
}

/// Why a request is refused: status and `X-WNS-Error-Description` (or OAuth `error`).
pub type Refusal = (u16, &'static str);

/// Checks a token request's form body, posted to `path` (the legacy or an Entra ID token
/// endpoint, each with its own scope), against the configured apps.
pub fn judge_token_request<'a>(
    path: &str,
    body: &[u8],
    apps: &'a [WnsApp],
) -> Result<&'a WnsApp, Refusal> {
    let Some(scope) = token_endpoint_scope(path) else {
        return Err((404, "not_found"));
    };
    let form = parse_form(body);
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return Err((400, "unsupported_grant_type"));
    }
    if field("scope") != Some(scope) {
        return Err((400, "invalid_scope"));
    }
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return Err((400, "invalid_request"));
    };
    apps.iter()
        .find(|app| app.package_sid == id && app.client_secret == secret)
        .ok_or((400, "invalid_client"))
}

/// A raw notification WNS accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// `X-WNS-Type`.
    pub kind: String,
    /// `X-WNS-TTL`, seconds.
    pub ttl: Option<u64>,
    /// `X-WNS-Cache-Policy`.
    pub cache_policy: Option<String>,
    /// The body as JSON (raw notifications from ringcast are JSON), or a string otherwise.
    pub payload: serde_json::Value,
}

/// Checks a notification; `token_live` says whether its bearer token was issued here and has
/// not expired.
pub fn judge_notification(
    headers: &http::HeaderMap,
    body: &[u8],
    token_live: bool,
) -> Result<Accepted, Refusal> {
    if !token_live {
        return Err((401, "the access token is missing, invalid or expired"));
    }
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let kind = header("x-wns-type").ok_or((400, "X-WNS-Type is missing"))?;
    if !matches!(kind, "wns/raw" | "wns/toast" | "wns/badge" | "wns/tile") {
        return Err((400, "X-WNS-Type is not a notification type"));
    }
    if kind == "wns/raw" && header("content-type") != Some("application/octet-stream") {
        return Err((400, "a raw notification must be application/octet-stream"));
    }
    let ttl = match header("x-wns-ttl") {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| (400, "X-WNS-TTL is not a number"))?,
        ),
    };
    let cache_policy = header("x-wns-cache-policy").map(str::to_owned);
    if let Some(policy) = &cache_policy
        && policy != "cache"
        && policy != "no-cache"
    {
        return Err((400, "X-WNS-Cache-Policy must be cache or no-cache"));
    }
    if body.len() > BODY_LIMIT {
        return Err((413, "the notification is over 5000 bytes"));
    }
    let payload = serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()));
    Ok(Accepted {
        kind: kind.to_owned(),
        ttl,
        cache_policy,
        payload,
    })
}

/// The channel's token (its `token` query parameter, else the whole path): what a profile's
/// `unregistered_tokens` names to script a dead channel.
pub fn channel_token(path_and_query: &str) -> &str {
    path_and_query
        .split_once("token=")
        .map_or(path_and_query, |(_, token)| {
            token.split('&').next().unwrap_or(token)
        })
}

/// Tokens the simulator issued: token → (package SID, expiry in UNIX ms).
#[derive(Debug, Default)]
pub struct WnsTokens {
    issued: std::sync::Mutex<HashMap<String, (String, u64)>>,
}

impl WnsTokens {
    /// Issues a token for `app`, live until `expires_at`.
    pub fn issue(&self, app: &WnsApp, expires_at: u64) -> String {
        let token = format!("wns-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token.clone(), (app.package_sid.clone(), expires_at));
        token
    }

    /// Whether `authorization` (`Bearer <token>`) carries a token issued here that is live at
    /// `now`.
    pub fn is_live(&self, authorization: Option<&str>, now: u64) -> bool {
        let Some(token) = authorization.and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        }) else {
            return false;
        };
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .is_some_and(|(_, expires_at)| *expires_at > now)
    }
}

/// Parses `application/x-www-form-urlencoded`.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (decode(key), decode(value)))
        .collect()
}

/// Percent-decoding (and `+` as a space), lenient as servers are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match text
                    .get(i + 1..i + 3)
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> WnsApp {
        WnsApp {
            package_sid: "ms-app://s-1-15-2-1".into(),
            client_secret: "a+b/c=d".into(),
        }
    }

    #[test]
    fn the_token_endpoint_checks_grant_scope_and_client() {
        let apps = [app()];
        let good = b"grant_type=client_credentials&client_id=ms-app%3A%2F%2Fs-1-15-2-1\
                     &client_secret=a%2Bb%2Fc%3Dd&scope=notify.windows.com";
        assert_eq!(
            judge_token_request(TOKEN_PATH, good, &apps).unwrap(),
            &apps[0]
        );
        let judge_token_request = |body: &[u8], apps| judge_token_request(TOKEN_PATH, body, apps);
        let wrong_secret = b"grant_type=client_credentials&client_id=ms-app%3A%2F%2Fs-1-15-2-1\
                             &client_secret=nope&scope=notify.windows.com";
        assert_eq!(
            judge_token_request(wrong_secret, &apps).unwrap_err(),
            (400, "invalid_client")
        );
        assert_eq!(
            judge_token_request(b"grant_type=password", &apps)
                .unwrap_err()
                .1,
            "unsupported_grant_type"
        );
        assert_eq!(
            judge_token_request(b"grant_type=client_credentials&scope=x", &apps)
                .unwrap_err()
                .1,
            "invalid_scope"
        );
    }

    #[test]
    fn entra_id_grants_the_default_scope_and_only_at_a_tenant_endpoint() {
        let apps = [WnsApp {
            package_sid: "8a7b6c5d-0000-4000-8000-000000000001".into(),
            client_secret: "s3cret".into(),
        }];
        let entra = "/contoso.onmicrosoft.com/oauth2/v2.0/token";
        assert!(is_token_path(entra) && is_token_path(TOKEN_PATH));
        assert!(!is_token_path("/oauth2/v2.0/token") && !is_token_path("/a/b/oauth2/v2.0/token"));
        let form = |scope: &str| {
            format!(
                "grant_type=client_credentials&client_id=8a7b6c5d-0000-4000-8000-000000000001\
                 &client_secret=s3cret&scope={}",
                scope.replace(':', "%3A").replace('/', "%2F")
            )
        };
        let granted = judge_token_request(entra, form(ENTRA_SCOPE).as_bytes(), &apps);
        assert_eq!(granted.unwrap(), &apps[0]);
        // Each endpoint grants its own scope only.
        let legacy_scope = judge_token_request(entra, form(LEGACY_SCOPE).as_bytes(), &apps);
        assert_eq!(legacy_scope.unwrap_err(), (400, "invalid_scope"));
        let entra_scope = judge_token_request(TOKEN_PATH, form(ENTRA_SCOPE).as_bytes(), &apps);
        assert_eq!(entra_scope.unwrap_err(), (400, "invalid_scope"));
    }

    #[test]
    fn a_raw_notification_needs_a_live_token_the_raw_type_and_a_small_body() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-wns-type", "wns/raw".parse().unwrap());
        headers.insert("content-type", "application/octet-stream".parse().unwrap());
        headers.insert("x-wns-ttl", "45".parse().unwrap());
        headers.insert("x-wns-cache-policy", "no-cache".parse().unwrap());
        let accepted = judge_notification(&headers, br#"{"v":1}"#, true).unwrap();
        assert_eq!(accepted.ttl, Some(45));
        assert_eq!(accepted.payload["v"], 1);
        assert_eq!(
            judge_notification(&headers, b"{}", false).unwrap_err().0,
            401
        );
        assert_eq!(
            judge_notification(&headers, &[b'x'; 5001], true)
                .unwrap_err()
                .0,
            413
        );
        let mut bad = headers.clone();
        bad.insert("x-wns-ttl", "soon".parse().unwrap());
        assert_eq!(judge_notification(&bad, b"{}", true).unwrap_err().0, 400);
        let mut bad = headers.clone();
        bad.remove("x-wns-type");
        assert_eq!(judge_notification(&bad, b"{}", true).unwrap_err().0, 400);
        let mut bad = headers;
        bad.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(judge_notification(&bad, b"{}", true).unwrap_err().0, 400);
    }

    #[test]
    fn tokens_live_until_they_expire_and_channels_name_their_token() {
        let tokens = WnsTokens::default();
        let token = tokens.issue(&app(), 1_000);
        assert!(tokens.is_live(Some(&format!("Bearer {token}")), 999));
        assert!(!tokens.is_live(Some(&format!("Bearer {token}")), 1_000));
        assert!(!tokens.is_live(Some("Bearer other"), 0));
        assert!(!tokens.is_live(None, 0));
        assert_eq!(channel_token("/w/?token=AwYAAAB&x=1"), "AwYAAAB");
        assert_eq!(channel_token("/w/abc"), "/w/abc");
    }
}
