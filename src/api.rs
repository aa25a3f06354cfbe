//! The HTTP API (actix-web): routes, shared state, and the error shape.
//!
//! - [`auth`] — who is calling (server key or identity token) and what it may touch.
//! - [`registrations`] — the registration endpoints.
//! - [`calls`] — call events: ring, end.
//! - [`intake`] — the bound on requests served at once (`503` beyond it, least urgent first).
//! - [`health`] — `/healthz`, `/readyz`.
//! - [`metrics`] — `/metrics` for Prometheus.
//! - [`openapi`] — serves `/openapi.json`.
//! - [`problem`] — every error as RFC 9457 problem+json.

pub mod auth;
pub mod calls;
pub mod health;
pub mod intake;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod registrations;

use crate::admin::reload::LiveTenants;
use crate::registry::AnyStore;
use crate::registry::shards::Shards;
use crate::router::Routers;
use actix_web::{HttpResponse, web};
use problem::ApiError;
use std::sync::Arc;

/// What every handler shares. Built once; cloned (cheaply) into each HTTP worker.
pub struct ApiState {
    /// The registry shards.
    pub shards: Shards<AnyStore>,
    /// The routers, one per shard.
    pub routers: Routers,
    /// The tenants and their credentials; a reload swaps them whole.
    pub tenants: LiveTenants,
    /// The Web Push services a subscription may point at.
    pub webpush_hosts: Arc<[String]>,
    /// The SSRF guard a subscription endpoint's addresses must pass.
    pub webpush_guard: crate::providers::pool::guard::AddressGuard,
    /// How long registration waits for an endpoint's DNS answer.
    pub webpush_resolve_timeout: std::time::Duration,
    /// The store's name, for `/readyz`.
    pub store_name: &'static str,
}

/// Mounts the public API's routes (`/v1/*`); the operators' routes are
/// [`crate::admin::configure`]'s. `max_body_bytes` caps JSON bodies.
pub fn configure(config: &mut web::ServiceConfig, max_body_bytes: usize) {
    let json = web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(move |error, _| problem::json_error(error, max_body_bytes).into());
    let query = web::QueryConfig::default()
        .error_handler(|error, _| ApiError::MalformedBody(format!("bad query: {error}")).into());
    let path = web::PathConfig::default()
        .error_handler(|error, _| ApiError::MalformedBody(format!("bad path: {error}")).into());
    config
        .app_data(json)
        .app_data(query)
        .app_data(path)
        .route("/v1/calls", web::post().to(calls::ring))
        .route("/v1/calls/{call_id}/end", web::post().to(calls::end))
        .service(
            web::scope("/v1/identities/{identity}")
                .route("", web::delete().to(registrations::revoke))
                .route("/registrations", web::get().to(registrations::list))
                .route(
                    "/registrations/{device_id}",
                    web::put().to(registrations::register),
                )
                .route(
                    "/registrations/{device_id}",
                    web::delete().to(registrations::unregister),
                ),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "no such endpoint or method; see /openapi.json",
    ))
}
