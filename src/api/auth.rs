//! Who is calling: a tenant's server key, or an identity token for one identity.
//!
//! The tenant always comes from the credential, never from the request: a server key names
//! its tenant through the key table, an identity token through its issuer. Once the tenant is
//! known, the request spends a token of its tenant's rate ([`super::limits`]), before its
//! body is read.

use super::ApiState;
use super::problem::ApiError;
use crate::registry::IdentityKey;
use crate::tenant::Tenant;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use std::future::{Ready, ready};
use std::sync::Arc;

/// What the credential may do within its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A server key: anything within the tenant.
    Server,
    /// An identity token: only this identity's own registrations.
    Identity(String),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's tenant.
    pub tenant: Arc<Tenant>,
    /// What it may touch.
    pub scope: Scope,
}

impl Caller {
    /// The store key of `identity` within the caller's tenant, if the caller may manage it.
    /// An identity token naming another identity gets `403`: the identity is the caller's own
    /// tenant's, so saying so leaks nothing across tenants.
    pub fn identity_key(&self, identity: &str) -> Result<IdentityKey, ApiError> {
        match &self.scope {
            Scope::Identity(own) if own != identity => Err(ApiError::Forbidden(
                "an identity token may only manage its own identity",
            )),
            _ => Ok(IdentityKey::new(self.tenant.id.clone(), identity)),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request).and_then(|caller| {
            super::limits::charge(&caller.tenant, request.method(), request.path())?;
            Ok(caller)
        }))
    }
}

/// The caller named by the request's `Authorization: Bearer` credential.
pub fn authenticate(request: &HttpRequest) -> Result<Caller, ApiError> {
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or(ApiError::Internal)?;
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized)?;
    let credential = header
        .to_str()
        .ok()
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|credential| !credential.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    caller_of(state, credential)
}

/// The caller a bearer credential names: an identity token or a server key. Also used for
/// credentials that do not come in the `Authorization` header (the channel's `access_token`
/// query parameter, for browsers, whose WebSocket API cannot set headers).
pub fn caller_of(state: &ApiState, credential: &str) -> Result<Caller, ApiError> {
    // A JWT has exactly three dot-separated parts; server keys are opaque strings without dots.
    if credential.split('.').count() == 3 {
        match state.tenants.verify_identity_token(credential) {
            Ok((tenant, identity)) => Ok(Caller {
                tenant: tenant.clone(),
                scope: Scope::Identity(identity),
            }),
            Err(reason) => {
                tracing::debug!(%reason, "identity token refused");
                Err(ApiError::Unauthorized)
            }
        }
    } else {
        let tenant = state
            .tenants
            .by_server_key(credential)
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller {
            tenant: tenant.clone(),
            scope: Scope::Server,
        })
    }
}
