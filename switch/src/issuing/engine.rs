//! [`Engine`]: one issuer's cards, accounts and ledgers in memory, and the entry points that
//! decide requests ([`Engine::process`]), replay events ([`Engine::apply`]), checkpoint
//! ([`Engine::snapshot`], [`Engine::restore`]) and maintain cards and holds.
//!
//! Owns the tables built from the issuer file, the per-account locks, the sequence counter that
//! numbers events and authorization codes, and idempotency (a retry gets the first answer). It
//! leaves the rules to [`super::rules`], the ledger mechanics to [`super::ledger`], and all I/O
//! to the caller: time comes in as an argument, and the journal is a closure the caller passes.
//!
//! # Concurrency
//!
//! Cards and products never change after loading, so lookups take no lock. Each account has its
//! own `Mutex`; a request locks exactly one account, so independent accounts never contend, and
//! a hot account is exact because decide, journal and apply happen under its lock. Event
//! sequence numbers are taken under the account's lock, so within an account they grow in the
//! order the changes were applied; across accounts they only need to be unique.
//!
//! # Journal, replay and checkpoints
//!
//! [`Engine::process_with`] calls the journal closure with the event *before* applying it, under
//! the account lock; if the journal fails nothing changes and the answer is 96. Replay
//! ([`Engine::apply`], [`Engine::replay`]) skips events an account already has (sequence at or
//! below its last), so a snapshot taken while requests run, followed by the journal from any
//! earlier point, gives the same state. Events and snapshots refer to accounts and cards by
//! position in the issuer file; [`Engine::fingerprint`] changes when those positions do.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::{
    AUTH_PREFIX_MAX, CYCLE_DAY_DEFAULT, CardStatus, DUE_DAYS_DEFAULT, IssuerFile,
    MIN_PAYMENT_PERCENT_DEFAULT, ProductKind, parse_currency, parse_pct,
};
use super::event::{Answer, Change, LedgerEvent, RequestChange, RequestTag};
use super::hash::KeyedState;
use super::ledger::{AccountSnapshot, AccountState, ApplyCtx, LedgerError};
use super::pin::{ClearPin, parse_pvk, verify_clear_pin};
use super::request::{IssuingRequest, PinCheck, RequestKind};
use super::rules::{self, Ctx, pct_of};
use super::statement::{CreditTerms, StatementError};
use crate::config::{ConfigError, Problem};
use crate::domain::{
    AccountType, Amount, AuthCode, Currency, Decline, DomainError, Expiry, Pan, ResponseCode,
};
use crate::iso8583::views::AdditionalAmount;

/// Milliseconds per hour.
const MS_PER_HOUR: i64 = 3_600_000;

/// A product's rules, ready to use.
#[derive(Debug)]
pub(crate) struct Product {
    pub id: Box<str>,
    pub kind: ProductKind,
    pub currency: Currency,
    pub hold_expiry_ms: i64,
    pub tolerance_pct: Decimal,
    pub pin_tries_max: u8,
    /// Sorted, for binary search.
    pub blocked_mcc: Vec<u16>,
    pub cash_allowed: bool,
    pub partial_approval: bool,
    pub max_balance: Option<i64>,
    pub velocity_per_hour: Option<u32>,
    /// By [`super::event::Channel::index`]: cash, purchase.
    pub daily: [DailyLimit; 2],
    /// Statement terms (interest, minimum payment, fees); zero rates for debit and prepaid.
    pub terms: CreditTerms,
}

/// One channel's daily limit, minor units and count.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DailyLimit {
    pub amount: Option<i64>,
    pub count: Option<u32>,
}

/// An account: its fixed terms beside its lock and state, so a decision on a cold account finds
/// both in neighbouring memory.
#[derive(Debug)]
pub(crate) struct AccountDef {
    pub state: Mutex<AccountState>,
    pub id: Box<str>,
    pub product: u32,
    /// Credit: limit plus over-limit allowance. Debit: overdraft. Prepaid: 0.
    pub line: i64,
    /// Credit only: the cash-advance limit.
    pub cash_limit: Option<i64>,
    /// Credit only: the credit limit as configured (without the over-limit allowance).
    pub credit_limit: Option<i64>,
    /// Day of the month its statement cycle closes (account's, else product's, else 31).
    pub cycle_day: u8,
}

/// What a decision needs of a card, stored in the PAN table itself so that a decision does not
/// visit the card table.
#[derive(Debug, Clone, Copy)]
struct CardRef {
    account: u32,
    slot: u16,
    expiry: Expiry,
}

/// A card's fixed data: PAN, account, expiry and PIN verification data (never a PIN).
#[derive(Debug, Clone)]
pub struct Card {
    pan: Pan,
    account: u32,
    slot: u16,
    expiry: Expiry,
    pvki: u8,
    pvv: Option<[u8; 4]>,
}

impl Card {
    /// The card number.
    pub fn pan(&self) -> &Pan {
        &self.pan
    }

    /// The card's expiry.
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// PIN verification key index.
    pub fn pvki(&self) -> u8 {
        self.pvki
    }

    /// Visa PVV as four ASCII digits, if the card has a PIN.
    pub fn pvv(&self) -> Option<&[u8; 4]> {
        self.pvv.as_ref()
    }

    /// The account number (position in the issuer file).
    pub fn account_no(&self) -> u32 {
        self.account
    }

    /// The card's slot: its position among its account's cards, as in events.
    pub fn slot(&self) -> u16 {
        self.slot
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Approved (00, or 10 for a partial approval) or declined.
    pub result: Result<Approval, Decline>,
    /// Field 54 material: the account's balances right after the decision. `None` when no
    /// account was found (unknown card) or the engine failed.
    pub balances: Option<Balances>,
    /// The change to journal before answering; `None` when nothing changed (a retry, an
    /// unknown card, a failure). [`Engine::process_with`] has already journaled and applied it.
    pub event: Option<LedgerEvent>,
    /// The request was a retry: this is the first answer again, and nothing changed.
    pub duplicate: bool,
}

impl Outcome {
    fn declined(d: Decline) -> Outcome {
        Outcome {
            result: Err(d),
            balances: None,
            event: None,
            duplicate: false,
        }
    }

