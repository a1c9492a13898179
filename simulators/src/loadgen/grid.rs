//! `loadgen grid`: the standard grid in one command.
//!
//! In one process on 127.0.0.1 it generates cards into a temporary folder
//! ([`super::gencards::stack_issuers`]: North Bank, credit, remote; Metro Pay, prepaid, on-us),
//! starts the stack ([`super::stack::Stack`]: the switch and North Bank's issuer host, journals
//! with `sync = "always"`), and the relay baseline ([`super::relay`]: `loadgen relay` with one
//! backend connection to `loadgen echo-backend`). Then, for each C×P of the grid (default 1×1,
//! 64×1, 16×16, 64×32), it runs a closed-loop load three times, back to back: through the relay,
//! through the switch to the remote issuer (North Bank's mix), and through the switch on-us
//! (Metro Pay's mix). Finally it writes the table between `<!-- grid:start -->` and
//! `<!-- grid:end -->` in `docs/benchmarks.md` (the section is appended when the markers are
//! absent; nothing else in the file changes).
//!
//! With `--rounds N` ([`GridOptions::rounds`]) the whole grid runs N times, one round after
//! another, and every table gives each figure as the median of its point's N runs, with the
//! lowest and highest ([`Point::cell`]). A ratio is taken within a round, whose runs ran back to
//! back, and then the median of those is given: on a machine whose speed moves within minutes,
//! that is the figure the machine's drift disturbs least.
//!
//! With `--security` ([`GridOptions::security`]) a second stack runs beside the first on cards
//! generated with `gen-cards --security`: acquirer 100001 MACs every request (ANSI X9.19), every
//! purchase, preauthorization and inquiry carries a PIN block under its zone PIN key, the switch
//! checks the MAC, translates the PIN block to the issuer's key (remote) or verifies it (on-us),
//! and the remote link is MACed both ways. Each point then also runs remote and on-us against it,
//! and a second table (between `<!-- grid-security:start -->` and `<!-- grid-security:end -->`)
//! sets those figures next to the ones without security from the same run.
//!
//! With `--tls` ([`GridOptions::tls`]) another stack runs on cards generated with `gen-cards
//! --tls`: both hops on TLS with the generated test PKI (acquirer 100001 presents its client
//! certificate to the switch, the switch its link certificate to North Bank's host). Each point
//! then also runs remote and on-us over TLS, in a table of their own (between
//! `<!-- grid-tls:start -->` and `<!-- grid-tls:end -->`).
//!
//! A section beside the grid (security, TLS, the floor ladder) that a run without its flag
//! leaves in the document is marked under its heading as older than the grid ([`stale_note`]),
//! since its text says it comes from the same run as the grid above.
//!
//! The load client runs on a tokio runtime of its own when the caller gives one
//! ([`GridOptions::client`]; `loadgen grid` does unless `--shared-runtime`): its threads carry a
//! name of their own ([`CLIENT_THREAD`]), so each run's CPU time splits into the client's share
//! and the servers' (`super::runner::client_threads_cpu`). The client's share is in both terms
//! of every TPS ratio, which pulls each towards 1; the servers' ratio, their CPU per answer set
//! against each other, is the one the client does not flatter.
//!
//! The relay and the remote path both cross two TCP hops (client → relay or switch → echo
//! backend or issuer host), so "remote ÷ relay" is what the switch's ISO 8583 work, routing,
//! journaling and the issuer's decision cost next to moving the same frames.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use switch::clock::{Clock, SystemClock};
use switch::config::JournalSync;
use switch::journal::{FileJournal, JournalOptions};

use switch::client::{PinSetup, TerminalKeys};
use switch::security::{KeyId, KeyIdError, KeysFile};

use super::gencards::{ACQUIRER, GenOptions, Generated, GeneratedIssuer, generate, stack_issuers};
use super::ladder::RelayWork;
use super::mix::Mix;
use super::relay::{EchoBackend, Relay, RelayOptions};
use super::report::RunReport;
use super::runner::{CLIENT_THREAD, Expect, RunOptions, run};
use super::stack::{Stack, StackOptions};
use super::thousands;

/// The marker lines of the grid's section in the benchmarks document.
pub const START_MARKER: &str = "<!-- grid:start -->";
pub const END_MARKER: &str = "<!-- grid:end -->";
/// The marker lines of the cost-of-security section.
pub const SECURITY_START_MARKER: &str = "<!-- grid-security:start -->";
pub const SECURITY_END_MARKER: &str = "<!-- grid-security:end -->";
/// The marker lines of the cost-of-TLS section.
pub const TLS_START_MARKER: &str = "<!-- grid-tls:start -->";
pub const TLS_END_MARKER: &str = "<!-- grid-tls:end -->";
/// The marker lines of the floor ladder's section.
pub const LADDER_START_MARKER: &str = "<!-- grid-ladder:start -->";
pub const LADDER_END_MARKER: &str = "<!-- grid-ladder:end -->";

/// How to run the grid.
#[derive(Debug, Clone)]
pub struct GridOptions {
    /// (connections, in flight per connection).
    pub points: Vec<(usize, usize)>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Generated cards in total (half North Bank, half Metro Pay).
    pub cards: u64,
    pub timeout: Duration,
    /// Progress lines and each run's summary on stderr.
    pub progress: bool,
    /// For the document: the command that ran the grid.
    pub command: String,
    /// For the document: the machine.
    pub machine: String,
    /// The switch and issuer hosts: journal sync policy and remote links. The standard grid is
    /// the default (`sync = "always"`, one link); the others are for finding where time goes.
    pub stack: StackOptions,
    /// Also run remote and on-us with MACs and PIN blocks on, on a second stack.
    pub security: bool,
    /// Also run remote and on-us with TLS on both hops, on a stack of its own.
    pub tls: bool,
    /// Also run the floor ladder ([`super::ladder`]): the relay with the codec, then with the
    /// codec and a journal.
    pub ladder: bool,
    /// Whether the process records metrics (the caller installs the recorder: it is
    /// process-wide); the table says which.
    pub metrics: bool,
    /// The runtime the load client runs on, when it has one of its own (threads named
    /// [`CLIENT_THREAD`]): the CPU table then tells the client's time from the servers'. `None`
    /// runs the client on the caller's runtime, beside the servers.
    pub client: Option<tokio::runtime::Handle>,
    /// How many times the whole grid runs, one round after another (at least 1). With more
    /// than one, every table gives each figure's median over the rounds and its range
    /// ([`Point::cell`]): on a machine whose speed moves within minutes, one run per point can
    /// land on a fast or a slow minute, and the range shows how far that went.
    pub rounds: usize,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            points: vec![(1, 1), (64, 1), (16, 16), (64, 32)],
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            cards: 100_000,
            timeout: Duration::from_secs(5),
            progress: true,
            command: "cargo run --release -p simulators --bin loadgen -- grid".into(),
            machine: "2 cores, 24 GiB".into(),
            stack: StackOptions::default(),
            security: false,
            tls: false,
            ladder: false,
            // The caller installs the recorder (it is process-wide); say so only once it has.
            metrics: false,
            client: None,
            rounds: 1,
        }
    }
}

/// One C×P of the grid.
#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    pub connections: usize,
    pub inflight: usize,
    /// Which round of the grid ran this row, from 1 ([`GridOptions::rounds`]).
    pub round: usize,
    pub relay: RunReport,
    pub remote: RunReport,
    pub on_us: RunReport,
    /// With `--security`: remote and on-us with MACs and PIN blocks.
    pub remote_secure: Option<RunReport>,
    pub on_us_secure: Option<RunReport>,
    /// With `--tls`: remote and on-us with TLS on both hops.
    pub remote_tls: Option<RunReport>,
    pub on_us_tls: Option<RunReport>,
    /// With `--ladder`: the relay decoding and re-encoding every frame, then also journaling.
    pub relay_codec: Option<RunReport>,
    pub relay_durable: Option<RunReport>,
    /// With `--ladder`: as `relay_durable`, in front of an echo backend that journals too.
    pub relay_durable2: Option<RunReport>,
    /// The durable step's journal records per group commit (warmup included).
    pub ladder_records_per_commit: Option<f64>,
}

impl GridRow {
    /// Every run of the row, those beside the grid's three included.
    pub fn runs(&self) -> impl Iterator<Item = &RunReport> {
        [&self.relay, &self.remote, &self.on_us].into_iter().chain(
            [
                &self.remote_secure,
                &self.on_us_secure,
                &self.remote_tls,
                &self.on_us_tls,
                &self.relay_codec,
                &self.relay_durable,
                &self.relay_durable2,
            ]
            .into_iter()
            .flatten(),
        )
    }
}

