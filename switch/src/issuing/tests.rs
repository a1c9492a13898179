//! Tests of the issuing engine against the three test issuers in `config/issuers/`.
//!
//! - `rule_table`: one row per rule (product, state built by earlier requests, amounts, expected
//!   field 39), covering every decline and approval the engine gives.
//! - focused tests: field 54, idempotency, hold resolution, expiry, tombstones, maintenance.
//! - `money_is_conserved` (proptest): random request sequences on each product; posted movements
//!   equal the approved postings, holds never go negative, captures stay within hold + tolerance,
//!   and a replay of the events reaches the same state.
//! - replay and snapshot/restore, concurrency on one hot account and on many accounts.
//! - the issuer files: valid, PVVs of PIN 1234, CSV cards.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use proptest::prelude::*;

use super::*;
use crate::domain::{
    AccountType, AcquirerId, Amount, Currency, Decline, Expiry, Pan, ProcessingCode, ResponseCode,
    Stan, TerminalId, TransmissionDateTime, TxnType,
};
use crate::iso8583::views::AuthorizationRequest;

// ---------------------------------------------------------------------------------------------
// fixtures

fn issuer_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/issuers")
        .join(format!("{name}.toml"))
}

fn engine(name: &str) -> Engine {
    let file = IssuerFile::load(&issuer_path(name)).expect("issuer file");
    Engine::from_file(&file).expect("engine")
}

/// An issuer without velocity or daily limits, for the concurrency tests: a debit account with
/// 5,000.00 and a credit account with a 10,000.00 limit.
const HOT: &str = r#"
[issuer]
id = "hot-bank"
name = "Hot Bank"

[journal]
dir = "data/hot"

[[product]]
id = "debit"
kind = "debit"
currency = "156"

[[product]]
id = "credit"
kind = "credit"
currency = "156"

[[account]]
id = "D"
product = "debit"
balance = "5000.00"

[[account]]
id = "D2"
product = "debit"
balance = "5.00"

[[account]]
id = "C"
product = "credit"
credit_limit = "10000.00"

[[card]]
pan = "6222020000000015"
account = "D"
expiry = "3012"

[[card]]
pan = "6222020000000031"
account = "D2"
expiry = "3012"

[[card]]
pan = "4111110000000013"
account = "C"
expiry = "3012"
"#;

fn hot_engine() -> Engine {
    let file = IssuerFile::from_toml_str(HOT, "hot").expect("hot file");
    Engine::from_file(&file).expect("hot engine")
}

fn t0() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 5, 13)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .expect("date")
}

pub(super) fn pan(s: &str) -> Pan {
    Pan::parse(s.as_bytes()).expect("pan")
}

fn cny(major: &str) -> Amount {
    Amount::parse_major(major, Currency::CNY).expect("amount")
}

/// The idempotency key of test request `stan` (also used by the statement tests).
pub(super) fn key(stan: u32) -> IdemKey {
    IdemKey::new(
        AcquirerId::parse("100001").expect("acq"),
        TerminalId::from_field(b"TERM0001").expect("tid"),
        Stan::new(stan).expect("stan"),
        TransmissionDateTime::from_field(b"0513100000").expect("f7"),
    )
}

/// What a test request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Auth,
    Fin,
    Advice,
    Completion(u32),
    Reversal(u32, Option<&'static str>),
}

/// A test request: builder over [`IssuingRequest`] with a time offset.
#[derive(Debug, Clone, Copy)]
struct R {
    k: K,
    pan: &'static str,
    txn: TxnType,
    amount: Option<&'static str>,
    stan: u32,
    pin: PinCheck,
    partial: bool,
    mcc: Option<u16>,
    expiry: Option<&'static str>,
    currency: Currency,
    /// Hours after `t0`.
    at_h: i64,
    /// Days after `t0`'s business date.
    day: i64,
}

fn req(k: K, pan: &'static str, amount: Option<&'static str>) -> R {
    R {
        k,
        pan,
        txn: TxnType::Purchase,
        amount,
        stan: 1,
        pin: PinCheck::Absent,
        partial: false,
        mcc: None,
        expiry: None,
        currency: Currency::CNY,
        at_h: 0,
        day: 0,
    }
}

fn auth(pan: &'static str, amount: &'static str) -> R {
    req(K::Auth, pan, Some(amount))
}

fn fin(pan: &'static str, amount: &'static str) -> R {
    req(K::Fin, pan, Some(amount))
}

fn inquiry(pan: &'static str) -> R {
    req(K::Auth, pan, None).txn(TxnType::BalanceInquiry)
}

fn completion(pan: &'static str, original: u32, amount: &'static str) -> R {
    req(K::Completion(original), pan, Some(amount))
}

fn reversal(pan: &'static str, original: u32, amount: &'static str) -> R {
    req(K::Reversal(original, None), pan, Some(amount))
}

fn partial_reversal(
    pan: &'static str,
    original: u32,
    amount: &'static str,
    remains: &'static str,
) -> R {
    req(K::Reversal(original, Some(remains)), pan, Some(amount))
}

impl R {
    fn stan(mut self, stan: u32) -> R {
        self.stan = stan;
        self
    }
    fn txn(mut self, txn: TxnType) -> R {
        self.txn = txn;
        self
    }
    fn pin(mut self, pin: PinCheck) -> R {
        self.pin = pin;
        self
    }
    fn partial(mut self) -> R {
        self.partial = true;
        self
    }
    fn mcc(mut self, mcc: u16) -> R {
        self.mcc = Some(mcc);
        self
    }
    fn expiry(mut self, yymm: &'static str) -> R {
        self.expiry = Some(yymm);
        self
    }
    fn currency(mut self, c: Currency) -> R {
        self.currency = c;
        self
    }
    fn at(mut self, hours: i64) -> R {
        self.at_h = hours;
        self
    }
    fn day(mut self, days: i64) -> R {
        self.day = days;
        self
    }

    fn build(&self) -> IssuingRequest {
        let kind = match self.k {
            K::Auth => RequestKind::Authorization,
            K::Fin => RequestKind::Financial,
            K::Advice => RequestKind::Advice { financial: false },
            K::Completion(o) => RequestKind::Completion { original: key(o) },
            K::Reversal(o, r) => RequestKind::Reversal {
                original: key(o),
                replacement: r.map(cny),
            },
        };
        IssuingRequest {
            kind,
            key: key(self.stan),
            pan: pan(self.pan),
            processing_code: ProcessingCode::new(
                self.txn,
                AccountType::Default,
                AccountType::Default,
            ),
            amount: self
                .amount
                .map(|a| Amount::parse_major(a, self.currency).expect("amount")),
            currency: self.currency,
            mcc: self.mcc,
            expiry: self
                .expiry
                .map(|e| Expiry::from_field(e.as_bytes()).expect("expiry")),
            pin: self.pin,
            partial_supported: self.partial,
        }
    }

    fn now(&self) -> NaiveDateTime {
        t0() + Duration::hours(self.at_h)
    }

    fn date(&self) -> NaiveDate {
        self.now().date() + Duration::days(self.day)
    }

    fn run(&self, e: &Engine) -> Outcome {
        e.process(&self.build(), self.now(), self.date())
    }
}

/// Runs `before` (with STANs 1000.. unless set) and returns the engine.
fn with(e: Engine, before: &[R]) -> Engine {
    for r in before {
        r.run(&e);
    }
    e
}

fn code(o: &Outcome) -> &'static str {
    o.response_code().as_str()
}

fn ledger(e: &Engine, p: &str) -> LedgerView {
    e.ledger(&pan(p)).expect("ledger")
}

const CREDIT: &str = "4111110000000013";
const CREDIT_LOST: &str = "4111110000000021";
const CREDIT_EXPIRED: &str = "4111110000000039";
const CREDIT_100: &str = "4111110000000047";
const DEBIT: &str = "6222020000000015";
const DEBIT_STOLEN: &str = "6222020000000023";
const DEBIT_10: &str = "6222020000000031";
const PREPAID: &str = "6050010000000013";
const PREPAID_EMPTY: &str = "6050010000000021";

// ---------------------------------------------------------------------------------------------
// the rule table

/// A post-condition on the engine after the row's request.
type After = fn(&Engine, &Outcome);

struct Row {
    name: &'static str,
    issuer: &'static str,
    before: Vec<R>,
    req: R,
    code: &'static str,
    /// Approved amount, major units.
    approved: Option<&'static str>,
    after: Option<After>,
}

fn row(
    name: &'static str,
    issuer: &'static str,
    before: Vec<R>,
    req: R,
    code: &'static str,
) -> Row {
    Row {
        name,
        issuer,
        before,
        req,
        code,
        approved: None,
        after: None,
    }
}

impl Row {
    fn approved(mut self, amount: &'static str) -> Row {
        self.approved = Some(amount);
        self
    }
    fn after(mut self, f: After) -> Row {
        self.after = Some(f);
        self
    }
}

/// `n` requests from `make(i)` with STANs 1000 + i.
fn many(n: u32, make: impl Fn(u32) -> R) -> Vec<R> {
    (0..n).map(|i| make(i).stan(1000 + i)).collect()
}

