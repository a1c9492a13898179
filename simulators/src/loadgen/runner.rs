//! The load itself: C connections, P requests in flight on each, closed or open loop, warmup and
//! a measured window; every answer checked against the model.
//!
//! # Loops
//!
//! - **Closed loop** (no rate): each connection keeps P requests outstanding; as soon as one is
//!   answered the next is sent. Latency is measured from the moment each request is built and
//!   handed to the connection until its answer is read off the socket (not until this task gets
//!   round to checking it, as wrk2 times it too). This finds the maximum throughput.
//! - **Open loop** (`rate` requests per second in total): each connection has its own schedule of
//!   `rate / C` per second (connections staggered evenly), and sends each request at its
//!   scheduled time, or as soon as one of its P slots is free if it is late. Latency is measured
//!   **from the scheduled time**, so time spent waiting for a slot (the target fell behind) counts,
//!   as in wrk2: a stall is not hidden by the load generator politely waiting for it
//!   (coordinated omission). A send scheduled before the end of the run still goes out up to
//!   [`LATE_SEND_GRACE`] after it; those still waiting then are reported as `backlog` (the
//!   target fell behind the rate). Those a connection never sent because it had closed while
//!   it could still carry requests (or, below, its replacement could not be opened) are
//!   reported apart, as sends with no connection: the target did not fall behind, it went
//!   away. A connection closed once used up is replaced, not lost.
//!
//!   Sends are paced by one dedicated thread (`std::thread::sleep`, about 0.1 ms precision on
//!   Linux) that wakes each connection's task at its scheduled times, rather than by tokio's
//!   timer, whose 1 ms resolution would add up to a millisecond to every latency. Whatever
//!   lateness remains is the generator's own, is counted in the latency (as wrk2 does), and is
//!   reported on its own, with the wait for a free slot, as the *send delay*.
//!
//! # Windows
//!
//! The run is `warmup` then `duration`. Throughput and the latency percentiles cover the same
//! requests: those whose answers arrived inside the measured window (throughput is their count
//! divided by the window's length). Requests still in flight at the end are drained, so that
//! they are checked too. Response codes, errors and mismatches cover the **whole run**, warmup
//! included: correctness has no warmup.
//!
//! Each connection has its own terminal id (field 41: a random 4-character run tag and the
//! connection number), so two runs in a row never look like duplicates to the switch.
//!
//! # Terminals that dial per transaction
//!
//! With `requests_per_connection` N, each connection slot is a terminal that closes its
//! connection after N requests (once their answers are in) and opens a new one, as the same
//! terminal: its STANs go on from the last one, and with TLS it resumes its own sessions (a
//! session cache per slot). The time to open the new connection counts in the latency of the
//! requests that waited for it: in closed loop from when they would have been sent (when a slot
//! of the old connection came free with its N requests all sent, so the wait for the old
//! connection's last answers counts too), in open loop from their scheduled times as always. A
//! replacement that cannot be opened is an error, and that slot sends nothing more (open loop:
//! its remaining schedule is counted as sends with no connection).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use switch::client::{
    AcquirerClient, ClientConfig, ClientError, ClientOptions, ClientTls, TerminalKeys,
};
use switch::clock::{Clock, SystemClock};
use switch::domain::Stan;
use switch::domain::{Amount, ResponseCode};
use switch::issuing::NaiveDate;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::mix::Mix;
use super::model;
use super::report::{ErrorCounts, RunReport};

/// Open loop: how long after the end of the run a send scheduled before it may still go out.
pub const LATE_SEND_GRACE: Duration = Duration::from_millis(50);
/// The longest warmup, and the longest measured window.
const RUN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
/// The throughput series keeps a last bucket shorter than a second when it is at least this
/// long (the drain after the window, or a run stopped early).
const LAST_BUCKET_MIN: Duration = Duration::from_millis(100);
/// Open loop: a connection not woken by the pacer wakes this long after its send was due.
const FALLBACK_WAKE: Duration = Duration::from_millis(2);

/// What the target answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// A switch: each answer is checked against the model.
    #[default]
    Switch,
    /// An echo backend behind the relay: each answer must be the request with its MTI raised.
    Echo,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `ip:port` of the switch (or relay).
    pub target: String,
    /// Connections (C), 1..=9999.
    pub connections: usize,
    /// Requests in flight per connection (P), 1..=10000.
    pub inflight: usize,
    /// Open loop at this many requests per second in total; `None` for closed loop.
    pub rate: Option<u64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// Field 32.
    pub acquirer: String,
    pub expect: Expect,
    /// A live progress line every second on stderr.
    pub progress: bool,
    /// A name for the report (e.g. `remote 16x16`).
    pub label: String,
    /// How many mismatches and errors to keep as examples.
    pub samples: usize,
    /// The acquirer host's MAC key and the PIN pad's keys (none: no MAC, PINs in clear blocks).
    pub keys: Arc<TerminalKeys>,
    /// Sample this process's resident set size every second (Linux `/proc`), e.g. the switch's
    /// during a soak.
    pub watch_pid: Option<u32>,
    /// Connect with TLS (a switch whose listener has `[listener.tls]`); `None`: plain TCP.
    pub tls: Option<ClientTls>,
    /// With TLS: `true`, each terminal resumes the sessions it was given; `false`, every
    /// connection shakes hands in full ([`ClientTls::without_resumption`]).
    pub tls_resumption: bool,
    /// Close each connection after this many requests and open a new one, as terminals that
    /// dial per transaction do (1: a connection, and with TLS a handshake, per request); `None`
    /// keeps every connection for the whole run.
    pub requests_per_connection: Option<u64>,
    /// Cancelled, the run ends early (the CLI cancels it on Ctrl-C): nothing more is scheduled
    /// (open loop: sends already late by less than [`LATE_SEND_GRACE`] still go out), what is in
    /// flight is drained, and the report covers the measured window up to that moment.
    pub stop: Option<CancellationToken>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            target: "127.0.0.1:8583".into(),
            connections: 4,
            inflight: 4,
            rate: None,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            acquirer: "100001".into(),
            expect: Expect::Switch,
            progress: false,
            label: String::new(),
            samples: 5,
            keys: Arc::new(TerminalKeys::none()),
            watch_pid: None,
            tls: None,
            tls_resumption: true,
            requests_per_connection: None,
            stop: None,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Options(String),
    #[error("connection {index} to {target}: {source}")]
    Connect {
        index: usize,
        target: String,
        source: ClientError,
    },
}

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    answered: AtomicU64,
    errors: AtomicU64,
    mismatches: AtomicU64,
}

