//! What the switch writes to its journal: one typed record per event in a transaction's life.
//!
//! The journal itself ([`crate::journal`]) stores opaque bytes; this module owns their meaning and
//! encoding (a version byte, then postcard). Records are written before the acquirer is answered,
//! and recovery reads them back to rebuild the store-and-forward queues and the duplicate window.
//!
//! What is stored, and what never is:
//! - the PAN only encrypted ([`ProtectedPan`]) plus its masked form;
//! - never track data, PIN blocks, CVV or ICC data: no record has a field for them;
//! - amounts as integer minor units with their ISO 4217 numeric currency.
//!
//! Postcard is not self-describing, so any change to a record's fields changes the format and
//! bumps [`VERSION`]; older versions are refused with [`RecordError::Version`] rather than
//! misread. Version 2 added what clearing needs to [`RequestRecord`] (business date, card product,
//! card present). Version 1 is not read: no journal of it was ever deployed.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::Product;
use crate::security::ProtectedPan;

/// The text fields of a record: ids, codes, masked PANs, reasons. Inline up to 24 bytes, which
/// the fields of every request fit (ids, codes, masked PAN, auth code), so building a record
/// allocates nothing for them (a request record has about ten, and one is built for every
/// request). Longer text (a few reason names, field 54, a long issuer id) goes on the heap, as
/// a `String` did. Serde sees a string, so the bytes in the journal are those of `String` and
/// the format does not change.
pub type Text = compact_str::CompactString;

/// A field's bytes as record text, invalid UTF-8 replaced as `from_utf8_lossy` does. Fields
/// are ASCII, so valid UTF-8 is copied as it is: compact_str's `from_utf8_lossy` walks every
/// byte through a decoder, about 1% of the switch's samples on-us for field 54 alone.
pub fn text_lossy(bytes: &[u8]) -> Text {
    if let Some(ascii) = crate::domain::ascii_text(bytes) {
        return Text::from(ascii);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Text::from(s),
        Err(_) => Text::from_utf8_lossy(bytes),
    }
}

/// A date as chrono's serde writes it (`2026-11-28`), without the formatter. chrono goes through
/// `collect_str` and `Debug`, and postcard's `collect_str` formats twice (once to count the
/// bytes): about 750 instructions a request record, against a few dozen here (docs/performance.md,
/// "Instructions per answer"). The bytes are the same (test
/// `business_dates_encode_as_chrono_writes_them`); years outside 0000–9999, which chrono writes
/// with a sign, go through chrono itself. Read back by chrono's own `Deserialize`.
mod iso_date {
    use chrono::{Datelike, NaiveDate};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(date: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        let year = date.year();
        if !(0..=9999).contains(&year) {
            return date.serialize(s);
        }
        // Each value below 10 000, 13 or 32, so every `as u8` digit is below 10.
        let (y, m, d) = (year as u32, date.month(), date.day());
        let digit = |v: u32| char::from(b'0' + (v % 10) as u8);
        let mut text = arrayvec::ArrayString::<10>::new();
        for c in [
            digit(y / 1000),
            digit(y / 100),
            digit(y / 10),
            digit(y),
            '-',
            digit(m / 10),
            digit(m),
            '-',
            digit(d / 10),
            digit(d),
        ] {
            text.push(c);
        }
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        NaiveDate::deserialize(d)
    }
}

/// Encoding version, first byte of every record.
const VERSION: u8 = 2;

/// The duplicate key of a request: acquirer, terminal (41), STAN (11), transmission time (7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRecord {
    pub acquirer: Text,
    pub terminal: Text,
    pub stan: u32,
    pub transmission: Text,
}

/// Field 90's content, for reversals and completions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalRecord {
    pub mti: u16,
    pub stan: u32,
    pub transmission: Text,
    pub acquirer: Text,
}