fn rows() -> Vec<Row> {
    let nb = "north-bank";
    let eb = "east-bank";
    let mp = "metro-pay";
    vec![
        // --- credit: open-to-buy, cash limit, payments ---
        row(
            "credit purchase within open-to-buy",
            nb,
            vec![],
            auth(CREDIT, "100.00"),
            "00",
        )
        .approved("100.00")
        .after(|e, _| {
            let l = ledger(e, CREDIT);
            assert_eq!(
                (l.posted, l.held, l.available),
                (cny("0"), cny("100.00"), cny("9900.00"))
            );
        }),
        row(
            "credit exactly the open-to-buy",
            nb,
            vec![],
            auth(CREDIT_100, "100.00"),
            "00",
        ),
        row(
            "credit one fen over the open-to-buy",
            nb,
            vec![],
            auth(CREDIT_100, "100.01"),
            "51",
        ),
        row(
            "credit open-to-buy counts holds and posted balance",
            nb,
            vec![
                fin(CREDIT_100, "60.00").stan(2),
                auth(CREDIT_100, "30.00").stan(3),
            ],
            auth(CREDIT_100, "10.01"),
            "51",
        ),
        row(
            "credit cash advance within the cash limit",
            nb,
            vec![],
            fin(CREDIT, "2000.00").txn(TxnType::Cash),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, CREDIT).cash_posted, cny("2000.00"))),
        row(
            "credit cash advance over the cash limit",
            nb,
            vec![],
            auth(CREDIT, "2000.01").txn(TxnType::Cash),
            "61",
        ),
        row(
            "credit cash limit counts cash holds",
            nb,
            vec![auth(CREDIT, "1500.00").txn(TxnType::Cash).stan(2)],
            auth(CREDIT, "600.00").txn(TxnType::Cash),
            "61",
        ),
        row(
            "credit payment repays cash first, freeing the cash limit",
            nb,
            vec![
                fin(CREDIT, "2000.00").txn(TxnType::Cash).stan(2),
                fin(CREDIT, "500.00").txn(TxnType::Deposit).stan(3),
            ],
            auth(CREDIT, "500.00").txn(TxnType::Cash),
            "00",
        ),
        row(
            "credit payment reduces the balance owed",
            nb,
            vec![fin(CREDIT, "500.00").stan(2)],
            fin(CREDIT, "200.00").txn(TxnType::Deposit),
            "00",
        )
        .after(|e, o| {
            let b = o.balances.expect("balances");
            assert_eq!((b.ledger, b.available), (cny("-300.00"), cny("9700.00")));
            assert_eq!(ledger(e, CREDIT).posted, cny("-300.00"));
        }),
        row(
            "credit balance inquiry: available is open-to-buy, ledger is owed",
            nb,
            vec![
                fin(CREDIT, "500.00").stan(2),
                auth(CREDIT, "100.00").stan(3),
            ],
            inquiry(CREDIT),
            "00",
        )
        .approved("0")
        .after(|_, o| {
            let b = o.balances.expect("balances");
            assert_eq!(b.account_type, 30);
            assert_eq!((b.available, b.ledger), (cny("9400.00"), cny("-500.00")));
            let f = b.to_field54().expect("54");
            assert_eq!(&f[..], &b"3001156D0000000500003002156C000000940000"[..]);
        }),
        row(
            "credit refund credits the account",
            nb,
            vec![],
            fin(CREDIT, "50.00").txn(TxnType::Refund),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, CREDIT).posted, cny("50.00"))),
        row(
            "credit advice applies past the limit",
            nb,
            vec![],
            req(K::Advice, CREDIT_100, Some("500.00")),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, CREDIT_100).available, cny("-400.00"))),
        // --- common: status, expiry, PIN, currency, MCC, request ---
        row("lost card", nb, vec![], auth(CREDIT_LOST, "1.00"), "41"),
        row(
            "lost card wins over a wrong PIN, which does not count",
            nb,
            vec![],
            auth(CREDIT_LOST, "1.00").pin(PinCheck::Wrong),
            "41",
        ),
        row("stolen card", eb, vec![], auth(DEBIT_STOLEN, "1.00"), "43"),
        row(
            "expired card",
            nb,
            vec![],
            auth(CREDIT_EXPIRED, "1.00"),
            "54",
        ),
        row(
            "field 14 differs from the card's expiry",
            nb,
            vec![],
            auth(CREDIT, "1.00").expiry("2912"),
            "54",
        ),
        row(
            "field 14 matching the card's expiry",
            nb,
            vec![],
            auth(CREDIT, "1.00").expiry("3012"),
            "00",
        ),
        row(
            "refund on an expired card is allowed",
            nb,
            vec![],
            fin(CREDIT_EXPIRED, "5.00").txn(TxnType::Refund),
            "00",
        ),
        row(
            "right PIN",
            nb,
            vec![],
            auth(CREDIT, "1.00").pin(PinCheck::Verified),
            "00",
        ),
        row(
            "wrong PIN",
            nb,
            vec![],
            auth(CREDIT, "1.00").pin(PinCheck::Wrong),
            "55",
        ),
        row(
            "third wrong PIN in a row blocks",
            nb,
            many(2, |_| auth(CREDIT, "1.00").pin(PinCheck::Wrong)),
            auth(CREDIT, "1.00").pin(PinCheck::Wrong),
            "75",
        ),
        row(
            "a blocked card stays blocked, even with the right PIN",
            nb,
            many(3, |_| auth(CREDIT, "1.00").pin(PinCheck::Wrong)),
            auth(CREDIT, "1.00").pin(PinCheck::Verified),
            "75",
        ),
        row(
            "a blocked card stays blocked without a PIN",
            nb,
            many(3, |_| auth(CREDIT, "1.00").pin(PinCheck::Wrong)),
            auth(CREDIT, "1.00"),
            "75",
        ),
        row(
            "a right PIN resets the count",
            nb,
            vec![
                auth(CREDIT, "1.00").pin(PinCheck::Wrong).stan(2),
                auth(CREDIT, "1.00").pin(PinCheck::Wrong).stan(3),
                auth(CREDIT, "1.00").pin(PinCheck::Verified).stan(4),
                auth(CREDIT, "1.00").pin(PinCheck::Wrong).stan(5),
            ],
            auth(CREDIT, "1.00").pin(PinCheck::Wrong),
            "55",
        ),
        row(
            "no PIN is not a verification: the count stays",
            nb,
            vec![
                auth(CREDIT, "1.00").pin(PinCheck::Wrong).stan(2),
                auth(CREDIT, "1.00").pin(PinCheck::Wrong).stan(3),
                auth(CREDIT, "1.00").stan(4),
            ],
            auth(CREDIT, "1.00").pin(PinCheck::Wrong),
            "75",
        ),
        row(
            "a wrong PIN wins over insufficient funds",
            nb,
            vec![],
            auth(CREDIT_100, "500.00").pin(PinCheck::Wrong),
            "55",
        ),
        row(
            "account currency differs from field 49",
            nb,
            vec![],
            auth(CREDIT, "1.00").currency(Currency::USD),
            "57",
        ),
        row(
            "blocked merchant category",
            nb,
            vec![],
            auth(CREDIT, "1.00").mcc(7995),
            "57",
        ),
        row(
            "allowed merchant category",
            nb,
            vec![],
            auth(CREDIT, "1.00").mcc(5411),
            "00",
        ),
        row(
            "transfer is not supported",
            nb,
            vec![],
            auth(CREDIT, "1.00").txn(TxnType::Transfer),
            "12",
        ),
        row("zero amount", nb, vec![], auth(CREDIT, "0"), "13"),
        row(
            "missing amount on a purchase",
            nb,
            vec![],
            req(K::Auth, CREDIT, None),
            "13",
        ),
        row(
            "velocity: too many in an hour",
            nb,
            many(600, |i| auth(CREDIT, "1.00").at(0).stan(i)),
            auth(CREDIT, "1.00"),
            "65",
        ),
        row(
            "velocity window rolls: an hour later it is fine",
            nb,
            many(600, |_| auth(CREDIT, "1.00")),
            auth(CREDIT, "1.00").at(1),
            "00",
        ),
        // --- debit: available, daily limits, real-time posting ---
        row(
            "debit purchase within the balance",
            eb,
            vec![],
            auth(DEBIT, "4999.99"),
            "00",
        ),
        row(
            "debit purchase over the balance",
            eb,
            vec![],
            auth(DEBIT_10, "10.01"),
            "51",
        ),
        row(
            "debit purchase of exactly the balance",
            eb,
            vec![],
            fin(DEBIT_10, "10.00"),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, DEBIT_10).posted, cny("0"))),
        row(
            "debit 0200 posts at once",
            eb,
            vec![],
            fin(DEBIT, "100.00"),
            "00",
        )
        .after(|e, _| {
            let l = ledger(e, DEBIT);
            assert_eq!((l.posted, l.held), (cny("4900.00"), cny("0")));
        }),
        row(
            "ATM cash up to the daily limit",
            eb,
            vec![],
            fin(DEBIT, "2000.00").txn(TxnType::Cash),
            "00",
        ),
        row(
            "ATM cash over the daily amount",
            eb,
            vec![fin(DEBIT, "2000.00").txn(TxnType::Cash).stan(2)],
            fin(DEBIT, "0.01").txn(TxnType::Cash),
            "61",
        ),
        row(
            "ATM cash daily amount resets on the next business day",
            eb,
            vec![fin(DEBIT, "2000.00").txn(TxnType::Cash).stan(2)],
            fin(DEBIT, "100.00").txn(TxnType::Cash).day(1),
            "00",
        ),
        row(
            "ATM cash over the daily count",
            eb,
            many(10, |_| fin(DEBIT, "1.00").txn(TxnType::Cash)),
            fin(DEBIT, "1.00").txn(TxnType::Cash),
            "65",
        ),
        row(
            "purchases do not use the cash limit",
            eb,
            vec![fin(DEBIT, "2000.00").txn(TxnType::Cash).stan(2)],
            fin(DEBIT, "100.00"),
            "00",
        ),
        row(
            "a reversed ATM withdrawal gives the daily limit back",
            eb,
            vec![
                fin(DEBIT, "2000.00").txn(TxnType::Cash).stan(2),
                reversal(DEBIT, 2, "2000.00").txn(TxnType::Cash).stan(3),
            ],
            fin(DEBIT, "2000.00").txn(TxnType::Cash),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, DEBIT).posted, cny("3000.00"))),
        row(
            "debit deposit",
            eb,
            vec![],
            fin(DEBIT_10, "5.00").txn(TxnType::Deposit),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, DEBIT_10).posted, cny("15.00"))),
        row(
            "debit balance inquiry",
            eb,
            vec![auth(DEBIT, "100.00").stan(2)],
            inquiry(DEBIT),
            "00",
        )
        .after(|_, o| {
            let b = o.balances.expect("balances");
            assert_eq!((b.available, b.ledger), (cny("4900.00"), cny("5000.00")));
            let f = b.to_field54().expect("54");
            assert_eq!(&f[..], &b"0001156C0000005000000002156C000000490000"[..]);
        }),
        // --- prepaid ---
        row(
            "prepaid purchase within the balance",
            mp,
            vec![],
            auth(PREPAID, "200.00"),
            "00",
        ),
        row(
            "prepaid partial approval with field 60",
            mp,
            vec![],
            auth(PREPAID, "250.00").partial(),
            "10",
        )
        .approved("200.00")
        .after(|e, o| {
            assert_eq!(ledger(e, PREPAID).available, cny("0"));
            assert_eq!(o.result.map(|a| a.code), Ok(ResponseCode::ApprovedPartial));
        }),
        row(
            "prepaid over the balance without field 60",
            mp,
            vec![],
            auth(PREPAID, "250.00"),
            "51",
        ),
        row(
            "prepaid empty card, even with field 60",
            mp,
            vec![],
            auth(PREPAID_EMPTY, "1.00").partial(),
            "51",
        ),
        row(
            "cash on a gift card",
            mp,
            vec![],
            auth(PREPAID, "10.00").txn(TxnType::Cash),
            "57",
        ),
        row(
            "cashback on a gift card",
            mp,
            vec![],
            auth(PREPAID, "10.00").txn(TxnType::PurchaseWithCashback),
            "57",
        ),
        row(
            "prepaid load within the maximum balance",
            mp,
            vec![],
            fin(PREPAID, "4800.00").txn(TxnType::Deposit),
            "00",
        ),
        row(
            "prepaid load over the maximum balance",
            mp,
            vec![],
            fin(PREPAID, "4800.01").txn(TxnType::Deposit),
            "61",
        ),
        row(
            "prepaid completion above the hold (tolerance 0)",
            mp,
            vec![auth(PREPAID, "100.00").stan(2)],
            completion(PREPAID, 2, "100.01"),
            "13",
        ),
        // --- holds: completion, reversal, expiry, resolution ---
        row(
            "reversal restores the open-to-buy",
            nb,
            vec![auth(CREDIT, "1000.00").stan(2)],
            reversal(CREDIT, 2, "1000.00"),
            "00",
        )
        .approved("1000.00")
        .after(|e, _| {
            let l = ledger(e, CREDIT);
            assert_eq!(
                (l.available, l.held, l.open_holds),
                (cny("10000.00"), cny("0"), 0)
            );
        }),
        row(
            "partial reversal keeps what remains",
            nb,
            vec![auth(CREDIT, "1000.00").stan(2)],
            partial_reversal(CREDIT, 2, "1000.00", "400.00"),
            "00",
        )
        .approved("600.00")
        .after(|e, _| assert_eq!(ledger(e, CREDIT).held, cny("400.00"))),
        row(
            "partial reversal cannot leave more than the hold",
            nb,
            vec![auth(CREDIT, "1000.00").stan(2)],
            partial_reversal(CREDIT, 2, "1000.00", "1000.01"),
            "13",
        ),
        row(
            "completion for a lower amount releases the rest",
            nb,
            vec![auth(CREDIT, "1000.00").stan(2)],
            completion(CREDIT, 2, "800.00"),
            "00",
        )
        .approved("800.00")
        .after(|e, _| {
            let l = ledger(e, CREDIT);
            assert_eq!(
                (l.posted, l.held, l.available),
                (cny("-800.00"), cny("0"), cny("9200.00"))
            );
        }),
        row(
            "completion within the tolerance (20%)",
            nb,
            vec![auth(CREDIT, "100.00").stan(2)],
            completion(CREDIT, 2, "120.00"),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, CREDIT).posted, cny("-120.00"))),
        row(
            "completion over the tolerance",
            nb,
            vec![auth(CREDIT, "100.00").stan(2)],
            completion(CREDIT, 2, "120.01"),
            "13",
        )
        .after(|e, _| assert_eq!(ledger(e, CREDIT).held, cny("100.00"))),
        row(
            "completion after a partial reversal uses what remains",
            nb,
            vec![
                auth(CREDIT, "100.00").stan(2),
                partial_reversal(CREDIT, 2, "100.00", "50.00").stan(3),
            ],
            completion(CREDIT, 2, "60.01"),
            "13",
        ),
        row(
            "a captured hold cannot be captured again",
            nb,
            vec![
                auth(CREDIT, "100.00").stan(2),
                completion(CREDIT, 2, "100.00").stan(3),
            ],
            completion(CREDIT, 2, "100.00"),
            "25",
        )
        .after(|e, _| assert_eq!(ledger(e, CREDIT).posted, cny("-100.00"))),
        row(
            "a captured hold cannot be reversed",
            nb,
            vec![
                auth(CREDIT, "100.00").stan(2),
                completion(CREDIT, 2, "100.00").stan(3),
            ],
            reversal(CREDIT, 2, "100.00"),
            "25",
        ),
        row(
            "a completion can be reversed (the posting is undone)",
            nb,
            vec![
                auth(CREDIT, "100.00").stan(2),
                completion(CREDIT, 2, "90.00").stan(3),
            ],
            reversal(CREDIT, 3, "90.00"),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, CREDIT).posted, cny("0"))),
        row(
            "a voided hold cannot be voided again",
            nb,
            vec![
                auth(CREDIT, "100.00").stan(2),
                reversal(CREDIT, 2, "100.00").stan(3),
            ],
            reversal(CREDIT, 2, "100.00").stan(4),
            "25",
        ),
        row(
            "hold expiry releases the hold",
            nb,
            vec![auth(CREDIT, "1000.00").stan(2)],
            inquiry(CREDIT).at(168),
            "00",
        )
        .after(|_, o| assert_eq!(o.balances.map(|b| b.available), Some(cny("10000.00")))),
        row(
            "a hold is still there one hour before expiry",
            nb,
            vec![auth(CREDIT, "1000.00").stan(2)],
            inquiry(CREDIT).at(167),
            "00",
        )
        .after(|_, o| assert_eq!(o.balances.map(|b| b.available), Some(cny("9000.00")))),
        row(
            "completion of an expired hold",
            nb,
            vec![auth(CREDIT, "1000.00").stan(2)],
            completion(CREDIT, 2, "1000.00").at(169),
            "25",
        ),
        row(
            "completion of an unknown hold",
            nb,
            vec![],
            completion(CREDIT, 77, "1.00"),
            "25",
        ),
        row(
            "reversal of a 0200 gives the money back",
            eb,
            vec![fin(DEBIT, "300.00").stan(2)],
            reversal(DEBIT, 2, "300.00"),
            "00",
        )
        .after(|e, _| assert_eq!(ledger(e, DEBIT).posted, cny("5000.00"))),
        row(
            "reversal of a declined request",
            eb,
            vec![fin(DEBIT_10, "300.00").stan(2)],
            reversal(DEBIT_10, 2, "300.00"),
            "25",
        ),
        row(
            "another card cannot reverse the hold",
            eb,
            vec![auth(DEBIT, "300.00").stan(2)],
            reversal(DEBIT_10, 2, "300.00"),
            "25",
        ),
        row(
            "reversal of a prepaid load that was spent",
            mp,
            vec![
                fin(PREPAID_EMPTY, "50.00").txn(TxnType::Deposit).stan(2),
                fin(PREPAID_EMPTY, "40.00").stan(3),
            ],
            reversal(PREPAID_EMPTY, 2, "50.00").txn(TxnType::Deposit),
            "51",
        ),
        row(
            "unknown card",
            nb,
            vec![],
            auth("4111110000000054", "1.00"),
            "14",
        ),
    ]
}

