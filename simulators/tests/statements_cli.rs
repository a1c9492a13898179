//! `issuer-sim statements` end to end, on a real journal directory: a journal written the way
//! the issuer host writes it, a statement run that posts the cycle's interest into it, a host
//! restart that replays the closes to the same balances, a second run that posts nothing and
//! writes the same files, and the refusals (a cycle not over, a journal held by a live process).

// Amounts are minor units written major_minor, `913_95` for 913.95, so the figures read as money.
#![allow(clippy::inconsistent_digit_grouping)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use switch::config::JournalSync;
use switch::domain::{
    AccountType, AcquirerId, Amount, Currency, Pan, ProcessingCode, Stan, TerminalId,
    TransmissionDateTime, TxnType,
};
use switch::events::Record;
use switch::host::open_journal;
use switch::issuing::{
    Engine, IdemKey, IssuerFile, IssuingRequest, LedgerEvent, NaiveDate, PinCheck, RequestKind,
};
use switch::journal::{FileJournal, Journal, read_all};

/// 18.25% a year is 0.05% a day; cycles close on the 10th.
const ISSUER: &str = r#"
[issuer]
id = "cli-bank"
name = "CLI Bank"

[journal]
dir = "not-used"

[[product]]
id = "card"
kind = "credit"
currency = "156"
cycle_day = 10
due_days = 25
purchase_apr = "18.25"
min_payment_percent = "10"
min_payment_floor = "50.00"
late_fee = "30.00"

[[account]]
id = "C1"
product = "card"
credit_limit = "10000.00"

[[card]]
pan = "4111110000000013"
account = "C1"
expiry = "3012"
"#;

const CARD: &str = "4111110000000013";

fn pan() -> Pan {
    Pan::parse(CARD.as_bytes()).expect("pan")
}

