//! What a run measured: HDR histograms of API and delivery latency, outcomes and errors by
//! kind, a per-second timeline; and the report built from them (JSON, and a one-page text).
//!
//! Latencies are recorded in microseconds with three significant digits (HDR: exact to
//! 0.1 % at every magnitude), from 1 µs up to an hour; longer values are clamped, not lost.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

/// The longest latency a histogram holds (longer ones are clamped to it), in microseconds.
const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::with_precision(3)
    }
}

impl Latencies {
    /// A histogram with `digits` significant digits (the timeline's per-second ones use 2 to
    /// stay small).
    pub fn with_precision(digits: u8) -> Self {
        // 1 µs ..= 1 h at 2-3 digits are valid bounds: new_with_bounds cannot fail for them.
        let histogram = Histogram::new_with_bounds(1, HIGHEST_US, digits)
            .unwrap_or_else(|_| Histogram::new(digits).unwrap_or_else(|_| unreachable!()));
        Latencies(histogram)
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, HIGHEST_US);
        self.0.saturating_record(micros);
    }

    /// Records a latency given in microseconds.
    pub fn record_us(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, HIGHEST_US));
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at `quantile` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The summary the report shows; `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        (self.count() > 0).then(|| LatencySummary {
            count: self.count(),
            mean_ms: round3(self.0.mean() / 1000.0),
            p50_ms: round3(self.quantile_ms(0.50)),
            p90_ms: round3(self.quantile_ms(0.90)),
            p99_ms: round3(self.quantile_ms(0.99)),
            p999_ms: round3(self.quantile_ms(0.999)),
            max_ms: round3(self.0.max() as f64 / 1000.0),
        })
    }

    /// The latency curve for the distribution plot: (percentile, milliseconds) from the
    /// median to the maximum, denser towards the tail where the story is.
    pub fn percentile_curve(&self) -> Vec<(f64, f64)> {
        if self.count() == 0 {
            return Vec::new();
        }
        let mut curve = Vec::new();
        // 1 - q from 1 down to 1e-5, 20 steps per decade.
        for step in 0..=100 {
            let quantile = 1.0 - 10f64.powf(-f64::from(step) / 20.0);
            curve.push((round3(quantile * 100.0), round3(self.quantile_ms(quantile))));
        }
        curve.push((100.0, round3(self.0.max() as f64 / 1000.0)));
        curve
    }
}

/// Percentiles of one latency, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// How many were measured.
    pub count: u64,
    /// The mean (for comparison with tools that show only that; read the percentiles).
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile: the targets are set here.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The worst.
    pub max_ms: f64,
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// One second of the run, for the latency-over-time plot.
#[derive(Clone, Debug, Default)]
pub struct SecondTally {
    /// Calls due in this second.
    pub offered: u64,
    /// Calls answered 2xx.
    pub ok: u64,
    /// Calls that failed (any error kind, drops included).
    pub errors: u64,
    /// API latencies of the calls due in this second.
    pub api: Latencies,
}

/// Everything counted during the run; the report is computed from it at the end.
#[derive(Debug, Default)]
pub struct Tally {
    /// Ring requests' latency (from the intended send time).
    pub api: Latencies,
    /// End requests' latency (from their actual send).
    pub end_api: Latencies,
    /// How late the generator itself sent calls: large values mean it, not the node, was
    /// the bottleneck.
    pub send_lag: Latencies,
    /// Calls offered (sent or dropped).
    pub offered: u64,
    /// Calls answered 2xx.
    pub ok: u64,
    /// Failed calls by kind (`http_503`, `timeout`, `client_overloaded`, ...).
    pub errors: BTreeMap<String, u64>,
    /// End events sent and answered 2xx, by reason.
    pub ends_ok: BTreeMap<String, u64>,
    /// Failed end events by kind.
    pub end_errors: BTreeMap<String, u64>,
    /// Per-device outcomes from `?wait=true` answers (`delivered`, `rejected:
    /// provider_not_configured`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// The same outcomes by the device's platform (`apns`, `fcm`, `wns`, `webpush`): shows
    /// at a glance whether every platform of the mix was delivered.
    pub outcomes_by_platform: BTreeMap<String, BTreeMap<String, u64>>,
    /// Devices the answers said were reached.
    pub devices_reached: u64,
    /// Per-second tallies, by the second the call was due in.
    pub timeline: Vec<SecondTally>,
    /// Ring send times by call id, UNIX microseconds: the start of delivery latency.
    pub ring_sent_us: HashMap<String, u64>,
    /// End send times by call id.
    pub end_sent_us: HashMap<String, u64>,
}

