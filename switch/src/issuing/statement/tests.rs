//! Statement tests.
//!
//! - Golden scenarios, figures computed by hand in the comments: a month of purchases paid in
//!   full; a revolving balance with interest; a cash advance; a late payment with its late fee
//!   and lost grace period; a debit and a prepaid month.
//! - Closes in the ledger: posted once however often statements run, replayed to the same
//!   balances, kept by snapshots; a cycle before a closed one is refused.
//! - `statements_reconcile` (proptest): random months of traffic, late postings included; every
//!   statement adds up, opens where the previous closed, is rebuilt identically, and the ledger
//!   ends at the last statement's balance.
//! - Renderings: golden text, and the key figures in JSON, CSV and HTML.
//! - Issuer files: statement terms validated; the repository's files carry them.

// Amounts are minor units written major_minor, `913_95` for 913.95, so the figures read as money.
#![allow(clippy::inconsistent_digit_grouping)]

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use proptest::prelude::*;

use super::render::{self, Format};
use super::*;
use crate::domain::{AccountType, Amount, Currency, ProcessingCode, TxnType};
use crate::issuing::tests::{key, pan};
use crate::issuing::{
    Engine, IdemKey, IssuerFile, IssuingRequest, LedgerEvent, PinCheck, RequestKind,
};

/// Credit terms chosen for hand arithmetic: 18.25% a year is 0.05% a day, 21.90% is 0.06%.
const BANK: &str = r#"
[issuer]
id = "cycle-bank"
name = "Cycle Bank"
auth_code_prefix = "C"

[journal]
dir = "data/cycle"

[[product]]
id = "card"
kind = "credit"
currency = "156"
cycle_day = 10
due_days = 25
purchase_apr = "18.25"
cash_apr = "21.90"
min_payment_percent = "10"
min_payment_floor = "50.00"
late_fee = "30.00"

[[product]]
id = "current"
kind = "debit"
currency = "156"

[[product]]
id = "gift"
kind = "prepaid"
currency = "156"
cycle_day = 10

[[account]]
id = "C1"
product = "card"
credit_limit = "10000.00"
cash_limit = "2000.00"

[[account]]
id = "D1"
product = "current"
balance = "5000.00"

[[account]]
id = "P1"
product = "gift"
balance = "200.00"

[[card]]
pan = "4111110000000013"
account = "C1"
expiry = "3012"

[[card]]
pan = "6222020000000015"
account = "D1"
expiry = "3012"

[[card]]
pan = "6050010000000013"
account = "P1"
expiry = "3012"
"#;

const CREDIT: &str = "4111110000000013";
const DEBIT: &str = "6222020000000015";
const PREPAID: &str = "6050010000000013";

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn noon(s: &str) -> NaiveDateTime {
    date(s).and_hms_opt(12, 0, 0).expect("time")
}

fn cny(minor: i64) -> Amount {
    Amount::new(minor, Currency::CNY)
}

/// A live engine and its journal, closing cycles the way `issuer-sim statements` does: a fresh
/// engine replays the whole journal, the closes post on it, and the live engine applies them.
struct Bank {
    file: IssuerFile,
    live: Engine,
    journal: Vec<LedgerEvent>,
    stan: u32,
}

impl Bank {
    fn new() -> Bank {
        Bank::from_toml(BANK)
    }

    fn from_toml(text: &str) -> Bank {
        let file = IssuerFile::from_toml_str(text, "mem").expect("file");
        let live = Engine::from_file(&file).expect("engine");
        Bank {
            file,
            live,
            journal: Vec::new(),
            stan: 0,
        }
    }

    /// Runs a request and journals its event; returns its key and whether it was approved.
    fn request(
        &mut self,
        kind: RequestKind,
        card: &str,
        txn: TxnType,
        minor: i64,
        at: NaiveDateTime,
    ) -> (IdemKey, bool) {
        self.stan += 1;
        let k = key(self.stan);
        let req = IssuingRequest {
            kind,
            key: k,
            pan: pan(card),
            processing_code: ProcessingCode::new(txn, AccountType::Default, AccountType::Default),
            amount: Some(cny(minor)),
            currency: Currency::CNY,
            mcc: None,
            expiry: None,
            pin: PinCheck::Absent,
            partial_supported: false,
        };
        let out = self.live.process(&req, at, at.date());
        if let Some(ev) = out.event {
            self.journal.push(ev);
        }
        (k, out.result.is_ok())
    }

    fn post(&mut self, card: &str, txn: TxnType, minor: i64, day: &str) -> IdemKey {
        let (k, ok) = self.request(RequestKind::Financial, card, txn, minor, noon(day));
        assert!(ok, "{txn:?} {minor} on {day} declined");
        k
    }

    fn purchase(&mut self, card: &str, minor: i64, day: &str) -> IdemKey {
        self.post(card, TxnType::Purchase, minor, day)
    }

    fn cash(&mut self, card: &str, minor: i64, day: &str) -> IdemKey {
        self.post(card, TxnType::Cash, minor, day)
    }

    fn pay(&mut self, card: &str, minor: i64, day: &str) -> IdemKey {
        self.post(card, TxnType::Deposit, minor, day)
    }

    fn refund(&mut self, card: &str, minor: i64, day: &str) -> IdemKey {
        self.post(card, TxnType::Refund, minor, day)
    }

