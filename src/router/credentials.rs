//! The apps' push credentials as a reload sees them (README, "Configuration" → "Reload").
//!
//! At start [`crate::providers::wiring::ProviderSpecs::build`] puts every app's credential in a
//! [`Live`] cell that all of the app's clients (every router, both APNs environments) read per
//! request or per token refresh, and registers the cell here with a [`Fingerprint`] of what
//! the credential was made from. A reload then:
//!
//! 1. fingerprints every app of the new file (reading each secret again, so a file replaced
//!    under the same name counts as a change) — an unreadable one refuses the reload;
//! 2. for each app whose fingerprint changed, makes the new credential (a new provider-token
//!    cache with the new `.p8` and key id, a new service account with an empty access-token
//!    cache, ...) — nothing is swapped yet, so a bad credential refuses the whole reload;
//! 3. on success swaps the cells: the next APNs push is signed with the new key (the cached
//!    JWT went with the old cache), the next FCM or WNS push fetches an access token with the
//!    new credential. FCM, WNS and Web Push connections are not touched (their TLS does not
//!    depend on the credential). An APNs app's connections are renewed by the first push
//!    that sees the new credential (`ApnsClient`): a client certificate is bound into the
//!    connection, and Apple lets a connection take a new provider token only every 20
//!    minutes; streams in flight finish on the old connections. Apps whose credential did
//!    not change keep their connections and cached tokens.
//!
//! What a cell cannot carry is named as needing a restart, per app (`tenants.t.apps.a`): an
//! app added or removed, a changed platform, bundle id, Firebase project or WNS package SID
//! (they address the requests), an app gaining or losing a credential or switching between
//! APNs token and certificate auth (it has no provider, or gets one, or another kind), and a
//! changed FCM `token_uri` or WNS `token_url` (the token connections' origin).

use crate::config::{AppConfig, Config};
use crate::providers::apns::auth::ProviderTokenCache;
use crate::providers::apns::client::ApnsCredential;
use crate::providers::fcm::auth::{
    AccessTokenCache, DEFAULT_REFRESH_STALE_AFTER, read_service_account,
};
use crate::providers::fcm::client::FcmAccount;
use crate::providers::live::Live;
use crate::providers::webpush::auth::VapidSigner;
use crate::providers::wns::auth::WnsCredential;
use crate::providers::wns::client::WnsAccount;
use crate::vocab::Platform;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A digest of everything one app's credential is made from: its credential fields and the
/// bytes of its secrets. Equal fingerprints, same credential.
pub type Fingerprint = [u8; 32];

/// (tenant, app).
type AppId = (String, String);

/// One app's cell, by what it holds.
#[derive(Clone)]
pub enum AppCell {
    /// An APNs app: its provider-token cache (token auth) or client certificate.
    Apns(Live<ApnsCredential>),
    /// An FCM app: its service account and access token.
    Fcm(Live<FcmAccount>),
    /// A WNS app: its credential and access token.
    Wns(Live<WnsAccount>),
    /// A Web Push app: its VAPID signer.
    WebPush(Live<VapidSigner>),
}

/// Every app's cell, shared by the provider plan (which fills it) and the reloader.
#[derive(Clone, Default)]
pub struct LiveCredentials {
    apps: Arc<Mutex<BTreeMap<AppId, (AppCell, Fingerprint)>>>,
}

/// A replacement made and checked, not yet applied.
enum Swap {
    /// With the certificate's expiry (UNIX seconds), for certificate auth.
    Apns(Live<ApnsCredential>, ApnsCredential, Option<i64>),
    /// Boxed: a parsed RSA key is large, and a reload holds a handful of these.
    Fcm(Live<FcmAccount>, Box<FcmAccount>),
    Wns(Live<WnsAccount>, WnsAccount),
    WebPush(Live<VapidSigner>, VapidSigner),
}

/// What a reload does to the credentials: built by [`LiveCredentials::prepare`], applied by
/// [`LiveCredentials::apply`].
#[derive(Default)]
pub struct CredentialReload {
    swaps: Vec<(AppId, Fingerprint, Swap)>,
    /// Apps whose change needs a restart (`tenants.t.apps.a`).
    pub restart_needed: Vec<String>,
}

impl CredentialReload {
    /// The apps whose credential the reload replaces (`tenants.t.apps.a`).
    pub fn swapped(&self) -> Vec<String> {
        self.swaps
            .iter()
            .map(|((tenant, app), _, _)| format!("tenants.{tenant}.apps.{app}"))
            .collect()
    }
}