impl Tally {
    /// The timeline entry of the second `due` falls in.
    pub fn second(&mut self, due: Duration) -> &mut SecondTally {
        let index = due.as_secs() as usize;
        if self.timeline.len() <= index {
            self.timeline.resize_with(index + 1, || SecondTally {
                api: Latencies::with_precision(2),
                ..SecondTally::default()
            });
        }
        &mut self.timeline[index]
    }

    /// Counts a failed call of `kind` due at `due`.
    pub fn error(&mut self, kind: &str, due: Duration) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
        self.second(due).errors += 1;
    }
}

/// The simulator's record of deliveries, joined to the calls by call id.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Ring (incoming-call) pushes: from the ring's send to the simulator's acceptance.
    pub ring: Latencies,
    /// Call-ended pushes: from the end event's send to the simulator's acceptance.
    pub end: Latencies,
    /// Accepted pushes of this run by service (`apns`, `fcm`, `wns`, `webpush`).
    pub by_service: BTreeMap<String, u64>,
    /// Pushes of this run by payload type (`incoming_call`, `call_ended`, `missed_call`).
    pub by_type: BTreeMap<String, u64>,
    /// Ring delivery p99 per second of the run (by the second the ring was sent).
    pub ring_by_second: BTreeMap<u64, Latencies>,
    /// The first and last acceptance, UNIX microseconds: the delivery window for pushes/s.
    pub window_us: Option<(u64, u64)>,
}

impl Deliveries {
    /// Joins the simulator's JSON-lines record (`received_at_us`, `payload`) to the calls
    /// sent in this run (`run_start_us` = the drive phase's start, for the per-second view).
    /// Lines of other runs or unreadable lines are skipped: the file may be shared.
    pub fn join(records: &str, tally: &Tally, run_start_us: u64) -> Deliveries {
        let mut deliveries = Deliveries::default();
        for line in records.lines() {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let service = record["service"].as_str().unwrap_or("?");
            // APNs carries the call under "ringcast"; FCM's data, WNS's raw body and Web
            // Push's decrypted body carry it at the top (the recorder's `payload`).
            let payload = match service {
                "apns" => &record["payload"]["ringcast"],
                _ => &record["payload"],
            };
            let (Some(call_id), Some(kind)) =
                (payload["call_id"].as_str(), payload["type"].as_str())
            else {
                continue;
            };
            let received = record["received_at_us"]
                .as_u64()
                .or_else(|| record["received_at_ms"].as_u64().map(|ms| ms * 1000))
                .unwrap_or(0);
            let sent = match kind {
                "incoming_call" => tally.ring_sent_us.get(call_id),
                _ => tally.end_sent_us.get(call_id),
            };
            let Some(&sent) = sent else { continue };
            let latency = received.saturating_sub(sent);
            if kind == "incoming_call" {
                deliveries.ring.record_us(latency);
                deliveries
                    .ring_by_second
                    .entry(sent.saturating_sub(run_start_us) / 1_000_000)
                    .or_insert_with(|| Latencies::with_precision(2))
                    .record_us(latency);
            } else {
                deliveries.end.record_us(latency);
            }
            *deliveries.by_service.entry(service.to_owned()).or_default() += 1;
            *deliveries.by_type.entry(kind.to_owned()).or_default() += 1;
            deliveries.window_us = Some(match deliveries.window_us {
                None => (received, received),
                Some((first, last)) => (first.min(received), last.max(received)),
            });
        }
        deliveries
    }

    /// Pushes accepted by the simulator for this run.
    pub fn total(&self) -> u64 {
        self.by_service.values().sum()
    }
}

/// Device outcomes sorted into what the report's reader asks first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OutcomeClasses {
    /// Accepted by the push service.
    pub delivered: u64,
    /// No provider for the device's platform on the node (an app without credentials, or a
    /// platform the node does not configure): the node's configuration, not a failure under
    /// load.
    pub provider_not_configured: u64,
    /// Everything else (shed, expired, rejected for other reasons, pending, ...).
    pub other: u64,
}

