//! Settlement of one cleared day: each item priced with the fee schedule, each institution's net
//! position per currency, and each merchant's statement. Pure: a [`Clearing`] and a
//! [`FeeSchedule`] in, figures out.
//!
//! # Who pays whom, per item
//!
//! With `a` the amount the acquirer receives (the change in the cleared amount, positive for a
//! sale, negative for a refund or a later reversal of a sale), `I` the interchange the acquirer
//! pays the issuer, `Sa`/`Si` the scheme fees of the acquirer and the issuer:
//!
//! ```text
//! acquirer  +a - I - Sa
//! issuer    -a + I - Si
//! scheme              + Sa + Si
//! ```
//!
//! The three lines sum to zero for every item, so the positions of a day sum to zero in each
//! currency; [`settle`] still checks it and fails with [`SettleError::NotZero`] otherwise. A
//! refund's interchange is the negative of the sale rate's fee on its amount when the schedule
//! says refunds reverse interchange, else zero; deposits (loads, payments) carry none.
//!
//! The merchant's side is the acquirer's business but the statements are made here: sales,
//! refunds (refunds, loads and payments credited to cardholders), the merchant discount (MDR, on
//! sales only: a refund does not give it back) and the payout `sales - refunds - MDR`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::clear::{Class, ClearedItem, Clearing};
use super::fees::{FeeError, FeeSchedule, RateQuery, Rates};

/// The switch's own party in the settlement.
pub const SCHEME_ID: &str = "scheme";

/// What an institution is in the settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Acquirer,
    Issuer,
    Scheme,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Acquirer => "acquirer",
            Role::Issuer => "issuer",
            Role::Scheme => "scheme",
        }
    }
}

/// One item with its fees, all in minor units and signed as paid by the acquirer (interchange)
/// or charged to the party (scheme fees, MDR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedItem {
    pub item: ClearedItem,
    /// What the acquirer receives from the issuer.
    pub acquirer_amount_minor: i64,
    pub interchange_minor: i64,
    pub scheme_fee_acquirer_minor: i64,
    pub scheme_fee_issuer_minor: i64,
    pub mdr_minor: i64,
}

/// An institution's net position in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub role: Role,
    pub institution: String,
    pub currency: u16,
    pub items: u64,
    /// Cleared amounts received (+) or owed (-).
    pub gross_minor: i64,
    /// Interchange received (+) or paid (-).
    pub interchange_minor: i64,
    /// Scheme fees paid (-), or received by the scheme (+).
    pub scheme_fees_minor: i64,
    /// What the institution receives (+) or pays (-).
    pub net_minor: i64,
}

/// The day's settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub business_date: NaiveDate,
    /// Sorted by currency, role, institution.
    pub positions: Vec<Position>,
}

/// One line of a merchant statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub txn: u64,
    pub at_ms: i64,
    /// `sale`, `refund`, `deposit`.
    pub class: Class,
    /// `financial`, `completion`, `reversal`.
    pub kind: String,
    pub masked_pan: String,
    pub rrn: Option<String>,
    pub terminal: String,
    /// The change in the cleared amount (negative for a later reversal).
    pub amount_minor: i64,
    pub mdr_minor: i64,
}

/// One merchant's day in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantStatement {
    pub business_date: NaiveDate,
    pub acquirer: String,
    pub merchant: String,
    pub currency: u16,
    pub lines: Vec<StatementLine>,
    pub sales_count: u64,
    pub sales_minor: i64,
    pub refunds_count: u64,
    pub refunds_minor: i64,
    pub mdr_minor: i64,
    /// `sales - refunds - mdr`.
    pub net_payout_minor: i64,
}

/// Why a day could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("settlement {day}: transaction {txn}: {source}")]
    Fee {
        day: NaiveDate,
        txn: u64,
        #[source]
        source: FeeError,
    },
    #[error(
        "internal: settlement {day}: positions in currency {currency:03} sum to {sum}, not zero"
    )]
    NotZero {
        day: NaiveDate,
        currency: u16,
        sum: i64,
    },
    #[error("settlement {day}: amounts overflow")]
    Overflow { day: NaiveDate },
}

/// Prices one item: `fee(after) - fee(before)` for every fee.
pub fn price(item: &ClearedItem, schedule: &FeeSchedule) -> Result<PricedItem, FeeError> {
    let a = &item.approval;
    let rates: Rates = schedule.rates(&RateQuery {
        currency: a.currency,
        product: a.product,
        mcc: a.mcc,
        card_present: a.card_present,
        acquirer: a.acquirer(),
        merchant: a.merchant_id(),
    })?;
    let diff = |rate: &super::fees::Rate| -> Result<i64, FeeError> {
        let after = rate.fee(item.after_minor)?;
        let before = rate.fee(item.before_minor)?;
        after.checked_sub(before).ok_or(FeeError::Overflow)
    };
    let change = item.change_minor();
    let interchange = match a.class {
        Class::Sale => diff(&rates.interchange)?,
        Class::Refund if schedule.refund_reverses_interchange => -diff(&rates.interchange)?,
        Class::Refund | Class::Deposit => 0,
    };
    let mdr = match a.class {
        Class::Sale => diff(&rates.mdr)?,
        Class::Refund | Class::Deposit => 0,
    };
    Ok(PricedItem {
        item: item.clone(),
        acquirer_amount_minor: change
            .checked_mul(a.class.sign())
            .ok_or(FeeError::Overflow)?,
        interchange_minor: interchange,
        scheme_fee_acquirer_minor: diff(&rates.scheme_acquirer)?,
        scheme_fee_issuer_minor: diff(&rates.scheme_issuer)?,
        mdr_minor: mdr,
    })
}

