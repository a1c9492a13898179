//! [`History`]: an issuer's ledger history, read from its journal, cut into statement cycles.
//!
//! Owns turning [`LedgerEvent`]s into per-account postings (what moved, when, on which card,
//! of which kind) and closes, finding a cycle's postings, opening balances and previous
//! statement, and assembling the [`Statement`]. The arithmetic is [`super::compute`]'s; posting
//! the close is the engine's ([`Engine::close_statement`]); reading the journal is the caller's.
//!
//! Why replay into a fresh engine rather than re-derive amounts from the events: an event holds
//! what the ledger needs (a reversal holds what *remains*, not what moved), and the ledger's own
//! arithmetic is the one the balances came from. So each event's movement is the ledger's
//! before-and-after, and the statements cannot disagree with the balances.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate};

use super::compute::{self, CycleInput, Fault, Posting, Previous, Recorded};
use super::{AccountSummary, CreditSummary, Line, LineKind, Statement, StatementError, Summary};
use crate::domain::Amount;
use crate::issuing::config::ProductKind;
use crate::issuing::engine::{AccountDef, Engine, Product};
use crate::issuing::event::{Answer, Change, Effect, LedgerEvent, StatementClose};
use crate::issuing::request::IdemKey;

/// An issuer's history, replayed, ready to make statements for any cycle end.
#[derive(Debug)]
pub struct History {
    engine: Engine,
    accounts: Vec<AccountHistory>,
    /// Masked PANs by account, then card slot.
    cards: Vec<Vec<String>>,
}

/// A statement to deliver, and the close to post for it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub statement: Statement,
    /// `None` when the cycle was already closed: the statement was rebuilt from the journal.
    pub close: Option<CycleClose>,
}

/// A statement close to post with [`Engine::close_statement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleClose {
    pub(crate) account: u32,
    /// The last millisecond of the cycle's last day (UTC).
    pub(crate) at_ms: i64,
    pub(crate) change: StatementClose,
}

impl CycleClose {
    /// The account number (position in the issuer file).
    pub fn account_no(&self) -> u32 {
        self.account
    }

