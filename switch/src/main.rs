//! The `switch` binary: command-line entry point of Switchyard.
//!
//! `run` (the default) starts the switch with a configuration file and serves until SIGTERM or
//! SIGINT (graceful; a second signal stops at once); SIGHUP reloads routing and limits.
//! `check-config` validates a file. `demo` runs the whole stack in one process (`--days N`: a
//! month of business days on a manual clock, see `switch::demo::month`). `cutover` closes
//! a business day (clearing) and `settle` writes its settlement report and merchant statements
//! (see `switch::clearing`). `statements` closes the on-us issuers' billing cycle ending on a
//! day (see `switch::statements`). Exit codes: 0 success, 1 invalid configuration, 2 unreadable or
//! unparseable file; `cutover` and `settle` exit 1 when the day cannot be closed or settled;
//! `statements` exits 2 on a bad argument and 1 when statements could not be made.
//!
//! `run` and `statements` take `switch.pid` in the journal directory
//! ([`switch::journal::PidFile`]): the journal has one writer, and a statement run posts into it,
//! so it runs while the switch is stopped, and neither starts while the other holds the file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use switch::clock::{Clock, SystemClock};
use switch::config::{Config, ConfigError, IssuerKind};
use switch::issuing::statement::render::Format;
use switch::journal::{JournalOptions, PidFile};
use switch::net::start::{StartOptions, SwitchServer};
use switch::security::KeysFile;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc malloc: per-thread heaps, no arena lock contention under load
/// (`switch::alloc` says how it is called).
#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

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
    ///
    /// `--days N` runs N business days on a manual clock instead, in seconds: each day's
    /// traffic, cutover and settlement, and the billing cycles that close, then prints a credit
    /// statement and the last settlement report.
    Demo {
        /// Serve on the configured listener (127.0.0.1:8583) until Ctrl-C, with no workload.
        #[arg(long, conflicts_with = "days")]
        serve: bool,
        /// Run this many business days from 2026-05-02 on a manual clock (35: through the
        /// 2026-06-05 statement close).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=400))]
        days: Option<u32>,
        /// With `--days`: where journals, reports and statements go (default: a new folder
        /// under the system's temporary directory, kept).
        #[arg(long, value_name = "DIR", requires = "days")]
        out: Option<PathBuf>,
        /// Steps in the mixed workload.
        #[arg(long, default_value_t = 3000)]
        transactions: u64,
        /// Acquirer connections driving it.
        #[arg(long, default_value_t = 8)]
        connections: usize,
    },
    /// Close business days: clear them from the journal and carry open holds over. Closes every
    /// day not yet closed up to `--date` (default: the business day that ended last).
    Cutover {
        /// The business day to close, `YYYY-MM-DD`; it must have ended.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<chrono::NaiveDate>,
        /// Reports folder (default `[clearing] reports_dir`).
        #[arg(long, value_name = "DIR")]
        reports: Option<PathBuf>,
    },
    /// Write a business day's settlement report and merchant statements (closing it first if
    /// needed).
    Settle {
        /// The business day, `YYYY-MM-DD`.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: chrono::NaiveDate,
        /// Reports folder (default `[clearing] reports_dir`).
        #[arg(long, value_name = "DIR")]
        reports: Option<PathBuf>,
        /// Fee schedule (default `[clearing] fees_file`).
        #[arg(long, value_name = "PATH")]
        fees: Option<PathBuf>,
    },
    /// Close the on-us issuers' billing cycle ending on a day: post interest and fees to the
    /// switch's journal and write one statement per account whose cycle closes that day. Run it
    /// while the switch is stopped.
    Statements {
        /// The last day of the cycle (UTC); it must be over.
        #[arg(long, value_name = "YYYY-MM-DD")]
        cycle_end: chrono::NaiveDate,
        /// Only this on-us issuer (default: every on-us issuer).
        #[arg(long, value_name = "ID")]
        issuer: Option<String>,
        /// Statements root (default `<[clearing] reports_dir>/statements`); each issuer's go to
        /// `<issuer>/<cycle-end>/` under it.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Formats to write, comma-separated: text, json, csv, html.
        #[arg(long, value_delimiter = ',', default_value = "text,json,csv,html", value_parser = parse_format)]
        format: Vec<Format>,
        /// Compute and write without posting (reads the journal only; may run beside the switch).
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::from_name(s).ok_or_else(|| "expected text, json, csv or html".into())
}