#[test]
fn rule_table() {
    let rows = rows();
    let mut failures = Vec::new();
    for r in &rows {
        let e = with(engine(r.issuer), &r.before);
        let out = r.req.run(&e);
        let got = code(&out);
        if got != r.code {
            failures.push(format!(
                "{}: expected {}, got {got} ({:?})",
                r.name, r.code, out.result
            ));
            continue;
        }
        if let Some(a) = r.approved {
            assert_eq!(out.result.map(|x| x.approved), Ok(cny(a)), "{}", r.name);
        }
        if let Some(f) = r.after {
            f(&e, &out);
        }
        e.check_invariants()
            .unwrap_or_else(|err| panic!("{}: {err}", r.name));
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Every response code the engine gives appears in the table (so no rule goes untested).
#[test]
fn rule_table_covers_every_answer() {
    let codes: std::collections::HashSet<&str> = rows().iter().map(|r| r.code).collect();
    for c in [
        "00", "10", "12", "13", "14", "25", "41", "43", "51", "54", "55", "57", "61", "65", "75",
    ] {
        assert!(codes.contains(c), "no row answers {c}");
    }
}

// ---------------------------------------------------------------------------------------------
// focused tests

#[test]
fn idempotent_retry_returns_the_first_answer_and_holds_once() {
    let e = engine("north-bank");
    let first = auth(CREDIT, "100.00").stan(5).run(&e);
    assert_eq!(code(&first), "00");
    assert!(first.event.is_some() && !first.duplicate);
    // The retry arrives later, after the balance changed: still the first answer.
    fin(CREDIT, "50.00").stan(6).run(&e);
    let retry = auth(CREDIT, "100.00").stan(5).at(1).run(&e);
    assert!(retry.duplicate && retry.event.is_none());
    assert_eq!(retry.result, first.result);
    assert_eq!(retry.balances, first.balances);
    let l = ledger(&e, CREDIT);
    assert_eq!((l.held, l.open_holds), (cny("100.00"), 1));
    // A decline is remembered too.
    let d = auth(CREDIT_100, "500.00").stan(7).run(&e);
    assert_eq!(code(&d), "51");
    fin(CREDIT_100, "1000.00")
        .txn(TxnType::Deposit)
        .stan(8)
        .run(&e);
    assert_eq!(code(&auth(CREDIT_100, "500.00").stan(7).run(&e)), "51");
    // The same key with another amount is not a retry.
    let other = auth(CREDIT, "100.01").stan(5).run(&e);
    assert_eq!(other.result, Err(Decline::DuplicateTransmission));
    assert!(other.event.is_none());
}

#[test]
fn reversal_before_its_original_leaves_a_tombstone() {
    let e = engine("east-bank");
    let rev = reversal(DEBIT, 9, "100.00").stan(10).run(&e);
    assert_eq!(code(&rev), "25");
    assert!(rev.event.is_some());
    let late = auth(DEBIT, "100.00").stan(9).run(&e);
    assert_eq!(late.result, Err(Decline::DoNotHonour));
    assert_eq!(ledger(&e, DEBIT).held, cny("0"));
    // A second reversal of it finds nothing to do.
    assert_eq!(code(&reversal(DEBIT, 9, "100.00").stan(11).run(&e)), "25");
}

#[test]
fn auth_codes_are_sequential_and_prefixed() {
    let e = engine("north-bank");
    let a = auth(CREDIT, "1.00")
        .stan(1)
        .run(&e)
        .result
        .expect("approved");
    let b = auth(CREDIT, "1.00")
        .stan(2)
        .run(&e)
        .result
        .expect("approved");
    assert_eq!(a.auth_code.as_str(), "N00001");
    assert_eq!(b.auth_code.as_str(), "N00002");
}

#[test]
fn sweep_releases_due_holds_everywhere_and_is_journaled() {
    let e = engine("north-bank");
    auth(CREDIT, "1000.00").stan(1).run(&e);
    auth(CREDIT_100, "10.00").stan(2).at(1).run(&e);
    let events = e.sweep(t0() + Duration::hours(168), no_journal);
    assert_eq!(events.len(), 1);
    assert_eq!(ledger(&e, CREDIT).held, cny("0"));
    assert_eq!(ledger(&e, CREDIT_100).held, cny("10.00"));
    let events = e.sweep(t0() + Duration::hours(169), no_journal);
    assert_eq!(events.len(), 1);
    assert_eq!(ledger(&e, CREDIT_100).held, cny("0"));
    // Nothing left to do.
    assert!(e.sweep(t0() + Duration::hours(170), no_journal).is_empty());
    // Past the idempotency window the records are forgotten: by a sweep below the records
    // limit only once they are a day past it (requests on the account prune at the window).
    assert!(e.sweep(t0() + Duration::hours(722), no_journal).is_empty());
    assert_eq!(e.records_held(), 2);
    assert_eq!(e.sweep(t0() + Duration::hours(746), no_journal).len(), 2);
    assert_eq!(e.records_held(), 0);
    e.check_invariants().expect("invariants");
}

/// [`HOT`] with `[ledger] records_max` set.
fn engine_with_records_max(max: u64) -> Engine {
    let text = HOT.replacen(
        "[journal]",
        &format!("[ledger]\nrecords_max = {max}\n\n[journal]"),
        1,
    );
    let file = IssuerFile::from_toml_str(&text, "hot").expect("hot file");
    Engine::from_file(&file).expect("hot engine")
}

#[test]
fn at_records_max_only_new_authorizations_and_financial_requests_are_refused() {
    const D: &str = "6222020000000015";
    const C: &str = "4111110000000013";
    let e = engine_with_records_max(8);
    for stan in 1..=8 {
        assert!(auth(D, "1.00").stan(stan).run(&e).result.is_ok());
    }
    assert_eq!(e.records_held(), 8);
    let before = ledger(&e, D);
    // New work is refused on every account, with nothing recorded: no event, no record.
    for r in [
        auth(D, "1.00").stan(9),
        auth(C, "1.00").stan(10),
        fin(C, "1.00").stan(10),
    ] {
        let refused = r.run(&e);
        assert_eq!(refused.result, Err(Decline::SystemMalfunction));
        assert!(refused.event.is_none());
    }
    assert_eq!(e.records_held(), 8);
    assert_eq!(ledger(&e, D), before);
    // A retry still gets its first answer.
    let retry = auth(D, "1.00").stan(1).run(&e);
    assert!(retry.duplicate && retry.result.is_ok());
    // What records money that moved elsewhere, or gives it back, is always taken: a reversal
    // (also of something unknown: its tombstone), a completion, a stand-in advice.
    let tombstone = reversal(D, 77, "1.00").stan(11).run(&e);
    assert_eq!(code(&tombstone), "25");
    assert!(tombstone.event.is_some());
    assert_eq!(code(&reversal(D, 1, "1.00").stan(12).run(&e)), "00");
    assert_eq!(code(&completion(D, 2, "1.00").stan(13).run(&e)), "00");
    assert!(
        req(K::Advice, D, Some("1.00"))
            .stan(14)
            .run(&e)
            .result
            .is_ok()
    );
    assert_eq!(e.records_held(), 13);
    assert_eq!(ledger(&e, D).held, cny("7.00"));
    // Once the account's own records are past the window (its due holds expire first), its
    // request is taken, and the refused one is decided afresh.
    let later = auth(D, "1.00").stan(9).at(721).run(&e);
    assert!(later.result.is_ok(), "{later:?}");
    assert_eq!(e.records_held(), 1);
    e.check_invariants().expect("invariants");
}

#[test]
fn at_the_high_water_mark_a_sweep_forgets_the_oldest_records_that_hold_no_money() {
    use super::event::Change;
    const D: &str = "6222020000000015";
    const C: &str = "4111110000000013";
    // Credit postings at 0 h (reversible: kept), then six debit holds at 1 h, completed at 2 h
    // (the holds' records and the completions' stand for no money any more).
    let traffic = |e: &Engine| -> Vec<LedgerEvent> {
        let mut events = Vec::new();
        let mut run = |r: R| events.extend(r.run(e).event);
        for stan in 1..=4 {
            run(fin(C, "1.00").stan(stan));
        }
        for stan in 11..=16 {
            run(auth(D, "1.00").stan(stan).at(1));
        }
        for stan in 11..=16 {
            run(completion(D, stan, "1.00").stan(stan + 10).at(2));
        }
        events
    };
    let a_day_later = t0() + Duration::hours(27);
    // Below the high-water mark (19 of 20) nothing is forgotten early.
    let roomy = engine_with_records_max(20);
    traffic(&roomy);
    assert_eq!(roomy.records_held(), 16);
    assert!(roomy.sweep(a_day_later, no_journal).is_empty());

    // At it, nothing younger than a day is forgotten early.
    let e = engine_with_records_max(16);
    let mut events = traffic(&e);
    assert_eq!(e.records_held(), 16);
    assert!(e.sweep(t0() + Duration::hours(3), no_journal).is_empty());
    assert!(e.sweep(t0() + Duration::hours(25), no_journal).is_empty());
    // A day on, the sweep forgets the oldest such records, by the hour, down to 14 (7/8 of 16):
    // the six closed holds of 1 h, in one event on D, and their (dead) expiry entries with them.
    assert_eq!(e.expiry_entries(), 6);
    let swept = e.sweep(a_day_later, no_journal);
    assert_eq!(swept.len(), 1);
    assert!(matches!(swept[0].change, Change::Forget { .. }));
    assert_eq!(e.records_held(), 10);
    assert_eq!(e.expiry_entries(), 0);
    // The completions are still remembered, and C's postings can still be reversed.
    assert!(completion(D, 11, "1.00").stan(21).at(27).run(&e).duplicate);
    assert_eq!(code(&reversal(C, 1, "1.00").stan(30).at(27).run(&e)), "00");
    e.check_invariants().expect("invariants");

    // The journal of it replays to the same state.
    events.extend(swept);
    let replayed = engine_with_records_max(16);
    replayed.replay(events).expect("replay");
    let e2 = engine_with_records_max(16);
    traffic(&e2);
    e2.sweep(a_day_later, no_journal);
    assert_eq!(replayed.snapshot(), e2.snapshot());
    assert_eq!(replayed.records_held(), 10);
    replayed.check_invariants().expect("invariants");
}

#[test]
fn at_the_high_water_mark_a_sweep_takes_records_just_past_the_window() {
    const C: &str = "4111110000000013";
    let half_hour_past = t0() + Duration::hours(720) + Duration::minutes(30);
    // Postings, which are never forgotten early, but go once past the window.
    let postings = |max| {
        let e = engine_with_records_max(max);
        for stan in 1..=4 {
            fin(C, "1.00").stan(stan).run(&e);
        }
        e
    };
    // Below the mark a sweep waits a day more for them.
    let roomy = postings(100);
    assert!(roomy.sweep(half_hour_past, no_journal).is_empty());
    assert_eq!(roomy.records_held(), 4);
    // At it, not.
    let full = postings(4);
    assert_eq!(full.sweep(half_hour_past, no_journal).len(), 1);
    assert_eq!(full.records_held(), 0);
    full.check_invariants().expect("invariants");
}

#[test]
fn a_sweep_makes_at_most_its_event_limit_and_carries_on_where_it_stopped() {
    use super::engine::SWEEP_EVENTS_MAX;
    // More accounts with expired holds than one pass may sweep.
    let mut text = String::from(HOT);
    for i in 0..SWEEP_EVENTS_MAX + 10 {
        let mut digits = format!("622202{:09}", 100_000 + i).into_bytes();
        digits.push(crate::domain::luhn_check_digit(&digits));
        let pan = String::from_utf8(digits).expect("ascii");
        text.push_str(&format!("\n[[account]]\nid = \"X{i}\"\nproduct = \"debit\"\nbalance = \"10.00\"\n\n[[card]]\npan = \"{pan}\"\naccount = \"X{i}\"\nexpiry = \"3012\"\n"));
    }
    let file = IssuerFile::from_toml_str(&text, "many").expect("file");
    let e = Engine::from_file(&file).expect("engine");
    let pans: Vec<Pan> = file.cards.iter().map(|c| pan(&c.pan)).collect();
    for (i, p) in pans.iter().enumerate() {
        let mut r = auth(DEBIT, "1.00")
            .stan(u32::try_from(i).expect("stan") + 1)
            .build();
        r.pan = *p;
        e.process(&r, t0(), t0().date());
    }
    let later = t0() + Duration::hours(169);
    // A journal that refuses stops the pass at its first event, changing nothing.
    let mut offered = 0;
    let none = e.sweep(later, |_: &LedgerEvent| {
        offered += 1;
        Err::<(), ()>(())
    });
    assert!(none.is_empty());
    assert_eq!(offered, 1);
    assert_eq!(e.sweep(later, no_journal).len(), SWEEP_EVENTS_MAX);
    // The accounts swept first get new expired holds: a pass that started from the first account
    // again would spend its allowance on them and never reach the last ones.
    for (stan, p) in (100_000..).zip(&pans[..SWEEP_EVENTS_MAX]) {
        let mut r = auth(DEBIT, "1.00").stan(stan).build();
        r.pan = *p;
        assert!(e.process(&r, t0(), t0().date()).result.is_ok());
    }
    assert_eq!(e.sweep(later, no_journal).len(), SWEEP_EVENTS_MAX);
    for p in &pans[SWEEP_EVENTS_MAX..] {
        assert_eq!(e.ledger(p).expect("ledger").held.minor(), 0, "reached");
    }
    let rest = e.sweep(later, no_journal);
    assert_eq!(rest.len(), pans.len() - SWEEP_EVENTS_MAX);
    assert!(e.sweep(later, no_journal).is_empty());
    for p in &pans {
        assert_eq!(e.ledger(p).expect("ledger").held.minor(), 0);
    }
    e.check_invariants().expect("invariants");
}

#[test]
fn maintenance_reset_pin_and_status() {
    let e = engine("metro-pay");
    for stan in 1..=3 {
        auth(PREPAID, "1.00")
            .pin(PinCheck::Wrong)
            .stan(stan)
            .run(&e);
    }
    assert_eq!(
        code(
            &auth(PREPAID, "1.00")
                .pin(PinCheck::Verified)
                .stan(4)
                .run(&e)
        ),
        "75"
    );
    let p = pan(PREPAID);
    e.reset_pin_tries(&p, t0(), no_journal).expect("reset");
    assert_eq!(
        code(
            &auth(PREPAID, "1.00")
                .pin(PinCheck::Verified)
                .stan(5)
                .run(&e)
        ),
        "00"
    );
    for (stan, (status, expected)) in (6..).zip([
        (CardStatus::Stolen, "43"),
        (CardStatus::Lost, "41"),
        (CardStatus::Restricted, "62"),
        (CardStatus::Closed, "57"),
        (CardStatus::Active, "00"),
    ]) {
        e.set_card_status(&p, status, t0(), no_journal)
            .expect("status");
        assert_eq!(e.card_status(&p), Some(status));
        assert_eq!(
            code(&auth(PREPAID, "1.00").stan(stan).run(&e)),
            expected,
            "{status:?}"
        );
    }
    assert_eq!(
        e.reset_pin_tries(&pan("4111110000000054"), t0(), no_journal),
        Err(Decline::InvalidCardNumber)
    );
}

#[test]
fn maintenance_events_replay() {
    let e = engine("metro-pay");
    let p = pan(PREPAID);
    let mut events: Vec<LedgerEvent> = (1..=3)
        .filter_map(|stan| {
            auth(PREPAID, "1.00")
                .pin(PinCheck::Wrong)
                .stan(stan)
                .run(&e)
                .event
        })
        .collect();
    let mut journaled = Vec::new();
    let reset = e.reset_pin_tries(&p, t0(), |ev| {
        journaled.push(ev.clone());
        Ok::<(), ()>(())
    });
    assert_eq!(reset.as_ref().ok(), journaled.first());
    events.extend(reset.ok());
    events.extend(
        e.set_card_status(&p, CardStatus::Lost, t0(), no_journal)
            .ok(),
    );
    events.extend(auth(PREPAID, "1.00").stan(9).run(&e).event);
    let fresh = engine("metro-pay");
    assert_eq!(fresh.replay(events).expect("replay"), 6);
    assert_eq!(fresh.snapshot(), e.snapshot());
    assert_eq!(fresh.card_status(&p), Some(CardStatus::Lost));
    // A refused journal write leaves the card as it was (its sequence number is skipped).
    assert_eq!(
        e.set_card_status(&p, CardStatus::Active, t0(), |_| Err(())),
        Err(Decline::SystemMalfunction)
    );
    assert_eq!(e.card_status(&p), Some(CardStatus::Lost));
}

#[test]
fn journal_failure_changes_nothing() {
    let e = engine("east-bank");
    let r = auth(DEBIT, "100.00").stan(1);
    let out = e.process_with(&r.build(), r.now(), r.date(), |_| Err("disk full"));
    assert_eq!(out.result, Err(Decline::SystemMalfunction));
    assert!(out.event.is_none());
    assert_eq!(ledger(&e, DEBIT).held, cny("0"));
    // The request was not recorded, so its retry is decided afresh.
    let mut journaled = Vec::new();
    let out = e.process_with(&r.build(), r.now(), r.date(), |ev| {
        journaled.push(ev.clone());
        Ok::<(), ()>(())
    });
    assert_eq!(code(&out), "00");
    assert_eq!(journaled.len(), 1);
    assert_eq!(out.event.as_ref(), journaled.first());
}

#[test]
fn adapters_from_the_iso_views() {
    use bytes::Bytes;

    use crate::iso8583::views::ReversalRequest;
    use crate::iso8583::{ISO87_ASCII, MessageBuilder, decode, samples};

    let mut b = samples::auth_request(&ISO87_ASCII);
    b.set(32, b"100001").set(60, b"1");
    let msg = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
    let view = AuthorizationRequest::from_message(&msg).expect("view");
    let r = IssuingRequest::from_authorization(&view, PinCheck::Verified).expect("request");
    assert_eq!(r.kind, RequestKind::Authorization);
    assert_eq!(r.key.to_string(), "100001/000001/1125221800/TERM0001");
    assert_eq!(r.amount, Some(cny("12.34")));
    assert!(r.partial_supported);
    assert_eq!(r.mcc, Some(5411));

    let e = engine("north-bank");
    let now = t0();
    let out = e.process(&r, now, now.date());
    assert_eq!(code(&out), "00");

    let orig = crate::iso8583::views::OriginalData::from_field(
        b"010000000111252218000000010000100000000000",
    )
    .expect("f90");
    let f90 = orig.to_field();
    let mut rb = MessageBuilder::new(&ISO87_ASCII, *b"0400");
    for (n, v) in [
        (2u8, &b"4111110000000013"[..]),
        (3, b"000000"),
        (4, b"000000001234"),
        (7, b"1125222000"),
        (11, b"000002"),
        (32, b"100001"),
        (41, b"TERM0001"),
        (49, b"156"),
    ] {
        rb.set(n, v);
    }
    rb.set(90, &f90);
    let bytes: Bytes = rb.to_bytes().expect("encode");
    let m = decode(&ISO87_ASCII, bytes).expect("decode");
    let rv = IssuingRequest::from_reversal(&ReversalRequest::from_message(&m).expect("view"));
    assert_eq!(
        rv.kind,
        RequestKind::Reversal {
            original: r.key,
            replacement: None
        }
    );
    let out = e.process(&rv, now, now.date());
    assert_eq!(code(&out), "00");
    assert_eq!(ledger(&e, CREDIT).held, cny("0"));
}

#[test]
fn precedence_is_the_documented_order() {
    assert_eq!(PRECEDENCE.first(), Some(&Check::Request));
    assert_eq!(PRECEDENCE.last(), Some(&Check::Funds));
    let pos = |c| PRECEDENCE.iter().position(|&x| x == c).expect("listed");
    assert!(pos(Check::Status) < pos(Check::Expiry));
    assert!(pos(Check::Expiry) < pos(Check::Pin));
    assert!(pos(Check::Pin) < pos(Check::Currency));
    assert!(pos(Check::Currency) < pos(Check::Mcc));
    assert!(pos(Check::Mcc) < pos(Check::Product));
    assert!(pos(Check::DailyAmount) < pos(Check::Funds));
}

/// Knobs the three test issuers leave at their defaults: over-limit, daily purchase limits,
/// debit overdraft, partial approval on debit, and a short hold expiry.
#[test]
fn other_product_knobs() {
    let text = r#"
[issuer]
id = "knob-bank"
name = "Knob Bank"
auth_code_prefix = "K7"

[journal]
dir = "data/knob"

[[product]]
id = "credit"
kind = "credit"
currency = "CNY"
over_limit_pct = "10"
hold_expiry_h = 2

[[product]]
id = "debit"
kind = "debit"
currency = "CNY"
partial_approval = true
blocked_mcc = [7995, 5933]

[product.daily_purchase]
amount = "300.00"
count = 2

[[account]]
id = "C"
product = "credit"
credit_limit = "1000.00"

[[account]]
id = "D"
product = "debit"
balance = "100.00"
overdraft = "50.00"

[[card]]
pan = "4111110000000013"
account = "C"
expiry = "3012"

[[card]]
pan = "6222020000000015"
account = "D"
expiry = "3012"

[[card]]
pan = "6222020000000023"
account = "D"
expiry = "3012"
"#;
    let file = IssuerFile::from_toml_str(text, "knob").expect("file");
    let e = Engine::from_file(&file).expect("engine");
    // Credit: 1,000.00 limit + 10% = 1,100.00 open-to-buy.
    assert_eq!(ledger(&e, CREDIT).available, cny("1100.00"));
    assert_eq!(code(&auth(CREDIT, "1100.01").stan(1).run(&e)), "51");
    let a = auth(CREDIT, "1100.00").stan(2).run(&e);
    assert_eq!(
        a.result.map(|a| a.auth_code.to_string()),
        Ok("K70002".to_owned())
    );
    // Short hold expiry: two hours later the hold is gone.
    assert_eq!(ledger(&e, CREDIT).held, cny("1100.00"));
    assert_eq!(code(&auth(CREDIT, "1.00").stan(3).at(1).run(&e)), "51");
    assert_eq!(code(&auth(CREDIT, "1.00").stan(4).at(2).run(&e)), "00");

    // Debit with overdraft: 100.00 + 50.00 available; partial approval on debit too.
    assert_eq!(ledger(&e, DEBIT).available, cny("150.00"));
    let p = auth(DEBIT, "200.00").stan(10).partial().run(&e);
    assert_eq!(code(&p), "10");
    assert_eq!(p.result.map(|a| a.approved), Ok(cny("150.00")));
    assert_eq!(code(&reversal(DEBIT, 10, "150.00").stan(11).run(&e)), "00");
    // Daily purchase limits are per card: amount 300.00, count 2.
    assert_eq!(code(&fin(DEBIT, "100.00").stan(12).run(&e)), "00");
    assert_eq!(code(&fin(DEBIT, "0.01").stan(13).mcc(5933).run(&e)), "57");
    assert_eq!(code(&fin(DEBIT, "10.00").stan(14).run(&e)), "00");
    assert_eq!(code(&fin(DEBIT, "10.00").stan(15).run(&e)), "65");
    // The other card on the account has its own counters but shares the money: -20.00 posted,
    // 30.00 available.
    assert_eq!(ledger(&e, DEBIT).posted, cny("-10.00"));
    assert_eq!(
        code(&fin("6222020000000023", "40.01").stan(16).run(&e)),
        "51"
    );
    assert_eq!(
        code(&fin("6222020000000023", "40.00").stan(17).run(&e)),
        "00"
    );
    assert_eq!(ledger(&e, DEBIT).available, cny("0"));
    let mut many = fin("6222020000000023", "1.00");
    many.day = 1;
    // Next business day, funds are the limit, not the counters.
    assert_eq!(code(&many.stan(18).run(&e)), "51");
    e.check_invariants().expect("invariants");
}

// ---------------------------------------------------------------------------------------------
// replay, snapshot, restore

/// A mixed day on every test card; returns the events.
fn busy_day(e: &Engine, cards: &[&'static str]) -> Vec<LedgerEvent> {
    let mut events = Vec::new();
    let mut stan = 1;
    let mut next = || {
        stan += 1;
        stan
    };
    for &c in cards {
        let a = next();
        let steps = [
            auth(c, "30.00").stan(a),
            fin(c, "12.50").stan(next()),
            auth(c, "1.00").pin(PinCheck::Wrong).stan(next()),
            completion(c, a, "25.00").stan(next()).at(1),
            fin(c, "7.00").txn(TxnType::Deposit).stan(next()).at(1),
            auth(c, "5.00").stan(next()).at(2),
            inquiry(c).stan(next()).at(2),
            auth(c, "9.00").stan(next()).at(3),
            reversal(c, 999, "1.00").stan(next()).at(3),
            auth(c, "2.00").stan(next()).at(200),
        ];
        for s in steps {
            events.extend(s.run(e).event);
        }
    }
    events.extend(e.sweep(t0() + Duration::hours(400), no_journal));
    events
}

const ALL: [(&str, &[&str]); 3] = [
    (
        "north-bank",
        &[CREDIT, CREDIT_LOST, CREDIT_EXPIRED, CREDIT_100],
    ),
    ("east-bank", &[DEBIT, DEBIT_STOLEN, DEBIT_10]),
    ("metro-pay", &[PREPAID, PREPAID_EMPTY]),
];

#[test]
fn replay_reaches_the_same_state() {
    for (issuer, cards) in ALL {
        let live = engine(issuer);
        let events = busy_day(&live, cards);
        assert!(events.len() > 10);
        // Through the journal's encoding, and shuffled as concurrent writers might leave them.
        let mut decoded: Vec<LedgerEvent> = events
            .iter()
            .map(|ev| LedgerEvent::decode(&ev.encode().expect("encode")).expect("decode"))
            .collect();
        decoded.reverse();
        let fresh = engine(issuer);
        assert_eq!(fresh.replay(decoded.clone()).expect("replay"), events.len());
        assert_eq!(fresh.snapshot(), live.snapshot(), "{issuer}");
        for &c in cards {
            assert_eq!(fresh.balances(&pan(c)), live.balances(&pan(c)));
        }
        // Replaying again changes nothing.
        assert_eq!(fresh.replay(decoded).expect("replay"), 0);
        fresh.check_invariants().expect("invariants");
        // Both give the same next answer, auth code included.
        let next = auth(cards[0], "1.00").stan(5000).at(401);
        assert_eq!(next.run(&fresh), next.run(&live));
    }
}

#[test]
fn snapshot_restore_then_journal_tail() {
    for (issuer, cards) in ALL {
        let live = engine(issuer);
        let head = busy_day(&live, cards);
        let snap = live.snapshot();
        let bytes = postcard::to_allocvec(&snap).expect("encode");
        let tail: Vec<LedgerEvent> = cards
            .iter()
            .enumerate()
            .filter_map(|(i, &c)| {
                auth(c, "3.00")
                    .stan(9000 + i as u32)
                    .at(401)
                    .run(&live)
                    .event
            })
            .collect();

        let restored = engine(issuer);
        let snap2: Snapshot = postcard::from_bytes(&bytes).expect("decode");
        restored.restore(&snap2).expect("restore");
        // The whole journal: the head is skipped, the tail applied.
        let applied = restored
            .replay(head.into_iter().chain(tail.iter().cloned()))
            .expect("replay");
        assert_eq!(applied, tail.len());
        assert_eq!(restored.snapshot(), live.snapshot(), "{issuer}");
    }
}

/// The debit account of [`HOT`].
const HOT_DEBIT: &str = "6222020000000015";

/// `n` requests on [`HOT_DEBIT`] from STAN `from`: mostly inquiries (a record each), with holds,
/// captures, voids and a reversal ahead of its original (a tombstone) among them, so that a
/// snapshot has every kind of record to copy and the account's record map splits.
fn hot_requests(from: u32, n: u32) -> Vec<R> {
    (from..from + n)
        .map(|s| match s % 10 {
            0 => auth(HOT_DEBIT, "0.10").stan(s),
            1 => completion(HOT_DEBIT, s - 1, "0.05").stan(s),
            2 => auth(HOT_DEBIT, "0.10").stan(s),
            3 => reversal(HOT_DEBIT, s + 3, "0.10").stan(s),
            4 => reversal(HOT_DEBIT, s - 2, "0.10").stan(s),
            6 => auth(HOT_DEBIT, "0.10").stan(s),
            _ => inquiry(HOT_DEBIT).stan(s),
        })
        .collect()
}

/// Runs `requests` on `e`, returning their events.
fn run_all(e: &Engine, requests: &[R]) -> Vec<LedgerEvent> {
    requests.iter().filter_map(|r| r.run(e).event).collect()
}

/// A checkpoint copies a busy account after letting its lock go (the copy shares the account's
/// record tables until they change): requests that change the account between its freeze and
/// its copy must not show in the snapshot, which is exactly the state when it was frozen, and
/// restoring it then replaying the whole journal reaches the live state. Here the account has
/// split its records into shards by the freeze.
#[test]
fn changes_after_an_account_is_frozen_stay_out_of_its_snapshot() {
    frozen_changes_stay_out(8_000, 2_000, true);
}

/// The same for an account whose records are still one table, held in place and moved behind an
/// `Arc` only for the checkpoint's copy: most accounts.
#[test]
fn changes_after_a_small_account_is_frozen_stay_out_of_its_snapshot() {
    frozen_changes_stay_out(500, 200, false);
}

fn frozen_changes_stay_out(head_n: u32, tail_n: u32, split: bool) {
    let live = hot_engine();
    let head = run_all(&live, &hot_requests(1, head_n));
    assert_eq!(live.records_split(0), Some(split), "the account's shape");
    let tail_requests = hot_requests(head_n + 1, tail_n);
    let mut tail = Vec::new();
    let snap = live.snapshot_then(|account| {
        if account == 0 {
            tail = run_all(&live, &tail_requests);
        }
    });
    assert!(
        tail.len() > tail_n as usize * 3 / 4,
        "the tail ran: {}",
        tail.len()
    );

    // The snapshot's ledgers are the head's alone (its sequence counter is read at the end).
    let head_only = hot_engine();
    head_only.replay(head.clone()).expect("replay the head");
    assert!(
        snap.clone().ledgers_only() == head_only.snapshot().ledgers_only(),
        "the snapshot holds exactly the head"
    );

    // And restores, with the journal replayed over it, to the live state.
    let restored = hot_engine();
    restored.restore(&snap).expect("restore");
    assert_eq!(restored.records_held(), snap.record_count());
    let tail_len = tail.len();
    let applied = restored
        .replay(head.into_iter().chain(tail))
        .expect("replay");
    assert_eq!(applied, tail_len, "the head skipped, the tail applied");
    assert_eq!(restored.snapshot(), live.snapshot());
    // The record count follows restore, replay and requests alike.
    assert_eq!(restored.records_held(), live.records_held());
    assert_eq!(live.records_held(), live.snapshot().record_count());
    restored.check_invariants().expect("invariants");
    live.check_invariants().expect("invariants");
    let next = auth(HOT_DEBIT, "1.00").stan(head_n + tail_n + 10_000);
    assert_eq!(next.run(&restored), next.run(&live));
}

/// The same with real concurrency: a thread keeps deciding requests on the busy account while
/// the checkpoint is taken, journaling them in order; snapshot plus journal is the live state.
#[test]
fn a_snapshot_taken_while_requests_run_restores_after_replay() {
    let live = hot_engine();
    let requests = hot_requests(1, 12_000);
    let journal = std::sync::Mutex::new(Vec::new());
    let journaled = || journal.lock().map_or(0, |j| j.len());
    let snap = std::thread::scope(|scope| {
        scope.spawn(|| {
            for r in &requests {
                live.process_with(&r.build(), r.now(), r.date(), |ev| {
                    journal.lock().map_err(|_| "poisoned")?.push(ev.clone());
                    Ok::<(), &str>(())
                });
            }
        });
        // Waits for the account to be large (split) before taking it.
        while journaled() < 8_000 {
            std::thread::yield_now();
        }
        live.snapshot()
    });
    let journal = journal.into_inner().expect("journal");
    assert!(journal.len() > 10_000);

    let restored = hot_engine();
    restored.restore(&snap).expect("restore");
    let applied = restored.replay(journal.clone()).expect("replay");
    assert!(
        applied < journal.len() - 8_000,
        "the snapshot held the first 8,000 events: {applied} replayed"
    );
    assert_eq!(restored.snapshot(), live.snapshot());
    restored.check_invariants().expect("invariants");
}

#[test]
fn restore_refuses_another_file() {
    let nb = engine("north-bank");
    let eb = engine("east-bank");
    assert!(matches!(
        eb.restore(&nb.snapshot()),
        Err(RestoreError::WrongFile { .. })
    ));
    assert_ne!(nb.fingerprint(), eb.fingerprint());
}

#[test]
fn apply_refuses_an_inconsistent_event() {
    let live = engine("north-bank");
    let a = auth(CREDIT, "10.00")
        .stan(1)
        .run(&live)
        .event
        .expect("event");
    let c = completion(CREDIT, 1, "10.00")
        .stan(2)
        .run(&live)
        .event
        .expect("event");
    let fresh = engine("north-bank");
    // The capture without its hold.
    assert!(matches!(fresh.apply(&c), Err(LedgerError::Inconsistent(_))));
    assert_eq!(fresh.apply(&a), Ok(Applied::Applied));
    assert_eq!(fresh.apply(&c), Ok(Applied::Applied));
    assert_eq!(fresh.snapshot(), live.snapshot());
}

// ---------------------------------------------------------------------------------------------
// money is conserved (proptest)

/// One random step for the property test.
#[derive(Debug, Clone)]
enum Step {
    Auth {
        txn: u8,
        minor: i64,
        partial: bool,
    },
    Fin {
        txn: u8,
        minor: i64,
    },
    Complete {
        pick: usize,
        minor: i64,
    },
    Reverse {
        pick: usize,
        remains_pct: Option<u8>,
    },
    Retry {
        pick: usize,
    },
    Advance {
        hours: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let txn = prop_oneof![Just(0u8), Just(1), Just(20), Just(21), Just(31)];
    prop_oneof![
        4 => (txn.clone(), 1i64..300_000, any::<bool>())
            .prop_map(|(txn, minor, partial)| Step::Auth { txn, minor, partial }),
        3 => (txn, 1i64..300_000).prop_map(|(txn, minor)| Step::Fin { txn, minor }),
        3 => (any::<usize>(), 1i64..400_000).prop_map(|(pick, minor)| Step::Complete { pick, minor }),
        2 => (any::<usize>(), proptest::option::of(0u8..=100))
            .prop_map(|(pick, remains_pct)| Step::Reverse { pick, remains_pct }),
        1 => any::<usize>().prop_map(|pick| Step::Retry { pick }),
        1 => (1i64..60).prop_map(|hours| Step::Advance { hours }),
    ]
}

fn txn_of(code: u8) -> TxnType {
    TxnType::from_code(code).expect("txn")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn money_is_conserved(
        which in 0usize..3,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let (issuer, card) = [("north-bank", CREDIT), ("east-bank", DEBIT), ("metro-pay", PREPAID)][which];
        let e = engine(issuer);
        let p = pan(card);
        let tolerance_pct: i64 = if issuer == "metro-pay" { 0 } else { 20 };
        let start = ledger(&e, card).posted.minor();
        let mut now = t0();
        let mut sent: Vec<(IssuingRequest, NaiveDateTime)> = Vec::new();
        let mut events = Vec::new();
        // Model: every approved posting, signed from the cardholder's side.
        let mut postings: i64 = 0;
        // Model of open holds by key, and of reversible postings.
        let mut holds: std::collections::HashMap<IdemKey, (i64, NaiveDateTime)> = Default::default();
        let mut posts: std::collections::HashMap<IdemKey, i64> = Default::default();
        let mut stan = 0u32;
        for s in steps {
            stan += 1;
            let k = key(stan);
            let base = |kind, txn: TxnType, minor: Option<i64>, partial| IssuingRequest {
                kind,
                key: k,
                pan: p,
                processing_code: ProcessingCode::new(txn, AccountType::Default, AccountType::Default),
                amount: minor.map(|m| Amount::new(m, Currency::CNY)),
                currency: Currency::CNY,
                mcc: None,
                expiry: None,
                pin: PinCheck::Absent,
                partial_supported: partial,
            };
            let r = match s {
                Step::Advance { hours } => {
                    now += Duration::hours(hours);
                    continue;
                }
                Step::Auth { txn, minor, partial } => {
                    base(RequestKind::Authorization, txn_of(txn), Some(minor), partial)
                }
                Step::Fin { txn, minor } => base(RequestKind::Financial, txn_of(txn), Some(minor), false),
                Step::Complete { pick, minor } => {
                    let Some(orig) = sent.get(pick % sent.len().max(1)).map(|r| r.0.key) else { continue };
                    base(RequestKind::Completion { original: orig }, TxnType::Purchase, Some(minor), false)
                }
                Step::Reverse { pick, remains_pct } => {
                    let Some(orig) = sent.get(pick % sent.len().max(1)).map(|r| r.0) else { continue };
                    let size = holds.get(&orig.key).map(|h| h.0).or(posts.get(&orig.key).copied()).map_or(0, i64::abs);
                    let replacement = remains_pct.map(|pct| Amount::new(size * i64::from(pct) / 100, Currency::CNY));
                    let mut r = base(
                        RequestKind::Reversal { original: orig.key, replacement },
                        orig.processing_code.txn,
                        orig.amount.map(Amount::minor),
                        false,
                    );
                    r.processing_code = orig.processing_code;
                    r
                }
                Step::Retry { pick } => {
                    let Some(&(orig, at)) = sent.get(pick % sent.len().max(1)) else { continue };
                    if now - at >= Duration::hours(720) {
                        // Forgotten after the idempotency window.
                        continue;
                    }
                    let before = e.snapshot();
                    let again = e.process(&orig, now, now.date());
                    prop_assert!(again.duplicate || again.result == Err(Decline::DuplicateTransmission) || again.result == Err(Decline::DoNotHonour));
                    prop_assert!(again.event.is_none());
                    prop_assert_eq!(e.snapshot(), before);
                    continue;
                }
            };
            // The engine releases due holds before deciding.
            holds.retain(|_, h| h.1 > now);
            let out = e.process(&r, now, now.date());
            events.extend(out.event.clone());
            sent.push((r, now));
            let l = ledger(&e, card);
            prop_assert!(l.held.minor() >= 0, "held negative");
            if issuer == "metro-pay" {
                prop_assert!(l.available.minor() >= 0, "prepaid below zero");
            }
            if let Ok(a) = out.result {
            let amt = a.approved.minor();
            let txn = r.processing_code.txn;
            match r.kind {
                RequestKind::Authorization | RequestKind::Financial => match txn {
                    TxnType::Purchase | TxnType::Cash if r.kind == RequestKind::Authorization => {
                        holds.insert(r.key, (amt, now + Duration::hours(168)));
                    }
                    TxnType::Purchase | TxnType::Cash => {
                        postings -= amt;
                        posts.insert(r.key, -amt);
                    }
                    TxnType::Refund | TxnType::Deposit => {
                        postings += amt;
                        posts.insert(r.key, amt);
                    }
                    _ => prop_assert_eq!(amt, 0),
                },
                RequestKind::Completion { original } => {
                    let open = holds.remove(&original).map(|h| h.0);
                    prop_assert!(open.is_some(), "capture of a hold the model has not open");
                    let open = open.unwrap_or(0);
                    prop_assert!(amt <= open + open * tolerance_pct / 100, "capture above hold + tolerance");
                    postings -= amt;
                    posts.insert(r.key, -amt);
                }
                RequestKind::Reversal { original, replacement } => {
                    let remains = replacement.map_or(0, Amount::minor);
                    if let Some((open, _)) = holds.get_mut(&original) {
                        prop_assert_eq!(amt, *open - remains);
                        *open = remains;
                        if remains == 0 {
                            holds.remove(&original);
                        }
                    } else if let Some(v) = posts.get_mut(&original) {
                        prop_assert_eq!(amt, v.abs() - remains);
                        postings -= v.signum() * amt;
                        *v = v.signum() * remains;
                    } else {
                        prop_assert!(false, "reversal approved for nothing");
                    }
                }
                RequestKind::Advice { .. } => {}
            }
            }
            prop_assert_eq!(l.held.minor(), holds.values().map(|h| h.0).sum::<i64>(), "held differs from the open holds");
            prop_assert_eq!(l.posted.minor() - start, postings, "posted movements differ from approved postings");
            e.check_invariants().map_err(|err| TestCaseError::fail(err.to_string()))?;
        }
        // Replay reaches the same state.
        let fresh = engine(issuer);
        fresh.replay(events).map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(fresh.snapshot(), e.snapshot());
    }
}

// ---------------------------------------------------------------------------------------------
// concurrency

#[test]
fn hot_account_is_exact_under_concurrency() {
    let e = Arc::new(hot_engine());
    // 5,000.00 on the account; 8 threads x 400 purchases of 3.00 = 9,600.00 asked.
    let threads = 8u32;
    let per = 400u32;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                let mut approved = 0i64;
                for i in 0..per {
                    let r = fin(DEBIT, "3.00").stan(t * per + i + 1);
                    let out = r.run(&e);
                    if out.result.is_ok() {
                        approved += 1;
                    }
                    let avail = e.ledger(&pan(DEBIT)).expect("ledger").available;
                    assert!(avail.minor() >= 0, "overdraft");
                }
                approved
            })
        })
        .collect();
    let approved: i64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(approved, 1666, "floor(5000 / 3)");
    let l = e.ledger(&pan(DEBIT)).expect("ledger");
    assert_eq!(l.posted, cny("2.00"));
    e.check_invariants().expect("invariants");
}

