//! The `ringcast` command line.

use crate::config::{Config, LogFormat};
use crate::simulator::{ApnsCredential, FcmServiceAccount, Profile, Simulator, SimulatorConfig};
use crate::{app, logging};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// ringcast: push dispatch for voice and video calling.
#[derive(Debug, Parser)]
#[command(name = "ringcast", version, about)]
pub struct Cli {
    /// Log format (overrides `log.format`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: the API, the registry shards and the store.
    Serve {
        /// Configuration file to use instead of config/ringcast.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file, reporting every problem at once; exits 1 if there are any.
    CheckConfig {
        /// The file to check (default: config/ringcast.toml).
        file: Option<PathBuf>,
    },
    /// Run the push-service simulator (APNs, FCM and its OAuth token endpoint) until Ctrl-C,
    /// for tests and load tests.
    Simulate {
        /// Address to listen on (port 0 picks a free one; the real address is printed). The
        /// default is where config/ringcast.toml points the node's providers.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Scripted behaviour (TOML: latency, error rates, unregistered tokens, GOAWAY, ...).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Certificate chain PEM to serve. Default: the development certificate
        /// config/dev/simulator-cert.pem (with its key) when it exists, else a fresh
        /// self-signed one.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// Private key PEM for `--cert`.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Where to write the certificate clients must trust (default: a file in the temp
        /// directory named after the process id).
        #[arg(long)]
        cert_out: Option<PathBuf>,
        /// Append every accepted push to this file as JSON lines.
        #[arg(long)]
        record: Option<PathBuf>,
        /// An accepted APNs signing key as TEAM:KEYID:PUBLIC_PEM_FILE; repeatable. The
        /// development key (config/dev/apns-dev-key.pub.pem, team DEVTEAM123, key DEVKEY1234)
        /// is accepted too when that file exists.
        #[arg(long = "apns-key", value_name = "TEAM:KEYID:PUBLIC_PEM_FILE", value_parser = parse_apns_key)]
        apns_keys: Vec<ApnsCredential>,
        /// An accepted FCM service account: the service-account JSON the node uses (the
        /// simulator derives the public key from it); repeatable. Default: the development
        /// account config/dev/fcm-service-account.json, when it exists.
        #[arg(long = "fcm-service-account", value_name = "JSON_FILE", value_parser = parse_fcm_account)]
        fcm_accounts: Vec<FcmServiceAccount>,
        /// How long issued FCM access tokens work, in seconds (Google: 3600); short values
        /// make senders refresh often.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
        fcm_token_lifetime: u64,
    },
    /// Register devices, then drive call events at a node at a set rate (open loop), with a
    /// live progress bar; writes report.json, report.svg and summary.txt.
    Loadgen(Box<LoadgenArgs>),
}

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
    /// Seed of the platform draw and callee choice.
    #[arg(long)]
    pub seed: Option<u64>,
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
            end_early => end_early, answered_elsewhere => answered_elsewhere, seed => seed);
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
        if self.simulator_record.is_some() {
            scenario.simulator_record = self.simulator_record.clone();
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

/// The development service account `simulate` accepts when given none.
pub const DEV_FCM_SERVICE_ACCOUNT: &str = "config/dev/fcm-service-account.json";
/// The development certificate `simulate` serves when given none: the one
/// config/ringcast.toml trusts (`providers.apns.trusted_roots`), so a bare `simulate` and a
/// bare `serve` work together. Development only; its key is public.
pub const DEV_SIMULATOR_CERT: &str = "config/dev/simulator-cert.pem";
/// The private key of [`DEV_SIMULATOR_CERT`].
pub const DEV_SIMULATOR_KEY: &str = "config/dev/simulator-key.pem";
/// The public half of the development APNs signing key (config/dev/apns-dev-key.p8, which
/// the demo tenant's `ios` app signs with); `simulate` always accepts it when present.
pub const DEV_APNS_PUBLIC_KEY: &str = "config/dev/apns-dev-key.pub.pem";
/// The development APNs key's team id (the demo app's `team_id`).
pub const DEV_APNS_TEAM: &str = "DEVTEAM123";
/// The development APNs key's key id (the demo app's `key_id`).
pub const DEV_APNS_KEY_ID: &str = "DEVKEY1234";

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(file),
        Command::Serve { config } => exit(serve(config, cli.log_format)),
        Command::Loadgen(args) => {
            logging::init(cli.log_format.unwrap_or_default(), "warn");
            exit(loadgen(&args))
        }
        Command::Simulate {
            listen,
            profile,
            cert,
            key,
            cert_out,
            record,
            apns_keys,
            fcm_accounts,
            fcm_token_lifetime,
        } => {
            logging::init(cli.log_format.unwrap_or_default(), "info");
            let cert_and_key = cert.zip(key).or_else(dev_certificate);
            // A self-signed certificate must land somewhere clients can read it.
            let cert_out = cert_out.or_else(|| {
                cert_and_key.is_none().then(|| {
                    std::env::temp_dir()
                        .join(format!("ringcast-simulator-{}.pem", std::process::id()))
                })
            });
            exit(simulate(Simulate {
                listen,
                profile,
                cert_and_key,
                cert_out,
                record,
                apns_keys,
                fcm_accounts,
                fcm_token_lifetime: std::time::Duration::from_secs(fcm_token_lifetime),
            }))
        }
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringcast: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The development certificate and key, when both files exist (run from the repository).
fn dev_certificate() -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (
        PathBuf::from(DEV_SIMULATOR_CERT),
        PathBuf::from(DEV_SIMULATOR_KEY),
    );
    (cert.is_file() && key.is_file()).then_some((cert, key))
}

