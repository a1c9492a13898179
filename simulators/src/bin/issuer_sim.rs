//! `issuer-sim`: an issuer host the switch's links connect to. It signs on, answers echoes,
//! decides with the issuing engine on the issuer file's cards, journals every ledger change and
//! replays its journal on restart. Fault-injection flags make it misbehave for tests.
//!
//! `issuer-sim statements --cycle-end YYYY-MM-DD` closes a statement cycle instead
//! (`switch::issuing::statement`): it replays the issuer's whole journal into a fresh engine,
//! makes one statement per account whose cycle closes that day, journals each close (the
//! cycle's interest and fees) the way the host journals its own changes, and writes each
//! statement as text, JSON, CSV and HTML. Running it again for the same day posts nothing and
//! writes the same statements.
//!
//! Keys: with `[security] pin_key` (and `mac_key`) in the issuer file, the host loads those keys
//! from the keys file (`[security] keys_file`, or `--keys PATH`) into its own security module:
//! PIN blocks arrive under its zone PIN key, and the link is MACed both ways.
//!
//! Why it runs against a *stopped* host: the journal has one writer (its LSNs and the engine's
//! sequence numbers come from one process), and the host's engine must see the closes. A
//! statement run is a batch job between a host's stop and its restart, which replays the closes
//! like any other change. Both modes take `issuer-sim.pid` in the journal directory and refuse
//! to start while another live process holds it. `--dry-run` only reads the journal, posts
//! nothing, and may run beside a host. The run itself is [`switch::statements`], shared with
//! `switch statements` for on-us issuers.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use switch::clock::{Clock, SystemClock};
use switch::config::{DialectId, JournalSync, LengthHeader};
use switch::host::{Faults, HostConfig, HostSecurity, IssuerHost, open_journal};
use switch::issuing::statement::render::Format;
use switch::issuing::{Engine, IssuerFile, NaiveDate};
use switch::journal::{Journal, JournalOptions, PidFile};
use switch::net::framing::FramingConfig;
use switch::process::Scheduling;
use switch::statements;

/// The pid file both modes take in the journal directory ([`PidFile`]).
const PID_FILE: &str = "issuer-sim.pid";

/// mimalloc rather than glibc malloc: per-thread heaps, no arena lock contention under load
/// (`switch::alloc` says how it is called).
#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

/// An ISO 8583 issuer host simulator for Switchyard.
#[derive(Debug, Parser)]
#[command(name = "issuer-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The issuer file: issuer, listener, journal, PIN key, products, accounts, cards.
    #[arg(
        long,
        short = 'c',
        visible_alias = "issuer-file",
        value_name = "PATH",
        global = true
    )]
    config: Option<PathBuf>,
    /// Keep the journal here instead of the file's `[journal] dir`.
    #[arg(long, value_name = "DIR", global = true)]
    journal_dir: Option<PathBuf>,
    /// `always` fsyncs each group commit before answering; `none` is for benchmarks.
    #[arg(long, default_value = "always", value_parser = parse_sync, global = true)]
    sync: JournalSync,
    /// Write the journal buffered even where the file system takes direct I/O (`O_DIRECT`,
    /// used by default with `--sync always`; the switch's `[journal] direct_io`).
    #[arg(long, global = true)]
    no_direct_io: bool,
    /// The keys file holding the link keys the issuer file names (`[security] pin_key`,
    /// `mac_key`), instead of its `[security] keys_file`.
    #[arg(long, value_name = "PATH", global = true)]
    keys: Option<PathBuf>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Close the statement cycle ending on a day: post interest and fees, write the statements.
    /// Run it while the issuer host is stopped.
    Statements(StatementArgs),
}

