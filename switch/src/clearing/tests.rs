//! Clearing, fees and settlement on journals built by hand, with the figures worked out in the
//! comments. Amounts are CNY minor units (fen) unless written as `12.34`.

use chrono::{NaiveDate, NaiveDateTime};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::clear::{ClosedState, ItemKind};
use super::facts::by_business_date;
use super::fees::Rate;
use super::settle::{Role, settle};
use super::*;
use crate::domain::Product;
use crate::events::{
    AdviceRecord, DecisionRecord, DecisionSource, KeyRecord, OriginalRecord, Record, RequestRecord,
};
use crate::security::ProtectedPan;

const SCHEDULE: &str = r#"
currency = "156"
refund_reverses_interchange = true

[[mcc_group]]
name = "grocery"
mccs = ["5411"]

[[interchange]]
percent = "1.00"
fixed = "0.10"
min = "0.20"
max = "5.00"

[[interchange]]
product = "debit"
card_present = true
percent = "0.50"
max = "2.00"

[[scheme_fee]]
acquirer_bps = "10"
acquirer_per_item = "0.01"
issuer_bps = "5"
issuer_per_item = "0.01"

[[mdr]]
percent = "2.00"

[[mdr]]
mcc_group = "grocery"
percent = "1.50"
"#;

fn schedule() -> FeeSchedule {
    FeeSchedule::from_toml_str(SCHEDULE, "test").expect("test schedule")
}

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, n).expect("date")
}

fn at(d: NaiveDate, h: u32, m: u32) -> NaiveDateTime {
    d.and_hms_opt(h, m, 0).expect("time")
}

