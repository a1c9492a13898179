//! The card rules: from a request and an account's state to an answer and the change it makes.
//!
//! Owns every decision of the engine and the order in which declines win ([`PRECEDENCE`]). It
//! reads the state and never changes it: the change goes out as an [`Effect`] inside an event,
//! which [`super::ledger`] applies. It leaves locking, idempotency (a retry never gets here) and
//! journaling to [`super::engine`].
//!
//! # Which decline wins
//!
//! A cardholder request (authorization 0100, financial 0200) goes through these checks in this
//! order; the first that fails is the answer. The list is [`PRECEDENCE`], which the code iterates.
//!
//! | # | check           | applies to                               | decline (field 39)               |
//! |---|-----------------|------------------------------------------|----------------------------------|
//! | 1 | `Request`       | all                                      | 12 transfer (40) unsupported; 13 amount missing, zero, too large or in another currency than field 49 |
//! | 2 | `Status`        | all                                      | 41 lost, 43 stolen, 62 restricted, 57 closed |
//! | 3 | `Expiry`        | all but credits (refund 20, deposit 21)  | 54 past the card's expiry, or field 14 differs from it |
//! | 4 | `Pin`           | all                                      | 75 already blocked; 55 wrong; 75 the wrong PIN that reaches the limit |
//! | 5 | `Currency`      | all but balance inquiry                  | 57 account currency is not field 49's |
//! | 6 | `Mcc`           | debits (00, 01, 09)                      | 57 merchant category blocked for the product |
//! | 7 | `Product`       | cash (01, 09)                            | 57 cash on a product without cash (gift) |
//! | 8 | `CashLimit`     | credit, cash advance (01)                | 61 cash outstanding + cash holds + amount > cash limit |
//! | 9 | `LoadLimit`     | prepaid, load (21)                       | 61 balance + amount > max balance |
//! |10 | `DailyAmount`   | debits, per card, channel, business day  | 61 over the day's amount |
//! |11 | `DailyCount`    | debits, per card, channel, business day  | 65 over the day's count |
//! |12 | `Velocity`      | debits, per card, rolling hour           | 65 too many in the last hour |
//! |13 | `Funds`         | debits                                   | 51 amount > available (10 partial approval when allowed) |
//!
//! Why this order: what the card *is* (status, expiry) comes before what the cardholder *proves*
//! (PIN), which comes before what the transaction *is* (currency, merchant, product), then how
//! much is allowed (limits), and money last. So a lost card is reported as lost whatever the
//! PIN, and a wrong PIN is reported (and counted) whatever the balance. The PIN count changes
//! only when the PIN check is reached: a wrong PIN on a lost card does not count.
//!
//! Other requests do not use the table:
//! - **Advice** (stand-in 0120, 0220 without field 90): only `Request` and `Currency`; the
//!   decision was made elsewhere and is applied even past limits, funds, status or PIN.
//! - **Completion** (0220): the amount (13), the currency (57), the original hold open on the same
//!   card (25), the amount within the hold plus the product's tolerance (13), and for prepaid the
//!   excess within the available funds (51).
//! - **Reversal** (0400, 0420): the original must be an open hold or an unreversed posting of the
//!   same card (25), the replacement amount at most what it holds (13); reversing a credit on
//!   prepaid may not take the balance below zero (51). A reversal whose original is unknown is
//!   answered 25 and leaves a tombstone, so the original, if it arrives late, is declined 05.
//!
//! Rounding: percentages (completion tolerance, over-limit) are `rust_decimal`, and the allowance
//! they give is rounded down to the minor unit, i.e. in the issuer's favour.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::config::{CardStatus, ProductKind};
use super::engine::{AccountDef, Product};
use super::event::{Answer, Channel, Counted, Effect, KeyList, PinEffect};
use super::ledger::{AccountState, Entry, HOUR_MS};
use super::request::{IdemKey, IssuingRequest, PinCheck, RequestKind};
use super::stored::Stored;
use crate::domain::{Decline, Expiry, TxnType};

/// Largest amount an ISO 8583 `n 12` amount field carries (minor units).
const AMOUNT_MAX: i64 = 999_999_999_999;