/// What every connection task shares.
struct Ctx {
    mix: Arc<Mix>,
    expect: Expect,
    today: NaiveDate,
    start: Instant,
    window_start: Instant,
    /// The end of the measured window, in nanoseconds after `start`; moved earlier when the run
    /// is stopped ([`Ctx::stop_now`]).
    end_ns: AtomicU64,
    /// Becomes `true` when the run is stopped early.
    stopped: watch::Sender<bool>,
    /// Becomes `true` when every connection task has finished (possibly before the window's end:
    /// the target closed them): the sampler and the CPU meter stop waiting then.
    tasks_done: watch::Sender<bool>,
    inflight: usize,
    /// Requests on one connection before it is replaced by a new one; `None`: never.
    requests_per_connection: Option<u64>,
    /// Opens the replacements.
    dialer: Arc<Dialer>,
    /// Open loop: time between two sends of one connection.
    interval: Option<Duration>,
    connections: usize,
    samples: usize,
    live: Live,
    /// Open loop: one per connection, notified by the pacer when a send is due.
    wakers: Vec<Arc<Notify>>,
}

impl Ctx {
    /// The end of the measured window: no send is scheduled from here on.
    fn end(&self) -> Instant {
        self.start + Duration::from_nanos(self.end_ns.load(Ordering::Acquire))
    }

    /// Ends the run now: the window closes here, and every connection is woken to see it. A
    /// stop after the window's planned end (during the drain) changes nothing.
    fn stop_now(&self) {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if self.end_ns.fetch_min(now, Ordering::AcqRel) > now {
            self.stopped.send_replace(true);
        }
        for w in &self.wakers {
            w.notify_one();
        }
    }
}

/// How one request ended.
enum Verdict {
    /// Answered as the model says; the response code (or `echo`).
    Ok(&'static str),
    /// Answered, but not as the model says.
    Mismatch(&'static str, String),
    Error(ClientError),
}

struct Outcome {
    /// Scheduled (open loop) or actual (closed loop) send time.
    scheduled: Instant,
    /// When the request was actually built and handed over.
    sent: Instant,
    done: Instant,
    verdict: Verdict,
}

/// Open loop: the first send a slot never made, and whether it had lost its connection.
struct Unsent {
    next: Instant,
    lost: bool,
}

impl Unsent {
    /// The sends scheduled from `next` until `end` (none when `next` is not before it).
    fn count(&self, interval: Duration, end: Instant) -> u64 {
        if self.next >= end {
            return 0;
        }
        let late = (end - self.next)
            .as_nanos()
            .div_ceil(interval.as_nanos().max(1));
        u64::try_from(late).unwrap_or(u64::MAX)
    }
}

/// One connection's results, merged at the end.
struct Local {
    hist: Histogram<u64>,
    /// Open loop: actual send time minus scheduled time (the send delay).
    lag: Histogram<u64>,
    codes: BTreeMap<&'static str, u64>,
    answered: u64,
    answered_in_window: u64,
    sent: u64,
    errors: ErrorCounts,
    mismatches: u64,
    mismatch_samples: Vec<String>,
    error_samples: Vec<String>,
    /// Open loop: where the slot's schedule stood when it ended.
    unsent: Option<Unsent>,
    unmatched: u64,
    /// Time to open each replacement connection, microseconds.
    connect: Histogram<u64>,
}

/// 1 µs to one hour, 3 significant digits.
fn new_histogram() -> Result<Histogram<u64>, RunError> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| RunError::Options(format!("latency histogram: {e}")))
}

impl Local {
    fn new(hist: Histogram<u64>) -> Local {
        Local {
            lag: hist.clone(),
            connect: hist.clone(),
            hist,
            codes: BTreeMap::new(),
            answered: 0,
            answered_in_window: 0,
            sent: 0,
            errors: ErrorCounts::default(),
            mismatches: 0,
            mismatch_samples: Vec::new(),
            error_samples: Vec::new(),
            unsent: None,
            unmatched: 0,
        }
    }

    fn record(&mut self, o: Outcome, ctx: &Ctx) {
        let (code, mismatch) = match o.verdict {
            Verdict::Ok(code) => (code, None),
            Verdict::Mismatch(code, text) => (code, Some(text)),
            Verdict::Error(e) => {
                ctx.live.errors.fetch_add(1, Ordering::Relaxed);
                self.errors.count(&e);
                if self.error_samples.len() < ctx.samples {
                    self.error_samples.push(e.to_string());
                }
                return;
            }
        };
        self.answered += 1;
        ctx.live.answered.fetch_add(1, Ordering::Relaxed);
        *self.codes.entry(code).or_default() += 1;
        if o.done >= ctx.window_start && o.done < ctx.end() {
            self.answered_in_window += 1;
            let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
            self.hist
                .saturating_record(us(o.done.saturating_duration_since(o.scheduled)));
            self.lag
                .saturating_record(us(o.sent.saturating_duration_since(o.scheduled)));
        }
        if let Some(text) = mismatch {
            self.mismatches += 1;
            ctx.live.mismatches.fetch_add(1, Ordering::Relaxed);
            if self.mismatch_samples.len() < ctx.samples {
                self.mismatch_samples.push(text);
            }
        }
    }
}

