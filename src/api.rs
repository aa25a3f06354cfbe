//! The HTTP API (actix-web): routes, shared state, and the error shape.
//!
//! - [`auth`] — who is calling (server key or identity token) and what it may touch.
//! - [`registrations`] — the registration endpoints.
//! - [`calls`] — call events: ring, end.
//! - [`channel`] — `GET /v1/channel`, the internal push channel's WebSocket.
//! - [`connection`] — limits per connection (streams, header size) and counting cut-offs.
//! - [`intake`] — the bound on requests served at once (`503` beyond it, least urgent first).
//! - [`limits`] — each tenant's rates (`429` beyond them).
//! - [`health`] — `/healthz`, `/readyz`.
//! - [`metrics`] — `/metrics` for Prometheus.
//! - [`openapi`] — serves `/openapi.json`.
//! - [`problem`] — every error as RFC 9457 problem+json.

pub mod auth;
pub mod calls;
pub mod channel;
pub mod connection;
pub mod health;
pub mod intake;
pub mod json_body;
pub mod limits;
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
    /// The routers, one per HTTP worker.
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
    /// The devices connected to this node's internal push channel.
    pub channel: crate::channel::ChannelHub,
    /// The channel's settings (`[channel]`).
    pub channel_config: crate::config::channel::ChannelConfig,
    /// The other nodes' channel connections (Redis stores): a revocation closes those too.
    pub channel_relay: Option<crate::channel::relay::Relay>,
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
        .service(resource("/v1/calls", "POST").post(calls::ring))
        .service(resource("/v1/calls/{call_id}/end", "POST").post(calls::end))
        .service(resource("/v1/channel", "GET").get(channel::connect))
        .service(
            web::scope("/v1/identities/{identity}")
                .service(resource("", "DELETE").delete(registrations::revoke))
                .service(resource("/registrations", "GET").get(registrations::list))
                .service(
                    resource("/registrations/{device_id}", "PUT, DELETE")
                        .put(registrations::register)
                        .delete(registrations::unregister),
                ),
        )
        .default_service(web::to(not_found));
}

/// A path that answers `allow` (its methods, as the `Allow` header lists them) and `405` with
/// that header to any other method (RFC 9110 §15.5.6), TRACE included.
pub(crate) fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such endpoint; see /openapi.json"))
}
