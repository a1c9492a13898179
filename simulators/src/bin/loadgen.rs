//! `loadgen`: the bench harness of Switchyard (`simulators::loadgen`).
//!
//! ```text
//! loadgen run [--target 127.0.0.1:8583] [--mix simulators/loadgen/default.toml]
//!             [--connections 4] [--inflight 4] [--rate N] [--warmup-s 2] [--duration-s 10]
//!             [--timeout-ms 5000] [--acquirer 100001] [--expect switch|echo]
//!             [--json FILE] [--plot FILE.svg] [--quiet]
//!             [--keys FILE [--mac-key ID] [--pin-key ID]] [--watch-pid PID]
//!             [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]
//!              [--tls-no-resumption]]
//!             [--requests-per-connection N]
//! loadgen gen-cards --count 1000000 --out DIR [--specials 10] [--security] [--tls]
//! loadgen relay --listen 127.0.0.1:7000 --backend 127.0.0.1:7001 [--pool 1]
//!               [--work raw|codec|durable [--journal DIR] [--sync always|none]]
//! loadgen echo-backend --listen 127.0.0.1:7001
//! loadgen grid [--duration-s 5] [--warmup-s 1] [--cards 100000] [--points 1x1,64x1,16x16,64x32]
//!              [--doc docs/benchmarks.md] [--no-doc] [--json FILE] [--machine TEXT]
//!              [--sync always|none] [--group-commit-delay-us N] [--links N] [--security]
//!              [--tls] [--ladder] [--rounds N]
//!              [--extra-bin-ranges N] [--no-metrics] [--shared-runtime]
//! every command: [--scheduling batch|normal]
//! ```
//!
//! `run` drives the target (closed loop, or open loop at `--rate` requests per second in total
//! with latency from the scheduled send time), prints a live progress line every second on
//! stderr and the report on stdout. Against `loadgen relay` in front of `loadgen echo-backend`,
//! pass `--expect echo`. `grid` runs the standard grid in-process and writes its table into
//! `docs/benchmarks.md` (run it from the repository root).
//!
//! Exit codes: 0 on success; 1 when a run had mismatches or errors (the report says which);
//! 2 on a usage or setup error (bad options, unreadable mix, target unreachable); 130 when
//! `run` was stopped by Ctrl-C (it still drains, prints its report and writes `--json` and
//! `--plot` for the window up to that moment; a second Ctrl-C quits at once).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use simulators::loadgen::gencards::{GenOptions, default_issuers, generate};
use simulators::loadgen::grid::{
    GridOptions, GridRow, LADDER_END_MARKER, LADDER_START_MARKER, SECURITY_END_MARKER,
    SECURITY_START_MARKER, TLS_END_MARKER, TLS_START_MARKER, default_doc, echoed_args,
    ladder_markdown, mark_stale_between, markdown, run_grid, security_markdown, stale_note,
    terminal_keys, tls_markdown, update_doc, update_doc_between,
};
use simulators::loadgen::ladder::RelayWork;
use simulators::loadgen::mix::Mix;
use simulators::loadgen::relay::{EchoBackend, Relay, RelayOptions};
use simulators::loadgen::report::write_json;
use simulators::loadgen::runner::{CLIENT_THREAD, Expect, RunOptions, run};
use simulators::loadgen::stack::StackOptions;
use simulators::loadgen::{plot, report, thousands};
use switch::client::TerminalKeys;
use switch::clock::{Clock, SystemClock};
use switch::config::JournalSync;
use switch::journal::{FileJournal, JournalOptions};
use switch::process::Scheduling;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc malloc: per-thread heaps, no arena lock contention under load
/// (`switch::alloc` says how it is called).
#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

/// `run --mix` when none is given: the default config's test cards (`config/`).
const DEFAULT_MIX: &str = "simulators/loadgen/default.toml";

