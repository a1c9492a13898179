//! Billing-cycle statements: credit-card statements (interest, minimum payment, due date, late
//! fee) and monthly account statements for debit and prepaid accounts.
//!
//! Owns the statement rules written down below, the pure arithmetic that applies them
//! ([`compute`]), the reading of an issuer's ledger history into cycles ([`History`]) and the four
//! renderings ([`render`]: text, JSON, CSV, printable HTML). It leaves reading the journal,
//! the clock (the cycle end is an argument) and writing files to the caller: `issuer-sim
//! statements` for remote issuers, `switch statements` for on-us ones. Posting the cycle's
//! interest and fees goes through the ledger like every other change
//! ([`super::Engine::close_statement`], applied by [`super::ledger`]), so balances, open-to-buy
//! and a replay all include them.
//!
//! # A run
//!
//! 1. [`History::replay`]: a *fresh* engine (built from the issuer file, nothing applied) replays
//!    the issuer's whole journal. Each event's effect on the posted balance and on the cash
//!    advances is read from the ledger's own arithmetic, so a statement cannot disagree with the
//!    balances. Journals are never pruned, so the whole history is there.
//! 2. [`History::cycle`]`(cycle_end)`: one [`Planned`] per account whose cycle closes that day:
//!    the [`Statement`], and the [`CycleClose`] to post (none when that cycle was already closed:
//!    the statement is then rebuilt from the journal, with the charges as they were posted).
//! 3. [`super::Engine::close_statement`] journals and applies each close; it posts nothing for a
//!    cycle the account has already closed, so running statements twice is harmless.
//!
//! # Cycles
//!
//! Every account has a cycle day, 1-31 (`cycle_day` of the account, else of its product, else
//! 31); a cycle closes on that day of each month, or on the month's last day when the month is
//! shorter (31 means calendar months). A cycle runs from the day after the account's previous
//! close to the close day, both included; the first cycle of an account starts the day after the
//! calendar close a month earlier, and what was posted before it is the opening balance.
//!
//! Dates are UTC calendar dates of the events' times. A posting applied after the close of the
//! cycle its date falls in (the close ran early, or the posting came late) counts from the day
//! after that close: every posting is on exactly one statement, and a closed statement never
//! changes.
//!
//! Pending authorizations (holds) are not on statements: only postings are.
//!
//! # Credit statements
//!
//! Amounts are shown from the issuer's side: the balance is what the cardholder owes.
//!
//! ```text
//! new balance = previous balance - payments and credits + purchases + cash advances
//!               + fees + interest
//! ```
//!
//! Payments are deposits (processing code 21), credits are refunds (20); purchases are codes 00
//! and 09, cash advances 01. A reversal counts, negative, in the category of what it reverses.
//!
//! - **Interest, daily-balance method.** For each day of the cycle, take the balances at the end
//!   of the day (after every posting of that day). The cash balance subject to interest is the
//!   cash advances outstanding (payments repay cash first; see [`super::rules`]), at most the
//!   balance owed; the purchase balance is the rest of the balance owed (purchases, and the
//!   interest and fees of earlier cycles), never below zero. Then
//!   `interest = (sum of the day-end balances) x APR / 100 / 365`, separately for purchases and
//!   for cash, each from its own APR (`purchase_apr`, `cash_apr`). 365 in leap years too.
//! - **Grace period.** No purchase interest in a cycle when the previous statement's balance
//!   was paid in full by its due date (payments and credits posted from the day after that
//!   statement's close to its due date, both included, at least its new balance), or when there
//!   was nothing to pay. A first statement has grace when the cycle opened with nothing owed.
//!   Without grace, purchases accrue from their posting date. Cash never has grace: it accrues
//!   from its posting date.
//! - **Late fee.** `late_fee` (never more than the minimum that was due) is charged at the close
//!   of the cycle in which the previous statement's due date fell, when the payments and credits
//!   received by that due date are below that statement's minimum payment. A late payment also
//!   loses the grace period, unless it paid the whole balance.
//! - **Minimum payment.** With `p` = `min_payment_percent`, `floor` = `min_payment_floor`:
//!
//!   ```text
//!   minimum = 0                                                       if new balance <= 0
//!   minimum = min(new balance, max(floor, round(p% x new balance) + interest + fees))  otherwise
//!   ```
//!
//!   where interest and fees are this cycle's. Due `due_days` after the close (1-28, so the due
//!   date falls before the next close, which judges it).
//! - **Credit limit and available credit** are as of the close: available = limit - new balance,
//!   never below zero (holds are left out: they are not on the statement).
//!
//! Interest and fees post to the ledger at the close (one [`super::event::Change::Statement`]
//! event), into the purchase balance, past any limit.
//!
//! # Rounding
//!
//! All rates are `rust_decimal`. Interest is computed exactly from the integer sum of the
//! day-end balances in minor units and rounded **once per statement and kind** (purchase,
//! cash) to the minor unit, **half away from zero** (the quotient by 36,500 is taken to 28
//! significant digits first, which cannot move a result across a half). The percentage part of
//! the minimum payment is rounded the same way. Average daily balances, shown for information,
//! are rounded the same way; nothing is computed from them.
//!
//! # Debit and prepaid statements
//!
//! Monthly account statements from the cardholder's side: opening balance, credits (money in:
//! deposits, loads, refunds, reversed debits), debits (money out), closing balance
//! (`closing = opening + credits - debits`), and the postings. No interest or fees; the cycle
//! still closes in the ledger (with no charges), so statements of debit accounts are as
//! idempotent as credit ones.
//!
//! # Invariants
//!
//! Checked on every statement (a failure is [`StatementError::Inconsistent`], never a wrong
//! statement): the summary adds up (`closing = opening + debits - credits + interest + fees` in
//! the issuer's terms), the lines add up to the summary, a statement opens at the previous one's
//! closing balance, and a rebuilt closed statement closes at the balance the journal recorded.
//! After a close, with nothing posted after the cycle end, the ledger's balance is the statement's
//! closing balance.

