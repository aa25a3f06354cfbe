//! APNs apps: one credential cell per app (a provider token shared by every app of a team
//! key, or the app's client certificate), and two providers per app on each router.

use super::{ProviderKey, ProviderSet, ProviderSpecs, fingerprint_at, start_dispatcher};
use crate::config::{AppConfig, Config, SecretSource};
use crate::providers::apns::auth::ProviderTokenCache;
use crate::providers::apns::client::{ApnsClient, ApnsCredential};
use crate::providers::apns::config::ApnsConfig;
use crate::providers::dispatcher::DispatcherSettings;
use crate::providers::live::Live;
use crate::registry::AnyStore;
use crate::router::credentials::{AppCell, LiveCredentials};
use crate::vocab::Platform;
use rustls::ClientConfig;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

/// An APNs app with its credential, ready to start clients for.
#[derive(Clone)]
pub struct ApnsApp {
    /// The tenant.
    pub tenant: String,
    /// The app id.
    pub app: String,
    /// The bundle id (`apns-topic`).
    pub bundle_id: String,
    /// The team key's provider token (an empty one for an app that authenticates with its
    /// client certificate) and the TLS of its connections (the provider's, or with the
    /// app's client certificate), shared by every router and environment; swapped by a reload.
    pub credential: Live<ApnsCredential>,
}

/// Every APNs app with a credential (one provider-token cache per team key, shared); apps
/// without one get no provider, and start-up says so. Problems are pushed, not returned early.
pub(super) fn apps(
    config: &Config,
    tls: &Arc<ClientConfig>,
    credentials: &LiveCredentials,
    problems: &mut Vec<String>,
) -> Vec<ApnsApp> {
    let provider = &config.providers.apns;
    let mut caches: HashMap<(String, String), ProviderTokenCache> = HashMap::new();
    let mut apps = Vec::new();
    for (tenant, app, app_config) in super::apps_of(config) {
        let AppConfig::Apns(apns) = app_config else {
            continue;
        };
        let at = format!("tenants.{tenant}.apps.{app}");
        let made = match (&apns.bundle_id, &apns.certificate, &apns.certificate_key) {
            (Some(bundle_id), Some(certificate), Some(certificate_key)) => certificate_tls(
                (tenant, app),
                Some(bundle_id),
                certificate,
                certificate_key,
                &at,
                provider,
            )
            .map(|(tls, not_after)| {
                crate::metrics::credential_expiry(Platform::Apns, tenant, app, not_after);
                (bundle_id, ProviderTokenCache::certificate(), tls)
            }),
            _ => {
                let (Some(bundle_id), Some(team), Some(key_id), Some(key)) =
                    (&apns.bundle_id, &apns.team_id, &apns.key_id, &apns.key)
                else {
                    tracing::warn!(
                        tenant,
                        app,
                        "APNs app has no credential (team_id, key_id, key; or certificate, \
                         certificate_key): its devices cannot be rung"
                    );
                    continue;
                };
                let tokens = match caches.entry((team.clone(), key_id.clone())) {
                    Entry::Occupied(shared) => Ok(shared.get().clone()),
                    Entry::Vacant(slot) => token_cache(team, key_id, key, provider)
                        .map(|tokens| slot.insert(tokens).clone())
                        .map_err(|error| format!("{at}.key: {error}")),
                };
                tokens.map(|tokens| (bundle_id, tokens, Arc::clone(tls)))
            }
        };
        let print = fingerprint_at(app_config, &at);
        match (made, print) {
            (Ok((bundle_id, tokens, tls)), Ok(print)) => {
                let credential = Live::new(ApnsCredential {
                    tokens,
                    tls,
                    generation: 0,
                });
                credentials.register(tenant, app, AppCell::Apns(credential.clone()), print);
                apps.push(ApnsApp {
                    tenant: tenant.clone(),
                    app: app.clone(),
                    bundle_id: bundle_id.clone(),
                    credential,
                });
            }
            (made, print) => problems.extend(made.err().into_iter().chain(print.err())),
        }
    }
    apps
}

/// A provider-token cache for a team's key `key_id`, its `.p8` read now.
fn token_cache(
    team: &str,
    key_id: &str,
    key: &SecretSource,
    provider: &ApnsConfig,
) -> Result<ProviderTokenCache, String> {
    let pem = key.load()?;
    ProviderTokenCache::new(team, key_id, pem.expose(), provider.jwt_refresh_age())
        .map_err(|error| error.to_string())
}

/// The TLS configuration of an APNs app that authenticates with its client certificate, and
/// the certificate's expiry (UNIX seconds) for `ringcast_credential_expiry_seconds`: the
/// certificate loaded (an expired one stops start-up, or refuses a reload), its expiry
/// logged when it is near.
pub(crate) fn certificate_tls(
    (tenant, app): (&str, &str),
    bundle_id: Option<&str>,
    certificate: &SecretSource,
    certificate_key: &SecretSource,
    at: &str,
    config: &ApnsConfig,
) -> Result<(Arc<ClientConfig>, i64), String> {
    use crate::providers::apns::auth::certificate::Expiry;
    let now = crate::clock::now_millis() / 1000;
    let loaded =
        crate::providers::apns::config::load_certificate(certificate, certificate_key, at, now)?;
    let window = std::time::Duration::from_secs(config.certificate_expiry_warning_days * 86_400);
    if let Expiry::ExpiresSoon { days_left } =
        loaded.expiry(i64::try_from(now).unwrap_or(i64::MAX), window)
    {
        tracing::warn!(tenant, app, subject = %loaded.subject(), days_left,
            not_after = loaded.not_after(),
            "APNs client certificate expires soon: renew it before its pushes fail");
    }
    if let Some(bundle_id) = bundle_id {
        crate::providers::apns::auth::topics::warn_uncovered(tenant, app, bundle_id, &loaded);
    }
    let tls = loaded
        .client_config(config.trusted_roots.as_deref())
        .map_err(|error| format!("{at}.certificate: {error}"))?;
    Ok((tls, loaded.not_after()))
}

/// Starts the APNs providers on the current arbiter: one per environment and app, since
/// production and sandbox are different hosts. They share their pools, so each can try a
/// token on the other's host (BadDeviceToken).
pub(super) fn start(
    set: &mut ProviderSet,
    specs: &ProviderSpecs,
    cleanup: &AnyStore,
) -> Result<(), String> {
    let config = &specs.apns_config;
    for app in &specs.apns {
        let clients = ApnsClient::start_both_live(config, &app.bundle_id, app.credential.clone())
            .map_err(|error| format!("providers.apns: {error}"))?;
        for client in clients {
            let key = ProviderKey {
                tenant: app.tenant.clone(),
                app: app.app.clone(),
                environment: client.environment(),
            };
            let settings = DispatcherSettings::new(
                &config.queues,
                config.max_in_flight,
                &config.retry,
                Some(cleanup),
                Platform::Apns,
            );
            set.insert(key, start_dispatcher(client, settings));
        }
    }
    Ok(())
}
