//! The statement arithmetic, as pure functions: a cycle's postings, opening balances, the
//! previous statement's facts and the product's terms in; the figures out. No I/O, no clock, no
//! engine: the rules are in the parent module's documentation, and this is all of them.
//!
//! It leaves finding the postings of a cycle and the previous statement to [`super::History`],
//! and words and layout to [`super::render`].

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::{LineKind, StatementError};

/// Days in a year for the daily periodic rate (APR / 365), leap years included.
const DAYS_PER_YEAR: i64 = 365;

/// A credit product's statement terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditTerms {
    /// Days from the close to the due date.
    pub due_days: u32,
    /// Annual percentage rates, percent.
    pub purchase_apr: Decimal,
    pub cash_apr: Decimal,
    /// Percent of the new balance in the minimum payment.
    pub min_payment_percent: Decimal,
    /// Minor units.
    pub min_payment_floor: i64,
    pub late_fee: i64,
}

/// One posting of the cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    /// The day it counts from, within the cycle.
    pub date: NaiveDate,
    /// One of purchase, cash, payment, refund.
    pub kind: LineKind,
    /// Change of the ledger balance, cardholder side (negative: money out, or more owed).
    pub amount: i64,
    /// Change of a credit account's cash advances outstanding.
    pub cash: i64,
}

/// The previous credit statement's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Previous {
    /// What was owed.
    pub new_balance: i64,
    pub minimum_due: i64,
    pub due_date: NaiveDate,
}

/// Everything one cycle's figures depend on, besides the terms.
#[derive(Debug, Clone, Copy)]
pub struct CycleInput<'a> {
    /// First and last day, both included.
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Ledger balance at the start, cardholder side (a credit balance owed is negative).
    pub opening: i64,
    /// Credit: cash advances outstanding at the start.
    pub opening_cash: i64,
    /// Credit: the previous statement, if there was one.
    pub previous: Option<Previous>,
    pub postings: &'a [Posting],
}

/// The charges of one credit cycle, minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Charges {
    pub purchase_interest: i64,
    pub cash_interest: i64,
    pub late_fee: i64,
}

/// What a closed cycle recorded; a rebuilt statement shows these rather than recomputing them
/// (the terms may have changed since).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub charges: Charges,
    pub minimum_due: i64,
    pub due_date: NaiveDate,
}

/// A credit cycle's figures; balances are what is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditFigures {
    pub previous_balance: i64,
    pub payments_and_credits: i64,
    pub purchases: i64,
    pub cash_advances: i64,
    pub charges: Charges,
    pub new_balance: i64,
    pub minimum_due: i64,
    pub due_date: NaiveDate,
    pub grace: bool,
    pub paid_by_previous_due: Option<i64>,
    pub days: u32,
    /// Sums of the day-end balances subject to interest, minor-unit days.
    pub purchase_balance_days: i128,
    pub cash_balance_days: i128,
}

impl CreditFigures {
    pub fn fees(&self) -> i64 {
        self.charges.late_fee
    }

    /// Both kinds of interest.
    pub fn interest(&self) -> Option<i64> {
        self.charges
            .purchase_interest
            .checked_add(self.charges.cash_interest)
    }
}

/// A debit or prepaid cycle's figures, cardholder side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountFigures {
    pub opening: i64,
    pub credits: i64,
    pub debits: i64,
    pub closing: i64,
}

/// What can go wrong in the arithmetic, before the caller names the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Overflow,
    Inconsistent(&'static str),
}

impl Fault {
    pub(crate) fn for_account(self, account: &str) -> StatementError {
        match self {
            Fault::Overflow => StatementError::Overflow,
            Fault::Inconsistent(what) => StatementError::Inconsistent {
                account: account.to_owned(),
                what,
            },
        }
    }
}

fn add(a: i64, b: i64) -> Result<i64, Fault> {
    a.checked_add(b).ok_or(Fault::Overflow)
}