    /// Field 39.
    pub fn response_code(&self) -> ResponseCode {
        match &self.result {
            Ok(a) => a.code,
            Err(d) => d.response_code(),
        }
    }
}

/// An approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    /// 00, or 10 for a partial approval.
    pub code: ResponseCode,
    /// What was approved: held, posted, captured, released or reversed (field 4 of the response
    /// on a partial approval). Zero for a balance inquiry.
    pub approved: Amount,
    /// Field 38: issuer prefix and a base-36 counter from the event sequence, so replay gives
    /// the same code.
    pub auth_code: AuthCode,
}

/// Balances for field 54.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balances {
    /// Account type of the entries: the processing code's "from" account, or the product's
    /// default (30 credit, 00 otherwise).
    pub account_type: u8,
    /// Available funds; for credit, the open-to-buy.
    pub available: Amount,
    /// Ledger balance; for credit, negative when the cardholder owes (shown `D`).
    pub ledger: Amount,
}

impl Balances {
    /// The two field-54 entries: ledger (01) then available (02).
    pub fn additional_amounts(&self) -> [AdditionalAmount; 2] {
        [
            AdditionalAmount {
                account_type: self.account_type,
                amount_type: AdditionalAmount::LEDGER,
                amount: self.ledger,
            },
            AdditionalAmount {
                account_type: self.account_type,
                amount_type: AdditionalAmount::AVAILABLE,
                amount: self.available,
            },
        ]
    }

    /// Field 54's 40 characters: both entries, 20 characters each.
    pub fn to_field54(&self) -> Result<[u8; 40], DomainError> {
        let mut out = [0u8; 40];
        for (chunk, entry) in out.chunks_exact_mut(20).zip(self.additional_amounts()) {
            chunk.copy_from_slice(&entry.to_field()?);
        }
        Ok(out)
    }
}

/// An account's ledger, for tests, reports and reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerView {
    /// Posted (ledger) balance.
    pub posted: Amount,
    /// Sum of open holds.
    pub held: Amount,
    /// `posted - held + line`.
    pub available: Amount,
    /// Credit: cash advances outstanding.
    pub cash_posted: Amount,
    /// Number of open holds.
    pub open_holds: usize,
}

/// How one event moved an account's money (after minus before), minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Movement {
    pub posted: i64,
    pub cash: i64,
}

/// An account's running totals at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccountTotals {
    pub posted: i64,
    pub cash: i64,
    pub last_seq: u64,
    pub closed_through: i32,
}

/// Whether [`Engine::apply`] changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event was applied.
    Applied,
    /// The account already had it (its sequence is at or below the account's last).
    AlreadyApplied,
}

/// Work between two pauses of a periodic checkpoint's snapshot
/// ([`Engine::snapshot_with_pauses`]).
pub const SNAPSHOT_SLICE: std::time::Duration = std::time::Duration::from_millis(2);

/// A checkpoint of every account's ledger (serde). Restore it onto an engine loaded from the
/// same issuer file, then replay the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    issuer: String,
    fingerprint: u32,
    next_seq: u64,
    accounts: Vec<AccountSnapshot>,
}

impl Snapshot {
    /// Idempotency records held, over every account: what sizes the checkpoint file.
    pub fn record_count(&self) -> usize {
        self.accounts
            .iter()
            .map(AccountSnapshot::record_count)
            .sum()
    }

    /// The fingerprint of the issuer file the snapshot belongs to.
    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// The snapshot with its next sequence number cleared, for tests comparing ledgers taken at
    /// different moments of the counter.
    #[cfg(test)]
    pub(crate) fn ledgers_only(mut self) -> Snapshot {
        self.next_seq = 0;
        self
    }
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot was taken from another issuer or another version of the issuer file.
    #[error(
        "snapshot of issuer {issuer} (fingerprint {found:08x}) does not fit this engine (fingerprint {expected:08x})"
    )]
    WrongFile {
        issuer: String,
        found: u32,
        expected: u32,
    },
    /// An account's state breaks an invariant.
    #[error("snapshot account {account}: {source}")]
    Ledger { account: u32, source: LedgerError },
}

/// The issuing engine of one issuer. `Sync`: share it behind an `Arc`.
#[derive(Debug)]
pub struct Engine {
    issuer: String,
    name: Box<str>,
    auth_prefix: Box<str>,
    pvk: Option<[u8; 16]>,
    retention_ms: i64,
    /// `[ledger] records_max`: where new work is refused (see [`Engine::process_with`]).
    records_max: usize,
    /// Whether the last request found the records at their limit: the limit is logged once
    /// when reached and once when left, not at every refused request.
    at_limit: AtomicBool,
    sweep_interval_s: u32,
    /// The account the next sweep starts at, where the last one stopped at its event limit.
    sweep_from: AtomicUsize,
    products: Vec<Product>,
    accounts: Vec<AccountDef>,
    cards: Vec<Card>,
    /// Card number and what a decision needs of the card, by PAN.
    by_pan: HashMap<Pan, (u32, CardRef), KeyedState>,
    /// The event sequence and the record count, written by every request.
    counters: Counters,
    fingerprint: u32,
}

/// How long past the idempotency window an account's oldest record may be before a sweep below
/// the records limit forgets it (see [`Engine::sweep`]): one day.
const SWEEP_SLACK_MS: i64 = 24 * MS_PER_HOUR;

/// The youngest a record may be and still be forgotten ahead of its window (see
/// `Engine::forget_cutoff`): one day.
const FORGET_AGE_MIN_MS: i64 = 24 * MS_PER_HOUR;

/// Most events one [`Engine::sweep`] makes: well below the journal's default queue depth
/// (65,536), so that housekeeping never fills the queue that requests are admitted to.
pub const SWEEP_EVENTS_MAX: usize = 4096;

/// The two counters every decision writes, on one cache line of their own: the worker deciding
/// a request then takes that line once for both, and no other field of the engine (read by
/// every decision) shares it.
#[derive(Debug)]
#[repr(align(64))]
struct Counters {
    /// Next event sequence number (starts at 1; 0 means "nothing applied").
    seq: AtomicU64,
    /// Idempotency records held now, over every account (kept by [`Engine::apply_counted`]).
    records: AtomicUsize,
}

/// A journal that accepts everything and stores nothing, for [`Engine::process`] and tests.
pub fn no_journal(_: &LedgerEvent) -> Result<(), Infallible> {
    Ok(())
}

