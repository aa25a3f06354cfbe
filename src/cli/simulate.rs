//! `ringcast simulate`: its flags, the development credentials it accepts without being
//! told, and the run until Ctrl-C.

use crate::config::SecretSource;
use crate::config::dev::{
    APNS_KEY_ID, APNS_PUBLIC_KEY, APNS_TEAM, FCM_SERVICE_ACCOUNT, SIMULATOR_CERT, SIMULATOR_KEY,
    WNS_CLIENT_SECRET, WNS_PACKAGE_SID,
};
use crate::simulator::wns::WnsApp;
use crate::simulator::{ApnsCredential, FcmServiceAccount, Profile, Simulator, SimulatorConfig};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `simulate` flags.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (port 0 picks a free one; the real address is printed). The
    /// default is where config/ringcast.toml points the node's providers.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Address of the HTTP/1.1-only listener (ALPN `http/1.1`): the OAuth token endpoints
    /// (`/token`, `/wns/token`, `/<tenant>/oauth2/v2.0/token`), and WNS and Web Push with
    /// `--http1-only`. The default is where config/ringcast.toml and the development service
    /// account point the token requests.
    #[arg(long, default_value = "127.0.0.1:8444")]
    pub http1_listen: SocketAddr,
    /// Serve WNS and Web Push only over HTTP/1.1 (on `--http1-listen`), as some channel
    /// hosts and push services do; the profile's `http1_only` says the same.
    #[arg(long)]
    pub http1_only: bool,
    /// A CA certificate PEM file whose client certificates authenticate APNs pushes without
    /// a JWT (certificate auth); a certificate from elsewhere gets 403 BadCertificate.
    #[arg(long, value_name = "PEM_FILE")]
    pub apns_client_ca: Option<PathBuf>,
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
    /// An accepted Windows app as PACKAGE_SID:SECRET_FILE, the file holding the client secret
    /// the node's app is configured with (trimmed, as the node reads it); split at the last
    /// `:`, a package SID having colons of its own. Repeatable. The development app (package
    /// SID ms-app://s-1-15-2-ringcast-demo, secret config/dev/wns-dev-client.secret) is
    /// accepted too when that file exists.
    #[arg(long = "wns-app", value_name = "PACKAGE_SID:SECRET_FILE", value_parser = parse_wns_app)]
    pub wns_apps: Vec<WnsApp>,
}

/// The development certificate and key, when both files exist (run from the repository).
fn dev_certificate() -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (PathBuf::from(SIMULATOR_CERT), PathBuf::from(SIMULATOR_KEY));
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

/// Parses `PACKAGE_SID:SECRET_FILE`, reading the file.
fn parse_wns_app(spec: &str) -> Result<WnsApp, String> {
    let Some((package_sid, file)) = spec
        .rsplit_once(':')
        .filter(|(sid, file)| !sid.is_empty() && !file.is_empty() && !file.starts_with("//"))
    else {
        return Err("expected PACKAGE_SID:SECRET_FILE".into());
    };
    Ok(WnsApp {
        package_sid: package_sid.to_owned(),
        client_secret: read_wns_secret(file)?,
    })
}

/// A WNS client secret file, read as the node reads its `client_secret` (whitespace around
/// it trimmed), so both sides agree on the same file.
fn read_wns_secret(file: &str) -> Result<String, String> {
    let secret = SecretSource::File(file.into()).load()?;
    String::from_utf8(secret.expose().to_vec())
        .map_err(|_| format!("{file}: a WNS client secret is text (UTF-8)"))
}

