//! Real `redis-server`s that serve TLS — one server, a master behind a Sentinel that both
//! speak TLS, or a 3-master cluster whose nodes and bus speak TLS — with a certificate authority, a certificate for 127.0.0.1 and a client
//! certificate made for the test (rcgen), written as PEM files.

use super::redis_cluster::RedisCluster;
use super::redis_server::{RedisServer, free_port};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::{Path, PathBuf};

/// The CA, the servers' certificate and a client certificate, in a temporary folder.
pub struct TlsFiles {
    files: tempfile::TempDir,
}

impl TlsFiles {
    /// Makes and writes them.
    pub fn make() -> Self {
        let files = tempfile::Builder::new()
            .prefix("ringcast-redis-tls-")
            .tempdir()
            .expect("a temporary directory for the certificates");
        let ca = authority("ringcast test Redis CA");
        write(files.path(), "ca.pem", &ca.pem());
        // Both purposes: a cluster node is a TLS client of the other nodes' bus too.
        let server = leaf(
            &ca,
            "redis",
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        write(files.path(), "redis.crt", &server.0);
        write(files.path(), "redis.key", &server.1);
        let client = leaf(&ca, "ringcast", vec![ExtendedKeyUsagePurpose::ClientAuth]);
        write(files.path(), "client.crt", &client.0);
        write(files.path(), "client.key", &client.1);
        TlsFiles { files }
    }

    /// `redis-server` arguments serving TLS on `tls_port` with these certificates, asking
    /// clients for a certificate when `client_auth` is set.
    pub fn server_args(&self, tls_port: u16, client_auth: bool) -> Vec<String> {
        let path = |name: &str| self.files.path().join(name).display().to_string();
        vec![
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
        ]
    }

    /// The CA that signed the servers' and the client's certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.files.path().join("ca.pem")
    }

    /// The client certificate, signed by [`TlsFiles::ca_file`].
    pub fn client_cert(&self) -> PathBuf {
        self.files.path().join("client.crt")
    }

    /// The client certificate's key.
    pub fn client_key(&self) -> PathBuf {
        self.files.path().join("client.key")
    }
}

/// A Redis with a TLS port (and its plain port, which only the harness uses to see it is up).
pub struct TlsRedis {
    server: RedisServer,
    tls_port: u16,
    /// The certificates it serves and the client's.
    pub files: TlsFiles,
}

impl TlsRedis {
    /// Starts a server whose TLS port asks for a client certificate when `client_auth` is
    /// set (`tls-auth-clients yes`), and accepts a connection without one otherwise.
    pub fn start(client_auth: bool) -> Self {
        let files = TlsFiles::make();
        let tls_port = free_port();
        let server =
            RedisServer::start_with(free_port(), &files.server_args(tls_port, client_auth));
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
}

/// A TLS master (asking clients for a certificate) and a Sentinel watching it over TLS
/// (`tls-replication yes`: Sentinel speaks TLS to the servers it watches), which itself
/// answers on a TLS port with the same certificates. Sentinel names the master's TLS port.
pub struct TlsSentinel {
    /// The master; its `files` are the Sentinel's too.
    pub master: TlsRedis,
    sentinel: RedisServer,
    tls_port: u16,
}

impl TlsSentinel {
    /// Starts both, the master known to the Sentinel as `name`.
    pub fn start(name: &str) -> Self {
        let master = TlsRedis::start(true);
        let tls_port = free_port();
        let mut args = master.files.server_args(tls_port, true);
        args.extend(["--tls-replication".to_owned(), "yes".into()]);
        let sentinel = RedisServer::start_sentinel_with(name, master.tls_port, &[], &args);
        TlsSentinel {
            master,
            sentinel,
            tls_port,
        }
    }

    /// `rediss://127.0.0.1:<Sentinel's TLS port>/`.
    pub fn sentinel_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_port)
    }

    /// The Sentinel's log, for failure messages.
    pub fn sentinel_log(&self) -> String {
        std::fs::read_to_string(self.sentinel.dir().join("redis.log")).unwrap_or_default()
    }
}

/// A 3-master Redis Cluster whose clients and bus speak TLS (`tls-cluster yes`): a TLS client
/// is told the nodes' TLS ports in `CLUSTER SLOTS` and redirections.
pub struct TlsRedisCluster {
    _cluster: RedisCluster,
    tls_ports: Vec<u16>,
    /// The certificates the nodes serve and the client's.
    pub files: TlsFiles,
}

impl TlsRedisCluster {
    /// Starts and joins the nodes (asking clients for a certificate).
    pub async fn start() -> Self {
        let files = TlsFiles::make();
        let tls_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let args: Vec<Vec<String>> = tls_ports
            .iter()
            .map(|port| {
                let mut args = files.server_args(*port, true);
                args.extend(["--tls-cluster".to_owned(), "yes".into()]);
                args
            })
            .collect();
        let cluster = RedisCluster::start_with(3, move |index| args[index].clone()).await;
        TlsRedisCluster {
            _cluster: cluster,
            tls_ports,
            files,
        }
    }

    /// `rediss://127.0.0.1:<tls port>/` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.tls_ports
            .iter()
            .map(|port| format!("rediss://127.0.0.1:{port}/"))
            .collect()
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key")).expect("a CA")
}

/// A certificate for 127.0.0.1 signed by `ca` for `purposes`, and its key, both PEM.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    purposes: Vec<ExtendedKeyUsagePurpose>,
) -> (String, String) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = purposes;
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, ca).expect("a signed certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a certificate file");
}