fn ms(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

fn rules() -> ClearingRules {
    ClearingRules {
        cutover_minutes: 23 * 60,
        hold_expiry_h: 168,
        lookback_days: 30,
        carried_closed_max: 5_000_000,
    }
}

fn key(stan: u32) -> KeyRecord {
    KeyRecord {
        acquirer: "100001".into(),
        terminal: "TERM0001".into(),
        stan,
        transmission: format!("1125{stan:06}").into(),
    }
}

/// Builds a journal: each call appends a request and its decision, numbered by STAN.
#[derive(Default)]
struct Journal {
    records: Vec<Record>,
}

struct Req {
    mti: u16,
    pc: &'static str,
    amount: i64,
    stan: u32,
    when: NaiveDateTime,
    code: &'static str,
    product: Option<Product>,
    mcc: Option<u16>,
    card_present: Option<bool>,
    original: Option<(u16, u32)>,
    replacement: Option<i64>,
    issuer: &'static str,
}

impl Req {
    fn new(mti: u16, pc: &'static str, amount: i64, stan: u32, when: NaiveDateTime) -> Req {
        Req {
            mti,
            pc,
            amount,
            stan,
            when,
            code: "00",
            product: Some(Product::Credit),
            mcc: Some(5411),
            card_present: Some(true),
            original: None,
            replacement: None,
            issuer: "north-bank",
        }
    }
}

impl Journal {
    fn add(&mut self, r: Req) -> u64 {
        let txn = u64::from(r.stan);
        self.records.push(Record::Request(RequestRecord {
            txn,
            at_ms: ms(r.when),
            key: key(r.stan),
            mti: r.mti,
            pan: ProtectedPan::from_bytes(&[0; 4]).expect("short"),
            masked_pan: "411111******0013".into(),
            processing_code: r.pc.into(),
            amount_minor: Some(r.amount),
            currency: 156,
            issuer: r.issuer.into(),
            rrn: None,
            merchant: Some("MERCHANT0000001".into()),
            mcc: if r.mti == 220 || r.mti == 400 {
                None
            } else {
                r.mcc
            },
            original: r.original.map(|(mti, stan)| OriginalRecord {
                mti,
                stan,
                transmission: key(stan).transmission,
                acquirer: "100001".into(),
            }),
            replacement_minor: r.replacement,
            business_date: business_date(r.when, 23 * 60),
            product: r.product,
            card_present: if r.mti == 220 { None } else { r.card_present },
        }));
        self.records.push(Record::Decision(DecisionRecord::new(
            txn,
            ms(r.when),
            Some(key(r.stan)),
            r.mti,
            r.code,
            DecisionSource::Issuer,
            Some(r.issuer.into()),
        )));
        txn
    }

    fn sale(&mut self, stan: u32, amount: i64, when: NaiveDateTime) -> u64 {
        self.add(Req::new(200, "000000", amount, stan, when))
    }

    fn preauth(&mut self, stan: u32, amount: i64, when: NaiveDateTime) -> u64 {
        self.add(Req::new(100, "000000", amount, stan, when))
    }

    fn complete(&mut self, stan: u32, of: u32, amount: i64, when: NaiveDateTime) -> u64 {
        self.add(Req {
            original: Some((100, of)),
            ..Req::new(220, "000000", amount, stan, when)
        })
    }

    fn reverse(
        &mut self,
        stan: u32,
        of: (u16, u32),
        amount: i64,
        replacement: Option<i64>,
        when: NaiveDateTime,
    ) -> u64 {
        self.add(Req {
            original: Some(of),
            replacement,
            ..Req::new(400, "000000", amount, stan, when)
        })
    }

    fn clear(
        &self,
        d: NaiveDate,
        previous: Option<&CarryOver>,
    ) -> Result<(Clearing, CarryOver), ClearingError> {
        let days = by_business_date(self.records.clone());
        clear_day(
            d,
            days.get(&d).map_or(&[][..], Vec::as_slice),
            previous,
            &rules(),
        )
    }
}

fn position(s: &Settlement, role: Role, id: &str) -> i64 {
    s.positions
        .iter()
        .find(|p| p.role == role && p.institution == id)
        .map_or(0, |p| p.net_minor)
}

#[test]
fn business_date_rolls_at_the_cutover() {
    let c = 23 * 60;
    assert_eq!(business_date(at(day(25), 22, 59), c), day(25));
    assert_eq!(business_date(at(day(25), 23, 0), c), day(26));
    assert_eq!(business_date(at(day(25), 0, 0), c), day(25));
    // A midnight cutover is the calendar day.
    assert_eq!(business_date(at(day(25), 23, 59), 0), day(25));
    assert_eq!(cutover_instant(day(25), c), at(day(25), 23, 0));
    assert_eq!(cutover_instant(day(25), 0), at(day(26), 0, 0));
    assert_eq!(last_closed_day(at(day(25), 23, 5), c), day(25));
    assert_eq!(last_closed_day(at(day(26), 10, 0), c), day(25));
    // Every moment of day 25 lies between day 24's cutover and day 25's.
    for c in [0u16, 1, 60, 23 * 60, 24 * 60 - 1] {
        let start = cutover_instant(day(24), c);
        let end = cutover_instant(day(25), c);
        assert_eq!(business_date(start, c), day(25), "cutover {c}");
        assert_eq!(
            business_date(end - chrono::Duration::seconds(1), c),
            day(25),
            "cutover {c}"
        );
    }
}

#[test]
fn card_present_follows_the_pan_entry_mode() {
    for (mode, present) in [
        (21, Some(true)),
        (51, Some(true)),
        (71, Some(true)),
        (901, Some(true)),
        (911, Some(true)),
        (12, Some(false)),
        (101, Some(false)),
        (812, Some(false)),
        (1, None),
        (31, None),
    ] {
        assert_eq!(card_present(Some(mode)), present, "field 22 = {mode:03}");
    }
    assert_eq!(card_present(None), None);
}

#[test]
fn fees_round_half_away_from_zero_at_half_a_fen() {
    let one_percent = Rate {
        percent: Decimal::ONE,
        fixed_minor: Decimal::ZERO,
        min_minor: None,
        max_minor: None,
    };
    // 1% of 0.50 is 0.005: half a fen rounds up to 0.01; of -0.50 down to -0.01.
    assert_eq!(one_percent.fee(50).ok(), Some(1));
    assert_eq!(one_percent.fee(-50).ok(), Some(-1));
    // 1% of 2.50 is 0.025: 0.03 (banker's rounding would give 0.02), and -0.03.
    assert_eq!(one_percent.fee(250).ok(), Some(3));
    assert_eq!(one_percent.fee(-250).ok(), Some(-3));
    // 1% of 2.49 is 0.0249: 0.02.
    assert_eq!(one_percent.fee(249).ok(), Some(2));
    assert_eq!(one_percent.fee(0).ok(), Some(0));
    let half = Decimal::new(5, 1);
    assert_eq!(round_minor(half), Decimal::ONE);
    assert_eq!(round_minor(-half), -Decimal::ONE);
}

#[test]
fn fee_rounding_reaches_settlement_per_item() {
    let mut j = Journal::default();
    j.sale(1, 3000, at(day(25), 10, 0));
    j.sale(2, 3000, at(day(25), 11, 0));
    let (c, _) = j.clear(day(25), None).expect("clears");
    let (s, _) = settle(&c, &schedule()).expect("settles");
    // Issuer scheme fee per 30.00: 3000 x 5 bps = 1.5, + 1 = 2.5 fen -> 3 each, 6 in all (the fee
    // of the summed 60.00 would be 3 + 2 = 5: totals are sums of rounded items).
    let issuer = s
        .positions
        .iter()
        .find(|p| p.role == Role::Issuer)
        .expect("issuer");
    assert_eq!(issuer.scheme_fees_minor, -6);
    // Interchange per 30.00: 1% + 0.10 = 40 fen; both items 80.
    assert_eq!(issuer.interchange_minor, 80);
    // Acquirer scheme fee: 3000 x 10 bps = 3 + 1 = 4 each.
    // Acquirer: 6000 - 80 - 8 = 5912; issuer: -6000 + 80 - 6 = -5926; scheme: 8 + 6 = 14.
    assert_eq!(position(&s, Role::Acquirer, "100001"), 5912);
    assert_eq!(position(&s, Role::Issuer, "north-bank"), -5926);
    assert_eq!(position(&s, Role::Scheme, SCHEME_ID), 14);
}

#[test]
fn a_day_of_sales_declines_and_inquiries() {
    let mut j = Journal::default();
    let t = at(day(25), 9, 0);
    j.sale(1, 1000, t);
    j.add(Req {
        code: "51",
        ..Req::new(200, "000000", 2000, 2, t)
    });
    // A balance inquiry approves but moves no money.
    j.add(Req::new(100, "310000", 0, 3, t));
    // A partial approval clears the approved amount.
    j.sale(4, 5000, t);
    if let Some(Record::Decision(d)) = j.records.last_mut() {
        d.response_code = "10".into();
        d.approved_minor = Some(3000);
    }
    // An approval the acquirer never received is undone.
    j.sale(5, 700, t);
    j.records.push(Record::Undeliverable {
        txn: 5,
        at_ms: ms(t),
    });
    // After the cutover: tomorrow's.
    j.sale(6, 900, at(day(25), 23, 30));
    let (c, carry) = j.clear(day(25), None).expect("clears");
    let cleared: Vec<(u64, i64)> = c.items.iter().map(|i| (i.by_txn, i.after_minor)).collect();
    assert_eq!(cleared, vec![(1, 1000), (4, 3000)]);
    assert!(c.exceptions.is_empty());
    assert!(carry.open.is_empty());
    let (c26, _) = j.clear(day(26), Some(&carry)).expect("clears");
    assert_eq!(c26.items.len(), 1);
    assert_eq!(c26.items[0].by_txn, 6);
}

#[test]
fn a_preauthorization_completed_the_next_day() {
    let mut j = Journal::default();
    j.preauth(1, 10_000, at(day(25), 18, 0));
    j.complete(2, 1, 8_000, at(day(26), 9, 30));

    let (c25, carry25) = j.clear(day(25), None).expect("day 25");
    assert!(c25.items.is_empty(), "a hold is not cleared");
    assert_eq!(c25.authorized_not_captured.len(), 1);
    assert_eq!(carry25.open[0].remaining_minor, 10_000);

    let (c26, carry26) = j.clear(day(26), Some(&carry25)).expect("day 26");
    assert_eq!(c26.items.len(), 1);
    let item = &c26.items[0];
    assert_eq!(item.kind, ItemKind::Completion);
    assert_eq!((item.before_minor, item.after_minor), (0, 8_000));
    assert_eq!(item.authorization_txn, Some(1));
    // The completion carries neither MCC nor field 22: the hold's are used.
    assert_eq!(item.approval.mcc, Some(5411));
    assert_eq!(item.approval.card_present, Some(true));
    assert!(c26.authorized_not_captured.is_empty());
    let hold = carry26
        .closed
        .iter()
        .find(|c| c.approval.txn == 1)
        .expect("hold remembered");
    assert_eq!(hold.state, ClosedState::Captured { by_txn: 2 });

    // 80.00 credit, card present, grocery: catch-all interchange 1% + 0.10 = 90 fen; scheme fees
    // 8000 x 10 bps + 1 = 9 and 8000 x 5 bps + 1 = 5; MDR grocery 1.5% = 120.
    let (s, m) = settle(&c26, &schedule()).expect("settles");
    assert_eq!(position(&s, Role::Acquirer, "100001"), 8000 - 90 - 9);
    assert_eq!(position(&s, Role::Issuer, "north-bank"), -8000 + 90 - 5);
    assert_eq!(position(&s, Role::Scheme, SCHEME_ID), 14);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].mdr_minor, 120);
    assert_eq!(m[0].net_payout_minor, 8000 - 120);

    // A second completion of the same hold is cleared on its own, and flagged.
    j.complete(3, 1, 500, at(day(27), 9, 0));
    let (c27, _) = j.clear(day(27), Some(&carry26)).expect("day 27");
    assert_eq!(c27.items.len(), 1);
    assert_eq!(c27.exceptions.len(), 1);
    assert!(c27.exceptions[0].message.contains("already captured"));
}

