//! Clearing and settlement: from the journal of a business day to money owed between
//! institutions and merchants' payouts.
//!
//! # What it owns
//!
//! - The business date ([`day`]): which day a moment belongs to given the cutover time, and
//!   whether a card was present (field 22). The runtime stamps both on every journaled request.
//! - Clearing ([`clear`]): the day's financial transactions from the journal ([`facts`]) and the
//!   previous day's carry-over: approved 0200s (stand-in approvals included), holds (0100)
//!   completed by 0220s even days later, refunds, less reversals; holds still open are carried
//!   over, expired ones reported. Every approval is cleared or reversed exactly once across days,
//!   and each result is checked for it.
//! - Fees ([`fees`]): the schedule in `config/fees.toml` (interchange by product, MCC group and
//!   card presence; scheme fees; merchant discount rates) and the one rounding rule: per
//!   transaction, to the minor unit, half away from zero; totals are sums of rounded fees.
//! - Settlement ([`settle`]): net positions per institution and currency, which sum to zero
//!   because the scheme is an institution too; merchant statements.
//! - Reports ([`report`]) as text, CSV and JSON, and the files they go to ([`files`]).
//!
//! # What it leaves to others
//!
//! Reading the clock (callers pass `now`), the journal's format ([`crate::journal`]) and the
//! records' ([`crate::events`]), and when to run: `switch cutover` and `switch settle` on the
//! command line, or the running switch at the cutover time ([`schedule`], `[clearing]
//! auto_cutover`).
//!
//! # Why this way
//!
//! Everything that computes money is a synchronous function of its inputs, so each figure can
//! be checked by hand in a test. The journal is the only source: clearing needs no database,
//! and the carry-over file between days is small (open holds and recent approvals) and readable.

pub mod clear;
pub mod day;
pub mod facts;
pub mod fees;
pub mod files;
pub mod report;
pub mod schedule;
pub mod settle;

#[cfg(test)]
mod tests;

pub use clear::{
    Approval, CarryOver, Class, ClearedItem, Clearing, ClearingError, ClearingRules, ItemKind,
    OpenAuth, clear_day,
};
pub use day::{business_date, card_present, cutover_instant, last_closed_day};
pub use fees::{FeeError, FeeSchedule, round_minor};
pub use files::{FilesError, Job, cutover, settle};
pub use settle::{MerchantStatement, Position, Role, SCHEME_ID, Settlement};
