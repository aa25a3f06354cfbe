//! Log output: human-readable text by default, JSON lines for log pipelines.
//!
//! Every line about one call event is logged inside its [`call_event_span`], so text lines
//! carry `call_event{event_id=...}` and JSON lines a `span` object with the `event_id`: one
//! search finds everything the router and the providers did for a call. Tokens appear only as
//! fingerprints, identities too at `info` and above ([`fingerprint`]), and secrets never
//! (STYLE.md); `tests/observability` reads a real node's JSON log of a full run for them.

use crate::config::LogFormat;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber, writing to stderr. `RUST_LOG`, when set, overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only for a terminal: escape codes in a file or a pipe break grep and log shippers.
    let ansi = std::io::stderr().is_terminal();
    // A second init (tests) keeps the first subscriber; that is fine, so the error is ignored.
    let _ = subscriber(format, filter, ansi, std::io::stderr).try_init();
}

/// The subscriber `init` installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

/// How an identity appears in logs at `info` and above: the first 8 hex characters of its
/// SHA-256, like a token (STYLE.md). Identities are phone numbers at a carrier: personal data
/// that log pipelines copy far and keep long. An operator looking for one user's lines
/// computes the same fingerprint (`printf %s +15551234567 | sha256sum | cut -c1-8`).
pub fn fingerprint(identity: &str) -> String {
    crate::registry::registration::fingerprint(identity.as_bytes())
}

/// The span the router and the providers enter for everything they do about one call event.
/// Only the event id: it is the caller's idempotency key, not a secret, and it ties the
/// event's lines together across router and providers (on one shard thread).
pub fn call_event_span(event_id: &str) -> tracing::Span {
    tracing::info_span!("call_event", event_id = %event_id)
}

/// A log destination that keeps what is written in memory, for reading back: what the tests
/// that check a log line give [`subscriber`] (or any `fmt` subscriber) as its writer. Clones
/// share one buffer.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog(Arc<Mutex<Vec<u8>>>);

impl MemoryLog {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A writer that panicked mid-line leaves whole bytes behind: still readable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::io::Write for MemoryLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'writer> MakeWriter<'writer> for MemoryLog {
    type Writer = MemoryLog;
    fn make_writer(&'writer self) -> MemoryLog {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(format: LogFormat) -> String {
        let log = MemoryLog::default();
        let subscriber = subscriber(format, EnvFilter::new("info"), false, log.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = call_event_span("call-42");
            let _entered = span.enter();
            tracing::info!(provider = "apns", token = "cc20776a", "push delivered");
            tracing::debug!("below the level: not written");
        });
        log.text()
    }

    #[test]
    fn json_lines_carry_the_call_events_id_from_its_span() {
        let text = logged(LogFormat::Json);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["message"], "push delivered");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["token"], "cc20776a");
        assert_eq!(line["span"]["name"], "call_event");
        assert_eq!(line["span"]["event_id"], "call-42");
    }

    #[test]
    fn an_identity_fingerprint_is_8_hex_characters_of_its_sha256() {
        // printf %s +15551234567 | sha256sum
        let print = fingerprint("+15551234567");
        assert_eq!(print.len(), 8);
        assert!(print.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(print, fingerprint("+15551234568"));
    }

    #[test]
    fn text_lines_carry_it_too() {
        let text = logged(LogFormat::Text);
        assert!(
            text.contains("call_event{event_id=call-42}") && text.contains("push delivered"),
            "{text}"
        );
    }
}