/// One step of the decline precedence for cardholder requests; see the module's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The request itself: supported transaction, valid amount.
    Request,
    /// Card status.
    Status,
    /// Card expiry.
    Expiry,
    /// PIN outcome and try count.
    Pin,
    /// Account currency against field 49.
    Currency,
    /// Merchant category blocked for the product.
    Mcc,
    /// Transaction not allowed on the product (cash on gift cards).
    Product,
    /// Credit cash-advance limit.
    CashLimit,
    /// Prepaid maximum balance on a load.
    LoadLimit,
    /// Daily amount per channel.
    DailyAmount,
    /// Daily count per channel.
    DailyCount,
    /// Transactions per card per rolling hour.
    Velocity,
    /// Available funds (or open-to-buy).
    Funds,
}

/// The order in which declines win: the engine runs these checks in this order and answers with
/// the first that fails.
pub const PRECEDENCE: [Check; 13] = [
    Check::Request,
    Check::Status,
    Check::Expiry,
    Check::Pin,
    Check::Currency,
    Check::Mcc,
    Check::Product,
    Check::CashLimit,
    Check::LoadLimit,
    Check::DailyAmount,
    Check::DailyCount,
    Check::Velocity,
    Check::Funds,
];

/// Everything a decision reads.
pub(crate) struct Ctx<'a> {
    pub product: &'a Product,
    pub account: &'a AccountDef,
    /// The card's expiry, as issued.
    pub expiry: Expiry,
    pub slot: u16,
    pub st: &'a AccountState,
    pub req: &'a IssuingRequest,
    pub now: i64,
    pub date: NaiveDate,
    pub day: i32,
    /// Holds released by expiry before this decision, and the state's totals after that.
    pub expired: &'a KeyList,
    pub held: i64,
    pub cash_held: i64,
}

/// What a decision produces, for the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub answer: Answer,
    pub effect: Effect,
    pub pin: PinEffect,
    pub counted: Option<Counted>,
}

impl Decision {
    fn declined(d: Decline, pin: PinEffect) -> Decision {
        Decision {
            answer: Answer::Declined(d),
            effect: Effect::None,
            pin,
            counted: None,
        }
    }
}

/// How a transaction type moves money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Takes money from the account: purchase 00, cash 01, purchase with cashback 09.
    Debit(Channel),
    /// Gives money to the account: refund 20, deposit 21 (credit payment, prepaid load).
    Credit,
    /// Balance inquiry 31.
    Inquiry,
    /// Not supported by the engine (transfer 40).
    Unsupported,
}

fn flow(txn: TxnType) -> Flow {
    match txn {
        TxnType::Purchase | TxnType::PurchaseWithCashback => Flow::Debit(Channel::Purchase),
        TxnType::Cash => Flow::Debit(Channel::Cash),
        TxnType::Refund | TxnType::Deposit => Flow::Credit,
        TxnType::BalanceInquiry => Flow::Inquiry,
        TxnType::Transfer => Flow::Unsupported,
    }
}

/// Decides a request that is not a retry.
pub(crate) fn decide(c: &Ctx<'_>) -> Decision {
    match c.req.kind {
        RequestKind::Authorization => cardholder(c, false),
        RequestKind::Financial => cardholder(c, true),
        RequestKind::Advice { financial } => advice(c, financial),
        RequestKind::Completion { original } => completion(c, original),
        RequestKind::Reversal {
            original,
            replacement,
        } => reversal(c, original, replacement),
    }
}

/// Working values while the checks run.
struct Eval {
    flow: Flow,
    /// Requested amount, minor units (0 for an inquiry).
    amount: i64,
    /// Approved amount after the funds check.
    approved: i64,
    partial: bool,
    pin: PinEffect,
}

fn cardholder(c: &Ctx<'_>, financial: bool) -> Decision {
    let mut e = Eval {
        flow: flow(c.req.processing_code.txn),
        amount: 0,
        approved: 0,
        partial: false,
        pin: PinEffect::Unchanged,
    };
    for check in PRECEDENCE {
        if let Err(d) = run(check, c, &mut e) {
            return Decision::declined(d, e.pin);
        }
    }
    let (effect, counted) = match e.flow {
        Flow::Debit(channel) => (
            debit_effect(c, financial, channel, e.approved),
            Some(Counted {
                channel,
                day: c.day,
                amount: e.approved,
            }),
        ),
        Flow::Credit => (credit_effect(c, e.amount), None),
        Flow::Inquiry | Flow::Unsupported => (Effect::None, None),
    };
    Decision {
        answer: Answer::Approved {
            amount: e.approved,
            partial: e.partial,
        },
        effect,
        pin: e.pin,
        counted,
    }
}

