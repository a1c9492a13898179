//! `switch demo --days N`: a month in seconds. The whole stack of `switch demo` (the default
//! configuration's remote issuer hosts and the switch with its on-us issuers, each on its own
//! TCP port) runs on a [`ManualClock`] through N business days from 2026-05-02, and each day:
//!
//! 1. the clock is set to 09:00 UTC and a small fixed workload over the test cards goes through
//!    the switch, one request at a time, the clock moving three minutes per request
//!    ([`plan`]: purchases, a preauthorization completed the next day, a purchase reversed, a
//!    refund, credit-card payments, cash advances, a prepaid load, declines);
//! 2. the clock moves past the cutover (23:00 UTC), and the day is closed and settled
//!    ([`crate::clearing::cutover`], [`crate::clearing::settle`]) into `<out>/reports/<date>/`;
//! 3. after midnight, when any account's billing cycle closed that day, the stack is stopped, the
//!    cycle is closed for every issuer ([`crate::statements::run`]: a remote issuer's statements
//!    from its host's journal, the on-us issuers' from the switch's) into
//!    `<out>/reports/statements/<issuer>/<date>/`, and the stack is started again, replaying the
//!    closes.
//!
//! It ends with a credit statement and the last day's settlement report on screen. With 35 days
//! (2026-05-02 to 2026-06-05) North Bank's account NB-0001 closes two cycles: the first on
//! 05-05, the second on 06-05 with purchases, a cash advance, a payment made after the due date,
//! so no grace period, interest on purchases and on cash, and a late fee. Everything is
//! deterministic (one request at a time, fixed STANs, the manual clock), so
//! `tests/demo_month.rs` pins the figures.
//!
//! Why stop the stack for statements rather than post closes into running engines: a close is a
//! ledger event with the engine's next sequence number and the journal's next LSN, which belong
//! to the process writing that journal (see [`crate::statements`]). The demo does what an
//! operator does, in-process: stop, run statements, start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, NaiveDateTime};

use super::{DemoError, issuer_file_path, setup, start_host, wait_signed_on};
use crate::clearing::{FeeSchedule, Job, Settlement};
use crate::client::{AcquirerClient, ClientConfig, ClientOptions, TxnOptions, TxnResult};
use crate::clock::{Clock, ManualClock};
use crate::config::{Config, IssuerKind};
use crate::domain::{Amount, Currency, Stan};
use crate::host::IssuerHost;
use crate::issuing::statement as stmt;
use crate::issuing::statement::render::Format;
use crate::issuing::{Engine, ProductKind};
use crate::journal::JournalOptions;
use crate::net::start::{StartOptions, SwitchServer};
use crate::security::KeysFile;
use crate::statements::{self, Delivered, IssuerRun};
use crate::terminal::PinSetup;

/// How long the demo's clients and the switch's issuer links wait for an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The first business day of the month demo.
pub fn start_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 5, 2).unwrap_or_default()
}

/// What to run.
#[derive(Debug, Clone)]
pub struct MonthOptions {
    /// The switch's configuration; remote issuers' files are `<its folder>/issuers/<id>.toml`.
    pub config: PathBuf,
    /// Journals (`journals/`), clearing and settlement (`reports/<date>/`) and statements
    /// (`reports/statements/`) go here.
    pub out: PathBuf,
    /// Business days to run.
    pub days: u32,
    /// The first business day.
    pub start: NaiveDate,
    /// Print a line per day and per statement run as it goes.
    pub progress: bool,
}

impl MonthOptions {
    /// `days` from [`start_date`], with progress lines.
    pub fn new(config: PathBuf, out: PathBuf, days: u32) -> MonthOptions {
        MonthOptions {
            config,
            out,
            days,
            start: start_date(),
            progress: true,
        }
    }
}

/// One business day's traffic and settlement.
#[derive(Debug, Clone)]
pub struct Day {
    pub date: NaiveDate,
    pub requests: u64,
    pub approved: u64,
    /// Items cleared that day (reversals of earlier days included).
    pub cleared: usize,
    /// Completions or reversals with nothing to act on (none, when all is well).
    pub exceptions: usize,
    pub settlement: Settlement,
}

/// What the month produced.
#[derive(Debug)]
pub struct Month {
    pub out: PathBuf,
    pub days: Vec<Day>,
    /// Every statement written, in the order of the runs (cycle end, then issuer in
    /// configuration order, then account).
    pub statements: Vec<Delivered>,
    pub elapsed: Duration,
}

