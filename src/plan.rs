//! The start-up plan: one function, [`Plan::build`], turns a [`Config`] into everything a
//! node starts from — the configuration's own checks, the tenants (their keys and token
//! verifiers, their apps' credentials read and parsed), and the providers' specs (every
//! app's credential made once for the node) — or lists every problem at once.
//!
//! `serve` starts from it and `check-config` prints it ([`Plan::summary`]), so a file passes
//! the check exactly when a node would start from it. The configuration is data with its own
//! checks (`config`); tenants are built from it (`tenant`); only the plan calls both.

use crate::config::{Config, ConfigErrors, StoreKind};
use crate::providers::wiring::ProviderSpecs;
use crate::tenant::Tenants;
use crate::vocab::Platform;
use std::fmt::Write;

/// A checked configuration, ready to start a node from.
pub struct Plan {
    /// Every tenant, indexed by the credentials that name them.
    pub tenants: Tenants,
    /// Every app's provider credential, ready to start each shard's providers from.
    pub providers: ProviderSpecs,
}

impl Plan {
    /// The plan of `config`, or every problem found: the configuration's own checks and the
    /// tenants' first (their apps' credentials are read and parsed there), then the
    /// providers' specs, which a configuration that passed those cannot fail but for a file
    /// changed in between.
    pub fn build(config: &Config) -> Result<Plan, ConfigErrors> {
        let tenants = Plan::tenants(config)?;
        let providers = ProviderSpecs::build(config).map_err(ConfigErrors)?;
        Ok(Plan { tenants, providers })
    }

    /// The configuration's own checks and its tenants, every problem of both at once: what a
    /// reload checks before it makes the changed credentials.
    pub fn tenants(config: &Config) -> Result<Tenants, ConfigErrors> {
        let mut problems = config.validate().err().map_or_else(Vec::new, |e| e.0);
        match Tenants::build(config) {
            Ok(tenants) if problems.is_empty() => return Ok(tenants),
            Ok(_) => {}
            Err(more) => problems.extend(more),
        }
        Err(ConfigErrors(problems))
    }

    /// What `check-config` prints below its `OK` line: the store and shards, each tenant's
    /// apps by platform, and which apps got a provider (the others have no credential).
    pub fn summary(&self, config: &Config) -> String {
        let mut out = String::new();
        let store = match config.registry.store {
            StoreKind::Embedded => {
                format!("embedded ({})", config.registry.embedded.path.display())
            }
            StoreKind::Redis => format!("redis ({})", config.registry.redis.url),
            StoreKind::RedisCluster => format!(
                "redis-cluster ({} seed node(s))",
                config.registry.redis.nodes.len()
            ),
            StoreKind::RedisSentinel => format!(
                "redis-sentinel (master {:?})",
                config.registry.redis.sentinel_master
            ),
        };
        let _ = writeln!(out, "  store: {store}, {} shard(s)", config.shard_count());
        let mut apps = PLATFORMS.map(|platform| (platform, 0));
        for tenant in self.tenants.all() {
            let list: Vec<String> = tenant
                .apps
                .iter()
                .map(|(id, app)| format!("{id} ({})", app.platform()))
                .collect();
            for app in tenant.apps.values() {
                for (platform, count) in &mut apps {
                    *count += usize::from(*platform == app.platform());
                }
            }
            let _ = writeln!(out, "  tenant {}: {}", tenant.id, or_none(&list.join(", ")));
        }
        let apps: Vec<String> = apps
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        let _ = writeln!(out, "  apps: {}", or_none(&apps.join(", ")));
        let specs = &self.providers;
        let providers: Vec<String> = [
            (Platform::Apns, specs.apns.len()),
            (Platform::Fcm, specs.fcm.len()),
            (Platform::Wns, specs.wns.len()),
            (Platform::Webpush, specs.webpush.len()),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
        let _ = writeln!(
            out,
            "  providers (apps with a credential): {}",
            or_none(&providers.join(", "))
        );
        out
    }
}

/// The platforms, in the order the summary lists them.
const PLATFORMS: [Platform; 4] = [
    Platform::Apns,
    Platform::Fcm,
    Platform::Wns,
    Platform::Webpush,
];

fn or_none(list: &str) -> &str {
    if list.is_empty() { "none" } else { list }
}

#[cfg(test)]
mod tests;