    /// A fresh engine with the whole journal: what a statement run sees.
    fn history(&self) -> History {
        let fresh = Engine::from_file(&self.file).expect("engine");
        History::replay(fresh, self.journal.clone()).expect("history")
    }

    /// Closes the cycle ending `end`: statements, closes posted and journaled, the live engine
    /// told. Returns the statements and how many closes were posted.
    fn close(&mut self, end: &str) -> (Vec<Statement>, usize) {
        let history = self.history();
        let plans = history.cycle(date(end)).expect("cycle");
        let mut posted = 0;
        for p in &plans {
            if let Some(close) = &p.close {
                let mut journaled = None;
                let ev = history
                    .engine()
                    .close_statement(close, |ev: &LedgerEvent| {
                        journaled = Some(ev.clone());
                        Ok::<(), ()>(())
                    })
                    .expect("close")
                    .expect("posted");
                assert_eq!(journaled.as_ref(), Some(&ev));
                assert_eq!(
                    self.live.apply(&ev).expect("live applies"),
                    crate::issuing::Applied::Applied
                );
                self.journal.push(ev);
                posted += 1;
            }
        }
        (plans.into_iter().map(|p| p.statement).collect(), posted)
    }

    fn statement(&mut self, end: &str, account: &str) -> Statement {
        let (all, _) = self.close(end);
        all.into_iter()
            .find(|s| s.account == account)
            .expect("statement of the account")
    }

    fn posted(&self, card: &str) -> i64 {
        self.live.ledger(&pan(card)).expect("ledger").posted.minor()
    }
}

fn credit(s: &Statement) -> &CreditSummary {
    match &s.summary {
        Summary::Credit(c) => c,
        Summary::Account(_) => panic!("not a credit statement"),
    }
}

fn account(s: &Statement) -> &AccountSummary {
    match &s.summary {
        Summary::Account(a) => a,
        Summary::Credit(_) => panic!("not an account statement"),
    }
}

/// The figures a credit statement is checked against, minor units.
#[derive(Debug, PartialEq, Eq)]
struct Figures {
    previous: i64,
    payments: i64,
    purchases: i64,
    cash: i64,
    fees: i64,
    interest: i64,
    new: i64,
    minimum: i64,
    due: NaiveDate,
}

fn figures(s: &Statement) -> Figures {
    let c = credit(s);
    Figures {
        previous: c.previous_balance,
        payments: c.payments_and_credits,
        purchases: c.purchases,
        cash: c.cash_advances,
        fees: c.fees,
        interest: c.interest,
        new: c.new_balance,
        minimum: c.minimum_due,
        due: c.due_date,
    }
}

// ---------------------------------------------------------------------------------------------
// golden scenarios (cycle day 10: cycles Apr 11-May 10, May 11-Jun 10, Jun 11-Jul 10)

#[test]
fn purchases_paid_in_full_pay_no_interest() {
    let mut b = Bank::new();
    b.purchase(CREDIT, 100_00, "2026-04-15");
    b.purchase(CREDIT, 250_50, "2026-04-20");
    b.purchase(CREDIT, 49_50, "2026-05-01");

    // Statement 1, 2026-04-11..2026-05-10. Opened with nothing owed: grace, no purchase
    // interest. New balance 100.00 + 250.50 + 49.50 = 400.00.
    // Minimum: max(50.00, 10% x 400.00 = 40.00 + 0 interest + 0 fees) = 50.00.
    // Due 2026-05-10 + 25 days = 2026-06-04. Available 10,000.00 - 400.00 = 9,600.00.
    let s1 = b.statement("2026-05-10", "C1");
    assert_eq!(
        (s1.period_start, s1.period_end),
        (date("2026-04-11"), date("2026-05-10"))
    );
    assert_eq!(
        figures(&s1),
        Figures {
            previous: 0,
            payments: 0,
            purchases: 400_00,
            cash: 0,
            fees: 0,
            interest: 0,
            new: 400_00,
            minimum: 50_00,
            due: date("2026-06-04"),
        }
    );
    assert_eq!(credit(&s1).available_credit, 9_600_00);
    assert!(credit(&s1).grace);
    assert_eq!(s1.lines.len(), 3);
    assert_eq!(s1.lines[0].card.as_deref(), Some("411111******0013"));

    // Statement 2, 2026-05-11..2026-06-10: 400.00 paid on 05-30, before the due date 06-04,
    // so the whole balance was paid: grace, no interest on the 120.00 bought on 06-02.
    // New balance 400.00 - 400.00 + 120.00 = 120.00; minimum max(50.00, 12.00) = 50.00.
    b.pay(CREDIT, 400_00, "2026-05-30");
    b.purchase(CREDIT, 120_00, "2026-06-02");
    let s2 = b.statement("2026-06-10", "C1");
    assert_eq!(
        figures(&s2),
        Figures {
            previous: 400_00,
            payments: 400_00,
            purchases: 120_00,
            cash: 0,
            fees: 0,
            interest: 0,
            new: 120_00,
            minimum: 50_00,
            due: date("2026-07-05"),
        }
    );
    assert_eq!(credit(&s2).paid_by_previous_due, Some(400_00));
    assert!(credit(&s2).grace);
    assert_eq!(b.posted(CREDIT), -120_00);
}