#[test]
fn hot_account_holds_and_reversals_under_concurrency() {
    let e = Arc::new(hot_engine());
    let threads = 8u32;
    let per = 300u32;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                let mut net = 0i64;
                for i in 0..per {
                    let stan = 2 * (t * per + i) + 1;
                    let out = auth(CREDIT, "50.00").stan(stan).run(&e);
                    if out.result.is_ok() {
                        // Half are captured for less, half reversed.
                        if i % 2 == 0 {
                            let c = completion(CREDIT, stan, "40.00").stan(stan + 1).run(&e);
                            assert_eq!(code(&c), "00");
                            net += 4000;
                        } else {
                            let r = reversal(CREDIT, stan, "50.00").stan(stan + 1).run(&e);
                            assert_eq!(code(&r), "00");
                        }
                    }
                    assert!(e.ledger(&pan(CREDIT)).expect("l").available.minor() >= 0);
                }
                net
            })
        })
        .collect();
    let owed: i64 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    let l = e.ledger(&pan(CREDIT)).expect("ledger");
    assert_eq!(l.posted.minor(), -owed);
    assert_eq!((l.held, l.open_holds), (cny("0"), 0));
    assert!(owed <= 1_000_000, "never beyond the limit");
    e.check_invariants().expect("invariants");
}

