//! What a load test does: who is registered, how calls are offered, for how long, against
//! which nodes. Read from TOML (`--scenario FILE`) with command-line flags layered on top,
//! and validated as a whole so a bad file reports every problem at once.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The platforms a device can be registered on (docs/architecture.md "The registry and its stores").
pub const PLATFORMS: [&str; 4] = ["apns", "fcm", "wns", "webpush"];

/// A load test, as a file or flags describe it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// The nodes' base URLs (`http://host:port`); calls go round-robin, so a fleet is driven
    /// the way a load balancer would spread it.
    pub targets: Vec<String>,
    /// The tenant's server key (`Authorization: Bearer`): only server keys may ring.
    pub server_key: String,
    /// How the API is spoken: HTTP/1.1 keep-alive, or h2c (HTTP/2 with prior knowledge).
    pub http: HttpVersion,
    /// Connections per target; 0 (the default) picks 64 for HTTP/1.1, which carries one
    /// request at a time per connection (so this caps the requests in flight), and 4 for h2c,
    /// which multiplexes.
    pub connections: usize,
    /// How many identities (callees) there are.
    pub identities: usize,
    /// Devices per identity, cycled over the identities: `[1, 5]` gives every other callee
    /// five devices, the mix a carrier sees (one phone, or a phone plus tablets and desktops).
    pub devices_per_identity: Vec<usize>,
    /// Relative weights of the platforms the devices are registered on (`apns`, `fcm`,
    /// `wns`, `webpush`); a device's platform is drawn from them.
    pub platforms: BTreeMap<String, u32>,
    /// Prefix of the identities' names, so runs can share a node without colliding and a
    /// later run can reuse the registrations of an earlier one.
    pub identity_prefix: String,
    /// Skip registration: the identities exist already (from a run with the same prefix).
    pub reuse_registrations: bool,
    /// Registrations in flight at once during the registration phase.
    pub register_concurrency: usize,
    /// The simulator's `POST /wp/subscribe` (`https://127.0.0.1:8443/wp/subscribe`): each
    /// Web Push device is then registered with a subscription made there, one per device
    /// during registration, so a node pointed at the simulator delivers to it. Without it,
    /// Web Push devices get a made-up `fcm.googleapis.com` endpoint no push service knows
    /// (the registration API is measured, delivery is not). Subscriptions live in the
    /// simulator process: reusing registrations needs the same process.
    pub webpush_subscribe_url: Option<String>,
    /// The certificate (PEM) the simulator serves, trusted when subscribing; by default the
    /// development certificate `config/dev/simulator-cert.pem`, which a bare `simulate`
    /// serves.
    pub simulator_cert: Option<String>,
    /// How call events are offered.
    pub rate: Rate,
    /// Stop after this long (seconds); with `calls` too, whichever comes first.
    pub duration_seconds: Option<f64>,
    /// Stop after this many calls; with `duration_seconds` too, whichever comes first.
    pub calls: Option<u64>,
    /// The ring delivery p99 a ramp's knee is held to, ms (src/loadgen/knee.rs): the report
    /// of a ramp names the highest rate whose p99 stayed under it.
    pub knee_p99_ms: f64,
    /// `ring_timeout_seconds` of every call.
    pub ring_timeout_seconds: u64,
    /// Share of calls the caller cancels right after they ring (`reason = cancelled`).
    pub end_early: f64,
    /// Share of calls answered on the callee's first device (`answered_elsewhere`: the other
    /// devices get "call ended").
    pub answered_elsewhere: f64,
    /// Ring with `?wait=true`, so the answer carries every device's outcome (delivered,
    /// rejected, ...). The API latency then includes delivery; without it the report has no
    /// outcomes, only the simulator's records.
    pub wait_for_outcomes: bool,
    /// Calls in flight at most (open-loop rates): a call due while this many are unanswered
    /// is counted as `client_overloaded` instead of waiting, so the offered schedule never
    /// bends to a slow server.
    pub max_in_flight: usize,
    /// Per-request timeout, in milliseconds.
    pub request_timeout_ms: u64,
    /// The simulator's `--record` file: delivery latency is joined from it by call id.
    pub simulator_record: Option<String>,
    /// How long to wait after the last call for the last pushes to land in the record file,
    /// in milliseconds.
    pub drain_ms: u64,
    /// Seed of the platform draw and callee choice: the same scenario gives the same load.
    pub seed: u64,
    /// Internal push channel clients held open for the whole run, spread over the identities
    /// (src/loadgen/channel.rs): each acks every ring it hears. 0: none.
    pub channel_clients: usize,
}