fn debit_effect(c: &Ctx<'_>, financial: bool, channel: Channel, amount: i64) -> Effect {
    let cash = channel == Channel::Cash;
    if financial {
        Effect::Post {
            delta: -amount,
            cash_delta: if cash && c.product.kind == ProductKind::Credit {
                amount
            } else {
                0
            },
        }
    } else {
        Effect::Hold {
            amount,
            cash,
            expires_at: c.now.saturating_add(c.product.hold_expiry_ms),
        }
    }
}

/// A credit posts at once. On a credit account a payment (deposit 21) repays cash advances
/// first.
fn credit_effect(c: &Ctx<'_>, amount: i64) -> Effect {
    let repaid_cash =
        if c.product.kind == ProductKind::Credit && c.req.processing_code.txn == TxnType::Deposit {
            amount.min(c.st.cash_posted).max(0)
        } else {
            0
        };
    Effect::Post {
        delta: amount,
        cash_delta: -repaid_cash,
    }
}

/// Field 4 as minor units: present, positive, at most 12 digits, in field 49's currency.
fn request_amount(c: &Ctx<'_>) -> Result<i64, Decline> {
    match c.req.amount {
        Some(a) if a.currency() == c.req.currency && (1..=AMOUNT_MAX).contains(&a.minor()) => {
            Ok(a.minor())
        }
        _ => Err(Decline::InvalidAmount),
    }
}

fn available(c: &Ctx<'_>) -> Result<i64, Decline> {
    c.st.available_with(c.held, c.account.line)
        .ok_or(Decline::SystemMalfunction)
}

