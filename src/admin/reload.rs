//! Live reload (README, "Configuration" → "Reload"): on SIGHUP or `POST /admin/reload`, the
//! configuration file is read again, validated as a whole and, only if every check passes,
//! its tenants (server keys, identity-token keys) and the API's TLS certificate replace the
//! old ones at once. A bad file changes nothing: the old configuration stays in use, the
//! reason is logged and answered, and `ringcast_config_reloads_total{outcome="refused"}`
//! counts it.
//!
//! The apps' push credentials are re-read and swapped with the rest
//! ([`crate::router::credentials`]): the next push uses the new key or account, and
//! connections stay open. What is not reloaded — listeners, store, shards, provider settings,
//! and per app what its connections or requests are addressed by (platform, bundle id,
//! project, token endpoint, an APNs client certificate; the list is in that module) — is
//! named in the answer as needing a restart, so an operator never believes a change took
//! effect when it did not.

use crate::app::tls::{CertificateCell, load_certified_key};
use crate::config::{Config, ConfigErrors};
use crate::metrics::{self, ReloadOutcome};
use crate::router::credentials::{CredentialReload, LiveCredentials};
use crate::tenant::{Tenant, Tenants, TokenError};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The tenant table every API request is checked against. A reload swaps the whole table at
/// once: a request sees the old table or the new one, never a mix.
#[derive(Clone)]
pub struct LiveTenants(Arc<ArcSwap<Tenants>>);

impl LiveTenants {
    /// The table `tenants`, until a reload replaces it.
    pub fn new(tenants: Tenants) -> LiveTenants {
        LiveTenants(Arc::new(ArcSwap::from_pointee(tenants)))
    }

    /// The tenant a server key belongs to, in the table in effect now.
    pub fn by_server_key(&self, key: &str) -> Option<Arc<Tenant>> {
        self.0.load().by_server_key(key).cloned()
    }

    /// Verifies an identity token against the table in effect now (see
    /// [`Tenants::verify_identity_token`]).
    pub fn verify_identity_token(
        &self,
        token: &str,
    ) -> Result<(Arc<Tenant>, String, u64), TokenError> {
        self.0
            .load()
            .verify_identity_token(token)
            .map(|(tenant, identity, issued_at)| (tenant.clone(), identity, issued_at))
    }

    /// Whether the table in effect has no tenant.
    pub fn is_empty(&self) -> bool {
        self.0.load().is_empty()
    }

    /// The ids of the tenants in effect now (the bounded `tenant` label set of the limits'
    /// metrics).
    pub fn ids(&self) -> Vec<String> {
        self.0.load().ids().into_iter().map(str::to_owned).collect()
    }

    /// Every tenant in effect now (the API description lists their apps).
    pub fn all(&self) -> Vec<Arc<Tenant>> {
        self.0.load().all()
    }

    fn replace(&self, tenants: Tenants) {
        self.0.store(Arc::new(tenants));
    }
}

/// What a reload changed.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    /// Always `applied` (a refused reload is an error).
    pub outcome: &'static str,
    /// Tenants in effect now.
    pub tenants: usize,
    /// Whether the API's certificate was read again (only with `[server.tls]`).
    pub certificate_reloaded: bool,
    /// Apps whose push credential changed and was swapped (`tenants.t.apps.a`).
    pub credentials_reloaded: Vec<String>,
    /// Sections that differ from the running configuration but only take effect on restart.
    pub restart_needed: Vec<String>,
}

/// Re-reads the configuration and swaps what can be swapped. One per node; reloads run one
/// at a time.
pub struct Reloader {
    /// The file the node was started with (`None`: the development default).
    file: Option<PathBuf>,
    /// The configuration in effect, to tell what a new one changes.
    running: Mutex<Config>,
    tenants: LiveTenants,
    certificate: Option<Arc<CertificateCell>>,
    /// The apps' credential cells (none for a reloader without providers, in tests).
    credentials: LiveCredentials,
}

impl Reloader {
    /// A reloader for a node started from `file` with `running`, serving `tenants` and, with
    /// TLS, the certificate in `certificate`.
    pub fn new(
        file: Option<PathBuf>,
        running: Config,
        tenants: LiveTenants,
        certificate: Option<Arc<CertificateCell>>,
    ) -> Reloader {
        Reloader {
            file,
            running: Mutex::new(running),
            tenants,
            certificate,
            credentials: LiveCredentials::default(),
        }
    }