/// The whole grid.
#[derive(Debug, Clone, Serialize)]
pub struct GridReport {
    /// UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// `always` or `none`: the journals' sync policy.
    pub sync: &'static str,
    /// The switch's `[journal] group_commit_delay_us` (0: off, the standard grid).
    pub group_commit_delay_us: u32,
    /// Links from the switch to the remote issuer host.
    pub remote_links: u32,
    /// Whether the switch's metrics were recorded, as the `switch` binary records them.
    pub metrics: bool,
    /// Whether the load client ran on a runtime of its own ([`GridOptions::client`]).
    pub client_runtime: bool,
    /// How many times the whole grid ran ([`GridOptions::rounds`]); `rows` holds every round's.
    pub rounds: usize,
    pub command: String,
    pub machine: String,
    pub cards: u64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub rows: Vec<GridRow>,
}

/// Why the grid stopped.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("grid: {0}")]
    Setup(String),
    #[error("grid: {0}")]
    Run(#[from] super::runner::RunError),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> GridError + '_ {
    move |e| GridError::Setup(format!("{what}: {e}"))
}

/// Runs the grid (see the module documentation) and returns its results; writing the document
/// is [`update_doc`].
pub async fn run_grid(opts: &GridOptions) -> Result<GridReport, GridError> {
    if opts.points.is_empty() {
        return Err(GridError::Setup("no C×P points to run".into()));
    }
    if opts.rounds == 0 {
        return Err(GridError::Setup("the grid needs at least one round".into()));
    }
    // A point's rows are found by their C×P, so each may be listed once.
    for (i, pt) in opts.points.iter().enumerate() {
        if opts.points[..i].contains(pt) {
            return Err(GridError::Setup(format!(
                "point {}×{} is listed twice (--rounds runs a point again)",
                pt.0, pt.1
            )));
        }
    }
    let cards_dir = tempfile::Builder::new()
        .prefix("loadgen-grid-cards-")
        .tempdir()
        .map_err(setup("temporary folder"))?;
    let plain = Side::generate(opts, cards_dir.path(), Variant::Plain)?;
    let secure = if opts.security {
        Some(Side::generate(opts, cards_dir.path(), Variant::Security)?)
    } else {
        None
    };
    let tls = if opts.tls {
        Some(Side::generate(opts, cards_dir.path(), Variant::Tls)?)
    } else {
        None
    };
    let (remote, on_us) = (&plain.remote, &plain.on_us);
    let (remote_mix, on_us_mix) = (&plain.remote_mix, &plain.on_us_mix);

    let stack = Stack::start(&plain.data, &opts.stack)
        .await
        .map_err(setup("stack"))?;
    // A stack beside the plain one, when that side was generated.
    let beside_stack = async |side: &Option<Side>, what: &'static str| match side {
        Some(side) => Stack::start(&side.data, &opts.stack)
            .await
            .map(Some)
            .map_err(setup(what)),
        None => Ok(None),
    };
    let secure_stack = beside_stack(&secure, "stack with security").await?;
    let tls_stack = beside_stack(&tls, "stack with TLS").await?;
    let echo = EchoBackend::start("127.0.0.1:0")
        .await
        .map_err(setup("echo backend"))?;
    let relay = Relay::start(&RelayOptions {
        listen: "127.0.0.1:0".into(),
        backend: echo.local_addr().to_string(),
        pool: 1,
        work: Default::default(),
    })
    .await
    .map_err(setup("relay"))?;
    let ladder = if opts.ladder {
        let dir = cards_dir.path().join("ladder");
        Some(
            LadderStack::start(
                &dir,
                opts.stack.sync,
                opts.stack.group_commit_delay_us,
                &echo.local_addr().to_string(),
            )
            .await?,
        )
    } else {
        None
    };
    if opts.progress {
        eprintln!(
            "grid: switch {} (remote {} via its issuer host, on-us {}), relay {} -> echo {}; {} cards",
            stack.addr(),
            remote.id,
            on_us.id,
            relay.local_addr(),
            echo.local_addr(),
            thousands(opts.cards)
        );
    }

    let mut rows = Vec::with_capacity(opts.points.len() * opts.rounds);
    // Round after round of the whole grid, rather than each point's rounds back to back, so
    // that a point's runs spread over the grid's whole time, as the machine's speed does.
    let plan = (1..=opts.rounds).flat_map(|round| {
        opts.points
            .iter()
            .enumerate()
            .map(move |(i, &pt)| (round, i, pt))
    });
    let result: Result<(), GridError> = async {
        for (round, i, (c, p)) in plan {
            if opts.progress && opts.rounds > 1 && i == 0 {
                eprintln!("grid: round {round} of {}", opts.rounds);
            }
            let round_tag = if opts.rounds > 1 {
                format!(" (round {round})")
            } else {
                String::new()
            };
            let base = RunOptions {
                connections: c,
                inflight: p,
                rate: None,
                warmup: opts.warmup,
                duration: opts.duration,
                timeout: opts.timeout,
                progress: opts.progress,
                ..RunOptions::default()
            };
            // `side` gives the acquirer's keys (none on the plain stack and the relay) and its
            // client certificate (only on the TLS stack).
            let go =
                async |label: &str, target: String, expect: Expect, mix: &Arc<Mix>, side: &Side| {
                    let tls = match &side.data.tls {
                        Some(pki) => Some(
                            pki.client_tls(ACQUIRER, &target)
                                .map_err(setup("client TLS"))?,
                        ),
                        None => None,
                    };
                    let o = RunOptions {
                        label: format!("{label} {c}x{p}{round_tag}"),
                        target,
                        expect,
                        keys: Arc::clone(&side.keys),
                        tls,
                        ..base.clone()
                    };
                    let mix = Arc::clone(mix);
                    let r = match &opts.client {
                        Some(client) => {
                            match client.spawn(async move { run(&o, mix).await }).await {
                                Ok(r) => r?,
                                // A panic in the run is the run's, as it would be inline.
                                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                                Err(e) => {
                                    return Err(GridError::Setup(format!("load client task: {e}")));
                                }
                            }
                        }
                        None => run(&o, mix).await?,
                    };
                    if opts.progress {
                        eprint!("{}", r.to_text());
                    }
                    Ok::<RunReport, GridError>(r)
                };
            let relay_r = go(
                "relay",
                relay.local_addr().to_string(),
                Expect::Echo,
                remote_mix,
                &plain,
            )
            .await?;
            let mut ladder_r = Vec::with_capacity(3);
            let mut commits = None;
            for (name, r, counted) in ladder.iter().flat_map(|l| l.steps.iter()) {
                let target = r.local_addr().to_string();
                let before = counted.as_ref().map(|j| j.stats());
                ladder_r.push(go(name, target, Expect::Echo, remote_mix, &plain).await?);
                if let (Some(j), Some(b)) = (counted, before) {
                    let a = j.stats();
                    let batches = (a.batches - b.batches).max(1);
                    commits = Some((a.records - b.records) as f64 / batches as f64);
                }
            }
            let mut ladder_r = ladder_r.into_iter();
            let remote_r = go(
                "remote",
                stack.addr().to_string(),
                Expect::Switch,
                remote_mix,
                &plain,
            )
            .await?;
            let on_us_r = go(
                "on-us",
                stack.addr().to_string(),
                Expect::Switch,
                on_us_mix,
                &plain,
            )
            .await?;
            // Remote, then on-us, against a stack beside the plain one (security, TLS), when
            // the grid runs it.
            let beside = async |tag: &str, side: &Option<Side>, st: &Option<Stack>| {
                let (Some(side), Some(st)) = (side, st) else {
                    return Ok::<_, GridError>((None, None));
                };
                let target = st.addr().to_string();
                let remote = go(
                    &format!("remote+{tag}"),
                    target.clone(),
                    Expect::Switch,
                    &side.remote_mix,
                    side,
                )
                .await?;
                let on_us = go(
                    &format!("on-us+{tag}"),
                    target,
                    Expect::Switch,
                    &side.on_us_mix,
                    side,
                )
                .await?;
                Ok((Some(remote), Some(on_us)))
            };
            let (remote_secure, on_us_secure) = beside("sec", &secure, &secure_stack).await?;
            let (remote_tls, on_us_tls) = beside("tls", &tls, &tls_stack).await?;
            rows.push(GridRow {
                connections: c,
                inflight: p,
                round,
                relay: relay_r,
                remote: remote_r,
                on_us: on_us_r,
                remote_secure,
                on_us_secure,
                remote_tls,
                on_us_tls,
                relay_codec: ladder_r.next(),
                relay_durable: ladder_r.next(),
                relay_durable2: ladder_r.next(),
                ladder_records_per_commit: commits,
            });
        }
        Ok(())
    }
    .await;
    relay.shutdown().await;
    if let Some(l) = ladder {
        l.shutdown().await;
    }
    echo.shutdown().await;
    stack.shutdown().await;
    for st in [secure_stack, tls_stack].into_iter().flatten() {
        st.shutdown().await;
    }
    drop(cards_dir);
    result?;
    Ok(GridReport {
        date: SystemClock.today().to_string(),
        sync: match opts.stack.sync {
            JournalSync::Always => "always",
            JournalSync::None => "none",
        },
        group_commit_delay_us: opts.stack.group_commit_delay_us,
        remote_links: opts.stack.remote_links,
        metrics: opts.metrics,
        client_runtime: opts.client.is_some(),
        rounds: opts.rounds,
        command: opts.command.clone(),
        machine: opts.machine.clone(),
        cards: opts.cards,
        warmup_s: opts.warmup.as_secs_f64(),
        duration_s: opts.duration.as_secs_f64(),
        rows,
    })
}