#[test]
fn a_reversal_after_cutover() {
    let mut j = Journal::default();
    j.sale(1, 5000, at(day(25), 12, 0));
    // 23:10 on the 25th is business day 26, after the cutover that cleared the sale.
    j.reverse(2, (200, 1), 5000, None, at(day(25), 23, 10));

    let (c25, carry25) = j.clear(day(25), None).expect("day 25");
    assert_eq!(c25.items.len(), 1);
    let (s25, _) = settle(&c25, &schedule()).expect("settles");
    // 50.00: interchange 1% + 0.10 = 60; scheme 5 + 1 = 6 (acquirer) and 2.5 + 1 = 3.5 -> 4
    // (issuer). Acquirer 5000 - 60 - 6 = 4934; issuer -5000 + 60 - 4 = -4944; scheme 10.
    assert_eq!(position(&s25, Role::Acquirer, "100001"), 4934);
    assert_eq!(position(&s25, Role::Issuer, "north-bank"), -4944);
    assert_eq!(position(&s25, Role::Scheme, SCHEME_ID), 10);

    let (c26, carry26) = j.clear(day(26), Some(&carry25)).expect("day 26");
    assert_eq!(c26.items.len(), 1);
    let item = &c26.items[0];
    assert_eq!(item.kind, ItemKind::Reversal);
    assert_eq!((item.before_minor, item.after_minor), (5000, 0));
    assert_eq!(item.by_txn, 2);
    assert_eq!(c26.reversals[0].what, "after_cutover");
    // Everything comes back, fixed parts included.
    let (s26, m26) = settle(&c26, &schedule()).expect("settles");
    assert_eq!(position(&s26, Role::Acquirer, "100001"), -4934);
    assert_eq!(position(&s26, Role::Issuer, "north-bank"), 4944);
    assert_eq!(position(&s26, Role::Scheme, SCHEME_ID), -10);
    // The merchant: sales -50.00, MDR (grocery 1.5% = 75) given back: payout -49.25.
    assert_eq!(m26[0].sales_minor, -5000);
    assert_eq!(m26[0].mdr_minor, -75);
    assert_eq!(m26[0].net_payout_minor, -4925);

    // Reversed once; a repeat has nothing left to take back.
    let closed = carry26
        .closed
        .iter()
        .find(|c| c.approval.txn == 1)
        .expect("sale remembered");
    assert_eq!(closed.state, ClosedState::Cleared { net_minor: 0 });
    j.reverse(3, (200, 1), 5000, None, at(day(27), 8, 0));
    let (c27, _) = j.clear(day(27), Some(&carry26)).expect("day 27");
    assert!(c27.items.is_empty());
    assert!(c27.exceptions[0].message.contains("already reversed"));
}