fn sub(a: i64, b: i64) -> Result<i64, Fault> {
    a.checked_sub(b).ok_or(Fault::Overflow)
}

/// `base x pct / divisor`, rounded to an integer half away from zero.
fn round_share(base: i128, pct: Decimal, divisor: i64) -> Result<i64, Fault> {
    let base = Decimal::try_from_i128_with_scale(base, 0).map_err(|_| Fault::Overflow)?;
    base.checked_mul(pct)
        .and_then(|v| v.checked_div(Decimal::from(divisor)))
        .map(|v| v.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero))
        .and_then(|v| v.to_i64())
        .ok_or(Fault::Overflow)
}

/// Interest on a sum of day-end balances at `apr` percent: `sum x apr / 100 / 365`, rounded
/// once, half away from zero.
pub fn interest(balance_days: i128, apr: Decimal) -> Result<i64, Fault> {
    round_share(balance_days, apr, 100 * DAYS_PER_YEAR)
}

/// `sum / days` rounded half away from zero: an average daily balance, for information.
fn average(balance_days: i128, days: u32) -> Result<i64, Fault> {
    round_share(balance_days, Decimal::ONE, i64::from(days.max(1)))
}

/// The minimum payment: 0 when nothing is owed, else
/// `min(new balance, max(floor, round(p% x new balance) + interest + fees))`.
pub fn minimum_payment(terms: &CreditTerms, new_balance: i64, charges: i64) -> Result<i64, Fault> {
    if new_balance <= 0 {
        return Ok(0);
    }
    let share = round_share(i128::from(new_balance), terms.min_payment_percent, 100)?;
    Ok(add(share, charges)?
        .max(terms.min_payment_floor)
        .min(new_balance))
}

/// Number of days from `start` to `end`, both included; an error when `end` is before `start`.
fn days_of(start: NaiveDate, end: NaiveDate) -> Result<u32, Fault> {
    let n = (end - start).num_days() + 1;
    u32::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(Fault::Inconsistent("cycle ends before it starts"))
}

/// Day-end balances: for each day of the cycle, the balance owed and the cash advances
/// outstanding after every posting of that day, summed over the cycle as the parts subject to
/// interest (cash at most what is owed; the purchase part the rest, never below zero).
fn balance_days(input: &CycleInput<'_>, days: u32) -> Result<(i128, i128), Fault> {
    let mut owed_moves = vec![0i64; days as usize];
    let mut cash_moves = vec![0i64; days as usize];
    for p in input.postings {
        let ix = usize::try_from((p.date - input.start).num_days())
            .ok()
            .filter(|&i| i < days as usize)
            .ok_or(Fault::Inconsistent("a posting falls outside its cycle"))?;
        owed_moves[ix] = sub(owed_moves[ix], p.amount)?;
        cash_moves[ix] = add(cash_moves[ix], p.cash)?;
    }
    let (mut owed, mut cash) = (sub(0, input.opening)?, input.opening_cash);
    let (mut purchase_sum, mut cash_sum) = (0i128, 0i128);
    for (o, c) in owed_moves.iter().zip(&cash_moves) {
        owed = add(owed, *o)?;
        cash = add(cash, *c)?;
        let cash_part = cash.clamp(0, owed.max(0));
        let purchase_part = sub(owed, cash_part)?.max(0);
        purchase_sum += i128::from(purchase_part);
        cash_sum += i128::from(cash_part);
    }
    Ok((purchase_sum, cash_sum))
}