/// Runs the load described by `opts` with `mix` and returns the report. Progress goes to stderr
/// when `opts.progress` is set; nothing else is printed.
pub async fn run(opts: &RunOptions, mix: Arc<Mix>) -> Result<RunReport, RunError> {
    check_options(opts)?;
    let tag: String = (0..4)
        .map(|_| {
            let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            char::from(alphabet[fastrand::usize(0..alphabet.len())])
        })
        .collect();
    let dialer = Arc::new(Dialer {
        target: opts.target.clone(),
        acquirer: opts.acquirer.clone(),
        tag,
        timeout: opts.timeout,
        keys: Arc::clone(&opts.keys),
        tls: Dialer::per_terminal_tls(opts.tls.as_ref(), opts.connections, opts.tls_resumption),
    });
    let connects = (0..opts.connections).map(|i| {
        let dialer = Arc::clone(&dialer);
        async move {
            dialer
                .dial(i, None)
                .await
                .map_err(|source| RunError::Connect {
                    index: i + 1,
                    target: dialer.target.clone(),
                    source,
                })
        }
    });
    let clients = futures::future::try_join_all(connects).await?;
    let template = new_histogram()?;

    let start = Instant::now();
    let window_start = start + opts.warmup;
    let end = window_start + opts.duration;
    let interval = opts.rate.map(|rate| {
        // Per connection: C / rate seconds between sends.
        let nanos = 1_000_000_000u128 * opts.connections as u128 / u128::from(rate.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX).max(1))
    });
    let ctx = Arc::new(Ctx {
        mix,
        expect: opts.expect,
        today: SystemClock.today(),
        start,
        window_start,
        end_ns: AtomicU64::new(u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX)),
        stopped: watch::channel(false).0,
        tasks_done: watch::channel(false).0,
        inflight: opts.inflight,
        requests_per_connection: opts.requests_per_connection,
        dialer,
        interval,
        connections: opts.connections,
        samples: opts.samples,
        live: Live::default(),
        wakers: (0..opts.connections)
            .map(|_| Arc::new(Notify::new()))
            .collect(),
    });
    let pacer_stop = Arc::new(AtomicBool::new(false));
    if let Some(interval) = interval {
        spawn_pacer(&ctx, interval, Arc::clone(&pacer_stop));
    }

    let sampler = tokio::spawn(sample(Arc::clone(&ctx), opts.progress, opts.watch_pid));
    let stopper = opts.stop.clone().map(|token| {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            token.cancelled().await;
            ctx.stop_now();
        })
    });
    let cpu_meter = tokio::spawn(cpu_over_window(Arc::clone(&ctx), opts.watch_pid));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(drive(c, Arc::clone(&ctx), i, template.clone())))
        .collect();
    let mut locals = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(l) => locals.push(l),
            Err(e) => {
                // A connection task that panicked: count it, keep the others' results.
                let mut l = Local::new(template.clone());
                l.errors.other += 1;
                l.error_samples.push(format!("connection task failed: {e}"));
                locals.push(l);
            }
        }
    }
    ctx.tasks_done.send_replace(true);
    pacer_stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap_or_default();
    let cpu_window = cpu_meter.await.ok().flatten();
    // Only now: a stop while the meter still waited must reach it. Awaited, so the report never
    // sees a stop half applied.
    if let Some(stopper) = stopper {
        stopper.abort();
        let _ = stopper.await;
    }
    if opts.progress {
        eprintln!();
    }
    let mut report = merge(
        opts,
        &ctx,
        locals,
        (samples.per_second, samples.middle_s),
        template,
    );
    report.set_cpu(
        cpu_window.map(|w| w.process),
        cpu_window.and_then(|w| w.client),
    );
    if let Some(pid) = opts.watch_pid {
        report.set_watched_rss(pid, samples.rss_kib, samples.rss_at_s);
        report.set_watched_cpu(cpu_window.and_then(|w| w.watched));
    }
    Ok(report)
}

fn check_options(opts: &RunOptions) -> Result<(), RunError> {
    let bad = |m: &str| Err(RunError::Options(m.to_owned()));
    if !(1..=9999).contains(&opts.connections) {
        return bad("connections must be 1 to 9999");
    }
    if !(1..=10_000).contains(&opts.inflight) {
        return bad("in-flight requests per connection must be 1 to 10000");
    }
    if opts.requests_per_connection == Some(0) {
        return bad("requests per connection must be at least 1 (omit it to keep connections)");
    }
    if opts.rate == Some(0) {
        return bad("rate must be greater than 0 (omit it for closed loop)");
    }
    if opts.duration.is_zero() {
        return bad("duration must be greater than 0");
    }
    if opts.warmup > RUN_MAX || opts.duration > RUN_MAX {
        return bad("warmup and duration must each be at most 7 days");
    }
    if opts.timeout.is_zero() || opts.timeout > Duration::from_secs(3600) {
        return bad("timeout must be between 1 ms and 1 hour");
    }
    if let Some(pid) = opts.watch_pid
        && rss_kib(pid).is_none()
    {
        return Err(RunError::Options(format!(
            "--watch-pid {pid}: no such process, or its /proc/{pid}/status cannot be read"
        )));
    }
    Ok(())
}

/// Opens the load's connections: the first ones, and with `requests_per_connection` their
/// replacements, each as the same terminal (field 41) it replaces.
struct Dialer {
    target: String,
    acquirer: String,
    /// The run's tag, the first four characters of every terminal id.
    tag: String,
    timeout: Duration,
    keys: Arc<TerminalKeys>,
    /// Per connection slot: its TLS settings with a session cache of its own, so that each
    /// terminal resumes only the sessions it was given itself, as a real terminal does (one
    /// cache shared by every slot would hold 8 tickets for hundreds of terminals).
    tls: Vec<Option<ClientTls>>,
}

impl Dialer {
    /// The TLS settings of `slots` terminals from `tls`: the same trust and identity, a session
    /// cache each, or with `resume` false none at all.
    fn per_terminal_tls(
        tls: Option<&ClientTls>,
        slots: usize,
        resume: bool,
    ) -> Vec<Option<ClientTls>> {
        let terminal = |t: &ClientTls| {
            if resume {
                t.with_own_sessions()
            } else {
                t.without_resumption()
            }
        };
        (0..slots).map(|_| tls.map(terminal)).collect()
    }