pub mod compute;
mod history;
pub mod render;

#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use serde::Serialize;

pub use compute::{CreditTerms, CycleInput, Posting, Previous};
pub use history::{CycleClose, History, Planned};

use super::config::ProductKind;
use super::ledger::LedgerError;
use crate::domain::Currency;

/// Why statements could not be made or posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// The history was not replayed into a fresh engine (one that has applied nothing).
    #[error(
        "statements: the engine has already applied events; build a fresh one from the issuer file"
    )]
    EngineNotFresh,
    /// The journal does not apply to the issuer file (another file, or a corrupt journal).
    #[error("statements: journal does not apply: {0}")]
    Ledger(#[from] LedgerError),
    /// A cycle is asked for after a later one was closed on this account.
    #[error("statements: account {account} already closed a later cycle, ending {closed}")]
    ClosedLater { account: String, closed: NaiveDate },
    /// The figures do not add up: a bug, or a journal that is not this issuer's.
    #[error("statements: account {account}: {what}")]
    Inconsistent { account: String, what: &'static str },
    /// An amount left the range of 64-bit minor units.
    #[error("statements: amount overflow")]
    Overflow,
    /// The journal refused the close event; nothing was posted.
    #[error("statements: journal write failed; nothing posted")]
    Journal,
    /// A renderer failed (JSON or CSV writer).
    #[error("statements: cannot render: {0}")]
    Render(String),
}

/// One statement of one account for one cycle. Amounts are minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub issuer: String,
    pub issuer_name: String,
    /// Account id, as in the issuer file.
    pub account: String,
    /// Product id.
    pub product: String,
    pub kind: ProductKind,
    pub currency: Currency,
    /// First and last day of the cycle, both included.
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// The account's cards, masked (6+4).
    pub cards: Vec<String>,
    pub summary: Summary,
    /// The cycle's postings, by posting date then journal order; for credit, the interest and
    /// fee lines last.
    pub lines: Vec<Line>,
}

/// The figures of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    Credit(CreditSummary),
    /// Debit and prepaid.
    Account(AccountSummary),
}