impl LiveCredentials {
    /// Records `tenant`'s app `app`'s cell, made from a credential with `fingerprint`.
    pub fn register(&self, tenant: &str, app: &str, cell: AppCell, fingerprint: Fingerprint) {
        self.lock()
            .insert((tenant.to_owned(), app.to_owned()), (cell, fingerprint));
    }

    /// Reads and makes every changed credential of `new` (the configuration `running`
    /// becomes), without applying anything. `Err` lists every credential that cannot be
    /// read or made; then nothing may be applied.
    pub fn prepare(&self, running: &Config, new: &Config) -> Result<CredentialReload, Vec<String>> {
        let apps = self.lock();
        let mut reload = CredentialReload::default();
        let mut problems = Vec::new();
        for (tenant, app) in app_ids(running).union(&app_ids(new)) {
            let at = format!("tenants.{tenant}.apps.{app}");
            let before = running.tenants.get(tenant).and_then(|t| t.apps.get(app));
            let after = new.tenants.get(tenant).and_then(|t| t.apps.get(app));
            let (Some(before), Some(after)) = (before, after) else {
                reload.restart_needed.push(at);
                continue;
            };
            if shape(before) != shape(after) {
                reload.restart_needed.push(at);
                continue;
            }
            // Same shape and no cell: the app had no credential and still has none.
            let Some((cell, running_print)) = apps.get(&(tenant.clone(), app.clone())) else {
                continue;
            };
            let print = match fingerprint(after) {
                Ok(print) => print,
                Err(error) => {
                    problems.push(format!("{at}.{error}"));
                    continue;
                }
            };
            if print == *running_print {
                continue;
            }
            match make(cell, after, new, (tenant, app)) {
                Ok(Some(swap)) => reload
                    .swaps
                    .push(((tenant.clone(), app.clone()), print, swap)),
                Ok(None) => reload.restart_needed.push(at),
                Err(error) => problems.push(format!("{at}.{error}")),
            }
        }
        if problems.is_empty() {
            Ok(reload)
        } else {
            Err(problems)
        }
    }