#[test]
fn the_carry_over_keeps_at_most_carried_closed_max_approvals_newest_first() {
    let mut j = Journal::default();
    j.sale(1, 5000, at(day(25), 10, 0));
    j.sale(2, 3000, at(day(25), 11, 0));
    j.sale(3, 1000, at(day(26), 10, 0));
    // On the 27th, reversals of the 25th's two sales.
    j.reverse(4, (200, 1), 5000, None, at(day(27), 9, 0));
    j.reverse(5, (200, 2), 3000, None, at(day(27), 9, 5));
    let two = ClearingRules {
        carried_closed_max: 2,
        ..rules()
    };
    let days = by_business_date(j.records.clone());
    let carried = |c: &CarryOver| -> Vec<u64> {
        let mut t: Vec<u64> = c.closed.iter().map(|c| c.approval.txn).collect();
        t.sort_unstable();
        t
    };
    let (_, carry25) = clear_day(day(25), &days[&day(25)], None, &two).expect("day 25");
    assert_eq!(carried(&carry25), vec![1, 2]);
    // The 26th's own sale is carried, and of the 25th's only the newer fits.
    let (_, carry26) = clear_day(day(26), &days[&day(26)], Some(&carry25), &two).expect("day 26");
    assert_eq!(carried(&carry26), vec![2, 3]);
    // The newer sale's reversal is matched; the older's is for a person.
    let (c27, _) = clear_day(day(27), &days[&day(27)], Some(&carry26), &two).expect("day 27");
    assert_eq!(c27.items.len(), 1);
    assert_eq!(c27.items[0].by_txn, 5);
    assert_eq!(c27.exceptions.len(), 1);
    assert_eq!(c27.exceptions[0].txn, 4);
}