/// Scenario 2's first two cycles, shared by the text golden test.
fn revolving() -> (Bank, Statement) {
    let mut b = Bank::new();
    b.purchase(CREDIT, 1_000_00, "2026-04-20");
    b.close("2026-05-10");
    b.pay(CREDIT, 300_00, "2026-05-25");
    b.purchase(CREDIT, 200_00, "2026-06-01");
    let s = b.statement("2026-06-10", "C1");
    (b, s)
}

#[test]
fn revolving_balance_pays_interest_from_the_posting_date() {
    // Statement 1: 1,000.00 owed, minimum max(50.00, 100.00) = 100.00, due 2026-06-04.
    // Statement 2, 2026-05-11..2026-06-10 (31 days): 300.00 paid on 05-25 covers the minimum
    // (no late fee) but not the balance, so no grace. Day-end purchase balances:
    //   05-11..05-24  14 days x 1,000.00 = 14,000.00
    //   05-25..05-31   7 days x   700.00 =  4,900.00
    //   06-01..06-10  10 days x   900.00 =  9,000.00
    //   sum 27,900.00 = 2,790,000 fen-days; x 18.25% / 365 = x 0.0005 = 1,395 fen = 13.95.
    // New balance 1,000.00 - 300.00 + 200.00 + 13.95 = 913.95.
    // Minimum: 10% x 913.95 = 91.395, rounded half away from zero 91.40; + 13.95 interest
    // = 105.35 (above the 50.00 floor, below the balance). Due 2026-06-10 + 25 = 2026-07-05.
    let (b, s) = revolving();
    assert_eq!(
        figures(&s),
        Figures {
            previous: 1_000_00,
            payments: 300_00,
            purchases: 200_00,
            cash: 0,
            fees: 0,
            interest: 13_95,
            new: 913_95,
            minimum: 105_35,
            due: date("2026-07-05"),
        }
    );
    let c = credit(&s);
    assert!(!c.grace);
    assert_eq!(
        (c.purchase_interest, c.cash_interest, c.late_fee),
        (13_95, 0, 0)
    );
    // Average daily balance 27,900.00 / 31 = 900.00.
    assert_eq!((c.days, c.purchase_average_daily_balance), (31, 900_00));
    assert_eq!(c.available_credit, 10_000_00 - 913_95);
    // The interest is in the ledger, and so in the open-to-buy.
    assert_eq!(b.posted(CREDIT), -913_95);
    let view = b.live.ledger(&pan(CREDIT)).expect("ledger");
    assert_eq!(view.available.minor(), 10_000_00 - 913_95);
    let last = s.lines.last().expect("lines");
    assert_eq!(
        (last.kind, last.amount, last.posted),
        (LineKind::PurchaseInterest, 13_95, date("2026-06-10"))
    );
}

#[test]
fn cash_advance_accrues_from_its_posting_date_without_grace() {
    let mut b = Bank::new();
    b.cash(CREDIT, 500_00, "2026-04-26");
    b.purchase(CREDIT, 100_00, "2026-05-05");

    // Statement 1, 2026-04-11..2026-05-10: the cash advance accrues from 04-26 to 05-10,
    // 15 days x 500.00 = 7,500.00 = 750,000 fen-days; x 21.90% / 365 = x 0.0006 = 450 fen
    // = 4.50. The purchase has grace (the cycle opened with nothing owed): no interest.
    // New balance 100.00 + 500.00 + 4.50 = 604.50.
    // Minimum: 10% x 604.50 = 60.45, + 4.50 interest = 64.95 (above the floor). Due 06-04.
    let s1 = b.statement("2026-05-10", "C1");
    assert_eq!(
        figures(&s1),
        Figures {
            previous: 0,
            payments: 0,
            purchases: 100_00,
            cash: 500_00,
            fees: 0,
            interest: 4_50,
            new: 604_50,
            minimum: 64_95,
            due: date("2026-06-04"),
        }
    );
    assert_eq!(credit(&s1).cash_interest, 4_50);
    assert_eq!(credit(&s1).purchase_interest, 0);
    assert_eq!(s1.lines[0].description, "Cash advance, terminal TERM0001");

    // Statement 2: 604.50 paid on 05-20 (in full, on time: grace for purchases). The payment
    // repays the cash first, so cash accrued 05-11..05-19: 9 days x 500.00 = 450,000 fen-days
    // x 0.0006 = 270 fen = 2.70. New balance 604.50 - 604.50 + 2.70 = 2.70.
    // Minimum: 10% x 2.70 = 0.27 + 2.70 = 2.97, raised to the 50.00 floor, capped at the
    // balance: 2.70.
    b.pay(CREDIT, 604_50, "2026-05-20");
    let s2 = b.statement("2026-06-10", "C1");
    assert_eq!(
        figures(&s2),
        Figures {
            previous: 604_50,
            payments: 604_50,
            purchases: 0,
            cash: 0,
            fees: 0,
            interest: 2_70,
            new: 2_70,
            minimum: 2_70,
            due: date("2026-07-05"),
        }
    );
    assert!(credit(&s2).grace);
    let view = b.live.ledger(&pan(CREDIT)).expect("ledger");
    assert_eq!((view.posted.minor(), view.cash_posted.minor()), (-2_70, 0));
}