const EXIT_UNCLEAN: u8 = 1;
const EXIT_USAGE: u8 = 2;
/// Stopped by Ctrl-C (128 + SIGINT, as a shell reports it); the report was still written.
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Bench harness for the Switchyard switch: load, model checks, relay baseline, grid"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How the kernel schedules loadgen's threads (and, in `grid`, the switch's, the hosts' and
    /// the relay's, which run in this process): batch (SCHED_BATCH, a thread that wakes does not
    /// preempt the one running) or normal (the kernel's default). `switch::process` says why
    /// batch is the default.
    #[arg(long, value_enum, default_value_t = Scheduling::Batch, global = true)]
    scheduling: Scheduling,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Drive a switch (or the relay) and report TPS, latency, response codes and mismatches.
    // Boxed: the largest arguments by far, parsed once.
    Run(Box<RunArgs>),
    /// Write issuer files with CSVs of many cards, a matching mix and a switch config.
    GenCards(GenArgs),
    /// Relay frames to a pool of backend connections, without parsing them (the baseline).
    Relay(RelayArgs),
    /// Answer every frame with its echo (the MTI's third digit raised), for the relay baseline.
    EchoBackend(EchoArgs),
    /// Run the standard grid in-process and write its table into docs/benchmarks.md.
    Grid(GridArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ExpectArg {
    /// A switch: answers are checked against the model.
    Switch,
    /// An echo backend (through the relay): answers must echo their requests.
    Echo,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The switch's (or relay's) acquirer listener, ip:port.
    #[arg(long, default_value = "127.0.0.1:8583")]
    target: String,
    /// The transaction mix (TOML).
    #[arg(long, default_value = DEFAULT_MIX)]
    mix: PathBuf,
    /// Connections (C).
    #[arg(long, short = 'c', default_value_t = 4)]
    connections: usize,
    /// Requests in flight per connection (P).
    #[arg(long, short = 'p', default_value_t = 4)]
    inflight: usize,
    /// Open loop at this many requests per second in total (default: closed loop).
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds of warmup before the measured window.
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// How long to wait for each answer, milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Acquiring institution id, field 32.
    #[arg(long, default_value = "100001")]
    acquirer: String,
    /// What answers: a switch (checked against the model) or an echo backend behind the relay.
    #[arg(long, value_enum, default_value = "switch")]
    expect: ExpectArg,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the latency percentile curve and throughput over time into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Mismatches and errors to show as examples.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// A keys file with the acquirer host's keys in clear (test keys), for `--mac-key` and
    /// `--pin-key` (e.g. the `keys.toml` of `gen-cards --security`).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// MAC every request and check every answer's MAC under this key id (default with `--keys`:
    /// `acquirer:<acquirer>:mac`).
    #[arg(long, requires = "keys")]
    mac_key: Option<String>,
    /// Encipher the mix's PINs under this zone PIN key id (default with `--keys`:
    /// `acquirer:<acquirer>:zpk`).
    #[arg(long, requires = "keys")]
    pin_key: Option<String>,
    /// Sample this process's resident set size every second (e.g. the switch's, for a soak),
    /// and report its CPU time per answer in the measured window.
    #[arg(long)]
    watch_pid: Option<u32>,
    /// Close each connection after this many requests and open a new one (with TLS, a new
    /// handshake), as terminals that dial per transaction do; its time counts in the latency of
    /// the requests that wait for it (closed loop: from when their slot came free). Default: keep
    /// every connection for the whole run.
    #[arg(long, value_name = "N")]
    requests_per_connection: Option<u64>,
    /// With TLS, never resume a session: every connection shakes hands in full (certificates
    /// and signatures both ways), as terminals that cannot resume do, and as every terminal does
    /// once after the switch restarts. With --requests-per-connection it measures full
    /// handshakes at their worst.
    #[arg(long, requires = "tls_ca")]
    tls_no_resumption: bool,
    #[command(flatten)]
    tls: simulators::tls_args::ClientTlsArgs,
}

