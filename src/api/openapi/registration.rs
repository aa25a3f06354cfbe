//! The registration body's schema, exact: one `oneOf` branch per form the node takes
//! (src/registry/validate.rs), so that every body the schema allows is registered and every
//! body the node registers is one the schema allows.
//!
//! - The native form, one branch per platform: `platform`, `app` (one of that platform's
//!   apps), and `token` (APNs: with an optional `alert_token`), or `endpoint` + `keys` for Web
//!   Push.
//! - The RFC 8599 form (`pn_provider`, `pn_prid`, `pn_param`) for APNs (a bare PushKit token,
//!   or both tokens as `<voip>:voip&<regular>:remote`), FCM and Web Push: one branch per app,
//!   since `pn_param` names the app (APNs `<TeamID>.<bundle id>[.voip|.voip&remote]`, FCM the
//!   project id) and `app` may then be left out.
//!
//! Which apps exist and which push services a subscription may point at are configuration, so
//! the schema is built from the node's tenants and `[webpush]` settings. The description lists
//! every tenant's apps: a caller may name only its own tenant's (another's is refused with
//! `422`), which no schema can say without knowing the caller. Each optional field also takes
//! `null`, which the node reads as absent; a field of another form may only be absent or `null`.
//!
//! Two rules stay outside JSON Schema, which cannot compare two values: an APNs regular token
//! must differ from the PushKit token (`422`), and a Web Push endpoint whose name resolves to a
//! private address is refused (`422`; the SSRF guard) — an IP literal the guard refuses is
//! already left out of the endpoint pattern.

use crate::config::AppConfig;
use crate::config::tenant::{MAX_TTL_SECONDS, MIN_TTL_SECONDS};
use crate::providers::pool::guard::AddressGuard;
use crate::registry::validate::{MAX_FCM_TOKEN_LEN, MAX_URI_LEN};
use crate::vocab::Platform;
use serde_json::{Map, Value, json};
use std::net::{IpAddr, SocketAddr};

/// What the registration forms depend on: the apps a caller may name, and where a Web Push
/// subscription may point.
pub struct Registrable<'a> {
    /// Every tenant's apps, by app id.
    pub apps: Vec<(&'a str, &'a AppConfig)>,
    /// `[webpush] allowed_hosts`.
    pub webpush_hosts: &'a [String],
    /// The SSRF guard (`[webpush] allowed_private_addresses`).
    pub guard: &'a AddressGuard,
}

/// Every field of the request body: a branch lists each, so that the fields of other forms are
/// held to "absent or null".
const FIELDS: [&str; 12] = [
    "platform",
    "app",
    "token",
    "alert_token",
    "endpoint",
    "keys",
    "environment",
    "ttl_seconds",
    "disable_internal_push",
    "pn_provider",
    "pn_prid",
    "pn_param",
];

/// An APNs device token: 32-100 bytes as hex.
pub const APNS_TOKEN: &str = "(?:[0-9A-Fa-f]{2}){32,100}";

/// An FCM registration token (src/registry/validate.rs).
pub fn fcm_token() -> String {
    format!("^[A-Za-z0-9_:.+/=-]{{1,{MAX_FCM_TOKEN_LEN}}}$")
}

/// A WNS channel URI: `https://<host>.notify.windows.com`, no port, an optional path.
pub fn wns_channel() -> String {
    format!(
        "^https://[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*{}{PATH}$",
        insensitive(".notify.windows.com")
    )
}

/// An RFC 8599 APNs `pn-prid`: the PushKit token alone or tagged `:voip`, or both tokens.
pub fn apns_prid() -> String {
    let t = APNS_TOKEN;
    format!("^(?:{t}|{t}:voip|{t}:voip&{t}:remote|{t}:remote&{t}:voip)$")
}

/// A path and query `http::Uri` takes: unreserved and sub-delimiter characters, `:`, `@`, `/`
/// and percent-escapes.
const PATH: &str = "(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?";

/// `p256dh`: base64url of an uncompressed P-256 point (65 bytes, the first 0x04), unpadded or
/// padded; the last character's unused bits are zero, as the decoder demands.
pub const P256DH: &str = "^B[A-P][A-Za-z0-9_-]{84}[AEIMQUYcgkosw048]=?$";
/// `auth`: base64url of 16 bytes, unpadded or padded.
pub const AUTH: &str = "^[A-Za-z0-9_-]{21}[AQgw](?:==)?$";