#[test]
fn late_payment_charges_a_fee_and_loses_the_grace_period() {
    let mut b = Bank::new();
    b.purchase(CREDIT, 800_00, "2026-04-20");
    // Statement 1: 800.00, minimum max(50.00, 80.00) = 80.00, due 2026-06-04.
    let s1 = b.statement("2026-05-10", "C1");
    assert_eq!(
        (credit(&s1).new_balance, credit(&s1).minimum_due),
        (800_00, 80_00)
    );

    // Cycle 2: a purchase on 05-15, and the whole balance paid on 06-08, four days late.
    b.purchase(CREDIT, 100_00, "2026-05-15");
    b.pay(CREDIT, 800_00, "2026-06-08");
    // Paid by 06-04: 0.00 < 80.00 minimum: late fee min(30.00, 80.00) = 30.00.
    // Not paid in full by the due date: no grace, purchases accrue from their posting date:
    //   05-11..05-14   4 days x 800.00 =  3,200.00
    //   05-15..06-07  24 days x 900.00 = 21,600.00
    //   06-08..06-10   3 days x 100.00 =    300.00
    //   sum 25,100.00 = 2,510,000 fen-days x 0.0005 = 1,255 fen = 12.55.
    // New balance 800.00 - 800.00 + 100.00 + 30.00 + 12.55 = 142.55.
    // Minimum: 10% x 142.55 = 14.255, half away from zero 14.26; + 12.55 + 30.00 = 56.81.
    let s2 = b.statement("2026-06-10", "C1");
    assert_eq!(
        figures(&s2),
        Figures {
            previous: 800_00,
            payments: 800_00,
            purchases: 100_00,
            cash: 0,
            fees: 30_00,
            interest: 12_55,
            new: 142_55,
            minimum: 56_81,
            due: date("2026-07-05"),
        }
    );
    let c2 = credit(&s2);
    assert!(!c2.grace);
    assert_eq!((c2.late_fee, c2.paid_by_previous_due), (30_00, Some(0)));
    let fee = s2
        .lines
        .iter()
        .find(|l| l.kind == LineKind::LateFee)
        .expect("fee line");
    assert_eq!(
        fee.description,
        "Late fee, minimum payment 80.00 CNY not received by 2026-06-04"
    );
    assert_eq!(b.posted(CREDIT), -142_55);

    // Cycle 3: statement 2 paid in full on time (07-01): no fee, and the grace period is back,
    // so the 60.00 bought on 06-20 pays no interest. New balance 60.00, minimum 50.00.
    b.purchase(CREDIT, 60_00, "2026-06-20");
    b.pay(CREDIT, 142_55, "2026-07-01");
    let s3 = b.statement("2026-07-10", "C1");
    assert_eq!(
        figures(&s3),
        Figures {
            previous: 142_55,
            payments: 142_55,
            purchases: 60_00,
            cash: 0,
            fees: 0,
            interest: 0,
            new: 60_00,
            minimum: 50_00,
            due: date("2026-08-04"),
        }
    );
    assert!(credit(&s3).grace);
}

#[test]
fn minimum_paid_on_time_but_not_in_full_still_accrues() {
    // The revolving scenario's third cycle: nothing paid by 07-05 on a 105.35 minimum.
    // 913.95 owed for 30 days (06-11..07-10): 91,395 x 30 = 2,741,850 fen-days x 0.0005
    // = 1,370.925 fen, rounded 1,371 = 13.71. Late fee min(30.00, 105.35) = 30.00.
    // New 913.95 + 13.71 + 30.00 = 957.66; minimum 95.766 -> 95.77 + 13.71 + 30.00 = 139.48.
    let (mut b, _) = revolving();
    let s3 = b.statement("2026-07-10", "C1");
    let c = credit(&s3);
    assert_eq!(
        (
            c.purchase_interest,
            c.late_fee,
            c.new_balance,
            c.minimum_due
        ),
        (13_71, 30_00, 957_66, 139_48)
    );
}

#[test]
fn debit_month_statement() {
    let mut b = Bank::new();
    // Cycle day 31 (the default): calendar month 2026-05-01..2026-05-31, opening 5,000.00.
    let bought = b.purchase(DEBIT, 120_00, "2026-05-03");
    b.cash(DEBIT, 200_00, "2026-05-10");
    b.pay(DEBIT, 1_000_00, "2026-05-15");
    b.refund(DEBIT, 20_00, "2026-05-20");
    let (held, ok) = b.request(
        RequestKind::Authorization,
        DEBIT,
        TxnType::Purchase,
        50_00,
        noon("2026-05-22"),
    );
    assert!(ok);
    let (_, ok) = b.request(
        RequestKind::Completion { original: held },
        DEBIT,
        TxnType::Purchase,
        45_00,
        noon("2026-05-23"),
    );
    assert!(ok);
    let (_, ok) = b.request(
        RequestKind::Reversal {
            original: bought,
            replacement: None,
        },
        DEBIT,
        TxnType::Purchase,
        120_00,
        noon("2026-05-25"),
    );
    assert!(ok);
    // An open hold is pending, not on the statement.
    let (_, ok) = b.request(
        RequestKind::Authorization,
        DEBIT,
        TxnType::Purchase,
        10_00,
        noon("2026-05-30"),
    );
    assert!(ok);

    // Credits 1,000.00 + 20.00 + 120.00 (the reversed purchase) = 1,140.00.
    // Debits 120.00 + 200.00 + 45.00 = 365.00. Closing 5,000.00 + 1,140.00 - 365.00 = 5,775.00.
    let s = b.statement("2026-05-31", "D1");
    assert_eq!(
        (s.period_start, s.period_end),
        (date("2026-05-01"), date("2026-05-31"))
    );
    assert_eq!(
        account(&s),
        &AccountSummary {
            opening_balance: 5_000_00,
            credits: 1_140_00,
            debits: 365_00,
            closing_balance: 5_775_00,
        }
    );
    let kinds: Vec<(LineKind, bool, i64)> = s
        .lines
        .iter()
        .map(|l| (l.kind, l.reversal, l.amount))
        .collect();
    assert_eq!(
        kinds,
        [
            (LineKind::Purchase, false, -120_00),
            (LineKind::Cash, false, -200_00),
            (LineKind::Payment, false, 1_000_00),
            (LineKind::Refund, false, 20_00),
            (LineKind::Purchase, false, -45_00),
            (LineKind::Purchase, true, 120_00),
        ]
    );
    assert_eq!(s.lines[1].description, "Cash withdrawal, terminal TERM0001");
    assert_eq!(s.lines[2].description, "Deposit, terminal TERM0001");
    assert_eq!(b.posted(DEBIT), 5_775_00);
    // A debit close posts nothing.
    let view = b.live.ledger(&pan(DEBIT)).expect("ledger");
    assert_eq!((view.posted.minor(), view.held.minor()), (5_775_00, 10_00));
}

