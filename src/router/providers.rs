//! The providers one shard's router hands pushes to: one dispatcher per tenant, app and
//! environment, started on the shard's arbiter (its connections are the shard's own,
//! DESIGN.md "one shard per core").
//!
//! The router sees every provider through the same two messages ([`Submit`], [`Withdraw`]),
//! so FCM, WNS and Web Push plug in here without touching the router.

use crate::config::Config;
use crate::providers::apns::auth::ProviderTokenCache;
use crate::providers::apns::client::ApnsClient;
use crate::providers::dispatcher::{Dispatcher, DispatcherSettings, Submit, Withdraw};
use crate::providers::pool::tls::client_config;
use crate::providers::webpush::auth::VapidSigner;
use crate::providers::webpush::client::EndpointPolicy;
use crate::providers::webpush::origins::{WebPushApp, WebPushProvider};
use crate::push::Push;
use crate::registry::{AnyStore, Environment, Platform};
use actix::{Actor, Recipient};
use rustls::ClientConfig;
use std::collections::HashMap;
use std::sync::Arc;

/// Which provider a push goes to.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ProviderKey {
    /// The tenant (credentials are per tenant app).
    pub tenant: String,
    /// The tenant's app id.
    pub app: String,
    /// APNs production or sandbox (one host each); other services have one.
    pub environment: Environment,
}

impl ProviderKey {
    /// The provider of `push`.
    pub fn of(push: &Push) -> ProviderKey {
        ProviderKey {
            tenant: push.who.tenant.clone(),
            app: push.app.clone(),
            environment: push.environment,
        }
    }
}

/// A started provider, as the router sees it.
#[derive(Clone)]
pub struct ProviderHandle {
    /// Queues pushes.
    pub submit: Recipient<Submit>,
    /// Withdraws a call's queued rings.
    pub withdraw: Recipient<Withdraw>,
}

/// An APNs app with its credential, ready to start clients for.
#[derive(Clone)]
pub struct ApnsApp {
    /// The tenant.
    pub tenant: String,
    /// The app id.
    pub app: String,
    /// The bundle id (`apns-topic`).
    pub bundle_id: String,
    /// The team key's provider token, shared by every shard and environment.
    pub tokens: ProviderTokenCache,
}

/// Everything a shard needs to start its providers; built once per node, cloned per shard.
#[derive(Clone)]
pub struct ProviderPlan {
    /// APNs apps with token credentials.
    pub apns: Vec<ApnsApp>,
    /// APNs settings.
    pub apns_config: crate::providers::apns::config::ApnsConfig,
    /// TLS for APNs (web PKI, or the configured roots).
    pub apns_tls: Arc<ClientConfig>,
    /// Web Push apps with their VAPID key, by (tenant, app).
    pub webpush: Vec<(String, String, WebPushApp)>,
    /// Where dead tokens are deleted.
    pub cleanup: AnyStore,
}

impl ProviderPlan {
    /// Reads every app credential of `config` (one provider token per team key, shared).
    /// Apps without a credential get no provider: their devices' pushes are rejected as
    /// `provider_not_configured`, and start-up says so.
    pub fn build(config: &Config, cleanup: AnyStore) -> Result<ProviderPlan, String> {
        let apns_config = config.providers.apns.clone();
        let apns_tls = client_config(apns_config.trusted_roots.as_deref())
            .map_err(|error| format!("providers.apns: {error}"))?;
        let mut caches: HashMap<(String, String), ProviderTokenCache> = HashMap::new();
        let mut apns = Vec::new();
        for (tenant, tenant_config) in &config.tenants {
            for (app, app_config) in &tenant_config.apps {
                if app_config.platform != Platform::Apns {
                    continue;
                }
                let (Some(bundle_id), Some(team), Some(key_id), Some(key)) = (
                    &app_config.bundle_id,
                    &app_config.team_id,
                    &app_config.key_id,
                    &app_config.key,
                ) else {
                    tracing::warn!(
                        tenant,
                        app,
                        "APNs app has no token credential (team_id, key_id, key): its devices \
                         cannot be rung"
                    );
                    continue;
                };
                let at = format!("tenants.{tenant}.apps.{app}");
                let tokens = match caches.get(&(team.clone(), key_id.clone())) {
                    Some(tokens) => tokens.clone(),
                    None => {
                        let pem = key.load().map_err(|error| format!("{at}.key: {error}"))?;
                        let tokens = ProviderTokenCache::new(
                            team,
                            key_id,
                            pem.expose(),
                            apns_config.jwt_refresh_age(),
                        )
                        .map_err(|error| format!("{at}.key: {error}"))?;
                        caches.insert((team.clone(), key_id.clone()), tokens.clone());
                        tokens
                    }
                };
                apns.push(ApnsApp {
                    tenant: tenant.clone(),
                    app: app.clone(),
                    bundle_id: bundle_id.clone(),
                    tokens,
                });
            }
        }
        let webpush = webpush_apps(config, &cleanup)?;
        Ok(ProviderPlan {
            apns,
            apns_config,
            apns_tls,
            webpush,
            cleanup,
        })
    }
}

