//! Liveness and readiness, for load balancers and Kubernetes probes.

use super::ApiState;
use super::problem::{ApiError, Problem};
use crate::registry::shard::Ping;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive) or `ready`.
    pub status: &'static str,
    /// The store in use (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
}

/// Alive: the process answers HTTP. Never touches the store, so a store outage does not make
/// an orchestrator restart healthy nodes.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)), tag = "operations")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok",
        store: None,
    })
}

/// Ready: the store answers, through the same shard path requests take.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "Store unreachable", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "operations"
)]
pub async fn readyz(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    state.shards.call_any(Ping {}).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ready",
        store: Some(state.store_name),
    }))
}