#[test]
fn prepaid_month_statement() {
    let mut b = Bank::new();
    b.pay(PREPAID, 100_00, "2026-04-12");
    b.purchase(PREPAID, 30_00, "2026-05-09");
    // 200.00 + 100.00 - 30.00 = 270.00. Loads are "Load".
    let s = b.statement("2026-05-10", "P1");
    assert_eq!(
        account(&s),
        &AccountSummary {
            opening_balance: 200_00,
            credits: 100_00,
            debits: 30_00,
            closing_balance: 270_00,
        }
    );
    assert_eq!(s.lines[0].description, "Load, terminal TERM0001");
    assert_eq!(s.kind, ProductKind::Prepaid);
}

// ---------------------------------------------------------------------------------------------
// closes in the ledger

#[test]
fn closing_twice_posts_once_and_rebuilds_the_same_statement() {
    let (mut b, s2) = revolving();
    let before = b.journal.len();
    let (again, posted) = b.close("2026-06-10");
    assert_eq!(posted, 0, "nothing posts twice");
    assert_eq!(b.journal.len(), before);
    let again = again.into_iter().find(|s| s.account == "C1").expect("C1");
    assert_eq!(again, s2, "the rebuilt statement is the one posted");
    assert_eq!(b.posted(CREDIT), -913_95);

    // The engine refuses the same close directly too, and the ledger refuses a second close
    // event for the cycle even under a new sequence number.
    let history = b.history();
    let closes: Vec<&LedgerEvent> = b
        .journal
        .iter()
        .filter(|e| matches!(e.change, crate::issuing::event::Change::Statement(_)))
        .collect();
    let mut dup = closes.last().copied().cloned().expect("a close");
    dup.seq = 10_000;
    assert!(matches!(
        history.engine().apply(&dup),
        Err(crate::issuing::LedgerError::Inconsistent(_))
    ));
    let close = CycleClose {
        account: dup.account,
        at_ms: dup.at,
        change: match dup.change {
            crate::issuing::event::Change::Statement(c) => c,
            _ => unreachable!(),
        },
    };
    assert_eq!(
        history
            .engine()
            .close_statement(&close, crate::issuing::no_journal),
        Ok(None)
    );
}

#[test]
fn replay_and_snapshot_reach_the_same_balances_after_charges() {
    let (b, _) = revolving();
    let fresh = Engine::from_file(&b.file).expect("engine");
    fresh.replay(b.journal.clone()).expect("replay");
    for card in [CREDIT, DEBIT, PREPAID] {
        assert_eq!(
            fresh.ledger(&pan(card)),
            b.live.ledger(&pan(card)),
            "{card}"
        );
    }
    fresh.check_invariants().expect("invariants");

    // A snapshot carries the closed cycles: a restored engine posts no close twice.
    let restored = Engine::from_file(&b.file).expect("engine");
    restored.restore(&b.live.snapshot()).expect("restore");
    assert_eq!(restored.ledger(&pan(CREDIT)), b.live.ledger(&pan(CREDIT)));
    let plans = b.history().cycle(date("2026-06-10")).expect("cycle");
    assert!(plans.iter().all(|p| p.close.is_none()));
    let late = CycleClose {
        account: 0,
        at_ms: 0,
        change: crate::issuing::event::StatementClose {
            cycle_end: date("2026-06-10").num_days_from_ce(),
            purchase_interest: 1,
            cash_interest: 0,
            late_fee: 0,
            closing: 0,
            minimum_due: 0,
            due_date: 0,
        },
    };
    assert_eq!(
        restored.close_statement(&late, crate::issuing::no_journal),
        Ok(None)
    );
}

#[test]
fn a_cycle_before_a_closed_one_is_refused() {
    let mut b = Bank::new();
    b.purchase(CREDIT, 10_00, "2026-05-20");
    b.close("2026-06-10");
    let err = b.history().cycle(date("2026-05-10")).expect_err("refused");
    assert_eq!(
        err,
        StatementError::ClosedLater {
            account: "C1".into(),
            closed: date("2026-06-10"),
        }
    );
}

