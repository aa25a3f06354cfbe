//! `ringcast demo`: the development default node and the push-service simulator in one
//! process, and the lines to try it (README, "Quick start").
//!
//! The node is exactly what a bare `serve` runs (config/ringcast.toml, with environment
//! overrides); the simulator is exactly what a bare `simulate` runs. Moving the simulator off
//! 127.0.0.1:8443 (`--simulator-listen`) moves every URL of the development default with it —
//! the APNs sandbox's `localhost:8443`, and the token endpoints of its HTTP/1.1 listener
//! (127.0.0.1:8444 by default, then a free port), the FCM service account's `token_uri`
//! included — so two demos' simulators never collide, nor does one demo's node talk to the
//! other's simulator. Their stores would: a second demo needs a store file of its own
//! (`RINGCAST__REGISTRY__EMBEDDED__PATH`), which its start-up error says.

use super::SimulateArgs;
use crate::app;
use crate::config::{AppConfig, Config, DEFAULT_CONFIG_FILE, SecretSource, dev};
use crate::simulator::{RunningSimulator, Simulator};
use anyhow::Context;
use clap::{Args, FromArgMatches};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `demo` flags.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The API's address (overrides `server.listen`; port 0 picks a free one and prints it).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The simulator's address. The development default points every provider at
    /// 127.0.0.1:8443; another address moves them all.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub simulator_listen: SocketAddr,
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !Path::new(DEFAULT_CONFIG_FILE).is_file() {
        anyhow::bail!(
            "{DEFAULT_CONFIG_FILE} not found: run the demo from the repository's root (the \
             development default and its config/dev credentials are the demo's)"
        );
    }
    let simulator = SimulatorThread::start(args.simulator_listen)?;
    let scratch = tempfile_dir()?;
    let (simulator_address, simulator_cert) = (simulator.address, simulator.cert.clone());
    let http1_address = simulator.http1_address;
    let result = (|| {
        let mut config = Config::load(None)?;
        move_to_simulator(&mut config, simulator_address, http1_address, &scratch)?;
        if let Some(listen) = args.listen {
            config.server.listen = listen;
        }
        config.validate()?;
        actix_rt::System::new().block_on(async move {
            let node = app::start(&config, true).await?;
            let admin = node.admin_address.unwrap_or(node.address);
            println!(
                "{}",
                try_lines(node.address, admin, simulator_address, &simulator_cert)
            );
            node.run_until_stopped().await?;
            anyhow::Ok(())
        })
    })();
    simulator.stop();
    // Best effort: the scratch folder holds only the moved service-account copy.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Points every URL of the development default that names the simulator at it: its
/// HTTP/2 listener at `address` (also as the APNs sandbox's `localhost`) and its HTTP/1.1
/// listener, the token endpoints, at `http1_address`. The FCM service account names its token
/// endpoint itself, so the demo app gets a copy of it (written into `scratch`) with the moved
/// `token_uri`.
pub fn move_to_simulator(
    config: &mut Config,
    address: SocketAddr,
    http1_address: SocketAddr,
    scratch: &Path,
) -> anyhow::Result<()> {
    let moves = [
        (dev::SIMULATOR_ADDRESS, address.to_string()),
        (
            dev::SIMULATOR_SANDBOX_ADDRESS,
            format!("localhost:{}", address.port()),
        ),
        (dev::SIMULATOR_HTTP1_ADDRESS, http1_address.to_string()),
    ];
    let moved = |text: &str| replace_at_once(text, &moves);
    let json = serde_json::to_string(&*config).context("serialising the configuration")?;
    let json_moved = moved(&json);
    if json_moved == json {
        return Ok(());
    }
    *config = serde_json::from_str(&json_moved)
        .context("moving the configuration to the simulator's address")?;
    for tenant in config.tenants.values_mut() {
        for (app_id, app) in &mut tenant.apps {
            let AppConfig::Fcm(app) = app else {
                continue;
            };
            let Some(SecretSource::File(path)) = &app.service_account else {
                continue;
            };
            let account = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let copy = scratch.join(format!("{app_id}-service-account.json"));
            std::fs::write(&copy, moved(&account))
                .with_context(|| format!("writing {}", copy.display()))?;
            app.service_account = Some(SecretSource::File(copy));
        }
    }
    Ok(())
}