/// The floor ladder's servers ([`super::ladder`]): a relay per step, the last one in front of an
/// echo backend that journals too, each journal in a folder of its own.
struct LadderStack {
    /// (label, relay, the journal whose group commits the table counts), in ladder order.
    steps: Vec<(&'static str, Relay, Option<Arc<FileJournal>>)>,
    durable_echo: EchoBackend,
}

impl LadderStack {
    /// `delay_us` is the switch's `group_commit_delay_us`, given to the relays' journals (which
    /// stand for the switch's) and not to the durable echo's (which stands for the issuer host's).
    async fn start(
        dir: &Path,
        sync: JournalSync,
        delay_us: u32,
        echo: &str,
    ) -> Result<LadderStack, GridError> {
        let open = |name: &str| -> Result<Arc<FileJournal>, GridError> {
            let delay = if name == "echo" { 0 } else { delay_us };
            let opts = JournalOptions {
                sync,
                group_commit_delay: std::time::Duration::from_micros(delay.into()),
                ..JournalOptions::default()
            };
            let (j, _) =
                FileJournal::open(&dir.join(name), opts).map_err(setup("ladder journal"))?;
            Ok(Arc::new(j))
        };
        let journal = open("relay")?;
        let durable_echo =
            EchoBackend::start_with("127.0.0.1:0", RelayWork::Durable(open("echo")?))
                .await
                .map_err(setup("ladder echo backend"))?;
        let durable_echo_addr = durable_echo.local_addr().to_string();
        let plan = [
            ("relay+codec", RelayWork::Codec, echo, None),
            (
                "relay+codec+journal",
                RelayWork::Durable(Arc::clone(&journal)),
                echo,
                Some(journal),
            ),
            (
                "relay+2 journals",
                RelayWork::Durable(open("relay-2")?),
                durable_echo_addr.as_str(),
                None,
            ),
        ];
        let mut steps = Vec::with_capacity(plan.len());
        for (name, work, backend, counted) in plan {
            let r = Relay::start(&RelayOptions {
                listen: "127.0.0.1:0".into(),
                backend: backend.to_owned(),
                pool: 1,
                work,
            })
            .await
            .map_err(setup("ladder relay"))?;
            steps.push((name, r, counted));
        }
        Ok(LadderStack {
            steps,
            durable_echo,
        })
    }

    async fn shutdown(self) {
        for (_, r, _) in self.steps {
            r.shutdown().await;
        }
        self.durable_echo.shutdown().await;
    }
}

/// The cards, mixes and acquirer keys of one stack of the grid.
struct Side {
    data: Generated,
    remote: GeneratedIssuer,
    on_us: GeneratedIssuer,
    remote_mix: Arc<Mix>,
    on_us_mix: Arc<Mix>,
    /// With security: acquirer 100001's MAC key and PIN pad, from the generated keys file.
    keys: Arc<TerminalKeys>,
}

/// Which stack a [`Side`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    /// MACs and PIN blocks (`gen-cards --security`).
    Security,
    /// TLS on both hops (`gen-cards --tls`).
    Tls,
}

impl Side {
    fn generate(opts: &GridOptions, dir: &Path, variant: Variant) -> Result<Side, GridError> {
        let out = dir.join(match variant {
            Variant::Plain => "plain",
            Variant::Security => "secure",
            Variant::Tls => "tls",
        });
        let data = generate(&GenOptions {
            count: opts.cards,
            out,
            issuers: stack_issuers(),
            specials: 10,
            security: variant == Variant::Security,
            tls: variant == Variant::Tls,
        })
        .map_err(setup("cards"))?;
        let today = SystemClock.today();
        let (Some(remote), Some(on_us)) = (
            data.issuers.iter().find(|g| g.listen.is_some()).cloned(),
            data.issuers.iter().find(|g| g.listen.is_none()).cloned(),
        ) else {
            return Err(GridError::Setup(
                "the grid needs a remote and an on-us issuer".into(),
            ));
        };
        let remote_mix = Arc::new(Mix::load(&remote.mix, today).map_err(setup("remote mix"))?);
        let on_us_mix = Arc::new(Mix::load(&on_us.mix, today).map_err(setup("on-us mix"))?);
        let keys = match &data.keys {
            Some(path) => Arc::new(
                terminal_keys(
                    path,
                    Some(&format!("acquirer:{ACQUIRER}:mac")),
                    Some(&format!("acquirer:{ACQUIRER}:zpk")),
                )
                .map_err(setup("acquirer keys"))?,
            ),
            None => Arc::new(TerminalKeys::none()),
        };
        Ok(Side {
            data,
            remote,
            on_us,
            remote_mix,
            on_us_mix,
            keys,
        })
    }
}

/// An acquirer host's MAC key (`mac`) and a PIN pad under a zone PIN key (`zpk`), both key ids
/// of the keys file at `path` (e.g. `acquirer:100001:mac`).
pub fn terminal_keys(
    path: &Path,
    mac: Option<&str>,
    zpk: Option<&str>,
) -> Result<TerminalKeys, String> {
    let keys = KeysFile::load(path).map_err(|e| e.to_string())?;
    let id = |text: &str| -> Result<KeyId, String> {
        text.parse().map_err(|e: KeyIdError| format!("{text}: {e}"))
    };
    let mac = mac.map(id).transpose()?;
    let pin = match zpk {
        Some(z) => PinSetup::Zone(id(z)?),
        None => PinSetup::None,
    };
    TerminalKeys::from_keys_file(&keys, mac.as_ref(), &pin).map_err(|e| e.to_string())
}

/// The rounds of one C×P ([`GridOptions::rounds`]), in the order they ran.
pub struct Point<'a> {
    pub connections: usize,
    pub inflight: usize,
    pub rounds: Vec<&'a GridRow>,
}

/// The grid's own arguments as the document echoes them: without the options that only say
/// where results go (`--json`, `--doc`, with their paths), which do not change what is measured
/// and would otherwise put a local path into the committed table.
pub fn echoed_args(args: &[String]) -> Vec<String> {
    const OUTPUT_ONLY: [&str; 2] = ["--json", "--doc"];
    let mut out = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for a in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if OUTPUT_ONLY.contains(&a.as_str()) {
            skip_value = true;
        } else if !OUTPUT_ONLY
            .iter()
            .any(|o| a.strip_prefix(o).is_some_and(|rest| rest.starts_with('=')))
        {
            out.push(a.clone());
        }
    }
    out
}

/// The grid's rows by C×P, the points in the order they first ran.
pub fn points(g: &GridReport) -> Vec<Point<'_>> {
    let mut out: Vec<Point<'_>> = Vec::new();
    for r in &g.rows {
        let at = (r.connections, r.inflight);
        match out.iter_mut().find(|p| (p.connections, p.inflight) == at) {
            Some(p) => p.rounds.push(r),
            None => out.push(Point {
                connections: r.connections,
                inflight: r.inflight,
                rounds: vec![r],
            }),
        }
    }
    out
}

