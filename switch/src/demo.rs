//! `switch demo`: the whole stack in one process, each part on its own TCP port so that traffic
//! really crosses TCP: the issuer hosts of the default configuration's remote issuers, the switch
//! (with its on-us engine), and acquirer clients.
//!
//! Without `--serve` it drives a short mixed workload over the published test cards with a live
//! progress line (acquirer 100002's requests MACed, as the default config requires), then shows
//! message security at work (a MACed acquirer, PINs under zone keys and from TDES and AES DUKPT
//! PIN pads, to remote and on-us issuers, and a wrong PIN, a wrong MAC and a missing MAC), then
//! stand-in (it stops North Bank's host, approves within the stand-in limits, restarts the host
//! and waits for the advices to be delivered), and prints a summary: approvals, declines by
//! reason, TPS and latency percentiles. With `--serve` it only serves until interrupted, so
//! every card holds exactly its published balance when it starts.
//!
//! The demo plays every party, so it reads the test keys file for all of them: the switch's
//! security module, each issuer host's, and the acquirers' terminals (see [`crate::terminal`]).
//!
//! Journals live in a fresh temporary folder, removed at the end.
//!
//! `switch demo --days N` is [`month`]: the same stack on a manual clock through N business
//! days, with clearing, settlement and statements.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::{AcquirerClient, ClientConfig, ClientOptions, TxnOptions, TxnResult};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, IssuerKind, JournalSync};
use crate::domain::{Amount, Currency, ResponseCode};
use crate::host::{Faults, HostConfig, HostSecurity, IssuerHost, open_journal};
use crate::issuing::{Engine, IssuerFile};
use crate::journal::Journal;
use crate::net::framing::FramingConfig;
use crate::net::server::IssuerHandle;
use crate::net::start::{StartOptions, SwitchServer};
use crate::security::{KeyId, KeysFile};
use crate::terminal::{PinSetup, TEST_AES_KSN, TEST_TDES_KSN, TerminalKeys};

pub mod month;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub config: PathBuf,
    /// Serve on the configured listener until interrupted, with no workload.
    pub serve: bool,
    /// Transactions in the mixed workload.
    pub transactions: u64,
    /// Acquirer connections, each with several requests in flight.
    pub connections: usize,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

/// The issuer file of a remote issuer: `<dir of the config>/issuers/<id>.toml`.
fn issuer_file_path(config_path: &Path, id: &str) -> PathBuf {
    config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("issuers")
        .join(format!("{id}.toml"))
}

struct Hosts {
    hosts: Vec<(String, IssuerHost, PathBuf, PathBuf)>,
    keys: KeysFile,
}

async fn start_host(
    id: &str,
    file_path: &Path,
    journal_dir: &Path,
    address: &str,
    clock: Arc<dyn Clock>,
    keys: &KeysFile,
) -> Result<IssuerHost, DemoError> {
    let file = IssuerFile::load(file_path)
        .map_err(setup(&format!("issuer file {}", file_path.display())))?;
    let security =
        HostSecurity::from_keys(&file, keys).map_err(setup(&format!("issuer {id} keys")))?;
    let engine = Arc::new(Engine::from_file(&file).map_err(setup(&format!("issuer {id}")))?);
    let (journal, _) =
        open_journal(journal_dir, JournalSync::Always, &engine).map_err(setup("issuer journal"))?;
    let cfg = HostConfig {
        address: address.to_owned(),
        dialect: crate::iso8583::dialect::DialectId::Iso87Ascii.dialect(),
        framing: FramingConfig::default(),
        faults: Faults::default(),
        checkpoint_dir: Some(journal_dir.to_owned()),
        checkpoint_every: 100_000,
        checkpoint_pace: crate::journal::WritePace::mib_per_s(
            crate::config::CHECKPOINT_WRITE_MIB_PER_S_DEFAULT,
        ),
        security,
        tls: None,
        connections_max: crate::host::HOST_CONNECTIONS_MAX_DEFAULT,
        inflight_per_connection_max: crate::host::HOST_INFLIGHT_PER_CONNECTION_MAX_DEFAULT,
    };
    IssuerHost::start(
        cfg,
        engine,
        journal.clone() as Arc<dyn Journal>,
        Some(journal),
        clock,
    )
    .await
    .map_err(setup(&format!("issuer host {id}")))
}

