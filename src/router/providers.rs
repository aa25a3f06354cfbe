//! The providers one shard's router hands pushes to: one dispatcher per tenant, app and
//! environment, started on the shard's arbiter (its connections are the shard's own,
//! docs/architecture.md "one shard per core").
//!
//! The router sees every provider through the same two messages ([`Submit`], [`Withdraw`]),
//! so FCM, WNS and Web Push plug in here without touching the router.

use super::credentials::{AppCell, LiveCredentials, fingerprint};
use crate::config::{Config, SecretSource};
use crate::providers::apns::auth::ProviderTokenCache;
use crate::providers::apns::client::{ApnsClient, ApnsCredential};
use crate::providers::dispatcher::{Dispatcher, DispatcherSettings, Submit, Withdraw};
use crate::providers::fcm::auth::{
    AccessTokenCache, AssertionSigner, DEFAULT_REFRESH_STALE_AFTER, ServiceAccount,
};
use crate::providers::fcm::client::{FcmAccount, FcmClient, ProjectPause};
use crate::providers::fcm::config::FcmConfig;
use crate::providers::live::Live;
use crate::providers::pool::tls::client_config;
use crate::providers::queue::QueueLimits;
use crate::providers::retry::RetrySettings;
use crate::providers::service::PushService;
use crate::providers::webpush::auth::VapidSigner;
use crate::providers::webpush::client::EndpointPolicy;
use crate::providers::webpush::origins::{WebPushApp, WebPushProvider};
use crate::providers::wns::auth::WnsCredential;
use crate::providers::wns::client::{WnsAccount, WnsClient};
use crate::providers::wns::config::{WnsAppAuth, WnsConfig};
use crate::push::Push;
use crate::registry::{AnyStore, Environment, Platform};
use actix::{Actor, Recipient};
use rustls::ClientConfig;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

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
    /// The team key's provider token (an empty one for an app that authenticates with its
    /// client certificate) and the TLS of its connections (the provider's, or with the
    /// app's client certificate), shared by every shard and environment; swapped by a reload.
    pub credential: Live<ApnsCredential>,
}

/// A Windows app with its credential.
#[derive(Clone)]
pub struct WnsApp {
    /// The tenant.
    pub tenant: String,
    /// The app id.
    pub app: String,
    /// The credential and its access token, shared by every shard; swapped by a reload.
    pub account: Live<WnsAccount>,
}

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
    /// shard (and, until a reload changes one of them, by every app of the same account, so
    /// a node holds one token per account and refreshes it once); swapped by a reload.
    pub account: Live<FcmAccount>,
    /// The project's quota pause, shared by every shard (FCM's quota is per project).
    pub pause: ProjectPause,
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
    /// Windows apps with credentials.
    pub wns: Vec<WnsApp>,
    /// WNS settings.
    pub wns_config: WnsConfig,
    /// TLS for WNS.
    pub wns_tls: Arc<ClientConfig>,
    /// FCM apps with service accounts.
    pub fcm: Vec<FcmApp>,
    /// FCM settings.
    pub fcm_config: FcmConfig,
    /// TLS for FCM and its token endpoint (web PKI, or the configured roots).
    pub fcm_tls: Arc<ClientConfig>,
    /// Web Push apps with their VAPID key, by (tenant, app).
    pub webpush: Vec<(String, String, WebPushApp)>,
    /// Where dead tokens are deleted.
    pub cleanup: AnyStore,
    /// Every app's credential cell, for reloads.
    pub credentials: LiveCredentials,
}

