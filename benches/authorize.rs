//! The issuing engine's decision with its hold: one 0100 purchase decided and applied by
//! `switch::issuing::Engine::process` (card lookup, account lock, idempotency check, hold expiry,
//! the 13 checks of the precedence table, the event, the ledger change), without journal I/O.
//! Goal: at most 300 ns per decision.
//!
//! Run: `cargo bench --bench authorize`. One criterion group, `authorize`:
//! - `spread_1m`: 1,000,000 debit accounts, one card each (PANs `622202` + 9 digits + a Luhn check
//!   digit, generated here); successive requests visit the accounts in a scattered order (a stride
//!   co-prime with 1M), so nearly every decision touches cold memory, as on a busy issuer.
//! - `hot_account`: every request on the same account, as when one corporate account takes all
//!   the traffic.
//!
//! Steady state rather than a growing heap: the clock advances one second per decision and holds
//! expire after one hour (the idempotency window too), so a hot account carries about 3,600 open
//! holds and records, each decision releases the one that fell due and forgets the oldest record,
//! and in `spread_1m` every revisit of an account finds its previous hold expired.
//!
//! After the group, a plain `Instant` loop prints ns/decision for each case on one thread and on
//! all cores (per-account locks: the spread case scales, the hot account serialises).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use switch::domain::{
    AccountType, AcquirerId, Amount, Currency, Pan, ProcessingCode, Stan, TerminalId,
    TransmissionDateTime, TxnType, luhn_check_digit,
};
use switch::issuing::{
    AccountEntry, CardEntry, CardStatus, Engine, IdemKey, IssuerFile, IssuingRequest, NaiveDate,
    NaiveDateTime, PinCheck, RequestKind,
};

const ACCOUNTS: u32 = 1_000_000;
/// Visits accounts in a scattered order: co-prime with `ACCOUNTS`.
const STRIDE: u64 = 7_919;
const TERMINALS: usize = 1024;

const ISSUER: &str = r#"
[issuer]
id = "bench-bank"
name = "Bench Bank"

[journal]
dir = "data/bench"

[ledger]
idempotency_window_h = 1

[[product]]
id = "debit"
kind = "debit"
currency = "156"
hold_expiry_h = 1
"#;

/// The 16-digit PAN of account `i`: BIN 622202, `i` in 9 digits, Luhn check digit.
fn pan_of(i: u32) -> String {
    let mut digits = format!("622202{i:09}").into_bytes();
    digits.push(luhn_check_digit(&digits));
    String::from_utf8(digits).expect("ascii")
}

/// An engine with `n` debit accounts of 1,000,000,000.00 CNY, one active card each.
fn engine(n: u32) -> Engine {
    let mut file = IssuerFile::from_toml_str(ISSUER, "bench").expect("issuer");
    file.accounts = (0..n)
        .map(|i| AccountEntry {
            id: format!("A{i}"),
            product: "debit".to_owned(),
            balance: Some("1000000000.00".to_owned()),
            credit_limit: None,
            cash_limit: None,
            overdraft: None,
            cycle_day: None,
        })
        .collect();
    file.cards = (0..n)
        .map(|i| CardEntry {
            pan: pan_of(i),
            account: format!("A{i}"),
            expiry: "3012".to_owned(),
            status: CardStatus::Active,
            pvki: None,
            pvv: None,
        })
        .collect();
    Engine::from_file(&file).expect("engine")
}

/// Builds request `i` (unique key for i < 1024 * 1M) on `pan`, and its time: t0 + i seconds.
struct Requests {
    pans: Vec<Pan>,
    terminals: Vec<TerminalId>,
    acquirer: AcquirerId,
    transmission: TransmissionDateTime,
    base_day: i32,
    date: NaiveDate,
}

impl Requests {
    fn new(pans: Vec<Pan>) -> Requests {
        let date = NaiveDate::from_ymd_opt(2026, 5, 13).expect("date");
        Requests {
            pans,
            terminals: (0..TERMINALS)
                .map(|t| TerminalId::from_field(format!("T{t:07}").as_bytes()).expect("tid"))
                .collect(),
            acquirer: AcquirerId::parse("100001").expect("acq"),
            transmission: TransmissionDateTime::from_field(b"0513100000").expect("f7"),
            base_day: chrono_days(date),
            date,
        }
    }

