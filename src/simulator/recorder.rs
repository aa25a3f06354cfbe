//! What the simulator saw: counters by status and reason, stream-limit violations, and
//! optionally every accepted push, so tests and load tests can prove delivery.

use super::record_file::RecordFile;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One accepted push as recorded (one JSON line each in the record file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordedPush {
    /// Arrival time, UNIX milliseconds: load tests compute delivery latency from it.
    pub received_at_ms: u64,
    /// Arrival time, UNIX microseconds: delivery latency targets are a few milliseconds, so
    /// the millisecond field alone is too coarse to measure them.
    pub received_at_us: u64,
    /// Which service side took it (`apns`, `fcm`, `wns` or `webpush`; for Web Push the
    /// device token is the subscription id, the payload the decrypted JSON, `push_type` the
    /// `Urgency`, `collapse_id` the `Topic`).
    pub service: &'static str,
    /// APNs: the device token. FCM: the registration token (`topic:<name>` or
    /// `condition:<expression>` for those targets).
    pub device_token: String,
    /// APNs: `apns-topic`. FCM: the project id, which plays the same role (whose app).
    pub topic: String,
    /// APNs: `apns-push-type`. FCM: `data`.
    pub push_type: String,
    /// APNs: `apns-priority`. FCM: the same scale, so one query covers both: 10 for
    /// `android.priority` `HIGH`, 5 for `NORMAL` or none (FCM's default for data messages).
    pub priority: u8,
    /// The message id answered: APNs `apns-id` (the client's, or one the simulator made up),
    /// FCM the id at the end of the answered `name`.
    pub apns_id: String,
    /// APNs: `apns-collapse-id`. FCM: `android.collapse_key`.
    pub collapse_id: Option<String>,
    /// When the service stops trying, UNIX seconds: APNs `apns-expiration`, FCM arrival plus
    /// `android.ttl` (none when absent: FCM then keeps it four weeks).
    pub expiration: Option<u64>,
    /// The payload as sent: APNs the JSON body, FCM `message.data`.
    pub payload: serde_json::Value,
    /// FCM: `android.priority` exactly as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub android_priority: Option<String>,
    /// FCM: `android.ttl` exactly as sent (`"45s"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A point-in-time copy of the counters, served as JSON by the stats endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Stats {
    /// TLS connections that completed the handshake.
    pub connections: u64,
    /// Push requests answered, whatever the answer.
    pub requests: u64,
    /// Push requests (not token requests) that arrived whole, counted before the profile's
    /// latency delays the answer: lets a test wait until a sender has a push on the wire
    /// rather than sleep for it.
    #[serde(default)]
    pub received: u64,
    /// Pushes answered 200.
    pub accepted: u64,
    /// Answers by `"<status> <reason>"` (`"200"` for accepted), for assertions like "no 429".
    pub by_status: BTreeMap<String, u64>,
    /// Streams opened beyond the limit their connection advertised at that moment (each
    /// refused with `REFUSED_STREAM`, never served).
    pub stream_limit_violations: u64,
    /// Most streams ever served at once on one connection: shows whether a sender uses the
    /// limit.
    pub max_streams_in_flight: u64,
    /// GOAWAY frames sent on purpose (profile `goaway_after_streams`).
    pub goaways: u64,
    /// Connections dropped on purpose (profile `reset_rate`).
    pub resets: u64,
    /// Pushes answered 200 by service (`apns`, `fcm`), for tests that drive both.
    #[serde(default)]
    pub accepted_by_service: BTreeMap<String, u64>,
    /// FCM `validate_only` messages answered 200 (checked, not delivered, not recorded).
    #[serde(default)]
    pub validated_only: u64,
    /// Access tokens the OAuth endpoint handed out: shows how often a sender refreshes.
    #[serde(default)]
    pub oauth_tokens_issued: u64,
    /// Token requests the OAuth endpoint refused.
    #[serde(default)]
    pub oauth_refusals: u64,
}

/// Thread-safe counters and sinks shared by every connection.
#[derive(Debug, Default)]
pub struct Recorder {
    connections: AtomicU64,
    requests: AtomicU64,
    received: AtomicU64,
    accepted: AtomicU64,
    violations: AtomicU64,
    max_in_flight: AtomicU64,
    goaways: AtomicU64,
    resets: AtomicU64,
    validated_only: AtomicU64,
    tokens_issued: AtomicU64,
    token_refusals: AtomicU64,
    // A std Mutex: held for a map update or a line write, never across an await.
    by_status: Mutex<BTreeMap<String, u64>>,
    by_service: Mutex<BTreeMap<String, u64>>,
    memory: Option<Mutex<Vec<RecordedPush>>>,
    file: Option<RecordFile>,
}

impl Recorder {
    /// A recorder keeping accepted pushes in memory (`keep`) and/or as JSON lines in `path`.
    pub fn new(keep: bool, path: Option<&Path>) -> std::io::Result<Self> {
        Ok(Self {
            memory: keep.then(|| Mutex::new(Vec::new())),
            file: path.map(RecordFile::create).transpose()?,
            ..Self::default()
        })
    }

    /// Writes the record file's pending lines through now (its own thread does every
    /// [`super::record_file::FLUSH_EVERY`]).
    pub fn flush(&self) {
        if let Some(file) = &self.file {
            file.flush();
        }
    }

    /// A connection finished its TLS handshake.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A GOAWAY was sent on purpose.
    pub fn goaway(&self) {
        self.goaways.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was dropped on purpose.
    pub fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// A push request arrived whole (its answer may still be delayed by the profile's latency).
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream opened with `now` streams in flight on a connection that advertised `limit`:
    /// whether it is within the limit. One beyond it counts as a violation, not in flight
    /// (the server refuses it).
    pub fn in_flight(&self, now: u64, limit: u64) -> bool {
        if now > limit {
            self.violations.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        true
    }

    /// The OAuth endpoint handed out an access token.
    pub fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// The OAuth endpoint refused a token request.
    pub fn token_refused(&self) {
        self.token_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// An FCM `validate_only` message passed every check: answered 200, delivered nowhere.
    pub fn validated_only(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.validated_only.fetch_add(1, Ordering::Relaxed);
    }

    /// A push answered with an error.
    pub fn rejected(&self, status: u16, reason: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.count(format!("{status} {reason}"));
    }

    /// A push answered 200. A failed record-file write is logged, not returned: the push
    /// was accepted either way, and the in-memory copy and counters still hold it.
    pub fn accepted(&self, push: RecordedPush) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.count("200".to_owned());
        *self
            .by_service
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(push.service.to_owned())
            .or_default() += 1;
        if let Some(file) = &self.file
            && let Err(error) = file.append(&push)
        {
            tracing::warn!(%error, "simulator: could not write the record file");
        }
        if let Some(memory) = &self.memory {
            memory
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(push);
        }
    }

    fn count(&self, key: String) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            by_status: self
                .by_status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            stream_limit_violations: self.violations.load(Ordering::Relaxed),
            max_streams_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            goaways: self.goaways.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            accepted_by_service: self
                .by_service
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            validated_only: self.validated_only.load(Ordering::Relaxed),
            oauth_tokens_issued: self.tokens_issued.load(Ordering::Relaxed),
            oauth_refusals: self.token_refusals.load(Ordering::Relaxed),
        }
    }

    /// Accepted pushes kept in memory (empty unless recording was asked for).
    pub fn records(&self) -> Vec<RecordedPush> {
        self.memory.as_ref().map_or_else(Vec::new, |memory| {
            memory
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(token: &str) -> RecordedPush {
        RecordedPush {
            received_at_ms: 5,
            received_at_us: 5_000,
            service: "apns",
            device_token: token.into(),
            topic: "t.voip".into(),
            push_type: "voip".into(),
            priority: 10,
            apns_id: "id".into(),
            collapse_id: None,
            expiration: None,
            payload: serde_json::json!({"a": 1}),
            android_priority: None,
            ttl: None,
        }
    }

    #[test]
    fn counts_and_records_to_memory_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let recorder = Recorder::new(true, Some(&path)).unwrap();
        recorder.accepted(push("aa"));
        recorder.accepted(push("bb"));
        recorder.rejected(400, "BadTopic");
        assert!(!recorder.in_flight(3, 2), "beyond the limit: refused");
        assert!(recorder.in_flight(2, 2));
        let stats = recorder.stats();
        assert_eq!((stats.requests, stats.accepted), (3, 2));
        assert_eq!(stats.by_status["400 BadTopic"], 1);
        assert_eq!(
            (stats.stream_limit_violations, stats.max_streams_in_flight),
            (1, 2)
        );
        assert_eq!(recorder.records().len(), 2);
        // Lines wait in memory for the record file's thread; flush writes them now.
        recorder.flush();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines[1]["device_token"], "bb");
        assert_eq!(lines[0]["received_at_ms"], 5);
        // APNs lines carry no FCM fields.
        assert!(lines[0].get("ttl").is_none());
        assert_eq!(stats.accepted_by_service["apns"], 2);
    }
}
