//! The admin listener (docs/architecture.md, "Listeners"): what operators and their agents use —
//! `/metrics` for Prometheus, `/healthz` and `/readyz` for probes, `/openapi.json`, and
//! `POST /admin/reload` ([`reload`]). It listens on `admin.listen` (loopback by default),
//! apart from the public API, so none of it faces the internet; the development default
//! serves it on the API's port instead (`admin.on_api_listener`).

pub mod reload;

use crate::api::{self, ApiState};
use crate::config::Config;
use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use reload::Reloader;
use std::net::SocketAddr;
use std::sync::Arc;

/// Mounts the admin routes; they need [`ApiState`] and [`ReloaderData`] as app data. A node
/// started without a reload source (embedded in tests) answers `POST /admin/reload` with
/// `404`.
pub fn configure(routes: &mut web::ServiceConfig) {
    routes
        .service(api::resource("/healthz", "GET").get(api::health::healthz))
        .service(api::resource("/readyz", "GET").get(api::health::readyz))
        .service(api::resource("/metrics", "GET").get(api::metrics::metrics))
        .service(api::resource("/openapi.json", "GET").get(api::openapi::openapi_json))
        .service(api::resource("/admin/reload", "POST").post(reload_now));
}

/// Binds the admin listener on `config.admin.listen` (one worker: scrapes and probes are
/// few) and returns the server and its real address.
pub fn bind(
    config: &Config,
    state: web::Data<ApiState>,
    intake: crate::api::intake::Intake,
    reloader: ReloaderData,
) -> anyhow::Result<(Server, SocketAddr)> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Not to bound the admin routes (they are never refused), but so that `/readyz`
            // sees the node draining.
            .app_data(intake.clone())
            .app_data(reloader.clone())
            .configure(configure)
    })
    .workers(1)
    .shutdown_timeout(config.server.shutdown_timeout_seconds)
    .keep_alive(crate::app::keep_alive(&config.server))
    .client_request_timeout(config.server.client_request_timeout())
    .client_disconnect_timeout(std::time::Duration::from_millis(
        config.server.client_disconnect_timeout_ms,
    ))
    .disable_signals()
    .bind(config.admin.listen)
    .with_context(|| format!("binding the admin listener to {}", config.admin.listen))?;
    let address = *server
        .addrs()
        .first()
        .context("the admin listener bound no address")?;
    Ok((server.run(), address))
}

/// The reloader as route data (`None`: this node has nothing to reload from).
pub type ReloaderData = web::Data<Option<Arc<Reloader>>>;

/// `POST /admin/reload`: `200` with what changed, or `422` problem+json listing every
/// problem (the running configuration stays in use).
async fn reload_now(reloader: ReloaderData) -> HttpResponse {
    let Some(reloader) = reloader.as_ref().clone() else {
        return problem(
            StatusCode::NOT_FOUND,
            "urn:ringcast:problem:not-found",
            "this node has no configuration to reload",
            &[],
        );
    };
    match web::block(move || reloader.reload()).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(errors)) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:ringcast:problem:config-invalid",
            "the new configuration was refused; the running one stays in use",
            &errors.0,
        ),
        Err(error) => {
            tracing::error!(%error, "the reload task failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "urn:ringcast:problem:internal",
                "internal error",
                &[],
            )
        }
    }
}

/// An RFC 9457 problem with the list of configuration errors.
fn problem(status: StatusCode, kind: &str, title: &str, errors: &[String]) -> HttpResponse {
    let body = serde_json::json!({
        "type": kind,
        "title": title,
        "status": status.as_u16(),
        "errors": errors,
    });
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .body(body.to_string())
}
