//! The TLS side of a provider connection: whom to trust, and which ALPN ids to offer. A
//! configuration offers `h2` alone until a pool sets what it offers ([`offering`]): APNs
//! accepts nothing else, while token endpoints and some WNS and Web Push hosts speak only
//! HTTP/1.1 (docs/protocols.md, "Transport, for every service").

use super::protocol::Protocols;
use hyper_rustls::ConfigBuilderExt;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS client configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The trusted-roots file could not be read or holds no certificate.
    #[error("trusted roots {path}: {message}")]
    Roots {
        /// The PEM file.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// The trusted-roots PEM given in memory holds no usable certificate.
    #[error("trusted roots: {0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls client configuration with ring as the only crypto provider (docs/architecture.md: one TLS
/// stack) and ALPN `h2`. With `roots_pem = None` it trusts the public web PKI (Mozilla's
/// roots, compiled in, so a container needs no CA bundle); with a PEM file it trusts only the
/// certificates in it (the simulator's, or a carrier's egress proxy).
pub fn client_config(roots_pem: Option<&Path>) -> Result<Arc<ClientConfig>, TlsSetupError> {
    configured(read_roots(roots_pem)?, None)
}

/// The same configuration presenting a client certificate (APNs certificate auth: the TLS
/// connection authenticates the sender).
pub fn client_config_with_certificate(
    roots_pem: Option<&Path>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    configured(read_roots(roots_pem)?, Some((chain, key)))
}

/// The roots of a PEM file, or `None` (the web PKI) without one.
fn read_roots(roots_pem: Option<&Path>) -> Result<Option<rustls::RootCertStore>, TlsSetupError> {
    let roots = match roots_pem {
        None => None,
        Some(path) => {
            let error = |message: String| TlsSetupError::Roots {
                path: path.to_owned(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
            Some(roots_of(&pem).map_err(error)?)
        }
    };
    Ok(roots)
}

/// The same configuration trusting only the certificates of `pem` (tests and tools that hold
/// the simulator's certificate in memory).
pub fn client_config_trusting(pem: &[u8]) -> Result<Arc<ClientConfig>, TlsSetupError> {
    configured(Some(roots_of(pem).map_err(TlsSetupError::Pem)?), None)
}

/// A client certificate chain and its key.
type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// ring, ALPN `h2`, `roots` (the web PKI when `None`), and the client certificate if any.
fn configured(
    roots: Option<rustls::RootCertStore>,
    identity: Option<ClientIdentity>,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?;
    let builder = match roots {
        None => builder.with_webpki_roots(),
        Some(roots) => builder.with_root_certificates(roots),
    };
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// `config` offering the ALPN ids of `protocols`: the same `Arc` when it already does, else
/// a copy (one per pool, made once; the roots are shared).
pub fn offering(config: &Arc<ClientConfig>, protocols: Protocols) -> Arc<ClientConfig> {
    let alpn = protocols.alpn();
    if config.alpn_protocols == alpn {
        return Arc::clone(config);
    }
    let mut copy = (**config).clone();
    copy.alpn_protocols = alpn;
    Arc::new(copy)
}

/// The certificates of a PEM document as a root store; at least one.
fn roots_of(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_roots_by_default_and_h2_only() {
        let config = client_config(None).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn a_roots_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let error = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(error.contains("no certificate"), "{error}");
        let missing = client_config(Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(missing.to_string().contains("missing.pem"));

        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert!(client_config(Some(&good)).is_ok());
    }

    #[test]
    fn a_pem_in_memory_must_hold_a_certificate_too() {
        let error = client_config_trusting(b"").unwrap_err().to_string();
        assert!(error.contains("no certificate"), "{error}");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let config = client_config_trusting(cert.cert.pem().as_bytes()).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn a_pool_offering_http1_too_gets_its_own_copy() {
        let config = client_config(None).unwrap();
        assert!(Arc::ptr_eq(&offering(&config, Protocols::Http2), &config));
        let both = offering(&config, Protocols::Http2OrHttp1);
        assert_eq!(
            both.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }
}
