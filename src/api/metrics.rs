//! `GET /metrics`: the node's Prometheus metrics in the text exposition format.
//!
//! Unauthenticated, like `/healthz`: it holds no identity, token or tenant data (see
//! [`crate::metrics`] for the label vocabulary), and Prometheus scrapes it without a bearer
//! credential. Keep the API port off the public internet or filter the path at the edge.

use crate::metrics;
use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

/// The node's metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((
        status = 200,
        description = "Prometheus text exposition format 0.0.4: every `ringcast_*` metric of docs/architecture.md, build info, uptime and the standard `process_*` metrics",
        body = String,
        content_type = "text/plain; version=0.0.4",
    )),
    tag = "operations"
)]
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        ))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(metrics::render())
}