    /// Connection `index`'s terminal, connected (with TLS, handshake done). `first_stan`: where
    /// its STANs go on from, for a replacement; random for a first connection.
    async fn dial(
        &self,
        index: usize,
        first_stan: Option<Stan>,
    ) -> Result<AcquirerClient, ClientError> {
        let cfg = ClientConfig {
            acquirer_id: self.acquirer.clone(),
            terminal_id: format!("{}{:04}", self.tag, index + 1),
            merchant_id: "LOADGEN00000001".into(),
            timeout: self.timeout,
            ..ClientConfig::default()
        };
        let options = ClientOptions {
            keys: Arc::clone(&self.keys),
            tls: self.tls.get(index).cloned().flatten(),
            first_stan,
            ..ClientOptions::default()
        };
        AcquirerClient::connect_with(self.target.as_str(), cfg, options).await
    }
}

/// Where one connection's schedule stands, carried from each connection to its replacement.
struct Schedule {
    /// Open loop: the first send, and the sends made so far.
    first: Instant,
    k: u64,
    /// Closed loop: when each request waiting for a replacement connection would have been
    /// sent (a slot of the connection before came free then, with no request left to send on
    /// it), oldest first. Their latency counts from then: the drain of the old connection and
    /// the opening of the new one are both time they waited.
    waiting: Vec<Instant>,
    /// Open loop: the slot had no connection while sends were still due before the window's end
    /// (the target closed it while it could still carry requests, or a replacement could not
    /// be opened). Its sends left then are not the target's backlog.
    lost: bool,
}

impl Schedule {
    /// Open loop: when the next send is due.
    fn next_send(&self, interval: Duration) -> Instant {
        self.first + nanos(interval).saturating_mul_u64(self.k)
    }
}

/// One connection slot's loop: its connection, and with `requests_per_connection` each
/// replacement in turn, until the window ends. A replacement that cannot be opened is an error,
/// and ends the slot.
async fn drive(client: AcquirerClient, ctx: Arc<Ctx>, index: usize, hist: Histogram<u64>) -> Local {
    let mut local = Local::new(hist);
    let mut client = client;
    let mut sched = Schedule {
        first: ctx
            .interval
            .map_or(ctx.start, |interval| first_send(&ctx, interval, index)),
        k: 0,
        waiting: Vec::new(),
        lost: false,
    };
    loop {
        let used_up = on_connection(&client, &ctx, index, &mut local, &mut sched).await;
        local.unmatched += client.unmatched_responses();
        if !used_up {
            break;
        }
        let opened = Instant::now();
        let next = client.last_stan().next();
        // Dropped before the new one is dialled, as a terminal hangs up first. (Its socket closes
        // once its writer task has flushed, which can overlap the new handshake by a moment: a
        // switch with a tight `[[acquirer]] connections_max` may see both at once.)
        drop(client);
        match ctx.dialer.dial(index, Some(next)).await {
            Ok(c) => {
                let us = u64::try_from(opened.elapsed().as_micros()).unwrap_or(u64::MAX);
                local.connect.saturating_record(us.max(1));
                client = c;
            }
            Err(e) => {
                local.record(
                    Outcome {
                        scheduled: opened,
                        sent: opened,
                        done: Instant::now(),
                        verdict: Verdict::Error(e),
                    },
                    &ctx,
                );
                // Failed after the window, what still waited was late already: backlog.
                sched.lost = opened < ctx.end();
                break;
            }
        }
    }
    if let Some(interval) = ctx.interval {
        // Counted in `merge`, against the window's end as it finally is: a stop after this slot
        // ended moves it earlier.
        local.unsent = Some(Unsent {
            next: sched.next_send(interval),
            lost: sched.lost,
        });
    }
    local
}

