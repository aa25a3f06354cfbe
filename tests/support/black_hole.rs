//! A peer that takes connections and never answers: the failure a push service can have
//! that costs a sender the most (nothing is refused, so every request waits its timeout).

use ringcast::providers::dispatcher::Submit;
use ringcast::push::{Outcome, Push};

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

/// Submits `stuck` (to a black hole) and `healthy` (to a working host) in one batch to
/// `provider`, and asserts that the healthy push is delivered while the stuck one still
/// waits: it did not wait behind the black hole.
pub async fn assert_not_held_up(provider: &actix::Recipient<Submit>, stuck: Push, healthy: Push) {
    let mut tickets = provider.send(Submit(vec![stuck, healthy])).await.unwrap();
    let healthy = tickets
        .pop()
        .unwrap()
        .unwrap_or_else(|_| panic!("queue refused"));
    let mut stuck = tickets
        .pop()
        .unwrap()
        .unwrap_or_else(|_| panic!("queue refused"));

    assert_eq!(healthy.await.unwrap(), Outcome::Delivered);
    assert!(
        matches!(
            stuck.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ),
        "the black-holed push is still waiting: the healthy one did not wait for it"
    );
}
