//! The ledger of one account, after TigerBeetle's pending and posted balances, and [`apply`], the
//! only function that changes it.
//!
//! Owns the account's state ([`AccountState`]: posted balance, held amount, the records of
//! answered requests with their holds and postings, the cards' counters) and the mechanics of
//! every [`Change`]: place, capture, void and expire holds, post and unpost, count and uncount
//! daily limits, prune old records, forget resolved ones early ([`Change::Forget`]). It leaves
//! every *decision* to [`super::rules`]: `apply` checks that an event is consistent with the
//! state (the hold it captures is open, the amounts fit) and refuses it otherwise, but never asks
//! whether it *should* happen.
//!
//! Why one mutation path: `Engine::process` decides, journals the event, then calls `apply`;
//! `Engine::apply` replays a journal through the same function. The two cannot drift apart, so a
//! restart reaches exactly the same balances.
//!
//! The money model (all integers, minor units of the account's currency, signed from the
//! cardholder's side):
//!
//! | quantity      | meaning                                                               |
//! |---------------|-----------------------------------------------------------------------|
//! | `posted`      | ledger balance: money on the account (negative = owed, for credit)    |
//! | `held`        | sum of the open holds (pending debits), never negative                |
//! | `line`        | credit limit plus over-limit (credit), overdraft (debit), 0 (prepaid) |
//! | available     | `posted - held + line`; for credit this is the open-to-buy            |
//! | `cash_posted` | credit: cash advances not yet repaid (payments repay cash first)      |
//! | `cash_held`   | the part of `held` that is cash                                       |
//! | `closed_through` | last day of the last statement cycle closed (0: none)              |
//!
//! A statement close ([`Change::Statement`]) posts the cycle's interest and fees as one debit of
//! `posted` (not of `cash_posted`: a charge is not a cash advance), past any limit, and moves
//! `closed_through` forward; a close that does not move it forward is refused, so each cycle's
//! charges post once however often statements run.
//!
//! Invariants, checked after every change (a failure refuses the change): `held >= 0`,
//! `0 <= cash_held <= held`, `cash_posted >= 0`, every open hold's amount is positive; and, in
//! [`AccountState::check`] (restore, tests), `held` and `cash_held` equal the sums over the open
//! holds. Each hold resolves at most once: capture, void and expiry all require it open and close
//! it.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::config::CardStatus;
use super::event::{
    Answer, Change, Counted, Effect, KeyList, LedgerEvent, PinEffect, RequestChange, RequestTag,
};
use super::request::IdemKey;
use super::split_map::SplitMap;
use super::stored::Stored;

/// One hour in milliseconds: the velocity window.
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Why an event cannot be applied. Always a bug or a journal from another issuer file: the
/// engine's own events fit its state by construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The event names an account the issuer file does not have.
    #[error("ledger: no account number {0}")]
    UnknownAccount(u32),
    /// The event contradicts the account's state (e.g. captures a hold that is not open).
    #[error("ledger: inconsistent event: {0}")]
    Inconsistent(&'static str),
    /// A thread panicked while holding the account; its state is not trusted any more.
    #[error("ledger: account state poisoned by a panic")]
    Poisoned,
}

use LedgerError::Inconsistent;

/// The mutable state of one account. Not `Clone`: its records are copied for a checkpoint by
/// [`AccountState::freeze`], which shares them.
#[derive(Debug, Default)]
pub(crate) struct AccountState {
    pub posted: i64,
    pub held: i64,
    pub cash_posted: i64,
    pub cash_held: i64,
    /// Sequence number of the last applied event; replays skip events at or below it.
    pub last_seq: u64,
    /// Answered requests by key, with the hold or posting each one made. A [`SplitMap`], so that
    /// a busy account's map never grows in one long step under the account's lock.
    pub records: SplitMap<IdemKey, Stored>,
    /// Time and key of `records` in the order they were recorded, for pruning from the front.
    pub order: VecDeque<(i64, IdemKey)>,
    /// Expiry index: `(expires_at, key)` of holds, sorted by time. Captured and voided holds
    /// are not removed here (that would be a search); an entry counts only while its record is
    /// an open hold with that expiry, and dead entries are dropped when they reach the front.
    /// Holds are placed at `now + hold_expiry`, so they arrive nearly in order and insertion is
    /// an append.
    pub expiries: VecDeque<(i64, IdemKey)>,
    /// Per-card state, by slot.
    pub cards: Cards,
    /// Last day of the last closed statement cycle, days since 0001-01-01; 0 before the first.
    pub closed_through: i32,
}