/// How the API is spoken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    /// HTTP/1.1 with keep-alive: one request at a time per connection.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge: many requests per connection.
    H2c,
}

/// How call events are offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum Rate {
    /// A fixed rate, calls per second: open loop, each call sent at its intended time.
    Fixed {
        /// Calls per second.
        per_second: f64,
    },
    /// A rate rising (or falling) linearly from `from` to `to` over `over_seconds`, then
    /// holding `to`: finds the knee of the latency curve in one run.
    Ramp {
        /// Calls per second at the start.
        from: f64,
        /// Calls per second at the end of the ramp.
        to: f64,
        /// How long the ramp takes, in seconds.
        over_seconds: f64,
    },
    /// As fast as possible with at most `concurrency` calls in flight: finds the maximum
    /// rate. Closed loop by nature, so its latencies are measured from the actual send.
    Max {
        /// Calls in flight.
        concurrency: usize,
    },
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            targets: vec!["http://127.0.0.1:8080".to_owned()],
            server_key: "ringcast-dev-server-key".to_owned(),
            http: HttpVersion::Http1,
            connections: 0,
            identities: 1000,
            devices_per_identity: vec![1],
            platforms: BTreeMap::from([("apns".to_owned(), 1)]),
            identity_prefix: "loadgen".to_owned(),
            reuse_registrations: false,
            register_concurrency: 32,
            webpush_subscribe_url: None,
            simulator_cert: None,
            rate: Rate::Fixed { per_second: 100.0 },
            duration_seconds: Some(10.0),
            calls: None,
            knee_p99_ms: 10.0,
            ring_timeout_seconds: 45,
            end_early: 0.0,
            answered_elsewhere: 0.0,
            wait_for_outcomes: true,
            max_in_flight: 10_000,
            request_timeout_ms: 10_000,
            simulator_record: None,
            drain_ms: 1_000,
            seed: 1,
            channel_clients: 0,
        }
    }
}

/// Every problem with a scenario, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid scenario:\n  {}", .0.join("\n  "))]
pub struct ScenarioErrors(pub Vec<String>);