/// The sends of one connection until the window ends, the connection closes, or it has carried
/// `requests_per_connection` requests. Returns `true` in the last case, once all of them are
/// answered and the window still runs (closed by then or not): the caller then opens a
/// replacement.
async fn on_connection(
    client: &AcquirerClient,
    ctx: &Ctx,
    index: usize,
    local: &mut Local,
    sched: &mut Schedule,
) -> bool {
    let mut used: u64 = 0;
    let room = |used: u64| ctx.requests_per_connection.is_none_or(|n| used < n);
    match ctx.interval {
        None => {
            // Every slot the connection before left waiting has its time here (see
            // `Schedule::waiting`); a first connection's requests count from now.
            let mut waiting = std::mem::take(&mut sched.waiting).into_iter();
            // A replacement opened as the window closed sends nothing. (A connection already
            // closed still gets its first requests: each fails, and is counted as an error.)
            let open = Instant::now() < ctx.end();
            let mut firsts = Vec::with_capacity(ctx.inflight);
            while open && firsts.len() < ctx.inflight && room(used) {
                firsts.push(waiting.next().unwrap_or_else(Instant::now));
                used += 1;
            }
            local.sent += used;
            // One future per slot, sending its requests one after another for as long as the
            // slot lives, rather than one future per request: a future pushed into
            // `FuturesUnordered` is a task allocated on the heap and the future moved into
            // it, each time (docs/performance.md, "Grids in rounds, and a lighter load
            // client", has what the change measured). The slots run in this
            // task, one at a time, so the lock over the counts they share is never contended
            // (it is a lock, not a cell, because the task moves between threads).
            let used = AtomicU64::new(used);
            let shared = std::sync::Mutex::new((&mut *local, &mut sched.waiting));
            let slot = |first: Instant| {
                let (used, shared) = (&used, &shared);
                async move {
                    let mut at = first;
                    loop {
                        let o = one(client, ctx, at).await;
                        let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                        sh.0.record(o, ctx);
                        if Instant::now() >= ctx.end() {
                            break;
                        }
                        if !room(used.load(Ordering::Relaxed)) {
                            // This slot's next request waits for the replacement from now
                            // (a replacement is dialed whether or not the target has hung up).
                            sh.1.push(Instant::now());
                            break;
                        }
                        if client.is_closed() {
                            break;
                        }
                        sh.0.sent += 1;
                        used.fetch_add(1, Ordering::Relaxed);
                        at = Instant::now();
                    }
                }
            };
            let mut slots: FuturesUnordered<_> = firsts.into_iter().map(slot).collect();
            while slots.next().await.is_some() {}
            drop(slots);
            return !room(used.into_inner()) && Instant::now() < ctx.end();
        }
        Some(interval) => {
            let mut inflight = FuturesUnordered::new();
            let wake = ctx.wakers.get(index).cloned().unwrap_or_default();
            loop {
                let now = Instant::now();
                let closed = client.is_closed();
                if closed && room(used) && now < ctx.end() && sched.next_send(interval) < ctx.end()
                {
                    // Closed with sends still due inside the window. (Closed after the window,
                    // the sends still waiting were late already: backlog. Closed once used up,
                    // as a target that hangs up after each answer does, it is being replaced,
                    // not lost: sends it could not take by the end are backlog too, unless the
                    // replacement cannot be opened, which `drive` counts.)
                    sched.lost = true;
                }
                let open = now < ctx.end() + LATE_SEND_GRACE && !closed;
                while open && inflight.len() < ctx.inflight && room(used) {
                    let scheduled = sched.next_send(interval);
                    if scheduled > now || scheduled >= ctx.end() {
                        break;
                    }
                    inflight.push(one(client, ctx, scheduled));
                    local.sent += 1;
                    used += 1;
                    sched.k += 1;
                }
                let next = sched.next_send(interval);
                let can_send = open && next < ctx.end() && room(used);
                if !can_send && inflight.is_empty() {
                    break;
                }
                let slot = can_send && inflight.len() < ctx.inflight;
                tokio::select! {
                    Some(o) = inflight.next(), if !inflight.is_empty() => local.record(o, ctx),
                    () = wake.notified(), if slot => {}
                    // In case the pacer is late or gone: tokio's own timer, a little after.
                    () = tokio::time::sleep_until((next + FALLBACK_WAKE).into()), if slot => {}
                    else => break,
                }
            }
        }
    }
    let window_open = match ctx.interval {
        None => Instant::now() < ctx.end(),
        Some(interval) => {
            sched.next_send(interval) < ctx.end() && Instant::now() < ctx.end() + LATE_SEND_GRACE
        }
    };
    // Used up, a terminal dials again even if the target has hung up meanwhile (whether it had
    // is a race with the last answer); a target that is gone fails the dial, and that is a lost
    // connection.
    !room(used) && window_open
}

/// Open loop: the first send of connection `index`; connections are staggered evenly over one
/// interval.
fn first_send(ctx: &Ctx, interval: Duration, index: usize) -> Instant {
    let offset = interval.as_nanos() * index as u128 / ctx.connections.max(1) as u128;
    ctx.start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

/// A duration as whole nanoseconds, for multiplying.
fn nanos(d: Duration) -> Nanos {
    Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[derive(Clone, Copy)]
struct Nanos(u64);

impl Nanos {
    fn saturating_mul_u64(self, k: u64) -> Duration {
        Duration::from_nanos(self.0.saturating_mul(k))
    }
}

/// Open loop: wakes each connection's task at its scheduled send times from a dedicated thread
/// until `ctx.end()` (or until `stop`). A connection that is behind is woken once, and sends
/// everything due (as far as its free slots allow); the pacer then moves on to its next send
/// after now.
fn spawn_pacer(ctx: &Arc<Ctx>, interval: Duration, stop: Arc<AtomicBool>) {
    let ctx = Arc::clone(ctx);
    let spawned = std::thread::Builder::new()
        .name("loadgen-pacer".into())
        .spawn(move || {
            let step = nanos(interval);
            let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..ctx.connections)
                .map(|i| Reverse((first_send(&ctx, interval, i), i)))
                .collect();
            while let Some(Reverse((t, i))) = due.pop() {
                if t >= ctx.end() {
                    continue;
                }
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let now = Instant::now();
                    if t <= now {
                        break;
                    }
                    // Short naps, so that a stop is noticed even at low rates.
                    std::thread::sleep((t - now).min(Duration::from_millis(100)));
                }
                if let Some(w) = ctx.wakers.get(i) {
                    w.notify_one();
                }
                let now = Instant::now();
                let behind =
                    now.saturating_duration_since(t).as_nanos() / u128::from(step.0.max(1));
                let k = u64::try_from(behind).unwrap_or(u64::MAX).saturating_add(1);
                due.push(Reverse((t + step.saturating_mul_u64(k), i)));
            }
        });
    if let Err(e) = spawned {
        // The connections fall back on tokio's timer.
        tracing::warn!(error = %e, "loadgen: no pacer thread; open-loop sends use tokio's timer");
    }
}

/// Builds, sends and checks one request.
async fn one(client: &AcquirerClient, ctx: &Ctx, scheduled: Instant) -> Outcome {
    ctx.live.sent.fetch_add(1, Ordering::Relaxed);
    let sent = Instant::now();
    let mix = &ctx.mix;
    let pick = mix.pick();
    let txn = &mix.txns[pick.txn];
    let set = &mix.sets[txn.set];
    let amount = pick.amount.map(|m| Amount::new(m, mix.currency));
    let prepared = match client.prepare(txn.action.kind(), pick.pan, amount, &txn.options) {
        Ok(p) => p,
        Err(e) => {
            return Outcome {
                scheduled,
                sent,
                done: Instant::now(),
                verdict: Verdict::Error(e),
            };
        }
    };
    // An answer's round trip ends when it was read off the socket, as wrk2 times it: not when
    // this task got round to checking it, which would add the generator's own wake-ups to the
    // target's latency. Errors end when they are seen.
    let mut done = None;
    let verdict = match ctx.expect {
        Expect::Switch => match client.send_prepared(&prepared).await {
            Ok(result) => {
                done = Some(result.received_at);
                let want = txn.expect.unwrap_or_else(|| {
                    model::expected(set, txn.action, pick.pan, amount, txn.expiry, ctx.today)
                });
                let code = ResponseCode::as_str(&result.response_code);
                match model::check_switch(want, &prepared, &result) {
                    Ok(()) => Verdict::Ok(code),
                    Err(text) => Verdict::Mismatch(code, format!("{}: {text}", txn.name)),
                }
            }
            Err(e) => Verdict::Error(e),
        },
        Expect::Echo => match client.send_prepared_raw(&prepared).await {
            Ok((answer, received_at)) => {
                done = Some(received_at);
                match model::check_echo(&prepared, &answer) {
                    Ok(()) => Verdict::Ok("echo"),
                    Err(text) => Verdict::Mismatch("echo", text),
                }
            }
            Err(e) => Verdict::Error(e),
        },
    };
    Outcome {
        scheduled,
        sent,
        done: done.unwrap_or_else(Instant::now),
        verdict,
    }
}

