//! The `ringcast` command line: `serve` and `check-config` here; `simulate`, `loadgen`,
//! `demo` and `health` in `cli/`, one file each. `simulate` and `demo` exist with the
//! `simulator` feature, `loadgen` with the `loadgen` feature: a production build
//! (`--no-default-features`) has neither.

#[cfg(feature = "simulator")]
mod demo;
mod health;
#[cfg(feature = "loadgen")]
mod loadgen;
#[cfg(feature = "simulator")]
mod simulate;

#[cfg(feature = "simulator")]
pub use demo::{DemoArgs, move_to_simulator, try_lines};
pub use health::HealthArgs;
#[cfg(feature = "loadgen")]
pub use loadgen::LoadgenArgs;
#[cfg(feature = "simulator")]
pub use simulate::SimulateArgs;

use crate::config::{Config, LogFormat};
use crate::plan::Plan;
use crate::{app, logging};
use clap::{Parser, Subcommand};
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
    /// Run the push-service simulator (APNs, FCM and its OAuth token endpoint, WNS and its
    /// token endpoint, Web Push and the browsers behind it) until Ctrl-C, for tests and load
    /// tests.
    #[cfg(feature = "simulator")]
    Simulate(Box<SimulateArgs>),
    /// Register devices, then drive call events at a node at a set rate (open loop), with a
    /// live progress bar; writes report.json, report.svg and summary.txt.
    #[cfg(feature = "loadgen")]
    Loadgen(Box<LoadgenArgs>),
    /// Try it: a node on the development default and the push-service simulator in one
    /// process; prints the lines that register a phone, ring it and read the counters.
    /// Run from the repository's root.
    #[cfg(feature = "simulator")]
    Demo(DemoArgs),
    /// Ask a node's admin listener whether it is ready (exit 0) or not (exit 1): the
    /// container health check.
    Health(HealthArgs),
}

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(file),
        Command::Serve { config } => exit(serve(config, cli.log_format)),
        #[cfg(feature = "loadgen")]
        Command::Loadgen(args) => {
            logging::init(cli.log_format.unwrap_or_default(), "warn");
            exit(loadgen::run(&args))
        }
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => {
            logging::init(cli.log_format.unwrap_or_default(), "info");
            exit(simulate::run(*args))
        }
        #[cfg(feature = "simulator")]
        Command::Demo(args) => {
            // Warnings only: the lines to try must not scroll away under start-up logs.
            logging::init(cli.log_format.unwrap_or_default(), "warn");
            exit(demo::run(args))
        }
        Command::Health(args) => exit(health::run(&args)),
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

fn check_config(file: Option<PathBuf>) -> ExitCode {
    let shown = file
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_FILE));
    // The very plan `serve` starts from: what passes here starts, what fails here does not.
    let checked = Config::load(file.as_deref().or(Some(&shown)))
        .and_then(|config| Plan::build(&config).map(|plan| (config, plan)));
    match checked {
        Ok((config, plan)) => {
            println!(
                "{}: OK ({} tenant(s), store {:?}, {} shard(s))",
                shown.display(),
                config.tenants.len(),
                config.registry.store,
                config.shard_count()
            );
            print!("{}", plan.summary(&config));
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
        let node = app::start_reloadable(&config, true, file).await?;
        node.run_until_stopped().await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// The production build (`--no-default-features`) must not offer a command whose code it
    /// left out, and the default build must keep every one.
    #[test]
    fn the_tool_commands_exist_exactly_with_their_features() {
        let cli = Cli::command();
        let has = |name: &str| cli.find_subcommand(name).is_some();
        assert_eq!(has("simulate"), cfg!(feature = "simulator"));
        assert_eq!(has("demo"), cfg!(feature = "simulator"));
        assert_eq!(has("loadgen"), cfg!(feature = "loadgen"));
        assert!(has("serve") && has("check-config") && has("health"));
    }
}
