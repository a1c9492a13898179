//! Clearing one business day: which approvals become money, which holds stay open, which were
//! reversed or expired. A pure function of the day's transactions ([`super::facts`]), the
//! previous day's carry-over and the rules; fees are left to [`super::settle`].
//!
//! # What clears
//!
//! | request (MTI, field 3)                     | approved means                                    |
//! |--------------------------------------------|---------------------------------------------------|
//! | 0200, or 0220 without field 90             | cleared today (issuer, on-us or stand-in alike)   |
//! | 0100 / 0120                                | a hold: open, carried over until completed        |
//! | 0220 with field 90 (completion)            | cleared today at its own amount; closes the hold  |
//! | 0400 / 0420 (accepted or queued)           | undoes its original, in full or down to field 95  |
//!
//! Field 3 sorts the money's direction: 00 (purchase), 01 (cash) and 09 (cashback) charge the
//! cardholder ([`Class::Sale`]); 20 credits them ([`Class::Refund`]); 21 (load, payment) credits
//! them without interchange ([`Class::Deposit`]); anything else (31 balance, 40 transfer) moves no
//! money between institutions and is skipped.
//!
//! A reversal finds its original by the original's duplicate key (field 90's acquirer, STAN and
//! transmission time, with the reversal's terminal). Reversing a hold releases it; reversing
//! something cleared today reduces or removes today's item; reversing something cleared on an
//! earlier day adds a [`ItemKind::Reversal`] item that takes the cleared amount down (its fees
//! come off in settlement the same way). Completions and reversals that find nothing to act on
//! are listed as exceptions rather than guessed at.
//!
//! # Exactly once
//!
//! Every approval ends in one state that the carry-over remembers for `lookback_days`: cleared
//! (with its net amount), reversed, captured by a completion, or expired; a hold stays open. A
//! day's items name each approval at most once, an approval cleared on an earlier day is only
//! ever adjusted, never cleared again, and nothing is both open and closed.
//! [`check_exactly_once`] asserts this on every result: it returns
//! [`ClearingError::Invariant`] (and fails a debug assertion) rather than hand on wrong money.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::day::cutover_instant;
use super::facts::Txn;
use crate::domain::{Mti, Product};
use crate::events::{DecisionSource, KeyRecord};

/// How money moves for a cleared transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The cardholder is charged: the issuer owes the acquirer; interchange is paid to the issuer.
    Sale,
    /// The cardholder is credited: the acquirer owes the issuer; interchange may come back.
    Refund,
    /// A load or payment: the acquirer owes the issuer; no interchange, no merchant discount.
    Deposit,
}

impl Class {
    /// The class of a field 3, or `None` when it moves no money between institutions.
    pub fn of(processing_code: &str) -> Option<Class> {
        match processing_code.get(..2)? {
            "00" | "01" | "09" => Some(Class::Sale),
            "20" => Some(Class::Refund),
            "21" => Some(Class::Deposit),
            _ => None,
        }
    }

    /// +1 when the acquirer receives the amount from the issuer, -1 when it pays it.
    pub fn sign(self) -> i64 {
        match self {
            Class::Sale => 1,
            Class::Refund | Class::Deposit => -1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Sale => "sale",
            Class::Refund => "refund",
            Class::Deposit => "deposit",
        }
    }
}

/// What clearing knows about one approval, copied from its journal records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub txn: u64,
    pub key: KeyRecord,
    /// Without the repeat digit.
    pub mti: u16,
    pub processing_code: String,
    pub class: Class,
    pub at_ms: i64,
    pub business_date: NaiveDate,
    pub issuer: String,
    pub merchant: Option<String>,
    pub mcc: Option<u16>,
    pub product: Option<Product>,
    pub card_present: Option<bool>,
    /// ISO 4217 numeric.
    pub currency: u16,
    /// What was approved (the approved amount of a partial approval), minor units.
    pub amount_minor: i64,
    pub masked_pan: String,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    pub source: DecisionSource,
}

impl Approval {
    /// The acquirer (field 32).
    pub fn acquirer(&self) -> &str {
        &self.key.acquirer
    }

