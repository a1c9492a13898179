//! The `switch` binary: command-line entry point of Switchyard.
//!
//! For now it loads and validates the configuration ([`switch::config`]); the runtime (listener,
//! routing, issuer links, journal) arrives in the next milestone. Everything here reports errors
//! through exit codes: 0 success, 1 invalid configuration, 2 unreadable or unparseable file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use switch::config::{Config, ConfigError};
use tracing_subscriber::EnvFilter;

/// Switchyard: an ISO 8583:1987 card authorization switch.
#[derive(Debug, Parser)]
#[command(name = "switch", version, about)]
struct Cli {
    /// Path of the configuration file (TOML).
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "PATH",
        default_value = "config/switch.toml"
    )]
    config: PathBuf,

    /// Log output format; the level filter comes from `RUST_LOG` (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// What to do; `run` when omitted.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the configuration and run the switch (the default).
    Run,
    /// Validate the configuration: print `ok` and exit 0, or list every problem on stderr and
    /// exit 1 (2 if the file cannot be read or parsed).
    CheckConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Exit code for a config that parsed but broke rules.
const EXIT_INVALID: u8 = 1;
/// Exit code for a config that could not be read or parsed.
const EXIT_UNREADABLE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
    }
}

/// Logs go to stderr so stdout carries only command output (`ok`, the effective config).
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` cannot fail here (nothing else installs a subscriber); ignore rather than panic.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => return report(&err),
    };
    tracing::info!(config = %path.display(), "configuration loaded and valid");
    match config.to_toml_string() {
        Ok(text) => {
            println!(
                "# effective configuration ({}, defaults filled in)",
                path.display()
            );
            print!("{text}");
        }
        // Serializing a parsed config should not fail; fall back to the Debug form if it does.
        Err(err) => {
            tracing::warn!(error = %err, "cannot re-serialize the configuration as TOML");
            println!("{config:#?}");
        }
    }
    println!(
        "# the switch runtime (listener, routing, issuer links, journal) arrives in the next milestone"
    );
    ExitCode::SUCCESS
}

fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(err) => report(&err),
    }
}

/// Prints a load error to stderr (one problem per line) and picks the exit code.
fn report(err: &ConfigError) -> ExitCode {
    eprintln!("{err}");
    match err {
        ConfigError::Invalid(_) => ExitCode::from(EXIT_INVALID),
        ConfigError::Io { .. } | ConfigError::Parse { .. } => ExitCode::from(EXIT_UNREADABLE),
    }
}