/// A Web Push endpoint on one of the allowed push services (`host`, `host:port`, `*.domain`),
/// at a port the allowlist and, for an IP literal, the SSRF guard let through.
pub fn webpush_endpoint(hosts: &[String], guard: &AddressGuard) -> String {
    let mut authorities = Vec::new();
    for entry in hosts {
        // The same reading as `host_allowed`: the text after the last `:` is a port when it
        // parses as one.
        let (pattern, entry_port) = match entry.rsplit_once(':') {
            Some((pattern, port)) => (pattern, port.parse::<u16>().ok()),
            None => (entry.as_str(), None),
        };
        let host = match pattern.strip_prefix("*.") {
            Some(domain) => format!(
                "[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*{}",
                insensitive(&format!(".{domain}"))
            ),
            None => insensitive(pattern),
        };
        let bare = pattern.trim_start_matches('[').trim_end_matches(']');
        let literal = bare.parse::<IpAddr>().ok();
        // No port means 443; 443 and the entry's own port are allowed explicitly.
        let mut ports: Vec<(Option<u16>, u16)> = vec![(None, 443), (Some(443), 443)];
        if let Some(port) = entry_port.filter(|port| *port != 443) {
            ports.push((Some(port), port));
        }
        for (written, effective) in ports {
            if let Some(ip) = literal
                && guard.vet(pattern, SocketAddr::new(ip, effective)).is_err()
            {
                continue;
            }
            authorities.push(match written {
                None => host.clone(),
                Some(port) => format!("{host}:{port}"),
            });
        }
    }
    if authorities.is_empty() {
        // No push service allowed: no endpoint matches.
        return "^(?!)$".into();
    }
    format!("^https://(?:{}){PATH}$", authorities.join("|"))
}

/// An endpoint [`webpush_endpoint`] matches, for the description's example: on the first
/// allowed service the guard lets through at its written port.
pub fn webpush_example(hosts: &[String], guard: &AddressGuard) -> Option<String> {
    hosts.iter().find_map(|entry| {
        let (pattern, port) = match entry.rsplit_once(':') {
            Some((pattern, port)) => (pattern, port.parse::<u16>().ok()),
            None => (entry.as_str(), None),
        };
        let host = match pattern.strip_prefix("*.") {
            Some(domain) => format!("push.{domain}"),
            None => pattern.to_owned(),
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let allowed = bare.parse::<IpAddr>().map_or(true, |ip| {
            guard
                .vet(&host, SocketAddr::new(ip, port.unwrap_or(443)))
                .is_ok()
        });
        allowed.then(|| match port {
            Some(port) => format!("https://{host}:{port}/push/example"),
            None => format!("https://{host}/push/example"),
        })
    })
}

/// `text` as a pattern matching it in any ASCII case.
fn insensitive(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                escape_char(c)
            }
        })
        .collect()
}

/// A literal as a pattern.
fn escape(text: &str) -> String {
    text.chars().map(escape_char).collect()
}

