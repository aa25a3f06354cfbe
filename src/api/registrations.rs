//! `/v1/identities/...`: register, refresh, list, unregister, revoke.

use super::ApiState;
use super::auth::Caller;
use super::json_body::json;
use super::problem::{ApiError, Problem};
use crate::clock::{now_millis, rfc3339};
use crate::logging;
use crate::metrics::{self, RegistryOp, RegistryOutcome};
use crate::providers::pool::guard::GuardError;
use crate::registry::shard::{List, Register, Revoke, Unregister};
use crate::registry::shards::ShardError;
use crate::registry::validate::{
    FieldError, RegistrationRequest, validate_device_id, validate_identity, validate_registration,
};
use crate::registry::{PushAddress, Registration};
use crate::vocab::{Environment, Platform};
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// A registration as the API shows it: the token only as a fingerprint.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationView {
    /// The device id.
    pub device_id: String,
    /// The push service.
    pub platform: Platform,
    /// The tenant's app id.
    pub app: String,
    /// The push service environment.
    pub environment: Environment,
    /// First 8 hex characters of the token's SHA-256: enough to tell tokens apart, useless
    /// to anyone who reads it.
    pub token_fingerprint: String,
    /// APNs only: the fingerprint of the app's regular (alert) token, when the registration
    /// has one; absent otherwise, and then call-ended and missed-call notices are not sent
    /// over APNs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_token_fingerprint: Option<String>,
    /// See the request field of the same name.
    pub disable_internal_push: bool,
    /// First registration (RFC 3339).
    pub created_at: String,
    /// Last registration or refresh (RFC 3339).
    pub updated_at: String,
    /// When the registration ends unless refreshed (RFC 3339).
    pub expires_at: String,
}

impl From<&Registration> for RegistrationView {
    fn from(registration: &Registration) -> Self {
        RegistrationView {
            device_id: registration.device_id.clone(),
            platform: registration.address.platform(),
            app: registration.app.clone(),
            environment: registration.environment,
            token_fingerprint: registration.address.fingerprint(),
            alert_token_fingerprint: registration
                .address
                .alert_token()
                .map(crate::registry::registration::fingerprint),
            disable_internal_push: registration.disable_internal_push,
            created_at: rfc3339(registration.created_at),
            updated_at: rfc3339(registration.updated_at),
            expires_at: rfc3339(registration.expires_at),
        }
    }
}

/// The answer to a registration: what is stored, and the lifetime in effect.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredView {
    /// The stored registration.
    #[serde(flatten)]
    pub registration: RegistrationView,
    /// The lifetime in effect, in seconds.
    pub ttl_seconds: u64,
    /// `true` when the tenant's `max_ttl_seconds` shortened the requested lifetime.
    pub ttl_capped: bool,
}

/// An identity's registrations.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationList {
    /// The identity.
    pub identity: String,
    /// Its live registrations, by device id.
    pub registrations: Vec<RegistrationView>,
}

/// The answer to a revoke.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// How many registrations were deleted.
    pub deleted: u64,
}

/// Register a device, or refresh its registration.
#[utoipa::path(
    put,
    path = "/v1/identities/{identity}/registrations/{device_id}",
    params(
        ("identity" = String, Path, description = "1-128 of A-Z a-z 0-9 . _ ~ : @ + = -"),
        ("device_id" = String, Path, description = "1-64 of A-Z a-z 0-9 . _ ~ : -"),
    ),
    request_body = RegistrationRequest,
    responses(
        (status = 201, description = "Registered a new device", body = RegisteredView),
        (status = 200, description = "Refreshed an existing registration", body = RegisteredView),
        (status = 400, description = "Malformed JSON or unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Identity token for another identity", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Device limit reached", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unreachable or node overloaded; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
    tag = "registrations"
)]
pub async fn register(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<RegistrationRequest>,
) -> Result<HttpResponse, ApiError> {
    let op = RegistryOp::Register;
    let (identity, device_id) = path.into_inner();
    let who = checked_identity(&caller, &identity, op)?;
    validate_device_id(&device_id).map_err(|error| invalid(op, error))?;
    let mut valid = validate_registration(&body, &caller.tenant, &state.webpush_hosts)
        .map_err(|errors| invalid(op, ApiError::Invalid(errors)))?;
    if let Some(cap) = crate::config::ttl_cap::max_ttl_for(&caller.tenant.ttl_caps, &identity) {
        valid.cap_ttl(cap);
    }
    if let PushAddress::WebPush { endpoint, .. } = &valid.address {
        vet_endpoint(&state, endpoint)
            .await
            .map_err(|error| invalid(op, ApiError::Invalid(vec![error])))?;
    }
    let now = now_millis();
    let registration = Registration {
        device_id,
        app: valid.app,
        address: valid.address,
        environment: valid.environment,
        disable_internal_push: valid.disable_internal_push,
        created_at: now,
        updated_at: now,
        expires_at: now + valid.ttl_seconds * 1000,
    };
    let registered = state
        .shards
        .call(
            &who,
            Register {
                who: who.clone(),
                registration,
            },
        )
        .await
        .map_err(|error| shard_failed(op, error))?;
    let stored = &registered.registration;
    tracing::info!(
        tenant = %who.tenant,
        identity = %logging::fingerprint(&who.identity),
        device_id = %stored.device_id,
        platform = %stored.address.platform(),
        token = %stored.address.fingerprint(),
        created = registered.created,
        moved_from = %registered.moved_from.as_deref().map(logging::fingerprint).unwrap_or_default(),
        "registered"
    );
    let view = RegisteredView {
        registration: RegistrationView::from(stored),
        ttl_seconds: valid.ttl_seconds,
        ttl_capped: valid.ttl_capped,
    };
    let status = if registered.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(json(status, &view, REGISTRATION_BYTES))
}

