//! The API side of the limits per tenant (src/limits.rs): which bucket a request spends
//! from, and the `429` when it is empty.

use super::problem::ApiError;
use crate::limits::{LimitKind, retry_after_seconds};
use crate::metrics::{self, IntakeRoute};
use crate::tenant::Tenant;
use actix_web::http::Method;

/// The bucket a request to `path` spends from: call events for rings and ends, registrations
/// for everything else an authenticated caller can reach (`/v1/identities/...`).
pub fn kind(method: &Method, path: &str) -> LimitKind {
    match super::intake::route(method, path) {
        Some(IntakeRoute::Ring | IntakeRoute::End) => LimitKind::Call,
        _ => LimitKind::Registration,
    }
}

/// Spends one token of `tenant`'s bucket for this request, or refuses it with `429` and
/// `Retry-After`, counted in `ringcast_rate_limited_total{tenant,kind}`.
pub fn charge(tenant: &Tenant, method: &Method, path: &str) -> Result<(), ApiError> {
    let kind = kind(method, path);
    tenant.limits.take(kind).map_err(|wait| {
        metrics::rate_limited(&tenant.id, kind);
        tracing::debug!(tenant = %tenant.id, kind = kind.label(), ?wait, "rate limited");
        ApiError::RateLimited {
            kind: kind.label(),
            retry_after_seconds: retry_after_seconds(wait),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_and_ends_are_calls_everything_else_registrations() {
        assert_eq!(kind(&Method::POST, "/v1/calls"), LimitKind::Call);
        assert_eq!(kind(&Method::POST, "/v1/calls/c-1/end"), LimitKind::Call);
        for (method, path) in [
            (Method::PUT, "/v1/identities/alice/registrations/phone"),
            (Method::GET, "/v1/identities/alice/registrations"),
            (Method::DELETE, "/v1/identities/alice"),
        ] {
            assert_eq!(kind(&method, path), LimitKind::Registration, "{path}");
        }
    }
}