/// `text` with every occurrence of each `from` replaced by its `to`, in one pass: a
/// replacement's output is never matched again (the simulator moved to 127.0.0.1:8444 must not
/// then be taken for the HTTP/1.1 listener's default address).
fn replace_at_once(text: &str, moves: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(next) = rest.chars().next() {
        for (from, to) in moves {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        out.push(next);
        rest = &rest[next.len_utf8()..];
    }
    out
}

/// What the demo prints: where everything is, then shell lines that register a phone, ring
/// it, end the call and read the simulator's counters (pasted as they are, they work).
pub fn try_lines(api: SocketAddr, admin: SocketAddr, simulator: SocketAddr, cert: &Path) -> String {
    let token = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1";
    format!(
        r#"ringcast demo: a node (embedded store) and the push-service simulator. Ctrl-C stops both.
  API        http://{api}
  admin      http://{admin}  (/metrics /healthz /readyz /openapi.json)
  simulator  https://{simulator}  (APNs, FCM, WNS, Web Push; certificate {cert})

Try it in another terminal:

KEY={demo_key}; API=http://{api}
# register alice's iPhone (201; 200 when refreshed)
curl -s -X PUT $API/v1/identities/alice/registrations/iphone -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{{"platform":"apns","app":"ios","token":"{token}","environment":"production"}}'; echo
# ring her, waiting for each device's outcome ("delivered")
curl -s -X POST "$API/v1/calls?wait=true" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{{"call_id":"call-1","callee":"alice","caller":{{"id":"+15550100","display_name":"Bob"}},"video":false}}'; echo
# the caller hangs up: a call-ended push replaces the ring
curl -s -X POST $API/v1/calls/call-1/end -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{{"callee":"alice","reason":"cancelled"}}'; echo
# what the push services accepted, and the node's own count
curl -s --cacert {cert} https://{simulator}/stats; echo
curl -s http://{admin}/metrics | grep '^ringcast_pushes_total'"#,
        cert = cert.display(),
        demo_key = dev::DEMO_SERVER_KEY,
    )
}

/// A folder of our own in the temp directory, removed when the demo ends.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ringcast-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The simulator on a thread and runtime of its own, so its TLS work never queues behind
/// the node's.
struct SimulatorThread {
    address: SocketAddr,
    /// Its HTTP/1.1-only listener (the token endpoints).
    http1_address: SocketAddr,
    /// The certificate it serves (clients trust it with `--cacert`).
    cert: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl SimulatorThread {
    /// Starts a bare `simulate` on `listen` and waits until it listens. Its HTTP/1.1
    /// listener takes the development default's address when `listen` is the default's, and
    /// a free port next to `listen` otherwise.
    fn start(listen: SocketAddr) -> anyhow::Result<SimulatorThread> {
        let http1_listen = if listen.to_string() == dev::SIMULATOR_ADDRESS {
            dev::SIMULATOR_HTTP1_ADDRESS.to_owned()
        } else {
            SocketAddr::new(listen.ip(), 0).to_string()
        };
        let command = SimulateArgs::augment_args(clap::Command::new("simulate"));
        let matches = command
            .try_get_matches_from([
                "simulate",
                "--listen",
                &listen.to_string(),
                "--http1-listen",
                &http1_listen,
            ])
            .context("building the simulator's arguments")?;
        let config = SimulateArgs::from_arg_matches(&matches)?.simulator_config()?;
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ringcast-simulator".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started_tx.send(Err(anyhow::Error::new(error)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Simulator::start(config).await {
                        Ok(simulator) => {
                            let _ = started_tx.send(Ok(described(&simulator)));
                            // Either stop was sent or the demo is gone: shut down both ways.
                            let _ = stopped.await;
                            simulator.shutdown().await;
                        }
                        Err(error) => {
                            let _ = started_tx.send(Err(error.into()));
                        }
                    }
                });
            })?;
        let (address, http1_address, cert) = started_rx
            .recv()
            .context("the simulator thread died while starting")?
            .with_context(|| format!("starting the simulator on {listen}"))?;
        Ok(SimulatorThread {
            address,
            http1_address,
            cert,
            stop,
            thread,
        })
    }

    /// Stops the simulator and waits for it.
    fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::warn!("the simulator thread panicked");
        }
    }
}

