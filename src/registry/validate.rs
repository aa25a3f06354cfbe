//! Turns a registration request into a `Registration`, or says precisely what is wrong.
//!
//! Pure: no I/O, no clock. The API calls [`validate_registration`] before anything reaches a
//! shard, so bad input never changes anything. Every problem is reported at once, each naming
//! its field.

use super::registration::{Environment, Platform, PushAddress};
use crate::config::tenant::{DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS};
use crate::tenant::Tenant;
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod seconds;
pub use seconds::Seconds;

/// The longest identity, in bytes.
pub const MAX_IDENTITY_LEN: usize = 128;
/// The longest device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 64;
/// The longest FCM token accepted (real ones are about 160 characters).
pub const MAX_FCM_TOKEN_LEN: usize = 1024;
/// The longest WNS channel or Web Push endpoint URI accepted.
pub const MAX_URI_LEN: usize = 2048;

/// `PUT /v1/identities/{identity}/registrations/{device_id}`: the native form (`platform`,
/// `app`, `token` or `endpoint` + `keys`) or the RFC 8599 form (`pn_provider`, `pn_prid`,
/// `pn_param`).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    /// `apns`, `fcm`, `wns` or `webpush`.
    pub platform: Option<Platform>,
    /// The tenant's app id; optional in the RFC 8599 form, where `pn_param` names the app.
    pub app: Option<String>,
    /// APNs: the PushKit (VoIP) device token as hex; FCM: the registration token; WNS: the
    /// channel URI.
    pub token: Option<String>,
    /// APNs only, optional: the app's regular device token as hex (a different token from
    /// the PushKit one). Call-ended and missed-call alerts go to it; without it they are not
    /// sent over APNs.
    pub alert_token: Option<String>,
    /// Web Push: the subscription endpoint.
    pub endpoint: Option<String>,
    /// Web Push: the subscription keys.
    pub keys: Option<WebPushKeys>,
    /// `production` (default) or `sandbox`.
    pub environment: Option<Environment>,
    /// Registration lifetime, 300..=15552000 s, default 86400; capped at the tenant's limit.
    /// A whole number (`86400.0` is `86400`).
    #[schema(value_type = Option<u64>)]
    pub ttl_seconds: Option<Seconds>,
    /// The device asks not to be woken by pushes it will not show.
    pub disable_internal_push: Option<bool>,
    /// RFC 8599 `pn-provider`: `apns`, `fcm` or `webpush`.
    pub pn_provider: Option<String>,
    /// RFC 8599 `pn-prid`: the device token (Web Push: the endpoint). APNs also takes both
    /// tokens as `<voip hex>:voip&<regular hex>:remote`.
    pub pn_prid: Option<String>,
    /// RFC 8599 `pn-param`: APNs `<TeamID>.<bundle id>.voip` (or `.voip&remote` with both
    /// tokens), FCM the project id.
    pub pn_param: Option<String>,
}

/// A Web Push subscription's keys, as a browser's `PushSubscription.toJSON()` gives them.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPushKeys {
    /// The P-256 public key, base64url (65 bytes decoded).
    pub p256dh: String,
    /// The authentication secret, base64url (16 bytes decoded).
    pub auth: String,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field (`token`, `ttl_seconds`, `identity` ...).
    pub field: String,
    /// What is wrong, in words a developer can act on.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A valid registration request, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRegistration {
    /// The tenant's app id.
    pub app: String,
    /// Where the push service delivers.
    pub address: PushAddress,
    /// The push service environment.
    pub environment: Environment,
    /// See [`RegistrationRequest::disable_internal_push`].
    pub disable_internal_push: bool,
    /// The lifetime in effect, after the tenant's cap.
    pub ttl_seconds: u64,
    /// Whether the tenant's cap shortened the requested lifetime.
    pub ttl_capped: bool,
}

impl ValidRegistration {
    /// Caps the TTL at `max_ttl_seconds`, a tenant's cap for the identity's class
    /// (`ttl_caps`); the answer then says `ttl_capped`.
    pub fn cap_ttl(&mut self, max_ttl_seconds: u64) {
        if self.ttl_seconds > max_ttl_seconds {
            self.ttl_seconds = max_ttl_seconds;
            self.ttl_capped = true;
        }
    }
}