/// Settles a cleared day.
pub fn settle(
    clearing: &Clearing,
    schedule: &FeeSchedule,
) -> Result<(Settlement, Vec<MerchantStatement>), SettleError> {
    let day = clearing.business_date;
    let priced = clearing
        .items
        .iter()
        .map(|i| {
            price(i, schedule).map_err(|source| SettleError::Fee {
                day,
                txn: i.by_txn,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let settlement = positions(day, &priced)?;
    Ok((settlement, statements(day, &priced)?))
}

/// Net positions from priced items; fails if a currency does not sum to zero.
pub fn positions(day: NaiveDate, priced: &[PricedItem]) -> Result<Settlement, SettleError> {
    let overflow = || SettleError::Overflow { day };
    let mut book: BTreeMap<(u16, Role, String), Position> = BTreeMap::new();
    let mut post = |role: Role, id: &str, cur: u16, gross: i64, ic: i64, fees: i64| {
        let p = book
            .entry((cur, role, id.to_owned()))
            .or_insert_with(|| Position {
                role,
                institution: id.to_owned(),
                currency: cur,
                items: 0,
                gross_minor: 0,
                interchange_minor: 0,
                scheme_fees_minor: 0,
                net_minor: 0,
            });
        p.items += 1;
        p.gross_minor = p.gross_minor.checked_add(gross)?;
        p.interchange_minor = p.interchange_minor.checked_add(ic)?;
        p.scheme_fees_minor = p.scheme_fees_minor.checked_add(fees)?;
        p.net_minor = p
            .net_minor
            .checked_add(gross.checked_add(ic)?.checked_add(fees)?)?;
        Some(())
    };
    for p in priced {
        let a = &p.item.approval;
        let (amount, ic) = (p.acquirer_amount_minor, p.interchange_minor);
        let (sa, si) = (p.scheme_fee_acquirer_minor, p.scheme_fee_issuer_minor);
        post(Role::Acquirer, a.acquirer(), a.currency, amount, -ic, -sa).ok_or_else(overflow)?;
        post(Role::Issuer, &a.issuer, a.currency, -amount, ic, -si).ok_or_else(overflow)?;
        let scheme_fees = sa.checked_add(si).ok_or_else(overflow)?;
        post(Role::Scheme, SCHEME_ID, a.currency, 0, 0, scheme_fees).ok_or_else(overflow)?;
    }
    let mut sums: BTreeMap<u16, i64> = BTreeMap::new();
    for p in book.values() {
        let s = sums.entry(p.currency).or_default();
        *s = s.checked_add(p.net_minor).ok_or_else(overflow)?;
    }
    if let Some((&currency, &sum)) = sums.iter().find(|(_, s)| **s != 0) {
        debug_assert!(false, "settlement does not sum to zero");
        return Err(SettleError::NotZero { day, currency, sum });
    }
    Ok(Settlement {
        business_date: day,
        positions: book.into_values().collect(),
    })
}

/// Merchant statements, one per (acquirer, merchant, currency), lines in clearing order.
pub fn statements(
    day: NaiveDate,
    priced: &[PricedItem],
) -> Result<Vec<MerchantStatement>, SettleError> {
    let overflow = || SettleError::Overflow { day };
    let mut out: BTreeMap<(String, String, u16), MerchantStatement> = BTreeMap::new();
    for p in priced {
        let a = &p.item.approval;
        let s = out
            .entry((
                a.acquirer().to_owned(),
                a.merchant_id().to_owned(),
                a.currency,
            ))
            .or_insert_with(|| MerchantStatement {
                business_date: day,
                acquirer: a.acquirer().to_owned(),
                merchant: a.merchant_id().to_owned(),
                currency: a.currency,
                lines: Vec::new(),
                sales_count: 0,
                sales_minor: 0,
                refunds_count: 0,
                refunds_minor: 0,
                mdr_minor: 0,
                net_payout_minor: 0,
            });
        let change = p.item.change_minor();
        match a.class {
            Class::Sale => {
                s.sales_count += 1;
                s.sales_minor = s.sales_minor.checked_add(change).ok_or_else(overflow)?;
            }
            Class::Refund | Class::Deposit => {
                s.refunds_count += 1;
                s.refunds_minor = s.refunds_minor.checked_add(change).ok_or_else(overflow)?;
            }
        }
        s.mdr_minor = s.mdr_minor.checked_add(p.mdr_minor).ok_or_else(overflow)?;
        s.net_payout_minor = s
            .sales_minor
            .checked_sub(s.refunds_minor)
            .and_then(|v| v.checked_sub(s.mdr_minor))
            .ok_or_else(overflow)?;
        s.lines.push(StatementLine {
            txn: p.item.by_txn,
            at_ms: a.at_ms,
            class: a.class,
            kind: format!("{:?}", p.item.kind).to_lowercase(),
            masked_pan: a.masked_pan.clone(),
            rrn: a.rrn.clone(),
            terminal: a.key.terminal.to_string(),
            amount_minor: change,
            mdr_minor: p.mdr_minor,
        });
    }
    Ok(out.into_values().collect())
}