impl Point<'_> {
    /// `16×16`.
    fn name(&self) -> String {
        format!("{}×{}", self.connections, self.inflight)
    }

    /// The figure `f` of every round, lowest first; `None` when a round lacks it.
    fn sorted(&self, f: impl Fn(&GridRow) -> Option<f64>) -> Option<Vec<f64>> {
        let mut v = self
            .rounds
            .iter()
            .map(|r| f(r))
            .collect::<Option<Vec<f64>>>()?;
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then_some(v)
    }

    /// One figure of the point: with one round, `fmt` of its value; with more, of the median
    /// and then of the lowest and highest in brackets, e.g. `0.16 (0.14–0.18)`, or the median
    /// alone when the rounds print the same. `f` reads one round's row, so a ratio is taken
    /// within a round, whose runs ran back to back, before the median is. `-` when a round
    /// lacks the figure.
    fn cell(&self, f: impl Fn(&GridRow) -> Option<f64>, fmt: fn(f64) -> String) -> String {
        let Some(v) = self.sorted(f) else {
            return "-".to_owned();
        };
        let (mid, lo, hi) = (fmt(median(&v)), fmt(v[0]), fmt(v[v.len() - 1]));
        if lo == hi {
            mid
        } else {
            format!("{mid} ({lo}–{hi})")
        }
    }

    /// [`Point::cell`] without the range, for cells that chain several figures.
    fn median_cell(&self, f: impl Fn(&GridRow) -> Option<f64>, fmt: fn(f64) -> String) -> String {
        self.sorted(f)
            .map_or_else(|| "-".to_owned(), |v| fmt(median(&v)))
    }
}

/// The median of `sorted` (not empty, lowest first): the middle value, or the mean of the two
/// middle ones.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A throughput, `325,312`.
fn tps(v: f64) -> String {
    thousands(v.round() as u64)
}

/// A ratio, `0.16`.
fn two_places(v: f64) -> String {
    format!("{v:.2}")
}

/// A CPU time per answer in µs, or records per commit, `5.5`.
fn one_place(v: f64) -> String {
    format!("{v:.1}")
}

/// A latency in µs as milliseconds, `1.23 ms`.
fn ms_of(us: f64) -> String {
    ms(us.round() as u64)
}

/// `a ÷ b`, when `b` is not 0.
fn ratio_of(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// A run's p99 in µs.
fn p99(r: &RunReport) -> Option<f64> {
    Some(r.latency.p99_us as f64)
}

/// What the cells of a section are when the grid ran more than one round; empty with one.
fn rounds_note(g: &GridReport) -> String {
    if g.rounds > 1 {
        format!(
            " The whole grid ran {n} times, one round after another (`--rounds {n}`): each \
             figure is the median of its point's {n} runs, with the lowest and the highest in \
             brackets; a ratio is taken within each round, whose runs ran back to back, and the \
             median is of those ratios.",
            n = g.rounds
        )
    } else {
        String::new()
    }
}

/// `label: N mismatches, M errors` for each run of `runs` that was not clean.
fn unclean<'a>(runs: impl IntoIterator<Item = &'a RunReport>, problems: &mut Vec<String>) {
    for rep in runs {
        if !rep.is_clean() {
            problems.push(format!(
                "{}: {} mismatches, {} errors",
                rep.label,
                rep.mismatches,
                rep.errors.total()
            ));
        }
    }
}

fn ms(us: u64) -> String {
    format!("{}.{:02} ms", us / 1000, (us % 1000) / 10)
}

/// The grid's section, markers included.
pub fn markdown(g: &GridReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{START_MARKER}");
    let _ = writeln!(s, "## Bench harness grid (`loadgen grid`)\n");
    let _ = writeln!(
        s,
        "Measured {} with `{}` on a machine of {} (the notes at the top of docs/benchmarks.md say how \
         noisy). \
         Each point: {:.0} s warmup, then {:.0} s measured, closed loop (each of C connections keeps \
         P requests outstanding). TPS counts answers inside the measured window; p99 is in \
         milliseconds, from hdrhistogram at microsecond resolution.{}\n",
        g.date,
        g.command,
        g.machine,
        g.warmup_s,
        g.duration_s,
        rounds_note(g)
    );
    let _ = writeln!(
        s,
        "Everything runs in that one process on 127.0.0.1, each part on its own TCP port: the load \
         generator{client}; the switch, journal `sync = \"{sync}\"`{sync_note} in a \
         temporary folder; **remote** = North Bank (credit, BIN 411111) on its issuer host, \
         reached over {links} (up to 4,096 requests in flight), its own journal also \
         `sync = \"{sync}\"`; **on-us** = Metro Pay (prepaid, BIN 605001) decided inside the \
         switch; **relay** = `loadgen relay` with one backend connection to `loadgen \
         echo-backend`: frames forwarded unchanged, answers matched to clients by their order on \
         the backend connection, no ISO 8583 parsing, the same two TCP hops as the remote path \
         (`simulators/src/loadgen/relay.rs` says exactly what it does). Cards: {cards} \
         generated by `loadgen gen-cards`, picked uniformly at random; each issuer's mix is 65% \
         purchases, 15% preauthorizations, 14% balance inquiries and 1% each of six declines \
         (no funds 51, expired 54, lost 41, stolen 43, not on file 14, unknown BIN 15); the relay \
         carries North Bank's messages. The switch answers only once its journal's fsync is \
         done, and the issuer host journals too before answering; the relay writes nothing to \
         disk, so at low concurrency the ratios mostly measure the fsyncs. {metrics}\n",
        client = if g.client_runtime {
            " (on a runtime of its own, as many threads as cores; the servers share another)"
        } else {
            " (on the same runtime as the servers)"
        },
        metrics = if g.metrics {
            "The switch's metrics are recorded as the `switch` binary records them (a Prometheus \
             recorder, never scraped here)."
        } else {
            "No metrics recorder (`--no-metrics`: a diagnostic run, not the standard grid)."
        },
        sync = g.sync,
        sync_note = match (g.sync, g.group_commit_delay_us) {
            ("always", 0) => " (fsync per group commit)".to_owned(),
            ("always", us) => format!(
                " (fsync per group commit; `group_commit_delay_us = {us}` for the switch and \
                 the ladder's relays: not the standard grid)"
            ),
            (_, 0) => " (no fsync: a diagnostic run, not the standard grid)".to_owned(),
            (_, us) => format!(
                " (no fsync, and `group_commit_delay_us = {us}` for the switch and the \
                 ladder's relays: a diagnostic run, not the standard grid)"
            ),
        },
        links = if g.remote_links == 1 {
            "one link".to_owned()
        } else {
            format!("{} links", g.remote_links)
        },
        cards = thousands(g.cards),
    );
    let _ = writeln!(
        s,
        "| C×P | relay TPS | remote TPS | remote ÷ relay | on-us TPS | on-us ÷ relay | relay p99 | remote p99 | on-us p99 |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for pt in points(g) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            pt.name(),
            pt.cell(|r| Some(r.relay.tps), tps),
            pt.cell(|r| Some(r.remote.tps), tps),
            pt.cell(|r| ratio_of(r.remote.tps, r.relay.tps), two_places),
            pt.cell(|r| Some(r.on_us.tps), tps),
            pt.cell(|r| ratio_of(r.on_us.tps, r.relay.tps), two_places),
            pt.cell(|r| p99(&r.relay), ms_of),
            pt.cell(|r| p99(&r.remote), ms_of),
            pt.cell(|r| p99(&r.on_us), ms_of),
        );
    }
    let mut problems = Vec::new();
    for r in &g.rows {
        unclean([&r.relay, &r.remote, &r.on_us], &mut problems);
    }
    cpu_table(g, &mut s);
    let runs = g.rows.len() * 3;
    if problems.is_empty() {
        let _ = writeln!(
            s,
            "\nEvery answer of the {runs} runs was checked against loadgen's model (the switch's) or \
             the echo (the relay's): 0 mismatches, 0 errors."
        );
    } else {
        let _ = writeln!(
            s,
            "\nNot clean (answers checked against the model or the echo): {}.",
            problems.join("; ")
        );
    }
    let _ = writeln!(s, "{END_MARKER}");
    s
}