/// An answered request, as the ledger builds it and a snapshot holds it. An account's table
/// keeps it packed ([`Stored`], 88 bytes instead of 112).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub at: i64,
    pub seq: u64,
    pub card: u16,
    pub tag: RequestTag,
    pub answer: Answer,
    /// Available and ledger balances right after the answer (field 54 of a retry).
    pub available: i64,
    pub ledger: i64,
    pub entry: Entry,
}

/// What a record still stands for in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry {
    /// Nothing to resolve (declines, inquiries, completions' and reversals' own records...).
    None,
    /// An open hold of `open`.
    Hold {
        open: i64,
        cash: bool,
        expires_at: i64,
        counted: Option<Counted>,
    },
    /// A posting that may still be reversed: `delta` and `cash_delta` are what remains.
    Posted {
        delta: i64,
        cash_delta: i64,
        counted: Option<Counted>,
    },
    /// A hold or posting that has been resolved; it cannot be resolved again.
    Closed(Closure),
    /// A reversal arrived for this key before any request did.
    Tombstone,
}

impl Entry {
    /// Whether the record stands for no money any more: not an open hold, not a posting that may
    /// still be reversed, not a tombstone (which keeps a late original from holding money).
    /// Forgetting one loses the answer to a repeat of its request, which is then decided afresh;
    /// for a voided hold that means a late repeat of its 0100 holds money again, which is why
    /// records are forgotten early only once a day old (`Engine::forget_cutoff`).
    pub fn is_done(&self) -> bool {
        matches!(self, Entry::None | Entry::Closed(_))
    }
}

/// How a hold or posting was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Closure {
    Captured,
    Voided,
    Expired,
    Reversed,
}

/// The mutable state of one card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CardState {
    pub status: CardStatus,
    /// Wrong PINs in a row.
    pub pin_fails: u8,
    /// Daily counters, by [`super::event::Channel::index`].
    pub daily: [DayCount; 2],
    /// Times (Unix ms) of the latest counted debits, oldest first, at most the velocity limit.
    pub recent: VecDeque<i64>,
}

/// The cards of an account, the first one inline: most accounts have one card, and a decision
/// on a cold account then finds its card in the account's own cache lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cards {
    first: Option<CardState>,
    rest: Vec<CardState>,
}

impl Cards {
    fn from_vec(mut cards: Vec<CardState>) -> Cards {
        if cards.is_empty() {
            return Cards::default();
        }
        let first = cards.remove(0);
        Cards {
            first: Some(first),
            rest: cards,
        }
    }

    fn to_vec(&self) -> Vec<CardState> {
        self.first.iter().chain(&self.rest).cloned().collect()
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn get(&self, slot: usize) -> Option<&CardState> {
        match slot {
            0 => self.first.as_ref(),
            n => self.rest.get(n - 1),
        }
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut CardState> {
        match slot {
            0 => self.first.as_mut(),
            n => self.rest.get_mut(n - 1),
        }
    }
}

/// Money and count on one channel for one business day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayCount {
    /// Days since 0001-01-01 of the business day these counts belong to.
    pub day: i32,
    pub amount: i64,
    pub count: u32,
}

impl DayCount {
    /// The counts for `day`: zero if they belong to another day.
    pub fn on(&self, day: i32) -> DayCount {
        if self.day == day {
            *self
        } else {
            DayCount {
                day,
                amount: 0,
                count: 0,
            }
        }
    }
}

/// What `apply` needs to know about the account beyond its state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApplyCtx {
    /// Credit line or overdraft, for the balances recorded with each answer.
    pub line: i64,
    /// Velocity limit of the product: how many times `CardState::recent` keeps.
    pub velocity: Option<u32>,
    /// Records older than this before the event's time are forgotten.
    pub retention_ms: i64,
}