    /// The merchant (field 42) without its padding, or `-` when absent.
    pub fn merchant_id(&self) -> &str {
        self.merchant.as_deref().map_or("-", str::trim)
    }
}

/// How an item came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A 0200 (or a 0220 without an original).
    Financial,
    /// A 0220 completing a hold.
    Completion,
    /// A reversal, on this day, of something cleared on an earlier day.
    Reversal,
}

/// One line of clearing: an approval's cleared amount goes from `before_minor` to
/// `after_minor` (both in the direction of its [`Class`]). A first clearing has `before_minor`
/// 0; a later reversal takes the amount down. Fees are charged on the same difference:
/// `fee(after) - fee(before)`, with `fee(0) = 0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearedItem {
    pub kind: ItemKind,
    /// The request whose answer produced this item: the approval itself, or the later reversal.
    pub by_txn: u64,
    /// The hold a completion captured.
    pub authorization_txn: Option<u64>,
    /// The approval cleared (for a completion, its facts completed from the hold's).
    pub approval: Approval,
    pub before_minor: i64,
    pub after_minor: i64,
}

impl ClearedItem {
    /// The change in the cleared amount (negative for a reversal).
    pub fn change_minor(&self) -> i64 {
        self.after_minor - self.before_minor
    }
}

/// A hold still open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAuth {
    pub approval: Approval,
    /// What is still held after partial reversals.
    pub remaining_minor: i64,
}

/// How an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ClosedState {
    /// Cleared; `net_minor` is what stands after any later reversals (0: reversed in full).
    Cleared { net_minor: i64 },
    /// Reversed before it was cleared (a hold released, a same-day reversal).
    Reversed,
    /// A hold captured by the completion `by_txn`.
    Captured { by_txn: u64 },
    /// A hold that outlived `hold_expiry_h`.
    Expired,
}

/// An approval that is no longer open, remembered for late reversals and completions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub approval: Approval,
    #[serde(flatten)]
    pub state: ClosedState,
    /// The business day it reached this state.
    pub on: NaiveDate,
}

/// What one business day hands the next: open holds and recently closed approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarryOver {
    /// The day whose cutover wrote it.
    pub business_date: NaiveDate,
    pub open: Vec<OpenAuth>,
    pub closed: Vec<Closed>,
    /// Where in the journal the next cutover starts reading: no request of a later business day
    /// lies before this LSN, which is one past a request of a day already closed. Absent from
    /// carry-overs written before it existed, and then the next cutover reads the whole journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_lsn: Option<u64>,
    /// CRC-32 of the record just before `resume_lsn` (that closed day's request), which the next
    /// cutover checks before it trusts the point: a journal whose unsynced tail a crash cut off
    /// gives later records the lost LSNs, and another journal has other records there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_check: Option<u32>,
}

/// What a reversal did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalNote {
    /// The original approval.
    pub txn: u64,
    /// The reversal.
    pub by_txn: u64,
    pub masked_pan: String,
    pub currency: u16,
    /// Held or cleared before the reversal, and after it.
    pub before_minor: i64,
    pub after_minor: i64,
    /// `hold`, `same_day` or `after_cutover`.
    pub what: String,
}

/// Something that needs a person: a completion or reversal with nothing to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub txn: u64,
    pub message: String,
}

/// One business day's clearing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clearing {
    pub business_date: NaiveDate,
    /// The moment the day closed.
    pub cutover_at: NaiveDateTime,
    /// In journal order.
    pub items: Vec<ClearedItem>,
    pub reversals: Vec<ReversalNote>,
    /// Holds still open: carried over to the next day.
    pub authorized_not_captured: Vec<OpenAuth>,
    /// Holds that expired at this cutover: reported, not cleared.
    pub expired: Vec<OpenAuth>,
    pub exceptions: Vec<Exception>,
}

/// The fixed parameters of clearing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClearingRules {
    /// `[switch] business_date_cutover`, minutes after midnight.
    pub cutover_minutes: u16,
    pub hold_expiry_h: u32,
    pub lookback_days: u32,
    /// Most closed approvals carried over (`[clearing] carried_closed_max`): the newest are kept.
    pub carried_closed_max: usize,
}