#[derive(Args, Debug)]
struct GenArgs {
    /// Cards in total, shared evenly between the three issuers of the default configuration.
    #[arg(long)]
    count: u64,
    /// Output folder (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// Special cards of each kind (empty, lost, stolen) per issuer.
    #[arg(long, default_value_t = 10)]
    specials: u32,
    /// PINs on every card, PIN blocks in every mix entry, MAC and zone PIN keys (fresh test keys
    /// in `keys.toml`) for acquirer 100001 and the issuers' links.
    #[arg(long)]
    security: bool,
    /// Also a test PKI in `tls/` (a CA; the switch's and the issuer hosts' certificates; one
    /// client certificate per acquirer and one for the switch's issuer links) and
    /// `switch-tls.toml`, the switch config with TLS on both hops: the acquirer listener
    /// requiring client certificates, and the remote issuers' links.
    #[arg(long)]
    tls: bool,
}

#[derive(Args, Debug)]
struct RelayArgs {
    /// Where clients connect, ip:port.
    #[arg(long)]
    listen: String,
    /// The backend (e.g. `loadgen echo-backend`), ip:port.
    #[arg(long)]
    backend: String,
    /// Backend connections.
    #[arg(long, default_value_t = 1)]
    pool: usize,
    /// The floor ladder's step (docs/performance.md, "The floor ladder"): `raw` copies bytes,
    /// `codec` decodes and re-encodes every frame, `durable` also journals two records per
    /// transaction into `--journal` and answers only once the answer's record is durable.
    #[arg(long, value_enum, default_value_t = RelayStep::Raw)]
    work: RelayStep,
    /// The journal folder of `--work durable` (created if missing).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// The journal's sync policy with `--work durable`.
    #[arg(long, value_enum, default_value_t = GridSync::Always)]
    sync: GridSync,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RelayStep {
    Raw,
    Codec,
    Durable,
}

#[derive(Args, Debug)]
struct EchoArgs {
    /// Where the relay connects, ip:port.
    #[arg(long)]
    listen: String,
}

#[derive(Args, Debug)]
struct GridArgs {
    /// Seconds measured per run.
    #[arg(long, default_value_t = 5)]
    duration_s: u64,
    /// Seconds of warmup per run.
    #[arg(long, default_value_t = 1)]
    warmup_s: u64,
    /// Generated cards in total (half remote, half on-us).
    #[arg(long, default_value_t = 100_000)]
    cards: u64,
    /// The C×P points, e.g. `1x1,64x1,16x16,64x32`.
    #[arg(long, default_value = "1x1,64x1,16x16,64x32", value_parser = parse_points)]
    points: Points,
    /// Run the whole grid this many times, one round after another; each table then gives
    /// every figure's median over the rounds, with the lowest and highest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// The document to update between its grid markers.
    #[arg(long)]
    doc: Option<PathBuf>,
    /// Print the table only; leave the document alone.
    #[arg(long)]
    no_doc: bool,
    /// Write every run's results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The machine, for the document (default: this one's cores and memory, e.g. "2 cores,
    /// 24 GiB").
    #[arg(long)]
    machine: Option<String>,
    /// How long to wait for each answer, milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Journal sync policy of the switch and the issuer host: `always` is the standard grid;
    /// `none` shows what the fsyncs cost.
    #[arg(long, value_enum, default_value_t = GridSync::Always)]
    sync: GridSync,
    /// The switch's `[journal] group_commit_delay_us` (microseconds; 0, the standard grid, is
    /// off), also given to the ladder's relays; the issuer host keeps it off.
    #[arg(long, default_value_t = 0)]
    group_commit_delay_us: u32,
    /// Links from the switch to the remote issuer host.
    #[arg(long, default_value_t = 1)]
    links: u32,
    /// Also run remote and on-us with MACs and PIN blocks on, and write the cost of security
    /// next to the grid.
    #[arg(long)]
    security: bool,
    /// Also run remote and on-us with TLS on both hops (a generated test PKI), and write the
    /// cost of TLS next to the grid.
    #[arg(long)]
    tls: bool,
    /// Also run the floor ladder: the relay decoding and re-encoding every frame with the
    /// switch's codec, then also journaling two records per transaction; writes its table next
    /// to the grid.
    #[arg(long)]
    ladder: bool,
    /// BIN ranges added to the switch's routing table beside the generated issuers' own
    /// (single BINs from 700000 up, given to those issuers in turn), to measure routing at a
    /// real network's size; the cards used stay the same.
    #[arg(long, default_value_t = 0)]
    extra_bin_ranges: u32,
    /// Run without a metrics recorder (the switch's counters and histograms then cost nothing),
    /// to show what metrics cost; by default they are recorded as the `switch` binary does.
    #[arg(long)]
    no_metrics: bool,
    /// Run the load client on the servers' runtime, as grids before 2026-11-28 did, instead of
    /// on a runtime of its own; the CPU table then cannot tell the client's share from the
    /// servers'.
    #[arg(long)]
    shared_runtime: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum GridSync {
    Always,
    None,
}

impl From<GridSync> for JournalSync {
    fn from(s: GridSync) -> JournalSync {
        match s {
            GridSync::Always => JournalSync::Always,
            GridSync::None => JournalSync::None,
        }
    }
}

#[derive(Clone, Debug)]
struct Points(Vec<(usize, usize)>);

fn parse_points(s: &str) -> Result<Points, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (c, p) = part
            .trim()
            .split_once(['x', 'X', '×'])
            .ok_or_else(|| format!("{part:?}: expected CxP, e.g. 16x16"))?;
        let c: usize = c
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: C is not a number"))?;
        let p: usize = p
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: P is not a number"))?;
        if c == 0 || p == 0 {
            return Err(format!("{part:?}: C and P must be at least 1"));
        }
        out.push((c, p));
    }
    Ok(Points(out))
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("loadgen: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    simulators::log_to_stderr("warn");
    // Before anything is allocated in bulk: see switch::process for why.
    switch::process::disable_transparent_huge_pages_or_warn();
    // Before the runtime starts its threads, which inherit it.
    switch::process::set_scheduling_or_warn(cli.scheduling);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        match cli.command {
            Command::Run(a) => run_cmd(*a).await,
            Command::GenCards(a) => gen_cmd(a),
            Command::Relay(a) => relay_cmd(a).await,
            Command::EchoBackend(a) => echo_cmd(a).await,
            Command::Grid(a) => grid_cmd(a, cli.scheduling).await,
        }
    })
}