/// The simulator's two addresses and the certificate file it serves.
fn described(simulator: &RunningSimulator) -> (SocketAddr, SocketAddr, PathBuf) {
    let cert = simulator
        .cert_path()
        .cloned()
        .unwrap_or_else(|| PathBuf::from(dev::SIMULATOR_CERT));
    // Absolute, so the printed lines work from any folder.
    let cert = std::path::absolute(&cert).unwrap_or(cert);
    (simulator.address(), simulator.http1_address(), cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_simulator_takes_every_development_url_with_it() {
        let scratch = tempfile::tempdir().unwrap();
        let mut config = Config::load(None).unwrap();
        move_to_simulator(
            &mut config,
            "127.0.0.1:18443".parse().unwrap(),
            "127.0.0.1:18500".parse().unwrap(),
            scratch.path(),
        )
        .unwrap();
        let json = serde_json::to_string(&config).unwrap();
        for default in [":8443", ":8444"] {
            assert!(!json.contains(default), "{default} left in {json}");
        }
        assert!(json.contains("https://127.0.0.1:18443"), "{json}");
        // The sandbox stays a host of its own: the simulator tells environments apart by it.
        assert!(json.contains("https://localhost:18443"), "{json}");
        assert!(json.contains("https://127.0.0.1:18500/wns/token"), "{json}");
        let accounts: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
        assert!(!accounts.is_empty(), "no service account was copied");
        for account in accounts {
            let text = std::fs::read_to_string(account.unwrap().path()).unwrap();
            assert!(text.contains("https://127.0.0.1:18500/token"), "{text}");
        }
        config.validate().unwrap();
    }

    #[test]
    fn the_default_simulator_leaves_the_configuration_as_it_is() {
        let scratch = tempfile::tempdir().unwrap();
        let mut config = Config::load(None).unwrap();
        let before = serde_json::to_string(&config).unwrap();
        move_to_simulator(
            &mut config,
            dev::SIMULATOR_ADDRESS.parse().unwrap(),
            dev::SIMULATOR_HTTP1_ADDRESS.parse().unwrap(),
            scratch.path(),
        )
        .unwrap();
        assert_eq!(serde_json::to_string(&config).unwrap(), before);
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }

    #[test]
    fn addresses_are_replaced_at_once_never_twice() {
        // The HTTP/2 listener moved onto the HTTP/1.1 listener's default port, which moved
        // elsewhere: each URL is moved once, by what it named before.
        let moves = [
            ("127.0.0.1:8443", "127.0.0.1:8444".to_owned()),
            ("127.0.0.1:8444", "127.0.0.1:9000".to_owned()),
        ];
        assert_eq!(
            replace_at_once(
                "https://127.0.0.1:8443/a https://127.0.0.1:8444/token é",
                &moves
            ),
            "https://127.0.0.1:8444/a https://127.0.0.1:9000/token é"
        );
    }

    #[test]
    fn the_printed_lines_name_the_real_addresses() {
        let lines = try_lines(
            "127.0.0.1:18080".parse().unwrap(),
            "127.0.0.1:18080".parse().unwrap(),
            "127.0.0.1:18443".parse().unwrap(),
            Path::new("config/dev/simulator-cert.pem"),
        );
        assert!(lines.contains("API=http://127.0.0.1:18080"), "{lines}");
        assert!(lines.contains("https://127.0.0.1:18443/stats"), "{lines}");
        assert!(!lines.contains(":8443"), "{lines}");
        for step in [
            "registrations/iphone",
            "calls?wait=true",
            "calls/call-1/end",
        ] {
            assert!(lines.contains(step), "{step} missing: {lines}");
        }
    }
}