/// Why a day could not be cleared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClearingError {
    #[error("clearing {day}: the carry-over is from {found}, not from the day before ({expected})")]
    CarryOverDate {
        day: NaiveDate,
        expected: NaiveDate,
        found: NaiveDate,
    },
    #[error(
        "clearing {day}: transaction {txn} is already in the carry-over; was this day cleared from a later day's carry-over?"
    )]
    AlreadyCarried { day: NaiveDate, txn: u64 },
    #[error("internal: clearing {day}: exactly-once check failed: {message}")]
    Invariant { day: NaiveDate, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open {
        remaining: i64,
    },
    /// `item`: today's item for this approval, if any.
    Cleared {
        net: i64,
        item: Option<usize>,
    },
    Reversed,
    Captured {
        by_txn: u64,
    },
    Expired,
}

struct Entry {
    approval: Approval,
    state: State,
    on: NaiveDate,
}

/// The day's working state.
struct Book {
    day: NaiveDate,
    entries: BTreeMap<u64, Entry>,
    /// The latest approval under each duplicate key.
    by_key: HashMap<KeyRecord, u64>,
    items: Vec<ClearedItem>,
    reversals: Vec<ReversalNote>,
    exceptions: Vec<Exception>,
}

/// Clears business day `day` from its transactions (journal order) and the carry-over of the
/// day before (`None` only for the first day ever cleared). Returns the day's clearing and the
/// carry-over for the next day.
pub fn clear_day(
    day: NaiveDate,
    txns: &[Txn],
    previous: Option<&CarryOver>,
    rules: &ClearingRules,
) -> Result<(Clearing, CarryOver), ClearingError> {
    if let Some(p) = previous {
        let expected = day.pred_opt().unwrap_or(day);
        if p.business_date != expected {
            return Err(ClearingError::CarryOverDate {
                day,
                expected,
                found: p.business_date,
            });
        }
    }
    let mut book = Book::open(day, previous);
    for t in txns {
        if book.entries.contains_key(&t.request.txn) {
            return Err(ClearingError::AlreadyCarried {
                day,
                txn: t.request.txn,
            });
        }
        book.apply(t);
    }
    let cutover_at = cutover_instant(day, rules.cutover_minutes);
    let (clearing, carry) = book.close(cutover_at, rules);
    check_exactly_once(day, txns, previous, &clearing, &carry).inspect_err(|e| {
        debug_assert!(false, "{e}");
    })?;
    Ok((clearing, carry))
}

impl Book {
    fn open(day: NaiveDate, previous: Option<&CarryOver>) -> Book {
        let mut book = Book {
            day,
            entries: BTreeMap::new(),
            by_key: HashMap::new(),
            items: Vec::new(),
            reversals: Vec::new(),
            exceptions: Vec::new(),
        };
        let Some(p) = previous else { return book };
        let open = p.open.iter().map(|o| {
            let state = State::Open {
                remaining: o.remaining_minor,
            };
            (o.approval.clone(), state, o.approval.business_date)
        });
        let closed = p.closed.iter().map(|c| {
            let state = match c.state {
                ClosedState::Cleared { net_minor } => State::Cleared {
                    net: net_minor,
                    item: None,
                },
                ClosedState::Reversed => State::Reversed,
                ClosedState::Captured { by_txn } => State::Captured { by_txn },
                ClosedState::Expired => State::Expired,
            };
            (c.approval.clone(), state, c.on)
        });
        let mut all: Vec<_> = open.chain(closed).collect();
        all.sort_by_key(|(a, _, _)| a.txn);
        for (approval, state, on) in all {
            book.by_key.insert(approval.key.clone(), approval.txn);
            book.entries.insert(
                approval.txn,
                Entry {
                    approval,
                    state,
                    on,
                },
            );
        }
        book
    }

    fn exception(&mut self, txn: u64, message: impl Into<String>) {
        self.exceptions.push(Exception {
            txn,
            message: message.into(),
        });
    }

    fn insert(&mut self, approval: Approval, state: State) {
        self.by_key.insert(approval.key.clone(), approval.txn);
        self.entries.insert(
            approval.txn,
            Entry {
                approval,
                state,
                on: self.day,
            },
        );
    }