/// The pid file `run` and `statements` take in the journal directory.
const PID_FILE: &str = "switch.pid";

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
    // Before any state is loaded: see switch::process for why.
    switch::process::disable_transparent_huge_pages_or_warn();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
        Command::Demo {
            days: Some(days),
            out,
            ..
        } => demo_month(&cli.config, days, out),
        Command::Demo {
            serve,
            transactions,
            connections,
            ..
        } => demo(&cli.config, serve, transactions, connections),
        Command::Cutover { date, reports } => cutover(&cli.config, date, reports.as_deref()),
        Command::Settle {
            date,
            reports,
            fees,
        } => settle(&cli.config, date, reports.as_deref(), fees.as_deref()),
        Command::Statements {
            cycle_end,
            issuer,
            out,
            format,
            dry_run,
        } => statements(
            &cli.config,
            cycle_end,
            issuer.as_deref(),
            out.as_deref(),
            format,
            dry_run,
        ),
    }
}

/// Exit code for a bad `statements` argument.
const EXIT_BAD_ARGUMENT: u8 = 2;

/// `switch statements`: one line per statement, then where they went.
fn statements(
    path: &Path,
    cycle_end: chrono::NaiveDate,
    only: Option<&str>,
    out: Option<&Path>,
    formats: Vec<Format>,
    dry_run: bool,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(err) => return report(&err),
    };
    let today = SystemClock.today();
    if cycle_end >= today {
        eprintln!("--cycle-end {cycle_end} is not over yet (today is {today}, UTC)");
        return ExitCode::from(EXIT_BAD_ARGUMENT);
    }
    if let Some(id) = only
        && !config
            .issuers
            .iter()
            .any(|i| i.id == id && i.kind == IssuerKind::OnUs)
    {
        eprintln!(
            "--issuer {id} is not an on-us issuer of {} (a remote issuer's statements come from its own host: issuer-sim statements)",
            path.display()
        );
        return ExitCode::from(EXIT_BAD_ARGUMENT);
    }
    let root = out.map_or_else(
        || config.clearing.reports_dir.join("statements"),
        Path::to_owned,
    );
    let mut issuers = Vec::new();
    for ic in config
        .issuers
        .iter()
        .filter(|i| i.kind == IssuerKind::OnUs && only.is_none_or(|id| i.id == id))
    {
        let Some(cards) = &ic.cards else {
            eprintln!("on-us issuer {} has no `cards` (issuer file)", ic.id);
            return ExitCode::from(EXIT_INVALID);
        };
        match switch::onus::load_engine(cards) {
            Ok(engine) => issuers.push(switch::statements::IssuerRun {
                out: switch::statements::issuer_dir(&root, &ic.id, cycle_end),
                engine,
            }),
            Err(e) => {
                eprintln!("{}: {e}", cards.display());
                return ExitCode::from(EXIT_UNREADABLE);
            }
        }
    }
    if issuers.is_empty() {
        println!("no on-us issuer in {}: nothing to do", path.display());
        return ExitCode::SUCCESS;
    }
    // A dry run only reads; a real one takes the journal as its only writer.
    let _pid = if dry_run {
        None
    } else {
        match PidFile::take(&config.journal.dir, PID_FILE, "switch") {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let opts = switch::statements::Options {
        cycle_end,
        formats,
        dry_run,
        journal: JournalOptions::from(&config.journal),
        now_ms: SystemClock.now_ms(),
    };
    match switch::statements::run(&config.journal.dir, issuers, &opts) {
        Ok(delivered) => {
            for d in &delivered {
                println!(
                    "{:<12} {}  [{}]",
                    d.statement.issuer,
                    switch::statements::summary_line(&d.statement),
                    d.status.label()
                );
            }
            println!(
                "{} statement(s) for the cycle ending {cycle_end} under {}",
                delivered.len(),
                root.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switch statements: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration and the clearing job it describes, or the exit code to give up with.
fn load_job(
    path: &Path,
    reports: Option<&Path>,
) -> Result<(Config, switch::clearing::Job), ExitCode> {
    let config = Config::load(path).map_err(|err| report(&err))?;
    match switch::clearing::Job::from_config(&config, reports) {
        Ok(job) => Ok((config, job)),
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// `switch cutover`: closes business days up to `date` and prints one line per day.
fn cutover(path: &Path, date: Option<chrono::NaiveDate>, reports: Option<&Path>) -> ExitCode {
    let (_, job) = match load_job(path, reports) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let now = SystemClock.now();
    let date =
        date.unwrap_or_else(|| switch::clearing::last_closed_day(now, job.rules.cutover_minutes));
    match switch::clearing::cutover(&job, date, now) {
        Ok(days) => {
            for c in days {
                println!(
                    "closed {}: {} cleared, {} reversals, {} authorized not captured, {} expired, {} exceptions; reports in {}",
                    c.business_date,
                    c.items.len(),
                    c.reversals.len(),
                    c.authorized_not_captured.len(),
                    c.expired.len(),
                    c.exceptions.len(),
                    job.day_dir(c.business_date).display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cutover failed: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// `switch settle`: settles one business day and prints each position.
fn settle(
    path: &Path,
    date: chrono::NaiveDate,
    reports: Option<&Path>,
    fees: Option<&Path>,
) -> ExitCode {
    let (config, job) = match load_job(path, reports) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let fees_path = fees.unwrap_or(&config.clearing.fees_file);
    let schedule = match switch::clearing::FeeSchedule::load(fees_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match switch::clearing::settle(&job, &schedule, date, SystemClock.now()) {
        Ok((settlement, statements)) => {
            for p in &settlement.positions {
                println!(
                    "{:<8} {:<12} net {:>16} {}",
                    p.role.name(),
                    p.institution,
                    switch::clearing::report::money(p.net_minor, p.currency),
                    switch::clearing::report::currency_code(p.currency)
                );
            }
            println!(
                "settled {date}: {} positions, {} merchant statements; reports in {}",
                settlement.positions.len(),
                statements.len(),
                job.day_dir(date).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("settlement failed: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// The multi-threaded tokio runtime of `run` and `demo`, or the exit code to give up with.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Logs go to stderr so stdout carries only command output (`ok`, the effective config).
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `try_init` cannot fail here (nothing else installs a subscriber); ignore rather than panic.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A keys file that cannot be loaded, said with where it was looked for: a relative
/// `keys_file` is taken from the working directory, not from the config file's folder.
fn keys_file_error(config: &Path, keys_file: &Path, e: &dyn std::fmt::Display) -> String {
    if keys_file.is_relative() && !keys_file.exists() {
        let here =
            std::env::current_dir().map_or_else(|_| "?".to_owned(), |d| d.display().to_string());
        format!(
            "{e} (the config {} names it relative to the working directory, {here}: run from \
             the folder it is relative to, or give an absolute path)",
            config.display()
        )
    } else {
        e.to_string()
    }
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => return report(&err),
    };
    tracing::info!(config = %path.display(), "configuration loaded and valid");
    // Held until the process exits: statement runs post into this journal only while it is free.
    let _pid = match PidFile::take(&config.journal.dir, PID_FILE, "switch") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = match KeysFile::load(&config.security.keys_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{}", keys_file_error(path, &config.security.keys_file, &e));
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    // Before the runtime and the journal start their threads, which inherit it.
    switch::process::set_scheduling_or_warn(config.switch.scheduling);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
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
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
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

/// `switch demo --days N`: the month on a manual clock, its final statement and settlement.
fn demo_month(path: &Path, days: u32, out: Option<PathBuf>) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let out = out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "switchyard-month-{}-{}",
            std::process::id(),
            SystemClock.now_ms()
        ))
    });
    let opts = switch::demo::month::MonthOptions::new(path.to_owned(), out, days);
    match rt.block_on(switch::demo::month::run(&opts)) {
        Ok(month) => {
            print!("{}", month.closing_text());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Validates the configuration, then what `run` would read next: the keys file (every key a
/// party names must be there, with the right purpose) and each on-us issuer's file. Prints `ok`
/// or every problem, one per line, naming settings and key ids but never a key.
fn check_config(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(err) => return report(&err),
    };
    let mut problems = Vec::new();
    match KeysFile::load(&config.security.keys_file) {
        Err(e) => problems.push(format!(
            "security.keys_file: {}",
            keys_file_error(path, &config.security.keys_file, &e)
        )),
        Ok(keys) => match switch::security::SoftwareSecurityModule::from_keys(&keys) {
            Err(e) => problems.push(format!("security.keys_file: {e}")),
            Ok(module) => {
                let origin = path.display().to_string();
                if let Err(found) =
                    switch::decision::security::check_keys(&config, &module, &origin)
                {
                    problems.extend(found.iter().map(ToString::to_string));
                }
            }
        },
    }
    for (i, ic) in config.issuers.iter().enumerate() {
        if ic.kind != IssuerKind::OnUs {
            continue;
        }
        if let Some(file) = &ic.cards
            && let Err(e) = switch::onus::load_engine(file)
        {
            problems.push(format!("issuer[{i}].cards ({}): {e}", ic.id));
        }
    }
    if problems.is_empty() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        ExitCode::from(EXIT_INVALID)
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
