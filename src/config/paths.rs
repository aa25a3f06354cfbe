//! Relative paths resolve against the folder of the file that set them (README,
//! "Configuration"), so `ringcast serve --config /etc/ringcast/ringcast.toml` reads
//! `key = { file = "acme.p8" }` from `/etc/ringcast/acme.p8` whatever the working directory.
//!
//! A path set by an environment variable (or left at its built-in default) stays relative to
//! the working directory: that is where the shell that set it stood. Resolved paths are made
//! absolute, so every error that names a file names the one actually read.

use super::{Config, SecretSource, ServerKeySource};
use figment::Figment;
use std::path::{Path, PathBuf};

/// Rewrites every relative path of `config` that came from a config file to sit under that
/// file's folder. `figment` is what `config` was extracted from (its metadata says which
/// layer set each key).
pub(super) fn resolve(config: &mut Config, figment: &Figment) {
    let rebase = |key: &str, path: &mut PathBuf| {
        if let Some(folder) = file_folder(figment, key) {
            rebase_onto(&folder, path);
        }
    };
    rebase("registry.embedded.path", &mut config.registry.embedded.path);
    let redis = &mut config.registry.redis;
    for (key, path) in [
        ("ca_file", &mut redis.ca_file),
        ("client_cert", &mut redis.client_cert),
        ("client_key", &mut redis.client_key),
    ] {
        if let Some(path) = path {
            rebase(&format!("registry.redis.{key}"), path);
        }
    }
    if let Some(source) = &mut redis.master_password {
        rebase_secret(figment, "registry.redis.master_password", source);
    }
    let providers = &mut config.providers;
    for (name, roots) in [
        ("apns", &mut providers.apns.trusted_roots),
        ("fcm", &mut providers.fcm.trusted_roots),
        ("wns", &mut providers.wns.trusted_roots),
        ("webpush", &mut providers.webpush.trusted_roots),
    ] {
        if let Some(path) = roots {
            rebase(&format!("providers.{name}.trusted_roots"), path);
        }
    }
    if let Some(tls) = &mut config.server.tls {
        rebase("server.tls.cert", &mut tls.cert);
        rebase("server.tls.key", &mut tls.key);
        if let Some(client_ca) = &mut tls.client_ca {
            rebase("server.tls.client_ca", client_ca);
        }
    }
    for (tenant_id, tenant) in &mut config.tenants {
        let tenant_key = format!("tenants.{tenant_id}");
        for source in &mut tenant.server_keys {
            if let ServerKeySource::File(path) = source {
                rebase(&format!("{tenant_key}.server_keys"), path);
            }
        }
        if let Some(tokens) = &mut tenant.identity_tokens {
            rebase_secret(
                figment,
                &format!("{tenant_key}.identity_tokens.key"),
                &mut tokens.key,
            );
        }
        for (app_id, app) in &mut tenant.apps {
            let app_key = format!("{tenant_key}.apps.{app_id}");
            for (field, source) in app.secrets_mut() {
                if let Some(source) = source {
                    rebase_secret(figment, &format!("{app_key}.{field}"), source);
                }
            }
        }
    }
}

/// A secret read from a file is a path like any other (`key = { file = "..." }`).
fn rebase_secret(figment: &Figment, key: &str, source: &mut SecretSource) {
    if let SecretSource::File(path) = source
        && let Some(folder) = file_folder(figment, &format!("{key}.file"))
    {
        rebase_onto(&folder, path);
    }
}

/// The absolute folder of the config file that set `key`, if a file did.
fn file_folder(figment: &Figment, key: &str) -> Option<PathBuf> {
    let file = figment.find_metadata(key)?.source.as_ref()?.file_path()?;
    let folder = match file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    // Fails only for an empty path, which `folder` never is.
    std::path::absolute(folder).ok()
}

/// `folder/path` when `path` is relative; an absolute path is left alone.
fn rebase_onto(folder: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = folder.join(&*path);
    }
}
