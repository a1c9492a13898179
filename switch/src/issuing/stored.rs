//! [`Stored`]: an idempotency record as an account's table keeps it, in 88 bytes instead of the
//! 112 of [`Record`], the form the ledger builds, reads and serialises.
//!
//! Owns only the packing; what a record means is [`super::ledger`]'s. Why a second form: an
//! engine keeps a record of every request it answers for the retry window (up to
//! `records_max`, 20 million by default), and `Record`'s nested enums each pad to 16 or 40
//! bytes: the request's tag (two bytes beside an amount), the answer (a flag beside an amount)
//! and the entry (a discriminant and a flag beside three words and a `Counted` of its own). Here
//! the nine words sit side by side, and every small part fits in the 16 bytes after them (13 of
//! them used). The snapshot and journal bytes do not change: a checkpoint turns each `Stored`
//! back into its `Record` ([`Stored::record`]), which gives back exactly what went in.

use super::event::{Answer, Channel, Counted, RequestTag};
use super::ledger::{Closure, Entry, Record};
use crate::domain::Decline;

/// A [`Record`] packed for an account's table. The words every caller reads are fields; the
/// rest comes back through [`Stored::entry`], [`Stored::tag`] and [`Stored::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub at: i64,
    pub seq: u64,
    /// Available and ledger balances right after the answer (field 54 of a retry).
    pub available: i64,
    pub ledger: i64,
    tag_amount: i64,
    /// The approved amount; 0 when declined.
    answer_amount: i64,
    /// A hold's open amount, or a posting's delta; 0 otherwise.
    first: i64,
    /// A hold's expiry, or a posting's cash delta; 0 otherwise.
    second: i64,
    /// The counted part of a hold or posting (when `counted` is set); 0 otherwise.
    counted_amount: i64,
    counted_day: i32,
    pub card: u16,
    tag_kind: u8,
    tag_txn: u8,
    declined: Option<Decline>,
    partial: bool,
    kind: Kind,
    counted: Option<Channel>,
}

/// Which [`Entry`] a record holds, with the entry's flag or closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    None,
    Hold { cash: bool },
    Posted,
    Closed(Closure),
    Tombstone,
}

impl Stored {
    pub fn new(r: &Record) -> Stored {
        let (answer_amount, partial, declined) = match r.answer {
            Answer::Approved { amount, partial } => (amount, partial, None),
            Answer::Declined(d) => (0, false, Some(d)),
        };
        let mut s = Stored {
            at: r.at,
            seq: r.seq,
            available: r.available,
            ledger: r.ledger,
            tag_amount: r.tag.amount,
            answer_amount,
            first: 0,
            second: 0,
            counted_amount: 0,
            counted_day: 0,
            card: r.card,
            tag_kind: r.tag.kind,
            tag_txn: r.tag.txn,
            declined,
            partial,
            kind: Kind::None,
            counted: None,
        };
        s.set_entry(r.entry);
        s
    }

    /// The record as it was given to [`Stored::new`] (or changed by [`Stored::set_entry`]).
    pub fn record(&self) -> Record {
        Record {
            at: self.at,
            seq: self.seq,
            card: self.card,
            tag: self.tag(),
            answer: self.answer(),
            available: self.available,
            ledger: self.ledger,
            entry: self.entry(),
        }
    }

    pub fn tag(&self) -> RequestTag {
        RequestTag {
            kind: self.tag_kind,
            txn: self.tag_txn,
            amount: self.tag_amount,
        }
    }

    pub fn answer(&self) -> Answer {
        match self.declined {
            Some(d) => Answer::Declined(d),
            None => Answer::Approved {
                amount: self.answer_amount,
                partial: self.partial,
            },
        }
    }

    pub fn entry(&self) -> Entry {
        let counted = self.counted.map(|channel| Counted {
            channel,
            day: self.counted_day,
            amount: self.counted_amount,
        });
        match self.kind {
            Kind::None => Entry::None,
            Kind::Hold { cash } => Entry::Hold {
                open: self.first,
                cash,
                expires_at: self.second,
                counted,
            },
            Kind::Posted => Entry::Posted {
                delta: self.first,
                cash_delta: self.second,
                counted,
            },
            Kind::Closed(c) => Entry::Closed(c),
            Kind::Tombstone => Entry::Tombstone,
        }
    }

    /// Replaces the entry. Fields the new entry does not use go back to 0, so two records with
    /// equal parts are equal.
    pub fn set_entry(&mut self, entry: Entry) {
        let (kind, first, second, counted) = match entry {
            Entry::None => (Kind::None, 0, 0, None),
            Entry::Hold {
                open,
                cash,
                expires_at,
                counted,
            } => (Kind::Hold { cash }, open, expires_at, counted),
            Entry::Posted {
                delta,
                cash_delta,
                counted,
            } => (Kind::Posted, delta, cash_delta, counted),
            Entry::Closed(c) => (Kind::Closed(c), 0, 0, None),
            Entry::Tombstone => (Kind::Tombstone, 0, 0, None),
        };
        self.kind = kind;
        self.first = first;
        self.second = second;
        self.counted = counted.map(|c| c.channel);
        self.counted_day = counted.map_or(0, |c| c.day);
        self.counted_amount = counted.map_or(0, |c| c.amount);
    }

    /// Whether the entry is an open hold.
    pub fn is_hold(&self) -> bool {
        matches!(self.kind, Kind::Hold { .. })
    }

