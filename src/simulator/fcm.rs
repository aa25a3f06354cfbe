//! The FCM HTTP v1 rules, as a pure function: a `messages:send` request in, a [`Verdict`]
//! out.
//!
//! No sockets and no clock here: the server passes `now` and the access tokens the OAuth side
//! handed out ([`super::oauth::AccessTokens`]), so every rule of docs/protocols.md (FCM) is
//! unit-tested offline. Checks run in the order Google reports them: path and method, the
//! bearer token, the project, then the message (size, shape, target, data, `android`).
//!
//! Errors are [`Rejection`]s (in `error`), answered with Google's error JSON.

pub mod device_rate;
mod error;

pub use error::{
    BAD_REQUEST_TYPE, DEFAULT_QUOTA_RETRY_AFTER_SECS, DEVICE_RATE_VIOLATION, DOCUMENTED,
    FCM_ERROR_TYPE, QUOTA_FAILURE_TYPE, Rejection, documented_status, grpc_status,
};

use super::oauth::AccessTokens;
use crate::vocab::UnixMillis;
use http::{HeaderMap, Method};
use serde_json::{Map, Value};

/// Every `messages:send` path starts with this.
pub const PATH_PREFIX: &str = "/v1/projects/";
/// ...and ends with this.
pub const PATH_SUFFIX: &str = "/messages:send";
/// The largest message FCM takes, in bytes (the request body here).
pub const MESSAGE_LIMIT: usize = 4096;
/// The longest `android.ttl` FCM takes: four weeks, in seconds.
pub const MAX_TTL_SECS: u64 = 2_419_200;
/// Google's message for a missing, unknown or expired access token.
const UNAUTHENTICATED_MESSAGE: &str = "Request had invalid authentication credentials. Expected \
     OAuth 2 access token, login cookie or other valid authentication credential. See \
     https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// The fields of a `Message` (FCM v1); anything else is refused as unknown, as Google does.
const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];
/// The fields of an `AndroidConfig`.
const ANDROID_FIELDS: &[&str] = &[
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
    "bandwidth_constrained_ok",
    "restricted_satellite_ok",
];

/// What FCM answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200 `{"name": "projects/<p>/messages/<id>"}`.
    Accept(AcceptedMessage),
    /// An error with Google's error JSON.
    Reject(Rejection),
}

/// Where a message goes: exactly one of FCM's three targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A registration token: one app instance.
    Token(String),
    /// A topic's subscribers.
    Topic(String),
    /// A topic condition such as `'a' in topics && 'b' in topics`.
    Condition(String),
}

/// What a valid message carried, kept so the recorder can prove delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedMessage {
    /// The project in the path (the token's project: they were checked to match).
    pub project_id: String,
    /// The service account whose access token sent it.
    pub client_email: String,
    /// Where it goes.
    pub target: Target,
    /// `message.data` (all string values), `{}` when absent: what the app receives.
    pub data: Value,
    /// `android.priority` as sent (`HIGH` / `NORMAL`).
    pub android_priority: Option<String>,
    /// `android.ttl` as sent (`"42s"`).
    pub ttl: Option<String>,
    /// `android.ttl` in whole seconds (fractions dropped).
    pub ttl_seconds: Option<u64>,
    /// `android.collapse_key`.
    pub collapse_key: Option<String>,
    /// `validate_only`: FCM checks the message and sends nothing.
    pub validate_only: bool,
}

/// Everything of a request the rules look at.
#[derive(Clone, Copy, Debug)]
pub struct FcmRequest<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Request path (no query).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Request body.
    pub body: &'a [u8],
}

/// Judges one request as FCM would, at `now`, against the access tokens handed out.
pub fn judge(request: FcmRequest<'_>, tokens: &AccessTokens, now: UnixMillis) -> Verdict {
    match check(request, tokens, now) {
        Ok(accepted) => Verdict::Accept(accepted),
        Err(rejection) => Verdict::Reject(rejection),
    }
}

