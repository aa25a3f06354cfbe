//! `GET /openapi.json`: the OpenAPI 3.1 description, generated from the handlers' own types
//! and annotations so it cannot drift from what the API does, then made exact by
//! [`exact`]: the answers the shared machinery gives every operation (authentication, limits,
//! intake, body and path checks) and each error status's problem `type`.

pub mod channel;
pub mod exact;
pub mod registration;

use super::{ApiState, calls, health, metrics, registrations};
use crate::registry::validate::{FieldError, RegistrationRequest, WebPushKeys};
use crate::vocab::{Environment, Platform};
use actix_web::{HttpResponse, web};
use registration::Registrable;
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

/// The description as served: generated and made exact once; then the registration body's
/// forms, which depend on the configuration (apps, Web Push services), for `registrable`.
pub fn description(registrable: &Registrable) -> serde_json::Value {
    static GENERATED: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let mut value = GENERATED
        .get_or_init(|| {
            // A generated `OpenApi` is plain data: serialising it cannot fail.
            let mut value = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
            exact::complete(&mut value);
            channel::describe(&mut value);
            value
        })
        .clone();
    let schemas = &mut value["components"]["schemas"];
    schemas["RegistrationRequest"] = registration::request_schema(registrable);
    schemas["WebPushKeys"] = registration::keys_schema();
    value
}

/// Serves the description for the tenants in effect now (a reload may change their apps).
pub async fn openapi_json(state: web::Data<ApiState>) -> HttpResponse {
    let tenants = state.tenants.all();
    let registrable = Registrable {
        apps: tenants
            .iter()
            .flat_map(|tenant| tenant.apps.iter())
            .map(|(id, app)| (id.as_str(), app))
            .collect(),
        webpush_hosts: &state.webpush_hosts,
        guard: &state.webpush_guard,
    };
    HttpResponse::Ok().json(description(&registrable))
}

/// The description of a node without apps or Web Push services (unit tests).
#[cfg(test)]
pub(crate) fn without_apps() -> serde_json::Value {
    description(&Registrable {
        apps: Vec::new(),
        webpush_hosts: &[],
        guard: &crate::providers::pool::guard::AddressGuard::default(),
    })
}
