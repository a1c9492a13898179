//! `issuer-sim`: an issuer host the switch's links connect to. It signs on, answers echoes,
//! decides with the issuing engine on the issuer file's cards, journals every ledger change and
//! replays its journal on restart. Fault-injection flags make it misbehave for tests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use switch::clock::SystemClock;
use switch::config::{DialectId, JournalSync, LengthHeader};
use switch::host::{Faults, HostConfig, IssuerHost, open_journal};
use switch::issuing::{Engine, IssuerFile};
use switch::journal::Journal;
use switch::net::framing::FramingConfig;

/// An ISO 8583 issuer host simulator for Switchyard.
#[derive(Debug, Parser)]
#[command(name = "issuer-sim", version, about)]
struct Cli {
    /// The issuer file: issuer, listener, journal, PIN key, products, accounts, cards.
    #[arg(long, short = 'c', value_name = "PATH")]
    config: PathBuf,
    /// Listen here instead of the file's `[listener] address` (e.g. 127.0.0.1:0).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Keep the journal here instead of the file's `[journal] dir`.
    #[arg(long, value_name = "DIR")]
    journal_dir: Option<PathBuf>,
    /// `always` fsyncs each group commit before answering; `none` is for benchmarks.
    #[arg(long, default_value = "always", value_parser = parse_sync)]
    sync: JournalSync,
    /// Wire dialect.
    #[arg(long, default_value = "iso87-ascii", value_parser = parse_dialect)]
    dialect: DialectId,
    /// Length header: binary2-be, binary2-le, ascii4 or bcd2.
    #[arg(long, default_value = "binary2-be", value_parser = parse_header)]
    length_header: LengthHeader,
    /// Write a checkpoint every N ledger events (and at shutdown), so a restart replays only
    /// the journal's tail.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    checkpoint_every: u64,
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if !(0.0..=1.0).contains(&cli.drop_rate) {
        eprintln!("--drop-rate must be between 0.0 and 1.0");
        return ExitCode::from(2);
    }
    let file = match IssuerFile::load(&cli.config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let address = match (&cli.listen, &file.listener) {
        (Some(a), _) => a.clone(),
        (None, Some(l)) => l.address.clone(),
        (None, None) => {
            eprintln!(
                "{}: no [listener] address; pass --listen",
                cli.config.display()
            );
            return ExitCode::from(2);
        }
    };
    let journal_dir = cli
        .journal_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&file.journal.dir));
    let engine = match Engine::from_file(&file) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
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
    rt.block_on(async move {
        let (journal, replayed) = match open_journal(&journal_dir, cli.sync, &engine) {
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
            dialect: cli.dialect.dialect(),
            framing: FramingConfig {
                length_header: cli.length_header,
                header_bytes: 0,
                frame_bytes_max: 8192,
            },
            faults: Faults {
                delay_ms: cli.delay_ms,
                drop_rate: cli.drop_rate,
                close_after: cli.close_after,
                stop_answering_after: cli.stop_answering_after,
            },
            checkpoint_dir: Some(journal_dir.clone()),
            checkpoint_every: cli.checkpoint_every,
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