#[test]
fn a_posting_after_its_cycle_closed_goes_on_the_next_statement() {
    let mut b = Bank::new();
    b.purchase(CREDIT, 100_00, "2026-05-09");
    b.close("2026-05-10");
    // Dated inside the closed cycle, but applied after its close: it counts from 05-11.
    b.purchase(CREDIT, 40_00, "2026-05-10");
    let s2 = b.statement("2026-06-10", "C1");
    let late = s2
        .lines
        .iter()
        .find(|l| l.amount == 40_00)
        .expect("late line");
    assert_eq!(
        (late.date, late.posted),
        (date("2026-05-10"), date("2026-05-11"))
    );
    assert_eq!(credit(&s2).purchases, 40_00);
}

#[test]
fn history_needs_a_fresh_engine() {
    let (b, _) = revolving();
    let used = Engine::from_file(&b.file).expect("engine");
    used.replay(b.journal.clone()).expect("replay");
    assert_eq!(
        History::replay(used, Vec::new()).err(),
        Some(StatementError::EngineNotFresh)
    );
}

#[test]
fn cycle_days_past_the_month_end_close_on_its_last_day() {
    assert!(closes_on(31, date("2026-02-28")));
    assert!(closes_on(30, date("2026-02-28")));
    assert!(!closes_on(31, date("2026-03-30")));
    assert!(closes_on(31, date("2026-03-31")));
    assert!(closes_on(29, date("2028-02-29")));
    assert_eq!(
        previous_close(31, date("2026-03-31")),
        Some(date("2026-02-28"))
    );
    assert_eq!(
        previous_close(10, date("2026-01-10")),
        Some(date("2025-12-10"))
    );
}

#[test]
fn minimum_payment_formula() {
    let terms = CreditTerms {
        due_days: 25,
        purchase_apr: "18.25".parse().expect("apr"),
        cash_apr: "0".parse().expect("apr"),
        min_payment_percent: "10".parse().expect("pct"),
        min_payment_floor: 50_00,
        late_fee: 30_00,
    };
    let min = |balance, charges| compute::minimum_payment(&terms, balance, charges).expect("min");
    assert_eq!(min(0, 0), 0);
    assert_eq!(min(-5_00, 0), 0, "a credit balance owes nothing");
    assert_eq!(min(20_00, 0), 20_00, "the floor is capped at the balance");
    assert_eq!(min(400_00, 0), 50_00, "the floor");
    assert_eq!(min(913_95, 13_95), 105_35, "91.395 rounds to 91.40");
    assert_eq!(min(142_55, 42_55), 56_81, "14.255 rounds to 14.26");
    // Half away from zero at exactly half a fen, and not before.
    assert_eq!(
        compute::interest(1_000, "18.25".parse().expect("apr")),
        Ok(1)
    ); // 0.5
    assert_eq!(compute::interest(999, "18.25".parse().expect("apr")), Ok(0)); // 0.4995
}

// ---------------------------------------------------------------------------------------------
// reconciliation (proptest)

/// What one random step does, on a day offset within its cycle.
#[derive(Debug, Clone)]
enum Op {
    Purchase(i64),
    Cash(i64),
    Pay(i64),
    Refund(i64),
    /// Authorization then completion for a different amount (within the hold for debit).
    AuthCapture(i64, i64),
    /// Full reversal of an earlier posting (by index among this run's postings).
    Reverse(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..=80_000).prop_map(Op::Purchase),
        2 => (1i64..=30_000).prop_map(Op::Cash),
        3 => (1i64..=120_000).prop_map(Op::Pay),
        1 => (1i64..=10_000).prop_map(Op::Refund),
        2 => (1i64..=50_000, 0i64..=100).prop_map(|(a, p)| Op::AuthCapture(a, (a * p / 100).max(1))),
        1 => any::<usize>().prop_map(Op::Reverse),
    ]
}

/// Cycle ends of the property test and their first days (cycle day 10).
const CYCLES: [(&str, &str); 4] = [
    ("2026-04-11", "2026-05-10"),
    ("2026-05-11", "2026-06-10"),
    ("2026-06-11", "2026-07-10"),
    ("2026-07-11", "2026-08-10"),
];