/// Every Web Push app with a VAPID key and subject, its signer made once for the node (the
/// per-origin token cache is shared by every shard). Apps without them get no provider.
fn webpush_apps(
    config: &Config,
    cleanup: &AnyStore,
) -> Result<Vec<(String, String, WebPushApp)>, String> {
    let provider = &config.providers.webpush;
    let mut apps = Vec::new();
    let mut tls = None;
    for (tenant, tenant_config) in &config.tenants {
        for (app, app_config) in &tenant_config.apps {
            if app_config.platform != Platform::Webpush {
                continue;
            }
            let (Some(key), Some(subject)) = (&app_config.vapid_key, &app_config.vapid_subject)
            else {
                tracing::warn!(
                    tenant,
                    app,
                    "Web Push app has no VAPID credential (vapid_key, vapid_subject): its \
                     browsers cannot be rung"
                );
                continue;
            };
            let at = format!("tenants.{tenant}.apps.{app}");
            let pem = key
                .load()
                .map_err(|error| format!("{at}.vapid_key: {error}"))?;
            let signer = VapidSigner::new(pem.expose(), subject, provider.vapid_validity())
                .map_err(|error| format!("{at}.vapid_key: {error}"))?;
            let tls = match &tls {
                Some(tls) => Arc::clone(tls),
                None => {
                    let made = client_config(provider.trusted_roots.as_deref())
                        .map_err(|error| format!("providers.webpush: {error}"))?;
                    tls = Some(Arc::clone(&made));
                    made
                }
            };
            apps.push((
                tenant.clone(),
                app.clone(),
                WebPushApp {
                    config: provider.clone(),
                    policy: EndpointPolicy {
                        allowed_hosts: config.webpush.allowed_hosts.clone().into(),
                        guard: config.webpush.address_guard(),
                    },
                    signer,
                    tls,
                    cleanup: Some(cleanup.clone()),
                },
            ));
        }
    }
    Ok(apps)
}

/// One shard's providers.
#[derive(Clone, Default)]
pub struct ProviderSet {
    providers: HashMap<ProviderKey, ProviderHandle>,
}

impl ProviderSet {
    /// Starts the plan's providers on the current arbiter (call it on the shard's thread).
    pub fn start(plan: &ProviderPlan) -> Result<ProviderSet, String> {
        let mut set = ProviderSet::default();
        let config = &plan.apns_config;
        for app in &plan.apns {
            for environment in [Environment::Production, Environment::Sandbox] {
                let client = ApnsClient::start(
                    config,
                    environment,
                    &app.bundle_id,
                    app.tokens.clone(),
                    Arc::clone(&plan.apns_tls),
                )
                .map_err(|error| format!("providers.apns: {error}"))?;
                let dispatcher = Dispatcher::new(
                    client,
                    DispatcherSettings {
                        queues: config.queues.clone(),
                        max_in_flight: config.max_in_flight,
                        retry: config.retry.clone(),
                        cleanup: Some(plan.cleanup.clone()),
                        platform: Platform::Apns,
                    },
                )
                .start();
                set.insert(
                    ProviderKey {
                        tenant: app.tenant.clone(),
                        app: app.app.clone(),
                        environment,
                    },
                    ProviderHandle {
                        submit: dispatcher.clone().recipient(),
                        withdraw: dispatcher.recipient(),
                    },
                );
            }
        }
        // Web Push has no environments: one provider per app, under both keys.
        for (tenant, app, webpush) in &plan.webpush {
            let provider = WebPushProvider::new(webpush.clone()).start();
            for environment in [Environment::Production, Environment::Sandbox] {
                set.insert(
                    ProviderKey {
                        tenant: tenant.clone(),
                        app: app.clone(),
                        environment,
                    },
                    ProviderHandle {
                        submit: provider.clone().recipient(),
                        withdraw: provider.clone().recipient(),
                    },
                );
            }
        }
        Ok(set)
    }

    /// Adds a provider.
    pub fn insert(&mut self, key: ProviderKey, handle: ProviderHandle) {
        self.providers.insert(key, handle);
    }

    /// The provider of `key`, if one is configured.
    pub fn get(&self, key: &ProviderKey) -> Option<&ProviderHandle> {
        self.providers.get(key)
    }

    /// Every provider of `tenant` (a call's rings may be queued at any of them).
    pub fn of_tenant<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a ProviderHandle> {
        self.providers
            .iter()
            .filter(move |(key, _)| key.tenant == tenant)
            .map(|(_, handle)| handle)
    }

    /// How many providers there are.
    pub fn len(&self) -> usize {
        self.providers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}