/// The grid's CPU table: per answer, the process's time, and when the load client ran on a
/// runtime of its own, its share and the servers' apart.
fn cpu_table(g: &GridReport, s: &mut String) {
    let split = g.rows.iter().all(|r| {
        [&r.relay, &r.remote, &r.on_us]
            .iter()
            .all(|x| x.servers_cpu_us_per_answer.is_some())
    });
    if split {
        let _ = writeln!(
            s,
            "\nCPU time per answer in the measured window, µs. **Process** is every thread of the \
             one process (user + system); unlike TPS it hardly moves when other programs share \
             the cores. The load client runs on a tokio runtime of its own (threads named \
             `{CLIENT_THREAD}`, one per core), so its share is read apart, from the scheduler's \
             count for those threads (`/proc/self/task/*/schedstat`); **servers** is the process \
             less the client: the switch and the issuer host, or the relay and the echo backend. \
             The servers' ratio is the relay's CPU per answer over the switch's: the throughput \
             ratio the two would show if the servers had the cores to themselves and a load \
             client that cost nothing. Every TPS ratio above is nearer 1 than it, because the \
             client's share is in both of its terms.\n"
        );
        let _ = writeln!(
            s,
            "| C×P | process: relay | remote | on-us | load client: relay | remote | on-us | servers: relay | remote | on-us | servers µs: relay ÷ remote | servers µs: relay ÷ on-us |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
    } else {
        let _ = writeln!(
            s,
            "\nProcess CPU time per answer in the measured window (user + system, every thread of \
             the one process, so the load client's share is in every column; the relay column is \
             mostly that share). Unlike TPS this hardly moves when other programs share the \
             cores.\n"
        );
        let _ = writeln!(
            s,
            "| C×P | relay CPU µs/answer | remote CPU µs/answer | on-us CPU µs/answer |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|");
    }
    let servers_ratio = |relay: &RunReport, switch: &RunReport| {
        relay
            .servers_cpu_us_per_answer
            .zip(switch.servers_cpu_us_per_answer)
            .and_then(|(a, b)| ratio_of(a, b))
    };
    for pt in points(g) {
        let _ = write!(
            s,
            "| {} | {} | {} | {} |",
            pt.name(),
            pt.cell(|r| r.relay.cpu_us_per_answer, one_place),
            pt.cell(|r| r.remote.cpu_us_per_answer, one_place),
            pt.cell(|r| r.on_us.cpu_us_per_answer, one_place),
        );
        if split {
            let _ = write!(
                s,
                " {} | {} | {} | {} | {} | {} | {} | {} |",
                pt.cell(|r| r.relay.client_cpu_us_per_answer, one_place),
                pt.cell(|r| r.remote.client_cpu_us_per_answer, one_place),
                pt.cell(|r| r.on_us.client_cpu_us_per_answer, one_place),
                pt.cell(|r| r.relay.servers_cpu_us_per_answer, one_place),
                pt.cell(|r| r.remote.servers_cpu_us_per_answer, one_place),
                pt.cell(|r| r.on_us.servers_cpu_us_per_answer, one_place),
                pt.cell(|r| servers_ratio(&r.relay, &r.remote), two_places),
                pt.cell(|r| servers_ratio(&r.relay, &r.on_us), two_places),
            );
        }
        s.push('\n');
    }
}

/// A section that sets remote and on-us runs of another stack beside the grid's plain ones
/// (`--security`, `--tls`).
struct Beside {
    markers: (&'static str, &'static str),
    title: &'static str,
    /// The column tag, e.g. `+sec`.
    tag: &'static str,
    /// What the other stack does, after "**tag** is ".
    what: &'static str,
    /// What the CPU difference is the cost of ("security", "TLS").
    cost_of: &'static str,
    /// "with security", "over TLS".
    runs_with: &'static str,
    /// Said of the model check, e.g. " (MACs of the answers included)".
    checked: &'static str,
    pick: Pick,
}

/// Picks a row's remote and on-us runs beside the plain ones, when the grid ran them.
type Pick = fn(&GridRow) -> Option<(&RunReport, &RunReport)>;

fn beside_markdown(g: &GridReport, b: &Beside) -> Option<String> {
    if g.rows.iter().all(|r| (b.pick)(r).is_none()) {
        return None;
    }
    let (tag, cost_of) = (b.tag, b.cost_of);
    let mut s = String::new();
    let _ = writeln!(s, "{}", b.markers.0);
    let _ = writeln!(s, "## {}\n", b.title);
    let _ = writeln!(
        s,
        "Measured {} with `{}` on a machine of {}, in the same run as the grid above \
         (same points, warmup and duration, journals `sync = \"{}\"`). **{tag}** is {} The \
         plain columns are the grid's own remote and on-us runs. CPU is the process's CPU time \
         per answer (client and servers together), which hardly moves with other load on the \
         cores; its difference is what {cost_of} costs per transaction.{}\n",
        g.date,
        g.command,
        g.machine,
        g.sync,
        b.what,
        rounds_note(g)
    );
    let _ = writeln!(
        s,
        "| C×P | remote TPS | remote{tag} TPS | {tag} ÷ plain | on-us TPS | on-us{tag} TPS | {tag} ÷ plain | remote CPU µs plain → {tag} | on-us CPU µs plain → {tag} | remote{tag} p99 | on-us{tag} p99 |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let pick = b.pick;
    let mut problems = Vec::new();
    let mut runs = 0;
    for pt in points(g) {
        if pt.rounds.iter().any(|r| pick(r).is_none()) {
            continue;
        }
        for (rs, os) in pt.rounds.iter().filter_map(|r| pick(r)) {
            runs += 2;
            unclean([rs, os], &mut problems);
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} → {} | {} → {} | {} | {} |",
            pt.name(),
            pt.cell(|r| Some(r.remote.tps), tps),
            pt.cell(|r| picked(pick, r, false).map(|x| x.tps), tps),
            pt.cell(
                |r| ratio_of(picked(pick, r, false)?.tps, r.remote.tps),
                two_places
            ),
            pt.cell(|r| Some(r.on_us.tps), tps),
            pt.cell(|r| picked(pick, r, true).map(|x| x.tps), tps),
            pt.cell(
                |r| ratio_of(picked(pick, r, true)?.tps, r.on_us.tps),
                two_places
            ),
            pt.cell(|r| r.remote.cpu_us_per_answer, one_place),
            pt.cell(|r| picked(pick, r, false)?.cpu_us_per_answer, one_place),
            pt.cell(|r| r.on_us.cpu_us_per_answer, one_place),
            pt.cell(|r| picked(pick, r, true)?.cpu_us_per_answer, one_place),
            pt.cell(|r| p99(picked(pick, r, false)?), ms_of),
            pt.cell(|r| p99(picked(pick, r, true)?), ms_of),
        );
    }

    if problems.is_empty() {
        let _ = writeln!(
            s,
            "\nEvery answer of the {runs} runs {} was checked against loadgen's model{}: \
             0 mismatches, 0 errors.",
            b.runs_with, b.checked
        );
    } else {
        let _ = writeln!(s, "\nNot clean: {}.", problems.join("; "));
    }
    let _ = writeln!(s, "{}", b.markers.1);
    Some(s)
}

/// The remote run (`on_us` false) or the on-us run of what `pick` picks from `r`.
fn picked(pick: Pick, r: &GridRow, on_us: bool) -> Option<&RunReport> {
    pick(r).map(|(remote, o)| if on_us { o } else { remote })
}

/// The cost-of-security section (markers included), when the grid ran with `--security`.
pub fn security_markdown(g: &GridReport) -> Option<String> {
    beside_markdown(
        g,
        &Beside {
            markers: (SECURITY_START_MARKER, SECURITY_END_MARKER),
            title: "The cost of security (`loadgen grid --security`)",
            tag: "+sec",
            what: "a second stack beside the first on cards generated with `gen-cards \
                   --security`: acquirer 100001 MACs every request (ANSI X9.19) and checks the \
                   MAC of every answer; every purchase, preauthorization and balance inquiry \
                   carries a PIN as an ISO 9564 format 0 block under the acquirer's zone PIN \
                   key; the switch checks the MAC (and MACs its answer), and either translates \
                   the PIN block to North Bank's zone PIN key and sends it over a link MACed \
                   both ways (X9.19; the issuer host checks the MAC, decrypts the block and \
                   verifies the PIN against the card's Visa PVV) or, on-us, verifies the PIN \
                   inside the security module against the card's PVV.",
            cost_of: "security",
            runs_with: "with security",
            checked: " (MACs of the answers included)",
            pick: |r| r.remote_secure.as_ref().zip(r.on_us_secure.as_ref()),
        },
    )
}

/// The cost-of-TLS section (markers included), when the grid ran with `--tls`.
pub fn tls_markdown(g: &GridReport) -> Option<String> {
    beside_markdown(
        g,
        &Beside {
            markers: (TLS_START_MARKER, TLS_END_MARKER),
            title: "The cost of TLS (`loadgen grid --tls`)",
            tag: "+tls",
            what: "another stack beside the first on cards generated with `gen-cards --tls`, \
                   with TLS on both hops (rustls with the ring provider; each connection's \
                   handshake happens before the warmup): the acquirer listener requires client \
                   certificates and acquirer 100001 presents its own (`tls_identity`), and the \
                   switch's link to North Bank's host presents the switch's link certificate. \
                   The load client's TLS is in the CPU figures too, as its share of the relay's \
                   is in the grid's.",
            cost_of: "TLS",
            runs_with: "over TLS",
            checked: "",
            pick: |r| r.remote_tls.as_ref().zip(r.on_us_tls.as_ref()),
        },
    )
}

/// The floor ladder's section (markers included), when the grid ran with `--ladder`.
pub fn ladder_markdown(g: &GridReport) -> Option<String> {
    if g.rows.iter().all(|r| r.relay_durable.is_none()) {
        return None;
    }
    // The servers' own CPU, when every run has it.
    let split = g
        .rows
        .iter()
        .flat_map(GridRow::runs)
        .all(|x| x.servers_cpu_us_per_answer.is_some());
    let mut s = String::new();
    let _ = writeln!(s, "{LADDER_START_MARKER}");
    let _ = writeln!(s, "## The floor ladder (`loadgen grid --ladder`)\n");
    let _ = writeln!(
        s,
        "Measured {} with `{}` on a machine of {}, in the same run as the grid above. \
         The relay, then the relay doing the least work any durable switch must do, one step \
         at a time (`simulators/src/loadgen/ladder.rs`): **+codec** decodes every request and \
         answer with the switch's codec and encodes it again from the decoded fields; \
         **+journal** also writes two records per transaction into a `FileJournal` \
         (`sync = \"{}\"`, the switch's journal code), the request's queued and the answer's \
         awaited before the answer goes back; **+2 journals** is that relay in front of an \
         echo backend that journals each answer too and sends it once durable, as an issuer \
         host does (the remote path's two durable writes in series). The backend only echoes: \
         no routing, screening, duplicate window, PAN encryption or issuer decision. Ratios are to the \
         relay of the same point; CPU is the process's CPU time per answer{servers_note}; the \
         last column is the durable step's journal records per group commit (one fsync each \
         with `always`; two records per transaction; warmup included).{rounds}\n",
        g.date,
        g.command,
        g.machine,
        g.sync,
        rounds = if g.rounds > 1 {
            format!("{} The CPU chains give the medians alone.", rounds_note(g))
        } else {
            String::new()
        },
        servers_note = if split {
            ", and the servers' alone (the process less the load client's threads, as in the \
             grid's CPU table)"
        } else {
            ""
        }
    );
    let servers_header = if split {
        " servers' CPU µs: relay → +codec → +journal → +2 journals; on-us, remote |"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "| C×P | relay TPS | +codec ÷ relay | +journal ÷ relay | +2 journals ÷ relay | on-us ÷ relay | remote ÷ relay | CPU µs: relay → +codec → +journal → +2 journals; on-us, remote |{servers_header} p99: +journal, +2 journals | records per group commit |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---|{}---|---:|",
        if split { "---|" } else { "" }
    );
    type Step = fn(&GridRow) -> Option<&RunReport>;
    // The ladder's steps, then on-us and remote, as its chains list them.
    let chain: [Step; 6] = [
        |r| Some(&r.relay),
        |r| r.relay_codec.as_ref(),
        |r| r.relay_durable.as_ref(),
        |r| r.relay_durable2.as_ref(),
        |r| Some(&r.on_us),
        |r| Some(&r.remote),
    ];
    let [_, codec, durable, durable2, ..] = chain;
    let mut problems = Vec::new();
    let mut runs = 0;
    for pt in points(g) {
        let ran: Option<Vec<_>> = pt
            .rounds
            .iter()
            .map(|r| Some([codec(r)?, durable(r)?, durable2(r)?]))
            .collect();
        let Some(ran) = ran else {
            continue;
        };
        for steps in ran {
            runs += steps.len();
            unclean(steps, &mut problems);
        }
        // One figure per step of the ladder, then on-us and remote.
        let steps = |f: fn(&RunReport) -> Option<f64>| {
            let m: Vec<String> = chain
                .iter()
                .map(|step| pt.median_cell(|r| step(r).and_then(f), one_place))
                .collect();
            format!(
                "{} → {} → {} → {}; {}, {}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )
        };
        let servers_cell = if split {
            format!(" {} |", steps(|x| x.servers_cpu_us_per_answer))
        } else {
            String::new()
        };
        let to_relay =
            |step: Step| pt.cell(move |r| ratio_of(step(r)?.tps, r.relay.tps), two_places);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |{servers_cell} {}, {} | {} |",
            pt.name(),
            pt.cell(|r| Some(r.relay.tps), tps),
            to_relay(codec),
            to_relay(durable),
            to_relay(durable2),
            to_relay(chain[4]),
            to_relay(chain[5]),
            steps(|x| x.cpu_us_per_answer),
            pt.cell(|r| p99(durable(r)?), ms_of),
            pt.cell(|r| p99(durable2(r)?), ms_of),
            pt.cell(|r| r.ladder_records_per_commit, one_place),
        );
    }
    if problems.is_empty() {
        let _ = writeln!(
            s,
            "\nEvery answer of the {runs} ladder runs was checked against the echo of its own \
             request, byte for byte (so the codec gave back what it was given): 0 mismatches, \
             0 errors."
        );
    } else {
        let _ = writeln!(s, "\nNot clean: {}.", problems.join("; "));
    }
    let _ = writeln!(s, "{LADDER_END_MARKER}");
    Some(s)
}

/// Puts `section` (markers included) into the document at `path`: in place of the existing
/// section between the markers, or appended when there is none (the file is created when
/// missing). Nothing outside the markers changes.
pub fn update_doc(path: &Path, section: &str) -> Result<(), String> {
    update_doc_between(path, (START_MARKER, END_MARKER), section)
}

/// [`update_doc`] for the section between the `markers` (start, end).
pub fn update_doc_between(path: &Path, markers: (&str, &str), section: &str) -> Result<(), String> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::from("# Benchmarks\n"),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let new = splice_between(&old, markers, section)?;
    std::fs::write(path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// How a section beside the grid that the last grid run did not rewrite begins (after its
/// heading), so that its "in the same run as the grid above" is not read as true.
const STALE_PREFIX: &str = "> **Older than the grid above:**";

/// The mark for a section beside the grid that `g` did not run (its flag, e.g. `--tls`).
pub fn stale_note(g: &GridReport, flag: &str) -> String {
    format!(
        "{STALE_PREFIX} the grid above was run on {} with `{}`, without `{flag}`. This section \
         is from the earlier run it names: its figures, the grid's own columns included, are \
         that run's, not those of the grid above.",
        g.date, g.command
    )
}

/// Marks the section between `markers` in the document at `path` with `note` (in place of an
/// earlier mark). A document without that section is left as it is.
pub fn mark_stale_between(path: &Path, markers: (&str, &str), note: &str) -> Result<(), String> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match mark_stale(&old, markers, note)? {
        Some(new) => {
            std::fs::write(path, new).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => Ok(()),
    }
}

/// `old` with the section between the markers marked by `note` after its heading (an earlier
/// mark and the blank line after it replaced); `None` when there is no such section.
fn mark_stale(
    old: &str,
    (start_marker, end_marker): (&str, &str),
    note: &str,
) -> Result<Option<String>, String> {
    let (a, b) = match (old.find(start_marker), old.find(end_marker)) {
        (Some(a), Some(b)) if a < b => (a, b),
        (None, None) => return Ok(None),
        _ => {
            return Err(format!(
                "the document has a broken section: `{start_marker}` must come once, before \
                 `{end_marker}`; fix it by hand"
            ));
        }
    };
    let mut body = String::new();
    let mut lines = old[a..b].split_inclusive('\n').peekable();
    let mut marked = false;
    while let Some(line) = lines.next() {
        if line.starts_with(STALE_PREFIX) {
            if lines.peek() == Some(&"\n") {
                lines.next();
            }
            continue;
        }
        body.push_str(line);
        if !marked && line.starts_with("## ") {
            body.push('\n');
            body.push_str(note);
            body.push('\n');
            marked = true;
        }
    }
    if !marked {
        // No heading: the mark goes first.
        body = format!("{start_marker}\n{note}\n{}", &body[start_marker.len()..]);
    }
    Ok(Some(format!("{}{body}{}", &old[..a], &old[b..])))
}

#[cfg(test)]
fn splice(old: &str, section: &str) -> Result<String, String> {
    splice_between(old, (START_MARKER, END_MARKER), section)
}

fn splice_between(
    old: &str,
    (start_marker, end_marker): (&str, &str),
    section: &str,
) -> Result<String, String> {
    match (old.find(start_marker), old.find(end_marker)) {
        (Some(a), Some(b)) if a < b => {
            let after = b + end_marker.len();
            // The section ends with a newline; keep the one after the old end marker out.
            let rest = old[after..].strip_prefix('\n').unwrap_or(&old[after..]);
            Ok(format!("{}{section}{rest}", &old[..a]))
        }
        (None, None) => {
            let sep = if old.ends_with("\n\n") {
                ""
            } else if old.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            Ok(format!("{old}{sep}{section}"))
        }
        _ => Err(format!(
            "the document has a broken section: `{start_marker}` must come once, before \
             `{end_marker}`; fix it by hand"
        )),
    }
}

/// The default document: `docs/benchmarks.md` under the current folder.
pub fn default_doc() -> PathBuf {
    PathBuf::from("docs").join("benchmarks.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The echoed command keeps every argument that shapes the measurement and drops the output
    /// paths, in both spellings, wherever they stand.
    #[test]
    fn the_echoed_command_leaves_out_where_results_go() {
        let args = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            echoed_args(&args(&[
                "grid",
                "--json",
                "/tmp/g.json",
                "--security",
                "--doc=docs/x.md",
                "--rounds",
                "3",
                "--json=/tmp/h.json",
                "--doc",
                "docs/y.md",
                "--jsonish",
                "--scheduling batch",
            ])),
            args(&[
                "grid",
                "--security",
                "--rounds",
                "3",
                "--jsonish",
                "--scheduling batch"
            ])
        );
        assert_eq!(echoed_args(&args(&["grid"])), args(&["grid"]));
    }

    #[test]
    fn splice_replaces_only_between_the_markers() {
        let section = format!("{START_MARKER}\nnew\n{END_MARKER}\n");
        let appended = splice("# B\n\ntext\n", &section).expect("append");
        assert_eq!(appended, format!("# B\n\ntext\n\n{section}"));
        let doc = format!("# B\n\n{START_MARKER}\nold\nold\n{END_MARKER}\n\n## After\n");
        let replaced = splice(&doc, &section).expect("replace");
        assert_eq!(replaced, format!("# B\n\n{section}\n## After\n"));
        assert_eq!(splice(&replaced, &section).expect("again"), replaced);
        assert!(splice(&format!("{END_MARKER}\n{START_MARKER}\n"), &section).is_err());
        assert!(splice(&format!("x {START_MARKER}\n"), &section).is_err());
    }

    /// A section beside the grid that a grid run did not rewrite is marked under its heading,
    /// once however often that happens, and a run that rewrites it drops the mark.
    #[test]
    fn a_section_the_grid_did_not_rerun_is_marked_older() {
        let m = (TLS_START_MARKER, TLS_END_MARKER);
        let section =
            format!("{TLS_START_MARKER}\n## The cost of TLS\n\nMeasured then.\n{TLS_END_MARKER}\n");
        let doc = format!("# B\n\n{section}\n## After\n");
        let note = format!("{STALE_PREFIX} run without `--tls`.");
        let marked = mark_stale(&doc, m, &note)
            .expect("mark")
            .expect("a section");
        assert_eq!(
            marked,
            format!(
                "# B\n\n{TLS_START_MARKER}\n## The cost of TLS\n\n{note}\n\nMeasured then.\n{TLS_END_MARKER}\n\n## After\n"
            )
        );
        let newer = format!("{STALE_PREFIX} a later run without `--tls`.");
        assert_eq!(
            mark_stale(&marked, m, &newer)
                .expect("mark")
                .expect("a section"),
            marked.replace(&note, &newer),
            "one mark, the latest"
        );
        assert_eq!(splice_between(&marked, m, &section).expect("rerun"), doc);
        assert_eq!(mark_stale("# B\n", m, &note).expect("no section"), None);
        assert!(mark_stale(&format!("{TLS_END_MARKER}\n{TLS_START_MARKER}\n"), m, &note).is_err());
    }

    /// A grid of one 16×16 row whose three runs are `small_report`s, with nothing beside them.
    fn one_row_grid() -> GridReport {
        let r = crate::loadgen::report::tests::small_report;
        let row = GridRow {
            connections: 16,
            inflight: 16,
            round: 1,
            relay: r(),
            remote: r(),
            on_us: r(),
            remote_secure: None,
            on_us_secure: None,
            remote_tls: None,
            on_us_tls: None,
            relay_codec: None,
            relay_durable: None,
            relay_durable2: None,
            ladder_records_per_commit: None,
        };
        GridReport {
            date: "2026-11-27".into(),
            sync: "always",
            group_commit_delay_us: 0,
            remote_links: 1,
            metrics: true,
            client_runtime: false,
            rounds: 1,
            command: "loadgen grid".into(),
            machine: "2 cores".into(),
            cards: 100,
            warmup_s: 1.0,
            duration_s: 2.0,
            rows: vec![row],
        }
    }

    /// The sections beside the grid: the cost of security reads as it always has (its text is
    /// pinned here, as the benchmarks document holds it), the cost of TLS has its own tag and
    /// check line, and a grid run without either writes neither.
    #[test]
    fn the_sections_beside_the_grid() {
        let r = crate::loadgen::report::tests::small_report;
        let mut g = one_row_grid();
        g.rows[0].remote_secure = Some(r());
        g.rows[0].on_us_secure = Some(r());
        assert!(tls_markdown(&g).is_none());
        let sec = security_markdown(&g).expect("security section");
        let want = "Measured 2026-11-27 with `loadgen grid` on a machine of 2 cores, in the same run \
            as the grid above (same points, warmup and duration, journals `sync = \"always\"`). \
            **+sec** is a second stack beside the first on cards generated with `gen-cards \
            --security`: acquirer 100001 MACs every request (ANSI X9.19) and checks the MAC of \
            every answer; every purchase, preauthorization and balance inquiry carries a PIN as \
            an ISO 9564 format 0 block under the acquirer's zone PIN key; the switch checks the \
            MAC (and MACs its answer), and either translates the PIN block to North Bank's zone \
            PIN key and sends it over a link MACed both ways (X9.19; the issuer host checks the \
            MAC, decrypts the block and verifies the PIN against the card's Visa PVV) or, on-us, \
            verifies the PIN inside the security module against the card's PVV. The plain \
            columns are the grid's own remote and on-us runs. CPU is the process's CPU time per \
            answer (client and servers together), which hardly moves with other load on the \
            cores; its difference is what security costs per transaction.";
        assert!(sec.starts_with(&format!(
            "{SECURITY_START_MARKER}\n## The cost of security (`loadgen grid --security`)\n\n{want}\n"
        )), "{sec}");
        assert!(
            sec.contains("| C×P | remote TPS | remote+sec TPS | +sec ÷ plain |"),
            "{sec}"
        );
        assert!(sec.contains("| 16×16 | 400 | 400 | 1.00 |"), "{sec}");
        assert!(
            sec.contains(
                "Every answer of the 2 runs with security was checked against loadgen's model \
             (MACs of the answers included): 0 mismatches, 0 errors."
            ),
            "{sec}"
        );
        assert!(sec.ends_with(&format!("{SECURITY_END_MARKER}\n")), "{sec}");

        g.rows[0].remote_tls = Some(r());
        g.rows[0].on_us_tls = Some(r());
        let tls = tls_markdown(&g).expect("TLS section");
        assert!(
            tls.starts_with(&format!(
                "{TLS_START_MARKER}\n## The cost of TLS (`loadgen grid --tls`)\n"
            )),
            "{tls}"
        );
        assert!(tls.contains("**+tls** is another stack"), "{tls}");
        assert!(tls.contains("what TLS costs per transaction"), "{tls}");
        assert!(
            tls.contains("| C×P | remote TPS | remote+tls TPS | +tls ÷ plain |"),
            "{tls}"
        );
        assert!(
            tls.contains(
                "Every answer of the 2 runs over TLS was checked against loadgen's model: \
             0 mismatches, 0 errors."
            ),
            "{tls}"
        );
        assert!(tls.ends_with(&format!("{TLS_END_MARKER}\n")), "{tls}");
    }

    /// The `|` count of each line of the table whose header starts with `header`: the same on
    /// every line when header, separator and rows have as many cells.
    fn table_bars(md: &str, header: &str) -> Vec<usize> {
        md.lines()
            .skip_while(|l| !l.starts_with(header))
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.matches('|').count())
            .collect()
    }

    /// The grid's CPU table: the process's time per answer alone when the client shared the
    /// servers' runtime; with the client on its own, its share, the servers' and their ratios.
    #[test]
    fn the_cpu_table_with_and_without_the_client_apart() {
        let r = crate::loadgen::report::tests::small_report;
        let mut g = one_row_grid();
        // 800 answers in each report's window.
        g.rows[0].relay.set_cpu(Some(2_400), None);
        g.rows[0].remote.set_cpu(Some(8_000), None);
        g.rows[0].on_us.set_cpu(Some(5_600), None);
        let md = markdown(&g);
        assert!(
            md.contains("the load generator (on the same runtime as the servers);"),
            "{md}"
        );
        assert!(
            md.contains(
                "| C×P | relay CPU µs/answer | remote CPU µs/answer | on-us CPU µs/answer |"
            ),
            "{md}"
        );
        assert!(md.contains("| 16×16 | 3.0 | 10.0 | 7.0 |"), "{md}");
        assert!(!md.contains("servers µs: relay ÷ remote"), "{md}");
        assert_eq!(table_bars(&md, "| C×P | relay CPU"), [5; 3]);

        g.client_runtime = true;
        g.rows[0].relay.set_cpu(Some(2_400), Some(1_600));
        g.rows[0].remote.set_cpu(Some(8_000), Some(2_000));
        // The on-us run alone without the split: the table cannot split any row.
        let md = markdown(&g);
        assert!(md.contains("| 16×16 | 3.0 | 10.0 | 7.0 |"), "{md}");
        g.rows[0].on_us.set_cpu(Some(5_600), Some(1_600));
        let md = markdown(&g);
        assert!(
            md.contains("the load generator (on a runtime of its own"),
            "{md}"
        );
        assert!(
            md.contains("| C×P | process: relay | remote | on-us | load client: relay |"),
            "{md}"
        );
        assert_eq!(table_bars(&md, "| C×P | process:"), [13; 3]);
        // Servers: relay 1.0, remote 7.5, on-us 5.0 µs per answer.
        assert!(
            md.contains(
                "| 16×16 | 3.0 | 10.0 | 7.0 | 2.0 | 2.5 | 2.0 | 1.0 | 7.5 | 5.0 | 0.13 | 0.20 |"
            ),
            "{md}"
        );

        // The ladder: no section without its runs; the servers' column only when every run
        // of it was split.
        assert!(ladder_markdown(&g).is_none());
        let step = |process: u64, client: Option<u64>| {
            let mut x = r();
            x.set_cpu(Some(process), client);
            Some(x)
        };
        g.rows[0].relay_codec = step(3_200, Some(1_600));
        g.rows[0].relay_durable = step(4_000, Some(1_600));
        g.rows[0].relay_durable2 = step(4_800, None);
        g.rows[0].ladder_records_per_commit = Some(12.25);
        let ladder = ladder_markdown(&g).expect("ladder section");
        assert!(!ladder.contains("servers' CPU µs"), "{ladder}");
        assert_eq!(table_bars(&ladder, "| C×P | relay TPS"), [11; 3]);
        assert!(
            ladder.contains("| 16×16 | 400 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 3.0 → 4.0 → 5.0 → 6.0; 7.0, 10.0 | 0.99 ms, 0.99 ms | 12.2 |"),
            "{ladder}"
        );
        g.rows[0].relay_durable2 = step(4_800, Some(1_600));
        let ladder = ladder_markdown(&g).expect("ladder section");
        assert!(ladder.contains("and the servers' alone"), "{ladder}");
        assert_eq!(table_bars(&ladder, "| C×P | relay TPS"), [12; 3]);
        assert!(
            ladder.contains("| 3.0 → 4.0 → 5.0 → 6.0; 7.0, 10.0 | 1.0 → 2.0 → 3.0 → 4.0; 5.0, 7.5 | 0.99 ms, 0.99 ms | 12.2 |"),
            "{ladder}"
        );
    }

    /// With more than one round, each cell is the median of the point's rounds with their
    /// range, a ratio is the median of the rounds' own ratios (not the ratio of two medians),
    /// the points keep the order they first ran in, and the ladder's chains give medians alone.
    #[test]
    fn a_grid_of_three_rounds_gives_medians_and_ranges() {
        let mut g = one_row_grid();
        g.rounds = 3;
        let first = g.rows.remove(0);
        for round in 1..=3 {
            for (c, p) in [(16, 16), (1, 1)] {
                let mut row = first.clone();
                (row.connections, row.inflight, row.round) = (c, p, round);
                g.rows.push(row);
            }
        }
        // 16×16: relay 1,000, 1,200, 800; remote 150, 180, 200, so the rounds' ratios are
        // 0.15, 0.15 and 0.25, and their median 0.15, where the medians' ratio is 0.18.
        for (i, (relay, remote)) in [(1_000.0, 150.0), (1_200.0, 180.0), (800.0, 200.0)]
            .into_iter()
            .enumerate()
        {
            let row = &mut g.rows[2 * i];
            (row.relay.tps, row.remote.tps) = (relay, remote);
        }
        let md = markdown(&g);
        assert!(
            md.contains("each figure is the median of its point's 3 runs"),
            "{md}"
        );
        assert!(
            md.contains(
                "| 16×16 | 1,000 (800–1,200) | 180 (150–200) | 0.15 (0.15–0.25) | 400 | 0.40 (0.33–0.50) | 0.99 ms |"
            ),
            "{md}"
        );
        let at = |name: &str| md.find(&format!("| {name} |")).expect(name);
        assert!(at("16×16") < at("1×1"), "{md}");
        assert_eq!(table_bars(&md, "| C×P | relay TPS"), [10; 4]);
        assert!(
            md.contains("Every answer of the 18 runs was checked"),
            "{md}"
        );

        // Beside the grid: a point that lacks its runs in one round has no row.
        let r = crate::loadgen::report::tests::small_report;
        for row in g.rows.iter_mut().take(5) {
            row.remote_secure = Some(r());
            row.on_us_secure = Some(r());
        }
        let sec = security_markdown(&g).expect("security section");
        assert!(
            sec.contains("each figure is the median of its point's 3 runs"),
            "{sec}"
        );
        assert!(
            sec.contains("| 16×16 | 180 (150–200) | 400 | 2.22 (2.00–2.67) | 400 | 400 | 1.00 |"),
            "{sec}"
        );
        assert!(!sec.contains("| 1×1 |"), "{sec}");
        assert!(sec.contains("Every answer of the 6 runs"), "{sec}");

        // The ladder: 16×16's CPU per answer of +codec is 4, 2 and 9 µs in the three rounds;
        // no other run's was measured. 1×1 lacks its last step in the third round, so it has
        // no row, and its runs are not counted.
        for (i, row) in g.rows.iter_mut().enumerate() {
            let mut codec = r();
            let cpu = [3_200, 0, 1_600, 0, 7_200, 0][i];
            codec.set_cpu((cpu > 0).then_some(cpu), None);
            row.relay_codec = Some(codec);
            row.relay_durable = Some(r());
            row.relay_durable2 = (i != 5).then(r);
        }
        let ladder = ladder_markdown(&g).expect("ladder section");
        assert!(
            ladder.contains("The CPU chains give the medians alone."),
            "{ladder}"
        );
        assert!(ladder.contains("| 16×16 | 1,000 (800–1,200) |"), "{ladder}");
        assert!(ladder.contains("| - → 4.0 → - → -; -, - |"), "{ladder}");
        assert!(!ladder.contains("| 1×1 |"), "{ladder}");
        assert!(
            ladder.contains("Every answer of the 9 ladder runs"),
            "{ladder}"
        );
    }

    /// A point listed twice is refused before anything starts: its rows would mix.
    #[tokio::test]
    async fn a_point_listed_twice_is_refused() {
        let opts = GridOptions {
            points: vec![(2, 2), (1, 1), (2, 2)],
            progress: false,
            ..GridOptions::default()
        };
        match run_grid(&opts).await {
            Err(GridError::Setup(text)) => assert!(text.contains("2×2 is listed twice"), "{text}"),
            other => panic!("refused: {:?}", other.map(|g| g.rows.len())),
        }
    }

    #[test]
    fn the_median_of_an_odd_and_an_even_count() {
        assert_eq!(median(&[1.0, 5.0, 9.0]), 5.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), 3.0);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn number_formats() {
        assert_eq!(ms(1_234), "1.23 ms");
        assert_eq!(ms(15), "0.01 ms");
        assert_eq!(ratio_of(1.0, 4.0).map(two_places).as_deref(), Some("0.25"));
        assert_eq!(ratio_of(1.0, 0.0), None);
    }
}