/// Runs the demo. Returns the text of the summary (also printed as it goes).
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let mut config = Config::load(&opts.config).map_err(setup("configuration"))?;
    let keys = KeysFile::load(&config.security.keys_file).map_err(setup("keys"))?;
    let stamp = SystemClock.now_ms();
    let tmp = std::env::temp_dir().join(format!("switchyard-demo-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(setup("temporary folder"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    // Issuer hosts, each on a fresh port; the switch's endpoints are pointed at them.
    let mut hosts = Hosts {
        hosts: Vec::new(),
        keys: keys.clone(),
    };
    for ic in config
        .issuers
        .iter_mut()
        .filter(|i| i.kind == IssuerKind::Remote)
    {
        let file = issuer_file_path(&opts.config, &ic.id);
        let jdir = tmp.join("issuers").join(&ic.id);
        let host = start_host(
            &ic.id,
            &file,
            &jdir,
            "127.0.0.1:0",
            clock.clone(),
            &hosts.keys,
        )
        .await?;
        ic.endpoints = vec![host.local_addr().to_string()];
        println!(
            "issuer host {:<12} {} ({})",
            ic.id,
            host.local_addr(),
            ic.name
        );
        hosts.hosts.push((ic.id.clone(), host, file, jdir));
    }
    config.journal.dir = tmp.join("switch");
    if !opts.serve {
        config.listener.address = "127.0.0.1:0".into();
    }
    // On-us issuers keep their own balances in the switch's journal, which is fresh: they start
    // from the published balances too.
    let server = SwitchServer::start(StartOptions {
        config: config.clone(),
        keys,
        clock: clock.clone(),
        on_us: Arc::new(crate::onus::engine_factory),
    })
    .await
    .map_err(setup("switch"))?;
    let addr = server.local_addr();
    println!("switch            {addr} (on-us: {})", on_us_names(&config));
    wait_signed_on(&server).await?;
    println!("journals in       {}", tmp.display());

    let result = if opts.serve {
        println!("serving on {addr}; press Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    } else {
        workload(&opts, &config, addr, &server, &mut hosts, clock.clone()).await
    };

    server.shutdown().await;
    for (_, host, _, _) in hosts.hosts {
        host.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Waits (up to 10 s each) until every remote issuer's link has signed on.
async fn wait_signed_on(server: &SwitchServer) -> Result<(), DemoError> {
    for h in &server.runtime.issuers {
        if let IssuerHandle::Remote { pool, id, .. } = h {
            tokio::time::timeout(Duration::from_secs(10), pool.wait_ready(1))
                .await
                .map_err(|_| DemoError::Setup(format!("issuer {id} did not sign on")))?
                .map_err(setup("issuer link"))?;
        }
    }
    Ok(())
}

fn on_us_names(config: &Config) -> String {
    let v: Vec<&str> = config
        .issuers
        .iter()
        .filter(|i| i.kind == IssuerKind::OnUs)
        .map(|i| i.name.as_str())
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// One step of the mix: what to send and what the published test set says it gets.
#[derive(Clone, Copy)]
enum Step {
    Purchase(&'static str, &'static str, &'static str),
    PurchasePartial(&'static str, &'static str),
    Balance(&'static str),
    PreauthComplete(&'static str, &'static str, &'static str),
    PreauthReverse(&'static str, &'static str),
}

const MIX: &[Step] = &[
    Step::Purchase("4111110000000013", "3012", "12.34"),
    Step::Purchase("6222020000000015", "3012", "3.50"),
    Step::Purchase("6050010000000013", "3012", "0.80"),
    Step::Purchase("4111110000000047", "3012", "150.00"),
    Step::Purchase("4111110000000021", "3012", "20.00"),
    Step::Purchase("6222020000000023", "3012", "20.00"),
    Step::Purchase("4111110000000039", "2401", "20.00"),
    Step::Purchase("6222020000000031", "3012", "20.00"),
    Step::Purchase("6050010000000021", "3012", "5.00"),
    Step::Purchase("9999990000000014", "3012", "1.00"),
    Step::Balance("4111110000000013"),
    Step::Balance("6222020000000015"),
    Step::PreauthComplete("4111110000000013", "80.00", "64.50"),
    Step::PreauthReverse("6222020000000015", "40.00"),
    Step::PurchasePartial("6050010000000021", "3.00"),
    Step::Purchase("4111110000000013", "3012", "7.99"),
];

#[derive(Default)]
struct Tally {
    codes: BTreeMap<&'static str, u64>,
    /// (approvals, declines) per product.
    products: BTreeMap<&'static str, (u64, u64)>,
    errors: u64,
    hist: Option<hdrhistogram::Histogram<u64>>,
}

fn product_of(pan: &str) -> &'static str {
    match &pan[..6.min(pan.len())] {
        "411111" => "credit (North Bank, remote)",
        "622202" => "debit (East Bank, remote)",
        "605001" => "prepaid (Metro Pay, on-us)",
        _ => "no issuer",
    }
}

impl Tally {
    fn record(&mut self, r: &Result<TxnResult, crate::client::ClientError>) {
        match r {
            Ok(t) => {
                *self.codes.entry(t.response_code.as_str()).or_default() += 1;
                if let Some(pan) = &t.pan {
                    let e = self.products.entry(product_of(pan.expose())).or_default();
                    if t.is_approved() { e.0 += 1 } else { e.1 += 1 }
                }
                if let Some(h) = &mut self.hist {
                    let _ = h.record(t.latency.as_micros().max(1) as u64);
                }
            }
            Err(_) => self.errors += 1,
        }
    }
}

async fn run_step(c: &AcquirerClient, step: Step, cur: Currency, tally: &mut Tally) {
    let amt = |s: &str| Amount::parse_major(s, cur).unwrap_or(Amount::zero(cur));
    match step {
        Step::Purchase(pan, exp, a) => {
            let r = c.purchase(pan, amt(a), TxnOptions::new().expiry(exp)).await;
            tally.record(&r);
        }
        Step::PurchasePartial(pan, a) => {
            let r = c
                .purchase(pan, amt(a), TxnOptions::new().expiry("3012").partial())
                .await;
            tally.record(&r);
        }
        Step::Balance(pan) => {
            let r = c.balance(pan).await;
            tally.record(&r);
        }
        Step::PreauthComplete(pan, held, captured) => {
            let r = c
                .preauth(pan, amt(held), TxnOptions::new().expiry("3012"))
                .await;
            tally.record(&r);
            if let Ok(t) = &r
                && t.is_approved()
            {
                let r2 = c.complete(t, amt(captured)).await;
                tally.record(&r2);
            }
        }
        Step::PreauthReverse(pan, held) => {
            let r = c
                .preauth(pan, amt(held), TxnOptions::new().expiry("3012"))
                .await;
            tally.record(&r);
            if let Ok(t) = &r
                && t.is_approved()
            {
                let r2 = c.reverse(t, amt(held), None).await;
                tally.record(&r2);
            }
        }
    }
}

async fn workload(
    opts: &DemoOptions,
    config: &Config,
    addr: std::net::SocketAddr,
    server: &SwitchServer,
    hosts: &mut Hosts,
    clock: Arc<dyn Clock>,
) -> Result<(), DemoError> {
    let cur = Currency::CNY;
    let done = Arc::new(AtomicU64::new(0));
    let total = opts.transactions.max(1);
    let next = Arc::new(AtomicU64::new(0));
    println!(
        "\nmixed workload: {total} steps over {} connections",
        opts.connections
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..opts.connections.max(1) {
        let acquirer = if i % 2 == 0 { "100001" } else { "100002" };
        let terminal = format!("TERM{:04}", i + 1);
        let keys = terminal_keys(config, &hosts.keys, acquirer, PinSetup::None)?;
        let client = connect(addr, acquirer, &terminal, keys).await?;
        let (done, next) = (done.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                hist: hdrhistogram::Histogram::new(3).ok(),
                ..Tally::default()
            };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                run_step(&client, MIX[(n as usize) % MIX.len()], cur, &mut tally).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
            tally
        }));
    }
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let d = done.load(Ordering::Relaxed);
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                print!("\r  {d:>6}/{total} steps  {:>7.0} steps/s", d as f64 / secs);
                let _ = std::io::stdout().flush();
                if d >= total {
                    break;
                }
            }
            println!();
        })
    };
    let mut tally = Tally {
        hist: hdrhistogram::Histogram::new(3).ok(),
        ..Tally::default()
    };
    for t in tasks {
        if let Ok(part) = t.await {
            for (k, v) in part.codes {
                *tally.codes.entry(k).or_default() += v;
            }
            for (k, (a, d)) in part.products {
                let e = tally.products.entry(k).or_default();
                e.0 += a;
                e.1 += d;
            }
            tally.errors += part.errors;
            if let (Some(h), Some(p)) = (&mut tally.hist, &part.hist) {
                let _ = h.add(p);
            }
        }
    }
    let _ = progress.await;
    let elapsed = started.elapsed();

    let security = security_showcase(addr, config, &hosts.keys).await?;
    let stand_in = stand_in_showcase(addr, server, hosts, clock).await;

    print_summary(&tally, elapsed);
    println!(
        "\nsecurity (100002 MACs with X9.19 and checks the answers' MACs; East Bank's link is \
         MACed with AES-CMAC; PINs under zone keys and from DUKPT PIN pads):"
    );
    for l in security {
        println!("  {l}");
    }
    if let Some(lines) = stand_in {
        println!("\nstand-in (North Bank's host stopped, then restarted):");
        for l in lines {
            println!("  {l}");
        }
    }
    Ok(())
}

/// Stops North Bank's host, sends purchases that stand-in approves or declines, restarts the
/// host and waits until the advices are delivered.
async fn stand_in_showcase(
    addr: std::net::SocketAddr,
    server: &SwitchServer,
    hosts: &mut Hosts,
    clock: Arc<dyn Clock>,
) -> Option<Vec<String>> {
    let idx = hosts.hosts.iter().position(|(id, ..)| id == "north-bank")?;
    let (id, host, file, jdir) = hosts.hosts.remove(idx);
    let (pool, saf) = server.runtime.issuers.iter().find_map(|h| match h {
        IssuerHandle::Remote {
            id: hid,
            pool,
            saf,
            stand_in: Some(_),
            ..
        } if **hid == *id => Some((pool.clone(), saf.clone())),
        _ => None,
    })?;
    let port = host.local_addr();
    host.shutdown().await;
    // Wait until the link notices the host is gone (or give up after 5 s and let stand-in show
    // whatever the link state is then).
    let mut ready = pool.ready_watch();
    let _ = tokio::time::timeout(Duration::from_secs(5), ready.wait_for(|&n| n == 0)).await;
    let mut lines = Vec::new();
    let client = AcquirerClient::connect(
        addr,
        ClientConfig {
            terminal_id: "TERMSTIP".into(),
            ..ClientConfig::default()
        },
    )
    .await
    .ok()?;
    let cur = Currency::CNY;
    for (pan, amount, note) in [
        ("4111110000000013", "45.00", "within limits"),
        (
            "4111110000000013",
            "600.00",
            "over the 500.00 stand-in maximum",
        ),
        (
            "4111110000000021",
            "10.00",
            "lost card on the negative file",
        ),
    ] {
        let a = Amount::parse_major(amount, cur).unwrap_or(Amount::zero(cur));
        match client
            .purchase(pan, a, TxnOptions::new().expiry("3012"))
            .await
        {
            Ok(t) => lines.push(format!(
                "purchase {amount:>7} on {}: {} {} auth={} ({note})",
                mask(pan),
                t.response_code.as_str(),
                t.response_code.meaning(),
                t.auth_code.as_deref().unwrap_or("-")
            )),
            Err(e) => lines.push(format!("purchase {amount} failed: {e}")),
        }
    }
    let queued = saf.depth();
    let restarted = start_host(&id, &file, &jdir, &port.to_string(), clock, &hosts.keys)
        .await
        .ok()?;
    // The report below says how many are left if they are not all delivered within 15 s.
    let mut depth = saf.depth_watch();
    let _ = tokio::time::timeout(Duration::from_secs(15), depth.wait_for(|&d| d == 0)).await;
    lines.push(format!(
        "{queued} advice(s) queued while down; {} left after the host came back",
        saf.depth()
    ));
    if let Some(b) = restarted
        .engine()
        .balances(&crate::domain::Pan::parse(b"4111110000000013").ok()?)
    {
        lines.push(format!(
            "North Bank now shows 411111******0013 available {} (ledger {})",
            b.available, b.ledger
        ));
    }
    hosts.hosts.push((id, restarted, file, jdir));
    Some(lines)
}

/// The terminal keys of `acquirer` as the switch's config names them: its MAC key (if any) and
/// a PIN pad as `pin` says (its zone PIN key when `pin` is `None` and it has one).
fn terminal_keys(
    config: &Config,
    keys: &KeysFile,
    acquirer: &str,
    pin: PinSetup,
) -> Result<Arc<TerminalKeys>, DemoError> {
    let a = config
        .acquirers
        .iter()
        .find(|a| a.id == acquirer)
        .ok_or_else(|| DemoError::Setup(format!("acquirer {acquirer} is not configured")))?;
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<KeyId>().ok());
    let pin = match (pin, parse(&a.pin_key)) {
        (PinSetup::None, Some(zpk)) => PinSetup::Zone(zpk),
        (p, _) => p,
    };
    let t = TerminalKeys::from_keys_file(keys, parse(&a.mac_key).as_ref(), &pin)
        .map_err(setup(&format!("acquirer {acquirer} terminal keys")))?;
    Ok(Arc::new(t))
}