fn run(check: Check, c: &Ctx<'_>, e: &mut Eval) -> Result<(), Decline> {
    let txn = c.req.processing_code.txn;
    let card_state =
        c.st.cards
            .get(usize::from(c.slot))
            .ok_or(Decline::SystemMalfunction)?;
    match check {
        Check::Request => match e.flow {
            Flow::Unsupported => return Err(Decline::InvalidTransaction),
            Flow::Inquiry => {}
            Flow::Debit(_) | Flow::Credit => e.amount = request_amount(c)?,
        },
        Check::Status => match card_state.status {
            CardStatus::Active => {}
            CardStatus::Lost => return Err(Decline::LostCard),
            CardStatus::Stolen => return Err(Decline::StolenCard),
            CardStatus::Restricted => return Err(Decline::RestrictedCard),
            CardStatus::Closed => return Err(Decline::NotPermittedToCardholder),
        },
        Check::Expiry => {
            let expiry = c.expiry;
            let wrong = c.req.expiry.is_some_and(|x| x != expiry);
            if e.flow != Flow::Credit && (expiry.is_expired_on(c.date) || wrong) {
                return Err(Decline::ExpiredCard);
            }
        }
        Check::Pin => {
            let max = c.product.pin_tries_max;
            let fails = card_state.pin_fails;
            if fails >= max {
                return Err(Decline::PinTriesExceeded);
            }
            match c.req.pin {
                PinCheck::Absent => {}
                PinCheck::Verified => {
                    if fails > 0 {
                        e.pin = PinEffect::Reset;
                    }
                }
                PinCheck::Wrong => {
                    e.pin = PinEffect::Failed;
                    return Err(if fails.saturating_add(1) >= max {
                        Decline::PinTriesExceeded
                    } else {
                        Decline::IncorrectPin
                    });
                }
            }
        }
        Check::Currency => {
            if e.flow != Flow::Inquiry && c.req.currency != c.product.currency {
                return Err(Decline::NotPermittedToCardholder);
            }
        }
        Check::Mcc => {
            if let (Flow::Debit(_), Some(mcc)) = (e.flow, c.req.mcc)
                && c.product.blocked_mcc.binary_search(&mcc).is_ok()
            {
                return Err(Decline::NotPermittedToCardholder);
            }
        }
        Check::Product => {
            let cash = matches!(txn, TxnType::Cash | TxnType::PurchaseWithCashback);
            if cash && !c.product.cash_allowed {
                return Err(Decline::NotPermittedToCardholder);
            }
        }
        Check::CashLimit => {
            if txn == TxnType::Cash
                && let Some(limit) = c.account.cash_limit
            {
                let used =
                    c.st.cash_posted
                        .checked_add(c.cash_held)
                        .and_then(|u| u.checked_add(e.amount))
                        .ok_or(Decline::InvalidAmount)?;
                if used > limit {
                    return Err(Decline::ExceedsAmountLimit);
                }
            }
        }
        Check::LoadLimit => {
            if txn == TxnType::Deposit
                && let Some(max) = c.product.max_balance
            {
                let after =
                    c.st.posted
                        .checked_add(e.amount)
                        .ok_or(Decline::InvalidAmount)?;
                if after > max {
                    return Err(Decline::ExceedsAmountLimit);
                }
            }
        }
        Check::DailyAmount | Check::DailyCount => {
            if let Flow::Debit(channel) = e.flow {
                let limit = &c.product.daily[channel.index()];
                let today = card_state.daily[channel.index()].on(c.day);
                if check == Check::DailyAmount {
                    if let Some(max) = limit.amount
                        && today.amount.saturating_add(e.amount) > max
                    {
                        return Err(Decline::ExceedsAmountLimit);
                    }
                } else if let Some(max) = limit.count
                    && today.count.saturating_add(1) > max
                {
                    return Err(Decline::ExceedsFrequencyLimit);
                }
            }
        }
        Check::Velocity => {
            if let (Flow::Debit(_), Some(max)) = (e.flow, c.product.velocity_per_hour) {
                let since = c.now.saturating_sub(HOUR_MS);
                let recent = card_state.recent.iter().filter(|&&t| t > since).count();
                if recent >= max as usize {
                    return Err(Decline::ExceedsFrequencyLimit);
                }
            }
        }
        Check::Funds => match e.flow {
            Flow::Debit(_) => {
                let avail = available(c)?;
                if e.amount <= avail {
                    e.approved = e.amount;
                } else if c.product.partial_approval
                    && c.req.partial_supported
                    && txn == TxnType::Purchase
                    && avail > 0
                {
                    e.approved = avail;
                    e.partial = true;
                } else {
                    return Err(Decline::InsufficientFunds);
                }
            }
            Flow::Credit => e.approved = e.amount,
            Flow::Inquiry | Flow::Unsupported => {}
        },
    }
    Ok(())
}

fn advice(c: &Ctx<'_>, financial: bool) -> Decision {
    let f = flow(c.req.processing_code.txn);
    let amount = match f {
        Flow::Unsupported => {
            return Decision::declined(Decline::InvalidTransaction, PinEffect::Unchanged);
        }
        Flow::Inquiry => 0,
        Flow::Debit(_) | Flow::Credit => match request_amount(c) {
            Ok(a) => a,
            Err(d) => return Decision::declined(d, PinEffect::Unchanged),
        },
    };
    if f != Flow::Inquiry && c.req.currency != c.product.currency {
        return Decision::declined(Decline::NotPermittedToCardholder, PinEffect::Unchanged);
    }
    let (effect, counted) = match f {
        Flow::Debit(channel) => (
            debit_effect(c, financial, channel, amount),
            Some(Counted {
                channel,
                day: c.day,
                amount,
            }),
        ),
        Flow::Credit => (credit_effect(c, amount), None),
        Flow::Inquiry | Flow::Unsupported => (Effect::None, None),
    };
    Decision {
        answer: Answer::Approved {
            amount,
            partial: false,
        },
        effect,
        pin: PinEffect::Unchanged,
        counted,
    }
}

/// The entry of `original`'s record if it belongs to this request's card.
fn original_entry(c: &Ctx<'_>, original: &IdemKey) -> Option<Entry> {
    c.st.records
        .get(original)
        .filter(|r| r.card == c.slot)
        .map(Stored::entry)
}

