//! `[server.tls]`: TLS on the public API listener (README, "Deploying").

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The API listener's certificate, and optionally the CA that call control's client
/// certificates must chain to. Without this section the API speaks plain HTTP (and h2c),
/// for a node behind a TLS-terminating load balancer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, leaf first. Re-read on SIGHUP and `POST /admin/reload`,
    /// so a renewed certificate takes effect without dropping a connection.
    pub cert: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) for client-certificate authentication. When set, a client
    /// that presents a certificate must present one this CA signed, and `POST /v1/calls`
    /// and `/v1/calls/{id}/end` (call control) require one; devices registering need none.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}
