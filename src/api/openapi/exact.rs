//! Makes the generated description exact where annotations on each handler cannot: answers
//! that every operation can give because of the layers in front of it, and the precise shape
//! of each error.
//!
//! - Every operation can answer `431` (a request head over `[server] max_header_bytes`,
//!   [`crate::api::connection`]); a request over its connection's stream limit gets `503`.
//! - Every `/v1` operation can answer `401` (credential, [`crate::api::auth`]), `429` (the
//!   tenant's rate, [`crate::api::limits`]) and `503` (the node's intake,
//!   [`crate::api::intake`]); an identity in the path is checked (`422`); a JSON body can be
//!   malformed (`400`), too large (`413`) or of another media type (`415`); a query can be
//!   malformed (`400`).
//! - Each error status has one problem `type` (src/api/problem.rs; `401` two: `unauthorized`
//!   and `token-revoked`), so each error response's schema pins `type` and `status`; `429` and `503` carry `Retry-After`, `401`
//!   `WWW-Authenticate`.
//! - Path parameters and the call bodies' fields carry the patterns, lengths and ranges the
//!   handlers check.

use crate::registry::validate::{MAX_DEVICE_ID_LEN, MAX_IDENTITY_LEN};
use serde_json::{Map, Value, json};

/// The problem `type` each error status answers with, and what it means.
const PROBLEMS: [(&str, &[&str], &str); 12] = [
    (
        "400",
        &["malformed-body"],
        "Malformed JSON, an unknown field, or a malformed query",
    ),
    (
        "401",
        &["unauthorized", "token-revoked"],
        "Missing or invalid credential (or a revoked identity's old token)",
    ),
    ("403", &["forbidden"], "The credential may not do this"),
    (
        "404",
        &["not-found"],
        "No such resource within the caller's tenant",
    ),
    (
        "409",
        &["too-many-devices"],
        "The identity has as many devices as allowed",
    ),
    (
        "413",
        &["body-too-large"],
        "The body is larger than the node takes",
    ),
    (
        "415",
        &["unsupported-media-type"],
        "The body is not application/json",
    ),
    (
        "431",
        &["headers-too-large"],
        "The request head is larger than the node takes (`[server] max_header_bytes`)",
    ),
    (
        "422",
        &["invalid-fields"],
        "Invalid fields; `errors` names each",
    ),
    (
        "429",
        &["rate-limited"],
        "The tenant is over its rate; retry after Retry-After",
    ),
    (
        "503",
        &["unavailable"],
        "The node or its store cannot serve now; retry after Retry-After",
    ),
    (
        "500",
        &["internal"],
        "A bug; details are in the server log only",
    ),
];

/// Adds what every operation can answer, pins each error's problem type, and constrains the
/// path parameters and the call bodies.
pub fn complete(description: &mut Value) {
    constrain_call_bodies(description);
    let Some(paths) = description.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            // The connection limits (src/api/connection.rs) check every request's head.
            let mut statuses: Vec<&str> = vec!["431"];
            if path.starts_with("/v1/") {
                statuses.extend(["401", "429", "503"]);
                if path.contains("{identity}") {
                    statuses.push("422");
                }
                if operation.contains_key("requestBody") {
                    statuses.extend(["400", "413", "415", "422"]);
                }
                if method == "post" {
                    // `?wait=` that is not a boolean.
                    statuses.push("400");
                }
            }
            complete_operation(operation, &statuses);
            constrain_parameters(operation);
        }
    }
}

pub(crate) fn complete_operation(operation: &mut Map<String, Value>, statuses: &[&str]) {
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for status in statuses {
        if !responses.contains_key(*status) {
            let description = PROBLEMS
                .iter()
                .find(|(code, _, _)| code == status)
                .map_or("Error", |(_, _, description)| *description);
            responses.insert((*status).to_owned(), json!({"description": description}));
        }
    }
    for (status, response) in responses.iter_mut() {
        let Some((_, problems, _)) = PROBLEMS.iter().find(|(code, _, _)| code == status) else {
            continue;
        };
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let code: u16 = status.parse().unwrap_or_default();
        response.insert(
            "content".into(),
            json!({"application/problem+json": {"schema": {
                "allOf": [
                    {"$ref": "#/components/schemas/Problem"},
                    {"type": "object", "properties": {
                        "type": {"enum": problems
                            .iter()
                            .map(|problem| format!("urn:ringcast:problem:{problem}"))
                            .collect::<Vec<_>>()},
                        "status": {"const": code},
                    }},
                ],
            }}}),
        );
        let header = match code {
            429 | 503 => Some((
                "Retry-After",
                json!({"description": "Whole seconds to wait before retrying",
                    "required": true, "schema": {"type": "integer", "minimum": 1}}),
            )),
            401 => Some((
                "WWW-Authenticate",
                json!({"description": "The scheme to authenticate with",
                    "required": true, "schema": {"type": "string", "const": "Bearer"}}),
            )),
            _ => None,
        };
        if let Some((name, header)) = header {
            response.insert("headers".into(), json!({ name: header }));
        }
    }
}

/// An identity, as `validate_identity` takes it.
fn identity() -> Value {
    json!({"minLength": 1, "maxLength": MAX_IDENTITY_LEN, "pattern": "^[A-Za-z0-9._~:@+=-]+$"})
}

/// A call or event id in a body: 1-128 visible ASCII characters (src/api/calls.rs).
fn call_id() -> Value {
    json!({"minLength": 1, "maxLength": crate::api::calls::MAX_CALL_ID_LEN,
        "pattern": "^[!-~]+$"})
}

