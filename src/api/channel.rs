//! `GET /v1/channel`: the internal push channel's WebSocket (RFC 6455; docs/architecture.md, "Internal
//! push channel"; README, "Internal push channel").
//!
//! The upgrade is checked like any request before it becomes a WebSocket: a credential (an
//! identity token in `Authorization` or, for browsers, `access_token`; or a server key with
//! `identity=`; an identity token issued before its identity was revoked is refused), a valid
//! `device_id`. Refusals are problem+json answers to the HTTP request,
//! so a client can tell "bad credential" from "the connection dropped".

use super::ApiState;
use super::auth::{self, Scope};
use super::problem::ApiError;
use crate::channel::session::Timing;
use crate::registry::validate::{FieldError, validate_device_id, validate_identity};
use actix_web::http::header::{AUTHORIZATION, TRANSFER_ENCODING};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

pub mod upgrade;

/// The upgrade request's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelQuery {
    /// The connecting device (same rules as a registration's device id). Required.
    pub device_id: Option<String>,
    /// Whose device: required with a server key; with an identity token, the token's own (or
    /// left out).
    pub identity: Option<String>,
    /// An identity token, for clients that cannot set `Authorization` (browsers).
    pub access_token: Option<String>,
    /// `true`: no rings over the channel for this device (its platform push rings it), only
    /// call-ended and missed-call notices (the SDK's `disableInternalPushForIncomingCall`).
    #[serde(default)]
    pub disable_internal_push_for_incoming_call: bool,
}

/// Opens a device's channel.
pub async fn connect(
    request: HttpRequest,
    state: web::Data<ApiState>,
    query: web::Query<ChannelQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let caller = match (
        &query.access_token,
        request.headers().contains_key(AUTHORIZATION),
    ) {
        (Some(_), true) => {
            return Err(ApiError::MalformedBody(
                "give the credential in Authorization or access_token, not both".into(),
            ));
        }
        (Some(token), false) => auth::caller_of(&state, token).await?,
        (None, _) => auth::authenticate(&request).await?,
    };
    let mut errors = Vec::new();
    match &query.device_id {
        None => errors.push(FieldError::new("device_id", "required")),
        Some(device_id) => {
            if let Err(error) = validate_device_id(device_id) {
                errors.push(error);
            }
        }
    }
    let identity = match (&caller.scope, &query.identity) {
        (Scope::Identity(own), None) => Some(own.clone()),
        (_, Some(identity)) => match validate_identity(identity) {
            Ok(()) => Some(identity.clone()),
            Err(error) => {
                errors.push(error);
                None
            }
        },
        (Scope::Server, None) => {
            errors.push(FieldError::new(
                "identity",
                "required with a server key: whose device connects",
            ));
            None
        }
    };
    let (Some(identity), Some(device_id), true) = (identity, query.device_id, errors.is_empty())
    else {
        return Err(ApiError::Invalid(errors));
    };
    let key = caller.identity_key(&identity)?;
    // A handshake is a GET without a body (RFC 6455 §4.1); with one, actix-http would not
    // hand the connection over.
    if request.headers().contains_key(TRANSFER_ENCODING) {
        return Err(ApiError::MalformedBody(
            "a WebSocket handshake has no body (RFC 6455)".into(),
        ));
    }
    let mut response = actix_http::ws::handshake(request.head()).map_err(|error| {
        ApiError::MalformedBody(format!("not a WebSocket upgrade (RFC 6455): {error}"))
    })?;
    let config = &state.channel_config;
    let timing = Timing {
        ping_every: config.ping_interval(),
        idle_timeout: config.idle_timeout(),
        max_frame_bytes: config.max_frame_bytes,
    };
    let attached = state.channel.attach(
        key,
        device_id,
        query.disable_internal_push_for_incoming_call,
    );
    tracing::debug!(tenant = %caller.tenant.id, "channel connected");
    // The connection is handed to the session once this answer is written (upgrade.rs).
    Ok(upgrade::carry(
        HttpResponse::from(response.finish()).map_into_boxed_body(),
        upgrade::Accepted { attached, timing },
    ))
}
