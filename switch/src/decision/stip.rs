//! Stand-in processing (STIP): what the switch may approve on an issuer's behalf while the issuer
//! is unreachable (no ready link, signed off, or timed out).
//!
//! The rules are deliberately narrow, because the switch decides without the issuer's ledger:
//! - only the transaction types the issuer allows (e.g. purchases, no cash);
//! - at most `amount_max` per transaction, and per card per business day at most
//!   `daily_count_max` approvals and `daily_amount_max` in total;
//! - never a card on the issuer's negative file (declined 41 lost / 43 stolen / 62 restricted /
//!   57 closed, as the issuer would);
//! - never a PIN transaction: the switch holds no PIN verification key for the issuer.
//!
//! Anything outside the limits gets 91, as it would without stand-in. Approvals carry an auth
//! code beginning `ST` so that everyone downstream can tell them from the issuer's own.
//! The runtime keeps the per-card day counters and journals every stand-in decision; this module
//! only decides.

use std::collections::HashMap;
use std::path::Path;

use crate::config::StandInConfig;
use crate::domain::{Amount, Currency, Decline, Pan, TxnType};
use crate::iso8583::views::AuthorizationRequest;

/// Prefix of every stand-in auth code (field 38).
pub const AUTH_CODE_PREFIX: &str = "ST";

/// One issuer's stand-in rules.
#[derive(Debug, Clone)]
pub struct StandInRules {
    pub amount_max: Amount,
    pub daily_count_max: u32,
    pub daily_amount_max: Amount,
    pub txn_types: Vec<TxnType>,
    pub negative: HashMap<Pan, Decline>,
}

/// A card's stand-in use so far on one business day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardDay {
    pub count: u32,
    pub amount_minor: i64,
}