/// The fields' constraints of the call bodies, merged into their generated schemas.
fn constrain_call_bodies(description: &mut Value) {
    let caller = |min: usize| {
        json!({"minLength": min, "maxLength": crate::api::calls::MAX_CALLER_LEN,
            "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"})
    };
    let device = json!({"minLength": 1, "maxLength": MAX_DEVICE_ID_LEN,
        "pattern": "^[A-Za-z0-9._~:-]+$"});
    let ring_timeout = json!({"minimum": 1,
        "maximum": crate::config::tenant::MAX_RING_TIMEOUT_SECONDS});
    let fields = [
        ("CallRequest", "call_id", call_id()),
        ("CallRequest", "callee", identity()),
        ("CallRequest", "event_id", call_id()),
        ("CallRequest", "ring_timeout_seconds", ring_timeout),
        ("CallerBody", "id", caller(1)),
        ("CallerBody", "display_name", caller(0)),
        ("EndRequest", "callee", identity()),
        ("EndRequest", "device_id", device),
        ("EndRequest", "event_id", call_id()),
    ];
    let schemas = &mut description["components"]["schemas"];
    // Examples: what a reader copies first, and where a test tool's examples phase starts.
    schemas["CallRequest"]["examples"] = json!([{"call_id": "call-7f3a", "callee": "alice",
        "caller": {"id": "+15551234567", "display_name": "Bob"}, "video": false}]);
    schemas["EndRequest"]["examples"] = json!([{"callee": "alice", "reason": "cancelled"}]);
    for (schema, field, constraints) in fields {
        let Some(property) = schemas[schema]["properties"][field].as_object_mut() else {
            continue;
        };
        if let Some(constraints) = constraints.as_object() {
            property.extend(constraints.clone());
        }
    }
}

/// The patterns the handlers check path parameters against (src/registry/validate.rs,
/// src/api/calls.rs).
fn constrain_parameters(operation: &mut Map<String, Value>) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters {
        let schema = match parameter["name"].as_str() {
            Some("identity") => {
                let mut schema = identity();
                schema["type"] = json!("string");
                schema
            }
            Some("device_id") => json!({"type": "string", "minLength": 1,
                "maxLength": MAX_DEVICE_ID_LEN, "pattern": "^[A-Za-z0-9._~:-]+$"}),
            // The same check as in the body (schemathesis: a stricter pattern here made it
            // expect refusals the node does not give); clients percent-encode what a path
            // segment cannot hold.
            Some("call_id") => {
                let mut schema = call_id();
                schema["type"] = json!("string");
                schema
            }
            _ => continue,
        };
        parameter["schema"] = schema;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_operation_lists_the_answers_of_the_layers_in_front_of_it() {
        let description = crate::api::openapi::without_apps();
        for (path, item) in description["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                if path.starts_with("/v1/") {
                    for status in ["401", "429", "503"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
                if operation.get("requestBody").is_some() {
                    for status in ["400", "413", "415", "422"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let pinned = &response["content"]["application/problem+json"]["schema"]["allOf"]
                            [1]["properties"]["type"]["enum"];
                        assert!(pinned.is_array(), "{method} {path} {status}: {response}");
                    }
                }
            }
        }
        let problem_types = |status: &str| {
            description["paths"]["/v1/calls"]["post"]["responses"][status]["content"]
                ["application/problem+json"]["schema"]["allOf"][1]["properties"]["type"]["enum"]
                .clone()
        };
        assert_eq!(
            problem_types("429"),
            json!(["urn:ringcast:problem:rate-limited"])
        );
        // An identity token issued before its identity was revoked is refused with its own type.
        assert_eq!(
            problem_types("401"),
            json!([
                "urn:ringcast:problem:unauthorized",
                "urn:ringcast:problem:token-revoked"
            ])
        );
        let limited = &description["paths"]["/v1/calls"]["post"]["responses"]["429"];
        assert!(limited["headers"]["Retry-After"].is_object());
    }

    #[test]
    fn call_bodies_carry_the_checked_constraints() {
        let description = crate::api::openapi::without_apps();
        let schemas = &description["components"]["schemas"];
        assert_eq!(
            schemas["CallRequest"]["properties"]["callee"]["maxLength"],
            MAX_IDENTITY_LEN
        );
        assert_eq!(
            schemas["CallRequest"]["properties"]["ring_timeout_seconds"]["maximum"],
            300
        );
        assert_eq!(schemas["CallerBody"]["properties"]["id"]["minLength"], 1);
        assert_eq!(
            schemas["EndRequest"]["properties"]["device_id"]["pattern"],
            "^[A-Za-z0-9._~:-]+$"
        );
    }

    #[test]
    fn path_parameters_carry_the_checked_patterns() {
        let description = crate::api::openapi::without_apps();
        let put =
            &description["paths"]["/v1/identities/{identity}/registrations/{device_id}"]["put"];
        let parameters = put["parameters"].as_array().unwrap();
        let identity = parameters.iter().find(|p| p["name"] == "identity").unwrap();
        assert_eq!(identity["schema"]["maxLength"], MAX_IDENTITY_LEN);
        let device = parameters
            .iter()
            .find(|p| p["name"] == "device_id")
            .unwrap();
        assert_eq!(device["schema"]["pattern"], "^[A-Za-z0-9._~:-]+$");
    }
}