#[test]
fn a_partial_reversal_after_cutover_adjusts_fees_to_the_remaining_amount() {
    let mut j = Journal::default();
    j.sale(1, 5000, at(day(25), 12, 0));
    j.reverse(2, (200, 1), 5000, Some(3000), at(day(26), 9, 0));
    let (_, carry25) = j.clear(day(25), None).expect("day 25");
    let (c26, _) = j.clear(day(26), Some(&carry25)).expect("day 26");
    let (s26, _) = settle(&c26, &schedule()).expect("settles");
    // Interchange 60 -> 40 (1% of 30.00 + 0.10): -20. Scheme acquirer 6 -> 4: -2; issuer
    // 4 -> 3 (1.5 + 1 = 2.5 -> 3): -1. Acquirer -2000 + 20 + 2 = -1978; issuer 2000 - 20 + 1 =
    // 1981; scheme -3.
    assert_eq!(position(&s26, Role::Acquirer, "100001"), -1978);
    assert_eq!(position(&s26, Role::Issuer, "north-bank"), 1981);
    assert_eq!(position(&s26, Role::Scheme, SCHEME_ID), -3);
}

#[test]
fn same_day_reversals_reduce_or_remove_the_item() {
    let mut j = Journal::default();
    let t = at(day(25), 10, 0);
    j.sale(1, 5000, t);
    j.reverse(2, (200, 1), 5000, None, t);
    j.sale(3, 4000, t);
    j.reverse(4, (200, 3), 4000, Some(2500), t);
    j.preauth(5, 9000, t);
    j.reverse(6, (100, 5), 9000, Some(6000), t);
    // A declined reversal does nothing.
    j.preauth(7, 1000, t);
    j.add(Req {
        code: "96",
        original: Some((100, 7)),
        ..Req::new(400, "000000", 1000, 8, t)
    });
    // A reversal whose issuer was unreachable still counts: its advice was queued.
    j.preauth(9, 1200, t);
    j.add(Req {
        code: "91",
        original: Some((100, 9)),
        ..Req::new(400, "000000", 1200, 10, t)
    });
    j.records.push(Record::SafQueued(AdviceRecord {
        saf_id: 1,
        at_ms: ms(t),
        issuer: "north-bank".into(),
        mti: 420,
        reason: "timeout".into(),
        txn: Some(10),
        pan: ProtectedPan::from_bytes(&[0; 4]).expect("short"),
        masked_pan: "411111******0013".into(),
        processing_code: "000000".into(),
        amount_minor: 1200,
        currency: 156,
        original: OriginalRecord {
            mti: 100,
            stan: 9,
            transmission: key(9).transmission,
            acquirer: "100001".into(),
        },
        terminal: "TERM0001".into(),
        merchant: None,
        rrn: None,
        replacement_minor: None,
        auth_code: None,
        response_code: None,
    }));
    let (c, carry) = j.clear(day(25), None).expect("clears");
    let cleared: Vec<(u64, i64)> = c
        .items
        .iter()
        .map(|i| (i.approval.txn, i.after_minor))
        .collect();
    assert_eq!(cleared, vec![(3, 2500)]);
    let open: Vec<(u64, i64)> = carry
        .open
        .iter()
        .map(|o| (o.approval.txn, o.remaining_minor))
        .collect();
    assert_eq!(open, vec![(5, 6000), (7, 1000)]);
    assert_eq!(c.exceptions.len(), 1, "{:?}", c.exceptions);
    assert_eq!(c.exceptions[0].txn, 8);
    assert_eq!(c.reversals.len(), 4);
}

#[test]
fn a_refund_reverses_interchange() {
    let mut j = Journal::default();
    j.add(Req {
        product: Some(Product::Debit),
        mcc: Some(5999),
        ..Req::new(200, "200000", 10_000, 1, at(day(25), 15, 0))
    });
    let (c, _) = j.clear(day(25), None).expect("clears");
    assert_eq!(c.items[0].approval.class, Class::Refund);
    // 100.00 debit card present: interchange 0.50% = 50 (max 2.00), given back by the issuer.
    // Scheme fees: 10000 x 10 bps + 1 = 11 (acquirer), 5 + 1 = 6 (issuer). The acquirer pays
    // the refund: -10000 + 50 - 11 = -9961; the issuer receives it: 10000 - 50 - 6 = 9944.
    let (s, m) = settle(&c, &schedule()).expect("settles");
    let acquirer = s
        .positions
        .iter()
        .find(|p| p.role == Role::Acquirer)
        .expect("acquirer");
    assert_eq!(acquirer.interchange_minor, 50);
    assert_eq!(acquirer.net_minor, -9961);
    assert_eq!(position(&s, Role::Issuer, "north-bank"), 9944);
    assert_eq!(position(&s, Role::Scheme, SCHEME_ID), 17);
    assert_eq!((m[0].refunds_minor, m[0].mdr_minor), (10_000, 0));
    assert_eq!(m[0].net_payout_minor, -10_000);

    // Configured off, the refund keeps no interchange: acquirer -10011, issuer 9994.
    let off = SCHEDULE.replace(
        "refund_reverses_interchange = true",
        "refund_reverses_interchange = false",
    );
    let off = FeeSchedule::from_toml_str(&off, "test").expect("schedule");
    let (s, _) = settle(&c, &off).expect("settles");
    assert_eq!(position(&s, Role::Acquirer, "100001"), -10_011);
    assert_eq!(position(&s, Role::Issuer, "north-bank"), 9994);
}