fn completion(c: &Ctx<'_>, original: IdemKey) -> Decision {
    let decline = |d| Decision::declined(d, PinEffect::Unchanged);
    let amount = match request_amount(c) {
        Ok(a) => a,
        Err(d) => return decline(d),
    };
    if c.req.currency != c.product.currency {
        return decline(Decline::NotPermittedToCardholder);
    }
    let Some(Entry::Hold { open, cash, .. }) = original_entry(c, &original) else {
        return decline(Decline::OriginalNotFound);
    };
    if c.expired.contains(&original) {
        return decline(Decline::OriginalNotFound);
    }
    if amount > open {
        let excess = amount - open;
        let Some(allowed) = pct_of(open, c.product.tolerance_pct) else {
            return decline(Decline::SystemMalfunction);
        };
        if excess > allowed {
            return decline(Decline::InvalidAmount);
        }
        if c.product.kind == ProductKind::Prepaid {
            match available(c) {
                Ok(avail) if excess <= avail => {}
                Ok(_) => return decline(Decline::InsufficientFunds),
                Err(d) => return decline(d),
            }
        }
    }
    let cash_delta = if cash && c.product.kind == ProductKind::Credit {
        amount
    } else {
        0
    };
    Decision {
        answer: Answer::Approved {
            amount,
            partial: false,
        },
        effect: Effect::Capture {
            original,
            amount,
            cash_delta,
        },
        pin: PinEffect::Unchanged,
        counted: None,
    }
}

fn reversal(
    c: &Ctx<'_>,
    original: IdemKey,
    replacement: Option<crate::domain::Amount>,
) -> Decision {
    let decline = |d| Decision::declined(d, PinEffect::Unchanged);
    let remaining = match replacement {
        None => 0,
        Some(r) if r.currency() == c.product.currency && (0..=AMOUNT_MAX).contains(&r.minor()) => {
            r.minor()
        }
        Some(_) => return decline(Decline::InvalidAmount),
    };
    let approved = |amount, effect| Decision {
        answer: Answer::Approved {
            amount,
            partial: false,
        },
        effect,
        pin: PinEffect::Unchanged,
        counted: None,
    };
    let entry = match c.st.records.get(&original) {
        None if original != c.req.key => {
            return Decision {
                answer: Answer::Declined(Decline::OriginalNotFound),
                effect: Effect::Tombstone { original },
                pin: PinEffect::Unchanged,
                counted: None,
            };
        }
        None => return decline(Decline::OriginalNotFound),
        Some(_) => match original_entry(c, &original) {
            Some(r) => r,
            None => return decline(Decline::OriginalNotFound),
        },
    };
    match entry {
        Entry::Hold { open, .. } if !c.expired.contains(&original) => {
            if remaining > open {
                return decline(Decline::InvalidAmount);
            }
            approved(
                open - remaining,
                Effect::Void {
                    original,
                    remaining,
                },
            )
        }
        Entry::Posted {
            delta, cash_delta, ..
        } => {
            let size = delta.unsigned_abs();
            let Ok(size) = i64::try_from(size) else {
                return decline(Decline::SystemMalfunction);
            };
            if remaining > size {
                return decline(Decline::InvalidAmount);
            }
            let reversed = size - remaining;
            let cash_move = if delta < 0 {
                // Undoing a debit gives back cash advanced, never more than is outstanding.
                -(cash_delta.max(0).min(reversed).min(c.st.cash_posted))
            } else {
                // Undoing a payment takes back the cash it repaid.
                (-cash_delta).max(0).min(reversed)
            };
            if delta > 0 && c.product.kind == ProductKind::Prepaid {
                match available(c) {
                    Ok(avail) if reversed <= avail => {}
                    Ok(_) => return decline(Decline::InsufficientFunds),
                    Err(d) => return decline(d),
                }
            }
            approved(
                reversed,
                Effect::Unpost {
                    original,
                    remaining,
                    cash_delta: cash_move,
                },
            )
        }
        Entry::Hold { .. } | Entry::None | Entry::Closed(_) | Entry::Tombstone => {
            decline(Decline::OriginalNotFound)
        }
    }
}

/// `pct`% of `amount`, rounded down to the minor unit.
pub(crate) fn pct_of(amount: i64, pct: Decimal) -> Option<i64> {
    let share = Decimal::from(amount).checked_mul(pct)? / Decimal::ONE_HUNDRED;
    share.floor().to_i64()
}