    fn apply(&mut self, t: &Txn) {
        let mti = t.mti();
        if mti == Mti::REVERSAL_REQUEST.value() || mti == Mti::REVERSAL_ADVICE.value() {
            self.reverse(t);
            return;
        }
        let Some(class) = Class::of(&t.request.processing_code) else {
            return;
        };
        let Some(amount) = t.approved_minor().filter(|a| *a > 0) else {
            return;
        };
        let approval = approval_of(t, class, amount);
        match mti {
            m if m == Mti::AUTH_REQUEST.value() || m == Mti::AUTH_ADVICE.value() => {
                self.insert(approval, State::Open { remaining: amount });
            }
            m if m == Mti::FINANCIAL_REQUEST.value() => {
                self.clear(approval, ItemKind::Financial, None);
            }
            m if m == Mti::FINANCIAL_ADVICE.value() => match &t.request.original {
                Some(o) => {
                    let key = KeyRecord {
                        acquirer: o.acquirer.clone(),
                        terminal: t.request.key.terminal.clone(),
                        stan: o.stan,
                        transmission: o.transmission.clone(),
                    };
                    self.complete(approval, &key);
                }
                None => self.clear(approval, ItemKind::Financial, None),
            },
            _ => {}
        }
    }

    fn clear(&mut self, approval: Approval, kind: ItemKind, authorization_txn: Option<u64>) {
        let amount = approval.amount_minor;
        let index = self.items.len();
        self.items.push(ClearedItem {
            kind,
            by_txn: approval.txn,
            authorization_txn,
            approval: approval.clone(),
            before_minor: 0,
            after_minor: amount,
        });
        self.insert(
            approval,
            State::Cleared {
                net: amount,
                item: Some(index),
            },
        );
    }

    fn complete(&mut self, mut completion: Approval, original_key: &KeyRecord) {
        let Some(&orig_txn) = self.by_key.get(original_key) else {
            self.exception(
                completion.txn,
                "completion of an authorization not known to clearing: cleared on its own",
            );
            self.clear(completion, ItemKind::Completion, None);
            return;
        };
        let Some(entry) = self.entries.get_mut(&orig_txn) else {
            return;
        };
        let hold = &entry.approval;
        // The completion repeats neither field 18 nor field 22: the hold's describe the sale.
        completion.mcc = completion.mcc.or(hold.mcc);
        completion.card_present = completion.card_present.or(hold.card_present);
        completion.product = completion.product.or(hold.product);
        completion.merchant = completion.merchant.clone().or(hold.merchant.clone());
        let state = entry.state;
        if matches!(state, State::Open { .. }) {
            entry.state = State::Captured {
                by_txn: completion.txn,
            };
            entry.on = self.day;
        } else {
            let what = state_name(state);
            self.exception(
                completion.txn,
                format!(
                    "completion of authorization {orig_txn}, which is {what}: cleared on its own"
                ),
            );
        }
        self.clear(completion, ItemKind::Completion, Some(orig_txn));
    }