/// Checks an identity from a URL path: 1-128 of `A-Z a-z 0-9 . _ ~ : @ + = -` (room for phone
/// numbers, SIP URIs' user parts and UUIDs; no braces, which Redis hash tags reserve).
pub fn validate_identity(identity: &str) -> Result<(), FieldError> {
    check_id(identity, MAX_IDENTITY_LEN, b"._~:@+=-").map_err(|why| {
        FieldError::new(
            "identity",
            format!("{why}: 1-{MAX_IDENTITY_LEN} of A-Z a-z 0-9 . _ ~ : @ + = -"),
        )
    })
}

/// Checks a device id from a URL path: 1-64 of `A-Z a-z 0-9 . _ ~ : -`.
pub fn validate_device_id(device_id: &str) -> Result<(), FieldError> {
    check_id(device_id, MAX_DEVICE_ID_LEN, b"._~:-").map_err(|why| {
        FieldError::new(
            "device_id",
            format!("{why}: 1-{MAX_DEVICE_ID_LEN} of A-Z a-z 0-9 . _ ~ : -"),
        )
    })
}

fn check_id(id: &str, max: usize, extra: &[u8]) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > max {
        return Err("wrong length");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    {
        return Err("invalid character");
    }
    Ok(())
}

/// Validates a registration request for `tenant`. `webpush_hosts` is the allowlist of push
/// services (`host`, `host:port` or `*.domain`).
pub fn validate_registration(
    request: &RegistrationRequest,
    tenant: &Tenant,
    webpush_hosts: &[String],
) -> Result<ValidRegistration, Vec<FieldError>> {
    let mut errors = Vec::new();
    let native = request.platform.is_some()
        || request.token.is_some()
        || request.alert_token.is_some()
        || request.endpoint.is_some();
    let rfc8599 =
        request.pn_provider.is_some() || request.pn_prid.is_some() || request.pn_param.is_some();
    let resolved = match (native, rfc8599) {
        (true, true) => Err(vec![FieldError::new(
            "pn_provider",
            "use either platform/token/endpoint or the RFC 8599 pn_* fields, not both",
        )]),
        (false, true) => resolve_rfc8599(request, tenant),
        (_, false) => resolve_native(request, tenant),
    };
    let (platform, app, token) = match resolved {
        Ok(found) => found,
        Err(mut found) => {
            errors.append(&mut found);
            (None, None, None)
        }
    };

    let address = platform.and_then(|platform| {
        match parse_address(platform, token, request, webpush_hosts) {
            Ok(address) => Some(address),
            Err(mut found) => {
                errors.append(&mut found);
                None
            }
        }
    });
    if platform.is_some_and(|p| p != Platform::Apns) && request.alert_token.is_some() {
        errors.push(FieldError::new(
            "alert_token",
            "only apns registrations carry an alert_token",
        ));
    }
    if platform.is_some_and(|p| p != Platform::Webpush) && request.keys.is_some() {
        errors.push(FieldError::new(
            "keys",
            "only webpush registrations carry keys",
        ));
    }

    let requested = match request.ttl_seconds.as_ref().map(Seconds::whole) {
        None => DEFAULT_TTL_SECONDS,
        Some(Ok(seconds)) => seconds,
        Some(Err(message)) => {
            errors.push(FieldError::new("ttl_seconds", message));
            DEFAULT_TTL_SECONDS
        }
    };
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&requested) {
        errors.push(FieldError::new(
            "ttl_seconds",
            format!(
                "must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS} seconds (got {requested})"
            ),
        ));
    }
    let ttl_seconds = requested.min(tenant.max_ttl_seconds);

    match (errors.is_empty(), app, address) {
        (true, Some(app), Some(address)) => Ok(ValidRegistration {
            app,
            address,
            environment: request.environment.unwrap_or_default(),
            disable_internal_push: request.disable_internal_push.unwrap_or(false),
            ttl_seconds,
            ttl_capped: ttl_seconds < requested,
        }),
        _ => Err(errors),
    }
}

type Resolved<'a> = (Option<Platform>, Option<String>, Option<&'a str>);