/// The four running totals, computed on the side and committed only when everything fits.
#[derive(Debug, Clone, Copy)]
struct Totals {
    posted: i64,
    held: i64,
    cash_posted: i64,
    cash_held: i64,
}

impl Totals {
    fn of(st: &AccountState) -> Totals {
        Totals {
            posted: st.posted,
            held: st.held,
            cash_posted: st.cash_posted,
            cash_held: st.cash_held,
        }
    }

    fn hold(&mut self, amount: i64, cash: bool) -> Result<(), LedgerError> {
        self.held = add(self.held, amount)?;
        if cash {
            self.cash_held = add(self.cash_held, amount)?;
        }
        Ok(())
    }

    fn release(&mut self, amount: i64, cash: bool) -> Result<(), LedgerError> {
        self.held = sub(self.held, amount)?;
        if cash {
            self.cash_held = sub(self.cash_held, amount)?;
        }
        Ok(())
    }

    fn post(&mut self, delta: i64, cash_delta: i64) -> Result<(), LedgerError> {
        self.posted = add(self.posted, delta)?;
        self.cash_posted = add(self.cash_posted, cash_delta)?;
        Ok(())
    }

    fn check(&self) -> Result<(), LedgerError> {
        if self.held < 0 {
            return Err(Inconsistent("held would go negative"));
        }
        if self.cash_held < 0 || self.cash_held > self.held {
            return Err(Inconsistent("cash held outside 0..=held"));
        }
        if self.cash_posted < 0 {
            return Err(Inconsistent("cash advances outstanding would go negative"));
        }
        Ok(())
    }
}

fn add(a: i64, b: i64) -> Result<i64, LedgerError> {
    a.checked_add(b).ok_or(Inconsistent("amount overflow"))
}

fn sub(a: i64, b: i64) -> Result<i64, LedgerError> {
    a.checked_sub(b).ok_or(Inconsistent("amount overflow"))
}

impl AccountState {
    /// A fresh account: opening balance, cards in their issued status.
    pub fn new(posted: i64, cards: impl IntoIterator<Item = CardStatus>) -> AccountState {
        AccountState {
            posted,
            cards: Cards::from_vec(
                cards
                    .into_iter()
                    .map(|status| CardState {
                        status,
                        ..CardState::default()
                    })
                    .collect(),
            ),
            ..AccountState::default()
        }
    }

    /// Available funds (open-to-buy for credit) with `held` as given.
    pub fn available_with(&self, held: i64, line: i64) -> Option<i64> {
        self.posted.checked_sub(held)?.checked_add(line)
    }

    /// Open holds due at `now`, oldest first, with their total and cash total.
    pub fn due_holds(&self, now: i64) -> (KeyList, i64, i64) {
        let mut keys = KeyList::default();
        let (mut total, mut cash) = (0i64, 0i64);
        for &(at, key) in &self.expiries {
            if at > now {
                break;
            }
            if let Some(Entry::Hold {
                open,
                cash: c,
                expires_at,
                ..
            }) = self.records.get(&key).map(Stored::entry)
                && expires_at == at
            {
                total = total.saturating_add(open);
                if c {
                    cash = cash.saturating_add(open);
                }
                keys.push(key);
            }
        }
        (keys, total, cash)
    }

    /// Whether the index entry `(at, key)` stands for an open hold.
    fn alive(&self, at: i64, key: &IdemKey) -> bool {
        self.records.get(key).and_then(Stored::hold_expiry) == Some(at)
    }

    /// Drops dead index entries from the front, up to time `now`.
    fn clean_expiries(&mut self, now: i64) {
        while let Some(&(at, key)) = self.expiries.front() {
            if at > now || self.alive(at, &key) {
                break;
            }
            self.expiries.pop_front();
        }
    }