    fn reverse(&mut self, t: &Txn) {
        let txn = t.request.txn;
        if !t.reversal_effective() {
            self.exception(
                txn,
                format!(
                    "reversal not accepted (response {}): no effect",
                    t.response_code()
                ),
            );
            return;
        }
        let Some(o) = &t.request.original else {
            self.exception(txn, "reversal without original data (field 90): no effect");
            return;
        };
        let key = KeyRecord {
            acquirer: o.acquirer.clone(),
            terminal: t.request.key.terminal.clone(),
            stan: o.stan,
            transmission: o.transmission.clone(),
        };
        let Some(&orig) = self.by_key.get(&key) else {
            self.exception(
                txn,
                "reversal of an approval not known to clearing: no effect",
            );
            return;
        };
        let after = t.request.replacement_minor.unwrap_or(0).max(0);
        let day = self.day;
        let Some(entry) = self.entries.get_mut(&orig) else {
            return;
        };
        let (before, what) = match entry.state {
            State::Open { remaining } if after < remaining => {
                entry.state = if after == 0 {
                    entry.on = day;
                    State::Reversed
                } else {
                    State::Open { remaining: after }
                };
                (remaining, "hold")
            }
            State::Cleared { net, item } if after < net => {
                let index = match item {
                    Some(i) => i,
                    None => {
                        let i = self.items.len();
                        self.items.push(ClearedItem {
                            kind: ItemKind::Reversal,
                            by_txn: txn,
                            authorization_txn: None,
                            approval: entry.approval.clone(),
                            before_minor: net,
                            after_minor: net,
                        });
                        i
                    }
                };
                let same_day = self.items[index].before_minor == 0;
                self.items[index].after_minor = after;
                entry.state = if same_day && after == 0 {
                    State::Reversed
                } else {
                    State::Cleared {
                        net: after,
                        item: Some(index),
                    }
                };
                entry.on = day;
                (
                    net,
                    if same_day {
                        "same_day"
                    } else {
                        "after_cutover"
                    },
                )
            }
            state => {
                let what = state_name(state);
                self.exception(
                    txn,
                    format!("reversal of approval {orig}, which is {what}: no effect"),
                );
                return;
            }
        };
        let a = &entry.approval;
        self.reversals.push(ReversalNote {
            txn: orig,
            by_txn: txn,
            masked_pan: a.masked_pan.clone(),
            currency: a.currency,
            before_minor: before,
            after_minor: after,
            what: what.to_owned(),
        });
    }

    fn close(self, cutover_at: NaiveDateTime, rules: &ClearingRules) -> (Clearing, CarryOver) {
        let Book {
            day,
            mut entries,
            items,
            reversals,
            exceptions,
            ..
        } = self;
        let cutover_ms = cutover_at.and_utc().timestamp_millis();
        let hold_ms = i64::from(rules.hold_expiry_h) * 3_600_000;
        let mut expired = Vec::new();
        for e in entries.values_mut() {
            if let State::Open { remaining } = e.state
                && e.approval.at_ms.saturating_add(hold_ms) <= cutover_ms
            {
                expired.push(OpenAuth {
                    approval: e.approval.clone(),
                    remaining_minor: remaining,
                });
                e.state = State::Expired;
                e.on = day;
            }
        }
        // A same-day reversal in full leaves an item that moves nothing.
        let items: Vec<ClearedItem> = items
            .into_iter()
            .filter(|i| i.before_minor != i.after_minor)
            .collect();
        let oldest = day - chrono::Duration::days(i64::from(rules.lookback_days));
        let mut open = Vec::new();
        let mut closed = Vec::new();
        for e in entries.into_values() {
            let state = match e.state {
                State::Open { remaining } => {
                    open.push(OpenAuth {
                        approval: e.approval,
                        remaining_minor: remaining,
                    });
                    continue;
                }
                State::Cleared { net, .. } => ClosedState::Cleared { net_minor: net },
                State::Reversed => ClosedState::Reversed,
                State::Captured { by_txn } => ClosedState::Captured { by_txn },
                State::Expired => ClosedState::Expired,
            };
            if e.on > oldest {
                closed.push(Closed {
                    approval: e.approval,
                    state,
                    on: e.on,
                });
            }
        }
        if closed.len() > rules.carried_closed_max {
            // The oldest of those closed on earlier days go (newest first by the day each closed,
            // then by transaction), and a late reversal of one becomes an exception rather than a
            // match. The day's own are always carried: the exactly-once check below holds each
            // of the day's approvals and items to its state in the carry-over.
            let (mut kept, mut earlier): (Vec<Closed>, Vec<Closed>) =
                closed.into_iter().partition(|c| c.on == day);
            earlier.sort_unstable_by_key(|c| std::cmp::Reverse((c.on, c.approval.txn)));
            earlier.truncate(rules.carried_closed_max.saturating_sub(kept.len()));
            kept.extend(earlier);
            closed = kept;
        }
        let clearing = Clearing {
            business_date: day,
            cutover_at,
            items,
            reversals,
            authorized_not_captured: open.clone(),
            expired,
            exceptions,
        };
        let carry = CarryOver {
            business_date: day,
            open,
            closed,
            // Known to the caller, which reads the journal (`files::cutover`).
            resume_lsn: None,
            resume_check: None,
        };
        (clearing, carry)
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Open { .. } => "still held for at least that amount",
        State::Cleared { net: 0, .. } => "already reversed",
        State::Cleared { .. } => "cleared for no more than that",
        State::Reversed => "already reversed",
        State::Captured { .. } => "already captured",
        State::Expired => "expired",
    }
}

