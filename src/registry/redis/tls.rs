//! TLS to Redis (`rediss://`): which CA to trust and which client certificate to show.
//!
//! The redis crate's rustls has no crypto provider feature of its own (it is built with
//! `default-features = false`), so it asks rustls for the process default: [`install_ring`]
//! makes that ring, the one provider in this build (docs/architecture.md), before any TLS
//! client is built. Without a CA file the system's trust store is used (the crate reads it
//! with rustls-native-certs, which only reads files: no OpenSSL).

use crate::config::RedisConfig;
use redis::{ClientTlsConfig, RedisResult, TlsCertificates};
use std::path::Path;

/// Makes ring the process-wide rustls provider if none is set yet. Idempotent: a provider
/// installed earlier (by this or by an embedding program) is left alone.
pub fn install_ring() {
    // Fails only when a provider is installed already, which is the state wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The CA and client certificate of `[registry.redis]`, read and parsed now so that a bad
/// file is a configuration error, not a connection failure later. `None` when no file is
/// named: a `rediss://` URL then trusts the system's store and shows no client certificate.
pub fn certificates(redis: &RedisConfig) -> Result<Option<TlsCertificates>, Vec<String>> {
    let mut problems = Vec::new();
    let root_cert = redis
        .ca_file
        .as_deref()
        .and_then(|path| read_pem("registry.redis.ca_file", path, &mut problems));
    let client_tls = match (&redis.client_cert, &redis.client_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let client_cert = read_pem("registry.redis.client_cert", cert, &mut problems);
            let client_key = read_pem("registry.redis.client_key", key, &mut problems);
            client_cert
                .zip(client_key)
                .map(|(client_cert, client_key)| ClientTlsConfig {
                    client_cert,
                    client_key,
                })
        }
        _ => {
            problems.push(
                "registry.redis.client_cert and client_key go together: name both or neither"
                    .into(),
            );
            None
        }
    };
    if root_cert.is_none() && client_tls.is_none() {
        return if problems.is_empty() {
            Ok(None)
        } else {
            Err(problems)
        };
    }
    let certificates = TlsCertificates {
        client_tls,
        root_cert,
    };
    // The crate parses the PEM only when it connects; parse it here to report it now.
    if problems.is_empty()
        && let Err(error) = check(&certificates)
    {
        problems.push(format!("registry.redis TLS files: {error}"));
    }
    if problems.is_empty() {
        Ok(Some(certificates))
    } else {
        Err(problems)
    }
}

/// A client for `url`, over TLS with `certificates` when the URL is `rediss://`.
pub fn client(url: &str, certificates: Option<&TlsCertificates>) -> RedisResult<redis::Client> {
    match certificates {
        Some(certificates) if url.starts_with("rediss://") => {
            install_ring();
            redis::Client::build_with_tls(url, certificates.clone())
        }
        _ => {
            if url.starts_with("rediss://") {
                install_ring();
            }
            redis::Client::open(url)
        }
    }
}

/// Builds a TLS client config from `certificates` the way the crate will, to find a bad PEM
/// file or a key that does not match its certificate.
fn check(certificates: &TlsCertificates) -> Result<(), String> {
    configured(certificates, rustls::RootCertStore::empty()).map(drop)
}

/// The TLS client configuration for `rediss://` (ring; the CA of `certificates`, else the
/// system's trust store; its client certificate if any): what ringcast's own Redis
/// connection (`super::pipelined`) dials with, as the crate's client does.
pub fn client_config(
    certificates: Option<&TlsCertificates>,
) -> Result<rustls::ClientConfig, String> {
    let empty = TlsCertificates {
        client_tls: None,
        root_cert: None,
    };
    let certificates = certificates.unwrap_or(&empty);
    let mut roots = rustls::RootCertStore::empty();
    if certificates.root_cert.is_none() {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err("the system's trust store holds no CA: name registry.redis.ca_file".into());
        }
    }
    configured(certificates, roots)
}

/// A client config trusting `roots` and the CA of `certificates`, showing its client
/// certificate if any.
fn configured(
    certificates: &TlsCertificates,
    mut roots: rustls::RootCertStore,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    if let Some(pem) = &certificates.root_cert {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("ca_file: {error}"))?;
        if certs.is_empty() {
            return Err("ca_file holds no PEM certificate".into());
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|error| format!("ca_file: {error}"))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots);
    let Some(client) = &certificates.client_tls else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(&client.client_cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("client_cert: {error}"))?;
    if chain.is_empty() {
        return Err("client_cert holds no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&client.client_key)
        .map_err(|error| format!("client_key: {error}"))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|error| format!("client_cert and client_key: {error}"))
}

/// Reads a PEM file, recording a problem that names `key` and the resolved path if it cannot.
fn read_pem(key: &str, path: &Path, problems: &mut Vec<String>) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            problems.push(format!("{key}: cannot read {}: {error}", path.display()));
            None
        }
    }
}