    /// Adds a hold to the index, keeping it sorted (a walk from the back: usually no step).
    fn index_hold(&mut self, at: i64, key: IdemKey) {
        let mut i = self.expiries.len();
        while i > 0 && self.expiries[i - 1].0 > at {
            i -= 1;
        }
        self.expiries.insert(i, (at, key));
    }

    /// Number of open holds.
    pub fn open_holds(&self) -> usize {
        self.records.values().filter(|r| r.is_hold()).count()
    }

    /// Whether a sweep at `now` would forget any record.
    pub fn has_prunable(&self, now: i64, retention_ms: i64) -> bool {
        let cutoff = now.saturating_sub(retention_ms);
        self.order.front().is_some_and(|(at, k)| {
            *at < cutoff && self.records.get(k).is_some_and(|r| !r.is_hold())
        })
    }

    /// Full consistency check: totals equal the sums over open holds, indexes agree.
    pub fn check(&self) -> Result<(), LedgerError> {
        let (mut held, mut cash_held) = (0i64, 0i64);
        let indexed: HashSet<&(i64, IdemKey)> = self.expiries.iter().collect();
        if self
            .expiries
            .iter()
            .zip(self.expiries.iter().skip(1))
            .any(|(a, b)| a.0 > b.0)
        {
            return Err(Inconsistent("expiry index out of order"));
        }
        for (key, r) in &self.records {
            if let Entry::Hold {
                open: amount,
                cash,
                expires_at,
                ..
            } = r.entry()
            {
                if amount <= 0 {
                    return Err(Inconsistent("open hold of zero or less"));
                }
                if !indexed.contains(&(expires_at, *key)) {
                    return Err(Inconsistent("open hold missing from the expiry index"));
                }
                held = add(held, amount)?;
                if cash {
                    cash_held = add(cash_held, amount)?;
                }
            }
            if usize::from(r.card) >= self.cards.len() {
                return Err(Inconsistent("record names a card the account lacks"));
            }
        }
        if held != self.held || cash_held != self.cash_held {
            return Err(Inconsistent("held totals differ from the open holds"));
        }
        if self.order.len() != self.records.len() {
            return Err(Inconsistent("record order and records differ"));
        }
        // `order` is the records sorted by `rank` (what lets a checkpoint leave it out, see
        // `freeze`): each entry names a record, and the ranks rise strictly, so none twice.
        let mut last = None;
        for (_, key) in &self.order {
            let r = self
                .records
                .get(key)
                .ok_or(Inconsistent("record order names a forgotten record"))?;
            if last.is_some_and(|l| l >= rank(r)) {
                return Err(Inconsistent(
                    "record order is not the order of sequence numbers",
                ));
            }
            last = Some(rank(r));
        }
        Totals::of(self).check()
    }

    /// Applies one event. Either the whole change happens or none of it: everything is checked
    /// and computed first, then committed.
    pub fn apply(&mut self, cx: &ApplyCtx, ev: &LedgerEvent) -> Result<(), LedgerError> {
        match &ev.change {
            Change::Request(rc) => self.apply_request(cx, ev.seq, ev.at, rc)?,
            Change::Sweep { expired } => {
                let mut t = Totals::of(self);
                self.plan_expiry(expired, ev.at, &mut t)?;
                t.check()?;
                self.commit_expiry(expired, ev.at);
                self.commit_totals(t);
            }
            Change::Forget { before } => self.forget_done(*before),
            Change::PinReset { card } => self.card_mut(*card)?.pin_fails = 0,
            Change::Status { card, status } => self.card_mut(*card)?.status = *status,
            Change::Statement(close) => {
                if close.cycle_end <= self.closed_through {
                    return Err(Inconsistent(
                        "statement cycle does not end after the last closed one",
                    ));
                }
                let charges = close
                    .charges()
                    .ok_or(Inconsistent("statement charges negative or too large"))?;
                let mut t = Totals::of(self);
                t.post(-charges, 0)?;
                t.check()?;
                self.commit_totals(t);
                self.closed_through = close.cycle_end;
            }
        }
        self.prune(ev.at.saturating_sub(cx.retention_ms));
        self.last_seq = ev.seq;
        Ok(())
    }