impl SimulateArgs {
    /// The simulator these flags describe, with the development credentials of config/dev
    /// added when their files exist (run from the repository): what a bare `simulate` serves,
    /// and what a bare `serve` (config/ringcast.toml) rings through.
    pub fn simulator_config(self) -> anyhow::Result<SimulatorConfig> {
        let SimulateArgs {
            listen,
            http1_listen,
            http1_only,
            apns_client_ca,
            profile,
            cert,
            key,
            cert_out,
            record,
            mut apns_keys,
            mut fcm_accounts,
            fcm_token_lifetime,
            mut wns_apps,
        } = self;
        let cert_and_key = cert.zip(key).or_else(dev_certificate);
        // A self-signed certificate must land somewhere clients can read it.
        let cert_out = cert_out.or_else(|| {
            cert_and_key.is_none().then(|| {
                std::env::temp_dir().join(format!("ringcast-simulator-{}.pem", std::process::id()))
            })
        });
        let mut profile = match profile {
            Some(path) => {
                Profile::load(&path).with_context(|| format!("loading {}", path.display()))?
            }
            None => Profile::default(),
        };
        profile.http1_only |= http1_only;
        let apns_client_ca = apns_client_ca
            .map(|path| {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the APNs client CA {}", path.display()))
            })
            .transpose()?;
        match std::fs::read_to_string(APNS_PUBLIC_KEY) {
            Ok(public_key_pem) => {
                tracing::info!(
                    team_id = APNS_TEAM,
                    key_id = APNS_KEY_ID,
                    "accepting the development APNs key ({APNS_PUBLIC_KEY})"
                );
                apns_keys.push(ApnsCredential {
                    team_id: APNS_TEAM.into(),
                    key_id: APNS_KEY_ID.into(),
                    public_key_pem,
                });
            }
            Err(_) if apns_keys.is_empty() => {
                tracing::warn!("no --apns-key given: every push will be refused with 403");
            }
            Err(_) => {}
        }
        if fcm_accounts.is_empty() {
            match std::fs::read(FCM_SERVICE_ACCOUNT) {
                Ok(json) => {
                    let account = FcmServiceAccount::from_service_account_json(&json)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("loading {FCM_SERVICE_ACCOUNT}"))?;
                    tracing::info!(
                        client_email = %account.client_email,
                        "no --fcm-service-account given: accepting the development account"
                    );
                    fcm_accounts.push(account);
                }
                Err(_) => tracing::warn!(
                    "no --fcm-service-account given and no {FCM_SERVICE_ACCOUNT}: every \
                     FCM token request will be refused"
                ),
            }
        }
        // Accepted beside any --wns-app, as the development APNs key is: its package SID is
        // the demo app's own and collides with no real one.
        if Path::new(WNS_CLIENT_SECRET).is_file() {
            let client_secret = read_wns_secret(WNS_CLIENT_SECRET).map_err(anyhow::Error::msg)?;
            tracing::info!(
                package_sid = WNS_PACKAGE_SID,
                "accepting the development WNS app ({WNS_CLIENT_SECRET})"
            );
            wns_apps.push(WnsApp {
                package_sid: WNS_PACKAGE_SID.into(),
                client_secret,
            });
        } else if wns_apps.is_empty() {
            tracing::warn!("no --wns-app given: every WNS token request will be refused");
        }
        Ok(SimulatorConfig {
            listen,
            http1_listen,
            apns_client_ca,
            apns_keys,
            fcm_accounts,
            fcm_token_lifetime: std::time::Duration::from_secs(fcm_token_lifetime),
            wns_apps,
            profile,
            cert_and_key,
            cert_out,
            record_in_memory: false,
            record_path: record,
            ..SimulatorConfig::default()
        })
    }
}

/// Runs the simulator the flags describe until Ctrl-C.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let config = args.simulator_config()?;
    let config_http1_only = config.profile.http1_only;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let simulator = Simulator::start(config)
            .await
            .context("starting the simulator")?;
        println!("listening on {}", simulator.base_url());
        println!(
            "HTTP/1.1-only hosts (token endpoints{}) on {}",
            if config_http1_only {
                ", WNS, Web Push"
            } else {
                ""
            },
            simulator.http1_base_url()
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_and_client_ca_flags_reach_the_simulator() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let ca_arg = ca.display().to_string();
        let parsed = crate::cli::Cli::try_parse_from([
            "ringcast",
            "simulate",
            "--http1-listen",
            "127.0.0.1:0",
            "--http1-only",
            "--apns-client-ca",
            &ca_arg,
        ])
        .unwrap();
        let crate::cli::Command::Simulate(args) = parsed.command else {
            panic!("not a simulate command line");
        };
        let config = args.simulator_config().unwrap();
        assert_eq!(config.http1_listen.port(), 0);
        assert!(config.profile.http1_only);
        assert_eq!(
            config.apns_client_ca.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\n")
        );
    }

    #[test]
    fn a_wns_app_is_a_package_sid_and_the_secret_file_after_its_last_colon() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wns.secret");
        std::fs::write(&file, "  s3cret+/=\n").unwrap();
        let spec = format!("ms-app://s-1-15-2-42:{}", file.display());
        assert_eq!(
            parse_wns_app(&spec).unwrap(),
            WnsApp {
                package_sid: "ms-app://s-1-15-2-42".into(),
                client_secret: "s3cret+/=".into(),
            }
        );
        // A SID alone splits inside its own scheme: refused, not read as a file "//...".
        for bad in ["ms-app://s-1-15-2-42", "nocolon", ":file", "sid:"] {
            assert!(parse_wns_app(bad).is_err(), "{bad}");
        }
        let missing = parse_wns_app("ms-app://s-1-15-2-42:/no/such/file").unwrap_err();
        assert!(missing.contains("/no/such/file"), "{missing}");
    }
}