    fn get(&self, i: u64) -> (IssuingRequest, NaiveDateTime) {
        let pan = self.pans[((i * STRIDE) % self.pans.len() as u64) as usize];
        let stan = Stan::new((i % 1_000_000) as u32).expect("stan");
        let terminal = self.terminals[((i / 1_000_000) as usize) % TERMINALS];
        let req = IssuingRequest {
            kind: RequestKind::Authorization,
            key: IdemKey::new(self.acquirer, terminal, stan, self.transmission),
            pan,
            processing_code: ProcessingCode::new(
                TxnType::Purchase,
                AccountType::Default,
                AccountType::Default,
            ),
            amount: Some(Amount::new(100, Currency::CNY)),
            currency: Currency::CNY,
            mcc: Some(5411),
            expiry: None,
            pin: PinCheck::Absent,
            partial_supported: false,
        };
        let day = self.base_day + (i / 86_400) as i32;
        let secs = (i % 86_400) as u32;
        let now = NaiveDate::from_num_days_from_ce_opt(day)
            .and_then(|d| d.and_hms_opt(secs / 3600, secs / 60 % 60, secs % 60))
            .expect("time");
        (req, now)
    }
}

fn chrono_days(d: NaiveDate) -> i32 {
    // Days from 0001-01-01 (day 1), without importing chrono's Datelike in the bench.
    let mut lo = 1;
    let mut hi = 1_000_000;
    while lo < hi {
        let mid = (lo + hi) / 2;
        if NaiveDate::from_num_days_from_ce_opt(mid).expect("day") < d {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

struct Case {
    name: &'static str,
    engine: Arc<Engine>,
    requests: Arc<Requests>,
}

fn cases(accounts: u32) -> Vec<Case> {
    let t = Instant::now();
    let spread = engine(accounts);
    let pans: Vec<Pan> = (0..accounts)
        .map(|i| Pan::parse(pan_of(i).as_bytes()).expect("pan"))
        .collect();
    println!(
        "authorize: built {} accounts and cards in {:.1} s",
        spread.card_count(),
        t.elapsed().as_secs_f64()
    );
    let hot = engine(1);
    let hot_pan = vec![Pan::parse(pan_of(0).as_bytes()).expect("pan")];
    vec![
        Case {
            name: "spread_1m",
            engine: Arc::new(spread),
            requests: Arc::new(Requests::new(pans)),
        },
        Case {
            name: "hot_account",
            engine: Arc::new(hot),
            requests: Arc::new(Requests::new(hot_pan)),
        },
    ]
}

/// Sequence numbers handed out so far per case, so every timed request is new.
fn bench(c: &mut Criterion, cases: &[Case], next: &mut [u64]) {
    let mut g = c.benchmark_group("authorize");
    g.measurement_time(Duration::from_secs(5));
    for (case, i) in cases.iter().zip(next.iter_mut()) {
        g.bench_function(case.name, |b| {
            b.iter(|| {
                let (req, now) = case.requests.get(*i);
                *i += 1;
                let out = case.engine.process(&req, now, case.requests.date);
                debug_assert!(out.result.is_ok());
                black_box(out)
            })
        });
    }
    g.finish();
}

/// ns per decision over `n` decisions on `threads` threads, each thread with its own key range.
fn timed(case: &Case, start: u64, n: u64, threads: u64) -> f64 {
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let engine = Arc::clone(&case.engine);
            let requests = Arc::clone(&case.requests);
            std::thread::spawn(move || {
                let mut approved = 0u64;
                // Interleaved keys keep the clock moving forward on every thread.
                let mut i = start + k;
                for _ in 0..n / threads {
                    let (req, now) = requests.get(i);
                    i += threads;
                    if engine.process(&req, now, requests.date).result.is_ok() {
                        approved += 1;
                    }
                }
                approved
            })
        })
        .collect();
    let approved: u64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(approved, n / threads * threads, "every decision approves");
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not (criterion then only checks
    // that each benchmark runs once), and building a million accounts and the summary loop would
    // be slow in a debug build, so that mode uses 10,000 accounts and skips the summary.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let full = has("--bench");
    // `AUTHORIZE_ACCOUNTS` overrides the spread case's size (e.g. to profile the hot account alone).
    let accounts = std::env::var("AUTHORIZE_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { ACCOUNTS } else { 10_000 });
    let cases = cases(accounts);
    let mut next = vec![0u64; cases.len()];
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &cases, &mut next);
    criterion.final_summary();
    if !full || has("--list") || has("--profile-time") {
        return;
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    println!("\nauthorize summary (plain Instant loop, 2,000,000 decisions each, no journal):");
    for (case, start) in cases.iter().zip(&next) {
        let one = timed(case, *start, 2_000_000, 1);
        let many = timed(case, *start + 2_000_000, 2_000_000, cores);
        println!(
            "  {:<12} {:>7.1} ns/decision on 1 thread, {:>7.1} ns/decision on {cores} threads",
            case.name, one, many
        );
    }
}