/// One character as a pattern: only the syntax characters escaped, which both ECMA-262 (what
/// JSON Schema says) and Python (what schemathesis runs) read alike.
fn escape_char(c: char) -> String {
    if "\\^$.|?*+()[]{}/".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// The schema of `PUT /v1/identities/{identity}/registrations/{device_id}`'s body.
pub fn request_schema(registrable: &Registrable) -> Value {
    let mut apps: Vec<(&str, &AppConfig)> = registrable.apps.clone();
    apps.sort_by(|a, b| a.0.cmp(b.0));
    // The same app in two tenants, configured alike, is one app to the schema.
    apps.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let endpoint = string(&webpush_endpoint(
        registrable.webpush_hosts,
        registrable.guard,
    ));
    let example_endpoint = webpush_example(registrable.webpush_hosts, registrable.guard);
    let mut branches: Vec<Value> = Vec::new();
    for platform in [
        Platform::Apns,
        Platform::Fcm,
        Platform::Wns,
        Platform::Webpush,
    ] {
        let ids: Vec<&str> = apps
            .iter()
            .filter(|(_, app)| app.platform() == platform)
            .map(|(id, _)| *id)
            .collect();
        if !ids.is_empty() {
            let mut branch = native(platform, &ids, &endpoint);
            if let Some(example) = example(platform, ids[0], example_endpoint.as_deref()) {
                branch["examples"] = json!([example]);
            }
            branches.push(branch);
        }
    }
    for (id, app) in &apps {
        let rivals: Vec<&AppConfig> = apps
            .iter()
            .filter(|(other, config)| other != id && config.platform() == app.platform())
            .map(|(_, config)| *config)
            .collect();
        branches.extend(rfc8599(id, app, &rivals, &endpoint));
    }
    branches.dedup();
    json!({
        "description": "A registration in the native form (platform, app, token; Web Push: endpoint and keys) or the RFC 8599 form (pn_provider, pn_prid, pn_param). `app` is one of the caller's tenant's app ids (the lists name every tenant's apps; another tenant's is refused).",
        "oneOf": branches,
    })
}

/// A body of the native form for `platform` naming `app` (the examples phase of a test
/// tool, and readers, start from it); `None` for Web Push without a usable endpoint.
fn example(platform: Platform, app: &str, endpoint: Option<&str>) -> Option<Value> {
    Some(match platform {
        Platform::Apns => json!({"platform": "apns", "app": app,
            "token": "5fa1c0de".repeat(8)}),
        Platform::Fcm => json!({"platform": "fcm", "app": app,
            "token": "dGVzdC1kZXZpY2U:APA91bExampleToken"}),
        Platform::Wns => json!({"platform": "wns", "app": app,
            "token": "https://db5p.notify.windows.com/?token=AwYAAAB-example"}),
        Platform::Webpush => json!({"platform": "webpush", "app": app, "endpoint": endpoint?,
            "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                "auth": "tBHItJI5svbpez7KI4CCXg"}}),
    })
}

/// The Web Push subscription keys.
pub fn keys_schema() -> Value {
    json!({
        "type": "object",
        "description": "A Web Push subscription's keys, as `PushSubscription.toJSON()` gives them.",
        "properties": {
            "p256dh": {"type": "string", "pattern": P256DH,
                "description": "The P-256 public key, base64url (65 bytes, uncompressed)."},
            "auth": {"type": "string", "pattern": AUTH,
                "description": "The authentication secret, base64url (16 bytes)."},
        },
        "required": ["p256dh", "auth"],
        "additionalProperties": false,
    })
}

/// A string matching `pattern`.
fn string(pattern: &str) -> Value {
    json!({"type": "string", "pattern": pattern})
}

/// `schema` or `null`.
fn nullable(mut schema: Value) -> Value {
    let Some(object) = schema.as_object_mut() else {
        return schema;
    };
    if let Some(kind) = object.get("type").and_then(Value::as_str) {
        object.insert("type".into(), json!([kind, "null"]));
    }
    if let Some(only) = object.remove("const") {
        object.insert("enum".into(), json!([only]));
    }
    if let Some(values) = object.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    schema
}

/// A branch: `required` and `optional` fields with their schemas, every other field absent or
/// `null`; the fields every form shares are added.
fn branch(title: String, required: Vec<(&str, Value)>, optional: Vec<(&str, Value)>) -> Value {
    let mut properties = Map::new();
    let names: Vec<&str> = required.iter().map(|(name, _)| *name).collect();
    for (name, schema) in required {
        properties.insert(name.into(), schema);
    }
    for (name, schema) in optional {
        properties.insert(name.into(), nullable(schema));
    }
    properties.insert(
        "environment".into(),
        json!({"enum": ["production", "sandbox", null],
            "description": "The push service environment (default production)."}),
    );
    properties.insert(
        "ttl_seconds".into(),
        json!({"type": ["integer", "null"], "minimum": MIN_TTL_SECONDS, "maximum": MAX_TTL_SECONDS,
            "description": "Registration lifetime in whole seconds (default 86400), capped at the tenant's limit."}),
    );
    properties.insert(
        "disable_internal_push".into(),
        json!({"type": ["boolean", "null"],
            "description": "The device asks not to be woken by pushes it will not show."}),
    );
    for field in FIELDS {
        properties
            .entry(field)
            .or_insert_with(|| json!({"type": "null"}));
    }
    json!({
        "title": title,
        "type": "object",
        "properties": properties,
        "required": names,
        "additionalProperties": false,
    })
}

/// The native form for `platform`, naming one of `apps`.
fn native(platform: Platform, apps: &[&str], endpoint: &Value) -> Value {
    let mut required = vec![
        ("platform", json!({"const": platform.to_string()})),
        ("app", json!({"type": "string", "enum": apps})),
    ];
    let mut optional = Vec::new();
    match platform {
        Platform::Apns => {
            let token = string(&format!("^{APNS_TOKEN}$"));
            required.push(("token", token.clone()));
            optional.push(("alert_token", token));
        }
        Platform::Fcm => required.push(("token", string(&fcm_token()))),
        Platform::Wns => required.push((
            "token",
            json!({"type": "string", "maxLength": MAX_URI_LEN, "pattern": wns_channel()}),
        )),
        Platform::Webpush => {
            required.push(("endpoint", with_max_uri(endpoint)));
            required.push(("keys", json!({"$ref": "#/components/schemas/WebPushKeys"})));
        }
    }
    branch(format!("{platform}"), required, optional)
}

fn with_max_uri(endpoint: &Value) -> Value {
    let mut endpoint = endpoint.clone();
    endpoint["maxLength"] = json!(MAX_URI_LEN);
    endpoint
}

/// The RFC 8599 branches naming `app` (`id`); `rivals` are the other apps of its platform.
fn rfc8599(id: &str, app: &AppConfig, rivals: &[&AppConfig], endpoint: &Value) -> Vec<Value> {
    let (provider, prid, param, unique) = match app {
        AppConfig::Apns(apns) => {
            let param = match &apns.bundle_id {
                Some(bundle) => {
                    let team = apns.team_id.as_deref().map_or("[^.]*".into(), escape);
                    string(&format!(
                        "^{team}\\.{}(?:\\.voip|\\.voip&remote|\\.remote&voip)?$",
                        escape(bundle)
                    ))
                }
                None => json!({"type": "null"}),
            };
            let bundle = |app: &AppConfig| app.as_apns().and_then(|a| a.bundle_id.clone());
            let unique = apns.bundle_id.is_some()
                && rivals.iter().all(|rival| bundle(rival) != apns.bundle_id);
            ("apns", string(&apns_prid()), param, unique)
        }
        AppConfig::Fcm(fcm) => {
            let param = match &fcm.project_id {
                Some(project) => json!({"type": "string", "const": project}),
                None => json!({"type": "null"}),
            };
            let project = |app: &AppConfig| app.as_fcm().and_then(|a| a.project_id.clone());
            let unique = fcm.project_id.is_some()
                && rivals.iter().all(|rival| project(rival) != fcm.project_id);
            ("fcm", string(&fcm_token()), param, unique)
        }
        // `pn_param` does not pick a Web Push app: any text, and only a lone app goes unnamed.
        AppConfig::Webpush(_) => (
            "webpush",
            with_max_uri(endpoint),
            json!({"type": "string"}),
            false,
        ),
        AppConfig::Wns(_) => return Vec::new(),
    };
    let mut required = vec![
        ("pn_provider", json!({"const": provider})),
        ("pn_prid", prid),
    ];
    if app.platform() == Platform::Webpush {
        required.push(("keys", json!({"$ref": "#/components/schemas/WebPushKeys"})));
    }
    let title = format!("{provider} (RFC 8599), app {id}");
    if rivals.is_empty() {
        // The only app of its platform: `app` and `pn_param` may both be left out.
        let mut optional = vec![("app", json!({"type": "string", "const": id}))];
        if param.get("type") != Some(&json!("null")) {
            optional.push(("pn_param", param));
        }
        return vec![branch(title, required, optional)];
    }
    let mut named = required.clone();
    named.push(("app", json!({"type": "string", "const": id})));
    let mut optional = Vec::new();
    if param.get("type") != Some(&json!("null")) {
        optional.push(("pn_param", param.clone()));
    }
    let mut branches = vec![branch(format!("{title} named"), named, optional)];
    if unique {
        // `pn_param` alone picks this app.
        let mut by_param = required;
        by_param.push(("pn_param", param));
        branches.push(branch(format!("{title} by pn_param"), by_param, Vec::new()));
    }
    branches
}

#[cfg(test)]
mod tests;