/// A credit statement's figures; balances are what is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditSummary {
    pub previous_balance: i64,
    pub payments_and_credits: i64,
    pub purchases: i64,
    pub cash_advances: i64,
    pub fees: i64,
    pub interest: i64,
    pub purchase_interest: i64,
    pub cash_interest: i64,
    pub late_fee: i64,
    pub new_balance: i64,
    pub minimum_due: i64,
    pub due_date: NaiveDate,
    pub credit_limit: i64,
    pub available_credit: i64,
    /// No purchase interest this cycle (the previous balance was paid in full by its due date).
    pub grace: bool,
    /// Payments and credits received by the previous statement's due date, when there was one.
    pub paid_by_previous_due: Option<i64>,
    pub purchase_apr: rust_decimal::Decimal,
    pub cash_apr: rust_decimal::Decimal,
    /// Days in the cycle and the average daily balances (information only).
    pub days: u32,
    pub purchase_average_daily_balance: i64,
    pub cash_average_daily_balance: i64,
}

/// A debit or prepaid statement's figures, from the cardholder's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub opening_balance: i64,
    /// Money in.
    pub credits: i64,
    /// Money out.
    pub debits: i64,
    pub closing_balance: i64,
}

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The date it counts from (see "Cycles").
    pub posted: NaiveDate,
    /// The date of the transaction.
    pub date: NaiveDate,
    pub kind: LineKind,
    /// Reverses (part of) an earlier posting of the same kind.
    pub reversal: bool,
    pub description: String,
    /// The card, masked; `None` for interest and fees.
    pub card: Option<String>,
    /// The authorization code the transaction was answered with.
    pub reference: Option<String>,
    /// Credit: positive adds to the balance owed. Debit and prepaid: positive is money in.
    pub amount: i64,
}

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Processing codes 00 and 09.
    Purchase,
    /// Processing code 01: cash advance (credit) or withdrawal.
    Cash,
    /// Processing code 21: payment (credit), deposit (debit), load (prepaid).
    Payment,
    /// Processing code 20.
    Refund,
    PurchaseInterest,
    CashInterest,
    LateFee,
}

impl LineKind {
    /// The kind of a posting of processing-code transaction type `txn`, if statements know it.
    pub(crate) fn of_txn(txn: u8) -> Option<LineKind> {
        match txn {
            0 | 9 => Some(LineKind::Purchase),
            1 => Some(LineKind::Cash),
            20 => Some(LineKind::Refund),
            21 => Some(LineKind::Payment),
            _ => None,
        }
    }

    /// The stable name used in JSON, CSV and HTML.
    pub fn name(self) -> &'static str {
        match self {
            LineKind::Purchase => "purchase",
            LineKind::Cash => "cash",
            LineKind::Payment => "payment",
            LineKind::Refund => "refund",
            LineKind::PurchaseInterest => "purchase_interest",
            LineKind::CashInterest => "cash_interest",
            LineKind::LateFee => "late_fee",
        }
    }

    /// Words for the cardholder, for a product kind.
    pub fn label(self, product: ProductKind) -> &'static str {
        match (self, product) {
            (LineKind::Purchase, _) => "Purchase",
            (LineKind::Cash, ProductKind::Credit) => "Cash advance",
            (LineKind::Cash, _) => "Cash withdrawal",
            (LineKind::Payment, ProductKind::Credit) => "Payment",
            (LineKind::Payment, ProductKind::Debit) => "Deposit",
            (LineKind::Payment, ProductKind::Prepaid) => "Load",
            (LineKind::Refund, _) => "Refund",
            (LineKind::PurchaseInterest, _) => "Interest on purchases",
            (LineKind::CashInterest, _) => "Interest on cash advances",
            (LineKind::LateFee, _) => "Late fee",
        }
    }
}

/// Whether an account with cycle day `cycle_day` closes a cycle on `date`.
pub fn closes_on(cycle_day: u8, date: NaiveDate) -> bool {
    use chrono::Datelike;
    date.day() == u32::from(cycle_day).min(days_in_month(date.year(), date.month()))
}

/// The close a month before `end` for cycle day `cycle_day` (`end` itself being a close).
pub(crate) fn previous_close(cycle_day: u8, end: NaiveDate) -> Option<NaiveDate> {
    use chrono::Datelike;
    let (y, m) = if end.month() == 1 {
        (end.year() - 1, 12)
    } else {
        (end.year(), end.month() - 1)
    };
    NaiveDate::from_ymd_opt(y, m, u32::from(cycle_day).min(days_in_month(y, m)))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    match (first, next) {
        (Some(a), Some(b)) => u32::try_from((b - a).num_days()).unwrap_or(31),
        _ => 31,
    }
}