impl Scenario {
    /// Reads a scenario file; keys it leaves out take the defaults.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ScenarioErrors(vec![format!("reading {}: {error}", path.display())])
        })?;
        Scenario::parse(&text)
    }

    /// Parses scenario TOML.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioErrors> {
        toml_from_str(text).map_err(|error| ScenarioErrors(vec![error]))
    }

    /// Every problem, each naming its key, so a file is fixed in one pass.
    pub fn validate(&self) -> Result<(), ScenarioErrors> {
        let mut problems = Vec::new();
        if self.targets.is_empty() {
            problems.push("targets: at least one node URL is needed".to_owned());
        }
        for target in &self.targets {
            if let Err(error) = target
                .parse::<http::Uri>()
                .map_err(|e| e.to_string())
                .and_then(|uri| match (uri.scheme_str(), uri.host()) {
                    (Some("http"), Some(_)) => Ok(()),
                    _ => Err("must be http://host:port (h2c and HTTP/1.1 are cleartext)".into()),
                })
            {
                problems.push(format!("targets: {target:?}: {error}"));
            }
        }
        if self.server_key.is_empty() {
            problems.push("server_key: empty (ringing needs a tenant's server key)".to_owned());
        }
        if self.identities == 0 {
            problems.push("identities: must be at least 1".to_owned());
        }
        if self.devices_per_identity.is_empty() || self.devices_per_identity.contains(&0) {
            problems.push("devices_per_identity: a non-empty list of counts ≥ 1".to_owned());
        }
        if self.devices_per_identity.iter().any(|&n| n > 32) {
            problems.push("devices_per_identity: at most 32 (the default per-identity cap)".into());
        }
        for platform in self.platforms.keys() {
            if !PLATFORMS.contains(&platform.as_str()) {
                problems.push(format!(
                    "platforms: unknown platform {platform:?} (expected one of {})",
                    PLATFORMS.join(", ")
                ));
            }
        }
        if self.platforms.values().all(|&weight| weight == 0) {
            problems.push("platforms: at least one platform needs a weight above 0".to_owned());
        }
        let prefix_ok = !self.identity_prefix.is_empty()
            && self.identity_prefix.len() <= 64
            && self
                .identity_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !prefix_ok {
            problems.push("identity_prefix: 1-64 of A-Z a-z 0-9 . _ -".to_owned());
        }
        if self.register_concurrency == 0 {
            problems.push("register_concurrency: must be at least 1".to_owned());
        }
        if let Some(url) = &self.webpush_subscribe_url {
            let https_with_host = url
                .parse::<http::Uri>()
                .is_ok_and(|uri| uri.scheme_str() == Some("https") && uri.host().is_some());
            if !https_with_host {
                problems.push(format!(
                    "webpush_subscribe_url: {url:?} must be https://host:port/wp/subscribe \
                     (the simulator speaks TLS only)"
                ));
            }
        }
        let positive = |value: f64| value.is_finite() && value > 0.0;
        match &self.rate {
            Rate::Fixed { per_second } if !positive(*per_second) => {
                problems.push(format!(
                    "rate.per_second: must be above 0, got {per_second}"
                ));
            }
            Rate::Ramp {
                from,
                to,
                over_seconds,
            } => {
                if !(from.is_finite() && *from >= 0.0 && positive(*to)) {
                    problems.push(format!(
                        "rate: a ramp needs from ≥ 0 and to > 0, got {from} → {to}"
                    ));
                }
                if !positive(*over_seconds) {
                    problems.push(format!(
                        "rate.over_seconds: must be above 0, got {over_seconds}"
                    ));
                }
            }
            Rate::Max { concurrency: 0 } => {
                problems.push("rate.concurrency: must be at least 1".to_owned());
            }
            _ => {}
        }
        match (self.duration_seconds, self.calls) {
            (None, None) => problems.push("duration_seconds or calls: set at least one".into()),
            (Some(seconds), _) if !positive(seconds) => {
                problems.push(format!("duration_seconds: must be above 0, got {seconds}"));
            }
            (_, Some(0)) => problems.push("calls: must be at least 1".to_owned()),
            _ => {}
        }
        if !positive(self.knee_p99_ms) {
            problems.push(format!(
                "knee_p99_ms: must be above 0, got {}",
                self.knee_p99_ms
            ));
        }
        if !(1..=300).contains(&self.ring_timeout_seconds) {
            problems.push("ring_timeout_seconds: must be 1..=300".to_owned());
        }
        for (key, share) in [
            ("end_early", self.end_early),
            ("answered_elsewhere", self.answered_elsewhere),
        ] {
            if !(0.0..=1.0).contains(&share) {
                problems.push(format!("{key}: a share in 0..=1, got {share}"));
            }
        }
        if self.end_early + self.answered_elsewhere > 1.0 {
            problems.push("end_early + answered_elsewhere: at most 1 together".to_owned());
        }
        if self.max_in_flight == 0 {
            problems.push("max_in_flight: must be at least 1".to_owned());
        }
        if self.request_timeout_ms == 0 {
            problems.push("request_timeout_ms: must be at least 1".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ScenarioErrors(problems))
        }
    }

    /// The certificate to trust when subscribing (see `simulator_cert`).
    pub fn simulator_cert(&self) -> &Path {
        Path::new(
            self.simulator_cert
                .as_deref()
                .unwrap_or(crate::config::dev::SIMULATOR_CERT),
        )
    }

    /// The connections per target in effect (see `connections`).
    pub fn connections(&self) -> usize {
        match (self.connections, self.http) {
            (0, HttpVersion::Http1) => 64,
            (0, HttpVersion::H2c) => 4,
            (n, _) => n,
        }
    }

    /// How long the run may last, if bounded by time.
    pub fn duration(&self) -> Option<Duration> {
        self.duration_seconds.map(Duration::from_secs_f64)
    }

    /// How many devices identity `index` has.
    pub fn devices_of(&self, index: usize) -> usize {
        // validate() guarantees a non-empty list; 1 keeps an unvalidated one harmless.
        self.devices_per_identity
            .get(index % self.devices_per_identity.len().max(1))
            .copied()
            .unwrap_or(1)
    }

    /// The name of identity `index`.
    pub fn identity(&self, index: usize) -> String {
        format!("{}-{index}", self.identity_prefix)
    }

    /// Devices over all identities.
    pub fn total_devices(&self) -> usize {
        (0..self.identities).map(|i| self.devices_of(i)).sum()
    }

    /// The platform of device `device` of identity `identity`: a weighted draw, fixed by the
    /// seed and the device's position, so a reused registration set keeps its platforms.
    pub fn platform_of(&self, identity: usize, device: usize) -> &str {
        let total: u64 = self.platforms.values().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return "apns";
        }
        let mut rng = fastrand::Rng::with_seed(
            self.seed
                ^ ((identity as u64) << 8 | device as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut pick = rng.u64(..total);
        for (platform, &weight) in &self.platforms {
            if pick < u64::from(weight) {
                return platform;
            }
            pick -= u64::from(weight);
        }
        "apns"
    }
}