impl OutcomeClasses {
    /// Sorts the outcome counts.
    pub fn of(outcomes: &BTreeMap<String, u64>) -> OutcomeClasses {
        let mut classes = OutcomeClasses::default();
        for (outcome, &count) in outcomes {
            if outcome == "delivered" {
                classes.delivered += count;
            } else if outcome.ends_with("provider_not_configured") {
                classes.provider_not_configured += count;
            } else {
                classes.other += count;
            }
        }
        classes
    }
}

/// One second of the timeline, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the start of the drive phase.
    pub second: u64,
    /// Calls due in it.
    pub offered: u64,
    /// Calls answered 2xx.
    pub ok: u64,
    /// Calls that failed.
    pub errors: u64,
    /// API latency p50 of its calls, ms.
    pub api_p50_ms: Option<f64>,
    /// API latency p99 of its calls, ms.
    pub api_p99_ms: Option<f64>,
    /// Ring delivery latency p99 of its calls, ms.
    pub delivery_p99_ms: Option<f64>,
}

/// The registration phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RegistrationReport {
    /// Registered now (false: reused from an earlier run).
    pub registered: bool,
    /// Devices registered (or reused).
    pub devices: u64,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// Failed registrations by kind.
    pub errors: BTreeMap<String, u64>,
}

/// The whole report (`report.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run's id: the prefix of its call ids.
    pub run_id: String,
    /// When the drive phase started, RFC 3339.
    pub started_at: String,
    /// The scenario as run.
    pub scenario: super::Scenario,
    /// The registration phase.
    pub registration: RegistrationReport,
    /// How long calls were offered, in seconds.
    pub drive_seconds: f64,
    /// Calls offered (sent or dropped).
    pub calls_offered: u64,
    /// Calls answered 2xx.
    pub calls_ok: u64,
    /// Calls offered per second.
    pub offered_per_second: f64,
    /// Calls answered 2xx per second.
    pub calls_per_second: f64,
    /// Failed calls by kind.
    pub errors: BTreeMap<String, u64>,
    /// End events answered 2xx, by reason.
    pub ends_ok: BTreeMap<String, u64>,
    /// Failed end events by kind.
    pub end_errors: BTreeMap<String, u64>,
    /// Devices the ring answers said were reached.
    pub devices_reached: u64,
    /// Per-device outcomes (`?wait=true`).
    pub outcomes: BTreeMap<String, u64>,
    /// The outcomes sorted into delivered / provider not configured / other.
    pub outcome_classes: OutcomeClasses,
    /// Per-device outcomes by platform.
    pub outcomes_by_platform: BTreeMap<String, BTreeMap<String, u64>>,
    /// Ring API latency, from the intended send time.
    pub api_latency: Option<LatencySummary>,
    /// End API latency.
    pub end_api_latency: Option<LatencySummary>,
    /// How late the generator sent calls (its own bottleneck, if any).
    pub generator_send_lag: Option<LatencySummary>,
    /// The generator's own CPU over the drive, in cores (`None` without procfs): on a
    /// machine it shares with the node, what it took from the node.
    pub generator_cpu_cores: Option<f64>,
    /// Ring delivery latency: ring sent → push accepted by the simulator.
    pub delivery_latency: Option<LatencySummary>,
    /// Call-ended delivery latency: end sent → push accepted by the simulator.
    pub end_delivery_latency: Option<LatencySummary>,
    /// Pushes of this run the simulator accepted, by service.
    pub pushes_by_service: BTreeMap<String, u64>,
    /// Pushes of this run the simulator accepted, by payload type.
    pub pushes_by_type: BTreeMap<String, u64>,
    /// Pushes accepted per second over the drive phase.
    pub pushes_per_second: f64,
    /// Per-second view.
    pub timeline: Vec<TimelinePoint>,
    /// A ramp's knee: the highest rate whose ring delivery p99 stayed under
    /// `scenario.knee_p99_ms` (src/loadgen/knee.rs); `None` for other rates, without the
    /// simulator's record, or when no second stayed under it.
    pub knee: Option<super::knee::Knee>,
    /// API latency distribution: (percentile, ms).
    pub api_latency_curve: Vec<(f64, f64)>,
    /// Ring delivery latency distribution: (percentile, ms).
    pub delivery_latency_curve: Vec<(f64, f64)>,
    /// The internal push channel's clients (`channel_clients`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<super::channel::ChannelReport>,
}