impl Month {
    /// The statements of account `account` (of any issuer), oldest first.
    pub fn statements_of(&self, account: &str) -> impl Iterator<Item = &Delivered> {
        self.statements
            .iter()
            .filter(move |d| d.statement.account == account)
    }

    /// The credit statement to show: of the latest cycle end, the one with the most lines.
    pub fn featured(&self) -> Option<&Delivered> {
        self.statements
            .iter()
            .filter(|d| d.statement.kind == ProductKind::Credit)
            .max_by_key(|d| (d.statement.period_end, d.statement.lines.len()))
    }

    /// The last day's settlement.
    pub fn last_settlement(&self) -> Option<&Settlement> {
        self.days.last().map(|d| &d.settlement)
    }

    /// Where a business day's reports are.
    pub fn day_dir(&self, date: NaiveDate) -> PathBuf {
        self.out.join("reports").join(date.to_string())
    }

    /// What the demo prints at the end: a summary, the featured statement and the last
    /// settlement report (both as their text files hold them), and where everything is.
    pub fn closing_text(&self) -> String {
        use core::fmt::Write;
        let mut o = String::new();
        let requests: u64 = self.days.iter().map(|d| d.requests).sum();
        let approved: u64 = self.days.iter().map(|d| d.approved).sum();
        let (first, last) = match (self.days.first(), self.days.last()) {
            (Some(f), Some(l)) => (f.date, l.date),
            _ => return "no business day ran\n".into(),
        };
        let _ = writeln!(
            o,
            "\n{} business days, {first} to {last}, in {:.2} s: {requests} requests ({approved} approved), {} statements",
            self.days.len(),
            self.elapsed.as_secs_f64(),
            self.statements.len()
        );
        if let Some(d) = self.featured() {
            let text = d
                .files
                .iter()
                .find(|p| p.extension().is_some_and(|e| e == "txt"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_else(|| Format::Text.render(&d.statement).unwrap_or_default());
            let _ = writeln!(
                o,
                "\n==== credit statement {} of {}, {} to {} ====\n{text}",
                d.statement.account,
                d.statement.issuer_name,
                d.statement.period_start,
                d.statement.period_end
            );
        }
        let settlement = self.day_dir(last).join("settlement.txt");
        if let Ok(text) = std::fs::read_to_string(&settlement) {
            let _ = writeln!(o, "==== settlement, business day {last} ====\n{text}");
        }
        let _ = writeln!(o, "files:");
        if let Some(d) = self.featured() {
            for f in &d.files {
                let _ = writeln!(o, "  {}", f.display());
            }
        }
        let _ = writeln!(
            o,
            "  {}/<issuer>/<cycle-end>/    every statement",
            self.out.join("reports").join("statements").display()
        );
        let _ = writeln!(
            o,
            "  {}/<date>/    clearing, settlement, merchant statements",
            self.out.join("reports").display()
        );
        let _ = writeln!(o, "  {}    journals", self.out.join("journals").display());
        o
    }
}

/// Card numbers of the published test set the workload uses.
mod cards {
    /// North Bank NB-0001: limit 10,000.00, cash 2,000.00, cycle closes on the 5th.
    pub const CREDIT: &str = "4111110000000013";
    /// North Bank NB-0004: limit 100.00, cycle closes on the 20th.
    pub const CREDIT_SMALL: &str = "4111110000000047";
    /// North Bank, lost: 41.
    pub const CREDIT_LOST: &str = "4111110000000021";
    /// East Bank EB-0001: 5,000.00, calendar-month statements.
    pub const DEBIT: &str = "6222020000000015";
    /// Metro Pay MP-0001 (on-us): 200.00, calendar-month statements.
    pub const PREPAID: &str = "6050010000000013";
    /// Metro Pay MP-0002 (on-us): 0.00, so 51.
    pub const PREPAID_EMPTY: &str = "6050010000000021";
}

/// The two acquirers of the default configuration, one terminal and merchant each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquirer {
    /// 100001, Harbor Acquiring: a grocery.
    Harbor,
    /// 100002, Summit Merchant Services: a hotel and cafe.
    Summit,
}

impl Acquirer {
    fn config(self) -> ClientConfig {
        let (acquirer, terminal, merchant) = match self {
            Acquirer::Harbor => ("100001", "HARBOR01", "HARBORGROCER01"),
            Acquirer::Summit => ("100002", "SUMMIT01", "SUMMITHOTEL001"),
        };
        ClientConfig {
            acquirer_id: acquirer.into(),
            terminal_id: terminal.into(),
            merchant_id: merchant.into(),
            timeout: ANSWER_TIMEOUT,
            ..ClientConfig::default()
        }
    }
}

/// One request of a day's workload (amounts in major units of CNY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Purchase(Acquirer, &'static str, &'static str),
    /// A purchase, then its full reversal (0400).
    PurchaseReversed(Acquirer, &'static str, &'static str),
    /// A preauthorization (0100), completed by the next [`Step::Complete`].
    Preauth(Acquirer, &'static str, &'static str),
    /// Completes (0220) the preauthorization of an earlier day, for this amount.
    Complete(&'static str),
    Refund(Acquirer, &'static str, &'static str),
    /// A payment to a credit account (processing code 21).
    Payment(Acquirer, &'static str, &'static str),
    Cash(Acquirer, &'static str, &'static str),
    /// A prepaid load (21).
    Load(Acquirer, &'static str, &'static str),
    Balance(Acquirer, &'static str),
}

/// Day `i`'s workload (day 0 is [`start_date`]'s; `date` is its date). The same every run.
///
/// Every day: a debit purchase (10.00 to 20.00), a prepaid purchase of 2.00 every other day, now
/// and then a declined one (a lost card, an empty prepaid card). On fixed dates, the story of
/// NB-0001 and NB-0004 (see the module documentation and `tests/demo_month.rs`).
pub fn plan(i: u32, date: NaiveDate) -> Vec<Step> {
    use Acquirer::{Harbor, Summit};
    use Step::*;
    use cards::*;
    const DEBIT_AMOUNTS: [&str; 5] = ["10.00", "12.50", "15.00", "17.50", "20.00"];
    let mut steps = vec![Purchase(Summit, DEBIT, DEBIT_AMOUNTS[(i % 5) as usize])];
    if i.is_multiple_of(2) {
        steps.push(Purchase(Harbor, PREPAID, "2.00"));
    }
    if i % 7 == 3 {
        steps.push(Purchase(Harbor, CREDIT_LOST, "20.00"));
    }
    if i % 10 == 6 {
        steps.push(Purchase(Harbor, PREPAID_EMPTY, "5.00"));
    }
    let month_day = date.format("%m-%d").to_string();
    steps.extend(match month_day.as_str() {
        "05-02" => vec![Purchase(Harbor, CREDIT, "250.00")],
        "05-03" => vec![Preauth(Summit, CREDIT, "120.00")],
        "05-04" => vec![
            Complete("135.00"),
            PurchaseReversed(Harbor, CREDIT, "60.00"),
        ],
        "05-05" => vec![Refund(Harbor, CREDIT, "30.00")],
        "05-06" => vec![Purchase(Summit, CREDIT_SMALL, "40.00")],
        "05-08" => vec![Purchase(Summit, CREDIT, "89.90")],
        // Over NB-0004's limit of 100.00: 51.
        "05-09" => vec![Purchase(Harbor, CREDIT_SMALL, "70.00")],
        "05-10" => vec![Load(Harbor, PREPAID, "50.00")],
        "05-12" => vec![Cash(Summit, CREDIT, "200.00")],
        "05-14" => vec![Cash(Harbor, CREDIT_SMALL, "20.00")],
        "05-15" => vec![Cash(Summit, DEBIT, "100.00")],
        "05-16" => vec![Purchase(Harbor, CREDIT, "45.00")],
        "05-18" => vec![Refund(Summit, DEBIT, "12.50")],
        "05-20" => vec![Balance(Harbor, CREDIT)],
        "05-21" => vec![Purchase(Summit, CREDIT, "120.00")],
        // NB-0004 pays its 05-20 statement in full, on time.
        "05-25" => vec![Payment(Harbor, CREDIT_SMALL, "60.07")],
        "05-27" => vec![Purchase(Harbor, CREDIT, "15.50")],
        "06-01" => vec![Purchase(Summit, CREDIT_SMALL, "25.00")],
        // NB-0001's 05-05 statement was due 05-30: this payment is late.
        "06-02" => vec![Payment(Harbor, CREDIT, "100.00")],
        "06-04" => vec![Purchase(Summit, CREDIT, "64.00")],
        "06-05" => vec![Purchase(Harbor, CREDIT_SMALL, "18.00")],
        _ => Vec::new(),
    });
    steps
}

/// The remote issuers' hosts and the switch, started together and stopped together.
struct Stack {
    server: SwitchServer,
    hosts: Vec<IssuerHost>,
}

/// A remote issuer of the demo: its issuer file and its host's journal.
struct Remote {
    id: String,
    file: PathBuf,
    journal: PathBuf,
}

/// What stays the same across the stack's restarts.
struct Setup {
    config: Config,
    keys: KeysFile,
    clock: Arc<ManualClock>,
    remotes: Vec<Remote>,
    /// On-us issuers: id and issuer file.
    on_us: Vec<(String, PathBuf)>,
}

impl Setup {
    /// Starts the hosts (fresh ports), then the switch pointed at them, and waits until every
    /// remote link has signed on.
    async fn start(&mut self) -> Result<Stack, DemoError> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let mut hosts = Vec::new();
        for r in &self.remotes {
            let host = start_host(
                &r.id,
                &r.file,
                &r.journal,
                "127.0.0.1:0",
                clock.clone(),
                &self.keys,
            )
            .await?;
            if let Some(ic) = self.config.issuers.iter_mut().find(|i| i.id == r.id) {
                ic.endpoints = vec![host.local_addr().to_string()];
            }
            hosts.push(host);
        }
        let server = SwitchServer::start(StartOptions {
            config: self.config.clone(),
            keys: self.keys.clone(),
            clock,
            on_us: Arc::new(crate::onus::engine_factory),
        })
        .await
        .map_err(setup("switch"))?;
        wait_signed_on(&server).await?;
        Ok(Stack { server, hosts })
    }

    /// The issuers with an account whose cycle closes on `date`, ready for a statement run.
    fn closing_on(
        &self,
        date: NaiveDate,
        root: &Path,
    ) -> Result<Vec<(PathBuf, IssuerRun)>, DemoError> {
        let mut runs = Vec::new();
        let remote = self
            .remotes
            .iter()
            .map(|r| (r.id.as_str(), r.file.as_path(), r.journal.clone()));
        let on_us = self
            .on_us
            .iter()
            .map(|(id, file)| (id.as_str(), file.as_path(), self.config.journal.dir.clone()));
        for (id, file, journal) in remote.chain(on_us) {
            let engine = crate::onus::load_engine(file)
                .map_err(|e| DemoError::Setup(format!("issuer {id}: {e}")))?;
            if closes_any(&engine, date) {
                let out = statements::issuer_dir(root, id, date);
                runs.push((journal, IssuerRun { engine, out }));
            }
        }
        Ok(runs)
    }
}

impl Stack {
    async fn stop(self) {
        self.server.shutdown().await;
        for h in self.hosts {
            h.shutdown().await;
        }
    }
}

/// Whether any account of `engine` closes a billing cycle on `date`.
fn closes_any(engine: &Engine, date: NaiveDate) -> bool {
    (0..engine.account_count()).any(|n| {
        u32::try_from(n)
            .ok()
            .and_then(|n| engine.account_def(n))
            .is_some_and(|def| stmt::closes_on(def.cycle_day, date))
    })
}

fn at(date: NaiveDate, h: u32, m: u32, s: u32) -> Result<NaiveDateTime, DemoError> {
    date.and_hms_opt(h, m, s)
        .ok_or_else(|| DemoError::Setup(format!("no time {h}:{m}:{s} on {date}")))
}

/// Runs the month. Stops the stack before returning, also on failure.
pub async fn run(opts: &MonthOptions) -> Result<Month, DemoError> {
    let started = Instant::now();
    let mut config = Config::load(&opts.config).map_err(setup("configuration"))?;
    let keys = KeysFile::load(&config.security.keys_file).map_err(setup("keys"))?;
    let fees = FeeSchedule::load(&config.clearing.fees_file).map_err(setup("fee schedule"))?;
    let reports = opts.out.join("reports");
    let statements_root = reports.join("statements");
    let journals = opts.out.join("journals");
    std::fs::create_dir_all(&reports).map_err(setup("output folder"))?;
    config.listener.address = "127.0.0.1:0".into();
    config.journal.dir = journals.join("switch");
    config.clearing.reports_dir = reports.clone();
    // The demo closes and settles each day itself, on its own clock.
    config.clearing.auto_cutover = false;
    // The month is about figures, not latency: a busy machine must not turn a slow answer into
    // a timeout (and a stand-in approval), which would change the statements.
    for ic in &mut config.issuers {
        ic.timeout_ms = ic.timeout_ms.max(ANSWER_TIMEOUT.as_millis() as u64);
    }
    let job = Job::from_config(&config, None).map_err(setup("clearing"))?;
    let remotes = config
        .issuers
        .iter()
        .filter(|i| i.kind == IssuerKind::Remote)
        .map(|i| Remote {
            id: i.id.clone(),
            file: issuer_file_path(&opts.config, &i.id),
            journal: journals.join("issuers").join(&i.id),
        })
        .collect();
    let on_us = config
        .issuers
        .iter()
        .filter(|i| i.kind == IssuerKind::OnUs)
        .filter_map(|i| Some((i.id.clone(), i.cards.clone()?)))
        .collect();
    let clock = ManualClock::new(at(opts.start, 8, 0, 0)?);
    let mut env = Setup {
        config,
        keys,
        clock,
        remotes,
        on_us,
    };
    if opts.progress {
        println!(
            "a month in seconds: {} business days from {} on a manual clock; output in {}",
            opts.days,
            opts.start,
            opts.out.display()
        );
    }
    let mut stack = Some(env.start().await?);
    let result = month(opts, &mut env, &mut stack, &job, &fees, &statements_root).await;
    if let Some(s) = stack.take() {
        s.stop().await;
    }
    let (days, delivered) = result?;
    Ok(Month {
        out: opts.out.clone(),
        days,
        statements: delivered,
        elapsed: started.elapsed(),
    })
}

/// The days, one after the other. `stack` is running on entry and on return (unless an error
/// struck between a stop and a start).
async fn month(
    opts: &MonthOptions,
    env: &mut Setup,
    stack: &mut Option<Stack>,
    job: &Job,
    fees: &FeeSchedule,
    statements_root: &Path,
) -> Result<(Vec<Day>, Vec<Delivered>), DemoError> {
    let mut days = Vec::new();
    let mut delivered = Vec::new();
    let mut open_preauth: Option<(Acquirer, TxnResult)> = None;
    for i in 0..opts.days {
        let date = opts
            .start
            .checked_add_days(Days::new(u64::from(i)))
            .ok_or_else(|| DemoError::Setup("date out of range".into()))?;
        let addr = stack
            .as_ref()
            .map(|s| s.server.local_addr())
            .ok_or_else(|| DemoError::Setup("the stack is not running".into()))?;

        // 1. The day's traffic, from 09:00.
        env.clock.set(at(date, 9, 0, 0)?);
        let tally = traffic(
            addr,
            (&env.config, &env.keys),
            &env.clock,
            i,
            &plan(i, date),
            &mut open_preauth,
        )
        .await?;

        // 2. Past the cutover: close and settle the day.
        env.clock.set(at(date, 23, 0, 30)?);
        let now = env.clock.now();
        let (job2, fees2) = (job.clone(), fees.clone());
        let (clearing, settlement) = tokio::task::spawn_blocking(move || {
            let closed = crate::clearing::cutover(&job2, date, now).map_err(|e| e.to_string())?;
            let (settlement, _) =
                crate::clearing::settle(&job2, &fees2, date, now).map_err(|e| e.to_string())?;
            Ok::<_, String>((closed, settlement))
        })
        .await
        .map_err(setup("cutover task"))?
        .map_err(|e| DemoError::Setup(format!("business day {date}: {e}")))?;
        let cleared = clearing.iter().map(|c| c.items.len()).sum();
        let exceptions = clearing.iter().map(|c| c.exceptions.len()).sum();
        if opts.progress {
            println!(
                "{date}  {:>2} requests, {:>2} approved  cleared {cleared:>2}  settled {} positions",
                tally.0,
                tally.1,
                settlement.positions.len()
            );
        }
        days.push(Day {
            date,
            requests: tally.0,
            approved: tally.1,
            cleared,
            exceptions,
            settlement,
        });

        // 3. After midnight: the billing cycles that closed on `date`.
        let next = date
            .succ_opt()
            .ok_or_else(|| DemoError::Setup("date out of range".into()))?;
        env.clock.set(at(next, 0, 5, 0)?);
        let runs = env.closing_on(date, statements_root)?;
        if runs.is_empty() {
            continue;
        }
        if let Some(s) = stack.take() {
            s.stop().await;
        }
        let now_ms = env.clock.now_ms();
        let journal = JournalOptions::from(&env.config.journal);
        let written = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            for (dir, run) in runs {
                let opts = statements::Options {
                    cycle_end: date,
                    formats: Format::ALL.to_vec(),
                    dry_run: false,
                    journal,
                    now_ms,
                };
                all.extend(statements::run(&dir, vec![run], &opts).map_err(|e| e.to_string())?);
            }
            Ok::<_, String>(all)
        })
        .await
        .map_err(setup("statements task"))?
        .map_err(|e| DemoError::Setup(format!("statements for {date}: {e}")))?;
        if opts.progress {
            for d in &written {
                println!(
                    "            statement {:<10} {}",
                    d.statement.issuer,
                    statements::summary_line(&d.statement)
                );
            }
        }
        delivered.extend(written);
        *stack = Some(env.start().await?);
    }
    Ok((days, delivered))
}

