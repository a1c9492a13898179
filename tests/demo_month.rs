//! The golden test of `switch demo --days 35`: the month runs exactly as the binary runs it
//! (`switch::demo::month::run`, the whole stack over TCP on a manual clock), and the figures of
//! the statements it yields are pinned here, each checked by hand below.
//!
//! North Bank's product: purchase and cash APR 18.25%, so the daily rate is 18.25 / 100 / 365 =
//! 0.0005 and interest is (sum of day-end balances in minor units) / 2,000, rounded half away
//! from zero; minimum = max(50.00, 10% of the new balance + interest + fees), at most the
//! balance; due 25 days after the close; late fee 30.00.

// Amounts are minor units written major_minor, `830_08` for 830.08, so the figures read as money.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use common::root;
use switch::demo::month::{Month, MonthOptions, run, start_date};
use switch::issuing::statement::{CreditSummary, LineKind, Summary};
use switch::issuing::{Engine, IssuerFile, Statement};

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn statement<'a>(m: &'a Month, account: &str, end: &str) -> &'a Statement {
    m.statements_of(account)
        .map(|d| &d.statement)
        .find(|s| s.period_end == date(end))
        .unwrap_or_else(|| panic!("no statement of {account} ending {end}"))
}

fn credit(s: &Statement) -> &CreditSummary {
    match &s.summary {
        Summary::Credit(c) => c,
        Summary::Account(_) => panic!("{} is not a credit statement", s.account),
    }
}