/// Parses `TEAM:KEYID:PUBLIC_PEM_FILE`, reading the file.
fn parse_apns_key(spec: &str) -> Result<ApnsCredential, String> {
    let mut parts = spec.splitn(3, ':');
    let (Some(team_id), Some(key_id), Some(file)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("expected TEAM:KEYID:PUBLIC_PEM_FILE".into());
    };
    let public_key_pem =
        std::fs::read_to_string(file).map_err(|error| format!("reading {file}: {error}"))?;
    Ok(ApnsCredential {
        team_id: team_id.into(),
        key_id: key_id.into(),
        public_key_pem,
    })
}

/// Reads a service-account JSON file into the account the simulator accepts.
fn parse_fcm_account(file: &str) -> Result<FcmServiceAccount, String> {
    let json = std::fs::read(file).map_err(|error| format!("reading {file}: {error}"))?;
    FcmServiceAccount::from_service_account_json(&json).map_err(|error| format!("{file}: {error}"))
}

/// The `simulate` arguments, gathered.
/// (A struct rather than eight parameters, which clippy rightly refuses.)
struct Simulate {
    /// `--listen`.
    listen: SocketAddr,
    /// `--profile`.
    profile: Option<PathBuf>,
    /// `--cert` and `--key`.
    cert_and_key: Option<(PathBuf, PathBuf)>,
    /// `--cert-out`, or the temp-directory default.
    cert_out: Option<PathBuf>,
    /// `--record`.
    record: Option<PathBuf>,
    /// `--apns-key`.
    apns_keys: Vec<ApnsCredential>,
    /// `--fcm-service-account`; empty means the development account.
    fcm_accounts: Vec<FcmServiceAccount>,
    /// `--fcm-token-lifetime`.
    fcm_token_lifetime: std::time::Duration,
}

fn simulate(args: Simulate) -> anyhow::Result<()> {
    let Simulate {
        listen,
        profile,
        cert_and_key,
        cert_out,
        record,
        apns_keys,
        mut fcm_accounts,
        fcm_token_lifetime,
    } = args;
    let profile = match profile {
        Some(path) => {
            Profile::load(&path).with_context(|| format!("loading {}", path.display()))?
        }
        None => Profile::default(),
    };
    let mut apns_keys = apns_keys;
    match std::fs::read_to_string(DEV_APNS_PUBLIC_KEY) {
        Ok(public_key_pem) => {
            tracing::info!(
                team_id = DEV_APNS_TEAM,
                key_id = DEV_APNS_KEY_ID,
                "accepting the development APNs key ({DEV_APNS_PUBLIC_KEY})"
            );
            apns_keys.push(ApnsCredential {
                team_id: DEV_APNS_TEAM.into(),
                key_id: DEV_APNS_KEY_ID.into(),
                public_key_pem,
            });
        }
        Err(_) if apns_keys.is_empty() => {
            tracing::warn!("no --apns-key given: every push will be refused with 403");
        }
        Err(_) => {}
    }
    if fcm_accounts.is_empty() {
        match std::fs::read(DEV_FCM_SERVICE_ACCOUNT) {
            Ok(json) => {
                let account = FcmServiceAccount::from_service_account_json(&json)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("loading {DEV_FCM_SERVICE_ACCOUNT}"))?;
                tracing::info!(
                    client_email = %account.client_email,
                    "no --fcm-service-account given: accepting the development account"
                );
                fcm_accounts.push(account);
            }
            Err(_) => tracing::warn!(
                "no --fcm-service-account given and no {DEV_FCM_SERVICE_ACCOUNT}: every FCM \
                 token request will be refused"
            ),
        }
    }
    let config = SimulatorConfig {
        listen,
        apns_keys,
        fcm_accounts,
        fcm_token_lifetime,
        profile,
        cert_and_key,
        cert_out,
        record_in_memory: false,
        record_path: record,
        ..SimulatorConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let simulator = Simulator::start(config)
            .await
            .context("starting the simulator")?;
        println!("listening on {}", simulator.base_url());
        if let Some(path) = simulator.cert_path() {
            println!("certificate: {}", path.display());
        }
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        simulator.shutdown().await;
        Ok(())
    })
}

fn loadgen(args: &LoadgenArgs) -> anyhow::Result<()> {
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

fn check_config(file: Option<PathBuf>) -> ExitCode {
    let shown = file
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_FILE));
    let checked = Config::load(file.as_deref().or(Some(&shown)))
        .and_then(|config| config.validate().map(|()| config));
    match checked {
        Ok(config) => {
            println!(
                "{}: OK ({} tenant(s), store {:?}, {} shard(s))",
                shown.display(),
                config.tenants.len(),
                config.registry.store,
                config.shard_count()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: {errors}", shown.display());
            ExitCode::FAILURE
        }
    }
}

fn serve(file: Option<PathBuf>, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = Config::load(file.as_deref())?;
    logging::init(log_format.unwrap_or(config.log.format), &config.log.level);
    actix_rt::System::new().block_on(async move {
        let node = app::start(&config, true).await?;
        node.run_until_stopped().await?;
        Ok(())
    })
}
