//! Liveness and readiness, for load balancers and Kubernetes probes.

use super::ApiState;
use super::intake::Intake;
use super::problem::{ApiError, Problem};
use crate::registry::shard::Ping;
use actix_web::{HttpRequest, HttpResponse, web};
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

/// Ready: the store answers, through the same shard path requests take, and the node is not
/// draining.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "Store unreachable, or the node is draining (stopping)", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "operations"
)]
pub async fn readyz(
    state: web::Data<ApiState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // A draining node is alive but must get no new work (docs/architecture.md, "Cluster semantics").
    if request
        .app_data::<Intake>()
        .is_some_and(Intake::is_draining)
    {
        return Err(ApiError::Unavailable(
            "the node is shutting down; send to another node",
        ));
    }
    state.shards.call_any(Ping {}).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ready",
        store: Some(state.store_name),
    }))
}