fn check(
    request: FcmRequest<'_>,
    tokens: &AccessTokens,
    now: UnixMillis,
) -> Result<AcceptedMessage, Rejection> {
    let not_found = || Rejection::plain(404, "The requested URL was not found on this server.");
    let project = request
        .path
        .strip_prefix(PATH_PREFIX)
        .and_then(|rest| rest.strip_suffix(PATH_SUFFIX))
        .filter(|project| !project.is_empty() && !project.contains('/'))
        .ok_or_else(not_found)?;
    if request.method != Method::POST {
        return Err(not_found());
    }
    let bearer = request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let unauthenticated = || Rejection::plain(401, UNAUTHENTICATED_MESSAGE);
    let issued = bearer
        .and_then(|token| tokens.lookup(token))
        .ok_or_else(unauthenticated)?;
    if now >= issued.expires_at {
        return Err(unauthenticated());
    }
    if issued.project_id != project {
        // What Google's IAM answers for a project the account has no rights on; not
        // SENDER_ID_MISMATCH, which is about a registration token of another sender.
        return Err(Rejection::plain(
            403,
            format!(
                "Permission 'cloudmessaging.messages.create' denied on resource \
                 '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."
            ),
        ));
    }
    if request.body.len() > MESSAGE_LIMIT {
        return Err(Rejection::invalid(
            "message",
            format!(
                "Message is too big: {} bytes, the limit is {MESSAGE_LIMIT}",
                request.body.len()
            ),
        ));
    }
    let mut accepted = message(request.body)?;
    accepted.project_id = project.to_owned();
    accepted.client_email = issued.client_email;
    Ok(accepted)
}

/// The JSON rules of a `SendMessageRequest`.
fn message(body: &[u8]) -> Result<AcceptedMessage, Rejection> {
    let invalid_json = |detail: &str| {
        Rejection::fcm(
            "INVALID_ARGUMENT",
            format!("Invalid JSON payload received. {detail}"),
        )
    };
    let request: Value =
        serde_json::from_slice(body).map_err(|error| invalid_json(&error.to_string()))?;
    let request = request
        .as_object()
        .ok_or_else(|| invalid_json("Root element must be a message."))?;
    known_fields(request, &["message", "validate_only"], "")?;
    let validate_only = match request.get("validate_only") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            return Err(Rejection::invalid(
                "validate_only",
                "Invalid value at 'validate_only' (TYPE_BOOL)",
            ));
        }
    };
    let message = request
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| Rejection::invalid("message", "Message is required."))?;
    known_fields(message, MESSAGE_FIELDS, "message.")?;
    let target = target(message)?;
    let data = match message.get("data") {
        None => Value::Object(Map::new()),
        Some(data) => {
            string_map(data, "message.data")?;
            data.clone()
        }
    };
    let mut accepted = AcceptedMessage {
        project_id: String::new(),
        client_email: String::new(),
        target,
        data,
        android_priority: None,
        ttl: None,
        ttl_seconds: None,
        collapse_key: None,
        validate_only,
    };
    if let Some(android) = message.get("android") {
        let android = android.as_object().ok_or_else(|| {
            Rejection::invalid("message.android", "Invalid value at 'message.android'")
        })?;
        known_fields(android, ANDROID_FIELDS, "message.android.")?;
        if let Some(priority) = android.get("priority") {
            match priority.as_str() {
                Some(text @ ("HIGH" | "NORMAL")) => {
                    accepted.android_priority = Some(text.to_owned());
                }
                _ => {
                    return Err(Rejection::invalid(
                        "message.android.priority",
                        format!(
                            "Invalid value at 'message.android.priority' \
                             (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), {priority}"
                        ),
                    ));
                }
            }
        }
        if let Some(ttl) = android.get("ttl") {
            let bad_ttl = || {
                Rejection::invalid(
                    "message.android.ttl",
                    format!(
                        "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), {ttl}"
                    ),
                )
            };
            let text = ttl.as_str().ok_or_else(bad_ttl)?;
            let seconds = parse_ttl(text).ok_or_else(bad_ttl)?;
            accepted.ttl = Some(text.to_owned());
            accepted.ttl_seconds = Some(seconds);
        }
        if let Some(collapse_key) = android.get("collapse_key") {
            let text = collapse_key.as_str().ok_or_else(|| {
                Rejection::invalid(
                    "message.android.collapse_key",
                    "Invalid value at 'message.android.collapse_key' (TYPE_STRING)",
                )
            })?;
            accepted.collapse_key = Some(text.to_owned());
        }
        if let Some(data) = android.get("data") {
            string_map(data, "message.android.data")?;
        }
    }
    Ok(accepted)
}