    fn card_mut(&mut self, card: u16) -> Result<&mut CardState, LedgerError> {
        self.cards
            .get_mut(usize::from(card))
            .ok_or(Inconsistent("no such card on the account"))
    }

    /// Checks that `expired` are distinct open holds due at `at`, and releases them in `t`.
    fn plan_expiry(&self, expired: &KeyList, at: i64, t: &mut Totals) -> Result<(), LedgerError> {
        for (i, key) in expired.iter().enumerate() {
            if expired.iter().take(i).any(|k| k == key) {
                return Err(Inconsistent("a hold expires twice in one event"));
            }
            match self.records.get(key).map(Stored::entry) {
                Some(Entry::Hold {
                    open,
                    cash,
                    expires_at,
                    ..
                }) if expires_at <= at => t.release(open, cash)?,
                _ => return Err(Inconsistent("expiring a hold that is not open and due")),
            }
        }
        Ok(())
    }

    fn commit_expiry(&mut self, expired: &KeyList, now: i64) {
        for key in expired.iter() {
            if let Some(r) = self.records.get_mut(key)
                && r.is_hold()
            {
                r.set_entry(Entry::Closed(Closure::Expired));
            }
        }
        // The holds just closed lead the index; drop them without looking them up again, then
        // any dead entries behind them.
        while let Some(&(at, key)) = self.expiries.front() {
            if at > now || !expired.contains(&key) {
                break;
            }
            self.expiries.pop_front();
        }
        self.clean_expiries(now);
    }

    fn commit_totals(&mut self, t: Totals) {
        self.posted = t.posted;
        self.held = t.held;
        self.cash_posted = t.cash_posted;
        self.cash_held = t.cash_held;
    }