/// How the host listens, and its fault injection.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Listen here instead of the file's `[listener] address` (e.g. 127.0.0.1:0).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Wire dialect.
    #[arg(long, default_value = "iso87-ascii", value_parser = parse_dialect)]
    dialect: DialectId,
    /// Length header: binary2-be, binary2-le, ascii4 or bcd2.
    #[arg(long, default_value = "binary2-be", value_parser = parse_header)]
    length_header: LengthHeader,
    /// Write a checkpoint after N ledger events (and at shutdown), so a restart replays only
    /// the journal's tail; later ones after as many events as the last checkpoint held records,
    /// if that is more, so checkpoints never write more than the journal does.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    checkpoint_every: u64,
    /// Write a periodic checkpoint's file at most this many MiB a second (0: as fast as the
    /// disk takes it; else at least 4), so that the journal's fsyncs on the same disk are not
    /// held up behind it. The checkpoint at shutdown is written at full speed.
    #[arg(long, default_value_t = switch::config::CHECKPOINT_WRITE_MIB_PER_S_DEFAULT, value_name = "MIB", value_parser = parse_write_rate)]
    checkpoint_write_mib_per_s: u32,
    /// Most connections open at once; one more is closed unread.
    #[arg(long, default_value_t = switch::host::HOST_CONNECTIONS_MAX_DEFAULT, value_name = "N")]
    connections_max: usize,
    /// Most requests being answered at once on one connection; at it the host stops reading that
    /// connection until an answer goes out.
    #[arg(long, default_value_t = switch::host::HOST_INFLIGHT_PER_CONNECTION_MAX_DEFAULT, value_name = "N")]
    inflight_per_connection_max: usize,
    /// How the kernel schedules the host's threads: batch (SCHED_BATCH, a thread that wakes
    /// does not preempt the one running) or normal (the kernel's default). Batch disturbs a
    /// switch sharing the cores least; `switch::process` says why.
    #[arg(long, value_enum, default_value_t = Scheduling::Batch)]
    scheduling: Scheduling,
    /// Fault injection: wait this long before each answer (milliseconds).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Fault injection: leave this fraction of requests unanswered (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Fault injection: close each connection after N requests.
    #[arg(long, value_name = "N")]
    close_after: Option<u64>,
    /// Fault injection: answer no requests after the first N (network management still answered).
    #[arg(long, value_name = "N")]
    stop_answering_after: Option<u64>,
    /// Fault injection: answer requests with a MAC that does not verify (needs `mac_key`).
    #[arg(long)]
    garble_mac: bool,
    /// Accept the switch's links over TLS with this certificate chain (PEM); the switch's
    /// `[issuer.tls] ca_file` must trust it. Needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require the switch to present a client certificate chaining to these CAs (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// The listener's cipher suites in its order of preference, comma-separated rustls names
    /// (e.g. TLS13_AES_256_GCM_SHA384,TLS13_AES_128_GCM_SHA256), as the switch's
    /// `[listener.tls] cipher_suites`: at least one TLS 1.3 suite. Default: SHA-256 suites first.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        value_parser = suite_name,
        requires = "tls_cert"
    )]
    tls_cipher_suites: Vec<String>,
}

/// `issuer-sim statements`.
#[derive(Debug, Args)]
struct StatementArgs {
    /// The last day of the cycle (UTC); it must be over. Accounts whose cycle day falls on it
    /// get a statement.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    cycle_end: NaiveDate,
    /// Where the statements go (default `reports/statements/<issuer>/<cycle-end>/`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Formats to write, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "text,json,csv,html",
        value_parser = parse_format
    )]
    format: Vec<Format>,
    /// Compute and write the statements without posting anything (reads the journal only).
    #[arg(long)]
    dry_run: bool,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| "expected a date YYYY-MM-DD".into())
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::from_name(s).ok_or_else(|| "expected text, json, csv or html".into())
}

fn parse_write_rate(s: &str) -> Result<u32, String> {
    let n = s
        .parse::<u32>()
        .map_err(|e| format!("not a whole number of MiB a second: {e}"))?;
    switch::config::check_checkpoint_write_rate(n)
}

fn parse_sync(s: &str) -> Result<JournalSync, String> {
    match s {
        "always" => Ok(JournalSync::Always),
        "none" => Ok(JournalSync::None),
        _ => Err("expected always or none".into()),
    }
}

fn parse_dialect(s: &str) -> Result<DialectId, String> {
    DialectId::ALL
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| "unknown dialect".into())
}