    /// Interest and fees it posts, minor units.
    pub fn charges(&self) -> i64 {
        self.change.charges().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct AccountHistory {
    /// Ledger balance and cash advances before any event (the issuer file's opening balance).
    opening: i64,
    opening_cash: i64,
    /// In journal order.
    postings: Vec<Entry>,
    /// In journal order, which the ledger makes the order of their cycle ends.
    closes: Vec<Closed>,
}

/// One posting as the history keeps it.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    /// UTC date of the event.
    date: NaiveDate,
    /// The date it counts from: its date, or the day after a close applied before it.
    effective: NaiveDate,
    card: u16,
    kind: LineKind,
    reversal: bool,
    amount: i64,
    cash: i64,
    reference: Option<String>,
    terminal: String,
}

#[derive(Debug, Clone, Copy)]
struct Closed {
    seq: u64,
    close: StatementClose,
}

fn date_of_ms(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

fn date_of_day(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(day)
}

fn next_day(d: NaiveDate) -> Result<NaiveDate, StatementError> {
    d.succ_opt().ok_or(StatementError::Overflow)
}

impl History {
    /// Replays `events` (the issuer's whole journal, any order) into `engine`, which must be
    /// fresh from the issuer file, and keeps what statements need. The engine, now at the
    /// journal's state, stays available ([`History::engine`]) to post closes on.
    pub fn replay(
        engine: Engine,
        events: impl IntoIterator<Item = LedgerEvent>,
    ) -> Result<History, StatementError> {
        let n = u32::try_from(engine.account_count()).map_err(|_| StatementError::Overflow)?;
        let mut accounts = Vec::with_capacity(n as usize);
        for i in 0..n {
            let t = engine.account_totals(i)?;
            if t.last_seq != 0 || t.closed_through != 0 {
                return Err(StatementError::EngineNotFresh);
            }
            accounts.push(AccountHistory {
                opening: t.posted,
                opening_cash: t.cash,
                ..AccountHistory::default()
            });
        }
        // Cards are numbered in file order within their account, so pushing in file order puts
        // each at its slot.
        let mut cards = vec![Vec::new(); n as usize];
        for c in engine.cards() {
            if let Some(list) = cards.get_mut(c.account_no() as usize) {
                debug_assert_eq!(list.len(), usize::from(c.slot()));
                list.push(c.pan().to_string());
            }
        }
        let mut events: Vec<LedgerEvent> = events.into_iter().collect();
        events.sort_by_key(LedgerEvent::seq);
        // What each posting was, by its request key, for the reversals that name it.
        let mut kinds: HashMap<(u32, IdemKey), LineKind> = HashMap::new();
        for ev in &events {
            let Some(moved) = engine.apply_observed(ev)? else {
                continue;
            };
            let account = engine.account_id(ev.account).unwrap_or_default().to_owned();
            let inconsistent = |what| StatementError::Inconsistent {
                account: account.clone(),
                what,
            };
            let h = &mut accounts[ev.account as usize];
            match &ev.change {
                Change::Request(rc) if moved.posted != 0 || moved.cash != 0 => {
                    let (kind, reversal) = match rc.effect {
                        Effect::Unpost { original, .. } => (
                            kinds
                                .get(&(ev.account, original))
                                .copied()
                                .or(LineKind::of_txn(rc.tag.txn)),
                            true,
                        ),
                        _ => (LineKind::of_txn(rc.tag.txn), false),
                    };
                    let kind =
                        kind.ok_or_else(|| inconsistent("a posting of an unknown transaction"))?;
                    if !reversal {
                        kinds.insert((ev.account, rc.key), kind);
                    }
                    let date = date_of_ms(ev.at).ok_or(StatementError::Overflow)?;
                    let effective =
                        match h.closes.last().and_then(|c| date_of_day(c.close.cycle_end)) {
                            Some(closed) if date <= closed => next_day(closed)?,
                            _ => date,
                        };
                    let reference = match rc.answer {
                        Answer::Approved { .. } => engine.auth_code(ev.seq).map(|a| a.to_string()),
                        Answer::Declined(_) => None,
                    };
                    h.postings.push(Entry {
                        seq: ev.seq,
                        date,
                        effective,
                        card: rc.card,
                        kind,
                        reversal,
                        amount: moved.posted,
                        cash: moved.cash,
                        reference,
                        terminal: rc.key.terminal().to_string(),
                    });
                }
                Change::Statement(close) => h.closes.push(Closed {
                    seq: ev.seq,
                    close: *close,
                }),
                _ if moved.posted != 0 || moved.cash != 0 => {
                    return Err(inconsistent("money moved outside a request or a close"));
                }
                _ => {}
            }
        }
        Ok(History {
            engine,
            accounts,
            cards,
        })
    }

    /// The engine, at the journal's state: post the closes on it when nothing else runs on the
    /// journal (a stopped issuer host).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The statements of every account whose cycle closes on `end`, in account order, each
    /// with the close to post (none when the cycle is already closed: then the statement is
    /// rebuilt from the journal as it was posted).
    pub fn cycle(&self, end: NaiveDate) -> Result<Vec<Planned>, StatementError> {
        let mut out = Vec::new();
        for n in 0..self.accounts.len() {
            let n = u32::try_from(n).map_err(|_| StatementError::Overflow)?;
            let Some(def) = self.engine.account_def(n) else {
                continue;
            };
            if super::closes_on(def.cycle_day, end) {
                out.push(self.statement(n, def, end)?);
            }
        }
        Ok(out)
    }

    fn statement(
        &self,
        n: u32,
        def: &AccountDef,
        end: NaiveDate,
    ) -> Result<Planned, StatementError> {
        let h = &self.accounts[n as usize];
        let product = self.engine.product_of(def);
        let account = &*def.id;
        let inconsistent = |what| StatementError::Inconsistent {
            account: account.to_owned(),
            what,
        };
        let cycle = bounds(h, def, end)?;
        let (opening, opening_cash) = opening(h, cycle.start)?;
        if let Some(p) = cycle.previous
            && p.close.closing != opening
        {
            return Err(inconsistent(
                "opens at another balance than the previous closing",
            ));
        }

        // The cycle's postings: counted from its first day to its last, and applied before its
        // close when it is closed already.
        let limit_seq = cycle.recorded.map_or(u64::MAX, |c| c.seq);
        let mut entries: Vec<&Entry> = h
            .postings
            .iter()
            .filter(|e| e.seq < limit_seq && (cycle.start..=end).contains(&e.effective))
            .collect();
        entries.sort_by_key(|e| (e.effective, e.seq));
        let postings: Vec<Posting> = entries
            .iter()
            .map(|e| Posting {
                date: e.effective,
                kind: e.kind,
                amount: e.amount,
                cash: e.cash,
            })
            .collect();
        let input = CycleInput {
            start: cycle.start,
            end,
            opening,
            opening_cash,
            previous: None,
            postings: &postings,
        };
        let account_cards = &self.cards[n as usize];
        let mut lines = self.lines(&entries, account_cards, product.kind)?;
        let (summary, close) = match product.kind {
            ProductKind::Credit => credit_statement(def, product, &cycle, input, &mut lines)?,
            ProductKind::Debit | ProductKind::Prepaid => account_statement(def, &input)?,
        };

        // The lines add up to the summary's movement.
        let moved = lines
            .iter()
            .try_fold(0i64, |acc, l| acc.checked_add(l.amount))
            .ok_or(StatementError::Overflow)?;
        let (open, closing) = match &summary {
            Summary::Credit(s) => (s.previous_balance, s.new_balance),
            Summary::Account(s) => (s.opening_balance, s.closing_balance),
        };
        if open.checked_add(moved) != Some(closing) {
            return Err(inconsistent("lines do not add up to the new balance"));
        }
        if let Some(c) = cycle.recorded
            && c.close.closing != close.closing
        {
            return Err(inconsistent(
                "rebuilt statement closes at another balance than the one posted",
            ));
        }

        let statement = Statement {
            issuer: self.engine.issuer().to_owned(),
            issuer_name: self.engine.issuer_name().to_owned(),
            account: account.to_owned(),
            product: product.id.to_string(),
            kind: product.kind,
            currency: product.currency,
            period_start: cycle.start,
            period_end: end,
            cards: account_cards.clone(),
            summary,
            lines,
        };
        let close = match cycle.recorded {
            Some(_) => None,
            None => Some(CycleClose {
                account: n,
                at_ms: end
                    .and_hms_milli_opt(23, 59, 59, 999)
                    .ok_or(StatementError::Overflow)?
                    .and_utc()
                    .timestamp_millis(),
                change: close,
            }),
        };
        Ok(Planned { statement, close })
    }

    /// Statement lines of the cycle's postings; amounts from the issuer's side for credit
    /// (positive: more owed), from the cardholder's otherwise (positive: money in).
    fn lines(
        &self,
        entries: &[&Entry],
        cards: &[String],
        kind: ProductKind,
    ) -> Result<Vec<Line>, StatementError> {
        let sign = if kind == ProductKind::Credit { -1 } else { 1 };
        entries
            .iter()
            .map(|e| {
                Ok(Line {
                    posted: e.effective,
                    date: e.date,
                    kind: e.kind,
                    reversal: e.reversal,
                    description: format!(
                        "{}{}, terminal {}",
                        if e.reversal { "Reversal: " } else { "" },
                        e.kind.label(kind),
                        e.terminal
                    ),
                    card: cards.get(usize::from(e.card)).cloned(),
                    reference: e.reference.clone(),
                    amount: e.amount.checked_mul(sign).ok_or(StatementError::Overflow)?,
                })
            })
            .collect()
    }
}

/// Where a cycle stands among an account's closes.
struct Bounds {
    /// The close of this very cycle, when it was posted already.
    recorded: Option<Closed>,
    /// The close before it.
    previous: Option<Closed>,
    /// Its first day.
    start: NaiveDate,
}

fn bounds(h: &AccountHistory, def: &AccountDef, end: NaiveDate) -> Result<Bounds, StatementError> {
    let end_day = end.num_days_from_ce();
    let recorded_ix = h.closes.iter().position(|c| c.close.cycle_end == end_day);
    if recorded_ix.is_none()
        && let Some(later) = h.closes.iter().find(|c| c.close.cycle_end > end_day)
    {
        return Err(StatementError::ClosedLater {
            account: def.id.to_string(),
            closed: date_of_day(later.close.cycle_end).ok_or(StatementError::Overflow)?,
        });
    }
    let previous = match recorded_ix {
        Some(i) => i.checked_sub(1).map(|j| h.closes[j]),
        None => h.closes.last().copied(),
    };
    let day_before = match previous {
        Some(p) => date_of_day(p.close.cycle_end),
        None => super::previous_close(def.cycle_day, end),
    };
    Ok(Bounds {
        recorded: recorded_ix.map(|i| h.closes[i]),
        previous,
        start: next_day(day_before.ok_or(StatementError::Overflow)?)?,
    })
}

/// Ledger balance and cash advances when a cycle starting on `start` opens: the file's
/// balance, every posting counted before the cycle, every charge of an earlier close.
fn opening(h: &AccountHistory, start: NaiveDate) -> Result<(i64, i64), StatementError> {
    let start_day = start.num_days_from_ce();
    let (mut posted, mut cash) = (h.opening, h.opening_cash);
    for e in h.postings.iter().filter(|e| e.effective < start) {
        posted = posted
            .checked_add(e.amount)
            .ok_or(StatementError::Overflow)?;
        cash = cash.checked_add(e.cash).ok_or(StatementError::Overflow)?;
    }
    for c in h.closes.iter().filter(|c| c.close.cycle_end < start_day) {
        let charges = c.close.charges().ok_or(StatementError::Overflow)?;
        posted = posted
            .checked_sub(charges)
            .ok_or(StatementError::Overflow)?;
    }
    Ok((posted, cash))
}

/// A credit statement's figures and close; appends the interest and fee lines to `lines`.
fn credit_statement(
    def: &AccountDef,
    product: &Product,
    cycle: &Bounds,
    mut input: CycleInput<'_>,
    lines: &mut Vec<Line>,
) -> Result<(Summary, StatementClose), StatementError> {
    let fault = |f: Fault| f.for_account(&def.id);
    let date = |day| date_of_day(day).ok_or(StatementError::Overflow);
    input.previous = match cycle.previous {
        Some(p) => Some(Previous {
            new_balance: p
                .close
                .closing
                .checked_neg()
                .ok_or(StatementError::Overflow)?,
            minimum_due: p.close.minimum_due,
            due_date: date(p.close.due_date)?,
        }),
        None => None,
    };
    let recorded = match cycle.recorded {
        Some(c) => Some(Recorded {
            charges: compute::Charges {
                purchase_interest: c.close.purchase_interest,
                cash_interest: c.close.cash_interest,
                late_fee: c.close.late_fee,
            },
            minimum_due: c.close.minimum_due,
            due_date: date(c.close.due_date)?,
        }),
        None => None,
    };
    let terms = &product.terms;
    let f = compute::credit(terms, &input, recorded.as_ref()).map_err(fault)?;
    let late_what = match input.previous {
        Some(p) => format!(
            "minimum payment {} not received by {}",
            Amount::new(p.minimum_due, product.currency),
            p.due_date
        ),
        None => String::new(),
    };
    for (kind, amount, what) in [
        (
            LineKind::PurchaseInterest,
            f.charges.purchase_interest,
            format!("{}% APR", terms.purchase_apr),
        ),
        (
            LineKind::CashInterest,
            f.charges.cash_interest,
            format!("{}% APR", terms.cash_apr),
        ),
        (LineKind::LateFee, f.charges.late_fee, late_what),
    ] {
        if amount != 0 {
            lines.push(Line {
                posted: input.end,
                date: input.end,
                kind,
                reversal: false,
                description: format!("{}, {what}", kind.label(ProductKind::Credit)),
                card: None,
                reference: None,
                amount,
            });
        }
    }
    let (purchase_adb, cash_adb) = compute::averages(&f).map_err(fault)?;
    let limit = def.credit_limit.unwrap_or(0);
    let summary = CreditSummary {
        previous_balance: f.previous_balance,
        payments_and_credits: f.payments_and_credits,
        purchases: f.purchases,
        cash_advances: f.cash_advances,
        fees: f.fees(),
        interest: f.interest().ok_or(StatementError::Overflow)?,
        purchase_interest: f.charges.purchase_interest,
        cash_interest: f.charges.cash_interest,
        late_fee: f.charges.late_fee,
        new_balance: f.new_balance,
        minimum_due: f.minimum_due,
        due_date: f.due_date,
        credit_limit: limit,
        available_credit: limit.saturating_sub(f.new_balance).max(0),
        grace: f.grace,
        paid_by_previous_due: f.paid_by_previous_due,
        purchase_apr: terms.purchase_apr,
        cash_apr: terms.cash_apr,
        days: f.days,
        purchase_average_daily_balance: purchase_adb,
        cash_average_daily_balance: cash_adb,
    };
    let close = StatementClose {
        cycle_end: input.end.num_days_from_ce(),
        purchase_interest: f.charges.purchase_interest,
        cash_interest: f.charges.cash_interest,
        late_fee: f.charges.late_fee,
        closing: f
            .new_balance
            .checked_neg()
            .ok_or(StatementError::Overflow)?,
        minimum_due: f.minimum_due,
        due_date: f.due_date.num_days_from_ce(),
    };
    Ok((Summary::Credit(summary), close))
}

/// A debit or prepaid statement's figures and close (which posts nothing).
fn account_statement(
    def: &AccountDef,
    input: &CycleInput<'_>,
) -> Result<(Summary, StatementClose), StatementError> {
    let f = compute::account(input).map_err(|f| f.for_account(&def.id))?;
    let summary = AccountSummary {
        opening_balance: f.opening,
        credits: f.credits,
        debits: f.debits,
        closing_balance: f.closing,
    };
    let close = StatementClose {
        cycle_end: input.end.num_days_from_ce(),
        purchase_interest: 0,
        cash_interest: 0,
        late_fee: 0,
        closing: f.closing,
        minimum_due: 0,
        due_date: 0,
    };
    Ok((Summary::Account(summary), close))
}