impl ProviderPlan {
    /// Reads every app credential of `config` (one provider token per team key, shared).
    /// Apps without a credential get no provider: their devices' pushes are rejected as
    /// `provider_not_configured`, and start-up says so.
    pub fn build(config: &Config, cleanup: AnyStore) -> Result<ProviderPlan, String> {
        let providers = &config.providers;
        let deprecated = [
            providers.apns.deprecations("providers.apns"),
            providers.fcm.deprecations("providers.fcm"),
            providers.wns.deprecations("providers.wns"),
            providers.webpush.deprecations("providers.webpush"),
        ];
        for warning in deprecated.iter().flatten() {
            tracing::warn!(%warning, "deprecated configuration key");
        }
        for (tenant, tenant_config) in &config.tenants {
            for (app, app_config) in &tenant_config.apps {
                crate::metrics::app_configured(app_config.platform, tenant, app);
            }
        }
        let credentials = LiveCredentials::default();
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
                let at = format!("tenants.{tenant}.apps.{app}");
                if let (Some(bundle_id), Some(certificate), Some(certificate_key)) = (
                    &app_config.bundle_id,
                    &app_config.certificate,
                    &app_config.certificate_key,
                ) {
                    let (tls, not_after) = apns_certificate_tls(
                        (tenant, app),
                        Some(bundle_id),
                        certificate,
                        certificate_key,
                        &at,
                        &apns_config,
                    )?;
                    crate::metrics::credential_expiry(Platform::Apns, tenant, app, not_after);
                    let credential = Live::new(ApnsCredential {
                        tokens: ProviderTokenCache::certificate(),
                        tls,
                        generation: 0,
                    });
                    let print = fingerprint(app_config).map_err(|error| format!("{at}.{error}"))?;
                    credentials.register(tenant, app, AppCell::Apns(credential.clone()), print);
                    apns.push(ApnsApp {
                        tenant: tenant.clone(),
                        app: app.clone(),
                        bundle_id: bundle_id.clone(),
                        credential,
                    });
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
                        "APNs app has no credential (team_id, key_id, key; or certificate, \
                         certificate_key): its devices cannot be rung"
                    );
                    continue;
                };
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
                let credential = Live::new(ApnsCredential {
                    tokens,
                    tls: Arc::clone(&apns_tls),
                    generation: 0,
                });
                let print = fingerprint(app_config).map_err(|error| format!("{at}.{error}"))?;
                credentials.register(tenant, app, AppCell::Apns(credential.clone()), print);
                apns.push(ApnsApp {
                    tenant: tenant.clone(),
                    app: app.clone(),
                    bundle_id: bundle_id.clone(),
                    credential,
                });
            }
        }
        let wns_config = config.providers.wns.clone();
        let wns_tls = client_config(wns_config.trusted_roots.as_deref())
            .map_err(|error| format!("providers.wns: {error}"))?;
        let mut wns = Vec::new();
        for (tenant, tenant_config) in &config.tenants {
            for (app, app_config) in &tenant_config.apps {
                if app_config.platform != Platform::Wns {
                    continue;
                }
                let (Some(package_sid), Some(secret)) =
                    (&app_config.package_sid, &app_config.client_secret)
                else {
                    tracing::warn!(
                        tenant,
                        app,
                        "WNS app has no credential (package_sid, client_secret): its devices \
                         cannot be rung"
                    );
                    continue;
                };
                let client_secret = secret.load().map_err(|error| {
                    format!("tenants.{tenant}.apps.{app}.client_secret: {error}")
                })?;
                let refresh_ahead = Duration::from_secs(wns_config.token_refresh_ahead_seconds);
                let auth = WnsAppAuth::of(
                    package_sid,
                    app_config.token_url.as_deref(),
                    app_config.scope.as_deref(),
                    app_config.client_id.as_deref(),
                    &wns_config,
                );
                let account = Live::new(WnsAccount {
                    grant: WnsCredential {
                        client_id: auth.client_id,
                        client_secret,
                        token_url: auth.token_url,
                        scope: auth.scope,
                    },
                    cache: AccessTokenCache::new(refresh_ahead, DEFAULT_REFRESH_STALE_AFTER),
                });
                let print = fingerprint(app_config)
                    .map_err(|error| format!("tenants.{tenant}.apps.{app}.{error}"))?;
                credentials.register(tenant, app, AppCell::Wns(account.clone()), print);
                wns.push(WnsApp {
                    tenant: tenant.clone(),
                    app: app.clone(),
                    account,
                });
            }
        }
        let fcm_config = config.providers.fcm.clone();
        let fcm_tls = client_config(fcm_config.trusted_roots.as_deref())
            .map_err(|error| format!("providers.fcm: {error}"))?;
        let fcm = fcm_apps(config, &fcm_config, &credentials)?;
        Ok(ProviderPlan {
            apns,
            apns_config,
            apns_tls,
            wns,
            wns_config,
            wns_tls,
            fcm,
            fcm_config,
            fcm_tls,
            webpush: webpush_apps(config, &cleanup, &credentials)?,
            cleanup,
            credentials,
        })
    }
}