#[test]
fn an_expired_hold_is_reported_not_cleared() {
    let mut j = Journal::default();
    j.preauth(1, 10_000, at(day(25), 10, 0));
    let short = ClearingRules {
        hold_expiry_h: 24,
        ..rules()
    };
    let days = by_business_date(j.records.clone());
    let (c25, carry25) = clear_day(day(25), &days[&day(25)], None, &short).expect("day 25");
    assert!(c25.expired.is_empty());
    // At day 26's cutover (26th 23:00) the hold from the 25th 10:00 is 37 hours old.
    let (c26, carry26) = clear_day(day(26), &[], Some(&carry25), &short).expect("day 26");
    assert_eq!(c26.expired.len(), 1);
    assert!(c26.items.is_empty());
    assert!(carry26.open.is_empty());
    assert_eq!(carry26.closed[0].state, ClosedState::Expired);
}

#[test]
fn carry_over_must_be_from_the_day_before() {
    let mut j = Journal::default();
    j.sale(1, 1000, at(day(25), 10, 0));
    let (_, carry25) = j.clear(day(25), None).expect("day 25");
    assert!(matches!(
        j.clear(day(27), Some(&carry25)),
        Err(ClearingError::CarryOverDate { .. })
    ));
    // Clearing day 25 again from a carry-over that already holds its approval.
    let mut carry24 = carry25.clone();
    carry24.business_date = day(24);
    assert!(matches!(
        j.clear(day(25), Some(&carry24)),
        Err(ClearingError::AlreadyCarried { txn: 1, .. })
    ));
}

#[test]
fn the_fee_schedule_reports_every_problem_at_once() {
    let bad = r#"
currency = "999"
[[mcc_group]]
name = "a"
mccs = ["5411", "54x1"]
[[mcc_group]]
name = "b"
mccs = ["5400-5420"]
[[interchange]]
currency = "156"
mcc_group = "nope"
percent = "101"
fixed = "0.001"
[[mdr]]
currency = "156"
percent = "-1"
"#;
    let Err(FeeError::Invalid { problems }) = FeeSchedule::from_toml_str(bad, "fees.toml") else {
        panic!("invalid schedule accepted");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "currency",
        "mcc_group[0].mccs[1]",
        "mcc_group",
        "interchange[0].mcc_group",
        "interchange[0].percent",
        "interchange[0].fixed",
        "mdr[0].percent",
    ] {
        assert!(keys.contains(&k), "{k} not reported in {keys:?}");
    }
}

#[test]
fn the_shipped_fee_schedule_loads_and_prices_each_product() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fees.toml");
    let s = FeeSchedule::load(&path).expect("config/fees.toml");
    assert!(s.refund_reverses_interchange);
    assert_eq!(s.group_of(Some(5812)), "restaurants");
    assert_eq!(s.group_of(Some(1234)), "other");
    assert_eq!(s.group_of(None), "other");
    let q = |product, card_present| fees::RateQuery {
        currency: 156,
        product,
        mcc: Some(5411),
        card_present,
        acquirer: "100001",
        merchant: "MERCHANT0000002",
    };
    // Credit, grocery, present: 0.80% + 0.05 on 100.00 = 85 fen.
    let r = s
        .rates(&q(Some(Product::Credit), Some(true)))
        .expect("rates");
    assert_eq!(r.interchange.fee(10_000).ok(), Some(85));
    // Debit present: 0.45%, at most 13.00.
    let r = s
        .rates(&q(Some(Product::Debit), Some(true)))
        .expect("rates");
    assert_eq!(r.interchange.fee(10_000).ok(), Some(45));
    assert_eq!(r.interchange.fee(1_000_000).ok(), Some(1300));
    // Unknown product, card not present: the catch-all 1.50% + 0.10.
    let r = s.rates(&q(None, None)).expect("rates");
    assert_eq!(r.interchange.fee(10_000).ok(), Some(160));
    // MDR: grocery 1.00%.
    assert_eq!(r.mdr.fee(10_000).ok(), Some(100));
    assert!(matches!(
        s.rates(&fees::RateQuery {
            currency: 840,
            ..q(None, None)
        }),
        Err(FeeError::NoRate { .. })
    ));
}