/// What the sampler saw: answers per second in each bucket with the bucket's middle, and the
/// watched process's RSS with the moment it was read. The times are seconds since the start:
/// a bucket is a second only when the sampler wakes on time, and the last one is shorter.
#[derive(Debug, Default)]
struct Samples {
    per_second: Vec<u64>,
    middle_s: Vec<f64>,
    rss_kib: Vec<u64>,
    rss_at_s: Vec<f64>,
}

/// Samples the answered count every second (for the throughput series), and the watched
/// process's RSS when asked, and prints the progress line when asked.
async fn sample(ctx: Arc<Ctx>, progress: bool, watch_pid: Option<u32>) -> Samples {
    let mut tasks_done = ctx.tasks_done.subscribe();
    let mut out = Samples::default();
    let since_start = |t: Instant| t.saturating_duration_since(ctx.start).as_secs_f64();
    let mut last = 0u64;
    let mut last_at = ctx.start;
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(ctx.start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let done = tokio::select! {
            _ = tick.tick() => false,
            _ = tasks_done.wait_for(|d| *d) => true,
        };
        // A busy machine wakes this task late: divide by the time that really passed.
        let now = Instant::now();
        let answered = ctx.live.answered.load(Ordering::Relaxed);
        let elapsed = now.saturating_duration_since(last_at);
        if done && (elapsed < LAST_BUCKET_MIN || answered == last) {
            break;
        }
        let rate = u128::from(answered - last) * 1_000_000_000 / elapsed.as_nanos().max(1);
        let middle = last_at + elapsed / 2;
        out.per_second.push(u64::try_from(rate).unwrap_or(u64::MAX));
        out.middle_s.push(since_start(middle));
        let watched = watch_pid.and_then(rss_kib);
        if let Some(kib) = watched {
            out.rss_kib.push(kib);
            out.rss_at_s.push(since_start(now));
        }
        (last, last_at) = (answered, now);
        if done {
            // The last, shorter bucket: no progress line for it.
            break;
        }
        if progress {
            let phase = if middle < ctx.window_start {
                "warmup"
            } else if middle < ctx.end() {
                "run"
            } else {
                "drain"
            };
            let sent = ctx.live.sent.load(Ordering::Relaxed);
            let errors = ctx.live.errors.load(Ordering::Relaxed);
            let mismatches = ctx.live.mismatches.load(Ordering::Relaxed);
            let mut line = format!(
                "[{:>4} s] {phase:<6} {:>9} req/s  answered {:>11}  in flight {:>6}  errors {}  mismatches {}",
                out.per_second.len(),
                super::thousands(*out.per_second.last().unwrap_or(&0)),
                super::thousands(answered),
                sent.saturating_sub(answered + errors),
                super::thousands(errors),
                super::thousands(mismatches),
            );
            if let Some(kib) = watched {
                let _ = write!(line, "  rss {:.1} MiB", kib as f64 / 1024.0);
            }
            let mut err = std::io::stderr().lock();
            if tty {
                let _ = write!(err, "\r{line}\x1b[K");
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
        }
    }
    out
}

/// The resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`); `None` when
/// the process is gone or the file cannot be read (not Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The process's CPU time (user + system, every thread) spent inside the measured window, in
/// microseconds; the part of it spent on the load client's own threads
/// ([`client_threads_cpu`]) when they can be told apart; and the watched process's. Waiting
/// for the window's edges is measurement, not synchronisation: nothing depends on it but this
/// figure. `None` where `getrusage` fails.
async fn cpu_over_window(ctx: Arc<Ctx>, watch_pid: Option<u32>) -> Option<WindowCpu> {
    let mut stopped = ctx.stopped.subscribe();
    let mut tasks_done = ctx.tasks_done.subscribe();
    // Every connection gone before the window even began: nothing to measure.
    tokio::select! {
        () = tokio::time::sleep_until(ctx.window_start.into()) => {}
        _ = stopped.wait_for(|s| *s) => {}
        _ = tasks_done.wait_for(|d| *d) => return None,
    }
    if ctx.end() <= ctx.window_start {
        // Stopped during the warmup: no window to measure.
        return None;
    }
    let before = process_cpu_us()?;
    let client_before = client_threads_cpu();
    let watched_before = watch_pid.and_then(pid_cpu_us);
    tokio::select! {
        () = tokio::time::sleep_until(ctx.end().into()) => {}
        _ = stopped.wait_for(|s| *s) => {}
        // The connections ended early (the target closed them): the CPU so far.
        _ = tasks_done.wait_for(|d| *d) => {}
    }
    let watched_after = watch_pid.and_then(pid_cpu_us);
    let client_after = client_threads_cpu();
    let process = process_cpu_us()?.saturating_sub(before);
    // Read between the process's two readings, so never more than it (`RunReport::set_cpu`
    // drops a share that is).
    let client = client_before.zip(client_after).map(|(b, a)| a.since(&b));
    Some(WindowCpu {
        process,
        client,
        // A watched process that went away in the window has no figure.
        watched: watched_before
            .zip(watched_after)
            .map(|(b, a)| a.saturating_sub(b)),
    })
}

/// CPU time spent inside the measured window, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCpu {
    /// Every thread of the process.
    pub process: u64,
    /// The load client's threads only, when it runs on threads of its own ([`CLIENT_THREAD`]).
    pub client: Option<u64>,
    /// The process `--watch-pid` names (the switch, run apart), every thread of it.
    pub watched: Option<u64>,
}