#[test]
fn independent_accounts_in_parallel() {
    let e = Arc::new(hot_engine());
    let handles: Vec<_> = [DEBIT, DEBIT_10]
        .into_iter()
        .enumerate()
        .map(|(t, c)| {
            let e = Arc::clone(&e);
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    fin(c, "0.01").stan(t as u32 * 1000 + i + 1).run(&e);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(ledger(&e, DEBIT).posted, cny("4995.00"));
    assert_eq!(ledger(&e, DEBIT_10).posted, cny("0"));
}

// ---------------------------------------------------------------------------------------------
// the issuer files

#[test]
fn issuer_files_are_valid_and_store_pvvs_of_1234() {
    for (issuer, cards) in ALL {
        let file = IssuerFile::load(&issuer_path(issuer)).expect("load");
        assert_eq!(file.issuer.id, issuer);
        assert_eq!(file.listener.is_some(), issuer != "metro-pay");
        let e = Engine::from_file(&file).expect("engine");
        assert_eq!(e.card_count(), cards.len());
        let pvk = super::pin::parse_pvk(file.security.pvk.as_deref().expect("pvk")).expect("pvk");
        for &c in cards {
            let card = e.card(&pan(c)).expect("card");
            assert_eq!(card.pvv(), Some(&visa_pvv(&pvk, &pan(c), 1, "1234")), "{c}");
            assert!(verify_clear_pin(&pvk, card, "1234"));
            assert!(!verify_clear_pin(&pvk, card, "1235"));
            assert_eq!(e.verify_pin(&pan(c), "1234"), PinCheck::Verified);
            assert_eq!(e.verify_pin(&pan(c), "4321"), PinCheck::Wrong);
            let block = ClearPin::iso0_block("1234", &pan(c)).expect("block");
            assert_eq!(e.verify_pin_block(&pan(c), &block), PinCheck::Verified);
        }
        // The file round-trips through its own serialisation.
        let text = file.to_toml_string().expect("toml");
        let again = IssuerFile::from_toml_str(&text, &file.origin).expect("parse");
        assert_eq!(again, file);
    }
}

#[test]
fn cards_and_accounts_from_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("cards.csv"),
        "pan,account,expiry,status,pvki,pvv\n\
         4111110000000013,A1,3012,active,1,6767\n\
         4111110000000021,A2,3012,lost,,\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("accounts.csv"),
        "id,product,balance,credit_limit,cash_limit,overdraft\n\
         A1,debit,100.00,,,\n\
         A2,debit,5.00,,,10.00\n",
    )
    .expect("write");
    let toml = r#"
cards_csv = "cards.csv"
accounts_csv = "accounts.csv"

[issuer]
id = "csv-bank"
name = "CSV Bank"

[journal]
dir = "data/csv"

[[product]]
id = "debit"
kind = "debit"
currency = "CNY"
"#;
    let path = dir.path().join("csv-bank.toml");
    std::fs::write(&path, toml).expect("write");
    let file = IssuerFile::load(&path).expect("load");
    assert_eq!((file.cards.len(), file.accounts.len()), (2, 2));
    let e = Engine::from_file(&file).expect("engine");
    assert_eq!(
        e.card_status(&pan("4111110000000021")),
        Some(CardStatus::Lost)
    );
    assert_eq!(ledger(&e, "4111110000000021").available, cny("15.00"));
    assert_eq!(code(&auth("4111110000000013", "100.00").run(&e)), "00");

    // A bad row is reported with the file's other problems.
    std::fs::write(
        dir.path().join("cards.csv"),
        "pan,account,expiry,status,pvki,pvv\n4111110000000014,A9,3013,active,,\n",
    )
    .expect("write");
    let Err(crate::config::ConfigError::Invalid(problems)) = IssuerFile::load(&path) else {
        panic!("expected problems");
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
}