/// The native form: `platform` and `app` given, `app` must be the tenant's and of that platform.
fn resolve_native<'a>(
    request: &'a RegistrationRequest,
    tenant: &Tenant,
) -> Result<Resolved<'a>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(platform) = request.platform else {
        return Err(vec![FieldError::new(
            "platform",
            "required: apns, fcm, wns or webpush",
        )]);
    };
    let app = match request.app.as_deref() {
        None => {
            errors.push(FieldError::new(
                "app",
                "required: one of the tenant's app ids",
            ));
            None
        }
        Some(app) => match tenant.apps.get(app) {
            None => {
                errors.push(FieldError::new(
                    "app",
                    format!("the tenant has no app {app:?}"),
                ));
                None
            }
            Some(config) if config.platform() != platform => {
                errors.push(FieldError::new(
                    "app",
                    format!("app {app:?} is a {} app, not {platform}", config.platform()),
                ));
                None
            }
            Some(_) => Some(app.to_owned()),
        },
    };
    if errors.is_empty() {
        Ok((Some(platform), app, request.token.as_deref()))
    } else {
        Err(errors)
    }
}

/// The RFC 8599 form: the provider and `pn_param` select the tenant's app.
fn resolve_rfc8599<'a>(
    request: &'a RegistrationRequest,
    tenant: &Tenant,
) -> Result<Resolved<'a>, Vec<FieldError>> {
    let platform = match request.pn_provider.as_deref() {
        Some("apns") => Platform::Apns,
        Some("fcm") => Platform::Fcm,
        Some("webpush") => Platform::Webpush,
        Some(other) => {
            return Err(vec![FieldError::new(
                "pn_provider",
                format!("{other:?} is not apns, fcm or webpush"),
            )]);
        }
        None => {
            return Err(vec![FieldError::new(
                "pn_provider",
                "required with pn_prid",
            )]);
        }
    };
    let Some(prid) = request.pn_prid.as_deref() else {
        return Err(vec![FieldError::new(
            "pn_prid",
            "required with pn_provider",
        )]);
    };
    let param = request.pn_param.as_deref();
    let matches = |config: &crate::config::AppConfig| -> bool {
        config.platform() == platform
            && match (platform, param) {
                (Platform::Apns, Some(param)) => {
                    // `<TeamID>.<bundle>.voip`, `<TeamID>.<bundle>` (RFC 8599 section 9) or,
                    // with both tokens, `<TeamID>.<bundle>.voip&remote`.
                    let rest = param.split_once('.').map(|(team, rest)| {
                        let bundle = [".voip&remote", ".remote&voip", ".voip"]
                            .iter()
                            .find_map(|suffix| rest.strip_suffix(suffix))
                            .unwrap_or(rest);
                        (team, bundle)
                    });
                    let apns = config.as_apns();
                    rest.is_some_and(|(team, bundle)| {
                        apns.is_some_and(|apns| {
                            apns.bundle_id.as_deref() == Some(bundle)
                                && apns.team_id.as_deref().is_none_or(|t| t == team)
                        })
                    })
                }
                (Platform::Fcm, Some(param)) => config
                    .as_fcm()
                    .is_some_and(|fcm| fcm.project_id.as_deref() == Some(param)),
                (_, _) => true,
            }
    };
    let candidates: Vec<&String> = tenant
        .apps
        .iter()
        .filter(|(_, c)| matches(c))
        .map(|(id, _)| id)
        .collect();
    let app = match (request.app.as_deref(), candidates.as_slice()) {
        (Some(app), _) if candidates.iter().any(|c| c.as_str() == app) => app.to_owned(),
        (Some(app), _) => {
            return Err(vec![FieldError::new(
                "app",
                format!("app {app:?} does not match pn_provider/pn_param"),
            )]);
        }
        (None, [only]) => (*only).clone(),
        (None, []) => {
            return Err(vec![FieldError::new(
                "pn_param",
                "no app of the tenant matches pn_provider and pn_param",
            )]);
        }
        (None, _) => {
            return Err(vec![FieldError::new(
                "app",
                "several apps match pn_param: name one with app",
            )]);
        }
    };
    Ok((Some(platform), Some(app), Some(prid)))
}