fn run_op(
    b: &mut Bank,
    card: &'static str,
    op: &Op,
    at: NaiveDateTime,
    keys: &mut Vec<(IdemKey, TxnType, i64)>,
) {
    let mut fin = |b: &mut Bank, txn, amount| {
        let (k, ok) = b.request(RequestKind::Financial, card, txn, amount, at);
        if ok {
            keys.push((k, txn, amount));
        }
    };
    match *op {
        Op::Purchase(a) => fin(b, TxnType::Purchase, a),
        Op::Cash(a) => fin(b, TxnType::Cash, a),
        Op::Pay(a) => fin(b, TxnType::Deposit, a),
        Op::Refund(a) => fin(b, TxnType::Refund, a),
        Op::AuthCapture(a, c) => {
            let (k, ok) = b.request(RequestKind::Authorization, card, TxnType::Purchase, a, at);
            if ok {
                b.request(
                    RequestKind::Completion { original: k },
                    card,
                    TxnType::Purchase,
                    c,
                    at,
                );
            }
        }
        Op::Reverse(i) => {
            if !keys.is_empty() {
                let (k, txn, amount) = keys.remove(i % keys.len());
                b.request(
                    RequestKind::Reversal {
                        original: k,
                        replacement: None,
                    },
                    card,
                    txn,
                    amount,
                    at,
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Per cycle: the summary adds up (closing = opening + debits - credits + interest + fees),
    /// the lines add up to it, each statement opens at the previous closing, a second run
    /// rebuilds it identically and posts nothing, and the ledger (live and replayed) ends at
    /// the statement's balance.
    #[test]
    fn statements_reconcile(
        cycles in proptest::collection::vec(
            proptest::collection::vec((op(), 0i64..30, any::<bool>(), any::<bool>()), 0..14),
            CYCLES.len(),
        ),
    ) {
        let mut b = Bank::new();
        let mut keys = [Vec::new(), Vec::new()];
        let mut previous: [Option<i64>; 2] = [None, None];
        for (i, ops) in cycles.iter().enumerate() {
            let (first, end) = CYCLES[i];
            for (op, day, debit, late) in ops {
                let card = if *debit { DEBIT } else { CREDIT };
                // A "late" posting is dated inside the cycle already closed.
                let base = if *late && i > 0 { date(CYCLES[i - 1].0) } else { date(first) };
                let at = (base + chrono::Duration::days(*day % 30)).and_hms_opt(9, 0, 0).expect("t");
                run_op(&mut b, card, op, at, &mut keys[usize::from(*debit)]);
            }
            let (statements, _) = b.close(end);
            let (rebuilt, posted_again) = b.close(end);
            prop_assert_eq!(posted_again, 0);
            prop_assert_eq!(&rebuilt, &statements);
            for s in &statements {
                let moved: i64 = s.lines.iter().map(|l| l.amount).sum();
                let (slot, open, close, ledger) = match &s.summary {
                    Summary::Credit(c) => {
                        prop_assert_eq!(
                            c.new_balance,
                            c.previous_balance + c.purchases + c.cash_advances
                                - c.payments_and_credits + c.interest + c.fees
                        );
                        prop_assert!(c.minimum_due >= 0 && c.minimum_due <= c.new_balance.max(0));
                        prop_assert_eq!(c.fees, c.late_fee);
                        (0usize, c.previous_balance, c.new_balance, -b.posted(CREDIT))
                    }
                    Summary::Account(a) => {
                        if s.account != "D1" { continue; }
                        prop_assert_eq!(a.closing_balance, a.opening_balance + a.credits - a.debits);
                        (1usize, a.opening_balance, a.closing_balance, b.posted(DEBIT))
                    }
                };
                prop_assert_eq!(open + moved, close, "lines add up");
                if let Some(p) = previous[slot] {
                    prop_assert_eq!(open, p, "opens at the previous closing");
                }
                previous[slot] = Some(close);
                // Nothing is posted after the cycle end yet: the ledger is the statement.
                prop_assert_eq!(ledger, close, "the ledger ends at the statement balance");
            }
        }
        let fresh = Engine::from_file(&b.file).expect("engine");
        fresh.replay(b.journal.clone()).expect("replay");
        for card in [CREDIT, DEBIT, PREPAID] {
            prop_assert_eq!(fresh.ledger(&pan(card)), b.live.ledger(&pan(card)));
        }
        fresh.check_invariants().expect("invariants");
    }
}

// ---------------------------------------------------------------------------------------------
// renderings

const REVOLVING_TEXT: &str = "\
Cycle Bank
Credit card statement

Account                 C1 (card)
Period                  2026-05-11 to 2026-06-10
Cards                   411111******0013
Currency                CNY

Previous balance                     1000.00
Payments and credits (-)              300.00
Purchases (+)                         200.00
Cash advances (+)                       0.00
Fees (+)                                0.00
Interest (+)                           13.95
New balance                           913.95
Minimum payment due                   105.35
Payment due date                  2026-07-05
Credit limit                        10000.00
Available credit                     9086.05

Interest on purchases: 18.25% APR; average daily balance 900.00 over 31 days; charged 13.95.
Interest on cash advances: 21.90% APR from the posting date; average daily balance 0.00; charged 0.00.
Grace period lost: the previous balance was not paid in full by its due date, so purchases accrue interest from their posting date.
Payments and credits received by the previous due date: 300.00.
Pay the whole new balance, 913.95, by 2026-07-05 and purchases pay no interest next cycle.

Posted      Date        Card              Description                                      Ref              Amount
2026-05-25  2026-05-25  411111******0013  Payment, terminal TERM0001                       C00004          -300.00
2026-06-01  2026-06-01  411111******0013  Purchase, terminal TERM0001                      C00005           200.00
2026-06-10  2026-06-10                    Interest on purchases, 18.25% APR                                  13.95
";

/// Reference codes are the engine's authorization codes: "C" and the event's sequence number in
/// base 36 (1 the purchase, 2 and 3 the closes of C1 and P1 on 05-10, 4 the payment...).
#[test]
fn text_golden() {
    let (_, s) = revolving();
    assert_eq!(render::text(&s), REVOLVING_TEXT);
}

#[test]
fn json_csv_and_html_carry_the_key_figures() {
    let (_, s) = revolving();

    let json: serde_json::Value =
        serde_json::from_str(&render::json(&s).expect("json")).expect("parses");
    assert_eq!(json["summary"]["new_balance"], "913.95");
    assert_eq!(json["summary"]["minimum_due"], "105.35");
    assert_eq!(json["summary"]["due_date"], "2026-07-05");
    assert_eq!(json["interest"]["grace"], false);
    assert_eq!(json["transactions"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["transactions"][0]["kind"], "payment");
    assert_eq!(json["transactions"][0]["amount"], "-300.00");
    assert_eq!(json["cards"][0], "411111******0013");

    let text = render::csv(&s).expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("rows");
    let find = |kind: &str| {
        rows.iter()
            .find(|r| &r[0] == "summary" && &r[3] == kind)
            .cloned()
    };
    assert_eq!(
        find("new_balance").map(|r| r[7].to_owned()),
        Some("913.95".into())
    );
    assert_eq!(
        find("minimum_due").map(|r| r[7].to_owned()),
        Some("105.35".into())
    );
    assert_eq!(
        find("due_date").map(|r| r[2].to_owned()),
        Some("2026-07-05".into())
    );
    assert_eq!(rows.iter().filter(|r| &r[0] == "transaction").count(), 3);

    let html = render::html(&s);
    for needle in [
        "id=\"new-balance\" class=\"amount\" data-minor=\"91395\">913.95<",
        "id=\"minimum-due\" class=\"amount\" data-minor=\"10535\">105.35<",
        "<time id=\"due-date\" datetime=\"2026-07-05\">2026-07-05</time>",
        "id=\"available-credit\" class=\"amount\" data-minor=\"908605\">9086.05<",
        "<table id=\"transactions\"",
        "<tr class=\"line\" data-kind=\"purchase_interest\" data-minor=\"1395\">",
        "@media print",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("http"), "no external resource");
    assert!(!html.contains("4111110000000013"), "never the full PAN");

    for f in Format::ALL {
        let out = f.render(&s).expect("render");
        assert!(!out.contains("4111110000000013"), "{f:?} shows the PAN");
        assert!(out.contains("913.95"), "{f:?}");
    }
}

#[test]
fn html_escapes_what_the_issuer_file_says() {
    let text = BANK
        .replace("name = \"Cycle Bank\"", "name = \"Cycle & <Bank>\"")
        .replace("id = \"C1\"", "id = \"C\\\"1\"")
        .replace("account = \"C1\"", "account = \"C\\\"1\"");
    let mut b = Bank::from_toml(&text);
    b.purchase(CREDIT, 1_00, "2026-05-01");
    let (all, _) = b.close("2026-05-10");
    let html = render::html(&all[0]);
    assert!(html.contains("Cycle &amp; &lt;Bank&gt;"));
    assert!(html.contains("data-account=\"C&quot;1\""));
    assert!(!html.contains("<Bank>"));
}

#[test]
fn debit_renderings_have_their_own_figures() {
    let mut b = Bank::new();
    b.purchase(DEBIT, 1_00, "2026-05-03");
    let s = b.statement("2026-05-31", "D1");
    let html = render::html(&s);
    assert!(
        html.contains("id=\"closing-balance\" class=\"amount\" data-minor=\"499900\">4999.00<")
    );
    assert!(!html.contains("minimum-due"));
    let text = render::text(&s);
    assert!(text.contains("Debit account statement"));
    assert!(text.contains("Closing balance                      4999.00"));
}

// ---------------------------------------------------------------------------------------------
// issuer files

#[test]
fn statement_terms_are_validated() {
    let bad = BANK
        .replace(
            "cycle_day = 10\ndue_days = 25",
            "cycle_day = 0\ndue_days = 29",
        )
        .replace("purchase_apr = \"18.25\"", "purchase_apr = \"abc\"")
        .replace("late_fee = \"30.00\"", "late_fee = \"-1\"")
        .replace(
            "id = \"current\"\nkind = \"debit\"",
            "id = \"current\"\nkind = \"debit\"\ncash_apr = \"5\"",
        )
        .replace(
            "balance = \"5000.00\"",
            "balance = \"5000.00\"\ncycle_day = 32",
        );
    let file = IssuerFile::from_toml_str(&bad, "mem").expect("parses");
    let problems = file.validate().expect_err("invalid");
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for expected in [
        "product[0].cycle_day",
        "product[0].due_days",
        "product[0].purchase_apr",
        "product[0].late_fee",
        "product[1].cash_apr",
        "account[1].cycle_day",
    ] {
        assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
    }
}

#[test]
fn repository_issuer_files_have_statement_terms() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/issuers");
    let load = |name: &str| {
        let file = IssuerFile::load(&dir.join(format!("{name}.toml"))).expect("file");
        Engine::from_file(&file).expect("engine")
    };
    let north = load("north-bank");
    let def = north.account_def(0).expect("account");
    let terms = north.product_of(def).terms;
    assert!(terms.purchase_apr > rust_decimal::Decimal::ZERO);
    assert!(terms.late_fee > 0);
    assert_eq!(def.cycle_day, 5);
    assert_eq!(north.account_def(3).expect("NB-0004").cycle_day, 20);
    assert_eq!(load("east-bank").account_def(0).expect("EB").cycle_day, 31);
    assert_eq!(load("metro-pay").account_def(0).expect("MP").cycle_day, 31);
}