/// (kind, amount) of every line, in statement order.
fn lines(s: &Statement) -> Vec<(LineKind, i64)> {
    s.lines.iter().map(|l| (l.kind, l.amount)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_five_days_yield_the_pinned_statements_and_settle_to_zero_every_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = MonthOptions::new(root().join("config/switch.toml"), dir.path().to_owned(), 35);
    opts.progress = false;
    assert_eq!(opts.start, start_date());
    let m = run(&opts).await.expect("the month runs");

    // 35 business days, each cleared without exceptions and settled to zero per currency.
    assert_eq!(m.days.len(), 35);
    assert_eq!(m.days[0].date, date("2026-05-02"));
    assert_eq!(m.days[34].date, date("2026-06-05"));
    for d in &m.days {
        assert_eq!(d.exceptions, 0, "{}", d.date);
        assert!(d.cleared > 0, "{}", d.date);
        let mut sums: BTreeMap<u16, i64> = BTreeMap::new();
        for p in &d.settlement.positions {
            *sums.entry(p.currency).or_default() += p.net_minor;
        }
        assert!(sums.values().all(|s| *s == 0), "{}: {sums:?}", d.date);
        assert!(m.day_dir(d.date).join("settlement.txt").exists());
    }

    // NB-0001, first cycle 2026-04-06..05-05. Postings: 05-02 purchase 250.00; 05-03 a
    // preauthorization of 120.00 completed on 05-04 for 135.00; 05-04 purchase 60.00 and its
    // reversal; 05-05 refund 30.00. Purchases 250 + 135 + 60 - 60 = 385.00, credits 30.00, new
    // balance 355.00. A first cycle that opened owing nothing has grace: no interest.
    // Minimum = max(50.00, 35.50) = 50.00, due 05-05 + 25 days = 05-30.
    let may = statement(&m, "NB-0001", "2026-05-05");
    let c = credit(may);
    assert_eq!(may.period_start, date("2026-04-06"));
    assert_eq!(
        (
            c.previous_balance,
            c.payments_and_credits,
            c.purchases,
            c.cash_advances
        ),
        (0, 30_00, 385_00, 0)
    );
    assert_eq!((c.interest, c.fees, c.new_balance), (0, 0, 355_00));
    assert_eq!((c.minimum_due, c.due_date), (50_00, date("2026-05-30")));
    assert!(c.grace);
    assert_eq!(
        lines(may),
        vec![
            (LineKind::Purchase, 250_00),
            (LineKind::Purchase, 135_00),
            (LineKind::Purchase, 60_00),
            (LineKind::Purchase, -60_00),
            (LineKind::Refund, -30_00),
        ]
    );

    // NB-0001, second cycle 05-06..06-05 (31 days). Nothing was paid by the 05-30 due date: the
    // grace period is lost and a late fee of min(30.00, 50.00) = 30.00 is charged. Day-end
    // balances owed (purchase part | cash part), minor units x days:
    //   05-06..05-07  355.00                         | 0        35500 x 2 =   71000
    //   05-08..05-11  + 89.90 purchase    = 444.90   | 0        44490 x 4 =  177960
    //   05-12..05-15  + 200.00 cash       = 444.90   | 200.00   44490 x 4 =  177960 | 20000 x 4 =  80000
    //   05-16..05-20  + 45.00             = 489.90   | 200.00   48990 x 5 =  244950 | 20000 x 5 = 100000
    //   05-21..05-26  + 120.00            = 609.90   | 200.00   60990 x 6 =  365940 | 20000 x 6 = 120000
    //   05-27..06-01  + 15.50             = 625.40   | 200.00   62540 x 6 =  375240 | 20000 x 6 = 120000
    //   06-02..06-03  payment 100.00 repays cash first:
    //                                       625.40   | 100.00   62540 x 2 =  125080 | 10000 x 2 =  20000
    //   06-04..06-05  + 64.00             = 689.40   | 100.00   68940 x 2 =  137880 | 10000 x 2 =  20000
    //                                                   sum     1676010           |            460000
    // Purchase interest 1,676,010 / 2,000 = 838.005 -> 838 (8.38); cash 460,000 / 2,000 = 230
    // (2.30); interest 10.68. New balance 355.00 - 100.00 + 334.40 purchases + 200.00 cash +
    // 30.00 fee + 10.68 = 830.08. Minimum 10% of 830.08 = 83.008 -> 83.01, + 10.68 + 30.00 =
    // 123.69. Due 06-05 + 25 = 06-30. Available 10,000.00 - 830.08 = 9,169.92.
    let june = statement(&m, "NB-0001", "2026-06-05");
    let c = credit(june);
    assert_eq!(june.period_start, date("2026-05-06"));
    assert_eq!(c.days, 31);
    assert!(!c.grace);
    assert_eq!(c.paid_by_previous_due, Some(0));
    assert_eq!(
        (
            c.previous_balance,
            c.payments_and_credits,
            c.purchases,
            c.cash_advances
        ),
        (355_00, 100_00, 334_40, 200_00)
    );
    assert_eq!(
        (c.purchase_interest, c.cash_interest, c.interest),
        (8_38, 2_30, 10_68)
    );
    assert_eq!((c.late_fee, c.fees), (30_00, 30_00));
    assert_eq!(c.new_balance, 830_08);
    assert_eq!(c.minimum_due, 123_69);
    assert_eq!(c.due_date, date("2026-06-30"));
    assert_eq!((c.credit_limit, c.available_credit), (10_000_00, 9_169_92));
    // Average daily balances, for information: 1,676,010 / 31 = 54,064.8 -> 540.65;
    // 460,000 / 31 = 14,838.7 -> 148.39.
    assert_eq!(
        (
            c.purchase_average_daily_balance,
            c.cash_average_daily_balance
        ),
        (540_65, 148_39)
    );
    assert_eq!(
        lines(june),
        vec![
            (LineKind::Purchase, 89_90),
            (LineKind::Cash, 200_00),
            (LineKind::Purchase, 45_00),
            (LineKind::Purchase, 120_00),
            (LineKind::Purchase, 15_50),
            (LineKind::Payment, -100_00),
            (LineKind::Purchase, 64_00),
            (LineKind::PurchaseInterest, 8_38),
            (LineKind::CashInterest, 2_30),
            (LineKind::LateFee, 30_00),
        ]
    );
    // The demo shows this statement.
    let featured = m.featured().expect("a credit statement");
    assert_eq!(
        (
            featured.statement.account.as_str(),
            featured.statement.period_end
        ),
        ("NB-0001", date("2026-06-05"))
    );

    // NB-0004 (limit 100.00), cycle 04-21..05-20: purchase 40.00 on 05-06 (70.00 on 05-09 is
    // declined over the limit), cash 20.00 on 05-14. First cycle: grace on purchases, but cash
    // accrues from 05-14: 2000 x 7 days = 14,000 / 2,000 = 7 (0.07). New balance 60.07;
    // minimum max(50.00, 6.01 + 0.07) = 50.00, due 06-14.
    let small = credit(statement(&m, "NB-0004", "2026-05-20"));
    assert_eq!(
        (small.purchases, small.cash_advances, small.interest),
        (40_00, 20_00, 7)
    );
    assert_eq!(
        (small.new_balance, small.minimum_due, small.due_date),
        (60_07, 50_00, date("2026-06-14"))
    );

    // Metro Pay is on-us: its statements come from the switch's own journal. MP-0001 (200.00)
    // bought 2.00 on every other day of May from 05-02 (15 days: 30.00) and loaded 50.00.
    let prepaid = statement(&m, "MP-0001", "2026-05-31");
    let Summary::Account(a) = &prepaid.summary else {
        panic!("prepaid statement");
    };
    assert_eq!(
        (a.opening_balance, a.credits, a.debits, a.closing_balance),
        (200_00, 50_00, 30_00, 220_00)
    );
    // East Bank EB-0001 (5,000.00): purchases of 10.00, 12.50, 15.00, 17.50, 20.00 in turn on
    // the 30 days 05-02..05-31 (6 x 75.00 = 450.00), an ATM withdrawal of 100.00, a refund
    // of 12.50.
    let Summary::Account(a) = &statement(&m, "EB-0001", "2026-05-31").summary else {
        panic!("debit statement");
    };
    assert_eq!(
        (a.opening_balance, a.credits, a.debits, a.closing_balance),
        (5_000_00, 12_50, 550_00, 4_462_50)
    );

    // The closes were posted durably: North Bank's host, replaying its journal, owes exactly
    // the statement's balance on NB-0001 (nothing was posted on it after the close).
    let file = IssuerFile::load(&root().join("config/issuers/north-bank.toml")).expect("file");
    let engine = Engine::from_file(&file).expect("engine");
    let (journal, _) = switch::host::open_journal(
        &dir.path().join("journals/issuers/north-bank"),
        switch::config::JournalSync::Always,
        &engine,
    )
    .expect("journal");
    let pan = switch::domain::Pan::parse(b"4111110000000013").expect("pan");
    assert_eq!(engine.ledger(&pan).expect("ledger").posted.minor(), -830_08);
    drop(journal);

    // Every statement file the demo names exists, and the end text shows the statement and the
    // settlement report.
    for d in &m.statements {
        for f in &d.files {
            assert!(f.exists(), "{}", f.display());
        }
    }
    let text = m.closing_text();
    assert!(
        text.contains("New balance                           830.08"),
        "{text}"
    );
    assert!(
        text.contains("Settlement, business day 2026-06-05"),
        "{text}"
    );
    assert!(text.contains("Net positions sum to zero"), "{text}");
}