impl Report {
    /// Builds the report from the run's tally and the joined deliveries.
    pub fn build(
        header: (String, String, super::Scenario, RegistrationReport),
        drive: Duration,
        tally: &Tally,
        deliveries: Option<&Deliveries>,
    ) -> Report {
        let (run_id, started_at, scenario, registration) = header;
        let seconds = drive.as_secs_f64().max(1e-9);
        let timeline: Vec<TimelinePoint> = tally
            .timeline
            .iter()
            .enumerate()
            .map(|(second, tallied)| {
                let delivery = deliveries.and_then(|d| d.ring_by_second.get(&(second as u64)));
                TimelinePoint {
                    second: second as u64,
                    offered: tallied.offered,
                    ok: tallied.ok,
                    errors: tallied.errors,
                    api_p50_ms: (tallied.api.count() > 0).then(|| tallied.api.quantile_ms(0.5)),
                    api_p99_ms: (tallied.api.count() > 0).then(|| tallied.api.quantile_ms(0.99)),
                    delivery_p99_ms: delivery.map(|d| d.quantile_ms(0.99)),
                }
            })
            .collect();
        let knee = match scenario.rate {
            super::Rate::Ramp { .. } => super::knee::find(&timeline, scenario.knee_p99_ms),
            _ => None,
        };
        Report {
            run_id,
            started_at,
            scenario,
            registration,
            drive_seconds: round3(seconds),
            calls_offered: tally.offered,
            calls_ok: tally.ok,
            offered_per_second: round3(tally.offered as f64 / seconds),
            calls_per_second: round3(tally.ok as f64 / seconds),
            errors: tally.errors.clone(),
            ends_ok: tally.ends_ok.clone(),
            end_errors: tally.end_errors.clone(),
            devices_reached: tally.devices_reached,
            outcomes: tally.outcomes.clone(),
            outcome_classes: OutcomeClasses::of(&tally.outcomes),
            outcomes_by_platform: tally.outcomes_by_platform.clone(),
            api_latency: tally.api.summary(),
            end_api_latency: tally.end_api.summary(),
            generator_send_lag: tally.send_lag.summary(),
            generator_cpu_cores: None,
            delivery_latency: deliveries.and_then(|d| d.ring.summary()),
            end_delivery_latency: deliveries.and_then(|d| d.end.summary()),
            pushes_by_service: deliveries.map(|d| d.by_service.clone()).unwrap_or_default(),
            pushes_by_type: deliveries.map(|d| d.by_type.clone()).unwrap_or_default(),
            pushes_per_second: round3(deliveries.map_or(0, Deliveries::total) as f64 / seconds),
            knee,
            timeline,
            api_latency_curve: tally.api.percentile_curve(),
            delivery_latency_curve: deliveries
                .map(|d| d.ring.percentile_curve())
                .unwrap_or_default(),
            channel: None,
        }
    }

