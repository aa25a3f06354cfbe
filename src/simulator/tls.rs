//! The simulator's TLS identity: a self-signed certificate for `localhost` / `127.0.0.1` made
//! at start (its PEM written where clients can read it and trust it), or a given cert and key.
//! Each listener offers one ALPN id: `h2` on the push listener, as APNs does, and `http/1.1`
//! on the listener that plays the HTTP/1.1-only hosts (OAuth token endpoints, and WNS and
//! Web Push when the profile says so).

use crate::providers::apns::auth::topics::der_certificate_topics;
use rustls::ServerConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the TLS identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not make the certificate.
    #[error("making the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file could not be read or parsed.
    #[error("reading {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The certificate PEM could not be written for clients.
    #[error("writing the certificate to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The APNs client CA holds no usable certificate.
    #[error("APNs client CA: {0}")]
    ClientCa(String),
}

/// What a connection's client certificate says about its sender (APNs certificate auth).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientCertificate {
    /// None presented: the sender must show a JWT.
    #[default]
    Absent,
    /// Issued by the configured CA and valid now: no JWT needed, for these topics only (its
    /// subject UID and Apple's topics extension); any other `apns-topic` is `400
    /// TopicDisallowed`.
    Trusted {
        /// The topics the certificate covers.
        topics: Vec<String>,
    },
    /// Presented, but not from the CA, or expired: APNs answers 403 `BadCertificate`.
    Untrusted,
}

/// The APNs side's client-certificate check, as Apple makes it for certificate auth: a
/// connection may present a certificate (none is fine: JWT senders present none). The TLS
/// handshake only proves the sender holds the certificate's key; whether the certificate is
/// one Apple issued (here: the configured CA) and not expired is judged after it
/// ([`ClientCertificates::judge`]), so an untrusted one is answered per push, with Apple's
/// `403 BadCertificate`, rather than as a bare handshake failure.
#[derive(Debug)]
pub struct ClientCertificates {
    /// WebPKI chain and signature checks against the CA.
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertificates {
    /// Trusts client certificates issued by the CA certificates of `ca_pem`.
    pub fn new(ca_pem: &str) -> Result<Arc<Self>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|error| TlsError::ClientCa(error.to_string()))?;
            roots
                .add(cert)
                .map_err(|error| TlsError::ClientCa(error.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsError::ClientCa("no certificate in the PEM".into()));
        }
        let webpki = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|error| TlsError::ClientCa(error.to_string()))?;
        Ok(Arc::new(ClientCertificates { webpki }))
    }

    /// What the certificates a connection presented (leaf first) say.
    pub fn judge(&self, presented: Option<&[CertificateDer<'_>]>) -> ClientCertificate {
        let Some((leaf, intermediates)) = presented.and_then(<[_]>::split_first) else {
            return ClientCertificate::Absent;
        };
        match self
            .webpki
            .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            // Verified above, so it parses; a certificate naming no topic covers none.
            Ok(_) => ClientCertificate::Trusted {
                topics: der_certificate_topics(leaf).unwrap_or_default(),
            },
            Err(_) => ClientCertificate::Untrusted,
        }
    }
}

impl ClientCertVerifier for ClientCertificates {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    /// Accepted at the handshake whatever its issuer; judged after it (see the type's doc).
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    /// The handshake signature is always checked: it proves the sender holds the key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A certificate chain and key ready for rustls, plus the PEM clients should trust.
pub struct Identity {
    /// The chain served to clients.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// The certificate PEM: what a client adds to its roots.
    pub ca_pem: String,
}

impl Identity {
    /// A fresh self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn self_signed() -> Result<Self, TlsError> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
        Ok(Self {
            chain: vec![certified.cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()).into(),
            ca_pem: certified.cert.pem(),
        })
    }

    /// Loads a certificate chain and key from PEM files (`--cert`, `--key`).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_error = |path: &Path, error: &dyn std::fmt::Display| TlsError::Pem {
            path: path.to_owned(),
            message: error.to_string(),
        };
        let ca_pem = std::fs::read_to_string(cert).map_err(|error| pem_error(cert, &error))?;
        let chain = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| pem_error(cert, &error))?;
        if chain.is_empty() {
            return Err(pem_error(cert, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|error| pem_error(key, &error))?;
        Ok(Self { chain, key, ca_pem })
    }

    /// Writes the certificate PEM to `path` for clients to trust.
    pub fn write_pem(&self, path: &Path) -> Result<(), TlsError> {
        std::fs::write(path, &self.ca_pem).map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// The rustls server configuration: ring provider (docs/architecture.md: one crypto stack, no
    /// process-wide default), TLS 1.2+, ALPN `alpn` only: a client that offers only other
    /// ids fails the handshake (`no_application_protocol`), as a real host of that protocol
    /// does.
    /// With `client_certificates`, clients may present a certificate (APNs certificate auth).
    pub fn server_config(
        &self,
        alpn: &[u8],
        client_certificates: Option<Arc<ClientCertificates>>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let builder =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?;
        let builder = match client_certificates {
            None => builder.with_no_client_auth(),
            Some(verifier) => builder.with_client_cert_verifier(verifier),
        };
        let mut config = builder.with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trips_through_files() {
        let identity = Identity::self_signed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        identity.write_pem(&cert).unwrap();
        let key_pem = rustls::pki_types::pem::PemObject::pem_slice_iter(identity.ca_pem.as_bytes())
            .collect::<Result<Vec<CertificateDer>, _>>()
            .unwrap();
        assert_eq!(key_pem.len(), 1);
        let fresh = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, fresh.serialize_pem()).unwrap();
        let loaded = Identity::load(&cert, &key).unwrap();
        assert_eq!(loaded.chain, identity.chain);
        assert!(
            Identity::load(&key, &key).is_err(),
            "a key file is not a certificate"
        );
        assert!(identity.server_config(b"h2", None).is_ok());
    }
}
