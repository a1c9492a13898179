//! The `switch` binary: command-line entry point of Switchyard.
//!
//! `run` (the default) starts the switch with a configuration file and serves until SIGTERM or
//! SIGINT (graceful; a second signal stops at once); SIGHUP reloads routing and limits.
//! `check-config` validates a file. `demo` runs the whole stack in one process. Exit codes: 0
//! success, 1 invalid configuration, 2 unreadable or unparseable file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use switch::clock::SystemClock;
use switch::config::{Config, ConfigError};
use switch::net::start::{StartOptions, SwitchServer};
use switch::security::KeysFile;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc malloc: per-thread heaps, no arena lock contention under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the switch and the default issuer hosts in one process, drive a short mixed workload
    /// over the test cards and print a summary; `--serve` serves the stack on the configured
    /// listener until interrupted instead.
    Demo {
        /// Serve on the configured listener (127.0.0.1:8583) until Ctrl-C, with no workload.
        #[arg(long)]
        serve: bool,
        /// Steps in the mixed workload.
        #[arg(long, default_value_t = 3000)]
        transactions: u64,
        /// Acquirer connections driving it.
        #[arg(long, default_value_t = 8)]
        connections: usize,
    },
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
        Command::Demo {
            serve,
            transactions,
            connections,
        } => demo(&cli.config, serve, transactions, connections),
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
    let keys = match KeysFile::load(&config.security.keys_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(path.to_owned(), config, keys))
}

async fn serve(path: PathBuf, config: Config, keys: KeysFile) -> ExitCode {
    if config.metrics.enabled {
        match config.metrics.address.parse() {
            Ok(addr) => {
                if let Err(e) = switch::metrics::install_exporter(addr) {
                    tracing::error!(error = %e, address = %config.metrics.address, "metrics exporter did not start");
                } else {
                    tracing::info!(address = %config.metrics.address, "metrics at /metrics");
                }
            }
            Err(_) => {
                tracing::error!(address = %config.metrics.address, "metrics address does not parse")
            }
        }
    }
    let server = match SwitchServer::start(StartOptions {
        config,
        keys,
        clock: Arc::new(SystemClock),
        on_us: Arc::new(switch::onus::engine_factory),
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switch did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("switch listening on {}", server.local_addr());
    wait_for_signals(&server, &path).await;
    let grace = tokio::spawn(server.shutdown());
    tokio::select! {
        _ = grace => ExitCode::SUCCESS,
        () = second_signal() => {
            eprintln!("second signal: stopping at once");
            ExitCode::from(130)
        }
    }
}

/// Waits for SIGTERM or SIGINT; reloads routing and limits on each SIGHUP meanwhile.
async fn wait_for_signals(server: &SwitchServer, path: &Path) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; waiting for Ctrl-C only");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
            _ = hup.recv() => reload(server, path),
        }
    }
}

fn reload(server: &SwitchServer, path: &Path) {
    let outcome = match Config::load(path) {
        Ok(new) => match server.reload(&new) {
            Ok(()) => {
                tracing::info!(config = %path.display(), "configuration reloaded: routing, acquirers and limits swapped in");
                "applied"
            }
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; the running configuration stays");
                "rejected"
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "reload rejected: the new configuration is invalid; the running one stays");
            "rejected"
        }
    };
    metrics::counter!(switch::metrics::CONFIG_RELOADS_TOTAL, "outcome" => outcome).increment(1);
}

async fn second_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn demo(path: &Path, serve: bool, transactions: u64, connections: usize) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = switch::demo::DemoOptions {
        config: path.to_owned(),
        serve,
        transactions,
        connections,
    };
    match rt.block_on(switch::demo::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
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
