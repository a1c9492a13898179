//! [`Runtime::handle`] against a journal that pushes back: where a transaction is refused, and
//! that a refused one leaves nothing behind (no engine change, no claim in the duplicate window).
//! The journal's writer is held still with its test hook rather than raced with sleeps.

use std::sync::PoisonError;

use chrono::NaiveDate;

use super::*;
use crate::clock::ManualClock;
use crate::iso8583::{ISO87_ASCII, MessageBuilder, decode};
use crate::journal::{FileJournal, JournalOptions, read_all};
use crate::net::{acquirer, memory};

/// A purchase of 12.34 on Metro Pay's active prepaid card (on-us) under `stan`.
fn purchase(stan: &[u8; 6]) -> Bytes {
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0100");
    b.set(2, b"6050010000000013")
        .set(3, b"000000")
        .set(4, b"000000001234")
        .set(7, b"0601120000")
        .set(11, stan)
        .set(14, b"3012")
        .set(32, b"100001")
        .set(41, b"TERM0001")
        .set(42, b"MERCHANT0000001")
        .set(49, b"156");
    b.to_bytes().expect("encode")
}

fn code(out: HandleResult) -> String {
    let out = out.expect("an answer");
    let msg = decode(&ISO87_ASCII, out.bytes).expect("the answer decodes");
    String::from_utf8_lossy(&msg.get(39).expect("field 39")).into_owned()
}

#[tokio::test]
#[expect(
    clippy::await_holding_lock,
    reason = "the guard holds the journal's writer thread still on purpose; no task takes it"
)]
async fn a_request_the_journal_refuses_goes_no_further_and_its_retry_is_processed_anew() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let opts = JournalOptions {
        queue_depth_max: 1,
        ..JournalOptions::default()
    };
    let journal = Arc::new(FileJournal::open(dir.path(), opts).expect("journal").0);
    let at = NaiveDate::from_ymd_opt(2026, 6, 1)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("date");
    let config = acquirer::tests::config(|_| {});
    let rt = memory::runtime(&config, journal.clone(), ManualClock::new(at)).expect("runtime");

    // The writer holds one record and waits: the queue is full.
    let pause = journal
        .test_hooks()
        .pause
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let filler = journal.append(b"filler");
    // Bounded: were the request to go on, it would wait for the held writer forever.
    let refused = tokio::time::timeout(Duration::from_secs(10), rt.handle(purchase(b"000001")))
        .await
        .expect("the refused request waited on the journal instead of being answered");
    assert_eq!(code(refused), "96");
    drop(pause);
    assert_eq!(filler.await.expect("filler written"), 1);

    // Nothing of the refused attempt was queued: had the engine been reached, its ledger event
    // (never refused for depth) would be here. And its claim was let go, so the retry is
    // decided afresh rather than answered 96 from the duplicate window. The retry also shows a
    // transaction is not cut in half by the bound: with `queue_depth_max` 1, its ledger event
    // and decision go in beside its request record because they continue admitted work.
    assert_eq!(code(rt.handle(purchase(b"000001")).await), "00");
    let records = read_all(dir.path()).expect("journal reads");
    let kinds: Vec<&'static str> = records[1..]
        .iter()
        .map(|(_, b)| match Record::decode(b) {
            Ok(Record::Request(_)) => "request",
            Ok(Record::Ledger { .. }) => "ledger",
            Ok(Record::Decision(_)) => "decision",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["request", "ledger", "decision"]);
}

#[test]
fn stand_in_keeps_only_today_and_yesterday() {
    let currency = crate::domain::Currency::from_field(b"156").expect("currency");
    let amount = |t: &str| crate::domain::Amount::parse_major(t, currency).expect("amount");
    let si = StandIn::new(StandInRules {
        amount_max: amount("500.00"),
        daily_count_max: 5,
        daily_amount_max: amount("1000.00"),
        txn_types: vec![],
        negative: std::collections::HashMap::new(),
    });
    let pan = |d: &[u8]| Pan::parse(d).expect("pan");
    let (a, b) = (pan(b"4000000000000002"), pan(b"5100000000000008"));
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 6, d).expect("date");
    si.charge(a, day(1), 100);
    si.charge(b, day(1), 200);
    si.charge(a, day(2), 300);
    // The day before the newest stays: a request dated before the cutover may arrive after it.
    assert_eq!(si.entries(), 3);
    assert_eq!(si.day(&a, day(1)).amount_minor, 100);
    si.charge(b, day(3), 400);
    assert_eq!(si.entries(), 2, "the first day's two cards are forgotten");
    assert_eq!(si.day(&a, day(1)), CardDay::default());
    assert_eq!(si.day(&b, day(1)), CardDay::default());
    assert_eq!(si.day(&a, day(2)).amount_minor, 300);
    assert_eq!(si.day(&b, day(3)).amount_minor, 400);
    // A straggler from the day before the newest is charged, and forgets nothing newer.
    si.charge(a, day(2), 50);
    assert_eq!(si.day(&a, day(2)).amount_minor, 350);
    assert_eq!(si.entries(), 2);
}