/// A routed acquirer request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The switch's transaction number, unique for the journal's life.
    pub txn: u64,
    pub at_ms: i64,
    pub key: KeyRecord,
    pub mti: u16,
    pub pan: ProtectedPan,
    pub masked_pan: Text,
    pub processing_code: Text,
    pub amount_minor: Option<i64>,
    pub currency: u16,
    /// The issuer id it was routed to.
    pub issuer: Text,
    pub rrn: Option<Text>,
    pub merchant: Option<Text>,
    pub mcc: Option<u16>,
    pub original: Option<OriginalRecord>,
    /// Field 95's actual amount, on a partial reversal.
    pub replacement_minor: Option<i64>,
    /// The business day the switch assigned the request to (see [`crate::clearing::business_date`]).
    #[serde(with = "iso_date")]
    pub business_date: NaiveDate,
    /// The card product of the PAN's BIN range, when the range names one.
    pub product: Option<Product>,
    /// Whether the card was at the point of sale, from field 22 (see
    /// [`crate::clearing::card_present`]); `None` when field 22 is absent or says nothing.
    pub card_present: Option<bool>,
}

/// Who made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionSource {
    /// The issuer's host answered.
    Issuer,
    /// The switch's on-us engine decided.
    OnUs,
    /// The switch stood in for an unreachable issuer.
    StandIn,
    /// The switch's own checks declined (format, routing, availability).
    Switch,
}

/// The answer given to the acquirer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The request's `txn`; 0 for a request declined before it got one.
    pub txn: u64,
    pub at_ms: i64,
    pub key: Option<KeyRecord>,
    pub mti: u16,
    pub response_code: Text,
    pub source: DecisionSource,
    /// A decline's reason name, e.g. `insufficient_funds`.
    pub reason: Option<Text>,
    pub auth_code: Option<Text>,
    /// The approved amount when it differs from the request's (partial approval).
    pub approved_minor: Option<i64>,
    /// Field 54 as answered.
    pub additional_amounts: Option<Text>,
    pub issuer: Option<Text>,
}

impl DecisionRecord {
    /// A decision with what every one carries; reason, auth code, approved amount and field 54
    /// start empty (set them with struct update syntax).
    pub fn new(
        txn: u64,
        at_ms: i64,
        key: Option<KeyRecord>,
        mti: u16,
        response_code: impl Into<Text>,
        source: DecisionSource,
        issuer: Option<Text>,
    ) -> DecisionRecord {
        DecisionRecord {
            txn,
            at_ms,
            key,
            mti,
            response_code: response_code.into(),
            source,
            reason: None,
            auth_code: None,
            approved_minor: None,
            additional_amounts: None,
            issuer,
        }
    }
}

/// An advice waiting for store-and-forward delivery to an issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceRecord {
    pub saf_id: u64,
    pub at_ms: i64,
    pub issuer: Text,
    /// 0420 (reversal advice) or 0120 (stand-in authorization advice).
    pub mti: u16,
    /// Why it was queued: `timeout`, `link_lost`, `undeliverable`, `acquirer_advice`, `stand_in`,
    /// `late_approval`.
    pub reason: Text,
    pub txn: Option<u64>,
    pub pan: ProtectedPan,
    pub masked_pan: Text,
    pub processing_code: Text,
    pub amount_minor: i64,
    pub currency: u16,
    pub original: OriginalRecord,
    pub terminal: Text,
    pub merchant: Option<Text>,
    pub rrn: Option<Text>,
    pub replacement_minor: Option<i64>,
    pub auth_code: Option<Text>,
    pub response_code: Option<Text>,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Request(RequestRecord),
    /// The STAN a request reached its issuer under, when it was not the acquirer's own. Written
    /// by earlier versions of the switch (which chose another STAN when the acquirer's was in
    /// use on the link) and still read at recovery, so that a completion or reversal of such a
    /// request names it as the issuer knows it; requests now always go out under the
    /// acquirer's STAN and no new ones are written.
    Forwarded {
        txn: u64,
        at_ms: i64,
        link_stan: u32,
    },
    /// The issuer did not answer in time.
    Timeout {
        txn: u64,
        at_ms: i64,
    },
    /// An issuer answer that arrived after its request had timed out.
    LateReply {
        issuer: Text,
        at_ms: i64,
        response_code: Option<Text>,
        masked_pan: Option<Text>,
    },
    Decision(DecisionRecord),
    /// The acquirer connection was gone when its answer was ready.
    Undeliverable {
        txn: u64,
        at_ms: i64,
    },
    SafQueued(AdviceRecord),
    SafDelivered {
        saf_id: u64,
        at_ms: i64,
        response_code: Option<Text>,
    },
    SafParked {
        saf_id: u64,
        at_ms: i64,
        attempts: u32,
    },
    /// An on-us or stand-in ledger change, encoded by the issuing engine.
    Ledger {
        issuer: Text,
        at_ms: i64,
        /// Written as one byte string, not element by element: the bytes are the same in
        /// postcard (a length, then each byte), and a `Vec<u8>`'s derived form costs a call per
        /// byte, about 800 instructions per on-us answer in a callgrind count.
        #[serde(serialize_with = "byte_string")]
        event: Vec<u8>,
    },
}