impl Engine {
    /// Builds the engine from a valid issuer file (validating it first).
    pub fn from_file(file: &IssuerFile) -> Result<Engine, ConfigError> {
        file.validate().map_err(ConfigError::Invalid)?;
        let invalid = |key: &str, message: &str| {
            ConfigError::Invalid(vec![Problem {
                file: file.origin.clone(),
                key: key.to_owned(),
                message: message.to_owned(),
            }])
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(file.issuer.id.as_bytes());
        let retention_ms = i64::from(file.ledger.idempotency_window_h) * MS_PER_HOUR;
        crc.update(&retention_ms.to_le_bytes());

        let mut products = Vec::with_capacity(file.products.len());
        let mut product_ix = HashMap::new();
        for (i, p) in file.products.iter().enumerate() {
            let key = format!("product[{i}]");
            let currency = parse_currency(&p.currency).ok_or_else(|| invalid(&key, "currency"))?;
            let amount = |text: &Option<String>| -> Result<Option<i64>, ConfigError> {
                text.as_deref()
                    .map(|t| Amount::parse_major(t, currency).map(Amount::minor))
                    .transpose()
                    .map_err(|_| invalid(&key, "amount"))
            };
            let daily =
                |d: &Option<super::config::DailyLimitEntry>| -> Result<DailyLimit, ConfigError> {
                    Ok(match d {
                        Some(d) => DailyLimit {
                            amount: amount(&d.amount)?,
                            count: d.count,
                        },
                        None => DailyLimit::default(),
                    })
                };
            let mut blocked_mcc = p.blocked_mcc.clone();
            blocked_mcc.sort_unstable();
            let pct = |text: &Option<String>, default: &str, name: &str| {
                parse_pct(text.as_deref().unwrap_or(default)).ok_or_else(|| invalid(&key, name))
            };
            let terms = CreditTerms {
                due_days: p.due_days.unwrap_or(DUE_DAYS_DEFAULT),
                purchase_apr: pct(&p.purchase_apr, "0", "purchase_apr")?,
                cash_apr: pct(&p.cash_apr, "0", "cash_apr")?,
                min_payment_percent: pct(
                    &p.min_payment_percent,
                    MIN_PAYMENT_PERCENT_DEFAULT,
                    "min_payment_percent",
                )?,
                min_payment_floor: amount(&p.min_payment_floor)?.unwrap_or(0),
                late_fee: amount(&p.late_fee)?.unwrap_or(0),
            };
            products.push(Product {
                id: p.id.as_str().into(),
                kind: p.kind,
                currency,
                hold_expiry_ms: i64::from(p.hold_expiry_h) * MS_PER_HOUR,
                tolerance_pct: parse_pct(&p.completion_tolerance_pct)
                    .ok_or_else(|| invalid(&key, "completion_tolerance_pct"))?,
                pin_tries_max: p.pin_tries_max,
                blocked_mcc,
                cash_allowed: p.cash_allowed,
                partial_approval: p.partial_approval.unwrap_or(p.kind == ProductKind::Prepaid),
                max_balance: amount(&p.max_balance)?,
                velocity_per_hour: p.velocity_per_hour,
                daily: [daily(&p.daily_cash)?, daily(&p.daily_purchase)?],
                terms,
            });
            product_ix.insert(p.id.as_str(), u32::try_from(i).unwrap_or(u32::MAX));
            crc.update(p.id.as_bytes());
            crc.update(&[p.kind as u8]);
        }

        let mut accounts = Vec::with_capacity(file.accounts.len());
        let mut account_ix = HashMap::with_capacity(file.accounts.len());
        let mut balances = Vec::with_capacity(file.accounts.len());
        for (i, a) in file.accounts.iter().enumerate() {
            let key = format!("account[{i}]");
            let &pi = product_ix
                .get(a.product.as_str())
                .ok_or_else(|| invalid(&key, "product"))?;
            let p = &products[pi as usize];
            let c = p.currency;
            let amount = |text: &Option<String>| -> Result<Option<i64>, ConfigError> {
                text.as_deref()
                    .map(|t| Amount::parse_major(t, c).map(Amount::minor))
                    .transpose()
                    .map_err(|_| invalid(&key, "amount"))
            };
            let balance = amount(&a.balance)?.unwrap_or(0);
            let (line, posted, cash_limit, credit_limit) = match p.kind {
                ProductKind::Credit => {
                    let limit = amount(&a.credit_limit)?.unwrap_or(0);
                    let over = parse_pct(&file.products[pi as usize].over_limit_pct)
                        .and_then(|pct| pct_of(limit, pct))
                        .ok_or_else(|| invalid(&key, "over_limit_pct"))?;
                    let cash = amount(&a.cash_limit)?.unwrap_or(limit);
                    // The configured balance of a credit account is what is owed.
                    (
                        limit.saturating_add(over),
                        -balance,
                        Some(cash),
                        Some(limit),
                    )
                }
                ProductKind::Debit => (amount(&a.overdraft)?.unwrap_or(0), balance, None, None),
                ProductKind::Prepaid => (0, balance, None, None),
            };
            let cycle_day = a
                .cycle_day
                .or(file.products[pi as usize].cycle_day)
                .unwrap_or(CYCLE_DAY_DEFAULT);
            accounts.push(AccountDef {
                state: Mutex::new(AccountState::default()),
                id: a.id.as_str().into(),
                product: pi,
                line,
                cash_limit,
                credit_limit,
                cycle_day,
            });
            balances.push(posted);
            let n = u32::try_from(i).map_err(|_| invalid(&key, "too many accounts"))?;
            account_ix.insert(a.id.as_str(), n);
            crc.update(a.id.as_bytes());
            crc.update(&pi.to_le_bytes());
        }

        let mut cards = Vec::with_capacity(file.cards.len());
        let mut by_pan = HashMap::with_capacity_and_hasher(file.cards.len(), KeyedState::default());
        let mut statuses: Vec<Vec<CardStatus>> = vec![Vec::new(); accounts.len()];
        for (i, c) in file.cards.iter().enumerate() {
            let key = format!("card[{i}]");
            let pan = Pan::parse(c.pan.as_bytes()).map_err(|_| invalid(&key, "pan"))?;
            let &account = account_ix
                .get(c.account.as_str())
                .ok_or_else(|| invalid(&key, "account"))?;
            let on_account = &mut statuses[account as usize];
            let slot = u16::try_from(on_account.len()).map_err(|_| invalid(&key, "slot"))?;
            on_account.push(c.status);
            let pvv = match &c.pvv {
                Some(p) => {
                    Some(<[u8; 4]>::try_from(p.as_bytes()).map_err(|_| invalid(&key, "pvv"))?)
                }
                None => None,
            };
            let n = u32::try_from(i).map_err(|_| invalid(&key, "too many cards"))?;
            let expiry =
                Expiry::from_field(c.expiry.as_bytes()).map_err(|_| invalid(&key, "expiry"))?;
            by_pan.insert(
                pan,
                (
                    n,
                    CardRef {
                        account,
                        slot,
                        expiry,
                    },
                ),
            );
            cards.push(Card {
                pan,
                account,
                slot,
                expiry,
                pvki: c.pvki.unwrap_or(0),
                pvv,
            });
            crc.update(pan.expose_digits());
            crc.update(&account.to_le_bytes());
        }

        for ((account, posted), cards) in accounts.iter_mut().zip(balances).zip(statuses) {
            account.state = Mutex::new(AccountState::new(posted, cards));
        }
        let pvk = file.security.pvk.as_deref().and_then(parse_pvk);
        let prefix = &file.issuer.auth_code_prefix;
        debug_assert!(prefix.len() <= AUTH_PREFIX_MAX);
        Ok(Engine {
            issuer: file.issuer.id.clone(),
            name: file.issuer.name.as_str().into(),
            auth_prefix: prefix.as_str().into(),
            pvk,
            retention_ms,
            records_max: usize::try_from(file.ledger.records_max).unwrap_or(usize::MAX),
            at_limit: AtomicBool::new(false),
            sweep_interval_s: file.ledger.sweep_interval_s,
            sweep_from: AtomicUsize::new(0),
            products,
            accounts,
            cards,
            by_pan,
            counters: Counters {
                seq: AtomicU64::new(1),
                records: AtomicUsize::new(0),
            },
            fingerprint: crc.finalize(),
        })
    }

    /// The issuer id.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuer's display name.
    pub fn issuer_name(&self) -> &str {
        &self.name
    }

    /// CRC-32 of the issuer id, the retention, and the positions of products, accounts and cards:
    /// events and snapshots are only valid on an engine with the same fingerprint.
    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// The id of account number `account_no` (as in events).
    pub fn account_id(&self, account_no: u32) -> Option<&str> {
        self.accounts.get(account_no as usize).map(|a| &*a.id)
    }

    /// Number of cards.
    pub fn card_count(&self) -> usize {
        self.cards.len()
    }

    /// The card's fixed data.
    pub fn card(&self, pan: &Pan) -> Option<&Card> {
        self.by_pan.get(pan).map(|&(i, _)| &self.cards[i as usize])
    }

    /// Decides `req` at `now` on `business_date` and applies the change, without a journal:
    /// the caller journals [`Outcome::event`] itself (or does not need to: simulators, benches).
    /// If the caller's journal write can fail, use [`Engine::process_with`], which journals before
    /// the change is applied.
    pub fn process(
        &self,
        req: &IssuingRequest,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> Outcome {
        self.process_with(req, now, business_date, no_journal)
    }

    /// Decides `req`, passes the event to `journal` under the account's lock, and applies it
    /// only if the journal accepted it; otherwise nothing changes and the answer is 96.
    ///
    /// A retry (same key, same request) gets the first answer with `duplicate` set and no event.
    /// A different request reusing a key is declined 94 and not recorded. An unknown card is 14.
    pub fn process_with<E>(
        &self,
        req: &IssuingRequest,
        now: NaiveDateTime,
        business_date: NaiveDate,
        journal: impl FnOnce(&LedgerEvent) -> Result<(), E>,
    ) -> Outcome {
        let Some(&(_, card)) = self.by_pan.get(&req.pan) else {
            return Outcome::declined(Decline::InvalidCardNumber);
        };
        let account_no = card.account;
        let account = &self.accounts[account_no as usize];
        let product = &self.products[account.product as usize];
        let Ok(mut st) = self.lock(account_no) else {
            return Outcome::declined(Decline::SystemMalfunction);
        };
        let tag = tag_of(req);

        if let Some(record) = st.records.get(&req.key) {
            if record.tag() == tag || record.is_tombstone() {
                return Outcome {
                    result: self.result_of(record.answer(), record.seq, product),
                    balances: Some(self.balances_of(record.available, record.ledger, req, product)),
                    event: None,
                    duplicate: true,
                };
            }
            return Outcome::declined(Decline::DuplicateTransmission);
        }
        let now_ms = now.and_utc().timestamp_millis();
        if self.refused_at_limit(req, &st, now_ms) {
            return Outcome::declined(Decline::SystemMalfunction);
        }

        let (expired, released, cash_released) = st.due_holds(now_ms);
        let ctx = Ctx {
            product,
            account,
            expiry: card.expiry,
            slot: card.slot,
            st: &st,
            req,
            now: now_ms,
            date: business_date,
            day: business_date.num_days_from_ce(),
            expired: &expired,
            held: st.held.saturating_sub(released),
            cash_held: st.cash_held.saturating_sub(cash_released),
        };
        let decision = rules::decide(&ctx);
        let event = LedgerEvent {
            seq: self.counters.seq.fetch_add(1, Ordering::Relaxed),
            at: now_ms,
            account: account_no,
            change: Change::Request(RequestChange {
                key: req.key,
                card: card.slot,
                tag,
                answer: decision.answer,
                expired,
                pin: decision.pin,
                effect: decision.effect,
                counted: decision.counted,
            }),
        };
        if journal(&event).is_err() {
            tracing::error!(issuer = %self.issuer, seq = event.seq, "ledger journal write failed; request answered 96");
            return Outcome::declined(Decline::SystemMalfunction);
        }
        if let Err(e) = self.apply_counted(&mut st, &self.apply_ctx(account, product), &event) {
            debug_assert!(false, "engine produced an event it cannot apply: {e}");
            tracing::error!(issuer = %self.issuer, seq = event.seq, error = %e, "ledger refused the engine's own event; answered 96");
            return Outcome::declined(Decline::SystemMalfunction);
        }
        // The balances the new record holds, without looking it up again.
        let available = st.available_with(st.held, account.line).unwrap_or(i64::MIN);
        Outcome {
            result: self.result_of(decision.answer, event.seq, product),
            balances: Some(self.balances_of(available, st.posted, req, product)),
            event: Some(event),
            duplicate: false,
        }
    }

    /// Applies a journaled event (replay). Events an account already has (sequence at or below
    /// its last) are skipped, so a journal may be replayed over a snapshot taken at any point.
    ///
    /// The events of one account must arrive in sequence order. A journal written inside
    /// [`Engine::process_with`]'s closure is in that order; one written after
    /// [`Engine::process`] returned may not be (two threads on one account can append in either
    /// order), and should go through [`Engine::replay`], which sorts.
    pub fn apply(&self, event: &LedgerEvent) -> Result<Applied, LedgerError> {
        Ok(match self.apply_observed(event)? {
            Some(_) => Applied::Applied,
            None => Applied::AlreadyApplied,
        })
    }

    /// [`Engine::apply`], telling how the account's posted balance and cash advances moved
    /// (`None`: already applied). Statements read postings this way, from the ledger's own
    /// arithmetic, so they cannot disagree with the balances.
    pub(crate) fn apply_observed(
        &self,
        event: &LedgerEvent,
    ) -> Result<Option<Movement>, LedgerError> {
        let account = self
            .accounts
            .get(event.account as usize)
            .ok_or(LedgerError::UnknownAccount(event.account))?;
        let product = &self.products[account.product as usize];
        let mut st = self.lock(event.account)?;
        if event.seq <= st.last_seq {
            return Ok(None);
        }
        let (posted, cash) = (st.posted, st.cash_posted);
        self.apply_counted(&mut st, &self.apply_ctx(account, product), event)?;
        self.counters
            .seq
            .fetch_max(event.seq.saturating_add(1), Ordering::Relaxed);
        let moved = |after: i64, before: i64| {
            after
                .checked_sub(before)
                .ok_or(LedgerError::Inconsistent("amount overflow"))
        };
        Ok(Some(Movement {
            posted: moved(st.posted, posted)?,
            cash: moved(st.cash_posted, cash)?,
        }))
    }

    /// Posts a statement close ([`super::statement::CycleClose`], made by
    /// [`super::statement::History::cycle`]): journals the event with `journal`, then applies
    /// it. `Ok(None)` when the account has already closed that cycle (or a later one): running
    /// statements twice posts nothing twice. Charges post past any limit.
    pub fn close_statement<E>(
        &self,
        close: &super::statement::CycleClose,
        journal: impl FnOnce(&LedgerEvent) -> Result<(), E>,
    ) -> Result<Option<LedgerEvent>, StatementError> {
        let account = self
            .accounts
            .get(close.account as usize)
            .ok_or(StatementError::Ledger(LedgerError::UnknownAccount(
                close.account,
            )))?;
        let product = &self.products[account.product as usize];
        let mut st = self.lock(close.account)?;
        if close.change.cycle_end <= st.closed_through {
            return Ok(None);
        }
        let event = LedgerEvent {
            seq: self.counters.seq.fetch_add(1, Ordering::Relaxed),
            at: close.at_ms,
            account: close.account,
            change: Change::Statement(close.change),
        };
        journal(&event).map_err(|_| StatementError::Journal)?;
        self.apply_counted(&mut st, &self.apply_ctx(account, product), &event)?;
        Ok(Some(event))
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    pub(crate) fn account_def(&self, account_no: u32) -> Option<&AccountDef> {
        self.accounts.get(account_no as usize)
    }

    pub(crate) fn product_of(&self, account: &AccountDef) -> &Product {
        &self.products[account.product as usize]
    }

    /// The cards in the file, in file order.
    pub(crate) fn cards(&self) -> &[Card] {
        &self.cards
    }

    /// The account's posted balance, cash advances and last closed cycle, for a statement's
    /// opening state.
    pub(crate) fn account_totals(&self, account_no: u32) -> Result<AccountTotals, LedgerError> {
        let st = self.lock(account_no)?;
        Ok(AccountTotals {
            posted: st.posted,
            cash: st.cash_posted,
            last_seq: st.last_seq,
            closed_through: st.closed_through,
        })
    }

    /// Applies a whole journal in sequence order (the order of a journal written by concurrent
    /// callers of [`Engine::process`] may differ from it); returns how many were applied.
    pub fn replay(
        &self,
        events: impl IntoIterator<Item = LedgerEvent>,
    ) -> Result<usize, LedgerError> {
        let mut events: Vec<LedgerEvent> = events.into_iter().collect();
        events.sort_by_key(|e| e.seq);
        let mut applied = 0;
        for e in &events {
            if self.apply(e)? == Applied::Applied {
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Releases every hold due at `now` and forgets records older than the idempotency window,
    /// on every account; at `[ledger] records_max`'s high-water mark, also forgets the oldest
    /// records that stand for no money any more ([`Change::Forget`]). Hosts call it every
    /// `[ledger] sweep_interval_s`, so that an account without requests releases its expired
    /// holds and its old records too.
    ///
    /// Each account with something to do gives one event per change, journaled by `journal`
    /// before it is applied. A pass makes at most [`SWEEP_EVENTS_MAX`] events and stops at the
    /// first the journal refuses (a full queue must not be filled further by housekeeping): the
    /// next pass carries on from the account where this one stopped.
    pub fn sweep<E>(
        &self,
        now: NaiveDateTime,
        mut journal: impl FnMut(&LedgerEvent) -> Result<(), E>,
    ) -> Vec<LedgerEvent> {
        let now_ms = now.and_utc().timestamp_millis();
        let held = self.records_held();
        let high = self.records_max - self.records_max / 16;
        let crowded = held >= high;
        // Below the high-water mark an account is swept for its old records only once the oldest
        // is a day past the window: accounts with requests prune on their own, and an event for
        // nearly every account at every sweep would cost more journal than the memory it frees.
        // Above it every record past the window goes, and the oldest done ones until the records
        // are down to seven eighths of the limit.
        let slack = if crowded { 0 } else { SWEEP_SLACK_MS };
        let forget = if crowded {
            self.forget_cutoff(
                held.saturating_sub(self.records_max - self.records_max / 8),
                now_ms,
            )
        } else {
            None
        };
        let n = self.accounts.len();
        let from = self.sweep_from.load(Ordering::Relaxed) % n.max(1);
        let mut out = Vec::new();
        for i in (from..n).chain(0..from) {
            let Ok(account_no) = u32::try_from(i) else {
                break;
            };
            let account = &self.accounts[i];
            let Ok(mut st) = self.lock(account_no) else {
                continue;
            };
            let (expired, _, _) = st.due_holds(now_ms);
            let mut changes = Vec::new();
            if let Some(before) = forget.filter(|b| st.has_done_before(*b)) {
                changes.push(Change::Forget { before });
            }
            if !expired.is_empty() || st.has_prunable(now_ms - slack, self.retention_ms) {
                changes.push(Change::Sweep { expired });
            }
            let product = &self.products[account.product as usize];
            for change in changes {
                if out.len() >= SWEEP_EVENTS_MAX {
                    // This account again first, next time: what it still has to do is found anew.
                    self.sweep_from.store(i, Ordering::Relaxed);
                    return out;
                }
                let event = LedgerEvent {
                    seq: self.counters.seq.fetch_add(1, Ordering::Relaxed),
                    at: now_ms,
                    account: account_no,
                    change,
                };
                if journal(&event).is_err() {
                    self.sweep_from.store(i, Ordering::Relaxed);
                    return out;
                }
                if let Err(e) =
                    self.apply_counted(&mut st, &self.apply_ctx(account, product), &event)
                {
                    debug_assert!(false, "sweep event refused: {e}");
                    break;
                }
                out.push(event);
            }
        }
        self.sweep_from.store(from, Ordering::Relaxed);
        out
    }

    /// The time before which forgetting every record that stands for no money frees at least
    /// `excess` records, or as many as there are a day old or more (`None`: none). Counted to
    /// the hour over every account, oldest hours first; taken only above the high-water mark,
    /// where it costs one look at every record per sweep.
    ///
    /// Never less than [`FORGET_AGE_MIN_MS`] back: a record forgotten early loses only the
    /// answer to a repeat of its request, and a repeat within a day is plausible (an acquirer's
    /// store-and-forward, a terminal's retry), while the switch's duplicate window covers only
    /// minutes. A forgotten voided hold, for one, would let a late repeat of its 0100 place a new
    /// hold that nobody reverses.
    fn forget_cutoff(&self, excess: usize, now_ms: i64) -> Option<i64> {
        let newest = (now_ms - FORGET_AGE_MIN_MS).div_euclid(MS_PER_HOUR);
        let mut hours: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
        for i in 0..self.accounts.len() {
            let Ok(account_no) = u32::try_from(i) else {
                break;
            };
            let Ok(st) = self.lock(account_no) else {
                continue;
            };
            st.done_times(|at| {
                let hour = at.div_euclid(MS_PER_HOUR);
                // Whole hours that ended a day ago or earlier.
                if hour < newest {
                    *hours.entry(hour).or_default() += 1;
                }
            });
        }
        let mut freed = 0usize;
        let mut last = None;
        for (&hour, &count) in &hours {
            freed += count;
            last = Some(hour);
            if freed >= excess.max(1) {
                break;
            }
        }
        // Everything up to the end of the last hour counted.
        last.map(|h| (h + 1) * MS_PER_HOUR)
    }

    /// Resets the card's wrong-PIN count (unblocks a card answered 75).
    pub fn reset_pin_tries<E>(
        &self,
        pan: &Pan,
        now: NaiveDateTime,
        journal: impl FnOnce(&LedgerEvent) -> Result<(), E>,
    ) -> Result<LedgerEvent, Decline> {
        self.maintain(pan, now, journal, |slot| Change::PinReset { card: slot })
    }

    /// Changes the card's status (report lost or stolen, restrict, close, reactivate).
    pub fn set_card_status<E>(
        &self,
        pan: &Pan,
        status: CardStatus,
        now: NaiveDateTime,
        journal: impl FnOnce(&LedgerEvent) -> Result<(), E>,
    ) -> Result<LedgerEvent, Decline> {
        self.maintain(pan, now, journal, |slot| Change::Status {
            card: slot,
            status,
        })
    }

    fn maintain<E>(
        &self,
        pan: &Pan,
        now: NaiveDateTime,
        journal: impl FnOnce(&LedgerEvent) -> Result<(), E>,
        change: impl FnOnce(u16) -> Change,
    ) -> Result<LedgerEvent, Decline> {
        let card = self.card(pan).ok_or(Decline::InvalidCardNumber)?;
        let account = &self.accounts[card.account as usize];
        let product = &self.products[account.product as usize];
        let mut st = self
            .lock(card.account)
            .map_err(|_| Decline::SystemMalfunction)?;
        let event = LedgerEvent {
            seq: self.counters.seq.fetch_add(1, Ordering::Relaxed),
            at: now.and_utc().timestamp_millis(),
            account: card.account,
            change: change(card.slot),
        };
        journal(&event).map_err(|_| Decline::SystemMalfunction)?;
        self.apply_counted(&mut st, &self.apply_ctx(account, product), &event)
            .map_err(|_| Decline::SystemMalfunction)?;
        Ok(event)
    }

    /// The card's current status.
    pub fn card_status(&self, pan: &Pan) -> Option<CardStatus> {
        let card = self.card(pan)?;
        let st = self.lock(card.account).ok()?;
        st.cards.get(usize::from(card.slot)).map(|c| c.status)
    }

    /// The card account's balances now (holds due but not yet swept still count).
    pub fn balances(&self, pan: &Pan) -> Option<Balances> {
        let card = self.card(pan)?;
        let account = &self.accounts[card.account as usize];
        let product = &self.products[account.product as usize];
        let st = self.lock(card.account).ok()?;
        let available = st.available_with(st.held, account.line)?;
        Some(Balances {
            account_type: default_account_type(product),
            available: Amount::new(available, product.currency),
            ledger: Amount::new(st.posted, product.currency),
        })
    }

    /// The card account's ledger in detail.
    pub fn ledger(&self, pan: &Pan) -> Option<LedgerView> {
        let card = self.card(pan)?;
        let account = &self.accounts[card.account as usize];
        let c = self.products[account.product as usize].currency;
        let st = self.lock(card.account).ok()?;
        Some(LedgerView {
            posted: Amount::new(st.posted, c),
            held: Amount::new(st.held, c),
            available: Amount::new(st.available_with(st.held, account.line)?, c),
            cash_posted: Amount::new(st.cash_posted, c),
            open_holds: st.open_holds(),
        })
    }

    /// Checks every account's full invariants (held equals the open holds, indexes agree).
    pub fn check_invariants(&self) -> Result<(), LedgerError> {
        let mut records = 0;
        for i in 0..self.accounts.len() {
            let n = u32::try_from(i).map_err(|_| LedgerError::UnknownAccount(u32::MAX))?;
            let st = self.lock(n)?;
            st.check()?;
            records += st.order.len();
        }
        // Exact only with no request running meanwhile, as in the tests that call this.
        if records != self.records_held() {
            return Err(LedgerError::Inconsistent(
                "record count differs from the records held",
            ));
        }
        Ok(())
    }

    /// Checks a clear PIN against the card's PVV with the issuer's PVK: [`PinCheck::Verified`]
    /// or [`PinCheck::Wrong`] (also for an unknown card, a card without PVV, or no PVK).
    pub fn verify_pin(&self, pan: &Pan, pin: &str) -> PinCheck {
        match (self.pvk.as_ref(), self.card(pan)) {
            (Some(pvk), Some(card)) if verify_clear_pin(pvk, card, pin) => PinCheck::Verified,
            _ => PinCheck::Wrong,
        }
    }

    /// Checks a clear (already decrypted) ISO 9564 format 0 PIN block; see
    /// [`Engine::verify_pin`]. A block that does not decode for this PAN is wrong.
    pub fn verify_pin_block(&self, pan: &Pan, clear_block: &[u8; 8]) -> PinCheck {
        match ClearPin::from_iso0_block(clear_block, pan) {
            Some(pin) => self.verify_pin(pan, pin.expose_str()),
            None => PinCheck::Wrong,
        }
    }

    /// Every account's ledger, for a checkpoint. Accounts are taken one at a time while
    /// requests keep running; replaying the journal over it skips what it already holds.
    ///
    /// Each account's lock is held only to freeze it ([`AccountState::freeze`]: counters, cards
    /// and references to its record tables, microseconds even for an account of a hundred
    /// thousand records); the records are copied out after the lock is let go. A request that
    /// changes a record table the frozen copy still shares copies that one table first (about
    /// 1/64 of a large account's records).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_then(|_| {})
    }

    /// [`Engine::snapshot`] for a periodic checkpoint, pausing for `slice` after every `slice` of
    /// work ([`SNAPSHOT_SLICE`]) while `pausing()` says so, so that it takes at most about half a
    /// core while the issuer answers requests. Accounts are frozen one at a time in any case, so
    /// a pause between them changes nothing in what is copied; the snapshot only takes twice as
    /// long. Callers stop pausing at shutdown (a hurried [`crate::journal::WritePace`]).
    ///
    /// Why: the checkpoint's write is paced, but a snapshot of millions of records ran in one
    /// burst of a core, on both issuer hosts at once on the test machine's two cores, and held
    /// up the stack for about a second at each large checkpoint. In one pair of four-minute runs
    /// at 31,730 remote requests a second (docs/performance.md, "Checkpoints written at a
    /// bounded rate") the p99.9 was 74.9 ms with the pauses against 159 ms without. The switch's
    /// on-us issuers take theirs the same way.
    pub fn snapshot_with_pauses(
        &self,
        slice: std::time::Duration,
        pausing: impl Fn() -> bool,
    ) -> Snapshot {
        let mut slice_began = std::time::Instant::now();
        self.snapshot_hooks(
            |_| {},
            |account| {
                // A clock read every 64 accounts: cheap beside the copies between them.
                if account % 64 == 0 && slice_began.elapsed() >= slice && pausing() {
                    std::thread::sleep(slice);
                    slice_began = std::time::Instant::now();
                }
            },
        )
    }

    /// [`Engine::snapshot`], calling `frozen(account)` after each account is frozen and its
    /// lock let go, before its records are copied: where tests change the account meanwhile.
    pub(crate) fn snapshot_then(&self, frozen: impl FnMut(u32)) -> Snapshot {
        self.snapshot_hooks(frozen, |_| {})
    }

    /// [`Engine::snapshot`], calling `frozen(account)` between an account's freeze and its copy,
    /// and `copied(account)` once the copy is made. The pauses go in `copied`: a frozen account
    /// shares its record tables with the checkpoint until the copy is made, and a request to it
    /// meanwhile copies its table under its lock.
    fn snapshot_hooks(&self, mut frozen: impl FnMut(u32), mut copied: impl FnMut(u32)) -> Snapshot {
        let accounts = self
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let account = match a.state.lock() {
                    Ok(mut st) => st.freeze(),
                    Err(p) => p.into_inner().freeze(),
                };
                let n = u32::try_from(i).unwrap_or(u32::MAX);
                frozen(n);
                let account = account.into_snapshot();
                copied(n);
                account
            })
            .collect();
        Snapshot {
            issuer: self.issuer.clone(),
            fingerprint: self.fingerprint,
            next_seq: self.counters.seq.load(Ordering::Relaxed),
            accounts,
        }
    }

    /// Replaces every account's ledger with the snapshot's, after checking it fits this engine
    /// and every invariant holds (nothing is replaced otherwise). Meant for start-up, before
    /// requests are served.
    pub fn restore(&self, snapshot: &Snapshot) -> Result<(), RestoreError> {
        if snapshot.fingerprint != self.fingerprint
            || snapshot.accounts.len() != self.accounts.len()
        {
            return Err(RestoreError::WrongFile {
                issuer: snapshot.issuer.clone(),
                found: snapshot.fingerprint,
                expected: self.fingerprint,
            });
        }
        let mut fresh = Vec::with_capacity(snapshot.accounts.len());
        for (i, (a, def)) in snapshot.accounts.iter().zip(&self.accounts).enumerate() {
            let m = &def.state;
            let account = u32::try_from(i).unwrap_or(u32::MAX);
            let st = AccountState::from_snapshot(a)
                .map_err(|source| RestoreError::Ledger { account, source })?;
            let cards = match m.lock() {
                Ok(cur) => cur.cards.len(),
                Err(p) => p.into_inner().cards.len(),
            };
            if st.cards.len() != cards {
                return Err(RestoreError::Ledger {
                    account,
                    source: LedgerError::Inconsistent("card count differs from the issuer file"),
                });
            }
            fresh.push(st);
        }
        for (st, def) in fresh.into_iter().zip(&self.accounts) {
            let mut cur = match def.state.lock() {
                Ok(cur) => cur,
                Err(p) => p.into_inner(),
            };
            self.count(cur.order.len(), st.order.len());
            *cur = st;
        }
        self.counters
            .seq
            .fetch_max(snapshot.next_seq.max(1), Ordering::Relaxed);
        Ok(())
    }

    /// Whether `req` is refused because the records are at `[ledger] records_max`. Only a new
    /// authorization or financial request is: it is answered 96 and changes nothing, so the
    /// acquirer may try again or decline. Advices, completions and reversals are always taken:
    /// each records money that already moved or gives money back, and store-and-forward counts
    /// any answer as delivered, so refusing one would lose it. The sweep keeps the records below
    /// the limit ([`Engine::sweep`]); a refusal means it has not yet (between sweeps), or could
    /// not, because what is left within the window still stands for money or is less than a day
    /// old.
    fn refused_at_limit(&self, req: &IssuingRequest, st: &AccountState, now_ms: i64) -> bool {
        let held = self.counters.records.load(Ordering::Relaxed);
        if held < self.records_max {
            if self.at_limit.load(Ordering::Relaxed) && self.at_limit.swap(false, Ordering::Relaxed)
            {
                tracing::info!(issuer = %self.issuer, records = held, "idempotency records below ledger.records_max again; new requests are taken");
            }
            return false;
        }
        if !matches!(
            req.kind,
            RequestKind::Authorization | RequestKind::Financial
        ) {
            return false;
        }
        // The request's own event forgets the account's records past the window first.
        let own = st.prunable(now_ms.saturating_sub(self.retention_ms), now_ms);
        if held - own.min(held) < self.records_max {
            return false;
        }
        if !self.at_limit.swap(true, Ordering::Relaxed) {
            tracing::warn!(issuer = %self.issuer, records = held, records_max = self.records_max, "idempotency records at ledger.records_max: new authorizations and financial requests are answered 96 until sweeps forget enough (if this lasts, raise records_max or shorten idempotency_window_h)");
        }
        true
    }

    /// Whether account `n`'s records are split into shards (`None`: no such account).
    #[cfg(test)]
    pub(crate) fn records_split(&self, n: u32) -> Option<bool> {
        self.lock(n).ok().map(|st| st.records.is_split())
    }

    /// Entries of the hold-expiry indexes, over every account (dead ones included).
    #[cfg(test)]
    pub(crate) fn expiry_entries(&self) -> usize {
        (0..self.accounts.len())
            .filter_map(|i| u32::try_from(i).ok())
            .filter_map(|n| self.lock(n).ok().map(|st| st.expiries.len()))
            .sum()
    }

    /// Idempotency records held now, over every account: one per request answered within the
    /// idempotency window (and one per tombstone). What `[ledger] records_max` bounds.
    pub fn records_held(&self) -> usize {
        self.counters.records.load(Ordering::Relaxed)
    }

    /// `[ledger] sweep_interval_s`: how often the host should call [`Engine::sweep`] (0: never).
    pub fn sweep_interval_s(&self) -> u32 {
        self.sweep_interval_s
    }

    /// [`AccountState::apply`], keeping [`Engine::records_held`] up to date: every change to an
    /// account's records goes through here.
    fn apply_counted(
        &self,
        st: &mut AccountState,
        cx: &ApplyCtx,
        event: &LedgerEvent,
    ) -> Result<(), LedgerError> {
        let before = st.order.len();
        let applied = st.apply(cx, event);
        self.count(before, st.order.len());
        applied
    }

    /// Moves the record count by one account's change from `before` to `after` records, under
    /// that account's lock. Saturating: a count that could go below zero would refuse every
    /// request from then on.
    fn count(&self, before: usize, after: usize) {
        let records = &self.counters.records;
        if after == before {
            // No write to the shared line for a change that leaves the records as they were.
            return;
        }
        if after > before {
            records.fetch_add(after - before, Ordering::Relaxed);
        } else {
            let gone = before - after;
            let _ = records.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(gone))
            });
        }
    }

