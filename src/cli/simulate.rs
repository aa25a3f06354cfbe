//! `ringcast simulate`: its flags, the development credentials it accepts without being
//! told, and the run until Ctrl-C.

use crate::simulator::{ApnsCredential, FcmServiceAccount, Profile, Simulator, SimulatorConfig};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `simulate` flags.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (port 0 picks a free one; the real address is printed). The
    /// default is where config/ringcast.toml points the node's providers.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Scripted behaviour (TOML: latency, error rates, unregistered tokens, GOAWAY, ...).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Certificate chain PEM to serve. Default: the development certificate
    /// config/dev/simulator-cert.pem (with its key) when it exists, else a fresh
    /// self-signed one.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key PEM for `--cert`.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Where to write the certificate clients must trust (default: a file in the temp
    /// directory named after the process id).
    #[arg(long)]
    pub cert_out: Option<PathBuf>,
    /// Append every accepted push to this file as JSON lines.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// An accepted APNs signing key as TEAM:KEYID:PUBLIC_PEM_FILE; repeatable. The
    /// development key (config/dev/apns-dev-key.pub.pem, team DEVTEAM123, key DEVKEY1234)
    /// is accepted too when that file exists.
    #[arg(long = "apns-key", value_name = "TEAM:KEYID:PUBLIC_PEM_FILE", value_parser = parse_apns_key)]
    pub apns_keys: Vec<ApnsCredential>,
    /// An accepted FCM service account: the service-account JSON the node uses (the
    /// simulator derives the public key from it); repeatable. Default: the development
    /// account config/dev/fcm-service-account.json, when it exists.
    #[arg(long = "fcm-service-account", value_name = "JSON_FILE", value_parser = parse_fcm_account)]
    pub fcm_accounts: Vec<FcmServiceAccount>,
    /// How long issued FCM access tokens work, in seconds (Google: 3600); short values
    /// make senders refresh often.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub fcm_token_lifetime: u64,
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

/// Runs the simulator the flags describe until Ctrl-C.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let SimulateArgs {
        listen,
        profile,
        cert,
        key,
        cert_out,
        record,
        mut apns_keys,
        mut fcm_accounts,
        fcm_token_lifetime,
    } = args;
    let cert_and_key = cert.zip(key).or_else(dev_certificate);
    // A self-signed certificate must land somewhere clients can read it.
    let cert_out = cert_out.or_else(|| {
        cert_and_key.is_none().then(|| {
            std::env::temp_dir().join(format!("ringcast-simulator-{}.pem", std::process::id()))
        })
    });
    let profile = match profile {
        Some(path) => {
            Profile::load(&path).with_context(|| format!("loading {}", path.display()))?
        }
        None => Profile::default(),
    };
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
        fcm_token_lifetime: std::time::Duration::from_secs(fcm_token_lifetime),
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