/// Room for one registration's JSON (a Web Push endpoint or a WNS channel URI makes the
/// longest), so that most answers are written without growing the buffer.
const REGISTRATION_BYTES: usize = 512;

/// List an identity's live registrations.
#[utoipa::path(
    get,
    path = "/v1/identities/{identity}/registrations",
    params(("identity" = String, Path, description = "The identity")),
    responses(
        (status = 200, description = "The identity's registrations (none is an empty list)", body = RegistrationList),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Identity token for another identity", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unreachable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
    tag = "registrations"
)]
pub async fn list(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = RegistryOp::List;
    let identity = path.into_inner();
    let who = checked_identity(&caller, &identity, op)?;
    let registrations = state
        .shards
        .call(
            &who,
            List {
                who: who.clone(),
                now: now_millis(),
            },
        )
        .await
        .map_err(|error| shard_failed(op, error))?;
    let size = REGISTRATION_BYTES * (registrations.len() + 1);
    let list = RegistrationList {
        identity,
        registrations: registrations.iter().map(RegistrationView::from).collect(),
    };
    Ok(json(HttpResponse::Ok(), &list, size))
}

/// Unregister one device.
#[utoipa::path(
    delete,
    path = "/v1/identities/{identity}/registrations/{device_id}",
    params(("identity" = String, Path, description = "The identity"), ("device_id" = String, Path, description = "The device")),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 404, description = "No such registration", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Identity token for another identity", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unreachable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
    tag = "registrations"
)]
pub async fn unregister(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let op = RegistryOp::Unregister;
    let (identity, device_id) = path.into_inner();
    let who = checked_identity(&caller, &identity, op)?;
    validate_device_id(&device_id).map_err(|error| invalid(op, error))?;
    let message = Unregister {
        who: who.clone(),
        device_id,
        now: now_millis(),
    };
    let found = state
        .shards
        .call(&who, message)
        .await
        .map_err(|error| shard_failed(op, error))?;
    if found {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound("no such registration"))
    }
}

/// Revoke an identity: delete all its registrations (sign out everywhere), close its channel
/// connections, and refuse its identity tokens issued until now.
#[utoipa::path(
    delete,
    path = "/v1/identities/{identity}",
    params(("identity" = String, Path, description = "The identity")),
    responses(
        (status = 200, description = "Deleted every registration (0 if there were none)", body = Revoked),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Identity token for another identity", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unreachable; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
    tag = "registrations"
)]
pub async fn revoke(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = RegistryOp::Revoke;
    let identity = path.into_inner();
    let who = checked_identity(&caller, &identity, op)?;
    let deleted = state
        .shards
        .call(
            &who,
            Revoke {
                who: who.clone(),
                now: now_millis(),
                keep_ms: caller.tenant.revocation_keep_ms(),
            },
        )
        .await
        .map_err(|error| shard_failed(op, error))?;
    // Revoke means revoke: the identity's open channel connections on this node end too
    // (close code 4003), so a revoked app stops hearing rings at once.
    let closed = state
        .channel
        .close_all(&who, crate::metrics::channel::CloseCause::Revoked);
    // And on the other nodes that hold one of its connections (Redis stores).
    let nodes_told = match &state.channel_relay {
        Some(relay) => relay.revoke_elsewhere(&who, now_millis()).await,
        None => 0,
    };
    tracing::info!(tenant = %who.tenant, identity = %logging::fingerprint(&who.identity), deleted,
        channel_connections = closed, other_nodes = nodes_told, "identity revoked");
    Ok(HttpResponse::Ok().json(Revoked { deleted }))
}

/// Validates a path identity (a bad one counts as `op` refused `invalid`) and checks the caller
/// may manage it.
fn checked_identity(
    caller: &Caller,
    identity: &str,
    op: RegistryOp,
) -> Result<crate::vocab::IdentityKey, ApiError> {
    validate_identity(identity).map_err(|error| invalid(op, error))?;
    caller.identity_key(identity)
}

/// Counts `op` as refused for its input (`ringcast_registrations_total{outcome="invalid"}`):
/// the store never saw it, so the shard did not count it.
fn invalid(op: RegistryOp, error: impl Into<ApiError>) -> ApiError {
    metrics::registration(op, RegistryOutcome::Invalid);
    error.into()
}

/// Counts `op` as `busy` when it never reached the store (a full shard mailbox, or a shard
/// stopping); the shard counted every other outcome where it ran.
fn shard_failed(op: RegistryOp, error: ShardError) -> ApiError {
    if matches!(error, ShardError::Busy | ShardError::Stopped) {
        metrics::registration(op, RegistryOutcome::Busy);
    }
    error.into()
}

/// The registration-time half of the SSRF guard: a subscription endpoint whose host is, or
/// resolves to, a loopback, private, link-local or metadata address is refused with a clear
/// message. A lookup that fails or times out does **not** refuse the registration: DNS
/// hiccups would otherwise make registering flaky, and nothing is lost by accepting, because
/// the provider resolves and vets again at connect time and never sends to an address that
/// did not pass (an endpoint that never resolves simply never gets a request).
async fn vet_endpoint(state: &ApiState, endpoint: &str) -> Result<(), FieldError> {
    match state
        .webpush_guard
        .vet_url(endpoint, state.webpush_resolve_timeout)
        .await
    {
        Ok(()) => Ok(()),
        Err(error @ GuardError::Forbidden { .. }) => Err(FieldError::new(
            "endpoint",
            format!("{error}; a push subscription must point at a public push service"),
        )),
        Err(error) => {
            tracing::debug!(%error, "endpoint not resolved at registration; vetted again at connect time");
            Ok(())
        }
    }
}
