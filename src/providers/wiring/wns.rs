//! WNS apps: one credential cell per app (its client secret and access token), one provider
//! per app on each router with its dispatchers per channel host inside, all of them sharing
//! the app's one token source.

use super::{ProviderSet, ProviderSpecs, fingerprint_or_problem, or_problem, start_origins};
use crate::config::{AppConfig, Config};
use crate::providers::fcm::auth::{AccessTokenCache, DEFAULT_REFRESH_STALE_AFTER};
use crate::providers::live::Live;
use crate::providers::pause::SharedPause;
use crate::providers::wns::auth::WnsCredential;
use crate::providers::wns::client::WnsAccount;
use crate::providers::wns::origins::WnsHosts;
use crate::registry::AnyStore;
use crate::router::credentials::{AppCell, LiveCredentials};
use std::sync::Arc;
use std::time::Duration;

/// A Windows app with its credential.
#[derive(Clone)]
pub struct WnsApp {
    /// The tenant.
    pub tenant: String,
    /// The app id.
    pub app: String,
    /// The credential and its access token, shared by every router; swapped by a reload.
    pub account: Live<WnsAccount>,
    /// The app's throttle pause, shared by every router (WNS throttles the app, not a host).
    pub pause: SharedPause,
}

/// Every WNS app with a credential; apps without one get no provider, and start-up says so.
pub(super) fn apps(
    config: &Config,
    credentials: &LiveCredentials,
    problems: &mut Vec<String>,
) -> Vec<WnsApp> {
    let provider = &config.providers.wns;
    let mut apps = Vec::new();
    for (tenant, app, app_config) in super::apps_of(config) {
        let AppConfig::Wns(wns) = app_config else {
            continue;
        };
        let (Some(auth), Some(secret)) = (wns.auth(provider), &wns.client_secret) else {
            tracing::warn!(
                tenant,
                app,
                "WNS app has no credential (package_sid, client_secret): its devices \
                 cannot be rung"
            );
            continue;
        };
        let at = format!("tenants.{tenant}.apps.{app}");
        let Some(client_secret) = or_problem(secret.load(), problems, |error| {
            format!("{at}.client_secret: {error}")
        }) else {
            continue;
        };
        let Some(print) = fingerprint_or_problem(app_config, &at, problems) else {
            continue;
        };
        let refresh_ahead = Duration::from_secs(provider.token_refresh_ahead_seconds);
        let account = Live::new(WnsAccount {
            grant: WnsCredential {
                client_id: auth.client_id,
                client_secret,
                token_url: auth.token_url,
                scope: auth.scope,
            },
            cache: AccessTokenCache::new(refresh_ahead, DEFAULT_REFRESH_STALE_AFTER),
        });
        credentials.register(tenant, app, AppCell::Wns(account.clone()), print);
        apps.push(WnsApp {
            tenant: tenant.clone(),
            app: app.clone(),
            account,
            pause: SharedPause::default(),
        });
    }
    apps
}

/// Starts the WNS providers on the current arbiter, one per app (its dispatchers are per
/// channel host, inside it), deleting dead channels' registrations from `cleanup`.
pub(super) fn start(
    set: &mut ProviderSet,
    specs: &ProviderSpecs,
    cleanup: &AnyStore,
) -> Result<(), String> {
    let config = &specs.wns_config;
    for app in &specs.wns {
        let hosts = WnsHosts::start(
            config,
            app.account.clone(),
            app.pause.clone(),
            Arc::clone(&specs.wns_tls),
            Some(cleanup.clone()),
        )
        .map_err(|error| format!("providers.wns: {error}"))?;
        set.insert_everywhere(&app.tenant, &app.app, start_origins(hosts));
    }
    Ok(())
}