fn parse_header(s: &str) -> Result<LengthHeader, String> {
    match s {
        "binary2-be" => Ok(LengthHeader::Binary2Be),
        "binary2-le" => Ok(LengthHeader::Binary2Le),
        "ascii4" => Ok(LengthHeader::Ascii4),
        "bcd2" => Ok(LengthHeader::Bcd2),
        _ => Err("expected binary2-be, binary2-le, ascii4 or bcd2".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    simulators::log_to_stderr("info");
    // Before anything is allocated in bulk: see switch::process for why.
    switch::process::disable_transparent_huge_pages_or_warn();
    let Some(config) = cli.config.clone() else {
        eprintln!("--config PATH (the issuer file) is required");
        return ExitCode::from(2);
    };
    let file = match IssuerFile::load(&config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let journal_dir = cli
        .journal_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&file.journal.dir));
    match &cli.command {
        Some(Command::Statements(args)) => statements(&file, &journal_dir, cli.sync, args),
        None => serve(&cli, &config, &file, journal_dir),
    }
}

/// What the TLS listener's errors call its inputs: this command's flags.
const TLS_FLAGS: switch::net::tls::InputNames = switch::net::tls::InputNames {
    cert_file: "--tls-cert",
    key_file: "--tls-key",
    client_ca_file: "--tls-client-ca",
    cipher_suites: "--tls-cipher-suites",
};

/// One name of `--tls-cipher-suites`, spaces around it dropped; an empty one (a stray comma) is
/// refused here rather than reported as an unknown suite with the whole list of known ones.
fn suite_name(name: &str) -> Result<String, String> {
    match name.trim() {
        "" => Err("empty suite name (a stray comma?)".to_owned()),
        n => Ok(n.to_owned()),
    }
}

fn serve(cli: &Cli, config: &Path, file: &IssuerFile, journal_dir: PathBuf) -> ExitCode {
    let args = &cli.serve;
    if !(0.0..=1.0).contains(&args.drop_rate) {
        eprintln!("--drop-rate must be between 0.0 and 1.0");
        return ExitCode::from(2);
    }
    let suite_problems = switch::config::cipher_suite_problems(&args.tls_cipher_suites);
    if !suite_problems.is_empty() {
        for p in suite_problems {
            eprintln!("--tls-cipher-suites: {p}");
        }
        return ExitCode::from(2);
    }
    // Before anything is created (PID file, journal folder): a listener that cannot start
    // leaves nothing behind.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let listener = switch::config::ListenerTlsConfig {
                cert_file: cert.clone(),
                key_file: key.clone(),
                client_ca_file: args.tls_client_ca.clone(),
                cipher_suites: args.tls_cipher_suites.clone(),
            };
            match switch::net::tls::server_config_named(&listener, TLS_FLAGS) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let address = match (&args.listen, &file.listener) {
        (Some(a), _) => a.clone(),
        (None, Some(l)) => l.address.clone(),
        (None, None) => {
            eprintln!("{}: no [listener] address; pass --listen", config.display());
            return ExitCode::from(2);
        }
    };
    let _pid = match PidFile::take(&journal_dir, PID_FILE, "issuer-sim") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = match Engine::from_file(file) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let security = match HostSecurity::load(file, cli.keys.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    // Before the runtime and the journal start their threads, which inherit it.
    switch::process::set_scheduling_or_warn(args.scheduling);
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
    let sync = cli.sync;
    let journal_opts = JournalOptions {
        sync,
        direct_io: !cli.no_direct_io,
        ..JournalOptions::default()
    };
    rt.block_on(async move {
        let (journal, replayed) = match open_journal(&journal_dir, journal_opts, &engine) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            issuer = %engine.issuer(),
            records = replayed.records,
            checkpoint_lsn = ?replayed.checkpoint_lsn,
            events_replayed = replayed.events,
            journal = %journal_dir.display(),
            "journal recovered"
        );
        let cfg = HostConfig {
            address,
            dialect: args.dialect.dialect(),
            framing: FramingConfig {
                length_header: args.length_header,
                header_bytes: 0,
                frame_bytes_max: 8192,
            },
            faults: Faults {
                delay_ms: args.delay_ms,
                drop_rate: args.drop_rate,
                close_after: args.close_after,
                stop_answering_after: args.stop_answering_after,
                garble_mac: args.garble_mac,
            },
            checkpoint_dir: Some(journal_dir.clone()),
            checkpoint_every: args.checkpoint_every,
            checkpoint_pace: switch::journal::WritePace::mib_per_s(args.checkpoint_write_mib_per_s),
            security,
            tls,
            connections_max: args.connections_max,
            inflight_per_connection_max: args.inflight_per_connection_max,
        };
        let host = match IssuerHost::start(
            cfg,
            engine,
            journal.clone() as Arc<dyn Journal>,
            Some(journal),
            Arc::new(SystemClock),
        )
        .await
        {
            Ok(h) => h,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        // Tests and scripts read the bound address from this line.
        println!("issuer-sim listening on {}", host.local_addr());
        wait_for_stop().await;
        host.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_stop() {
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

/// `issuer-sim statements`: exit 0 when every statement was written (and its close posted),
/// 2 on a bad argument, 1 on any other failure.
fn statements(
    file: &IssuerFile,
    journal_dir: &Path,
    sync: JournalSync,
    args: &StatementArgs,
) -> ExitCode {
    let end = args.cycle_end;
    let today = SystemClock.today();
    if end >= today {
        eprintln!("--cycle-end {end} is not over yet (today is {today}, UTC)");
        return ExitCode::from(2);
    }
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports/statements")
            .join(&file.issuer.id)
            .join(end.to_string())
    });
    match run_statements(file, journal_dir, sync, args, &out) {
        Ok(count) => {
            println!(
                "{count} statement(s) of {} for the cycle ending {end} in {}",
                file.issuer.id,
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("issuer-sim statements: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_statements(
    file: &IssuerFile,
    journal_dir: &Path,
    sync: JournalSync,
    args: &StatementArgs,
    out: &Path,
) -> Result<usize, String> {
    let engine = Engine::from_file(file).map_err(|e| e.to_string())?;
    // A dry run only reads; a real one takes the journal as its only writer.
    let _pid = if args.dry_run {
        None
    } else {
        Some(PidFile::take(journal_dir, PID_FILE, "issuer-sim")?)
    };
    let opts = statements::Options {
        cycle_end: args.cycle_end,
        formats: args.format.clone(),
        dry_run: args.dry_run,
        journal: JournalOptions {
            sync,
            ..JournalOptions::default()
        },
        now_ms: SystemClock.now_ms(),
    };
    let run = vec![statements::IssuerRun {
        engine,
        out: out.to_owned(),
    }];
    let delivered = statements::run(journal_dir, run, &opts).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    for d in &delivered {
        let _ = writeln!(
            stdout,
            "{}  [{}]",
            statements::summary_line(&d.statement),
            d.status.label()
        );
    }
    Ok(delivered.len())
}
