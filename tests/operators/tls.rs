//! TLS on the public listener: both HTTP versions by ALPN, TLS 1.2 and 1.3, client
//! certificates for call control, and a certificate reload that drops no connection.

use crate::node::{node_toml, start_reloadable};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

const KEY: &str = "operators-tls-key-0001";

/// A certificate authority made for one test.
fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate signed by `ca`: the server's (for localhost) or a client's.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    purpose: ExtendedKeyUsagePurpose,
) -> Leaf {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

fn write_server_cert(dir: &Path, server: &Leaf) {
    std::fs::write(dir.join("tls.crt"), &server.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &server.key_pem).unwrap();
}

/// A TLS client connection: its negotiated ALPN, the server's certificate, and a sender.
struct Connection {
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
    server_cert: CertificateDer<'static>,
    sender: Sender,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(
    address: SocketAddr,
    ca: &CertifiedIssuer<'static, KeyPair>,
    alpn: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<&Leaf>,
) -> std::io::Result<Connection> {
    let stream = tls_stream(address, ca, alpn, versions, client).await?;
    let (_, session) = stream.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let version = session.protocol_version();
    let server_cert = session.peer_certificates().unwrap()[0].clone();
    let io = TokioIo::new(stream);
    let sender = if alpn.as_deref() == Some(b"h2") {
        let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Sender::H2(sender)
    } else {
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Sender::H1(sender)
    };
    Ok(Connection {
        alpn,
        version,
        server_cert,
        sender,
    })
}

/// A TLS connection to the node offering `alpn`, trusting `ca`, with `client`'s certificate.
async fn tls_stream(
    address: SocketAddr,
    ca: &CertifiedIssuer<'static, KeyPair>,
    alpn: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
    client: Option<&Leaf>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(address).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

impl Connection {
    /// Sends one request with the server key; `Err` when the connection is gone.
    async fn send(&mut self, method: &str, path: &str, body: &str) -> Result<u16, hyper::Error> {
        let uri = match self.sender {
            Sender::H2(_) => format!("https://localhost{path}"),
            Sender::H1(_) => path.to_owned(),
        };
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = match &mut self.sender {
            Sender::H1(sender) => sender.send_request(request).await?,
            Sender::H2(sender) => sender.send_request(request).await?,
        };
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

const REGISTRATION: &str = r#"{"platform":"apns","app":"ios","token":"a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1"}"#;
const CALL: &str = r#"{"call_id":"tls-call-1","callee":"nobody","caller":{"id":"+15550100"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_speaks_tls_with_both_http_versions_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority("ringcast test CA");
    let first = leaf(&ca, "first", ExtendedKeyUsagePurpose::ServerAuth);
    write_server_cert(dir.path(), &first);
    // Relative paths: they resolve against the config file's folder.
    let tls = "[server.tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n";
    let (node, _) = start_reloadable(dir.path(), &node_toml(dir.path(), KEY, tls)).await;
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];

    let mut h2 = connect(node.address, &ca, b"h2", &all, None).await.unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.version, Some(rustls::ProtocolVersion::TLSv1_3));
    let register = "/v1/identities/alice/registrations/phone";
    assert_eq!(h2.send("PUT", register, REGISTRATION).await.unwrap(), 201);

    let mut h1 = connect(node.address, &ca, b"http/1.1", &all, None)
        .await
        .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h1.send("PUT", register, REGISTRATION).await.unwrap(), 200);

    let tls12 = connect(node.address, &ca, b"h2", &[&rustls::version::TLS12], None)
        .await
        .unwrap();
    assert_eq!(tls12.version, Some(rustls::ProtocolVersion::TLSv1_2));

    // Plain HTTP on the TLS port gets nowhere.
    let plain = crate::node::client()
        .get(format!(
            "http://{}/v1/identities/alice/registrations",
            node.address
        ))
        .bearer_auth(KEY)
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // A renewed certificate: new handshakes get it, open connections carry on.
    let second = leaf(&ca, "second", ExtendedKeyUsagePurpose::ServerAuth);
    write_server_cert(dir.path(), &second);
    let report: serde_json::Value = crate::node::client()
        .post(format!("{}/admin/reload", node.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["outcome"], "applied", "{report}");
    assert_eq!(report["certificate_reloaded"], true, "{report}");
    assert_eq!(h2.server_cert, first.der);
    assert_eq!(
        h2.send("PUT", register, REGISTRATION).await.unwrap(),
        200,
        "the h2 connection survived"
    );
    assert_eq!(
        h1.send("PUT", register, REGISTRATION).await.unwrap(),
        200,
        "the http/1.1 connection survived"
    );
    let renewed = connect(node.address, &ca, b"h2", &all, None).await.unwrap();
    assert_eq!(renewed.server_cert, second.der);

    // A key that does not match its certificate is refused; the running one stays.
    std::fs::write(dir.path().join("tls.key"), &first.key_pem).unwrap();
    let refused = crate::node::client()
        .post(format!("{}/admin/reload", node.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let problem = refused.text().await.unwrap();
    assert!(problem.contains("server.tls"), "{problem}");
    let still = connect(node.address, &ca, b"h2", &all, None).await.unwrap();
    assert_eq!(still.server_cert, second.der);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_control_needs_a_client_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority("ringcast server CA");
    let clients = authority("call control CA");
    write_server_cert(
        dir.path(),
        &leaf(&ca, "server", ExtendedKeyUsagePurpose::ServerAuth),
    );
    std::fs::write(dir.path().join("clients.pem"), clients.pem()).unwrap();
    let tls = "[server.tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\nclient_ca = \"clients.pem\"\n";
    let (node, _) = start_reloadable(dir.path(), &node_toml(dir.path(), KEY, tls)).await;
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];

    // A device has no certificate: it registers, but cannot ring.
    let mut device = connect(node.address, &ca, b"h2", &all, None).await.unwrap();
    let register = "/v1/identities/alice/registrations/phone";
    assert_eq!(
        device.send("PUT", register, REGISTRATION).await.unwrap(),
        201
    );
    assert_eq!(device.send("POST", "/v1/calls", CALL).await.unwrap(), 403);
    assert_eq!(
        device
            .send(
                "POST",
                "/v1/calls/x/end",
                r#"{"callee":"alice","reason":"cancelled"}"#
            )
            .await
            .unwrap(),
        403
    );

    // Call control with a certificate from the client CA rings (nobody has no devices: 202).
    let control = leaf(
        &clients,
        "call-control",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let mut caller = connect(node.address, &ca, alpn, &all, Some(&control))
            .await
            .unwrap();
        let status = caller.send("POST", "/v1/calls", CALL).await.unwrap();
        assert_ne!(status, 403, "{}", String::from_utf8_lossy(alpn));
        assert!(status < 300, "{status}");
    }

    // A certificate from another CA does not get through the handshake (or the first request).
    let stranger = leaf(&ca, "stranger", ExtendedKeyUsagePurpose::ClientAuth);
    let refused = match connect(node.address, &ca, b"h2", &all, Some(&stranger)).await {
        Err(_) => true,
        Ok(mut connection) => connection.send("POST", "/v1/calls", CALL).await.is_err(),
    };
    assert!(
        refused,
        "a client certificate the client CA did not sign was accepted"
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_speaks_wss_and_a_ring_reaches_it() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let ca = authority("ringcast test CA");
    write_server_cert(
        dir.path(),
        &leaf(&ca, "node", ExtendedKeyUsagePurpose::ServerAuth),
    );
    let tls = "[server.tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n";
    let (node, _) = start_reloadable(dir.path(), &node_toml(dir.path(), KEY, tls)).await;
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];

    // The WebSocket over TLS: the upgrade service takes the TLS stream, not a TCP one.
    let stream = tls_stream(node.address, &ca, b"http/1.1", &all, None)
        .await
        .unwrap();
    let mut request = "wss://localhost/v1/channel?identity=wendy&device_id=laptop"
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    let (mut socket, answer) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 101);

    let mut caller = connect(node.address, &ca, b"h2", &all, None).await.unwrap();
    let call = r#"{"call_id":"wss-call-1","callee":"wendy","caller":{"id":"+15550100"}}"#;
    assert_eq!(caller.send("POST", "/v1/calls", call).await.unwrap(), 202);
    let frame = loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("the ring came in time")
            .expect("the socket stayed open")
            .unwrap();
        if let Message::Text(text) = message {
            break serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
    };
    assert_eq!(frame["type"], "incoming_call", "{frame}");
    assert_eq!(frame["call_id"], "wss-call-1", "{frame}");
    socket
        .send(Message::Text(
            format!(r#"{{"type":"ack","event_id":{}}}"#, frame["event_id"]).into(),
        ))
        .await
        .unwrap();
    socket.close(None).await.unwrap();
}