async fn connect(
    addr: std::net::SocketAddr,
    acquirer: &str,
    terminal: &str,
    keys: Arc<TerminalKeys>,
) -> Result<AcquirerClient, DemoError> {
    let cfg = ClientConfig {
        acquirer_id: acquirer.into(),
        terminal_id: terminal.into(),
        ..ClientConfig::default()
    };
    let options = ClientOptions {
        keys,
        ..ClientOptions::default()
    };
    AcquirerClient::connect_with(addr, cfg, options)
        .await
        .map_err(setup("acquirer client"))
}

/// One line per security case: a MACed acquirer, PINs under a zone key and from DUKPT PIN pads
/// to remote and on-us issuers, and what a wrong PIN, a wrong MAC and a missing MAC get.
async fn security_showcase(
    addr: std::net::SocketAddr,
    config: &Config,
    keys: &KeysFile,
) -> Result<Vec<String>, DemoError> {
    let id = |t: &str| t.parse::<KeyId>().map_err(setup("key id"));
    let maced = connect(
        addr,
        "100002",
        "TERMSEC1",
        terminal_keys(config, keys, "100002", PinSetup::None)?,
    )
    .await?;
    // 100001's DUKPT PIN pads, one per kind.
    let pad = |terminal: &'static str, pin: PinSetup| async move {
        connect(
            addr,
            "100001",
            terminal,
            terminal_keys(config, keys, "100001", pin)?,
        )
        .await
    };
    let tdes = pad(
        "TERMSEC2",
        PinSetup::TdesDukpt {
            bdk: id("bdk:test-tdes")?,
            ksn: TEST_TDES_KSN,
        },
    )
    .await?;
    let aes = pad(
        "TERMSEC3",
        PinSetup::AesDukpt {
            bdk: id("bdk:test-aes")?,
            ksn: TEST_AES_KSN,
        },
    )
    .await?;
    let bare = connect(addr, "100002", "TERMSEC4", Arc::new(TerminalKeys::none())).await?;
    let cur = Currency::CNY;
    let amt = |s: &str| Amount::parse_major(s, cur).unwrap_or(Amount::zero(cur));
    let pin = |p: &str| TxnOptions::new().expiry("3012").pin(p);
    let line = |what: &str, r: Result<TxnResult, crate::client::ClientError>| match r {
        Ok(t) => format!(
            "{what}: {} {}",
            t.response_code.as_str(),
            t.response_code.meaning()
        ),
        Err(e) => format!("{what}: failed: {e}"),
    };
    let mut lines = Vec::new();
    lines.push(line(
        "100002, MACed, PIN under its ZPK, North Bank (remote)",
        maced
            .purchase("4111110000000013", amt("5.00"), pin("1234"))
            .await,
    ));
    lines.push(line(
        "100002, MACed, wrong PIN, North Bank",
        maced
            .purchase("4111110000000047", amt("5.00"), pin("9999"))
            .await,
    ));
    lines.push(line(
        "100002, MACed, PIN under its ZPK, Metro Pay (on-us)",
        maced
            .purchase("6050010000000013", amt("1.00"), pin("1234"))
            .await,
    ));
    lines.push(line(
        "100001, TDES DUKPT PIN pad, East Bank (remote)",
        tdes.purchase("6222020000000015", amt("2.00"), pin("1234"))
            .await,
    ));
    lines.push(line(
        "100001, AES DUKPT PIN pad (format 4), North Bank",
        aes.purchase("4111110000000013", amt("3.00"), pin("1234"))
            .await,
    ));
    lines.push(line(
        "100001, AES DUKPT PIN pad, Metro Pay (on-us)",
        aes.purchase("6050010000000013", amt("1.00"), pin("1234"))
            .await,
    ));
    let tampered = maced
        .prepare(
            crate::client::TxnKind::Purchase,
            "4111110000000013",
            Some(amt("5.00")),
            TxnOptions::new().expiry("3012"),
        )
        .map(|mut p| {
            let mut b = p.payload.to_vec();
            if let Some(last) = b.last_mut() {
                *last ^= 0x01;
            }
            p.payload = b.into();
            p
        });
    let r = match tampered {
        Ok(p) => maced.send_prepared(&p).await,
        Err(e) => Err(e),
    };
    lines.push(line("100002, MAC altered in transit", r));
    lines.push(line(
        "100002, no MAC",
        bare.purchase(
            "4111110000000013",
            amt("5.00"),
            TxnOptions::new().expiry("3012"),
        )
        .await,
    ));
    Ok(lines)
}

