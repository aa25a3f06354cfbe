//! The providers a router hands pushes to: one dispatcher per tenant, app and
//! environment (one per origin, behind one actor, for Web Push and WNS), started on the
//! router's thread (its connections are the router's own, docs/architecture.md "Threads,
//! actors and mailboxes").
//!
//! Start-up wiring, in two steps: [`ProviderSpecs::build`] reads every app's credential once
//! for the node (part of the start-up plan, `crate::plan`), and [`ProviderSet::start`] starts
//! one router's providers from it. Each platform's part is a file here (`apns`, `fcm`, `wns`,
//! `webpush`). The router sees every provider through the same two messages ([`Submit`],
//! [`Withdraw`]), behind a [`ProviderKey`].

pub mod apns;
pub mod fcm;
pub mod webpush;
pub mod wns;

use crate::config::{AppConfig, Config};
use crate::providers::dispatcher::{Dispatcher, DispatcherSettings, Submit, Withdraw};
use crate::providers::origins::{OriginService, OriginsProvider};
use crate::providers::pool::tls::client_config;
use crate::providers::service::PushService;
use crate::providers::webpush::origins::WebPushApp;
use crate::push::Push;
use crate::registry::AnyStore;
use crate::router::credentials::{Fingerprint, LiveCredentials, fingerprint};
use crate::vocab::Environment;
use actix::{Actor, Recipient};
use rustls::ClientConfig;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// `result`'s value, or `None` with its error noted in `problems` (worded by `say`): the
/// start-up wiring reports every app's problem at once rather than stopping at the first,
/// so each platform's file notes a problem and goes on with the next app.
pub(super) fn or_problem<T, E>(
    result: Result<T, E>,
    problems: &mut Vec<String>,
    say: impl FnOnce(E) -> String,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            problems.push(say(error));
            None
        }
    }
}

/// `app_config`'s credential fingerprint ([`fingerprint`]), its error named after `at`, the
/// app's place in the configuration (`tenants.<t>.apps.<a>`).
pub(super) fn fingerprint_at(app_config: &AppConfig, at: &str) -> Result<Fingerprint, String> {
    fingerprint(app_config).map_err(|error| format!("{at}.{error}"))
}