/// A credit cycle's figures. `recorded`: the charges, minimum and due date a closed cycle
/// posted, shown instead of recomputed ones.
pub fn credit(
    terms: &CreditTerms,
    input: &CycleInput<'_>,
    recorded: Option<&Recorded>,
) -> Result<CreditFigures, Fault> {
    let days = days_of(input.start, input.end)?;
    let (mut payments, mut purchases, mut cash) = (0i64, 0i64, 0i64);
    for p in input.postings {
        match p.kind {
            LineKind::Purchase => purchases = sub(purchases, p.amount)?,
            LineKind::Cash => cash = sub(cash, p.amount)?,
            LineKind::Payment | LineKind::Refund => payments = add(payments, p.amount)?,
            LineKind::PurchaseInterest | LineKind::CashInterest | LineKind::LateFee => {
                return Err(Fault::Inconsistent("a charge among the cycle's postings"));
            }
        }
    }
    let previous_balance = sub(0, input.opening)?;

    // Grace and lateness, judged on the payments and credits received by the previous due date.
    let (grace, paid_by_previous_due, late_fee) = match input.previous {
        None => (previous_balance <= 0, None, 0),
        Some(prev) => {
            let mut paid = 0i64;
            for p in input.postings.iter().filter(|p| p.date <= prev.due_date) {
                if matches!(p.kind, LineKind::Payment | LineKind::Refund) {
                    paid = add(paid, p.amount)?;
                }
            }
            let judged = prev.due_date <= input.end;
            let grace = prev.new_balance <= 0 || !judged || paid >= prev.new_balance;
            let late = judged && prev.minimum_due > 0 && paid < prev.minimum_due;
            let fee = if late {
                terms.late_fee.min(prev.minimum_due)
            } else {
                0
            };
            (grace, Some(paid), fee)
        }
    };

    let (purchase_balance_days, cash_balance_days) = balance_days(input, days)?;
    let charges = match recorded {
        Some(r) => r.charges,
        None => Charges {
            purchase_interest: if grace {
                0
            } else {
                interest(purchase_balance_days, terms.purchase_apr)?
            },
            cash_interest: interest(cash_balance_days, terms.cash_apr)?,
            late_fee,
        },
    };
    let all_charges = add(
        add(charges.purchase_interest, charges.cash_interest)?,
        charges.late_fee,
    )?;

    // closing = opening + debits - credits + interest + fees, two ways: from the summary lines
    // and from the postings' own ledger movements. They must agree.
    let new_balance = add(
        sub(add(add(previous_balance, purchases)?, cash)?, payments)?,
        all_charges,
    )?;
    let mut from_ledger = previous_balance;
    for p in input.postings {
        from_ledger = sub(from_ledger, p.amount)?;
    }
    if add(from_ledger, all_charges)? != new_balance {
        return Err(Fault::Inconsistent("summary lines do not add up"));
    }

    let (minimum_due, due_date) = match recorded {
        Some(r) => (r.minimum_due, r.due_date),
        None => (
            minimum_payment(terms, new_balance, all_charges)?,
            input
                .end
                .checked_add_days(chrono::Days::new(u64::from(terms.due_days)))
                .ok_or(Fault::Overflow)?,
        ),
    };
    Ok(CreditFigures {
        previous_balance,
        payments_and_credits: payments,
        purchases,
        cash_advances: cash,
        charges,
        new_balance,
        minimum_due,
        due_date,
        grace,
        paid_by_previous_due,
        days,
        purchase_balance_days,
        cash_balance_days,
    })
}

/// The average daily balances of `f`: purchase, cash.
pub fn averages(f: &CreditFigures) -> Result<(i64, i64), Fault> {
    Ok((
        average(f.purchase_balance_days, f.days)?,
        average(f.cash_balance_days, f.days)?,
    ))
}

/// A debit or prepaid cycle's figures.
pub fn account(input: &CycleInput<'_>) -> Result<AccountFigures, Fault> {
    days_of(input.start, input.end)?;
    let (mut credits, mut debits) = (0i64, 0i64);
    for p in input.postings {
        if p.date < input.start || p.date > input.end {
            return Err(Fault::Inconsistent("a posting falls outside its cycle"));
        }
        if p.amount >= 0 {
            credits = add(credits, p.amount)?;
        } else {
            debits = sub(debits, p.amount)?;
        }
    }
    let closing = sub(add(input.opening, credits)?, debits)?;
    Ok(AccountFigures {
        opening: input.opening,
        credits,
        debits,
        closing,
    })
}