async fn run_cmd(a: RunArgs) -> ExitCode {
    // Before the run, not after a soak of minutes.
    if let Some(path) = &a.json
        && let Err(e) = report::check_output_path(path, "--json")
    {
        return usage(e);
    }
    if let Some(path) = &a.plot
        && let Err(e) = plot::check_svg_path(path)
    {
        return usage(e);
    }
    let today = SystemClock.today();
    let mix = match Mix::load(&a.mix, today) {
        Ok(m) => Arc::new(m),
        Err(e) if a.mix == std::path::Path::new(DEFAULT_MIX) && !a.mix.exists() => {
            return usage(format!(
                "{e} (the default mix is relative to the repository root, and it is for the \
                 default config's test cards: against generated cards pass their --mix, e.g. \
                 OUT/mix.toml from `loadgen gen-cards --out OUT`)"
            ));
        }
        Err(e) => return usage(e),
    };
    let (stop, ctrl_c) = stop_on_ctrl_c();
    let opts = RunOptions {
        target: a.target.clone(),
        connections: a.connections,
        inflight: a.inflight,
        rate: a.rate,
        warmup: Duration::from_secs(a.warmup_s),
        duration: Duration::from_secs(a.duration_s),
        timeout: Duration::from_millis(a.timeout_ms),
        acquirer: a.acquirer.clone(),
        expect: match a.expect {
            ExpectArg::Switch => Expect::Switch,
            ExpectArg::Echo => Expect::Echo,
        },
        progress: !a.quiet,
        label: String::new(),
        samples: a.samples,
        keys: match &a.keys {
            None => Arc::new(TerminalKeys::none()),
            Some(path) => {
                let mac = a
                    .mac_key
                    .clone()
                    .unwrap_or_else(|| format!("acquirer:{}:mac", a.acquirer));
                let zpk = a
                    .pin_key
                    .clone()
                    .unwrap_or_else(|| format!("acquirer:{}:zpk", a.acquirer));
                match terminal_keys(path, Some(&mac), Some(&zpk)) {
                    Ok(k) => Arc::new(k),
                    Err(e) => return usage(format!("--keys: {e}")),
                }
            }
        },
        watch_pid: a.watch_pid,
        requests_per_connection: a.requests_per_connection,
        tls_resumption: !a.tls_no_resumption,
        tls: match a.tls.client_tls(&a.target) {
            Ok(t) => t,
            Err(e) => return usage(e),
        },
        stop: Some(stop.clone()),
    };
    if !a.quiet {
        eprintln!(
            "mix {} ({} transactions, {} card sets):",
            mix.origin,
            mix.txns.len(),
            mix.sets.len()
        );
        for line in mix.describe(today) {
            eprintln!("  {line}");
        }
    }
    let report = run(&opts, mix).await;
    // A Ctrl-C from here on has nothing to drain: it must not say it does.
    ctrl_c.abort();
    let report = match report {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    print!("{}", report.to_text());
    if let Some(path) = &a.json
        && let Err(e) = report.write_json(path)
    {
        return usage(e);
    }
    if let Some(path) = &a.plot
        && let Err(e) = plot::write_svg(&report, path)
    {
        return usage(e);
    }
    if !report.is_clean() {
        ExitCode::from(EXIT_UNCLEAN)
    } else if report.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

/// This machine's cores and memory, as the grid's document names them: "2 cores, 24 GiB".
fn this_machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| (kib as f64 / (1024.0 * 1024.0)).round() as u64);
    match gib {
        Some(g) => format!("{cores} cores, {g} GiB"),
        None => format!("{cores} cores"),
    }
}