/// [`fingerprint_at`], or `None` with its problem noted in `problems`.
pub(super) fn fingerprint_or_problem(
    app_config: &AppConfig,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Fingerprint> {
    or_problem(fingerprint_at(app_config, at), problems, |problem| problem)
}

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

    /// Whether `push` goes to this provider: [`ProviderKey::of`] without building a key.
    pub fn is_of(&self, push: &Push) -> bool {
        self.environment == push.environment
            && self.app == push.app
            && self.tenant == push.who.tenant
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

/// Everything a router needs to start its providers: every app's credential read once for
/// the node (shared by every router), with each service's settings and TLS.
#[derive(Clone)]
pub struct ProviderSpecs {
    /// APNs apps with credentials.
    pub apns: Vec<apns::ApnsApp>,
    /// APNs settings.
    pub apns_config: crate::providers::apns::config::ApnsConfig,
    /// Windows apps with credentials.
    pub wns: Vec<wns::WnsApp>,
    /// WNS settings.
    pub wns_config: crate::providers::wns::config::WnsConfig,
    /// TLS for WNS.
    pub wns_tls: Arc<ClientConfig>,
    /// FCM apps with service accounts.
    pub fcm: Vec<fcm::FcmApp>,
    /// FCM settings.
    pub fcm_config: crate::providers::fcm::config::FcmConfig,
    /// TLS for FCM and its token endpoint (web PKI, or the configured roots).
    pub fcm_tls: Arc<ClientConfig>,
    /// Web Push apps with their VAPID key, by (tenant, app).
    pub webpush: Vec<(String, String, WebPushApp)>,
    /// Every app's credential cell, for reloads.
    pub credentials: LiveCredentials,
}

impl ProviderSpecs {
    /// Reads every app credential of `config`, or returns every problem found. Apps without a
    /// credential get no provider: their devices' pushes are rejected as
    /// `provider_not_configured`, and start-up says so.
    pub fn build(config: &Config) -> Result<ProviderSpecs, Vec<String>> {
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
        for (tenant, app, app_config) in apps_of(config) {
            crate::metrics::app_configured(app_config.platform(), tenant, app);
        }
        let tls = |name: &str, roots: Option<&std::path::Path>| {
            client_config(roots).map_err(|error| format!("providers.{name}: {error}"))
        };
        let (apns_tls, wns_tls, fcm_tls) = match (
            tls("apns", providers.apns.trusted_roots.as_deref()),
            tls("wns", providers.wns.trusted_roots.as_deref()),
            tls("fcm", providers.fcm.trusted_roots.as_deref()),
        ) {
            (Ok(apns), Ok(wns), Ok(fcm)) => (apns, wns, fcm),
            (apns, wns, fcm) => {
                return Err([apns.err(), wns.err(), fcm.err()]
                    .into_iter()
                    .flatten()
                    .collect());
            }
        };
        let mut problems = Vec::new();
        let credentials = LiveCredentials::default();
        let specs = ProviderSpecs {
            apns: apns::apps(config, &apns_tls, &credentials, &mut problems),
            apns_config: providers.apns.clone(),
            wns: wns::apps(config, &credentials, &mut problems),
            wns_config: providers.wns.clone(),
            wns_tls,
            fcm: fcm::apps(config, &credentials, &mut problems),
            fcm_config: providers.fcm.clone(),
            fcm_tls,
            webpush: webpush::apps(config, &credentials, &mut problems),
            credentials,
        };
        if problems.is_empty() {
            Ok(specs)
        } else {
            Err(problems)
        }
    }

    /// How many apps have a provider.
    pub fn len(&self) -> usize {
        self.apns.len() + self.wns.len() + self.fcm.len() + self.webpush.len()
    }

    /// Whether no app has a provider.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every app of `config`, with its tenant and id.
fn apps_of(config: &Config) -> impl Iterator<Item = (&String, &String, &AppConfig)> {
    config.tenants.iter().flat_map(|(tenant, tenant_config)| {
        tenant_config
            .apps
            .iter()
            .map(move |(app, app_config)| (tenant, app, app_config))
    })
}

/// One router's providers.
#[derive(Clone, Default)]
pub struct ProviderSet {
    /// The providers by key, aliases included.
    providers: HashMap<ProviderKey, ProviderHandle>,
    /// Keys that answer with another key's provider (FCM's sandbox key), skipped when every
    /// provider of a tenant is visited, so each provider is visited once.
    aliases: HashSet<ProviderKey>,
}

impl ProviderSet {
    /// Starts the providers of `specs` on the current arbiter (call it on the router's
    /// thread); dead tokens are deleted from `cleanup`, the router's store.
    pub fn start(specs: &ProviderSpecs, cleanup: &AnyStore) -> Result<ProviderSet, String> {
        let mut set = ProviderSet::default();
        apns::start(&mut set, specs, cleanup)?;
        wns::start(&mut set, specs, cleanup)?;
        fcm::start(&mut set, specs, cleanup)?;
        webpush::start(&mut set, specs, cleanup);
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

/// Starts `client`'s dispatcher on the current arbiter: the handle the router talks to.
fn start_dispatcher<S: PushService>(client: S, settings: DispatcherSettings) -> ProviderHandle {
    let dispatcher = Dispatcher::new(client, settings).start();
    ProviderHandle {
        submit: dispatcher.clone().recipient(),
        withdraw: dispatcher.recipient(),
    }
}

/// Starts the provider of a service with many origins (Web Push, WNS) on the current
/// arbiter: one actor for the app, its dispatchers per origin inside it.
fn start_origins<O: OriginService>(service: O) -> ProviderHandle {
    let provider = OriginsProvider::new(service).start();
    ProviderHandle {
        submit: provider.clone().recipient(),
        withdraw: provider.recipient(),
    }
}

#[cfg(test)]
mod tests;
