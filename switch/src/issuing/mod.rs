//! The issuing engine: card products, accounts and their ledgers, and the card rules that approve
//! or decline. No I/O: time comes in as an argument, and the journal is the caller's.
//!
//! The three products give a card its meaning: **prepaid** (pay first: loaded money, never
//! negative), **debit** (pay now: the cardholder's money plus an optional overdraft) and
//! **credit** (pay later: a credit line; the balance is what is owed). The same engine runs
//! inside the issuer simulator (remote issuers), inside the switch for on-us issuers, and,
//! reduced, as stand-in.
//!
//! # Pieces
//!
//! - [`IssuerFile`] ([`config`]): the issuer's TOML file (plus optional CSV files of cards and
//!   accounts), typed and validated with every problem reported at once.
//! - [`Engine`] ([`engine`]): built by [`Engine::from_file`]; decides with [`Engine::process`] /
//!   [`Engine::process_with`], replays with [`Engine::apply`] / [`Engine::replay`], checkpoints
//!   with [`Engine::snapshot`] / [`Engine::restore`], releases expired holds and keeps its
//!   idempotency records within `[ledger] records_max` with [`Engine::sweep`], which the hosts
//!   call every `[ledger] sweep_interval_s`.
//! - [`IssuingRequest`] ([`request`]): what is asked, with adapters from the ISO 8583 views.
//! - [`LedgerEvent`] ([`event`]): the one record of a change, serde (postcard via
//!   [`LedgerEvent::encode`]), to journal before answering.
//! - [`rules`]: the decisions and the decline precedence ([`rules::PRECEDENCE`], table below).
//! - [`ledger`]: the pending/posted ledger and the one function that changes it.
//! - [`pin`]: Visa PVV, clear-PIN verification, ISO 9564 format 0 PIN blocks.
//! - [`statement`]: billing-cycle statements (interest, minimum payment, late fee, grace
//!   period; monthly debit and prepaid statements), their closes in the ledger
//!   ([`Engine::close_statement`]) and their text, JSON, CSV and HTML renderings.
//! - `hash` (private): the keyed hasher of the engine's maps.
//!
//! # Performance
//!
//! A decision locks one account, looks the card up in one hash map and the idempotency key in
//! the account's own map, and allocates nothing per decision in the steady state (maps and queues
//! grow amortised). `benches/authorize.rs`
//! measures it over a million accounts and on one hot account.
//!
//! # The ledger (after TigerBeetle's pending and posted balances)
//!
//! | request                            | ledger                                                     |
//! |------------------------------------|------------------------------------------------------------|
//! | 0100 debit (00, 01, 09)            | hold the amount until `hold_expiry_h` (product)            |
//! | 0200 debit                         | post at once                                               |
//! | 0100/0200 refund 20, deposit 21    | post a credit at once (a credit payment repays cash first) |
//! | 0220 completion (field 90)         | post the completion amount, release the whole hold; may exceed the hold by `completion_tolerance_pct` |
//! | 0400/0420 reversal                 | void the hold (or undo the posting) in full, or down to field 95 (what remains) |
//! | 0120 / 0220 without 90 (advice)    | hold / post as told, past limits                           |
//! | balance inquiry 31                 | nothing; answers field 54                                  |
//! | hold past its expiry               | released by the next request on the account, or by the next [`Engine::sweep`] |
//!
//! Every hold resolves at most once (captured, voided in full, or expired). Every request carries
//! an idempotency key ([`IdemKey`]); a retry gets the first answer and changes nothing.
//!
//! # Which decline wins
//!
//! | # | check         | decline                                                  |
//! |---|---------------|----------------------------------------------------------|
//! | 1 | request       | 12 unsupported transaction, 13 bad amount                |
//! | 2 | card status   | 41 lost, 43 stolen, 62 restricted, 57 closed             |
//! | 3 | expiry        | 54 (not for refunds and deposits)                        |
//! | 4 | PIN           | 75 blocked, 55 wrong, 75 on the wrong PIN that blocks    |
//! | 5 | currency      | 57 account currency differs from field 49                |
//! | 6 | MCC           | 57 blocked merchant category                             |
//! | 7 | product       | 57 cash on a gift product                                |
//! | 8 | cash limit    | 61 credit cash advance over the cash limit               |
//! | 9 | load limit    | 61 prepaid load over the maximum balance                 |
//! |10 | daily amount  | 61 per channel (cash 01, purchase 00/09), business day   |
//! |11 | daily count   | 65 per channel, business day                             |
//! |12 | velocity      | 65 approvals per card in a rolling hour                  |
//! |13 | funds         | 51; 10 partial approval when product and terminal allow  |
//!
//! The code iterates [`rules::PRECEDENCE`], which is this list; [`rules`] has the details
//! (what applies to which transaction, completions, reversals and advices).
//!
//! # What it leaves to others
//!
//! Decoding, screening and routing (the switch), decrypting PIN blocks (a security module; the
//! engine takes a [`PinCheck`]), writing the journal (the caller, through the closure of
//! [`Engine::process_with`]), the clock and the business date (arguments).

pub mod config;
pub mod engine;
pub mod event;
mod hash;
pub mod ledger;
pub mod pin;
pub mod request;
pub mod rules;
mod split_map;
pub mod statement;
mod stored;

#[cfg(test)]
mod tests;

pub use chrono::{NaiveDate, NaiveDateTime};
pub use config::{
    AccountEntry, CardEntry, CardStatus, DailyLimitEntry, IssuerFile, ProductEntry, ProductKind,
};
pub use engine::{
    Applied, Approval, Balances, Card, Engine, LedgerView, Outcome, RestoreError, SNAPSHOT_SLICE,
    SWEEP_EVENTS_MAX, Snapshot, no_journal,
};
pub use event::LedgerEvent;
pub use ledger::LedgerError;
pub use pin::{ClearPin, verify_clear_pin, visa_pvv};
pub use request::{IdemKey, IssuingRequest, PinCheck, RequestKind};
pub use rules::{Check, PRECEDENCE};
pub use statement::{CycleClose, History, Planned, Statement, StatementError};