/// A token the first Ctrl-C cancels, so the run stops early and still reports (and writes its
/// `--json` and `--plot`): a soak stopped after minutes keeps what it measured. A second Ctrl-C
/// quits at once.
fn stop_on_ctrl_c() -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling here: Ctrl-C ends the process as usual.
            return;
        }
        eprintln!(
            "\nloadgen: interrupted; draining what is in flight and reporting what was measured \
             (Ctrl-C again to quit at once)"
        );
        cancel.cancel();
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    (token, listener)
}

fn gen_cmd(a: GenArgs) -> ExitCode {
    let started = std::time::Instant::now();
    let g = match generate(&GenOptions {
        count: a.count,
        out: a.out,
        issuers: default_issuers(),
        specials: a.specials,
        security: a.security,
        tls: a.tls,
    }) {
        Ok(g) => g,
        Err(e) => return usage(e),
    };
    println!(
        "wrote {} cards in {:.1} s to {}",
        thousands(g.issuers.iter().map(|i| i.cards).sum()),
        started.elapsed().as_secs_f64(),
        g.out.display()
    );
    for i in &g.issuers {
        let at = i
            .listen
            .as_deref()
            .map(|l| format!("remote, issuer-sim listens on {l}"))
            .unwrap_or_else(|| "on-us".into());
        println!(
            "  {:<10} BIN {}  {:>11} cards  {} ({at})  mix {}",
            i.id,
            i.bin,
            thousands(i.cards),
            i.file.display(),
            i.mix.display()
        );
    }
    println!("  mix over all issuers: {}", g.mix.display());
    if let (Some(pki), Some(config)) = (&g.tls, &g.tls_switch_config) {
        println!(
            "  switch config, TLS:   {} (the listener requires client certificates)",
            config.display()
        );
        println!(
            "  test PKI:             --tls-ca {} (switch certificate {})",
            pki.ca.display(),
            pki.server_cert.display()
        );
        for c in &pki.clients {
            println!(
                "    acquirer {}: --tls-cert {} --tls-key {} ({})",
                c.acquirer,
                c.cert.display(),
                c.key.display(),
                c.identity
            );
        }
    }
    println!(
        "  switch config:        {} (its header says how to start everything)",
        g.switch_config.display()
    );
    ExitCode::SUCCESS
}

