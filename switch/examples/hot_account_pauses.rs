//! Measures the longest single decisions on one busy account: `cargo run --release -p switch
//! --example hot_account_pauses -- 300000`.
//!
//! One debit account takes N balance inquiries one after another, a millisecond of engine time
//! apart, so none of their idempotency records leaves the retry window and the account's record
//! map only grows (as a test card's does under `loadgen run` with the default mix). The usual
//! decision takes about a microsecond; what this prints is the tail: the slowest decisions and
//! where in the sequence they were, because each of those held the account's lock that long and,
//! in a server, the tokio worker deciding it (docs/performance.md, "Open-loop tail latency").

use std::time::{Duration, Instant};

use switch::domain::{
    AccountType, AcquirerId, Currency, Pan, ProcessingCode, Stan, TerminalId, TransmissionDateTime,
    TxnType,
};
use switch::issuing::{
    Engine, IdemKey, IssuerFile, IssuingRequest, NaiveDate, PinCheck, RequestKind,
};

const ISSUER: &str = r#"
[issuer]
id = "pause-bank"
name = "Pause Bank"

[journal]
dir = "data/pauses"

[[product]]
id = "debit"
kind = "debit"
currency = "156"

[[account]]
id = "A0"
product = "debit"
balance = "1000000.00"

[[card]]
pan = "6222020000000015"
account = "A0"
expiry = "3012"
"#;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let file = IssuerFile::from_toml_str(ISSUER, "pauses").expect("issuer file");
    let engine = Engine::from_file(&file).expect("engine");
    let pan = Pan::parse(b"6222020000000015").expect("pan");
    let acquirer = AcquirerId::parse("100001").expect("acquirer");
    let transmission = TransmissionDateTime::from_field(b"0513100000").expect("field 7");
    let terminals: Vec<TerminalId> = (0..1000)
        .map(|t| TerminalId::from_field(format!("T{t:07}").as_bytes()).expect("terminal"))
        .collect();
    let date = NaiveDate::from_ymd_opt(2026, 5, 13).expect("date");
    let start = date.and_hms_opt(10, 0, 0).expect("time");

    let mut times: Vec<(Duration, u64)> = Vec::with_capacity(n as usize);
    for i in 0..n {
        let key = IdemKey::new(
            acquirer,
            terminals[(i / 999_999) as usize % terminals.len()],
            Stan::new((i % 999_999) as u32 + 1).expect("stan"),
            transmission,
        );
        let req = IssuingRequest {
            kind: RequestKind::Authorization,
            key,
            pan,
            processing_code: ProcessingCode::new(
                TxnType::BalanceInquiry,
                AccountType::Default,
                AccountType::Default,
            ),
            amount: None,
            currency: Currency::CNY,
            mcc: None,
            expiry: None,
            pin: PinCheck::Absent,
            partial_supported: false,
        };
        let now = start + chrono::Duration::milliseconds(i as i64);
        let t = Instant::now();
        let out = engine.process(&req, now, date);
        times.push((t.elapsed(), i));
        assert!(out.result.is_ok(), "request {i} failed");
    }
    let total: Duration = times.iter().map(|(d, _)| *d).sum();
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)].0;
    println!(
        "{n} decisions on one account: mean {:.2} us, p99 {:.2} us, p99.99 {:.1} us, max {:.1} ms",
        total.as_secs_f64() * 1e6 / n as f64,
        pct(0.99).as_secs_f64() * 1e6,
        pct(0.9999).as_secs_f64() * 1e6,
        times.last().map_or(0.0, |(d, _)| d.as_secs_f64() * 1e3),
    );
    let over: Vec<String> = times
        .iter()
        .rev()
        .take_while(|(d, _)| *d > Duration::from_millis(1))
        .map(|(d, i)| format!("{:.1} ms at #{i}", d.as_secs_f64() * 1e3))
        .collect();
    println!(
        "decisions over 1 ms: {} [{}]",
        over.len(),
        over.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
    );
}
