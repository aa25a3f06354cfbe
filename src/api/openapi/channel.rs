//! `GET /v1/channel` in the description: the internal push channel's WebSocket upgrade
//! (src/api/channel.rs), written by hand because the handler's answer is a protocol switch, not
//! a body utoipa can describe.
//!
//! The upgrade is an ordinary HTTP/1.1 GET (RFC 6455 §4.1) until it succeeds, so its headers
//! are parameters: without them, or with wrong ones (and over HTTP/2, which has no `Upgrade`),
//! the node answers `400` (malformed); with them and valid query parameters, `101` and the
//! connection becomes the channel.

use crate::registry::validate::{MAX_DEVICE_ID_LEN, MAX_IDENTITY_LEN};
use serde_json::{Value, json};

/// A `Sec-WebSocket-Key`: base64 of 16 bytes (24 characters, padded), as actix-http demands.
const WEBSOCKET_KEY: &str = "^[A-Za-z0-9+/]{21}[AQgw]==$";

/// Adds the path; its error answers are completed like every other operation's
/// ([`super::exact::complete_operation`]).
pub fn describe(description: &mut Value) {
    let header = |name: &str, schema: Value, what: &str| {
        json!({"name": name, "in": "header", "required": true, "schema": schema,
            "description": what})
    };
    let optional = |name: &str, schema: Value, what: &str| {
        json!({"name": name, "in": "query", "required": false, "schema": schema,
            "description": what})
    };
    let mut operation = json!({
        "tags": ["channel"],
        "summary": "Open a device's internal push channel (WebSocket, RFC 6455)",
        "description": "Rings and call notices for a connected device arrive here as JSON text messages; the device acks each ring. Authenticate with an identity token (`Authorization`, or `access_token` for browsers) or a server key with `identity`. HTTP/1.1 only. See the README, \"Internal push channel\".",
        "operationId": "channel",
        "parameters": [
            // Case-insensitive, as actix-http compares them (it also takes lists of
            // `Connection` options; one is what clients send).
            header("Upgrade", json!({"type": "string", "pattern": "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"}),
                "RFC 6455: `websocket`."),
            header("Connection", json!({"type": "string", "pattern": "^[Uu][Pp][Gg][Rr][Aa][Dd][Ee]$"}),
                "RFC 6455: `Upgrade`."),
            header("Sec-WebSocket-Version", json!({"type": "string", "const": "13"}),
                "RFC 6455: `13`."),
            header("Sec-WebSocket-Key", json!({"type": "string", "pattern": WEBSOCKET_KEY}),
                "RFC 6455: 16 random bytes, base64."),
            json!({"name": "device_id", "in": "query", "required": true,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_DEVICE_ID_LEN,
                    "pattern": "^[A-Za-z0-9._~:-]+$"},
                "description": "The connecting device (a registration's device id rules)."}),
            // Required here because a server key needs it; an identity token may leave it out
            // (its own identity), which a description cannot make depend on the credential.
            json!({"name": "identity", "in": "query", "required": true,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDENTITY_LEN,
                    "pattern": "^[A-Za-z0-9._~:@+=-]+$"},
                "description": "Whose device. With an identity token it may be left out (the token's own)."}),
            optional("disable_internal_push_for_incoming_call", json!({"type": "boolean"}),
                "`true`: no rings over the channel (the platform push rings this device), only call-ended and missed-call notices."),
        ],
        "responses": {
            "101": {"description": "Switching protocols: the connection is the device's channel."},
            "400": {"description": "Not a WebSocket upgrade (missing or wrong Upgrade, Connection, Sec-WebSocket-* headers; HTTP/2), an unknown or malformed query parameter, or both Authorization and access_token"},
            "403": {"description": "An identity token for another identity"},
            "422": {"description": "`device_id` missing or invalid, `identity` invalid, or missing with a server key"},
        },
        // One credential, in either place (RFC 6750 §2: never both; both is `400`).
        "security": [{"bearer": []}, {"access_token": []}],
    });
    let statuses = ["401", "429", "431", "503"];
    if let Some(operation) = operation.as_object_mut() {
        super::exact::complete_operation(operation, &statuses);
    }
    description["components"]["securitySchemes"]["access_token"] = json!({
        "type": "apiKey", "in": "query", "name": "access_token",
        "description": "An identity token in the query, for clients that cannot set Authorization (browsers' WebSocket API)."});
    if let Some(paths) = description["paths"].as_object_mut() {
        paths.insert("/v1/channel".into(), json!({ "get": operation }));
    }
}