/// Posts `minor` of `txn` at noon on `day`, journaling the event like the host does.
fn post(engine: &Engine, journal: &FileJournal, stan: u32, txn: TxnType, minor: i64, day: &str) {
    let at = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .expect("day")
        .and_hms_opt(12, 0, 0)
        .expect("noon");
    let req = IssuingRequest {
        kind: RequestKind::Financial,
        key: IdemKey::new(
            AcquirerId::parse("100001").expect("acquirer"),
            TerminalId::from_field(b"TERM0001").expect("terminal"),
            Stan::new(stan).expect("stan"),
            TransmissionDateTime::from_field(b"0513100000").expect("f7"),
        ),
        pan: pan(),
        processing_code: ProcessingCode::new(txn, AccountType::Default, AccountType::Default),
        amount: Some(Amount::new(minor, Currency::CNY)),
        currency: Currency::CNY,
        mcc: None,
        expiry: None,
        pin: PinCheck::Absent,
        partial_supported: false,
    };
    let mut ticket = None;
    let out = engine.process_with(&req, at, at.date(), |ev: &LedgerEvent| {
        let event = ev.encode().map_err(|_| ())?;
        let rec = Record::Ledger {
            issuer: "cli-bank".into(),
            at_ms: 0,
            event,
        };
        ticket = Some(journal.append(&rec.encode().map_err(|_| ())?));
        Ok::<(), ()>(())
    });
    assert!(out.result.is_ok(), "{txn:?} {minor} declined");
    let rt = runtime();
    rt.block_on(ticket.expect("journaled")).expect("durable");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// What the host sees when it starts on `journal`: a fresh engine, the journal replayed.
fn restart(file: &IssuerFile, journal: &Path) -> (Engine, Arc<FileJournal>) {
    let engine = Engine::from_file(file).expect("engine");
    let (j, _) = open_journal(journal, JournalSync::Always, &engine).expect("journal");
    (engine, j)
}

fn stop(journal: Arc<FileJournal>) {
    runtime().block_on(journal.flush()).expect("flush");
    journal.close();
}

fn statements(config: &Path, journal: &Path, end: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issuer-sim"))
        .arg("statements")
        .arg("--config")
        .arg(config)
        .arg("--journal-dir")
        .arg(journal)
        .args(["--cycle-end", end, "--out"])
        .arg(out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("issuer-sim runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn statements_post_interest_once_and_the_host_replays_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cli-bank.toml");
    std::fs::write(&config, ISSUER).expect("write");
    let file = IssuerFile::load(&config).expect("issuer file");
    let journal = dir.path().join("journal");

    // Cycle 1: 1,000.00 bought on 04-20; the statement closes on 05-10 (no interest: the first
    // cycle opened with nothing owed).
    let (engine, j) = restart(&file, &journal);
    post(&engine, &j, 1, TxnType::Purchase, 1_000_00, "2026-04-20");
    stop(j);
    let out1 = dir.path().join("out1");
    let run = statements(&config, &journal, "2026-05-10", &out1);
    assert!(run.status.success(), "{run:?}");
    assert!(stdout(&run).contains("[posted]"), "{}", stdout(&run));
    assert!(read(&out1.join("C1.txt")).contains("New balance                          1000.00"));

    // Cycle 2 on the restarted host: 300.00 paid on 05-25, 200.00 bought on 06-01. The
    // balance was not paid in full: 13.95 interest (see the statement tests for the
    // arithmetic), new balance 913.95.
    let (engine, j) = restart(&file, &journal);
    assert_eq!(
        engine.ledger(&pan()).expect("ledger").posted.minor(),
        -1_000_00
    );
    post(&engine, &j, 2, TxnType::Deposit, 300_00, "2026-05-25");
    post(&engine, &j, 3, TxnType::Purchase, 200_00, "2026-06-01");
    stop(j);
    let out2 = dir.path().join("out2");
    let run = statements(&config, &journal, "2026-06-10", &out2);
    assert!(run.status.success(), "{run:?}");
    let line = stdout(&run);
    assert!(line.contains("new balance 913.95 CNY"), "{line}");
    assert!(line.contains("minimum 105.35 CNY"), "{line}");
    assert!(line.contains("[posted]"), "{line}");
    let json: serde_json::Value = serde_json::from_str(&read(&out2.join("C1.json"))).expect("json");
    assert_eq!(json["summary"]["new_balance"], "913.95");
    assert_eq!(json["summary"]["due_date"], "2026-07-05");
    assert!(read(&out2.join("C1.html")).contains("id=\"new-balance\""));
    assert!(read(&out2.join("C1.csv")).starts_with("record,posted,date,kind"));

    // Running it again posts nothing and writes the same statements.
    let records = read_all(&journal).expect("journal").len();
    let again = dir.path().join("again");
    let run = statements(&config, &journal, "2026-06-10", &again);
    assert!(run.status.success(), "{run:?}");
    assert!(
        stdout(&run).contains("[already posted]"),
        "{}",
        stdout(&run)
    );
    assert_eq!(read_all(&journal).expect("journal").len(), records);
    for ext in ["txt", "json", "csv", "html"] {
        let name = format!("C1.{ext}");
        assert_eq!(read(&again.join(&name)), read(&out2.join(&name)), "{name}");
    }

    // The host, restarted, owes exactly the statement's balance.
    let (engine, j) = restart(&file, &journal);
    assert_eq!(
        engine.ledger(&pan()).expect("ledger").posted.minor(),
        -913_95
    );
    stop(j);
}

#[test]
fn statements_refuse_an_open_day_and_a_journal_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cli-bank.toml");
    std::fs::write(&config, ISSUER).expect("write");
    let journal = dir.path().join("journal");
    let out = dir.path().join("out");

    let run = statements(&config, &journal, "2999-01-10", &out);
    assert_eq!(run.status.code(), Some(2), "{run:?}");

    // This test's own process is alive: its pid in the pid file holds the journal.
    std::fs::create_dir_all(&journal).expect("mkdir");
    let pid_file = journal.join("issuer-sim.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).expect("pid");
    let run = statements(&config, &journal, "2026-05-10", &out);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("is using this journal"),
        "{run:?}"
    );

    // A pid file left by a process that is gone is taken over, and removed afterwards.
    std::fs::write(&pid_file, "999999999\n").expect("pid");
    let run = statements(&config, &journal, "2026-05-10", &out);
    assert!(run.status.success(), "{run:?}");
    assert!(!pid_file.exists());
}