fn parse_address(
    platform: Platform,
    token: Option<&str>,
    request: &RegistrationRequest,
    webpush_hosts: &[String],
) -> Result<PushAddress, Vec<FieldError>> {
    let one = |field: &str, message: String| vec![FieldError::new(field, message)];
    match platform {
        // The native form names a subscription by `endpoint` (as `PushSubscription.toJSON()`
        // does); only the RFC 8599 form carries it in `pn_prid` (here `token`).
        Platform::Webpush if request.pn_prid.is_none() && request.token.is_some() => Err(one(
            "token",
            "webpush registrations carry endpoint and keys, not a token".into(),
        )),
        Platform::Webpush => {
            let endpoint = request
                .endpoint
                .as_deref()
                .or(token)
                .ok_or_else(|| one("endpoint", "required for webpush".into()))?;
            let mut errors = Vec::new();
            if let Err(message) = check_push_uri(endpoint, |host, port| {
                host_allowed(host, port, webpush_hosts)
            }) {
                errors.push(FieldError::new(
                    "endpoint",
                    format!(
                        "{message}; allowed push services: {}",
                        webpush_hosts.join(", ")
                    ),
                ));
            }
            let keys = request.keys.as_ref();
            if keys.is_none() {
                errors.push(FieldError::new(
                    "keys",
                    "required for webpush: {\"p256dh\", \"auth\"}",
                ));
            }
            let p256dh = keys.and_then(|k| match decode_key::<65>(&k.p256dh) {
                Some(key) if key[0] == 4 => Some(key),
                _ => {
                    errors.push(FieldError::new(
                        "keys.p256dh",
                        "must be a base64url uncompressed P-256 point (65 bytes)",
                    ));
                    None
                }
            });
            let auth = keys.and_then(|k| {
                decode_key::<16>(&k.auth).or_else(|| {
                    errors.push(FieldError::new(
                        "keys.auth",
                        "must be a base64url 16-byte secret",
                    ));
                    None
                })
            });
            match (errors.is_empty(), p256dh, auth) {
                (true, Some(p256dh), Some(auth)) => Ok(PushAddress::WebPush {
                    endpoint: endpoint.to_owned(),
                    p256dh,
                    auth,
                }),
                _ => Err(errors),
            }
        }
        _ if request.endpoint.is_some() => Err(one(
            "endpoint",
            format!("{platform} registrations carry a token, not an endpoint"),
        )),
        Platform::Apns => {
            let token = token
                .ok_or_else(|| one("token", "required: the APNs device token as hex".into()))?;
            let (field, voip, alert) = if request.pn_prid.is_some() {
                let (voip, alert) = split_rfc8599_apns(token).map_err(|why| one("pn_prid", why))?;
                ("pn_prid", voip, alert)
            } else {
                ("token", token, request.alert_token.as_deref())
            };
            let mut errors = Vec::new();
            let voip = apns_token(voip)
                .map_err(|why| errors.push(FieldError::new(field, why)))
                .ok();
            let alert_field = if field == "token" {
                "alert_token"
            } else {
                field
            };
            let alert = alert
                .map(apns_token)
                .transpose()
                .map_err(|why| errors.push(FieldError::new(alert_field, why)))
                .ok()
                .flatten();
            if voip.is_some() && voip == alert {
                errors.push(FieldError::new(
                    alert_field,
                    "the regular (alert) token must differ from the PushKit (VoIP) token: \
                     they are two different tokens of the app",
                ));
            }
            match (errors.is_empty(), voip) {
                (true, Some(token)) => Ok(PushAddress::Apns {
                    token,
                    alert_token: alert,
                }),
                _ => Err(errors),
            }
        }
        Platform::Fcm => {
            let token =
                token.ok_or_else(|| one("token", "required: the FCM registration token".into()))?;
            if token.is_empty() || token.len() > MAX_FCM_TOKEN_LEN {
                return Err(one(
                    "token",
                    format!("an FCM token is 1-{MAX_FCM_TOKEN_LEN} characters"),
                ));
            }
            if !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:.+/=".contains(&b))
            {
                return Err(one(
                    "token",
                    "an FCM token holds only A-Z a-z 0-9 _ - : . + / =".into(),
                ));
            }
            Ok(PushAddress::Fcm {
                token: token.to_owned(),
            })
        }
        Platform::Wns => {
            let channel =
                token.ok_or_else(|| one("token", "required: the WNS channel URI".into()))?;
            check_push_uri(channel, |host, port| {
                host.ends_with(".notify.windows.com") && port.is_none()
            })
            .map_err(|message| {
                one(
                    "token",
                    format!("{message}; a WNS channel is https://*.notify.windows.com/..."),
                )
            })?;
            Ok(PushAddress::Wns {
                channel: channel.to_owned(),
            })
        }
    }
}