    fn apply_request(
        &mut self,
        cx: &ApplyCtx,
        seq: u64,
        at: i64,
        rc: &RequestChange,
    ) -> Result<(), LedgerError> {
        // ---- phase 1: check and compute, no mutation ----
        if self.records.contains_key(&rc.key) {
            return Err(Inconsistent("request key already recorded"));
        }
        let slot = usize::from(rc.card);
        let card = self
            .cards
            .get(slot)
            .ok_or(Inconsistent("no such card on the account"))?;
        let mut t = Totals::of(self);
        self.plan_expiry(&rc.expired, at, &mut t)?;

        // The original's new entry, and how much to take off its daily counters.
        let mut original_update: Option<(IdemKey, Entry)> = None;
        let mut uncount: Option<(Counted, i64, bool)> = None;
        let own_entry = match rc.effect {
            Effect::None => Entry::None,
            Effect::Hold {
                amount,
                cash,
                expires_at,
            } => {
                if amount <= 0 {
                    return Err(Inconsistent("hold of zero or less"));
                }
                t.hold(amount, cash)?;
                Entry::Hold {
                    open: amount,
                    cash,
                    expires_at,
                    counted: rc.counted,
                }
            }
            Effect::Post { delta, cash_delta } => {
                t.post(delta, cash_delta)?;
                Entry::Posted {
                    delta,
                    cash_delta,
                    counted: rc.counted,
                }
            }
            Effect::Capture {
                original,
                amount,
                cash_delta,
            } => {
                let (open, cash, counted) = self.open_hold(&original, &rc.expired, rc.card)?;
                if amount <= 0 {
                    return Err(Inconsistent("capture of zero or less"));
                }
                t.release(open, cash)?;
                t.post(-amount, cash_delta)?;
                original_update = Some((original, Entry::Closed(Closure::Captured)));
                Entry::Posted {
                    delta: -amount,
                    cash_delta,
                    counted,
                }
            }
            Effect::Void {
                original,
                remaining,
            } => {
                let (open, cash, counted) = self.open_hold(&original, &rc.expired, rc.card)?;
                if !(0..=open).contains(&remaining) {
                    return Err(Inconsistent("void leaves more than the hold"));
                }
                let released = open - remaining;
                t.release(released, cash)?;
                let entry = match self.records.get(&original).map(Stored::entry) {
                    Some(Entry::Hold {
                        expires_at,
                        counted,
                        ..
                    }) if remaining > 0 => Entry::Hold {
                        open: remaining,
                        cash,
                        expires_at,
                        counted: counted.map(|c| Counted {
                            amount: c.amount.saturating_sub(released).max(0),
                            ..c
                        }),
                    },
                    _ => Entry::Closed(Closure::Voided),
                };
                original_update = Some((original, entry));
                if let Some(c) = counted {
                    uncount = Some((c, released, remaining == 0));
                }
                Entry::None
            }
            Effect::Unpost {
                original,
                remaining,
                cash_delta,
            } => {
                let Some((
                    Entry::Posted {
                        delta,
                        cash_delta: cash_left,
                        counted,
                    },
                    owner,
                )) = self.records.get(&original).map(|r| (r.entry(), r.card))
                else {
                    return Err(Inconsistent("unposting something that is not a posting"));
                };
                if owner != rc.card {
                    return Err(Inconsistent("unposting another card's posting"));
                }
                let size = delta.checked_abs().ok_or(Inconsistent("amount overflow"))?;
                if !(0..=size).contains(&remaining) {
                    return Err(Inconsistent("unpost leaves more than the posting"));
                }
                let reversed = size - remaining;
                let new_cash = add(cash_left, cash_delta)?;
                // The cash part moves back towards zero, never past it.
                if new_cash.signum() * cash_left.signum() < 0
                    || new_cash.unsigned_abs() > cash_left.unsigned_abs()
                {
                    return Err(Inconsistent("unpost moves cash the posting did not"));
                }
                t.post(-delta.signum() * reversed, cash_delta)?;
                let entry = if remaining == 0 {
                    Entry::Closed(Closure::Reversed)
                } else {
                    Entry::Posted {
                        delta: delta.signum() * remaining,
                        cash_delta: new_cash,
                        counted: counted.map(|c| Counted {
                            amount: c.amount.saturating_sub(reversed).max(0),
                            ..c
                        }),
                    }
                };
                if let Some(c) = counted {
                    uncount = Some((c, reversed, remaining == 0));
                }
                original_update = Some((original, entry));
                Entry::None
            }
            Effect::Tombstone { original } => {
                if original == rc.key || self.records.contains_key(&original) {
                    return Err(Inconsistent("tombstone for a known request"));
                }
                Entry::None
            }
        };
        t.check()?;

        // The card's counters, computed on copies and committed below.
        let pin_fails = match rc.pin {
            PinEffect::Unchanged => card.pin_fails,
            PinEffect::Reset => 0,
            PinEffect::Failed => card.pin_fails.saturating_add(1),
        };
        let mut daily = card.daily;
        if let Some(c) = rc.counted {
            let d = &mut daily[c.channel.index()];
            let mut today = d.on(c.day);
            today.amount = add(today.amount, c.amount)?;
            today.count = today.count.saturating_add(1);
            *d = today;
        }
        if let Some((c, amount, whole)) = uncount {
            let d = &mut daily[c.channel.index()];
            // Only the same business day's counters give back; yesterday's are history.
            if d.day == c.day {
                d.amount = d.amount.saturating_sub(amount.min(c.amount)).max(0);
                if whole {
                    d.count = d.count.saturating_sub(1);
                }
            }
        }

        // ---- phase 2: commit ----
        self.commit_expiry(&rc.expired, at);
        self.commit_totals(t);
        if let Some(card) = self.cards.get_mut(slot) {
            card.pin_fails = pin_fails;
            card.daily = daily;
            if rc.counted.is_some()
                && let Some(limit) = cx.velocity
            {
                card.recent.push_back(at);
                while card.recent.len() > limit as usize {
                    card.recent.pop_front();
                }
            }
        }
        if let Some((key, entry)) = original_update
            && let Some(r) = self.records.get_mut(&key)
        {
            // A closed hold's index entry dies with it (see `expiries`).
            r.set_entry(entry);
        }
        let available = self.available_with(self.held, cx.line).unwrap_or(i64::MIN);
        if let Effect::Tombstone { original } = rc.effect {
            self.insert(
                original,
                Record {
                    at,
                    seq,
                    card: rc.card,
                    tag: rc.tag,
                    answer: Answer::Declined(crate::domain::Decline::DoNotHonour),
                    available,
                    ledger: self.posted,
                    entry: Entry::Tombstone,
                },
            );
        }
        if let Entry::Hold { expires_at, .. } = own_entry {
            self.index_hold(expires_at, rc.key);
        }
        self.insert(
            rc.key,
            Record {
                at,
                seq,
                card: rc.card,
                tag: rc.tag,
                answer: rc.answer,
                available,
                ledger: self.posted,
                entry: own_entry,
            },
        );
        Ok(())
    }

