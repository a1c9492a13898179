//! The one busy account of the pause examples (`hot_account_pauses`, `checkpoint_pauses`):
//! an issuer file with one debit account and its card, and a stream of balance inquiries on it,
//! each with its own idempotency key, a millisecond of engine time apart (so every record stays
//! in the retry window and the account's record map only grows, as a test card's does under
//! `loadgen run` with the default mix). Shared so both measure the same account.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switch::domain::{
    AccountType, AcquirerId, Currency, Pan, ProcessingCode, Stan, TerminalId, TransmissionDateTime,
    TxnType,
};
use switch::issuing::{
    Engine, IdemKey, IssuerFile, IssuingRequest, NaiveDate, PinCheck, RequestKind,
};

const ISSUER: &str = r#"
[issuer]
id = "pause-bank"
name = "Pause Bank"

[journal]
dir = "data/pauses"

[[product]]
id = "debit"
kind = "debit"
currency = "156"

[[account]]
id = "A0"
product = "debit"
balance = "1000000.00"

[[card]]
pan = "6222020000000015"
account = "A0"
expiry = "3012"
"#;

/// Balance inquiries on the one card of [`ISSUER`], numbered so that each has its own idempotency key.
pub struct Load {
    pub engine: Arc<Engine>,
    pan: Pan,
    acquirer: AcquirerId,
    transmission: TransmissionDateTime,
    terminals: Vec<TerminalId>,
    start: chrono::NaiveDateTime,
    date: NaiveDate,
    next: u64,
}

impl Load {
    /// The engine of [`ISSUER`], with no request decided yet.
    pub fn new() -> Load {
        let file = IssuerFile::from_toml_str(ISSUER, "pauses").expect("issuer file");
        let date = NaiveDate::from_ymd_opt(2026, 5, 13).expect("date");
        Load {
            engine: Arc::new(Engine::from_file(&file).expect("engine")),
            pan: Pan::parse(b"6222020000000015").expect("pan"),
            acquirer: AcquirerId::parse("100001").expect("acquirer"),
            transmission: TransmissionDateTime::from_field(b"0513100000").expect("field 7"),
            terminals: (0..1000)
                .map(|t| TerminalId::from_field(format!("T{t:07}").as_bytes()).expect("terminal"))
                .collect(),
            start: date.and_hms_opt(10, 0, 0).expect("time"),
            date,
            next: 0,
        }
    }

    /// Decides the next request and returns how long it took.
    pub fn one(&mut self) -> Duration {
        let i = self.next;
        self.next += 1;
        let key = IdemKey::new(
            self.acquirer,
            self.terminals[(i / 999_999) as usize % self.terminals.len()],
            Stan::new((i % 999_999) as u32 + 1).expect("stan"),
            self.transmission,
        );
        let req = IssuingRequest {
            kind: RequestKind::Authorization,
            key,
            pan: self.pan,
            processing_code: ProcessingCode::new(
                TxnType::BalanceInquiry,
                AccountType::Default,
                AccountType::Default,
            ),
            amount: None,
            currency: Currency::CNY,
            mcc: None,
            expiry: None,
            pin: PinCheck::Absent,
            partial_supported: false,
        };
        let now = self.start + chrono::Duration::milliseconds(i as i64);
        let t = Instant::now();
        let out = self.engine.process(&req, now, self.date);
        let took = t.elapsed();
        assert!(out.result.is_ok(), "request {i} failed");
        took
    }
}