fn approval_of(t: &Txn, class: Class, amount: i64) -> Approval {
    let r = &t.request;
    let d = t.decision.as_ref();
    Approval {
        txn: r.txn,
        key: r.key.clone(),
        mti: t.mti(),
        processing_code: r.processing_code.to_string(),
        class,
        at_ms: r.at_ms,
        business_date: r.business_date,
        issuer: r.issuer.to_string(),
        merchant: r.merchant.as_deref().map(str::to_owned),
        mcc: r.mcc,
        product: r.product,
        card_present: r.card_present,
        currency: r.currency,
        amount_minor: amount,
        masked_pan: r.masked_pan.to_string(),
        rrn: r.rrn.as_deref().map(str::to_owned),
        auth_code: d.and_then(|d| d.auth_code.as_deref().map(str::to_owned)),
        source: d.map_or(DecisionSource::Switch, |d| d.source),
    }
}

/// Checks that every approval is cleared or reversed exactly once across days (see the module
/// documentation).
pub fn check_exactly_once(
    day: NaiveDate,
    txns: &[Txn],
    previous: Option<&CarryOver>,
    clearing: &Clearing,
    carry: &CarryOver,
) -> Result<(), ClearingError> {
    let fail = |message: String| Err(ClearingError::Invariant { day, message });
    let mut before: HashMap<u64, Option<i64>> = HashMap::new();
    if let Some(p) = previous {
        for o in &p.open {
            before.insert(o.approval.txn, None);
        }
        for c in &p.closed {
            let net = match c.state {
                ClosedState::Cleared { net_minor } => Some(net_minor),
                _ => None,
            };
            before.insert(c.approval.txn, net);
        }
    }
    let mut seen = HashSet::new();
    for item in &clearing.items {
        let txn = item.approval.txn;
        if !seen.insert(txn) {
            return fail(format!("approval {txn} has two items on one day"));
        }
        match (item.kind, before.get(&txn)) {
            (ItemKind::Reversal, Some(Some(net))) if *net == item.before_minor => {}
            (ItemKind::Reversal, _) => {
                return fail(format!(
                    "approval {txn} is adjusted but was not cleared for {} before",
                    item.before_minor
                ));
            }
            (_, Some(_)) => {
                return fail(format!(
                    "approval {txn} was carried over and is cleared again"
                ));
            }
            (_, None) if item.before_minor != 0 => {
                return fail(format!("approval {txn} is cleared from a non-zero start"));
            }
            _ => {}
        }
        if item.after_minor < 0 || item.after_minor >= item.before_minor && item.before_minor != 0 {
            return fail(format!("approval {txn} is adjusted upwards or below zero"));
        }
    }
    let mut states = HashSet::new();
    for txn in carry
        .open
        .iter()
        .map(|o| o.approval.txn)
        .chain(carry.closed.iter().map(|c| c.approval.txn))
    {
        if !states.insert(txn) {
            return fail(format!("approval {txn} is carried over in two states"));
        }
    }
    let carried_net: HashMap<u64, i64> = carry
        .closed
        .iter()
        .filter_map(|c| match c.state {
            ClosedState::Cleared { net_minor } => Some((c.approval.txn, net_minor)),
            _ => None,
        })
        .collect();
    for item in &clearing.items {
        let txn = item.approval.txn;
        if carried_net.get(&txn) != Some(&item.after_minor) {
            return fail(format!(
                "approval {txn}'s carried net differs from its item"
            ));
        }
    }
    for t in txns {
        let txn = t.request.txn;
        let approves = t.approved_minor().is_some_and(|a| a > 0)
            && Class::of(&t.request.processing_code).is_some()
            && t.mti() != Mti::REVERSAL_REQUEST.value()
            && t.mti() != Mti::REVERSAL_ADVICE.value();
        if approves && !states.contains(&txn) {
            return fail(format!(
                "approval {txn} of the day is neither open nor closed"
            ));
        }
    }
    Ok(())
}