/// The name of the load client's threads when it runs on a runtime of its own (`loadgen grid`
/// does), so that its CPU time can be told from the servers' in the same process. At most 15
/// bytes: Linux keeps no more of a thread's name.
pub const CLIENT_THREAD: &str = "loadgen-client";

/// The names of every thread that belongs to the load client: its runtime's, and the open
/// loop's pacer.
const CLIENT_THREADS: [&str; 2] = [CLIENT_THREAD, "loadgen-pacer"];

/// CPU time so far of each live thread of this process that belongs to the load client
/// ([`CLIENT_THREADS`]), nanoseconds by thread id; `None` unless the client has a runtime of its
/// own (a thread named [`CLIENT_THREAD`]): a pacer alone does not make the process's other
/// threads servers, it only means the client shares its runtime with them. `None` too where
/// `/proc` cannot be read (not Linux).
pub fn client_threads_cpu() -> Option<ThreadTimes> {
    let t = threads_cpu(&CLIENT_THREADS)?;
    t.has_runtime.then_some(t)
}

/// CPU time so far of live threads, nanoseconds by thread id, from [`threads_cpu`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadTimes {
    ns: BTreeMap<u32, u64>,
    /// Whether one of them is named [`CLIENT_THREAD`].
    has_runtime: bool,
}

impl ThreadTimes {
    /// The CPU time these threads spent since `earlier`, microseconds. Each thread counts from
    /// its own earlier reading, or from its start if it began since; a thread that ended since
    /// is left out, rather than taking its whole life away from the others.
    pub fn since(&self, earlier: &ThreadTimes) -> u64 {
        let ns: u64 = self
            .ns
            .iter()
            .map(|(tid, now)| now.saturating_sub(earlier.ns.get(tid).copied().unwrap_or(0)))
            .sum();
        ns / 1000
    }
}

/// CPU time so far of the live threads of this process whose name is one of `names`, by thread
/// id, from `/proc/self/task/*/schedstat` (the scheduler's nanosecond count of time on a CPU,
/// user and system alike; `stat`'s ticks are 10 ms, too coarse for a 5 s window, and stand in
/// only where the kernel keeps no scheduler statistics). `None` when no thread has one of the
/// names, or `/proc` cannot be read.
pub fn threads_cpu(names: &[&str]) -> Option<ThreadTimes> {
    let mut times = ThreadTimes::default();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = task.path();
        // A thread that ended since the listing: skip it.
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let name = comm.trim_end_matches('\n');
        if !names.contains(&name) {
            continue;
        }
        if let Some(ns) = thread_cpu_ns(&dir) {
            times.ns.insert(tid, ns);
            times.has_runtime |= name == CLIENT_THREAD;
        }
    }
    (!times.ns.is_empty()).then_some(times)
}

/// One thread's CPU time so far, nanoseconds, from its `/proc/self/task/TID` folder.
fn thread_cpu_ns(dir: &Path) -> Option<u64> {
    // A kernel built without scheduler statistics has no `schedstat`, or prints zeros there; a
    // thread that ever ran has been scheduled at least once (the third field), so zero there
    // means "not kept". Either way the coarser `stat` ticks stand in, rather than no figure or
    // a CPU time of nothing.
    if let Ok(sched) = std::fs::read_to_string(dir.join("schedstat")) {
        let fields: Vec<u64> = sched
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if let [ns, _, scheduled, ..] = fields[..]
            && scheduled > 0
        {
            return Some(ns);
        }
    }
    stat_cpu_ns(&std::fs::read_to_string(dir.join("stat")).ok()?)
}

/// CPU time so far of process `pid`, every thread of it (those that ended included),
/// microseconds, from `/proc/<pid>/stat`: clock ticks, 10 ms on Linux, so over a window of
/// seconds the figure is good to a few tenths of a percent of a busy process. `None` when the
/// process is gone or the file cannot be read (not Linux).
pub fn pid_cpu_us(pid: u32) -> Option<u64> {
    stat_cpu_ns(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|ns| ns / 1000)
}

/// User plus system time of a `/proc/.../stat` line, nanoseconds.
fn stat_cpu_ns(stat: &str) -> Option<u64> {
    // The name in parentheses may hold spaces: fields are counted after its closing one.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let (utime, stime): (u64, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    // SAFETY: sysconf reads a constant of the system.
    let ticks = u128::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|t| *t > 0)?;
    // In u128: ticks times 10^9 pass u64 after about six CPU-years, which a busy process of
    // many cores reaches in weeks.
    u64::try_from(u128::from(utime + stime) * 1_000_000_000 / ticks).ok()
}

/// User plus system CPU time of the whole process so far, microseconds.
pub fn process_cpu_us() -> Option<u64> {
    // SAFETY: getrusage only writes the struct we pass, which is plain old data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let us = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    Some(us(usage.ru_utime) + us(usage.ru_stime))
}