#[test]
fn reports_render_in_three_forms() {
    let mut j = Journal::default();
    j.sale(1, 1234, at(day(25), 10, 0));
    j.preauth(2, 500, at(day(25), 11, 0));
    let (c, _) = j.clear(day(25), None).expect("clears");
    let r = report::clearing(&c).expect("renders");
    assert!(
        r.text
            .contains("Authorized, not captured (carried over): 1")
    );
    assert_eq!(r.csv.lines().count(), 3, "{}", r.csv);
    let back: Clearing = serde_json::from_str(&r.json).expect("json reads back");
    assert_eq!(back, c);
    let (s, m) = settle(&c, &schedule()).expect("settles");
    let names = |id: &str| (id == "100001").then(|| "Harbor Acquiring".to_owned());
    let r = report::settlement(&s, &names).expect("renders");
    assert!(r.text.contains("Harbor Acquiring"));
    assert_eq!(r.csv.lines().count(), 4);
    let r = report::statement(&m[0]).expect("renders");
    // 12.34 at grocery 1.5% = 18.51 fen -> 19; payout 12.15.
    assert!(r.text.contains("12.15"), "{}", r.text);
    assert_eq!(r.csv.lines().count(), 1 + 1 + 4);
    assert_eq!(report::money(-5, 156), "-0.05");
    assert_eq!(report::money(1500, 392), "1500");
}

/// One step of a random journal.
#[derive(Debug, Clone)]
enum Op {
    Sale {
        amount: i64,
        refund: bool,
        product: u8,
        mcc: u16,
        present: bool,
        issuer: u8,
    },
    Preauth {
        amount: i64,
    },
    Complete {
        of: usize,
        amount: i64,
    },
    Reverse {
        of: usize,
        keep: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            1i64..2_000_000,
            any::<bool>(),
            0u8..4,
            prop_oneof![Just(5411u16), Just(5812), Just(7011)],
            any::<bool>(),
            0u8..3
        )
            .prop_map(|(amount, refund, product, mcc, present, issuer)| Op::Sale {
                amount,
                refund,
                product,
                mcc,
                present,
                issuer
            }),
        (1i64..500_000).prop_map(|amount| Op::Preauth { amount }),
        (0usize..40, 1i64..500_000).prop_map(|(of, amount)| Op::Complete { of, amount }),
        (0usize..40, 0i64..3).prop_map(|(of, keep)| Op::Reverse { of, keep }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random traffic over three days clears exactly once and settles to zero every day.
    #[test]
    fn settlement_sums_to_zero(ops in proptest::collection::vec((op(), 0u32..3, 0u32..24), 1..60)) {
        let products = [None, Some(Product::Credit), Some(Product::Debit), Some(Product::Prepaid)];
        let issuers = ["north-bank", "east-bank", "metro-pay"];
        let mut j = Journal::default();
        // (stan, mti, amount) of earlier requests, for completions and reversals to refer to.
        let mut earlier: Vec<(u32, u16, i64)> = Vec::new();
        for (i, (op, d, h)) in ops.into_iter().enumerate() {
            let stan = i as u32 + 1;
            let when = at(day(25 + d), h, 0);
            match op {
                Op::Sale { amount, refund, product, mcc, present, issuer } => {
                    j.add(Req {
                        product: products[product as usize],
                        mcc: Some(mcc),
                        card_present: Some(present),
                        issuer: issuers[issuer as usize],
                        ..Req::new(200, if refund { "200000" } else { "000000" }, amount, stan, when)
                    });
                    earlier.push((stan, 200, amount));
                }
                Op::Preauth { amount } => {
                    j.preauth(stan, amount, when);
                    earlier.push((stan, 100, amount));
                }
                Op::Complete { of, amount } => {
                    if let Some(&(o, _, _)) = earlier.get(of % earlier.len().max(1)) {
                        j.complete(stan, o, amount, when);
                        earlier.push((stan, 220, amount));
                    }
                }
                Op::Reverse { of, keep } => {
                    if let Some(&(o, mti, amount)) = earlier.get(of % earlier.len().max(1)) {
                        j.reverse(stan, (mti, o), amount, (keep > 0).then(|| amount * keep / 3), when);
                    }
                }
            }
        }
        // The journal is appended in time order, as the switch writes it.
        let schedule = schedule();
        let mut carry = None;
        for d in 25..=28 {
            let (c, next) = j.clear(day(d), carry.as_ref()).expect("clears exactly once");
            let (s, statements) = settle(&c, &schedule).expect("settles");
            let sum: i64 = s.positions.iter().map(|p| p.net_minor).sum();
            prop_assert_eq!(sum, 0);
            let scheme: i64 = s.positions.iter().filter(|p| p.role == Role::Scheme).map(|p| p.net_minor).sum();
            prop_assert!(c.items.iter().all(|i| i.change_minor() != 0));
            let mdr: i64 = statements.iter().map(|m| m.mdr_minor).sum();
            prop_assert!(scheme >= 0 || c.items.iter().any(|i| i.kind == ItemKind::Reversal));
            prop_assert!(mdr >= 0 || c.items.iter().any(|i| i.kind == ItemKind::Reversal));
            carry = Some(next);
        }
    }
}

/// A cutover reads the journal from the LSN the day before left in its carry-over, never the
/// segments before it, and closes the day exactly as a read of the whole journal does.
#[tokio::test]
async fn a_cutover_reads_the_journal_from_where_the_day_before_left_off() {
    use crate::config::JournalSync;
    use crate::journal::{FileJournal, Journal as _, JournalOptions};

    let mut j = Journal::default();
    // Two records (request, decision) each: LSNs 1-2, 3-4 on the 25th; 5-6, 7-8 on the 26th;
    // 9-10 on the 27th.
    j.sale(1, 5_000, at(day(25), 10, 0));
    j.preauth(2, 10_000, at(day(25), 18, 0));
    j.complete(3, 2, 8_000, at(day(26), 9, 30));
    j.sale(4, 2_000, at(day(26), 12, 0));
    j.sale(5, 3_000, at(day(27), 12, 0));
    let dir = tempfile::tempdir().expect("temporary directory");
    let journal = |name: &str| dir.path().join(name);
    for name in ["whole", "resumed"] {
        // One record a segment: every record is larger than the segment size.
        let (fj, _) = FileJournal::open(
            &journal(name),
            JournalOptions {
                sync: JournalSync::None,
                segment_bytes_max: 64,
                group_commit_max: 1,
                queue_depth_max: 1_000,
                prewrite_segments: false,
                ..JournalOptions::default()
            },
        )
        .expect("journal");
        for r in &j.records {
            fj.append(&r.encode().expect("encodes"))
                .await
                .expect("appended");
        }
        fj.close();
    }
    let job = |name: &str| files::Job {
        journal_dir: journal(name),
        reports_dir: dir.path().join(format!("reports-{name}")),
        rules: rules(),
        names: Vec::new(),
    };
    let now = at(day(28), 12, 0);
    let carry = |name: &str, d: NaiveDate| -> CarryOver {
        let path = job(name).day_dir(d).join("carry-over.json");
        serde_json::from_slice(&std::fs::read(path).expect("carry-over")).expect("parses")
    };

    files::cutover(&job("resumed"), day(25), now).expect("the 25th closes");
    // One past the 25th's last request (LSN 3), which is on disk for certain, and before the
    // 26th's first (LSN 5).
    assert_eq!(carry("resumed", day(25)).resume_lsn, Some(4));
    // Damage every segment before it but the one holding that request, which the 26th's cutover
    // checks against the carry-over: it must not read the others.
    for entry in std::fs::read_dir(journal("resumed")).expect("segments") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let first: u64 = name["segment-".len()..name.len() - ".log".len()]
            .parse()
            .expect("segment LSN");
        if first < 3 {
            std::fs::write(&path, b"damaged beyond reading").expect("damage");
        }
    }
    let resumed = files::cutover(&job("resumed"), day(26), now).expect("the 26th closes");
    assert_eq!(
        carry("resumed", day(26)).resume_lsn,
        Some(8),
        "past the 26th's last request"
    );

