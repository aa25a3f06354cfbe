//! The bytes a connection's task writes next, for the connections that batch what their
//! callers queue: ringcast's own HTTP/2 client (`providers::pool::driver`) and Redis
//! connection (`registry::redis::pipelined`). Callers append to a buffer under the
//! connection's lock; the task swaps that buffer into its [`Outbox`] and writes it out, so
//! that whatever queued between two of its wake-ups goes out in one write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Bytes being written to a stream that may take them in parts.
#[derive(Debug, Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    /// How many of `bytes` the stream took.
    written: usize,
}

impl Outbox {
    /// An empty outbox whose buffer holds `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Outbox {
        Outbox {
            bytes: Vec::with_capacity(capacity),
            written: 0,
        }
    }

    /// Whether every byte was written (or none was queued).
    pub fn is_drained(&self) -> bool {
        self.written == self.bytes.len()
    }

    /// Whether nothing is left to write.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Takes what callers queued in `queued` as the next bytes to write, leaving it this
    /// outbox's emptied buffer (no allocation either way). Call it once drained.
    pub fn refill(&mut self, queued: &mut Vec<u8>) {
        self.bytes.clear();
        self.written = 0;
        std::mem::swap(&mut self.bytes, queued);
    }

    /// The buffer to append to directly (the task's own frames, say a GOAWAY).
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Writes until drained or the stream is full.
    pub fn poll_drain<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_drained() {
            match Pin::new(&mut *io).poll_write(cx, &self.bytes[self.written..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::Outbox;
    use std::task::{Context, Poll};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_refill_is_written_whole_across_partial_writes() {
        // A pipe that takes 4 bytes at a time.
        let (mut ours, mut theirs) = tokio::io::duplex(4);
        let mut outbox = Outbox::with_capacity(16);
        assert!(outbox.is_drained() && outbox.is_empty());
        let mut queued = b"hello, world".to_vec();
        outbox.refill(&mut queued);
        assert!(queued.is_empty() && !outbox.is_drained());
        let mut read = Vec::new();
        loop {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match outbox.poll_drain(&mut ours, &mut cx) {
                Poll::Ready(result) => {
                    result.unwrap();
                    break;
                }
                Poll::Pending => {
                    let mut chunk = [0; 4];
                    let n = theirs.read(&mut chunk).await.unwrap();
                    read.extend_from_slice(&chunk[..n]);
                }
            }
        }
        drop(ours);
        theirs.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"hello, world");
        assert!(outbox.is_drained());
    }
}