fn merge(
    opts: &RunOptions,
    ctx: &Ctx,
    locals: Vec<Local>,
    (per_second, per_second_at_s): (Vec<u64>, Vec<f64>),
    mut hist: Histogram<u64>,
) -> RunReport {
    let mut lag = hist.clone();
    let mut connect = hist.clone();
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = ErrorCounts::default();
    let (mut answered, mut in_window, mut sent, mut mismatches) = (0, 0, 0, 0);
    let (mut backlog, mut unsent_no_connection, mut unmatched) = (0, 0, 0);
    let mut mismatch_samples = Vec::new();
    let mut error_samples = Vec::new();
    for l in locals {
        let _ = hist.add(&l.hist);
        let _ = lag.add(&l.lag);
        let _ = connect.add(&l.connect);
        for (c, n) in l.codes {
            *codes.entry(c.to_owned()).or_default() += n;
        }
        errors.add(&l.errors);
        answered += l.answered;
        in_window += l.answered_in_window;
        sent += l.sent;
        mismatches += l.mismatches;
        if let (Some(interval), Some(u)) = (ctx.interval, &l.unsent) {
            // Scheduled inside the run but never sent: the target fell behind, or the slot had
            // no connection to send them on.
            let n = u.count(interval, ctx.end());
            if u.lost {
                unsent_no_connection += n;
            } else {
                backlog += n;
            }
        }
        unmatched += l.unmatched;
        for s in l.mismatch_samples {
            if mismatch_samples.len() < ctx.samples {
                mismatch_samples.push(s);
            }
        }
        for s in l.error_samples {
            if error_samples.len() < ctx.samples {
                error_samples.push(s);
            }
        }
    }
    RunReport::build(super::report::Parts {
        label: opts.label.clone(),
        target: opts.target.clone(),
        expect: opts.expect,
        connections: opts.connections,
        inflight: opts.inflight,
        rate: opts.rate,
        warmup: opts.warmup,
        // Shorter than asked when the run was stopped early.
        duration: ctx.end().saturating_duration_since(ctx.window_start),
        interrupted: *ctx.stopped.borrow(),
        mix: ctx.mix.origin.clone(),
        hist,
        lag,
        codes,
        errors,
        answered,
        answered_in_window: in_window,
        sent,
        mismatches,
        mismatch_samples,
        error_samples,
        backlog,
        unsent_no_connection,
        unmatched,
        requests_per_connection: opts.requests_per_connection,
        connect,
        per_second,
        per_second_at_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's own CPU time so far, microseconds.
    fn own_cpu_us() -> u64 {
        // SAFETY: clock_gettime only writes the struct we pass, which is plain old data.
        let mut t: libc::timespec = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) },
            0
        );
        u64::try_from(t.tv_sec).unwrap() * 1_000_000 + u64::try_from(t.tv_nsec).unwrap() / 1000
    }

    /// Threads are found by name, and their CPU time is the scheduler's: a thread that has
    /// spent 30 ms on a CPU reads as at least that; a name no thread has reads as none.
    #[test]
    fn the_cpu_time_of_threads_by_name() {
        const NAME: &str = "cpu-test-spin";
        let (spent_tx, spent_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name(NAME.into())
            .spawn(move || {
                let mut x = 1u64;
                while own_cpu_us() < 30_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                spent_tx.send(own_cpu_us()).unwrap();
                // Alive until read: a thread that ends takes its time with it.
                done_rx.recv().unwrap();
                x
            })
            .unwrap();
        let spent = spent_rx.recv().unwrap();
        let times = threads_cpu(&[NAME]).expect("the spinning thread");
        let read = times.since(&ThreadTimes::default());
        // The scheduler's count is exact; where the kernel keeps none, `stat`'s ticks truncate
        // user and system time to 10 ms each.
        assert!(
            read + 20_000 >= spent,
            "read {read} us, the thread had spent {spent} us"
        );
        assert!(read >= 10_000, "{read}");
        assert_eq!(times.ns.len(), 1);
        // Not the client's runtime: a thread of another name.
        assert!(!times.has_runtime);
        assert_eq!(threads_cpu(&["no-such-thread"]), None);
        done_tx.send(()).unwrap();
        spinner.join().unwrap();
    }

    /// Where the kernel keeps no scheduler statistics (`schedstat` all zeros), a thread's time
    /// comes from `stat`'s ticks, counted past a name that holds spaces and parentheses.
    #[test]
    fn a_thread_time_without_scheduler_statistics() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("schedstat"), "0 0 0\n").unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "4242 (a (b) c) S 1 1 1 0 -1 4194304 10 0 0 0 250 50 0 0 20 0 1 0 5 0 0\n",
        )
        .unwrap();
        // SAFETY: sysconf reads a constant of the system.
        let ticks = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap();
        assert_eq!(thread_cpu_ns(dir.path()), Some(300 * 1_000_000_000 / ticks));
        std::fs::write(dir.path().join("schedstat"), "123456 789 3\n").unwrap();
        assert_eq!(thread_cpu_ns(dir.path()), Some(123_456));
        // A kernel without `schedstat` at all.
        std::fs::remove_file(dir.path().join("schedstat")).unwrap();
        assert_eq!(thread_cpu_ns(dir.path()), Some(300 * 1_000_000_000 / ticks));
    }

    /// Each thread counts from its own earlier reading: one that began since counts whole, one
    /// that ended since is left out instead of taking its time from the others.
    #[test]
    fn thread_times_are_differenced_thread_by_thread() {
        let at = |pairs: &[(u32, u64)]| ThreadTimes {
            ns: pairs.iter().copied().collect(),
            has_runtime: true,
        };
        let before = at(&[(1, 1_000_000), (2, 5_000_000), (3, 9_000_000)]);
        // 2 ended; 4 began.
        let after = at(&[(1, 3_000_000), (3, 9_500_000), (4, 700_000)]);
        assert_eq!(after.since(&before), 2_000 + 500 + 700);
        assert_eq!(before.since(&before), 0);
    }

    /// A watched process's CPU time is its whole `stat` line's: this process, read after a
    /// thread of it spent 50 ms and ended, counts that thread's time too; a process that is
    /// not there reads as none.
    #[test]
    fn the_cpu_time_of_a_process_by_pid() {
        let me = std::process::id();
        let before = pid_cpu_us(me).expect("this process");
        let spent = std::thread::spawn(|| {
            let mut x = 1u64;
            while own_cpu_us() < 50_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            own_cpu_us()
        })
        .join()
        .unwrap();
        let after = pid_cpu_us(me).expect("this process");
        // Ticks of 10 ms, user and system each truncated: a reading may fall short by up to
        // two of them, so the thread's 50 ms show as at least 30.
        assert!(
            after.saturating_sub(before) >= 30_000,
            "{before} -> {after} us, the thread spent {spent} us"
        );
        // Past the kernel's largest pid (4,194,304): no such process.
        assert_eq!(pid_cpu_us(u32::MAX), None);
    }
}