    /// Swaps in every credential `reload` made. Cannot fail: everything was made already.
    pub fn apply(&self, reload: CredentialReload) {
        let mut apps = self.lock();
        for (id, print, swap) in reload.swaps {
            match swap {
                Swap::Apns(cell, value, not_after) => {
                    if let Some(not_after) = not_after {
                        let (tenant, app) = &id;
                        crate::metrics::credential_expiry(Platform::Apns, tenant, app, not_after);
                    }
                    cell.replace(value);
                }
                Swap::Fcm(cell, value) => cell.replace(*value),
                Swap::Wns(cell, value) => cell.replace(value),
                Swap::WebPush(cell, value) => cell.replace(value),
            }
            if let Some(entry) = apps.get_mut(&id) {
                entry.1 = print;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AppId, (AppCell, Fingerprint)>> {
        // The map is only ever changed entry by entry; a panic cannot leave one half-written.
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every (tenant, app) of `config`.
fn app_ids(config: &Config) -> BTreeSet<AppId> {
    config
        .tenants
        .iter()
        .flat_map(|(tenant, t)| t.apps.keys().map(|app| (tenant.clone(), app.clone())))
        .collect()
}

/// What of an app a reload cannot change live: the platform and what addresses its requests
/// or its connections, and which credential keys are present at all.
fn shape(app: &AppConfig) -> impl PartialEq + use<> {
    let (addressing, present) = match app {
        AppConfig::Apns(apns) => (
            vec![apns.bundle_id.clone()],
            vec![apns.team_id.is_some(), apns.key_id.is_some()],
        ),
        AppConfig::Fcm(fcm) => (vec![fcm.project_id.clone()], Vec::new()),
        AppConfig::Wns(wns) => (
            vec![wns.package_sid.clone(), wns.token_url.clone()],
            Vec::new(),
        ),
        AppConfig::Webpush(web) => (Vec::new(), vec![web.vapid_subject.is_some()]),
    };
    let secrets = app
        .secrets()
        .into_iter()
        .map(|(_, source)| source.is_some());
    (
        app.platform(),
        addressing,
        present.into_iter().chain(secrets).collect::<Vec<bool>>(),
    )
}

/// The fingerprint of `app`'s credential, reading its secrets now. The error starts with the
/// key's name (the caller prefixes the app's key).
pub fn fingerprint(app: &AppConfig) -> Result<Fingerprint, String> {
    let mut digest = crate::sha256::Hasher::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so no two different field lists hash alike.
        digest.update(&(bytes.len() as u64).to_be_bytes());
        digest.update(bytes);
    };
    let texts = match app {
        AppConfig::Apns(apns) => vec![apns.team_id.as_deref(), apns.key_id.as_deref()],
        AppConfig::Fcm(_) => Vec::new(),
        AppConfig::Wns(wns) => vec![wns.client_id.as_deref(), wns.scope.as_deref()],
        AppConfig::Webpush(web) => vec![web.vapid_subject.as_deref()],
    };
    for text in texts {
        field(text.unwrap_or("\0").as_bytes());
    }
    for (name, source) in app.secrets() {
        match source {
            Some(source) => {
                let secret = source.load().map_err(|error| format!("{name}: {error}"))?;
                field(secret.expose());
            }
            None => field(b"\0"),
        }
    }
    Ok(digest.finish())
}

/// The new credential for `cell` from `app` (of `config`); `None` when the change cannot be
/// carried by the cell (module doc), so the app needs a restart.
fn make(
    cell: &AppCell,
    app: &AppConfig,
    config: &Config,
    who: (&str, &str),
) -> Result<Option<Swap>, String> {
    Ok(Some(match (cell, app) {
        (AppCell::Apns(cell), AppConfig::Apns(app)) => {
            let running = cell.load();
            let generation = running.generation + 1;
            if let (Some(certificate), Some(certificate_key)) =
                (&app.certificate, &app.certificate_key)
            {
                // The caller prefixes the app's key: strip the loader's separator.
                let (tls, not_after) = crate::providers::wiring::apns::certificate_tls(
                    who,
                    app.bundle_id.as_deref(),
                    certificate,
                    certificate_key,
                    "",
                    &config.providers.apns,
                )
                .map_err(|error| error.trim_start_matches('.').to_owned())?;
                let credential = ApnsCredential {
                    tokens: ProviderTokenCache::certificate(),
                    tls,
                    generation,
                };
                return Ok(Some(Swap::Apns(cell.clone(), credential, Some(not_after))));
            }
            let (Some(team), Some(key_id), Some(key)) = (&app.team_id, &app.key_id, &app.key)
            else {
                return Ok(None);
            };
            let pem = key.load().map_err(|error| format!("key: {error}"))?;
            let refresh = config.providers.apns.jwt_refresh_age();
            let tokens = ProviderTokenCache::new(team, key_id, pem.expose(), refresh)
                .map_err(|error| format!("key: {error}"))?;
            let credential = ApnsCredential {
                tokens,
                tls: Arc::clone(&running.tls),
                generation,
            };
            Swap::Apns(cell.clone(), credential, None)
        }
        (AppCell::Fcm(cell), AppConfig::Fcm(app)) => {
            let Some(source) = &app.service_account else {
                return Ok(None);
            };
            let json = source
                .load()
                .map_err(|error| format!("service_account: {error}"))?;
            let (account, signer) = read_service_account(json.expose())
                .map_err(|error| format!("service_account: {error}"))?;
            if account.token_uri != cell.load().grant.token_uri() {
                return Ok(None);
            }
            let cache = AccessTokenCache::new(
                config.providers.fcm.token_refresh_ahead(),
                DEFAULT_REFRESH_STALE_AFTER,
            );
            Swap::Fcm(
                cell.clone(),
                Box::new(FcmAccount {
                    grant: signer,
                    cache,
                }),
            )
        }
        (AppCell::Wns(cell), AppConfig::Wns(app)) => {
            let wns = &config.providers.wns;
            let (Some(auth), Some(secret)) = (app.auth(wns), &app.client_secret) else {
                return Ok(None);
            };
            let client_secret = secret
                .load()
                .map_err(|error| format!("client_secret: {error}"))?;
            if auth.token_url != cell.load().grant.token_url {
                return Ok(None);
            }
            let credential = WnsCredential {
                client_id: auth.client_id,
                client_secret,
                token_url: auth.token_url,
                scope: auth.scope,
            };
            let cache = AccessTokenCache::new(
                Duration::from_secs(wns.token_refresh_ahead_seconds),
                DEFAULT_REFRESH_STALE_AFTER,
            );
            Swap::Wns(
                cell.clone(),
                WnsAccount {
                    grant: credential,
                    cache,
                },
            )
        }
        (AppCell::WebPush(cell), AppConfig::Webpush(app)) => {
            let (Some(key), Some(subject)) = (&app.vapid_key, &app.vapid_subject) else {
                return Ok(None);
            };
            let pem = key.load().map_err(|error| format!("vapid_key: {error}"))?;
            let validity = config.providers.webpush.vapid_validity();
            let signer = VapidSigner::new(pem.expose(), subject, validity)
                .map_err(|error| format!("vapid_key: {error}"))?;
            Swap::WebPush(cell.clone(), signer)
        }
        // Another platform: [`shape`] sends it to a restart before it gets here.
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests;
