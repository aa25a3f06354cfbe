//! Web Push apps: one VAPID signer per app (its per-origin token cache shared by every
//! router), one provider per app on each router with its dispatchers per origin inside.

use super::{ProviderSet, ProviderSpecs, fingerprint_or_problem, or_problem, start_origins};
use crate::config::{AppConfig, Config};
use crate::providers::live::Live;
use crate::providers::pool::tls::client_config;
use crate::providers::webpush::auth::VapidSigner;
use crate::providers::webpush::client::EndpointPolicy;
use crate::providers::webpush::origins::WebPushApp;
use crate::registry::AnyStore;
use crate::router::credentials::{AppCell, LiveCredentials};
use std::sync::Arc;

/// Every Web Push app with a VAPID key and subject, by (tenant, app), its signer made once
/// for the node; apps without them get no provider. The store for dead subscriptions is
/// added when the providers start.
pub(super) fn apps(
    config: &Config,
    credentials: &LiveCredentials,
    problems: &mut Vec<String>,
) -> Vec<(String, String, WebPushApp)> {
    let provider = &config.providers.webpush;
    let mut apps = Vec::new();
    let mut tls = None;
    for (tenant, app, app_config) in super::apps_of(config) {
        let AppConfig::Webpush(web) = app_config else {
            continue;
        };
        let (Some(key), Some(subject)) = (&web.vapid_key, &web.vapid_subject) else {
            tracing::warn!(
                tenant,
                app,
                "Web Push app has no VAPID credential (vapid_key, vapid_subject): its \
                 browsers cannot be rung"
            );
            continue;
        };
        let at = format!("tenants.{tenant}.apps.{app}");
        let signer = key.load().and_then(|pem| {
            VapidSigner::new(pem.expose(), subject, provider.vapid_validity())
                .map_err(|error| error.to_string())
        });
        let Some(signer) = or_problem(signer, problems, |error| format!("{at}.vapid_key: {error}"))
        else {
            continue;
        };
        let signer = Live::new(signer);
        let Some(print) = fingerprint_or_problem(app_config, &at, problems) else {
            continue;
        };
        credentials.register(tenant, app, AppCell::WebPush(signer.clone()), print);
        let tls = match &tls {
            Some(tls) => Arc::clone(tls),
            None => {
                let made = or_problem(
                    client_config(provider.trusted_roots.as_deref()),
                    problems,
                    |error| format!("providers.webpush: {error}"),
                );
                let Some(made) = made else { return apps };
                Arc::clone(tls.insert(made))
            }
        };
        let policy = EndpointPolicy {
            allowed_hosts: config.webpush.allowed_hosts.clone().into(),
            guard: config.webpush.address_guard(),
        };
        let web = WebPushApp {
            config: provider.clone(),
            policy,
            signer,
            tls,
            cleanup: None,
        };
        apps.push((tenant.clone(), app.clone(), web));
    }
    apps
}

/// Starts the Web Push providers on the current arbiter: one per app (its dispatchers are
/// per origin, inside it), deleting dead subscriptions from `cleanup`.
pub(super) fn start(set: &mut ProviderSet, specs: &ProviderSpecs, cleanup: &AnyStore) {
    for (tenant, app, webpush) in &specs.webpush {
        let webpush = WebPushApp {
            cleanup: Some(cleanup.clone()),
            ..webpush.clone()
        };
        set.insert_everywhere(tenant, app, start_origins(webpush));
    }
}