/// TOML into a scenario, with the error as text (figment's `Toml` provider, already in the
/// tree, rather than another TOML crate). Missing keys take the defaults through serde (not
/// a figment merge, which would blend a default `rate` table into a given one).
fn toml_from_str(text: &str) -> Result<Scenario, String> {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    Figment::from(Toml::string(text))
        .extract()
        .map_err(|error| {
            error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        Scenario::default().validate().unwrap();
    }

    #[test]
    fn a_file_overrides_the_defaults_it_names() {
        let scenario = Scenario::parse(
            r#"
            targets = ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
            http = "h2c"
            identities = 50
            devices_per_identity = [1, 5]
            platforms = { apns = 2, fcm = 1, webpush = 1 }
            calls = 20
            end_early = 0.1
            answered_elsewhere = 0.2
            rate = { kind = "ramp", from = 10, to = 100, over_seconds = 30 }
            "#,
        )
        .unwrap();
        scenario.validate().unwrap();
        assert_eq!(scenario.http, HttpVersion::H2c);
        assert_eq!(scenario.targets.len(), 2);
        assert_eq!(scenario.calls, Some(20));
        assert_eq!(
            scenario.ring_timeout_seconds, 45,
            "untouched keys keep defaults"
        );
        assert_eq!(
            scenario.rate,
            Rate::Ramp {
                from: 10.0,
                to: 100.0,
                over_seconds: 30.0
            }
        );
        assert_eq!(scenario.total_devices(), 25 + 25 * 5);
        assert_eq!(scenario.devices_of(0), 1);
        assert_eq!(scenario.devices_of(1), 5);
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/loadgen.example.toml");
        let scenario = Scenario::load(&path).unwrap();
        scenario.validate().unwrap();
        assert_eq!(scenario.devices_per_identity, [1, 5]);
        assert_eq!(scenario.rate, Rate::Fixed { per_second: 200.0 });
        assert_eq!(
            scenario.webpush_subscribe_url.as_deref(),
            Some("https://127.0.0.1:8443/wp/subscribe")
        );
        assert_eq!(
            scenario.simulator_cert(),
            Path::new("config/dev/simulator-cert.pem")
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_their_name() {
        let error = Scenario::parse("ratee = 5").unwrap_err().to_string();
        assert!(error.contains("ratee"), "{error}");
        let error = Scenario::parse("identities = \"many\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("identities"), "{error}");
        let error = Scenario::parse("rate = { kind = \"burst\" }")
            .unwrap_err()
            .to_string();
        assert!(error.contains("burst"), "{error}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let scenario = Scenario {
            targets: vec!["https://node:8080".into()],
            identities: 0,
            devices_per_identity: vec![0],
            platforms: BTreeMap::from([("pager".to_owned(), 0)]),
            rate: Rate::Fixed { per_second: 0.0 },
            duration_seconds: None,
            calls: None,
            end_early: 0.8,
            answered_elsewhere: 0.5,
            identity_prefix: "a b".into(),
            knee_p99_ms: 0.0,
            webpush_subscribe_url: Some("http://127.0.0.1:8443/wp/subscribe".into()),
            ..Scenario::default()
        };
        let problems = scenario.validate().unwrap_err().0;
        for key in [
            "targets",
            "identities",
            "devices_per_identity",
            "platforms: unknown",
            "platforms: at least one",
            "rate.per_second",
            "duration_seconds or calls",
            "end_early + answered_elsewhere",
            "identity_prefix",
            "knee_p99_ms",
            "webpush_subscribe_url",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key} missing from {problems:#?}"
            );
        }
    }

    #[test]
    fn platforms_follow_the_weights_and_are_stable() {
        let scenario = Scenario {
            platforms: BTreeMap::from([("apns".to_owned(), 3), ("fcm".to_owned(), 1)]),
            ..Scenario::default()
        };
        let apns = (0..4000)
            .filter(|&i| scenario.platform_of(i, 0) == "apns")
            .count();
        assert!((2800..3200).contains(&apns), "{apns} of 4000 drawn apns");
        assert_eq!(scenario.platform_of(7, 2), scenario.platform_of(7, 2));
        let only_fcm = Scenario {
            platforms: BTreeMap::from([("apns".to_owned(), 0), ("fcm".to_owned(), 1)]),
            ..Scenario::default()
        };
        assert!((0..100).all(|i| only_fcm.platform_of(i, 0) == "fcm"));
    }
}