/// `bytes` as one byte string (see `Record::Ledger`). Reading back needs nothing of its own:
/// postcard reads a byte string and a sequence of bytes from the same encoding.
fn byte_string<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytes)
}

/// Why a record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("internal: journal record version {0} is not supported")]
    Version(u8),
    #[error("internal: journal record does not decode: {0}")]
    Decode(String),
    #[error("internal: journal record does not encode: {0}")]
    Encode(String),
}

/// The largest scratch buffer [`Record::with_encoded`] keeps between records.
const SCRATCH_KEEP_BYTES: usize = 4096;

impl Record {
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        // One allocation sized for a typical record (a request record is about 150 bytes), so
        // the encoder neither reallocates nor copies a second buffer. (The request path uses
        // `with_encoded`, which needs no allocation at all.)
        self.encode_onto(Vec::with_capacity(256))
    }

    /// Appends the record's bytes (version, then the postcard body) to `out`, which is empty.
    fn encode_onto(&self, mut out: Vec<u8>) -> Result<Vec<u8>, RecordError> {
        out.push(VERSION);
        crate::postcard_vec::postcard_onto(self, out)
            .map_err(|e| RecordError::Encode(e.to_string()))
    }

    /// Encodes the record into this thread's scratch buffer and hands the bytes to `f` (a
    /// journal append, which copies them), so a request or decision record needs no allocation
    /// of its own (a ledger record still allocates its event's encoding, see
    /// `onus::with_ledger_record`). The bytes are the same as [`Record::encode`]'s.
    pub fn with_encoded<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, RecordError> {
        // A `Cell` holding the buffer while it is not in use: taken out for the encoding and put
        // back after, so a nested call (none today) would find it empty and allocate its own,
        // never panic on a borrow.
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut out = SCRATCH.take();
        out.clear();
        let out = self.encode_onto(out)?;
        let answer = f(&out);
        // A rare large record (a statement's) does not keep its buffer for the thread's life.
        if out.capacity() <= SCRATCH_KEEP_BYTES {
            SCRATCH.set(out);
        }
        Ok(answer)
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        match bytes.split_first() {
            Some((&VERSION, body)) => {
                postcard::from_bytes(body).map_err(|e| RecordError::Decode(e.to_string()))
            }
            Some((&v, _)) => Err(RecordError::Version(v)),
            None => Err(RecordError::Decode("empty record".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn field_text_copies_valid_bytes_and_replaces_invalid_ones() {
        assert_eq!(text_lossy(b"C000000001000"), "C000000001000");
        assert_eq!(text_lossy(b""), "");
        assert_eq!(text_lossy(b"AB\xffC"), "AB\u{fffd}C");
        assert_eq!(text_lossy(b"AB\xffC"), Text::from_utf8_lossy(b"AB\xffC"));
    }

    /// A ledger record's event is written as one byte string, and its bytes are what the
    /// derived form wrote (a sequence of `u8`, which old journals hold): same encoding, and it
    /// reads back. Lengths on both sides of postcard's one-byte length prefix.
    #[test]
    fn a_ledger_record_encodes_its_event_as_the_derived_form_did() {
        for len in [0usize, 1, 127, 128, 300] {
            let event: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let record = Record::Ledger {
                issuer: Text::from("metro-pay"),
                at_ms: -12_345,
                event: event.clone(),
            };
            let bytes = record.encode().expect("encodes");
            // The old form: the same fields, the event as a plain `Vec<u8>`, after the version
            // byte and the variant's index.
            let derived =
                postcard::to_allocvec(&("metro-pay", -12_345i64, &event)).expect("encodes");
            assert_eq!(bytes.len(), 2 + derived.len(), "len {len}");
            assert_eq!(&bytes[2..], &derived[..], "len {len}");
            assert_eq!(Record::decode(&bytes), Ok(record), "len {len}");
        }
    }

    /// The hand-written date encoding gives chrono's bytes, for days sampled from year 0 to
    /// 10,000 (a stride of 997 days, and each month's first, 28th and last day in six years
    /// from 0 to 9999) and for years outside 0–9999, which go through chrono; and each reads
    /// back as the same date.
    #[test]
    fn business_dates_encode_as_chrono_writes_them() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Ours(#[serde(with = "iso_date")] NaiveDate);
        let mut days = vec![
            NaiveDate::MIN,
            NaiveDate::MAX,
            NaiveDate::from_ymd_opt(-1, 12, 31).expect("date"),
            NaiveDate::from_ymd_opt(0, 1, 1).expect("date"),
            NaiveDate::from_ymd_opt(9999, 12, 31).expect("date"),
            NaiveDate::from_ymd_opt(10_000, 1, 1).expect("date"),
            NaiveDate::from_ymd_opt(2024, 2, 29).expect("date"),
        ];
        let mut d = NaiveDate::from_ymd_opt(0, 1, 1).expect("date");
        while let Some(next) = d.checked_add_days(chrono::Days::new(997)) {
            days.push(d);
            if next.year() > 10_000 {
                break;
            }
            d = next;
        }
        for year in [0, 7, 99, 1970, 2026, 9999] {
            for month in 1..=12 {
                let first = NaiveDate::from_ymd_opt(year, month, 1).expect("date");
                days.push(first);
                days.push(first.with_day(28).expect("date"));
                if let Some(last) = (29..=31).rev().find_map(|d| first.with_day(d)) {
                    days.push(last);
                }
            }
        }
        for day in days {
            let theirs = postcard::to_allocvec(&day).expect("chrono encodes");
            let ours = postcard::to_allocvec(&Ours(day)).expect("ours encodes");
            assert_eq!(ours, theirs, "{day}");
            assert_eq!(
                postcard::from_bytes::<Ours>(&ours).expect("decodes"),
                Ours(day)
            );
        }
    }

    /// North Bank's 51 to STAN 1, with `reason` and `auth_code`.
    fn decision(reason: &str, auth_code: Option<&str>) -> Record {
        Record::Decision(DecisionRecord {
            reason: Some(reason.into()),
            auth_code: auth_code.map(Text::from),
            ..DecisionRecord::new(
                7,
                1_764_000_000_000,
                Some(KeyRecord {
                    acquirer: "100001".into(),
                    terminal: "TERM0001".into(),
                    stan: 1,
                    transmission: "1125221800".into(),
                }),
                110,
                "51",
                DecisionSource::Issuer,
                Some("north-bank".into()),
            )
        })
    }

    /// The per-thread buffer gives the bytes `encode` gives, record after record, across a
    /// record too large for the buffer to be kept, and inside a nested call.
    #[test]
    fn with_encoded_gives_the_bytes_of_encode_whatever_came_before() {
        let long = "x".repeat(5000);
        let records = [
            decision("51", None),
            decision(&long, Some("A1B2C3")),
            decision("00", Some("123456")),
            decision(&long[..300], None),
            decision("05", None),
        ];
        for rec in &records {
            let expected = rec.encode().expect("encodes");
            let got = rec.with_encoded(<[u8]>::to_vec).expect("encodes");
            assert_eq!(got, expected);
        }
        let (outer, inner) = records[1]
            .with_encoded(|outer| {
                let inner = records[2].with_encoded(<[u8]>::to_vec).expect("encodes");
                (outer.to_vec(), inner)
            })
            .expect("encodes");
        assert_eq!(outer, records[1].encode().expect("encodes"));
        assert_eq!(inner, records[2].encode().expect("encodes"));
    }

    #[test]
    fn records_round_trip() {
        let r = decision("insufficient_funds", None);
        let bytes = r.encode().expect("encode");
        assert_eq!(bytes[0], VERSION);
        assert_eq!(Record::decode(&bytes).expect("decode"), r);
        assert_eq!(Record::decode(&[9, 1, 2]), Err(RecordError::Version(9)));
        assert!(Record::decode(&[]).is_err());
        assert!(Record::decode(&[VERSION, 0xff, 0xff]).is_err());
    }

    #[test]
    fn requests_carry_what_clearing_needs() {
        let r = Record::Request(RequestRecord {
            txn: 9,
            at_ms: 1_764_000_000_000,
            key: KeyRecord {
                acquirer: "100001".into(),
                terminal: "TERM0001".into(),
                stan: 2,
                transmission: "1125221800".into(),
            },
            mti: 200,
            pan: ProtectedPan::from_bytes(&[1, 2, 3]).expect("short"),
            masked_pan: "411111******0013".into(),
            processing_code: "000000".into(),
            amount_minor: Some(1234),
            currency: 156,
            issuer: "north-bank".into(),
            rrn: None,
            merchant: Some("MERCHANT0000001".into()),
            mcc: Some(5411),
            original: None,
            replacement_minor: None,
            business_date: NaiveDate::from_ymd_opt(2026, 11, 26).expect("date"),
            product: Some(Product::Debit),
            card_present: Some(true),
        });
        let bytes = r.encode().expect("encode");
        assert_eq!(Record::decode(&bytes).expect("decode"), r);
        // A version 1 record is refused, not misread.
        let mut old = bytes.clone();
        old[0] = 1;
        assert_eq!(Record::decode(&old), Err(RecordError::Version(1)));
    }

    #[test]
    fn text_fields_encode_as_strings_did_so_old_journals_still_read() {
        // The decision record of `records_round_trip` as the `String` fields of earlier builds
        // wrote it (postcard: fields in order, an enum as its variant index), byte for byte.
        #[derive(Serialize)]
        struct OldKey(String, String, u32, String);
        #[derive(Serialize)]
        struct OldDecision(
            u64,
            i64,
            Option<OldKey>,
            u16,
            String,
            u32,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let long_reason = "a reason longer than twenty-four bytes, kept on the heap";
        let old = OldDecision(
            7,
            1_764_000_000_000,
            Some(OldKey(
                "100001".into(),
                "TERM0001".into(),
                1,
                "1125221800".into(),
            )),
            110,
            "51".into(),
            0,
            Some(long_reason.into()),
            Some("123456".into()),
            None,
            None,
            Some("north-bank".into()),
        );
        let mut old_bytes = vec![VERSION];
        // `Record::Decision` is variant 4.
        old_bytes.push(4);
        old_bytes.extend(postcard::to_allocvec(&old).expect("encode"));
        let new = decision(long_reason, Some("123456"));
        assert_eq!(new.encode().expect("encode"), old_bytes);
        assert_eq!(Record::decode(&old_bytes).expect("decode"), new);
    }
}