/// Why the rules could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("internal: stand_in for {issuer}: {problem}")]
    Invalid { issuer: String, problem: String },
    #[error("internal: negative file {path}: line {line}: {problem}")]
    NegativeFile {
        path: String,
        line: usize,
        problem: &'static str,
    },
    #[error("internal: negative file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl StandInRules {
    /// Builds the rules from config, reading the negative file if one is named.
    pub fn from_config(c: &StandInConfig) -> Result<StandInRules, StandInError> {
        let bad = |p: &str| StandInError::Invalid {
            issuer: c.issuer.clone(),
            problem: p.to_owned(),
        };
        let currency = Currency::from_field(c.currency.as_bytes()).map_err(|_| bad("currency"))?;
        let amount_max =
            Amount::parse_major(&c.amount_max, currency).map_err(|_| bad("amount_max"))?;
        let daily_amount_max = Amount::parse_major(&c.daily_amount_max, currency)
            .map_err(|_| bad("daily_amount_max"))?;
        let txn_types = c
            .processing_codes
            .iter()
            .map(|p| {
                let code: u8 = p.parse().map_err(|_| bad("processing_codes"))?;
                TxnType::from_code(code).map_err(|_| bad("processing_codes"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let negative = match &c.negative_file {
            Some(path) => read_negative_file(path)?,
            None => HashMap::new(),
        };
        Ok(StandInRules {
            amount_max,
            daily_count_max: c.daily_count_max,
            daily_amount_max,
            txn_types,
            negative,
        })
    }

    /// Decides `req` given the card's use today. `Ok` is an approval of the full amount.
    pub fn decide(&self, req: &AuthorizationRequest<'_>, today: CardDay) -> Result<(), Decline> {
        if let Some(d) = self.negative.get(&req.pan) {
            return Err(*d);
        }
        if !self.txn_types.contains(&req.processing_code.txn) || req.has_pin() {
            return Err(Decline::IssuerUnavailable);
        }
        let Some(amount) = req.amount else {
            return Err(Decline::IssuerUnavailable);
        };
        if amount.currency() != self.amount_max.currency()
            || amount.minor() > self.amount_max.minor()
        {
            return Err(Decline::IssuerUnavailable);
        }
        let total = today
            .amount_minor
            .checked_add(amount.minor())
            .ok_or(Decline::IssuerUnavailable)?;
        if today.count >= self.daily_count_max || total > self.daily_amount_max.minor() {
            return Err(Decline::IssuerUnavailable);
        }
        Ok(())
    }
}

/// Reads `PAN reason` lines.
pub fn read_negative_file(path: &Path) -> Result<HashMap<Pan, Decline>, StandInError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| StandInError::Io {
        path: shown.clone(),
        source,
    })?;
    parse_negative(&text, &shown)
}

fn parse_negative(text: &str, path: &str) -> Result<HashMap<Pan, Decline>, StandInError> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |problem| StandInError::NegativeFile {
            path: path.to_owned(),
            line: i + 1,
            problem,
        };
        let mut parts = line.split_whitespace();
        let pan = parts.next().ok_or_else(|| err("missing PAN"))?;
        let pan = Pan::parse(pan.as_bytes()).map_err(|_| err("not a valid PAN"))?;
        let decline = match parts.next() {
            Some("lost") => Decline::LostCard,
            Some("stolen") => Decline::StolenCard,
            Some("restricted") => Decline::RestrictedCard,
            Some("closed") => Decline::NotPermittedToCardholder,
            _ => return Err(err("reason must be lost, stolen, restricted or closed")),
        };
        out.insert(pan, decline);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::iso8583::{ISO87_ASCII, Message, decode, samples};

    fn rules() -> StandInRules {
        let c = StandInConfig {
            issuer: "north-bank".into(),
            product: "credit".into(),
            currency: "156".into(),
            amount_max: "500.00".into(),
            daily_count_max: 5,
            daily_amount_max: "1000.00".into(),
            processing_codes: vec!["00".into()],
            negative_file: None,
        };
        let mut r = StandInRules::from_config(&c).expect("rules");
        r.negative = parse_negative(
            "4111110000000021 lost # from the issuer\n\n6222020000000023 stolen\n",
            "t",
        )
        .expect("neg");
        r
    }

    fn msg(pan: &'static [u8], amount: &'static [u8], pc: &'static [u8]) -> Message {
        let mut b = samples::auth_request(&ISO87_ASCII);
        b.set(2, pan).set(4, amount).set(3, pc).set(32, b"100001");
        let bytes: Bytes = b.to_bytes().expect("encode");
        decode(&ISO87_ASCII, bytes).expect("decode")
    }

    fn run(pan: &'static [u8], amount: &'static [u8], pc: &'static [u8], today: CardDay) -> String {
        let m = msg(pan, amount, pc);
        let req = AuthorizationRequest::from_message(&m).expect("view");
        match rules().decide(&req, today) {
            Ok(()) => "00".into(),
            Err(d) => d.response_code().as_str().into(),
        }
    }

    #[test]
    fn one_row_per_rule() {
        let none = CardDay::default();
        assert_eq!(
            run(b"4111110000000013", b"000000050000", b"000000", none),
            "00",
            "500.00 is the maximum"
        );
        assert_eq!(
            run(b"4111110000000013", b"000000050001", b"000000", none),
            "91",
            "over the per-transaction maximum"
        );
        assert_eq!(
            run(b"4111110000000013", b"000000001000", b"010000", none),
            "91",
            "no cash"
        );
        assert_eq!(
            run(b"4111110000000021", b"000000001000", b"000000", none),
            "41",
            "negative file: lost"
        );
        assert_eq!(
            run(b"6222020000000023", b"000000001000", b"000000", none),
            "43",
            "negative file: stolen"
        );
        let four = CardDay {
            count: 4,
            amount_minor: 90_000,
        };
        assert_eq!(
            run(b"4111110000000013", b"000000010000", b"000000", four),
            "00",
            "fifth, exactly 1,000.00"
        );
        assert_eq!(
            run(b"4111110000000013", b"000000010001", b"000000", four),
            "91",
            "over the daily amount"
        );
        let five = CardDay {
            count: 5,
            amount_minor: 500,
        };
        assert_eq!(
            run(b"4111110000000013", b"000000000100", b"000000", five),
            "91",
            "sixth of the day"
        );
    }

    #[test]
    fn negative_file_errors_name_the_line() {
        let e = parse_negative("4111110000000013 lost\n4111110000000012 lost\n", "neg.txt")
            .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(!e.to_string().contains("4111110000000012"), "{e}");
        assert!(parse_negative("4111110000000013 misplaced\n", "n").is_err());
    }
}
