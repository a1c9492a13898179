//! [`LedgerEvent`]: the one record of a change to an issuer's ledger, journaled by the caller
//! before the answer and replayed by [`super::Engine::apply`] after a restart.
//!
//! Owns the event's shape and serialisation. It leaves *deciding* what an event says to
//! [`super::rules`] and *applying* it to [`super::ledger`], the only code that mutates an
//! account: the engine's own `process` applies through the same function, so a replay reaches
//! exactly the balances the original run reached.
//!
//! Why events carry account and card *numbers* rather than PANs: the journal must not hold a
//! PAN in clear, and the numbers are small. They are positions in the issuer file, so events are
//! valid only against the file they were made with; [`super::Engine::fingerprint`] identifies
//! it, and the caller stores it beside the journal. Why explicit amounts and deltas: `apply` must
//! not re-run rules (rules read `now`, limits and PIN outcomes that a replay does not have), so
//! every number it needs is in the event, and it only checks that the numbers are consistent.
//!
//! The encoding is plain serde with no self-describing tricks, so it works with postcard (the
//! journal's encoding) as well as with text formats.

use serde::{Deserialize, Serialize};

use super::config::CardStatus;
use super::request::IdemKey;
use crate::domain::Decline;

/// One change to one account, in the order the engine applied it.
///
/// Opaque on purpose: store it ([`LedgerEvent::encode`] or any serde format), replay it, read its
/// sequence number and time. `seq` grows by one per event over the whole engine (gaps appear
/// when a journal write fails); within one account it grows in the order changes were applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEvent {
    pub(crate) seq: u64,
    /// Time of the change, Unix milliseconds UTC (the injected `now`).
    pub(crate) at: i64,
    /// Account number: position of the account in the issuer file.
    pub(crate) account: u32,
    pub(crate) change: Change,
}

/// What [`LedgerEvent::encode`] allocates at first; a larger event grows it.
const EVENT_BYTES_TYPICAL: usize = 128;

impl LedgerEvent {
    /// The engine-wide sequence number; authorization codes derive from it.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the change happened, Unix milliseconds UTC.
    pub fn at_ms(&self) -> i64 {
        self.at
    }

    /// The account number (position in the issuer file) the event changes.
    pub fn account_no(&self) -> u32 {
        self.account
    }

    /// The compact binary form (postcard) for the journal's `Ledger` record.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        // Sized once for a typical event (about 60–100 bytes): `to_allocvec` starts empty and
        // grows by doubling, four or five reallocations per event on the decision path.
        crate::postcard_vec::postcard_onto(self, Vec::with_capacity(EVENT_BYTES_TYPICAL))
    }

    /// Reads [`LedgerEvent::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<LedgerEvent, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Change {
    /// A request was decided (approved or declined: both are remembered for retries).
    Request(RequestChange),
    /// Holds released by the periodic sweep (plus pruning of old records, which `apply`
    /// derives from the event's time).
    Sweep { expired: KeyList },
    /// The card's wrong-PIN count was reset (unblocks a card blocked with 75).
    PinReset { card: u16 },
    /// The card's status changed (maintenance: lost, stolen, restricted, closed, active).
    Status { card: u16, status: CardStatus },
    /// A statement cycle closed (see [`super::statement`]). After the variants before it on
    /// purpose: the journal's postcard encoding numbers variants by position, and older journals
    /// must still decode.
    Statement(StatementClose),
    /// The engine's records reached `[ledger] records_max`'s high-water mark, so the records made
    /// before `before` that stand for no money any more (declines, inquiries, reversals' own
    /// records, resolved holds and postings) were forgotten ahead of the idempotency window. A
    /// repeat of one of them is decided afresh. Open holds, postings that may still be reversed
    /// (completions' records among them) and tombstones are kept. Last in the enum, for the
    /// reason `Statement` gives.
    Forget { before: i64 },
}

/// The close of one statement cycle of one account: the interest and fees it posts, and the
/// statement's figures, which the next cycle reads back from the journal (was the minimum paid
/// by the due date? the whole balance?).
///
/// The charges post to the ledger past any limit (they are owed whatever the open-to-buy) and
/// outside the cash balance (they are not cash advances), so a replay reaches the same balances.
/// An account closes each cycle at most once: the ledger refuses a close whose cycle does not
/// end after the account's last close, which makes running statements twice harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementClose {
    /// The cycle's last day, days since 0001-01-01 (`NaiveDate::num_days_from_ce`).
    pub(crate) cycle_end: i32,
    /// Minor units, each at least 0.
    pub(crate) purchase_interest: i64,
    pub(crate) cash_interest: i64,
    pub(crate) late_fee: i64,
    /// The statement's closing balance, cardholder side like the ledger's `posted` (a credit
    /// account's balance owed is negative).
    pub(crate) closing: i64,
    /// Credit: the minimum payment due; 0 otherwise.
    pub(crate) minimum_due: i64,
    /// Credit: the payment due date, days since 0001-01-01; 0 otherwise.
    pub(crate) due_date: i32,
}

