//! FCM apps: one signer and access-token cache per service account, one quota pause per
//! Firebase project, one provider per app on each router.

use super::{ProviderSet, ProviderSpecs, fingerprint_or_problem, or_problem, start_dispatcher};
use crate::config::{AppConfig, Config};
use crate::providers::dispatcher::DispatcherSettings;
use crate::providers::fcm::auth::{
    AccessTokenCache, AssertionSigner, DEFAULT_REFRESH_STALE_AFTER, read_service_account,
};
use crate::providers::fcm::client::{FcmAccount, FcmClient};
use crate::providers::live::Live;
use crate::providers::pause::SharedPause;
use crate::registry::AnyStore;
use crate::router::credentials::{AppCell, LiveCredentials};
use crate::vocab::Platform;
use std::collections::HashMap;
use std::sync::Arc;

/// An FCM app with its service account, ready to start clients for.
#[derive(Clone)]
pub struct FcmApp {
    /// The tenant.
    pub tenant: String,
    /// The app id.
    pub app: String,
    /// The Firebase project its messages go to.
    pub project_id: String,
    /// The service account (its key parsed once) and its access token, shared by every
    /// router (and, until a reload changes one of them, by every app of the same account, so
    /// a node holds one token per account and refreshes it once); swapped by a reload.
    pub account: Live<FcmAccount>,
    /// The project's quota pause, shared by every router (FCM's quota is per project).
    pub pause: SharedPause,
}

/// Every FCM app with a service account: one signer and one access-token cache per account
/// (by e-mail and token URI), one quota pause per project, shared by every router.
pub(super) fn apps(
    config: &Config,
    credentials: &LiveCredentials,
    problems: &mut Vec<String>,
) -> Vec<FcmApp> {
    let mut accounts: HashMap<(String, String), (AssertionSigner, AccessTokenCache)> =
        HashMap::new();
    let mut pauses: HashMap<String, SharedPause> = HashMap::new();
    let mut apps = Vec::new();
    for (tenant, app, app_config) in super::apps_of(config) {
        let AppConfig::Fcm(fcm) = app_config else {
            continue;
        };
        let (Some(project_id), Some(source)) = (&fcm.project_id, &fcm.service_account) else {
            tracing::warn!(
                tenant,
                app,
                "FCM app has no credential (project_id, service_account): its devices \
                 cannot be rung"
            );
            continue;
        };
        let at = format!("tenants.{tenant}.apps.{app}");
        let read = source.load().and_then(|json| {
            read_service_account(json.expose()).map_err(|error| error.to_string())
        });
        let Some((account, signer)) = or_problem(read, problems, |error| {
            format!("{at}.service_account: {error}")
        }) else {
            continue;
        };
        let Some(print) = fingerprint_or_problem(app_config, &at, problems) else {
            continue;
        };
        let (signer, tokens) = accounts
            .entry((account.client_email, account.token_uri))
            .or_insert_with(|| {
                let tokens = AccessTokenCache::new(
                    config.providers.fcm.token_refresh_ahead(),
                    DEFAULT_REFRESH_STALE_AFTER,
                );
                (signer, tokens)
            })
            .clone();
        let account = Live::new(FcmAccount {
            grant: signer,
            cache: tokens,
        });
        credentials.register(tenant, app, AppCell::Fcm(account.clone()), print);
        apps.push(FcmApp {
            tenant: tenant.clone(),
            app: app.clone(),
            project_id: project_id.clone(),
            account,
            pause: pauses.entry(project_id.clone()).or_default().clone(),
        });
    }
    apps
}

/// Starts the FCM providers on the current arbiter, one per app.
pub(super) fn start(
    set: &mut ProviderSet,
    specs: &ProviderSpecs,
    cleanup: &AnyStore,
) -> Result<(), String> {
    let config = &specs.fcm_config;
    for app in &specs.fcm {
        let client = FcmClient::start_live(
            config,
            &app.project_id,
            app.account.clone(),
            app.pause.clone(),
            Arc::clone(&specs.fcm_tls),
        )
        .map_err(|error| format!("tenants.{}.apps.{}: {error}", app.tenant, app.app))?;
        let settings = DispatcherSettings::new(
            &config.queues,
            config.max_in_flight,
            &config.retry,
            Some(cleanup),
            Platform::Fcm,
        );
        set.insert_everywhere(&app.tenant, &app.app, start_dispatcher(client, settings));
    }
    Ok(())
}
