//! `GET /openapi.json`: the OpenAPI 3.1 description, generated from the handlers' own types
//! and annotations so it cannot drift from what the API does, then made exact by
//! [`exact`]: the answers the shared machinery gives every operation (authentication, limits,
//! intake, body and path checks) and each error status's problem `type`.

pub mod exact;

use super::{calls, health, metrics, registrations};
use crate::registry::validate::{FieldError, RegistrationRequest, WebPushKeys};
use crate::registry::{Environment, Platform};
use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "ringcast", description = "Push dispatch for voice and video calling. Authenticate with `Authorization: Bearer <server key or identity token>`."),
    paths(
        registrations::register,
        registrations::list,
        registrations::unregister,
        registrations::revoke,
        calls::ring,
        calls::end,
        health::healthz,
        health::readyz,
        metrics::metrics,
    ),
    components(schemas(RegistrationRequest, WebPushKeys, FieldError, Platform, Environment)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the bearer scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The description as served: generated, then made exact. Built once.
pub fn description() -> &'static serde_json::Value {
    static DESCRIPTION: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DESCRIPTION.get_or_init(|| {
        // A generated `OpenApi` is plain data: serialising it cannot fail.
        let mut value = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        exact::complete(&mut value);
        value
    })
}

/// Serves the description.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(description())
}
