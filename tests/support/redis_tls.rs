//! A real `redis-server` that serves TLS, with a certificate authority, a server certificate
//! for 127.0.0.1 and a client certificate made for the test (rcgen), written as PEM files.

use super::redis_server::{RedisServer, free_port};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::{Path, PathBuf};

/// A Redis with a TLS port (and its plain port, which only the harness uses to see it is up).
pub struct TlsRedis {
    server: RedisServer,
    tls_port: u16,
    files: tempfile::TempDir,
}

impl TlsRedis {
    /// Starts a server whose TLS port asks for a client certificate when `client_auth` is
    /// set (`tls-auth-clients yes`), and accepts a connection without one otherwise.
    pub fn start(client_auth: bool) -> Self {
        let files = tempfile::Builder::new()
            .prefix("ringcast-redis-tls-")
            .tempdir()
            .expect("a temporary directory for the certificates");
        let ca = authority("ringcast test Redis CA");
        write(files.path(), "ca.pem", &ca.pem());
        let server = leaf(&ca, "redis", ExtendedKeyUsagePurpose::ServerAuth);
        write(files.path(), "redis.crt", &server.0);
        write(files.path(), "redis.key", &server.1);
        let client = leaf(&ca, "ringcast", ExtendedKeyUsagePurpose::ClientAuth);
        write(files.path(), "client.crt", &client.0);
        write(files.path(), "client.key", &client.1);
        let tls_port = free_port();
        let path = |name: &str| files.path().join(name).display().to_string();
        let extra = [
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path("redis.crt"),
            "--tls-key-file".into(),
            path("redis.key"),
            "--tls-ca-cert-file".into(),
            path("ca.pem"),
            "--tls-auth-clients".into(),
            if client_auth { "yes" } else { "no" }.into(),
        ];
        let server = RedisServer::start_with(free_port(), &extra);
        TlsRedis {
            server,
            tls_port,
            files,
        }
    }

    /// `rediss://127.0.0.1:<tls port>/`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_port)
    }

    /// The plain server underneath (for its log on failure).
    pub fn server(&self) -> &RedisServer {
        &self.server
    }

    /// The CA that signed the server's and the client's certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.files.path().join("ca.pem")
    }

    /// The client certificate, signed by [`TlsRedis::ca_file`].
    pub fn client_cert(&self) -> PathBuf {
        self.files.path().join("client.crt")
    }

    /// The client certificate's key.
    pub fn client_key(&self) -> PathBuf {
        self.files.path().join("client.key")
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key")).expect("a CA")
}

/// A certificate for 127.0.0.1 signed by `ca`, and its key, both PEM.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    purpose: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, ca).expect("a signed certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a certificate file");
}