/// The TLS configuration of an APNs app that authenticates with its client certificate, and
/// the certificate's expiry (UNIX seconds) for `ringcast_credential_expiry_seconds`: the
/// certificate loaded (an expired one stops start-up, or refuses a reload), its expiry
/// logged when it is near.
pub(crate) fn apns_certificate_tls(
    (tenant, app): (&str, &str),
    bundle_id: Option<&str>,
    certificate: &SecretSource,
    certificate_key: &SecretSource,
    at: &str,
    config: &crate::providers::apns::config::ApnsConfig,
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

/// Every Web Push app with a VAPID key and subject, its signer made once for the node (the
/// per-origin token cache is shared by every shard). Apps without them get no provider.
fn webpush_apps(
    config: &Config,
    cleanup: &AnyStore,
    credentials: &LiveCredentials,
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
            let signer = Live::new(signer);
            let print = fingerprint(app_config).map_err(|error| format!("{at}.{error}"))?;
            credentials.register(tenant, app, AppCell::WebPush(signer.clone()), print);
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

/// Reads every FCM app's service account: one signer and one access-token cache per account
/// (by e-mail and token URI), one quota pause per project, shared by every shard.
fn fcm_apps(
    config: &Config,
    fcm_config: &FcmConfig,
    credentials: &LiveCredentials,
) -> Result<Vec<FcmApp>, String> {
    let mut accounts: HashMap<(String, String), (AssertionSigner, AccessTokenCache)> =
        HashMap::new();
    let mut pauses: HashMap<String, ProjectPause> = HashMap::new();
    let mut fcm = Vec::new();
    for (tenant, tenant_config) in &config.tenants {
        for (app, app_config) in &tenant_config.apps {
            if app_config.platform != Platform::Fcm {
                continue;
            }
            let (Some(project_id), Some(source)) =
                (&app_config.project_id, &app_config.service_account)
            else {
                tracing::warn!(
                    tenant,
                    app,
                    "FCM app has no credential (project_id, service_account): its devices \
                     cannot be rung"
                );
                continue;
            };
            let at = format!("tenants.{tenant}.apps.{app}.service_account");
            let json = source.load().map_err(|error| format!("{at}: {error}"))?;
            let account = ServiceAccount::from_json(json.expose())
                .map_err(|error| format!("{at}: {error}"))?;
            let key = (account.client_email.clone(), account.token_uri.clone());
            let (signer, tokens) = match accounts.get(&key) {
                Some(shared) => shared.clone(),
                None => {
                    let signer =
                        AssertionSigner::new(&account).map_err(|error| format!("{at}: {error}"))?;
                    let tokens = AccessTokenCache::new(
                        fcm_config.token_refresh_ahead(),
                        DEFAULT_REFRESH_STALE_AFTER,
                    );
                    accounts.insert(key, (signer.clone(), tokens.clone()));
                    (signer, tokens)
                }
            };
            let account = Live::new(FcmAccount {
                grant: signer,
                cache: tokens,
            });
            let print = fingerprint(app_config)
                .map_err(|error| format!("tenants.{tenant}.apps.{app}.{error}"))?;
            credentials.register(tenant, app, AppCell::Fcm(account.clone()), print);
            fcm.push(FcmApp {
                tenant: tenant.clone(),
                app: app.clone(),
                project_id: project_id.clone(),
                account,
                pause: pauses.entry(project_id.clone()).or_default().clone(),
            });
        }
    }
    Ok(fcm)
}

/// One shard's providers.
#[derive(Clone, Default)]
pub struct ProviderSet {
    /// The providers by key, aliases included.
    providers: HashMap<ProviderKey, ProviderHandle>,
    /// Keys that answer with another key's provider (FCM's sandbox key), skipped when every
    /// provider of a tenant is visited, so each provider is visited once.
    aliases: HashSet<ProviderKey>,
}

impl ProviderSet {
    /// Starts the plan's providers on the current arbiter (call it on the shard's thread).
    pub fn start(plan: &ProviderPlan) -> Result<ProviderSet, String> {
        let mut set = ProviderSet::default();
        let cleanup = &plan.cleanup;
        let config = &plan.apns_config;
        for app in &plan.apns {
            // One provider per environment: production and sandbox are different hosts. They
            // share their pools, so each can try a token on the other's host (BadDeviceToken).
            let clients =
                ApnsClient::start_both_live(config, &app.bundle_id, app.credential.clone())
                    .map_err(|error| format!("providers.apns: {error}"))?;
            for client in clients {
                let environment = client.environment();
                let settings = dispatcher_settings(
                    &config.queues,
                    config.max_in_flight,
                    &config.retry,
                    cleanup,
                    Platform::Apns,
                );
                let key = ProviderKey {
                    tenant: app.tenant.clone(),
                    app: app.app.clone(),
                    environment,
                };
                set.insert(key, start_dispatcher(client, settings));
            }
        }
        let config = &plan.wns_config;
        for app in &plan.wns {
            let client =
                WnsClient::start_live(config, app.account.clone(), Arc::clone(&plan.wns_tls))
                    .map_err(|error| format!("providers.wns: {error}"))?;
            let settings = dispatcher_settings(
                &config.queues,
                config.max_in_flight,
                &config.retry,
                cleanup,
                Platform::Wns,
            );
            set.insert_everywhere(&app.tenant, &app.app, start_dispatcher(client, settings));
        }
        let config = &plan.fcm_config;
        for app in &plan.fcm {
            let client = FcmClient::start_live(
                config,
                &app.project_id,
                app.account.clone(),
                app.pause.clone(),
                Arc::clone(&plan.fcm_tls),
            )
            .map_err(|error| format!("tenants.{}.apps.{}: {error}", app.tenant, app.app))?;
            let settings = dispatcher_settings(
                &config.queues,
                config.max_in_flight,
                &config.retry,
                cleanup,
                Platform::Fcm,
            );
            set.insert_everywhere(&app.tenant, &app.app, start_dispatcher(client, settings));
        }
        // Web Push: one provider per app (its dispatchers are per origin, inside it).
        for (tenant, app, webpush) in &plan.webpush {
            let provider = WebPushProvider::new(webpush.clone()).start();
            let handle = ProviderHandle {
                submit: provider.clone().recipient(),
                withdraw: provider.recipient(),
            };
            set.insert_everywhere(tenant, app, handle);
        }
        Ok(set)
    }

    /// Adds a provider of a service without environments (FCM, WNS, Web Push): inserted under
    /// production, and found for a sandbox registration too.
    fn insert_everywhere(&mut self, tenant: &str, app: &str, handle: ProviderHandle) {
        let key = |environment| ProviderKey {
            tenant: tenant.to_owned(),
            app: app.to_owned(),
            environment,
        };
        self.insert(key(Environment::Production), handle.clone());
        self.insert_alias(key(Environment::Sandbox), handle);
    }

    /// Adds a provider.
    pub fn insert(&mut self, key: ProviderKey, handle: ProviderHandle) {
        self.aliases.remove(&key);
        self.providers.insert(key, handle);
    }

    /// Makes `key` find `handle`, a provider already inserted under another key (a service
    /// without environments answers for both).
    pub fn insert_alias(&mut self, key: ProviderKey, handle: ProviderHandle) {
        self.aliases.insert(key.clone());
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
            .filter(move |(key, _)| key.tenant == tenant && !self.aliases.contains(*key))
            .map(|(_, handle)| handle)
    }

    /// How many providers there are (an alias is not another provider).
    pub fn len(&self) -> usize {
        self.providers.len() - self.aliases.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

/// The settings of one provider's dispatcher.
fn dispatcher_settings(
    queues: &QueueLimits,
    max_in_flight: usize,
    retry: &RetrySettings,
    cleanup: &AnyStore,
    platform: Platform,
) -> DispatcherSettings {
    DispatcherSettings {
        queues: queues.clone(),
        max_in_flight,
        retry: retry.clone(),
        cleanup: Some(cleanup.clone()),
        platform,
    }
}

/// Starts `client`'s dispatcher on the current arbiter: the handle the router talks to.
fn start_dispatcher<S: PushService>(client: S, settings: DispatcherSettings) -> ProviderHandle {
    let dispatcher = Dispatcher::new(client, settings).start();
    ProviderHandle {
        submit: dispatcher.clone().recipient(),
        withdraw: dispatcher.recipient(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, TenantConfig};
    use crate::registry::embedded::EmbeddedStore;

    /// A config with one tenant whose two Android apps share the development service
    /// account, and an iOS app without a credential.
    fn config() -> Config {
        let android = |project: &str| AppConfig {
            project_id: Some(project.into()),
            // Absolute: other tests in this binary change the working directory (figment's
            // `Jail`), so a relative path would be read from wherever they left it.
            service_account: Some(SecretSource::File(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/config/dev/fcm-service-account.json"
                )
                .into(),
            )),
            ..AppConfig::new(Platform::Fcm)
        };
        let mut config = Config::default();
        // Nothing listens there: the pools' connection attempts fail quietly in the background.
        config.providers.fcm.base_url = "https://127.0.0.1:9".into();
        let tenant = TenantConfig {
            server_keys: Vec::new(),
            identity_tokens: None,
            max_ttl_seconds: 86_400,
            ttl_caps: Vec::new(),
            ring_timeout_seconds: 45,
            apps: [
                ("android".to_owned(), android("ringcast-demo")),
                ("android-beta".to_owned(), android("ringcast-demo")),
                ("ios".to_owned(), AppConfig::new(Platform::Apns)),
            ]
            .into(),
            limits: Default::default(),
        };
        config.tenants.insert("demo".into(), tenant);
        config
    }

    #[actix_rt::test]
    async fn an_fcm_app_gets_one_provider_found_under_either_environment() {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Embedded(EmbeddedStore::open(dir.path().join("r.redb"), 32).unwrap());
        let plan = ProviderPlan::build(&config(), store).unwrap();
        assert_eq!(plan.fcm.len(), 2);
        assert!(plan.apns.is_empty(), "the iOS app has no credential");
        // One quota pause per project, shared by both apps (and every shard's clients).
        plan.fcm[0].pause.extend_to(42);
        assert_eq!(plan.fcm[1].pause.until(), Some(42));

        let set = ProviderSet::start(&plan).unwrap();
        let key = |app: &str, environment| ProviderKey {
            tenant: "demo".into(),
            app: app.into(),
            environment,
        };
        for app in ["android", "android-beta"] {
            assert!(set.get(&key(app, Environment::Production)).is_some());
            assert!(set.get(&key(app, Environment::Sandbox)).is_some());
        }
        assert!(set.get(&key("ios", Environment::Production)).is_none());
        // Two providers, each visited once when a call's rings are withdrawn.
        assert_eq!(set.len(), 2);
        assert_eq!(set.of_tenant("demo").count(), 2);
    }
}
