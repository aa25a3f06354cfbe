//! The outcome stream (`[outcomes] stream = true`; README "Outcome stream"): every device's
//! outcome is appended to its tenant's Redis Stream, `{<name>:outcomes:<tenant>}` (trimmed
//! with `MAXLEN ~ max_len`), so call control that does not wait (`202`) still learns what
//! became of each ring, from any node, in order per tenant.
//!
//! One entry per device and event, fields (all strings):
//!
//! | field | value |
//! |---|---|
//! | `event_id` | the event id |
//! | `call_id` | the call |
//! | `kind` | `incoming_call`, `call_ended` or `missed_call` |
//! | `device` | the device id's fingerprint (first 8 hex digits of its SHA-256); never the token |
//! | `platform` | `apns`, `fcm`, `wns`, `webpush`, or `channel` (reached over the internal push channel only) |
//! | `outcome` | the outcome's label (README "Outcomes") |
//! | `reason` | why, when there is a reason (else absent) |
//! | `at` | when the outcome was known, UNIX ms |
//!
//! An append that fails is counted (`ringcast_outcome_stream_total{outcome="failed"}`) and
//! logged, never retried: the stream is a report, not the delivery.

use crate::config::Config;
use crate::registry::AnyStore;
use crate::router::ends::EndChannel;
use crate::vocab::{Outcome, Platform, PushKind, UnixMillis};
use std::sync::Arc;
use std::time::Duration;

/// The node's outcome stream settings; cheap to clone.
#[derive(Clone, Debug)]
pub struct OutcomeStream(Arc<Settings>);

#[derive(Debug)]
struct Settings {
    name: String,
    max_len: u64,
    command_timeout: Duration,
}

/// One device's outcome of one event.
pub struct DeviceReport<'a> {
    /// The event id.
    pub event_id: &'a str,
    /// The call.
    pub call_id: &'a str,
    /// What the event sent.
    pub kind: PushKind,
    /// The device id (published only as a fingerprint).
    pub device_id: &'a str,
    /// Its platform (`None`: reached over the internal push channel only).
    pub platform: Option<Platform>,
    /// What became of its push.
    pub outcome: &'a Outcome,
    /// When, UNIX ms.
    pub at: UnixMillis,
}

impl OutcomeStream {
    /// The node's outcome stream when `[outcomes] stream` is on, else `None`.
    pub fn from_config(config: &Config) -> Option<OutcomeStream> {
        let outcomes = &config.outcomes;
        outcomes.stream.then(|| {
            OutcomeStream(Arc::new(Settings {
                name: outcomes.name.clone(),
                max_len: outcomes.max_len,
                command_timeout: Duration::from_millis(config.registry.redis.command_timeout_ms),
            }))
        })
    }

    /// The stream over one router's store connection (`None` for the embedded store).
    pub fn on(&self, store: &AnyStore) -> Option<RouterOutcomes> {
        let redis = EndChannel::of_store(store)?;
        Some(RouterOutcomes {
            stream: self.clone(),
            redis,
        })
    }
}

/// The outcome stream over one router's store connection.
#[derive(Clone)]
pub struct RouterOutcomes {
    stream: OutcomeStream,
    redis: EndChannel,
}

/// The key of `tenant`'s outcome stream.
pub fn stream_key(name: &str, tenant: &str) -> String {
    format!("{{{name}:outcomes:{tenant}}}")
}

/// The entry's fields, in order (see the module doc).
pub fn fields(report: &DeviceReport<'_>) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("event_id", report.event_id.to_owned()),
        ("call_id", report.call_id.to_owned()),
        ("kind", kind_label(report.kind).to_owned()),
        ("device", crate::logging::fingerprint(report.device_id)),
        (
            "platform",
            report
                .platform
                .map_or("channel", Platform::as_str)
                .to_owned(),
        ),
        ("outcome", report.outcome.label().to_owned()),
    ];
    if let Some(reason) = report.outcome.reason() {
        fields.push(("reason", reason.to_owned()));
    }
    fields.push(("at", report.at.to_string()));
    fields
}

fn kind_label(kind: PushKind) -> &'static str {
    match kind {
        PushKind::IncomingCall => "incoming_call",
        PushKind::CallEnded => "call_ended",
        PushKind::MissedCall => "missed_call",
    }
}

impl RouterOutcomes {
    /// Appends one device's outcome to `tenant`'s stream; a failure is counted and logged.
    pub async fn append(&self, tenant: &str, report: &DeviceReport<'_>) {
        let settings = &self.stream.0;
        let mut command = redis::cmd("XADD");
        command
            .arg(stream_key(&settings.name, tenant))
            .arg("MAXLEN")
            .arg("~")
            .arg(settings.max_len)
            .arg("*");
        for (field, value) in fields(report) {
            command.arg(field).arg(value);
        }
        let appended = tokio::time::timeout(
            settings.command_timeout,
            self.redis.query::<redis::Value>(&command),
        )
        .await;
        match appended {
            Ok(Ok(_)) => crate::metrics::intake::outcome_stream(true),
            Ok(Err(error)) => {
                crate::metrics::intake::outcome_stream(false);
                tracing::warn!(%tenant, %error, "could not append an outcome to the outcome stream");
            }
            Err(_) => {
                crate::metrics::intake::outcome_stream(false);
                tracing::warn!(%tenant, "no answer appending an outcome to the outcome stream");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_the_device_by_fingerprint_and_keeps_the_reason() {
        let outcome = Outcome::Rejected {
            reason: "BadDeviceToken".into(),
        };
        let report = DeviceReport {
            event_id: "e-1",
            call_id: "c-1",
            kind: PushKind::IncomingCall,
            device_id: "phone",
            platform: Some(Platform::Apns),
            outcome: &outcome,
            at: 1_800_000_000_000,
        };
        let fields = fields(&report);
        let get = |name: &str| {
            fields
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("kind"), Some("incoming_call"));
        assert_eq!(
            get("device"),
            Some(crate::logging::fingerprint("phone").as_str())
        );
        assert_ne!(get("device"), Some("phone"));
        assert_eq!(get("platform"), Some("apns"));
        assert_eq!(get("outcome"), Some("rejected"));
        assert_eq!(get("reason"), Some("BadDeviceToken"));
        assert_eq!(get("at"), Some("1800000000000"));
        assert_eq!(stream_key("ringcast", "acme"), "{ringcast:outcomes:acme}");
        let channel = DeviceReport {
            platform: None,
            outcome: &Outcome::Delivered,
            ..report
        };
        let fields = super::fields(&channel);
        assert!(fields.iter().all(|(field, _)| *field != "reason"));
        assert!(fields.contains(&("platform", "channel".to_owned())));
    }
}
