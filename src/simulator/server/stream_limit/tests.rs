//! The rewrite, the raise and the dropped ACK, byte by byte over an in-memory pipe.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const PREFACE: &[u8; CLIENT_PREFACE_LEN] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PING: u8 = 0x6;
const HEADERS: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = params
        .iter()
        .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

/// The server's side wrapped, and the sender's end of the pipe.
fn pipe(first: u32, then: u32) -> (Raising<DuplexStream>, DuplexStream, Arc<StreamLimit>) {
    let (server, sender) = tokio::io::duplex(1 << 20);
    let limit = Arc::new(StreamLimit::new(first, then));
    (Raising::new(server, Arc::clone(&limit)), sender, limit)
}

async fn read_exactly(from: &mut (impl AsyncRead + Unpin), len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    from.read_exact(&mut bytes).await.unwrap();
    bytes
}

#[tokio::test]
async fn the_first_settings_announce_one_stream_until_the_raise() {
    let (mut server, mut sender, limit) = pipe(1, 1000);
    assert!(limit.rises());
    let servers = settings(&[(0x4, 65_535), (MAX_CONCURRENT_STREAMS, 1000)]);
    server.write_all(&servers).await.unwrap();
    server.flush().await.unwrap();
    assert_eq!(
        read_exactly(&mut sender, servers.len()).await,
        settings(&[(0x4, 65_535), (MAX_CONCURRENT_STREAMS, 1)])
    );
    assert_eq!(limit.announced(), 1);

    limit.raise();
    assert_eq!(limit.announced(), 1000);
    let answer = frame(HEADERS, 0x4, 1, &[0x88]);
    server.write_all(&answer).await.unwrap();
    server.flush().await.unwrap();
    let raise = settings(&[(MAX_CONCURRENT_STREAMS, 1000)]);
    let mut expected = raise.clone();
    expected.extend_from_slice(&answer);
    assert_eq!(read_exactly(&mut sender, expected.len()).await, expected);

    // Raised once: what follows passes as it is.
    limit.raise();
    let later = settings(&[(0x4, 1)]);
    server.write_all(&later).await.unwrap();
    server.flush().await.unwrap();
    assert_eq!(read_exactly(&mut sender, later.len()).await, later);
    assert!(server.writing_through(), "nothing left to rewrite");
}

#[tokio::test]
async fn a_raise_goes_out_with_a_flush_when_the_server_writes_nothing_after_it() {
    let (mut server, mut sender, limit) = pipe(1, 50);
    let servers = settings(&[(MAX_CONCURRENT_STREAMS, 50)]);
    server.write_all(&servers).await.unwrap();
    server.flush().await.unwrap();
    read_exactly(&mut sender, servers.len()).await;
    limit.raise();
    server.flush().await.unwrap();
    let raise = settings(&[(MAX_CONCURRENT_STREAMS, 50)]);
    assert_eq!(read_exactly(&mut sender, raise.len()).await, raise);
}

#[tokio::test]
async fn frames_written_in_pieces_are_rewritten_whole() {
    let (mut server, mut sender, limit) = pipe(1, 7);
    let mut written = settings(&[(MAX_CONCURRENT_STREAMS, 7), (0x5, 16_384)]);
    written.extend(frame(PING, 0, 0, &[9; 8]));
    for byte in &written {
        server.write_all(std::slice::from_ref(byte)).await.unwrap();
    }
    server.flush().await.unwrap();
    let mut expected = settings(&[(MAX_CONCURRENT_STREAMS, 1), (0x5, 16_384)]);
    expected.extend(frame(PING, 0, 0, &[9; 8]));
    assert_eq!(read_exactly(&mut sender, expected.len()).await, expected);
    assert_eq!(limit.announced(), 1);
}

#[tokio::test]
async fn settings_without_a_stream_limit_get_one() {
    let (mut server, mut sender, _limit) = pipe(1, 100);
    server.write_all(&settings(&[(0x4, 65_535)])).await.unwrap();
    server.flush().await.unwrap();
    let expected = settings(&[(0x4, 65_535), (MAX_CONCURRENT_STREAMS, 1)]);
    assert_eq!(read_exactly(&mut sender, expected.len()).await, expected);
}

/// The sender acknowledges the server's SETTINGS and ours, in the order it read them; the
/// server reads only the ACK of its own.
#[tokio::test]
async fn only_the_ack_of_our_settings_is_dropped() {
    let (mut server, mut sender, limit) = pipe(1, 1000);
    server
        .write_all(&settings(&[(MAX_CONCURRENT_STREAMS, 1000)]))
        .await
        .unwrap();
    limit.raise();
    server.flush().await.unwrap();
    read_exactly(&mut sender, 2 * (HEAD_LEN + 6)).await;

    let ack = frame(SETTINGS, ACK, 0, &[]);
    let ping = frame(PING, 0, 0, &[1; 8]);
    let mut sent = PREFACE.to_vec();
    sent.extend(&ack);
    sent.extend(&ack);
    sent.extend(&ping);
    // In pieces that cut the preface and the frames.
    for piece in sent.chunks(5) {
        sender.write_all(piece).await.unwrap();
    }
    sender.write_all(&ping).await.unwrap();
    let mut expected = PREFACE.to_vec();
    expected.extend(&ack);
    expected.extend(&ping);
    expected.extend(&ping);
    assert_eq!(read_exactly(&mut server, expected.len()).await, expected);
    assert!(server.reading_through(), "nothing left to watch for");
}

#[tokio::test]
async fn a_limit_that_starts_at_its_top_never_rises() {
    let limit = StreamLimit::new(5, 5);
    assert!(!limit.rises());
    assert_eq!(limit.announced(), 5);
    let above = StreamLimit::new(9, 5);
    assert_eq!((above.rises(), above.announced()), (false, 5));
}