async fn relay_cmd(a: RelayArgs) -> ExitCode {
    let work = match (a.work, &a.journal) {
        (RelayStep::Raw, None) => RelayWork::Raw,
        (RelayStep::Codec, None) => RelayWork::Codec,
        (RelayStep::Durable, Some(dir)) => {
            let opts = JournalOptions {
                sync: a.sync.into(),
                ..JournalOptions::default()
            };
            match FileJournal::open(dir, opts) {
                Ok((j, _)) => RelayWork::Durable(Arc::new(j)),
                Err(e) => return usage(format!("relay: {e}")),
            }
        }
        (RelayStep::Durable, None) => return usage("--work durable needs --journal DIR"),
        (_, Some(_)) => return usage("--journal is only for --work durable"),
    };
    if a.sync == GridSync::None && a.work != RelayStep::Durable {
        return usage("--sync is only for --work durable");
    }
    let relay = match Relay::start(&RelayOptions {
        listen: a.listen,
        backend: a.backend.clone(),
        pool: a.pool,
        work,
    })
    .await
    {
        Ok(r) => r,
        Err(e) => return usage(format!("relay: {e}")),
    };
    eprintln!(
        "relay listening on {}, forwarding to {} over {} connection(s); Ctrl-C stops",
        relay.local_addr(),
        a.backend,
        a.pool
    );
    let _ = tokio::signal::ctrl_c().await;
    let s = relay.stats();
    use std::sync::atomic::Ordering::Relaxed;
    eprintln!(
        "relay: {} frames in, {} answers out, {} unsolicited, {} for departed clients, {} reconnects, {} refused by the ladder step",
        s.requests.load(Relaxed),
        s.answers.load(Relaxed),
        s.unsolicited.load(Relaxed),
        s.client_gone.load(Relaxed),
        s.reconnects.load(Relaxed),
        s.refused.load(Relaxed)
    );
    relay.shutdown().await;
    ExitCode::SUCCESS
}

async fn echo_cmd(a: EchoArgs) -> ExitCode {
    let echo = match EchoBackend::start(&a.listen).await {
        Ok(e) => e,
        Err(e) => return usage(format!("echo backend: {e}")),
    };
    eprintln!(
        "echo backend listening on {}; Ctrl-C stops",
        echo.local_addr()
    );
    let _ = tokio::signal::ctrl_c().await;
    echo.shutdown().await;
    ExitCode::SUCCESS
}

/// The grid's load client runtime. Dropped inside the main runtime's `block_on`, where a plain
/// drop would panic (it blocks to join its threads), so it shuts down in the background.
struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl ClientRuntime {
    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle().clone())
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