/// Sends `steps` one at a time, the clock three minutes on after each; returns (requests,
/// approvals). A preauthorization is kept in `open_preauth` for a later day's completion.
async fn traffic(
    addr: std::net::SocketAddr,
    (config, keys): (&Config, &KeysFile),
    clock: &Arc<ManualClock>,
    day: u32,
    steps: &[Step],
    open_preauth: &mut Option<(Acquirer, TxnResult)>,
) -> Result<(u64, u64), DemoError> {
    let cur = Currency::CNY;
    // STANs unique over the whole run (100 a day), so no request looks like a duplicate.
    let mut clients = Vec::new();
    for (n, acquirer) in [Acquirer::Harbor, Acquirer::Summit].into_iter().enumerate() {
        let first = day * 100 + (n as u32) * 50 + 1;
        // Each acquirer's terminal holds its keys (Summit MACs every request).
        let terminal =
            super::terminal_keys(config, keys, &acquirer.config().acquirer_id, PinSetup::None)?;
        let options = ClientOptions {
            clock: clock.clone(),
            currency: cur,
            first_stan: Some(Stan::new(first % Stan::MAX).map_err(setup("STAN"))?),
            keys: terminal,
            tls: None,
        };
        let c = AcquirerClient::connect_with(addr, acquirer.config(), options)
            .await
            .map_err(setup("acquirer client"))?;
        clients.push((acquirer, c));
    }
    let client = |a: Acquirer| {
        clients
            .iter()
            .find(|(x, _)| *x == a)
            .map(|(_, c)| c)
            .ok_or_else(|| DemoError::Setup("no client".into()))
    };
    let amount = |s: &str| Amount::parse_major(s, cur).map_err(setup("amount"));
    let mut results: Vec<TxnResult> = Vec::new();
    let on_card = TxnOptions::new().expiry("3012");
    for step in steps {
        let r = match *step {
            Step::Purchase(a, pan, v) => client(a)?.purchase(pan, amount(v)?, &on_card).await,
            Step::PurchaseReversed(a, pan, v) => {
                let c = client(a)?;
                let t = c.purchase(pan, amount(v)?, &on_card).await;
                if let Ok(t) = &t
                    && t.is_approved()
                {
                    clock.advance_ms(180_000);
                    results.push(t.clone());
                    c.reverse(t, amount(v)?, None).await
                } else {
                    t
                }
            }
            Step::Preauth(a, pan, v) => {
                let t = client(a)?.preauth(pan, amount(v)?, &on_card).await;
                if let Ok(t) = &t
                    && t.is_approved()
                {
                    *open_preauth = Some((a, t.clone()));
                }
                t
            }
            Step::Complete(v) => {
                // From the acquirer of the preauthorization.
                let Some((a, original)) = open_preauth.take() else {
                    continue;
                };
                client(a)?.complete(&original, amount(v)?).await
            }
            Step::Refund(a, pan, v) => client(a)?.refund(pan, amount(v)?).await,
            Step::Payment(a, pan, v) => client(a)?.payment(pan, amount(v)?).await,
            Step::Cash(a, pan, v) => client(a)?.cash(pan, amount(v)?).await,
            Step::Load(a, pan, v) => client(a)?.load(pan, amount(v)?).await,
            Step::Balance(a, pan) => client(a)?.balance(pan).await,
        };
        clock.advance_ms(180_000);
        results.push(r.map_err(setup("request"))?);
    }
    let approved = results.iter().filter(|t| t.is_approved()).count() as u64;
    Ok((results.len() as u64, approved))
}
