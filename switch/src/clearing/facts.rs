//! From journal records to transactions: each request joined with what became of it (its last
//! decision, whether its answer was undeliverable, whether a reversal advice was queued for it).
//!
//! The journal interleaves the records of concurrent transactions; they share the switch's
//! transaction number (`txn`), so one pass over the records in journal order rebuilds each
//! transaction. Records that are not about a request (store-and-forward bookkeeping, ledger events)
//! are skipped, except that a queued reversal advice marks its transaction. Nothing here decides
//! what is financial; [`super::clear`] does.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use crate::domain::Mti;
use crate::events::{DecisionRecord, Record, RequestRecord};

/// One request and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub request: RequestRecord,
    /// The last decision journaled for it: a later one (an undeliverable approval answered 96
    /// to a repeat) replaces the first.
    pub decision: Option<DecisionRecord>,
    /// The acquirer could not be given the answer, so an approval was undone.
    pub undeliverable: bool,
    /// A reversal advice (0420) was queued under this transaction: for a reversal, the issuer
    /// will get it even if it was unreachable; for an approval, the switch itself undid it.
    pub reversal_queued: bool,
}

impl Txn {
    /// The request's MTI without the repeat digit (0201 → 0200).
    pub fn mti(&self) -> u16 {
        self.request.mti - self.request.mti % 2
    }

    /// The approved amount in minor units, if the acquirer was told "approved" and the switch did
    /// not undo it afterwards. A partial approval (10) counts at the approved amount.
    pub fn approved_minor(&self) -> Option<i64> {
        let d = self.decision.as_ref()?;
        if !is_approval(&d.response_code) || self.undeliverable || self.reversal_queued {
            return None;
        }
        d.approved_minor.or(self.request.amount_minor)
    }

    /// For a reversal: it takes effect, either because it was accepted or because the switch
    /// queued it for store-and-forward (an issuer must always honour a reversal it receives).
    pub fn reversal_effective(&self) -> bool {
        self.reversal_queued
            || self
                .decision
                .as_ref()
                .is_some_and(|d| is_approval(&d.response_code))
    }

    /// The decision's response code, or `none` when the switch stopped before deciding.
    pub fn response_code(&self) -> &str {
        self.decision
            .as_ref()
            .map_or("none", |d| d.response_code.as_str())
    }
}

fn is_approval(code: &str) -> bool {
    code == "00" || code == "10"
}

/// The journal's transactions grouped by business date, each day in journal order.
pub fn by_business_date(
    records: impl IntoIterator<Item = Record>,
) -> BTreeMap<NaiveDate, Vec<Txn>> {
    let mut days = Days::new(|_| true);
    for rec in records {
        days.push(rec);
    }
    days.finish()
}

/// [`by_business_date`] one record at a time, keeping only the transactions of the business days
/// `keep` accepts: a cutover reads the journal through it without holding what it does not close.
pub struct Days<F> {
    txns: Vec<Txn>,
    index: HashMap<u64, usize>,
    keep: F,
}

impl<F: Fn(NaiveDate) -> bool> Days<F> {
    pub fn new(keep: F) -> Self {
        Days {
            txns: Vec::new(),
            index: HashMap::new(),
            keep,
        }
    }

    /// Takes the next record in journal order. A decision, undeliverable mark or reversal advice
    /// finds its transaction by number, so one of a transaction not kept is dropped too.
    pub fn push(&mut self, rec: Record) {
        let (txns, index) = (&mut self.txns, &mut self.index);
        match rec {
            Record::Request(request) if (self.keep)(request.business_date) => {
                index.insert(request.txn, txns.len());
                txns.push(Txn {
                    request,
                    decision: None,
                    undeliverable: false,
                    reversal_queued: false,
                });
            }
            Record::Decision(d) => {
                if let Some(&i) = index.get(&d.txn) {
                    txns[i].decision = Some(d);
                }
            }
            Record::Undeliverable { txn, .. } => {
                if let Some(&i) = index.get(&txn) {
                    txns[i].undeliverable = true;
                }
            }
            Record::SafQueued(a) if a.mti == Mti::REVERSAL_ADVICE.value() => {
                if let Some(&i) = a.txn.and_then(|t| index.get(&t)) {
                    txns[i].reversal_queued = true;
                }
            }
            _ => {}
        }
    }

    /// The transactions kept, by business date, each day's in journal order.
    pub fn finish(self) -> BTreeMap<NaiveDate, Vec<Txn>> {
        let mut days: BTreeMap<NaiveDate, Vec<Txn>> = BTreeMap::new();
        for t in self.txns {
            days.entry(t.request.business_date).or_default().push(t);
        }
        days
    }
}