impl StatementClose {
    /// Interest and fees together, minor units; `None` on overflow or a negative part.
    pub(crate) fn charges(&self) -> Option<i64> {
        let parts = [self.purchase_interest, self.cash_interest, self.late_fee];
        if parts.iter().any(|&p| p < 0) {
            return None;
        }
        parts.iter().try_fold(0i64, |acc, &p| acc.checked_add(p))
    }
}

/// A decided request and everything it changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestChange {
    pub key: IdemKey,
    /// Card slot within the account (position among the account's cards in the file).
    pub card: u16,
    pub tag: RequestTag,
    pub answer: Answer,
    /// Holds that expired before the request was decided, released first.
    pub expired: KeyList,
    pub pin: PinEffect,
    pub effect: Effect,
    /// Added to the card's daily counters and velocity window.
    pub counted: Option<Counted>,
}

/// What a request was, to tell a retry (same tag) from a different request reusing a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestTag {
    /// 0 authorization, 1 financial, 2 completion, 3 reversal, 4 advice (hold), 5 advice (post).
    pub kind: u8,
    /// Processing code transaction type (first two digits).
    pub txn: u8,
    /// Field 4 in minor units, 0 when absent.
    pub amount: i64,
}

/// The answer given, replayed to retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// `amount`: approved (held, posted, captured, released or reversed) minor units.
    Approved {
        amount: i64,
        partial: bool,
    },
    Declined(#[serde(with = "decline_name")] Decline),
}

/// What the request did to the card's PIN try count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PinEffect {
    Unchanged,
    /// A verified PIN: the count goes back to 0.
    Reset,
    /// A wrong PIN: the count goes up by one.
    Failed,
}

/// The money movement. All amounts are minor units of the account's currency; `delta` is signed
/// from the cardholder's side (negative debits the account), `cash_delta` moves the credit
/// account's outstanding cash advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Effect {
    None,
    /// Place a hold of `amount` until `expires_at` (Unix ms).
    Hold {
        amount: i64,
        cash: bool,
        expires_at: i64,
    },
    /// Post at once.
    Post {
        delta: i64,
        cash_delta: i64,
    },
    /// Post `amount` against the hold of `original` and release the whole hold.
    Capture {
        original: IdemKey,
        amount: i64,
        cash_delta: i64,
    },
    /// Reduce the hold of `original` to `remaining` (0 voids it).
    Void {
        original: IdemKey,
        remaining: i64,
    },
    /// Reduce the posting of `original` to `remaining` (absolute), moving cash by `cash_delta`.
    Unpost {
        original: IdemKey,
        remaining: i64,
        cash_delta: i64,
    },
    /// A reversal arrived before its original: remember the original's key so that the
    /// original, if it ever arrives, is declined rather than holding money nobody will release.
    Tombstone {
        original: IdemKey,
    },
}

/// A list of idempotency keys that keeps the first one inline: nearly every event releases no
/// hold or one, and the decision path should not allocate. Serialised as a plain sequence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyList {
    first: Option<IdemKey>,
    rest: Vec<IdemKey>,
}

impl KeyList {
    pub fn push(&mut self, key: IdemKey) {
        if self.first.is_none() {
            self.first = Some(key);
        } else {
            self.rest.push(key);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &IdemKey> + Clone {
        self.first.iter().chain(self.rest.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn contains(&self, key: &IdemKey) -> bool {
        self.iter().any(|k| k == key)
    }
}

impl Serialize for KeyList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<KeyList, D::Error> {
        let keys = Vec::<IdemKey>::deserialize(d)?;
        let mut list = KeyList::default();
        for k in keys {
            list.push(k);
        }
        Ok(list)
    }
}

/// Daily channel of a debit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Channel {
    /// Processing code 01.
    Cash,
    /// Processing codes 00 and 09.
    Purchase,
}

impl Channel {
    pub(crate) const fn index(self) -> usize {
        match self {
            Channel::Cash => 0,
            Channel::Purchase => 1,
        }
    }
}

/// What a debit added to its card's counters: `amount` on `channel` for business day `day`
/// (days since 0001-01-01), and one transaction in the velocity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counted {
    pub channel: Channel,
    pub day: i32,
    pub amount: i64,
}

/// Every decline, for reading its stored name back. Declines are stored by
/// [`Decline::name`], which is stable, rather than by position, which is not.
const DECLINES: &[Decline] = &Decline::ALL;

mod decline_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::DECLINES;
    use crate::domain::Decline;

    pub fn serialize<S: Serializer>(d: &Decline, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decline, D::Error> {
        let name = String::deserialize(d)?;
        DECLINES
            .iter()
            .copied()
            .find(|x| x.name() == name)
            .ok_or_else(|| serde::de::Error::custom("unknown decline name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declines_round_trip_by_name() {
        for &d in DECLINES {
            let a = Answer::Declined(d);
            let bytes = postcard::to_allocvec(&a).unwrap();
            assert_eq!(postcard::from_bytes::<Answer>(&bytes).unwrap(), a);
        }
    }
}