    /// The expiry of an open hold; `None` for any other entry.
    pub fn hold_expiry(&self) -> Option<i64> {
        self.is_hold().then_some(self.second)
    }

    pub fn is_tombstone(&self) -> bool {
        self.kind == Kind::Tombstone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_stored_record_is_88_bytes() {
        assert_eq!(size_of::<Stored>(), 88);
        assert!(size_of::<Stored>() < size_of::<Record>());
    }

    /// Zero is what the packing writes into the fields a record does not use, so a zero in a
    /// field the record does use must still come back as itself.
    #[test]
    fn zeros_stay_apart_from_absent_parts() {
        let base = Record {
            at: 0,
            seq: 0,
            card: 0,
            tag: RequestTag {
                kind: 0,
                txn: 0,
                amount: 0,
            },
            answer: Answer::Approved {
                amount: 0,
                partial: false,
            },
            available: 0,
            ledger: 0,
            entry: Entry::None,
        };
        let zero_count = Some(Counted {
            channel: Channel::Cash,
            day: 0,
            amount: 0,
        });
        let entries = [
            Entry::None,
            Entry::Hold {
                open: 0,
                cash: false,
                expires_at: 0,
                counted: None,
            },
            Entry::Hold {
                open: 0,
                cash: false,
                expires_at: 0,
                counted: zero_count,
            },
            Entry::Posted {
                delta: 0,
                cash_delta: 0,
                counted: None,
            },
            Entry::Posted {
                delta: 0,
                cash_delta: 0,
                counted: zero_count,
            },
        ];
        let mut cases = vec![Record {
            answer: Answer::Declined(Decline::ALL[0]),
            ..base.clone()
        }];
        cases.extend(entries.map(|entry| Record {
            entry,
            ..base.clone()
        }));
        let stored: Vec<Stored> = cases.iter().map(Stored::new).collect();
        for (r, s) in cases.iter().zip(&stored) {
            assert_eq!(&s.record(), r);
        }
        for (i, a) in stored.iter().enumerate() {
            for b in &stored[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    /// Zero half the time: the value the packing uses for what is absent.
    fn word() -> impl Strategy<Value = i64> {
        prop_oneof![Just(0i64), any::<i64>()]
    }

    fn counted() -> impl Strategy<Value = Option<Counted>> {
        proptest::option::of(
            (any::<bool>(), prop_oneof![Just(0i32), any::<i32>()], word()).prop_map(
                |(cash, day, amount)| Counted {
                    channel: if cash {
                        Channel::Cash
                    } else {
                        Channel::Purchase
                    },
                    day,
                    amount,
                },
            ),
        )
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let closure = prop_oneof![
            Just(Closure::Captured),
            Just(Closure::Voided),
            Just(Closure::Expired),
            Just(Closure::Reversed),
        ];
        prop_oneof![
            Just(Entry::None),
            (word(), any::<bool>(), word(), counted()).prop_map(
                |(open, cash, expires_at, counted)| Entry::Hold {
                    open,
                    cash,
                    expires_at,
                    counted,
                }
            ),
            (word(), word(), counted()).prop_map(|(delta, cash_delta, counted)| {
                Entry::Posted {
                    delta,
                    cash_delta,
                    counted,
                }
            }),
            closure.prop_map(Entry::Closed),
            Just(Entry::Tombstone),
        ]
    }

    fn answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            (word(), any::<bool>())
                .prop_map(|(amount, partial)| Answer::Approved { amount, partial }),
            (0..Decline::ALL.len()).prop_map(|i| Answer::Declined(Decline::ALL[i])),
        ]
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            (word(), any::<u64>(), any::<u16>()),
            (any::<u8>(), any::<u8>(), word()),
            answer(),
            (word(), word()),
            entry(),
        )
            .prop_map(
                |((at, seq, card), (kind, txn, amount), answer, (available, ledger), entry)| {
                    Record {
                        at,
                        seq,
                        card,
                        tag: RequestTag { kind, txn, amount },
                        answer,
                        available,
                        ledger,
                        entry,
                    }
                },
            )
    }

    proptest! {
        /// A record comes back exactly as it went in, and its parts read as the record's do.
        #[test]
        fn gives_back_the_record(r in record()) {
            let s = Stored::new(&r);
            prop_assert_eq!(s.record(), r.clone());
            prop_assert_eq!(s.tag(), r.tag);
            prop_assert_eq!(s.answer(), r.answer);
            prop_assert_eq!(s.entry(), r.entry);
            prop_assert_eq!(s.is_hold(), matches!(r.entry, Entry::Hold { .. }));
            prop_assert_eq!(s.is_tombstone(), r.entry == Entry::Tombstone);
            let expiry = match r.entry {
                Entry::Hold { expires_at, .. } => Some(expires_at),
                _ => None,
            };
            prop_assert_eq!(s.hold_expiry(), expiry);
        }

        /// A changed entry reads back as the new one, and the record equals one stored with
        /// that entry from the start (no trace of the old entry is left).
        #[test]
        fn a_new_entry_replaces_the_old_one(r in record(), next in entry()) {
            let mut s = Stored::new(&r);
            s.set_entry(next);
            prop_assert_eq!(s.entry(), next);
            let fresh = Stored::new(&Record { entry: next, ..r });
            prop_assert_eq!(s, fresh);
        }
    }
}
