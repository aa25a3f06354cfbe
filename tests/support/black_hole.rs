//! A peer that takes connections and never answers: the failure a push service can have
//! that costs a sender the most (nothing is refused, so every request waits its timeout).

/// A listener that accepts connections and never answers (not even the TLS handshake): a
/// black-holed push service or channel host. Answers its `ip:port`.
pub async fn black_hole() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}