    let whole = files::cutover(&job("whole"), day(26), now).expect("the 25th and 26th close");
    assert_eq!(whole.len(), 2);
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        resumed[0], whole[1],
        "the same clearing as from the whole journal"
    );
    assert_eq!(resumed[0].items.len(), 2, "the completion and the sale");
    assert_eq!(carry("resumed", day(26)), carry("whole", day(26)));
    // Closing two days in one cutover gives each its own point.
    assert_eq!(carry("whole", day(25)).resume_lsn, Some(4));

    // A point whose record does not match (a crash cut the journal's unsynced tail and new
    // records took its LSNs, or another journal), or that lies past the end, is not trusted:
    // the whole journal is read. Read from LSN 11 or 1,000 on, the 27th would close empty.
    let the_27th = |resume: u64, check: u32| {
        let mut c = carry("whole", day(26));
        c.resume_lsn = Some(resume);
        c.resume_check = Some(check);
        std::fs::write(
            job("whole").day_dir(day(26)).join("carry-over.json"),
            serde_json::to_vec(&c).expect("json"),
        )
        .expect("write");
        files::cutover(&job("whole"), day(27), now).expect("the 27th closes")
    };
    let good = carry("whole", day(26)).resume_check.expect("a check");
    assert_eq!(
        the_27th(11, good)[0].items.len(),
        1,
        "a record that differs"
    );
    assert_eq!(the_27th(1_000, good)[0].items.len(), 1, "past the end");
    assert_eq!(the_27th(8, good)[0].items.len(), 1, "the point as written");
}