fn mask(pan: &str) -> String {
    crate::iso8583::decode::mask_pan(pan.as_bytes())
}

fn print_summary(t: &Tally, elapsed: Duration) {
    let answered: u64 = t.codes.values().sum();
    let approvals: u64 = t
        .codes
        .iter()
        .filter(|(c, _)| **c == "00" || **c == "10")
        .map(|(_, n)| n)
        .sum();
    println!("\nsummary");
    println!(
        "  transactions  {answered} answered, {} transport errors, in {:.2} s",
        t.errors,
        elapsed.as_secs_f64()
    );
    println!(
        "  throughput    {:.0} TPS",
        answered as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!("  approvals     {approvals}");
    println!("  declines by reason:");
    for (code, n) in &t.codes {
        if *code == "00" || *code == "10" {
            continue;
        }
        let meaning = ResponseCode::from_field(code.as_bytes())
            .map(|c| c.meaning())
            .unwrap_or("?");
        println!("    {code} {meaning:<40} {n}");
    }
    if let Some(n) = t.codes.get("10") {
        println!("  partial approvals (10): {n}");
    }
    println!("  by product (approved / declined):");
    for (p, (a, d)) in &t.products {
        println!("    {p:<30} {a:>6} / {d}");
    }
    if let Some(h) = &t.hist {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "  latency (ms)  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
}