    fn lock(&self, account: u32) -> Result<MutexGuard<'_, AccountState>, LedgerError> {
        self.accounts
            .get(account as usize)
            .ok_or(LedgerError::UnknownAccount(account))?
            .state
            .lock()
            .map_err(|_| LedgerError::Poisoned)
    }

    fn apply_ctx(&self, account: &AccountDef, product: &Product) -> ApplyCtx {
        ApplyCtx {
            line: account.line,
            velocity: product.velocity_per_hour,
            retention_ms: self.retention_ms,
        }
    }

    fn result_of(&self, answer: Answer, seq: u64, product: &Product) -> Result<Approval, Decline> {
        match answer {
            Answer::Approved { amount, partial } => Ok(Approval {
                code: if partial {
                    ResponseCode::ApprovedPartial
                } else {
                    ResponseCode::Approved
                },
                approved: Amount::new(amount, product.currency),
                auth_code: self.auth_code(seq).ok_or(Decline::SystemMalfunction)?,
            }),
            Answer::Declined(d) => Err(d),
        }
    }

    fn balances_of(
        &self,
        available: i64,
        ledger: i64,
        req: &IssuingRequest,
        product: &Product,
    ) -> Balances {
        let from = req.processing_code.from;
        Balances {
            account_type: if from == AccountType::Default {
                default_account_type(product)
            } else {
                from.code()
            },
            available: Amount::new(available, product.currency),
            ledger: Amount::new(ledger, product.currency),
        }
    }

    /// Issuer prefix, then `seq` in base 36 (upper case), zero-padded to six characters; the
    /// counter wraps after 36^(6 - prefix length) codes.
    pub(crate) fn auth_code(&self, seq: u64) -> Option<AuthCode> {
        const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut out = [b'0'; 6];
        let prefix = self.auth_prefix.as_bytes();
        let p = prefix.len().min(AUTH_PREFIX_MAX);
        out[..p].copy_from_slice(&prefix[..p]);
        let mut n = seq;
        for slot in out[p..].iter_mut().rev() {
            // `n % 36` is below 36.
            *slot = DIGITS[(n % 36) as usize];
            n /= 36;
        }
        AuthCode::from_field(&out).ok()
    }
}

fn default_account_type(product: &Product) -> u8 {
    match product.kind {
        ProductKind::Credit => AccountType::Credit.code(),
        ProductKind::Debit | ProductKind::Prepaid => AccountType::Default.code(),
    }
}

/// What tells a retry from another request under the same key.
fn tag_of(req: &IssuingRequest) -> RequestTag {
    RequestTag {
        kind: match req.kind {
            RequestKind::Authorization => 0,
            RequestKind::Financial => 1,
            RequestKind::Completion { .. } => 2,
            RequestKind::Reversal { .. } => 3,
            RequestKind::Advice { financial: false } => 4,
            RequestKind::Advice { financial: true } => 5,
        },
        txn: req.processing_code.txn.code(),
        amount: req.amount.map_or(0, Amount::minor),
    }
}
