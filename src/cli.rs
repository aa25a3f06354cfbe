//! The `ringcast` command line.

use crate::config::{Config, LogFormat};
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
}

/// Runs the command line; the process exits with the returned code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(file),
        Command::Serve { config } => match serve(config, cli.log_format) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ringcast: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
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