    /// The open hold `key` of card `card`, not among the holds expiring in the same event.
    fn open_hold(
        &self,
        key: &IdemKey,
        expiring: &KeyList,
        card: u16,
    ) -> Result<(i64, bool, Option<Counted>), LedgerError> {
        match self.records.get(key).map(|r| (r.entry(), r.card)) {
            Some((
                Entry::Hold {
                    open,
                    cash,
                    counted,
                    ..
                },
                owner,
            )) if !expiring.contains(key) && owner == card => Ok((open, cash, counted)),
            _ => Err(Inconsistent("resolving a hold that is not open")),
        }
    }

    fn insert(&mut self, key: IdemKey, record: Record) {
        self.order.push_back((record.at, key));
        self.records.insert(key, Stored::new(&record));
    }

    /// How many records an event at `now` would forget here, with `cutoff` its time less the
    /// retention: [`Self::prune`]'s walk, without the forgetting. A hold due at `now` does not
    /// stop it, because the event releases due holds before it prunes.
    pub fn prunable(&self, cutoff: i64, now: i64) -> usize {
        self.order
            .iter()
            .take_while(|(at, key)| {
                *at < cutoff
                    && self
                        .records
                        .get(key)
                        .and_then(Stored::hold_expiry)
                        .is_none_or(|expires_at| expires_at <= now)
            })
            .count()
    }

    /// Calls `f` with the time of every record that stands for no money any more: what
    /// [`Change::Forget`] may take.
    pub fn done_times(&self, mut f: impl FnMut(i64)) {
        for (at, key) in &self.order {
            if self.records.get(key).is_some_and(|r| r.entry().is_done()) {
                f(*at);
            }
        }
    }

    /// Whether a [`Change::Forget`] of `before` would forget anything here.
    pub fn has_done_before(&self, before: i64) -> bool {
        self.order.iter().any(|(at, key)| {
            *at < before && self.records.get(key).is_some_and(|r| r.entry().is_done())
        })
    }

    /// [`Change::Forget`]: forgets the records made before `before` that stand for no money any
    /// more, keeping the others in their order (a subsequence of an order by rank is one too).
    /// The expiry index loses the entries of the holds forgotten (dead entries already: the holds
    /// were resolved), which would otherwise stay until their expiry time, uncounted.
    fn forget_done(&mut self, before: i64) {
        let mut kept = VecDeque::with_capacity(self.order.len());
        let mut forgot = false;
        for (at, key) in self.order.drain(..) {
            if at < before && self.records.get(&key).is_some_and(|r| r.entry().is_done()) {
                self.records.remove(&key);
                forgot = true;
            } else {
                kept.push_back((at, key));
            }
        }
        self.order = kept;
        if forgot {
            let records = &self.records;
            self.expiries.retain(|(_, key)| records.get(key).is_some());
        }
    }

