//! Command-line interface: `serve`, `user add|remove|passwd|list`, `check-config`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::users::UserAction;

use crate::config::{Config, DEV_CONFIG};

#[derive(Debug, Parser)]
#[command(
    name = "hydrant",
    version,
    about = "A federated XMPP server built for PubSub fan-out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML). Without it, built-in defaults are used.
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,
    /// Use the built-in development configuration (localhost, registration on).
    #[arg(long, global = true, conflicts_with = "config")]
    pub dev: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server in the foreground until SIGINT or SIGTERM.
    Serve {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Manage accounts (works while the server runs).
    User {
        #[command(subcommand)]
        action: UserAction,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Parse and validate the configuration, then exit.
    CheckConfig {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config, String> {
        match (&self.config, self.dev) {
            (Some(p), _) => Config::load(p).map_err(|e| e.to_string()),
            (None, true) => Config::parse(DEV_CONFIG, Path::new("<built-in dev config>"))
                .map_err(|e| e.to_string()),
            (None, false) => Ok(Config::default()),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (cfg_args, run): (&ConfigArgs, fn(&Cli, Config) -> Result<(), String>) = match &cli.command
    {
        Command::Serve { cfg } => (cfg, |_, c| {
            crate::serve::run(c).map_err(|e| format!("{e:#}"))
        }),
        Command::User { cfg, .. } => (cfg, |cli, c| match &cli.command {
            Command::User { action, .. } => crate::users::run(&c, action),
            _ => unreachable!(),
        }),
        Command::CheckConfig { cfg } => (cfg, |_, c| {
            println!(
                "configuration OK: domain {}, data_dir {}",
                c.domain.0,
                c.data_dir.display()
            );
            Ok(())
        }),
    };
    let cfg = match cfg_args.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hydrant: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&cli, cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hydrant: {e}");
            ExitCode::FAILURE
        }
    }
}
