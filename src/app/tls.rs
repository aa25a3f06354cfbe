//! TLS on the public API listener (README, "Deploying" → "TLS"): rustls on ring (docs/architecture.md:
//! one crypto stack), TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, and optionally client
//! certificates for call control.
//!
//! The certificate sits in a [`CertificateCell`] that the server asks on every handshake, so
//! a reload swaps it for new handshakes while established connections keep theirs: renewing
//! a certificate drops nothing.

use super::copied_writes::CopiedWrites;
use crate::config::TlsConfig;
use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;

/// The certificate the API presents, swapped whole by a reload.
#[derive(Debug)]
pub struct CertificateCell(ArcSwap<CertifiedKey>);

impl CertificateCell {
    /// A cell holding `key` until [`CertificateCell::replace`].
    pub fn new(key: CertifiedKey) -> CertificateCell {
        CertificateCell(ArcSwap::from_pointee(key))
    }

    /// Makes `key` the certificate of every later handshake.
    pub fn replace(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertificateCell {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Reads a PEM certificate chain and its private key and checks that they belong together.
/// Errors name the file (never the key's bytes).
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|error| format!("cannot read {}: {error}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{}: {error}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| format!("{}: no usable private key ({error})", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider).map_err(|error| {
        format!(
            "{} and {} do not make a certificate and its key: {error}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(certified)
}

/// The listener's rustls configuration: the certificate from `cell`; with `client_ca`, client
/// certificates chaining to it are verified (a client without one is let in: devices do not
/// have one, and call control checks for one per route — [`super::public`]).
pub fn server_config(
    tls: &TlsConfig,
    cell: Arc<CertificateCell>,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| format!("TLS versions: {error}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            for certificate in certificates {
                let certificate =
                    certificate.map_err(|error| format!("{}: {error}", path.display()))?;
                roots
                    .add(certificate)
                    .map_err(|error| format!("{}: {error}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no CA certificate in the file", path.display()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|error| format!("{}: {error}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(cell);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks `[server.tls]` the way the listener will use it, for `check-config`.
pub fn validate(tls: &TlsConfig) -> Vec<String> {
    let mut problems = Vec::new();
    match load_certified_key(&tls.cert, &tls.key) {
        Ok(key) => {
            if let Err(error) = server_config(tls, Arc::new(CertificateCell::new(key))) {
                problems.push(format!("server.tls: {error}"));
            }
        }
        Err(error) => problems.push(format!("server.tls: {error}")),
    }
    problems
}

/// Marks a connection whose client presented a certificate the `client_ca` verified (rustls
/// refuses the handshake of one it did not), for [`require_client_certificate`].
#[derive(Clone, Copy, Debug)]
pub struct VerifiedClientCertificate;

/// `on_connect` hook of the TLS listener: notes whether the client authenticated.
pub fn note_client_certificate(
    connection: &dyn std::any::Any,
    extensions: &mut actix_web::dev::Extensions,
) {
    let stream = connection.downcast_ref::<CopiedWrites<
        actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>,
    >>();
    if let Some(stream) = stream
        && stream
            .get_ref()
            .get_ref()
            .1
            .peer_certificates()
            .is_some_and(|chain| !chain.is_empty())
    {
        extensions.insert(VerifiedClientCertificate);
    }
}

/// With `client_ca`, call control (`/v1/calls...`) needs a verified client certificate:
/// `403` problem+json otherwise. Devices (registrations) need none.
pub async fn require_client_certificate(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let call_control = request.path().starts_with("/v1/calls");
    if call_control && request.conn_data::<VerifiedClientCertificate>().is_none() {
        let error = crate::api::problem::ApiError::Forbidden(
            "call control needs a client certificate signed by server.tls.client_ca",
        );
        return Ok(request.error_response(error));
    }
    next.call(request)
        .await
        .map(actix_web::dev::ServiceResponse::map_into_boxed_body)
}
