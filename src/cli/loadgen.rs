//! `ringcast loadgen`: its flags, layered over the scenario file, and the run.

use anyhow::Context;
use std::path::PathBuf;

/// `loadgen` flags: each one set overrides the scenario file's key of the same name.
#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Scenario TOML (see config/loadgen.example.toml); flags override its keys.
    #[arg(long, short)]
    pub scenario: Option<PathBuf>,
    /// A node's base URL (http://host:port); repeatable (calls go round-robin).
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// The tenant's server key.
    #[arg(long, env = "RINGCAST_LOADGEN_KEY")]
    pub server_key: Option<String>,
    /// HTTP/1.1 keep-alive or h2c.
    #[arg(long, value_enum)]
    pub http: Option<crate::loadgen::HttpVersion>,
    /// Connections per target (default 64 for http1, 4 for h2c).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Identities (callees).
    #[arg(long)]
    pub identities: Option<usize>,
    /// Devices per identity, cycled over identities (e.g. `1,5`).
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<usize>>,
    /// Platform weights, e.g. `apns=2,fcm=1,wns=1,webpush=1`.
    #[arg(long, value_parser = parse_platforms)]
    pub platforms: Option<std::collections::BTreeMap<String, u32>>,
    /// Identity name prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Reuse the registrations of an earlier run with the same prefix and seed.
    #[arg(long)]
    pub reuse: bool,
    /// Fixed rate, calls per second.
    #[arg(long, conflicts_with_all = ["ramp", "max_concurrency"])]
    pub rate: Option<f64>,
    /// Ramp FROM:TO:SECONDS (calls per second, linearly).
    #[arg(long, value_parser = parse_ramp, conflicts_with = "max_concurrency")]
    pub ramp: Option<crate::loadgen::Rate>,
    /// The ring delivery p99 (ms) a ramp's knee is held to (default 10).
    #[arg(long)]
    pub knee_p99_ms: Option<f64>,
    /// As fast as possible with this many calls in flight.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many calls.
    #[arg(long)]
    pub calls: Option<u64>,
    /// Ring timeout of each call, seconds.
    #[arg(long)]
    pub ring_timeout: Option<u64>,
    /// Share of calls cancelled right after ringing (0..1).
    #[arg(long)]
    pub end_early: Option<f64>,
    /// Share of calls answered on the first device (0..1).
    #[arg(long)]
    pub answered_elsewhere: Option<f64>,
    /// Ring without `?wait=true` (no per-device outcomes; API latency without delivery).
    #[arg(long)]
    pub no_wait: bool,
    /// The simulator's `--record` file, for delivery latency.
    #[arg(long)]
    pub simulator_record: Option<String>,
    /// The simulator's subscribe URL (https://HOST:PORT/wp/subscribe): each Web Push device
    /// is registered with a subscription made there, so the node can deliver to it.
    #[arg(long = "webpush-subscribe", value_name = "URL")]
    pub webpush_subscribe_url: Option<String>,
    /// The certificate the simulator serves, trusted when subscribing (default
    /// config/dev/simulator-cert.pem).
    #[arg(long, value_name = "PEM_FILE")]
    pub simulator_cert: Option<String>,
    /// Seed of the platform draw and callee choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Internal push channel clients (WebSockets) held open across the identities, each
    /// acking every ring: the report adds ring latency over the channel and the platform
    /// pushes avoided.
    #[arg(long)]
    pub channel_clients: Option<usize>,
    /// Where to write report.json, report.svg and summary.txt.
    #[arg(long, default_value = "loadgen-report")]
    pub out: PathBuf,
    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

impl LoadgenArgs {
    /// The scenario: the file's (or the defaults), with every given flag on top.
    pub fn scenario(&self) -> Result<crate::loadgen::Scenario, crate::loadgen::ScenarioErrors> {
        use crate::loadgen::{Rate, Scenario};
        let mut scenario = match &self.scenario {
            Some(path) => Scenario::load(path)?,
            None => Scenario::default(),
        };
        if !self.targets.is_empty() {
            scenario.targets = self.targets.clone();
        }
        macro_rules! set {
            ($($flag:ident => $key:ident),* $(,)?) => {
                $(if let Some(value) = &self.$flag { scenario.$key = value.clone(); })*
            };
        }
        set!(server_key => server_key, http => http, connections => connections,
            identities => identities, devices => devices_per_identity, platforms => platforms,
            prefix => identity_prefix, ring_timeout => ring_timeout_seconds,
            end_early => end_early, answered_elsewhere => answered_elsewhere, seed => seed,
            channel_clients => channel_clients, knee_p99_ms => knee_p99_ms);
        if let Some(per_second) = self.rate {
            scenario.rate = Rate::Fixed { per_second };
        }
        if let Some(ramp) = &self.ramp {
            scenario.rate = ramp.clone();
        }
        if let Some(concurrency) = self.max_concurrency {
            scenario.rate = Rate::Max { concurrency };
        }
        // Either bound given on the command line replaces the file's pair of bounds.
        if self.duration.is_some() || self.calls.is_some() {
            scenario.duration_seconds = self.duration;
            scenario.calls = self.calls;
        }
        if self.reuse {
            scenario.reuse_registrations = true;
        }
        if self.no_wait {
            scenario.wait_for_outcomes = false;
        }
        for (flag, key) in [
            (&self.simulator_record, &mut scenario.simulator_record),
            (
                &self.webpush_subscribe_url,
                &mut scenario.webpush_subscribe_url,
            ),
            (&self.simulator_cert, &mut scenario.simulator_cert),
        ] {
            if flag.is_some() {
                key.clone_from(flag);
            }
        }
        Ok(scenario)
    }
}

/// Parses `apns=2,fcm=1`.
fn parse_platforms(spec: &str) -> Result<std::collections::BTreeMap<String, u32>, String> {
    spec.split(',')
        .map(|pair| {
            let (platform, weight) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected PLATFORM=WEIGHT"))?;
            let weight = weight
                .parse()
                .map_err(|error| format!("{pair:?}: weight: {error}"))?;
            Ok((platform.trim().to_owned(), weight))
        })
        .collect()
}

/// Parses `FROM:TO:SECONDS`.
fn parse_ramp(spec: &str) -> Result<crate::loadgen::Rate, String> {
    let numbers = spec
        .split(':')
        .map(|part| {
            part.parse::<f64>()
                .map_err(|error| format!("{part:?}: {error}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match numbers[..] {
        [from, to, over_seconds] => Ok(crate::loadgen::Rate::Ramp {
            from,
            to,
            over_seconds,
        }),
        _ => Err("expected FROM:TO:SECONDS".into()),
    }
}

/// Runs the load test the flags describe, writes its report files and prints the summary.
pub fn run(args: &LoadgenArgs) -> anyhow::Result<()> {
    let scenario = args.scenario()?;
    scenario.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(crate::loadgen::run(scenario, !args.quiet))?;
    let written = crate::loadgen::write(&report, &args.out)?;
    let mut text = report.summary_text();
    for path in written {
        text.push_str(&format!("wrote {}\n", path.display()));
    }
    // A closed pipe (`loadgen ... | head`) is the reader's choice, not a failure; the files
    // are written already.
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(())
}