/// An APNs device token from hex: 64-200 hex digits (32-100 bytes), the same rule for the
/// PushKit and the regular token.
fn apns_token(hex_token: &str) -> Result<Vec<u8>, String> {
    if !(64..=200).contains(&hex_token.len())
        || !hex_token.len().is_multiple_of(2)
        || !hex_token.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err("an APNs device token is 64-200 hex digits (32-100 bytes)".into());
    }
    hex::decode(hex_token).map_err(|_| "not hex".into())
}

/// An RFC 8599 APNs `pn-prid`: a bare token (the PushKit one, as before), or
/// `<token>:<type>` parts joined by `&` with the types `voip` and `remote` (the app's regular
/// token), each at most once, as SIP clients send both tokens
/// (`<voip>:voip&<regular>:remote`). Returns (PushKit token, regular token).
fn split_rfc8599_apns(prid: &str) -> Result<(&str, Option<&str>), String> {
    if !prid.contains([':', '&']) {
        return Ok((prid, None));
    }
    let (mut voip, mut remote) = (None, None);
    for part in prid.split('&') {
        let (token, kind) = part.split_once(':').ok_or_else(|| {
            format!("each part of an APNs pn_prid is <hex token>:voip or <hex token>:remote, not {part:?}")
        })?;
        let slot = match kind {
            "voip" => &mut voip,
            "remote" => &mut remote,
            other => {
                return Err(format!("unknown APNs token type {other:?}: voip or remote"));
            }
        };
        if slot.replace(token).is_some() {
            return Err(format!("the {kind} token is given twice"));
        }
    }
    let voip = voip.ok_or_else(|| {
        "a voip (PushKit) token is required: ringcast rings over PushKit".to_owned()
    })?;
    Ok((voip, remote))
}

/// Checks a client-supplied push URI: absolute `https`, no user info, a host the caller
/// accepts. A first line of defence against SSRF; the providers check the resolved address
/// again before connecting.
fn check_push_uri(uri: &str, host_ok: impl Fn(&str, Option<u16>) -> bool) -> Result<(), String> {
    if uri.len() > MAX_URI_LEN {
        return Err(format!("longer than {MAX_URI_LEN} characters"));
    }
    let parsed: http::Uri = uri.parse().map_err(|_| "not a valid URI".to_owned())?;
    if parsed.scheme_str() != Some("https") {
        return Err("must be an https:// URI".into());
    }
    let authority = parsed.authority().ok_or_else(|| "has no host".to_owned())?;
    if authority.as_str().contains('@') {
        return Err("must not carry user information".into());
    }
    let host = authority.host().to_ascii_lowercase();
    if !host_ok(&host, authority.port_u16()) {
        return Err(format!("host {host} is not an allowed push service"));
    }
    Ok(())
}

/// Whether `host` (and `port`, when the URI names one) is on the allowlist.
pub fn host_allowed(host: &str, port: Option<u16>, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| {
        let (pattern, entry_port) = match entry.rsplit_once(':') {
            Some((pattern, port)) => (pattern, port.parse::<u16>().ok()),
            None => (entry.as_str(), None),
        };
        let port_ok = port.is_none_or(|p| p == 443 || Some(p) == entry_port);
        let host_ok = match pattern.strip_prefix("*.") {
            Some(domain) => {
                host.len() > domain.len() + 1
                    && host.ends_with(domain)
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
            None => host.eq_ignore_ascii_case(pattern),
        };
        host_ok && port_ok
    })
}

/// Decodes a base64url key (browsers send it unpadded; padded is accepted too).
fn decode_key<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests;