    /// Failed calls, all kinds.
    pub fn calls_failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The one-page text summary (`summary.txt`, and what the command prints).
    pub fn summary_text(&self) -> String {
        let mut out = String::new();
        let s = &self.scenario;
        let _ = writeln!(
            out,
            "ringcast loadgen — run {} ({})",
            self.run_id, self.started_at
        );
        let _ = writeln!(
            out,
            "targets {} over {:?} ×{} connections; {} identities, devices {:?}, platforms {:?}",
            s.targets.join(" "),
            s.http,
            s.connections(),
            s.identities,
            s.devices_per_identity,
            s.platforms
        );
        let _ = writeln!(
            out,
            "rate {:?}; wait for outcomes: {}",
            s.rate, s.wait_for_outcomes
        );
        let r = &self.registration;
        let _ = writeln!(
            out,
            "registration: {} devices {} in {:.1} s, errors {:?}",
            r.devices,
            if r.registered { "registered" } else { "reused" },
            r.seconds,
            r.errors
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "calls: {} offered in {:.1} s ({:.1}/s), {} ok ({:.1}/s), {} failed",
            self.calls_offered,
            self.drive_seconds,
            self.offered_per_second,
            self.calls_ok,
            self.calls_per_second,
            self.calls_failed()
        );
        if !self.errors.is_empty() {
            let _ = writeln!(out, "  errors by kind: {:?}", self.errors);
        }
        let _ = writeln!(
            out,
            "ends: ok {:?}, errors {:?}",
            self.ends_ok, self.end_errors
        );
        let c = &self.outcome_classes;
        let _ = writeln!(
            out,
            "devices reached: {}; outcomes: delivered {}, provider not configured {}, other {}",
            self.devices_reached, c.delivered, c.provider_not_configured, c.other
        );
        if !self.outcomes.is_empty() {
            let _ = writeln!(out, "  by kind: {:?}", self.outcomes);
        }
        for (platform, outcomes) in &self.outcomes_by_platform {
            let _ = writeln!(out, "  {platform}: {outcomes:?}");
        }
        let _ = writeln!(
            out,
            "pushes accepted by the simulator: {} ({:.1}/s) by service {:?}, by type {:?}",
            self.pushes_by_service.values().sum::<u64>(),
            self.pushes_per_second,
            self.pushes_by_service,
            self.pushes_by_type
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<26} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let channel_latency = self
            .channel
            .as_ref()
            .and_then(|channel| channel.ring_latency.clone());
        for (name, summary) in [
            ("ring API (from intended)", &self.api_latency),
            ("end API", &self.end_api_latency),
            ("ring delivery", &self.delivery_latency),
            ("end delivery", &self.end_delivery_latency),
            ("ring over the channel", &channel_latency),
            ("generator send lag", &self.generator_send_lag),
        ] {
            match summary {
                Some(l) => {
                    let _ = writeln!(
                        out,
                        "{name:<26} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                        l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                    );
                }
                None => {
                    let _ = writeln!(out, "{name:<26} {:>8}", "-");
                }
            }
        }
        if let Some(cores) = self.generator_cpu_cores {
            let _ = writeln!(
                out,
                "generator CPU over the drive: {cores:.2} cores ({:.1} µs per call offered)",
                cores * self.drive_seconds * 1e6 / self.calls_offered.max(1) as f64
            );
        }
        if let Some(knee) = &self.knee {
            let _ = writeln!(
                out,
                "\nknee: {} calls/s (second {}, ring delivery p99 {:.3} ms ≤ {} ms); {}",
                knee.calls_per_second,
                knee.second,
                knee.delivery_p99_ms,
                knee.p99_bound_ms,
                match knee.broke_at_second {
                    Some(second) => format!("over the bound from second {second} on"),
                    None => "never over the bound: the ramp's top is a lower bound".to_owned(),
                }
            );
        }
        if let Some(channel) = &self.channel {
            channel_summary(&mut out, channel);
        }
        if self.delivery_latency.is_none() {
            let _ = writeln!(
                out,
                "\n(no delivery latency: give the simulator's --record file as simulator_record)"
            );
        }
        out
    }
}

/// The channel clients' lines of the summary.
fn channel_summary(out: &mut String, channel: &super::channel::ChannelReport) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "channel: {} of {} clients connected in {:.1} s (errors {:?}), {} dropped during the run",
        channel.connected,
        channel.clients,
        channel.connect_seconds,
        channel.connect_errors,
        channel.dropped
    );
    let _ = writeln!(
        out,
        "  rings heard {}, acks sent {}, platform pushes avoided (delivered_internal) {}",
        channel.rings_received, channel.acks_sent, channel.pushes_avoided
    );
    if let (Some(before), Some(after), Some(per)) = (
        channel.rss_before_bytes,
        channel.rss_connected_bytes,
        channel.rss_per_connection_bytes,
    ) {
        let _ = writeln!(
            out,
            "  node RSS {:.1} MiB → {:.1} MiB connected: {:.2} KiB per idle connection",
            before as f64 / 1_048_576.0,
            after as f64 / 1_048_576.0,
            per / 1024.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut latencies = Latencies::default();
        for ms in 1..=1000u64 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary().unwrap();
        assert_eq!(summary.count, 1000);
        // Three significant digits: within 0.1 %.
        for (got, want) in [
            (summary.p50_ms, 500.0),
            (summary.p90_ms, 900.0),
            (summary.p99_ms, 990.0),
            (summary.p999_ms, 999.0),
            (summary.max_ms, 1000.0),
        ] {
            assert!(
                (got - want).abs() <= want * 0.001 + 0.001,
                "{got} vs {want}"
            );
        }
        assert!((summary.mean_ms - 500.5).abs() < 0.5);
        assert_eq!(Latencies::default().summary(), None);
        let curve = latencies.percentile_curve();
        assert_eq!(curve.first().map(|p| p.0), Some(0.0));
        assert_eq!(curve.last().copied(), Some((100.0, summary.max_ms)));
        assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1), "monotone");
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut latencies = Latencies::default();
        latencies.record(Duration::ZERO);
        latencies.record(Duration::from_secs(10 * 3600));
        assert_eq!(latencies.count(), 2);
    }

    #[test]
    fn outcomes_are_sorted_into_classes() {
        let outcomes = BTreeMap::from([
            ("delivered".to_owned(), 7),
            ("rejected: provider_not_configured".to_owned(), 3),
            ("shed".to_owned(), 1),
            ("rejected: BadDeviceToken".to_owned(), 2),
        ]);
        assert_eq!(
            OutcomeClasses::of(&outcomes),
            OutcomeClasses {
                delivered: 7,
                provider_not_configured: 3,
                other: 3
            }
        );
    }

    #[test]
    fn deliveries_join_by_call_id_and_type() {
        let mut tally = Tally::default();
        tally.ring_sent_us.insert("r-1".into(), 1_000_000);
        tally.ring_sent_us.insert("r-2".into(), 2_500_000);
        tally.end_sent_us.insert("r-1".into(), 1_100_000);
        let records = [
            r#"{"service":"apns","received_at_us":1002000,"payload":{"ringcast":{"call_id":"r-1","type":"incoming_call"}}}"#,
            r#"{"service":"fcm","received_at_us":2503500,"payload":{"call_id":"r-2","type":"incoming_call"}}"#,
            r#"{"service":"apns","received_at_us":1105000,"payload":{"ringcast":{"call_id":"r-1","type":"call_ended"}}}"#,
            r#"{"service":"apns","received_at_ms":9,"payload":{"ringcast":{"call_id":"other-run","type":"incoming_call"}}}"#,
            "not json",
        ]
        .join("\n");
        let deliveries = Deliveries::join(&records, &tally, 1_000_000);
        assert_eq!(
            deliveries.total(),
            3,
            "the other run's and the bad line are skipped"
        );
        assert_eq!(deliveries.ring.count(), 2);
        assert_eq!(deliveries.end.count(), 1);
        let ring = deliveries.ring.summary().unwrap();
        assert!((ring.max_ms - 3.5).abs() < 0.01, "{ring:?}");
        assert!((deliveries.end.summary().unwrap().max_ms - 5.0).abs() < 0.01);
        assert_eq!(deliveries.by_service["apns"], 2);
        assert_eq!(deliveries.by_type["incoming_call"], 2);
        assert_eq!(
            deliveries
                .ring_by_second
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(deliveries.window_us, Some((1_002_000, 2_503_500)));
    }

    #[test]
    fn deliveries_of_every_service_are_joined() {
        // The simulator records (server/answer.rs) keep APNs's JSON body (the call under
        // "ringcast"), FCM's `message.data` (all strings), WNS's raw body and Web Push's
        // decrypted body (the call at the top).
        let mut tally = Tally::default();
        tally.ring_sent_us.insert("c-1".into(), 1_000_000);
        tally.end_sent_us.insert("c-1".into(), 2_000_000);
        let call = |kind: &str| {
            serde_json::json!({"v": 1, "type": kind, "call_id": "c-1", "caller_id": "+1",
                "caller_name": "Bob", "video": false, "expires_at": "2099-01-01T00:00:00Z"})
        };
        let records = [
            serde_json::json!({"service": "apns", "received_at_us": 1_001_000,
                "payload": {"aps": {}, "ringcast": call("incoming_call")}}),
            serde_json::json!({"service": "fcm", "received_at_us": 1_002_000,
                "payload": {"v": "1", "type": "incoming_call", "call_id": "c-1", "video": "false"}}),
            serde_json::json!({"service": "wns", "received_at_us": 1_003_000,
                "payload": call("incoming_call")}),
            serde_json::json!({"service": "webpush", "received_at_us": 1_004_000,
                "payload": call("incoming_call")}),
            serde_json::json!({"service": "webpush", "received_at_us": 2_005_000,
                "payload": call("call_ended")}),
        ]
        .map(|record| record.to_string())
        .join("\n");
        let deliveries = Deliveries::join(&records, &tally, 1_000_000);
        assert_eq!(
            deliveries.by_service,
            BTreeMap::from([
                ("apns".to_owned(), 1),
                ("fcm".to_owned(), 1),
                ("webpush".to_owned(), 2),
                ("wns".to_owned(), 1),
            ])
        );
        assert_eq!(deliveries.ring.count(), 4);
        assert!((deliveries.ring.summary().unwrap().max_ms - 4.0).abs() < 0.01);
        assert!((deliveries.end.summary().unwrap().max_ms - 5.0).abs() < 0.01);
    }

    #[test]
    fn the_report_adds_up() {
        let mut tally = Tally::default();
        for n in 0..10u64 {
            let due = Duration::from_millis(n * 300);
            tally.offered += 1;
            tally.second(due).offered += 1;
            if n == 3 {
                tally.error("http_503", due);
            } else {
                tally.ok += 1;
                tally.second(due).ok += 1;
                tally.api.record(Duration::from_millis(2));
                tally.second(due).api.record(Duration::from_millis(2));
            }
        }
        let header = (
            "r".into(),
            "now".into(),
            crate::loadgen::Scenario::default(),
            RegistrationReport::default(),
        );
        tally.outcomes_by_platform.insert(
            "webpush".into(),
            BTreeMap::from([("delivered".to_owned(), 9)]),
        );
        let report = Report::build(header, Duration::from_secs(3), &tally, None);
        assert_eq!(
            report.calls_ok + report.calls_failed(),
            report.calls_offered
        );
        assert_eq!(report.calls_per_second, 3.0);
        let per_second: u64 = report.timeline.iter().map(|p| p.offered).sum();
        assert_eq!(per_second, 10);
        assert_eq!(report.timeline.len(), 3);
        assert_eq!(report.timeline[0].errors, 1, "call 3 was due at 0.9 s");
        let text = report.summary_text();
        assert!(text.contains("10 offered"), "{text}");
        assert!(text.contains("http_503"), "{text}");
        assert!(text.contains(r#"webpush: {"delivered": 9}"#), "{text}");
        assert_eq!(report.knee, None, "a fixed rate has no knee");
    }

    #[test]
    fn a_ramps_report_names_its_knee() {
        let mut tally = Tally::default();
        let mut deliveries = Deliveries::default();
        // Seconds 0-3 offer 100, 200, 300, 400 calls; delivery p99 1, 2, 30, 40 ms.
        for (second, latency_ms) in [1u64, 2, 30, 40].into_iter().enumerate() {
            let due = Duration::from_secs(second as u64);
            tally.second(due).offered = 100 * (second as u64 + 1);
            let delivered = deliveries
                .ring_by_second
                .entry(second as u64)
                .or_insert_with(|| Latencies::with_precision(2));
            delivered.record(Duration::from_millis(latency_ms));
        }
        let ramp = crate::loadgen::Scenario {
            rate: crate::loadgen::Rate::Ramp {
                from: 50.0,
                to: 450.0,
                over_seconds: 4.0,
            },
            ..crate::loadgen::Scenario::default()
        };
        let header = (
            "r".into(),
            "now".into(),
            ramp,
            RegistrationReport::default(),
        );
        let report = Report::build(header, Duration::from_secs(4), &tally, Some(&deliveries));
        let knee = report.knee.as_ref().expect("a knee");
        assert_eq!(knee.calls_per_second, 200);
        assert_eq!(knee.broke_at_second, Some(2));
        let text = report.summary_text();
        assert!(text.contains("knee: 200 calls/s"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["knee"]["calls_per_second"], 200);
    }
}
