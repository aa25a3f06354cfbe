//! The record file: every accepted push as a JSON line, written by a thread of its own.
//!
//! The simulator answers every push on one thread (a current-thread runtime). Writing the
//! file there made the disk part of the answer's latency: an ext4 `write` of a 10 ms batch
//! took up to 13 ms during the kernel's writeback (`perf trace -e write` on the simulator in
//! `benches/e2e.sh`, whose record grows by ~20 MB a second), and every push in flight waited
//! that long — a tail the real services do not have, charged to the sender under test. So
//! the serving thread only appends lines to a buffer in memory; a writer thread takes the
//! buffer every [`FLUSH_EVERY`] and writes it (in batches: one `write` per push once cost the
//! simulator 13 % of its CPU at 44k pushes/s). Past [`PENDING_LIMIT`] (a disk slower than the
//! pushes for seconds) the serving thread writes the buffer itself: the simulator slows
//! down rather than holding an unbounded record in memory.

use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The most time an accepted push waits in memory before the writer thread writes it: a
/// reader of the file (the load generator joining deliveries) sees each push within this
/// and one write.
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Bytes of lines waiting beyond which the serving thread writes them itself (~40k pushes).
const PENDING_LIMIT: usize = 16 * 1024 * 1024;

/// The lines waiting and the file they go to.
#[derive(Debug)]
struct Shared {
    /// Lines not yet written; the serving thread appends, the writer takes them all.
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so batches land in the order they were
    /// taken whichever thread writes them.
    file: Mutex<File>,
}

/// The record file. Dropping it stops its writer thread, which writes what is left first.
#[derive(Debug)]
pub struct RecordFile {
    shared: Arc<Shared>,
    /// Dropped with the record file: the writer thread's signal to write a last time and end.
    _stop: mpsc::Sender<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RecordFile {
    /// Creates (truncates) the file at `path` and starts its writer thread.
    pub fn create(path: &Path) -> std::io::Result<RecordFile> {
        let (file, stopped) = RecordFile::unattended(path)?;
        let writer = Arc::clone(&file.shared);
        std::thread::Builder::new()
            .name("simulator-record".into())
            .spawn(move || {
                // Swapped with the pending buffer, so both keep their capacity.
                let mut batch = Vec::with_capacity(256 * 1024);
                loop {
                    let stopping = match stopped.recv_timeout(FLUSH_EVERY) {
                        Err(RecvTimeoutError::Timeout) => false,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    writer.write_pending(&mut batch);
                    if stopping {
                        return;
                    }
                }
            })?;
        Ok(file)
    }

    /// The file with no writer thread yet, and the end its thread listens on.
    fn unattended(path: &Path) -> std::io::Result<(RecordFile, mpsc::Receiver<()>)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(256 * 1024)),
            file: Mutex::new(File::create(path)?),
        });
        let (stop, stopped) = mpsc::channel();
        Ok((
            RecordFile {
                shared,
                _stop: stop,
            },
            stopped,
        ))
    }

    /// Appends `line` as one JSON line. Never touches the disk unless the writer thread is
    /// [`PENDING_LIMIT`] behind.
    /// A line that fails to serialize leaves nothing behind, not half a line.
    pub fn append<T: Serialize>(&self, line: &T) -> std::io::Result<()> {
        let overdue = {
            let mut pending = lock(&self.shared.pending);
            let start = pending.len();
            if let Err(error) = serde_json::to_writer(&mut *pending, line) {
                pending.truncate(start);
                return Err(error.into());
            }
            pending.push(b'\n');
            pending.len() >= PENDING_LIMIT
        };
        if overdue {
            self.flush();
        }
        Ok(())
    }

    /// Writes every line appended so far through, now (tests; the writer thread does it on
    /// its own every [`FLUSH_EVERY`]).
    pub fn flush(&self) {
        self.shared.write_pending(&mut Vec::new());
    }
}

impl Shared {
    /// Takes the pending lines (leaving `batch`'s empty buffer in their place) and writes
    /// them. A failed write is logged: the push was answered either way.
    fn write_pending(&self, batch: &mut Vec<u8>) {
        let mut file = lock(&self.file);
        std::mem::swap(&mut *lock(&self.pending), batch);
        if batch.is_empty() {
            return;
        }
        if let Err(error) = file.write_all(batch) {
            tracing::warn!(%error, "simulator: could not write the record file");
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn the_writer_thread_writes_lines_in_order_without_being_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let file = RecordFile::create(&path).unwrap();
        for n in 0..1000 {
            file.append(&serde_json::json!({ "n": n })).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(&path).len() < 1000 {
            assert!(Instant::now() < deadline, "the writer thread wrote nothing");
            std::thread::sleep(FLUSH_EVERY);
        }
        let written: Vec<u64> = lines(&path)
            .iter()
            .map(|line| line["n"].as_u64().unwrap())
            .collect();
        assert_eq!(written, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_the_file_writes_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let file = RecordFile::create(&path).unwrap();
        file.append(&serde_json::json!({ "last": true })).unwrap();
        drop(file);
        // The writer thread ends after its last write; wait for it by condition.
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(&path).is_empty() {
            assert!(Instant::now() < deadline, "the last line was lost");
            std::thread::sleep(FLUSH_EVERY);
        }
        assert_eq!(lines(&path)[0]["last"], true);
    }

    #[test]
    fn a_line_that_fails_to_serialize_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let (file, _stopped) = RecordFile::unattended(&path).unwrap();
        // JSON keys must be strings: this fails after `{"ok":1,"bad":{` is written.
        #[derive(Serialize)]
        struct Bad {
            ok: u8,
            bad: std::collections::BTreeMap<(u8, u8), u8>,
        }
        let bad = Bad {
            ok: 1,
            bad: [((1, 2), 3)].into(),
        };
        assert!(file.append(&bad).is_err());
        file.append(&serde_json::json!({ "next": true })).unwrap();
        file.flush();
        assert_eq!(lines(&path), [serde_json::json!({ "next": true })]);
    }

    #[test]
    fn lines_past_the_limit_are_written_by_the_appender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        // No writer thread: only the appender can write.
        let (file, _stopped) = RecordFile::unattended(&path).unwrap();
        let line = "x".repeat(1022); // 1,024 bytes a line with its quotes, 1,025 with '\n'
        let under_limit = PENDING_LIMIT.div_ceil(1025) - 1;
        for _ in 0..under_limit {
            file.append(&line).unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "held in memory");
        file.append(&line).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (under_limit as u64 + 1) * 1025,
            "the append past the limit wrote every line"
        );
        assert!(lock(&file.shared.pending).is_empty());
    }
}