/// Refuses a field the proto does not have, as Google's JSON parser does.
fn known_fields(object: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), Rejection> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(Rejection::invalid(
            format!("{at}{unknown}"),
            format!(
                "Invalid JSON payload received. Unknown name \"{unknown}\" at '{at}': Cannot find field."
            ),
        )),
    }
}

/// Exactly one of `token`, `topic`, `condition`, non-empty; a token of the characters FCM
/// tokens are made of.
fn target(message: &Map<String, Value>) -> Result<Target, Rejection> {
    let present: Vec<&str> = ["token", "topic", "condition"]
        .into_iter()
        .filter(|field| message.contains_key(*field))
        .collect();
    let [field] = present.as_slice() else {
        return Err(Rejection::invalid(
            "message",
            "Exactly one of token, topic or condition must be specified.",
        ));
    };
    let value = message
        .get(*field)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            Rejection::invalid(
                format!("message.{field}"),
                format!("Invalid value at 'message.{field}' (TYPE_STRING)"),
            )
        })?;
    Ok(match *field {
        "token" => {
            let plausible = value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_:.".contains(&byte));
            if !plausible {
                // As FCM answers it: the FcmError detail and this message, no BadRequest
                // field violation (a sender must recognise the message to drop the token).
                return Err(Rejection::fcm(
                    "INVALID_ARGUMENT",
                    crate::providers::fcm::response::INVALID_TOKEN_MESSAGE,
                ));
            }
            Target::Token(value.to_owned())
        }
        "topic" => Target::Topic(value.to_owned()),
        _ => Target::Condition(value.to_owned()),
    })
}

/// A `map<string, string>`: an object whose values are all strings, with no key FCM reserves.
fn string_map(value: &Value, at: &str) -> Result<(), Rejection> {
    let map = value
        .as_object()
        .ok_or_else(|| Rejection::invalid(at, format!("Invalid value at '{at}'")))?;
    for (index, (key, value)) in map.iter().enumerate() {
        if !value.is_string() {
            return Err(Rejection::invalid(
                format!("{at}[{index}].value"),
                format!("Invalid value at '{at}[{index}].value' (TYPE_STRING), {value}"),
            ));
        }
        let reserved = ["from", "notification", "message_type"].contains(&key.as_str())
            || key.starts_with("google")
            || key.starts_with("gcm");
        if reserved {
            return Err(Rejection::invalid(
                at,
                format!("Invalid data payload key: {key}"),
            ));
        }
    }
    Ok(())
}

/// A protobuf `Duration` in JSON (`^\d+(\.\d{1,9})?s$`) within `0..=MAX_TTL_SECS`, as whole
/// seconds.
pub fn parse_ttl(text: &str) -> Option<u64> {
    let number = text.strip_suffix('s')?;
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (number, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 9) {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    let over_a_second = fraction.is_some_and(|f| f.bytes().any(|byte| byte != b'0'));
    if seconds > MAX_TTL_SECS || (seconds == MAX_TTL_SECS && over_a_second) {
        return None;
    }
    Some(seconds)
}

#[cfg(test)]
mod tests;