    /// Forgets records made before `cutoff`, oldest first, stopping at an open hold (which
    /// cannot be older than the retention when hold expiry is shorter, as validation requires).
    fn prune(&mut self, cutoff: i64) {
        while let Some(&(at, key)) = self.order.front() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            if let Some(r) = self.records.remove(&key)
                && r.is_hold()
            {
                // Rare: an open hold outlived the window (only after maintenance events, which
                // release nothing). Keep it, and stop here.
                self.records.insert(key, r);
                self.order.push_front((at, key));
                break;
            }
        }
    }

    /// The account as it is now, cheaply: its records are shared with this state, not copied
    /// (see [`SplitMap`]), and the order of records and the expiry index are left out, because
    /// [`AccountState::from_snapshot`] rebuilds both from the records. Meant to be taken under
    /// the account's lock and turned into an [`AccountSnapshot`] after letting it go, so a
    /// checkpoint holds a busy account for microseconds, not for a copy of all its records.
    pub fn freeze(&mut self) -> Frozen {
        Frozen {
            head: AccountSnapshot {
                posted: self.posted,
                held: self.held,
                cash_posted: self.cash_posted,
                cash_held: self.cash_held,
                last_seq: self.last_seq,
                records: Vec::new(),
                cards: self.cards.to_vec(),
                closed_through: self.closed_through,
            },
            records: self.records.share(),
        }
    }

    /// Rebuilds the state from its serialisable form, checking every invariant.
    pub fn from_snapshot(s: &AccountSnapshot) -> Result<AccountState, LedgerError> {
        let mut st = AccountState {
            posted: s.posted,
            held: s.held,
            cash_posted: s.cash_posted,
            cash_held: s.cash_held,
            last_seq: s.last_seq,
            cards: Cards::from_vec(s.cards.clone()),
            closed_through: s.closed_through,
            ..AccountState::default()
        };
        st.records.reserve(s.records.len());
        for (key, r) in &s.records {
            if st.records.insert(*key, Stored::new(r)).is_some() {
                return Err(Inconsistent("a key recorded twice"));
            }
            st.order.push_back((r.at, *key));
            if let Entry::Hold { expires_at, .. } = r.entry {
                st.index_hold(expires_at, *key);
            }
        }
        st.check()?;
        Ok(st)
    }
}

/// Where a record stands in [`AccountState::order`]: records are made by events applied in
/// sequence order, and the one event that makes two (a reversal ahead of its original) records
/// the tombstone first. Pruning only takes from the front, and puts an open hold it meets back
/// there, so the order never departs from this ([`AccountState::check`] verifies it).
fn rank(r: &Stored) -> (u64, bool) {
    (r.seq, !r.is_tombstone())
}

/// An account frozen by [`AccountState::freeze`], not yet serialisable.
#[derive(Debug)]
pub(crate) struct Frozen {
    /// Everything but the records.
    head: AccountSnapshot,
    records: SplitMap<IdemKey, Stored>,
}

impl Frozen {
    /// The serialisable form: the records copied out of the shared tables and put in the order
    /// they were recorded, which is [`rank`] order. The slow part of a checkpoint, done without
    /// the account's lock.
    pub fn into_snapshot(self) -> AccountSnapshot {
        let mut records: Vec<(&IdemKey, &Stored)> = self.records.iter().collect();
        // Ranks are distinct (checked by `AccountState::check`), so the order is total.
        records.sort_unstable_by_key(|(_, r)| rank(r));
        let records = records.into_iter().map(|(k, r)| (*k, r.record())).collect();
        AccountSnapshot {
            records,
            ..self.head
        }
    }
}

/// The serialisable state of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccountSnapshot {
    posted: i64,
    held: i64,
    cash_posted: i64,
    cash_held: i64,
    last_seq: u64,
    /// In the order they were recorded.
    records: Vec<(IdemKey, Record)>,
    cards: Vec<CardState>,
    /// Added with statements: a checkpoint written before them does not decode, and the issuer
    /// host then replays its whole journal (segments are never deleted), reaching the same state.
    closed_through: i32,
}

impl AccountSnapshot {
    /// Idempotency records held.
    pub(crate) fn record_count(&self) -> usize {
        self.records.len()
    }
}
