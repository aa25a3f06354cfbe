//! Who is calling: a tenant's server key, or an identity token for one identity.
//!
//! The tenant always comes from the credential, never from the request: a server key names
//! its tenant through the key table, an identity token through its issuer. Once the tenant is
//! known, the request spends a token of its tenant's rate ([`super::limits`]), before its
//! body is read. An identity token issued before its identity was revoked is refused then
//! (one store read, [`crate::registry::revocation`]).

use super::ApiState;
use super::problem::ApiError;
use crate::clock::now_millis;
use crate::logging;
use crate::registry::revocation;
use crate::registry::shard::RevokedAt;
use crate::tenant::Tenant;
use crate::vocab::IdentityKey;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
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
    type Future = LocalBoxFuture<'static, Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The credential is checked and the rate charged before anything touches the store,
        // so a flood of requests with bad credentials costs no store reads.
        let verified = verified_credential(request).and_then(|verified| {
            super::limits::charge(&verified.caller.tenant, request.method(), request.path())?;
            Ok(verified)
        });
        let state = request.app_data::<web::Data<ApiState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or(ApiError::Internal)?;
            admit(&state, verified?).await
        })
    }
}

/// A credential whose signature or key checked out, before the store is asked whether its
/// identity was revoked since the token was issued.
pub struct Verified {
    /// Who it names.
    caller: Caller,
    /// An identity token's `iat` (UNIX seconds); `None` for a server key, which a revocation
    /// does not touch.
    issued_at: Option<u64>,
}

/// The caller named by the request's `Authorization: Bearer` credential.
pub async fn authenticate(request: &HttpRequest) -> Result<Caller, ApiError> {
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or(ApiError::Internal)?;
    admit(state, verified_credential(request)?).await
}

/// The caller a bearer credential names: an identity token or a server key. Also used for
/// credentials that do not come in the `Authorization` header (the channel's `access_token`
/// query parameter, for browsers, whose WebSocket API cannot set headers).
pub async fn caller_of(state: &ApiState, credential: &str) -> Result<Caller, ApiError> {
    admit(state, verify(state, credential)?).await
}

/// Revoke means revoke (src/registry/revocation.rs): an identity token issued before its
/// identity was last revoked is refused with `token-revoked`. One store read per request
/// with an identity token, through the identity's shard; no cache, so a revocation holds on
/// every node from the moment it is answered (README, "Revoking an identity", says why that
/// read is affordable).
async fn admit(state: &ApiState, verified: Verified) -> Result<Caller, ApiError> {
    let (Scope::Identity(identity), Some(issued_at)) = (&verified.caller.scope, verified.issued_at)
    else {
        return Ok(verified.caller);
    };
    let who = IdentityKey::new(verified.caller.tenant.id.clone(), identity);
    let revoked_at = state
        .shards
        .call(
            &who,
            RevokedAt {
                who: who.clone(),
                now: now_millis(),
            },
        )
        .await?;
    match revoked_at {
        Some(revoked_at) if revocation::refuses(revoked_at, issued_at) => {
            tracing::debug!(tenant = %who.tenant, identity = %logging::fingerprint(&who.identity),
                "identity token issued before its identity was revoked");
            Err(ApiError::TokenRevoked)
        }
        _ => Ok(verified.caller),
    }
}

/// The request's `Authorization: Bearer` credential, verified.
fn verified_credential(request: &HttpRequest) -> Result<Verified, ApiError> {
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
    verify(state, credential)
}

/// Checks a bearer credential's signature (identity token) or digest (server key).
fn verify(state: &ApiState, credential: &str) -> Result<Verified, ApiError> {
    // A JWT has exactly three dot-separated parts; server keys are opaque strings without dots.
    if credential.split('.').count() == 3 {
        match state.tenants.verify_identity_token(credential) {
            Ok((tenant, identity, issued_at)) => Ok(Verified {
                caller: Caller {
                    tenant,
                    scope: Scope::Identity(identity),
                },
                issued_at: Some(issued_at),
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
        Ok(Verified {
            caller: Caller {
                tenant,
                scope: Scope::Server,
            },
            issued_at: None,
        })
    }
}