async fn grid_cmd(a: GridArgs, scheduling: Scheduling) -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // The echoed command reproduces the run whatever the default becomes.
    if !args.iter().any(|x| x.starts_with("--scheduling")) {
        args.push(format!("--scheduling {}", scheduling.as_str()));
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "grid: this is a debug build; its figures are far below a release build's \
             (cargo run --release -p simulators --bin loadgen -- grid)"
        );
    }
    // The switch in production records every metric (its exporter is always on), so the grid
    // does too: a recorder without the HTTP listener, never scraped.
    if !a.no_metrics
        && let Err(e) = switch::metrics::install_recorder()
    {
        return usage(format!("metrics recorder: {e}"));
    }
    let mut opts = GridOptions {
        client: None,
        points: a.points.0,
        warmup: Duration::from_secs(a.warmup_s),
        duration: Duration::from_secs(a.duration_s),
        cards: a.cards,
        timeout: Duration::from_millis(a.timeout_ms),
        progress: true,
        // The document names the build that measured: a debug build's figures are not the
        // release build's, and must not read as if they were.
        command: format!(
            "cargo run{} -p simulators --bin loadgen -- {}",
            if cfg!(debug_assertions) {
                ""
            } else {
                " --release"
            },
            echoed_args(&args).join(" ")
        ),
        machine: a.machine.unwrap_or_else(this_machine),
        stack: StackOptions {
            sync: a.sync.into(),
            group_commit_delay_us: a.group_commit_delay_us,
            remote_links: a.links.max(1),
            extra_bin_ranges: a.extra_bin_ranges,
            ..StackOptions::default()
        },
        security: a.security,
        tls: a.tls,
        ladder: a.ladder,
        metrics: !a.no_metrics,
        rounds: a.rounds.into(),
    };
    if opts.duration.is_zero() {
        return usage("--duration-s must be at least 1");
    }
    let doc = a.doc.unwrap_or_else(default_doc);
    if !a.no_doc
        && !doc
            .parent()
            .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir())
    {
        return usage(format!(
            "{}: its folder does not exist (run from the repository root, or pass --doc or --no-doc)",
            doc.display()
        ));
    }
    if let Some(path) = &a.json
        && let Err(e) = report::check_output_path(path, "--json")
    {
        return usage(e);
    }
    // Once the arguments are known to be good: its threads are no use to a usage error.
    let client = if a.shared_runtime {
        None
    } else {
        match tokio::runtime::Builder::new_multi_thread()
            .thread_name(CLIENT_THREAD)
            .enable_all()
            .build()
        {
            Ok(rt) => Some(ClientRuntime(Some(rt))),
            Err(e) => return usage(format!("cannot start the load client's runtime: {e}")),
        }
    };
    opts.client = client.as_ref().and_then(ClientRuntime::handle);
    let report = match run_grid(&opts).await {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let section = markdown(&report);
    println!("{section}");
    if let Some(path) = &a.json
        && let Err(e) = write_json(path, &report)
    {
        return usage(e);
    }
    let security = security_markdown(&report);
    let tls = tls_markdown(&report);
    let ladder = ladder_markdown(&report);
    for t in [&security, &tls, &ladder].into_iter().flatten() {
        println!("{t}");
    }
    if !a.no_doc {
        if let Err(e) = update_doc(&doc, &section) {
            return usage(e);
        }
        let extra = [
            (
                &security,
                (SECURITY_START_MARKER, SECURITY_END_MARKER),
                "--security",
            ),
            (&tls, (TLS_START_MARKER, TLS_END_MARKER), "--tls"),
            (
                &ladder,
                (LADDER_START_MARKER, LADDER_END_MARKER),
                "--ladder",
            ),
        ];
        for (t, markers, flag) in extra {
            // A section this run did not measure stays, marked as older than the grid.
            let written = match t {
                Some(t) => update_doc_between(&doc, markers, t),
                None => mark_stale_between(&doc, markers, &stale_note(&report, flag)),
            };
            if let Err(e) = written {
                return usage(e);
            }
        }
        eprintln!("grid: table written to {}", doc.display());
    }
    let clean = report
        .rows
        .iter()
        .flat_map(GridRow::runs)
        .all(|rep| rep.is_clean());
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNCLEAN)
    }
}