    /// The same reloader, also swapping the apps' push credentials held in `credentials`.
    pub fn with_credentials(mut self, credentials: LiveCredentials) -> Reloader {
        self.credentials = credentials;
        self
    }

    /// Reads, validates and applies the configuration file; on any problem changes nothing
    /// and returns every problem. Counted either way. Blocking (reads files): call it off the
    /// async workers.
    pub fn reload(&self) -> Result<ReloadReport, ConfigErrors> {
        // A poisoned lock only means an earlier reload panicked; the config in it is whole.
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = self.prepare(&running).map(|prepared| {
            let mut restart = restart_needed(&running, &prepared.config);
            restart.extend(prepared.credentials.restart_needed.iter().cloned());
            let report = ReloadReport {
                outcome: ReloadOutcome::Applied.label(),
                tenants: prepared.config.tenants.len(),
                certificate_reloaded: prepared.certificate.is_some(),
                credentials_reloaded: prepared.credentials.swapped(),
                restart_needed: restart,
            };
            // Everything was read and checked above; from here on nothing can fail.
            self.tenants.replace(prepared.tenants);
            // A tenant added by the reload gets its limit series at zero, like those at start.
            crate::metrics::tenants_configured(self.tenants.ids().iter().map(String::as_str));
            if let (Some(cell), Some(key)) = (&self.certificate, prepared.certificate) {
                cell.replace(key);
            }
            self.credentials.apply(prepared.credentials);
            *running = prepared.config;
            report
        });
        match &result {
            Ok(report) => {
                metrics::config_reload(ReloadOutcome::Applied);
                if report.restart_needed.is_empty() {
                    tracing::info!(
                        tenants = report.tenants,
                        certificate = report.certificate_reloaded,
                        credentials = %report.credentials_reloaded.join(", "),
                        "configuration reloaded"
                    );
                } else {
                    tracing::warn!(
                        tenants = report.tenants,
                        certificate = report.certificate_reloaded,
                        restart_needed = %report.restart_needed.join(", "),
                        "configuration reloaded; some changes take effect only on restart"
                    );
                }
            }
            Err(errors) => {
                metrics::config_reload(ReloadOutcome::Refused);
                tracing::error!(%errors, "configuration reload refused; the running configuration stays in use");
            }
        }
        result
    }

    /// Everything a reload swaps in, read and checked, nothing applied yet.
    fn prepare(&self, running: &Config) -> Result<Prepared, ConfigErrors> {
        let config = Config::load(self.file.as_deref())?;
        let tenants = crate::plan::Plan::tenants(&config)?;
        let certificate = match (&self.certificate, &config.server.tls) {
            (Some(_), Some(tls)) => Some(
                load_certified_key(&tls.cert, &tls.key)
                    .map_err(|error| ConfigErrors(vec![format!("server.tls: {error}")]))?,
            ),
            _ => None,
        };
        if config.server.tls.is_some() != running.server.tls.is_some() {
            // Turning TLS on or off changes the listener itself: refused rather than half done.
            return Err(ConfigErrors(vec![
                "server.tls: turning TLS on or off needs a restart; the running listener is kept"
                    .into(),
            ]));
        }
        let credentials = self
            .credentials
            .prepare(running, &config)
            .map_err(ConfigErrors)?;
        Ok(Prepared {
            config,
            tenants,
            certificate,
            credentials,
        })
    }
}

struct Prepared {
    config: Config,
    tenants: Tenants,
    certificate: Option<rustls::sign::CertifiedKey>,
    credentials: CredentialReload,
}

/// The sections of `new` that differ from `running` and are not reloaded (the apps are
/// judged one by one in [`crate::router::credentials`]).
fn restart_needed(running: &Config, new: &Config) -> Vec<String> {
    let mut sections = Vec::new();
    let mut differs = |name: &str, changed: bool| {
        if changed {
            sections.push(name.to_owned());
        }
    };
    let server_without_tls = |config: &Config| {
        let mut server = config.server.clone();
        server.tls = server.tls.map(|mut tls| {
            // The certificate is reloaded; only a new client CA needs a restart.
            tls.cert.clear();
            tls.key.clear();
            tls
        });
        server
    };
    differs(
        "server",
        server_without_tls(running) != server_without_tls(new),
    );
    differs("admin", running.admin != new.admin);
    differs("registry", running.registry != new.registry);
    differs("router", running.router != new.router);
    differs("providers", running.providers != new.providers);
    differs("webpush", running.webpush != new.webpush);
    differs("log", running.log != new.log);
    sections
}

#[cfg(test)]
mod tests;
